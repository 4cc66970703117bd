//! Update rules: each optimizer is one fused elementwise pass over
//! parameter, gradient and state (weight decay folded in), built from the
//! shared pieces of [`crate::pieces`], compiled for the widest vector unit
//! found at run time, and run over chunks of the flat tensors in parallel
//! for big parameters.

use std::mem::MaybeUninit;

use rayon::prelude::*;
use smallvec::SmallVec;
use tapir_tensor::Float;

use crate::bf16::{self, Rounding, Slot, StateDtype};
use crate::optimizer::ParamState;
use crate::pieces::*;

/// Scalars every update needs for one parameter at one step, computed once
/// per step and then used for every element. The rule's own per-step
/// scalars (bias corrections, ...) come separately, as its
/// [`Rule::Coeffs`].
#[derive(Debug, Clone, Copy)]
pub struct Kernel<E> {
    /// The learning rate α for this step and parameter (after schedule and
    /// group scale).
    pub lr: E,
    /// L2 weight decay: `g ← g + l2·θ` before the update.
    pub l2: E,
    /// Decoupled weight decay as a factor: `θ ← decay·θ` before the update.
    pub decay: E,
    /// The weight decay λ itself, whichever its form (0 without one), for
    /// rules that place it themselves (LAMB inside its trust ratio).
    pub lambda: E,
    /// Whether this is the parameter's first step.
    pub first: bool,
}

/// One optimizer's update rule, written as an elementwise kernel.
///
/// [`Rule::coeffs`] turns the step count and learning rate into the rule's
/// named per-step scalars once per parameter per step; [`Rule::apply`] is
/// the fused pass that uses them. `apply` may be called on any chunk of the
/// flat parameter (same offsets into the gradient and the state slots), so
/// it must not couple elements. Mark it `#[inline(always)]`: it is
/// instantiated inside AVX2 and AVX-512 wrappers, and only an inlined body
/// gets their wide instructions.
pub trait Rule<E: Float>: Send + Sync {
    /// The rule's per-step scalars, named (for example Adam's α/(1 − β₁ᵗ)).
    type Coeffs: Copy + Send + Sync;
    /// The optimizer's name, for messages and saved state.
    fn name(&self) -> &'static str;
    /// State tensors per parameter (momentum buffers, moments, ...).
    fn slots(&self) -> usize;
    /// Initial value of slot `k`.
    fn init_slot(&self, _k: usize) -> f64 {
        0.0
    }
    /// Scalar state per parameter (e.g. NAdam's running product of μ).
    fn scalars(&self) -> Vec<f64> {
        Vec::new()
    }
    /// The rule's scalars for step `t` (1-based) at learning rate `lr`,
    /// updating the parameter's scalar state.
    fn coeffs(&self, t: u64, lr: f64, scalars: &mut [f64]) -> Self::Coeffs;
    /// Updates a chunk of the parameter in place: one pass over `p`, `g`
    /// and the state slots `s`.
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &Self::Coeffs);
    /// Moves the parameter `p` between the point being trained and the
    /// point to evaluate, for rules that keep two (schedule-free): towards
    /// evaluation when `to_eval`, else back. Returns whether the rule has
    /// two points; the default has one and changes nothing. See
    /// [`Optimizer::eval`](crate::Optimizer::eval).
    fn switch(&self, _p: &mut [E], _s: &[&[E]], _to_eval: bool) -> bool {
        false
    }
    /// Takes an estimate `h` of the Hessian diagonal (one value per
    /// element) into the state, for rules that keep one (Sophia). Returns
    /// whether the rule keeps one; the default does not. See
    /// [`Optimizer::observe_hessian`](crate::Optimizer::observe_hessian).
    fn curvature(&self, _s: &mut [&mut [E]], _h: &[E]) -> bool {
        false
    }
    /// Whether a row-sparse gradient ([`tapir_autograd::RowSparse`])
    /// updates only its rows (and their state), as SparseAdam's lazy
    /// update; the default makes it dense first, which for most rules is
    /// the same step (a zero gradient still decays moments and moves the
    /// parameter by its momentum).
    fn sparse(&self) -> bool {
        false
    }
}

/// An update rule that needs the whole parameter at once: its norm (LAMB,
/// LARS), factored moments (Adafactor) or matrix products (Muon). It is
/// called once per parameter per step, on the whole flat tensor with its
/// shape, and may allocate; [`Rule`] is the faster shape for elementwise
/// rules. Build an optimizer from one with [`Optimizer::new_whole`](crate::Optimizer::new_whole).
pub trait WholeRule<E: Float>: Send + Sync {
    /// The optimizer's name, for messages and saved state.
    fn name(&self) -> &'static str;
    /// The lengths of the state tensors of the parameter `name` of
    /// `shape`, each starting at zero (Adafactor's factored moments of an
    /// m×n matrix: m and n).
    fn slots(&self, name: &str, shape: &[usize]) -> Vec<usize>;
    /// Scalar state per parameter, with its initial values.
    fn scalars(&self) -> Vec<f64> {
        Vec::new()
    }
    /// One step of the parameter `name`: `p` (row-major, of `shape`) in
    /// place, from its gradient `g`, its slots `s` (lengths as
    /// [`WholeRule::slots`]), its scalars and its step count `t` (1-based).
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        name: &str,
        p: &mut [E],
        g: &[E],
        shape: &[usize],
        s: &mut [&mut [E]],
        scalars: &mut [f64],
        t: u64,
        k: &Kernel<E>,
    );
}

