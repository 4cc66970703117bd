//! The optimizers: one builder shape for all of them.
//!
//! Each optimizer is a config struct with pub fields and `Default`
//! (PyTorch's values); `X::new(lr)` returns the config with that learning
//! rate, a chainable setter exists for every option, and `build::<E>()`
//! validates and returns the [`Optimizer`]:
//! `Adam::new(1e-3).amsgrad(true).build()?`. Each default is written once,
//! in the `config!` invocation that declares the field.
//!
//! `weight_decay(λ)` means what it means in PyTorch: L2 (g ← g + λθ) for
//! every optimizer but [`AdamW`], where it is decoupled (θ ← (1 − αλ)θ);
//! `weight_decay_as` takes a [`WeightDecay`] for the other form.

use tapir_tensor::Float;

use crate::bf16::StateDtype;
use crate::error::{check, check_lr, Result};
use crate::optimizer::{Optimizer, WeightDecay};
use crate::rules::*;

pub(crate) fn beta_ok(name: &'static str, which: &'static str, b: f64) -> Result<()> {
    check(
        name,
        which,
        b,
        (0.0..1.0).contains(&b),
        "must lie in [0, 1)",
    )
}
pub(crate) fn eps_ok(name: &'static str, eps: f64) -> Result<()> {
    check(
        name,
        "eps",
        eps,
        eps > 0.0 && eps.is_finite(),
        "must be finite and > 0",
    )
}

/// Declares an optimizer config: the struct with its fields' docs and
/// defaults (the single place each default is written), `Default`, `new`,
/// a setter per field listed before `weight_decay`, and `weight_decay` /
/// `weight_decay_as`. Fields after `manual` get no generated setter (their
/// setters take other types). `build` is written by hand per optimizer.
macro_rules! config {
    (
        $(#[$doc:meta])*
        $name:ident {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr, )*
        }
        $( manual { $( $(#[$mdoc:meta])* $mfield:ident : $mty:ty = $mdefault:expr, )* } )?
        $(#[$wddoc:meta])*
        weight_decay = $wd:expr, as $kind:ident;
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            $(
                $(#[$fdoc])*
                #[doc = concat!("\n\nDefault: `", stringify!($default), "`.")]
                pub $field: $ty,
            )*
            $($(
                $(#[$mdoc])*
                #[doc = concat!("\n\nDefault: `", stringify!($mdefault), "`.")]
                pub $mfield: $mty,
            )*)?
            $(#[$wddoc])*
            #[doc = concat!("\n\nDefault: `", stringify!($wd), "`.")]
            pub weight_decay: WeightDecay,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                    $($($mfield: $mdefault,)*)?
                    weight_decay: $wd,
                }
            }
        }

        impl $name {
            /// The configuration with learning rate `lr` and the defaults
            /// otherwise; `build` validates it.
            pub fn new(lr: f64) -> Self {
                $name {
                    lr,
                    ..Default::default()
                }
            }

            $(
                #[doc = concat!("Sets `", stringify!($field), "` (see the field).")]
                pub fn $field(mut self, $field: $ty) -> Self {
                    self.$field = $field;
                    self
                }
            )*

            #[doc = concat!(
                "Weight decay λ as PyTorch's `weight_decay`: `WeightDecay::",
                stringify!($kind),
                "(λ)`; λ = 0 is `WeightDecay::None`."
            )]
            pub fn weight_decay(mut self, lambda: f64) -> Self {
                self.weight_decay = if lambda == 0.0 {
                    WeightDecay::None
                } else {
                    WeightDecay::$kind(lambda)
                };
                self
            }

            /// Weight decay in an explicit form: `WeightDecay::L2(λ)`
            /// (g ← g + λθ) or `WeightDecay::Decoupled(λ)` (θ ← (1 − αλ)θ).
            pub fn weight_decay_as(mut self, weight_decay: WeightDecay) -> Self {
                self.weight_decay = weight_decay;
                self
            }
        }
    };
}

/// The setter `betas(β₁, β₂)` of an Adam-family config.
macro_rules! betas {
    ($name:ident) => {
        impl $name {
            /// Sets β₁ and β₂ (PyTorch's `betas=(β₁, β₂)`).
            pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
                self.beta1 = beta1;
                self.beta2 = beta2;
                self
            }
        }
    };
}

config! {
    /// Stochastic gradient descent θ ← θ − α·g, with optional momentum
    /// ([`Momentum`]) and weight decay (`torch.optim.SGD`; Keras `SGD`,
    /// which keeps α inside its momentum buffer).
    ///
    /// `Sgd::new(0.1).momentum(0.9).nesterov(true).build()?`
    Sgd {
        /// α (PyTorch requires it; 0.01 as Keras).
        lr: f64 = 0.01,
    }
    manual {
        /// The momentum form, set with `momentum`, `dampening`, `nesterov`
        /// or `momentum_as`.
        momentum: Momentum = Momentum::None,
    }
    /// Weight decay (PyTorch's `weight_decay` is [`WeightDecay::L2`]).
    weight_decay = WeightDecay::None, as L2;
}

impl Sgd {
    /// Heavy-ball momentum μ (`SGD(momentum=μ)`): b ← μb + (1 − τ)g,
    /// θ ← θ − αb. Keeps Nesterov and the dampening τ if already chosen;
    /// replaces the EMA form. μ = 0 with τ = 0 is plain SGD.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = match self.momentum {
            Momentum::Nesterov { .. } => Momentum::Nesterov { momentum },
            Momentum::HeavyBall { dampening, .. } => Momentum::HeavyBall {
                momentum,
                dampening,
            },
            Momentum::None | Momentum::Ema { .. } => Momentum::HeavyBall {
                momentum,
                dampening: 0.0,
            },
        };
        self
    }

    /// The dampening τ of heavy-ball momentum (`SGD(dampening=τ)`); turns
    /// Nesterov back into heavy ball (PyTorch refuses Nesterov with
    /// dampening).
    pub fn dampening(mut self, dampening: f64) -> Self {
        let momentum = self.mu();
        self.momentum = Momentum::HeavyBall {
            momentum,
            dampening,
        };
        self
    }

    /// Nesterov momentum on or off (`SGD(nesterov=True)`):
    /// θ ← θ − α(g + μb), with the μ set by `momentum` (none set: μ = 0,
    /// which `build` refuses, as PyTorch). On drops the dampening.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        let momentum = self.mu();
        self.momentum = match (nesterov, self.momentum) {
            (true, _) => Momentum::Nesterov { momentum },
            (false, Momentum::Nesterov { .. }) => Momentum::HeavyBall {
                momentum,
                dampening: 0.0,
            },
            (false, other) => other,
        };
        self
    }

    /// Any momentum form, e.g. the seed's `Momentum::Ema { beta }`.
    pub fn momentum_as(mut self, momentum: Momentum) -> Self {
        self.momentum = momentum;
        self
    }

    /// μ of heavy ball or Nesterov, else 0.
    fn mu(&self) -> f64 {
        match self.momentum {
            Momentum::HeavyBall { momentum, .. } | Momentum::Nesterov { momentum } => momentum,
            Momentum::None | Momentum::Ema { .. } => 0.0,
        }
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
        let rule = SgdRule {
            momentum: self.momentum,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)
    }
}

