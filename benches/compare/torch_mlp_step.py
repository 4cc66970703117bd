"""PyTorch eager: one training step (forward, backward, Adam) of an MLP
784-512-512-10 with ReLU and cross-entropy, median of 31 steps after 5
warm-ups, batch from argv (default 128), 2 threads; run by
benches/compare/compare.py (`--only mlp_b128,mlp_b16`), needs torch, never run by CI."""
import os
import sys
import time

import torch

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 128
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(784, 512), torch.nn.ReLU(),
    torch.nn.Linear(512, 512), torch.nn.ReLU(),
    torch.nn.Linear(512, 10),
)
x = torch.randn(batch, 784)
labels = torch.arange(batch) % 10
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
times = []
for step in range(36):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    opt.step()
    if step >= 5:
        times.append(time.perf_counter() - t)
times.sort()
print(f"torch mlp_step_b{batch} ms={times[len(times) // 2] * 1e3:.3f}")
