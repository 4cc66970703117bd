//! Normalisation layers.

use tapir_autograd::{Parameter, Result, Var};
use tapir_tensor::{Float, Tensor};

use super::{shape_error, Forward};
use crate::Module;

/// Layer normalisation over the trailing `normalized_shape` axes
/// (`torch.nn.LayerNorm`, eps 1e-5, biased variance; Keras's
/// `LayerNormalization` defaults to eps 1e-3): (x − mean)/√(var + eps)·γ
/// + β, γ = 1 and β = 0 at the start.
///
/// ```
/// use tapir_nn::{Forward, LayerNorm};
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let ln: LayerNorm = LayerNorm::new(&[4]);
/// let x = Var::untracked(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 4])?);
/// let y = ln.forward(&x)?.into_value();
/// assert!(y.mean().item()?.abs() < 1e-6);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct LayerNorm<E: Float = f32> {
    /// γ, of shape `normalized_shape` (none without an affine part).
    pub weight: Option<Parameter<E>>,
    /// β, of shape `normalized_shape`.
    pub bias: Option<Parameter<E>>,
    #[module(skip)]
    shape: Vec<usize>,
    #[module(skip)]
    eps: f64,
}

impl<E: Float> LayerNorm<E> {
    /// Normalises over the trailing axes `shape`, with γ and β.
    pub fn new(shape: &[usize]) -> Self {
        LayerNorm {
            weight: Some(Parameter::new("weight", Tensor::ones(shape))),
            bias: Some(Parameter::new("bias", Tensor::zeros(shape))),
            shape: shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// With another eps.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Without γ and β (`elementwise_affine=False`).
    pub fn no_affine(mut self) -> Self {
        self.weight = None;
        self.bias = None;
        self
    }
}

/// The error of a norm layer given an input whose trailing axes are not
/// its normalised shape.
fn check_tail(layer: &'static str, shape: &[usize], x: &[usize]) -> Result<usize> {
    let k = shape.len();
    if x.len() < k || x[x.len() - k..] != shape[..] {
        return Err(shape_error(
            layer,
            format!(
                "{layer}({shape:?}) takes [.., {}], got {x:?}",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ));
    }
    Ok(k)
}

impl<E: Float> Forward<E> for LayerNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let k = check_tail("LayerNorm", &self.shape, x.shape())?;
        // One recorded primitive with an analytic backward.
        let w = self.weight.as_ref().map(|w| x.param(w));
        let b = self.bias.as_ref().map(|b| x.param(b));
        x.layer_norm(k, w.as_ref(), b.as_ref(), self.eps)
    }
}

/// RMS normalisation over the trailing `normalized_shape` axes
/// (`torch.nn.RMSNorm`; Keras has `LayerNormalization(rms_scaling=True)`):
/// x/√(mean(x²) + eps)·γ, γ = 1 at the start, no bias. The default eps is
/// PyTorch's `eps=None`: the dtype's machine epsilon (1.19e-7 in f32,
/// 2.2e-16 in f64).
///
/// ```
/// use tapir_nn::{Forward, RmsNorm};
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let n: RmsNorm = RmsNorm::new(&[2]);
/// let x = Var::untracked(Tensor::from_vec(vec![3.0, 4.0], [1, 2])?);
/// let y = n.forward(&x)?.into_value().to_vec();
/// let rms = (12.5f32).sqrt();
/// assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 4.0 / rms).abs() < 1e-6);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct RmsNorm<E: Float = f32> {
    /// γ, of shape `normalized_shape` (none without an affine part).
    pub weight: Option<Parameter<E>>,
    #[module(skip)]
    shape: Vec<usize>,
    #[module(skip)]
    eps: Option<f64>,
}

impl<E: Float> RmsNorm<E> {
    /// Normalises over the trailing axes `shape`, with γ.
    pub fn new(shape: &[usize]) -> Self {
        RmsNorm {
            weight: Some(Parameter::new("weight", Tensor::ones(shape))),
            shape: shape.to_vec(),
            eps: None,
        }
    }

    /// With a given eps instead of the machine epsilon.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = Some(eps);
        self
    }

    /// Without γ (`elementwise_affine=False`).
    pub fn no_affine(mut self) -> Self {
        self.weight = None;
        self
    }
}

impl<E: Float> Forward<E> for RmsNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let k = check_tail("RmsNorm", &self.shape, x.shape())?;
        let w = self.weight.as_ref().map(|w| x.param(w));
        let eps = self.eps.unwrap_or(E::EPSILON.to_f64());
        x.rms_norm(k, w.as_ref(), eps)
    }
}
