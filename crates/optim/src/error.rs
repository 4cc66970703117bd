//! The optim crate's error type.

/// What building or stepping an optimizer can refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter outside its domain, named with its value: an
    /// optimizer's, a transform's, a schedule's or a parameter group's.
    #[error("{optimizer}: {name} = {value} is invalid: {why}")]
    Hyperparameter {
        /// The optimizer, transform or schedule.
        optimizer: &'static str,
        /// The hyperparameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The domain it must lie in.
        why: &'static str,
    },
    /// bf16 state asked of a rule that needs each parameter whole.
    #[error(
        "{optimizer}: state_dtype: bf16 state is for elementwise rules, and {optimizer} \
         updates each parameter whole; keep its state in the element type"
    )]
    StateDtype {
        /// The optimizer.
        optimizer: &'static str,
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
    /// The learning rate that would reach the update rule for a parameter
    /// is negative or not finite: the schedule returned it (a closure can
    /// return anything) or a group's scale took it there. Checked before any
    /// parameter or state changes.
    #[error(
        "apply_gradients: {optimizer}: learning rate {lr} for '{name}' at step {step} is invalid: \
         must be finite and >= 0 (the schedule gave {scheduled}{})",
        group_note(.group, .scale)
    )]
    LearningRate {
        /// The optimizer.
        optimizer: &'static str,
        /// Parameter name.
        name: String,
        /// The optimizer step (the schedule position).
        step: u64,
        /// The rate that would have been used.
        lr: f64,
        /// The schedule's rate before the group scale.
        scheduled: f64,
        /// Index of the parameter's group, in the order added, if any.
        group: Option<usize>,
        /// The group's learning-rate scale (1 without one).
        scale: f64,
    },
    /// A parameter whose shape changed (with `Parameter::set`) since its
    /// state (an optimizer's, the accumulation transform's or a
    /// [`crate::ParamEma`]'s) was created; nothing is updated. Restore its
    /// shape, or drop its optimizer state with
    /// [`crate::Optimizer::reset_state`].
    #[error(
        "{optimizer}: '{name}' has shape {param:?}, but its state was made for shape {state:?}"
    )]
    StateShape {
        /// The optimizer or transform holding the state.
        optimizer: &'static str,
        /// Parameter name.
        name: String,
        /// The parameter's shape now.
        param: Vec<usize>,
        /// The shape the state was made for.
        state: Vec<usize>,
    },
    /// The same parameter listed twice in one `Gradients`. Refused rather
    /// than summed or stepped twice: `tape.gradient(&loss, [&w, &w])` gives
    /// the full gradient in both entries, so neither reading is safe.
    #[error(
        "apply_gradients: {optimizer}: parameter '{name}' appears more than once in the gradients"
    )]
    DuplicateParameter {
        /// The optimizer.
        optimizer: &'static str,
        /// Parameter name.
        name: String,
    },
    /// Two different parameters with one name. Saved state is keyed by
    /// name, so an optimizer refuses a parameter whose name another one it
    /// tracks already has (when it would first create state for it), and
    /// `load_state` refuses two candidates for one saved name.
    #[error(
        "{optimizer}: two different parameters are named '{name}' (ids {first} and {second}); \
         saved state is keyed by name, so names must be unique"
    )]
    DuplicateName {
        /// The optimizer.
        optimizer: &'static str,
        /// The shared name.
        name: String,
        /// Id of the parameter seen first.
        first: u64,
        /// Id of the other one.
        second: u64,
    },
    /// `apply_gradients` between [`Optimizer::eval`](crate::Optimizer::eval)
    /// and [`Optimizer::train`](crate::Optimizer::train): the parameters sit
    /// at the evaluation point, and a step from there would be wrong.
    #[error("{optimizer}: apply_gradients in evaluation mode; call train(&params) first")]
    EvalMode {
        /// The optimizer.
        optimizer: &'static str,
    },
    /// A saved state that does not fit the parameters.
    #[error("load_state: {0}")]
    State(String),
    /// A tensor op failed.
    #[error(transparent)]
    Tensor(#[from] tapir_tensor::Error),
    /// A tape op or gradient failed (in a Hessian estimate's closure).
    #[error(transparent)]
    Autograd(#[from] tapir_autograd::Error),
}

/// ", group 1 scales it by 0.5", or nothing without a group.
fn group_note(group: &Option<usize>, scale: &f64) -> String {
    match group {
        Some(i) => format!(", group {i} scales it by {scale}"),
        None => String::new(),
    }
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
