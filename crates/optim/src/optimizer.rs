//! The stateful `Optimizer`: per-parameter state, weight decay, gradient
//! transforms, a learning-rate schedule, parameter groups, save/restore.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use tapir_autograd::{Gradient, Gradients, Parameter};
use tapir_tensor::{Float, Tensor};

use crate::bf16::{Slot, StateDtype};
use crate::error::{check, check_lr, Error, Result};
use crate::rules::{DynRule, Elementwise, Kernel, Rule, Target, Whole, WholeRule};
use crate::schedule::Schedule;
use crate::transform::{AccumulatorState, ClipMode, GradTransform};

/// Weight decay, as an enum rather than a flag.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum WeightDecay {
    /// None.
    #[default]
    None,
    /// L2 regularisation added to the gradient, g ← g + λθ (PyTorch's
    /// `weight_decay` for every optimizer but AdamW).
    L2(f64),
    /// Decoupled decay θ ← (1 − αλ)θ before the update (AdamW, Loshchilov &
    /// Hutter 2019; PyTorch's AdamW and Keras's `weight_decay`).
    Decoupled(f64),
}

impl WeightDecay {
    fn validate(self, optimizer: &'static str, name: &'static str) -> Result<()> {
        match self {
            WeightDecay::None => Ok(()),
            WeightDecay::L2(w) | WeightDecay::Decoupled(w) => check(
                optimizer,
                name,
                w,
                w >= 0.0 && w.is_finite(),
                "must be finite and >= 0",
            ),
        }
    }
}

/// Hashes parameter ids (unique counters, not attacker-chosen keys) with
/// one multiplication instead of SipHash: the state map is looked up
/// twice per parameter per step.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits,
        // which the table uses.
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Per-parameter state keyed by parameter id.
type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hyperparameters that a parameter group overrides, checked when the
/// group is added ([`Optimizer::with_group`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupOptions {
    /// Learning-rate factor applied on top of the (scheduled) rate; finite
    /// and ≥ 0.
    pub lr_scale: Option<f64>,
    /// Weight decay for this group; its λ finite and ≥ 0.
    pub weight_decay: Option<WeightDecay>,
}

impl GroupOptions {
    fn validate(&self, optimizer: &'static str) -> Result<()> {
        if let Some(s) = self.lr_scale {
            check(
                optimizer,
                "group lr_scale",
                s,
                s >= 0.0 && s.is_finite(),
                "must be finite and >= 0",
            )?;
        }
        match self.weight_decay {
            Some(wd) => wd.validate(optimizer, "group weight_decay"),
            None => Ok(()),
        }
    }
}

struct Group {
    matches: Box<dyn Fn(&str) -> bool + Send + Sync>,
    options: GroupOptions,
}

/// One parameter's optimizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamState<E: Float = f32> {
    /// Steps applied to this parameter (1-based after the first).
    pub t: u64,
    /// State tensors, flat: the parameter's length each for elementwise
    /// rules; a [`WholeRule`] says its own lengths (Adafactor's factored
    /// moments are shorter). Each in the optimizer's [`StateDtype`].
    pub slots: Vec<Slot<E>>,
    /// Scalar state.
    pub scalars: Vec<f64>,
    /// The parameter's shape.
    pub shape: Vec<usize>,
}

/// Everything needed to resume an optimizer: per-parameter state keyed by
/// parameter name (unique: an optimizer never tracks two parameters with one
/// name), the step count, the skipped-step counter, the schedule's state and
/// the partial sums of gradient accumulation, so that a run saved between
/// micro-steps resumes bit-identically (PyTorch keeps the last two outside
/// the optimizer's `state_dict`, in the scheduler and the training loop).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<E: Float = f32> {
    /// The rule's name (checked on load).
    pub rule: String,
    /// Optimizer steps taken (the schedule position).
    pub step: u64,
    /// Steps skipped for non-finite gradients.
    pub skipped: u64,
    /// The schedule's own state (reduce-on-plateau's counters), if any.
    pub schedule: Vec<f64>,
    /// Per-parameter state by parameter name.
    pub params: Vec<(String, ParamState<E>)>,
    /// The state of each [`GradTransform::Accumulate`], in the order the
    /// transforms were added.
    pub accumulators: Vec<AccumulatorState>,
}

