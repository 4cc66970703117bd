//! The optimizers for large models and the rest of torch.optim and optax:
//! Lion, LAMB, LARS, Adafactor, Muon, AdEMAMix, schedule-free AdamW and
//! SGD, Rprop and ASGD. Each section holds the public config (same builder
//! shape as [`crate::Adam`]), its validated rule and the rule's update. The
//! reference each one follows, and where the libraries disagree, is on the
//! config; docs/optimizers.md has the formulas and state memory.
//!
//! Elementwise rules implement [`Rule`] (one fused pass, parallel chunks);
//! the ones that need a whole parameter (a norm, factored moments, matrix
//! products) implement [`WholeRule`].

use tapir_tensor::{Float, Tensor};

use crate::error::{check, check_lr, Result};
use crate::optimizer::{Optimizer, WeightDecay};
use crate::optimizers::{beta_ok, eps_ok};
use crate::pieces::*;
use crate::rules::{Kernel, Rule, WholeRule};

fn nonneg(name: &'static str, field: &'static str, v: f64) -> Result<()> {
    check(
        name,
        field,
        v,
        v >= 0.0 && v.is_finite(),
        "must be finite and >= 0",
    )
}

/// PyTorch's `lerp`: a + w(b − a) for w < 0.5, else b − (b − a)(1 − w)
/// (exact at both ends).
#[inline(always)]
fn lerp<E: Float>(a: E, b: E, w: E) -> E {
    if w < E::from_f64(0.5) {
        a + w * (b - a)
    } else {
        b - (b - a) * (E::ONE - w)
    }
}

/// Σx² accumulated in f64.
fn sum_sq<E: Float>(x: &[E]) -> f64 {
    x.iter()
        .map(|&v| {
            let v = v.to_f64();
            v * v
        })
        .sum()
}

// ---------------------------------------------------------------- Lion

config! {
    /// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization
    /// Algorithms"): the sign of an interpolated momentum, c = β₁m + (1 − β₁)g,
    /// θ ← θ − α·sign(c), then m ← β₂m + (1 − β₂)g. One state tensor (half of
    /// Adam's). Follows `optax.lion`, whose default weight decay is 1e-3;
    /// Tapir's is 0 as Keras's `Lion` and lucidrains' lion-pytorch, so pass
    /// `.weight_decay(1e-3)` for optax's. Use a learning rate 3–10× smaller
    /// than AdamW's and a weight decay 3–10× larger (the paper).
    Lion {
        /// α.
        lr: f64 = 1e-4,
        /// β₁, the interpolation of the update's sign.
        beta1: f64 = 0.9,
        /// β₂, the momentum's decay.
        beta2: f64 = 0.99,
    }
    /// Decoupled weight decay θ ← (1 − αλ)θ (optax adds λθ to the update
    /// before scaling by α, the same step).
    weight_decay = WeightDecay::None, as Decoupled;
}
betas!(Lion);

impl Lion {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Lion", self.lr)?;
        beta_ok("Lion", "beta1", self.beta1)?;
        beta_ok("Lion", "beta2", self.beta2)?;
        Optimizer::new(
            LionRule {
                beta1: self.beta1,
                beta2: self.beta2,
            },
            self.lr,
            self.weight_decay,
        )
    }
}

pub(crate) struct LionRule {
    beta1: f64,
    beta2: f64,
}

#[derive(Clone, Copy)]
pub(crate) struct LionCoeffs<E> {
    /// β₁ and 1 − β₁ (in the element type).
    b1: E,
    c1: E,
    /// β₂ and 1 − β₂.
    b2: E,
    c2: E,
}

impl<E: Float> Rule<E> for LionRule {
    type Coeffs = LionCoeffs<E>;
    fn name(&self) -> &'static str {
        "Lion"
    }
    fn slots(&self) -> usize {
        1
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> LionCoeffs<E> {
        let (b1, b2) = (E::from_f64(self.beta1), E::from_f64(self.beta2));
        LionCoeffs {
            b1,
            c1: E::ONE - b1,
            b2,
            c2: E::ONE - b2,
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &LionCoeffs<E>) {
        let [m] = s else {
            crate::rules::bad_slots("Lion", s.len())
        };
        for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, k);
            let mv = *m;
            let dir = (c.c1 * g + c.b1 * mv).sign();
            *m = c.c2 * g + c.b2 * mv;
            *p = descend(pd, k.lr * dir);
        }
    }
}

// ---------------------------------------------------------------- Rprop

config! {
    /// Rprop (Riedmiller & Braun 1993), `torch.optim.Rprop`: a step size per
    /// element, grown by η₊ while the gradient keeps its sign and shrunk by
    /// η₋ when it flips (then that element skips its step), clamped to
    /// [step_min, step_max]; θ ← θ − sign(g)·step. The step sizes start at
    /// α. For full-batch training: it ignores gradient magnitudes.
    Rprop {
        /// α, the initial step size.
        lr: f64 = 0.01,
        /// η₋, the factor on a sign flip, in (0, 1).
        eta_minus: f64 = 0.5,
        /// η₊, the factor while the sign holds, > 1.
        eta_plus: f64 = 1.2,
        /// The smallest step size.
        step_min: f64 = 1e-6,
        /// The largest step size.
        step_max: f64 = 50.0,
    }
    /// Weight decay (PyTorch's Rprop has none; L2 here if set).
    weight_decay = WeightDecay::None, as L2;
}

