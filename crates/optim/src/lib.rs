//! # tapir-optim
//!
//! Optimizers, gradient transforms and learning-rate schedules for Tapir.
//! Not implemented yet: see the optim issue. The crate exists so the
//! workspace layout and dependency direction are fixed.
#![deny(missing_docs)]

pub use tapir_tensor as tensor;
