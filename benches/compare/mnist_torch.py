"""PyTorch twin of `cargo run --release --example mnist`.

Trains the same small convolutional network, on the same data, split the same
way, with the same optimiser and batch size as Tapir's `mnist` example. You
can then set its accuracy, speed and memory use beside the Rust run. It is
meant to be run by hand. CI never runs it, and nothing in the Cargo build
depends on it.

Data: examples/data/mnist_5k.csv.gz (5,000 MNIST digits, 500 per class; one
row per image: 784 pixel values 0-255, then the label; no header). See
examples/data/README.md for where it comes from.

Recipe:
  pixels / 255, then (x - 0.1307) / 0.3081
  rows shuffled exactly as Tapir's `InMemory::split(4000, 0)` does
  (Fisher-Yates driven by Tapir's xoshiro256++ generator seeded with 0,
  reimplemented below); first 4,000 -> train, last 1,000 -> test
  conv 5x5 1->16 pad 2, relu, maxpool 2,
  conv 5x5 16->32 pad 2, relu, maxpool 2,
  flatten, linear 1568->128, relu, linear 128->10
  cross-entropy, Adam lr 1e-3, batch 64, reshuffled each epoch
  (torch.Generator seeded 0), 10 epochs

Each epoch prints the mean training loss, the training accuracy (counted over
that epoch's batches as they are trained, so it trails the weights a little),
the accuracy on the 1,000 test images, and the seconds the epoch took.

`--evaluate target/mnist/mnist.safetensors` instead loads the weights the
Tapir example saved into this PyTorch model (strict names and shapes) and
prints their test accuracy, which must equal the Tapir run's.

Needs only torch and numpy (and safetensors for --evaluate). From the
repository root:

    python benches/compare/mnist_torch.py
    python benches/compare/mnist_torch.py --epochs 3 --threads 4
    python benches/compare/mnist_torch.py --data /elsewhere/mnist_5k.csv.gz

For a second view of time and memory, run it under `/usr/bin/time -v`.
"""

import time

T_START = time.perf_counter()  # the first thing: total wall time includes imports

import argparse
import gzip
import os
import resource

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

MEAN = 0.1307
STD = 0.3081
N_TRAIN = 4000
N_TEST = 1000
BATCH = 64
LR = 1e-3

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_DATA = os.path.join("examples", "data", "mnist_5k.csv.gz")


def find_data(path):
    """Try the path as given, then relative to the repository root."""
    if os.path.exists(path):
        return path
    alt = os.path.join(REPO_ROOT, path)
    if not os.path.isabs(path) and os.path.exists(alt):
        return alt
    raise SystemExit(f"data file not found: {path}")


M64 = (1 << 64) - 1


def tapir_shuffled(n, seed):
    """0..n in the order Tapir's Rng::seed(seed).shuffle gives it."""

    def splitmix(state):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return state, z ^ (z >> 31)

    st, s = seed, []
    for _ in range(4):
        st, v = splitmix(st)
        s.append(v)

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next_u64():
        result = (rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(m):
        zone = M64 - ((M64 - m + 1) % m)
        while True:
            v = next_u64()
            if v <= zone:
                return v % m

    items = list(range(n))
    for i in range(n - 1, 0, -1):
        j = below(i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def load_split(path):
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (N_TRAIN + N_TEST, 785):
        raise SystemExit(f"unexpected table shape {table.shape}, want (5000, 785)")
    pixels = (table[:, :784] / 255.0 - MEAN) / STD
    labels = table[:, 784].astype(np.int64)

    order = np.array(tapir_shuffled(len(table), seed=0))
    train_idx, test_idx = order[:N_TRAIN], order[N_TRAIN:]

    def as_tensors(idx):
        x = torch.from_numpy(np.ascontiguousarray(pixels[idx])).reshape(-1, 1, 28, 28)
        y = torch.from_numpy(np.ascontiguousarray(labels[idx]))
        return x, y

    return as_tensors(train_idx), as_tensors(test_idx)


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 16 x 14 x 14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 32 x 7 x 7
        x = torch.flatten(x, 1)                      # 1568
        x = F.relu(self.fc1(x))
        return self.fc2(x)


@torch.no_grad()
def accuracy(model, x, y, chunk=500):
    model.eval()
    hits = 0
    for i in range(0, len(x), chunk):
        hits += (model(x[i:i + chunk]).argmax(dim=1) == y[i:i + chunk]).sum().item()
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser(description="PyTorch twin of the Tapir mnist example")
    ap.add_argument("--data", default=DEFAULT_DATA, help="path to mnist_5k.csv.gz")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--evaluate", metavar="WEIGHTS",
                    help="instead of training, load a safetensors file written by the Tapir "
                         "example (target/mnist/mnist.safetensors) into this model with "
                         "load_state_dict(strict=True) and print its test accuracy "
                         "(needs the safetensors package)")
    args = ap.parse_args()

    if args.evaluate:
        from safetensors.torch import load_file

        torch.set_num_threads(args.threads)
        _, (x_test, y_test) = load_split(find_data(args.data))
        model = SmallCnn()
        model.load_state_dict(load_file(args.evaluate), strict=True)
        print(f"Tapir weights {args.evaluate} in PyTorch: "
              f"test accuracy {100 * accuracy(model, x_test, y_test):.1f}%")
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # weight initialisation

    (x_train, y_train), (x_test, y_test) = load_split(find_data(args.data))
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}; "
          f"train {len(x_train)}, test {len(x_test)}")

    model = SmallCnn()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    shuffler = torch.Generator().manual_seed(0)

    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        loss_sum = 0.0
        batches = 0
        hits = 0
        order = torch.randperm(len(x_train), generator=shuffler)
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            batches += 1
            hits += (logits.argmax(dim=1) == yb).sum().item()
        test_acc = accuracy(model, x_test, y_test)
        print(f"epoch {epoch:2d}  loss {loss_sum / batches:.4f}  "
              f"train acc {100 * hits / len(x_train):5.1f}%  "
              f"test acc {100 * test_acc:5.1f}%  "
              f"{time.perf_counter() - t_epoch:.2f} s")
    train_s = time.perf_counter() - t_train

    test_acc = accuracy(model, x_test, y_test)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux
    print(f"test accuracy {100 * test_acc:.1f}%")
    print(f"total wall time {time.perf_counter() - T_START:.2f} s (from process start, imports included)")
    print(f"training time {train_s:.2f} s")
    print(f"peak resident memory {peak_mb:.1f} MB")


if __name__ == "__main__":
    main()