/// What one `apply_gradients` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping, when a global-norm clip ran.
    pub grad_norm: Option<f64>,
    /// Whether the step was skipped (non-finite gradient).
    pub skipped: bool,
}

/// A stateful optimizer: `opt.apply_gradients(&grads)` updates every
/// parameter that has a gradient, in place.
pub struct Optimizer<E: Float = f32> {
    rule: Box<dyn DynRule<E>>,
    lr: f64,
    weight_decay: WeightDecay,
    schedule: Option<Box<dyn Schedule>>,
    transforms: Vec<GradTransform>,
    groups: Vec<Group>,
    state: IdMap<(String, ParamState<E>)>,
    step: u64,
    skipped: u64,
    /// Whether the parameters sit at the evaluation point
    /// ([`Optimizer::eval`]).
    eval: bool,
    /// The number type of the per-element state.
    dtype: StateDtype,
}

impl<E: Float> std::fmt::Debug for Optimizer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Optimizer({}, lr {}, step {})",
            self.rule.name(),
            self.lr,
            self.step
        )
    }
}

impl<E: Float> Optimizer<E> {
    /// An optimizer from a rule, a learning rate and a weight decay. The
    /// optimizer configs ([`crate::Adam`], ...) call it from `build`; it is
    /// public for rules written outside the crate.
    ///
    /// # Errors
    /// A negative or non-finite learning rate or weight decay.
    pub fn new(rule: impl Rule<E> + 'static, lr: f64, weight_decay: WeightDecay) -> Result<Self> {
        Self::from_dyn(Box::new(Elementwise(rule)), lr, weight_decay)
    }

    /// An optimizer from a rule that needs each parameter whole
    /// ([`WholeRule`]: LAMB, LARS, Adafactor, Muon), a learning rate and a
    /// weight decay.
    ///
    /// # Errors
    /// A negative or non-finite learning rate or weight decay.
    pub fn new_whole(
        rule: impl WholeRule<E> + 'static,
        lr: f64,
        weight_decay: WeightDecay,
    ) -> Result<Self> {
        Self::from_dyn(Box::new(Whole(rule)), lr, weight_decay)
    }

    fn from_dyn(rule: Box<dyn DynRule<E>>, lr: f64, weight_decay: WeightDecay) -> Result<Self> {
        let name = rule.name();
        check_lr(name, lr)?;
        weight_decay.validate(name, "weight_decay")?;
        Ok(Optimizer {
            rule,
            lr,
            weight_decay,
            schedule: None,
            transforms: Vec::new(),
            groups: Vec::new(),
            state: IdMap::default(),
            step: 0,
            skipped: 0,
            eval: false,
            dtype: StateDtype::Full,
        })
    }

    /// Keeps the per-element state (moments, momentum buffers) in `dtype`:
    /// [`StateDtype::Bf16`] halves an f32 optimizer's state memory. Each
    /// step widens the state into the element type, runs the update there
    /// (the parameter moves by the new moments at full precision), and
    /// rounds the new state back to bf16, to nearest or stochastically
    /// ([`crate::Rounding`]). Meant for the Adam family, whose moments
    /// tolerate 8 bits of mantissa (their configs have a `state_dtype`
    /// setter); any elementwise rule accepts it, but a slot that holds a
    /// copy of the parameters (schedule-free's z, ASGD's average) loses
    /// their precision. State made earlier is converted on its next use,
    /// and [`Optimizer::load_state`] converts saved state.
    ///
    /// # Errors
    /// [`Error::StateDtype`] for bf16 on a rule that needs each
    /// parameter whole (LAMB, LARS, Adafactor, Muon).
    pub fn with_state_dtype(mut self, dtype: StateDtype) -> Result<Self> {
        if dtype != StateDtype::Full && !self.rule.bf16_ok() {
            return Err(Error::StateDtype {
                optimizer: self.rule.name(),
            });
        }
        self.dtype = dtype;
        for (_, st) in self.state.values_mut() {
            convert_slots(&mut st.slots, dtype);
        }
        Ok(self)
    }

