//! Measures where rayon starts to pay for elementwise kernels on this
//! machine: for each size, the best time of the same add and exp loops that
//! `tapir_tensor::kernels` runs, serial against rayon (chunks of
//! `PAR_CHUNK`), and their ratio. The crossover sets
//! `tapir_tensor::kernels::PAR_THRESHOLD`; numbers are in docs/performance.md.
//!
//! Run: `cargo run --release --example par_threshold`

use std::time::Instant;

use rayon::prelude::*;
use tapir::tensor::kernels::PAR_CHUNK;

fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    println!(
        "{:>8} {:>4} {:>10} {:>10} {:>7}",
        "n", "op", "serial µs", "rayon µs", "speedup"
    );
    for p in 10..=20 {
        let n = 1usize << p;
        let x: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.01).collect();
        let y: Vec<f32> = (0..n).map(|i| (i % 89) as f32 * 0.01).collect();
        let reps = (50_000_000 / n).clamp(50, 20_000);
        let add_s = best_of(reps, || -> Vec<f32> {
            x.iter().zip(&y).map(|(a, b)| a + b).collect()
        });
        let add_p = best_of(reps, || -> Vec<f32> {
            x.par_iter()
                .zip(y.par_iter())
                .with_min_len(PAR_CHUNK)
                .map(|(a, b)| a + b)
                .collect()
        });
        let exp_s = best_of(reps, || -> Vec<f32> { x.iter().map(|a| a.exp()).collect() });
        let exp_p = best_of(reps, || -> Vec<f32> {
            x.par_iter()
                .with_min_len(PAR_CHUNK)
                .map(|a| a.exp())
                .collect()
        });
        for (op, s, q) in [("add", add_s, add_p), ("exp", exp_s, exp_p)] {
            println!(
                "{n:>8} {op:>4} {:>10.2} {:>10.2} {:>7.2}",
                s * 1e6,
                q * 1e6,
                s / q
            );
        }
    }
}
