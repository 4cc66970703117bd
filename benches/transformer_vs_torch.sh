#!/usr/bin/env bash
# Side-by-side whole training step of the tiny transformer of
# examples/transformer_step.rs (forward, backward, AdamW) in Tapir and
# PyTorch eager (benches/torch_transformer_step.py), alternately in one
# run, batch 16, LAYERS blocks (default 1); prints the best median of each
# and the ratio.
# Usage: PYTHON=/path/to/venv/bin/python benches/transformer_vs_torch.sh [rounds] [layers]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${1:-3}
LAYERS=${2:-1}
cargo build --release --example transformer_step -q
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
  target/release/examples/transformer_step 16 "$LAYERS" >>"$out"
  "$PYTHON" benches/torch_transformer_step.py 16 "$LAYERS" >>"$out"
done
awk -v layers="$LAYERS" '{ split($3, v, "="); k = $1; if (!(k in best) || v[2] < best[k]) best[k] = v[2] }
     END { printf "transformer batch 16, %d block(s): tapir %.2f ms  torch %.2f ms  tapir/torch %.2f\n",
             layers, best["tapir"], best["torch"], best["tapir"] / best["torch"] }' "$out"
rm -f "$out"
