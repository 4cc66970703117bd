//! Prints the median time of one whole training step (forward, backward,
//! Adam) of an MLP 784-512-512-10 with ReLU and cross-entropy, batch
//! `BATCH` (argument, default 128), median of 31 steps after 5 warm-ups.
//! Used by benches/compare/compare.py (`--only mlp_b128,mlp_b16`) next to the same step in PyTorch.

use std::time::Instant;

use tapir::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batch: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(128);
    let mut rng = Rng::seed(0);
    let dims = [784, 512, 512, 10];
    let mut params = Vec::new();
    for (i, w) in dims.windows(2).enumerate() {
        let scale = (1.0 / w[0] as f32).sqrt();
        let wt = Tensor::<f32>::uniform([w[0], w[1]], -scale, scale, &mut rng);
        params.push(Parameter::new(format!("l{i}.weight"), wt));
        params.push(Parameter::new(format!("l{i}.bias"), Tensor::zeros([w[1]])));
    }
    let x = Tensor::<f32>::randn([batch, 784], &mut rng);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let mut opt = Adam::new(1e-3).build::<f32>()?;
    let mut times = Vec::new();
    for step in 0..36 {
        let t = Instant::now();
        let tape = Tape::new();
        let mut h = tape.constant(x.clone());
        for (k, pair) in params.chunks(2).enumerate() {
            h = h
                .matmul(&tape.watch(&pair[0]))?
                .add(&tape.watch(&pair[1]))?;
            if k < 2 {
                h = h.relu();
            }
        }
        let loss = h.cross_entropy(&labels)?;
        let grads = tape.gradient(&loss, &params)?;
        opt.apply_gradients(&grads)?;
        if step >= 5 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "tapir mlp_step_b{batch} ms={:.3}",
        times[times.len() / 2] * 1e3
    );
    Ok(())
}
