//! Reductions over any set of axes, and the stable softmax family.
//!
//! Every reduction has two forms, as in PyTorch: `x.sum()` reduces every
//! element to a scalar tensor (`torch.sum(x)`), and `x.sum_axes(axes,
//! keepdim)` reduces the listed axes (`torch.sum(x, dim, keepdim)`). `axes`
//! may hold negative axes (−1 is the last); an empty slice reduces nothing
//! (NumPy's `axis=()`). The same pair exists for mean, prod, max, min, var,
//! std, logsumexp, argmax and argmin, on `Tensor` and on `Var`. Every sum
//! (sum, mean, var/std, logsumexp, the softmax denominators, `sum_to`) is
//! the blocked pairwise sum of [`crate::sum`]: error ~log₂(n)·ε, and the
//! same bits for any number of threads.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::{PAR_CHUNK, PAR_THRESHOLD};
use crate::shape::{normalize_axes, normalize_axis, Shape};
use crate::tensor::Tensor;

/// Rows of a tensor laid out as (kept axes..., reduced axes...), row-major;
/// borrowed when the tensor already has that layout (reducing trailing axes
/// of contiguous data), copied otherwise.
struct Rows<'a, E: Float> {
    data: Cow<'a, [E]>,
    inner: usize,
    out_shape: Shape,
}

fn to_rows<'a, E: Float>(
    x: &'a Tensor<E>,
    op: &'static str,
    axes: &[isize],
    keepdim: bool,
) -> Result<Rows<'a, E>> {
    let red = normalize_axes(op, axes, x.shape())?;
    let nd = x.ndim();
    let mut perm: Vec<usize> = (0..nd).filter(|a| !red.contains(a)).collect();
    perm.extend(red.iter().copied());
    let inner: usize = red.iter().map(|&a| x.shape()[a]).product();
    let out_shape: Shape = if keepdim {
        (0..nd)
            .map(|a| if red.contains(&a) { 1 } else { x.shape()[a] })
            .collect()
    } else {
        (0..nd)
            .filter(|a| !red.contains(a))
            .map(|a| x.shape()[a])
            .collect()
    };
    // An empty input can still have a huge result (summing [n, 0] over
    // its empty axis gives n zeros): check before making it. Indices of
    // arg-reductions are as large as f64 elements.
    crate::shape::check_alloc::<f64>(op, &out_shape)?;
    let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
    let data = match x.as_slice() {
        Some(s) if identity => Cow::Borrowed(s),
        _ => {
            let v = x.nd().permuted_axes(IxDyn(&perm));
            Cow::Owned(v.iter().copied().collect())
        }
    };
    Ok(Rows {
        data,
        inner,
        out_shape,
    })
}

/// Reduces each row with `f`, in parallel over rows when there are many.
fn reduce_with<E: Float, T: Copy + Send + Sync>(
    rows: &Rows<E>,
    f: impl Fn(&[E]) -> T + Sync + Send,
) -> ArrayD<T> {
    let outer: usize = rows.out_shape.iter().product();
    let inner = rows.inner;
    let v: Vec<T> = if inner == 0 {
        (0..outer).map(|_| f(&[])).collect()
    } else if rows.data.len() >= PAR_THRESHOLD && outer > 1 {
        rows.data
            .par_chunks(inner)
            .with_min_len((PAR_CHUNK / inner).max(1))
            .map(&f)
            .collect()
    } else {
        rows.data.chunks(inner).map(&f).collect()
    };
    ArrayD::from_shape_vec(IxDyn(&rows.out_shape), v).expect("sizes match")
}

/// Sum of a slice, pairwise ([`crate::sum`]).
fn sum_slice<E: Float>(s: &[E]) -> E {
    crate::sum::sum(s)
}

fn max_slice<E: Float>(s: &[E]) -> E {
    s.iter().copied().fold(E::NEG_INFINITY, E::max_nan)
}

fn min_slice<E: Float>(s: &[E]) -> E {
    s.iter().copied().fold(E::INFINITY, E::min_nan)
}

