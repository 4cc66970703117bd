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
    /// A Var on no tape: every op on it computes values only.
    pub fn untracked(value: Tensor<E>) -> Self {
        Var {
            tape: None,
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }

    /// The value.
    pub fn value(&self) -> &Tensor<E> {
        &self.value
    }

    /// The value, consuming the Var.
    pub fn into_value(self) -> Tensor<E> {
        self.value
    }

    /// Shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.value.ndim()
    }

    /// Whether gradients can flow through this Var (it depends on a watched
    /// parameter or a source).
    pub fn is_tracked(&self) -> bool {
        self.id.is_some()
    }

    /// The same value, cut from the graph: gradients do not flow through it
    /// (`tf.stop_gradient`, `Tensor.detach`).
    pub fn stop_gradient(&self) -> Self {
        Var {
            tape: self.tape,
            id: None,
            value: self.value.clone(),
            const_node: Cell::new(None),
        }
    }

    /// Alias of [`Var::stop_gradient`] with PyTorch's name.
    pub fn detach(&self) -> Self {
        self.stop_gradient()
    }

    /// A constant on the same tape as `self` (no gradient).
    pub fn lift(&self, value: Tensor<E>) -> Self {
        Var {
            tape: self.tape,
            id: None,
            value,
            const_node: Cell::new(None),
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