    /// The number type of the per-element state.
    pub fn state_dtype(&self) -> StateDtype {
        self.dtype
    }

    /// Whether the rule updates each element from that element's own
    /// gradient and state alone (every optimizer but LAMB, LARS,
    /// Adafactor and Muon, which need each parameter whole). Such a rule
    /// may update any slice of the parameters as a parameter of its own:
    /// what flat sharding of optimizer state needs.
    pub fn is_elementwise(&self) -> bool {
        self.rule.bf16_ok()
    }

    /// Drives the learning rate by a schedule, after checking it with
    /// [`Schedule::validate`]. Step t uses `schedule.rate(t, lr)`: the
    /// optimizer's `lr` is the base rate, as PyTorch's `*LR` schedulers take
    /// the optimizer's `lr`; a schedule given its own rate with
    /// [`Schedule::with_lr`] (Keras's `initial_learning_rate`) uses that
    /// instead. Each step the rate is checked again (see
    /// [`Optimizer::apply_gradients`]).
    ///
    /// # Errors
    /// [`Error::Hyperparameter`]: a schedule parameter outside its domain,
    /// naming the schedule, the field and its value.
    pub fn with_schedule(mut self, s: impl Schedule + 'static) -> Result<Self> {
        s.validate()?;
        self.schedule = Some(Box::new(s));
        Ok(self)
    }

    /// Adds a gradient transform, applied in the order added, before the
    /// update rule. The transform is checked as its constructor checks it,
    /// so a variant built directly (`GradTransform::ClipNorm(-1.0)`) is
    /// refused too.
    ///
    /// # Errors
    /// [`Error::Hyperparameter`]: a bound or λ outside its domain.
    pub fn with_transform(mut self, t: GradTransform) -> Result<Self> {
        t.validate()?;
        self.transforms.push(t);
        Ok(self)
    }

    /// Parameters whose name satisfies `matches` use `options` (the first
    /// matching group wins). The usual case: no weight decay on biases and
    /// norm weights.
    ///
    /// # Errors
    /// [`Error::Hyperparameter`] naming the optimizer and `group lr_scale`
    /// or `group weight_decay`: a negative or non-finite value.
    pub fn with_group(
        mut self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        options: GroupOptions,
    ) -> Result<Self> {
        options.validate(self.rule.name())?;
        self.groups.push(Group {
            matches: Box::new(matches),
            options,
        });
        Ok(self)
    }

    /// The learning rate the next step will use.
    pub fn current_lr(&self) -> f64 {
        match &self.schedule {
            Some(s) => s.rate(self.step, self.lr),
            None => self.lr,
        }
    }

    /// Reports a metric to a metric-driven schedule (reduce-on-plateau);
    /// other schedules ignore it.
    pub fn report_metric(&mut self, metric: f64) {
        if let Some(s) = &mut self.schedule {
            s.observe(metric);
        }
    }

