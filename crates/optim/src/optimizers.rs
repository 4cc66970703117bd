//! The optimizers: config structs with PyTorch's defaults, validated when
//! built into an [`Optimizer`].
//!
//! `Adam::new(lr)` returns the built `Optimizer` rather than the config: it
//! is the one-line form of the design's public API (`let mut opt =
//! Adam::new(1e-3)?`), and the configs are plain structs built with `build`.
#![allow(clippy::new_ret_no_self)]

use tapir_tensor::Float;

use crate::error::{check, check_lr, Result};
use crate::optimizer::{Optimizer, WeightDecay};
use crate::rules::*;

fn beta_ok(name: &'static str, which: &'static str, b: f64) -> Result<()> {
    check(
        name,
        which,
        b,
        (0.0..1.0).contains(&b),
        "must lie in [0, 1)",
    )
}
fn eps_ok(name: &'static str, eps: f64) -> Result<()> {
    check(
        name,
        "eps",
        eps,
        eps > 0.0 && eps.is_finite(),
        "must be finite and > 0",
    )
}

/// Stochastic gradient descent θ ← θ − α·g, with optional momentum
/// ([`Momentum`]) and weight decay (`torch.optim.SGD`; Keras `SGD`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// α (PyTorch requires it; 0.01 here as Keras).
    pub lr: f64,
    /// Momentum form.
    pub momentum: Momentum,
    /// Weight decay (PyTorch's `weight_decay` is [`WeightDecay::L2`]).
    pub weight_decay: WeightDecay,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            lr: 0.01,
            momentum: Momentum::None,
            weight_decay: WeightDecay::None,
        }
    }
}

impl Sgd {
    /// Plain gradient descent with learning rate `lr`.
    ///
    /// # Errors
    /// A negative learning rate.
    pub fn new<E: Float>(lr: f64) -> Result<Optimizer<E>> {
        Sgd {
            lr,
            ..Default::default()
        }
        .build()
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("SGD", self.lr)?;
        match self.momentum {
            Momentum::None => {}
            Momentum::HeavyBall {
                momentum,
                dampening,
            } => {
                check(
                    "SGD",
                    "momentum",
                    momentum,
                    (0.0..1.0).contains(&momentum),
                    "must lie in [0, 1)",
                )?;
                check(
                    "SGD",
                    "dampening",
                    dampening,
                    (0.0..=1.0).contains(&dampening),
                    "must lie in [0, 1]",
                )?;
            }
            Momentum::Nesterov { momentum } => {
                check(
                    "SGD",
                    "momentum",
                    momentum,
                    momentum > 0.0 && momentum < 1.0,
                    "must lie in (0, 1) for Nesterov",
                )?;
            }
            Momentum::Ema { beta } => beta_ok("SGD", "beta", beta)?,
        }
        Optimizer::new(
            Box::new(SgdRule {
                momentum: self.momentum,
            }),
            self.lr,
            self.weight_decay,
        )
    }
}

/// Adam (Kingma & Ba 2015) with bias correction, ε outside the square root
/// (`torch.optim.Adam`; the seed's formula):
/// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − α m̂ / (√v̂ + ε).
/// With `amsgrad`, v̂ uses the running maximum of v.
/// Defaults: α 1e-3, β (0.9, 0.999), ε 1e-8 (Keras: ε 1e-7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    /// α.
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Weight decay: L2 for `Adam`, decoupled for [`Adam::adamw`].
    pub weight_decay: WeightDecay,
    /// AMSGrad (Reddi et al. 2018).
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
            amsgrad: false,
        }
    }
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's other defaults.
    ///
    /// # Errors
    /// A negative learning rate.
    pub fn new<E: Float>(lr: f64) -> Result<Optimizer<E>> {
        Adam {
            lr,
            ..Default::default()
        }
        .build()
    }

    /// AdamW's configuration (`torch.optim.AdamW`): decoupled weight decay,
    /// default λ = 0.01.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        Adam {
            lr,
            weight_decay: WeightDecay::Decoupled(weight_decay),
            ..Default::default()
        }
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Adam", self.lr)?;
        beta_ok("Adam", "beta1", self.beta1)?;
        beta_ok("Adam", "beta2", self.beta2)?;
        eps_ok("Adam", self.eps)?;
        let rule = AdamRule {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            amsgrad: self.amsgrad,
        };
        Optimizer::new(Box::new(rule), self.lr, self.weight_decay)
    }
}

