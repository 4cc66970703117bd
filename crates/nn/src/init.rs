//! Initialisers (`torch.nn.init`, `tf.keras.initializers`).
//!
//! Each returns a new tensor of the given shape drawn from `rng`. Fans
//! follow PyTorch: for a weight of shape `[out, in, k...]`, fan-in is
//! `in·Πk` and fan-out is `out·Πk`; a 1-D shape has fan-in = fan-out = its
//! length. Every layer's default initialisation is PyTorch's, stated on
//! the layer.

use tapir_tensor::{Float, Rng, Tensor};

/// The nonlinearity a Kaiming or Xavier gain is computed for
/// (`torch.nn.init.calculate_gain`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nonlinearity {
    /// Linear, convolution, sigmoid: gain 1.
    Linear,
    /// tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with this negative slope: gain √(2 / (1 + slope²)).
    LeakyRelu(f64),
    /// SELU: gain 3/4.
    Selu,
}

impl Nonlinearity {
    /// The recommended gain, as `torch.nn.init.calculate_gain` gives it.
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2f64.sqrt(),
            Nonlinearity::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
            Nonlinearity::Selu => 0.75,
        }
    }
}

/// Which fan Kaiming initialisation preserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fan {
    /// Preserve the variance of activations (forward pass); the default.
    In,
    /// Preserve the variance of gradients (backward pass).
    Out,
}

/// (fan_in, fan_out) of a weight shape, PyTorch's
/// `_calculate_fan_in_and_fan_out` (a 1-D shape counts as both).
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (shape[0], shape[0]),
        _ => {
            let field: usize = shape[2..].iter().product();
            (shape[1] * field, shape[0] * field)
        }
    }
}

/// All zeros.
pub fn zeros<E: Float>(shape: &[usize]) -> Tensor<E> {
    Tensor::zeros(shape)
}

/// All ones.
pub fn ones<E: Float>(shape: &[usize]) -> Tensor<E> {
    Tensor::ones(shape)
}

/// Every element `value`.
pub fn constant<E: Float>(shape: &[usize], value: f64) -> Tensor<E> {
    Tensor::full(shape, E::from_f64(value))
}

/// U(low, high).
pub fn uniform<E: Float>(shape: &[usize], low: f64, high: f64, rng: &mut Rng) -> Tensor<E> {
    Tensor::uniform(shape, E::from_f64(low), E::from_f64(high), rng)
}

/// N(mean, std²).
pub fn normal<E: Float>(shape: &[usize], mean: f64, std: f64, rng: &mut Rng) -> Tensor<E> {
    Tensor::normal(shape, E::from_f64(mean), E::from_f64(std), rng)
}

/// N(mean, std²) conditioned on [low, high], by redrawing samples outside
/// it (`torch.nn.init.trunc_normal_`, default bounds ±2; Keras's
/// `TruncatedNormal` cuts at two standard deviations instead, pass
/// `mean ± 2·std` for it).
pub fn truncated_normal<E: Float>(
    shape: &[usize],
    mean: f64,
    std: f64,
    low: f64,
    high: f64,
    rng: &mut Rng,
) -> Tensor<E> {
    let n: usize = shape.iter().product();
    let mut v = Vec::with_capacity(n);
    // Redraws terminate quickly unless the interval holds almost no mass;
    // fall back to the clamped draw after many tries rather than spin.
    for _ in 0..n {
        let mut x = mean + std * rng.normal();
        let mut tries = 0;
        while !(low..=high).contains(&x) && tries < 1000 {
            x = mean + std * rng.normal();
            tries += 1;
        }
        v.push(E::from_f64(x.clamp(low, high)));
    }
    Tensor::from_vec(v, shape).expect("length matches shape")
}