    /// Optimizer steps taken so far (skipped steps not counted).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Steps skipped because a gradient was not finite.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    /// Updates every parameter of `grads` that has a gradient; parameters
    /// without one are skipped (as PyTorch and Keras).
    ///
    /// A row-sparse gradient (from [`tapir_autograd::Var::embedding`])
    /// updates only its rows and their state when the rule updates lazily
    /// ([`crate::SparseAdam`]); every other rule gets it dense (Keras's
    /// optimizers do the same with `IndexedSlices`; PyTorch's dense
    /// optimizers refuse sparse gradients). Clipping and the non-finite
    /// check read the rows' values; with an L1 or accumulation transform
    /// the gradient is made dense first.
    ///
    /// Everything is checked before anything changes, so a refused step
    /// leaves parameters, state, transforms and the step count as they were:
    /// each parameter appears once, its gradient has its shape, the rate
    /// reaching the rule (base rate × schedule × group scale) is finite and
    /// ≥ 0, its state (if any) was made for its current shape, and a new
    /// parameter's name is not taken by another one.
    ///
    /// # Errors
    /// - [`Error::NoGradients`]: no gradient at all.
    /// - [`Error::DuplicateParameter`]: a parameter listed twice (neither
    ///   summed nor stepped twice; see the variant).
    /// - [`Error::GradientShape`]: a gradient whose shape differs from its
    ///   parameter's.
    /// - [`Error::LearningRate`]: a negative or non-finite rate for a
    ///   parameter, with the schedule's value and the group's scale.
    /// - [`Error::StateShape`]: a parameter resized since its state was
    ///   made (also from the accumulation transform).
    /// - [`Error::DuplicateName`]: a new parameter named like another one.
    pub fn apply_gradients(&mut self, grads: &Gradients<E>) -> Result<StepReport> {
        tapir_tensor::threads::keep_warm();
        let optimizer = self.rule.name();
        if self.eval {
            return Err(Error::EvalMode { optimizer });
        }
        // Duplicates by sorting the ids: cheaper than hashing them on
        // every step of a model with many small parameters.
        let mut ids: Vec<u64> = grads.iter().map(|(p, _)| p.id()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            let name = grads
                .iter()
                .find(|(p, _)| p.id() == w[0])
                .map(|(p, _)| p.name().to_string())
                .unwrap_or_default();
            return Err(Error::DuplicateParameter { optimizer, name });
        }
        let mut pairs: Vec<(&Parameter<E>, Tensor<E>)> = Vec::with_capacity(grads.len());
        // Per pair, the rows of a row-sparse gradient kept sparse (the
        // pair's tensor then holds their values).
        let mut rows: Vec<Option<&[usize]>> = Vec::with_capacity(grads.len());
        // Per pair, the gradient's dense shape (the parameter's).
        let mut shapes: Vec<&[usize]> = Vec::with_capacity(grads.len());
        let lazy = self.rule.rows_ok()
            && !self
                .transforms
                .iter()
                .any(|t| matches!(t, GradTransform::L1(_) | GradTransform::Accumulate(_)));
        for (p, g) in grads.iter_grads() {
            let Some(g) = g else { continue };
            let shape = p.shape();
            if g.shape() != shape.as_slice() {
                return Err(Error::GradientShape {
                    name: p.name().to_string(),
                    grad: g.shape().to_vec(),
                    param: shape,
                });
            }
            shapes.push(g.shape());
            match g {
                Gradient::Dense(t) => {
                    pairs.push((p, t.clone()));
                    rows.push(None);
                }
                Gradient::Rows(r) if lazy => {
                    pairs.push((p, r.values().clone()));
                    rows.push(Some(r.indices()));
                }
                Gradient::Rows(r) => {
                    pairs.push((p, r.to_dense()));
                    rows.push(None);
                }
            }
        }
        if pairs.is_empty() {
            return Err(Error::NoGradients);
        }
        let scheduled = self.current_lr();
        let plan = self.plan(&pairs, &shapes, scheduled)?;
        let mut report = StepReport {
            lr: scheduled,
            grad_norm: None,
            skipped: false,
        };
        for t in &mut self.transforms {
            match t.apply(&mut pairs)? {
                ClipMode::Continue(norm) => {
                    if norm.is_some() {
                        report.grad_norm = norm;
                    }
                }
                ClipMode::Skip => {
                    self.skipped = self.skipped.saturating_add(1);
                    report.skipped = true;
                    return Ok(report);
                }
                ClipMode::Wait => return Ok(report),
            }
        }
        let dtype = self.dtype;
        for (((p, g), (plr, wd)), rows) in pairs.into_iter().zip(plan).zip(rows) {
            let rule = &*self.rule;
            let (pname, st) = self.state.entry(p.id()).or_insert_with(|| {
                let shape = p.shape();
                (
                    p.name().to_string(),
                    ParamState {
                        t: 0,
                        slots: rule
                            .slot_layout(&p.name(), &shape)
                            .into_iter()
                            .map(|(len, init)| {
                                Slot::Full(vec![E::from_f64(init); len]).converted(dtype)
                            })
                            .collect(),
                        scalars: rule.scalars(),
                        shape: p.shape(),
                    },
                )
            });
            st.t = st.t.saturating_add(1);
            let (l2, decay, lambda) = match wd {
                WeightDecay::None => (0.0, 1.0, 0.0),
                WeightDecay::L2(w) => (w, 1.0, w),
                WeightDecay::Decoupled(w) => (0.0, 1.0 - plr * w, w),
            };
            let k = Kernel {
                lr: E::from_f64(plr),
                l2: E::from_f64(l2),
                decay: E::from_f64(decay),
                lambda: E::from_f64(lambda),
                first: st.t == 1,
            };
            let g = g.contiguous();
            let gs = g.as_slice().expect("contiguous");
            if let Some(rows) = rows {
                let fits = p.update(|v| {
                    if v.shape() != st.shape.as_slice() {
                        return false;
                    }
                    match v.try_as_mut_slice() {
                        Some(ps) => rule.step_rows(pname, st, plr, &k, ps, rows, gs, dtype),
                        None => {
                            // Shared with a live tape: a new buffer.
                            let mut vals = v.to_vec();
                            rule.step_rows(pname, st, plr, &k, &mut vals, rows, gs, dtype);
                            *v = Tensor::from_vec(vals, v.shape()).expect("same length");
                        }
                    }
                    true
                });
                if !fits {
                    return Err(state_shape(optimizer, p, st));
                }
                continue;
            }
            let fits = p.update(|v| {
                // Checked above; this guards against a resize from another
                // thread in between, which would otherwise update a prefix.
                // The slots were made for st.shape, which is the gradient's.
                let n = v.len();
                let fits = n == gs.len();
                if !fits {
                    return false;
                }
                if let Some(ps) = v.try_as_mut_slice() {
                    rule.step(pname, st, plr, &k, Target::InPlace(ps), gs, dtype);
                    return true;
                }
                // Shared (a tape that recorded this parameter is still
                // alive) or strided: the update reads the old values and
                // writes a new buffer, chunk by chunk.
                let old = v.contiguous();
                let src = old.as_slice().expect("contiguous");
                let mut out = Vec::with_capacity(n);
                rule.step(
                    pname,
                    st,
                    plr,
                    &k,
                    Target::Copy {
                        src,
                        dst: &mut out.spare_capacity_mut()[..n],
                    },
                    gs,
                    dtype,
                );
                // SAFETY: the step wrote all n elements of the spare
                // capacity (Target::Copy copies every chunk before its
                // update).
                unsafe { out.set_len(n) };
                *v = Tensor::from_vec(out, v.shape()).expect("same length");
                true
            });
            if !fits {
                return Err(state_shape(optimizer, p, st));
            }
        }
        self.step = self.step.saturating_add(1);
        Ok(report)
    }

