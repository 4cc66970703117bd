//! The four whole training steps of the speed goals (forward on a new
//! tape, gradient, optimizer update), as in examples/common/steps.rs: MLP
//! 784-512-512-10 at batch 128 and 16, the LeNet-like CNN at batch 64, the
//! tiny transformer (1 block, batch 16, sequence 64). The PyTorch side of
//! each is in benches/compare/ (`compare.py`); ratios and history are in
//! docs/performance.md.

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../examples/common/steps.rs"]
mod steps;

fn training_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("training step");
    group.sample_size(20);
    for batch in [128, 16] {
        let mut s = steps::Mlp::new(batch).expect("MLP builds");
        group.bench_function(format!("mlp 784-512-512-10 b{batch}"), |b| {
            b.iter(|| s.step().expect("step runs"))
        });
    }
    let mut s = steps::Lenet::new(64).expect("LeNet builds");
    group.bench_function("lenet b64", |b| b.iter(|| s.step().expect("step runs")));
    let mut s = steps::TinyTransformer::new(16, 1).expect("transformer builds");
    group.bench_function("transformer 1 block b16 t64", |b| {
        b.iter(|| s.step().expect("step runs"))
    });
    group.finish();
}

criterion_group!(benches, training_steps);
criterion_main!(benches);
