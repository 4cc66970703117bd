//! Property tests: broadcasting against an index-by-index reference,
//! reshape/permute round trips, and matmul against a naive triple loop.

use proptest::prelude::*;
use tapir_tensor::{broadcast_shapes, Tensor};

fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=max_dim, 0..=max_rank)
}

/// A tensor of the given shape with distinct, deterministic values.
fn filled(s: &[usize], offset: f64) -> Tensor<f64> {
    let n: usize = s.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f64 * 0.5 + offset).collect(), s).unwrap()
}

/// Row-major multi-index of flat position `f` in `shape`.
fn unravel(mut f: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = f % shape[d];
        f /= shape[d];
    }
    idx
}

/// The element of `t` that broadcasting maps to output index `idx`.
fn broadcast_pick(t: &Tensor<f64>, idx: &[usize]) -> f64 {
    let lead = idx.len() - t.ndim();
    let i: Vec<usize> = t
        .shape()
        .iter()
        .enumerate()
        .map(|(d, &n)| if n == 1 { 0 } else { idx[lead + d] })
        .collect();
    t.at(&i).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn broadcasting_matches_elementwise_definition(
        a in shape(4, 3), mask in prop::collection::vec(any::<bool>(), 4), drop in 0usize..3
    ) {
        // b: a suffix of a's shape with some axes set to 1, so the pair broadcasts.
        let keep = a.len().saturating_sub(drop);
        let b: Vec<usize> = a[a.len() - keep..]
            .iter()
            .zip(&mask)
            .map(|(&d, &m)| if m { 1 } else { d })
            .collect();
        let (x, y) = (filled(&a, 0.0), filled(&b, 100.0));
        for (l, r) in [(&x, &y), (&y, &x)] {
            let out = l.sub(r).unwrap();
            let s = broadcast_shapes("t", l.shape(), r.shape()).unwrap();
            prop_assert_eq!(out.shape(), s.as_slice());
            for (f, v) in out.to_vec().into_iter().enumerate() {
                let idx = unravel(f, &s);
                prop_assert_eq!(v, broadcast_pick(l, &idx) - broadcast_pick(r, &idx));
            }
        }
    }

    #[test]
    fn incompatible_shapes_are_errors(a in 2usize..5, b in 2usize..5) {
        prop_assume!(a != b);
        prop_assert!(filled(&[a], 0.0).add(&filled(&[b], 0.0)).is_err());
    }

    #[test]
    fn reshape_round_trips(s in shape(4, 4), perm_seed in any::<u64>()) {
        let t = filled(&s, 0.0);
        let flat = t.reshape([-1]).unwrap();
        prop_assert_eq!(flat.to_vec(), t.to_vec());
        let back = flat.reshape_usize(&s).unwrap();
        prop_assert_eq!(&back, &t);
        // A random permutation and its inverse give back the same tensor.
        let mut perm: Vec<usize> = (0..s.len()).collect();
        tapir_tensor::Rng::seed(perm_seed).shuffle(&mut perm);
        let mut inv = vec![0isize; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i as isize;
        }
        let p: Vec<isize> = perm.iter().map(|&v| v as isize).collect();
        let permuted = t.permute(&p).unwrap();
        for (d, &pd) in perm.iter().enumerate() {
            prop_assert_eq!(permuted.shape()[d], s[pd]);
        }
        // Reshaping a non-contiguous permuted tensor copies in logical order.
        let re = permuted.reshape([-1]).unwrap();
        prop_assert_eq!(re.to_vec(), permuted.to_vec());
        prop_assert_eq!(permuted.permute(&inv).unwrap(), t);
    }

    #[test]
    fn matmul_matches_naive_triple_loop(
        m in 1usize..9, k in 0usize..9, n in 1usize..9, batch in 0usize..3, transpose_a in any::<bool>()
    ) {
        let mut rng = tapir_tensor::Rng::seed((m * 100 + k * 10 + n) as u64);
        let bshape: Vec<usize> = vec![2; batch];
        let a_shape: Vec<usize> = bshape.iter().copied().chain([m, k]).collect();
        let b_shape = [k, n];
        let a: Tensor<f64> = if transpose_a {
            // Same logical values, transposed storage.
            let mut s = a_shape.clone();
            let l = s.len();
            s.swap(l - 1, l - 2);
            Tensor::randn(&s, &mut rng).transpose(-1, -2).unwrap()
        } else {
            Tensor::randn(&a_shape, &mut rng)
        };
        let b: Tensor<f64> = Tensor::randn(b_shape, &mut rng);
        let c = a.matmul(&b).unwrap();
        let nb: usize = bshape.iter().product();
        let expected_shape: Vec<usize> = bshape.iter().copied().chain([m, n]).collect();
        prop_assert_eq!(c.shape(), expected_shape.as_slice());
        let (av, bv, cv) = (a.to_vec(), b.to_vec(), c.to_vec());
        for bi in 0..nb {
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| av[bi * m * k + i * k + p] * bv[p * n + j]).sum();
                    prop_assert!((cv[bi * m * n + i * n + j] - want).abs() < 1e-12);
                }
            }
        }
    }
}
