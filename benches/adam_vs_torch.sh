#!/usr/bin/env bash
# Side-by-side Adam step over 10M f32 parameters: Tapir against PyTorch's
# fused and foreach Adam, alternately in one run; best of each and ratios.
# Usage: PYTHON=/path/to/venv/bin/python benches/adam_vs_torch.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-3}
cargo build --release --example adam_step -q
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  target/release/examples/adam_step >>"$out"
  "$PYTHON" benches/torch_adam.py fused >>"$out"
  "$PYTHON" benches/torch_adam.py foreach >>"$out"
done
awk '{ split($3, v, "="); if (!($1 in best) || v[2] < best[$1]) best[$1] = v[2] }
     END { printf "tapir %.2f ms  torch fused %.2f ms  torch foreach %.2f ms  tapir/fused %.2f\n",
           best["tapir"], best["torch_fused"], best["torch_foreach"], best["tapir"] / best["torch_fused"] }' "$out"
rm -f "$out"
