//! Optimizer state in bfloat16: the storage type of a state slot, the two
//! roundings, and the chunked pass that runs an elementwise rule on state
//! kept in bf16.
//!
//! bf16 is the upper half of an IEEE f32: sign, the same 8-bit exponent
//! (so the same range), and 7 stored mantissa bits (relative spacing
//! 2⁻⁸ ≈ 0.4%). A moment stored in bf16 halves an f32 optimizer's state.
//! Each step decodes a block of the state into the element type, runs the
//! rule's own fused pass on it (so the parameter update uses the moments
//! at full precision, just computed), and rounds the new moments back.

use tapir_tensor::Float;

/// How each state value is rounded when stored as bf16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// To the nearest bf16, ties to even (PyTorch's `.to(torch.bfloat16)`).
    /// A moment that changes by less than half a bf16 step per update
    /// stops changing: with β₂ = 0.999 the second moment's update
    /// (1 − β₂)(g² − v) is below that step whenever g² is within ~40% of
    /// v, so v can stall.
    Nearest,
    /// Up with probability equal to the distance from the value below,
    /// in units of a bf16 step (Gupta et al. 2015), so that the stored
    /// value is right on average and small updates accumulate. The random
    /// bits are a hash of the parameter's name, its step count, the slot
    /// and the element's position: a run repeats, and resumes from a
    /// checkpoint, bit for bit.
    Stochastic,
}

/// The number type an optimizer keeps its per-element state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateDtype {
    /// The parameters' element type (f32 or f64), the default.
    #[default]
    Full,
    /// bfloat16, with the given rounding: half the memory of f32 state.
    Bf16(Rounding),
}

/// One state tensor of a parameter, flat.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot<E> {
    /// In the parameters' element type.
    Full(Vec<E>),
    /// bf16 bit patterns (the upper 16 bits of the f32 value).
    Bf16(Vec<u16>),
}

impl<E: Float> Slot<E> {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Slot::Full(v) => v.len(),
            Slot::Bf16(v) => v.len(),
        }
    }

    /// Whether the slot holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory its values take, in bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Slot::Full(v) => v.len() * std::mem::size_of::<E>(),
            Slot::Bf16(v) => v.len() * 2,
        }
    }

    /// The values in the element type (bf16 widens exactly).
    pub fn to_vec(&self) -> Vec<E> {
        match self {
            Slot::Full(v) => v.clone(),
            Slot::Bf16(v) => v.iter().map(|&h| from_bf16(h)).collect(),
        }
    }

    /// The slot in `dtype`: bf16 widens exactly; the element type narrows
    /// to bf16 to nearest (a stochastic rounding here would make loading
    /// a checkpoint random).
    pub fn converted(self, dtype: StateDtype) -> Slot<E> {
        match (self, dtype) {
            (Slot::Full(v), StateDtype::Bf16(_)) => {
                Slot::Bf16(v.into_iter().map(to_bf16_nearest).collect())
            }
            (Slot::Bf16(v), StateDtype::Full) => Slot::Full(v.into_iter().map(from_bf16).collect()),
            (s, _) => s,
        }
    }
}

/// The bf16 value `h` in the element type (exact).
#[inline(always)]
pub fn from_bf16<E: Float>(h: u16) -> E {
    E::from_f64(f64::from(f32::from_bits(u32::from(h) << 16)))
}

/// `x` as an f32 from which rounding to bf16 gives the same result as
/// rounding `x` itself: f32 values pass unchanged; an f64 is rounded to
/// f32 toward zero with the lowest bit set when inexact ("round to odd"),
/// which keeps the information a second rounding to fewer bits needs.
#[inline(always)]
fn to_f32_odd<E: Float>(x: E) -> f32 {
    let x = x.to_f64();
    let f = x as f32;
    if f64::from(f) == x || !f.is_finite() || x.is_nan() {
        return f;
    }
    // `as` rounded to nearest; step back toward zero if it went past x.
    let mut b = f.to_bits();
    if f64::from(f).abs() > x.abs() {
        b -= 1;
    }
    f32::from_bits(b | 1)
}

