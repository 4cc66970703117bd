//! Finite-difference checks of analytic gradients (`torch.autograd.gradcheck`).

use tapir_tensor::{Rng, Tensor};

use crate::error::{Error, Result};
use crate::gradients::{GradientOptions, Unconnected};
use crate::tape::Tape;
use crate::var::Var;

/// Tolerances of [`gradcheck`]; the defaults are PyTorch's (eps 1e-6,
/// atol 1e-5, rtol 1e-3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckOptions {
    /// Step of the central difference.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (of the numeric value).
    pub rtol: f64,
    /// Also check second derivatives (double backward).
    pub second_order: bool,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            second_order: false,
        }
    }
}

/// A function of several f64 Vars, as `gradcheck` takes it.
pub trait CheckFn: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>> {}
impl<F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>> CheckFn for F {}

fn dot(a: &Tensor<f64>, b: &Tensor<f64>) -> Result<f64> {
    Ok(a.mul(b)?.sum().item()?)
}

/// First-order gradients of ⟨f(xs), r⟩ with respect to every input.
fn grads_at(f: &impl CheckFn, xs: &[Tensor<f64>], r: &Tensor<f64>) -> Result<Vec<Tensor<f64>>> {
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vars)?;
    let refs: Vec<&Var<'_, f64>> = vars.iter().collect();
    let opts = GradientOptions {
        output_grad: Some(r.clone()),
        unconnected: Unconnected::Zero,
    };
    let g = tape.gradient_vars(&y, &refs, &opts)?;
    Ok(g.into_iter().map(|g| g.expect("zeros requested")).collect())
}

/// The gradient of s(x) = Σᵢ ⟨∇ᵢ⟨f(x), r⟩, uᵢ⟩ with respect to every
/// input, by double backward; `None` when no input reaches the output.
fn double_backward(
    f: &impl CheckFn,
    xs: &[Tensor<f64>],
    r: &Tensor<f64>,
    us: &[Tensor<f64>],
) -> Result<Option<Vec<Tensor<f64>>>> {
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let refs: Vec<&Var<'_, f64>> = vars.iter().collect();
    let y = f(&vars)?;
    let gs = tape.gradient_graph(&y, &refs, Some(r))?;
    let mut s: Option<Var<'_, f64>> = None;
    for (g, u) in gs.iter().zip(us) {
        if let Some(g) = g {
            let term = g.mul(&g.lift(u.clone()))?.sum();
            s = Some(match s {
                None => term,
                Some(acc) => acc.add(&term)?,
            });
        }
    }
    let Some(s) = s else { return Ok(None) };
    let zero = GradientOptions {
        output_grad: None,
        unconnected: Unconnected::Zero,
    };
    Ok(Some(
        tape.gradient_vars(&s, &refs, &zero)?
            .into_iter()
            .map(|g| g.expect("zeros requested"))
            .collect(),
    ))
}

