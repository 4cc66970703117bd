//! Layers: one family per file, each a [`Module`](crate::Module) with a
//! [`Forward`] pass over [`Var`]s.

mod activation;
mod attention;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod norm;
mod recurrent;
mod sequential;

pub use activation::{
    Activation, Elu, Gelu, Hardtanh, LeakyRelu, LogSoftmax, Mish, Relu, Sigmoid, Silu, Softmax,
    Softplus, Tanh,
};
pub use attention::{AttentionMask, MultiHeadAttention, TransformerBlock};
pub use conv::{
    AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, Conv2dBuilder, ConvTranspose2d, Flatten,
    MaxPool2d, Padding,
};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use linear::{Bilinear, Linear};
pub use norm::{BatchNorm, GroupNorm, LayerNorm, RmsNorm};
pub use recurrent::{Rnn, RnnCell, RnnKind};
pub use sequential::{Layer, Residual, Sequential};

use tapir_autograd::{Result, Var};
use tapir_tensor::Float;

/// A layer's forward pass from one input to one output (PyTorch's
/// `Module.forward`, Keras's `Layer.call`). The same code records on a
/// tape when `x` is on one and computes values only when `x` is
/// [untracked](Var::untracked).
pub trait Forward<E: Float = f32> {
    /// Applies the layer to `x`.
    ///
    /// # Errors
    /// An input whose shape does not fit the layer, naming the layer and
    /// both shapes.
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>>;
}

/// The error of a layer given an input it cannot take.
pub(crate) fn shape_error(layer: &'static str, msg: String) -> tapir_autograd::Error {
    tapir_autograd::Error::Tensor(tapir_tensor::Error::Shape { op: layer, msg })
}

/// `module.forward(x)` with activation checkpointing
/// ([`Tape::checkpoint`](tapir_autograd::Tape::checkpoint)): the tape keeps
/// the block's input and output only, and the backward pass runs the block
/// again. For deep stacks of transformer blocks, where the activations,
/// not the weights, fill the memory. Gradients equal the plain run's. The
/// module is cloned into the tape (a clone shares its parameters); it must
/// be deterministic (no dropout in training mode). Untracked input (no
/// tape, evaluation): the plain forward.
///
/// ```
/// use tapir_autograd::Tape;
/// use tapir_nn::{checkpointed, Forward, Module, TransformerBlock};
/// use tapir_tensor::{Rng, Tensor};
///
/// let block = TransformerBlock::<f64>::new(8, 2, 16, &mut Rng::seed(0));
/// let x = Tensor::randn([2, 5, 8], &mut Rng::seed(1));
/// let plain = Tape::new();
/// let a = block.forward(&plain.constant(x.clone()))?.square().sum();
/// let tape = Tape::new();
/// let b = checkpointed(&block, &tape.constant(x))?.square().sum();
/// assert!(tape.value_bytes() < plain.value_bytes());
/// let (ga, gb) = (plain.gradient(&a, block.parameters())?, tape.gradient(&b, block.parameters())?);
/// for p in block.parameters() {
///     assert_eq!(ga[&p].to_vec(), gb[&p].to_vec());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The module's error.
pub fn checkpointed<'t, E, M>(module: &M, x: &Var<'t, E>) -> Result<Var<'t, E>>
where
    E: Float,
    M: Forward<E> + crate::Module<E> + Clone + Send + Sync + 'static,
{
    let Some(tape) = x.tape() else {
        return module.forward(x);
    };
    let params = module.parameters();
    let refs: Vec<&tapir_autograd::Parameter<E>> = params.iter().collect();
    let m = module.clone();
    tape.checkpoint(&refs, &[x], move |xs| m.forward(&xs[0]))
}
