//! Reductions (`sum`/`sum_axes` and the other pairs), softmax, log-softmax and `sum_to`.

use tapir_tensor::Float;

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::{all_axes, Var};

impl<'t, E: Float> Var<'t, E> {
    /// Sum over `axes`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.sum_axes(axes, keepdim)?;
        let op = Op::Sum {
            axes: axes.to_vec(),
        };
        Tape::record("sum", op, &[self], v)
    }
    /// Sum of all elements (a scalar).
    pub fn sum(&self) -> Self {
        self.sum_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// Mean over `axes`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        // Composites check their arguments under their own name.
        tapir_tensor::check::axes("mean", axes, self.shape())?;
        let s = self.sum_axes(axes, keepdim)?;
        let count = self.value.len() / s.value.len().max(1);
        Ok(s.div_scalar(E::from_usize(count)))
    }
    /// Mean of all elements.
    pub fn mean(&self) -> Self {
        self.sum().div_scalar(E::from_usize(self.value.len()))
    }
    /// Maximum over `axes`; tied maxima share the gradient equally.
    ///
    /// # Errors
    /// When an axis is out of range, repeated or empty.
    pub fn max_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.max_axes(axes, keepdim)?;
        let op = Op::Max {
            axes: axes.to_vec(),
        };
        Tape::record("max", op, &[self], v)
    }
    /// Maximum of all elements; tied maxima share the gradient equally.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn max(&self) -> Result<Self> {
        self.max_axes(&all_axes(self.ndim()), false)
    }
    /// Minimum of all elements; tied minima share the gradient equally.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn min(&self) -> Result<Self> {
        self.min_axes(&all_axes(self.ndim()), false)
    }
    /// Product of all elements (see [`Var::prod`] for its gradient).
    pub fn prod(&self) -> Self {
        self.prod_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// Minimum over `axes`; tied minima share the gradient equally.
    ///
    /// # Errors
    /// When an axis is out of range, repeated or empty.
    pub fn min_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.min_axes(axes, keepdim)?;
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
    pub fn prod_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.prod_axes(axes, keepdim)?;
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
        let mean = self.mean_axes(axes, true)?;
        let d = self.sub(&mean)?;
        let n = self.value.len() / mean.value.len().max(1);
        let ss = d.square().sum_axes(axes, keepdim)?;
        Ok(ss.div_scalar(E::from_usize(n.saturating_sub(correction))))
    }
    /// Variance with Bessel's correction (`torch.var`).
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn var_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.var_with(axes, keepdim, 1)
    }
    /// Variance of all elements with Bessel's correction (`torch.var(x)`).
    pub fn var(&self) -> Self {
        self.var_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// Standard deviation with Bessel's correction (`torch.std`).
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        Ok(self.var_as("std", axes, keepdim, 1)?.sqrt())
    }
    /// Standard deviation dividing by n − `correction`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std_with(&self, axes: &[isize], keepdim: bool, correction: usize) -> Result<Self> {
        Ok(self.var_as("std", axes, keepdim, correction)?.sqrt())
    }
    /// Standard deviation of all elements with Bessel's correction
    /// (`torch.std(x)`).
    pub fn std(&self) -> Self {
        self.std_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// log Σ exp over `axes`, stable for large inputs.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn logsumexp_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let v = self.value.logsumexp_axes(axes, keepdim)?;
        let op = Op::LogSumExp {
            axes: axes.to_vec(),
        };
        Tape::record("logsumexp", op, &[self], v)
    }
    /// log Σ exp over all elements (a scalar), stable for large inputs.
    pub fn logsumexp(&self) -> Self {
        self.logsumexp_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
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
        self.sum_axes(&axes, true)?.reshape_usize(shape)
    }
}
