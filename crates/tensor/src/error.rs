//! The tensor crate's error type.

/// Everything a tensor op can refuse. Each message names the op and the
/// shapes or values involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that NumPy broadcasting cannot reconcile.
    #[error("{op}: shapes {lhs:?} and {rhs:?} cannot be broadcast together")]
    Broadcast {
        /// The op that was called.
        op: &'static str,
        /// Shape of the left operand.
        lhs: Vec<usize>,
        /// Shape of the right operand.
        rhs: Vec<usize>,
    },
    /// A data buffer whose length does not fit the requested shape.
    #[error("{op}: {len} elements do not fill shape {shape:?} ({expected} elements)")]
    DataLength {
        /// The op that was called.
        op: &'static str,
        /// Number of elements given.
        len: usize,
        /// Requested shape.
        shape: Vec<usize>,
        /// Number of elements the shape needs.
        expected: usize,
    },
    /// An axis outside `-ndim..ndim`.
    #[error("{op}: axis {axis} is out of range for a tensor of shape {shape:?}")]
    Axis {
        /// The op that was called.
        op: &'static str,
        /// The axis asked for.
        axis: isize,
        /// Shape of the tensor.
        shape: Vec<usize>,
    },
    /// An index outside the size of the axis it indexes.
    #[error("{op}: index {index} is out of range for axis {axis} of size {size}")]
    Index {
        /// The op that was called.
        op: &'static str,
        /// The offending index.
        index: usize,
        /// The axis it indexes.
        axis: usize,
        /// The size of that axis.
        size: usize,
    },
    /// Shapes that do not fit the op (matmul inner sizes, conv channels, ...).
    #[error("{op}: {msg}")]
    Shape {
        /// The op that was called.
        op: &'static str,
        /// What is wrong, with the shapes.
        msg: String,
    },
    /// A tensor too large to exist: its element count overflows `usize`,
    /// its size exceeds what one allocation may hold, or the allocator
    /// refused it.
    #[error("{op}: a tensor of shape {shape:?} needs {} bytes, more than can be allocated", fmt_bytes(*.bytes))]
    TooLarge {
        /// The op that was called.
        op: &'static str,
        /// The shape asked for.
        shape: Vec<usize>,
        /// The bytes it needs (`u128::MAX` when even that overflows).
        bytes: u128,
    },
    /// An argument outside its domain (a zero stride, a negative step, ...).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The op that was called.
        op: &'static str,
        /// What is wrong, with the value.
        msg: String,
    },
}

fn fmt_bytes(b: u128) -> String {
    if b == u128::MAX {
        "more than 2^128".to_string()
    } else {
        b.to_string()
    }
}

/// Result alias of the tensor crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub(crate) fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}
