//! Prints the median time of one whole training step (forward, backward,
//! AdamW) of a tiny decoder-only transformer built from tapir-nn layers:
//! token and position embeddings (vocab 96, 64 positions, d_model 128),
//! `LAYERS` pre-norm [`TransformerBlock`]s (4 heads, causal attention, MLP
//! 512 with exact GELU), a final LayerNorm and a linear head to 96 logits,
//! cross-entropy over all B·T positions; batch 16, sequence 64. Median of
//! 21 steps after 3 warm-ups. Arguments: `[batch] [layers]` (default 16
//! 1). Used by benches/compare/compare.py (`--only transformer`) next to the same step in
//! PyTorch (benches/compare/torch_transformer_step.py).

#[path = "common/steps.rs"]
mod steps;

fn main() -> steps::Res<()> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(16);
    let layers: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let mut s = steps::TinyTransformer::new(batch, layers)?;
    let ms = steps::median_ms(3, 21, || s.step())?;
    println!("tapir transformer_step_b{batch}_l{layers} ms={ms:.3}");
    Ok(())
}
