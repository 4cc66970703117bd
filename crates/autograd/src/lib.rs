//! # tapir-autograd
//!
//! The reverse-mode gradient tape of Tapir (`Tape`, `Var`, `Parameter`,
//! `tape.gradient()`). Not implemented yet: see the autograd issue. The crate
//! exists so the workspace layout and dependency direction are fixed
//! (`tensor` ← `autograd` ← `optim`).
#![deny(missing_docs)]

pub use tapir_tensor as tensor;