    /// Each parameter's rate and weight decay for this step, after checking
    /// the rate, that existing state fits and that new names are free.
    fn plan(
        &self,
        pairs: &[(&Parameter<E>, Tensor<E>)],
        shapes: &[&[usize]],
        scheduled: f64,
    ) -> Result<Vec<(f64, WeightDecay)>> {
        let optimizer = self.rule.name();
        // Names taken, built only on a step that meets a new parameter.
        let mut taken: Option<HashMap<String, u64>> = None;
        let mut plan = Vec::with_capacity(pairs.len());
        for ((p, _), &shape) in pairs.iter().zip(shapes) {
            let group = self.groups.iter().position(|gr| (gr.matches)(&p.name()));
            let opts = group.map(|i| self.groups[i].options).unwrap_or_default();
            let scale = opts.lr_scale.unwrap_or(1.0);
            let plr = scheduled * scale;
            if !(plr >= 0.0 && plr.is_finite()) {
                return Err(Error::LearningRate {
                    optimizer,
                    name: p.name().to_string(),
                    step: self.step,
                    lr: plr,
                    scheduled,
                    group,
                    scale,
                });
            }
            match self.state.get(&p.id()) {
                Some((_, st)) => {
                    // `shape` is the gradient's dense shape, checked by the
                    // caller to be the parameter's.
                    if st.shape != shape {
                        return Err(Error::StateShape {
                            optimizer,
                            name: p.name().to_string(),
                            param: shape.to_vec(),
                            state: st.shape.clone(),
                        });
                    }
                }
                None => {
                    let taken = taken.get_or_insert_with(|| {
                        self.state
                            .iter()
                            .map(|(&id, (n, _))| (n.clone(), id))
                            .collect()
                    });
                    if let Some(&first) = taken.get(&*p.name()) {
                        return Err(Error::DuplicateName {
                            optimizer,
                            name: p.name().to_string(),
                            first,
                            second: p.id(),
                        });
                    }
                    taken.insert(p.name().to_string(), p.id());
                }
            }
            plan.push((plr, opts.weight_decay.unwrap_or(self.weight_decay)));
        }
        Ok(plan)
    }

