//! Elementwise ops: arithmetic with broadcasting, scalar ops, activations, comparisons (masks) and `where_`.

use tapir_tensor::{Float, GeluApprox, Tensor};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    binary!(
        /// Elementwise sum with broadcasting.
        add, Op::Add);
    binary!(
        /// Elementwise difference with broadcasting.
        sub, Op::Sub);
    binary!(
        /// Elementwise product with broadcasting.
        mul, Op::Mul);
    binary!(
        /// Elementwise quotient with broadcasting.
        div, Op::Div);
    binary!(
        /// Elementwise power with broadcasting; d/db uses ln a, so a ≤ 0 gives NaN there.
        pow, Op::Pow);
    binary!(
        /// Elementwise maximum; on ties each input gets half the gradient (as PyTorch).
        maximum, Op::Maximum);
    binary!(
        /// Elementwise minimum; on ties each input gets half the gradient.
        minimum, Op::Minimum);

    unary!(
        /// −x.
        neg, Op::Neg);
    unary!(
        /// e^x.
        exp, Op::Exp);
    unary!(
        /// ln x.
        log, Op::Log);
    unary!(
        /// ln(1 + x).
        log1p, Op::Log1p);
    unary!(
        /// e^x − 1.
        expm1, Op::Expm1);
    unary!(
        /// √x.
        sqrt, Op::Sqrt);
    unary!(
        /// sin x.
        sin, Op::Sin);
    unary!(
        /// cos x.
        cos, Op::Cos);
    unary!(
        /// tanh x.
        tanh, Op::Tanh);
    unary!(
        /// The logistic function.
        sigmoid, Op::Sigmoid);
    unary!(
        /// erf x.
        erf, Op::Erf);
    unary!(
        /// |x|; the gradient at 0 is 0.
        abs, Op::Abs);
    unary!(
        /// −1, 0 or 1; its gradient is 0 everywhere.
        sign, Op::Sign);
    unary!(
        /// max(x, 0); the gradient at 0 is 0 (PyTorch's choice).
        relu, Op::Relu);
    unary!(
        /// x·sigmoid(x).
        silu, Op::Silu);
    unary!(
        /// ln(1 + e^x).
        softplus, Op::Softplus);

    /// 1/√x.
    pub fn rsqrt(&self) -> Self {
        self.pow_scalar(E::from_f64(-0.5))
    }
    /// 1/x.
    pub fn recip(&self) -> Self {
        self.pow_scalar(-E::ONE)
    }
    /// x².
    pub fn square(&self) -> Self {
        self.pow_scalar(E::from_f64(2.0))
    }
    /// x^p for a scalar p.
    pub fn pow_scalar(&self, p: E) -> Self {
        let v = self.value.pow_scalar(p);
        self.unary_record(Op::PowScalar(p), v)
    }
    /// x for x > 0, slope·x otherwise; the gradient at 0 is `slope`.
    pub fn leaky_relu(&self, slope: E) -> Self {
        let v = self.value.leaky_relu(slope);
        self.unary_record(Op::LeakyRelu(slope), v)
    }
    /// x for x > 0, α(e^x − 1) otherwise.
    pub fn elu(&self, alpha: E) -> Self {
        let v = self.value.elu(alpha);
        self.unary_record(Op::Elu(alpha), v)
    }
    /// GELU, exact or tanh-approximated.
    pub fn gelu(&self, approx: GeluApprox) -> Self {
        let v = self.value.gelu(approx);
        self.unary_record(Op::Gelu(approx), v)
    }
    /// Limits to [min, max]; the gradient passes where min ≤ x ≤ max
    /// (bounds included, as PyTorch).
    ///
    /// # Errors
    /// When min > max.
    pub fn clamp(&self, min: Option<E>, max: Option<E>) -> Result<Self> {
        let v = self.value.clamp(min, max)?;
        Ok(self.unary_record(Op::Clamp(min, max), v))
    }
    /// x + c.
    pub fn add_scalar(&self, c: E) -> Self {
        let v = self.value.add_scalar(c);
        self.unary_record(Op::AddScalar, v)
    }
    /// x − c.
    pub fn sub_scalar(&self, c: E) -> Self {
        self.add_scalar(-c)
    }
    /// c − x.
    pub fn rsub_scalar(&self, c: E) -> Self {
        self.neg().add_scalar(c)
    }
    /// x·c.
    pub fn mul_scalar(&self, c: E) -> Self {
        let v = self.value.mul_scalar(c);
        self.unary_record(Op::MulScalar(c), v)
    }
    /// x / c.
    pub fn div_scalar(&self, c: E) -> Self {
        self.mul_scalar(E::ONE / c)
    }

    mask!(
        /// Mask of `self > other` as a constant tensor (comparisons are not
        /// differentiable).
        gt);
    mask!(
        /// Mask of `self < other`.
        lt);
    mask!(
        /// Mask of `self >= other`.
        ge);
    mask!(
        /// Mask of `self <= other`.
        le);
    mask!(
        /// Mask of `self == other`.
        eq);
    mask!(
        /// Mask of `self != other`.
        ne);

    /// `self` where `cond` is non-zero and `other` elsewhere: PyTorch's
    /// `x.where(cond, other)`, i.e. `torch.where(cond, x, other)` (see
    /// [`Tensor::where_`]). The gradient flows to `self` where `cond` holds
    /// and to `other` elsewhere; `cond` is data, not differentiated.
    ///
    /// # Errors
    /// When the shapes do not broadcast or the Vars are on different tapes.
    pub fn where_(&self, cond: &Tensor<E>, other: &Self) -> Result<Self> {
        let v = self.value.where_(cond, &other.value)?;
        let op = Op::Where(Box::new(cond.clone()));
        Tape::record("where_", op, &[self, other], v)
    }
}
