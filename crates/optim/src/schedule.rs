//! Learning-rate schedules. Each gives the rate for optimizer step `t`
//! (0-based: the first step uses t = 0), as PyTorch's schedulers do when
//! `scheduler.step()` follows every `optimizer.step()`. A boundary at step
//! k means step k already uses the new rate ("switches at the boundary").
//!
//! Every built-in schedule checks its fields in [`Schedule::validate`],
//! which [`crate::Optimizer::with_schedule`] calls; a built-in schedule
//! that passes (a [`Sequential`] of such) gives a finite, non-negative rate
//! for every step `t` up to `u64::MAX` and every finite, non-negative base
//! rate, and evaluates in bounded time (at most 64 cycles for
//! [`CosineRestarts`]). Rates from other schedules ([`FnSchedule`], your
//! own) are checked by `apply_gradients` at every step.

use std::f64::consts::PI;

use crate::error::{check, Error, Result};
use crate::pieces::pow_steps;

/// A learning-rate schedule: the rate of each step, given a base rate.
///
/// In an optimizer ([`crate::Optimizer::with_schedule`]) the base is the
/// optimizer's own `lr`, as PyTorch's `torch.optim.lr_scheduler.*LR` take
/// the optimizer's `lr` as their `base_lr`, so nothing is passed twice:
/// `Adam::new(1e-3).build()?.with_schedule(Cosine { t_max: 1000, eta_min: 0.0 })?`.
/// To use a schedule on its own, or Keras-style with its own starting rate
/// (Keras's `LearningRateSchedule(initial_learning_rate, ...)`), give it one
/// with [`Schedule::with_lr`]; then [`Scheduled::lr`] takes the step alone.
/// [`OneCycle`] and [`Cyclic`] carry absolute rates already and have an
/// `lr(t)` of their own.
pub trait Schedule: Send {
    /// The rate for step `t` (0-based) when the base rate is `base`: what
    /// implementors write, and what the optimizer calls with its `lr`.
    fn rate(&self, t: u64, base: f64) -> f64;
    /// This schedule with its own base rate (Keras's
    /// `initial_learning_rate`): `Cosine { .. }.with_lr(0.1).lr(t)`. In an
    /// optimizer, that rate replaces the optimizer's `lr` as the base.
    fn with_lr(self, lr: f64) -> Scheduled<Self>
    where
        Self: Sized,
    {
        Scheduled {
            base: lr,
            schedule: self,
        }
    }
    /// Checks the schedule's parameters; [`crate::Optimizer::with_schedule`]
    /// calls it, so a schedule is checked when it enters an optimizer. The
    /// default accepts everything (closures are checked step by step
    /// instead: `apply_gradients` refuses a rate that is negative or not
    /// finite).
    ///
    /// # Errors
    /// [`Error::Hyperparameter`] naming the schedule, the field and its value.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// A metric reported after a step (only reduce-on-plateau uses it).
    fn observe(&mut self, _metric: f64) {}
    /// Internal state beyond the step count, for checkpoints (empty for the
    /// schedules that are functions of the step alone).
    fn state(&self) -> Vec<f64> {
        Vec::new()
    }
    /// Restores what [`Schedule::state`] returned. On an error the schedule
    /// must be left as it was. The default, for schedules without state,
    /// accepts only an empty state.
    ///
    /// # Errors
    /// [`Error::State`] for a state this schedule could not have produced
    /// (wrong length, values out of range), saying what does not fit.
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(Error::State(format!(
                "the saved schedule state has {} values, but this schedule keeps none",
                state.len()
            )))
        }
    }
}

/// A schedule with its own base rate, from [`Schedule::with_lr`]: a
/// function of the step alone, like a Keras `LearningRateSchedule` or optax
/// schedule. Valid: the base finite and ≥ 0, and the schedule valid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled<S> {
    /// The base rate (Keras's `initial_learning_rate`, PyTorch's `base_lr`).
    pub base: f64,
    /// The schedule.
    pub schedule: S,
}

impl<S: Schedule> Scheduled<S> {
    /// The learning rate of step `t` (0-based): `schedule.rate(t, base)`.
    pub fn lr(&self, t: u64) -> f64 {
        self.schedule.rate(t, self.base)
    }
}

