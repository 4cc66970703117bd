"""Tapir against PyTorch eager, side by side in one run, one table.

Each workload is a pair of programs, Tapir's (an example in examples/,
built in release mode) and PyTorch's (a script in this directory), each
printing one line `<impl> <name> <key>=<value> ...`. Every round runs each
pair back to back, Tapir first, so that both see the same load on this
shared machine; a workload's figure on each side is its best over the
rounds (each program already reports a median over its own steps, or a
best of many for the micro-benchmarks). The peak resident memory of each
process comes from wait4(2).

The table's ratio is always Tapir's time over PyTorch's (lower is better;
for sgemm it is PyTorch's GFLOP/s over Tapir's, the same thing).

Run by hand, never by CI; needs a Python with torch and numpy (a virtual
environment outside the repository):

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy
    /tmp/tv/bin/python benches/compare/compare.py            # the steps
    /tmp/tv/bin/python benches/compare/compare.py --all      # + sgemm, tape, Adam, the main job
    /tmp/tv/bin/python benches/compare/compare.py --only mlp_b16,lenet --rounds 5

Both sides get the same thread count (--threads, default: the number of
cores): RAYON_NUM_THREADS for Tapir, OMP_NUM_THREADS (read by the step
scripts) and --threads for PyTorch.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.join(ROOT, "target", "release", "examples")
PY = sys.executable


def tapir(example, *args):
    return [os.path.join(BIN, example), *args]


def torch_script(script, *args):
    return [PY, os.path.join(HERE, script), *args]


# name, what it is, Tapir command, PyTorch command, key printed, unit,
# lower is better, in the default set
WORKLOADS = [
    ("mlp_b128", "MLP 784-512-512-10 step, batch 128",
     tapir("mlp_step", "128"), torch_script("torch_mlp_step.py", "128"), "ms", "ms", True, True),
    ("mlp_b16", "MLP 784-512-512-10 step, batch 16",
     tapir("mlp_step", "16"), torch_script("torch_mlp_step.py", "16"), "ms", "ms", True, True),
    ("lenet", "LeNet step, batch 64",
     tapir("lenet_step", "64"), torch_script("torch_lenet_step.py", "64"), "ms", "ms", True, True),
    ("transformer", "tiny transformer step, 1 block",
     tapir("transformer_step", "16", "1"), torch_script("torch_transformer_step.py", "16", "1"),
     "ms", "ms", True, True),
    ("sgemm", "sgemm 1024",
     tapir("sgemm_gflops", "1024"), torch_script("torch_sgemm.py", "1024"), "gflops", "GFLOP/s",
     False, False),
    ("tape", "tape overhead per op",
     tapir("tape_chain"), torch_script("torch_tape_chain.py"), "us_per_op", "µs", True, False),
    ("adam", "Adam step, 10M parameters (PyTorch fused)",
     tapir("adam_step"), torch_script("torch_adam.py", "fused"), "ms", "ms", True, False),
    ("main_job", "MNIST main job end to end (wall)",
     tapir("mnist", "--out", "/tmp/tapir-compare-mnist"), torch_script("mnist_torch.py"),
     "wall_s", "s", True, False),
]

def run(cmd, env, threads, is_main_job):
    """Runs cmd; returns (value dict from its output, peak RSS in MiB)."""
    if is_main_job:
        cmd = cmd + ["--threads", str(threads)]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out = p.stdout.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {p.returncode}")
    values = {"wall_s": wall}
    for line in out.splitlines():
        for tok in line.split():
            k, sep, v = tok.partition("=")
            if sep:
                try:
                    values.setdefault(k, float(v))
                except ValueError:
                    pass
    return values, usage.ru_maxrss / 1024.0


def versions():
    torch_v = subprocess.run([PY, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return torch_v, rustc, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", help="comma-separated workload names: "
                    + ", ".join(w[0] for w in WORKLOADS))
    ap.add_argument("--all", action="store_true", help="every workload, the main job included")
    ap.add_argument("--no-build", action="store_true", help="use the examples already built")
    args = ap.parse_args()
    if args.only:
        names = args.only.split(",")
        unknown = [n for n in names if n not in {w[0] for w in WORKLOADS}]
        if unknown:
            ap.error(f"unknown workload(s) {unknown}")
        chosen = [w for w in WORKLOADS if w[0] in names]
    else:
        chosen = [w for w in WORKLOADS if args.all or w[7]]
    if not args.no_build:
        need = sorted({w[2][0].rsplit("/", 1)[1] for w in chosen})
        cmd = ["cargo", "build", "--release", "-q"] + [a for e in need for a in ("--example", e)]
        subprocess.run(cmd, cwd=ROOT, check=True)
    env_t = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    env_p = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    best = {}
    for r in range(args.rounds):
        for name, _, tcmd, pcmd, key, _, lower, _ in chosen:
            for side, cmd, env in (("tapir", tcmd, env_t), ("torch", pcmd, env_p)):
                values, rss = run(cmd, env, args.threads, name == "main_job")
                if key not in values:
                    raise SystemExit(f"{' '.join(cmd)} printed no {key}=")
                v = values[key]
                b = best.setdefault((name, side), [v, rss])
                b[0] = min(b[0], v) if lower else max(b[0], v)
                b[1] = max(b[1], rss)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    torch_v, rustc, cpu = versions()
    print(f"{datetime.date.today()}, {cpu}, {args.threads} threads, PyTorch {torch_v}, {rustc}, "
          f"best of {args.rounds} alternating rounds")
    print()
    print("| workload | PyTorch | Tapir | Tapir / PyTorch | peak RSS PyTorch | peak RSS Tapir |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, what, _, _, _, unit, lower, _ in chosen:
        (t, trss), (p, prss) = best[(name, "tapir")], best[(name, "torch")]
        ratio = t / p if lower else p / t
        fmt = (lambda x: f"{x:.3f}") if unit == "µs" else (lambda x: f"{x:.2f}")
        print(f"| {what} | {fmt(p)} {unit} | {fmt(t)} {unit} | {ratio:.2f} | "
              f"{prss:.0f} MiB | {trss:.0f} MiB |")


if __name__ == "__main__":
    main()
