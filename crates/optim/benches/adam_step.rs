//! One Adam step over 10 million f32 parameters (state and parameters
//! updated in place, one fused pass, parallel chunks). Side by side with
//! PyTorch's fused Adam: benches/compare/compare.py (`--only adam`).

use criterion::{criterion_group, criterion_main, Criterion};
use tapir_autograd::{Gradients, Parameter};
use tapir_optim::Adam;
use tapir_tensor::{Rng, Tensor};

fn bench(c: &mut Criterion) {
    let n = 10_000_000;
    let mut rng = Rng::seed(0);
    let p = Parameter::new("p", Tensor::<f32>::randn([n], &mut rng));
    let g = Gradients::from_pairs(vec![(p.clone(), Some(Tensor::randn([n], &mut rng)))]);
    let mut opt = Adam::new(1e-3).build::<f32>().expect("valid lr");
    opt.apply_gradients(&g).expect("first step allocates state");
    let mut group = c.benchmark_group("adam");
    group.sample_size(20);
    group.bench_function("step_10M_f32", |b| {
        b.iter(|| opt.apply_gradients(&g).expect("step"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
