//! Tape overhead: a chain of 1,000 elementwise ops on a 16-element tensor,
//! recorded and differentiated. Goal (autograd issue): at most 0.3 µs per op
//! for forward + backward. Side by side with PyTorch: benches/compare/compare.py (`--only tape`).

use criterion::{criterion_group, criterion_main, Criterion};
use tapir::prelude::*;

use tapir_testutil::tape_chain;

fn bench(cr: &mut Criterion) {
    let mut rng = Rng::seed(0);
    let x = Parameter::new("x", Tensor::<f32>::randn([16], &mut rng));
    let c = Tensor::<f32>::uniform([16], 0.9, 1.1, &mut rng);
    cr.bench_function("chain_1000_ops_16_elems_fwd_bwd", |b| {
        b.iter(|| tape_chain::chain(&x, &c))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
