//! Prints Tapir's sgemm GFLOP/s (best of several runs) for each size given on
//! the command line (default 256 1024 2048). Used by
//! `benches/compare/compare.py --only sgemm` to compare with PyTorch in one run.

use std::time::Instant;

use tapir::prelude::*;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![256, 1024, 2048]
    } else {
        sizes
    };
    let mut rng = Rng::seed(0);
    for n in sizes {
        let a: Tensor<f32> = Tensor::randn([n, n], &mut rng);
        let b: Tensor<f32> = Tensor::randn([n, n], &mut rng);
        let flop = 2.0 * (n as f64).powi(3);
        // About 0.5 s of work per size, at least 3 runs, after one warm-up.
        let reps = ((0.5 * 150e9 / flop) as usize).clamp(3, 2000);
        let _ = a.matmul(&b).expect("square");
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let t = Instant::now();
            let c = a.matmul(&b).expect("square");
            best = best.min(t.elapsed().as_secs_f64());
            std::hint::black_box(c);
        }
        println!("tapir sgemm n={n} gflops={:.1}", flop / best / 1e9);
    }
}
