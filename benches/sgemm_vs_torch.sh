#!/usr/bin/env bash
# Side-by-side sgemm: Tapir and PyTorch alternately, in one run, same thread
# count (all cores), then the ratio Tapir / PyTorch per size.
# Usage: PYTHON=/path/to/venv/bin/python benches/sgemm_vs_torch.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-3}
cargo build --release --example sgemm_gflops -q
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  target/release/examples/sgemm_gflops 256 1024 2048 >>"$out"
  "$PYTHON" benches/torch_sgemm.py 256 1024 2048 >>"$out"
done
# Best GFLOP/s of each side per size, and the ratio.
awk '{ split($3, n, "="); split($4, g, "="); k = $1 " " n[2];
       if (g[2] > best[k]) best[k] = g[2]; sizes[n[2]] = 1 }
     END { for (s in sizes) printf "n=%-5s tapir %7.1f GFLOP/s  torch %7.1f GFLOP/s  ratio %.2f\n",
             s, best["tapir " s], best["torch " s], best["tapir " s] / best["torch " s] }' "$out" | sort -t= -k2 -n
rm -f "$out"
