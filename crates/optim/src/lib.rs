//! # tapir-optim
//!
//! Optimizers for Tapir: `opt.apply_gradients(&grads)` turns the tape's
//! [`Gradients`](tapir_autograd::Gradients) into in-place parameter updates.
//!
//! ```
//! use tapir_autograd::{Parameter, Tape};
//! use tapir_optim::Adam;
//! use tapir_tensor::Tensor;
//!
//! let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![3.0, -2.0], [2])?);
//! let mut opt = Adam::new(0.1).build()?;
//! for _ in 0..200 {
//!     let tape = Tape::new();
//!     let loss = tape.watch(&w).square().sum();
//!     let grads = tape.gradient(&loss, [&w])?;
//!     opt.apply_gradients(&grads)?;
//! }
//! assert!(w.value().abs().max()?.item()? < 0.05);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every optimizer has one builder shape: a config struct with PyTorch's
//! defaults, `X::new(lr)`, chainable setters, and `build()`, which
//! validates: `Adam::new(1e-3).amsgrad(true).build()?`,
//! `AdamW::new(1e-3).weight_decay(0.1).build()?`,
//! `Sgd::new(0.1).momentum(0.9).nesterov(true).build()?`.
//!
//! Each optimizer is one fused elementwise pass over parameter, gradient and
//! state (parallel over chunks for big tensors), or, for those that need a
//! whole tensor (LAMB, LARS, Adafactor, Muon), one pass per parameter;
//! L-BFGS ([`Lbfgs`]) drives a closure instead; gradient transforms
//! (clipping, skipping non-finite steps, accumulation, L1) run before it; a
//! [`Schedule`] sets the learning rate from the optimizer's. See
//! docs/optimizers.md, and src/README.md for maintainers.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod bf16;
mod error;
mod hessian;
mod lbfgs;
mod optimizer;
#[macro_use]
mod optimizers;
mod modern;
mod pieces;
mod rules;
mod schedule;
mod sparse;
mod transform;

pub use bf16::{Rounding, Slot, StateDtype};
pub use error::{Error, Result};
pub use hessian::{
    gauss_newton_bartlett, gauss_newton_bartlett_with, hutchinson, objective, rademacher,
};
pub use lbfgs::{Lbfgs, LbfgsOptimizer, LbfgsState, LineSearch};
pub use modern::{
    Adafactor, Ademamix, Asgd, Lamb, Lars, Lion, Muon, MuonScale, NsPrecision, Rprop,
    ScheduleFreeAdamW, ScheduleFreeSgd, Sophia,
};
pub use optimizer::{GroupOptions, Optimizer, OptimizerState, ParamState, StepReport, WeightDecay};
pub use optimizers::{Adadelta, Adagrad, Adam, AdamW, Adamax, Nadam, Radam, Rmsprop, Sgd};
pub use rules::{Kernel, Momentum, Rule, WholeRule};
pub use schedule::{
    Constant, Cosine, CosineRestarts, Cyclic, Exponential, FnSchedule, InverseTime, Linear,
    MultiStep, OneCycle, Polynomial, ReduceOnPlateau, Schedule, Scheduled, Sequential, StepDecay,
};
pub use sparse::SparseAdam;
pub use transform::{Accumulator, AccumulatorState, EmaState, GradTransform, ParamEma};