impl<S: Schedule> Schedule for Scheduled<S> {
    fn rate(&self, t: u64, _base: f64) -> f64 {
        self.lr(t)
    }
    fn validate(&self) -> Result<()> {
        non_negative("Scheduled", "base", self.base)?;
        self.schedule.validate()
    }
    fn observe(&mut self, metric: f64) {
        self.schedule.observe(metric);
    }
    fn state(&self) -> Vec<f64> {
        self.schedule.state()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        self.schedule.set_state(state)
    }
}

/// A boxed schedule is a schedule (for [`Sequential`]'s parts and for
/// schedules chosen at run time).
impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn rate(&self, t: u64, base: f64) -> f64 {
        (**self).rate(t, base)
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn observe(&mut self, metric: f64) {
        (**self).observe(metric);
    }
    fn state(&self) -> Vec<f64> {
        (**self).state()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        (**self).set_state(state)
    }
}

/// Finite and ≥ 0.
fn non_negative(schedule: &'static str, name: &'static str, v: f64) -> Result<()> {
    check(
        schedule,
        name,
        v,
        v >= 0.0 && v.is_finite(),
        "must be finite and >= 0",
    )
}

/// In [0, 1].
fn unit(schedule: &'static str, name: &'static str, v: f64) -> Result<()> {
    check(
        schedule,
        name,
        v,
        (0.0..=1.0).contains(&v),
        "must lie in [0, 1]",
    )
}

/// A step count that divides: at least 1.
fn positive(schedule: &'static str, name: &'static str, v: u64) -> Result<()> {
    check(schedule, name, v as f64, v >= 1, "must be >= 1")
}

/// η_min + (base − η_min)(1 + cos πx)/2, for x = `num`/`den` ≥ 0. Halving
/// before the product (exact for normal numbers) keeps a base near
/// `f64::MAX` finite.
fn cosine_between(eta_min: f64, base: f64, num: u64, den: u64) -> f64 {
    let x = PI * num as f64 / den.max(1) as f64;
    let v = eta_min + (base - eta_min) / 2.0 * (1.0 + x.cos());
    // A convex combination of the two: clamping only undoes rounding (with
    // subnormal rates halving is inexact and could give a tiny negative).
    v.max(eta_min.min(base)).min(eta_min.max(base))
}

/// The base rate times `factor` for the first `steps` steps, then the base
/// rate (`torch.optim.lr_scheduler.ConstantLR`). Valid: `factor` in [0, 1]
/// (as PyTorch); any `steps` (0: the base rate throughout).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    /// Factor applied at first.
    pub factor: f64,
    /// Steps it lasts.
    pub steps: u64,
}
impl Schedule for Constant {
    fn rate(&self, t: u64, base: f64) -> f64 {
        if t < self.steps {
            base * self.factor
        } else {
            base
        }
    }
    fn validate(&self) -> Result<()> {
        unit("Constant", "factor", self.factor)
    }
}

/// ×γ every `step_size` steps (`StepLR`; Keras `ExponentialDecay` with
/// `staircase=True`). Switches at multiples of `step_size`. Valid:
/// `step_size` ≥ 1, γ in [0, 1] (a decay; a growing rate would overflow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    /// Steps between decays.
    pub step_size: u64,
    /// Factor per decay.
    pub gamma: f64,
}
impl Schedule for StepDecay {
    fn rate(&self, t: u64, base: f64) -> f64 {
        base * pow_steps(self.gamma, t / self.step_size.max(1))
    }
    fn validate(&self) -> Result<()> {
        positive("StepDecay", "step_size", self.step_size)?;
        unit("StepDecay", "gamma", self.gamma)
    }
}

/// ×γ at each milestone (`MultiStepLR`; Keras `PiecewiseConstantDecay`
/// switches one step later, after the boundary). The milestones may come in
/// any order; one listed twice applies γ twice (as PyTorch's `Counter`).
/// Valid: γ in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStep {
    /// Steps at which the rate drops.
    pub milestones: Vec<u64>,
    /// Factor per milestone.
    pub gamma: f64,
}
impl Schedule for MultiStep {
    fn rate(&self, t: u64, base: f64) -> f64 {
        let n = self.milestones.iter().filter(|&&m| m <= t).count();
        base * pow_steps(self.gamma, n as u64)
    }
    fn validate(&self) -> Result<()> {
        unit("MultiStep", "gamma", self.gamma)
    }
}

