//! The autograd crate's error type.

/// What recording or differentiating can refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor op failed (bad shapes, axes, indices).
    #[error(transparent)]
    Tensor(#[from] tapir_tensor::Error),
    /// Two Vars from different tapes met in one op, or a target or source
    /// belongs to another tape.
    #[error("{op}: the Vars belong to different tapes")]
    TapeMismatch {
        /// The op that was called.
        op: &'static str,
    },
    /// `gradient` of a non-scalar target without an output gradient.
    #[error("gradient: the target has shape {shape:?}; a non-scalar target needs an output gradient (GradientOptions::output_grad)")]
    NonScalarTarget {
        /// Shape of the target.
        shape: Vec<usize>,
    },
    /// An output gradient whose shape differs from the target's.
    #[error("gradient: output gradient has shape {got:?}, the target has shape {want:?}")]
    OutputGradShape {
        /// Shape given.
        got: Vec<usize>,
        /// Shape of the target.
        want: Vec<usize>,
    },
    /// A Parameter whose value changed shape between `watch` and `gradient`.
    #[error("gradient: parameter '{name}' had shape {watched:?} when watched and has {now:?} now")]
    ParameterShapeChanged {
        /// The parameter's name.
        name: String,
        /// Shape when watched.
        watched: Vec<usize>,
        /// Shape now.
        now: Vec<usize>,
    },
    /// A source with no path to the target, under `Unconnected::Error`.
    #[error("gradient: source '{name}' is not connected to the target")]
    Unconnected {
        /// The source's name (parameter name, or `var#id`).
        name: String,
    },
    /// `gradcheck` found an analytic derivative that disagrees with the
    /// finite difference.
    #[error("gradcheck: {order} derivative of input {input} at flat index {index}: analytic {analytic}, numeric {numeric}")]
    GradcheckMismatch {
        /// "first" or "second".
        order: &'static str,
        /// Which input.
        input: usize,
        /// Flat index within that input.
        index: usize,
        /// Value from the tape.
        analytic: f64,
        /// Central finite difference.
        numeric: f64,
    },
    /// `gradcheck_directional` found a directional derivative that
    /// disagrees with the finite difference along the same direction.
    #[error("gradcheck_directional: {order} derivative along a random direction: analytic {analytic}, numeric {numeric}")]
    GradcheckDirectionMismatch {
        /// "first" or "second".
        order: &'static str,
        /// Value from the tape.
        analytic: f64,
        /// Central finite difference.
        numeric: f64,
    },
    /// A backward rule returned a gradient whose shape is not its input's.
    /// The reverse pass checks every rule's result, built-in or custom, so
    /// a faulty rule is reported here instead of being broadcast into a
    /// wrong value.
    #[error("backward of {op}: the gradient for input {input} has shape {got:?}, but the input has shape {want:?}")]
    BackwardShape {
        /// The op whose rule returned it.
        op: String,
        /// Which input of the op (0-based).
        input: usize,
        /// Shape of the returned gradient.
        got: Vec<usize>,
        /// Shape of the input.
        want: Vec<usize>,
    },
    /// An error raised inside an op's backward rule (a custom op's
    /// backward failing, or a tensor op inside a rule), named by the op
    /// whose rule ran.
    #[error("backward of {op}: {source}")]
    Backward {
        /// The op whose rule failed.
        op: String,
        /// What failed.
        source: Box<Error>,
    },
    /// A custom op's backward returned the wrong number or shapes of gradients.
    #[error("custom op '{name}': {msg}")]
    Custom {
        /// The op's name.
        name: String,
        /// What went wrong.
        msg: String,
    },
}

/// Result alias of the autograd crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