/// A [`Rule`] with its coefficient type erased, as the optimizer stores it.
pub(crate) trait DynRule<E: Float>: Send + Sync {
    fn name(&self) -> &'static str;
    /// The state slots of the parameter `name` of `shape`: (length,
    /// initial value).
    fn slot_layout(&self, name: &str, shape: &[usize]) -> Vec<(usize, f64)>;
    fn scalars(&self) -> Vec<f64>;
    /// One step of one parameter: the coefficients for `st.t`, then the
    /// fused pass over `p`, `g` and `st.slots` (kept in `dtype`).
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        name: &str,
        st: &mut ParamState<E>,
        lr: f64,
        k: &Kernel<E>,
        p: Target<'_, E>,
        g: &[E],
        dtype: StateDtype,
    );
    /// Whether the rule can keep its state in bf16 (elementwise rules).
    fn bf16_ok(&self) -> bool;
    /// See [`Rule::sparse`].
    fn rows_ok(&self) -> bool;
    /// One step of one parameter from a row-sparse gradient: the rule's
    /// pass over each row in `rows` of `p` and of the state, with that
    /// row's gradient from `vals` (rows × width, in order).
    #[allow(clippy::too_many_arguments)]
    fn step_rows(
        &self,
        name: &str,
        st: &mut ParamState<E>,
        lr: f64,
        k: &Kernel<E>,
        p: &mut [E],
        rows: &[usize],
        vals: &[E],
        dtype: StateDtype,
    );
    /// See [`Rule::switch`].
    fn switch(&self, p: &mut [E], s: &[&[E]], to_eval: bool) -> bool;
    /// See [`Rule::curvature`].
    fn curvature(&self, s: &mut [&mut [E]], h: &[E]) -> bool;
}

/// A [`Rule`] as the optimizer stores it.
pub(crate) struct Elementwise<R>(pub(crate) R);

impl<E: Float, R: Rule<E>> DynRule<E> for Elementwise<R> {
    fn name(&self) -> &'static str {
        Rule::name(&self.0)
    }
    fn slot_layout(&self, _name: &str, shape: &[usize]) -> Vec<(usize, f64)> {
        let n = shape.iter().product();
        (0..Rule::slots(&self.0))
            .map(|k| (n, Rule::init_slot(&self.0, k)))
            .collect()
    }
    fn scalars(&self) -> Vec<f64> {
        Rule::scalars(&self.0)
    }
    fn step(
        &self,
        name: &str,
        st: &mut ParamState<E>,
        lr: f64,
        k: &Kernel<E>,
        p: Target<'_, E>,
        g: &[E],
        dtype: StateDtype,
    ) {
        let c = self.0.coeffs(st.t, lr, &mut st.scalars);
        let rule = &self.0;
        match dtype {
            StateDtype::Full => run_chunks(p, g, full_slots(&mut st.slots), |p, g, s, _| {
                fused(rule, p, g, s, k, &c)
            }),
            StateDtype::Bf16(rounding) => {
                let seed = bf16::stream(name, st.t);
                run_chunks(p, g, bf16_slots(&mut st.slots), |p, g, s, at| {
                    fused_bf16(rule, p, g, s, k, &c, rounding, seed, at)
                })
            }
        }
    }
    fn bf16_ok(&self) -> bool {
        true
    }
    fn rows_ok(&self) -> bool {
        Rule::sparse(&self.0)
    }
    fn step_rows(
        &self,
        name: &str,
        st: &mut ParamState<E>,
        lr: f64,
        k: &Kernel<E>,
        p: &mut [E],
        rows: &[usize],
        vals: &[E],
        dtype: StateDtype,
    ) {
        let c = self.0.coeffs(st.t, lr, &mut st.scalars);
        let Some(w) = p.len().checked_div(st.shape[0]) else {
            return;
        };
        let rule = &self.0;
        match dtype {
            StateDtype::Full => {
                let mut s = full_slots(&mut st.slots);
                for (i, &r) in rows.iter().enumerate() {
                    let a = r * w;
                    let mut sr: SmallVec<[&mut [E]; 3]> =
                        s.iter_mut().map(|x| &mut x[a..a + w]).collect();
                    fused(
                        rule,
                        &mut p[a..a + w],
                        &vals[i * w..(i + 1) * w],
                        &mut sr,
                        k,
                        &c,
                    );
                }
            }
            StateDtype::Bf16(rounding) => {
                let seed = bf16::stream(name, st.t);
                let mut s = bf16_slots(&mut st.slots);
                for (i, &r) in rows.iter().enumerate() {
                    let a = r * w;
                    let mut sr: SmallVec<[&mut [u16]; 3]> =
                        s.iter_mut().map(|x| &mut x[a..a + w]).collect();
                    let (pr, gr) = (&mut p[a..a + w], &vals[i * w..(i + 1) * w]);
                    fused_bf16(rule, pr, gr, &mut sr, k, &c, rounding, seed, a);
                }
            }
        }
    }
    fn switch(&self, p: &mut [E], s: &[&[E]], to_eval: bool) -> bool {
        Rule::switch(&self.0, p, s, to_eval)
    }
    fn curvature(&self, s: &mut [&mut [E]], h: &[E]) -> bool {
        Rule::curvature(&self.0, s, h)
    }
}

