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
}