impl Rprop {
    /// Sets η₋ and η₊ (PyTorch's `etas=(η₋, η₊)`).
    pub fn etas(mut self, minus: f64, plus: f64) -> Self {
        self.eta_minus = minus;
        self.eta_plus = plus;
        self
    }
    /// Sets the step-size bounds (PyTorch's `step_sizes=(min, max)`).
    pub fn step_sizes(mut self, min: f64, max: f64) -> Self {
        self.step_min = min;
        self.step_max = max;
        self
    }
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Rprop", self.lr)?;
        let m = self.eta_minus;
        check(
            "Rprop",
            "eta_minus",
            m,
            m > 0.0 && m < 1.0,
            "must lie in (0, 1)",
        )?;
        let p = self.eta_plus;
        check(
            "Rprop",
            "eta_plus",
            p,
            p > 1.0 && p.is_finite(),
            "must be finite and > 1",
        )?;
        nonneg("Rprop", "step_min", self.step_min)?;
        check(
            "Rprop",
            "step_max",
            self.step_max,
            self.step_max >= self.step_min && self.step_max.is_finite(),
            "must be finite and >= step_min",
        )?;
        Optimizer::new(RpropRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct RpropRule {
    cfg: Rprop,
}

#[derive(Clone, Copy)]
pub(crate) struct RpropCoeffs<E> {
    minus: E,
    plus: E,
    lo: E,
    hi: E,
}

impl<E: Float> Rule<E> for RpropRule {
    type Coeffs = RpropCoeffs<E>;
    fn name(&self) -> &'static str {
        "Rprop"
    }
    /// The previous gradient (0 where it flipped), the step sizes.
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> RpropCoeffs<E> {
        RpropCoeffs {
            minus: E::from_f64(self.cfg.eta_minus),
            plus: E::from_f64(self.cfg.eta_plus),
            lo: E::from_f64(self.cfg.step_min),
            hi: E::from_f64(self.cfg.step_max),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &RpropCoeffs<E>) {
        let [prev, step] = s else {
            crate::rules::bad_slots("Rprop", s.len())
        };
        for (((p, &g), prev), st) in p
            .iter_mut()
            .zip(g)
            .zip(prev.iter_mut())
            .zip(step.iter_mut())
        {
            let (pd, mut g) = weight_decay(*p, g, k);
            let size = if k.first { k.lr } else { *st };
            let sgn = (g * *prev).sign();
            let factor = if sgn > E::ZERO {
                c.plus
            } else if sgn < E::ZERO {
                c.minus
            } else {
                E::ONE
            };
            let mut size = size * factor;
            if size < c.lo {
                size = c.lo;
            }
            if size > c.hi {
                size = c.hi;
            }
            if sgn < E::ZERO {
                g = E::ZERO;
            }
            *st = size;
            *prev = g;
            *p = descend(pd, g.sign() * size);
        }
    }
}

// ---------------------------------------------------------------- ASGD

config! {
    /// Averaged SGD (Polyak & Juditsky 1992), `torch.optim.ASGD`: SGD with
    /// a decaying rate η_t = α/(1 + λαt)^a and a shrink θ ← (1 − λη)θ, and
    /// the running average of the iterates from step t₀ on, in slot 0
    /// ([`Optimizer::slot`]`(&p, 0)`): evaluate with the average.
    Asgd {
        /// α.
        lr: f64 = 0.01,
        /// λ, the decay term.
        lambd: f64 = 1e-4,
        /// a, the power of the rate's decay.
        alpha: f64 = 0.75,
        /// t₀, the step from which the average starts.
        t0: f64 = 1e6,
    }
    /// Weight decay (PyTorch's `weight_decay` is L2).
    weight_decay = WeightDecay::None, as L2;
}

impl Asgd {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("ASGD", self.lr)?;
        nonneg("ASGD", "lambd", self.lambd)?;
        nonneg("ASGD", "alpha", self.alpha)?;
        nonneg("ASGD", "t0", self.t0)?;
        Optimizer::new(AsgdRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct AsgdRule {
    cfg: Asgd,
}

#[derive(Clone, Copy)]
pub(crate) struct AsgdCoeffs<E> {
    /// η of this step.
    eta: E,
    /// 1 − λη.
    shrink: E,
    /// μ, the averaging weight (1: copy).
    mu: E,
    copy: bool,
}

impl<E: Float> Rule<E> for AsgdRule {
    type Coeffs = AsgdCoeffs<E>;
    fn name(&self) -> &'static str {
        "ASGD"
    }
    /// The average of the iterates.
    fn slots(&self) -> usize {
        1
    }
    /// η and μ for the next step (η of the first step is α).
    fn scalars(&self) -> Vec<f64> {
        vec![0.0, 1.0]
    }
    fn coeffs(&self, t: u64, lr: f64, s: &mut [f64]) -> AsgdCoeffs<E> {
        let eta = if t == 1 { lr } else { s[0] };
        let mu = s[1];
        let tf = t as f64;
        s[0] = lr / (1.0 + self.cfg.lambd * lr * tf).powf(self.cfg.alpha);
        s[1] = 1.0 / (tf - self.cfg.t0).max(1.0);
        AsgdCoeffs {
            eta: E::from_f64(eta),
            shrink: E::from_f64(1.0 - self.cfg.lambd * eta),
            mu: E::from_f64(mu),
            copy: mu == 1.0,
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &AsgdCoeffs<E>) {
        let [ax] = s else {
            crate::rules::bad_slots("ASGD", s.len())
        };
        for ((p, &g), ax) in p.iter_mut().zip(g).zip(ax.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, k);
            let np = descend(pd * c.shrink, c.eta * g);
            *p = np;
            *ax = if c.copy { np } else { *ax + (np - *ax) * c.mu };
        }
    }
}

// ---------------------------------------------------------------- AdEMAMix

config! {
    /// AdEMAMix (Pagliardini, Ablin & Grangier 2024): Adam with a second,
    /// slow momentum m₂ (β₃ ≈ 0.9999) mixed into the numerator,
    /// θ ← θ − α((m̂₁ + α_mix·m₂)/(√v̂ + ε) + λθ), m₂ not bias-corrected.
    /// Follows `optax.contrib.ademamix` (α_mix = 5 there; the paper's
    /// code uses 2 to 8, Keras's 6 in some versions). With `warmup = Some(T)`
    /// α_mix and β₃ ramp up over T steps as in the paper:
    /// α_mix(t) = min(tα/T, α), β₃(t) = min(exp(ln β₁ ln β₃ / ((1 − t/T) ln β₃ + (t/T) ln β₁)), β₃),
    /// with t counted from 1 as the paper (optax's schedules receive its
    /// count from 0; `warmup_from_zero(true)` gives that).
    Ademamix {
        /// α.
        lr: f64 = 1e-3,
        /// β₁, the fast momentum.
        beta1: f64 = 0.9,
        /// β₂, the second moment.
        beta2: f64 = 0.999,
        /// β₃, the slow momentum (its final value with a warm-up).
        beta3: f64 = 0.9999,
        /// α_mix, the weight of the slow momentum (final value).
        alpha: f64 = 5.0,
        /// ε, outside the square root.
        eps: f64 = 1e-8,
        /// T, the warm-up of α_mix and β₃ in steps (none: constant).
        warmup: Option<u64> = None,
        /// Count the warm-up's steps from 0 (optax) instead of 1 (the paper).
        warmup_from_zero: bool = false,
    }
    /// Decoupled weight decay (optax adds λθ to the update, then scales by α).
    weight_decay = WeightDecay::None, as Decoupled;
}
betas!(Ademamix);

impl Ademamix {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("AdEMAMix", self.lr)?;
        beta_ok("AdEMAMix", "beta1", self.beta1)?;
        beta_ok("AdEMAMix", "beta2", self.beta2)?;
        beta_ok("AdEMAMix", "beta3", self.beta3)?;
        nonneg("AdEMAMix", "alpha", self.alpha)?;
        eps_ok("AdEMAMix", self.eps)?;
        if let Some(t) = self.warmup {
            check(
                "AdEMAMix",
                "warmup",
                t as f64,
                t > 0 && self.beta1 > 0.0,
                "must be > 0 steps, with beta1 > 0",
            )?;
        }
        Optimizer::new(AdemamixRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct AdemamixRule {
    cfg: Ademamix,
}

#[derive(Clone, Copy)]
pub(crate) struct AdemamixCoeffs<E> {
    b1: E,
    c1: E,
    b2: E,
    c2: E,
    b3: E,
    c3: E,
    /// 1 − β₁ᵗ and 1 − β₂ᵗ.
    bc1: E,
    bc2: E,
    alpha: E,
    eps: E,
}

impl AdemamixRule {
    /// α_mix and β₃ at step t (1-based).
    fn mix(&self, t: u64) -> (f64, f64) {
        let c = &self.cfg;
        let Some(warm) = c.warmup else {
            return (c.alpha, c.beta3);
        };
        let t = if c.warmup_from_zero { t - 1 } else { t } as f64;
        let frac = t / warm as f64;
        let alpha = (frac * c.alpha).min(c.alpha);
        let (l1, l3) = (c.beta1.ln(), c.beta3.ln());
        let beta3 = (l1 * l3 / ((1.0 - frac) * l3 + frac * l1))
            .exp()
            .min(c.beta3);
        (alpha, beta3)
    }
}

impl<E: Float> Rule<E> for AdemamixRule {
    type Coeffs = AdemamixCoeffs<E>;
    fn name(&self) -> &'static str {
        "AdEMAMix"
    }
    /// m₁, m₂, v.
    fn slots(&self) -> usize {
        3
    }
    fn coeffs(&self, t: u64, _lr: f64, _s: &mut [f64]) -> AdemamixCoeffs<E> {
        let (alpha, beta3) = self.mix(t);
        let (b1, b2, b3) = (
            E::from_f64(self.cfg.beta1),
            E::from_f64(self.cfg.beta2),
            E::from_f64(beta3),
        );
        AdemamixCoeffs {
            b1,
            c1: E::ONE - b1,
            b2,
            c2: E::ONE - b2,
            b3,
            c3: E::ONE - b3,
            bc1: E::from_f64(bias_correction(self.cfg.beta1, t)),
            bc2: E::from_f64(bias_correction(self.cfg.beta2, t)),
            alpha: E::from_f64(alpha),
            eps: E::from_f64(self.cfg.eps),
        }
    }
    #[inline(always)]
    fn apply(
        &self,
        p: &mut [E],
        g: &[E],
        s: &mut [&mut [E]],
        k: &Kernel<E>,
        c: &AdemamixCoeffs<E>,
    ) {
        let [m1, m2, v] = s else {
            crate::rules::bad_slots("AdEMAMix", s.len())
        };
        for ((((p, &g), m1), m2), v) in p
            .iter_mut()
            .zip(g)
            .zip(m1.iter_mut())
            .zip(m2.iter_mut())
            .zip(v.iter_mut())
        {
            let (pd, g) = weight_decay(*p, g, k);
            let a = c.c1 * g + c.b1 * *m1;
            let b = c.c3 * g + c.b3 * *m2;
            let w = c.c2 * (g * g) + c.b2 * *v;
            *m1 = a;
            *m2 = b;
            *v = w;
            let u = (a / c.bc1 + c.alpha * b) / ((w / c.bc2).sqrt() + c.eps);
            *p = descend(pd, k.lr * u);
        }
    }
}

// ---------------------------------------------------------------- schedule-free

/// The schedule-free averaging weights shared by both variants (Defazio et
/// al. 2024; the authors' `schedulefree` package): the warm-up of the rate,
/// the running maximum rate and the weight c_{t+1} of the new point in the
/// average x.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SfWeights {
    warmup: u64,
    r: f64,
    weight_lr_power: f64,
}

impl SfWeights {
    /// (rate of this step, c_{t+1}); `s` = [max rate so far, Σ weights].
    fn at(&self, t: u64, lr: f64, s: &mut [f64]) -> (f64, f64) {
        let sched = if t - 1 < self.warmup {
            t as f64 / self.warmup as f64
        } else {
            1.0
        };
        let lr = lr * sched;
        s[0] = s[0].max(lr);
        let weight = (t as f64).powf(self.r) * s[0].powf(self.weight_lr_power);
        s[1] += weight;
        let ckp1 = if s[1] == 0.0 { 0.0 } else { weight / s[1] };
        (lr, ckp1)
    }

    fn validate(&self, name: &'static str) -> Result<()> {
        nonneg(name, "r", self.r)?;
        nonneg(name, "weight_lr_power", self.weight_lr_power)
    }
}

config! {
    /// Schedule-free AdamW (Defazio et al. 2024, "The Road Less
    /// Scheduled"), as `schedulefree.AdamWScheduleFree`: no learning-rate
    /// schedule needed (use `warmup_steps` for the warm-up); the
    /// parameters hold the interpolation y used for gradients, and the
    /// average x to evaluate is reached with [`Optimizer::eval`] (back with
    /// [`Optimizer::train`]). State: z and v. Do not add a decaying
    /// schedule: the averaging replaces it.
    ScheduleFreeAdamW {
        /// α (the package's default).
        lr: f64 = 0.0025,
        /// β₁, the interpolation between z and x.
        beta1: f64 = 0.9,
        /// β₂, the second moment.
        beta2: f64 = 0.999,
        /// ε, outside the square root.
        eps: f64 = 1e-8,
        /// Linear warm-up of the rate over this many steps.
        warmup_steps: u64 = 0,
        /// r, the polynomial weighting of the average.
        r: f64 = 0.0,
        /// The power of the maximum rate in the averaging weights.
        weight_lr_power: f64 = 2.0,
    }
    /// Weight decay λ, added at y to the normalised step as the package
    /// does (either form of [`WeightDecay`] means this).
    weight_decay = WeightDecay::None, as Decoupled;
}
betas!(ScheduleFreeAdamW);

impl ScheduleFreeAdamW {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        let n = "ScheduleFreeAdamW";
        check_lr(n, self.lr)?;
        beta_ok(n, "beta1", self.beta1)?;
        check(
            n,
            "beta1",
            self.beta1,
            self.beta1 > 0.0,
            "must be > 0 (eval divides by it)",
        )?;
        beta_ok(n, "beta2", self.beta2)?;
        eps_ok(n, self.eps)?;
        let w = SfWeights {
            warmup: self.warmup_steps,
            r: self.r,
            weight_lr_power: self.weight_lr_power,
        };
        w.validate(n)?;
        Optimizer::new(
            SfAdamWRule {
                w,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
            },
            self.lr,
            self.weight_decay,
        )
    }
}

pub(crate) struct SfAdamWRule {
    w: SfWeights,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

#[derive(Clone, Copy)]
pub(crate) struct SfCoeffs<E> {
    /// c_{t+1}.
    ckp1: E,
    /// The factor of the step in y: α(β₁(1 − c) − 1).
    y_step: E,
    /// The rate of this step (warmed up).
    lr: E,
    b2: E,
    c2: E,
    /// 1 − β₂ᵗ.
    bc2: E,
    eps: E,
}

fn sf_coeffs<E: Float>(
    w: &SfWeights,
    beta1: f64,
    beta2: f64,
    eps: f64,
    t: u64,
    lr: f64,
    s: &mut [f64],
) -> SfCoeffs<E> {
    let (lr, ckp1) = w.at(t, lr, s);
    let b2 = E::from_f64(beta2);
    SfCoeffs {
        ckp1: E::from_f64(ckp1),
        y_step: E::from_f64(lr * (beta1 * (1.0 - ckp1) - 1.0)),
        lr: E::from_f64(lr),
        b2,
        c2: E::ONE - b2,
        bc2: E::from_f64(bias_correction(beta2, t)),
        eps: E::from_f64(eps),
    }
}

/// y ← lerp(y, z, 1 − 1/β₁) to evaluate, lerp(y, z, 1 − β₁) to train.
fn sf_switch<E: Float>(beta1: f64, p: &mut [E], z: &[E], to_eval: bool) {
    let w = E::from_f64(if to_eval {
        1.0 - 1.0 / beta1
    } else {
        1.0 - beta1
    });
    for (p, &z) in p.iter_mut().zip(z) {
        *p = lerp(*p, z, w);
    }
}

impl<E: Float> Rule<E> for SfAdamWRule {
    type Coeffs = SfCoeffs<E>;
    fn name(&self) -> &'static str {
        "ScheduleFreeAdamW"
    }
    /// z, v.
    fn slots(&self) -> usize {
        2
    }
    /// The largest rate so far and the sum of the averaging weights.
    fn scalars(&self) -> Vec<f64> {
        vec![-1.0, 0.0]
    }
    fn coeffs(&self, t: u64, lr: f64, s: &mut [f64]) -> SfCoeffs<E> {
        sf_coeffs(&self.w, self.beta1, self.beta2, self.eps, t, lr, s)
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &SfCoeffs<E>) {
        let [z, v] = s else {
            crate::rules::bad_slots("ScheduleFreeAdamW", s.len())
        };
        for (((y, &g), z), v) in p.iter_mut().zip(g).zip(z.iter_mut()).zip(v.iter_mut()) {
            if k.first {
                *z = *y;
            }
            let w = *v * c.b2 + c.c2 * (g * g);
            *v = w;
            let denom = (w / c.bc2).sqrt() + c.eps;
            let gn = g / denom + k.lambda * *y;
            let yl = lerp(*y, *z, c.ckp1);
            *y = yl + gn * c.y_step;
            *z = descend(*z, c.lr * gn);
        }
    }
    fn switch(&self, p: &mut [E], s: &[&[E]], to_eval: bool) -> bool {
        sf_switch(self.beta1, p, s[0], to_eval);
        true
    }
}

config! {
    /// Schedule-free SGD (Defazio et al. 2024), as
    /// `schedulefree.SGDScheduleFree`: see [`ScheduleFreeAdamW`] for the
    /// train/eval points. State: z.
    ScheduleFreeSgd {
        /// α (the package's default is 1.0; typical values 1–10× SGD's).
        lr: f64 = 1.0,
        /// β, the interpolation between z and x (the package's `momentum`).
        momentum: f64 = 0.9,
        /// Linear warm-up of the rate over this many steps.
        warmup_steps: u64 = 0,
        /// r, the polynomial weighting of the average.
        r: f64 = 0.0,
        /// The power of the maximum rate in the averaging weights.
        weight_lr_power: f64 = 2.0,
    }
    /// Weight decay (the package adds λy to the gradient: L2).
    weight_decay = WeightDecay::None, as L2;
}

impl ScheduleFreeSgd {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        let n = "ScheduleFreeSGD";
        check_lr(n, self.lr)?;
        check(
            n,
            "momentum",
            self.momentum,
            self.momentum > 0.0 && self.momentum < 1.0,
            "must lie in (0, 1)",
        )?;
        let w = SfWeights {
            warmup: self.warmup_steps,
            r: self.r,
            weight_lr_power: self.weight_lr_power,
        };
        w.validate(n)?;
        Optimizer::new(
            SfSgdRule {
                w,
                momentum: self.momentum,
            },
            self.lr,
            self.weight_decay,
        )
    }
}

pub(crate) struct SfSgdRule {
    w: SfWeights,
    momentum: f64,
}

impl<E: Float> Rule<E> for SfSgdRule {
    type Coeffs = SfCoeffs<E>;
    fn name(&self) -> &'static str {
        "ScheduleFreeSGD"
    }
    /// z.
    fn slots(&self) -> usize {
        1
    }
    /// The largest rate so far and the sum of the averaging weights.
    fn scalars(&self) -> Vec<f64> {
        vec![-1.0, 0.0]
    }
    fn coeffs(&self, t: u64, lr: f64, s: &mut [f64]) -> SfCoeffs<E> {
        sf_coeffs(&self.w, self.momentum, 0.0, 1.0, t, lr, s)
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &SfCoeffs<E>) {
        let [z] = s else {
            crate::rules::bad_slots("ScheduleFreeSGD", s.len())
        };
        for ((y, &g), z) in p.iter_mut().zip(g).zip(z.iter_mut()) {
            if k.first {
                *z = *y;
            }
            let (yd, g) = weight_decay(*y, g, k);
            let yl = lerp(yd, *z, c.ckp1);
            *y = yl + g * c.y_step;
            *z = descend(*z, c.lr * g);
        }
    }
    fn switch(&self, p: &mut [E], s: &[&[E]], to_eval: bool) -> bool {
        sf_switch(self.momentum, p, s[0], to_eval);
        true
    }
}

