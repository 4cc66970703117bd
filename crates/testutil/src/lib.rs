//! Helpers shared by the Tapir crates' integration tests, benches and
//! examples, as a dev-dependency (never published, never a dependency of a
//! library): the reference-fixture parser with `assert_close`, and the
//! tape-overhead workload and the data-parallel workload.
#![deny(missing_docs)]

pub mod data_parallel;
pub mod fixtures;
pub mod tape_chain;

pub use fixtures::{assert_close, parse_fixtures, tolerance, Case};
