//! Peak memory of a training step of 8 transformer blocks, with and without
//! activation checkpointing.
//!
//! `cargo run --release --example checkpoint_memory -- [--checkpoint]`
//! runs one forward and backward pass of 8 causal pre-norm blocks
//! (d_model 256, 4 heads, MLP 1024, batch 8, 256 positions, f32) and
//! prints what the tape holds after the forward pass, the peak resident
//! memory of the process (VmHWM, Linux) and the time. Run it once in each
//! mode: each run is its own process, so the peaks do not mix.

use std::time::Instant;

use tapir::nn::checkpointed;
use tapir::prelude::*;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ckpt = std::env::args().any(|a| a == "--checkpoint");
    let mut rng = Rng::seed(0);
    let blocks: Vec<TransformerBlock<f32>> = (0..8)
        .map(|_| TransformerBlock::new(256, 4, 1024, &mut rng).causal())
        .collect();
    let params: Vec<Parameter<f32>> = blocks.iter().flat_map(|b| b.parameters()).collect();
    let x = Tensor::randn([8, 256, 256], &mut Rng::seed(1));
    let start = Instant::now();
    let tape = Tape::new();
    let mut h = tape.constant(x);
    for b in &blocks {
        h = if ckpt {
            checkpointed(b, &h)?
        } else {
            b.forward(&h)?
        };
    }
    let loss = h.square().mean();
    let held = tape.value_bytes() as f64 / (1 << 20) as f64;
    let grads = tape.gradient(&loss, &params)?;
    let secs = start.elapsed().as_secs_f64();
    let norm = grads.global_norm();
    println!(
        "{}: tape holds {held:.0} MiB after the forward pass, peak RSS {} MiB, \
         forward + backward {secs:.2} s (loss {:.6}, gradient norm {norm:.6})",
        if ckpt { "checkpointed" } else { "plain" },
        peak_rss_mib().map_or("?".into(), |m| format!("{m:.0}")),
        loss.value().item()?,
    );
    Ok(())
}