    /// Drops the state of the parameter named `name` (its moments, buffers
    /// and step count, and its partial sums in gradient accumulation), so
    /// that its next step starts afresh as a new parameter's would: after
    /// resizing it, or to hand the name to another parameter. Returns
    /// whether there was such state.
    pub fn reset_state(&mut self, name: &str) -> bool {
        let before = self.state.len();
        self.state.retain(|_, (n, _)| n != name);
        let mut dropped = self.state.len() != before;
        for t in &mut self.transforms {
            if let GradTransform::Accumulate(acc) = t {
                dropped |= acc.forget(name);
            }
        }
        dropped
    }

    /// The accumulation transforms, in the order added.
    fn accumulators(&self) -> impl Iterator<Item = &crate::transform::Accumulator> {
        self.transforms.iter().filter_map(|t| match t {
            GradTransform::Accumulate(acc) => Some(acc),
            _ => None,
        })
    }

    /// The optimizer's state, keyed by parameter name, for checkpoints. The
    /// names are unique ([`Error::DuplicateName`] keeps them so).
    pub fn state(&self) -> OptimizerState<E> {
        let mut params: Vec<(String, ParamState<E>)> = self
            .state
            .values()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        OptimizerState {
            rule: self.rule.name().to_string(),
            step: self.step,
            skipped: self.skipped,
            schedule: self
                .schedule
                .as_ref()
                .map(|s| s.state())
                .unwrap_or_default(),
            params,
            accumulators: self.accumulators().map(|a| a.save()).collect(),
        }
    }

