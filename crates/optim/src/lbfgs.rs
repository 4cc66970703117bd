//! L-BFGS with an optional strong-Wolfe line search, driven by a closure
//! that recomputes the loss and the gradients, as `torch.optim.LBFGS`.
//!
//! It is not an [`Optimizer`](crate::Optimizer): one step runs up to
//! `max_iter` iterations over all parameters flattened into one vector,
//! each needing fresh gradients, so it calls the closure itself.

use tapir_autograd::{Gradients, Parameter};
use tapir_tensor::{Float, Tensor};

use crate::error::{check, check_lr, Error, Result};

/// The line search of [`Lbfgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineSearch {
    /// A fixed step α along the quasi-Newton direction (PyTorch's
    /// `line_search_fn=None`), the first iteration scaled by
    /// min(1, 1/‖g‖₁).
    #[default]
    None,
    /// The strong Wolfe conditions (sufficient decrease c₁ = 1e-4,
    /// curvature c₂ = 0.9), bracketing then zooming by cubic
    /// interpolation (Nocedal & Wright, algorithms 3.5 and 3.6; PyTorch's
    /// `line_search_fn="strong_wolfe"`).
    StrongWolfe,
}

/// L-BFGS (Liu & Nocedal 1989), as `torch.optim.LBFGS`: the two-loop
/// recursion over the last `history_size` curvature pairs (s, y), a pair
/// kept only when yᵀs > 1e-10, the initial Hessian yᵀs/yᵀy. For full-batch,
/// deterministic problems (logistic regression, small networks, style
/// transfer); it needs a closure because every iteration needs a new
/// gradient.
///
/// ```
/// use tapir_autograd::{Parameter, Tape};
/// use tapir_optim::{Lbfgs, LineSearch};
/// use tapir_tensor::Tensor;
///
/// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![-1.5, 2.0], [2])?);
/// let mut opt = Lbfgs::new(1.0).line_search(LineSearch::StrongWolfe).build::<f64>()?;
/// for _ in 0..5 {
///     opt.step(&[&w], || {
///         let tape = Tape::new();
///         let v = tape.watch(&w);
///         let (x, y) = (v.narrow(0, 0, 1)?, v.narrow(0, 1, 1)?);
///         let f = (x.rsub_scalar(1.0).square() + (y - &x.square()).square() * 100.0).sum();
///         Ok((f.value().item()?, tape.gradient(&f, [&w])?))
///     })?;
/// }
/// let v = w.value().to_vec();
/// assert!((v[0] - 1.0).abs() < 1e-4 && (v[1] - 1.0).abs() < 1e-4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lbfgs {
    /// α, the step length (with a line search: its first trial). Default `1.0`.
    pub lr: f64,
    /// Iterations per `step`. Default `20`.
    pub max_iter: usize,
    /// Closure evaluations per `step`. Default: `None`, which is
    /// max_iter·5/4 rounded down (PyTorch's), so that `max_iter = 1` leaves
    /// a line search no evaluation beyond its first trial.
    pub max_eval: Option<usize>,
    /// Stop when max |g| ≤ this. Default `1e-7`.
    pub tolerance_grad: f64,
    /// Stop when the step or the loss change is below this. Default `1e-9`.
    pub tolerance_change: f64,
    /// Curvature pairs kept. Default `100`.
    pub history_size: usize,
    /// The line search. Default [`LineSearch::None`].
    pub line_search: LineSearch,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search: LineSearch::None,
        }
    }
}