/// A [`WholeRule`] as the optimizer stores it (a wrapper, so that one type
/// cannot be both kinds of rule).
pub(crate) struct Whole<R>(pub(crate) R);

impl<E: Float, R: WholeRule<E>> DynRule<E> for Whole<R> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn slot_layout(&self, name: &str, shape: &[usize]) -> Vec<(usize, f64)> {
        self.0
            .slots(name, shape)
            .into_iter()
            .map(|n| (n, 0.0))
            .collect()
    }
    fn scalars(&self) -> Vec<f64> {
        self.0.scalars()
    }
    fn step(
        &self,
        name: &str,
        st: &mut ParamState<E>,
        _lr: f64,
        k: &Kernel<E>,
        p: Target<'_, E>,
        g: &[E],
        _dtype: StateDtype,
    ) {
        let mut s = full_slots(&mut st.slots);
        self.0.step(
            name,
            p.values(),
            g,
            &st.shape,
            &mut s,
            &mut st.scalars,
            st.t,
            k,
        );
    }
    fn bf16_ok(&self) -> bool {
        false
    }
    fn rows_ok(&self) -> bool {
        false
    }
    fn step_rows(
        &self,
        _name: &str,
        _st: &mut ParamState<E>,
        _lr: f64,
        _k: &Kernel<E>,
        _p: &mut [E],
        _rows: &[usize],
        _vals: &[E],
        _dtype: StateDtype,
    ) {
        unreachable!(
            "{}: row-sparse gradients are made dense for this rule",
            self.0.name()
        )
    }
    fn switch(&self, _p: &mut [E], _s: &[&[E]], _to_eval: bool) -> bool {
        false
    }
    fn curvature(&self, _s: &mut [&mut [E]], _h: &[E]) -> bool {
        false
    }
}

/// The slots as slices of the element type.
///
/// # Panics
/// On a bf16 slot: the optimizer keeps every slot of a parameter in its
/// one state dtype, and only elementwise rules (which dispatch on it) may
/// have bf16 state.
fn full_slots<E: Float>(slots: &mut [Slot<E>]) -> SmallVec<[&mut [E]; 3]> {
    slots
        .iter_mut()
        .map(|s| match s {
            Slot::Full(v) => v.as_mut_slice(),
            Slot::Bf16(_) => unreachable!("a bf16 slot in full-precision state"),
        })
        .collect()
}

/// The slots as bf16 bit slices (panics as [`full_slots`] the other way).
fn bf16_slots<E: Float>(slots: &mut [Slot<E>]) -> SmallVec<[&mut [u16]; 3]> {
    slots
        .iter_mut()
        .map(|s| match s {
            Slot::Bf16(v) => v.as_mut_slice(),
            Slot::Full(_) => unreachable!("a full-precision slot in bf16 state"),
        })
        .collect()
}

/// Elements per parallel chunk of an update.
const CHUNK: usize = 1 << 16;

/// Where an update writes the parameter.
pub(crate) enum Target<'a, E> {
    /// In place: the storage is the parameter's alone.
    InPlace(&'a mut [E]),
    /// From the current values `src` (still shared, e.g. with a live tape)
    /// into a new buffer `dst` of the same length: each chunk is copied
    /// just before its update, while it is in cache, instead of copying
    /// the whole parameter first.
    Copy {
        src: &'a [E],
        dst: &'a mut [MaybeUninit<E>],
    },
}

impl<'a, E: Float> Target<'a, E> {
    fn len(&self) -> usize {
        match self {
            Target::InPlace(p) => p.len(),
            Target::Copy { dst, .. } => dst.len(),
        }
    }