// ---------------------------------------------------------------- LAMB

config! {
    /// LAMB (You et al. 2020): Adam's direction u = m̂/(√v̂ + ε) + λθ scaled
    /// per parameter tensor by the trust ratio ‖θ‖/‖u‖ (1 when either norm
    /// is 0), θ ← θ − α·(‖θ‖/‖u‖)·u. Follows `optax.lamb` and the paper:
    /// the weight decay is inside the ratio, ε = 1e-6. `keras(true)` gives
    /// Keras's `Lamb` instead: decoupled decay θ ← (1 − αλ)θ first, outside
    /// the ratio. Exclude biases and norms from the decay with a group.
    Lamb {
        /// α.
        lr: f64 = 1e-3,
        /// β₁.
        beta1: f64 = 0.9,
        /// β₂.
        beta2: f64 = 0.999,
        /// ε, outside the square root.
        eps: f64 = 1e-6,
        /// Keras's placement of the weight decay (outside the ratio).
        keras: bool = false,
    }
    /// Weight decay λ (inside the trust ratio unless `keras`).
    weight_decay = WeightDecay::None, as Decoupled;
}
betas!(Lamb);

impl Lamb {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("LAMB", self.lr)?;
        beta_ok("LAMB", "beta1", self.beta1)?;
        beta_ok("LAMB", "beta2", self.beta2)?;
        eps_ok("LAMB", self.eps)?;
        Optimizer::new_whole(LambRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct LambRule {
    cfg: Lamb,
}

impl<E: Float> WholeRule<E> for LambRule {
    fn name(&self) -> &'static str {
        "LAMB"
    }
    /// m, v.
    fn slots(&self, _name: &str, shape: &[usize]) -> Vec<usize> {
        let n = shape.iter().product();
        vec![n, n]
    }
    fn step(
        &self,
        _name: &str,
        p: &mut [E],
        g: &[E],
        _shape: &[usize],
        s: &mut [&mut [E]],
        _scalars: &mut [f64],
        t: u64,
        k: &Kernel<E>,
    ) {
        let [m, v] = s else {
            crate::rules::bad_slots("LAMB", s.len())
        };
        let c = &self.cfg;
        let (b1, b2) = (E::from_f64(c.beta1), E::from_f64(c.beta2));
        let (c1, c2) = (E::ONE - b1, E::ONE - b2);
        let bc1 = E::from_f64(bias_correction(c.beta1, t));
        let bc2 = E::from_f64(bias_correction(c.beta2, t));
        let eps = E::from_f64(c.eps);
        let inside = if c.keras { E::ZERO } else { k.lambda };
        if c.keras {
            for p in p.iter_mut() {
                *p *= k.decay;
            }
        }
        let mut u = Vec::with_capacity(p.len());
        for (((&p, &g), m), v) in p.iter().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let a = c1 * g + b1 * *m;
            let w = c2 * (g * g) + b2 * *v;
            *m = a;
            *v = w;
            u.push((a / bc1) / ((w / bc2).sqrt() + eps) + inside * p);
        }
        let (pn, un) = (sum_sq(p).sqrt(), sum_sq(&u).sqrt());
        let ratio = if pn == 0.0 || un == 0.0 { 1.0 } else { pn / un };
        let ratio = E::from_f64(ratio);
        for (p, &u) in p.iter_mut().zip(&u) {
            *p = descend(*p, k.lr * (u * ratio));
        }
    }
}