/// `x` rounded to the nearest bf16, ties to even; NaN stays NaN (quiet),
/// values beyond bf16's largest finite number round to ±∞ as an f32 does.
#[inline(always)]
pub fn to_bf16_nearest<E: Float>(x: E) -> u16 {
    let f = to_f32_odd(x);
    let b = f.to_bits();
    if f.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    // Adding 0x7fff plus the lowest kept bit carries into the kept bits
    // exactly when the dropped half is above the tie, or at the tie with
    // an odd kept part. No NaN reaches here, so the sum cannot overflow.
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to one of its two neighbouring bf16 values at random: up
/// with probability (x − below)/(above − below), using the low 16 bits of
/// `r`. NaN stays NaN; ±∞ stays.
#[inline(always)]
pub fn to_bf16_stochastic<E: Float>(x: E, r: u64) -> u16 {
    let f = to_f32_odd(x);
    let b = f.to_bits();
    if f.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    if f.is_infinite() {
        return (b >> 16) as u16;
    }
    // The dropped 16 bits d carry into the kept part when d + r ≥ 2¹⁶,
    // which for r uniform on [0, 2¹⁶) happens with probability d/2¹⁶.
    ((b + (r as u32 & 0xffff)) >> 16) as u16
}

/// A 64-bit mix of `x` (the splitmix64 finaliser): consecutive inputs
/// give unrelated outputs.
#[inline(always)]
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A 32-bit mix (murmur3's finaliser): cheap enough to vectorise with
/// 32-bit lanes, and each output bit depends on every input bit.
#[inline(always)]
fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The stream of random bits for one parameter's step: FNV-1a of its name,
/// mixed with the step count.
pub(crate) fn stream(name: &str, t: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h ^ t.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Elements decoded at a time: the state of a block stays in L1.
pub(crate) const BLOCK: usize = 1024;

/// Rounds `vals` into the bf16 slot `out` (same length); element i of the
/// block is element `offset + i` of slot `k`, which picks its random bits.
#[inline(always)]
pub(crate) fn store<E: Float>(
    out: &mut [u16],
    vals: &[E],
    rounding: Rounding,
    seed: u64,
    k: usize,
    offset: usize,
) {
    match rounding {
        Rounding::Nearest => {
            for (o, &v) in out.iter_mut().zip(vals) {
                *o = to_bf16_nearest(v);
            }
        }
        Rounding::Stochastic => {
            let base = mix(seed ^ (k as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
            // The element's index in 32 bits: the low half, the high half
            // folded into the seed.
            let off = offset as u64;
            let key = (base as u32) ^ ((off >> 32) as u32).wrapping_mul(0x9e37_79b1);
            let low = off as u32;
            for (i, (o, &v)) in out.iter_mut().zip(vals).enumerate() {
                let r = mix32(key ^ low.wrapping_add(i as u32));
                *o = to_bf16_stochastic(v, u64::from(r >> 16));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rounds_ties_to_even_and_overflows_to_infinity() {
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: to even (1).
        assert_eq!(to_bf16_nearest(1.0f32 + 2f32.powi(-8)), 0x3f80);
        // 1 + 3·2⁻⁸: halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶: up.
        assert_eq!(to_bf16_nearest(1.0f32 + 3.0 * 2f32.powi(-8)), 0x3f82);
        assert_eq!(to_bf16_nearest(-0.0f32), 0x8000);
        assert_eq!(to_bf16_nearest(f32::MAX), 0x7f80);
        assert_eq!(to_bf16_nearest(f32::NEG_INFINITY), 0xff80);
        assert!(from_bf16::<f32>(to_bf16_nearest(f32::NAN)).is_nan());
    }

    #[test]
    fn f64_rounds_once_not_twice() {
        // Just above the tie 1 + 2⁻⁸ by less than an f32 step: an f64
        // rounded to f32 first would land on the tie and go to even (down);
        // the correct bf16 is up.
        let x = 1.0f64 + 2f64.powi(-8) + 2f64.powi(-40);
        assert_eq!(to_bf16_nearest(x), 0x3f81);
        let y = -(1.0f64 + 2f64.powi(-8) + 2f64.powi(-40));
        assert_eq!(to_bf16_nearest(y), 0xbf81);
        // Exact f32 values in an f64 round as the f32 does.
        assert_eq!(to_bf16_nearest(1.0f64 + 2f64.powi(-8)), 0x3f80);
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_stays_between_neighbours() {
        // x = 1 + 0.3·2⁻⁷: between 1 (0x3f80) and 1 + 2⁻⁷ (0x3f81).
        let x = 1.0f32 + 0.3 * 2f32.powi(-7);
        let n = 200_000u64;
        let mut up = 0u64;
        for i in 0..n {
            let h = to_bf16_stochastic(x, mix(i));
            assert!(h == 0x3f80 || h == 0x3f81, "{h:#x}");
            up += u64::from(h == 0x3f81);
        }
        let p = up as f64 / n as f64;
        // 0.3 within 5 standard deviations (σ ≈ 0.001).
        assert!((p - 0.3).abs() < 0.005, "P(up) = {p}");
        // A bf16 value is never moved.
        assert_eq!(to_bf16_stochastic(1.5f32, u64::MAX), 0x3fc0);
        assert_eq!(to_bf16_stochastic(f32::INFINITY, u64::MAX), 0x7f80);
        assert!(from_bf16::<f32>(to_bf16_stochastic(f32::NAN, 7)).is_nan());
    }

    #[test]
    fn stored_blocks_use_their_offset_not_their_start() {
        // The same values at the same offsets get the same bits whether
        // stored in one block or in two.
        let vals: Vec<f32> = (0..64).map(|i| 1.0 + i as f32 * 1e-4).collect();
        let mut one = vec![0u16; 64];
        store(&mut one, &vals, Rounding::Stochastic, 42, 1, 0);
        let mut two = vec![0u16; 64];
        store(&mut two[..29], &vals[..29], Rounding::Stochastic, 42, 1, 0);
        store(&mut two[29..], &vals[29..], Rounding::Stochastic, 42, 1, 29);
        assert_eq!(one, two);
        let mut other = vec![0u16; 64];
        store(&mut other, &vals, Rounding::Stochastic, 42, 2, 0);
        assert_ne!(one, other, "another slot draws other bits");
    }
}
