//! # Tapir
//!
//! An autodiff tensor framework with built-in optimizers: tensors
//! ([`tensor`]), a reverse-mode gradient tape ([`autograd`]) and optimizers
//! ([`optim`]). This crate only re-exports the member crates; most programs
//! start with `use tapir::prelude::*;`.
//!
//! ```
//! use tapir::prelude::*;
//! let mut rng = Rng::seed(0);
//! let x: Tensor = Tensor::randn([8, 3], &mut rng);
//! let w: Tensor = Tensor::randn([3, 1], &mut rng);
//! let y = x.matmul(&w)?;
//! assert_eq!(y.shape(), &[8, 1]);
//! # Ok::<(), tapir::tensor::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub use tapir_autograd as autograd;
/// Data-parallel training: `DataParallel`, `ShardedOptimizer`, the
/// in-process `LocalGroup`, and with the cargo feature `mpi` the MPI
/// backend `MpiComm`.
pub use tapir_distributed as distributed;
pub use tapir_nn as nn;
pub use tapir_optim as optim;
pub use tapir_tensor as tensor;
pub use tapir_tensor::threads::set_num_threads;

/// The README's example, compiled and run as a doctest so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeExample;

/// docs/getting-started.md's examples, run as doctests.
#[doc = include_str!("../docs/getting-started.md")]
#[cfg(doctest)]
pub struct GettingStarted;

/// docs/custom-layers.md's examples, compiled as doctests.
#[doc = include_str!("../docs/custom-layers.md")]
#[cfg(doctest)]
pub struct CustomLayers;

/// The names most programs need: tensors, the tape, the common layers and
/// the `Module` trait (and derive), every optimizer, and the
/// learning-rate schedules whose names cannot be mistaken for layers.
/// The schedules `Linear`, `Sequential` and `Constant` stay in
/// [`optim`] (`tapir::optim::Linear`): those names belong to model layers
/// and initialisers in most frameworks, and a glob import should not take
/// them.
pub mod prelude {
    pub use tapir_autograd::{GradientOptions, Gradients, Parameter, Tape, Unconnected, Var};
    pub use tapir_nn::{
        AttentionMask, AvgPool2d, Buffer, Checkpoint, CheckpointManager, Conv2d, Dropout,
        Embedding, Flatten, Forward, LayerNorm, Linear, LoadOptions, MaxPool2d, Module,
        MultiHeadAttention, Padding, Relu, Sequential, TransformerBlock,
    };
    pub use tapir_optim::{
        Adadelta, Adafactor, Adagrad, Adam, AdamW, Adamax, Ademamix, Asgd, Cosine, CosineRestarts,
        Cyclic, Exponential, FnSchedule, GradTransform, GroupOptions, InverseTime, Lamb, Lars,
        Lion, Momentum, MultiStep, Muon, Nadam, OneCycle, Optimizer, Polynomial, Radam,
        ReduceOnPlateau, Rmsprop, Rounding, Rprop, Schedule, ScheduleFreeAdamW, ScheduleFreeSgd,
        Sgd, Sophia, SparseAdam, StateDtype, StepDecay, WeightDecay,
    };
    pub use tapir_tensor::{
        Conv1dParams, Conv2dParams, Float, GeluApprox, Pool2dParams, Rng, Tensor,
    };
}
