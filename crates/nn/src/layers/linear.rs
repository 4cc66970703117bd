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

/// y_k = x1ᵀ·A_k·x2 + b_k (`torch.nn.Bilinear`): weight `[out, in1, in2]`,
/// bias `[out]`, both from U(±1/√in1) as PyTorch. Inputs `[N, in1]` and
/// `[N, in2]`, output `[N, out]`; computed as one GEMM [N, in1]·[in1,
/// out·in2], then a product with x2 summed over in2.
///
/// ```
/// use tapir_nn::Bilinear;
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let bl: Bilinear = Bilinear::new(3, 4, 2, &mut Rng::seed(0));
/// let y = bl.forward2(&Var::untracked(Tensor::ones([5, 3])), &Var::untracked(Tensor::ones([5, 4])))?;
/// assert_eq!(y.shape(), &[5, 2]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Bilinear<E: Float = f32> {
    /// `[out, in1, in2]`.
    pub weight: Parameter<E>,
    /// `[out]`, or none.
    pub bias: Option<Parameter<E>>,
}

impl<E: Float> Bilinear<E> {
    /// From inputs of sizes `in1` and `in2` to `out` features, with a bias.
    pub fn new(in1: usize, in2: usize, out: usize, rng: &mut Rng) -> Self {
        let k = 1.0 / (in1 as f64).sqrt();
        Bilinear {
            weight: Parameter::new("weight", init::uniform(&[out, in1, in2], -k, k, rng)),
            bias: Some(Parameter::new("bias", init::uniform(&[out], -k, k, rng))),
        }
    }

    /// Applies the layer to `x1` `[N, in1]` and `x2` `[N, in2]`.
    ///
    /// # Errors
    /// Inputs of other shapes, naming the layer and the shapes.
    pub fn forward2<'t>(&self, x1: &Var<'t, E>, x2: &Var<'t, E>) -> Result<Var<'t, E>> {
        let s = self.weight.shape();
        let (out, in1, in2) = (s[0], s[1], s[2]);
        let ok = x1.ndim() == 2
            && x2.ndim() == 2
            && x1.shape()[1] == in1
            && x2.shape()[1] == in2
            && x1.shape()[0] == x2.shape()[0];
        if !ok {
            return Err(shape_error(
                "Bilinear",
                format!(
                    "Bilinear({in1}, {in2} -> {out}) takes [N, {in1}] and [N, {in2}], got {:?} and {:?}",
                    x1.shape(),
                    x2.shape()
                ),
            ));
        }
        let n = x1.shape()[0];
        let w = x1.param(&self.weight); // [out, in1, in2]
        let w2 = w.permute(&[1, 0, 2])?.reshape_usize(&[in1, out * in2])?;
        let t = x1.matmul(&w2)?.reshape_usize(&[n, out, in2])?;
        let mut y = t.mul(&x2.unsqueeze(1)?)?.sum_axes(&[2], false)?;
        if let Some(b) = &self.bias {
            y = y.add(&x1.param(b))?;
        }
        Ok(y)
    }
}