// ---------------------------------------------------------------- LARS

config! {
    /// LARS (You et al. 2017): per parameter tensor, the direction
    /// d = g + λθ is scaled by the trust ratio η‖θ‖/(‖d‖ + ε) (1 when either
    /// norm is 0), then by α, then goes through momentum: b ← μb − α·ratio·d,
    /// θ ← θ + b (Nesterov: θ ← θ + μb − α·ratio·d). Follows `optax.lars`,
    /// which takes the norm of g + λθ where the paper adds the two norms
    /// (‖g‖ + λ‖θ‖), and applies momentum after the rate (so a schedule
    /// changes the buffer's scale as in optax). Exclude biases and norms
    /// from the decay with a group.
    Lars {
        /// α (required; large-batch recipes use 1–30 with warm-up).
        lr: f64 = 1.0,
        /// η, the trust coefficient.
        trust_coefficient: f64 = 0.001,
        /// ε, added to the direction's norm.
        eps: f64 = 0.0,
        /// μ.
        momentum: f64 = 0.9,
        /// Nesterov momentum.
        nesterov: bool = false,
    }
    /// Weight decay λ, added to the gradient before the trust ratio (L2).
    weight_decay = WeightDecay::None, as L2;
}

impl Lars {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("LARS", self.lr)?;
        check(
            "LARS",
            "trust_coefficient",
            self.trust_coefficient,
            self.trust_coefficient > 0.0 && self.trust_coefficient.is_finite(),
            "must be finite and > 0",
        )?;
        nonneg("LARS", "eps", self.eps)?;
        check(
            "LARS",
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "must lie in [0, 1)",
        )?;
        Optimizer::new_whole(LarsRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct LarsRule {
    cfg: Lars,
}

impl<E: Float> WholeRule<E> for LarsRule {
    fn name(&self) -> &'static str {
        "LARS"
    }
    /// The momentum buffer (of α-scaled steps).
    fn slots(&self, _name: &str, shape: &[usize]) -> Vec<usize> {
        vec![shape.iter().product()]
    }
    fn step(
        &self,
        _name: &str,
        p: &mut [E],
        g: &[E],
        _shape: &[usize],
        s: &mut [&mut [E]],
        _scalars: &mut [f64],
        _t: u64,
        k: &Kernel<E>,
    ) {
        let [b] = s else {
            crate::rules::bad_slots("LARS", s.len())
        };
        let c = &self.cfg;
        let d: Vec<E> = p.iter().zip(g).map(|(&p, &g)| g + k.l2 * p).collect();
        let (pn, dn) = (sum_sq(p).sqrt(), sum_sq(&d).sqrt());
        let ratio = if pn == 0.0 || dn == 0.0 {
            1.0
        } else {
            c.trust_coefficient * pn / (dn + c.eps)
        };
        let ratio = E::from_f64(ratio);
        let mu = E::from_f64(c.momentum);
        for ((p, &d), b) in p.iter_mut().zip(&d).zip(b.iter_mut()) {
            let u = E::ZERO - k.lr * (d * ratio);
            let nb = u + mu * *b;
            *b = nb;
            let step = if c.nesterov { u + mu * nb } else { nb };
            *p = *p * k.decay + step;
        }
    }
}

// ---------------------------------------------------------------- Adafactor

config! {
    /// Adafactor (Shazeer & Stern 2018), as `torch.optim.Adafactor`: no
    /// first moment; for a tensor of ≥ 2 dimensions the second moment of
    /// each trailing matrix is factored into row and column means (state
    /// O(m + n) for an m×n matrix instead of O(mn)); the step is relative
    /// to the parameter's RMS and clipped by the update's RMS.
    /// With ρ_t = min(α, 1/√t), β₂ decay 1 − t^c:
    /// R ← lerp(R, mean_c g², 1 − β₂_t), C ← lerp(C, mean_r g², 1 − β₂_t),
    /// V = R·C/mean(R) (a vector: V ← lerp(V, g², 1 − β₂_t)),
    /// u = g/√max(V, ε₁²), θ ← θ − max(ε₂, RMS(θ))·ρ_t·u/max(1, RMS(u)/d).
    /// Where PyTorch differs from the paper, it is followed: no first
    /// moment, min(α, 1/√t) as the relative step (the paper's is
    /// min(10⁻², 1/√t)), ε₁ = the element type's machine epsilon by default
    /// (the paper: 1e-30), decay θ ← (1 − αλ)θ.
    Adafactor {
        /// α, the cap of the relative step size.
        lr: f64 = 0.01,
        /// c in β₂_t = 1 − t^c (negative).
        beta2_decay: f64 = -0.8,
        /// ε₁, the floor of the second moment (None: machine epsilon of the
        /// element type, as PyTorch).
        eps1: Option<f64> = None,
        /// ε₂, the floor of the parameter RMS in the step size.
        eps2: f64 = 1e-3,
        /// d, the clipping threshold of the update's RMS (≥ 1).
        d: f64 = 1.0,
    }
    /// Decoupled weight decay θ ← (1 − αλ)θ (PyTorch's).
    weight_decay = WeightDecay::None, as Decoupled;
}

impl Adafactor {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Adafactor", self.lr)?;
        check(
            "Adafactor",
            "beta2_decay",
            self.beta2_decay,
            self.beta2_decay <= 0.0 && self.beta2_decay.is_finite(),
            "must be finite and <= 0",
        )?;
        if let Some(e) = self.eps1 {
            nonneg("Adafactor", "eps1", e)?;
        }
        nonneg("Adafactor", "eps2", self.eps2)?;
        check(
            "Adafactor",
            "d",
            self.d,
            self.d >= 1.0 && self.d.is_finite(),
            "must be finite and >= 1",
        )?;
        Optimizer::new_whole(AdafactorRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct AdafactorRule {
    cfg: Adafactor,
}

/// (batches, rows, columns) of a tensor of ≥ 2 dimensions.
fn factors(shape: &[usize]) -> Option<(usize, usize, usize)> {
    let n = shape.len();
    if n < 2 {
        return None;
    }
    Some((shape[..n - 2].iter().product(), shape[n - 2], shape[n - 1]))
}

impl<E: Float> WholeRule<E> for AdafactorRule {
    fn name(&self) -> &'static str {
        "Adafactor"
    }
    /// ≥ 2 dimensions: the row means (batches × rows) and the column
    /// means (batches × columns); else the second moment.
    fn slots(&self, _name: &str, shape: &[usize]) -> Vec<usize> {
        match factors(shape) {
            Some((b, r, c)) => vec![b * r, b * c],
            None => vec![shape.iter().product()],
        }
    }
    fn step(
        &self,
        _name: &str,
        p: &mut [E],
        g: &[E],
        shape: &[usize],
        s: &mut [&mut [E]],
        _scalars: &mut [f64],
        t: u64,
        k: &Kernel<E>,
    ) {
        let n = p.len();
        if n == 0 {
            return;
        }
        let c = &self.cfg;
        let tf = t as f64;
        let w = E::from_f64(tf.powf(c.beta2_decay));
        let lr = k.lr.to_f64();
        let rho = lr.min(1.0 / tf.sqrt());
        let rms = (sum_sq(p) / n as f64).sqrt();
        let alpha = c.eps2.max(rms) * rho;
        for p in p.iter_mut() {
            *p *= k.decay;
        }
        let eps1 = c.eps1.map_or(E::EPSILON, E::from_f64);
        let floor = eps1 * eps1;
        let mut u: Vec<E> = Vec::with_capacity(n);
        match (factors(shape), s) {
            (Some((nb, nr, nc)), [rows, cols]) => {
                let (rf, cf) = (E::from_usize(nc), E::from_usize(nr));
                for b in 0..nb {
                    let gm = &g[b * nr * nc..(b + 1) * nr * nc];
                    let rv = &mut rows[b * nr..(b + 1) * nr];
                    for (r, rv) in rv.iter_mut().enumerate() {
                        let sq = E::from_f64(sum_sq(&gm[r * nc..(r + 1) * nc]));
                        *rv = lerp(*rv, sq / rf, w);
                    }
                    let cv = &mut cols[b * nc..(b + 1) * nc];
                    for (j, cv) in cv.iter_mut().enumerate() {
                        let sq: f64 = (0..nr)
                            .map(|r| {
                                let x = gm[r * nc + j].to_f64();
                                x * x
                            })
                            .sum();
                        *cv = lerp(*cv, E::from_f64(sq) / cf, w);
                    }
                    let mean = rv.iter().fold(E::ZERO, |a, &x| a + x) / E::from_usize(nr);
                    let mean = if mean < eps1 { eps1 } else { mean };
                    for r in 0..nr {
                        for j in 0..nc {
                            let mut v = rv[r] * cv[j] / mean;
                            if v < floor {
                                v = floor;
                            }
                            u.push(gm[r * nc + j] / v.sqrt());
                        }
                    }
                }
            }
            (None, [var]) => {
                for (v, &g) in var.iter_mut().zip(g) {
                    *v = lerp(*v, g * g, w);
                    let vv = if *v < floor { floor } else { *v };
                    u.push(g / vv.sqrt());
                }
            }
            (_, s) => crate::rules::bad_slots("Adafactor", s.len()),
        }
        let urms = sum_sq(&u).sqrt() / ((n as f64).sqrt() * c.d);
        let step = E::from_f64(alpha / urms.max(1.0));
        for (p, &u) in p.iter_mut().zip(&u) {
            *p = descend(*p, step * u);
        }
    }
}

// ---------------------------------------------------------------- Muon

/// How Muon scales the learning rate by the matrix shape A×B (rows ×
/// columns), as `adjust_lr_fn` of `torch.optim.Muon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MuonScale {
    /// √max(1, A/B) (Keller Jordan's original; PyTorch's default).
    #[default]
    Original,
    /// 0.2·√max(A, B), matching AdamW's update RMS (Moonshot, "Muon is
    /// Scalable for LLM Training"): reuse AdamW's rate and decay.
    MatchRmsAdamW,
    /// √(A/B) (Bernstein, "Deriving Muon").
    SpectralUnclamped,
}

/// The precision of Muon's Newton-Schulz iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NsPrecision {
    /// The parameter's element type (f32 or f64): Tapir's default, since a
    /// CPU gains nothing from bf16 and loses accuracy.
    #[default]
    Native,
    /// bf16 as PyTorch (every product and sum rounded to bf16, the
    /// products accumulated in f32): for matching a GPU run.
    Bf16,
}

