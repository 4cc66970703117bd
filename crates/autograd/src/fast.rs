//! First-order fast paths for the common elementwise rules.
//!
//! The rules in `rules.rs` are written once, with `Var` ops, so that they
//! also record for higher-order gradients. In a first-order pass that
//! costs Var wrappers, clones and intermediate tensors that matter on small
//! tensors. This module computes the same gradients straight from the
//! tensors, each in one pass and in place where it can, when every operand has the output's shape
//! (no broadcasting to undo). Anything else returns `None` and goes through
//! `rules::backward`. The formulas and their order of operations are those
//! of `rules.rs`, so both paths give the same bits; the gradcheck and golden
//! tests run through this path for first-order gradients, and the
//! `fast_path_matches_rules` test compares the two directly.

use smallvec::{smallvec, SmallVec};
use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::op::Op;

pub(crate) type TensorGrads<E> = SmallVec<[Option<Tensor<E>>; 2]>;

/// Gradients of `op`'s inputs `x` given its output `y` and output gradient
/// `g`, or `g` back (`Err`) when `op` has no fast path for these shapes.
/// `needs[i]` says whether input i wants a gradient.
pub(crate) fn backward<E: Float>(
    op: &Op<E>,
    x: &[&Tensor<E>],
    y: &Tensor<E>,
    g: Tensor<E>,
    needs: &[bool],
) -> std::result::Result<Result<TensorGrads<E>>, Tensor<E>> {
    if x.iter().any(|t| !t.same_shape(&g)) {
        return Err(g);
    }
    // `g` is consumed: its storage is reused for the last gradient computed
    // from it when nothing else holds it (the usual case: the gradient of
    // an intermediate value), so a chain of elementwise ops allocates
    // nothing in the backward pass.
    let one = |r: Result<Tensor<E>>| r.map(|t| smallvec![Some(t)]);
    let into = |g: Tensor<E>, a: &Tensor<E>, f: fn(E, E) -> E| -> Result<Tensor<E>> {
        Ok(g.zip_map_into(a, f)?)
    };
    Ok(match op {
        Op::Add => Ok(smallvec![
            needs[0].then(|| g.clone()),
            needs[1].then_some(g)
        ]),
        Op::Sub => Ok(smallvec![
            needs[0].then(|| g.clone()),
            needs[1].then(|| g.map_into(|v| -v))
        ]),
        Op::Mul => (|| {
            let ga = match needs[0] {
                true if needs[1] => Some(g.zip_map(x[1], |g, b| g * b)?),
                true => return Ok(smallvec![Some(into(g, x[1], |g, b| g * b)?), None]),
                false => None,
            };
            Ok(smallvec![ga, Some(into(g, x[0], |g, a| g * a)?)])
        })(),
        Op::Div => (|| {
            let ga = if needs[0] {
                Some(g.zip_map(x[1], |g, b| g / b)?)
            } else {
                None
            };
            let gb = if needs[1] {
                Some(into(g, x[0], |g, a| g * a)?.zip_map_into(x[1], |ga, b| -(ga / (b * b)))?)
            } else {
                None
            };
            Ok(smallvec![ga, gb])
        })(),
        Op::Neg => Ok(smallvec![Some(g.map_into(|v| -v))]),
        Op::AddScalar => Ok(smallvec![Some(g)]),
        Op::MulScalar(c) => {
            let c = *c;
            Ok(smallvec![Some(g.map_into(|v| v * c))])
        }
        Op::Exp => one(into(g, y, |g, y| g * y)),
        Op::Log => one(into(g, x[0], |g, x| g / x)),
        Op::Sqrt => one(into(g, y, |g, y| g / (y * E::from_f64(2.0)))),
        Op::Sin => one(into(g, x[0], |g, x| g * x.cos())),
        Op::Cos => one(into(g, x[0], |g, x| -(g * x.sin()))),
        Op::Tanh => one(into(g, y, |g, y| g * (E::ONE - y * y))),
        Op::Sigmoid => one(into(g, y, |g, y| g * y * (E::ONE - y))),
        Op::Relu => one(into(g, x[0], |g, x| {
            g * if x > E::ZERO { E::ONE } else { E::ZERO }
        })),
        _ => return Err(g),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::Var;
    use tapir_tensor::Rng;

    /// Every fast rule gives the bits of the general rule, for each
    /// combination of needed inputs, and leaves shared gradients intact.
    #[test]
    fn fast_path_matches_rules() {
        let mut rng = Rng::seed(7);
        let a = Tensor::<f64>::uniform([3, 4], 0.5, 2.0, &mut rng);
        let b = Tensor::<f64>::uniform([3, 4], -2.0, 2.0, &mut rng);
        let g = Tensor::<f64>::randn([3, 4], &mut rng);
        let unary: Vec<(Op<f64>, Tensor<f64>)> = vec![
            (Op::Neg, a.neg()),
            (Op::AddScalar, a.add_scalar(1.5)),
            (Op::MulScalar(-0.75), a.mul_scalar(-0.75)),
            (Op::Exp, a.exp()),
            (Op::Log, a.log()),
            (Op::Sqrt, a.sqrt()),
            (Op::Sin, a.sin()),
            (Op::Cos, a.cos()),
            (Op::Tanh, b.tanh()),
            (Op::Sigmoid, b.sigmoid()),
            (Op::Relu, b.relu()),
        ];
        let binary: Vec<(Op<f64>, Tensor<f64>)> = vec![
            (Op::Add, a.add(&b).unwrap()),
            (Op::Sub, a.sub(&b).unwrap()),
            (Op::Mul, a.mul(&b).unwrap()),
            (Op::Div, b.div(&a).unwrap()),
        ];
        let check = |op: &Op<f64>, xs: &[&Tensor<f64>], y: &Tensor<f64>, needs: &[bool]| {
            let xv: Vec<Var<'_, f64>> = xs.iter().map(|t| Var::untracked((*t).clone())).collect();
            let want = crate::rules::backward(
                op,
                &xv,
                &Var::untracked(y.clone()),
                &Var::untracked(g.clone()),
                needs,
            )
            .unwrap();
            // A private copy of g, so the fast path may reuse its storage.
            let g_own = Tensor::from_vec(g.to_vec(), g.shape()).unwrap();
            let got = match backward(op, xs, y, g_own, needs) {
                Ok(r) => r.unwrap(),
                Err(_) => panic!("no fast path"),
            };
            for (i, need) in needs.iter().enumerate() {
                if !need {
                    continue;
                }
                let w = want[i].as_ref().expect("general rule gives it").value();
                let f = got[i].as_ref().expect("fast rule gives it");
                assert_eq!(f.shape(), w.shape());
                let same = f
                    .to_vec()
                    .iter()
                    .zip(w.to_vec())
                    .all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "input {i} differs");
            }
        };
        for (op, y) in &unary {
            let xs = [if matches!(op, Op::Tanh | Op::Sigmoid | Op::Relu) {
                &b
            } else {
                &a
            }];
            check(op, &xs, y, &[true]);
        }
        for (op, y) in &binary {
            let xs: [&Tensor<f64>; 2] = if matches!(op, Op::Div) {
                [&b, &a]
            } else {
                [&a, &b]
            };
            for needs in [[true, true], [true, false], [false, true]] {
                check(op, &xs, y, &needs);
            }
        }
        // The caller's gradient is never written through: g is unchanged.
        let g_before = g.to_vec();
        let _ = backward(&Op::Tanh, &[&b], &b.tanh(), g.clone(), &[true]);
        assert_eq!(g.to_vec(), g_before);
    }

    /// A broadcast operand has no fast path: the gradient comes back.
    #[test]
    fn broadcasting_falls_back() {
        let a = Tensor::<f64>::ones([2, 3]);
        let b = Tensor::<f64>::ones([3]);
        let g = Tensor::<f64>::ones([2, 3]);
        let y = a.mul(&b).unwrap();
        assert!(backward(&Op::Mul, &[&a, &b], &y, g, &[true, true]).is_err());
    }
}
