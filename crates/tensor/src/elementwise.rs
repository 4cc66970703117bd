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

impl<E: Float> Tensor<E> {
    /// Applies a function to every element (parallel for large tensors).
    pub fn map<F: Fn(E) -> E + Sync + Send>(&self, f: F) -> Self {
        map(self, f)
    }

    /// Applies a function pairwise after broadcasting.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn zip_map<F: Fn(E, E) -> E + Sync + Send>(&self, other: &Self, f: F) -> Result<Self> {
        zip_with("zip_map", self, other, f)
    }

    /// [`Tensor::map`] that consumes `self` and writes the results into its
    /// storage when no other tensor shares it (no allocation); otherwise
    /// the same as `map`.
    pub fn map_into<F: Fn(E) -> E + Sync + Send>(mut self, f: F) -> Self {
        match self.unique_slice_mut() {
            Some(s) if s.len() < crate::kernels::PAR_THRESHOLD => {
                crate::kernels::map_inplace(s, &f);
                self
            }
            _ => self.map(f),
        }
    }

    /// [`Tensor::zip_map`] that consumes `self` and writes the results into
    /// its storage when no other tensor shares it and `other` has the same
    /// shape (no allocation); otherwise the same as `zip_map`.
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
            if let Some(x) = self.unique_slice_mut().filter(|_| same) {
                if x.len() < crate::kernels::PAR_THRESHOLD_CHEAP {
                    crate::kernels::zip_inplace(x, y, &f);
                    return Ok(self);
                }
            }
        }
        self.zip_map(other, f)
    }

    unary!(
        /// −x.
        neg, |x| -x);
    unary!(
        /// e^x.
        exp, |x| x.exp());
    unary!(
        /// Natural logarithm (−inf at 0, NaN below).
        log, |x| x.ln());
    unary!(
        /// ln(1 + x), accurate near 0.
        log1p, |x| x.ln_1p());
    unary!(
        /// e^x − 1, accurate near 0.
        expm1, |x| x.exp_m1());
    unary!(
        /// √x.
        sqrt, |x| x.sqrt());
    unary!(
        /// 1/√x.
        rsqrt, |x| E::ONE / x.sqrt());
    unary!(
        /// 1/x.
        recip, |x| E::ONE / x);
    unary!(
        /// |x|.
        abs, |x| x.abs());
    unary!(
        /// −1, 0 or 1; sign(0) = 0 (`torch.sign`).
        sign, |x| x.sign());
    unary!(
        /// x².
        square, |x| x * x);
    unary!(
        /// The error function erf x (within 2e-15 of reference values in f64).
        erf, |x| x.erf());
    unary!(
        /// sin x.
        sin, |x| x.sin());
    unary!(
        /// cos x.
        cos, |x| x.cos());
    unary!(
        /// tanh x.
        tanh, |x| x.tanh());
    unary!(
        /// 1/(1 + e^−x), computed without overflow for large |x|.
        sigmoid, |x| x.sigmoid());
    unary!(
        /// max(x, 0). The gradient at 0 is taken as 0 (PyTorch's choice).
        relu, |x| if x > E::ZERO { x } else { E::ZERO });
    unary!(
        /// x·sigmoid(x) (`torch.nn.functional.silu`).
        silu, |x| x * x.sigmoid());
    unary!(
        /// ln(1 + e^x), computed as max(x, 0) + ln(1 + e^−|x|) so it never
        /// overflows (PyTorch switches to x above 20; the results agree to
        /// rounding).
        softplus, |x| (if x > E::ZERO { x } else { E::ZERO }) + (-x.abs()).exp().ln_1p());

    /// x for x > 0, `slope`·x otherwise (`torch.nn.functional.leaky_relu`,
    /// whose default slope is 0.01).
    pub fn leaky_relu(&self, slope: E) -> Self {
        self.map(|x| if x > E::ZERO { x } else { slope * x })
    }

    /// x for x > 0, α(e^x − 1) otherwise (`torch.nn.functional.elu`, default α = 1).
    pub fn elu(&self, alpha: E) -> Self {
        self.map(|x| if x > E::ZERO { x } else { alpha * x.exp_m1() })
    }

    /// The Gaussian error linear unit, exact or with the tanh approximation.
    pub fn gelu(&self, approx: GeluApprox) -> Self {
        let half = E::from_f64(0.5);
        match approx {
            GeluApprox::None => {
                let r = E::from_f64(std::f64::consts::FRAC_1_SQRT_2);
                self.map(|x| half * x * (E::ONE + (x * r).erf()))
            }
            GeluApprox::Tanh => {
                let k = E::from_f64((2.0 / std::f64::consts::PI).sqrt());
                let c = E::from_f64(0.044715);
                self.map(|x| half * x * (E::ONE + (k * (x + c * x * x * x)).tanh()))
            }
        }
    }

    /// Limits every element to [min, max]; `None` leaves that side open.
    /// NaN stays NaN.
    ///
    /// # Errors
    /// When both bounds are given and min > max.
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

    /// x^p for a scalar exponent (`torch.pow(x, p)`); whole exponents use
    /// repeated multiplication, so negative bases work for them.
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

    /// x + c.
    pub fn add_scalar(&self, c: E) -> Self {
        self.map(|x| x + c)
    }
    /// x − c.
    pub fn sub_scalar(&self, c: E) -> Self {
        self.map(|x| x - c)
    }
    /// c − x.
    pub fn rsub_scalar(&self, c: E) -> Self {
        self.map(|x| c - x)
    }
    /// x · c.
    pub fn mul_scalar(&self, c: E) -> Self {
        self.map(|x| x * c)
    }
    /// x / c.
    pub fn div_scalar(&self, c: E) -> Self {
        self.map(|x| x / c)
    }

    /// Elementwise sum with broadcasting.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn add(&self, other: &Self) -> Result<Self> {
        zip_with("add", self, other, |a, b| a + b)
    }
    /// Elementwise difference with broadcasting.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        zip_with("sub", self, other, |a, b| a - b)
    }
    /// Elementwise product with broadcasting.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn mul(&self, other: &Self) -> Result<Self> {
        zip_with("mul", self, other, |a, b| a * b)
    }
    /// Elementwise quotient with broadcasting (x/0 gives ±inf or NaN).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn div(&self, other: &Self) -> Result<Self> {
        zip_with("div", self, other, |a, b| a / b)
    }
    /// Elementwise power x^y with broadcasting.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn pow(&self, other: &Self) -> Result<Self> {
        zip_with("pow", self, other, |a, b| a.powf(b))
    }
    /// Elementwise maximum with broadcasting; NaN propagates (`torch.maximum`).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn maximum(&self, other: &Self) -> Result<Self> {
        zip_with("maximum", self, other, |a, b| a.max_nan(b))
    }
    /// Elementwise minimum with broadcasting; NaN propagates (`torch.minimum`).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn minimum(&self, other: &Self) -> Result<Self> {
        zip_with("minimum", self, other, |a, b| a.min_nan(b))
    }

    /// Mask of `self == other`: 1 where true, 0 where false (comparisons
    /// with NaN are false, except `ne`).
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn eq(&self, other: &Self) -> Result<Self> {
        zip_with("eq", self, other, |a, b| mask(a == b))
    }
    /// Mask of `self != other`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn ne(&self, other: &Self) -> Result<Self> {
        zip_with("ne", self, other, |a, b| mask(a != b))
    }
    /// Mask of `self < other`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn lt(&self, other: &Self) -> Result<Self> {
        zip_with("lt", self, other, |a, b| mask(a < b))
    }
    /// Mask of `self <= other`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn le(&self, other: &Self) -> Result<Self> {
        zip_with("le", self, other, |a, b| mask(a <= b))
    }
    /// Mask of `self > other`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn gt(&self, other: &Self) -> Result<Self> {
        zip_with("gt", self, other, |a, b| mask(a > b))
    }
    /// Mask of `self >= other`.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn ge(&self, other: &Self) -> Result<Self> {
        zip_with("ge", self, other, |a, b| mask(a >= b))
    }

    /// `self` where `cond` is non-zero and `other` elsewhere, after
    /// broadcasting all three: PyTorch's `x.where(cond, other)`, i.e.
    /// `torch.where(cond, x, other)` (NumPy's `np.where`). The underscore
    /// only avoids the Rust keyword; the op is not in place. Masks from the
    /// comparison ops (`gt`, `eq`, ...) hold 1 and 0.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-1.0, 2.0], [2])?;
    /// let zero = Tensor::scalar(0.0);
    /// assert_eq!(x.where_(&x.gt(&zero)?, &zero)?.to_vec(), [0.0, 2.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the three shapes do not broadcast together.
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