/// Muon (Keller Jordan 2024), as `torch.optim.Muon`, for the matrices of
/// hidden layers: b ← μb + (1 − μ)g (an EMA, despite PyTorch's docstring),
/// Nesterov's u = lerp(g, b, μ) (else u = b), O = NewtonSchulz₅(u)
/// (≈ the orthogonal factor UVᵀ of u), θ ← (1 − αλ)θ − α·s(A, B)·O with
/// s the [`MuonScale`] (only the update is scaled, not the decay).
///
/// PyTorch refuses parameters that are not 2-D; Tapir sends them, and
/// every parameter whose name `adamw_for` accepts (embeddings, the output
/// head), to a built-in AdamW with rate α·`adamw_lr_ratio`, `adamw_betas`,
/// `adamw_eps` and the same λ, as Keras's `Muon` does. The Newton-Schulz
/// runs in the element type by default ([`NsPrecision`]).
///
/// `Muon::new(0.02).adamw_for(|n| n.contains("embed")).build()?`
#[derive(Debug, Clone, Copy)]
pub struct Muon {
    /// α. Default `1e-3` (PyTorch); 0.02 is Keller Jordan's.
    pub lr: f64,
    /// μ. Default `0.95`.
    pub momentum: f64,
    /// Nesterov momentum. Default `true`.
    pub nesterov: bool,
    /// The quintic's coefficients (a, b, c). Default `(3.4445, -4.7750, 2.0315)`.
    pub ns_coefficients: (f64, f64, f64),
    /// Newton-Schulz iterations (< 100). Default `5`.
    pub ns_steps: u32,
    /// ε of the normalisation before the iteration. Default `1e-7`.
    pub eps: f64,
    /// The shape scaling of the rate. Default [`MuonScale::Original`].
    pub scale: MuonScale,
    /// The iteration's precision. Default [`NsPrecision::Native`].
    pub precision: NsPrecision,
    /// Decoupled weight decay λ, for Muon's and AdamW's parameters.
    /// Default `0.1` (PyTorch).
    pub weight_decay: f64,
    /// Names of 2-D parameters to give to AdamW instead. Default: none.
    pub adamw_for: Option<fn(&str) -> bool>,
    /// AdamW's rate as a fraction of α. Default `0.1` (Keras).
    pub adamw_lr_ratio: f64,
    /// AdamW's β₁, β₂. Default `(0.9, 0.999)`.
    pub adamw_betas: (f64, f64),
    /// AdamW's ε. Default `1e-8` (PyTorch's AdamW).
    pub adamw_eps: f64,
}

