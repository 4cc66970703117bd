//! The reductions that training steps run, at training shapes: whole-tensor
//! sums, rows (`[B, D]` over D), bias gradients (`[B, D]` over B, NCHW over
//! N, H, W), variance, softmax and logsumexp. Used to check that the
//! pairwise summation (crates/tensor/src/sum.rs) costs no speed; the
//! before/after numbers are in docs/performance.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapir::prelude::*;

fn reductions(c: &mut Criterion) {
    let mut group = c.benchmark_group("reduce");
    let mut rng = Rng::seed(0);
    let flat: Tensor<f32> = Tensor::randn([10_000_000], &mut rng);
    let small: Tensor<f32> = Tensor::randn([100_000], &mut rng);
    let rows: Tensor<f32> = Tensor::randn([4096, 1024], &mut rng);
    let nchw: Tensor<f32> = Tensor::randn([64, 32, 24, 24], &mut rng);
    group.sample_size(20);

    group.throughput(Throughput::Elements(flat.len() as u64));
    group.bench_function("sum 1e7", |b| b.iter(|| flat.sum()));
    group.throughput(Throughput::Elements(small.len() as u64));
    group.bench_function("sum 1e5", |b| b.iter(|| small.sum()));
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("sum [4096,1024] over 1", |b| {
        b.iter(|| rows.sum_axes(&[1], false).unwrap())
    });
    group.bench_function("sum [4096,1024] over 0", |b| {
        b.iter(|| rows.sum_axes(&[0], false).unwrap())
    });
    group.bench_function("var [4096,1024] over 1", |b| {
        b.iter(|| rows.var_axes(&[1], false).unwrap())
    });
    group.bench_function("softmax [4096,1024]", |b| {
        b.iter(|| rows.softmax(-1).unwrap())
    });
    group.bench_function("logsumexp [4096,1024] over 1", |b| {
        b.iter(|| rows.logsumexp_axes(&[1], false).unwrap())
    });
    group.throughput(Throughput::Elements(nchw.len() as u64));
    group.bench_function("sum_to [64,32,24,24] -> [1,32,1,1]", |b| {
        b.iter(|| nchw.sum_to(&[1, 32, 1, 1]).unwrap())
    });
    group.bench_function("var [64,32,24,24] over 0,2,3", |b| {
        b.iter(|| nchw.var_axes(&[0, 2, 3], false).unwrap())
    });
    group.finish();
}

criterion_group!(benches, reductions);
criterion_main!(benches);