/// The checks every Adam-family optimizer shares: α, β₁, β₂ and ε.
pub(crate) fn adam_family_ok(
    name: &'static str,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> Result<()> {
    check_lr(name, lr)?;
    beta_ok(name, "beta1", beta1)?;
    beta_ok(name, "beta2", beta2)?;
    eps_ok(name, eps)
}

/// The Adam rule for Adam and AdamW, validated.
fn adam_rule(
    name: &'static str,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    amsgrad: bool,
) -> Result<AdamRule> {
    adam_family_ok(name, lr, beta1, beta2, eps)?;
    Ok(AdamRule {
        name,
        beta1,
        beta2,
        eps,
        amsgrad,
    })
}

config! {
    /// Adam (Kingma & Ba 2015) with bias correction, ε outside the square
    /// root (`torch.optim.Adam`; the seed's formula):
    /// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − α m̂ / (√v̂ + ε).
    /// With `amsgrad`, v̂ uses the running maximum of v. Defaults as
    /// PyTorch; Keras `Adam` has ε 1e-7 and puts ε̂ outside the bias
    /// correction.
    ///
    /// `Adam::new(1e-3).betas(0.9, 0.99).amsgrad(true).build()?`
    Adam {
        /// α.
        lr: f64 = 1e-3,
        /// β₁.
        beta1: f64 = 0.9,
        /// β₂.
        beta2: f64 = 0.999,
        /// ε.
        eps: f64 = 1e-8,
        /// AMSGrad (Reddi et al. 2018; `amsgrad=True`).
        amsgrad: bool = false,
        /// The number type of the moments: `StateDtype::Bf16(rounding)`
        /// halves their memory (see [`Optimizer::with_state_dtype`]).
        state_dtype: StateDtype = StateDtype::Full,
    }
    /// Weight decay: `weight_decay(λ)` is L2, as PyTorch's `Adam`; for the
    /// decoupled form use [`AdamW`].
    weight_decay = WeightDecay::None, as L2;
}
betas!(Adam);

