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

impl<E: Float> Forward<E> for LayerNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let k = self.shape.len();
        if x.ndim() < k || x.shape()[x.ndim() - k..] != self.shape[..] {
            return Err(shape_error(
                "LayerNorm",
                format!(
                    "LayerNorm({:?}) takes [.., {}], got {:?}",
                    self.shape,
                    self.shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    x.shape()
                ),
            ));
        }
        let axes: Vec<isize> = (0..k as isize).map(|i| -1 - i).collect();
        let mean = x.mean_axes(&axes, true)?;
        let centred = x.sub(&mean)?;
        let var = centred.square().mean_axes(&axes, true)?;
        let mut y = centred.mul(&var.add_scalar(E::from_f64(self.eps)).rsqrt())?;
        if let Some(w) = &self.weight {
            y = y.mul(&x.param(w))?;
        }
        if let Some(b) = &self.bias {
            y = y.add(&x.param(b))?;
        }
        Ok(y)
    }
}
