//! Learning-rate schedules. Each gives the rate for optimizer step `t`
//! (0-based: the first step uses t = 0), as PyTorch's schedulers do when
//! `scheduler.step()` follows every `optimizer.step()`. A boundary at step
//! k means step k already uses the new rate ("switches at the boundary").

use std::f64::consts::PI;

/// A learning-rate schedule.
pub trait Schedule: Send {
    /// The rate for step `t` given the optimizer's base rate.
    fn lr(&self, t: u64, base: f64) -> f64;
    /// A metric reported after a step (only reduce-on-plateau uses it).
    fn observe(&mut self, _metric: f64) {}
    /// Internal state beyond the step count, for checkpoints (empty for the
    /// schedules that are functions of the step alone).
    fn state(&self) -> Vec<f64> {
        Vec::new()
    }
    /// Restores what [`Schedule::state`] returned.
    fn set_state(&mut self, _state: &[f64]) {}
}

/// The base rate times `factor` for the first `steps` steps, then the base
/// rate (`torch.optim.lr_scheduler.ConstantLR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    /// Factor applied at first.
    pub factor: f64,
    /// Steps it lasts.
    pub steps: u64,
}
impl Schedule for Constant {
    fn lr(&self, t: u64, base: f64) -> f64 {
        if t < self.steps {
            base * self.factor
        } else {
            base
        }
    }
}

/// ×γ every `step_size` steps (`StepLR`; Keras `ExponentialDecay` with
/// `staircase=True`). Switches at multiples of `step_size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    /// Steps between decays.
    pub step_size: u64,
    /// Factor per decay.
    pub gamma: f64,
}
impl Schedule for StepDecay {
    fn lr(&self, t: u64, base: f64) -> f64 {
        base * self.gamma.powi((t / self.step_size.max(1)) as i32)
    }
}

/// ×γ at each milestone (`MultiStepLR`; Keras `PiecewiseConstantDecay`
/// switches one step later, after the boundary).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStep {
    /// Steps at which the rate drops.
    pub milestones: Vec<u64>,
    /// Factor per milestone.
    pub gamma: f64,
}
impl Schedule for MultiStep {
    fn lr(&self, t: u64, base: f64) -> f64 {
        let n = self.milestones.iter().filter(|&&m| m <= t).count();
        base * self.gamma.powi(n as i32)
    }
}

/// base·γᵗ (`ExponentialLR`; optax `exponential_decay` with
/// transition_steps 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    /// γ.
    pub gamma: f64,
}
impl Schedule for Exponential {
    fn lr(&self, t: u64, base: f64) -> f64 {
        base * self.gamma.powi(t as i32)
    }
}

/// base·(1 − min(t, T)/T)^power (`PolynomialLR`, which ends at 0; Keras
/// `PolynomialDecay` and optax `polynomial_schedule` end at a set value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polynomial {
    /// T.
    pub total_steps: u64,
    /// Exponent.
    pub power: f64,
}
impl Schedule for Polynomial {
    fn lr(&self, t: u64, base: f64) -> f64 {
        let frac = t.min(self.total_steps) as f64 / self.total_steps.max(1) as f64;
        base * (1.0 - frac).powf(self.power)
    }
}

/// base / (1 + rate·t/steps) (Keras `InverseTimeDecay`, not staircase; no
/// PyTorch scheduler).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InverseTime {
    /// Decay rate.
    pub rate: f64,
    /// Steps per unit of decay.
    pub steps: u64,
}
impl Schedule for InverseTime {
    fn lr(&self, t: u64, base: f64) -> f64 {
        base / (1.0 + self.rate * t as f64 / self.steps.max(1) as f64)
    }
}

/// η_min + (base − η_min)(1 + cos(πt/T))/2 (`CosineAnnealingLR`; like
/// PyTorch it keeps following the cosine past T, rising again).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cosine {
    /// T.
    pub t_max: u64,
    /// η_min.
    pub eta_min: f64,
}
impl Schedule for Cosine {
    fn lr(&self, t: u64, base: f64) -> f64 {
        let x = PI * t as f64 / self.t_max.max(1) as f64;
        self.eta_min + (base - self.eta_min) * (1.0 + x.cos()) / 2.0
    }
}

/// Cosine annealing restarted after T₀, T₀·m, T₀·m², ... steps (SGDR,
/// `CosineAnnealingWarmRestarts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineRestarts {
    /// Length of the first cycle.
    pub t0: u64,
    /// Growth factor of the cycle length (integer ≥ 1).
    pub t_mult: u64,
    /// η_min.
    pub eta_min: f64,
}
impl Schedule for CosineRestarts {
    fn lr(&self, t: u64, base: f64) -> f64 {
        let (mut start, mut len) = (0u64, self.t0.max(1));
        while t >= start + len {
            start += len;
            len *= self.t_mult.max(1);
        }
        let x = PI * (t - start) as f64 / len as f64;
        self.eta_min + (base - self.eta_min) * (1.0 + x.cos()) / 2.0
    }
}

