//! The kernels behind the training steps, at the shapes the steps use:
//! conv2d forward and both backward passes (LeNet's two convolutions and a
//! small-ResNet 3×3 block, batch 32 of 64 channels at 16×16), max pooling
//! forward and backward, softmax, layer norm forward + backward, and
//! attention forward + backward (the tiled kernel at T = 256 and the
//! packed self-attention at the tiny transformer's T = 64). Ratios against
//! PyTorch for whole steps: benches/compare/compare.py.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tapir::prelude::*;

fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(20);
    let mut rng = Rng::seed(0);
    let pad1 = Conv2dParams {
        padding: [1, 1],
        ..Default::default()
    };
    // (name, input, weight, params)
    let cases = [
        (
            "lenet conv1 64x1x28x28 k5 ->32",
            [64, 1, 28, 28],
            [32, 1, 5, 5],
            Conv2dParams::default(),
        ),
        (
            "lenet conv2 64x32x12x12 k5 ->64",
            [64, 32, 12, 12],
            [64, 32, 5, 5],
            Conv2dParams::default(),
        ),
        (
            "resnet 32x64x16x16 k3 ->64",
            [32, 64, 16, 16],
            [64, 64, 3, 3],
            pad1,
        ),
    ];
    for (name, xs, ws, p) in cases {
        let x = Tensor::<f32>::randn(xs, &mut rng);
        let w = Tensor::<f32>::randn(ws, &mut rng);
        let y = x.conv2d(&w, None, p).expect("conv2d");
        let g = Tensor::<f32>::randn(y.shape(), &mut rng);
        group.bench_function(format!("{name} forward"), |b| {
            b.iter(|| x.conv2d(&w, None, p).expect("conv2d"))
        });
        group.bench_function(format!("{name} input grad"), |b| {
            b.iter(|| g.conv2d_input_grad(&w, &xs, p).expect("input grad"))
        });
        group.bench_function(format!("{name} weight grad"), |b| {
            b.iter(|| g.conv2d_weight_grad(&x, &ws, p).expect("weight grad"))
        });
    }
    group.finish();
}

fn pooling(c: &mut Criterion) {
    let mut group = c.benchmark_group("max_pool2d");
    group.sample_size(20);
    let mut rng = Rng::seed(1);
    let x = Tensor::<f32>::randn([64, 32, 24, 24], &mut rng);
    let p = Pool2dParams::new([2, 2]);
    let (y, idx) = x.max_pool2d_with_indices(p).expect("pool");
    let g = Tensor::<f32>::randn(y.shape(), &mut rng);
    group.bench_function("64x32x24x24 k2 forward", |b| {
        b.iter(|| x.max_pool2d_with_indices(p).expect("pool"))
    });
    group.bench_function("64x32x24x24 k2 backward", |b| {
        b.iter(|| {
            g.max_pool2d_backward(&idx, x.shape())
                .expect("pool backward")
        })
    });
    group.finish();
}

fn rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("rows");
    group.sample_size(20);
    let mut rng = Rng::seed(2);
    // The transformer's B·T = 1024 rows of 128 features; its scores.
    let x = Tensor::<f32>::randn([1024, 128], &mut rng);
    let scores = Tensor::<f32>::randn([16, 4, 64, 64], &mut rng);
    group.bench_function("softmax [16,4,64,64] last axis", |b| {
        b.iter(|| scores.softmax(-1).expect("softmax"))
    });
    let w = Parameter::new("w", Tensor::<f32>::ones([128]));
    let bias = Parameter::new("b", Tensor::<f32>::zeros([128]));
    group.bench_function("layer_norm [1024,128] forward + backward", |b| {
        b.iter(|| {
            let tape = Tape::new();
            let xv = tape.var(x.clone());
            let y = xv
                .layer_norm(1, Some(&tape.watch(&w)), Some(&tape.watch(&bias)), 1e-5)
                .expect("layer norm");
            tape.gradient(&y.sum(), [&w, &bias]).expect("gradient")
        })
    });
    // The transformer's MLP activation: [1024, 512], exact GELU.
    let h = Tensor::<f32>::randn([1024, 512], &mut rng);
    let gh = Tensor::<f32>::randn([1024, 512], &mut rng);
    group.bench_function("gelu exact [1024,512] forward", |b| {
        b.iter(|| h.gelu(GeluApprox::None))
    });
    group.bench_function("gelu exact [1024,512] backward", |b| {
        // A fresh, unshared gradient each time, as in a backward pass
        // (the kernel then writes into its storage).
        b.iter_batched(
            || Tensor::from_vec(gh.to_vec(), [1024, 512]).expect("shape"),
            |g| h.gelu_backward(g, GeluApprox::None).expect("gelu backward"),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention fwd+bwd");
    group.sample_size(20);
    let mut rng = Rng::seed(3);
    // Tiled kernel: 4 batches × 4 heads of 32, T = 256, causal.
    let (q, k, v) = (
        Tensor::<f32>::randn([4, 4, 256, 32], &mut rng),
        Tensor::<f32>::randn([4, 4, 256, 32], &mut rng),
        Tensor::<f32>::randn([4, 4, 256, 32], &mut rng),
    );
    group.bench_function("tiled [4,4,256,32] causal", |b| {
        b.iter(|| {
            let tape = Tape::new();
            let (qv, kv, vv) = (
                tape.var(q.clone()),
                tape.var(k.clone()),
                tape.var(v.clone()),
            );
            let y = qv
                .scaled_dot_product_attention(&kv, &vv, None, true, None)
                .expect("attention");
            tape.gradient_vars(&y.sum(), &[&qv, &kv, &vv], &Default::default())
                .expect("gradient")
        })
    });
    // Packed self-attention from the fused projection, the tiny
    // transformer's shape: [16, 64, 3·128], 4 heads, causal.
    let qkv = Tensor::<f32>::randn([16, 64, 384], &mut rng);
    group.bench_function("packed qkv [16,64,384] 4 heads causal", |b| {
        b.iter(|| {
            let tape = Tape::new();
            let xv = tape.var(qkv.clone());
            let y = xv.qkv_attention(4, None, true, None).expect("attention");
            tape.gradient_vars(&y.sum(), &[&xv], &Default::default())
                .expect("gradient")
        })
    });
    group.finish();
}

criterion_group!(benches, conv, pooling, rows, attention);
criterion_main!(benches);