    /// Restores a state saved by [`Optimizer::state`] for these parameters.
    /// Continuing then gives bit-identical parameters to an uninterrupted
    /// run. All of it is checked first: on an error the optimizer is
    /// unchanged.
    ///
    /// # Errors
    /// [`Error::State`], saying what does not fit: another optimizer's
    /// state; a name saved twice; a saved name that no parameter in
    /// `params` has, or that two different ones have; a shape that differs
    /// from the parameter's; a slot count or slot length, or a count of
    /// per-parameter scalars, that the rule does not use; a non-finite
    /// scalar; a schedule state that the optimizer's schedule (or its
    /// lack of one) cannot take; or accumulation states that do not match
    /// the optimizer's accumulation transforms (their number, k, a count of
    /// micro-steps not below k, or partial sums whose name or shape fits no
    /// parameter).
    pub fn load_state(
        &mut self,
        state: &OptimizerState<E>,
        params: &[&Parameter<E>],
    ) -> Result<()> {
        let rule = self.rule.name();
        if state.rule != rule {
            return Err(Error::State(format!(
                "state of {} cannot be loaded into {rule}",
                state.rule
            )));
        }
        let mut new = IdMap::with_capacity_and_hasher(state.params.len(), Default::default());
        let mut names = HashSet::with_capacity(state.params.len());
        for (name, st) in &state.params {
            if !names.insert(name.as_str()) {
                return Err(Error::State(format!("the state holds '{name}' twice")));
            }
            let mut found = params.iter().filter(|p| &*p.name() == name);
            let p = found
                .next()
                .ok_or_else(|| Error::State(format!("no parameter named '{name}'")))?;
            if let Some(q) = found.find(|q| q.id() != p.id()) {
                return Err(Error::State(format!(
                    "two different parameters are named '{name}' (ids {} and {})",
                    p.id(),
                    q.id()
                )));
            }
            if p.shape() != st.shape {
                return Err(Error::State(format!(
                    "'{name}' has shape {:?}, the state has {:?}",
                    p.shape(),
                    st.shape
                )));
            }
            let want: Vec<usize> = self
                .rule
                .slot_layout(name, &st.shape)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            let got: Vec<usize> = st.slots.iter().map(Slot::len).collect();
            if got != want {
                return Err(Error::State(format!(
                    "'{name}': the state's slots do not fit {rule}: {} slots of lengths {got:?}, \
                     expected {} of lengths {want:?}",
                    got.len(),
                    want.len(),
                )));
            }
            let want = self.rule.scalars().len();
            if st.scalars.len() != want {
                return Err(Error::State(format!(
                    "'{name}': {rule} keeps {want} scalars per parameter, the state has {}",
                    st.scalars.len()
                )));
            }
            if let Some(v) = st.scalars.iter().find(|v| !v.is_finite()) {
                return Err(Error::State(format!(
                    "'{name}': the state's scalar {v} is not finite"
                )));
            }
            let mut st = st.clone();
            convert_slots(&mut st.slots, self.dtype);
            new.insert(p.id(), (name.clone(), st));
        }
        let have = self.accumulators().count();
        if state.accumulators.len() != have {
            return Err(Error::State(format!(
                "the state holds {} accumulation states, this optimizer has {have} \
                 accumulate transforms",
                state.accumulators.len()
            )));
        }
        let sums = self
            .accumulators()
            .zip(&state.accumulators)
            .enumerate()
            .map(|(i, (acc, saved))| acc.check(i, saved, params))
            .collect::<Result<Vec<_>>>()?;
        match &mut self.schedule {
            Some(s) => s.set_state(&state.schedule)?,
            None if !state.schedule.is_empty() => {
                return Err(Error::State(format!(
                    "the state holds {} schedule values, but this optimizer has no schedule",
                    state.schedule.len()
                )))
            }
            None => {}
        }
        let restored = state.accumulators.iter().zip(sums);
        let accs = self.transforms.iter_mut().filter_map(|t| match t {
            GradTransform::Accumulate(acc) => Some(acc),
            _ => None,
        });
        for (acc, (saved, sums)) in accs.zip(restored) {
            acc.restore(saved.seen, sums);
        }
        self.state = new;
        self.step = state.step;
        self.skipped = state.skipped;
        Ok(())
    }

    /// State slot `k` of `param` (see each optimizer's docs for its slots:
    /// ASGD's slot 0 is the running average of the parameter), or `None`
    /// when the parameter has no state yet or the rule fewer slots. The
    /// tensor has the parameter's shape when the slot has its length, else
    /// it is flat.
    pub fn slot(&self, param: &Parameter<E>, k: usize) -> Option<Tensor<E>> {
        let (_, st) = self.state.get(&param.id())?;
        let s = st.slots.get(k)?;
        let n: usize = st.shape.iter().product();
        let shape = if s.len() == n {
            st.shape.clone()
        } else {
            vec![s.len()]
        };
        Tensor::from_vec(s.to_vec(), shape).ok()
    }

    /// Moves `params` to the point to evaluate, for optimizers that train
    /// one point and evaluate another (schedule-free: the average x instead
    /// of the interpolation y), as `optimizer.eval()` in the authors'
    /// `schedulefree` package; call it before evaluating or saving the
    /// model, and [`Optimizer::train`] before the next step
    /// (`apply_gradients` refuses to step in evaluation mode). For every
    /// other optimizer both are no-ops. Parameters without state (never
    /// stepped) are left alone; calling it twice changes nothing.
    pub fn eval(&mut self, params: &[&Parameter<E>]) {
        if !self.eval {
            self.switch(params, true);
            self.eval = true;
        }
    }

