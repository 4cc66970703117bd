//! Prints the median time of one whole training step (forward, backward,
//! AdamW) of a tiny decoder-only transformer built from tapir-nn layers:
//! token and position embeddings (vocab 96, 64 positions, d_model 128),
//! `LAYERS` pre-norm [`TransformerBlock`]s (4 heads, causal attention, MLP
//! 512 with exact GELU), a final LayerNorm and a linear head to 96 logits,
//! cross-entropy over all B·T positions; batch 16, sequence 64. Median of
//! 21 steps after 3 warm-ups. Arguments: `[batch] [layers]` (default 16
//! 1). Used by benches/compare/compare.py (`--only transformer`) next to the same step in
//! PyTorch (benches/compare/torch_transformer_step.py).

use std::time::Instant;

use tapir::prelude::*;

const T: usize = 64;
const D: usize = 128;
const HEADS: usize = 4;
const FF: usize = 512;
const VOCAB: usize = 96;

#[derive(Module)]
struct Lm {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
    head: Linear,
}

impl Lm {
    fn new(layers: usize, rng: &mut Rng) -> Self {
        Lm {
            tok: Embedding::new(VOCAB, D, rng),
            pos: Embedding::new(T, D, rng),
            blocks: (0..layers)
                .map(|_| TransformerBlock::new(D, HEADS, FF, rng).causal())
                .collect(),
            norm: LayerNorm::new(&[D]),
            head: Linear::new(D, VOCAB, rng),
        }
    }

    fn forward<'t>(
        &self,
        tape: &'t Tape,
        ids: &[usize],
        batch: usize,
    ) -> tapir::autograd::Result<Var<'t>> {
        let positions: Vec<usize> = (0..T).collect();
        let mut h = self
            .tok
            .forward(Some(tape), ids, &[batch, T])?
            .add(&self.pos.forward(Some(tape), &positions, &[T])?)?;
        for b in &self.blocks {
            h = b.forward(&h)?;
        }
        self.head.forward(&self.norm.forward(&h)?)
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let layers: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let mut rng = Rng::seed(0);
    let model = Lm::new(layers, &mut rng);
    let ids: Vec<usize> = (0..batch * T)
        .map(|_| (rng.next_u64() % VOCAB as u64) as usize)
        .collect();
    let targets: Vec<usize> = (0..batch * T)
        .map(|_| (rng.next_u64() % VOCAB as u64) as usize)
        .collect();
    let mut opt = AdamW::new(1e-3).build::<f32>()?;
    let mut times = Vec::new();
    for step in 0..24 {
        let t = Instant::now();
        let tape = Tape::new();
        let logits = model.forward(&tape, &ids, batch)?;
        let loss = logits
            .reshape([-1, VOCAB as isize])?
            .cross_entropy(&targets)?;
        let grads = tape.gradient(&loss, model.parameters())?;
        opt.apply_gradients(&grads)?;
        if step >= 3 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "tapir transformer_step_b{batch}_l{layers} ms={:.3}",
        times[times.len() / 2] * 1e3
    );
    Ok(())
}
