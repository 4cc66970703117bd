//! # tapir-distributed
//!
//! Data-parallel training for Tapir, the counterpart of PyTorch's
//! `DistributedDataParallel` and `ZeroRedundancyOptimizer`: every rank
//! holds the model, trains on its own shard of each batch
//! (`DataLoader::shard` in the nn crate), and the ranks agree on every
//! step.
//!
//! - [`DataParallel`]: rank 0's parameters broadcast at start (after
//!   checking that every rank has the same names and shapes), gradients
//!   averaged over the ranks in ~25 MB buckets before each step.
//! - [`ShardedOptimizer`]: ZeRO stage 1: each rank keeps the optimizer
//!   state of its share of the parameters only; gradients are
//!   reduce-scattered, parameters all-gathered.
//! - Backends ([`Communicator`]): [`MpiComm`] over the system's MPI
//!   (cargo feature `mpi`; launch with `mpirun`), and [`LocalGroup`], ranks
//!   as threads of one process, which needs nothing installed (tests,
//!   trying things out).
//!
//! A rank that fails stops the others instead of leaving them waiting in
//! a collective: MPI aborts the job, the in-process backend returns
//! [`Error::PeerFailed`] on every other rank. See docs/distributed.md.
#![deny(missing_docs)]

mod comm;
mod error;
#[cfg(feature = "mpi")]
mod mpi;
mod parallel;

pub use comm::{CommFloat, Communicator, LocalComm, LocalGroup};
pub use error::{Error, Result};
#[cfg(feature = "mpi")]
pub use mpi::MpiComm;
pub use parallel::{DataParallel, ShardedOptimizer, BUCKET_BYTES};
