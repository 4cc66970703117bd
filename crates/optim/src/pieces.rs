//! The shared pieces every update rule is built from: element operations
//! (`#[inline(always)]`, so that each rule's loop stays one fused pass and
//! each SIMD copy of it gets its own vectorised code) and the per-step
//! scalar helpers (bias corrections, β complements).
//!
//! The element pieces are pure functions of values. A rule's loop reads
//! each element's parameter, gradient and state once, computes with the
//! pieces, and writes each once. This matters for speed: the state slices
//! reach the loop through a slice of slices, so the compiler cannot prove
//! that they do not overlap, and a value read back after a write to
//! another slice would be reloaded from memory (18% slower for Adam).
//!
//! The floating-point operation order of each piece is part of its
//! contract: the trajectory tests compare with PyTorch to 1e-10, and the
//! pieces reproduce PyTorch's order (for instance the lerp form of the
//! first moment).

use tapir_tensor::Float;

use crate::rules::Kernel;

/// xⁿ for any step count n: `powi` while n fits its `i32` exponent, `powf`
/// beyond, where a cast would wrap the exponent negative (β^(−2³¹) = inf,
/// and NaN updates).
pub(crate) fn pow_steps(x: f64, n: u64) -> f64 {
    match i32::try_from(n) {
        Ok(n) => x.powi(n),
        Err(_) => x.powf(n as f64),
    }
}

/// The bias correction 1 − βᵗ of a moment after `t` (1-based) steps.
pub(crate) fn bias_correction(beta: f64, t: u64) -> f64 {
    1.0 - pow_steps(beta, t)
}

/// Weight decay, both forms at once (one of them is the identity):
/// L2 g ← g + λθ (PyTorch's `weight_decay`) and decoupled θ ← (1 − αλ)θ
/// (AdamW). Returns (θ, g) to use.
#[inline(always)]
pub(crate) fn weight_decay<E: Float>(p: E, g: E, k: &Kernel<E>) -> (E, E) {
    (p * k.decay, g + k.l2 * p)
}

/// The exponential moving average of a first moment in PyTorch's lerp form:
/// m + (1 − β)(x − m), which equals βm + (1 − β)x.
#[inline(always)]
pub(crate) fn ema<E: Float>(m: E, x: E, one_minus_beta: E) -> E {
    m + one_minus_beta * (x - m)
}

/// The exponential moving average of a second moment: βv + (1 − β)x².
#[inline(always)]
pub(crate) fn ema_sq<E: Float>(v: E, x: E, beta: E, one_minus_beta: E) -> E {
    v * beta + one_minus_beta * x * x
}

/// A heavy-ball buffer: μb + x.
#[inline(always)]
pub(crate) fn heavy_ball<E: Float>(b: E, x: E, mu: E) -> E {
    mu * b + x
}

/// Adam's denominator √v̂ + ε with v̂ = v/(1 − β₂ᵗ), in PyTorch's order
/// √v · (1/√(1 − β₂ᵗ)) + ε.
#[inline(always)]
pub(crate) fn adam_denom<E: Float>(v: E, inv_sqrt_bc2: E, eps: E) -> E {
    v.sqrt() * inv_sqrt_bc2 + eps
}

/// θ − Δ. The one place the sign convention lives: every rule computes the
/// step Δ it descends by.
#[inline(always)]
pub(crate) fn descend<E: Float>(p: E, step: E) -> E {
    p - step
}

/// β₁ and β₂ of an Adam-family rule and their complements, in the element
/// type (the complements are computed in it, as the kernels always did).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Betas<E> {
    /// β₂, the second moment's decay (β₁ enters only through 1 − β₁).
    pub beta2: E,
    /// 1 − β₁.
    pub one_minus_beta1: E,
    /// 1 − β₂.
    pub one_minus_beta2: E,
}

impl<E: Float> Betas<E> {
    /// From the configured β₁ and β₂.
    pub(crate) fn new(beta1: f64, beta2: f64) -> Self {
        let (b1, b2) = (E::from_f64(beta1), E::from_f64(beta2));
        Betas {
            beta2: b2,
            one_minus_beta1: E::ONE - b1,
            one_minus_beta2: E::ONE - b2,
        }
    }

    /// The new first moment β₁m + (1 − β₁)g (lerp form, see [`ema`]).
    #[inline(always)]
    pub(crate) fn first(&self, m: E, g: E) -> E {
        ema(m, g, self.one_minus_beta1)
    }

    /// The new second moment β₂v + (1 − β₂)g².
    #[inline(always)]
    pub(crate) fn second(&self, v: E, g: E) -> E {
        ema_sq(v, g, self.beta2, self.one_minus_beta2)
    }

    /// Both new moments (m, v).
    #[inline(always)]
    pub(crate) fn moments(&self, m: E, v: E, g: E) -> (E, E) {
        (self.first(m, g), self.second(v, g))
    }
}
