//! Single-precision GEMM throughput of `Tensor::matmul` at 256, 1024 and 2048.
//!
//! Criterion reports "elements" per second; each element is one flop
//! (2·n³ per product), so the figure reads as GFLOP/s. For the side-by-side
//! comparison with PyTorch see `benches/compare/compare.py --only sgemm`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapir::prelude::*;

fn sgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    let mut rng = Rng::seed(0);
    for n in [256usize, 1024, 2048] {
        let a: Tensor<f32> = Tensor::randn([n, n], &mut rng);
        let b: Tensor<f32> = Tensor::randn([n, n], &mut rng);
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        if n >= 1024 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
            bench.iter(|| a.matmul(&b).expect("square matrices"))
        });
    }
    group.finish();
}

criterion_group!(benches, sgemm);
criterion_main!(benches);
