//! Elementwise ops: unary math, activations, broadcasting binary ops,
//! scalar forms, comparisons and `where_`.

use ndarray::{IxDyn, Zip};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::{map, zip_with, PAR_THRESHOLD_CHEAP};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

/// Which formula [`Tensor::gelu`] uses, as `approximate=` in `torch.nn.functional.gelu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeluApprox {
    /// Exact: x·Φ(x) = 0.5·x·(1 + erf(x/√2)).
    #[default]
    None,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    Tanh,
}

macro_rules! unary {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        pub fn $name(&self) -> Self {
            self.map(|$x: E| $body)
        }
    };
}

/// ½x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
#[inline(always)]
fn gelu_tanh<E: Float>(x: E) -> E {
    let k = E::from_f64((2.0 / std::f64::consts::PI).sqrt());
    let c = E::from_f64(0.044715);
    E::from_f64(0.5) * x * (E::ONE + (k * (x + c * x * x * x)).tanh())
}

/// g·(½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²)), t = tanh(k(x + c·x³)): the tanh
/// form's derivative times g, in the order of operations of autograd's rule.
#[inline(always)]
pub(crate) fn gelu_tanh_grad<E: Float>(g: E, x: E) -> E {
    let k = E::from_f64((2.0 / std::f64::consts::PI).sqrt());
    let c = E::from_f64(0.044715);
    let half = E::from_f64(0.5);
    let x2 = x * x;
    let t = ((x + (x * x2) * c) * k).tanh();
    let a = (t + E::ONE) * half;
    let b = ((x * (E::ONE - t * t)) * (x2 * (E::from_f64(3.0) * c) + E::ONE)) * (half * k);
    g * (a + b)
}

impl<E: Float> Tensor<E> {
    /// Applies `f` to every element, out = f(x), in parallel for large tensors.
    ///
    /// Not differentiable: autograd cannot see inside `f` (write a `CustomOp`
    /// in tapir-autograd for a function with a gradient).
    ///
    /// PyTorch: no direct counterpart (`Tensor.apply_` is in place and
    /// CPU-only); NumPy `np.vectorize`.
    pub fn map<F: Fn(E) -> E + Sync + Send>(&self, f: F) -> Self {
        map(self, f)
    }

