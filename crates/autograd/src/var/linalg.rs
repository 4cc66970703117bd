//! Matrix products.

use tapir_tensor::Float;

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    binary!(
        /// Matrix product with NumPy semantics (see `Tensor::matmul`).
        matmul, Op::Matmul);
}