/// Compares the gradient of ⟨f(xs), r⟩ from the tape with central finite
/// differences, element by element, for a fixed random r (so non-scalar
/// outputs are covered). With `second_order`, also compares the gradient of
/// ⟨∇⟨f, r⟩, u⟩ (computed by double backward) with finite differences of the
/// first-order gradient.
///
/// ```
/// use tapir_autograd::{gradcheck, GradcheckOptions};
/// use tapir_tensor::{Rng, Tensor};
/// let x: Tensor<f64> = Tensor::randn([3, 4], &mut Rng::seed(0));
/// let opts = GradcheckOptions { second_order: true, ..Default::default() };
/// gradcheck(|v| Ok(v[0].tanh().mul(&v[0])?), &[x], opts)?;
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::GradcheckMismatch`] naming the first element that disagrees, or
/// any error of `f`.
pub fn gradcheck(f: impl CheckFn, inputs: &[Tensor<f64>], opts: GradcheckOptions) -> Result<()> {
    let mut rng = Rng::seed(0x6772_6164);
    let untracked = |xs: &[Tensor<f64>]| -> Result<Tensor<f64>> {
        let vars: Vec<Var<'_, f64>> = xs.iter().map(|x| Var::untracked(x.clone())).collect();
        Ok(f(&vars)?.into_value())
    };
    let y0 = untracked(inputs)?;
    let r: Tensor<f64> = Tensor::randn(y0.shape(), &mut rng);
    let analytic = grads_at(&f, inputs, &r)?;
    let close = |a: f64, n: f64| (a - n).abs() <= opts.atol + opts.rtol * n.abs();
    for (i, a1) in analytic.iter().enumerate() {
        for (k, &a) in a1.to_vec().iter().enumerate() {
            let shifted = |d: f64| -> Result<f64> {
                let mut xs = inputs.to_vec();
                xs[i].as_mut_slice()[k] += d;
                dot(&untracked(&xs)?, &r)
            };
            let numeric = (shifted(opts.eps)? - shifted(-opts.eps)?) / (2.0 * opts.eps);
            if !close(a, numeric) {
                return Err(Error::GradcheckMismatch {
                    order: "first",
                    input: i,
                    index: k,
                    analytic: a,
                    numeric,
                });
            }
        }
    }
    if !opts.second_order {
        return Ok(());
    }
    // Analytic: gradient of s(x) = Σᵢ ⟨∇ᵢ⟨f, r⟩, uᵢ⟩, by double backward.
    let us: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|x| Tensor::randn(x.shape(), &mut rng))
        .collect();
    let Some(second) = double_backward(&f, inputs, &r, &us)? else {
        return Ok(());
    };
    for (i, g2) in second.iter().enumerate() {
        let a2 = g2.to_vec();
        for (k, &a) in a2.iter().enumerate() {
            let shifted = |d: f64| -> Result<f64> {
                let mut xs = inputs.to_vec();
                xs[i].as_mut_slice()[k] += d;
                let g = grads_at(&f, &xs, &r)?;
                g.iter().zip(&us).map(|(g, u)| dot(g, u)).sum()
            };
            let numeric = (shifted(opts.eps)? - shifted(-opts.eps)?) / (2.0 * opts.eps);
            if !close(a, numeric) {
                return Err(Error::GradcheckMismatch {
                    order: "second",
                    input: i,
                    index: k,
                    analytic: a,
                    numeric,
                });
            }
        }
    }
    Ok(())
}

/// The inputs moved by `t` along the directions `us`: xᵢ + t·uᵢ.
fn along(xs: &[Tensor<f64>], us: &[Tensor<f64>], t: f64) -> Result<Vec<Tensor<f64>>> {
    xs.iter()
        .zip(us)
        .map(|(x, u)| Ok(x.add(&u.mul_scalar(t))?))
        .collect()
}

/// Σᵢ ⟨aᵢ, bᵢ⟩.
fn dots(a: &[Tensor<f64>], b: &[Tensor<f64>]) -> Result<f64> {
    a.iter().zip(b).map(|(a, b)| dot(a, b)).sum()
}

/// The cheap form of [`gradcheck`] for large inputs: instead of one finite
/// difference per element, one along a random direction u (over all inputs
/// at once). It compares ⟨∇⟨f(x), r⟩, u⟩ from the tape with
/// (⟨f(x + εu), r⟩ − ⟨f(x − εu), r⟩) / 2ε, and with `second_order` also
/// ⟨∇⟨∇⟨f, r⟩, v⟩, u⟩ (double backward) with the difference of
/// ⟨∇⟨f, r⟩, v⟩ along u. It costs a few evaluations of `f` whatever the
/// input size, so it reaches sizes where the parallel kernels run; a wrong
/// gradient passes only if its error happens to be orthogonal to u.
///
/// Tolerances as in [`gradcheck`], applied to the directional derivative:
/// |analytic − numeric| ≤ atol + rtol·|numeric|. For large inputs, scale
/// `atol` with the size of the sums.
///
/// ```
/// use tapir_autograd::{gradcheck_directional, GradcheckOptions};
/// use tapir_tensor::{Rng, Tensor};
/// let x: Tensor<f64> = Tensor::randn([64, 64], &mut Rng::seed(0));
/// let opts = GradcheckOptions { second_order: true, ..Default::default() };
/// gradcheck_directional(|v| v[0].tanh().matmul(&v[0]), &[x], opts)?;
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
///
/// # Errors
/// [`Error::GradcheckDirectionMismatch`] when they disagree, or any error
/// of `f`.
pub fn gradcheck_directional(
    f: impl CheckFn,
    inputs: &[Tensor<f64>],
    opts: GradcheckOptions,
) -> Result<()> {
    let mut rng = Rng::seed(0x6469_7265);
    let untracked = |xs: &[Tensor<f64>]| -> Result<Tensor<f64>> {
        let vars: Vec<Var<'_, f64>> = xs.iter().map(|x| Var::untracked(x.clone())).collect();
        Ok(f(&vars)?.into_value())
    };
    let y0 = untracked(inputs)?;
    let r: Tensor<f64> = Tensor::randn(y0.shape(), &mut rng);
    let us: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|x| Tensor::randn(x.shape(), &mut rng))
        .collect();
    let close = |a: f64, n: f64| (a - n).abs() <= opts.atol + opts.rtol * n.abs();
    let eps = opts.eps;

    let analytic = dots(&grads_at(&f, inputs, &r)?, &us)?;
    let numeric = (dot(&untracked(&along(inputs, &us, eps)?)?, &r)?
        - dot(&untracked(&along(inputs, &us, -eps)?)?, &r)?)
        / (2.0 * eps);
    if !close(analytic, numeric) {
        return Err(Error::GradcheckDirectionMismatch {
            order: "first",
            analytic,
            numeric,
        });
    }
    if !opts.second_order {
        return Ok(());
    }
    let vs: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|x| Tensor::randn(x.shape(), &mut rng))
        .collect();
    let Some(second) = double_backward(&f, inputs, &r, &vs)? else {
        return Ok(());
    };
    let analytic = dots(&second, &us)?;
    let at = |t: f64| -> Result<f64> { dots(&grads_at(&f, &along(inputs, &us, t)?, &r)?, &vs) };
    let numeric = (at(eps)? - at(-eps)?) / (2.0 * eps);
    if !close(analytic, numeric) {
        return Err(Error::GradcheckDirectionMismatch {
            order: "second",
            analytic,
            numeric,
        });
    }
    Ok(())
}
