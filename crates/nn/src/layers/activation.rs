//! Activations as layers (the functions themselves are `Var` methods:
//! `relu`, `gelu`, `tanh`, ...).

use tapir_autograd::{Result, Var};
use tapir_tensor::{Float, GeluApprox};

use super::Forward;
use crate::Module;

/// Implements `Module<E>` for every float type, holding nothing.
macro_rules! stateless {
    ($name:ident) => {
        impl<E: Float> Module<E> for $name {
            fn visit(
                &self,
                _: &mut crate::Path,
                _: &mut dyn FnMut(&crate::Path, crate::Entry<'_, E>),
            ) {
            }
            fn set_training(&mut self, _: bool) {}
        }
    };
}
pub(crate) use stateless;

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        stateless!($name);

        impl<E: Float> Forward<E> for $name {
            fn forward<'t>(&self, $x: &Var<'t, E>) -> Result<Var<'t, E>> {
                Ok($body)
            }
        }
    };
}

activation!(
    /// max(x, 0) (`torch.nn.ReLU`, Keras `ReLU`).
    Relu, |x| x.relu()
);
activation!(
    /// tanh(x) (`torch.nn.Tanh`).
    Tanh, |x| x.tanh()
);
activation!(
    /// 1 / (1 + e⁻ˣ) (`torch.nn.Sigmoid`).
    Sigmoid, |x| x.sigmoid()
);
activation!(
    /// x·σ(x) (`torch.nn.SiLU`, Keras `swish`).
    Silu, |x| x.silu()
);

activation!(
    /// x·tanh(softplus(x)) (`torch.nn.Mish`; Keras `mish`).
    Mish, |x| x.mish()
);
activation!(
    /// ln(1 + eˣ), computed so that it never overflows
    /// (`torch.nn.Softplus()` with beta 1; Keras `softplus`).
    Softplus, |x| x.softplus()
);
activation!(
    /// clamp(x, −1, 1) (`torch.nn.Hardtanh()` with its default bounds;
    /// gradient 0 at the bounds, as PyTorch's).
    Hardtanh, |x| x.hardtanh(-E::ONE, E::ONE)?
);

/// x for x > 0, α·(eˣ − 1) otherwise (`torch.nn.ELU(alpha)`, default 1;
/// Keras `ELU`).
#[derive(Debug, Clone, Copy)]
pub struct Elu(pub f64);
stateless!(Elu);

impl Default for Elu {
    fn default() -> Self {
        Elu(1.0)
    }
}

impl<E: Float> Forward<E> for Elu {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        Ok(x.elu(E::from_f64(self.0)))
    }
}

/// log softmax along an axis (`torch.nn.LogSoftmax(dim)`).
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax(pub isize);
stateless!(LogSoftmax);

impl<E: Float> Forward<E> for LogSoftmax {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        x.log_softmax(self.0)
    }
}

/// GELU, exact (x·Φ(x), the default) or with the tanh approximation
/// (`torch.nn.GELU(approximate=...)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gelu(pub GeluApprox);
stateless!(Gelu);

impl<E: Float> Forward<E> for Gelu {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        Ok(x.gelu(self.0))
    }
}

/// max(x, 0) + slope·min(x, 0) (`torch.nn.LeakyReLU`, default slope 0.01).
#[derive(Debug, Clone, Copy)]
pub struct LeakyRelu(pub f64);
stateless!(LeakyRelu);

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu(0.01)
    }
}

impl<E: Float> Forward<E> for LeakyRelu {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        Ok(x.leaky_relu(E::from_f64(self.0)))
    }
}

/// Softmax along an axis (`torch.nn.Softmax(dim)`).
#[derive(Debug, Clone, Copy)]
pub struct Softmax(pub isize);
stateless!(Softmax);

impl<E: Float> Forward<E> for Softmax {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        x.softmax(self.0)
    }
}

/// An activation chosen at run time (from a config or a command line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// [`Relu`].
    Relu,
    /// [`Tanh`].
    Tanh,
    /// [`Sigmoid`].
    Sigmoid,
    /// [`Silu`].
    Silu,
    /// Exact [`Gelu`].
    Gelu,
    /// Tanh-approximated [`Gelu`].
    GeluTanh,
    /// [`LeakyRelu`] with this slope.
    LeakyRelu(f64),
    /// x itself.
    Identity,
}
stateless!(Activation);

impl<E: Float> Forward<E> for Activation {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        Ok(match *self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Silu => x.silu(),
            Activation::Gelu => x.gelu(GeluApprox::None),
            Activation::GeluTanh => x.gelu(GeluApprox::Tanh),
            Activation::LeakyRelu(a) => x.leaky_relu(E::from_f64(a)),
            Activation::Identity => x.clone(),
        })
    }
}
