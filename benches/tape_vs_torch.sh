#!/usr/bin/env bash
# Side-by-side tape overhead: Tapir's and PyTorch's cost per recorded op
# (forward + backward) for a chain of 1,000 elementwise ops on 16 elements,
# run alternately in one run; prints the best of each and the ratio.
# Usage: PYTHON=/path/to/venv/bin/python benches/tape_vs_torch.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-3}
cargo build --release --example tape_chain -q
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  target/release/examples/tape_chain >>"$out"
  "$PYTHON" benches/torch_tape_chain.py >>"$out"
done
awk '{ split($3, v, "="); if (!($1 in best) || v[2] < best[$1]) best[$1] = v[2] }
     END { printf "tapir %.3f us/op  torch %.3f us/op  torch/tapir %.1fx\n",
           best["tapir"], best["torch"], best["torch"] / best["tapir"] }' "$out"
rm -f "$out"
