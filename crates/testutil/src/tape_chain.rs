//! The tape-overhead workload shared by `benches/tape_overhead.rs`
//! (criterion) and `examples/tape_chain.rs` (the side-by-side run).

use tapir_autograd::{Parameter, Tape};
use tapir_tensor::Tensor;

/// Records 1,000 elementwise ops (500 × (mul, tanh)) on `x` and runs the
/// backward pass; returns the gradient.
pub fn chain(x: &Parameter<f32>, c: &Tensor<f32>) -> Tensor<f32> {
    let tape = Tape::new();
    let c = tape.constant(c.clone());
    let mut v = tape.watch(x);
    for _ in 0..500 {
        v = v.mul(&c).expect("same shape").tanh();
    }
    let loss = v.sum();
    tape.gradient(&loss, [x]).expect("scalar target")[x].clone()
}
