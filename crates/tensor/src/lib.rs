//! # tapir-tensor
//!
//! N-dimensional `f32`/`f64` tensors with NumPy broadcasting, built on
//! ndarray's shared arrays and rayon: the foundation of Tapir.
//!
//! ```
//! use tapir_tensor::{Rng, Tensor};
//! let mut rng = Rng::seed(0);
//! let x: Tensor = Tensor::randn([4, 3], &mut rng);
//! let w: Tensor = Tensor::randn([3, 2], &mut rng);
//! let y = x.matmul(&w)?.relu().softmax(-1)?;
//! assert_eq!(y.shape(), &[4, 2]);
//! let rows = y.sum_axes(&[-1], false)?;
//! assert!(rows.to_vec().iter().all(|s| (s - 1.0).abs() < 1e-6));
//! # Ok::<(), tapir_tensor::Error>(())
//! ```
//!
//! Conventions:
//! - Fallible ops return [`Result`]; the operators `+ - * /` panic with the
//!   same message (see [`ops`]).
//! - Axes may be negative (−1 is the last). Reductions come in pairs: `sum()` over every element,
//!   `sum_axes(axes, keepdim)` over some.
//! - Small tensors run on the calling thread; elementwise ops and reductions
//!   go parallel above [`kernels::PAR_THRESHOLD`] elements.
//! - Each op's documentation gives its formula, the derivative or gradient
//!   rule tapir-autograd uses for it (or "Not differentiable"), and its
//!   PyTorch counterpart, with the NumPy or TensorFlow name where that
//!   differs.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alloc;
mod attention;
pub mod check;
mod conv;
mod elementwise;
mod error;
mod fastmath;
mod float;
mod index;
pub mod kernels;
mod linalg;
mod norm;
pub mod ops;
mod pool;
mod random;
mod reduce;
mod shape;
mod shape_ops;
mod smallgemm;
pub mod sum;
mod tensor;
pub mod threads;
mod transpose;
mod xent;

pub use attention::AttentionParams;
pub use conv::{Conv1dParams, Conv2dParams, Pool2dParams};
pub use elementwise::GeluApprox;
pub use error::{Error, Result};
pub use float::Float;
pub use index::{indices, AsIndex};
pub use norm::{NormKind, NormStats};
pub use random::Rng;
pub use reduce::IndexArray;
pub use shape::{broadcast_shapes, checked_numel, normalize_axis, numel, shape_of, Shape};
pub use tensor::Tensor;
pub use xent::XentTargets;

/// ndarray, re-exported so users can name its types without a version clash.
pub use ndarray;
