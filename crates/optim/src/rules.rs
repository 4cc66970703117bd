//! Update rules: each optimizer is one fused elementwise pass over
//! parameter, gradient and state (weight decay folded in), run over chunks
//! of the flat tensors in parallel for big parameters.

use tapir_tensor::Float;

/// Scalars an update needs for one parameter at one step, computed once per
/// step (bias corrections, schedule) and then used for every element.
#[derive(Debug, Clone, Copy)]
pub struct Kernel<E> {
    /// The learning rate for this step and parameter.
    pub lr: E,
    /// L2 weight decay: `g ← g + l2·θ` before the update.
    pub l2: E,
    /// Decoupled weight decay as a factor: `θ ← decay·θ` before the update.
    pub decay: E,
    /// Whether this is the parameter's first step.
    pub first: bool,
    /// Rule-specific per-step scalars.
    pub c: [E; 6],
}

/// One optimizer's update rule, written as an elementwise kernel.
///
/// The kernel may be called on any chunk of the flat parameter (same
/// offsets into the gradient and the state slots), so it must not couple
/// elements.
pub trait Rule<E: Float>: Send + Sync {
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
    /// The rule-specific scalars for step `t` (1-based), updating scalar state.
    fn coeffs(&self, t: u64, lr: f64, scalars: &mut [f64]) -> [f64; 6];
    /// Updates a chunk of the parameter in place.
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>);
}

/// xⁿ for any step count n: `powi` while n fits its `i32` exponent (the
/// results as before), `powf` beyond, where a cast would wrap the exponent
/// negative (β^(−2³¹) = inf, and NaN updates).
pub(crate) fn pow_steps(x: f64, n: u64) -> f64 {
    match i32::try_from(n) {
        Ok(n) => x.powi(n),
        Err(_) => x.powf(n as f64),
    }
}

/// Momentum of SGD, as an enum rather than flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Momentum {
    /// Plain gradient descent θ ← θ − α g (the seed's first formula).
    None,
    /// Heavy ball as in `torch.optim.SGD`: b ← μ b + (1 − τ) g (b = g on the
    /// first step), θ ← θ − α b.
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

#[inline]
fn decayed<E: Float>(p: &mut E, g: E, k: &Kernel<E>) -> E {
    let g = g + k.l2 * *p;
    *p *= k.decay;
    g
}

pub(crate) struct SgdRule {
    pub momentum: Momentum,
}

impl<E: Float> Rule<E> for SgdRule {
    fn name(&self) -> &'static str {
        "SGD"
    }
    fn slots(&self) -> usize {
        usize::from(self.momentum != Momentum::None)
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> [f64; 6] {
        match self.momentum {
            Momentum::None => [0.0; 6],
            Momentum::HeavyBall {
                momentum,
                dampening,
            } => [momentum, 1.0 - dampening, 0.0, 0.0, 0.0, 0.0],
            Momentum::Nesterov { momentum } => [momentum, 1.0, 0.0, 0.0, 0.0, 0.0],
            Momentum::Ema { beta } => [beta, 1.0 - beta, 0.0, 0.0, 0.0, 0.0],
        }
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [mu, damp, ..] = k.c;
        match self.momentum {
            Momentum::None => {
                for (pi, &gi) in p.iter_mut().zip(g) {
                    let gi = decayed(pi, gi, k);
                    *pi -= k.lr * gi;
                }
            }
            Momentum::HeavyBall { .. } | Momentum::Nesterov { .. } => {
                let nesterov = matches!(self.momentum, Momentum::Nesterov { .. });
                for ((pi, &gi), bi) in p.iter_mut().zip(g).zip(s[0].iter_mut()) {
                    let gi = decayed(pi, gi, k);
                    *bi = if k.first { gi } else { mu * *bi + damp * gi };
                    let d = if nesterov { gi + mu * *bi } else { *bi };
                    *pi -= k.lr * d;
                }
            }
            Momentum::Ema { .. } => {
                for ((pi, &gi), vi) in p.iter_mut().zip(g).zip(s[0].iter_mut()) {
                    let gi = decayed(pi, gi, k);
                    *vi = mu * *vi + damp * gi;
                    *pi -= k.lr * *vi;
                }
            }
        }
    }
}

