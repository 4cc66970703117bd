"""PyTorch eager: one training step (forward, backward, AdamW) of the tiny
decoder-only transformer of examples/transformer_step.rs: token and
position embeddings (vocab 96, 64 positions, d_model 128), LAYERS
pre-norm blocks (4 heads, causal attention, MLP 512 with exact GELU, no
dropout), a final LayerNorm, a linear head to 96 logits, cross-entropy
over all B*T positions; batch 16, sequence 64. Median of 21 steps after
3 warm-ups, 2 threads. Arguments: [batch] [layers] (default 16 1). Run
by benches/compare/compare.py (`--only transformer`); needs torch, never run by CI."""
import os
import sys
import time

import torch

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 16
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
T, D, H, F, V = 64, 128, 4, 512, 96
torch.manual_seed(0)
nn = torch.nn


class Lm(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(V, D)
        self.pos = nn.Embedding(T, D)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, V)
        self.register_buffer("mask", torch.triu(torch.full((T, T), float("-inf")), 1))

    def forward(self, ids):
        h = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            h = b(h, src_mask=self.mask, is_causal=True)
        return self.head(self.norm(h))


model = Lm()
ids = torch.randint(0, V, (batch, T))
targets = torch.randint(0, V, (batch, T))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
times = []
for step in range(24):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    logits = model(ids)
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    loss.backward()
    opt.step()
    if step >= 3:
        times.append(time.perf_counter() - t)
times.sort()
print(f"torch transformer_step_b{batch}_l{layers} ms={times[len(times) // 2] * 1e3:.3f}")
