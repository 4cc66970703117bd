//! The differentiable ops of `Var`, under the names of the `Tensor` methods.
//!
//! Each computes its value with the tensor crate and records one primitive
//! (see `op.rs`), or is composed of other Var ops.

use std::sync::Arc;

use tapir_tensor::{
    Conv1dParams, Conv2dParams, Float, GeluApprox, IndexArray, Pool2dParams, Tensor,
};

use crate::error::Result;
use crate::op::Op;
use crate::tape::{Tape, Var};

macro_rules! unary {
    ($(#[$doc:meta])* $name:ident, $op:expr) => {
        $(#[$doc])*
        pub fn $name(&self) -> Self {
            let v = self.value.$name();
            self.unary_record($op, v)
        }
    };
}

macro_rules! binary {
    ($(#[$doc:meta])* $name:ident, $op:expr) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// When the shapes do not broadcast or the Vars are on different tapes.
        pub fn $name(&self, other: &Self) -> Result<Self> {
            let v = self.value.$name(&other.value)?;
            Tape::record(stringify!($name), $op, &[self, other], v)
        }
    };
}

macro_rules! mask {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// When the shapes do not broadcast.
        pub fn $name(&self, other: &Self) -> Result<Tensor<E>> {
            Ok(self.value.$name(&other.value)?)
        }
    };
}

fn all_axes(n: usize) -> Vec<isize> {
    (0..n as isize).collect()
}

impl<'t, E: Float> Var<'t, E> {
    #[inline]
    fn unary_record(&self, op: Op<E>, v: Tensor<E>) -> Self {
        Tape::record_unary(op, self, v)
    }

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
    binary!(
        /// Matrix product with NumPy semantics (see `Tensor::matmul`).
        matmul, Op::Matmul);

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

    /// Picks `a` where `cond` is non-zero, `b` elsewhere (`torch.where`).
    ///
    /// # Errors
    /// When the shapes do not broadcast or the Vars are on different tapes.
    pub fn where_(cond: &Tensor<E>, a: &Self, b: &Self) -> Result<Self> {
        let v = Tensor::where_(cond, &a.value, &b.value)?;
        Tape::record("where_", Op::Where(Box::new(cond.clone())), &[a, b], v)
    }

    /// Sum over `axes`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.sum(axes, keepdim)?;
        let op = Op::Sum {
            axes: axes.to_vec(),
        };
        Tape::record("sum", op, &[self], v)
    }
    /// Sum of all elements (a scalar).
    pub fn sum_all(&self) -> Self {
        self.sum(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// Mean over `axes`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        // Composites check their arguments under their own name.
        tapir_tensor::check::axes("mean", axes, self.shape())?;
        let s = self.sum(axes, keepdim)?;
        let count = self.value.len() / s.value.len().max(1);
        Ok(s.div_scalar(E::from_usize(count)))
    }
    /// Mean of all elements.
    pub fn mean_all(&self) -> Self {
        self.sum_all().div_scalar(E::from_usize(self.value.len()))
    }
    /// Maximum over `axes`; tied maxima share the gradient equally.
    ///
    /// # Errors
    /// When an axis is out of range, repeated or empty.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.max(axes, keepdim)?;
        let op = Op::Max {
            axes: axes.to_vec(),
        };
        Tape::record("max", op, &[self], v)
    }
    /// Maximum of all elements; tied maxima share the gradient equally.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn max_all(&self) -> Result<Self> {
        self.max(&all_axes(self.ndim()), false)
    }
    /// Minimum of all elements; tied minima share the gradient equally.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn min_all(&self) -> Result<Self> {
        self.min(&all_axes(self.ndim()), false)
    }
    /// Product of all elements (see [`Var::prod`] for its gradient).
    pub fn prod_all(&self) -> Self {
        self.prod(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// Minimum over `axes`; tied minima share the gradient equally.
    ///
    /// # Errors
    /// When an axis is out of range, repeated or empty.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.min(axes, keepdim)?;
        let op = Op::Min {
            axes: axes.to_vec(),
        };
        Tape::record("min", op, &[self], v)
    }
    /// Product over `axes`. The gradient is out/x, so inputs containing
    /// zeros give non-finite gradients.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn prod(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.prod(axes, keepdim)?;
        let op = Op::Prod {
            axes: axes.to_vec(),
        };
        Tape::record("prod", op, &[self], v)
    }
    /// Variance over `axes` dividing by n − `correction` (PyTorch's default
    /// correction is 1: `var_with(axes, keepdim, 1)`).
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn var_with(&self, axes: &[isize], keepdim: bool, correction: usize) -> Result<Self> {
        self.var_as("var", axes, keepdim, correction)
    }

    fn var_as(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        correction: usize,
    ) -> Result<Self> {
        tapir_tensor::check::axes(op, axes, self.shape())?;
        let mean = self.mean(axes, true)?;
        let d = self.sub(&mean)?;
        let n = self.value.len() / mean.value.len().max(1);
        let ss = d.square().sum(axes, keepdim)?;
        Ok(ss.div_scalar(E::from_usize(n.saturating_sub(correction))))
    }
    /// Variance with Bessel's correction (`torch.var`).
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn var(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.var_with(axes, keepdim, 1)
    }
    /// Standard deviation with Bessel's correction (`torch.std`).
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        Ok(self.var_as("std", axes, keepdim, 1)?.sqrt())
    }
    /// log Σ exp over `axes`, stable for large inputs.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.logsumexp(axes, keepdim)?;
        let op = Op::LogSumExp {
            axes: axes.to_vec(),
        };
        Tape::record("logsumexp", op, &[self], v)
    }
    /// Softmax along `axis`.
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn softmax(&self, axis: isize) -> Result<Self> {
        let v = self.value.softmax(axis)?;
        Tape::record("softmax", Op::Softmax(axis), &[self], v)
    }
    /// Log-softmax along `axis`.
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn log_softmax(&self, axis: isize) -> Result<Self> {
        let v = self.value.log_softmax(axis)?;
        Tape::record("log_softmax", Op::LogSoftmax(axis), &[self], v)
    }

    /// New shape with the same elements (one −1 may be inferred).
    ///
    /// # Errors
    /// When the sizes do not match.
    pub fn reshape(&self, shape: impl AsRef<[isize]>) -> Result<Self> {
        let v = self.value.reshape(shape)?;
        Tape::record("reshape", Op::Reshape, &[self], v)
    }
    /// [`Var::reshape`] with explicit sizes.
    ///
    /// # Errors
    /// When the sizes do not match.
    pub fn reshape_usize(&self, shape: &[usize]) -> Result<Self> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let v = self.value.reshape_usize(shape)?;
        Tape::record("reshape", Op::Reshape, &[self], v)
    }
    /// Reorders the axes.
    ///
    /// # Errors
    /// When `axes` is not a permutation.
    pub fn permute(&self, axes: &[isize]) -> Result<Self> {
        let v = self.value.permute(axes)?;
        Tape::record("permute", Op::Permute(axes.to_vec()), &[self], v)
    }
    /// Swaps two axes.
    ///
    /// # Errors
    /// When an axis is out of range.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let nd = self.ndim() as isize;
        let a = tapir_tensor::normalize_axis("transpose", a, self.shape())? as isize;
        let b = tapir_tensor::normalize_axis("transpose", b, self.shape())? as isize;
        let mut p: Vec<isize> = (0..nd).collect();
        p.swap(a as usize, b as usize);
        self.permute(&p)
    }
    /// Transpose of a matrix (rank ≤ 2).
    ///
    /// # Errors
    /// When the rank is above 2.
    pub fn t(&self) -> Result<Self> {
        match self.ndim() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            _ => Err(tapir_tensor::Error::InvalidArgument {
                op: "t",
                msg: format!("expects rank <= 2, got shape {:?}", self.shape()),
            }
            .into()),
        }
    }
    /// Removes `axis` if its size is 1.
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn squeeze(&self, axis: isize) -> Result<Self> {
        let v = self.value.squeeze(axis)?;
        self.reshape_usize(v.shape())
    }
    /// Inserts an axis of size 1.
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        let v = self.value.unsqueeze(axis)?;
        self.reshape_usize(v.shape())
    }
    /// Merges axes start..=end.
    ///
    /// # Errors
    /// When an axis is out of range.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Self> {
        let v = self.value.flatten(start, end)?;
        self.reshape_usize(v.shape())
    }
    /// Broadcasts to `shape`; the gradient sums back.
    ///
    /// # Errors
    /// When the shapes do not broadcast.
    pub fn broadcast_to(&self, shape: impl AsRef<[usize]>) -> Result<Self> {
        if shape.as_ref() == self.shape() {
            return Ok(self.clone());
        }
        let v = self.value.broadcast_to(shape)?;
        Tape::record("broadcast_to", Op::BroadcastTo, &[self], v)
    }
    /// Sums to `shape` (the reverse of broadcasting).
    ///
    /// # Errors
    /// When `self` is not a broadcast of `shape`.
    pub fn sum_to(&self, shape: &[usize]) -> Result<Self> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        // The tensor op's check: `shape` must broadcast to exactly ours.
        let axes = tapir_tensor::check::sum_to_axes("sum_to", self.shape(), shape)?;
        self.sum(&axes, true)?.reshape_usize(shape)
    }

    /// Picks entries `idx` along `axis` (`torch.index_select`; an embedding
    /// lookup with axis 0).
    ///
    /// # Errors
    /// When the axis or an index is out of range.
    pub fn index_select(&self, axis: isize, idx: &[usize]) -> Result<Self> {
        let v = self.value.index_select(axis, idx)?;
        let axis = tapir_tensor::normalize_axis("index_select", axis, self.shape())?;
        let op = Op::IndexSelect {
            axis,
            idx: idx.into(),
        };
        Tape::record("index_select", op, &[self], v)
    }

    /// Python-style slice `start:end:step` along `axis`.
    ///
    /// # Errors
    /// When the axis is out of range or the step is 0.
    pub fn slice(
        &self,
        axis: isize,
        start: isize,
        end: Option<isize>,
        step: usize,
    ) -> Result<Self> {
        let v = self.value.slice(axis, start, end, step)?;
        let a = tapir_tensor::normalize_axis("slice", axis, self.shape())?;
        let n = self.shape()[a] as isize;
        let first = if start < 0 { start + n } else { start }.clamp(0, n) as usize;
        let idx: Vec<usize> = (0..v.shape()[a]).map(|k| first + k * step).collect();
        let op = Op::IndexSelect {
            axis: a,
            idx: idx.into(),
        };
        Tape::record("slice", op, &[self], v)
    }
    /// `length` entries from `start` along `axis`.
    ///
    /// # Errors
    /// When the range does not fit.
    pub fn narrow(&self, axis: isize, start: usize, length: usize) -> Result<Self> {
        let a = tapir_tensor::normalize_axis("narrow", axis, self.shape())?;
        if start
            .checked_add(length)
            .is_none_or(|end| end > self.shape()[a])
        {
            // Let the tensor op produce its error message.
            self.value.narrow(axis, start, length)?;
        }
        self.slice(axis, start as isize, Some((start + length) as isize), 1)
    }
    /// Splits into pieces of the given sizes along `axis`.
    ///
    /// # Errors
    /// When the sizes do not add up.
    pub fn split_sizes(&self, sizes: &[usize], axis: isize) -> Result<Vec<Self>> {
        let parts = self.value.split_sizes(sizes, axis)?;
        let mut start = 0;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            let a = tapir_tensor::normalize_axis("split", axis, self.shape())?;
            let len = p.shape()[a];
            out.push(self.narrow(axis, start, len)?);
            start += len;
        }
        Ok(out)
    }
    /// Splits into pieces of `size` along `axis`.
    ///
    /// # Errors
    /// When `size` is 0 or the axis is out of range.
    pub fn split(&self, size: usize, axis: isize) -> Result<Vec<Self>> {
        let a = tapir_tensor::normalize_axis("split", axis, self.shape())?;
        let sizes: Vec<usize> = self
            .value
            .split(size, axis)?
            .iter()
            .map(|p| p.shape()[a])
            .collect();
        self.split_sizes(&sizes, axis)
    }
    /// Splits into `chunks` pieces along `axis`.
    ///
    /// # Errors
    /// When `chunks` is 0 or the axis is out of range.
    pub fn chunk(&self, chunks: usize, axis: isize) -> Result<Vec<Self>> {
        let a = tapir_tensor::normalize_axis("chunk", axis, self.shape())?;
        let sizes: Vec<usize> = self
            .value
            .chunk(chunks, axis)?
            .iter()
            .map(|p| p.shape()[a])
            .collect();
        self.split_sizes(&sizes, axis)
    }
    /// Joins Vars along an existing axis.
    ///
    /// # Errors
    /// When the list is empty or shapes differ off `axis`.
    pub fn concat(vars: &[&Self], axis: isize) -> Result<Self> {
        let values: Vec<Tensor<E>> = vars.iter().map(|v| v.value.clone()).collect();
        let v = Tensor::concat(&values, axis)?;
        let a = tapir_tensor::normalize_axis("concat", axis, values[0].shape())?;
        Tape::record("concat", Op::Concat { axis: a }, vars, v)
    }
    /// Joins equal-shaped Vars along a new axis.
    ///
    /// # Errors
    /// When the list is empty or shapes differ.
    pub fn stack(vars: &[&Self], axis: isize) -> Result<Self> {
        let first = vars.first().ok_or(tapir_tensor::Error::InvalidArgument {
            op: "stack",
            msg: "needs at least one Var".into(),
        })?;
        // Validates the axis and every shape with the tensor op's messages.
        Tensor::stack(std::slice::from_ref(&first.value), axis)?;
        for v in &vars[1..] {
            tapir_tensor::check::same_shape("stack", "the stacked Vars", first.shape(), v.shape())?;
        }
        let up: Vec<Self> = vars
            .iter()
            .map(|v| v.unsqueeze(axis))
            .collect::<Result<_>>()?;
        let refs: Vec<&Self> = up.iter().collect();
        Self::concat(&refs, axis)
    }
    /// Pads with a constant, one (before, after) pair per axis.
    ///
    /// # Errors
    /// When `pads` does not have one pair per axis.
    pub fn pad(&self, pads: &[(usize, usize)], value: E) -> Result<Self> {
        let v = self.value.pad(pads, value)?;
        Tape::record("pad", Op::Pad(pads.to_vec()), &[self], v)
    }
    /// `self` with the slices of `src` added at `idx` along `axis`
    /// (`torch.index_add`); differentiable in both.
    ///
    /// # Errors
    /// When an index is out of range or `src` has the wrong shape.
    pub fn index_add(&self, axis: isize, idx: &[usize], src: &Self) -> Result<Self> {
        // Validates shapes and indices with the tensor op's messages.
        let v = self.value.zeros_like().index_add(axis, idx, &src.value)?;
        let a = tapir_tensor::normalize_axis("index_add", axis, self.shape())?;
        let op = Op::IndexAddZeros {
            axis: a,
            idx: idx.into(),
        };
        let added = Tape::record("index_add", op, &[src], v)?;
        self.add(&added)
    }
    /// `torch.gather` along `axis`.
    ///
    /// # Errors
    /// When the index does not fit.
    pub fn gather(&self, axis: isize, index: &IndexArray) -> Result<Self> {
        let v = self.value.gather(axis, index)?;
        let a = tapir_tensor::normalize_axis("gather", axis, self.shape())?;
        let op = Op::Gather {
            axis: a,
            idx: Arc::new(index.clone()),
        };
        Tape::record("gather", op, &[self], v)
    }
    /// `self` with `src` added at `index` along `axis` (`torch.scatter_add`).
    ///
    /// # Errors
    /// When the index does not fit.
    pub fn scatter_add(&self, axis: isize, index: &IndexArray, src: &Self) -> Result<Self> {
        let zeros = self.value.zeros_like();
        let a = tapir_tensor::normalize_axis("scatter_add", axis, self.shape())?;
        let v = zeros.scatter_add(axis, index, &src.value)?;
        let op = Op::ScatterAddZeros {
            axis: a,
            idx: Arc::new(index.clone()),
        };
        let scattered = Tape::record("scatter_add", op, &[src], v)?;
        self.add(&scattered)
    }

    /// 2-D convolution (see `Tensor::conv2d`); the bias is added as a
    /// broadcast (O, 1, 1) term.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv2d(&self, weight: &Self, bias: Option<&Self>, p: Conv2dParams) -> Result<Self> {
        // The tensor op's check, bias included (the bias is added below as
        // a broadcast, which would accept other lengths).
        tapir_tensor::check::conv2d(
            "conv2d",
            self.shape(),
            weight.shape(),
            bias.map(|b| b.shape()),
            p,
        )?;
        let v = self.value.conv2d(&weight.value, None, p)?;
        let y = Tape::record("conv2d", Op::Conv2d(Box::new(p)), &[self, weight], v)?;
        match bias {
            None => Ok(y),
            Some(b) => Var::add(&y, &b.reshape_usize(&[b.value.len(), 1, 1])?),
        }
    }
    /// Input gradient of a convolution, as a differentiable op (used by the
    /// backward rule of `conv2d` so that it can be differentiated again).
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv2d_input_grad(
        &self,
        weight: &Self,
        input_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        let v = self
            .value
            .conv2d_input_grad(&weight.value, input_shape, p)?;
        Tape::record(
            "conv2d_input_grad",
            Op::Conv2dInputGrad(Box::new(p)),
            &[self, weight],
            v,
        )
    }
    /// Weight gradient of a convolution, as a differentiable op.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv2d_weight_grad(
        &self,
        input: &Self,
        weight_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        let v = self
            .value
            .conv2d_weight_grad(&input.value, weight_shape, p)?;
        Tape::record(
            "conv2d_weight_grad",
            Op::Conv2dWeightGrad(Box::new(p)),
            &[self, input],
            v,
        )
    }
    /// 1-D convolution, as a 2-D convolution of height 1.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv1d(&self, weight: &Self, bias: Option<&Self>, p: Conv1dParams) -> Result<Self> {
        // The tensor op's check, so errors name conv1d and a bias of the
        // wrong shape is refused.
        tapir_tensor::check::conv1d(
            "conv1d",
            self.shape(),
            weight.shape(),
            bias.map(|b| b.shape()),
            p,
        )?;
        let p2 = Conv2dParams {
            stride: [1, p.stride],
            padding: [0, p.padding],
            dilation: [1, p.dilation],
            groups: p.groups,
        };
        let y = self
            .unsqueeze(2)?
            .conv2d(&weight.unsqueeze(2)?, None, p2)?
            .squeeze(2)?;
        match bias {
            None => Ok(y),
            Some(b) => Var::add(&y, &b.reshape_usize(&[b.value.len(), 1])?),
        }
    }
    /// Transposed 2-D convolution (see `Tensor::conv_transpose2d`).
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv_transpose2d(&self, weight: &Self, p: Conv2dParams) -> Result<Self> {
        let v = self.value.conv_transpose2d(&weight.value, p)?;
        let shape = v.shape().to_vec();
        self.conv2d_input_grad(weight, &shape, p)
    }
    /// 2-D max pooling; the gradient goes to the chosen element of each
    /// window (the first on ties).
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    pub fn max_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        let (y, idx) = self.value.max_pool2d(p)?;
        let s = self.shape().to_vec();
        let (n, c, oh, ow) = (y.shape()[0], y.shape()[1], y.shape()[2], y.shape()[3]);
        // Max pooling is a gather of the chosen elements from each plane.
        let idx = idx
            .into_shape_with_order(ndarray_dyn(&[n * c, oh * ow]))
            .map_err(|e| tapir_tensor::Error::InvalidArgument {
                op: "max_pool2d",
                msg: e.to_string(),
            })?;
        self.reshape_usize(&[s[0] * s[1], s[2] * s[3]])?
            .gather(1, &idx)?
            .reshape_usize(y.shape())
    }
    /// 2-D average pooling (padding counts in the average).
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    pub fn avg_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        let v = self.value.avg_pool2d(p)?;
        Tape::record("avg_pool2d", Op::AvgPool2d(Box::new(p)), &[self], v)
    }
    /// The adjoint of [`Var::avg_pool2d`], as a differentiable op.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn avg_pool2d_backward(&self, input_shape: &[usize], p: Pool2dParams) -> Result<Self> {
        let v = self.value.avg_pool2d_backward(input_shape, p)?;
        Tape::record(
            "avg_pool2d_backward",
            Op::AvgPool2dBackward(Box::new(p)),
            &[self],
            v,
        )
    }

    /// Mean softmax cross-entropy between logits (N, C) and class indices
    /// (`torch.nn.functional.cross_entropy` with mean reduction).
    ///
    /// # Errors
    /// When the logits are not 2-D, the label count differs from N, or a
    /// label is ≥ C.
    pub fn cross_entropy(&self, labels: &[usize]) -> Result<Self> {
        if self.ndim() != 2 || labels.len() != self.shape()[0] {
            return Err(tapir_tensor::Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!(
                    "expects logits (N, C) and N labels, got {:?} and {} labels",
                    self.shape(),
                    labels.len()
                ),
            }
            .into());
        }
        let classes = self.shape()[1];
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
            return Err(tapir_tensor::Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!(
                    "label {l} (sample {i}) is out of range for {classes} classes (logits {:?})",
                    self.shape()
                ),
            }
            .into());
        }
        let idx = tapir_tensor::indices(labels.to_vec(), [labels.len(), 1])?;
        let picked = self.log_softmax(-1)?.gather(1, &idx)?;
        Ok(picked.mean_all().neg())
    }

    /// Mean squared error against a target of the same shape
    /// (`torch.nn.functional.mse_loss`; PyTorch warns and broadcasts a
    /// target of another shape, which is nearly always a bug, so it is an
    /// error here).
    ///
    /// # Errors
    /// When the shapes differ.
    pub fn mse(&self, target: &Self) -> Result<Self> {
        tapir_tensor::check::same_shape("mse", "input and target", self.shape(), target.shape())?;
        Ok(self.sub(target)?.square().mean_all())
    }
}