impl Default for Muon {
    fn default() -> Self {
        Muon {
            lr: 1e-3,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: (3.4445, -4.7750, 2.0315),
            ns_steps: 5,
            eps: 1e-7,
            scale: MuonScale::Original,
            precision: NsPrecision::Native,
            weight_decay: 0.1,
            adamw_for: None,
            adamw_lr_ratio: 0.1,
            adamw_betas: (0.9, 0.999),
            adamw_eps: 1e-8,
        }
    }
}

macro_rules! setters {
    ($t:ident { $($f:ident: $ty:ty),* }) => {
        impl $t {
            $(
                #[doc = concat!("Sets `", stringify!($f), "` (see the field).")]
                pub fn $f(mut self, $f: $ty) -> Self {
                    self.$f = $f;
                    self
                }
            )*
        }
    };
}
setters!(Muon {
    momentum: f64,
    nesterov: bool,
    ns_coefficients: (f64, f64, f64),
    ns_steps: u32,
    eps: f64,
    scale: MuonScale,
    precision: NsPrecision,
    weight_decay: f64,
    adamw_lr_ratio: f64,
    adamw_betas: (f64, f64),
    adamw_eps: f64
});

impl Muon {
    /// The configuration with learning rate `lr` and the defaults otherwise.
    pub fn new(lr: f64) -> Self {
        Muon {
            lr,
            ..Default::default()
        }
    }

