//! Layers applied in order.

use tapir_autograd::{Result, Var};
use tapir_tensor::Float;

use super::Forward;
use crate::{Entry, Module, Path};

/// A module with a one-input forward pass: what [`Sequential`] holds.
/// Every type that is both [`Module`] and [`Forward`] is one.
pub trait Layer<E: Float = f32>: Module<E> + Forward<E> + Send + Sync {}

impl<E: Float, T: Module<E> + Forward<E> + Send + Sync> Layer<E> for T {}

/// Layers applied one after another, named `0`, `1`, ... as in
/// `torch.nn.Sequential` (Keras `Sequential`).
///
/// ```
/// use tapir_nn::{Forward, Linear, Module, Relu, Sequential};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let net: Sequential = Sequential::new()
///     .add(Linear::new(4, 8, &mut rng))
///     .add(Relu)
///     .add(Linear::new(8, 1, &mut rng));
/// let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(net.forward(&Var::untracked(Tensor::ones([3, 4])))?.shape(), &[3, 1]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
pub struct Sequential<E: Float = f32> {
    layers: Vec<Box<dyn Layer<E>>>,
}

impl<E: Float> Default for Sequential<E> {
    fn default() -> Self {
        Sequential { layers: Vec::new() }
    }
}

impl<E: Float> std::fmt::Debug for Sequential<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sequential({} layers)", self.layers.len())
    }
}

impl<E: Float> Sequential<E> {
    /// No layers (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Layer<E> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a layer in place.
    pub fn push(&mut self, layer: impl Layer<E> + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<E: Float> Module<E> for Sequential<E> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        for (i, l) in self.layers.iter().enumerate() {
            let mark = path.push(&i.to_string());
            l.visit(path, f);
            path.pop(mark);
        }
    }
    fn set_training(&mut self, training: bool) {
        for l in &mut self.layers {
            l.set_training(training);
        }
    }
}

impl<E: Float> Forward<E> for Sequential<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h)?;
        }
        Ok(h)
    }
}

/// x + f(x) (a residual connection, as in ResNet and transformer blocks;
/// PyTorch writes it inside `forward`). Transparent in names: the wrapped
/// layer's parameters keep their own paths, so `Residual(block)` saves
/// like `block`.
///
/// ```
/// use tapir_nn::{Forward, Linear, Residual};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let res = Residual(Linear::<f32>::new(4, 4, &mut Rng::seed(0)));
/// let x = Var::untracked(Tensor::ones([2, 4]));
/// assert_eq!(res.forward(&x)?.shape(), &[2, 4]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Residual<M>(pub M);

impl<E: Float, M: Module<E>> Module<E> for Residual<M> {
    fn visit(&self, path: &mut crate::Path, f: &mut dyn FnMut(&crate::Path, crate::Entry<'_, E>)) {
        self.0.visit(path, f);
    }
    fn set_training(&mut self, training: bool) {
        self.0.set_training(training);
    }
}

impl<E: Float, M: Forward<E>> Forward<E> for Residual<M> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        x.add(&self.0.forward(x)?)
    }
}
