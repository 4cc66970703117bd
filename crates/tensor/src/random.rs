//! A small seeded random generator (xoshiro256++, seeded through SplitMix64).
//!
//! Tensors are filled sequentially from one stream, so the same seed gives the
//! same numbers whatever the number of threads.

/// A seeded pseudo-random generator.
///
/// ```
/// use tapir_tensor::{Rng, Tensor};
/// let mut a = Rng::seed(7);
/// let mut b = Rng::seed(7);
/// let x: Tensor = Tensor::randn([2, 3], &mut a);
/// let y: Tensor = Tensor::randn([2, 3], &mut b);
/// assert_eq!(x.to_vec(), y.to_vec());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    ///
    /// PyTorch: `torch.Generator().manual_seed(seed)`; NumPy
    /// `np.random.default_rng(seed)` (each with its own algorithm, so the
    /// numbers differ).
    pub fn seed(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Rng { s }
    }

    /// The generator's whole state, for checkpoints: a generator made by
    /// [`Rng::from_state`] from it continues the same sequence
    /// (`torch.Generator.get_state`).
    ///
    /// ```
    /// use tapir_tensor::Rng;
    /// let mut a = Rng::seed(3);
    /// a.next_u64();
    /// let mut b = Rng::from_state(a.state()).unwrap();
    /// assert_eq!(a.next_u64(), b.next_u64());
    /// ```
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator resumed from [`Rng::state`]; `None` for the all-zero
    /// state, which xoshiro cannot leave (no seed produces it, so it can
    /// only come from a corrupted file).
    pub fn from_state(s: [u64; 4]) -> Option<Self> {
        (s != [0; 4]).then_some(Rng { s })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform sample from [0, 1) with 53 random bits.
    ///
    /// Python: `random.random()`; NumPy `rng.random()`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (Box–Muller; one sample per two uniforms,
    /// so the stream does not depend on how many values were asked for before).
    ///
    /// NumPy: `rng.standard_normal()`; Python `random.gauss(0, 1)`.
    pub fn normal(&mut self) -> f64 {
        // 1 − u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias.
    ///
    /// NumPy: `rng.integers(n)`; PyTorch `torch.randint(n, ())`.
    ///
    /// # Panics
    /// When `n` is 0 (there is no integer to draw).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below: n must be positive");
        let zone = u64::MAX - (u64::MAX - n + 1) % n;
        loop {
            let v = self.next_u64();
            if v <= zone {
                return v % n;
            }
        }
    }

    /// Shuffles a slice in place (Fisher–Yates).
    ///
    /// NumPy: `rng.shuffle(x)`; PyTorch `x[torch.randperm(len(x))]`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut r = Rng::seed(1);
        let n = 200_000;
        let (mut su, mut sn, mut sn2) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            su += u;
            let z = r.normal();
            sn += z;
            sn2 += z * z;
        }
        let n = n as f64;
        assert!((su / n - 0.5).abs() < 0.005);
        assert!((sn / n).abs() < 0.01);
        assert!((sn2 / n - 1.0).abs() < 0.02);
    }

    #[test]
    fn seeds_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| Rng::seed(3).next_u64()).collect();
        assert!(a.iter().all(|&v| v == a[0]));
        assert_ne!(Rng::seed(3).next_u64(), Rng::seed(4).next_u64());
        let mut v: Vec<usize> = (0..10).collect();
        Rng::seed(5).shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}
