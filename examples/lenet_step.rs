//! Prints the median time of one whole training step (forward, backward,
//! Adam) of a LeNet-like CNN on 1×28×28 inputs, batch `BATCH` (argument,
//! default 64): conv 5×5 1→32, ReLU, max-pool 2, conv 5×5 32→64, ReLU,
//! max-pool 2, linear 1024→128, ReLU, linear 128→10, cross-entropy; median
//! of 21 steps after 3 warm-ups. Used by benches/compare/compare.py (`--only lenet`) next to
//! the same step in PyTorch (benches/compare/torch_lenet_step.py).

use std::time::Instant;

use tapir::prelude::*;

fn uniform_param(name: &str, shape: &[usize], fan_in: usize, rng: &mut Rng) -> Parameter<f32> {
    let s = (1.0 / fan_in as f32).sqrt();
    Parameter::new(name, Tensor::uniform(shape, -s, s, rng))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batch: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64);
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
    let x = Tensor::<f32>::randn([batch, 1, 28, 28], &mut rng);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let mut opt = Adam::new(1e-3).build::<f32>()?;
    let pool = Pool2dParams::new([2, 2]);
    let conv = Conv2dParams::default();
    let mut times = Vec::new();
    for step in 0..24 {
        let t = Instant::now();
        let tape = Tape::new();
        let w: Vec<Var<f32>> = params.iter().map(|p| tape.watch(p)).collect();
        let h = tape.constant(x.clone());
        let h = h
            .conv2d(&w[0], Some(&w[1]), conv)?
            .relu()
            .max_pool2d(pool)?;
        let h = h
            .conv2d(&w[2], Some(&w[3]), conv)?
            .relu()
            .max_pool2d(pool)?;
        let h = h.reshape([batch as isize, -1])?;
        let h = h.matmul(&w[4])?.add(&w[5])?.relu();
        let logits = h.matmul(&w[6])?.add(&w[7])?;
        let loss = logits.cross_entropy(&labels)?;
        let grads = tape.gradient(&loss, &params)?;
        opt.apply_gradients(&grads)?;
        if step >= 3 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "tapir lenet_step_b{batch} ms={:.3}",
        times[times.len() / 2] * 1e3
    );
    Ok(())
}