    /// Applies `f` pairwise after broadcasting, out = f(x, y).
    ///
    /// Not differentiable, as [`Tensor::map`].
    ///
    /// PyTorch: no direct counterpart; NumPy `np.vectorize` of two arguments.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn zip_map<F: Fn(E, E) -> E + Sync + Send>(&self, other: &Self, f: F) -> Result<Self> {
        zip_with("zip_map", self, other, f)
    }

    /// [`Tensor::map`] that consumes `self` and writes the results into its
    /// storage when no other tensor shares it (no allocation); otherwise
    /// the same as `map`.
    ///
    /// Not differentiable, as [`Tensor::map`].
    ///
    /// PyTorch: closest is the in-place `Tensor.apply_`.
    pub fn map_into<F: Fn(E) -> E + Sync + Send>(mut self, f: F) -> Self {
        match self.try_as_mut_slice() {
            Some(s) => {
                crate::kernels::map_inplace_par(s, &f, crate::kernels::PAR_THRESHOLD);
                self
            }
            None => self.map(f),
        }
    }

    /// [`Tensor::zip_map`] that consumes `self` and writes the results into
    /// its storage when no other tensor shares it and `other` has the same
    /// shape (no allocation); otherwise the same as `zip_map`.
    ///
    /// Not differentiable, as [`Tensor::map`].
    ///
    /// PyTorch: no direct counterpart.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn zip_map_into<F: Fn(E, E) -> E + Sync + Send>(
        mut self,
        other: &Self,
        f: F,
    ) -> Result<Self> {
        if let Some(y) = other.as_slice() {
            let same = self.same_shape(other);
            if let Some(x) = self.try_as_mut_slice().filter(|_| same) {
                crate::kernels::zip_inplace_par(x, y, &f, crate::kernels::PAR_THRESHOLD_CHEAP);
                return Ok(self);
            }
        }
        self.zip_map(other, f)
    }

    unary!(
        /// Negation, −x, elementwise.
        ///
        /// Derivative: −1.
        ///
        /// PyTorch: `torch.neg` (unary `-`); NumPy `np.negative`.
        neg, |x| -x);
    unary!(
        /// Exponential, eˣ, elementwise.
        ///
        /// Derivative: eˣ (the output itself).
        ///
        /// PyTorch: `torch.exp`.
        ///
        /// ```
        /// use tapir_tensor::Tensor;
        /// let y = Tensor::<f32>::from_vec(vec![0.0, 1.0], [2])?.exp().to_vec();
        /// assert_eq!(y[0], 1.0);
        /// assert!((y[1] - std::f32::consts::E).abs() < 1e-6);
        /// # Ok::<(), tapir_tensor::Error>(())
        /// ```
        exp, |x| x.exp());
    unary!(
        /// Natural logarithm, ln x, elementwise (−∞ at 0, NaN below 0).
        ///
        /// Derivative: 1/x.
        ///
        /// PyTorch: `torch.log`.
        log, |x| x.ln());
    unary!(
        /// ln(1 + x), elementwise, accurate near 0.
        ///
        /// Derivative: 1/(1 + x).
        ///
        /// PyTorch: `torch.log1p`.
        log1p, |x| x.ln_1p());
    unary!(
        /// eˣ − 1, elementwise, accurate near 0.
        ///
        /// Derivative: eˣ (the output + 1).
        ///
        /// PyTorch: `torch.expm1`.
        expm1, |x| x.exp_m1());
    unary!(
        /// Square root, √x, elementwise (NaN below 0).
        ///
        /// Derivative: 1/(2√x) (+∞ at 0).
        ///
        /// PyTorch: `torch.sqrt`.
        sqrt, |x| x.sqrt());
    unary!(
        /// Reciprocal square root, 1/√x, elementwise.
        ///
        /// Derivative: −½·x^(−3/2) (a `Var` records it as `pow_scalar(-0.5)`).
        ///
        /// PyTorch: `torch.rsqrt`; TensorFlow `tf.math.rsqrt` (NumPy has none).
        rsqrt, |x| E::ONE / x.sqrt());
    unary!(
        /// Reciprocal, 1/x, elementwise (±∞ at ±0).
        ///
        /// Derivative: −1/x² (a `Var` records it as `pow_scalar(-1)`).
        ///
        /// PyTorch: `torch.reciprocal`; NumPy `np.reciprocal`.
        recip, |x| E::ONE / x);
    unary!(
        /// Absolute value, |x|, elementwise.
        ///
        /// Derivative: sign x, with abs'(0) = 0.
        ///
        /// PyTorch: `torch.abs`.
        abs, |x| x.abs());
    unary!(
        /// Sign, sign x ∈ {−1, 0, 1} with sign(0) = 0, elementwise; NaN stays NaN.
        ///
        /// Derivative: sign' = 0 everywhere (the gradient is zero).
        ///
        /// PyTorch: `torch.sign`.
        sign, |x| x.sign());
    unary!(
        /// Square, x², elementwise.
        ///
        /// Derivative: 2x.
        ///
        /// PyTorch: `torch.square`.
        square, |x| x * x);
    unary!(
        /// Error function, erf x = (2/√π)·∫₀ˣ e^(−t²) dt, elementwise (within
        /// 2e-15 of reference values in f64).
        ///
        /// Derivative: (2/√π)·e^(−x²).
        ///
        /// PyTorch: `torch.erf` (`torch.special.erf`); NumPy has none
        /// (`scipy.special.erf`).
        erf, |x| x.erf());
    unary!(
        /// Sine, sin x, elementwise.
        ///
        /// Derivative: cos x.
        ///
        /// PyTorch: `torch.sin`.
        sin, |x| x.sin());
    unary!(
        /// Cosine, cos x, elementwise.
        ///
        /// Derivative: −sin x.
        ///
        /// PyTorch: `torch.cos`.
        cos, |x| x.cos());
    unary!(
        /// Hyperbolic tangent, tanh x = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ), elementwise.
        ///
        /// Derivative: 1 − tanh² x.
        ///
        /// PyTorch: `torch.tanh`.
        ///
        /// ```
        /// use tapir_tensor::Tensor;
        /// let y = Tensor::<f32>::from_vec(vec![0.0, 0.5], [2])?.tanh().to_vec();
        /// assert_eq!(y[0], 0.0);
        /// assert!((y[1] - 0.462_117_16).abs() < 1e-6);
        /// # Ok::<(), tapir_tensor::Error>(())
        /// ```
        tanh, |x| x.tanh());
    unary!(
        /// Logistic sigmoid, σ(x) = 1/(1 + e⁻ˣ), elementwise, computed without
        /// overflow for large |x|.
        ///
        /// Derivative: σ(x)·(1 − σ(x)).
        ///
        /// PyTorch: `torch.sigmoid`; TensorFlow `tf.math.sigmoid`, NumPy has
        /// none (`scipy.special.expit`).
        ///
        /// ```
        /// use tapir_tensor::Tensor;
        /// let y = Tensor::<f32>::from_vec(vec![0.0, 2.0], [2])?.sigmoid().to_vec();
        /// assert_eq!(y[0], 0.5);
        /// assert!((y[1] - 0.880_797_1).abs() < 1e-6);
        /// # Ok::<(), tapir_tensor::Error>(())
        /// ```
        sigmoid, |x| x.sigmoid());
    unary!(
        /// Rectified linear unit, relu x = max(x, 0), elementwise.
        ///
        /// Derivative: 1 for x > 0, else 0; relu'(0) = 0 (PyTorch's choice).
        ///
        /// PyTorch: `torch.relu` (`torch.nn.functional.relu`); TensorFlow
        /// `tf.nn.relu`.
        ///
        /// ```
        /// use tapir_tensor::Tensor;
        /// let x = Tensor::<f32>::from_vec(vec![-2.0, 0.0, 3.0], [3])?;
        /// assert_eq!(x.relu().to_vec(), [0.0, 0.0, 3.0]);
        /// # Ok::<(), tapir_tensor::Error>(())
        /// ```
        relu, |x| if x > E::ZERO { x } else { E::ZERO });
    unary!(
        /// SiLU (swish), x·σ(x), elementwise.
        ///
        /// Derivative: σ(x)·(1 + x·(1 − σ(x))).
        ///
        /// PyTorch: `torch.nn.functional.silu`; TensorFlow `tf.nn.silu`
        /// (alias `tf.nn.swish`).
        silu, |x| x * x.sigmoid());
    unary!(
        /// Softplus, ln(1 + eˣ), elementwise, computed as
        /// max(x, 0) + ln(1 + e^−|x|) so it never overflows.
        ///
        /// Derivative: σ(x).
        ///
        /// PyTorch: `torch.nn.functional.softplus` with its default beta = 1
        /// (it switches to x above threshold = 20; the results agree to
        /// rounding); TensorFlow `tf.math.softplus`.
        softplus, |x| (if x > E::ZERO { x } else { E::ZERO }) + (-x.abs()).exp().ln_1p());

    /// Leaky ReLU, x for x > 0 and `slope`·x otherwise, elementwise.
    ///
    /// Derivative: 1 for x > 0, `slope` otherwise (so `slope` at 0).
    ///
    /// PyTorch: `torch.nn.functional.leaky_relu(x, negative_slope)`, default
    /// 0.01; TensorFlow's `tf.nn.leaky_relu` defaults to alpha = 0.2.
    pub fn leaky_relu(&self, slope: E) -> Self {
        self.map(|x| if x > E::ZERO { x } else { slope * x })
    }

    /// Exponential linear unit, x for x > 0 and α·(eˣ − 1) otherwise,
    /// elementwise.
    ///
    /// Derivative: 1 for x > 0, α·eˣ otherwise (so α at 0).
    ///
    /// PyTorch: `torch.nn.functional.elu(x, alpha)`, default α = 1;
    /// TensorFlow's `tf.nn.elu` has α = 1 fixed.
    pub fn elu(&self, alpha: E) -> Self {
        self.map(|x| if x > E::ZERO { x } else { alpha * x.exp_m1() })
    }

    /// Gaussian error linear unit, elementwise: exact,
    /// gelu x = x·Φ(x) = ½x·(1 + erf(x/√2)), or with [`GeluApprox::Tanh`]
    /// ½x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    ///
    /// Derivative: exact, Φ(x) + x·φ(x) with φ(x) = e^(−x²/2)/√(2π); tanh
    /// form, the derivative of its own formula,
    /// ½(1 + t) + ½x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t the tanh.
    ///
    /// PyTorch: `torch.nn.functional.gelu(x, approximate='none' | 'tanh')`;
    /// TensorFlow `tf.nn.gelu(x, approximate=False)` (a bool).
    ///
    /// ```
    /// use tapir_tensor::{GeluApprox, Tensor};
    /// let x = Tensor::<f32>::from_vec(vec![0.0, 1.0], [2])?;
    /// let exact = x.gelu(GeluApprox::None).to_vec();
    /// let approx = x.gelu(GeluApprox::Tanh).to_vec();
    /// assert_eq!(exact[0], 0.0);
    /// assert!((exact[1] - 0.841_344_7).abs() < 1e-6);
    /// assert!((approx[1] - 0.841_192).abs() < 1e-6);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn gelu(&self, approx: GeluApprox) -> Self {
        // Named functions, not closures: a fn item inlines into the
        // vectorised loop.
        match approx {
            GeluApprox::None => crate::kernels::map_kernel(self, crate::kernels::gelu_exact_fill),
            GeluApprox::Tanh => self.map(gelu_tanh::<E>),
        }
    }

    /// g·gelu′(x) elementwise, x = `self`: the backward pass of
    /// [`Tensor::gelu`] in one vectorised pass, written into `g`'s storage
    /// when nothing else holds it. The formulas are in [`Tensor::gelu`]'s
    /// docs.
    ///
    /// # Errors
    /// When `g`'s shape differs from `self`'s.
    pub fn gelu_backward(&self, mut g: Tensor<E>, approx: GeluApprox) -> Result<Self> {
        if !g.same_shape(self) {
            return Err(Error::Shape {
                op: "gelu_backward",
                msg: format!(
                    "gradient {:?} does not match the input {:?}",
                    g.shape(),
                    self.shape()
                ),
            });
        }
        let x = self.contiguous();
        let mut g = match g.try_as_mut_slice() {
            Some(_) => g,
            None => Tensor::from_vec(g.to_vec(), g.shape())?,
        };
        let (gs, xs) = (
            g.try_as_mut_slice().expect("unshared and contiguous"),
            x.as_slice().expect("contiguous"),
        );
        let run = |g: &mut [E], x: &[E]| match approx {
            GeluApprox::None => crate::kernels::gelu_exact_grad_inplace(g, x),
            GeluApprox::Tanh => crate::kernels::gelu_tanh_grad_inplace(g, x),
        };
        if gs.len() < crate::kernels::PAR_THRESHOLD {
            run(gs, xs);
        } else {
            use rayon::prelude::*;
            gs.par_chunks_mut(crate::kernels::PAR_CHUNK)
                .zip(xs.par_chunks(crate::kernels::PAR_CHUNK))
                .for_each(|(g, x)| run(g, x));
        }
        Ok(g)
    }

    /// Clamps every element to [min, max], min(max(x, min), max); `None`
    /// leaves that side open. NaN stays NaN.
    ///
    /// Derivative: 1 where min ≤ x ≤ max (bounds included, as PyTorch), 0
    /// outside.
    ///
    /// PyTorch: `torch.clamp` (alias `torch.clip`); NumPy `np.clip`,
    /// TensorFlow `tf.clip_by_value`.
    ///
    /// # Errors
    /// When both bounds are given and min > max.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-2.0, 0.5, 3.0], [3])?;
    /// assert_eq!(x.clamp(Some(0.0), Some(1.0))?.to_vec(), [0.0, 0.5, 1.0]);
    /// assert_eq!(x.clamp(None, Some(1.0))?.to_vec(), [-2.0, 0.5, 1.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn clamp(&self, min: Option<E>, max: Option<E>) -> Result<Self> {
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(Error::arg(
                    "clamp",
                    format!("min {lo} is greater than max {hi}"),
                ));
            }
        }
        Ok(self.map(|x| {
            let mut y = x;
            if let Some(lo) = min {
                if y < lo {
                    y = lo;
                }
            }
            if let Some(hi) = max {
                if y > hi {
                    y = hi;
                }
            }
            y
        }))
    }

    /// Power with a scalar exponent, xᵖ, elementwise; whole exponents use
    /// repeated multiplication, so negative bases work for them.
    ///
    /// Derivative: p·x^(p−1).
    ///
    /// PyTorch: `torch.pow(x, p)` (`x ** p`); NumPy `np.power`.
    pub fn pow_scalar(&self, p: E) -> Self {
        let pf = p.to_f64();
        if pf == pf.round() && pf.abs() <= 64.0 {
            let n = pf as i32;
            match n {
                1 => self.clone(),
                2 => self.square(),
                _ => self.map(|x| x.powi(n)),
            }
        } else {
            self.map(|x| x.powf(p))
        }
    }

    /// Adds a scalar, x + c, elementwise (also `&x + c`).
    ///
    /// Derivative: 1.
    ///
    /// PyTorch: `torch.add(x, c)` (`x + c`).
    pub fn add_scalar(&self, c: E) -> Self {
        self.map(|x| x + c)
    }
    /// Subtracts a scalar, x − c, elementwise (also `&x - c`).
    ///
    /// Derivative: 1.
    ///
    /// PyTorch: `torch.sub(x, c)` (`x - c`).
    pub fn sub_scalar(&self, c: E) -> Self {
        self.map(|x| x - c)
    }
    /// Subtracts from a scalar, c − x, elementwise (also `c - &x`).
    ///
    /// Derivative: −1.
    ///
    /// PyTorch: `torch.rsub(x, c)` (`c - x`).
    pub fn rsub_scalar(&self, c: E) -> Self {
        self.map(|x| c - x)
    }
    /// Multiplies by a scalar, x·c, elementwise (also `&x * c`).
    ///
    /// Derivative: c.
    ///
    /// PyTorch: `torch.mul(x, c)` (`x * c`).
    pub fn mul_scalar(&self, c: E) -> Self {
        self.map(|x| x * c)
    }
    /// Divides by a scalar, x / c, elementwise (also `&x / c`).
    ///
    /// Derivative: 1/c.
    ///
    /// PyTorch: `torch.div(x, c)` (`x / c`).
    pub fn div_scalar(&self, c: E) -> Self {
        self.map(|x| x / c)
    }

    /// Sum, a + b, elementwise with NumPy broadcasting (also the `+`
    /// operator, which panics instead of returning an error).
    ///
    /// Derivative: 1 for each input; each gradient is summed back over the
    /// axes its input was broadcast along ([`Tensor::sum_to`]).
    ///
    /// PyTorch: `torch.add` (`a + b`).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?;
    /// let b = Tensor::<f32>::from_vec(vec![10.0, 20.0], [2])?;
    /// assert_eq!(a.add(&b)?.to_vec(), [11.0, 22.0, 13.0, 24.0]);
    /// assert_eq!((&a + &b).to_vec(), [11.0, 22.0, 13.0, 24.0]);
    /// assert_eq!((&a + 1.0).to_vec(), [2.0, 3.0, 4.0, 5.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn add(&self, other: &Self) -> Result<Self> {
        zip_with("add", self, other, |a, b| a + b)
    }
    /// Difference, a − b, elementwise with broadcasting (also `-`).
    ///
    /// Derivative: 1 for a, −1 for b, each summed back over broadcast axes.
    ///
    /// PyTorch: `torch.sub` (`a - b`); NumPy `np.subtract`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        zip_with("sub", self, other, |a, b| a - b)
    }
    /// Product, a·b, elementwise with broadcasting (also `*`).
    ///
    /// Derivative: b for a, a for b, each summed back over broadcast axes.
    ///
    /// PyTorch: `torch.mul` (`a * b`); NumPy `np.multiply`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?;
    /// let col = Tensor::<f32>::from_vec(vec![10.0, 100.0], [2, 1])?;
    /// assert_eq!(a.mul(&col)?.to_vec(), [10.0, 20.0, 300.0, 400.0]);
    /// assert_eq!((&a * &a).to_vec(), [1.0, 4.0, 9.0, 16.0]);
    /// assert_eq!((2.0 * &a).to_vec(), [2.0, 4.0, 6.0, 8.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn mul(&self, other: &Self) -> Result<Self> {
        zip_with("mul", self, other, |a, b| a * b)
    }
    /// Quotient, a / b, elementwise with broadcasting (also `/`); x/0 gives
    /// ±∞ or NaN.
    ///
    /// Derivative: 1/b for a, −a/b² for b, each summed back over broadcast
    /// axes.
    ///
    /// PyTorch: `torch.div` (`a / b`, true division); NumPy `np.divide`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn div(&self, other: &Self) -> Result<Self> {
        zip_with("div", self, other, |a, b| a / b)
    }
    /// Power, aᵇ, elementwise with broadcasting.
    ///
    /// Derivative: b·a^(b−1) for a, aᵇ·ln a for b (NaN for b where a ≤ 0),
    /// each summed back over broadcast axes.
    ///
    /// PyTorch: `torch.pow` (`a ** b`); NumPy `np.power`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn pow(&self, other: &Self) -> Result<Self> {
        zip_with("pow", self, other, |a, b| a.powf(b))
    }
    /// Larger of two values, max(a, b), elementwise with broadcasting; NaN
    /// propagates.
    ///
    /// Derivative: 1 for the larger input, 0 for the other; ties share the
    /// gradient equally (½ each, as PyTorch).
    ///
    /// PyTorch: `torch.maximum`; NumPy `np.maximum` (`np.fmax` ignores NaN).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 5.0, 3.0], [3])?;
    /// let b = Tensor::<f32>::from_vec(vec![4.0, 2.0, 3.0], [3])?;
    /// assert_eq!(a.maximum(&b)?.to_vec(), [4.0, 5.0, 3.0]);
    /// assert_eq!(a.minimum(&b)?.to_vec(), [1.0, 2.0, 3.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn maximum(&self, other: &Self) -> Result<Self> {
        zip_with("maximum", self, other, |a, b| a.max_nan(b))
    }
    /// Smaller of two values, min(a, b), elementwise with broadcasting; NaN
    /// propagates.
    ///
    /// Derivative: 1 for the smaller input, 0 for the other; ties share the
    /// gradient equally (½ each).
    ///
    /// PyTorch: `torch.minimum`; NumPy `np.minimum` (`np.fmin` ignores NaN).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn minimum(&self, other: &Self) -> Result<Self> {
        zip_with("minimum", self, other, |a, b| a.min_nan(b))
    }

    /// Mask of a = b, elementwise with broadcasting: 1 where true, 0 where
    /// false (comparisons with NaN are false, except `ne`).
    ///
    /// Not differentiable (on a `Var` the mask is a constant).
    ///
    /// PyTorch: `torch.eq` (`a == b`), which gives a bool tensor where this
    /// gives 1.0/0.0; NumPy `np.equal`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0], [3])?;
    /// let two = Tensor::scalar(2.0);
    /// assert_eq!(a.eq(&two)?.to_vec(), [0.0, 1.0, 0.0]);
    /// assert_eq!(a.gt(&two)?.to_vec(), [0.0, 0.0, 1.0]);
    /// assert_eq!(a.le(&two)?.to_vec(), [1.0, 1.0, 0.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn eq(&self, other: &Self) -> Result<Self> {
        zip_with("eq", self, other, |a, b| mask(a == b))
    }
    /// Mask of a ≠ b, elementwise with broadcasting: 1 where true, 0 where
    /// false (true against NaN).
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.ne` (`a != b`); NumPy `np.not_equal`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn ne(&self, other: &Self) -> Result<Self> {
        zip_with("ne", self, other, |a, b| mask(a != b))
    }
    /// Mask of a < b, elementwise with broadcasting: 1 where true, 0 where
    /// false.
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.lt` (`a < b`); NumPy `np.less`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn lt(&self, other: &Self) -> Result<Self> {
        zip_with("lt", self, other, |a, b| mask(a < b))
    }
    /// Mask of a ≤ b, elementwise with broadcasting: 1 where true, 0 where
    /// false.
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.le` (`a <= b`); NumPy `np.less_equal`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn le(&self, other: &Self) -> Result<Self> {
        zip_with("le", self, other, |a, b| mask(a <= b))
    }
    /// Mask of a > b, elementwise with broadcasting: 1 where true, 0 where
    /// false.
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.gt` (`a > b`); NumPy `np.greater`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn gt(&self, other: &Self) -> Result<Self> {
        zip_with("gt", self, other, |a, b| mask(a > b))
    }
    /// Mask of a ≥ b, elementwise with broadcasting: 1 where true, 0 where
    /// false.
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.ge` (`a >= b`); NumPy `np.greater_equal`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn ge(&self, other: &Self) -> Result<Self> {
        zip_with("ge", self, other, |a, b| mask(a >= b))
    }

    /// Elementwise selection, out = `self` where `cond` ≠ 0 and `other`
    /// elsewhere, after broadcasting all three. The underscore only avoids
    /// the Rust keyword; the op is not in place. Masks from the comparison
    /// ops (`gt`, `eq`, ...) hold 1 and 0.
    ///
    /// Gradient: to `self` where `cond` ≠ 0 and to `other` elsewhere, each
    /// summed back over broadcast axes; `cond` is data and gets none.
    ///
    /// PyTorch: `Tensor.where` (`x.where(cond, other)`), i.e.
    /// `torch.where(cond, x, other)`; NumPy `np.where(cond, x, other)`.
    ///
    /// # Errors
    /// When the three shapes do not broadcast together.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-1.0, 2.0], [2])?;
    /// let zero = Tensor::scalar(0.0);
    /// assert_eq!(x.where_(&x.gt(&zero)?, &zero)?.to_vec(), [0.0, 2.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn where_(&self, cond: &Self, other: &Self) -> Result<Self> {
        let (a, b) = (self, other);
        let s = broadcast_shapes("where_", cond.shape(), a.shape())?;
        let s = broadcast_shapes("where_", &s, b.shape())?;
        crate::shape::check_alloc::<E>("where_", &s)?;
        let d = IxDyn(&s);
        let (cn, an, bn) = (cond.nd(), a.nd(), b.nd());
        let (c, x, y) = (
            cn.broadcast(d.clone()).expect("checked"),
            an.broadcast(d.clone()).expect("checked"),
            bn.broadcast(d).expect("checked"),
        );
        let z = Zip::from(&c).and(&x).and(&y);
        let pick = |&m: &E, &p: &E, &q: &E| if m != E::ZERO { p } else { q };
        let out = if c.len() >= PAR_THRESHOLD_CHEAP {
            z.par_map_collect(pick)
        } else {
            z.map_collect(pick)
        };
        Ok(Self::from_owned(out))
    }
}

#[inline]
fn mask<E: Float>(b: bool) -> E {
    if b {
        E::ONE
    } else {
        E::ZERO
    }
}
