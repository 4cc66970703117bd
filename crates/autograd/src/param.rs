//! Parameters: named, shared, mutable tensors that optimizers update.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tapir_tensor::{Float, Tensor};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Inner<E: Float> {
    id: u64,
    name: RwLock<Arc<str>>,
    value: RwLock<Tensor<E>>,
}

/// A trainable tensor with a name: the counterpart of `tf.Variable` and
/// `torch.nn.Parameter`.
///
/// Cloning gives another handle to the same parameter (shared, like an
/// `Arc`); [`Parameter::set`] replaces the value for every handle. Each
/// parameter has a unique id, which keys its gradient and optimizer state.
///
/// ```
/// use tapir_autograd::Parameter;
/// use tapir_tensor::Tensor;
/// let w = Parameter::new("w", Tensor::<f32>::zeros([2, 3]));
/// let alias = w.clone();
/// alias.set(Tensor::ones([2, 3]));
/// assert_eq!(w.value().sum().item()?, 6.0);
/// assert_eq!(&*w.name(), "w");
/// # Ok::<(), tapir_tensor::Error>(())
/// ```
pub struct Parameter<E: Float = f32> {
    inner: Arc<Inner<E>>,
}

impl<E: Float> Clone for Parameter<E> {
    fn clone(&self) -> Self {
        Parameter {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: Float> Parameter<E> {
    /// A new parameter holding `value`.
    pub fn new(name: impl Into<String>, value: Tensor<E>) -> Self {
        Parameter {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                name: RwLock::new(Arc::from(name.into())),
                value: RwLock::new(value),
            }),
        }
    }

    /// The unique id (stable for the parameter's lifetime).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The name: the one given at creation, or the last one given by
    /// [`Parameter::rename`]. Optimizers key their state by it, so names
    /// must be unique among the parameters one optimizer updates.
    pub fn name(&self) -> Arc<str> {
        Arc::clone(&self.inner.name.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Gives the parameter a new name, for every handle. A module names
    /// its parameters by their path in the model (`fc1.weight`), as
    /// PyTorch's `named_parameters()` does, so that optimizer state and
    /// checkpoints use the same keys.
    ///
    /// ```
    /// use tapir_autograd::Parameter;
    /// use tapir_tensor::Tensor;
    /// let w = Parameter::new("weight", Tensor::<f32>::zeros([2]));
    /// let alias = w.clone();
    /// w.rename("fc1.weight");
    /// assert_eq!(&*alias.name(), "fc1.weight");
    /// ```
    pub fn rename(&self, name: &str) {
        // Modules rename on every `parameters()` call, nearly always to
        // the name it has: compare under the read lock first.
        if *self.name() == *name {
            return;
        }
        *self.inner.name.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(name);
    }

    /// The current value (a cheap shared clone).
    pub fn value(&self) -> Tensor<E> {
        self.inner
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current shape.
    pub fn shape(&self) -> Vec<usize> {
        self.value().shape().to_vec()
    }

    /// Replaces the value.
    pub fn set(&self, value: Tensor<E>) {
        *self.inner.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Runs `f` on the value in place (optimizers use this; the storage is
    /// copied first only if a tape or another tensor still shares it).
    pub fn update<R>(&self, f: impl FnOnce(&mut Tensor<E>) -> R) -> R {
        f(&mut self.inner.value.write().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<E: Float> PartialEq for Parameter<E> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl<E: Float> fmt::Debug for Parameter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Parameter({}, id {}, shape {:?})",
            self.name(),
            self.id(),
            self.shape()
        )
    }
}