impl Adam {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        let rule = adam_rule(
            "Adam",
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.amsgrad,
        )?;
        Optimizer::new(rule, self.lr, self.weight_decay)?.with_state_dtype(self.state_dtype)
    }
}

config! {
    /// AdamW (Loshchilov & Hutter 2019, `torch.optim.AdamW`; Keras `AdamW`):
    /// Adam with decoupled weight decay θ ← (1 − αλ)θ before the update,
    /// then Adam's step θ ← θ − α m̂ / (√v̂ + ε). Default λ 0.01 as
    /// PyTorch (Keras: 0.004).
    ///
    /// `AdamW::new(1e-3).weight_decay(0.1).build()?`
    AdamW {
        /// α.
        lr: f64 = 1e-3,
        /// β₁.
        beta1: f64 = 0.9,
        /// β₂.
        beta2: f64 = 0.999,
        /// ε.
        eps: f64 = 1e-8,
        /// AMSGrad (Reddi et al. 2018; `amsgrad=True`).
        amsgrad: bool = false,
        /// The number type of the moments: `StateDtype::Bf16(rounding)`
        /// halves their memory (see [`Optimizer::with_state_dtype`]).
        state_dtype: StateDtype = StateDtype::Full,
    }
    /// Weight decay: `weight_decay(λ)` is decoupled, as PyTorch's `AdamW`.
    weight_decay = WeightDecay::Decoupled(0.01), as Decoupled;
}
betas!(AdamW);

impl AdamW {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        let rule = adam_rule(
            "AdamW",
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.amsgrad,
        )?;
        Optimizer::new(rule, self.lr, self.weight_decay)?.with_state_dtype(self.state_dtype)
    }
}

config! {
    /// Adamax (Kingma & Ba 2015, §7; `torch.optim.Adamax`, Keras `Adamax`):
    /// m ← β₁m + (1−β₁)g, u ← max(β₂u, |g| + ε), θ ← θ − α/(1−β₁ᵗ) · m/u.
    /// Keras: α 1e-3, ε 1e-7 outside the max.
    Adamax {
        /// α.
        lr: f64 = 2e-3,
        /// β₁.
        beta1: f64 = 0.9,
        /// β₂.
        beta2: f64 = 0.999,
        /// ε.
        eps: f64 = 1e-8,
        /// The number type of the moments: `StateDtype::Bf16(rounding)`
        /// halves their memory (see [`Optimizer::with_state_dtype`]).
        state_dtype: StateDtype = StateDtype::Full,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}
betas!(Adamax);

impl Adamax {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        adam_family_ok("Adamax", self.lr, self.beta1, self.beta2, self.eps)?;
        let rule = AdamaxRule {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)?.with_state_dtype(self.state_dtype)
    }
}

config! {
    /// NAdam (Dozat 2016) as `torch.optim.NAdam`: Adam with Nesterov
    /// momentum and the warm-up μₜ = β₁(1 − ½·0.96^(t·ψ));
    /// θ ← θ − α(1−μₜ)/(1−Πμ)·g/d − αμₜ₊₁/(1−Πμ·μₜ₊₁)·m/d,
    /// d = √(v/(1−β₂ᵗ)) + ε. Keras `Nadam` has no ψ and ε 1e-7.
    /// PyTorch's `decoupled_weight_decay=True` is
    /// `weight_decay_as(WeightDecay::Decoupled(λ))`.
    Nadam {
        /// α.
        lr: f64 = 2e-3,
        /// β₁.
        beta1: f64 = 0.9,
        /// β₂.
        beta2: f64 = 0.999,
        /// ε.
        eps: f64 = 1e-8,
        /// ψ, the momentum decay.
        momentum_decay: f64 = 4e-3,
        /// The number type of the moments: `StateDtype::Bf16(rounding)`
        /// halves their memory (see [`Optimizer::with_state_dtype`]).
        state_dtype: StateDtype = StateDtype::Full,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}
betas!(Nadam);

impl Nadam {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        adam_family_ok("NAdam", self.lr, self.beta1, self.beta2, self.eps)?;
        check(
            "NAdam",
            "momentum_decay",
            self.momentum_decay,
            self.momentum_decay >= 0.0,
            "must be >= 0",
        )?;
        let rule = NadamRule {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            momentum_decay: self.momentum_decay,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)?.with_state_dtype(self.state_dtype)
    }
}

