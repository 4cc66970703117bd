//! First-order fast paths for the common elementwise rules.
//!
//! The rules in `rules.rs` are written once, with `Var` ops, so that they
//! also record for higher-order gradients. In a first-order pass that
//! costs Var wrappers, clones and intermediate tensors that matter on small
//! tensors. This module computes the same gradients straight from the
//! tensors, each in one pass and in place where it can, when every operand
//! has the output's shape (no broadcasting to undo). Anything else hands the
//! gradient back and goes through `rules::backward`. The formulas and their order of operations are those
//! of `rules.rs`, so both paths give the same bits; the gradcheck and golden
//! tests run through this path for first-order gradients, and the
//! `fast_path_matches_rules` test compares the two directly.

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::op::Op;

/// `f(g, a)` elementwise, in `g`'s storage when it is not shared. Generic
/// over `f` (not a `fn` pointer) so that the loop inlines and vectorizes.
#[inline(always)]
fn into<E: Float>(
    g: Tensor<E>,
    a: &Tensor<E>,
    f: impl Fn(E, E) -> E + Sync + Send,
) -> Result<Tensor<E>> {
    Ok(g.zip_map_into(a, f)?)
}

/// Writes the gradients of `op`'s inputs `x`, given its output `y` and
/// output gradient `g`, into `out[i]` (left `None` for inputs that need
/// none: `needs[i]` false). Returns `Ok(None)` when done, or `Ok(Some(g))`,
/// handing `g` back, when `op` has no fast path for these shapes.
///
/// `g` is consumed: its storage is reused for the last gradient computed
/// from it when nothing else holds it (the usual case: the gradient of an
/// intermediate value), so a chain of elementwise ops allocates nothing in
/// the backward pass. Results go to `out` rather than a returned vector so
/// that the tensors are not moved again on the hottest path.
pub(crate) fn backward<E: Float>(
    op: &Op<E>,
    x: &[&Tensor<E>],
    y: &Tensor<E>,
    g: Tensor<E>,
    needs: &[bool],
    out: &mut [Option<Tensor<E>>; 2],
) -> Result<Option<Tensor<E>>> {
    if x.iter().any(|t| !t.same_shape(&g)) {
        return Ok(Some(g));
    }
    match op {
        Op::Add => {
            if needs[0] {
                out[0] = Some(g.clone());
            }
            if needs[1] {
                out[1] = Some(g);
            }
        }
        Op::Mul => {
            if needs[0] && needs[1] {
                out[0] = Some(g.zip_map(x[1], |g, b| g * b)?);
                out[1] = Some(into(g, x[0], |g, a| g * a)?);
            } else if needs[0] {
                out[0] = Some(into(g, x[1], |g, b| g * b)?);
            } else if needs[1] {
                out[1] = Some(into(g, x[0], |g, a| g * a)?);
            }
        }
        Op::Div => {
            if needs[0] {
                out[0] = Some(g.zip_map(x[1], |g, b| g / b)?);
            }
            if needs[1] {
                let ga = into(g, x[0], |g, a| g * a)?;
                out[1] = Some(ga.zip_map_into(x[1], |ga, b| -(ga / (b * b)))?);
            }
        }
        Op::AddScalar => out[0] = Some(g),
        Op::MulScalar(c) => {
            let c = *c;
            out[0] = Some(g.map_into(|v| v * c));
        }
        Op::Exp => out[0] = Some(into(g, y, |g, y| g * y)?),
        Op::Log => out[0] = Some(into(g, x[0], |g, x| g / x)?),
        Op::Sqrt => out[0] = Some(into(g, y, |g, y| g / (y * E::from_f64(2.0)))?),
        Op::Sin => out[0] = Some(into(g, x[0], |g, x| g * x.cos())?),
        Op::Cos => out[0] = Some(into(g, x[0], |g, x| -(g * x.sin()))?),
        Op::Tanh => out[0] = Some(into(g, y, |g, y| g * (E::ONE - y * y))?),
        Op::Sigmoid => out[0] = Some(into(g, y, |g, y| g * (y * (E::ONE - y)))?),
        Op::Relu => {
            out[0] = Some(into(g, x[0], |g, x| {
                g * if x > E::ZERO { E::ONE } else { E::ZERO }
            })?)
        }
        // One vectorised pass in the tensor crate, same formula and order
        // of operations as the rule.
        Op::Gelu(approx) => out[0] = Some(x[0].gelu_backward(g, *approx)?),
        _ => return Ok(Some(g)),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::var::Var;
    use tapir_tensor::{GeluApprox, Rng};

    /// Every fast rule gives the bits of the general rule, for each
    /// combination of needed inputs, and leaves shared gradients intact.
    #[test]
    fn fast_path_matches_rules() {
        let mut rng = Rng::seed(7);
        let a = Tensor::<f64>::uniform([3, 4], 0.5, 2.0, &mut rng);
        let b = Tensor::<f64>::uniform([3, 4], -2.0, 2.0, &mut rng);
        let g = Tensor::<f64>::randn([3, 4], &mut rng);
        let unary: Vec<(Op<f64>, Tensor<f64>)> = vec![
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
            (Op::Gelu(GeluApprox::None), b.gelu(GeluApprox::None)),
            (Op::Gelu(GeluApprox::Tanh), b.gelu(GeluApprox::Tanh)),
        ];
        let binary: Vec<(Op<f64>, Tensor<f64>)> = vec![
            (Op::Add, a.add(&b).unwrap()),
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
            let mut got = [None, None];
            let back = backward(op, xs, y, g_own, needs, &mut got).unwrap();
            assert!(back.is_none(), "no fast path");
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
            let xs = [
                if matches!(op, Op::Tanh | Op::Sigmoid | Op::Relu | Op::Gelu(_)) {
                    &b
                } else {
                    &a
                },
            ];
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
        let mut out = [None, None];
        backward(&Op::Tanh, &[&b], &b.tanh(), g.clone(), &[true], &mut out).unwrap();
        assert_eq!(g.to_vec(), g_before);
    }

    /// A broadcast operand has no fast path: the gradient comes back and
    /// nothing is written.
    #[test]
    fn broadcasting_falls_back() {
        let a = Tensor::<f64>::ones([2, 3]);
        let b = Tensor::<f64>::ones([3]);
        let g = Tensor::<f64>::ones([2, 3]);
        let y = a.mul(&b).unwrap();
        let mut out = [None, None];
        let back = backward(&Op::Mul, &[&a, &b], &y, g, &[true, true], &mut out).unwrap();
        assert!(back.is_some() && out.iter().all(Option::is_none));
    }
}
