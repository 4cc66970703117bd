//! Branch-free `f32` exp, tanh, sigmoid and erf that the compiler can
//! vectorize.
//!
//! The C library's `expf`/`tanhf` are scalar calls (about 20 ns each for
//! `tanhf` here), which made `tanh` of a small tensor cost more than all
//! the bookkeeping around it. These evaluate in `f64` with a polynomial and
//! round once to `f32`: the `f64` intermediate is within about 2e-11 of the
//! true value, far below half an `f32` ulp (6e-8 relative), so the result is
//! the correctly rounded one except in rare near-halfway cases, where it is
//! off by one ulp. `tests::*_matches_f64` checks this over a dense sweep
//! (at most 1 ulp anywhere, correctly rounded in over 99.9% of cases).
//!
//! Every step is straight-line arithmetic (the special cases are selects),
//! so a loop over a slice compiles to SIMD code even for baseline x86-64.

/// 1.5 · 2⁵²: adding it to a double of magnitude below 2⁵¹ rounds the value
/// to an integer and leaves that integer in the low bits of the result.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// e^y for |y| ≤ 110 in `f64`, relative error below 1e-11.
///
/// y = n·ln 2 + r with n an integer and |r| ≤ ln 2 / 2; e^r comes from its
/// Taylor series to r⁹ (truncation error below r¹⁰/10! < 7e-12 there) and
/// 2ⁿ is built directly in the exponent bits.
#[inline(always)]
fn exp_core(y: f64) -> f64 {
    let k = y * std::f64::consts::LOG2_E + ROUND_MAGIC;
    let n = k - ROUND_MAGIC;
    // ln 2 split in two so that n·LN2_HI is exact (fdlibm's constants).
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    // Σ r^j / j! for j = 0..=9, in Estrin's form: short dependency chains
    // instead of one long Horner chain.
    let r2 = r * r;
    let r4 = r2 * r2;
    let p01 = 1.0 + r;
    let p23 = 0.5 + r * (1.0 / 6.0);
    let p45 = 1.0 / 24.0 + r * (1.0 / 120.0);
    let p67 = 1.0 / 720.0 + r * (1.0 / 5_040.0);
    let p89 = 1.0 / 40_320.0 + r * (1.0 / 362_880.0);
    let p = (p01 + r2 * p23) + r4 * ((p45 + r2 * p67) + r4 * p89);
    // The low bits of k hold n; (n + 1023) << 52 is 2ⁿ as a double (n stays
    // within [-160, 160], so the biased exponent is in range).
    let scale = f64::from_bits(k.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// e^x for `f32`.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Below −110 the result is 0 in f32 and above 90 it is +inf, so
    // clamping there changes nothing but keeps exp_core in range.
    let y = (x as f64).clamp(-110.0, 90.0);
    let r = exp_core(y) as f32;
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// tanh x for `f32`.
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let xd = x as f64;
    // tanh 20 = 1 − 8e−18: 1 in f32 (and in f64).
    let a = xd.abs().min(20.0);
    // (e^2a − 1)/(e^2a + 1). Near 0 the subtraction loses about
    // 1e-16 / (2a) relative, so below 1e-4 the series x − x³/3 (error
    // below 2a⁵/15 relative) is used instead.
    let e = exp_core(2.0 * a);
    let big = (e - 1.0) / (e + 1.0);
    let small = a - a * a * a * (1.0 / 3.0);
    let t = if a < 1e-4 { small } else { big };
    let r = (t as f32).copysign(x);
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// 1/(1 + e^−x) for `f32`.
#[inline(always)]
pub(crate) fn sigmoid_f32(x: f32) -> f32 {
    // No cancellation anywhere: e^−x is positive. Beyond ±110 the result
    // is 0 or 1 in f32.
    let y = (-(x as f64)).clamp(-110.0, 110.0);
    let r = (1.0 / (1.0 + exp_core(y))) as f32;
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// erf x for `f32`.
///
/// Two polynomials, both evaluated and one selected (so a loop still
/// vectorizes): for |x| < 1, erf x = x·P(x²) with P of degree 7; for
/// 1 ≤ |x| ≤ 4, erf x = 1 − e^(−x²)·Q(1/|x|) with Q of degree 11, Q
/// approximating erfc(x)·e^(x²), which is smooth there. Beyond 4, erf x
/// rounds to ±1 in f32 (1 − erf 4 = 1.5e-8 is below half an ulp of 1), so
/// |x| is clamped to 4. The coefficients are weighted least-squares fits
/// to the relative error on Chebyshev nodes (crates/tensor/tools/fit_erf.py,
/// numpy against Python's `math.erf`/`math.erfc`); their relative errors
/// in f64 are 3.7e-11 and 2.3e-10, so the result is within an ulp of the
/// correctly rounded one (`tests::erf_matches_f64`).
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    const P: [f64; 8] = [
        1.128_379_167_080_104_4,
        -0.376_126_385_528_271_27,
        0.112_837_834_438_815_34,
        -0.026_865_475_514_885_74,
        0.005_221_138_696_179_387,
        -0.000_848_543_891_832_918_4,
        0.000_112_747_379_510_000_08,
        -9.689_741_125_193_554e-6,
    ];
    const Q: [f64; 12] = [
        -1.345_557_890_429_930_5e-5,
        0.564_612_769_345_147_6,
        -0.005_965_244_399_464_822,
        -0.232_363_312_093_062_66,
        -0.271_331_745_472_665,
        1.427_520_624_970_327_2,
        -2.486_494_873_636_514_2,
        2.648_454_652_437_232_3,
        -1.877_098_368_165_826_4,
        0.870_897_970_702_729_5,
        -0.240_825_306_719_586_24,
        0.030_189_864_866_540_735,
    ];
    let a = (x as f64).abs().min(4.0);
    let a2 = a * a;
    let mut p = P[7];
    for &c in P[..7].iter().rev() {
        p = p * a2 + c;
    }
    let small = a * p;
    // 1/a is only used for a ≥ 1; max(a, 1) keeps the unused lane finite.
    let u = 1.0 / a.max(1.0);
    let mut q = Q[11];
    for &c in Q[..11].iter().rev() {
        q = q * u + c;
    }
    let large = 1.0 - exp_core(-a2) * q;
    let r = if a < 1.0 { small } else { large };
    let r = (r as f32).copysign(x);
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// Below this |x| the GELU kernels use the central polynomial for Φ(x).
const GELU_T: f32 = 1.25;
/// Beyond this |x|, Φ(−|x|) < 4e-36: Φ is taken as exactly 0 or 1 and the
/// density as 0 (the true values there are below f32's normal range).
const GELU_CUT: f32 = 12.5;
/// The tail polynomial's variable is 1/|x| − this (the middle of its range).
const GELU_CENTER: f32 = 0.44;
/// (Φ(x) − ½)/x as a polynomial in x² for |x| < GELU_T; float32 relative
/// error 7.7e-8 (crates/tensor/tools/fit_gelu.py).
const GELU_P: [f32; 7] = [
    0.398_942_3,
    -0.066_490_6,
    0.009_974_685_5,
    -0.001_189_757_6,
    0.000_117_885_52,
    -1.052_855_9e-5,
    7.667_597e-7,
];
/// Φ(−a)·e^(a²/2)·a as a polynomial in 1/a − GELU_CENTER for
/// GELU_T ≤ a ≤ GELU_CUT; float32 relative error 8.0e-8 (same script).
const GELU_Q: [f32; 12] = [
    0.346_479_48,
    -0.171_576_95,
    -0.002_680_421_8,
    0.145_936_85,
    -0.222_283_8,
    0.198_318_03,
    -0.065_591_53,
    -0.182_781_98,
    0.670_983_6,
    -1.054_820_4,
    -0.043_740_604,
    1.291_150_7,
];

/// e^(−a²/2) for 0 ≤ a ≤ GELU_CUT, in f32 arithmetic, relative error a
/// few 1e-8.
///
/// a² is split exactly: a = ah + al with ah holding a's leading 12
/// significand bits, so ah²/2 and ah·al are exact and only the small
/// ah·al + al²/2 rounds. The exponent reduction n = round(ah²/2 · log₂e),
/// r = ah²/2 − n·ln 2 (ln 2 in two parts, the first exact times n) then
/// loses nothing, and e^(−r) comes from its Taylor series to r⁷
/// (|r| ≤ 0.35: truncation below 6e-9). No FMA is needed, so every
/// build computes the same bits.
#[inline(always)]
fn exp_neg_half_sq(a: f32) -> f32 {
    const ROUND_MAGIC: f32 = 12_582_912.0; // 1.5·2²³
    const C1: f32 = 355.0 / 512.0; // n·C1 is exact for n < 2¹⁵
    const C2: f32 = -2.121_944_4e-4; // ln 2 − C1
    let ah = f32::from_bits(a.to_bits() & 0xFFFF_F000);
    let al = a - ah;
    let hh = 0.5 * ah * ah;
    let hl = ah * al + 0.5 * al * al;
    let k = hh * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = k - ROUND_MAGIC;
    let r = ((hh - n * C1) - n * C2) + hl;
    // e^(−r), Estrin's form.
    let r2 = r * r;
    let r4 = r2 * r2;
    let p01 = 1.0 - r;
    let p23 = 0.5 - r * (1.0 / 6.0);
    let p45 = 1.0 / 24.0 - r * (1.0 / 120.0);
    let p67 = 1.0 / 720.0 - r * (1.0 / 5_040.0);
    let p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
    // k's low bits hold n (0 ≤ n ≤ 113 here); 2⁻ⁿ built in the exponent.
    let n_bits = k.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let scale = f32::from_bits((127u32 << 23).wrapping_sub(n_bits << 23));
    p * scale
}

/// Φ(x) (the standard normal CDF) and e^(−x²/2), both 0 beyond GELU_CUT
/// (Φ then 0 or 1), for the GELU kernels below.
#[inline(always)]
fn gelu_parts(x: f32) -> (f32, f32) {
    let a = x.abs();
    let ac = a.min(GELU_CUT);
    let e = exp_neg_half_sq(ac);
    // Central: ½ + x·P(x²), no cancellation worse than Φ(−1.25) = 0.106.
    let s = x * x;
    let mut p = GELU_P[6];
    for &c in GELU_P[..6].iter().rev() {
        p = p * s + c;
    }
    let central = 0.5 + x * p;
    // Tail: Φ(−a) = e^(−a²/2)·v·Q(v − center), v = 1/a, relative
    // accuracy all the way down (no 1 − erf cancellation).
    let v = 1.0 / ac.max(GELU_T);
    let t = v - GELU_CENTER;
    let mut q = GELU_Q[11];
    for &c in GELU_Q[..11].iter().rev() {
        q = q * t + c;
    }
    let low = e * v * q;
    let tail = if x < 0.0 { low } else { 1.0 - low };
    let cdf = if a < GELU_T { central } else { tail };
    let beyond = a > GELU_CUT;
    let cdf = if beyond {
        if x < 0.0 {
            0.0
        } else {
            1.0
        }
    } else {
        cdf
    };
    (cdf, if beyond { 0.0 } else { e })
}

/// The exact GELU x·Φ(x) for `f32`, evaluated in f32 lanes (16 per
/// AVX-512 instruction): Φ from a polynomial near 0 and from
/// e^(−x²/2)·(1/|x|)·Q(1/|x|) in the tails, so that x·Φ(x) keeps its
/// relative accuracy for negative x instead of cancelling in 1 + erf.
/// Within a few ulps of the correctly rounded value where
/// |x·Φ(x)| > 1e-36 (`tests::gelu_matches_f64`); NaN stays NaN, −∞ gives NaN
/// (−∞·0, as PyTorch).
#[inline(always)]
pub(crate) fn gelu_f32(x: f32) -> f32 {
    x * gelu_parts(x).0
}

/// g·gelu′(x) = g·(Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π), for `f32`,
/// with one exponential shared by Φ's tail and the density. gelu′ is 1 at
/// +∞ and 0 at −∞ (the limits; x·φ(x) is taken as 0 beyond |x| = 12.5).
#[inline(always)]
pub(crate) fn gelu_grad_f32(g: f32, x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let (cdf, e) = gelu_parts(x);
    let xpdf = if e == 0.0 {
        0.0
    } else {
        x * (e * INV_SQRT_2PI)
    };
    g * (cdf + xpdf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in ulps between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        if a == b {
            return 0;
        }
        assert_eq!(a.is_sign_negative(), b.is_sign_negative(), "{a} vs {b}");
        a.to_bits().abs_diff(b.to_bits())
    }

    /// Every f32 in [lo, hi] at a stride of `step` bits, both signs.
    fn sweep(lo: f32, hi: f32, step: u32) -> impl Iterator<Item = f32> {
        (lo.to_bits()..=hi.to_bits())
            .step_by(step as usize)
            .map(f32::from_bits)
            .flat_map(|v| [v, -v])
    }

    fn check(name: &str, f: fn(f32) -> f32, want: fn(f64) -> f64, lo: f32, hi: f32) {
        let mut worst = (0, 0.0f32);
        let mut off = 0usize;
        let mut n = 0usize;
        for x in sweep(lo, hi, 331) {
            let w = want(x as f64) as f32;
            let u = ulps(f(x), w);
            n += 1;
            off += usize::from(u > 0);
            if u > worst.0 {
                worst = (u, x);
            }
        }
        assert!(
            worst.0 <= 1,
            "{name}: {} ulps at x = {:e}",
            worst.0,
            worst.1
        );
        // Correctly rounded almost everywhere.
        assert!(off * 1000 < n, "{name}: {off} of {n} off by one ulp");
    }

    #[test]
    fn exp_matches_f64() {
        // From tiny arguments up to the overflow edge; the negative half of
        // the sweep runs down into the subnormal results.
        check("exp", exp_f32, f64::exp, 1e-30, 88.7);
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(-110.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // A subnormal result, rounded correctly.
        assert_eq!(exp_f32(-95.0), (-95.0f64).exp() as f32);
    }

    #[test]
    fn erf_matches_f64() {
        check("erf", erf_f32, crate::float::erf_f64, 1e-30, 4.5);
        assert_eq!(erf_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(erf_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf_f32(1.0), crate::float::erf_f64(1.0) as f32);
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf_f32(10.0), 1.0);
        assert!(erf_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_matches_f64() {
        check("tanh", tanh_f32, f64::tanh, 1e-30, 12.0);
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e-40), 1e-40);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_matches_f64() {
        let want = |x: f64| 1.0 / (1.0 + (-x).exp());
        check("sigmoid", sigmoid_f32, want, 1e-30, 100.0);
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid_f32(f32::NAN).is_nan());
    }

    extern "C" {
        // glibc's erfc: relative accuracy in the far tail, where 1 − erf
        // would cancel.
        fn erfc(x: f64) -> f64;
    }

    fn phi_f64(x: f64) -> f64 {
        // SAFETY: a pure C library function of one double.
        0.5 * unsafe { erfc(-x * std::f64::consts::FRAC_1_SQRT_2) }
    }

    /// (worst ulps, where) of `got` against the f64 value rounded, over
    /// the sweep, counting only results of normal magnitude.
    fn worst_ulps(got: impl Fn(f32) -> f32, want: impl Fn(f64) -> f64) -> (u32, f32) {
        let mut worst = (0, 0.0f32);
        for x in sweep(1e-30, 13.0, 97) {
            // Beyond −GELU_CUT the kernels flush to 0 (tested apart).
            if x < -GELU_CUT {
                continue;
            }
            let w = want(x as f64) as f32;
            let u = ulps(got(x), w);
            if u > worst.0 {
                worst = (u, x);
            }
        }
        worst
    }

    #[test]
    fn gelu_matches_f64() {
        let (u, at) = worst_ulps(gelu_f32, |x| x * phi_f64(x));
        assert!(u <= 6, "gelu: {u} ulps at x = {at:e}");
        assert_eq!(gelu_f32(0.0), 0.0);
        assert!(ulps(gelu_f32(1.0), phi_f64(1.0) as f32) <= 1);
        // The far negative tail keeps its relative accuracy (1 + erf would
        // give 0 from x ≈ −5.7 on).
        let w = -8.0 * phi_f64(-8.0);
        assert!(((gelu_f32(-8.0) as f64 - w) / w).abs() < 5e-7);
        assert_eq!(gelu_f32(-13.0), 0.0);
        assert_eq!(gelu_f32(13.0), 13.0);
        assert_eq!(gelu_f32(f32::INFINITY), f32::INFINITY);
        assert!(gelu_f32(f32::NEG_INFINITY).is_nan());
        assert!(gelu_f32(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_grad_matches_f64() {
        let want = |x: f64| {
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            phi_f64(x) + x * pdf
        };
        // gelu′ crosses 0 at x ≈ −0.75 (Φ and x·φ cancel there), so the
        // bound is a few ulps of the larger term, Φ, plus ulps of the result.
        let mut worst = (0.0f64, 0.0f32);
        for x in sweep(1e-30, 13.0, 97) {
            if x < -GELU_CUT {
                continue;
            }
            let w = want(x as f64);
            let scale = phi_f64(x as f64).max(w.abs());
            let err = (gelu_grad_f32(1.0, x) as f64 - w).abs() / (scale * f32::EPSILON as f64);
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(
            worst.0 <= 6.0,
            "gelu': {:.2} ulps at x = {:e}",
            worst.0,
            worst.1
        );
        assert_eq!(gelu_grad_f32(2.0, 0.0), 1.0);
        assert_eq!(gelu_grad_f32(1.0, 13.0), 1.0);
        assert_eq!(gelu_grad_f32(1.0, -13.0), 0.0);
        assert_eq!(gelu_grad_f32(1.0, f32::INFINITY), 1.0);
        assert_eq!(gelu_grad_f32(1.0, f32::NEG_INFINITY), 0.0);
        assert!(gelu_grad_f32(1.0, f32::NAN).is_nan());
        assert!(gelu_grad_f32(f32::NAN, 1.0).is_nan());
    }
}
