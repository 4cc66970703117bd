//! `Var`, a value computed under a tape, and its differentiable ops.
//!
//! The ops live in one file per family, as in the tensor crate:
//! `elementwise`, `reduce`, `shape`, `index`, `linalg`, `conv` (with
//! pooling), `loss` and the operator impls in `ops`. Each op computes its
//! value with the tensor crate and records one primitive (see `op.rs`), or
//! is composed of other Var ops.

use std::cell::Cell;
use std::fmt;

use tapir_tensor::{Float, Tensor};

use crate::error::{Error, Result};
use crate::op::Op;
use crate::tape::Tape;

/// A value computed under a tape: a tensor plus, when it depends on a
/// watched parameter or source, the node that produced it.
///
/// `Var` offers the differentiable ops of [`Tensor`] under the same names
/// (`matmul`, `relu`, `softmax`, `sum`, ...). A Var made with
/// [`Var::untracked`] belongs to no tape: model code written over `Var`
/// then runs with no recording cost (evaluation, inference).
///
/// The operators `+ - * /` work on owned and borrowed Vars and are
/// [`Var::add`], [`Var::sub`], [`Var::mul`] and [`Var::div`] (broadcasting,
/// with their gradients), panicking where those return an error (shapes
/// that do not broadcast, Vars on different tapes). With a scalar right
/// operand they are `add_scalar`, `sub_scalar`, `mul_scalar` and
/// `div_scalar`; unary `-` is [`Var::neg`].
///
/// ```
/// use tapir_autograd::Tape;
/// use tapir_tensor::Tensor;
/// let tape = Tape::new();
/// let a = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
/// let b = tape.var(Tensor::<f64>::from_vec(vec![3.0, 4.0], [2])?);
/// let y = &a * &b + &a / 2.0 - -&b; // a·b + a/2 + b
/// assert_eq!(y.value().to_vec(), [6.5, 13.0]);
/// let g = tape.gradient_vars(&y.sum(), &[&a, &b], &Default::default())?;
/// assert_eq!(g[0].as_ref().unwrap().to_vec(), [3.5, 4.5]); // b + 1/2
/// assert_eq!(g[1].as_ref().unwrap().to_vec(), [2.0, 3.0]); // a + 1
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
///
/// ```should_panic
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let a = Var::untracked(Tensor::<f64>::zeros([2]));
/// let b = Var::untracked(Tensor::<f64>::zeros([3]));
/// let _ = &a + &b; // panics: [2] and [3] do not broadcast
/// ```
#[derive(Clone)]
pub struct Var<'t, E: Float = f32> {
    pub(crate) tape: Option<&'t Tape<E>>,
    pub(crate) id: Option<usize>,
    pub(crate) value: Tensor<E>,
    /// For an untracked Var on a tape: the constant node that was recorded
    /// for it the first time a tracked op used it, so that reusing a
    /// constant (a mask, a batch) records it once.
    pub(crate) const_node: Cell<Option<usize>>,
}

impl<E: Float> fmt::Debug for Var<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "Var(#{id}, {:?})", self.value),
            None => write!(f, "Var(untracked, {:?})", self.value),
        }
    }
}

impl<'t, E: Float> Var<'t, E> {
    /// A Var on no tape: every op on it computes values only and records
    /// nothing, so it has no gradient (PyTorch's tensors under
    /// `torch.no_grad()`; TensorFlow code run outside a `GradientTape`). It
    /// mixes with the Vars of any tape as a constant.
    ///
    /// ```
    /// use tapir_autograd::Var;
    /// use tapir_tensor::Tensor;
    /// let x = Var::untracked(Tensor::<f64>::from_vec(vec![-1.0, 2.0], [2])?);
    /// let y = x.relu();
    /// assert!(!y.is_tracked());
    /// assert_eq!(y.value().to_vec(), [0.0, 2.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn untracked(value: Tensor<E>) -> Self {
        Var {
            tape: None,
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }

    /// The value, borrowed (PyTorch's `Tensor.detach()` as a plain tensor;
    /// TensorFlow's `Tensor.numpy()`). Reading it records nothing.
    pub fn value(&self) -> &Tensor<E> {
        &self.value
    }

    /// The value, consuming the Var (no copy: the tape, if any, shares the
    /// storage).
    pub fn into_value(self) -> Tensor<E> {
        self.value
    }

    /// Shape of the value (`Tensor.shape`, `Tensor.size()`).
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of axes (`Tensor.dim()`, `Tensor.ndim`).
    pub fn ndim(&self) -> usize {
        self.value.ndim()
    }

    /// Whether gradients can flow through this Var: it depends on a watched
    /// parameter or a [`Tape::var`] source (PyTorch's `Tensor.requires_grad`).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::ones([2]));
    /// let c = tape.constant(Tensor::<f64>::ones([2]));
    /// assert!(x.is_tracked() && !c.is_tracked());
    /// assert!(x.mul(&c)?.is_tracked());
    /// assert!(!c.exp().is_tracked());
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn is_tracked(&self) -> bool {
        self.id.is_some()
    }

