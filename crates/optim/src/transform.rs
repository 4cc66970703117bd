//! Gradient transforms applied before the update rule.

use std::collections::HashMap;

use tapir_autograd::Parameter;
use tapir_tensor::{Float, Tensor};

use crate::error::{check, Error, Result};

/// What a transform tells the optimizer.
pub(crate) enum ClipMode {
    /// Go on; carries the global norm when one was computed.
    Continue(Option<f64>),
    /// Leave parameters and state untouched and count a skipped step.
    Skip,
    /// Accumulating: nothing to apply yet.
    Wait,
}

/// A gradient transform (optax's name for the idea), composable in front of
/// any optimizer with [`crate::Optimizer::with_transform`].
#[derive(Debug, Clone)]
pub enum GradTransform {
    /// Clamp every gradient element to [−c, c] (`clip_grad_value_`).
    ClipValue(f64),
    /// Rescale each gradient tensor whose L2 norm exceeds `max` to norm `max`.
    ClipNorm(f64),
    /// Rescale all gradients together when their joint L2 norm exceeds `max`
    /// (`clip_grad_norm_`, optax's `clip_by_global_norm`); the norm before
    /// clipping is reported in [`crate::StepReport::grad_norm`].
    ClipGlobalNorm(f64),
    /// A NaN or ±inf anywhere: skip the whole step, parameters and state
    /// untouched; counted in [`crate::Optimizer::skipped_steps`].
    SkipNonFinite,
    /// L1 regularisation: g ← g + λ·sign(θ).
    L1(f64),
    /// Accumulate `k` micro-steps and apply their mean on the k-th.
    Accumulate(Accumulator),
}

/// State of [`GradTransform::Accumulate`]: the micro-steps seen since the
/// last update and the running sums of their gradients (in f64), by
/// parameter id, each with its parameter's name.
#[derive(Debug, Clone)]
pub struct Accumulator {
    k: usize,
    seen: usize,
    sums: HashMap<u64, (String, Tensor<f64>)>,
}

/// An [`Accumulator`]'s state in an [`crate::OptimizerState`], keyed by
/// parameter name as the rest of the saved state.
#[derive(Debug, Clone, PartialEq)]
pub struct AccumulatorState {
    /// Micro-steps per update (checked against the transform on load).
    pub k: usize,
    /// Micro-steps summed since the last update (fewer than `k`).
    pub seen: usize,
    /// The partial sums Σg (f64) by parameter name, sorted by name.
    pub sums: Vec<(String, Tensor<f64>)>,
}

impl Accumulator {
    /// The state to save.
    pub(crate) fn save(&self) -> AccumulatorState {
        let mut sums: Vec<(String, Tensor<f64>)> = self.sums.values().cloned().collect();
        sums.sort_by(|a, b| a.0.cmp(&b.0));
        AccumulatorState {
            k: self.k,
            seen: self.seen,
            sums,
        }
    }

    /// Checks a saved state (the optimizer's `i`-th accumulator) against
    /// this transform and `params`, and returns the sums keyed by id.
    pub(crate) fn check<E: Float>(
        &self,
        i: usize,
        saved: &AccumulatorState,
        params: &[&Parameter<E>],
    ) -> Result<HashMap<u64, (String, Tensor<f64>)>> {
        let fail = |why: String| Err(Error::State(format!("accumulation {i}: {why}")));
        if saved.k != self.k {
            return fail(format!(
                "saved for k = {}, this transform has k = {}",
                saved.k, self.k
            ));
        }
        if saved.seen >= saved.k || (saved.seen == 0) != saved.sums.is_empty() {
            return fail(format!(
                "{} micro-steps seen with {} partial sums: must be fewer than k = {}, \
                 and sums exactly when some were seen",
                saved.seen,
                saved.sums.len(),
                saved.k
            ));
        }
        let mut sums = HashMap::with_capacity(saved.sums.len());
        for (name, sum) in &saved.sums {
            let mut found = params.iter().filter(|p| &*p.name() == name);
            let Some(p) = found.next() else {
                return fail(format!("no parameter named '{name}'"));
            };
            if let Some(q) = found.find(|q| q.id() != p.id()) {
                return fail(format!(
                    "two different parameters are named '{name}' (ids {} and {})",
                    p.id(),
                    q.id()
                ));
            }
            if p.shape() != sum.shape() {
                return fail(format!(
                    "'{name}' has shape {:?}, its partial sum has {:?}",
                    p.shape(),
                    sum.shape()
                ));
            }
            if sums.insert(p.id(), (name.clone(), sum.clone())).is_some() {
                return fail(format!("the state holds '{name}' twice"));
            }
        }
        Ok(sums)
    }

