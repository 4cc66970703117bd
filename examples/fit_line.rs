//! Fits a two-layer tanh network to noisy sin(3x) with plain
//! gradient descent, θ ← θ − α∇L (the first update rule of the article Tapir
//! grew from), with gradients from the tape.
//!
//! Run: `cargo run --release --example fit_line`

use tapir::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::seed(0);
    let n = 256;
    // y = sin(3x) + noise on [-1, 1].
    let x: Tensor = Tensor::uniform([n, 1], -1.0, 1.0, &mut rng);
    let noise: Tensor = Tensor::normal([n, 1], 0.0, 0.05, &mut rng);
    let y = x.mul_scalar(3.0).sin().add(&noise)?;

    let w1 = Parameter::new("w1", Tensor::randn([1, 32], &mut rng));
    let b1 = Parameter::new("b1", Tensor::zeros([32]));
    let w2 = Parameter::new("w2", Tensor::randn([32, 1], &mut rng).mul_scalar(0.1));
    let b2 = Parameter::new("b2", Tensor::zeros([1]));
    let params = [&w1, &b1, &w2, &b2];

    let mut opt = Sgd::new(0.1).build()?; // θ ← θ − α∇L
    let mut first = None;
    let mut last = 0.0;
    for step in 0..=2000 {
        let tape = Tape::new();
        let h = tape.constant(x.clone()).matmul(&tape.watch(&w1))? + tape.watch(&b1);
        let pred = h.tanh().matmul(&tape.watch(&w2))? + tape.watch(&b2);
        let loss = pred.mse(&tape.constant(y.clone()))?;
        let grads = tape.gradient(&loss, params)?;
        opt.apply_gradients(&grads)?;
        last = loss.value().item()?;
        first.get_or_insert(last);
        if step % 400 == 0 {
            println!("step {step:4}  mse {last:.5}");
        }
    }
    let first = first.unwrap_or(last);
    println!("two-layer network: mse {first:.4} -> {last:.4} (noise variance 0.0025)");
    assert!(last < 0.02, "the network did not fit: mse {last}");
    Ok(())
}