/// base·γᵗ (`ExponentialLR`; optax `exponential_decay` with
/// transition_steps 1). Valid: γ in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    /// γ.
    pub gamma: f64,
}
impl Schedule for Exponential {
    fn rate(&self, t: u64, base: f64) -> f64 {
        base * pow_steps(self.gamma, t)
    }
    fn validate(&self) -> Result<()> {
        unit("Exponential", "gamma", self.gamma)
    }
}

/// base·(1 − min(t, T)/T)^power (`PolynomialLR`, which ends at 0; Keras
/// `PolynomialDecay` and optax `polynomial_schedule` end at a set value).
/// Valid: T ≥ 1, power finite and ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polynomial {
    /// T.
    pub total_steps: u64,
    /// Exponent.
    pub power: f64,
}
impl Schedule for Polynomial {
    fn rate(&self, t: u64, base: f64) -> f64 {
        let frac = t.min(self.total_steps) as f64 / self.total_steps.max(1) as f64;
        base * (1.0 - frac).powf(self.power)
    }
    fn validate(&self) -> Result<()> {
        positive("Polynomial", "total_steps", self.total_steps)?;
        non_negative("Polynomial", "power", self.power)
    }
}

/// base / (1 + rate·t/steps) (Keras `InverseTimeDecay`, not staircase; no
/// PyTorch scheduler). Valid: rate finite and ≥ 0, steps ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InverseTime {
    /// Decay rate.
    pub rate: f64,
    /// Steps per unit of decay.
    pub steps: u64,
}
impl Schedule for InverseTime {
    fn rate(&self, t: u64, base: f64) -> f64 {
        base / (1.0 + self.rate * t as f64 / self.steps.max(1) as f64)
    }
    fn validate(&self) -> Result<()> {
        non_negative("InverseTime", "rate", self.rate)?;
        positive("InverseTime", "steps", self.steps)
    }
}

/// η_min + (base − η_min)(1 + cos(πt/T))/2 (`CosineAnnealingLR`; like
/// PyTorch it keeps following the cosine past T, rising again). Valid:
/// T ≥ 1, η_min finite and ≥ 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cosine {
    /// T.
    pub t_max: u64,
    /// η_min.
    pub eta_min: f64,
}
impl Schedule for Cosine {
    fn rate(&self, t: u64, base: f64) -> f64 {
        cosine_between(self.eta_min, base, t, self.t_max)
    }
    fn validate(&self) -> Result<()> {
        positive("Cosine", "t_max", self.t_max)?;
        non_negative("Cosine", "eta_min", self.eta_min)
    }
}

/// Cosine annealing restarted after T₀, T₀·m, T₀·m², ... steps (SGDR,
/// `CosineAnnealingWarmRestarts`). Valid (as PyTorch): T₀ ≥ 1, m an
/// integer ≥ 1, η_min finite and ≥ 0. Any m is safe: the cycle arithmetic
/// saturates, and a cycle that would end past `u64::MAX` simply lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineRestarts {
    /// Length of the first cycle.
    pub t0: u64,
    /// Growth factor of the cycle length (integer ≥ 1).
    pub t_mult: u64,
    /// η_min.
    pub eta_min: f64,
}
impl CosineRestarts {
    /// The cycle holding step `t`: (its first step, its length).
    fn cycle(&self, t: u64) -> (u64, u64) {
        let (t0, mult) = (self.t0.max(1), self.t_mult.max(1));
        if mult == 1 {
            return (t - t % t0, t0);
        }
        // Lengths grow at least twofold, so this runs at most 64 times.
        let (mut start, mut len) = (0u64, t0);
        while let Some(end) = start.checked_add(len) {
            if t < end {
                break;
            }
            start = end;
            len = len.saturating_mul(mult);
        }
        (start, len)
    }
}
impl Schedule for CosineRestarts {
    fn rate(&self, t: u64, base: f64) -> f64 {
        let (start, len) = self.cycle(t);
        cosine_between(self.eta_min, base, t - start, len)
    }
    fn validate(&self) -> Result<()> {
        positive("CosineRestarts", "t0", self.t0)?;
        positive("CosineRestarts", "t_mult", self.t_mult)?;
        non_negative("CosineRestarts", "eta_min", self.eta_min)
    }
}

