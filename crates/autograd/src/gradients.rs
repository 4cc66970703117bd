//! The result of `Tape::gradient` and the options that shape it.

use std::ops::Index;
use std::sync::OnceLock;

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::param::Parameter;
use crate::sparse::RowSparse;

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

/// One parameter's gradient: a dense tensor, or the rows an embedding
/// lookup touched ([`RowSparse`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Gradient<E: Float = f32> {
    /// Dense, of the parameter's shape.
    Dense(Tensor<E>),
    /// Zero but in some rows.
    Rows(RowSparse<E>),
}

impl<E: Float> Gradient<E> {
    /// The shape of the (dense) gradient.
    pub fn shape(&self) -> &[usize] {
        match self {
            Gradient::Dense(t) => t.shape(),
            Gradient::Rows(r) => r.shape(),
        }
    }

    /// The values present: the tensor, or the rows' values. Its squared
    /// norm is the gradient's (the rows are distinct).
    pub fn values(&self) -> &Tensor<E> {
        match self {
            Gradient::Dense(t) => t,
            Gradient::Rows(r) => r.values(),
        }
    }

    /// The dense tensor.
    pub fn to_dense(&self) -> Tensor<E> {
        match self {
            Gradient::Dense(t) => t.clone(),
            Gradient::Rows(r) => r.to_dense(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry<E: Float> {
    param: Parameter<E>,
    grad: Option<Gradient<E>>,
    /// A row-sparse gradient made dense, on the first request for a dense
    /// view ([`Gradients::get`], [`Gradients::iter`]).
    dense: OnceLock<Tensor<E>>,
}

impl<E: Float> Entry<E> {
    fn new(param: Parameter<E>, grad: Option<Gradient<E>>) -> Self {
        Entry {
            param,
            grad,
            dense: OnceLock::new(),
        }
    }

    fn dense(&self) -> Option<&Tensor<E>> {
        match self.grad.as_ref()? {
            Gradient::Dense(t) => Some(t),
            Gradient::Rows(r) => Some(self.dense.get_or_init(|| r.to_dense())),
        }
    }
}

/// Gradients keyed by parameter, in the order the parameters were given.
///
/// `grads[&w]` panics if `w` has no gradient; `grads.get(&w)` returns an
/// `Option`. A parameter reached only through [`crate::Var::embedding`]
/// has a row-sparse gradient ([`Gradients::gradient`],
/// [`Gradients::iter_grads`]); the dense views (`get`, `iter`, indexing)
/// make it dense on first use, so code written for dense gradients works
/// unchanged.
#[derive(Debug, Clone)]
pub struct Gradients<E: Float = f32> {
    entries: Vec<Entry<E>>,
}

impl<E: Float> Gradients<E> {
    pub(crate) fn new(entries: Vec<(Parameter<E>, Option<Gradient<E>>)>) -> Self {
        Self::from_grads(entries)
    }

    /// Builds gradients by hand (tests, custom training loops, gradient
    /// accumulation).
    pub fn from_pairs(entries: Vec<(Parameter<E>, Option<Tensor<E>>)>) -> Self {
        Gradients {
            entries: entries
                .into_iter()
                .map(|(p, g)| Entry::new(p, g.map(Gradient::Dense)))
                .collect(),
        }
    }

    /// Builds gradients by hand, dense or row-sparse.
    pub fn from_grads(entries: Vec<(Parameter<E>, Option<Gradient<E>>)>) -> Self {
        Gradients {
            entries: entries.into_iter().map(|(p, g)| Entry::new(p, g)).collect(),
        }
    }

    /// The gradient of `p`, if it has one, as a dense tensor (a row-sparse
    /// one is made dense once and kept).
    pub fn get(&self, p: &Parameter<E>) -> Option<&Tensor<E>> {
        self.entries
            .iter()
            .find(|e| &e.param == p)
            .and_then(Entry::dense)
    }

    /// The gradient of `p` as the tape made it: dense or row-sparse.
    pub fn gradient(&self, p: &Parameter<E>) -> Option<&Gradient<E>> {
        self.entries
            .iter()
            .find(|e| &e.param == p)
            .and_then(|e| e.grad.as_ref())
    }

    /// (parameter, gradient) pairs in source order, gradients dense (see
    /// [`Gradients::get`]).
    pub fn iter(&self) -> impl Iterator<Item = (&Parameter<E>, Option<&Tensor<E>>)> {
        self.entries.iter().map(|e| (&e.param, e.dense()))
    }

    /// (parameter, gradient) pairs in source order, as the tape made them:
    /// what an optimizer that updates only the rows present reads.
    pub fn iter_grads(&self) -> impl Iterator<Item = (&Parameter<E>, Option<&Gradient<E>>)> {
        self.entries.iter().map(|e| (&e.param, e.grad.as_ref()))
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
            .filter_map(|e| e.grad.as_ref())
            .map(|g| g.values().norm_sq())
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
            for e in &mut self.entries {
                let scaled = match &e.grad {
                    None => continue,
                    Some(Gradient::Dense(t)) => Gradient::Dense(t.mul_scalar(s)),
                    Some(Gradient::Rows(r)) => {
                        Gradient::Rows(r.with_values(r.values().mul_scalar(s))?)
                    }
                };
                *e = Entry::new(e.param.clone(), Some(scaled));
            }
        }
        Ok(total)
    }

    /// A new set of gradients with `f(parameter, gradient)` applied to
    /// every gradient present (optax's `tree_map` over updates): custom
    /// clipping, noise, masking. Entries without a gradient stay `None`;
    /// `f` sees and returns dense tensors, so row-sparse gradients come
    /// out dense.
    pub fn map(&self, mut f: impl FnMut(&Parameter<E>, &Tensor<E>) -> Tensor<E>) -> Self {
        let entries = self
            .entries
            .iter()
            .map(|e| {
                let g = e.dense().map(|g| Gradient::Dense(f(&e.param, g)));
                Entry::new(e.param.clone(), g)
            })
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
