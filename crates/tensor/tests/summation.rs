//! Accuracy and determinism of the pairwise summation behind every
//! reduction (crates/tensor/src/sum.rs, docs/tensor.md "Summation").
//!
//! The reference is the f64 sum of the same f32 values: its own error
//! (≤ n·2⁻⁵³ relative for these positive terms, 1e-9 at n = 10⁷) is far
//! below the f32 bound being checked, c·log₂(n)·ε_f32 with ε_f32 = 2⁻²⁴.
//! A running f32 sum fails the bound (3× over it at n = 10⁷, 170× the
//! pairwise error; checked below, so the test can tell the two apart).

use rayon::ThreadPoolBuilder;
use tapir_tensor::{Rng, Tensor};

const EPS32: f64 = 1.0 / (1u64 << 24) as f64;

fn uniform(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = Rng::seed(seed);
    (0..n)
        .map(|_| lo + (hi - lo) * rng.uniform() as f32)
        .collect()
}

fn f64_sum(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum()
}

fn bound(n: usize) -> f64 {
    // Worst case for positive terms: 15 sequential adds per leaf lane,
    // 4 levels joining the 16 lanes, then log₂(n/256) tree levels; in all
    // at most (12 + log₂ n)·ε, under 1.6·log₂(n)·ε for n ≥ 10⁶.
    (12.0 + (n as f64).log2()) * EPS32
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn sum_and_mean_stay_within_log_n_epsilon() {
    for &n in &[1_000usize, 100_000, 1_000_000, 10_000_000] {
        let v = uniform(n, n as u64, 0.0, 1.0);
        let want = f64_sum(&v);
        let t = Tensor::from_vec(v.clone(), [n]).unwrap();
        let s = t.sum().item().unwrap() as f64;
        assert!(
            rel(s, want) <= bound(n),
            "sum n={n}: rel {:e}",
            rel(s, want)
        );
        let m = t.mean().item().unwrap() as f64;
        let want_m = want / n as f64;
        assert!(
            rel(m, want_m) <= bound(n) + EPS32,
            "mean n={n}: rel {:e}",
            rel(m, want_m)
        );
        eprintln!(
            "n={n}: pairwise rel {:e}, bound {:e}",
            rel(s, want),
            bound(n)
        );
        if n >= 10_000_000 {
            // The naive running sum is far outside the bound: the check
            // above is not vacuous.
            let naive = v.iter().fold(0f32, |a, &b| a + b) as f64;
            eprintln!("n={n}: running sum rel {:e}", rel(naive, want));
            assert!(rel(naive, want) > bound(n), "naive n={n}");
            assert!(rel(naive, want) > 20.0 * rel(s, want), "naive n={n}");
        }
    }
}

#[test]
fn variance_of_offset_data_stays_within_log_n_epsilon() {
    // A batch-norm-like case: mean 100, spread 1.
    for &n in &[40_000usize, 400_000, 4_000_000] {
        let v = uniform(n, 7 + n as u64, 99.0, 101.0);
        let mean = f64_sum(&v) / n as f64;
        let want: f64 = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = Tensor::from_vec(v, [n]).unwrap();
        let got = t.var().item().unwrap() as f64;
        // The deviations carry the rounding of the mean (|x̄|·bound) into
        // each term: relative to σ ≈ 0.58 that is what the tolerance adds.
        let tol = bound(n) + 2.0 * mean * bound(n) / want.sqrt();
        eprintln!("var n={n}: rel {:e}", rel(got, want));
        assert!(
            rel(got, want) <= tol,
            "var n={n}: rel {:e} > {tol:e}",
            rel(got, want)
        );
    }
}

#[test]
fn sums_over_leading_axes_are_pairwise_too() {
    // The bias-gradient shapes: [R, K] over R, and NCHW over N, H, W.
    let (r, k) = (1_000_000usize, 4usize);
    let v = uniform(r * k, 11, 0.0, 1.0);
    let t = Tensor::from_vec(v.clone(), [r, k]).unwrap();
    let got = t.sum_axes(&[0], false).unwrap().to_vec();
    for (j, &g) in got.iter().enumerate() {
        let want: f64 = (0..r).map(|i| v[i * k + j] as f64).sum();
        assert!(
            rel(g as f64, want) <= bound(r),
            "column {j}: rel {:e}",
            rel(g as f64, want)
        );
    }
    let (n, c, hw) = (64usize, 8usize, 64 * 64);
    let v = uniform(n * c * hw, 12, 0.0, 1.0);
    let t = Tensor::from_vec(v.clone(), [n, c, 64, 64]).unwrap();
    let got = t.sum_to(&[1, c, 1, 1]).unwrap().to_vec();
    for (ch, &g) in got.iter().enumerate() {
        let want: f64 = (0..n)
            .flat_map(|b| v[(b * c + ch) * hw..(b * c + ch + 1) * hw].iter())
            .map(|&x| x as f64)
            .sum();
        assert!(rel(g as f64, want) <= bound(n * hw), "channel {ch}");
    }
}

#[test]
fn softmax_and_logsumexp_denominators_are_pairwise() {
    let n = 1_000_000;
    let v = uniform(n, 13, -1.0, 1.0);
    let t = Tensor::from_vec(v.clone(), [n]).unwrap();
    let lse = t.logsumexp().item().unwrap() as f64;
    let m = v.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let want = m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    // An absolute error of the log of a sum is its relative error.
    assert!(
        (lse - want).abs() <= bound(n) + 4.0 * EPS32 * want.abs(),
        "lse {lse} vs {want}"
    );
    let p = t.softmax(0).unwrap().to_vec();
    let total = f64_sum(&p);
    assert!(
        (total - 1.0).abs() <= bound(n) + 1e-6,
        "softmax sums to {total}"
    );
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let v = uniform(3_000_001, 21, -1.0, 1.0);
    let t = Tensor::from_vec(v, [3_000_001]).unwrap();
    let wide = Tensor::from_vec(uniform(2_000 * 600, 22, -1.0, 1.0), [2_000, 600]).unwrap();
    let nchw =
        Tensor::from_vec(uniform(32 * 16 * 48 * 48, 23, -1.0, 1.0), [32, 16, 48, 48]).unwrap();
    let run = || {
        (
            t.sum().item().unwrap().to_bits(),
            t.var().item().unwrap().to_bits(),
            t.logsumexp().item().unwrap().to_bits(),
            t.norm_sq().to_bits(),
            wide.sum_axes(&[0], false).unwrap().to_vec(),
            wide.mean_axes(&[1], false).unwrap().to_vec(),
            nchw.sum_axes(&[0, 2, 3], false).unwrap().to_vec(),
        )
    };
    let one = in_pool(1, run);
    for threads in [2, 3, 8] {
        let many = in_pool(threads, run);
        assert_eq!(one.0, many.0, "sum, {threads} threads");
        assert_eq!(one.1, many.1, "var, {threads} threads");
        assert_eq!(one.2, many.2, "logsumexp, {threads} threads");
        assert_eq!(one.3, many.3, "norm_sq, {threads} threads");
        let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&one.4),
            bits(&many.4),
            "sum over rows, {threads} threads"
        );
        assert_eq!(bits(&one.5), bits(&many.5), "row means, {threads} threads");
        assert_eq!(
            bits(&one.6),
            bits(&many.6),
            "NCHW channel sums, {threads} threads"
        );
    }
}

