//! Fits a line y = w·x + b to noisy generated data with plain gradient
//! descent, θ ← θ − α∇L, the first update rule of the article Tapir grew
//! from. The gradients are written out by hand with tensor ops; once the
//! autograd crate lands, `tape.gradient()` computes them instead.
//!
//! Run: `cargo run --release --example fit_line`

use tapir::prelude::*;
use tapir::tensor::Error;

fn main() -> Result<(), Error> {
    let mut rng = Rng::seed(0);
    let n = 1000;
    let (true_w, true_b) = (3.0f32, -2.0f32);
    let x: Tensor = Tensor::uniform([n, 1], -1.0, 1.0, &mut rng);
    let noise: Tensor = Tensor::normal([n, 1], 0.0, 0.1, &mut rng);
    let y = (&x * true_w + true_b).add(&noise)?;

    let (mut w, mut b) = (0.0f32, 0.0f32);
    let lr = 0.5f32;
    for step in 0..=200 {
        // L = mean((w·x + b − y)²); dL/dw = 2·mean(r·x), dL/db = 2·mean(r).
        let r = (&x * w + b).sub(&y)?;
        let loss = r.square().mean_all().item()?;
        let gw = 2.0 * r.mul(&x)?.mean_all().item()?;
        let gb = 2.0 * r.mean_all().item()?;
        w -= lr * gw;
        b -= lr * gb;
        if step % 40 == 0 {
            println!("step {step:3}  loss {loss:.5}  w {w:.4}  b {b:.4}");
        }
    }
    println!("fitted w = {w:.3} (true {true_w}), b = {b:.3} (true {true_b})");
    assert!((w - true_w).abs() < 0.05 && (b - true_b).abs() < 0.05);
    Ok(())
}