pub(crate) struct AdamRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub amsgrad: bool,
}

impl<E: Float> Rule<E> for AdamRule {
    fn name(&self) -> &'static str {
        "Adam"
    }
    fn slots(&self) -> usize {
        2 + usize::from(self.amsgrad)
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> [f64; 6] {
        let bc1 = 1.0 - pow_steps(self.beta1, t);
        let bc2 = 1.0 - pow_steps(self.beta2, t);
        // θ ← θ − (α / bc1) · m / (√v / √bc2 + ε), PyTorch's order of operations.
        [lr / bc1, bc2.sqrt(), self.beta1, self.beta2, self.eps, 0.0]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let (m, rest) = s.split_at_mut(1);
        let (v, vmax) = rest.split_at_mut(1);
        let vmax = if self.amsgrad {
            Some(&mut *vmax[0])
        } else {
            None
        };
        adam_dispatch(p, g, m[0], v[0], vmax, k);
    }
}

/// The Adam loop, compiled for the widest vector unit found at run time.
///
/// The crate is built for baseline x86-64 (SSE2); this streaming loop is
/// memory- and divide-bound, and AVX2/AVX-512 halve or quarter its
/// instruction count. `adam_loop` is `#[inline(always)]`, so each
/// `target_feature` wrapper gets its own vectorised copy.
fn adam_dispatch<E: Float>(
    p: &mut [E],
    g: &[E],
    m: &mut [E],
    v: &mut [E],
    vmax: Option<&mut [E]>,
    k: &Kernel<E>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            return unsafe { adam_avx512(p, g, m, v, vmax, k) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { adam_avx2(p, g, m, v, vmax, k) };
        }
    }
    adam_loop(p, g, m, v, vmax, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn adam_avx512<E: Float>(
    p: &mut [E],
    g: &[E],
    m: &mut [E],
    v: &mut [E],
    vmax: Option<&mut [E]>,
    k: &Kernel<E>,
) {
    adam_loop(p, g, m, v, vmax, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adam_avx2<E: Float>(
    p: &mut [E],
    g: &[E],
    m: &mut [E],
    v: &mut [E],
    vmax: Option<&mut [E]>,
    k: &Kernel<E>,
) {
    adam_loop(p, g, m, v, vmax, k)
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
) {
    let [step, bc2_sqrt, b1, b2, eps, _] = k.c;
    let (one_b1, one_b2) = (E::ONE - b1, E::ONE - b2);
    let inv_bc2_sqrt = E::ONE / bc2_sqrt;
    let (l2, decay) = (k.l2, k.decay);
    let plain = l2 == E::ZERO && decay == E::ONE;
    let it = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
    match vmax {
        Some(vmax) => {
            for ((((pi, &gi), mi), vi), xi) in it.zip(vmax.iter_mut()) {
                let gi = gi + l2 * *pi;
                *pi *= decay;
                *mi += one_b1 * (gi - *mi);
                *vi = *vi * b2 + one_b2 * gi * gi;
                if *vi > *xi {
                    *xi = *vi;
                }
                *pi -= step * *mi / (xi.sqrt() * inv_bc2_sqrt + eps);
            }
        }
        None if plain => {
            for (((pi, &gi), mi), vi) in it {
                *mi += one_b1 * (gi - *mi);
                *vi = *vi * b2 + one_b2 * gi * gi;
                *pi -= step * *mi / (vi.sqrt() * inv_bc2_sqrt + eps);
            }
        }
        None => {
            for (((pi, &gi), mi), vi) in it {
                let gi = gi + l2 * *pi;
                *pi *= decay;
                *mi += one_b1 * (gi - *mi);
                *vi = *vi * b2 + one_b2 * gi * gi;
                *pi -= step * *mi / (vi.sqrt() * inv_bc2_sqrt + eps);
            }
        }
    }
}

pub(crate) struct AdamaxRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl<E: Float> Rule<E> for AdamaxRule {
    fn name(&self) -> &'static str {
        "Adamax"
    }
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> [f64; 6] {
        let bc1 = 1.0 - pow_steps(self.beta1, t);
        [lr / bc1, self.beta1, self.beta2, self.eps, 0.0, 0.0]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [clr, b1, b2, eps, ..] = k.c;
        let (m, u) = s.split_at_mut(1);
        let (m, u) = (&mut *m[0], &mut *u[0]);
        for i in 0..p.len() {
            let gi = decayed(&mut p[i], g[i], k);
            m[i] += (E::ONE - b1) * (gi - m[i]);
            u[i] = (u[i] * b2).max_nan(gi.abs() + eps);
            p[i] -= clr * m[i] / u[i];
        }
    }
}

pub(crate) struct NadamRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub momentum_decay: f64,
}

impl<E: Float> Rule<E> for NadamRule {
    fn name(&self) -> &'static str {
        "NAdam"
    }
    fn slots(&self) -> usize {
        2
    }
    fn scalars(&self) -> Vec<f64> {
        vec![1.0] // running product of μ_t
    }
    fn coeffs(&self, t: u64, lr: f64, s: &mut [f64]) -> [f64; 6] {
        let tf = t as f64;
        let mu = self.beta1 * (1.0 - 0.5 * 0.96f64.powf(tf * self.momentum_decay));
        let mu_next = self.beta1 * (1.0 - 0.5 * 0.96f64.powf((tf + 1.0) * self.momentum_decay));
        s[0] *= mu;
        let prod = s[0];
        let bc2 = 1.0 - pow_steps(self.beta2, t);
        [
            -lr * (1.0 - mu) / (1.0 - prod),
            -lr * mu_next / (1.0 - prod * mu_next),
            bc2,
            self.beta1,
            self.beta2,
            self.eps,
        ]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [cg, cm, bc2, b1, b2, eps] = k.c;
        let (m, v) = s.split_at_mut(1);
        let (m, v) = (&mut *m[0], &mut *v[0]);
        for i in 0..p.len() {
            let gi = decayed(&mut p[i], g[i], k);
            m[i] += (E::ONE - b1) * (gi - m[i]);
            v[i] = v[i] * b2 + (E::ONE - b2) * gi * gi;
            let denom = (v[i] / bc2).sqrt() + eps;
            p[i] += cg * gi / denom;
            p[i] += cm * m[i] / denom;
        }
    }
}