    /// Takes a state that [`Accumulator::check`] accepted.
    pub(crate) fn restore(&mut self, seen: usize, sums: HashMap<u64, (String, Tensor<f64>)>) {
        self.seen = seen;
        self.sums = sums;
    }

    /// Drops the partial sum of the parameter named `name`; whether there
    /// was one.
    pub(crate) fn forget(&mut self, name: &str) -> bool {
        let before = self.sums.len();
        self.sums.retain(|_, (n, _)| n != name);
        self.sums.len() != before
    }
}

impl GradTransform {
    /// Clip by value, validated (c ≥ 0).
    ///
    /// # Errors
    /// A negative or non-finite bound.
    pub fn clip_value(c: f64) -> Result<Self> {
        check(
            "clip_value",
            "c",
            c,
            c >= 0.0 && c.is_finite(),
            "must be finite and >= 0",
        )?;
        Ok(GradTransform::ClipValue(c))
    }
    /// Clip each tensor's norm, validated (max > 0; +inf clips nothing).
    ///
    /// # Errors
    /// A non-positive or NaN bound.
    pub fn clip_norm(max: f64) -> Result<Self> {
        check("clip_norm", "max", max, max > 0.0, "must be > 0")?;
        Ok(GradTransform::ClipNorm(max))
    }
    /// Clip the global norm, validated (max > 0; +inf clips nothing).
    ///
    /// # Errors
    /// A non-positive or NaN bound.
    pub fn clip_global_norm(max: f64) -> Result<Self> {
        check("clip_global_norm", "max", max, max > 0.0, "must be > 0")?;
        Ok(GradTransform::ClipGlobalNorm(max))
    }
    /// L1 regularisation, validated (λ finite and ≥ 0).
    ///
    /// # Errors
    /// A negative or non-finite λ.
    pub fn l1(lambda: f64) -> Result<Self> {
        check(
            "l1",
            "lambda",
            lambda,
            lambda >= 0.0 && lambda.is_finite(),
            "must be finite and >= 0",
        )?;
        Ok(GradTransform::L1(lambda))
    }
    /// Accumulation over `k` micro-steps, validated (k ≥ 1).
    ///
    /// # Errors
    /// k = 0.
    pub fn accumulate(k: usize) -> Result<Self> {
        check("accumulate", "k", k as f64, k >= 1, "must be >= 1")?;
        Ok(GradTransform::Accumulate(Accumulator {
            k,
            seen: 0,
            sums: HashMap::new(),
        }))
    }

