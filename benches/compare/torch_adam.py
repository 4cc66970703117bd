"""PyTorch's Adam step over 10 million float32 parameters, best of 200, for
the given implementation ('fused' or 'foreach'); run by
benches/compare/compare.py (`--only adam`), needs torch, never run by CI."""
import sys
import time

import torch

impl = sys.argv[1] if len(sys.argv) > 1 else "fused"
torch.manual_seed(0)
p = torch.randn(10_000_000, requires_grad=True)
p.grad = torch.randn(10_000_000)
opt = torch.optim.Adam([p], lr=1e-3, **{impl: True})
opt.step()
best = float("inf")
for _ in range(200):
    t = time.perf_counter()
    opt.step()
    best = min(best, time.perf_counter() - t)
print(f"torch_{impl} adam_10M ms={best * 1e3:.3f}")
