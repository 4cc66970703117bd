//! The optim crate's error type.

/// What building or stepping an optimizer can refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter outside its domain, named with its value.
    #[error("{optimizer}: {name} = {value} is invalid: {why}")]
    Hyperparameter {
        /// The optimizer or transform.
        optimizer: &'static str,
        /// The hyperparameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The domain it must lie in.
        why: &'static str,
    },
    /// `apply_gradients` got no gradient at all.
    #[error("apply_gradients: no parameter has a gradient")]
    NoGradients,
    /// A gradient whose shape differs from its parameter's.
    #[error(
        "apply_gradients: gradient of '{name}' has shape {grad:?}, the parameter has {param:?}"
    )]
    GradientShape {
        /// Parameter name.
        name: String,
        /// Gradient shape.
        grad: Vec<usize>,
        /// Parameter shape.
        param: Vec<usize>,
    },
    /// A saved state that does not fit the parameters.
    #[error("load_state: {0}")]
    State(String),
    /// A tensor op failed.
    #[error(transparent)]
    Tensor(#[from] tapir_tensor::Error),
}

/// Result alias of the optim crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn check(
    optimizer: &'static str,
    name: &'static str,
    value: f64,
    ok: bool,
    why: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Hyperparameter {
            optimizer,
            name,
            value,
            why,
        })
    }
}

/// A learning rate must be finite and non-negative.
pub(crate) fn check_lr(optimizer: &'static str, lr: f64) -> Result<()> {
    check(
        optimizer,
        "lr",
        lr,
        lr >= 0.0 && lr.is_finite(),
        "must be finite and >= 0",
    )
}