/// Index of the first largest element; a NaN counts as largest.
fn argmax_slice<E: Float>(s: &[E]) -> usize {
    let mut best = 0;
    for (i, &v) in s.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > s[best] {
            best = i;
        }
    }
    best
}

/// Index of the first smallest element; a NaN counts as smallest.
fn argmin_slice<E: Float>(s: &[E]) -> usize {
    let mut best = 0;
    for (i, &v) in s.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v < s[best] {
            best = i;
        }
    }
    best
}

fn logsumexp_slice<E: Float>(s: &[E]) -> E {
    let m = max_slice(s);
    if !m.is_finite() {
        // All −inf gives −inf; any +inf gives +inf; NaN stays NaN.
        return m;
    }
    m + crate::sum::sum_map(s, |v: E| (v - m).exp()).ln()
}

fn var_slice<E: Float>(s: &[E], correction: usize) -> E {
    let n = s.len();
    let mean = sum_slice(s) / E::from_usize(n);
    // Two passes (mean, then squared deviations), both pairwise.
    let ss: E = crate::sum::sum_map(s, |v: E| {
        let d = v - mean;
        d * d
    });
    // PyTorch returns NaN (with a warning) when n <= correction.
    if n <= correction {
        return E::NAN;
    }
    ss / E::from_usize(n - correction)
}

/// Indices of a reduction, as `usize`, shaped like the reduced tensor.
pub type IndexArray = ndarray::ArrayD<usize>;

impl<E: Float> Tensor<E> {
    fn reduce(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        f: impl Fn(&[E]) -> E + Sync + Send,
    ) -> Result<Self> {
        let rows = to_rows(self, op, axes, keepdim)?;
        Ok(Self::from_owned(reduce_with(&rows, f)))
    }

    fn reduce_nonempty(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        f: impl Fn(&[E]) -> E + Sync + Send,
    ) -> Result<Self> {
        let red = normalize_axes(op, axes, self.shape())?;
        if red.iter().any(|&a| self.shape()[a] == 0) {
            return Err(Error::shape(
                op,
                format!(
                    "cannot reduce over an empty axis of shape {:?} (axes {axes:?})",
                    self.shape()
                ),
            ));
        }
        self.reduce(op, axes, keepdim, f)
    }