pub(crate) struct RadamRule {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl<E: Float> Rule<E> for RadamRule {
    fn name(&self) -> &'static str {
        "RAdam"
    }
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> [f64; 6] {
        let tf = t as f64;
        let bc1 = 1.0 - pow_steps(self.beta1, t);
        let b2t = pow_steps(self.beta2, t);
        let bc2 = 1.0 - b2t;
        let rho_inf = 2.0 / (1.0 - self.beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * tf * b2t / bc2;
        // Rectified step when the variance estimate is tractable (ρ_t > 5),
        // otherwise plain momentum (Liu et al. 2020, as torch.optim.RAdam).
        let (rect, adaptive) = if rho_t > 5.0 {
            let r = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .sqrt();
            (r, 1.0)
        } else {
            (1.0, 0.0)
        };
        [lr, bc1, bc2.sqrt(), rect, adaptive, self.eps]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [lr, bc1, bc2_sqrt, rect, adaptive, eps] = k.c;
        let (b1, b2) = (E::from_f64(self.beta1), E::from_f64(self.beta2));
        let (m, v) = s.split_at_mut(1);
        let (m, v) = (&mut *m[0], &mut *v[0]);
        let rectified = adaptive != E::ZERO;
        for i in 0..p.len() {
            let gi = decayed(&mut p[i], g[i], k);
            m[i] += (E::ONE - b1) * (gi - m[i]);
            v[i] = v[i] * b2 + (E::ONE - b2) * gi * gi;
            let mhat = m[i] / bc1;
            if rectified {
                let a = bc2_sqrt / (v[i].sqrt() + eps);
                p[i] -= mhat * lr * a * rect;
            } else {
                p[i] -= mhat * lr;
            }
        }
    }
}

pub(crate) struct AdagradRule {
    pub lr_decay: f64,
    pub initial_accumulator: f64,
    pub eps: f64,
}

impl<E: Float> Rule<E> for AdagradRule {
    fn name(&self) -> &'static str {
        "Adagrad"
    }
    fn slots(&self) -> usize {
        1
    }
    fn init_slot(&self, _k: usize) -> f64 {
        self.initial_accumulator
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> [f64; 6] {
        [
            lr / (1.0 + t.saturating_sub(1) as f64 * self.lr_decay),
            self.eps,
            0.0,
            0.0,
            0.0,
            0.0,
        ]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [clr, eps, ..] = k.c;
        for ((pi, &gi), si) in p.iter_mut().zip(g).zip(s[0].iter_mut()) {
            let gi = decayed(pi, gi, k);
            *si += gi * gi;
            *pi -= clr * gi / (si.sqrt() + eps);
        }
    }
}

pub(crate) struct RmspropRule {
    pub alpha: f64,
    pub eps: f64,
    pub momentum: f64,
    pub centered: bool,
}

impl<E: Float> Rule<E> for RmspropRule {
    fn name(&self) -> &'static str {
        "RMSprop"
    }
    fn slots(&self) -> usize {
        1 + usize::from(self.momentum > 0.0) + usize::from(self.centered)
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> [f64; 6] {
        [self.alpha, self.eps, self.momentum, 0.0, 0.0, 0.0]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [alpha, eps, mu, ..] = k.c;
        let use_buf = self.momentum > 0.0;
        let (sq, rest) = s.split_at_mut(1);
        let sq = &mut *sq[0];
        let (buf, rest) = if use_buf {
            let (b, r) = rest.split_at_mut(1);
            (Some(&mut *b[0]), r)
        } else {
            (None, rest)
        };
        let mut gavg = if self.centered {
            Some(&mut *rest[0])
        } else {
            None
        };
        let mut buf = buf;
        for i in 0..p.len() {
            let gi = decayed(&mut p[i], g[i], k);
            sq[i] = sq[i] * alpha + (E::ONE - alpha) * gi * gi;
            let avg = match gavg.as_deref_mut() {
                Some(ga) => {
                    ga[i] += (E::ONE - alpha) * (gi - ga[i]);
                    (sq[i] - ga[i] * ga[i]).sqrt() + eps
                }
                None => sq[i].sqrt() + eps,
            };
            match buf.as_deref_mut() {
                Some(b) => {
                    b[i] = b[i] * mu + gi / avg;
                    p[i] -= k.lr * b[i];
                }
                None => p[i] -= k.lr * gi / avg,
            }
        }
    }
}

pub(crate) struct AdadeltaRule {
    pub rho: f64,
    pub eps: f64,
}

impl<E: Float> Rule<E> for AdadeltaRule {
    fn name(&self) -> &'static str {
        "Adadelta"
    }
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, _t: u64, _lr: f64, _s: &mut [f64]) -> [f64; 6] {
        [self.rho, self.eps, 0.0, 0.0, 0.0, 0.0]
    }
    fn apply(&self, p: &mut [E], g: &[E], s: &mut [&mut [E]], k: &Kernel<E>) {
        let [rho, eps, ..] = k.c;
        let (sq, acc) = s.split_at_mut(1);
        let (sq, acc) = (&mut *sq[0], &mut *acc[0]);
        for i in 0..p.len() {
            let gi = decayed(&mut p[i], g[i], k);
            sq[i] = sq[i] * rho + (E::ONE - rho) * gi * gi;
            let std = (sq[i] + eps).sqrt();
            let delta = (acc[i] + eps).sqrt() / std * gi;
            acc[i] = acc[i] * rho + (E::ONE - rho) * delta * delta;
            p[i] -= k.lr * delta;
        }
    }
}
