//! The nn crate's error type.

use std::path::PathBuf;

/// What loading, saving or restoring can refuse. Each message names the
/// file or the parameter and the shapes involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An op of the autograd or tensor crate failed.
    #[error(transparent)]
    Autograd(#[from] tapir_autograd::Error),
    /// The optimizer refused a saved state.
    #[error(transparent)]
    Optim(#[from] tapir_optim::Error),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file that is not a valid safetensors file or checkpoint
    /// (truncated, corrupted, or from something else).
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A saved tensor's dtype differs from the model's and conversion was
    /// not asked for.
    #[error(
        "{name}: saved as {saved}, the model holds {model} (LoadOptions::convert_dtype converts)"
    )]
    Dtype {
        /// The tensor's name.
        name: String,
        /// The dtype in the file.
        saved: String,
        /// The model's float type.
        model: &'static str,
    },
    /// A saved tensor whose shape differs from the parameter's.
    #[error("{name}: the model has shape {model:?}, the saved tensor has {saved:?}")]
    ShapeMismatch {
        /// The parameter or buffer.
        name: String,
        /// Its shape in the model.
        model: Vec<usize>,
        /// Its shape in the file.
        saved: Vec<usize>,
    },
    /// Names that the model has and the file lacks, or the other way,
    /// under a strict load.
    #[error("state dict does not match the model: missing {missing:?}, unexpected {unexpected:?} (LoadOptions::strict(false) loads the rest)")]
    Keys {
        /// In the model, not in the file.
        missing: Vec<String>,
        /// In the file, not in the model.
        unexpected: Vec<String>,
    },
}

/// `Result` with the nn crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn format(path: &std::path::Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}