config! {
    /// RAdam (Liu et al. 2020) as `torch.optim.RAdam`: Adam whose adaptive
    /// step is multiplied by the rectification r(ρₜ) once
    /// ρₜ = ρ∞ − 2tβ₂ᵗ/(1−β₂ᵗ) > 5, and replaced by plain momentum
    /// θ ← θ − α m̂ before. No Keras counterpart. PyTorch's
    /// `decoupled_weight_decay=True` is
    /// `weight_decay_as(WeightDecay::Decoupled(λ))`.
    Radam {
        /// α.
        lr: f64 = 1e-3,
        /// β₁.
        beta1: f64 = 0.9,
        /// β₂.
        beta2: f64 = 0.999,
        /// ε.
        eps: f64 = 1e-8,
        /// The number type of the moments: `StateDtype::Bf16(rounding)`
        /// halves their memory (see [`Optimizer::with_state_dtype`]).
        state_dtype: StateDtype = StateDtype::Full,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}
betas!(Radam);

impl Radam {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        adam_family_ok("RAdam", self.lr, self.beta1, self.beta2, self.eps)?;
        let rule = RadamRule {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)?.with_state_dtype(self.state_dtype)
    }
}

config! {
    /// Adagrad (Duchi et al. 2011) as `torch.optim.Adagrad`: s ← s + g²,
    /// θ ← θ − αₜ g/(√s + ε), αₜ = α/(1 + (t−1)·lr_decay). Keras `Adagrad`:
    /// α 1e-3, s₀ 0.1, ε 1e-7 inside the root.
    Adagrad {
        /// α.
        lr: f64 = 1e-2,
        /// Learning-rate decay per step.
        lr_decay: f64 = 0.0,
        /// Initial value of s (PyTorch's `initial_accumulator_value`).
        initial_accumulator: f64 = 0.0,
        /// ε.
        eps: f64 = 1e-10,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}

impl Adagrad {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Adagrad", self.lr)?;
        eps_ok("Adagrad", self.eps)?;
        check(
            "Adagrad",
            "lr_decay",
            self.lr_decay,
            self.lr_decay >= 0.0,
            "must be >= 0",
        )?;
        check(
            "Adagrad",
            "initial_accumulator",
            self.initial_accumulator,
            self.initial_accumulator >= 0.0,
            "must be >= 0",
        )?;
        let rule = AdagradRule {
            lr_decay: self.lr_decay,
            initial_accumulator: self.initial_accumulator,
            eps: self.eps,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)
    }
}

config! {
    /// RMSprop (Tieleman & Hinton 2012) as `torch.optim.RMSprop`:
    /// v ← αv + (1−α)g², θ ← θ − η g/(√v + ε); `centered` subtracts the
    /// squared running mean of g inside the root; `momentum` μ > 0 keeps
    /// b ← μb + g/(√v + ε), θ ← θ − ηb. Keras `RMSprop`: η 1e-3, ρ 0.9,
    /// ε 1e-7 inside the root.
    ///
    /// `Rmsprop::new(1e-3).momentum(0.9).centered(true).build()?`
    Rmsprop {
        /// η.
        lr: f64 = 1e-2,
        /// α, the smoothing constant.
        alpha: f64 = 0.99,
        /// ε.
        eps: f64 = 1e-8,
        /// Momentum μ (0 = none).
        momentum: f64 = 0.0,
        /// The centered variant (`centered=True`).
        centered: bool = false,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}

impl Rmsprop {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
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
            centered: self.centered,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)
    }
}

config! {
    /// Adadelta (Zeiler 2012) as `torch.optim.Adadelta`: v ← ρv + (1−ρ)g²,
    /// Δ = √(u + ε)/√(v + ε)·g, u ← ρu + (1−ρ)Δ², θ ← θ − αΔ. Keras
    /// `Adadelta`: α 1e-3, ρ 0.95, ε 1e-7.
    Adadelta {
        /// α.
        lr: f64 = 1.0,
        /// ρ.
        rho: f64 = 0.9,
        /// ε.
        eps: f64 = 1e-6,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}

impl Adadelta {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Adadelta", self.lr)?;
        beta_ok("Adadelta", "rho", self.rho)?;
        eps_ok("Adadelta", self.eps)?;
        let rule = AdadeltaRule {
            rho: self.rho,
            eps: self.eps,
        };
        Optimizer::new(rule, self.lr, self.weight_decay)
    }
}
