//! User-defined ops with their own forward and backward.

use std::sync::Arc;

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

/// An op with a hand-written gradient: the counterpart of
/// `tf.custom_gradient` and `torch.autograd.Function`.
///
/// `forward` computes the value from the input tensors. `backward` gets the
/// inputs, the output and the output's gradient as Vars and returns one
/// gradient per input (`None` for none). Write it with Var ops and it can be
/// differentiated again under `Tape::gradient_graph`; wrap plain tensors with
/// [`Var::lift`] for constants.
///
/// A straight-through estimator (round in the forward pass, identity in the
/// backward pass):
///
/// ```
/// use std::sync::Arc;
/// use tapir_autograd::{CustomOp, Parameter, Result, Tape, Var};
/// use tapir_tensor::Tensor;
///
/// struct RoundSte;
/// impl CustomOp<f64> for RoundSte {
///     fn name(&self) -> &str {
///         "round_ste"
///     }
///     fn forward(&self, inputs: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
///         Ok(inputs[0].map(|v| v.round()))
///     }
///     fn backward<'t>(
///         &self,
///         _inputs: &[Var<'t, f64>],
///         _output: &Var<'t, f64>,
///         grad: &Var<'t, f64>,
///     ) -> Result<Vec<Option<Var<'t, f64>>>> {
///         Ok(vec![Some(grad.clone())])
///     }
/// }
///
/// let w = Parameter::new("w", Tensor::from_vec(vec![0.2, 1.7], [2])?);
/// let tape = Tape::new();
/// let q = Var::custom(Arc::new(RoundSte), &[&tape.watch(&w)])?;
/// assert_eq!(q.value().to_vec(), vec![0.0, 2.0]);
/// let loss = q.mul_scalar(3.0).sum();
/// let grads = tape.gradient(&loss, [&w])?;
/// assert_eq!(grads[&w].to_vec(), vec![3.0, 3.0]); // passed straight through
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
pub trait CustomOp<E: Float>: Send + Sync {
    /// A name for error messages.
    fn name(&self) -> &str;

    /// The value from the input values.
    ///
    /// # Errors
    /// Whatever the op finds wrong with its inputs.
    fn forward(&self, inputs: &[&Tensor<E>]) -> Result<Tensor<E>>;

    /// One gradient per input, each shaped like its input, or `None`.
    ///
    /// # Errors
    /// Whatever the op finds wrong.
    fn backward<'t>(
        &self,
        inputs: &[Var<'t, E>],
        output: &Var<'t, E>,
        grad: &Var<'t, E>,
    ) -> Result<Vec<Option<Var<'t, E>>>>;
}

impl<'t, E: Float> Var<'t, E> {
    /// Applies a [`CustomOp`] to `inputs` and records it.
    ///
    /// # Errors
    /// The op's forward error, or Vars from different tapes.
    pub fn custom(op: Arc<dyn CustomOp<E>>, inputs: &[&Var<'t, E>]) -> Result<Var<'t, E>> {
        let values: Vec<&Tensor<E>> = inputs.iter().map(|v| &v.value).collect();
        let v = op.forward(&values)?;
        Tape::record("custom", Op::Custom(op), inputs, v)
    }
}