fn ndarray_dyn(s: &[usize]) -> tapir_tensor::ndarray::IxDyn {
    tapir_tensor::ndarray::IxDyn(s)
}

macro_rules! var_binop {
    ($trait:ident, $method:ident, $scalar:ident) => {
        impl<'t, E: Float> std::ops::$trait<&Var<'t, E>> for &Var<'t, E> {
            type Output = Var<'t, E>;
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: &Var<'t, E>) -> Var<'t, E> {
                match Var::$method(self, rhs) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        impl<'t, E: Float> std::ops::$trait<Var<'t, E>> for Var<'t, E> {
            type Output = Var<'t, E>;
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: Var<'t, E>) -> Var<'t, E> {
                <&Var<'t, E> as std::ops::$trait<&Var<'t, E>>>::$method(&self, &rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<&Var<'t, E>> for Var<'t, E> {
            type Output = Var<'t, E>;
            /// # Panics
            /// When the shapes do not broadcast or the tapes differ.
            #[track_caller]
            fn $method(self, rhs: &Var<'t, E>) -> Var<'t, E> {
                <&Var<'t, E> as std::ops::$trait<&Var<'t, E>>>::$method(&self, rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<E> for &Var<'t, E> {
            type Output = Var<'t, E>;
            fn $method(self, rhs: E) -> Var<'t, E> {
                self.$scalar(rhs)
            }
        }
        impl<'t, E: Float> std::ops::$trait<E> for Var<'t, E> {
            type Output = Var<'t, E>;
            fn $method(self, rhs: E) -> Var<'t, E> {
                self.$scalar(rhs)
            }
        }
    };
}

var_binop!(Add, add, add_scalar);
var_binop!(Sub, sub, sub_scalar);
var_binop!(Mul, mul, mul_scalar);
var_binop!(Div, div, div_scalar);

impl<'t, E: Float> std::ops::Neg for &Var<'t, E> {
    type Output = Var<'t, E>;
    fn neg(self) -> Var<'t, E> {
        Var::neg(self)
    }
}

impl<'t, E: Float> std::ops::Neg for Var<'t, E> {
    type Output = Var<'t, E>;
    fn neg(self) -> Var<'t, E> {
        Var::neg(&self)
    }
}
