//! Elementwise ops: arithmetic with broadcasting, scalar ops, activations,
//! comparisons (masks) and `where_`.

use tapir_tensor::{Float, GeluApprox, Tensor};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    binary!(
        /// a + b, elementwise with broadcasting (`torch.add`, operator `+`).
        /// Derivative: ∂/∂a = ∂/∂b = 1 (summed back over broadcast axes).
        add, Op::Add);
    binary!(
        /// a · b, elementwise with broadcasting (`torch.mul`, operator `*`).
        /// Derivative: ∂/∂a = b, ∂/∂b = a.
        mul, Op::Mul);
    binary!(
        /// a / b, elementwise with broadcasting (`torch.div`, operator `/`).
        /// Derivative: ∂/∂a = 1/b, ∂/∂b = −a/b².
        div, Op::Div);
    binary!(
        /// aᵇ, elementwise with broadcasting (`torch.pow`). Derivative:
        /// ∂/∂a = b·aᵇ⁻¹, ∂/∂b = aᵇ·ln a (NaN for a ≤ 0).
        pow, Op::Pow);
    binary!(
        /// max(a, b), elementwise with broadcasting; NaN propagates
        /// (`torch.maximum`; NumPy's `np.maximum`). Derivative: 1 to the
        /// larger input; on ties each input gets half (as PyTorch).
        maximum, Op::Maximum);

    /// a − b, elementwise with broadcasting (`torch.sub`, operator `-`).
    /// Derivative: ∂/∂a = 1, ∂/∂b = −1. Composite: a + (−1)·b, the same
    /// bits as a direct subtraction.
    ///
    /// # Errors
    /// When the shapes do not broadcast or the Vars are on different tapes.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.check_binary("sub", other)?;
        self.add(&other.neg())
    }

    /// min(a, b), elementwise with broadcasting; NaN propagates
    /// (`torch.minimum`). Derivative: 1 to the smaller input, half each on
    /// ties. Composite: −max(−a, −b).
    ///
    /// # Errors
    /// When the shapes do not broadcast or the Vars are on different tapes.
    pub fn minimum(&self, other: &Self) -> Result<Self> {
        self.check_binary("minimum", other)?;
        Ok(self.neg().maximum(&other.neg())?.neg())
    }

    /// −x (`torch.neg`, unary `-`). Derivative: −1. Recorded as
    /// `mul_scalar(−1)`, which gives the same bits.
    pub fn neg(&self) -> Self {
        self.mul_scalar(-E::ONE)
    }
    unary!(
        /// eˣ (`torch.exp`). Derivative: eˣ (the saved output).
        exp, Op::Exp);
    unary!(
        /// ln x (`torch.log`). Derivative: 1/x.
        log, Op::Log);
    unary!(
        /// ln(1 + x), accurate for small x (`torch.log1p`). Derivative:
        /// 1/(1 + x).
        log1p, Op::Log1p);
    unary!(
        /// eˣ − 1, accurate for small x (`torch.expm1`). Derivative: eˣ.
        expm1, Op::Expm1);
    unary!(
        /// √x (`torch.sqrt`). Derivative: 1/(2√x).
        sqrt, Op::Sqrt);
    unary!(
        /// sin x (`torch.sin`). Derivative: cos x.
        sin, Op::Sin);
    unary!(
        /// cos x (`torch.cos`). Derivative: −sin x.
        cos, Op::Cos);
    unary!(
        /// tanh x = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ) (`torch.tanh`). Derivative:
        /// 1 − tanh² x.
        tanh, Op::Tanh);
    unary!(
        /// The logistic function σ(x) = 1/(1 + e⁻ˣ) (`torch.sigmoid`; Keras
        /// `sigmoid`). Derivative: σ(x)(1 − σ(x)).
        sigmoid, Op::Sigmoid);
    unary!(
        /// The error function erf x = (2/√π)∫₀ˣ e^(−t²) dt (`torch.erf`).
        /// Derivative: (2/√π)e^(−x²).
        erf, Op::Erf);
    unary!(
        /// |x| (`torch.abs`). Derivative: sign(x), and 0 at x = 0.
        abs, Op::Abs);
    unary!(
        /// −1, 0 or 1 (`torch.sign`). Derivative: 0 everywhere.
        sign, Op::Sign);
    unary!(
        /// max(x, 0) (`torch.relu`). Derivative: 1 for x > 0, else 0
        /// (0 at x = 0, PyTorch's choice).
        relu, Op::Relu);
    unary!(
        /// ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^−|x|) so it never
        /// overflows (`torch.nn.functional.softplus` with beta 1).
        /// Derivative: σ(x).
        softplus, Op::Softplus);

    /// x·σ(x), also called swish (`torch.nn.functional.silu`; Keras
    /// `silu`/`swish`). Derivative: σ(x)(1 + x(1 − σ(x))). Composite:
    /// `x * sigmoid(x)`.
    pub fn silu(&self) -> Self {
        self.mul(&self.sigmoid()).expect("same shape, same tape")
    }
    /// 1/√x (`torch.rsqrt`). Derivative: −½x^(−3/2).
    pub fn rsqrt(&self) -> Self {
        self.pow_scalar(E::from_f64(-0.5))
    }
    /// 1/x (`torch.reciprocal`). Derivative: −1/x².
    pub fn recip(&self) -> Self {
        self.pow_scalar(-E::ONE)
    }
    /// x² (`torch.square`). Derivative: 2x.
    pub fn square(&self) -> Self {
        self.pow_scalar(E::from_f64(2.0))
    }
    /// xᵖ for a scalar p (`torch.pow(x, p)`). Derivative: p·xᵖ⁻¹.
    pub fn pow_scalar(&self, p: E) -> Self {
        let v = self.value.pow_scalar(p);
        self.unary_record(Op::PowScalar(p), v)
    }
    /// x for x > 0, slope·x otherwise
    /// (`torch.nn.functional.leaky_relu(x, negative_slope)`, default slope
    /// 0.01; Keras `LeakyReLU`, default 0.3). Derivative: 1 for x > 0,
    /// else `slope` (so `slope` at 0, as PyTorch). Composite:
    /// `x.where_(x > 0, slope·x)`.
    pub fn leaky_relu(&self, slope: E) -> Self {
        let pos = self
            .value
            .map(|v| if v > E::ZERO { E::ONE } else { E::ZERO });
        self.where_(&pos, &self.mul_scalar(slope))
            .expect("same shape, same tape")
    }
    /// x for x > 0, α(eˣ − 1) otherwise (`torch.nn.functional.elu`, default
    /// α = 1). Derivative: 1 for x > 0, else α·eˣ (α at 0, as PyTorch).
    /// Composite: `x.where_(x > 0, α·expm1(min(x, 0)))`; the clamp keeps
    /// the unused branch finite, so its zero gradient stays zero.
    pub fn elu(&self, alpha: E) -> Self {
        let pos = self
            .value
            .map(|v| if v > E::ZERO { E::ONE } else { E::ZERO });
        let negative = self
            .clamp(None, Some(E::ZERO))
            .expect("no lower bound")
            .expm1()
            .mul_scalar(alpha);
        self.where_(&pos, &negative).expect("same shape, same tape")
    }
    /// x·tanh(softplus(x)) (`torch.nn.functional.mish`). Composite of
    /// softplus, tanh and mul.
    pub fn mish(&self) -> Self {
        self.mul(&self.softplus().tanh())
            .expect("same shape, same tape")
    }
    /// x clamped to [min, max] (`torch.nn.functional.hardtanh`, default
    /// ±1). Unlike [`Var::clamp`], the gradient is PyTorch's hardtanh one:
    /// 1 strictly inside (min, max), 0 at and beyond the bounds.
    /// Composite: `x.where_(min < x < max, clamp(x))`, the clamped branch
    /// a constant.
    ///
    /// # Errors
    /// When min > max.
    pub fn hardtanh(&self, min: E, max: E) -> Result<Self> {
        let clamped = self.value.clamp(Some(min), Some(max))?;
        let inside = self
            .value
            .map(|v| if v > min && v < max { E::ONE } else { E::ZERO });
        self.where_(&inside, &self.lift(clamped))
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