    /// 2-D parameters whose name `f` accepts go to AdamW (embeddings,
    /// the classifier head).
    pub fn adamw_for(mut self, f: fn(&str) -> bool) -> Self {
        self.adamw_for = Some(f);
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Muon", self.lr)?;
        check(
            "Muon",
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "must lie in [0, 1)",
        )?;
        check(
            "Muon",
            "ns_steps",
            f64::from(self.ns_steps),
            self.ns_steps < 100,
            "must be < 100",
        )?;
        let (a, b, c) = self.ns_coefficients;
        for (name, v) in [
            ("ns_coefficients.a", a),
            ("ns_coefficients.b", b),
            ("ns_coefficients.c", c),
        ] {
            check("Muon", name, v, v.is_finite(), "must be finite")?;
        }
        eps_ok("Muon", self.eps)?;
        nonneg("Muon", "weight_decay", self.weight_decay)?;
        nonneg("Muon", "adamw_lr_ratio", self.adamw_lr_ratio)?;
        beta_ok("Muon", "adamw_betas.0", self.adamw_betas.0)?;
        beta_ok("Muon", "adamw_betas.1", self.adamw_betas.1)?;
        check(
            "Muon",
            "adamw_eps",
            self.adamw_eps,
            self.adamw_eps > 0.0 && self.adamw_eps.is_finite(),
            "must be finite and > 0",
        )?;
        let wd = if self.weight_decay == 0.0 {
            WeightDecay::None
        } else {
            WeightDecay::Decoupled(self.weight_decay)
        };
        Optimizer::new_whole(MuonRule { cfg: self }, self.lr, wd)
    }
}

pub(crate) struct MuonRule {
    cfg: Muon,
}

impl MuonRule {
    fn orthogonal(&self, name: &str, shape: &[usize]) -> bool {
        shape.len() == 2 && !self.cfg.adamw_for.is_some_and(|f| f(name))
    }
}

/// Rounds to the nearest bf16 (ties to even), kept in f32.
fn bf16(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let b = x.to_bits();
    let round = 0x7fff + ((b >> 16) & 1);
    f32::from_bits((b.wrapping_add(round)) & 0xffff_0000)
}

fn round_bf16<E: Float>(t: Tensor<E>) -> Tensor<E> {
    t.map(|x| E::from_f64(f64::from(bf16(x.to_f64() as f32))))
}

/// Newton-Schulz's quintic on the r×c matrix `u` (PyTorch's
/// `_zeropower_via_newtonschulz`): transposed to the wide side, divided by
/// max(‖u‖_F, ε), then k times A = XXᵀ, X ← aX + (bA + cA²)X.
fn newton_schulz<E: Float>(u: &[E], r: usize, c: usize, cfg: &Muon) -> Vec<E> {
    let bf = cfg.precision == NsPrecision::Bf16;
    let q = |t: Tensor<E>| if bf { round_bf16(t) } else { t };
    let m = Tensor::from_vec(u.to_vec(), [r, c]).expect("r·c elements");
    let m = q(m);
    let tall = r > c;
    let mut x = if tall {
        m.t().expect("2-D").contiguous()
    } else {
        m
    };
    let norm = E::from_f64(sum_sq(&x.to_vec()).sqrt().max(cfg.eps));
    let norm = if bf {
        q(Tensor::scalar(norm)).to_vec()[0]
    } else {
        norm
    };
    x = q(x.map(|v| v / norm));
    let (a, b, cc) = cfg.ns_coefficients;
    let (a, b, cc) = (E::from_f64(a), E::from_f64(b), E::from_f64(cc));
    for _ in 0..cfg.ns_steps {
        let xt = x.t().expect("2-D");
        // Rounded where PyTorch's bf16 ops round: after each product and
        // after each fused addmm (bA + cA·A, aX + B·X), not inside them.
        let gram = q(x.matmul(&xt).expect("shapes"));
        let g2 = gram.matmul(&gram).expect("square");
        let upd = q(gram
            .mul_scalar(b)
            .add(&g2.mul_scalar(cc))
            .expect("same shape"));
        let ux = upd.matmul(&x).expect("shapes");
        x = q(x.mul_scalar(a).add(&ux).expect("same shape"));
    }
    if tall {
        x.t().expect("2-D").to_vec()
    } else {
        x.to_vec()
    }
}

impl<E: Float> WholeRule<E> for MuonRule {
    fn name(&self) -> &'static str {
        "Muon"
    }
    /// Muon's matrices: the momentum buffer; the rest (AdamW): m, v.
    fn slots(&self, name: &str, shape: &[usize]) -> Vec<usize> {
        let n = shape.iter().product();
        if self.orthogonal(name, shape) {
            vec![n]
        } else {
            vec![n, n]
        }
    }
    fn step(
        &self,
        name: &str,
        p: &mut [E],
        g: &[E],
        shape: &[usize],
        s: &mut [&mut [E]],
        _scalars: &mut [f64],
        t: u64,
        k: &Kernel<E>,
    ) {
        let c = &self.cfg;
        if !self.orthogonal(name, shape) {
            let [m, v] = s else {
                crate::rules::bad_slots("Muon (AdamW)", s.len())
            };
            adamw(p, g, m, v, t, k, c);
            return;
        }
        let [buf] = s else {
            crate::rules::bad_slots("Muon", s.len())
        };
        let mu = E::from_f64(c.momentum);
        let one_minus = E::ONE - mu;
        let mut u = Vec::with_capacity(p.len());
        for (b, &g) in buf.iter_mut().zip(g) {
            let nb = lerp(*b, g, one_minus);
            *b = nb;
            u.push(if c.nesterov { lerp(g, nb, mu) } else { nb });
        }
        let (r, cols) = (shape[0], shape[1]);
        let o = newton_schulz(&u, r, cols, c);
        let (a, b) = (r as f64, cols as f64);
        let ratio = match c.scale {
            MuonScale::Original => (a / b).max(1.0).sqrt(),
            MuonScale::MatchRmsAdamW => 0.2 * a.max(b).sqrt(),
            MuonScale::SpectralUnclamped => (a / b).sqrt(),
        };
        let lr = E::from_f64(k.lr.to_f64() * ratio);
        for (p, &o) in p.iter_mut().zip(&o) {
            *p = descend(*p * k.decay, lr * o);
        }
    }
}