    /// The elements to update in place (copied from `src` first).
    fn values(self) -> &'a mut [E] {
        match self {
            Target::InPlace(p) => p,
            Target::Copy { src, dst } => {
                assert_eq!(src.len(), dst.len(), "copy target of another length");
                for (d, &x) in dst.iter_mut().zip(src) {
                    d.write(x);
                }
                // SAFETY: every element of `dst` was written just above, and
                // MaybeUninit<E> has E's layout.
                unsafe { &mut *(dst as *mut [MaybeUninit<E>] as *mut [E]) }
            }
        }
    }

    fn chunks(self, n: usize) -> Vec<Target<'a, E>> {
        match self {
            Target::InPlace(p) => p.chunks_mut(n).map(Target::InPlace).collect(),
            Target::Copy { src, dst } => src
                .chunks(n)
                .zip(dst.chunks_mut(n))
                .map(|(src, dst)| Target::Copy { src, dst })
                .collect(),
        }
    }
}

/// One parallel work item: a chunk of the parameter, of the gradient and of
/// each state slot, at the same offsets, and the chunk's offset.
type Chunk<'a, E, S> = (Target<'a, E>, &'a [E], SmallVec<[&'a mut [S]; 3]>, usize);

/// Runs `pass(p, g, slots, offset)` over the flat tensors, in parallel
/// chunks for big ones; the slots hold `S` (the element type, or bf16
/// bits).
fn run_chunks<E: Float, S: Send>(
    p: Target<'_, E>,
    g: &[E],
    mut slots: SmallVec<[&mut [S]; 3]>,
    pass: impl Fn(&mut [E], &[E], &mut [&mut [S]], usize) + Sync,
) {
    if p.len() < 2 * CHUNK {
        pass(p.values(), g, &mut slots, 0);
        return;
    }
    let mut slot_chunks: Vec<_> = slots.iter_mut().map(|s| s.chunks_mut(CHUNK)).collect();
    let work: Vec<Chunk<'_, E, S>> = p
        .chunks(CHUNK)
        .into_iter()
        .zip(g.chunks(CHUNK))
        .enumerate()
        .map(|(i, (pc, gc))| {
            let sc = slot_chunks
                .iter_mut()
                .map(|it| it.next().expect("slots have the parameter's length"))
                .collect();
            (pc, gc, sc, i * CHUNK)
        })
        .collect();
    work.into_par_iter()
        .for_each(|(pc, gc, mut sc, at)| pass(pc.values(), gc, &mut sc, at));
}

/// The rule's pass on state kept in bf16: block by block, the state is
/// widened into the element type, the rule's fused pass runs on it (the
/// parameter's update uses the new moments at full precision), and the
/// new state is rounded back. `at` is the chunk's offset in the
/// parameter, which with `seed` picks the stochastic rounding's bits.
/// Compiled for the widest vector unit found, as [`fused`] (the widening,
/// the rule and the rounding all inside one `target_feature` copy).
#[allow(clippy::too_many_arguments)]
fn fused_bf16<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [u16]],
    k: &Kernel<E>,
    c: &R::Coeffs,
    rounding: Rounding,
    seed: u64,
    at: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { bf16_avx512(rule, p, g, s, k, c, rounding, seed, at) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { bf16_avx2(rule, p, g, s, k, c, rounding, seed, at) };
        }
    }
    bf16_pass(rule, p, g, s, k, c, rounding, seed, at)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn bf16_avx512<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [u16]],
    k: &Kernel<E>,
    c: &R::Coeffs,
    rounding: Rounding,
    seed: u64,
    at: usize,
) {
    bf16_pass(rule, p, g, s, k, c, rounding, seed, at)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn bf16_avx2<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [u16]],
    k: &Kernel<E>,
    c: &R::Coeffs,
    rounding: Rounding,
    seed: u64,
    at: usize,
) {
    bf16_pass(rule, p, g, s, k, c, rounding, seed, at)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bf16_pass<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [u16]],
    k: &Kernel<E>,
    c: &R::Coeffs,
    rounding: Rounding,
    seed: u64,
    at: usize,
) {
    let n = s.len();
    let mut buf = [E::ZERO; 3 * bf16::BLOCK];
    let mut heap;
    let buf: &mut [E] = if n <= 3 {
        &mut buf[..n * bf16::BLOCK]
    } else {
        heap = vec![E::ZERO; n * bf16::BLOCK];
        &mut heap
    };
    let mut start = 0;
    while start < p.len() {
        let end = (start + bf16::BLOCK).min(p.len());
        let len = end - start;
        let mut wide: SmallVec<[&mut [E]; 3]> =
            buf.chunks_mut(bf16::BLOCK).map(|b| &mut b[..len]).collect();
        for (w, h) in wide.iter_mut().zip(s.iter()) {
            for (w, &h) in w.iter_mut().zip(&h[start..end]) {
                *w = bf16::from_bf16(h);
            }
        }
        rule.apply(&mut p[start..end], &g[start..end], &mut wide, k, c);
        for (j, (w, h)) in wide.iter().zip(s.iter_mut()).enumerate() {
            bf16::store(&mut h[start..end], w, rounding, seed, j, at + start);
        }
        start = end;
    }
}

