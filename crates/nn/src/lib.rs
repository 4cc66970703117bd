//! # tapir-nn
//!
//! Models for Tapir: the [`Module`] trait and `#[derive(Module)]`, layers,
//! losses, initialisers, metrics, and checkpoints (PyTorch's `torch.nn`
//! and `state_dict`, Keras's layers and `ModelCheckpoint`).
//!
//! A model is a struct of layers; its parameters are named by their path
//! in it, exactly as PyTorch's `state_dict` keys for the same
//! architecture, so weights move between the two by name. The training
//! loop reads as TensorFlow's:
//!
//! ```
//! use tapir_nn::{Forward, Linear, Module, Relu, Sequential};
//! use tapir_autograd::Tape;
//! use tapir_optim::Adam;
//! use tapir_tensor::{Rng, Tensor};
//!
//! let mut rng = Rng::seed(0);
//! let model: Sequential = Sequential::new()
//!     .add(Linear::new(2, 16, &mut rng))
//!     .add(Relu)
//!     .add(Linear::new(16, 1, &mut rng));
//! let mut opt = Adam::new(1e-2).build()?;
//! let x = Tensor::randn([64, 2], &mut rng);
//! let y = x.sum_axes(&[1], true)?; // learn x0 + x1
//! let mut first = None;
//! for _ in 0..100 {
//!     let tape = Tape::new();
//!     let pred = model.forward(&tape.constant(x.clone()))?;
//!     let loss = pred.mse(&tape.constant(y.clone()))?;
//!     first.get_or_insert(loss.value().item()?);
//!     let grads = tape.gradient(&loss, model.parameters())?;
//!     opt.apply_gradients(&grads)?;
//!     if loss.value().item()? < 1e-3 { break; }
//! }
//! let tape = Tape::new();
//! let loss = model.forward(&tape.constant(x.clone()))?.mse(&tape.constant(y))?;
//! assert!(loss.value().item()? < first.unwrap() / 10.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

// The derive expands to `::tapir_nn::...`; inside this crate that path
// must resolve too.
extern crate self as tapir_nn;

pub mod checkpoint;
pub mod data;
mod error;
pub mod init;
mod io;
pub mod layers;
pub mod loss;
pub mod metrics;
mod module;

pub use checkpoint::{Checkpoint, CheckpointManager};
pub use error::{Error, Result};
pub use io::{
    load_state_dict, read_safetensors, write_atomic, write_safetensors, LoadOptions, LoadReport,
};
pub use layers::*;
pub use module::{Buffer, Entry, Module, Path, StateDict, TrainingFlag};
pub use tapir_derive::Module;
