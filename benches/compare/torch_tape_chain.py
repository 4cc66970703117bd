"""PyTorch eager autograd cost per op for the chain of examples/tape_chain.rs:
500 x (mul, tanh) on a 16-element float32 tensor, then backward; best of 300.
Run by benches/compare/compare.py (`--only tape`); needs torch, never run by CI."""
import time

import torch

torch.manual_seed(0)
x = torch.randn(16, requires_grad=True)
c = torch.empty(16).uniform_(0.9, 1.1)
best = float("inf")
for _ in range(300):
    t = time.perf_counter()
    v = x
    for _ in range(500):
        v = torch.tanh(v * c)
    (g,) = torch.autograd.grad(v.sum(), [x])
    best = min(best, time.perf_counter() - t)
print(f"torch tape_chain us_per_op={best * 1e6 / 1000:.3f}")