/// The rule's pass, compiled for the widest vector unit found at run time.
///
/// The crate is built for baseline x86-64 (SSE2); these streaming loops are
/// memory- and divide-bound, and AVX2/AVX-512 halve or quarter their
/// instruction count. Each `target_feature` wrapper gets its own vectorised
/// copy of the rule's `#[inline(always)]` `apply` (a closure was tried once
/// and not inlined: 4× slower). No FMA contraction happens (Rust does not
/// contract), so every copy gives the same bits.
fn fused<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [E]],
    k: &Kernel<E>,
    c: &R::Coeffs,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { fused_avx512(rule, p, g, s, k, c) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { fused_avx2(rule, p, g, s, k, c) };
        }
    }
    rule.apply(p, g, s, k, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fused_avx512<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [E]],
    k: &Kernel<E>,
    c: &R::Coeffs,
) {
    rule.apply(p, g, s, k, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fused_avx2<E: Float, R: Rule<E>>(
    rule: &R,
    p: &mut [E],
    g: &[E],
    s: &mut [&mut [E]],
    k: &Kernel<E>,
    c: &R::Coeffs,
) {
    rule.apply(p, g, s, k, c)
}

/// The slot layout did not match the rule's `slots()`: the optimizer
/// allocates and checks slots, so this cannot happen.
#[cold]
pub(crate) fn bad_slots(rule: &str, got: usize) -> ! {
    unreachable!("{rule}: {got} state slots do not match the rule")
}

// ---- SGD.

/// Momentum of SGD, as an enum rather than flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Momentum {
    /// Plain gradient descent θ ← θ − α g (the seed's first formula).
    None,
    /// Heavy ball as in `torch.optim.SGD(momentum=μ, dampening=τ)`:
    /// b ← μ b + (1 − τ) g (b = g on the first step), θ ← θ − α b.
    HeavyBall {
        /// μ.
        momentum: f64,
        /// τ.
        dampening: f64,
    },
    /// Nesterov as in `torch.optim.SGD(nesterov=True)`: b as heavy ball
    /// (dampening 0), θ ← θ − α (g + μ b).
    Nesterov {
        /// μ.
        momentum: f64,
    },
    /// The seed's exponential moving average: v ← β v + (1 − β) g,
    /// θ ← θ − α v. Equals heavy ball with lr α(1 − β), μ = β, τ = 0.
    Ema {
        /// β.
        beta: f64,
    },
}

pub(crate) struct SgdRule {
    pub momentum: Momentum,
}

/// SGD's per-step scalars: b ← μb + damp·g.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SgdCoeffs<E> {
    /// μ (β for the EMA form).
    mu: E,
    /// 1 − τ (1 − β for the EMA form), computed in f64.
    damp: E,
}

impl<E: Float> Rule<E> for SgdRule {
    type Coeffs = SgdCoeffs<E>;
    fn name(&self) -> &'static str {
        "SGD"
    }
    fn slots(&self) -> usize {
        usize::from(self.momentum != Momentum::None)
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> SgdCoeffs<E> {
        let (mu, damp) = match self.momentum {
            Momentum::None => (0.0, 0.0),
            Momentum::HeavyBall {
                momentum,
                dampening,
            } => (momentum, 1.0 - dampening),
            Momentum::Nesterov { momentum } => (momentum, 1.0),
            Momentum::Ema { beta } => (beta, 1.0 - beta),
        };
        SgdCoeffs {
            mu: E::from_f64(mu),
            damp: E::from_f64(damp),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &SgdCoeffs<E>) {
        let (k, c) = (*k, *c);
        match (self.momentum, s) {
            (Momentum::None, []) => {
                for (p, &g) in p.iter_mut().zip(g) {
                    let (pd, g) = weight_decay(*p, g, &k);
                    *p = descend(pd, k.lr * g);
                }
            }
            (Momentum::HeavyBall { .. } | Momentum::Nesterov { .. }, [b]) => {
                let nesterov = matches!(self.momentum, Momentum::Nesterov { .. });
                for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                    let (pd, g) = weight_decay(*p, g, &k);
                    let b1 = if k.first {
                        g
                    } else {
                        heavy_ball(*b, c.damp * g, c.mu)
                    };
                    *b = b1;
                    let d = if nesterov { g + c.mu * b1 } else { b1 };
                    *p = descend(pd, k.lr * d);
                }
            }
            (Momentum::Ema { .. }, [v]) => {
                for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                    let (pd, g) = weight_decay(*p, g, &k);
                    let v1 = heavy_ball(*v, c.damp * g, c.mu);
                    *v = v1;
                    *p = descend(pd, k.lr * v1);
                }
            }
            (_, s) => bad_slots("SGD", s.len()),
        }
    }
}

