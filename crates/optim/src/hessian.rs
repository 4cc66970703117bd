//! Estimates of the Hessian diagonal for [`crate::Sophia`], computed with
//! the tape's second-order gradients.

use tapir_autograd::{Gradients, Parameter, Tape, Var};
use tapir_tensor::{Float, Rng, Tensor};

use crate::error::{Error, Result};

/// Returns `f` unchanged, typed as a loss on a tape: a closure kept in a
/// `let` and used twice (for [`hutchinson`] and for the step's gradients)
/// needs this, as Rust infers a closure's signature over all tape
/// lifetimes only when it is passed straight to such a function.
/// `let loss = objective(|t| Ok(t.param(&w).square().sum()));`
pub fn objective<E, F>(f: F) -> F
where
    E: Float,
    F: for<'t> Fn(&'t Tape<E>) -> tapir_autograd::Result<Var<'t, E>>,
{
    f
}

/// One Rademacher vector (entries ±1 with probability ½) per parameter,
/// for [`hutchinson`].
pub fn rademacher<E: Float>(params: &[&Parameter<E>], rng: &mut Rng) -> Vec<Tensor<E>> {
    params
        .iter()
        .map(|p| {
            let shape = p.shape();
            let n: usize = shape.iter().product();
            let v = (0..n)
                .map(|_| if rng.uniform() < 0.5 { -E::ONE } else { E::ONE })
                .collect();
            Tensor::from_vec(v, shape).expect("n elements")
        })
        .collect()
}

/// Hutchinson's estimate of the Hessian diagonal, u ⊙ (H u), for the
/// directions `u` (one per parameter; Rademacher vectors from
/// [`rademacher`] give an unbiased estimate: E[u ⊙ Hu] = diag H). The
/// Hessian-vector product is one second-order pass of the tape:
/// gradients recorded with `gradient_graph`, then the gradient of Σ g·u.
/// `loss` records the loss on the tape it is given (watch the parameters
/// with `tape.param`).
///
/// # Errors
/// `loss`'s error; a direction whose shape differs from its parameter's.
pub fn hutchinson<E, F>(params: &[&Parameter<E>], loss: F, u: &[Tensor<E>]) -> Result<Gradients<E>>
where
    E: Float,
    F: for<'t> Fn(&'t Tape<E>) -> tapir_autograd::Result<Var<'t, E>>,
{
    if u.len() != params.len() {
        return Err(Error::State(format!(
            "hutchinson: {} directions for {} parameters",
            u.len(),
            params.len()
        )));
    }
    for (p, d) in params.iter().zip(u) {
        if d.shape() != p.shape().as_slice() {
            return Err(Error::GradientShape {
                name: p.name().to_string(),
                grad: d.shape().to_vec(),
                param: p.shape(),
            });
        }
    }
    let tape = Tape::new();
    let l = loss(&tape)?;
    let grads = tape.gradient_graph(&l, params, None)?;
    let mut dot: Option<Var<'_, E>> = None;
    for (g, d) in grads.iter().zip(u) {
        let Some(g) = g else { continue };
        let term = g.mul(&tape.constant(d.clone()))?.sum();
        dot = Some(match dot {
            None => term,
            Some(a) => a.add(&term)?,
        });
    }
    let Some(dot) = dot else {
        return Ok(Gradients::from_pairs(
            params.iter().map(|p| ((*p).clone(), None)).collect(),
        ));
    };
    let hv = tape.gradient(&dot, params.iter().copied())?;
    Ok(Gradients::from_pairs(
        params
            .iter()
            .zip(u)
            .map(|(p, d)| {
                let est = hv.get(p).map(|h| h.mul(d).expect("same shape"));
                ((*p).clone(), est)
            })
            .collect(),
    ))
}

/// The Gauss-Newton-Bartlett estimate of the Hessian diagonal of a mean
/// cross-entropy loss (Sophia-G): labels ŷ sampled from the model's own
/// softmax(logits), then B·ĝ ⊙ ĝ with ĝ the gradient of the mean
/// cross-entropy against ŷ and B the batch size. `logits` records the
/// `[B, classes]` logits on the tape it is given. The labels drawn are
/// returned too.
///
/// # Errors
/// `logits`'s error; logits that are not 2-D.
pub fn gauss_newton_bartlett<E, F>(
    params: &[&Parameter<E>],
    logits: F,
    rng: &mut Rng,
) -> Result<(Gradients<E>, Vec<usize>)>
where
    E: Float,
    F: for<'t> Fn(&'t Tape<E>) -> tapir_autograd::Result<Var<'t, E>>,
{
    let tape = Tape::new();
    let z = logits(&tape)?;
    let labels = sample_labels(z.value(), rng)?;
    let g = gnb_from(&tape, params, &z, &labels)?;
    Ok((g, labels))
}

/// [`gauss_newton_bartlett`] with the sampled labels given (to reproduce a
/// draw).
///
/// # Errors
/// As [`gauss_newton_bartlett`], and labels that do not fit the logits.
pub fn gauss_newton_bartlett_with<E, F>(
    params: &[&Parameter<E>],
    logits: F,
    labels: &[usize],
) -> Result<Gradients<E>>
where
    E: Float,
    F: for<'t> Fn(&'t Tape<E>) -> tapir_autograd::Result<Var<'t, E>>,
{
    let tape = Tape::new();
    let z = logits(&tape)?;
    gnb_from(&tape, params, &z, labels)
}

fn gnb_from<'t, E: Float>(
    tape: &'t Tape<E>,
    params: &[&Parameter<E>],
    z: &Var<'t, E>,
    labels: &[usize],
) -> Result<Gradients<E>> {
    let b = check_logits(z.value())?;
    let loss = z.cross_entropy(labels)?;
    let g = tape.gradient(&loss, params.iter().copied())?;
    let scale = E::from_usize(b);
    Ok(g.map(|_, g| g.mul(g).expect("same shape").mul_scalar(scale)))
}

fn check_logits<E: Float>(z: &Tensor<E>) -> Result<usize> {
    if z.ndim() != 2 || z.shape()[1] == 0 {
        return Err(Error::State(format!(
            "gauss_newton_bartlett: logits must be [batch, classes], got {:?}",
            z.shape()
        )));
    }
    Ok(z.shape()[0])
}

/// One label per row drawn from softmax(row).
fn sample_labels<E: Float>(z: &Tensor<E>, rng: &mut Rng) -> Result<Vec<usize>> {
    check_logits(z)?;
    let (b, c) = (z.shape()[0], z.shape()[1]);
    let v = z.to_vec();
    Ok((0..b)
        .map(|i| {
            let row = &v[i * c..(i + 1) * c];
            let m = row.iter().fold(f64::NEG_INFINITY, |a, x| a.max(x.to_f64()));
            let w: Vec<f64> = row.iter().map(|x| (x.to_f64() - m).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut r = rng.uniform() * total;
            for (k, &wk) in w.iter().enumerate() {
                if r < wk {
                    return k;
                }
                r -= wk;
            }
            c - 1
        })
        .collect())
}
