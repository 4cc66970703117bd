//! Reductions (`sum`/`sum_axes` and the other pairs), softmax, log-softmax and `sum_to`.

use tapir_tensor::Float;

use crate::error::Result;
use crate::op::{NormOp, Op};
use crate::tape::Tape;
use crate::var::{all_axes, Var};

impl<'t, E: Float> Var<'t, E> {
    /// Σ over `axes`, which are dropped unless `keepdim` (`torch.sum(x, dim,
    /// keepdim)`; `tf.reduce_sum` and `np.sum` call the flag `keepdims`).
    /// Gradient: broadcast back to the input's shape.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
    /// let y = x.sum_axes(&[0], false)?;
    /// assert_eq!(y.value().to_vec(), [4.0, 6.0]);
    /// assert_eq!(x.sum_axes(&[-1], true)?.shape(), &[2, 1]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0; 4]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// Σ of all elements, as a 0-d Var (`torch.sum(x)`; `tf.reduce_sum`).
    /// Gradient: broadcast back to the input's shape.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
    /// let y = x.sum();
    /// assert!(y.shape().is_empty());
    /// assert_eq!(y.value().item()?, 10.0);
    /// let g = tape.gradient_vars(&y, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0; 4]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn sum(&self) -> Self {
        self.sum_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// (1/n) Σ over `axes`, n the number of elements averaged (`torch.mean(x,
    /// dim, keepdim)`; `tf.reduce_mean`). Gradient: g/n broadcast back to
    /// the input's shape. Composite: `sum_axes` then `div_scalar(n)`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
    /// let y = x.mean_axes(&[1], false)?;
    /// assert_eq!(y.value().to_vec(), [1.5, 3.5]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.5; 4]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// (1/n) Σ of all n elements, as a 0-d Var (`torch.mean(x)`;
    /// `tf.reduce_mean`). Gradient: g/n to every element.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
    /// let y = x.mean();
    /// assert_eq!(y.value().item()?, 2.5);
    /// let g = tape.gradient_vars(&y, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.25; 4]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn mean(&self) -> Self {
        self.sum().div_scalar(E::from_usize(self.value.len()))
    }
    /// max over `axes`; NaN propagates (`torch.amax(x, dim, keepdim)`;
    /// `tf.reduce_max`, `np.max`). Gradient: to the maximal elements, shared
    /// equally among ties (as `torch.amax`; `torch.max(x, dim)` returns
    /// indices and sends it to one element only).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 3.0, 3.0, 2.0, 0.0, 1.0], [2, 3])?);
    /// let y = x.max_axes(&[1], false)?;
    /// assert_eq!(y.value().to_vec(), [3.0, 2.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.0, 0.5, 0.5, 1.0, 0.0, 0.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// max of all elements, as a 0-d Var; NaN propagates (`torch.max(x)`,
    /// `torch.amax`; `tf.reduce_max`). Gradient: to the maximal elements,
    /// shared equally among ties.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![4.0, 1.0, 4.0], [3])?);
    /// let y = x.max()?;
    /// assert_eq!(y.value().item()?, 4.0);
    /// let g = tape.gradient_vars(&y, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.5, 0.0, 0.5]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn max(&self) -> Result<Self> {
        self.max_axes(&all_axes(self.ndim()), false)
    }
    /// min of all elements, as a 0-d Var; NaN propagates (`torch.min(x)`,
    /// `torch.amin`; `tf.reduce_min`). Gradient: to the minimal elements,
    /// shared equally among ties.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn min(&self) -> Result<Self> {
        self.min_axes(&all_axes(self.ndim()), false)
    }
    /// Π of all elements, as a 0-d Var (`torch.prod(x)`; `tf.reduce_prod`).
    /// Gradient: g·out/x, so an input holding a zero gets a non-finite
    /// gradient (PyTorch special-cases zeros; see [`Var::prod_axes`]).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![2.0, 3.0, 4.0], [3])?);
    /// let y = x.prod();
    /// assert_eq!(y.value().item()?, 24.0);
    /// let g = tape.gradient_vars(&y, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [12.0, 8.0, 6.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn prod(&self) -> Self {
        self.prod_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// min over `axes`; NaN propagates (`torch.amin(x, dim, keepdim)`;
    /// `tf.reduce_min`, `np.min`). Gradient: to the minimal elements, shared
    /// equally among ties (as `torch.amin`).
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
    /// Π over `axes` (`torch.prod(x, dim, keepdim)`, which takes one dim;
    /// `tf.reduce_prod`). Gradient: g·out/x broadcast back, so an input
    /// holding a zero gets a non-finite gradient (PyTorch special-cases
    /// zeros).
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
    /// Σ (x − mean)² / (n − `correction`) over `axes` (`torch.var(x, dim,
    /// correction=…, keepdim)`; `np.var(x, axis, ddof=…)`). Correction 1
    /// (Bessel's, [`Var::var_axes`]) is PyTorch's default, 0 (the population
    /// variance) NumPy's and `tf.math.reduce_variance`'s. Gradient:
    /// 2(x − mean)·g/(n − `correction`). Composite: `mean_axes`, `sub`,
    /// `square`, `sum_axes`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 3.0, 2.0, 6.0], [2, 2])?);
    /// let y = x.var_with(&[1], false, 0)?;
    /// assert_eq!(y.value().to_vec(), [1.0, 4.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [-1.0, 1.0, -2.0, 2.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// Σ (x − mean)² / (n − 1) over `axes`, with Bessel's correction
    /// (`torch.var(x, dim, keepdim)`; `np.var` and `tf.math.reduce_variance`
    /// divide by n: use [`Var::var_with`] with correction 0). Gradient:
    /// 2(x − mean)·g/(n − 1).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 3.0, 2.0, 6.0], [2, 2])?);
    /// let y = x.var_axes(&[1], false)?;
    /// assert_eq!(y.value().to_vec(), [2.0, 8.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [-2.0, 2.0, -4.0, 4.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn var_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.var_with(axes, keepdim, 1)
    }
    /// Σ (x − mean)² / (n − 1) over all n elements, as a 0-d Var
    /// (`torch.var(x)`; `np.var(x)` divides by n). Gradient:
    /// 2(x − mean)·g/(n − 1).
    pub fn var(&self) -> Self {
        self.var_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// √var over `axes`, with Bessel's correction (`torch.std(x, dim,
    /// keepdim)`; `np.std` and `tf.math.reduce_std` divide by n). Gradient:
    /// (x − mean)·g/((n − 1)·std), not finite where std = 0. Composite: the
    /// square root of [`Var::var_axes`].
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        Ok(self.var_as("std", axes, keepdim, 1)?.sqrt())
    }
    /// √(Σ (x − mean)² / (n − `correction`)) over `axes` (`torch.std(x, dim,
    /// correction=…)`; `np.std(x, axis, ddof=…)`). Gradient:
    /// (x − mean)·g/((n − `correction`)·std).
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std_with(&self, axes: &[isize], keepdim: bool, correction: usize) -> Result<Self> {
        Ok(self.var_as("std", axes, keepdim, correction)?.sqrt())
    }
    /// √var of all elements, with Bessel's correction, as a 0-d Var
    /// (`torch.std(x)`; `np.std(x)` divides by n). Gradient:
    /// (x − mean)·g/((n − 1)·std).
    pub fn std(&self) -> Self {
        self.std_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// ln Σ eˣ over `axes`, computed as m + ln Σ eˣ⁻ᵐ (m the maximum) so it
    /// never overflows (`torch.logsumexp(x, dim, keepdim)`;
    /// `tf.reduce_logsumexp`). Gradient: g·exp(x − out), i.e. g times the
    /// softmax over `axes`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1000.0, 1000.0], [1, 2])?);
    /// let y = x.logsumexp_axes(&[1], false)?;
    /// assert!((y.value().to_vec()[0] - (1000.0 + 2f64.ln())).abs() < 1e-9);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// for gi in g[0].as_ref().unwrap().to_vec() {
    ///     assert!((gi - 0.5).abs() < 1e-12);
    /// }
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// ln Σ eˣ over all elements, as a 0-d Var, max-shifted so it never
    /// overflows (`torch.logsumexp` over every dim; `tf.reduce_logsumexp`).
    /// Gradient: g·exp(x − out), g times the softmax of all elements.
    pub fn logsumexp(&self) -> Self {
        self.logsumexp_axes(&all_axes(self.ndim()), false)
            .expect("all axes are valid")
    }
    /// eˣⁱ / Σⱼ eˣʲ along `axis`, max-shifted so it never overflows
    /// (`torch.softmax(x, dim)`, `torch.nn.functional.softmax`;
    /// `tf.nn.softmax`). Gradient: y ⊙ (g − Σ g ⊙ y), the sum along `axis`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1000.0, 1000.0], [2])?);
    /// let y = x.softmax(0)?;
    /// assert_eq!(y.value().to_vec(), [0.5, 0.5]);
    /// // The gradient of y₀: y₀(1 − y₀) and −y₀y₁.
    /// let y0 = y.mul(&tape.constant(Tensor::from_vec(vec![1.0, 0.0], [2])?))?.sum();
    /// let g = tape.gradient_vars(&y0, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.25, -0.25]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn softmax(&self, axis: isize) -> Result<Self> {
        let v = self.value.softmax(axis)?;
        Tape::record("softmax", Op::Softmax(axis), &[self], v)
    }
    /// xᵢ − ln Σⱼ eˣʲ along `axis`, max-shifted so it never overflows
    /// (`torch.log_softmax(x, dim)`, `torch.nn.functional.log_softmax`;
    /// `tf.nn.log_softmax`). Gradient: g − softmax(x) ⊙ Σ g, the sum along
    /// `axis`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1000.0, 1000.0], [2])?);
    /// let y = x.log_softmax(-1)?;
    /// for yi in y.value().to_vec() {
    ///     assert!((yi + std::f64::consts::LN_2).abs() < 1e-12);
    /// }
    /// let y0 = y.mul(&tape.constant(Tensor::from_vec(vec![1.0, 0.0], [2])?))?.sum();
    /// let g = tape.gradient_vars(&y0, &[&x], &Default::default())?;
    /// let g = g[0].as_ref().unwrap().to_vec();
    /// assert!((g[0] - 0.5).abs() < 1e-12 && (g[1] + 0.5).abs() < 1e-12);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn log_softmax(&self, axis: isize) -> Result<Self> {
        let v = self.value.log_softmax(axis)?;
        Tape::record("log_softmax", Op::LogSoftmax(axis), &[self], v)
    }

    /// Σ over the axes that broadcasting `shape` would stretch, giving
    /// `shape`: the reverse of [`Var::broadcast_to`] (`Tensor.sum_to_size`).
    /// Gradient: broadcast back to the input's shape.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?);
    /// let y = x.sum_to(&[3])?;
    /// assert_eq!(y.value().to_vec(), [5.0, 7.0, 9.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0; 6]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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

    /// Layer normalisation over the last `ndim` axes, one primitive:
    /// (x − mean)/√(var + eps)·w + b with the biased variance
    /// (`torch.nn.functional.layer_norm(x, x.shape[-ndim:], w, b, eps)`).
    /// `weight` and `bias` have the normalised shape. Gradient: the
    /// analytic one from the saved row means and 1/std (see
    /// [`Tensor::norm_backward`](tapir_tensor::Tensor::norm_backward));
    /// differentiable again.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
    /// let y = x.layer_norm(1, None, None, 1e-5)?;
    /// assert!((y.value().to_vec()[0] + 0.99998).abs() < 1e-5);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `ndim` is 0 or above the rank, or a weight or bias does not
    /// have the normalised shape.
    pub fn layer_norm(
        &self,
        ndim: usize,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<Self> {
        self.norm(tapir_tensor::NormKind::Layer, ndim, weight, bias, eps)
    }

    /// Batch normalisation with batch statistics, one primitive: per
    /// channel (axis 1) of `self` `[N, C, ..]`, (x − mean)/√(var + eps)·w +
    /// b with the mean and biased variance over every other axis
    /// (`torch.nn.functional.batch_norm(x, None, None, w, b,
    /// training=True)`); `weight` and `bias` are `[C]`. Gradient: the
    /// analytic one from the saved per-channel mean and 1/std;
    /// differentiable again. Running averages are tapir-nn's `BatchNorm`'s.
    ///
    /// # Errors
    /// Fewer than 2 axes or 2 values per channel, or a weight or bias not
    /// `[C]`.
    pub fn batch_norm(&self, weight: Option<&Self>, bias: Option<&Self>, eps: f64) -> Result<Self> {
        Ok(self.batch_norm_stats(weight, bias, eps)?.0)
    }

    /// [`Var::batch_norm`], also returning the per-channel statistics it
    /// used (mean and 1/√(var + eps), `[C]`), from which a caller keeps
    /// running averages.
    ///
    /// # Errors
    /// As [`Var::batch_norm`].
    pub fn batch_norm_stats(
        &self,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<(Self, tapir_tensor::NormStats<E>)> {
        self.norm_with_stats(tapir_tensor::NormKind::Batch, 0, weight, bias, eps)
    }

    /// Group normalisation, one primitive: the channels (axis 1) of each
    /// sample of `self` `[N, C, ..]` in `groups` consecutive groups, each
    /// normalised over its channels and positions (biased variance), then
    /// x̂·w[c] + b[c] (`torch.nn.functional.group_norm`); `weight` and
    /// `bias` are `[C]`. Gradient: analytic, from the saved statistics;
    /// differentiable again.
    ///
    /// # Errors
    /// Fewer than 2 axes, `groups` not dividing C, or a weight or bias not
    /// `[C]`.
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<Self> {
        // `ndim` carries the group count for this kind.
        self.norm(tapir_tensor::NormKind::Group, groups, weight, bias, eps)
    }

    /// RMS normalisation over the last `ndim` axes, one primitive:
    /// x/√(mean(x²) + eps)·w (`torch.nn.functional.rms_norm`; PyTorch's
    /// default eps is the dtype's machine epsilon). Gradient as
    /// [`Var::layer_norm`].
    ///
    /// # Errors
    /// As [`Var::layer_norm`].
    pub fn rms_norm(&self, ndim: usize, weight: Option<&Self>, eps: f64) -> Result<Self> {
        self.norm(tapir_tensor::NormKind::Rms, ndim, weight, None, eps)
    }

    fn norm(
        &self,
        kind: tapir_tensor::NormKind,
        ndim: usize,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<Self> {
        Ok(self.norm_with_stats(kind, ndim, weight, bias, eps)?.0)
    }

    fn norm_with_stats(
        &self,
        kind: tapir_tensor::NormKind,
        ndim: usize,
        weight: Option<&Self>,
        bias: Option<&Self>,
        eps: f64,
    ) -> Result<(Self, tapir_tensor::NormStats<E>)> {
        let (w, b) = (weight.map(|w| &w.value), bias.map(|b| &b.value));
        let (v, stats) = match kind {
            tapir_tensor::NormKind::Batch => self.value.batch_norm(w, b, eps)?,
            tapir_tensor::NormKind::Group => self.value.group_norm(ndim, w, b, eps)?,
            _ => self.value.normalize(kind, ndim, w, b, eps)?,
        };
        let op = Op::Norm(Box::new(NormOp {
            kind,
            ndim,
            eps,
            has_weight: weight.is_some(),
            has_bias: bias.is_some(),
            stats: stats.clone(),
        }));
        let mut inputs: smallvec::SmallVec<[&Self; 3]> = smallvec::smallvec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let name = match kind {
            tapir_tensor::NormKind::Layer => "layer_norm",
            tapir_tensor::NormKind::Rms => "rms_norm",
            tapir_tensor::NormKind::Batch => "batch_norm",
            tapir_tensor::NormKind::Group => "group_norm",
        };
        Ok((Tape::record(name, op, &inputs, v)?, stats))
    }
}
