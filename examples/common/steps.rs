//! The four training steps of the speed goals (docs/performance.md), built
//! as a user would write them, each a whole step: forward on a new tape,
//! gradient, optimizer update. The `*_step` examples time them next to
//! PyTorch (benches/compare/compare.py) and `benches/training_steps.rs`
//! runs them under criterion. Inputs and initial weights are seeded, so
//! every run does the same work.

#![allow(dead_code)] // each user takes the steps it needs

use std::time::Instant;

use tapir::prelude::*;

pub type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The median of `n` timed calls of `step` after `warm` untimed ones, in
/// milliseconds.
pub fn median_ms(warm: usize, n: usize, mut step: impl FnMut() -> Res<()>) -> Res<f64> {
    for _ in 0..warm {
        step()?;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2] * 1e3)
}

fn uniform_param(name: &str, shape: &[usize], fan_in: usize, rng: &mut Rng) -> Parameter<f32> {
    let s = (1.0 / fan_in as f32).sqrt();
    Parameter::new(name, Tensor::uniform(shape, -s, s, rng))
}

/// MLP 784-512-512-10 with ReLU and cross-entropy, Adam, written with raw
/// `Var` ops: `x·W + b`, weights `[in, out]`.
pub struct Mlp {
    params: Vec<Parameter<f32>>,
    x: Tensor<f32>,
    labels: Vec<usize>,
    opt: Optimizer<f32>,
}

impl Mlp {
    pub fn new(batch: usize) -> Res<Self> {
        let mut rng = Rng::seed(0);
        let dims = [784, 512, 512, 10];
        let mut params = Vec::new();
        for (i, w) in dims.windows(2).enumerate() {
            let scale = (1.0 / w[0] as f32).sqrt();
            let wt = Tensor::<f32>::uniform([w[0], w[1]], -scale, scale, &mut rng);
            params.push(Parameter::new(format!("l{i}.weight"), wt));
            params.push(Parameter::new(format!("l{i}.bias"), Tensor::zeros([w[1]])));
        }
        Ok(Mlp {
            params,
            x: Tensor::<f32>::randn([batch, 784], &mut rng),
            labels: (0..batch).map(|i| i % 10).collect(),
            opt: Adam::new(1e-3).build::<f32>()?,
        })
    }

    pub fn step(&mut self) -> Res<()> {
        let tape = Tape::new();
        let mut h = tape.constant(self.x.clone());
        for (k, pair) in self.params.chunks(2).enumerate() {
            h = h
                .matmul(&tape.watch(&pair[0]))?
                .add(&tape.watch(&pair[1]))?;
            if k < 2 {
                h = h.relu();
            }
        }
        let loss = h.cross_entropy(&self.labels)?;
        let grads = tape.gradient(&loss, &self.params)?;
        self.opt.apply_gradients(&grads)?;
        Ok(())
    }
}

/// A LeNet-like CNN on 1×28×28 inputs: conv 5×5 1→32, ReLU, max-pool 2,
/// conv 5×5 32→64, ReLU, max-pool 2, linear 1024→128, ReLU, linear
/// 128→10, cross-entropy, Adam; raw `Var` ops.
pub struct Lenet {
    params: Vec<Parameter<f32>>,
    x: Tensor<f32>,
    labels: Vec<usize>,
    opt: Optimizer<f32>,
}

impl Lenet {
    pub fn new(batch: usize) -> Res<Self> {
        let mut rng = Rng::seed(0);
        let params = vec![
            uniform_param("conv1.weight", &[32, 1, 5, 5], 25, &mut rng),
            uniform_param("conv1.bias", &[32], 25, &mut rng),
            uniform_param("conv2.weight", &[64, 32, 5, 5], 800, &mut rng),
            uniform_param("conv2.bias", &[64], 800, &mut rng),
            uniform_param("fc1.weight", &[1024, 128], 1024, &mut rng),
            uniform_param("fc1.bias", &[128], 1024, &mut rng),
            uniform_param("fc2.weight", &[128, 10], 128, &mut rng),
            uniform_param("fc2.bias", &[10], 128, &mut rng),
        ];
        Ok(Lenet {
            params,
            x: Tensor::<f32>::randn([batch, 1, 28, 28], &mut rng),
            labels: (0..batch).map(|i| i % 10).collect(),
            opt: Adam::new(1e-3).build::<f32>()?,
        })
    }

    pub fn step(&mut self) -> Res<()> {
        let pool = Pool2dParams::new([2, 2]);
        let conv = Conv2dParams::default();
        let tape = Tape::new();
        let w: Vec<Var<f32>> = self.params.iter().map(|p| tape.watch(p)).collect();
        let h = tape.constant(self.x.clone());
        let h = h
            .conv2d(&w[0], Some(&w[1]), conv)?
            .relu()
            .max_pool2d(pool)?;
        let h = h
            .conv2d(&w[2], Some(&w[3]), conv)?
            .relu()
            .max_pool2d(pool)?;
        let h = h.reshape([self.x.shape()[0] as isize, -1])?;
        let h = h.matmul(&w[4])?.add(&w[5])?.relu();
        let logits = h.matmul(&w[6])?.add(&w[7])?;
        let loss = logits.cross_entropy(&self.labels)?;
        let grads = tape.gradient(&loss, &self.params)?;
        self.opt.apply_gradients(&grads)?;
        Ok(())
    }
}

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

/// A tiny decoder-only transformer from tapir-nn layers: token and
/// position embeddings (vocab 96, 64 positions, d_model 128), `layers`
/// pre-norm [`TransformerBlock`]s (4 heads, causal attention, MLP 512
/// with exact GELU), a final LayerNorm and a linear head, cross-entropy
/// over all B·64 positions, AdamW.
pub struct TinyTransformer {
    model: Lm,
    batch: usize,
    ids: Vec<usize>,
    targets: Vec<usize>,
    opt: Optimizer<f32>,
}

impl TinyTransformer {
    pub fn new(batch: usize, layers: usize) -> Res<Self> {
        let mut rng = Rng::seed(0);
        let model = Lm::new(layers, &mut rng);
        let mut draw = |n| -> Vec<usize> {
            (0..n)
                .map(|_| (rng.next_u64() % VOCAB as u64) as usize)
                .collect()
        };
        let ids = draw(batch * T);
        let targets = draw(batch * T);
        Ok(TinyTransformer {
            model,
            batch,
            ids,
            targets,
            opt: AdamW::new(1e-3).build::<f32>()?,
        })
    }

    pub fn step(&mut self) -> Res<()> {
        let tape = Tape::new();
        let logits = self.model.forward(&tape, &self.ids, self.batch)?;
        let loss = logits
            .reshape([-1, VOCAB as isize])?
            .cross_entropy(&self.targets)?;
        let grads = tape.gradient(&loss, self.model.parameters())?;
        self.opt.apply_gradients(&grads)?;
        Ok(())
    }
}
