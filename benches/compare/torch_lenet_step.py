"""PyTorch eager: one training step (forward, backward, Adam) of the
LeNet-like CNN of examples/lenet_step.rs (conv 5x5 1->32, relu, maxpool 2,
conv 5x5 32->64, relu, maxpool 2, linear 1024->128, relu, linear 128->10,
cross-entropy), median of 21 steps after 3 warm-ups, batch from argv
(default 64), 2 threads; run by benches/compare/compare.py (`--only lenet`), needs torch,
never run by CI."""
import os
import sys
import time

import torch

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 64
torch.manual_seed(0)
nn = torch.nn
model = nn.Sequential(
    nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, 10),
)
x = torch.randn(batch, 1, 28, 28)
labels = torch.arange(batch) % 10
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
times = []
for step in range(24):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    opt.step()
    if step >= 3:
        times.append(time.perf_counter() - t)
times.sort()
print(f"torch lenet_step_b{batch} ms={times[len(times) // 2] * 1e3:.3f}")
