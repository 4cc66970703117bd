//! The result of `Tape::gradient` and the options that shape it.

use std::ops::Index;

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
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

    /// The global L2 norm √(Σ‖g‖²) over every gradient present, summed in
    /// f64 (the `total_norm` of `torch.nn.utils.clip_grad_norm_`, optax's
    /// `global_norm`). NaN or ∞ when a gradient holds one.
    ///
    /// ```
    /// use tapir_autograd::{Gradients, Parameter};
    /// use tapir_tensor::Tensor;
    /// let p = Parameter::new("p", Tensor::<f32>::zeros([2]));
    /// let grads = Gradients::from_pairs(vec![(p, Some(Tensor::from_vec(vec![3.0, 4.0], [2])?))]);
    /// assert_eq!(grads.global_norm(), 5.0);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn global_norm(&self) -> f64 {
        self.entries
            .iter()
            .filter_map(|(_, g)| g.as_ref())
            .map(|g| g.norm_sq())
            .sum::<f64>()
            .sqrt()
    }

    /// Scales every gradient by max / (norm + 1e-6) when the global norm
    /// exceeds `max`, and returns the norm before clipping: the in-place
    /// `torch.nn.utils.clip_grad_norm_(params, max)` (optax's
    /// `clip_by_global_norm` omits the 1e-6). The optimizer transform
    /// `GradTransform::ClipGlobalNorm` does the same inside a step.
    ///
    /// # Errors
    /// When `max` is not > 0 (NaN included).
    pub fn clip_global_norm(&mut self, max: f64) -> Result<f64> {
        if max.is_nan() || max <= 0.0 {
            return Err(tapir_tensor::Error::InvalidArgument {
                op: "clip_global_norm",
                msg: format!("max must be > 0, got {max}"),
            }
            .into());
        }
        let total = self.global_norm();
        if total > max {
            let s = E::from_f64(max / (total + 1e-6));
            for (_, g) in &mut self.entries {
                if let Some(g) = g {
                    *g = g.mul_scalar(s);
                }
            }
        }
        Ok(total)
    }

    /// A new set of gradients with `f(parameter, gradient)` applied to
    /// every gradient present (optax's `tree_map` over updates): custom
    /// clipping, noise, masking. Entries without a gradient stay `None`.
    pub fn map(&self, mut f: impl FnMut(&Parameter<E>, &Tensor<E>) -> Tensor<E>) -> Self {
        let entries = self
            .entries
            .iter()
            .map(|(p, g)| (p.clone(), g.as_ref().map(|g| f(p, g))))
            .collect();
        Gradients { entries }
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