    /// Sum over `axes`, Σ x along each listed axis; `keepdim` keeps them as
    /// size-1 axes.
    ///
    /// Gradient: broadcast back over the reduced axes (each element gets the
    /// gradient of its sum).
    ///
    /// PyTorch: `torch.sum(x, dim, keepdim)`; NumPy `np.sum(x, axis,
    /// keepdims)`, TensorFlow `tf.math.reduce_sum(x, axis, keepdims)`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// assert_eq!(x.sum_axes(&[0], false)?.to_vec(), [5.0, 7.0, 9.0]);
    /// let rows = x.sum_axes(&[-1], true)?;
    /// assert_eq!(rows.shape(), &[2, 1]);
    /// assert_eq!(rows.to_vec(), [6.0, 15.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let red = normalize_axes("sum", axes, self.shape())?;
        let flags: Vec<bool> = (0..self.ndim()).map(|a| red.contains(&a)).collect();
        let shape: Shape = if keepdim {
            (0..self.ndim())
                .map(|a| if flags[a] { 1 } else { self.shape()[a] })
                .collect()
        } else {
            (0..self.ndim())
                .filter(|&a| !flags[a])
                .map(|a| self.shape()[a])
                .collect()
        };
        crate::shape::check_alloc::<E>("sum", &shape)?;
        // Pairwise over any set of axes without a transposing copy
        // (crate::sum::sum_axes); a strided view is made contiguous first.
        let data: Cow<[E]> = match self.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.to_vec()),
        };
        Self::from_vec(crate::sum::sum_axes(&data, self.shape(), &flags), shape)
    }

    /// Sum of all elements, Σ x, as a 0-d tensor.
    ///
    /// Gradient: broadcast back to every element.
    ///
    /// PyTorch: `torch.sum(x)`; TensorFlow `tf.math.reduce_sum(x)`.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?;
    /// let s = x.sum();
    /// assert_eq!(s.shape(), &[] as &[usize]);
    /// assert_eq!(s.item()?, 10.0);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn sum(&self) -> Self {
        match self.as_slice() {
            Some(s) => Self::scalar(sum_slice(s)),
            None => Self::scalar(sum_slice(&self.to_vec())),
        }
    }

    /// Squared L2 norm of all elements, Σ x², accumulated in f64 by the
    /// pairwise sum of [`crate::sum`] (so f32 squares neither overflow nor
    /// lose precision); the building block of gradient-norm clipping.
    ///
    /// Not differentiable (it returns a plain number).
    ///
    /// PyTorch: `torch.linalg.vector_norm(x).item() ** 2`; optax
    /// `optax.global_norm` squares and sums the same way.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![3.0, 4.0], [2])?;
    /// assert_eq!(x.norm_sq(), 25.0);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn norm_sq(&self) -> f64 {
        let sq = |v: E| {
            let v = v.to_f64();
            v * v
        };
        match self.as_slice() {
            Some(s) => crate::sum::sum_map(s, sq),
            None => crate::sum::sum_map(&self.to_vec(), sq),
        }
    }

    /// Mean over `axes`, (1/n)·Σ x with n the number of reduced elements
    /// (NaN for an empty axis, as PyTorch).
    ///
    /// Gradient: 1/n to each element, broadcast back over the reduced axes.
    ///
    /// PyTorch: `torch.mean(x, dim, keepdim)`; TensorFlow
    /// `tf.math.reduce_mean`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// assert_eq!(x.mean_axes(&[1], false)?.to_vec(), [2.0, 5.0]);
    /// assert_eq!(x.mean_axes(&[0, 1], false)?.item()?, 3.5);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        let red = normalize_axes("mean", axes, self.shape())?;
        let n: usize = red.iter().map(|&a| self.shape()[a]).product();
        Ok(self.sum_axes(axes, keepdim)?.div_scalar(E::from_usize(n)))
    }

    /// Mean of all elements, (1/n)·Σ x, as a 0-d tensor (NaN when empty).
    ///
    /// Gradient: 1/n to each element.
    ///
    /// PyTorch: `torch.mean(x)`; TensorFlow `tf.math.reduce_mean(x)`.
    pub fn mean(&self) -> Self {
        self.sum().div_scalar(E::from_usize(self.len()))
    }

    /// Product over `axes`, Π x (1 for an empty axis).
    ///
    /// Gradient: out/x, so inputs holding zeros get non-finite gradients
    /// (PyTorch treats zeros exactly).
    ///
    /// PyTorch: `torch.prod(x, dim, keepdim)`, which takes a single dim;
    /// TensorFlow `tf.math.reduce_prod`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn prod_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce("prod", axes, keepdim, |s| {
            s.iter().copied().fold(E::ONE, |a, b| a * b)
        })
    }

    /// Product of all elements, Π x, as a 0-d tensor (1 when empty).
    ///
    /// Gradient: out/x, as [`Tensor::prod_axes`].
    ///
    /// PyTorch: `torch.prod(x)`; TensorFlow `tf.math.reduce_prod(x)`.
    pub fn prod(&self) -> Self {
        Self::scalar(self.nd().iter().copied().fold(E::ONE, |a, b| a * b))
    }

    /// Maximum over `axes`, max x along the listed axes; NaN propagates.
    ///
    /// Gradient: to the elements equal to the maximum; ties share it
    /// equally (as `torch.amax`).
    ///
    /// PyTorch: `torch.amax(x, dim, keepdim)` (`torch.max(x, dim)` takes one
    /// dim and also returns indices); NumPy `np.max`, TensorFlow
    /// `tf.math.reduce_max`.
    ///
    /// # Errors
    /// When an axis is out of range, repeated, or has size 0.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 5.0, 3.0, 4.0, 2.0, 6.0], [2, 3])?;
    /// assert_eq!(x.max_axes(&[1], false)?.to_vec(), [5.0, 6.0]);
    /// assert_eq!(x.max_axes(&[0], true)?.shape(), &[1, 3]);
    /// assert_eq!(x.max_axes(&[0], true)?.to_vec(), [4.0, 5.0, 6.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn max_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce_nonempty("max", axes, keepdim, max_slice)
    }

    /// Maximum of all elements, max x, as a 0-d tensor; NaN propagates.
    ///
    /// Gradient: to the maximal elements; ties share it equally.
    ///
    /// PyTorch: `torch.max(x)` (`torch.amax`); NumPy `np.max`, TensorFlow
    /// `tf.math.reduce_max`.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn max(&self) -> Result<Self> {
        let all: Vec<isize> = (0..self.ndim() as isize).collect();
        self.max_axes(&all, false)
    }

    /// Minimum over `axes`, min x along the listed axes; NaN propagates.
    ///
    /// Gradient: to the elements equal to the minimum; ties share it
    /// equally (as `torch.amin`).
    ///
    /// PyTorch: `torch.amin(x, dim, keepdim)` (`torch.min(x, dim)` takes one
    /// dim and also returns indices); NumPy `np.min`, TensorFlow
    /// `tf.math.reduce_min`.
    ///
    /// # Errors
    /// When an axis is out of range, repeated, or has size 0.
    pub fn min_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce_nonempty("min", axes, keepdim, min_slice)
    }

    /// Minimum of all elements, min x, as a 0-d tensor; NaN propagates.
    ///
    /// Gradient: to the minimal elements; ties share it equally.
    ///
    /// PyTorch: `torch.min(x)` (`torch.amin`); NumPy `np.min`, TensorFlow
    /// `tf.math.reduce_min`.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn min(&self) -> Result<Self> {
        let all: Vec<isize> = (0..self.ndim() as isize).collect();
        self.min_axes(&all, false)
    }

    /// Sample variance over `axes`, Σ(x − x̄)²/(n − 1) (Bessel's correction,
    /// the default of `torch.var`); see [`Tensor::var_with`] for other
    /// corrections.
    ///
    /// Gradient: 2(x − x̄)/(n − 1).
    ///
    /// PyTorch: `torch.var(x, dim, keepdim=keepdim)` (correction=1); NumPy's
    /// `np.var` defaults to ddof=0 and `tf.math.reduce_variance` has no
    /// correction: both divide by n.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 3.0, 2.0, 2.0], [2, 2])?;
    /// assert_eq!(x.var_axes(&[1], false)?.to_vec(), [2.0, 0.0]);
    /// assert_eq!(x.var_with(&[1], false, 0)?.to_vec(), [1.0, 0.0]); // ddof=0
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn var_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.var_with(axes, keepdim, 1)
    }

    /// Variance over `axes` dividing by n − `correction`,
    /// Σ(x − x̄)²/(n − correction); 0 gives the population variance
    /// (NumPy's default). NaN when n ≤ correction.
    ///
    /// Gradient: 2(x − x̄)/(n − correction).
    ///
    /// PyTorch: `torch.var(x, dim, correction=c, keepdim=keepdim)`; NumPy
    /// `np.var(x, axis, ddof=c)`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn var_with(&self, axes: &[isize], keepdim: bool, correction: usize) -> Result<Self> {
        self.var_impl("var", axes, keepdim, correction)
    }

    /// Two-pass variance. Trailing axes of contiguous data are rows that
    /// [`var_slice`] reads in place; any other set of axes (batch norm's
    /// N, H, W) goes through the strided pairwise sums of `sum_axes`
    /// instead of a transposing copy.
    fn var_impl(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        correction: usize,
    ) -> Result<Self> {
        let red = normalize_axes(op, axes, self.shape())?;
        let nd = self.ndim();
        let trailing = red.iter().all(|&a| a >= nd - red.len());
        if red.is_empty() || (trailing && self.is_contiguous()) {
            return self.reduce(op, axes, keepdim, |s| var_slice(s, correction));
        }
        let n: usize = red.iter().map(|&a| self.shape()[a]).product();
        let mean = self.sum_axes(axes, true)?.div_scalar(E::from_usize(n));
        let d = self.sub(&mean)?;
        let ss = d.mul(&d)?.sum_axes(axes, keepdim)?;
        // PyTorch returns NaN when n <= correction.
        Ok(if n <= correction {
            ss.mul_scalar(E::NAN)
        } else {
            ss.div_scalar(E::from_usize(n - correction))
        })
    }

    /// Sample standard deviation over `axes`, √(Σ(x − x̄)²/(n − 1)).
    ///
    /// Gradient: (x − x̄)/((n − 1)·std) (non-finite where std = 0).
    ///
    /// PyTorch: `torch.std(x, dim, keepdim=keepdim)` (correction=1); NumPy's
    /// `np.std` defaults to ddof=0 and `tf.math.reduce_std` divides by n.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.std_with(axes, keepdim, 1)
    }

    /// Standard deviation over `axes` dividing by n − `correction`,
    /// √(Σ(x − x̄)²/(n − correction)).
    ///
    /// Gradient: (x − x̄)/((n − correction)·std).
    ///
    /// PyTorch: `torch.std(x, dim, correction=c, keepdim=keepdim)`; NumPy
    /// `np.std(x, axis, ddof=c)`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn std_with(&self, axes: &[isize], keepdim: bool, correction: usize) -> Result<Self> {
        Ok(self.var_impl("std", axes, keepdim, correction)?.sqrt())
    }

    /// Sample variance of all elements, Σ(x − x̄)²/(n − 1), as a 0-d tensor.
    ///
    /// Gradient: 2(x − x̄)/(n − 1).
    ///
    /// PyTorch: `torch.var(x)`; NumPy's `np.var(x)` divides by n.
    pub fn var(&self) -> Self {
        Self::scalar(var_slice(&self.to_vec(), 1))
    }

    /// Sample standard deviation of all elements, √(Σ(x − x̄)²/(n − 1)), as
    /// a 0-d tensor.
    ///
    /// Gradient: (x − x̄)/((n − 1)·std).
    ///
    /// PyTorch: `torch.std(x)`; NumPy's `np.std(x)` divides by n.
    pub fn std(&self) -> Self {
        Self::scalar(var_slice(&self.to_vec(), 1).sqrt())
    }

    /// Index of the largest element, argmax x, over the flattened axes
    /// `axes` (in row-major order of those axes); ties give the first, NaN
    /// counts as largest.
    ///
    /// Not differentiable (it returns indices).
    ///
    /// PyTorch: `torch.argmax(x, dim, keepdim)`, which takes one dim; NumPy
    /// `np.argmax`, TensorFlow `tf.math.argmax`.
    ///
    /// # Errors
    /// When an axis is out of range, repeated, or has size 0.
    pub fn argmax_axes(&self, axes: &[isize], keepdim: bool) -> Result<IndexArray> {
        self.arg_reduce("argmax", axes, keepdim, argmax_slice)
    }

    /// Index of the smallest element, argmin x, over the flattened axes
    /// `axes`; ties give the first, NaN counts as smallest.
    ///
    /// Not differentiable (it returns indices).
    ///
    /// PyTorch: `torch.argmin(x, dim, keepdim)`, which takes one dim; NumPy
    /// `np.argmin`, TensorFlow `tf.math.argmin`.
    ///
    /// # Errors
    /// When an axis is out of range, repeated, or has size 0.
    pub fn argmin_axes(&self, axes: &[isize], keepdim: bool) -> Result<IndexArray> {
        self.arg_reduce("argmin", axes, keepdim, argmin_slice)
    }

    /// Flat (row-major) index of the largest element of the whole tensor;
    /// ties give the first, NaN counts as largest.
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.argmax(x)`; NumPy `np.argmax(x)`.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn argmax(&self) -> Result<usize> {
        self.arg_all("argmax", argmax_slice)
    }

    /// Flat (row-major) index of the smallest element of the whole tensor;
    /// ties give the first, NaN counts as smallest.
    ///
    /// Not differentiable.
    ///
    /// PyTorch: `torch.argmin(x)`; NumPy `np.argmin(x)`.
    ///
    /// # Errors
    /// When the tensor is empty.
    pub fn argmin(&self) -> Result<usize> {
        self.arg_all("argmin", argmin_slice)
    }

    fn arg_all(&self, op: &'static str, f: fn(&[E]) -> usize) -> Result<usize> {
        let all: Vec<isize> = (0..self.ndim() as isize).collect();
        let r = self.arg_reduce(op, &all, false, f)?;
        Ok(*r.iter().next().expect("scalar result"))
    }

    fn arg_reduce(
        &self,
        op: &'static str,
        axes: &[isize],
        keepdim: bool,
        f: fn(&[E]) -> usize,
    ) -> Result<IndexArray> {
        let red = normalize_axes(op, axes, self.shape())?;
        if red.iter().any(|&a| self.shape()[a] == 0) || self.is_empty() {
            return Err(Error::shape(
                op,
                format!("cannot reduce an empty axis of shape {:?}", self.shape()),
            ));
        }
        let rows = to_rows(self, op, axes, keepdim)?;
        Ok(reduce_with(&rows, f))
    }

    /// Log-sum-exp over `axes`, log Σ exp(x), computed as m + log Σ exp(x − m)
    /// with m the maximum, so large inputs do not overflow.
    ///
    /// Gradient: exp(x − out), the softmax over the reduced axes.
    ///
    /// PyTorch: `torch.logsumexp(x, dim, keepdim)`; TensorFlow
    /// `tf.math.reduce_logsumexp`, SciPy `scipy.special.logsumexp`.
    ///
    /// # Errors
    /// When an axis is out of range or repeated.
    pub fn logsumexp_axes(&self, axes: &[isize], keepdim: bool) -> Result<Self> {
        self.reduce("logsumexp", axes, keepdim, logsumexp_slice)
    }

    /// Log-sum-exp of all elements, log Σ exp(x), as a 0-d tensor (−∞ when
    /// empty), stable for large inputs.
    ///
    /// Gradient: exp(x − out), the softmax of all elements.
    ///
    /// PyTorch: `torch.logsumexp(x, dim=tuple(range(x.ndim)))`; TensorFlow
    /// `tf.math.reduce_logsumexp(x)`.
    pub fn logsumexp(&self) -> Self {
        Self::scalar(logsumexp_slice(&self.to_vec()))
    }

    /// Applies `f` to each lane along `axis` (a contiguous copy of the lane
    /// is passed in and written back).
    fn along_axis(
        &self,
        op: &'static str,
        axis: isize,
        f: impl Fn(&[E], &mut [E]) + Sync + Send,
    ) -> Result<Self> {
        let ax = normalize_axis(op, axis, self.shape())?;
        let nd = self.ndim();
        let last = nd - 1;
        // Move `ax` to the end, work on contiguous rows, move it back.
        let mut perm: Vec<usize> = (0..nd).filter(|&a| a != ax).collect();
        perm.push(ax);
        let moved = self.nd().permuted_axes(IxDyn(&perm));
        let src = moved.as_standard_layout();
        let s = src.as_slice().expect("standard layout");
        let n = self.shape()[ax];
        let mut out = vec![E::ZERO; s.len()];
        if n > 0 {
            if s.len() >= PAR_THRESHOLD {
                out.par_chunks_mut(n)
                    .zip(s.par_chunks(n))
                    .with_min_len((PAR_CHUNK / n).max(1))
                    .for_each(|(o, i)| f(i, o));
            } else {
                for (o, i) in out.chunks_mut(n).zip(s.chunks(n)) {
                    f(i, o);
                }
            }
        }
        let moved_shape: Vec<usize> = perm.iter().map(|&a| self.shape()[a]).collect();
        let arr = ArrayD::from_shape_vec(IxDyn(&moved_shape), out).expect("sizes match");
        if ax == last {
            return Ok(Self::from_owned(arr));
        }
        let mut inv = vec![0; nd];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        let back = arr.permuted_axes(IxDyn(&inv));
        Ok(Self::from_owned(back.as_standard_layout().into_owned()))
    }

    /// Softmax along `axis`, yᵢ = exp(xᵢ − m)/Σⱼ exp(xⱼ − m), with m the
    /// maximum for stability.
    ///
    /// Derivative: ∂yᵢ/∂xⱼ = yᵢ(δᵢⱼ − yⱼ), applied as y ⊙ (g − Σ g·y).
    ///
    /// PyTorch: `torch.softmax(x, dim)` (`torch.nn.functional.softmax`);
    /// TensorFlow `tf.nn.softmax(x, axis)`, SciPy `scipy.special.softmax`.
    ///
    /// # Errors
    /// When the axis is out of range.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0], [1, 3])?;
    /// let y = x.softmax(-1)?.to_vec();
    /// let want = [0.090_030_57, 0.244_728_47, 0.665_240_96];
    /// assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6));
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn softmax(&self, axis: isize) -> Result<Self> {
        let ax = normalize_axis("softmax", axis, self.shape())?;
        if let (Some(s), true) = (self.as_slice(), ax + 1 == self.ndim()) {
            // Rows along the last axis of a contiguous tensor (attention
            // scores): the dispatched SIMD row kernel, rows in parallel.
            let n = self.shape()[ax];
            let mut out = vec![E::ZERO; s.len()];
            if let Some(rows) = PAR_CHUNK.checked_div(n) {
                if s.len() >= PAR_THRESHOLD {
                    let per = rows.max(1) * n;
                    out.par_chunks_mut(per)
                        .zip(s.par_chunks(per))
                        .for_each(|(o, x)| crate::kernels::softmax_rows(x, o, n));
                } else {
                    crate::kernels::softmax_rows(s, &mut out, n);
                }
            }
            return Tensor::from_vec(out, self.shape());
        }
        self.along_axis("softmax", axis, |x, o| {
            let m = max_slice(x);
            let m = if m.is_finite() { m } else { E::ZERO };
            for (oi, &xi) in o.iter_mut().zip(x) {
                *oi = (xi - m).exp();
            }
            let total = sum_slice(o);
            for oi in o.iter_mut() {
                *oi /= total;
            }
        })
    }

    /// Log-softmax along `axis`, yᵢ = xᵢ − log Σⱼ exp(xⱼ), computed stably.
    ///
    /// Derivative: ∂yᵢ/∂xⱼ = δᵢⱼ − softmax(x)ⱼ, applied as
    /// g − softmax(x)·Σ g.
    ///
    /// PyTorch: `torch.log_softmax(x, dim)`
    /// (`torch.nn.functional.log_softmax`); TensorFlow `tf.nn.log_softmax`.
    ///
    /// # Errors
    /// When the axis is out of range.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0], [3])?;
    /// let y = x.log_softmax(0)?.to_vec();
    /// let want = [-2.407_606, -1.407_606, -0.407_606];
    /// assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5));
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn log_softmax(&self, axis: isize) -> Result<Self> {
        self.along_axis("log_softmax", axis, |x, o| {
            let l = logsumexp_slice(x);
            for (oi, &xi) in o.iter_mut().zip(x) {
                *oi = xi - l;
            }
        })
    }

    /// Sums a broadcast result back to `shape`, Σ over the axes that
    /// broadcasting added or stretched: the reverse of
    /// [`Tensor::broadcast_to`], used by backward rules.
    ///
    /// Gradient: broadcast back to the input's shape.
    ///
    /// PyTorch: `Tensor.sum_to_size(shape)`.
    ///
    /// # Errors
    /// When `self` is not a broadcast of `shape`.
    pub fn sum_to(&self, shape: &[usize]) -> Result<Self> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let axes = crate::check::sum_to_axes("sum_to", self.shape(), shape)?;
        self.sum_axes(&axes, true)?.reshape_usize(shape)
    }
}