    /// The tape this Var is recorded on, or `None` when untracked.
    pub fn tape(&self) -> Option<&'t Tape<E>> {
        self.tape
    }

    /// The same value, cut from the graph: a constant on the same tape,
    /// through which no gradient flows (`tf.stop_gradient`;
    /// `Tensor.detach` in PyTorch). Gradient: none (0 to `self` through
    /// this path).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![3.0], [1])?);
    /// // d(x · stop(x))/dx = stop(x) = 3, not 2x = 6.
    /// let y = x.mul(&x.stop_gradient())?.sum();
    /// let g = tape.gradient_vars(&y, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [3.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn stop_gradient(&self) -> Self {
        Var {
            tape: self.tape,
            id: None,
            value: self.value.clone(),
            const_node: Cell::new(None),
        }
    }

    /// Alias of [`Var::stop_gradient`] with PyTorch's name
    /// (`Tensor.detach`). Gradient: none.
    pub fn detach(&self) -> Self {
        self.stop_gradient()
    }

    /// `value` as a constant on the same tape as `self` (untracked when
    /// `self` is): [`Tape::constant`] for code that holds a Var but not its
    /// tape, such as masks in backward rules (`torch.as_tensor`,
    /// `tf.constant`). Gradient: none.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
    /// let c = x.lift(Tensor::from_vec(vec![10.0, 20.0], [2])?);
    /// assert!(!c.is_tracked());
    /// let g = tape.gradient_vars(&x.mul(&c)?.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [10.0, 20.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn lift(&self, value: Tensor<E>) -> Self {
        Var {
            tape: self.tape,
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }

    /// The parameter `p` as a Var beside `self`: watched on `self`'s tape
    /// (once per tape, [`Tape::param`]) when `self` is on one, and its
    /// plain value when `self` is untracked, so that layer code written
    /// over Vars records on a tape and costs nothing in evaluation. This
    /// is how layers reach their weights (`self.weight` inside
    /// `torch.nn.Module.forward`).
    ///
    /// ```
    /// use tapir_autograd::{Parameter, Tape, Var};
    /// use tapir_tensor::Tensor;
    /// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![2.0], [1])?);
    /// let x = Tensor::from_vec(vec![5.0], [1])?;
    /// let tape = Tape::new();
    /// let y = tape.constant(x.clone());
    /// let loss = y.mul(&y.param(&w))?.sum();
    /// assert_eq!(tape.gradient(&loss, [&w])?[&w].to_vec(), [5.0]);
    /// let eval = Var::untracked(x);
    /// assert!(!eval.param(&w).is_tracked());
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn param(&self, p: &crate::Parameter<E>) -> Var<'t, E> {
        match self.tape {
            Some(t) => t.param(p),
            None => Var::untracked(p.value()),
        }
    }
}

impl<E: Float> Var<'_, E> {
    /// What `Tape::record` checks, for a composite binary op under its own
    /// name: both Vars on one tape (or none), shapes that broadcast.
    pub(crate) fn check_binary(&self, op: &'static str, other: &Self) -> Result<()> {
        if let (Some(a), Some(b)) = (self.tape, other.tape) {
            if !std::ptr::eq(a, b) {
                return Err(Error::TapeMismatch { op });
            }
        }
        tapir_tensor::broadcast_shapes(op, self.shape(), other.shape())?;
        Ok(())
    }
    #[inline]
    fn unary_record(&self, op: Op<E>, v: Tensor<E>) -> Self {
        Tape::record_unary(op, self, v)
    }
}

// The macros come before the op modules, which use them.

macro_rules! unary {
    ($(#[$doc:meta])* $name:ident, $op:expr) => {
        $(#[$doc])*
        pub fn $name(&self) -> Self {
            let v = self.value.$name();
            self.unary_record($op, v)
        }
    };
}

macro_rules! binary {
    ($(#[$doc:meta])* $name:ident, $op:expr) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// When the shapes do not broadcast or the Vars are on different tapes.
        pub fn $name(&self, other: &Self) -> Result<Self> {
            let v = self.value.$name(&other.value)?;
            Tape::record(stringify!($name), $op, &[self, other], v)
        }
    };
}

macro_rules! mask {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// When the shapes do not broadcast.
        pub fn $name(&self, other: &Self) -> Result<Tensor<E>> {
            Ok(self.value.$name(&other.value)?)
        }
    };
}

pub(crate) fn all_axes(n: usize) -> Vec<isize> {
    (0..n as isize).collect()
}

mod conv;
mod elementwise;
mod index;
mod linalg;
mod loss;
mod ops;
mod reduce;
mod shape;
