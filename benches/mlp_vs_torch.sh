#!/usr/bin/env bash
# Side-by-side whole training step of an MLP 784-512-512-10 (forward,
# backward, Adam) in Tapir and PyTorch eager, alternately in one run, for
# batch 128 and 16; prints the best median of each and the ratio.
# Usage: PYTHON=/path/to/venv/bin/python benches/mlp_vs_torch.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-3}
cargo build --release --example mlp_step -q
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  for b in 128 16; do
    target/release/examples/mlp_step "$b" >>"$out"
    "$PYTHON" benches/torch_mlp_step.py "$b" >>"$out"
  done
done
awk '{ split($3, v, "="); k = $1 " " $2; if (!(k in best) || v[2] < best[k]) best[k] = v[2] }
     END {
           printf "batch 128: tapir %.2f ms  torch %.2f ms  tapir/torch %.2f\n",
             best["tapir mlp_step_b128"], best["torch mlp_step_b128"], best["tapir mlp_step_b128"] / best["torch mlp_step_b128"];
           printf "batch 16:  tapir %.2f ms  torch %.2f ms  tapir/torch %.2f\n",
             best["tapir mlp_step_b16"], best["torch mlp_step_b16"], best["tapir mlp_step_b16"] / best["torch mlp_step_b16"] }' "$out"
rm -f "$out"