    /// Moves `params` back to the training point after [`Optimizer::eval`].
    pub fn train(&mut self, params: &[&Parameter<E>]) {
        if self.eval {
            self.switch(params, false);
            self.eval = false;
        }
    }

    /// Takes an estimate of the Hessian diagonal per parameter (from
    /// [`crate::hutchinson`] or [`crate::gauss_newton_bartlett`], at the
    /// parameters a step started from) into the state of a rule that keeps
    /// one ([`crate::Sophia`]: h ← β₂h + (1 − β₂)ĥ). Parameters without an
    /// estimate are left alone. Everything is checked first.
    ///
    /// # Errors
    /// [`Error::State`]: the rule keeps no Hessian estimate, a parameter
    /// has no state yet (take a step first, as optax updates its estimate
    /// after the step that creates the state), or an estimate's shape
    /// differs from its parameter's.
    pub fn observe_hessian(&mut self, h: &Gradients<E>) -> Result<()> {
        let rule = self.rule.name();
        let mut work = Vec::new();
        for (p, est) in h.iter() {
            let Some(est) = est else { continue };
            let Some((_, st)) = self.state.get(&p.id()) else {
                return Err(Error::State(format!(
                    "observe_hessian: '{}' has no {rule} state yet; apply a step first",
                    p.name()
                )));
            };
            if est.shape() != st.shape.as_slice() {
                return Err(Error::State(format!(
                    "observe_hessian: the estimate for '{}' has shape {:?}, the parameter {:?}",
                    p.name(),
                    est.shape(),
                    st.shape
                )));
            }
            work.push((p.id(), est.to_vec()));
        }
        for (id, est) in work {
            let (_, st) = self.state.get_mut(&id).expect("checked above");
            // bf16 state is widened for the rule and rounded back to
            // nearest (an estimate taken in is no per-step update to keep
            // unbiased).
            let mut wide: Vec<Vec<E>> = st.slots.iter().map(Slot::to_vec).collect();
            let mut s: Vec<&mut [E]> = wide.iter_mut().map(Vec::as_mut_slice).collect();
            if !self.rule.curvature(&mut s, &est) {
                return Err(Error::State(format!(
                    "observe_hessian: {rule} keeps no Hessian estimate"
                )));
            }
            for (slot, w) in st.slots.iter_mut().zip(wide) {
                *slot = Slot::Full(w).converted(self.dtype);
            }
        }
        Ok(())
    }

    /// Whether the optimizer is in evaluation mode ([`Optimizer::eval`]).
    pub fn is_eval(&self) -> bool {
        self.eval
    }

    fn switch(&self, params: &[&Parameter<E>], to_eval: bool) {
        for p in params {
            let Some((_, st)) = self.state.get(&p.id()) else {
                continue;
            };
            let wide: Vec<Vec<E>> = st.slots.iter().map(Slot::to_vec).collect();
            let s: Vec<&[E]> = wide.iter().map(Vec::as_slice).collect();
            p.update(|v| {
                let mut vals = v.to_vec();
                if vals.len() == st.shape.iter().product::<usize>()
                    && self.rule.switch(&mut vals, &s, to_eval)
                {
                    *v = Tensor::from_vec(vals, v.shape()).expect("same length");
                }
            });
        }
    }
}

/// Converts every slot to `dtype` (see [`Slot::converted`]).
fn convert_slots<E: Float>(slots: &mut [Slot<E>], dtype: StateDtype) {
    for s in slots {
        let old = std::mem::replace(s, Slot::Full(Vec::new()));
        *s = old.converted(dtype);
    }
}

/// The error for a parameter resized since its state was made.
fn state_shape<E: Float>(optimizer: &'static str, p: &Parameter<E>, st: &ParamState<E>) -> Error {
    Error::StateShape {
        optimizer,
        name: p.name().to_string(),
        param: p.shape(),
        state: st.shape.clone(),
    }
}