/// Factor rising linearly from `start` to `end` over `steps` steps, then
/// `end` (`LinearLR`; a linear warm-up with start < 1, end 1).
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
    fn lr(&self, t: u64, base: f64) -> f64 {
        let frac = t.min(self.steps) as f64 / self.steps.max(1) as f64;
        base * (self.start + (self.end - self.start) * frac)
    }
}

/// Schedules one after another (`SequentialLR`): schedule i runs from
/// milestone i−1 on, with its own step count restarting at 0. Warm-up steps
/// therefore do not count in the decay length of the schedule after them
/// (optax's `join_schedules` likewise; Keras's `CosineDecay(warmup_steps=)`
/// differs).
pub struct Sequential {
    /// The schedules.
    pub schedules: Vec<Box<dyn Schedule>>,
    /// Steps at which the next schedule takes over (one fewer than schedules).
    pub milestones: Vec<u64>,
}
impl Schedule for Sequential {
    fn lr(&self, t: u64, base: f64) -> f64 {
        let i = self.milestones.iter().filter(|&&m| m <= t).count();
        let start = if i == 0 { 0 } else { self.milestones[i - 1] };
        match self.schedules.get(i).or(self.schedules.last()) {
            Some(s) => s.lr(t - start, base),
            None => base,
        }
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
    fn set_state(&mut self, state: &[f64]) {
        let mut rest = state;
        for s in &mut self.schedules {
            let Some((&n, tail)) = rest.split_first() else {
                return;
            };
            let n = (n as usize).min(tail.len());
            s.set_state(&tail[..n]);
            rest = &tail[n..];
        }
    }
}

/// The one-cycle policy (Smith 2018) as `OneCycleLR` with cosine annealing,
/// two phases: from max_lr/div up to max_lr over `pct_start` of the steps,
/// then down to max_lr/(div·final_div). Ignores the optimizer's base rate.
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
    fn lr(&self, t: u64, _base: f64) -> f64 {
        let initial = self.max_lr / self.div;
        let min = initial / self.final_div;
        let end1 = self.pct_start * self.total_steps as f64 - 1.0;
        let end2 = self.total_steps as f64 - 1.0;
        let anneal =
            |from: f64, to: f64, pct: f64| to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0);
        let t = t as f64;
        if t <= end1 {
            anneal(initial, self.max_lr, t / end1)
        } else {
            anneal(self.max_lr, min, (t - end1) / (end2 - end1))
        }
    }
}

/// Triangular cyclical rates (Smith 2017, `CyclicLR(mode='triangular')`):
/// from `base_lr` up to `max_lr` in `step_size_up` steps and back down in as
/// many. Ignores the optimizer's base rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cyclic {
    /// Lower rate.
    pub base_lr: f64,
    /// Upper rate.
    pub max_lr: f64,
    /// Steps of the rising half.
    pub step_size_up: u64,
}
impl Schedule for Cyclic {
    fn lr(&self, t: u64, _base: f64) -> f64 {
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
}

/// Any function of (step, base rate).
pub struct FnSchedule<F: Fn(u64, f64) -> f64 + Send>(pub F);
impl<F: Fn(u64, f64) -> f64 + Send> Schedule for FnSchedule<F> {
    fn lr(&self, t: u64, base: f64) -> f64 {
        (self.0)(t, base)
    }
}

/// ×factor when a reported metric (lower is better) has not improved by a
/// relative `threshold` for more than `patience` reports, then `cooldown`
/// reports of rest; never below `min_lr` (`ReduceLROnPlateau`, mode 'min',
/// threshold_mode 'rel'). Report with [`crate::Optimizer::report_metric`]
/// after each step.
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
    /// threshold 1e-4, cooldown 0, min_lr 0.
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
impl Schedule for ReduceOnPlateau {
    fn lr(&self, _t: u64, base: f64) -> f64 {
        (base * self.scale).max(self.min_lr)
    }
    fn observe(&mut self, metric: f64) {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.bad = 0;
        } else {
            self.bad += 1;
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
    fn set_state(&mut self, state: &[f64]) {
        if let [best, bad, cooling, scale] = *state {
            self.best = best;
            self.bad = bad as u64;
            self.cooling = cooling as u64;
            self.scale = scale;
        }
    }
}
