"""PyTorch's CPU sgemm GFLOP/s, measured the same way as examples/sgemm_gflops.rs
(best of several runs after a warm-up), for the sizes given on the command line.
Run by benches/compare/compare.py (`--only sgemm`); needs a Python with torch, never run by CI."""
import sys
import time

import torch

torch.manual_seed(0)
for n in [int(a) for a in sys.argv[1:]] or [256, 1024, 2048]:
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    flop = 2.0 * n**3
    reps = max(3, min(2000, int(0.5 * 150e9 / flop)))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    print(f"torch sgemm n={n} gflops={flop / best / 1e9:.1f} threads={torch.get_num_threads()}")
