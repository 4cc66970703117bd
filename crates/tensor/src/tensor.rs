//! The `Tensor` type: construction, access and conversion.

use std::fmt;

use ndarray::{ArcArray, Array, ArrayD, ArrayViewD, IxDyn};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::random::Rng;
use crate::shape::{numel, shape_of, Shape};

/// An n-dimensional array of `f32` (default) or `f64` with NumPy broadcasting.
///
/// Storage is shared: `clone` is O(1) and views (`transpose`, `slice`,
/// `reshape` of contiguous data, ...) share memory with their source. Writes
/// copy first when the storage is shared (copy-on-write), so a tensor never
/// changes behind another's back.
///
/// Methods that can fail return [`Result`]; the operators `+ - * /` are sugar
/// over [`Tensor::add`], [`Tensor::sub`], [`Tensor::mul`] and [`Tensor::div`]
/// that panic with the same message.
///
/// ```
/// use tapir_tensor::Tensor;
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
/// let b = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [3])?;
/// let c = a.add(&b)?; // b is broadcast over the rows of a
/// assert_eq!(c.to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
/// assert_eq!(c.sum_all().item()?, 141.0);
/// # Ok::<(), tapir_tensor::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor<E: Float = f32> {
    pub(crate) data: ArcArray<E, IxDyn>,
}

impl<E: Float> Tensor<E> {
    pub(crate) fn wrap(data: ArcArray<E, IxDyn>) -> Self {
        Tensor { data }
    }

    pub(crate) fn from_owned(data: ArrayD<E>) -> Self {
        Tensor {
            data: data.into_shared(),
        }
    }