impl Lbfgs {
    /// The configuration with step length `lr`.
    pub fn new(lr: f64) -> Self {
        Lbfgs {
            lr,
            ..Default::default()
        }
    }
    /// Sets `max_iter`.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    /// Sets `max_eval`.
    pub fn max_eval(mut self, n: usize) -> Self {
        self.max_eval = Some(n);
        self
    }
    /// Sets `tolerance_grad`.
    pub fn tolerance_grad(mut self, v: f64) -> Self {
        self.tolerance_grad = v;
        self
    }
    /// Sets `tolerance_change`.
    pub fn tolerance_change(mut self, v: f64) -> Self {
        self.tolerance_change = v;
        self
    }
    /// Sets `history_size`.
    pub fn history_size(mut self, n: usize) -> Self {
        self.history_size = n;
        self
    }
    /// Sets the line search.
    pub fn line_search(mut self, l: LineSearch) -> Self {
        self.line_search = l;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<LbfgsOptimizer<E>> {
        check_lr("LBFGS", self.lr)?;
        check(
            "LBFGS",
            "max_iter",
            self.max_iter as f64,
            self.max_iter > 0,
            "must be > 0",
        )?;
        check(
            "LBFGS",
            "history_size",
            self.history_size as f64,
            self.history_size > 0,
            "must be > 0",
        )?;
        for (name, v) in [
            ("tolerance_grad", self.tolerance_grad),
            ("tolerance_change", self.tolerance_change),
        ] {
            check(
                "LBFGS",
                name,
                v,
                v >= 0.0 && v.is_finite(),
                "must be finite and >= 0",
            )?;
        }
        Ok(LbfgsOptimizer {
            cfg: self,
            max_eval: self.max_eval.unwrap_or(self.max_iter * 5 / 4),
            state: LbfgsState::default(),
        })
    }
}

/// Everything an [`LbfgsOptimizer`] carries between steps, for resuming
/// bit-identically ([`LbfgsOptimizer::state`], [`LbfgsOptimizer::load_state`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LbfgsState<E: Float = f32> {
    /// Iterations run so far (PyTorch's `n_iter`).
    pub n_iter: u64,
    /// Closure evaluations so far.
    pub func_evals: u64,
    /// The last direction d and step length t.
    pub d: Vec<E>,
    /// The last step length.
    pub t: f64,
    /// The curvature pairs, oldest first: y = Δg and s = Δθ.
    pub old_dirs: Vec<Vec<E>>,
    /// s of each pair.
    pub old_stps: Vec<Vec<E>>,
    /// 1/(yᵀs) of each pair.
    pub ro: Vec<f64>,
    /// The initial inverse Hessian scale yᵀs/yᵀy.
    pub h_diag: f64,
    /// The gradient at the start of the last iteration.
    pub prev_flat_grad: Vec<E>,
    /// The loss there.
    pub prev_loss: f64,
}

/// The L-BFGS optimizer built by [`Lbfgs::build`].
#[derive(Debug, Clone)]
pub struct LbfgsOptimizer<E: Float = f32> {
    cfg: Lbfgs,
    max_eval: usize,
    state: LbfgsState<E>,
}

fn dot<E: Float>(a: &[E], b: &[E]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.to_f64() * y.to_f64()).sum()
}

fn max_abs<E: Float>(a: &[E]) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.to_f64().abs()))
}

/// x ← x + c·y.
fn axpy<E: Float>(x: &mut [E], c: f64, y: &[E]) {
    let c = E::from_f64(c);
    for (x, &y) in x.iter_mut().zip(y) {
        *x += c * y;
    }
}

