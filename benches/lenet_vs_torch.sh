#!/usr/bin/env bash
# Side-by-side whole training step of the LeNet-like CNN of
# examples/lenet_step.rs (forward, backward, Adam) in Tapir and PyTorch
# eager (benches/torch_lenet_step.py), alternately in one run, batch 64;
# prints the best median of each and the ratio.
# Usage: PYTHON=/path/to/venv/bin/python benches/lenet_vs_torch.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-3}
cargo build --release --example lenet_step -q
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  target/release/examples/lenet_step 64 >>"$out"
  "$PYTHON" benches/torch_lenet_step.py 64 >>"$out"
done
awk '{ split($3, v, "="); k = $1; if (!(k in best) || v[2] < best[k]) best[k] = v[2] }
     END { printf "lenet batch 64: tapir %.2f ms  torch %.2f ms  tapir/torch %.2f\n",
             best["tapir"], best["torch"], best["tapir"] / best["torch"] }' "$out"
rm -f "$out"