    /// The constructors' checks, for a transform built from its variant
    /// directly ([`crate::Optimizer::with_transform`] calls it).
    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            GradTransform::ClipValue(c) => Self::clip_value(c).map(drop),
            GradTransform::ClipNorm(m) => Self::clip_norm(m).map(drop),
            GradTransform::ClipGlobalNorm(m) => Self::clip_global_norm(m).map(drop),
            GradTransform::L1(l) => Self::l1(l).map(drop),
            // An `Accumulator` only comes from `accumulate`, which checks k.
            GradTransform::SkipNonFinite | GradTransform::Accumulate(_) => Ok(()),
        }
    }

    pub(crate) fn apply<E: Float>(
        &mut self,
        pairs: &mut [(&Parameter<E>, Tensor<E>)],
    ) -> Result<ClipMode> {
        match self {
            GradTransform::ClipValue(c) => {
                let c = E::from_f64(*c);
                for (_, g) in pairs.iter_mut() {
                    *g = g.clamp(Some(-c), Some(c))?;
                }
            }
            GradTransform::ClipNorm(max) => {
                for (_, g) in pairs.iter_mut() {
                    let n = norm(g);
                    if n > *max {
                        *g = g.mul_scalar(E::from_f64(*max / n));
                    }
                }
            }
            GradTransform::ClipGlobalNorm(max) => {
                let total = pairs.iter().map(|(_, g)| g.norm_sq()).sum::<f64>().sqrt();
                if total > *max {
                    // PyTorch's clip_grad_norm_ uses max / (total + 1e-6).
                    let s = E::from_f64(*max / (total + 1e-6));
                    for (_, g) in pairs.iter_mut() {
                        *g = g.mul_scalar(s);
                    }
                }
                return Ok(ClipMode::Continue(Some(total)));
            }
            GradTransform::SkipNonFinite => {
                let bad = pairs
                    .iter()
                    .any(|(_, g)| g.view().iter().any(|v| !v.is_finite()));
                if bad {
                    return Ok(ClipMode::Skip);
                }
            }
            GradTransform::L1(l) => {
                let l = E::from_f64(*l);
                for (p, g) in pairs.iter_mut() {
                    *g = g.add(&p.value().sign().mul_scalar(l))?;
                }
            }
            GradTransform::Accumulate(acc) => {
                // A parameter resized between micro-steps: refuse before
                // adding anything (a broadcasting add would hide it). So
                // too a new parameter named like another one summed (the
                // sums are saved by name).
                for (p, g) in pairs.iter() {
                    match acc.sums.get(&p.id()) {
                        Some((_, s)) if s.shape() != g.shape() => {
                            return Err(Error::StateShape {
                                optimizer: "accumulate",
                                name: p.name().to_string(),
                                param: g.shape().to_vec(),
                                state: s.shape().to_vec(),
                            });
                        }
                        Some(_) => {}
                        None => {
                            let other = acc.sums.iter().find(|(_, (n, _))| **n == *p.name());
                            if let Some((&first, _)) = other {
                                return Err(Error::DuplicateName {
                                    optimizer: "accumulate",
                                    name: p.name().to_string(),
                                    first,
                                    second: p.id(),
                                });
                            }
                        }
                    }
                }
                for (p, g) in pairs.iter() {
                    let g64: Tensor<f64> = g.cast();
                    match acc.sums.get_mut(&p.id()) {
                        Some((_, s)) => *s = s.add(&g64)?,
                        None => {
                            acc.sums.insert(p.id(), (p.name().to_string(), g64));
                        }
                    }
                }
                acc.seen += 1;
                if acc.seen < acc.k {
                    return Ok(ClipMode::Wait);
                }
                let k = acc.k as f64;
                for (p, g) in pairs.iter_mut() {
                    if let Some((_, s)) = acc.sums.remove(&p.id()) {
                        *g = s.div_scalar(k).cast();
                    }
                }
                acc.seen = 0;
                acc.sums.clear();
            }
        }
        Ok(ClipMode::Continue(None))
    }
}

fn norm<E: Float>(g: &Tensor<E>) -> f64 {
    g.norm_sq().sqrt()
}

/// Exponential moving average of parameters (Polyak averaging):
/// a ← d·a + (1 − d)·θ after each step; [`ParamEma::swap`] exchanges the
/// averages and the live weights (call it again to swap back), for evaluation.
#[derive(Debug)]
pub struct ParamEma<E: Float = f32> {
    decay: f64,
    avg: Vec<(Parameter<E>, Tensor<E>)>,
}

