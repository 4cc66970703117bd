//! Activation checkpointing of a stack of 8 transformer blocks
//! (`checkpointed`): the same loss and gradients as the plain run (bit for
//! bit), and the
//! tape holds a fraction of the values.

use tapir_autograd::Tape;
use tapir_nn::{checkpointed, Forward, Module, TransformerBlock};
use tapir_tensor::{Rng, Tensor};

#[test]
fn eight_checkpointed_blocks_give_the_plain_gradients_with_less_held() {
    let mut rng = Rng::seed(0);
    let blocks: Vec<TransformerBlock<f32>> = (0..8)
        .map(|_| TransformerBlock::new(32, 4, 64, &mut rng).causal())
        .collect();
    let x0 = Tensor::randn([2, 16, 32], &mut Rng::seed(1));
    let params: Vec<_> = blocks.iter().flat_map(|b| b.parameters()).collect();

    let plain = Tape::new();
    let mut h = plain.constant(x0.clone());
    for b in &blocks {
        h = b.forward(&h).unwrap();
    }
    let loss = h.square().mean();
    let held_plain = plain.value_bytes();
    let gp = plain.gradient(&loss, &params).unwrap();

    let tape = Tape::new();
    let mut h = tape.constant(x0);
    for b in &blocks {
        h = checkpointed(b, &h).unwrap();
    }
    let lc = h.square().mean();
    let held = tape.value_bytes();
    let gc = tape.gradient(&lc, &params).unwrap();

    assert_eq!(loss.value().to_vec(), lc.value().to_vec());
    // Each parameter is used once per block: the same ops in the same
    // order, so the gradients are bit-identical.
    for p in &params {
        assert_eq!(gp[p].to_vec(), gc[p].to_vec(), "{}", p.name());
    }
    // Weights (~8 × 12.6k values) and the block boundaries stay; every
    // intermediate (attention, the MLP's 64-wide activations) goes.
    assert!(held * 3 < held_plain, "held {held} vs {held_plain} bytes");
}