// ---- The Adam family.

/// Adam and AdamW (AdamW is Adam with decoupled weight decay, which the
/// kernel's `decay` carries).
pub(crate) struct AdamRule {
    pub name: &'static str,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub amsgrad: bool,
}

/// Adam's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamCoeffs<E> {
    /// α/(1 − β₁ᵗ).
    lr_hat: E,
    /// 1/√(1 − β₂ᵗ), computed in the element type from √(1 − β₂ᵗ).
    inv_sqrt_bc2: E,
    betas: Betas<E>,
    eps: E,
}

impl<E: Float> AdamCoeffs<E> {
    /// Adam's scalars for step `t` (1-based) at learning rate `lr`, in
    /// PyTorch's order of operations: θ ← θ − (α / bc1) · m / (√v / √bc2 + ε).
    fn new(t: u64, lr: f64, beta1: f64, beta2: f64, eps: f64) -> Self {
        let bc1 = bias_correction(beta1, t);
        let bc2 = bias_correction(beta2, t);
        AdamCoeffs {
            lr_hat: E::from_f64(lr / bc1),
            inv_sqrt_bc2: E::ONE / E::from_f64(bc2.sqrt()),
            betas: Betas::new(beta1, beta2),
            eps: E::from_f64(eps),
        }
    }
}

impl<E: Float> Rule<E> for AdamRule {
    type Coeffs = AdamCoeffs<E>;
    fn name(&self) -> &'static str {
        self.name
    }
    fn slots(&self) -> usize {
        2 + usize::from(self.amsgrad)
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> AdamCoeffs<E> {
        AdamCoeffs::new(t, lr, self.beta1, self.beta2, self.eps)
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &AdamCoeffs<E>) {
        match s {
            [m, v] => adam_loop(p, g, m, v, None, k, c),
            [m, v, vmax] => adam_loop(p, g, m, v, Some(&mut **vmax), k, c),
            s => bad_slots(self.name, s.len()),
        }
    }
}

/// θ ← θ − (α/bc1)·m/(√v/√bc2 + ε) over zipped slices (no bounds checks),
/// with the AMSGrad and weight-decay branches hoisted out of the loop.
#[inline(always)]
fn adam_loop<E: Float>(
    p: &mut [E],
    g: &[E],
    m: &mut [E],
    v: &mut [E],
    vmax: Option<&mut [E]>,
    k: &Kernel<E>,
    c: &AdamCoeffs<E>,
) {
    let (k, c) = (*k, *c);
    let plain = k.l2 == E::ZERO && k.decay == E::ONE;
    let it = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
    match vmax {
        Some(vmax) => {
            for ((((p, &g), m), v), vmax) in it.zip(vmax.iter_mut()) {
                let (pd, g) = weight_decay(*p, g, &k);
                let (m1, v1) = c.betas.moments(*m, *v, g);
                let x = if v1 > *vmax { v1 } else { *vmax };
                (*m, *v, *vmax) = (m1, v1, x);
                *p = descend(pd, c.lr_hat * m1 / adam_denom(x, c.inv_sqrt_bc2, c.eps));
            }
        }
        None if plain => {
            for (((p, &g), m), v) in it {
                let p0 = *p;
                let (m1, v1) = c.betas.moments(*m, *v, g);
                (*m, *v) = (m1, v1);
                *p = descend(p0, c.lr_hat * m1 / adam_denom(v1, c.inv_sqrt_bc2, c.eps));
            }
        }
        None => {
            for (((p, &g), m), v) in it {
                let (pd, g) = weight_decay(*p, g, &k);
                let (m1, v1) = c.betas.moments(*m, *v, g);
                (*m, *v) = (m1, v1);
                *p = descend(pd, c.lr_hat * m1 / adam_denom(v1, c.inv_sqrt_bc2, c.eps));
            }
        }
    }
}

pub(crate) struct AdamaxRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// Adamax's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamaxCoeffs<E> {
    /// α/(1 − β₁ᵗ).
    lr_hat: E,
    betas: Betas<E>,
    eps: E,
}

impl<E: Float> Rule<E> for AdamaxRule {
    type Coeffs = AdamaxCoeffs<E>;
    fn name(&self) -> &'static str {
        "Adamax"
    }
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> AdamaxCoeffs<E> {
        AdamaxCoeffs {
            lr_hat: E::from_f64(lr / bias_correction(self.beta1, t)),
            betas: Betas::new(self.beta1, self.beta2),
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &AdamaxCoeffs<E>) {
        let (k, c) = (*k, *c);
        let [m, u] = s else {
            bad_slots("Adamax", s.len())
        };
        for (((p, &g), m), u) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(u.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, &k);
            let m1 = c.betas.first(*m, g);
            // The infinity norm: u ← max(β₂u, |g| + ε).
            let u1 = (*u * c.betas.beta2).max_nan(g.abs() + c.eps);
            (*m, *u) = (m1, u1);
            *p = descend(pd, c.lr_hat * m1 / u1);
        }
    }
}

