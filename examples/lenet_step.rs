//! Prints the median time of one whole training step (forward, backward,
//! Adam) of a LeNet-like CNN on 1×28×28 inputs, batch `BATCH` (argument,
//! default 64): conv 5×5 1→32, ReLU, max-pool 2, conv 5×5 32→64, ReLU,
//! max-pool 2, linear 1024→128, ReLU, linear 128→10, cross-entropy; median
//! of 21 steps after 3 warm-ups. Used by benches/compare/compare.py (`--only lenet`) next to
//! the same step in PyTorch (benches/compare/torch_lenet_step.py).

#[path = "common/steps.rs"]
mod steps;

fn main() -> steps::Res<()> {
    let batch: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64);
    let mut s = steps::Lenet::new(batch)?;
    let ms = steps::median_ms(3, 21, || s.step())?;
    println!("tapir lenet_step_b{batch} ms={ms:.3}");
    Ok(())
}
