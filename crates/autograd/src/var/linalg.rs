//! Matrix products.

use tapir_tensor::Float;

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    binary!(
        /// A·B, the matrix product with NumPy semantics (`torch.matmul`,
        /// Python's `@`; `np.matmul`): 1-D·1-D is a dot product, a 1-D left
        /// (right) operand is a row (column) vector whose axis is removed
        /// afterwards, and the leading axes of operands of rank > 2 are
        /// batch axes that broadcast (`tf.linalg.matmul` takes no 1-D
        /// operands). Gradient: g·Bᵀ for A and Aᵀ·g for B, summed back over
        /// broadcast batch axes.
        ///
        /// ```
        /// use tapir_autograd::Tape;
        /// use tapir_tensor::Tensor;
        /// let tape = Tape::new();
        /// let a = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
        /// let b = tape.var(Tensor::<f64>::from_vec(vec![5.0, 6.0], [2, 1])?);
        /// let y = a.matmul(&b)?;
        /// assert_eq!(y.value().to_vec(), [17.0, 39.0]);
        /// let g = tape.gradient_vars(&y.sum(), &[&a, &b], &Default::default())?;
        /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [5.0, 6.0, 5.0, 6.0]); // g·Bᵀ
        /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [4.0, 6.0]); // Aᵀ·g
        /// let v = tape.constant(Tensor::from_vec(vec![1.0, 1.0], [2])?);
        /// assert_eq!(v.matmul(&v)?.value().item()?, 2.0); // a dot product, 0-d
        /// # Ok::<(), tapir_autograd::Error>(())
        /// ```
        matmul, Op::Matmul);
}