/// Shorthand for [`Adam::adamw`]`(lr, 0.01).build()`: AdamW with PyTorch's
/// defaults.
///
/// # Errors
/// A negative learning rate.
pub fn adamw<E: Float>(lr: f64) -> Result<Optimizer<E>> {
    Adam::adamw(lr, 0.01).build()
}

macro_rules! simple_config {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $default:expr),* $(,)? } => $label:literal, |$s:ident| $build:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            /// Learning rate α.
            pub lr: f64,
            $($(#[$fdoc])* pub $field: f64,)*
            /// Weight decay (PyTorch's `weight_decay` is L2).
            pub weight_decay: WeightDecay,
        }

        impl $name {
            /// With learning rate `lr` and PyTorch's other defaults.
            ///
            /// # Errors
            /// A negative learning rate.
            pub fn new<E: Float>(lr: f64) -> Result<Optimizer<E>> {
                $name { lr, ..Default::default() }.build()
            }

            /// Validates and builds.
            ///
            /// # Errors
            /// A hyperparameter outside its domain, named with its value.
            pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
                let $s = self;
                check_lr($label, $s.lr)?;
                let rule: Box<dyn Rule<E>> = $build;
                Optimizer::new(rule, $s.lr, $s.weight_decay)
            }
        }
    };
}

simple_config!(
    /// Adamax (Kingma & Ba 2015, §7): u ← max(β₂u, |g| + ε),
    /// θ ← θ − α/(1−β₁ᵗ) · m/u (`torch.optim.Adamax`; defaults α 2e-3,
    /// β (0.9, 0.999), ε 1e-8).
    Adamax { /// β₁.
        beta1: 0.9, /// β₂.
        beta2: 0.999, /// ε.
        eps: 1e-8 } => "Adamax", |s| {
        beta_ok("Adamax", "beta1", s.beta1)?;
        beta_ok("Adamax", "beta2", s.beta2)?;
        eps_ok("Adamax", s.eps)?;
        Box::new(AdamaxRule { beta1: s.beta1, beta2: s.beta2, eps: s.eps })
    }
);

simple_config!(
    /// NAdam (Dozat 2016) as `torch.optim.NAdam`: Adam with Nesterov
    /// momentum and the μₜ = β₁(1 − ½·0.96^(t·ψ)) warm-up of the momentum;
    /// defaults α 2e-3, β (0.9, 0.999), ε 1e-8, ψ 4e-3.
    Nadam { /// β₁.
        beta1: 0.9, /// β₂.
        beta2: 0.999, /// ε.
        eps: 1e-8, /// ψ, the momentum decay.
        momentum_decay: 4e-3 } => "NAdam", |s| {
        beta_ok("NAdam", "beta1", s.beta1)?;
        beta_ok("NAdam", "beta2", s.beta2)?;
        eps_ok("NAdam", s.eps)?;
        check("NAdam", "momentum_decay", s.momentum_decay, s.momentum_decay >= 0.0, "must be >= 0")?;
        Box::new(NadamRule { beta1: s.beta1, beta2: s.beta2, eps: s.eps, momentum_decay: s.momentum_decay })
    }
);

simple_config!(
    /// RAdam (Liu et al. 2020) as `torch.optim.RAdam`: Adam whose adaptive
    /// step is rectified by r(ρₜ) once ρₜ > 5 and replaced by plain momentum
    /// before; defaults α 1e-3, β (0.9, 0.999), ε 1e-8.
    Radam { /// β₁.
        beta1: 0.9, /// β₂.
        beta2: 0.999, /// ε.
        eps: 1e-8 } => "RAdam", |s| {
        beta_ok("RAdam", "beta1", s.beta1)?;
        beta_ok("RAdam", "beta2", s.beta2)?;
        eps_ok("RAdam", s.eps)?;
        Box::new(RadamRule { beta1: s.beta1, beta2: s.beta2, eps: s.eps })
    }
);

