//! Fully connected layer.

use tapir_autograd::{Parameter, Result, Var};
use tapir_tensor::{Float, Rng};

use super::{shape_error, Forward};
use crate::init;
use crate::Module;

/// y = x·Wᵀ + b over the last axis (`torch.nn.Linear`; Keras's `Dense`
/// stores the kernel transposed, `[in, out]`).
///
/// The weight has PyTorch's layout `[out_features, in_features]`, so a
/// PyTorch state dict loads unchanged. Default initialisation (PyTorch's):
/// weight and bias from U(−1/√in, 1/√in). Leading axes are batch axes:
/// `[.., in]` → `[.., out]`.
///
/// ```
/// use tapir_nn::{Forward, Linear};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let fc: Linear = Linear::new(3, 2, &mut rng);
/// let y = fc.forward(&Var::untracked(Tensor::ones([5, 3])))?;
/// assert_eq!(y.shape(), &[5, 2]);
/// assert!(fc.forward(&Var::untracked(Tensor::ones([5, 4]))).is_err());
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Linear<E: Float = f32> {
    /// `[out_features, in_features]`.
    pub weight: Parameter<E>,
    /// `[out_features]`, or none.
    pub bias: Option<Parameter<E>>,
}

impl<E: Float> Linear<E> {
    /// A layer from `in_features` to `out_features`, with a bias.
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Self {
        let shape = [out_features, in_features];
        Linear {
            weight: Parameter::new("weight", init::torch_default(&shape, &shape, rng)),
            bias: Some(Parameter::new(
                "bias",
                init::torch_default(&[out_features], &shape, rng),
            )),
        }
    }

    /// The same layer without a bias (`bias=False`).
    pub fn no_bias(in_features: usize, out_features: usize, rng: &mut Rng) -> Self {
        let shape = [out_features, in_features];
        Linear {
            weight: Parameter::new("weight", init::torch_default(&shape, &shape, rng)),
            bias: None,
        }
    }

    /// (in_features, out_features).
    pub fn features(&self) -> (usize, usize) {
        let s = self.weight.shape();
        (s[1], s[0])
    }
}

impl<E: Float> Forward<E> for Linear<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let (fin, fout) = self.features();
        if x.ndim() == 0 || x.shape()[x.ndim() - 1] != fin {
            return Err(shape_error(
                "Linear",
                format!(
                    "Linear({fin} -> {fout}) takes inputs of shape [.., {fin}], got {:?}",
                    x.shape()
                ),
            ));
        }
        let w = x.param(&self.weight);
        // One GEMM over all leading axes rather than a batch of small ones.
        let flat = x.ndim() > 2;
        let x2 = if flat {
            x.reshape([-1, fin as isize])?
        } else {
            x.clone()
        };
        let mut y = x2.matmul(&w.t()?)?;
        if let Some(b) = &self.bias {
            y = y.add(&x.param(b))?;
        }
        if flat {
            let mut shape = x.shape().to_vec();
            *shape.last_mut().expect("ndim > 2") = fout;
            y = y.reshape_usize(&shape)?;
        }
        Ok(y)
    }
}
