//! Prints the tape's cost per op: a chain of 1,000 elementwise ops on a
//! 16-element tensor, forward and backward, best of many runs. Used by
//! benches/compare/compare.py (`--only tape`) next to the same chain in PyTorch.

use std::time::Instant;

use tapir::prelude::*;

use tapir_testutil::tape_chain;

fn main() {
    let mut rng = Rng::seed(0);
    let x = Parameter::new("x", Tensor::<f32>::randn([16], &mut rng));
    let c = Tensor::<f32>::uniform([16], 0.9, 1.1, &mut rng);
    let mut best = f64::INFINITY;
    for _ in 0..300 {
        let t = Instant::now();
        std::hint::black_box(tape_chain::chain(&x, &c));
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("tapir tape_chain us_per_op={:.3}", best * 1e6 / 1000.0);
}