/// Factor rising linearly from `start` to `end` over `steps` steps, then
/// `end` (`LinearLR`; a linear warm-up with start < 1, end 1). Valid: both
/// factors in [0, 1] (PyTorch also refuses start = 0, which its recursive
/// form divides by; this closed form does not), steps ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    /// Factor at step 0.
    pub start: f64,
    /// Factor from step `steps` on.
    pub end: f64,
    /// Steps of the ramp.
    pub steps: u64,
}
impl Schedule for Linear {
    fn rate(&self, t: u64, base: f64) -> f64 {
        if t >= self.steps {
            return base * self.end;
        }
        let frac = t as f64 / self.steps as f64;
        base * (self.start + (self.end - self.start) * frac)
    }
    fn validate(&self) -> Result<()> {
        unit("Linear", "start", self.start)?;
        unit("Linear", "end", self.end)?;
        positive("Linear", "steps", self.steps)
    }
}

/// Schedules one after another (`SequentialLR`): schedule i runs from
/// milestone i−1 on, with its own step count restarting at 0. Warm-up steps
/// therefore do not count in the decay length of the schedule after them
/// (optax's `join_schedules` likewise; Keras's `CosineDecay(warmup_steps=)`
/// differs). Valid: at least one schedule, one milestone fewer than
/// schedules, milestones strictly increasing and the first > 0 (so every
/// schedule runs at least one step), and every schedule valid.
pub struct Sequential {
    /// The schedules.
    pub schedules: Vec<Box<dyn Schedule>>,
    /// Steps at which the next schedule takes over (one fewer than schedules).
    pub milestones: Vec<u64>,
}
impl Sequential {
    /// Splits a saved state into each part's state (each prefixed by its
    /// length), checking the layout.
    fn split_state<'a>(&self, state: &'a [f64]) -> Result<Vec<&'a [f64]>> {
        let mut parts = Vec::with_capacity(self.schedules.len());
        let mut rest = state;
        for i in 0..self.schedules.len() {
            let Some((&n, tail)) = rest.split_first() else {
                return Err(Error::State(format!(
                    "Sequential: the saved state ends before part {i} of {}",
                    self.schedules.len()
                )));
            };
            if !(n >= 0.0 && n.fract() == 0.0 && n <= tail.len() as f64) {
                return Err(Error::State(format!(
                    "Sequential: part {i} claims {n} state values, {} remain",
                    tail.len()
                )));
            }
            let (part, next) = tail.split_at(n as usize);
            parts.push(part);
            rest = next;
        }
        if !rest.is_empty() {
            return Err(Error::State(format!(
                "Sequential: {} saved state values left over after {} parts",
                rest.len(),
                self.schedules.len()
            )));
        }
        Ok(parts)
    }
}
impl Schedule for Sequential {
    fn rate(&self, t: u64, base: f64) -> f64 {
        let i = self.milestones.iter().filter(|&&m| m <= t).count();
        let start = if i == 0 { 0 } else { self.milestones[i - 1] };
        match self.schedules.get(i).or(self.schedules.last()) {
            Some(s) => s.rate(t.saturating_sub(start), base),
            None => base,
        }
    }
    fn validate(&self) -> Result<()> {
        let n = self.schedules.len();
        check(
            "Sequential",
            "schedules",
            n as f64,
            n >= 1,
            "must hold at least one schedule",
        )?;
        let m = self.milestones.len();
        check(
            "Sequential",
            "milestones",
            m as f64,
            m + 1 == n,
            "must number one fewer than the schedules",
        )?;
        let mut last = 0;
        for &ms in &self.milestones {
            check(
                "Sequential",
                "milestone",
                ms as f64,
                ms > last,
                "milestones must be > 0 and strictly increasing",
            )?;
            last = ms;
        }
        self.schedules.iter().try_for_each(|s| s.validate())
    }
    fn observe(&mut self, metric: f64) {
        for s in &mut self.schedules {
            s.observe(metric);
        }
    }
    fn state(&self) -> Vec<f64> {
        // Each part's state, prefixed by its length.
        let mut out = Vec::new();
        for s in &self.schedules {
            let st = s.state();
            out.push(st.len() as f64);
            out.extend(st);
        }
        out
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        let parts = self.split_state(state)?;
        let before: Vec<Vec<f64>> = self.schedules.iter().map(|s| s.state()).collect();
        for (i, part) in parts.iter().enumerate() {
            if let Err(e) = self.schedules[i].set_state(part) {
                // Put back the parts already restored: all or nothing.
                for (s, old) in self.schedules.iter_mut().zip(&before).take(i) {
                    // A state the part returned itself is one it accepts.
                    let _ = s.set_state(old);
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The one-cycle policy (Smith 2018) as `OneCycleLR` with cosine annealing,
/// two phases: from max_lr/div up to max_lr over `pct_start` of the steps,
/// then down to max_lr/(div·final_div), which it keeps after the last step
/// (PyTorch refuses to step past it). Ignores the optimizer's base rate.
/// Valid: max_lr finite and ≥ 0, total_steps ≥ 1, pct_start in [0, 1] (as
/// PyTorch), div and final_div finite and ≥ 1 (so the rate starts at or
/// below the peak and ends at or below the start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneCycle {
    /// Peak rate.
    pub max_lr: f64,
    /// Total steps.
    pub total_steps: u64,
    /// Fraction of steps rising (PyTorch 0.3).
    pub pct_start: f64,
    /// Initial rate = max_lr / div (PyTorch 25).
    pub div: f64,
    /// Final rate = initial / final_div (PyTorch 1e4).
    pub final_div: f64,
}
impl OneCycle {
    /// The learning rate of step `t` (0-based); the schedule carries its
    /// rates, so no base is needed.
    pub fn lr(&self, t: u64) -> f64 {
        self.rate(t, 0.0)
    }

    /// PyTorch's defaults for a peak and a length.
    pub fn new(max_lr: f64, total_steps: u64) -> Self {
        OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div: 25.0,
            final_div: 1e4,
        }
    }
}
impl Schedule for OneCycle {
    fn rate(&self, t: u64, _base: f64) -> f64 {
        let initial = self.max_lr / self.div;
        let min = initial / self.final_div;
        // The last step of each phase, as PyTorch: a phase that ends at or
        // before step 0 has no length, and its end value holds.
        let end1 = self.pct_start * self.total_steps as f64 - 1.0;
        let end2 = self.total_steps as f64 - 1.0;
        let anneal = |from: f64, to: f64, pct: f64| {
            let v = to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0);
            v.max(from.min(to)).min(from.max(to))
        };
        let t = t as f64;
        if t <= end1 {
            let pct = if end1 > 0.0 { t / end1 } else { 1.0 };
            anneal(initial, self.max_lr, pct)
        } else {
            let len = end2 - end1;
            let pct = if len > 0.0 {
                ((t - end1) / len).min(1.0)
            } else {
                1.0
            };
            anneal(self.max_lr, min, pct)
        }
    }
    fn validate(&self) -> Result<()> {
        non_negative("OneCycle", "max_lr", self.max_lr)?;
        positive("OneCycle", "total_steps", self.total_steps)?;
        unit("OneCycle", "pct_start", self.pct_start)?;
        for (name, v) in [("div", self.div), ("final_div", self.final_div)] {
            check(
                "OneCycle",
                name,
                v,
                v >= 1.0 && v.is_finite(),
                "must be finite and >= 1",
            )?;
        }
        Ok(())
    }
}

/// Triangular cyclical rates (Smith 2017, `CyclicLR(mode='triangular')`):
/// from `base_lr` up to `max_lr` in `step_size_up` steps and back down in as
/// many. Ignores the optimizer's base rate. Valid: both rates finite and
/// ≥ 0, step_size_up ≥ 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cyclic {
    /// Lower rate.
    pub base_lr: f64,
    /// Upper rate.
    pub max_lr: f64,
    /// Steps of the rising half.
    pub step_size_up: u64,
}
impl Cyclic {
    /// The learning rate of step `t` (0-based); the schedule carries its
    /// rates, so no base is needed.
    pub fn lr(&self, t: u64) -> f64 {
        self.rate(t, 0.0)
    }
}
impl Schedule for Cyclic {
    fn rate(&self, t: u64, _base: f64) -> f64 {
        let total = 2.0 * self.step_size_up.max(1) as f64;
        let ratio = 0.5;
        let cycle = (1.0 + t as f64 / total).floor();
        let x = 1.0 + t as f64 / total - cycle;
        let scale = if x <= ratio {
            x / ratio
        } else {
            (x - 1.0) / (ratio - 1.0)
        };
        self.base_lr + (self.max_lr - self.base_lr) * scale
    }
    fn validate(&self) -> Result<()> {
        non_negative("Cyclic", "base_lr", self.base_lr)?;
        non_negative("Cyclic", "max_lr", self.max_lr)?;
        positive("Cyclic", "step_size_up", self.step_size_up)
    }
}

/// Any function of (step, base rate). Nothing to validate up front; each
/// step, `apply_gradients` refuses a rate that is negative or not finite.
pub struct FnSchedule<F: Fn(u64, f64) -> f64 + Send>(pub F);
impl<F: Fn(u64, f64) -> f64 + Send> Schedule for FnSchedule<F> {
    fn rate(&self, t: u64, base: f64) -> f64 {
        (self.0)(t, base)
    }
}

/// ×factor when a reported metric (lower is better) has not improved by a
/// relative `threshold` for more than `patience` reports, then `cooldown`
/// reports of rest; never below `min_lr` (`ReduceLROnPlateau`, mode 'min',
/// threshold_mode 'rel'). Report with [`crate::Optimizer::report_metric`]
/// after each step. Valid: factor in [0, 1) (as PyTorch), threshold in
/// [0, 1) (at 1 no metric could ever count as an improvement), min_lr
/// finite and ≥ 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    /// Factor per reduction.
    pub factor: f64,
    /// Reports without improvement tolerated.
    pub patience: u64,
    /// Relative improvement that counts.
    pub threshold: f64,
    /// Reports to wait after a reduction.
    pub cooldown: u64,
    /// Lowest rate.
    pub min_lr: f64,
    best: f64,
    bad: u64,
    cooling: u64,
    scale: f64,
}
impl ReduceOnPlateau {
    /// A plateau schedule; PyTorch's defaults are factor 0.1, patience 10,
    /// threshold 1e-4, cooldown 0, min_lr 0. Checked when it enters an
    /// optimizer ([`Schedule::validate`]).
    pub fn new(factor: f64, patience: u64, threshold: f64, cooldown: u64, min_lr: f64) -> Self {
        ReduceOnPlateau {
            factor,
            patience,
            threshold,
            cooldown,
            min_lr,
            best: f64::INFINITY,
            bad: 0,
            cooling: 0,
            scale: 1.0,
        }
    }
}
/// A saved counter: a whole number in u64's range.
/// A counter saved as f64. Above 2^53 the saved value is rounded (to 2^64
/// for counters near `u64::MAX`), so the largest accepted value is 2^64,
/// which `as` saturates to `u64::MAX`.
fn counter(name: &str, v: f64) -> Result<u64> {
    if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(Error::State(format!(
            "ReduceOnPlateau: saved {name} = {v} is not a whole number >= 0"
        )))
    }
}
impl Schedule for ReduceOnPlateau {
    fn rate(&self, _t: u64, base: f64) -> f64 {
        (base * self.scale).max(self.min_lr)
    }
    fn validate(&self) -> Result<()> {
        check(
            "ReduceOnPlateau",
            "factor",
            self.factor,
            (0.0..1.0).contains(&self.factor),
            "must lie in [0, 1)",
        )?;
        check(
            "ReduceOnPlateau",
            "threshold",
            self.threshold,
            (0.0..1.0).contains(&self.threshold),
            "must lie in [0, 1)",
        )?;
        non_negative("ReduceOnPlateau", "min_lr", self.min_lr)
    }
    fn observe(&mut self, metric: f64) {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad = 0;
        } else {
            self.bad = self.bad.saturating_add(1);
        }
        if self.cooling > 0 {
            self.cooling -= 1;
            self.bad = 0;
        }
        if self.bad > self.patience {
            self.scale *= self.factor;
            self.cooling = self.cooldown;
            self.bad = 0;
        }
    }
    fn state(&self) -> Vec<f64> {
        vec![self.best, self.bad as f64, self.cooling as f64, self.scale]
    }
    fn set_state(&mut self, state: &[f64]) -> Result<()> {
        let &[best, bad, cooling, scale] = state else {
            return Err(Error::State(format!(
                "ReduceOnPlateau: the saved schedule state has {} values, expected 4 \
                 (best, bad, cooling, scale)",
                state.len()
            )));
        };
        if best.is_nan() {
            return Err(Error::State(
                "ReduceOnPlateau: saved best metric is NaN".to_string(),
            ));
        }
        let (bad, cooling) = (counter("bad", bad)?, counter("cooling", cooling)?);
        if !(0.0..=1.0).contains(&scale) {
            return Err(Error::State(format!(
                "ReduceOnPlateau: saved scale = {scale} does not lie in [0, 1]"
            )));
        }
        self.best = best;
        self.bad = bad;
        self.cooling = cooling;
        self.scale = scale;
        Ok(())
    }
}