simple_config!(
    /// Adagrad (Duchi et al. 2011): s ← s + g², θ ← θ − αₜ g/(√s + ε) with
    /// αₜ = α/(1 + (t−1)·lr_decay) (`torch.optim.Adagrad`; defaults α 1e-2,
    /// ε 1e-10, initial accumulator 0; Keras: 0.1 and ε 1e-7).
    Adagrad { /// Learning-rate decay per step.
        lr_decay: 0.0, /// Initial value of s.
        initial_accumulator: 0.0, /// ε.
        eps: 1e-10 } => "Adagrad", |s| {
        eps_ok("Adagrad", s.eps)?;
        check("Adagrad", "lr_decay", s.lr_decay, s.lr_decay >= 0.0, "must be >= 0")?;
        check("Adagrad", "initial_accumulator", s.initial_accumulator, s.initial_accumulator >= 0.0, "must be >= 0")?;
        Box::new(AdagradRule { lr_decay: s.lr_decay, initial_accumulator: s.initial_accumulator, eps: s.eps })
    }
);

simple_config!(
    /// RMSprop (Tieleman & Hinton 2012) as `torch.optim.RMSprop`:
    /// v ← αv + (1−α)g², θ ← θ − η g/(√v + ε); `centered` subtracts the
    /// squared mean gradient; `momentum` > 0 adds a buffer. Defaults
    /// η 1e-2, α 0.99, ε 1e-8 (Keras: η 1e-3, ρ 0.9, ε 1e-7).
    Rmsprop { /// α, the smoothing constant.
        alpha: 0.99, /// ε.
        eps: 1e-8, /// Momentum (0 = none).
        momentum: 0.0 } => "RMSprop", |s| {
        beta_ok("RMSprop", "alpha", s.alpha)?;
        eps_ok("RMSprop", s.eps)?;
        check("RMSprop", "momentum", s.momentum, (0.0..1.0).contains(&s.momentum), "must lie in [0, 1)")?;
        Box::new(RmspropRule { alpha: s.alpha, eps: s.eps, momentum: s.momentum, centered: false })
    }
);

impl Rmsprop {
    /// The centered variant (`centered=True`).
    ///
    /// # Errors
    /// A hyperparameter outside its domain.
    pub fn build_centered<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("RMSprop", self.lr)?;
        beta_ok("RMSprop", "alpha", self.alpha)?;
        eps_ok("RMSprop", self.eps)?;
        check(
            "RMSprop",
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "must lie in [0, 1)",
        )?;
        let rule = RmspropRule {
            alpha: self.alpha,
            eps: self.eps,
            momentum: self.momentum,
            centered: true,
        };
        Optimizer::new(Box::new(rule), self.lr, self.weight_decay)
    }
}

simple_config!(
    /// Adadelta (Zeiler 2012) as `torch.optim.Adadelta`: v ← ρv + (1−ρ)g²,
    /// Δ = √(u + ε)/√(v + ε)·g, u ← ρu + (1−ρ)Δ², θ ← θ − αΔ; defaults
    /// α 1.0, ρ 0.9, ε 1e-6 (Keras: α 1e-3, ρ 0.95, ε 1e-7).
    Adadelta { /// ρ.
        rho: 0.9, /// ε.
        eps: 1e-6 } => "Adadelta", |s| {
        beta_ok("Adadelta", "rho", s.rho)?;
        eps_ok("Adadelta", s.eps)?;
        Box::new(AdadeltaRule { rho: s.rho, eps: s.eps })
    }
);

impl Default for Adamax {
    fn default() -> Self {
        Adamax {
            lr: 2e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
        }
    }
}
impl Default for Nadam {
    fn default() -> Self {
        Nadam {
            lr: 2e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            momentum_decay: 4e-3,
            weight_decay: WeightDecay::None,
        }
    }
}
impl Default for Radam {
    fn default() -> Self {
        Radam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
        }
    }
}
impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            initial_accumulator: 0.0,
            eps: 1e-10,
            weight_decay: WeightDecay::None,
        }
    }
}
impl Default for Rmsprop {
    fn default() -> Self {
        Rmsprop {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            weight_decay: WeightDecay::None,
        }
    }
}
impl Default for Adadelta {
    fn default() -> Self {
        Adadelta {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: WeightDecay::None,
        }
    }
}