pub(crate) struct NadamRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub momentum_decay: f64,
}

/// NAdam's per-step scalars: θ ← θ − cg·g/d − cm·m/d.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NadamCoeffs<E> {
    /// cg = α(1 − μₜ)/(1 − Πμ).
    grad_step: E,
    /// cm = αμₜ₊₁/(1 − Πμ·μₜ₊₁).
    momentum_step: E,
    /// 1 − β₂ᵗ.
    bc2: E,
    betas: Betas<E>,
    eps: E,
}

impl<E: Float> Rule<E> for NadamRule {
    type Coeffs = NadamCoeffs<E>;
    fn name(&self) -> &'static str {
        "NAdam"
    }
    fn slots(&self) -> usize {
        2
    }
    fn scalars(&self) -> Vec<f64> {
        vec![1.0] // running product of μ_t
    }
    fn coeffs(&self, t: u64, lr: f64, s: &mut [f64]) -> NadamCoeffs<E> {
        let tf = t as f64;
        let mu = self.beta1 * (1.0 - 0.5 * 0.96f64.powf(tf * self.momentum_decay));
        let mu_next = self.beta1 * (1.0 - 0.5 * 0.96f64.powf((tf + 1.0) * self.momentum_decay));
        s[0] *= mu;
        let prod = s[0];
        NadamCoeffs {
            grad_step: E::from_f64(lr * (1.0 - mu) / (1.0 - prod)),
            momentum_step: E::from_f64(lr * mu_next / (1.0 - prod * mu_next)),
            bc2: E::from_f64(bias_correction(self.beta2, t)),
            betas: Betas::new(self.beta1, self.beta2),
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &NadamCoeffs<E>) {
        let (k, c) = (*k, *c);
        let [m, v] = s else {
            bad_slots("NAdam", s.len())
        };
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, &k);
            let (m1, v1) = c.betas.moments(*m, *v, g);
            (*m, *v) = (m1, v1);
            let d = (v1 / c.bc2).sqrt() + c.eps;
            // Two descents, in PyTorch's order.
            *p = descend(descend(pd, c.grad_step * g / d), c.momentum_step * m1 / d);
        }
    }
}

pub(crate) struct RadamRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// RAdam's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RadamCoeffs<E> {
    /// 1 − β₁ᵗ.
    bc1: E,
    /// √(1 − β₂ᵗ).
    sqrt_bc2: E,
    /// The rectification r(ρₜ) (1 when not rectified).
    rect: E,
    /// Whether ρₜ > 5: the adaptive, rectified step; otherwise momentum.
    rectified: bool,
    betas: Betas<E>,
    eps: E,
}

impl<E: Float> Rule<E> for RadamRule {
    type Coeffs = RadamCoeffs<E>;
    fn name(&self) -> &'static str {
        "RAdam"
    }
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, t: u64, _lr: f64, _s: &mut [f64]) -> RadamCoeffs<E> {
        let tf = t as f64;
        let b2t = pow_steps(self.beta2, t);
        let bc2 = 1.0 - b2t;
        let rho_inf = 2.0 / (1.0 - self.beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * tf * b2t / bc2;
        // Rectified step when the variance estimate is tractable (ρ_t > 5),
        // otherwise plain momentum (Liu et al. 2020, as torch.optim.RAdam).
        let rectified = rho_t > 5.0;
        let rect = if rectified {
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt()
        } else {
            1.0
        };
        RadamCoeffs {
            bc1: E::from_f64(bias_correction(self.beta1, t)),
            sqrt_bc2: E::from_f64(bc2.sqrt()),
            rect: E::from_f64(rect),
            rectified,
            betas: Betas::new(self.beta1, self.beta2),
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &RadamCoeffs<E>) {
        let (k, c) = (*k, *c);
        let [m, v] = s else {
            bad_slots("RAdam", s.len())
        };
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, &k);
            let (m1, v1) = c.betas.moments(*m, *v, g);
            (*m, *v) = (m1, v1);
            let m_hat = m1 / c.bc1;
            let step = if c.rectified {
                let adaptive = c.sqrt_bc2 / (v1.sqrt() + c.eps);
                m_hat * k.lr * adaptive * c.rect
            } else {
                m_hat * k.lr
            };
            *p = descend(pd, step);
        }
    }
}

// ---- Adaptive rates without momentum moments.

pub(crate) struct AdagradRule {
    pub lr_decay: f64,
    pub initial_accumulator: f64,
    pub eps: f64,
}

/// Adagrad's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdagradCoeffs<E> {
    /// αₜ = α/(1 + (t − 1)·lr_decay).
    lr_t: E,
    eps: E,
}

