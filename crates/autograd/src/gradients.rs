//! The result of `Tape::gradient` and the options that shape it.

use std::ops::Index;

use tapir_tensor::{Float, Tensor};

use crate::param::Parameter;

/// What a source that does not reach the target gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unconnected {
    /// `None` (the default, as TensorFlow and PyTorch): optimizers skip it.
    #[default]
    None,
    /// Zeros shaped like the source (TensorFlow's
    /// `UnconnectedGradients.ZERO`, PyTorch's `materialize_grads`).
    Zero,
    /// An [`crate::Error::Unconnected`] error (PyTorch's `allow_unused=False`).
    Error,
}

/// Options of [`crate::Tape::gradient_with`].
#[derive(Debug, Clone, Default)]
pub struct GradientOptions<E: Float = f32> {
    /// The gradient of the target itself (the vector of a vector–Jacobian
    /// product); required for a non-scalar target. `None` means 1 for a
    /// scalar target.
    pub output_grad: Option<Tensor<E>>,
    /// Policy for sources with no path to the target.
    pub unconnected: Unconnected,
}

/// Gradients keyed by parameter, in the order the parameters were given.
///
/// `grads[&w]` panics if `w` has no gradient; `grads.get(&w)` returns an
/// `Option`.
#[derive(Debug, Clone)]
pub struct Gradients<E: Float = f32> {
    entries: Vec<(Parameter<E>, Option<Tensor<E>>)>,
}

impl<E: Float> Gradients<E> {
    pub(crate) fn new(entries: Vec<(Parameter<E>, Option<Tensor<E>>)>) -> Self {
        Gradients { entries }
    }

    /// Builds gradients by hand (tests, custom training loops, gradient
    /// accumulation).
    pub fn from_pairs(entries: Vec<(Parameter<E>, Option<Tensor<E>>)>) -> Self {
        Gradients { entries }
    }

    /// The gradient of `p`, if it has one.
    pub fn get(&self, p: &Parameter<E>) -> Option<&Tensor<E>> {
        self.entries
            .iter()
            .find(|(q, _)| q == p)
            .and_then(|(_, g)| g.as_ref())
    }

    /// (parameter, gradient) pairs in source order.
    pub fn iter(&self) -> impl Iterator<Item = (&Parameter<E>, Option<&Tensor<E>>)> {
        self.entries.iter().map(|(p, g)| (p, g.as_ref()))
    }

    /// Number of parameters (with or without a gradient).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<E: Float> Index<&Parameter<E>> for Gradients<E> {
    type Output = Tensor<E>;
    /// `grads[&p]`, the documented panicking form (as `HashMap` indexing);
    /// [`Gradients::get`] returns an `Option` instead.
    ///
    /// # Panics
    /// When the parameter has no gradient (unconnected, or not asked for).
    #[track_caller]
    fn index(&self, p: &Parameter<E>) -> &Tensor<E> {
        self.get(p)
            .unwrap_or_else(|| panic!("parameter '{}' has no gradient", p.name()))
    }
}
