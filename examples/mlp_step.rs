//! Prints the median time of one whole training step (forward, backward,
//! Adam) of an MLP 784-512-512-10 with ReLU and cross-entropy, batch
//! `BATCH` (argument, default 128), median of 31 steps after 5 warm-ups.
//! Used by benches/compare/compare.py (`--only mlp_b128,mlp_b16`) next to the same step in PyTorch.

#[path = "common/steps.rs"]
mod steps;

fn main() -> steps::Res<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(128);
    let mut s = steps::Mlp::new(batch)?;
    let ms = steps::median_ms(5, 31, || s.step())?;
    println!("tapir mlp_step_b{batch} ms={ms:.3}");
    Ok(())
}