impl<E: Float> Rule<E> for AdagradRule {
    type Coeffs = AdagradCoeffs<E>;
    fn name(&self) -> &'static str {
        "Adagrad"
    }
    fn slots(&self) -> usize {
        1
    }
    fn init_slot(&self, _k: usize) -> f64 {
        self.initial_accumulator
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> AdagradCoeffs<E> {
        AdagradCoeffs {
            lr_t: E::from_f64(lr / (1.0 + t.saturating_sub(1) as f64 * self.lr_decay)),
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &AdagradCoeffs<E>) {
        let (k, c) = (*k, *c);
        let [sum] = s else {
            bad_slots("Adagrad", s.len())
        };
        for ((p, &g), sum) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, &k);
            let s1 = *sum + g * g;
            *sum = s1;
            *p = descend(pd, c.lr_t * g / (s1.sqrt() + c.eps));
        }
    }
}

pub(crate) struct RmspropRule {
    pub alpha: f64,
    pub eps: f64,
    pub momentum: f64,
    pub centered: bool,
}

/// RMSprop's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RmspropCoeffs<E> {
    alpha: E,
    /// 1 − α, computed in the element type.
    one_minus_alpha: E,
    mu: E,
    eps: E,
}

impl<E: Float> Rule<E> for RmspropRule {
    type Coeffs = RmspropCoeffs<E>;
    fn name(&self) -> &'static str {
        "RMSprop"
    }
    /// v, then the momentum buffer (momentum > 0), then the mean gradient
    /// (centered).
    fn slots(&self) -> usize {
        1 + usize::from(self.momentum > 0.0) + usize::from(self.centered)
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> RmspropCoeffs<E> {
        let alpha = E::from_f64(self.alpha);
        RmspropCoeffs {
            alpha,
            one_minus_alpha: E::ONE - alpha,
            mu: E::from_f64(self.momentum),
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>, c: &RmspropCoeffs<E>) {
        let (k, c) = (*k, *c);
        let n = s.len();
        let Some((sq, rest)) = s.split_first_mut() else {
            bad_slots("RMSprop", n)
        };
        let (mut buf, rest) = if self.momentum > 0.0 {
            let Some((b, r)) = rest.split_first_mut() else {
                bad_slots("RMSprop", n)
            };
            (Some(&mut **b), r)
        } else {
            (None, rest)
        };
        let mut mean = match rest.first_mut() {
            Some(m) if self.centered => Some(&mut **m),
            _ => None,
        };
        for (i, (p, &g)) in p.iter_mut().zip(g).enumerate() {
            let (pd, g) = weight_decay(*p, g, &k);
            let v1 = ema_sq(sq[i], g, c.alpha, c.one_minus_alpha);
            sq[i] = v1;
            let denom = match mean.as_deref_mut() {
                Some(mean) => {
                    let gm = ema(mean[i], g, c.one_minus_alpha);
                    mean[i] = gm;
                    (v1 - gm * gm).sqrt() + c.eps
                }
                None => v1.sqrt() + c.eps,
            };
            let step = match buf.as_deref_mut() {
                Some(b) => {
                    let b1 = heavy_ball(b[i], g / denom, c.mu);
                    b[i] = b1;
                    k.lr * b1
                }
                None => k.lr * g / denom,
            };
            *p = descend(pd, step);
        }
    }
}

pub(crate) struct AdadeltaRule {
    pub rho: f64,
    pub eps: f64,
}

/// Adadelta's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdadeltaCoeffs<E> {
    rho: E,
    /// 1 − ρ, computed in the element type.
    one_minus_rho: E,
    eps: E,
}

impl<E: Float> Rule<E> for AdadeltaRule {
    type Coeffs = AdadeltaCoeffs<E>;
    fn name(&self) -> &'static str {
        "Adadelta"
    }
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> AdadeltaCoeffs<E> {
        let rho = E::from_f64(self.rho);
        AdadeltaCoeffs {
            rho,
            one_minus_rho: E::ONE - rho,
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(
        &self,
        p: &mut [E],
        g: &[E],
        s: &mut [&mut [E]],
        k: &Kernel<E>,
        c: &AdadeltaCoeffs<E>,
    ) {
        let (k, c) = (*k, *c);
        let [sq, acc] = s else {
            bad_slots("Adadelta", s.len())
        };
        for (((p, &g), v), u) in p.iter_mut().zip(g).zip(sq.iter_mut()).zip(acc.iter_mut()) {
            let (pd, g) = weight_decay(*p, g, &k);
            let v1 = ema_sq(*v, g, c.rho, c.one_minus_rho);
            let delta = (*u + c.eps).sqrt() / (v1 + c.eps).sqrt() * g;
            let u1 = ema_sq(*u, delta, c.rho, c.one_minus_rho);
            (*v, *u) = (v1, u1);
            *p = descend(pd, k.lr * delta);
        }
    }
}
