//! The element trait shared by every tensor: `f32` and `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, Neg, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};

/// A floating-point element type: implemented for `f32` and `f64` only.
///
/// `f32` is the default for models; `f64` exists for gradient checking and
/// for reference-accurate tests. The trait carries the scalar math the
/// kernels need, so generic code never needs another numeric crate.
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + Debug
    + Display
    + Default
    + PartialOrd
    + LinalgScalar
    + ScalarOperand
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// The type's name, `"f32"` or `"f64"`, for messages.
    const NAME: &'static str;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Not a number.
    const NAN: Self;
    /// Largest finite value.
    const MAX: Self;
    /// Smallest positive normal value.
    const MIN_POSITIVE: Self;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts from `usize` (rounding for very large values).
    fn from_usize(v: usize) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate near 0.
    fn ln_1p(self) -> Self;
    /// e^x − 1, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// −1, 0 or 1 (0 for ±0, NaN for NaN): the convention of `torch.sign`.
    fn sign(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The logistic function 1/(1 + e^−x), without overflow for any x.
    fn sigmoid(self) -> Self;
    /// x^y for a real exponent.
    fn powf(self, y: Self) -> Self;
    /// x^n for an integer exponent.
    fn powi(self, n: i32) -> Self;
    /// Larger of two values; NaN wins (the convention of `torch.maximum`).
    fn max_nan(self, other: Self) -> Self;
    /// Smaller of two values; NaN wins (the convention of `torch.minimum`).
    fn min_nan(self, other: Self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// Whether the value is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// Round toward −∞.
    fn floor(self) -> Self;
    /// The error function (within 2e-15 of reference values in f64; see
    /// the unit test).
    fn erf(self) -> Self {
        Self::from_f64(erf_f64(self.to_f64()))
    }
    /// The exact GELU, x·Φ(x) = ½x·(1 + erf(x/√2)). `f32` evaluates it in
    /// f32 lanes with Φ's tails from e^(−x²/2) (relative accuracy for
    /// negative x too, within 6 ulps); `f64` by the formula above.
    fn gelu_erf(self) -> Self;
    /// g·gelu′(x) for the exact GELU, x = `self`: g·(Φ(x) + x·φ(x)) with
    /// φ(x) = e^(−x²/2)/√(2π).
    fn gelu_erf_grad(self, g: Self) -> Self;
}

macro_rules! impl_float {
    (
        $t:ident,
        exp: $exp:path,
        tanh: $tanh:path,
        sigmoid: $sigmoid:path,
        erf: $erf:path,
        gelu: $gelu:path,
        gelu_grad: $gelu_grad:path
    ) => {
        impl Float for $t {
            const NAME: &'static str = stringify!($t);
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const EPSILON: Self = $t::EPSILON;
            const INFINITY: Self = $t::INFINITY;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const NAN: Self = $t::NAN;
            const MAX: Self = $t::MAX;
            const MIN_POSITIVE: Self = $t::MIN_POSITIVE;

            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            #[inline]
            fn exp_m1(self) -> Self {
                $t::exp_m1(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline]
            fn sign(self) -> Self {
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else {
                    // 0 stays 0 and NaN stays NaN.
                    self
                }
            }
            #[inline]
            fn sin(self) -> Self {
                $t::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                $t::cos(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn sigmoid(self) -> Self {
                $sigmoid(self)
            }
            #[inline]
            fn powf(self, y: Self) -> Self {
                $t::powf(self, y)
            }
            #[inline]
            fn powi(self, n: i32) -> Self {
                $t::powi(self, n)
            }
            #[inline]
            fn max_nan(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    $t::NAN
                } else if self >= other {
                    self
                } else {
                    other
                }
            }
            #[inline]
            fn min_nan(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    $t::NAN
                } else if self <= other {
                    self
                } else {
                    other
                }
            }
            #[inline]
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline]
            fn floor(self) -> Self {
                $t::floor(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn gelu_erf(self) -> Self {
                $gelu(self)
            }
            #[inline(always)]
            fn gelu_erf_grad(self, g: Self) -> Self {
                $gelu_grad(g, self)
            }
        }
    };
}

// f32 uses the vectorizable kernels of `fastmath` (libm's scalar calls
// dominated small-tensor ops); f64 keeps the C library's, which the
// reference tests compare to 1e-10.
impl_float!(
    f32,
    exp: crate::fastmath::exp_f32,
    tanh: crate::fastmath::tanh_f32,
    sigmoid: crate::fastmath::sigmoid_f32,
    erf: crate::fastmath::erf_f32,
    gelu: crate::fastmath::gelu_f32,
    gelu_grad: crate::fastmath::gelu_grad_f32
);
impl_float!(
    f64,
    exp: f64::exp,
    tanh: f64::tanh,
    sigmoid: sigmoid_f64,
    erf: erf_f64,
    gelu: gelu_f64,
    gelu_grad: gelu_grad_f64
);

/// ½x·(1 + erf(x/√2)) in f64.
#[inline(always)]
fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))
}

/// g·(Φ(x) + x·φ(x)) in f64, in the order of operations of autograd's
/// composite rule.
#[inline(always)]
fn gelu_grad_f64(g: f64, x: f64) -> f64 {
    let c = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = (erf_f64(x * std::f64::consts::FRAC_1_SQRT_2) + 1.0) * 0.5;
    let pdf = ((x * x) * -0.5).exp() * c;
    g * (cdf + x * pdf)
}

/// Numerically stable logistic function in f64.
#[inline]
fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// erf(x) in f64, accurate to a few ulps.
///
/// For |x| < 3 it sums the series erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)),
/// whose terms are all positive (no cancellation). For 3 ≤ |x| < 6 it evaluates the
/// continued fraction of erfc (Abramowitz & Stegun 7.1.14) by the modified Lentz method.
/// Beyond 6, erfc(x) < 2.2e-17, below f64's resolution of 1.
pub(crate) fn erf_f64(x: f64) -> f64 {
    const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    if x.is_nan() {
        return f64::NAN;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        let x2 = a * a;
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        FRAC_2_SQRT_PI * (-x2).exp() * sum
    } else if a < 6.0 {
        // erfc(a) = e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …)))))
        let tiny = 1e-300;
        let mut f = a;
        let mut c = a;
        let mut d = 0.0;
        for k in 1..200 {
            let an = k as f64 * 0.5;
            d = a + an * d;
            if d.abs() < tiny {
                d = tiny;
            }
            d = 1.0 / d;
            c = a + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    } else {
        1.0
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from Abramowitz & Stegun table 7.1 and scipy.special.erf.
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.9, 0.9999589021219005),
            (3.0, 0.9999779095030014),
            (3.5, 0.9999992569016276),
            (4.0, 0.9999999845827421),
            (-1.0, -0.8427007929497149),
            (7.0, 1.0),
        ];
        for (x, want) in cases {
            let got = erf_f64(x);
            assert!((got - want).abs() < 2e-15, "erf({x}) = {got}, want {want}");
        }
        assert!(erf_f64(f64::NAN).is_nan());
    }

    #[test]
    fn sign_and_nan_propagating_extrema() {
        assert_eq!(Float::sign(-2.0f32), -1.0);
        assert_eq!(Float::sign(0.0f64), 0.0);
        assert!(Float::sign(f64::NAN).is_nan());
        assert!(1.0f32.max_nan(f32::NAN).is_nan());
        assert!(f64::NAN.min_nan(1.0).is_nan());
        assert_eq!(2.0f64.max_nan(3.0), 3.0);
    }
}