#[test]
fn a_strided_view_sums_like_its_contiguous_copy() {
    let t = Tensor::from_vec(uniform(300 * 200, 31, -1.0, 1.0), [300, 200]).unwrap();
    let tt = t.transpose(0, 1).unwrap();
    let copy = Tensor::from_vec(tt.to_vec(), [200, 300]).unwrap();
    for axes in [&[0isize][..], &[1], &[0, 1]] {
        let a = tt.sum_axes(axes, false).unwrap().to_vec();
        let b = copy.sum_axes(axes, false).unwrap().to_vec();
        assert_eq!(a, b, "axes {axes:?}");
    }
}

mod serial_vs_parallel {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any size around and above the parallel threshold, any set of
        /// axes: one thread and four give the same bits.
        #[test]
        fn same_bits_for_one_and_four_threads(
            dims in proptest::collection::vec(1usize..40, 1..5),
            scale in 1usize..64,
            mask in 0u32..16,
            seed in 0u64..1000,
        ) {
            let mut shape = dims.clone();
            shape[0] *= scale;
            let n: usize = shape.iter().product();
            let t = Tensor::from_vec(uniform(n, seed, -1.0, 1.0), shape.clone()).unwrap();
            let axes: Vec<isize> = (0..shape.len())
                .filter(|a| mask & (1 << a) != 0)
                .map(|a| a as isize)
                .collect();
            let run = || {
                let s = t.sum_axes(&axes, false).unwrap().to_vec();
                let all = t.sum().item().unwrap();
                (s.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), all.to_bits())
            };
            prop_assert_eq!(in_pool(1, run), in_pool(4, run));
        }
    }
}
