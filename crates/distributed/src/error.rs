//! The distributed crate's error type.

/// What a distributed step can refuse or run into.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ranks disagree on the model at start: the parameter count, a
    /// name or a shape.
    #[error("distributed: the ranks' models differ (found on rank {rank}): {what}")]
    Mismatch {
        /// The rank that found the difference.
        rank: usize,
        /// What differs.
        what: String,
    },
    /// Another rank failed (its error or panic) and this one stopped
    /// instead of waiting for it forever.
    #[error("distributed: rank {failed} failed; rank {rank} stops too")]
    PeerFailed {
        /// This rank.
        rank: usize,
        /// The rank that failed first.
        failed: usize,
    },
    /// A buffer handed to a collective has the wrong length.
    #[error("distributed: {op}: {msg}")]
    Buffer {
        /// The collective.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The optimizer refused the step.
    #[error(transparent)]
    Optim(#[from] tapir_optim::Error),
    /// A gradient or tensor operation failed.
    #[error(transparent)]
    Autograd(#[from] tapir_autograd::Error),
}

impl From<tapir_tensor::Error> for Error {
    fn from(e: tapir_tensor::Error) -> Self {
        Error::Autograd(e.into())
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