/// Glorot/Xavier uniform: U(−a, a), a = gain·√(6 / (fan_in + fan_out))
/// (Keras's default kernel initialiser, with gain 1).
pub fn xavier_uniform<E: Float>(shape: &[usize], gain: f64, rng: &mut Rng) -> Tensor<E> {
    let (fi, fo) = fans(shape);
    let a = gain * (6.0 / (fi + fo).max(1) as f64).sqrt();
    uniform(shape, -a, a, rng)
}

/// Glorot/Xavier normal: N(0, σ²), σ = gain·√(2 / (fan_in + fan_out)).
pub fn xavier_normal<E: Float>(shape: &[usize], gain: f64, rng: &mut Rng) -> Tensor<E> {
    let (fi, fo) = fans(shape);
    normal(
        shape,
        0.0,
        gain * (2.0 / (fi + fo).max(1) as f64).sqrt(),
        rng,
    )
}

fn kaiming_std(shape: &[usize], fan: Fan, nl: Nonlinearity) -> f64 {
    let (fi, fo) = fans(shape);
    let f = match fan {
        Fan::In => fi,
        Fan::Out => fo,
    };
    nl.gain() / (f.max(1) as f64).sqrt()
}

/// Kaiming/He uniform: U(−b, b), b = gain·√(3 / fan)
/// (`torch.nn.init.kaiming_uniform_`). PyTorch's Linear and Conv weights
/// use it with `LeakyRelu(√5)`, which gives b = 1/√fan_in.
pub fn kaiming_uniform<E: Float>(
    shape: &[usize],
    fan: Fan,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Tensor<E> {
    let b = 3f64.sqrt() * kaiming_std(shape, fan, nl);
    uniform(shape, -b, b, rng)
}

/// Kaiming/He normal: N(0, σ²), σ = gain / √fan.
pub fn kaiming_normal<E: Float>(
    shape: &[usize],
    fan: Fan,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Tensor<E> {
    normal(shape, 0.0, kaiming_std(shape, fan, nl), rng)
}

/// A (semi-)orthogonal matrix times `gain`, over the first axis against
/// the rest flattened (`torch.nn.init.orthogonal_`): the Q factor of a
/// Gaussian matrix by Gram–Schmidt, with signs fixed so that R's diagonal
/// is positive.
///
/// # Panics
/// If `shape` has fewer than 2 axes (as PyTorch refuses them).
pub fn orthogonal<E: Float>(shape: &[usize], gain: f64, rng: &mut Rng) -> Tensor<E> {
    assert!(
        shape.len() >= 2,
        "orthogonal: needs at least 2 axes, got {shape:?}"
    );
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    // Orthonormalise the longer side's vectors: q holds k = min(rows, cols)
    // orthonormal vectors of length l = max(rows, cols).
    let (k, l) = (rows.min(cols), rows.max(cols));
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    while q.len() < k {
        let mut v: Vec<f64> = (0..l).map(|_| rng.normal()).collect();
        // Modified Gram–Schmidt, twice for stability.
        for _ in 0..2 {
            for u in &q {
                let d: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
                for (x, a) in v.iter_mut().zip(u) {
                    *x -= d * a;
                }
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n > 1e-8 {
            v.iter_mut().for_each(|x| *x /= n);
            q.push(v);
        }
    }
    let mut out = vec![E::ZERO; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let x = if rows <= cols { q[r][c] } else { q[c][r] };
            out[r * cols + c] = E::from_f64(gain * x);
        }
    }
    Tensor::from_vec(out, shape).expect("length matches shape")
}

/// PyTorch's default for Linear and Conv weights and biases:
/// U(−1/√fan_in, 1/√fan_in), fan_in taken from `weight_shape`.
pub fn torch_default<E: Float>(
    shape: &[usize],
    weight_shape: &[usize],
    rng: &mut Rng,
) -> Tensor<E> {
    let (fi, _) = fans(weight_shape);
    let b = 1.0 / (fi.max(1) as f64).sqrt();
    uniform(shape, -b, b, rng)
}