/// PyTorch's AdamW step for Muon's other parameters: θ ← (1 − α'λ)θ, then
/// Adam with α' = α·ratio.
fn adamw<E: Float>(
    p: &mut [E],
    g: &[E],
    m: &mut [E],
    v: &mut [E],
    t: u64,
    k: &Kernel<E>,
    c: &Muon,
) {
    let lr = k.lr.to_f64() * c.adamw_lr_ratio;
    let decay = E::from_f64(1.0 - lr * k.lambda.to_f64());
    let (b1, b2) = c.adamw_betas;
    let betas = Betas::<E>::new(b1, b2);
    let step = E::from_f64(lr / bias_correction(b1, t));
    let inv = E::from_f64(1.0 / bias_correction(b2, t).sqrt());
    let eps = E::from_f64(c.adamw_eps);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let (nm, nv) = betas.moments(*m, *v, g);
        *m = nm;
        *v = nv;
        *p = descend(*p * decay, step * nm / adam_denom(nv, inv, eps));
    }
}

// ---------------------------------------------------------------- Sophia

config! {
    /// Sophia (Liu et al. 2023, "Sophia: A Scalable Stochastic Second-order
    /// Optimizer for Language Model Pre-training"), as
    /// `optax.contrib.sophia`: m ← β₁m + (1 − β₁)g, u = clip(m̂/max(γh, ε), ±ρ),
    /// θ ← (1 − αλ)θ − αu, where h is an EMA of estimates of the Hessian
    /// diagonal, h ← β₂h + (1 − β₂)ĥ, taken every k steps and handed over
    /// with [`Optimizer::observe_hessian`]. The estimates come from Tapir's
    /// own second-order autodiff: [`crate::hutchinson`] (Sophia-H, u ⊙ Hu)
    /// or [`crate::gauss_newton_bartlett`] (Sophia-G). optax bias-corrects
    /// m (m̂ = m/(1 − β₁ᵗ)) where the paper does not:
    /// `bias_correction(false)` gives the paper's.
    ///
    /// The loop, as optax orders it (the estimate at the parameters the
    /// step starts from, taken into h after the step):
    ///
    /// ```
    /// use tapir_autograd::{Parameter, Tape};
    /// use tapir_optim::{hutchinson, objective, rademacher, Sophia};
    /// use tapir_tensor::{Rng, Tensor};
    ///
    /// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![3.0, -2.0], [2])?);
    /// let loss = objective(|t: &Tape<f64>| Ok(t.param(&w).pow_scalar(4.0).sum()));
    /// let mut opt = Sophia::new(0.05).build::<f64>()?;
    /// let mut rng = Rng::seed(0);
    /// for step in 0..200 {
    ///     let estimate = if step % 10 == 0 {
    ///         Some(hutchinson(&[&w], loss, &rademacher(&[&w], &mut rng))?)
    ///     } else {
    ///         None
    ///     };
    ///     let tape = Tape::new();
    ///     let l = loss(&tape)?;
    ///     opt.apply_gradients(&tape.gradient(&l, [&w])?)?;
    ///     if let Some(h) = estimate {
    ///         opt.observe_hessian(&h)?;
    ///     }
    /// }
    /// assert!(w.value().abs().max()?.item()? < 0.3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    Sophia {
        /// α.
        lr: f64 = 1e-4,
        /// β₁, the momentum.
        beta1: f64 = 0.965,
        /// β₂, the EMA of the Hessian estimates (per estimate, not per step).
        beta2: f64 = 0.99,
        /// ε, the floor of γh.
        eps: f64 = 1e-8,
        /// γ, the scale of the Hessian.
        gamma: f64 = 0.01,
        /// ρ, the clip of each element of the update (None: no clip).
        clip: Option<f64> = Some(1.0),
        /// Divide m by 1 − β₁ᵗ (optax) or not (the paper).
        bias_correction: bool = true,
    }
    /// Decoupled weight decay (optax's default λ is 1e-4).
    weight_decay = WeightDecay::Decoupled(1e-4), as Decoupled;
}
betas!(Sophia);

impl Sophia {
    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        check_lr("Sophia", self.lr)?;
        beta_ok("Sophia", "beta1", self.beta1)?;
        beta_ok("Sophia", "beta2", self.beta2)?;
        eps_ok("Sophia", self.eps)?;
        nonneg("Sophia", "gamma", self.gamma)?;
        if let Some(r) = self.clip {
            check(
                "Sophia",
                "clip",
                r,
                r > 0.0 && r.is_finite(),
                "must be finite and > 0",
            )?;
        }
        Optimizer::new(SophiaRule { cfg: self }, self.lr, self.weight_decay)
    }
}

pub(crate) struct SophiaRule {
    cfg: Sophia,
}

#[derive(Clone, Copy)]
pub(crate) struct SophiaCoeffs<E> {
    b1: E,
    c1: E,
    /// 1 − β₁ᵗ (1 without bias correction).
    bc1: E,
    gamma: E,
    eps: E,
    clip: E,
}

impl<E: Float> Rule<E> for SophiaRule {
    type Coeffs = SophiaCoeffs<E>;
    fn name(&self) -> &'static str {
        "Sophia"
    }
    /// m, h.
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, t: u64, _lr: f64, _s: &mut [f64]) -> SophiaCoeffs<E> {
        let c = &self.cfg;
        let b1 = E::from_f64(c.beta1);
        SophiaCoeffs {
            b1,
            c1: E::ONE - b1,
            bc1: E::from_f64(if c.bias_correction {
                bias_correction(c.beta1, t)
            } else {
                1.0
            }),
            gamma: E::from_f64(c.gamma),
            eps: E::from_f64(c.eps),
            clip: E::from_f64(c.clip.unwrap_or(f64::INFINITY)),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &SophiaCoeffs<E>) {
        let [m, h] = s else {
            crate::rules::bad_slots("Sophia", s.len())
        };
        for (((p, &g), m), &h) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(h.iter()) {
            let (pd, g) = weight_decay(*p, g, k);
            let nm = c.c1 * g + c.b1 * *m;
            *m = nm;
            let gh = c.gamma * h;
            let mut u = (nm / c.bc1) / if gh > c.eps { gh } else { c.eps };
            if u > c.clip {
                u = c.clip;
            } else if u < E::ZERO - c.clip {
                u = E::ZERO - c.clip;
            }
            *p = descend(pd, k.lr * u);
        }
    }
    fn curvature(&self, s: &mut [&mut [E]], est: &[E]) -> bool {
        let b2 = E::from_f64(self.cfg.beta2);
        let c2 = E::ONE - b2;
        if let [_, h] = s {
            for (h, &e) in h.iter_mut().zip(est) {
                *h = c2 * e + b2 * *h;
            }
        }
        true
    }
}
