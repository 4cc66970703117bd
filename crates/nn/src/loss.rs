//! Losses (`torch.nn.functional`, `tf.keras.losses`), each with PyTorch's
//! reductions and divisors.

use tapir_autograd::{Result, Var};
use tapir_tensor::Float;

/// How a loss combines its per-element values (`reduction=` in PyTorch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over every element (PyTorch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: the per-element losses.
    None,
}

fn reduce<'t, E: Float>(v: Var<'t, E>, r: Reduction) -> Var<'t, E> {
    match r {
        Reduction::Mean => v.mean(),
        Reduction::Sum => v.sum(),
        Reduction::None => v,
    }
}

fn same_shape<E: Float>(op: &'static str, a: &Var<'_, E>, b: &Var<'_, E>) -> Result<()> {
    tapir_tensor::check::same_shape(op, "input and target", a.shape(), b.shape())?;
    Ok(())
}

/// Softmax cross-entropy of logits `[N, C]` against class indices, mean
/// over the batch (`F.cross_entropy`, Keras
/// `SparseCategoricalCrossentropy(from_logits=True)`).
///
/// # Errors
/// Logits not `[N, C]`, a label count other than N, a label ≥ C.
pub fn cross_entropy<'t, E: Float>(logits: &Var<'t, E>, labels: &[usize]) -> Result<Var<'t, E>> {
    logits.cross_entropy(labels)
}

/// (x − y)² (`F.mse_loss`, Keras `MeanSquaredError`).
///
/// # Errors
/// Shapes that differ.
pub fn mse<'t, E: Float>(x: &Var<'t, E>, y: &Var<'t, E>, r: Reduction) -> Result<Var<'t, E>> {
    same_shape("mse", x, y)?;
    Ok(reduce(x.sub(y)?.square(), r))
}

/// |x − y| (`F.l1_loss`, Keras `MeanAbsoluteError`).
///
/// # Errors
/// Shapes that differ.
pub fn l1<'t, E: Float>(x: &Var<'t, E>, y: &Var<'t, E>, r: Reduction) -> Result<Var<'t, E>> {
    same_shape("l1", x, y)?;
    Ok(reduce(x.sub(y)?.abs(), r))
}

/// Huber loss with threshold `delta`: ½d² where |d| < δ, else
/// δ(|d| − ½δ) (`F.huber_loss`, Keras `Huber`). Smooth L1 is this
/// divided by δ (`F.smooth_l1_loss` with `beta = δ`).
///
/// # Errors
/// Shapes that differ.
pub fn huber<'t, E: Float>(
    x: &Var<'t, E>,
    y: &Var<'t, E>,
    delta: f64,
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("huber", x, y)?;
    let d = x.sub(y)?;
    let a = d.abs();
    let de = E::from_f64(delta);
    let quad = d.square().mul_scalar(E::from_f64(0.5));
    let lin = a.sub_scalar(E::from_f64(0.5 * delta)).mul_scalar(de);
    let small = a.value().map(|v| if v < de { E::ONE } else { E::ZERO });
    Ok(reduce(quad.where_(&small, &lin)?, r))
}

/// Binary cross-entropy on logits, max(x, 0) − x·y + log(1 + e^−|x|)
/// (stable for any logit; `F.binary_cross_entropy_with_logits`, Keras
/// `BinaryCrossentropy(from_logits=True)`).
///
/// # Errors
/// Shapes that differ.
pub fn bce_with_logits<'t, E: Float>(
    x: &Var<'t, E>,
    y: &Var<'t, E>,
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("bce_with_logits", x, y)?;
    let v = x
        .relu()
        .sub(&x.mul(y)?)?
        .add(&x.abs().neg().exp().log1p())?;
    Ok(reduce(v, r))
}
