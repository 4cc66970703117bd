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