impl<E: Float> ParamEma<E> {
    /// Averages of `params`, starting at their current values.
    ///
    /// # Errors
    /// A decay outside [0, 1].
    pub fn new(params: &[&Parameter<E>], decay: f64) -> Result<Self> {
        check(
            "ParamEma",
            "decay",
            decay,
            (0.0..=1.0).contains(&decay),
            "must lie in [0, 1]",
        )?;
        Ok(ParamEma {
            decay,
            avg: params.iter().map(|p| ((*p).clone(), p.value())).collect(),
        })
    }

    /// Folds the current parameter values into the averages.
    ///
    /// # Errors
    /// [`Error::StateShape`]: a parameter whose shape changed since the
    /// average was started (checked for all before any average changes).
    pub fn update(&mut self) -> Result<()> {
        for (p, a) in &self.avg {
            let shape = p.shape();
            if a.shape() != shape.as_slice() {
                return Err(Error::StateShape {
                    optimizer: "ParamEma",
                    name: p.name().to_string(),
                    param: shape,
                    state: a.shape().to_vec(),
                });
            }
        }
        let d = E::from_f64(self.decay);
        for (p, a) in &mut self.avg {
            *a = a.mul_scalar(d).add(&p.value().mul_scalar(E::ONE - d))?;
        }
        Ok(())
    }

    /// Swaps averaged and live weights.
    pub fn swap(&mut self) {
        for (p, a) in &mut self.avg {
            let live = p.value();
            p.set(std::mem::replace(a, live));
        }
    }

    /// The averaged value of a parameter.
    pub fn average(&self, p: &Parameter<E>) -> Option<&Tensor<E>> {
        self.avg.iter().find(|(q, _)| q == p).map(|(_, a)| a)
    }

    /// The decay and the averages by parameter name, for a checkpoint.
    pub fn state(&self) -> EmaState<E> {
        EmaState {
            decay: self.decay,
            averages: self
                .avg
                .iter()
                .map(|(p, a)| (p.name().to_string(), a.clone()))
                .collect(),
        }
    }

    /// Puts saved averages back, matched by parameter name; everything is
    /// checked first, so on an error nothing changes.
    ///
    /// # Errors
    /// [`Error::StateShape`] for a saved average whose shape differs from
    /// its parameter's, [`Error::State`] for a name missing on either
    /// side, [`Error::Hyperparameter`] for a decay outside [0, 1].
    pub fn load_state(&mut self, s: &EmaState<E>) -> Result<()> {
        check(
            "ParamEma",
            "decay",
            s.decay,
            (0.0..=1.0).contains(&s.decay),
            "must lie in [0, 1]",
        )?;
        let mut found = Vec::with_capacity(self.avg.len());
        for (p, _) in &self.avg {
            let name = p.name();
            let Some((_, t)) = s.averages.iter().find(|(n, _)| **n == *name) else {
                return Err(Error::State(format!(
                    "ParamEma: no saved average for parameter '{name}'"
                )));
            };
            if t.shape() != p.shape().as_slice() {
                return Err(Error::StateShape {
                    optimizer: "ParamEma",
                    name: name.to_string(),
                    param: p.shape(),
                    state: t.shape().to_vec(),
                });
            }
            found.push(t.clone());
        }
        if s.averages.len() != self.avg.len() {
            return Err(Error::State(format!(
                "ParamEma: {} saved averages for {} parameters",
                s.averages.len(),
                self.avg.len()
            )));
        }
        self.decay = s.decay;
        for ((_, a), t) in self.avg.iter_mut().zip(found) {
            *a = t;
        }
        Ok(())
    }
}

/// What [`ParamEma::state`] saves: the decay and each parameter's average
/// under its name.
#[derive(Debug, Clone, PartialEq)]
pub struct EmaState<E: Float = f32> {
    /// d in a ← d·a + (1 − d)·θ.
    pub decay: f64,
    /// (parameter name, average).
    pub averages: Vec<(String, Tensor<E>)>,
}
