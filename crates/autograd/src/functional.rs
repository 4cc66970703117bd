//! Derivative helpers built on the tape: Jacobians and Hessian–vector
//! products.

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::gradients::{GradientOptions, Unconnected};
use crate::tape::Tape;
use crate::var::Var;

/// The Jacobian of `f` at `x`: shape `f(x).shape + x.shape`, entry
/// (i, j) = ∂f(x)ᵢ/∂xⱼ (`torch.autograd.functional.jacobian`). One backward
/// pass per output element.
///
/// ```
/// use tapir_autograd::jacobian;
/// use tapir_tensor::Tensor;
/// let x = Tensor::from_vec(vec![1.0f64, 2.0], [2])?;
/// let j = jacobian(|v| Ok(v.square()), &x)?; // diag(2x)
/// assert_eq!(j.to_vec(), vec![2.0, 0.0, 0.0, 4.0]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
///
/// # Errors
/// Whatever `f` or a backward rule returns.
pub fn jacobian<E: Float>(
    f: impl for<'t> Fn(&Var<'t, E>) -> Result<Var<'t, E>>,
    x: &Tensor<E>,
) -> Result<Tensor<E>> {
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let y = f(&xv)?;
    let m = y.value().len();
    let mut jshape = y.shape().to_vec();
    jshape.extend_from_slice(x.shape());
    let mut rows = Vec::with_capacity(tapir_tensor::check::alloc::<E>("jacobian", &jshape)?);
    for i in 0..m {
        let mut seed = vec![E::ZERO; m];
        seed[i] = E::ONE;
        let opts = GradientOptions {
            output_grad: Some(Tensor::from_vec(seed, y.shape())?),
            unconnected: Unconnected::Zero,
        };
        let g = tape.gradient_vars(&y, &[&xv], &opts)?;
        rows.extend(g[0].as_ref().expect("zeros requested").to_vec());
    }
    Ok(Tensor::from_vec(rows, jshape)?)
}

/// The gradient of a scalar `f` at `x` and the Hessian–vector product
/// H(x)·v, by differentiating ⟨∇f(x), v⟩ once more (double backward).
///
/// # Errors
/// A direction `v` whose shape differs from `x`'s, or whatever `f` or a
/// backward rule returns.
pub fn hvp<E: Float>(
    f: impl for<'t> Fn(&Var<'t, E>) -> Result<Var<'t, E>>,
    x: &Tensor<E>,
    v: &Tensor<E>,
) -> Result<(Tensor<E>, Tensor<E>)> {
    tapir_tensor::check::same_shape(
        "hvp",
        "the point x and the direction v",
        x.shape(),
        v.shape(),
    )?;
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let y = f(&xv)?;
    let zeros = || xv.lift(x.zeros_like());
    let g = tape.gradient_graph(&y, &[&xv], None)?[0]
        .clone()
        .unwrap_or_else(zeros);
    let gv = g.mul(&xv.lift(v.clone()))?.sum();
    let opts = GradientOptions {
        output_grad: None,
        unconnected: Unconnected::Zero,
    };
    let hv = tape.gradient_vars(&gv, &[&xv], &opts)?[0]
        .clone()
        .expect("zeros requested");
    Ok((g.into_value(), hv))
}
