//! # tapir-autograd
//!
//! Reverse-mode automatic differentiation on a tape: the counterpart of
//! TensorFlow's `GradientTape` and PyTorch's autograd.
//!
//! ```
//! use tapir_autograd::{Parameter, Tape};
//! use tapir_tensor::{Rng, Tensor};
//!
//! let mut rng = Rng::seed(0);
//! let w = Parameter::new("w", Tensor::<f32>::randn([4, 3], &mut rng));
//! let b = Parameter::new("b", Tensor::<f32>::zeros([3]));
//! let tape = Tape::new();
//! let x = tape.constant(Tensor::randn([8, 4], &mut rng));
//! let logits = x.matmul(&tape.watch(&w))? + tape.watch(&b);
//! let loss = logits.cross_entropy(&[0, 1, 2, 0, 1, 2, 0, 1])?;
//! let grads = tape.gradient(&loss, [&w, &b])?;
//! assert_eq!(grads[&w].shape(), &[4, 3]);
//! assert_eq!(grads[&b].shape(), &[3]);
//! # Ok::<(), tapir_autograd::Error>(())
//! ```
//!
//! See docs/autograd.md for how the tape works, custom ops, higher-order
//! gradients and the unconnected-gradient policy.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod backward;
mod checkpoint;
mod custom;
mod error;
mod fast;
mod functional;
mod gradcheck;
mod gradients;
mod op;
mod param;
mod rules;
mod slots;
mod sparse;
mod tape;
mod var;

pub use backward::Source;
pub use custom::CustomOp;
pub use error::{Error, Result};
pub use functional::{hvp, jacobian};
pub use gradcheck::{gradcheck, gradcheck_directional, CheckFn, GradcheckOptions};
pub use gradients::{Gradient, GradientOptions, Gradients, Unconnected};
pub use param::Parameter;
pub use sparse::RowSparse;
pub use tape::Tape;
pub use var::Var;

pub use tapir_tensor as tensor;

/// The names of the built-in recorded primitives (`Tape::recorded_ops`
/// reports the same names). For the crate's own coverage tests: the
/// gradcheck table must exercise every one.
#[doc(hidden)]
pub fn primitive_names() -> &'static [&'static str] {
    op::PRIMITIVES
}