    /// Builds a tensor from row-major data.
    ///
    /// # Errors
    /// When `data.len()` differs from the product of `shape`.
    pub fn from_vec(data: Vec<E>, shape: impl AsRef<[usize]>) -> Result<Self> {
        let shape = shape.as_ref();
        let expected = numel(shape);
        if data.len() != expected {
            return Err(Error::DataLength {
                op: "from_vec",
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        Ok(Self::from_owned(
            Array::from_shape_vec(IxDyn(shape), data).expect("length checked"),
        ))
    }

    /// Builds a tensor by copying a slice (see [`Tensor::from_vec`]).
    ///
    /// # Errors
    /// When the length differs from the product of `shape`.
    pub fn from_slice(data: &[E], shape: impl AsRef<[usize]>) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor holding `v`.
    pub fn scalar(v: E) -> Self {
        Self::from_owned(ArrayD::from_elem(IxDyn(&[]), v))
    }

    /// A tensor of the given shape filled with `v` (`torch.full`).
    pub fn full(shape: impl AsRef<[usize]>, v: E) -> Self {
        Self::from_owned(ArrayD::from_elem(IxDyn(shape.as_ref()), v))
    }

    /// Zeros of the given shape.
    pub fn zeros(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, E::ZERO)
    }

    /// Ones of the given shape.
    pub fn ones(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, E::ONE)
    }

    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape())
    }

    /// Ones shaped like `self`.
    pub fn ones_like(&self) -> Self {
        Self::ones(self.shape())
    }

    /// `v` everywhere, shaped like `self`.
    pub fn full_like(&self, v: E) -> Self {
        Self::full(self.shape(), v)
    }

    /// Values `start, start + step, ...` below `end` (above, for a negative
    /// step), as `torch.arange`.
    ///
    /// # Errors
    /// When `step` is zero or not finite, or the bounds are not finite.
    pub fn arange(start: E, end: E, step: E) -> Result<Self> {
        let (s, e, st) = (start.to_f64(), end.to_f64(), step.to_f64());
        if st == 0.0 || !st.is_finite() || !s.is_finite() || !e.is_finite() {
            return Err(Error::arg(
                "arange",
                format!(
                    "needs finite bounds and a non-zero step, got start {s}, end {e}, step {st}"
                ),
            ));
        }
        let n = ((e - s) / st).ceil().max(0.0) as usize;
        let v = (0..n).map(|i| E::from_f64(s + st * i as f64)).collect();
        Self::from_vec(v, [n])
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive
    /// (`torch.linspace`).
    pub fn linspace(start: E, end: E, steps: usize) -> Self {
        let (s, e) = (start.to_f64(), end.to_f64());
        let v = (0..steps)
            .map(|i| {
                if steps == 1 {
                    E::from_f64(s)
                } else if i == steps - 1 {
                    end
                } else {
                    E::from_f64(s + (e - s) * i as f64 / (steps - 1) as f64)
                }
            })
            .collect();
        Self::from_vec(v, [steps]).expect("length matches")
    }

    /// The n×n identity matrix.
    pub fn eye(n: usize) -> Self {
        let mut a = ArrayD::zeros(IxDyn(&[n, n]));
        for i in 0..n {
            a[[i, i].as_slice()] = E::ONE;
        }
        Self::from_owned(a)
    }

    /// Uniform samples from [low, high).
    pub fn uniform(shape: impl AsRef<[usize]>, low: E, high: E, rng: &mut Rng) -> Self {
        let (lo, hi) = (low.to_f64(), high.to_f64());
        let n = numel(shape.as_ref());
        let v = (0..n)
            .map(|_| E::from_f64(lo + (hi - lo) * rng.uniform()))
            .collect();
        Self::from_vec(v, shape).expect("length matches")
    }

    /// Uniform samples from [0, 1) (`torch.rand`).
    pub fn rand(shape: impl AsRef<[usize]>, rng: &mut Rng) -> Self {
        Self::uniform(shape, E::ZERO, E::ONE, rng)
    }

    /// Normal samples with the given mean and standard deviation.
    pub fn normal(shape: impl AsRef<[usize]>, mean: E, std: E, rng: &mut Rng) -> Self {
        let (m, s) = (mean.to_f64(), std.to_f64());
        let n = numel(shape.as_ref());
        let v = (0..n).map(|_| E::from_f64(m + s * rng.normal())).collect();
        Self::from_vec(v, shape).expect("length matches")
    }

    /// Standard normal samples (`torch.randn`).
    pub fn randn(shape: impl AsRef<[usize]>, rng: &mut Rng) -> Self {
        Self::normal(shape, E::ZERO, E::ONE, rng)
    }

    /// Wraps an ndarray array without copying.
    pub fn from_array(a: ArrayD<E>) -> Self {
        Self::from_owned(a)
    }

    /// Wraps a shared ndarray array without copying.
    pub fn from_shared(a: ArcArray<E, IxDyn>) -> Self {
        Self::wrap(a)
    }

    /// Converts to an owned ndarray array; copies only if the storage is
    /// shared with another tensor.
    pub fn into_array(self) -> ArrayD<E> {
        self.data.into_owned()
    }

    /// A borrowed ndarray view (no copy).
    pub fn view(&self) -> ArrayViewD<'_, E> {
        self.data.view()
    }

    /// The underlying shared ndarray array.
    pub fn as_shared(&self) -> &ArcArray<E, IxDyn> {
        &self.data
    }

    /// The elements in row-major order.
    pub fn to_vec(&self) -> Vec<E> {
        match self.data.as_slice() {
            Some(s) => s.to_vec(),
            None => self.data.iter().copied().collect(),
        }
    }

    /// The row-major elements as a slice, when the layout is contiguous.
    pub fn as_slice(&self) -> Option<&[E]> {
        self.data.as_slice()
    }

    /// The sizes of the axes.
    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    /// The shape as an owned [`Shape`].
    pub fn dims(&self) -> Shape {
        shape_of(self.shape())
    }

    /// Element strides of each axis (0 on broadcast axes).
    pub fn strides(&self) -> &[isize] {
        self.data.strides()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.data.ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether the elements lie in row-major order without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.data.is_standard_layout()
    }

    /// A row-major copy when the layout is not already row-major; otherwise
    /// a cheap clone.
    pub fn contiguous(&self) -> Self {
        if self.is_contiguous() {
            self.clone()
        } else {
            Self::from_owned(self.data.as_standard_layout().into_owned())
        }
    }

    /// The value of a one-element tensor of any rank.
    ///
    /// # Errors
    /// When the tensor has more or fewer than one element.
    pub fn item(&self) -> Result<E> {
        if self.len() != 1 {
            return Err(Error::shape(
                "item",
                format!(
                    "needs exactly one element, the tensor has shape {:?}",
                    self.shape()
                ),
            ));
        }
        Ok(*self.data.iter().next().expect("one element"))
    }

    /// The element at a multi-index.
    ///
    /// # Errors
    /// When the index has the wrong length or is out of range.
    pub fn at(&self, index: impl AsRef<[usize]>) -> Result<E> {
        let index = index.as_ref();
        if index.len() != self.ndim() {
            return Err(Error::shape(
                "at",
                format!(
                    "index {index:?} has {} entries, the tensor has shape {:?}",
                    index.len(),
                    self.shape()
                ),
            ));
        }
        for (axis, (&i, &n)) in index.iter().zip(self.shape()).enumerate() {
            if i >= n {
                return Err(Error::Index {
                    op: "at",
                    index: i,
                    axis,
                    size: n,
                });
            }
        }
        Ok(self.data[index])
    }

    /// Converts the elements to another float type (`f32` ↔ `f64`).
    pub fn cast<F: Float>(&self) -> Tensor<F> {
        Tensor::from_owned(self.data.map(|&v| F::from_f64(v.to_f64())))
    }

    /// Mutable access to the elements, copying first if the storage is
    /// shared (copy-on-write) or not contiguous.
    pub fn as_mut_slice(&mut self) -> &mut [E] {
        if !self.data.is_standard_layout() {
            self.data = self.data.as_standard_layout().into_owned().into_shared();
        }
        self.data
            .as_slice_mut()
            .expect("standard layout is contiguous")
    }
}

impl<E: Float> From<ArrayD<E>> for Tensor<E> {
    fn from(a: ArrayD<E>) -> Self {
        Self::from_array(a)
    }
}

impl<E: Float> From<Tensor<E>> for ArrayD<E> {
    fn from(t: Tensor<E>) -> Self {
        t.into_array()
    }
}

impl<E: Float> fmt::Debug for Tensor<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor<{}>(shape={:?}, {})",
            E::NAME,
            self.shape(),
            self.data
        )
    }
}

impl<E: Float> fmt::Display for Tensor<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.data, f)
    }
}

/// Equal shapes and equal elements (NaN ≠ NaN, as for floats).
impl<E: Float> PartialEq for Tensor<E> {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}