/// The minimiser of the cubic through (x₁, f₁, g₁) and (x₂, f₂, g₂),
/// clamped to `bounds` (default: between the points); their midpoint when
/// the cubic has no minimum.
fn cubic_min(p1: (f64, f64, f64), p2: (f64, f64, f64), bounds: Option<(f64, f64)>) -> f64 {
    let ((x1, f1, g1), (x2, f2, g2)) = (p1, p2);
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let disc = d1 * d1 - g1 * g2;
    if disc >= 0.0 {
        let d2 = disc.sqrt();
        let m = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        m.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// One trial of the line search: t, f, g and gᵀd.
struct Trial<E> {
    t: f64,
    f: f64,
    g: Vec<E>,
    gtd: f64,
}

impl<E: Float> LbfgsOptimizer<E> {
    /// The state to save.
    pub fn state(&self) -> LbfgsState<E> {
        self.state.clone()
    }

    /// Restores a saved state; continuing gives bit-identical parameters.
    ///
    /// # Errors
    /// [`Error::State`] when its vectors do not all have one length, or
    /// hold more pairs than `history_size`.
    pub fn load_state(&mut self, state: &LbfgsState<E>) -> Result<()> {
        let n = state.d.len();
        let lens_ok = state.prev_flat_grad.len() == n
            && state
                .old_dirs
                .iter()
                .chain(&state.old_stps)
                .all(|v| v.len() == n)
            && state.old_dirs.len() == state.old_stps.len()
            && state.old_dirs.len() == state.ro.len();
        if !lens_ok {
            return Err(Error::State(
                "LBFGS: the saved direction, gradient and curvature pairs differ in length or count"
                    .into(),
            ));
        }
        if state.ro.len() > self.cfg.history_size {
            return Err(Error::State(format!(
                "LBFGS: the state holds {} curvature pairs, history_size is {}",
                state.ro.len(),
                self.cfg.history_size
            )));
        }
        self.state = state.clone();
        Ok(())
    }

    /// One optimizer step (up to `max_iter` iterations). `closure`
    /// computes the loss and the gradients at the parameters' current
    /// values; a parameter without a gradient counts as zero. Returns the
    /// loss of the first evaluation, from before the step (as PyTorch).
    ///
    /// # Errors
    /// The closure's error; [`Error::NoGradients`] for no parameters;
    /// [`Error::GradientShape`] for a gradient of another shape;
    /// [`Error::State`] when the parameters' total size differs from the
    /// one the state was made for.
    pub fn step<F>(&mut self, params: &[&Parameter<E>], mut closure: F) -> Result<f64>
    where
        F: FnMut() -> std::result::Result<
            (f64, Gradients<E>),
            Box<dyn std::error::Error + Send + Sync>,
        >,
    {
        if params.is_empty() {
            return Err(Error::NoGradients);
        }
        let numel: usize = params
            .iter()
            .map(|p| p.shape().iter().product::<usize>())
            .sum();
        if self.state.n_iter > 0 && self.state.d.len() != numel {
            return Err(Error::State(format!(
                "LBFGS: the parameters hold {numel} values, the state was made for {}",
                self.state.d.len()
            )));
        }
        let mut eval = |params: &[&Parameter<E>]| -> Result<(f64, Vec<E>)> {
            let (loss, grads) =
                closure().map_err(|e| Error::State(format!("LBFGS closure: {e}")))?;
            Ok((loss, flatten(params, &grads)?))
        };
        let cfg = self.cfg;
        let st = &mut self.state;
        let (orig_loss, mut flat_grad) = eval(params)?;
        let mut loss = orig_loss;
        let mut current_evals = 1usize;
        st.func_evals += 1;
        if max_abs(&flat_grad) <= cfg.tolerance_grad {
            return Ok(orig_loss);
        }
        let mut n_iter = 0;
        while n_iter < cfg.max_iter {
            n_iter += 1;
            st.n_iter += 1;
            if st.n_iter == 1 {
                st.d = flat_grad.iter().map(|&g| E::ZERO - g).collect();
                st.old_dirs.clear();
                st.old_stps.clear();
                st.ro.clear();
                st.h_diag = 1.0;
            } else {
                let y: Vec<E> = flat_grad
                    .iter()
                    .zip(&st.prev_flat_grad)
                    .map(|(&a, &b)| a - b)
                    .collect();
                let tt = E::from_f64(st.t);
                let s: Vec<E> = st.d.iter().map(|&d| d * tt).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if st.old_dirs.len() == cfg.history_size {
                        st.old_dirs.remove(0);
                        st.old_stps.remove(0);
                        st.ro.remove(0);
                    }
                    st.h_diag = ys / dot(&y, &y);
                    st.old_dirs.push(y);
                    st.old_stps.push(s);
                    st.ro.push(1.0 / ys);
                }
                // The two-loop recursion.
                let k = st.old_dirs.len();
                let mut al = vec![0.0; k];
                let mut q: Vec<E> = flat_grad.iter().map(|&g| E::ZERO - g).collect();
                for i in (0..k).rev() {
                    al[i] = dot(&st.old_stps[i], &q) * st.ro[i];
                    axpy(&mut q, -al[i], &st.old_dirs[i]);
                }
                let h = E::from_f64(st.h_diag);
                let mut r: Vec<E> = q.iter().map(|&v| v * h).collect();
                for (((y, s), &ro), &a) in st.old_dirs.iter().zip(&st.old_stps).zip(&st.ro).zip(&al)
                {
                    let be = dot(y, &r) * ro;
                    axpy(&mut r, a - be, s);
                }
                st.d = r;
            }
            st.prev_flat_grad.clone_from(&flat_grad);
            st.prev_loss = loss;
            st.t = if st.n_iter == 1 {
                let l1: f64 = flat_grad.iter().map(|g| g.to_f64().abs()).sum();
                (1.0f64).min(1.0 / l1) * cfg.lr
            } else {
                cfg.lr
            };
            let gtd = dot(&flat_grad, &st.d);
            if gtd > -cfg.tolerance_change {
                break;
            }
            let mut ls_evals = 0;
            let opt_cond;
            match cfg.line_search {
                LineSearch::StrongWolfe => {
                    let x0: Vec<Tensor<E>> = params.iter().map(|p| p.value()).collect();
                    let d = st.d.clone();
                    let mut obj = |t: f64| -> Result<(f64, Vec<E>)> {
                        add_step(params, t, &d);
                        let out = eval(params);
                        for (p, x) in params.iter().zip(&x0) {
                            p.set(x.clone());
                        }
                        out
                    };
                    let max_ls = self.max_eval.saturating_sub(current_evals);
                    let first = Trial {
                        t: 0.0,
                        f: loss,
                        g: flat_grad.clone(),
                        gtd,
                    };
                    let (f, g, t, evals) =
                        strong_wolfe(&mut obj, st.t, &d, first, cfg.tolerance_change, max_ls)?;
                    loss = f;
                    flat_grad = g;
                    st.t = t;
                    ls_evals = evals;
                    add_step(params, st.t, &st.d);
                    opt_cond = max_abs(&flat_grad) <= cfg.tolerance_grad;
                }
                LineSearch::None => {
                    add_step(params, st.t, &st.d);
                    if n_iter != cfg.max_iter {
                        let (l, g) = eval(params)?;
                        loss = l;
                        flat_grad = g;
                        ls_evals = 1;
                        opt_cond = max_abs(&flat_grad) <= cfg.tolerance_grad;
                    } else {
                        opt_cond = false;
                    }
                }
            }
            current_evals += ls_evals;
            st.func_evals += ls_evals as u64;
            if n_iter == cfg.max_iter || current_evals >= self.max_eval || opt_cond {
                break;
            }
            if max_abs(&st.d) * st.t.abs() <= cfg.tolerance_change {
                break;
            }
            if (loss - st.prev_loss).abs() < cfg.tolerance_change {
                break;
            }
        }
        Ok(orig_loss)
    }
}

/// The gradients of `params`, in order, as one flat vector.
fn flatten<E: Float>(params: &[&Parameter<E>], grads: &Gradients<E>) -> Result<Vec<E>> {
    let mut out = Vec::new();
    for p in params {
        let shape = p.shape();
        match grads.get(p) {
            Some(g) if g.shape() != shape.as_slice() => {
                return Err(Error::GradientShape {
                    name: p.name().to_string(),
                    grad: g.shape().to_vec(),
                    param: shape,
                })
            }
            Some(g) => out.extend(g.to_vec()),
            None => out.extend(std::iter::repeat_n(E::ZERO, shape.iter().product())),
        }
    }
    Ok(out)
}

/// θ ← θ + t·d over the flattened parameters (`d` computed in the element
/// type, as PyTorch's `add_(d, alpha=t)`).
fn add_step<E: Float>(params: &[&Parameter<E>], t: f64, d: &[E]) {
    let t = E::from_f64(t);
    let mut off = 0;
    for p in params {
        p.update(|v| {
            let n = v.len();
            let mut vals = v.to_vec();
            for (x, &dd) in vals.iter_mut().zip(&d[off..off + n]) {
                *x += t * dd;
            }
            *v = Tensor::from_vec(vals, v.shape()).expect("same length");
            off += n;
        });
    }
}

/// The strong-Wolfe line search from t along d, starting at `x` (t = 0).
/// Returns (f, g, t, evaluations).
fn strong_wolfe<E: Float>(
    obj: &mut dyn FnMut(f64) -> Result<(f64, Vec<E>)>,
    t0: f64,
    d: &[E],
    x: Trial<E>,
    tolerance_change: f64,
    max_ls: usize,
) -> Result<(f64, Vec<E>, f64, usize)> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let d_norm = max_abs(d);
    let (f0, gtd0) = (x.f, x.gtd);
    let mut t = t0;
    let (f_new, g_new) = obj(t)?;
    let mut evals = 1;
    let mut new = Trial {
        t,
        f: f_new,
        gtd: dot(&g_new, d),
        g: g_new,
    };
    let mut prev = Trial {
        t: 0.0,
        f: x.f,
        g: x.g.clone(),
        gtd: x.gtd,
    };
    let mut ls_iter = 0;
    // How the bracketing phase ended: a bracket [prev, new], the strong
    // Wolfe conditions met at `new`, or out of evaluations.
    enum Exit {
        Pair,
        Done,
        Exhausted,
    }
    let mut exit = Exit::Exhausted;
    while ls_iter < max_ls {
        if new.f > f0 + C1 * t * gtd0 || (ls_iter > 1 && new.f >= prev.f) {
            exit = Exit::Pair;
            break;
        }
        if new.gtd.abs() <= -C2 * gtd0 {
            exit = Exit::Done;
            break;
        }
        if new.gtd >= 0.0 {
            exit = Exit::Pair;
            break;
        }
        let min_step = t + 0.01 * (t - prev.t);
        let max_step = t * 10.0;
        let next = cubic_min(
            (prev.t, prev.f, prev.gtd),
            (t, new.f, new.gtd),
            Some((min_step, max_step)),
        );
        prev = new;
        t = next;
        let (f, g) = obj(t)?;
        evals += 1;
        new = Trial {
            t,
            f,
            gtd: dot(&g, d),
            g,
        };
        ls_iter += 1;
    }
    let mut done = matches!(exit, Exit::Done);
    let mut bracket = match exit {
        Exit::Pair => vec![prev, new],
        Exit::Done => vec![new],
        // Out of evaluations: the start and the last trial (the zoom below
        // cannot run).
        Exit::Exhausted => vec![x, new],
    };
    let low_of = |b: &[Trial<E>]| usize::from(b[0].f > b[b.len() - 1].f);
    let mut low = low_of(&bracket);
    let mut high = 1 - low;
    let mut insuf_progress = false;
    while !done && ls_iter < max_ls {
        let (b0, b1) = (bracket[0].t, bracket[1].t);
        if (b1 - b0).abs() * d_norm < tolerance_change {
            break;
        }
        let mut t = cubic_min(
            (b0, bracket[0].f, bracket[0].gtd),
            (b1, bracket[1].f, bracket[1].gtd),
            None,
        );
        let (bmax, bmin) = (b0.max(b1), b0.min(b1));
        let eps = 0.1 * (bmax - bmin);
        if (bmax - t).min(t - bmin) < eps {
            if insuf_progress || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() {
                    bmax - eps
                } else {
                    bmin + eps
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        let (f, g) = obj(t)?;
        evals += 1;
        ls_iter += 1;
        let trial = Trial {
            t,
            f,
            gtd: dot(&g, d),
            g,
        };
        if trial.f > f0 + C1 * t * gtd0 || trial.f >= bracket[low].f {
            bracket[high] = trial;
            low = low_of(&bracket);
            high = 1 - low;
        } else {
            if trial.gtd.abs() <= -C2 * gtd0 {
                done = true;
            } else if trial.gtd * (bracket[high].t - bracket[low].t) >= 0.0 {
                let l = &bracket[low];
                bracket[high] = Trial {
                    t: l.t,
                    f: l.f,
                    g: l.g.clone(),
                    gtd: l.gtd,
                };
            }
            bracket[low] = trial;
        }
    }
    let best = bracket.swap_remove(if bracket.len() == 1 { 0 } else { low });
    Ok((best.f, best.g, best.t, evals))
}
