//! The `Tensor` type: construction, access and conversion.

use std::fmt;

use std::sync::Arc;

use ndarray::{ArcArray, Array, ArrayD, ArrayView, ArrayViewD, IxDyn, ShapeBuilder};
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::random::Rng;
use crate::shape::{contiguous_strides, numel, shape_of, Shape};

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
/// assert_eq!(c.sum().item()?, 141.0);
/// # Ok::<(), tapir_tensor::Error>(())
/// ```
pub struct Tensor<E: Float = f32> {
    /// The storage, shared by clones and views.
    buf: Storage<E>,
    shape: Dims,
    /// Element strides, never negative (0 only on axes of size ≤ 1 or in
    /// empty tensors).
    strides: Strides,
    /// Index in `buf` of the first element.
    offset: usize,
}

impl<E: Float> Clone for Tensor<E> {
    /// O(1): shares the storage.
    #[inline]
    fn clone(&self) -> Self {
        Tensor {
            buf: self.buf.clone(),
            shape: copy_small(&self.shape),
            strides: copy_small(&self.strides),
            offset: self.offset,
        }
    }
}

/// A tensor's elements: one allocation for the results of elementwise
/// kernels (header and data together), or an adopted `Vec` (no copy when
/// ndarray or a caller hands one over).
pub(crate) enum Storage<E> {
    Slice(Arc<[E]>),
    Vec(Arc<Vec<E>>),
    /// Nothing: what a dropped tensor leaves after giving its buffer to
    /// the pool.
    Empty,
}

impl<E> Clone for Storage<E> {
    #[inline]
    fn clone(&self) -> Self {
        match self {
            Storage::Slice(a) => Storage::Slice(Arc::clone(a)),
            Storage::Vec(a) => Storage::Vec(Arc::clone(a)),
            Storage::Empty => Storage::Empty,
        }
    }
}

impl<E: Clone> Storage<E> {
    /// The elements, mutably, when no other tensor shares them.
    fn get_mut(&mut self) -> Option<&mut [E]> {
        match self {
            Storage::Slice(a) => Arc::get_mut(a),
            Storage::Vec(a) => Arc::get_mut(a).map(|v| v.as_mut_slice()),
            Storage::Empty => Some(&mut []),
        }
    }

    /// The elements as a `Vec`: moved out when unshared, copied otherwise.
    fn into_vec(self) -> Vec<E> {
        match self {
            Storage::Vec(a) => Arc::try_unwrap(a).unwrap_or_else(|a| a.as_ref().clone()),
            Storage::Slice(a) => a.to_vec(),
            Storage::Empty => Vec::new(),
        }
    }
}

impl<E: Clone> std::ops::Deref for Storage<E> {
    type Target = [E];
    #[inline]
    fn deref(&self) -> &[E] {
        match self {
            Storage::Slice(a) => a,
            Storage::Vec(a) => a,
            Storage::Empty => &[],
        }
    }
}

/// Small unshared buffers go back to this thread's pool (see `pool.rs`)
/// for the next elementwise result of the same length.
impl<E: Float> Drop for Tensor<E> {
    #[inline]
    fn drop(&mut self) {
        if let Storage::Slice(a) = &self.buf {
            // No `Weak` is ever made of a storage, so a strong count of 1
            // means this tensor is the only owner.
            if a.len() <= crate::pool::MAX_LEN && Arc::strong_count(a) == 1 {
                if let Storage::Slice(a) = std::mem::replace(&mut self.buf, Storage::Empty) {
                    drop(crate::pool::put(a));
                }
            }
        }
    }
}

/// Copies a few words into an inline small vector with plain moves (both
/// `SmallVec::clone` and `from_slice` end in a `memcpy` call, which
/// dominated cloning a small tensor).
#[inline]
fn copy_small<T: Copy + Default>(s: &[T]) -> SmallVec<[T; 4]> {
    let z = T::default();
    let (buf, len) = match *s {
        [] => ([z; 4], 0),
        [a] => ([a, z, z, z], 1),
        [a, b] => ([a, b, z, z], 2),
        [a, b, c] => ([a, b, c, z], 3),
        [a, b, c, d] => ([a, b, c, d], 4),
        _ => return SmallVec::from_slice(s),
    };
    SmallVec::from_buf_and_len(buf, len)
}

/// Axis sizes, inline up to rank 4 (every op on a rank ≤ 4 tensor
/// allocates nothing but its buffer).
pub(crate) type Dims = SmallVec<[usize; 4]>;
/// Element strides, as [`Dims`].
pub(crate) type Strides = SmallVec<[isize; 4]>;

/// Row-major strides of a shape, as a tensor stores them.
pub(crate) fn row_major_strides(shape: &[usize]) -> Strides {
    contiguous_strides(shape)
        .iter()
        .map(|&s| s as isize)
        .collect()
}

impl<E: Float> Tensor<E> {
    /// A row-major tensor over `v`; the caller guarantees the length.
    #[inline]
    pub(crate) fn from_contiguous(v: Vec<E>, shape: &[usize]) -> Self {
        // `nd()` relies on this (it reads through a raw pointer).
        assert_eq!(v.len(), numel(shape), "tensor storage and shape disagree");
        Tensor {
            buf: Storage::Vec(Arc::new(v)),
            shape: Dims::from_slice(shape),
            strides: row_major_strides(shape),
            offset: 0,
        }
    }

    /// A tensor over `buf` with the layout of `like`, which must be
    /// contiguous and have `buf.len()` elements (the result of an
    /// elementwise kernel over `like`).
    #[inline]
    pub(crate) fn from_slice_like(buf: Arc<[E]>, like: &Tensor<E>) -> Self {
        // `nd()` relies on this (it reads through a raw pointer).
        assert!(
            like.is_contiguous() && buf.len() == like.len(),
            "tensor storage and layout disagree"
        );
        Tensor {
            buf: Storage::Slice(buf),
            shape: copy_small(&like.shape),
            // Contiguous strides may differ from row-major ones only on
            // axes of size 1, which are never stepped along.
            strides: copy_small(&like.strides),
            offset: 0,
        }
    }

    /// Takes over an owned ndarray array's buffer without copying.
    pub(crate) fn from_owned(a: ArrayD<E>) -> Self {
        if a.strides().iter().any(|&s| s < 0) {
            return Self::from_owned(a.as_standard_layout().into_owned());
        }
        let shape = Dims::from_slice(a.shape());
        let strides = Strides::from_slice(a.strides());
        let (v, offset) = a.into_raw_vec_and_offset();
        Tensor {
            buf: Storage::Vec(Arc::new(v)),
            shape,
            strides,
            offset: offset.unwrap_or(0),
        }
    }

    /// A tensor sharing this one's storage with another layout. The layout
    /// must address only elements inside the storage.
    pub(crate) fn with_layout(&self, shape: Dims, strides: Strides, offset: usize) -> Self {
        let n = numel(&shape);
        // An empty tensor addresses nothing; pin it to the start.
        let offset = if n == 0 { 0 } else { offset };
        // `nd()` relies on this (it reads through a raw pointer), so it is
        // checked in release builds too; views are not a hot path.
        // Checked arithmetic: a wrapped sum would let a view reach
        // outside its storage.
        let last = || -> Option<usize> {
            shape
                .iter()
                .zip(&strides)
                .try_fold(offset, |acc, (&d, &s)| {
                    acc.checked_add((d - 1).checked_mul(usize::try_from(s).ok()?)?)
                })
        };
        let inside = n == 0 || last().is_some_and(|l| l < self.buf.len());
        assert!(
            shape.len() == strides.len() && inside,
            "view layout outside its storage"
        );
        Tensor {
            buf: self.buf.clone(),
            shape,
            strides,
            offset,
        }
    }

    /// The layout: sizes, strides and offset of the first element.
    pub(crate) fn layout(&self) -> (Dims, Strides, usize) {
        (self.shape.clone(), self.strides.clone(), self.offset)
    }

    /// Index in the storage of the first element.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// A borrowed ndarray view of the elements.
    pub(crate) fn nd(&self) -> ArrayViewD<'_, E> {
        let strides: Dims = self.strides.iter().map(|&s| s as usize).collect();
        let shape = IxDyn(&self.shape).strides(IxDyn(&strides));
        // SAFETY: every constructor keeps each index of the shape inside
        // `buf` at non-negative strides (see `with_layout`), `buf` is not
        // written while shared (`as_mut_slice` copies first), and the view
        // borrows `self`, which keeps `buf` alive.
        unsafe { ArrayView::from_shape_ptr(shape, self.buf.as_ptr().add(self.offset)) }
    }

    /// Builds a tensor from row-major data: `x[i₀, …, iₙ] = data[Σₖ iₖ·sₖ]`,
    /// with sₖ the product of the sizes after axis k.
    ///
    /// Not differentiable: a constant (wrap it in a `Parameter` or
    /// `Tape::var` of tapir-autograd to track it).
    ///
    /// PyTorch: `torch.tensor(data).reshape(shape)`; NumPy
    /// `np.array(data).reshape(shape)`.
    ///
    /// # Errors
    /// When `data.len()` differs from the product of `shape`.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// assert_eq!(x.shape(), &[2, 3]);
    /// assert_eq!(x.at([1, 0])?, 4.0);
    /// assert!(Tensor::<f32>::from_vec(vec![1.0, 2.0], [3]).is_err());
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
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
        Ok(Self::from_contiguous(data, shape))
    }

    /// Builds a tensor by copying a slice of row-major data (see
    /// [`Tensor::from_vec`]).
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.tensor(data).reshape(shape)`.
    ///
    /// # Errors
    /// When the length differs from the product of `shape`.
    pub fn from_slice(data: &[E], shape: impl AsRef<[usize]>) -> Result<Self> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 tensor holding `v`.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.tensor(v)`; NumPy `np.array(v)`.
    pub fn scalar(v: E) -> Self {
        Self::from_contiguous(vec![v], &[])
    }

    /// A tensor of the given shape filled with `v`: `x[i] = v` for every i.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.full(shape, v)`; NumPy `np.full`, TensorFlow `tf.fill`.
    ///
    /// # Panics
    /// When the shape is too large to allocate (its element count or byte
    /// size overflows, or the allocator refuses it), with the message of
    /// [`Error::TooLarge`]. Shapes that come from outside the program
    /// (files, user input) should go through [`Tensor::try_full`].
    #[track_caller]
    pub fn full(shape: impl AsRef<[usize]>, v: E) -> Self {
        Self::try_full(shape, v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::full`] that returns an error instead of panicking.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.full`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] with the shape and the bytes asked for.
    ///
    /// ```
    /// use tapir_tensor::{Error, Tensor};
    /// let e = Tensor::<f32>::try_full([1 << 32, 1 << 32], 0.0).unwrap_err();
    /// assert!(matches!(e, Error::TooLarge { .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_full(shape: impl AsRef<[usize]>, v: E) -> Result<Self> {
        let shape = shape.as_ref();
        let n = crate::shape::check_alloc::<E>("full", shape)?;
        Ok(Self::from_contiguous(vec![v; n], shape))
    }

    /// Zeros of the given shape, `x[i] = 0`.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.zeros(shape)`; NumPy `np.zeros`.
    ///
    /// # Panics
    /// As [`Tensor::full`]; [`Tensor::try_zeros`] returns the error.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let z = Tensor::<f32>::zeros([2, 3]);
    /// assert_eq!(z.shape(), &[2, 3]);
    /// assert_eq!(z.to_vec(), [0.0; 6]);
    /// ```
    #[track_caller]
    pub fn zeros(shape: impl AsRef<[usize]>) -> Self {
        Self::try_zeros(shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tensor::zeros`] that returns an error instead of panicking.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.zeros`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] with the shape and the bytes asked for.
    pub fn try_zeros(shape: impl AsRef<[usize]>) -> Result<Self> {
        let shape = shape.as_ref();
        let n = crate::shape::check_alloc::<E>("zeros", shape)?;
        Ok(Self::from_contiguous(vec![E::ZERO; n], shape))
    }

    /// Ones of the given shape, `x[i] = 1`.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.ones(shape)`; NumPy `np.ones`.
    ///
    /// # Panics
    /// As [`Tensor::full`].
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let o = Tensor::<f64>::ones([3]);
    /// assert_eq!(o.to_vec(), [1.0, 1.0, 1.0]);
    /// assert_eq!(o.sum().item().unwrap(), 3.0);
    /// ```
    #[track_caller]
    pub fn ones(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, E::ONE)
    }

    /// Zeros shaped like `self`.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.zeros_like`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.shape())
    }

    /// Ones shaped like `self`.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.ones_like`.
    pub fn ones_like(&self) -> Self {
        Self::ones(self.shape())
    }

    /// `v` everywhere, shaped like `self`.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.full_like(x, v)`.
    pub fn full_like(&self, v: E) -> Self {
        Self::full(self.shape(), v)
    }

    /// Values xₖ = start + k·step below `end` (above, for a negative step),
    /// k = 0, 1, …, ⌈(end − start)/step⌉ − 1.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.arange(start, end, step)`; NumPy `np.arange`,
    /// TensorFlow `tf.range`.
    ///
    /// # Errors
    /// When `step` is zero or not finite, or the bounds are not finite.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// assert_eq!(Tensor::<f32>::arange(0.0, 2.0, 0.5)?.to_vec(), [0.0, 0.5, 1.0, 1.5]);
    /// assert_eq!(Tensor::<f32>::arange(3.0, 0.0, -1.0)?.to_vec(), [3.0, 2.0, 1.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
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
        // `as` saturates: a count beyond usize is refused by the check.
        let n = ((e - s) / st).ceil().max(0.0) as usize;
        crate::shape::check_alloc::<E>("arange", &[n])?;
        let v = (0..n).map(|i| E::from_f64(s + st * i as f64)).collect();
        Self::from_vec(v, [n])
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive,
    /// xₖ = start + k·(end − start)/(steps − 1); the last is `end` exactly.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.linspace(start, end, steps)`; NumPy's `np.linspace`
    /// defaults to 50 values.
    ///
    /// # Panics
    /// When `steps` elements cannot be allocated (as [`Tensor::full`]).
    #[track_caller]
    pub fn linspace(start: E, end: E, steps: usize) -> Self {
        if let Err(e) = crate::shape::check_alloc::<E>("linspace", &[steps]) {
            panic!("{e}");
        }
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

    /// The n×n identity matrix, Iᵢⱼ = 1 if i = j, else 0.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.eye(n)`; NumPy `np.eye`, TensorFlow `tf.eye`.
    ///
    /// # Panics
    /// When n² elements cannot be allocated (as [`Tensor::full`]).
    #[track_caller]
    pub fn eye(n: usize) -> Self {
        if let Err(e) = crate::shape::check_alloc::<E>("eye", &[n, n]) {
            panic!("{e}");
        }
        let mut a = ArrayD::zeros(IxDyn(&[n, n]));
        for i in 0..n {
            a[[i, i].as_slice()] = E::ONE;
        }
        Self::from_owned(a)
    }

    /// Uniform samples, x ~ U[low, high), drawn in order from `rng` (the
    /// numbers differ from PyTorch's and NumPy's generators).
    ///
    /// Not differentiable: a random constant.
    ///
    /// PyTorch: `torch.empty(shape).uniform_(low, high)`; NumPy
    /// `rng.uniform(low, high, size)`, TensorFlow
    /// `tf.random.uniform(shape, minval, maxval)`.
    ///
    /// # Panics
    /// When the shape is too large to allocate (as [`Tensor::full`]).
    #[track_caller]
    pub fn uniform(shape: impl AsRef<[usize]>, low: E, high: E, rng: &mut Rng) -> Self {
        let (lo, hi) = (low.to_f64(), high.to_f64());
        let n = crate::shape::check_alloc::<E>("uniform", shape.as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        let v = (0..n)
            .map(|_| E::from_f64(lo + (hi - lo) * rng.uniform()))
            .collect();
        Self::from_vec(v, shape).expect("length matches")
    }

    /// Uniform samples, x ~ U[0, 1), drawn from `rng`.
    ///
    /// Not differentiable: a random constant.
    ///
    /// PyTorch: `torch.rand(shape)`; NumPy `rng.random(size)`.
    ///
    /// # Panics
    /// When the shape is too large to allocate (as [`Tensor::full`]).
    #[track_caller]
    pub fn rand(shape: impl AsRef<[usize]>, rng: &mut Rng) -> Self {
        Self::uniform(shape, E::ZERO, E::ONE, rng)
    }

    /// Normal samples, x ~ N(mean, std²), drawn from `rng`.
    ///
    /// Not differentiable: a random constant.
    ///
    /// PyTorch: `torch.normal(mean, std, size)`; NumPy
    /// `rng.normal(loc, scale, size)`, TensorFlow
    /// `tf.random.normal(shape, mean, stddev)`.
    ///
    /// # Panics
    /// When the shape is too large to allocate (as [`Tensor::full`]).
    #[track_caller]
    pub fn normal(shape: impl AsRef<[usize]>, mean: E, std: E, rng: &mut Rng) -> Self {
        let (m, s) = (mean.to_f64(), std.to_f64());
        let n = crate::shape::check_alloc::<E>("normal", shape.as_ref())
            .unwrap_or_else(|e| panic!("{e}"));
        let v = (0..n).map(|_| E::from_f64(m + s * rng.normal())).collect();
        Self::from_vec(v, shape).expect("length matches")
    }

    /// Standard normal samples, x ~ N(0, 1), drawn in order from `rng`: the
    /// same seed gives the same tensor (the numbers differ from PyTorch's).
    ///
    /// Not differentiable: a random constant.
    ///
    /// PyTorch: `torch.randn(shape)`; NumPy `rng.standard_normal(size)`,
    /// TensorFlow `tf.random.normal(shape)`.
    ///
    /// # Panics
    /// When the shape is too large to allocate (as [`Tensor::full`]).
    ///
    /// ```
    /// use tapir_tensor::{Rng, Tensor};
    /// let x = Tensor::<f64>::randn([1000], &mut Rng::seed(1));
    /// assert_eq!(x.shape(), &[1000]);
    /// assert_eq!(x.to_vec(), Tensor::<f64>::randn([1000], &mut Rng::seed(1)).to_vec());
    /// let mean = x.mean().item().unwrap();
    /// assert!(mean.abs() < 0.1);
    /// ```
    #[track_caller]
    pub fn randn(shape: impl AsRef<[usize]>, rng: &mut Rng) -> Self {
        Self::normal(shape, E::ZERO, E::ONE, rng)
    }

    /// Wraps an ndarray array without copying.
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.from_numpy` (which also shares the buffer).
    pub fn from_array(a: ArrayD<E>) -> Self {
        Self::from_owned(a)
    }

    /// Converts a shared ndarray array (copies only if it is shared).
    ///
    /// Not differentiable: a constant.
    ///
    /// PyTorch: `torch.from_numpy`.
    pub fn from_shared(a: ArcArray<E, IxDyn>) -> Self {
        Self::from_owned(a.into_owned())
    }

    /// Converts to an owned ndarray array. Takes over the buffer without
    /// copying when the tensor was built from a `Vec` or by ndarray, owns it
    /// alone and spans all of it; copies otherwise (shared or partial
    /// storage, and the single-allocation results of elementwise ops).
    ///
    /// Not differentiable (it leaves the tensor world).
    ///
    /// PyTorch: `Tensor.numpy()`.
    pub fn into_array(mut self) -> ArrayD<E> {
        let whole = self.offset == 0 && self.len() == self.buf.len();
        if whole && self.is_contiguous() {
            let buf = std::mem::replace(&mut self.buf, Storage::Empty);
            return Array::from_shape_vec(IxDyn(&self.shape), buf.into_vec())
                .expect("length matches");
        }
        self.nd().to_owned()
    }

    /// A borrowed ndarray view (no copy).
    ///
    /// PyTorch: `Tensor.numpy()` (a view of CPU tensors).
    pub fn view(&self) -> ArrayViewD<'_, E> {
        self.nd()
    }

    /// The elements in row-major order, whatever the layout.
    ///
    /// Not differentiable (it reads values out).
    ///
    /// PyTorch: `x.flatten().tolist()`; NumPy `x.ravel().tolist()`.
    pub fn to_vec(&self) -> Vec<E> {
        match self.as_slice() {
            Some(s) => s.to_vec(),
            None => {
                let mut out = Vec::with_capacity(self.len());
                copy_strided(&self.buf, self.offset, &self.shape, &self.strides, &mut out);
                out
            }
        }
    }

    /// The row-major elements as a slice, when the layout is contiguous.
    ///
    /// PyTorch: no counterpart (`Tensor.data_ptr()` is the raw address).
    #[inline]
    pub fn as_slice(&self) -> Option<&[E]> {
        if self.is_contiguous() {
            Some(&self.buf[self.offset..self.offset + self.len()])
        } else {
            None
        }
    }

    /// The sizes of the axes.
    ///
    /// PyTorch: `Tensor.shape` (`Tensor.size()`).
    #[inline]
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether `other` has the same shape (compared word by word: shapes are
    /// short, and a slice comparison calls `memcmp`).
    ///
    /// PyTorch: `a.shape == b.shape`.
    #[inline]
    pub fn same_shape(&self, other: &Self) -> bool {
        self.shape.len() == other.shape.len()
            && self.shape.iter().zip(&other.shape).all(|(a, b)| a == b)
    }

    /// The shape as an owned [`Shape`].
    ///
    /// PyTorch: `Tensor.size()`.
    pub fn dims(&self) -> Shape {
        shape_of(self.shape())
    }

    /// Element strides of each axis.
    ///
    /// PyTorch: `Tensor.stride()` (also in elements); NumPy's `x.strides`
    /// counts bytes.
    #[inline]
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// Number of axes.
    ///
    /// PyTorch: `Tensor.dim()` (`Tensor.ndim`).
    #[inline]
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    ///
    /// PyTorch: `Tensor.numel()` (Python's `len(x)` is the first axis's size
    /// instead); NumPy `x.size`.
    #[inline]
    pub fn len(&self) -> usize {
        numel(&self.shape)
    }

    /// Whether the tensor has no elements.
    ///
    /// PyTorch: `x.numel() == 0`.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the elements lie in row-major order without gaps.
    ///
    /// PyTorch: `Tensor.is_contiguous()`.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        // An empty tensor addresses nothing (its strides may be zeros).
        if self.shape.contains(&0) {
            return true;
        }
        let mut want = 1usize;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n == 0 {
                return true;
            }
            if n != 1 && s as usize != want {
                return false;
            }
            want = want.saturating_mul(n);
        }
        true
    }

    /// A row-major copy when the layout is not already row-major; otherwise
    /// a cheap clone. The values are unchanged.
    ///
    /// Gradient: no `Var` counterpart (`Var` ops take any layout).
    ///
    /// PyTorch: `Tensor.contiguous()`; NumPy `np.ascontiguousarray`.
    pub fn contiguous(&self) -> Self {
        if self.is_contiguous() {
            self.clone()
        } else {
            Self::from_contiguous(self.to_vec(), &self.shape)
        }
    }

    /// The value of a one-element tensor of any rank.
    ///
    /// Not differentiable (it reads a value out).
    ///
    /// PyTorch: `Tensor.item()`.
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
        Ok(self.buf[self.offset])
    }

    /// The element at a multi-index, `x[i₀, …, iₙ]`.
    ///
    /// Not differentiable (it reads a value out).
    ///
    /// PyTorch: `x[i, j].item()`.
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
        let off: usize = index
            .iter()
            .zip(&self.strides)
            .map(|(&i, &s)| i * s as usize)
            .sum();
        Ok(self.buf[self.offset + off])
    }

    /// Converts the elements to another float type (`f32` ↔ `f64`), rounding
    /// to nearest.
    ///
    /// Not differentiable (no `Var` counterpart; a tape holds one type).
    ///
    /// PyTorch: `Tensor.to(dtype)` (`x.double()`, `x.float()`); NumPy
    /// `x.astype`.
    pub fn cast<F: Float>(&self) -> Tensor<F> {
        let v = self.to_vec().into_iter().map(|v| F::from_f64(v.to_f64()));
        Tensor::from_contiguous(v.collect(), &self.shape)
    }

    /// The elements, mutably, when the layout is contiguous and no other
    /// tensor shares the storage; `None` otherwise (nothing is copied):
    /// [`as_mut_slice`](Self::as_mut_slice) without the copy-on-write.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let mut a = Tensor::<f32>::zeros([2]);
    /// assert!(a.try_as_mut_slice().is_some());
    /// let b = a.clone(); // shares the storage
    /// assert!(a.try_as_mut_slice().is_none());
    /// # drop(b);
    /// ```
    #[inline]
    pub fn try_as_mut_slice(&mut self) -> Option<&mut [E]> {
        if !self.is_contiguous() {
            return None;
        }
        let (off, n) = (self.offset, self.len());
        self.buf.get_mut().map(|b| &mut b[off..off + n])
    }

    /// Mutable access to the elements, copying first if the storage is
    /// shared (copy-on-write) or not contiguous.
    ///
    /// Not differentiable (writes are invisible to autograd).
    ///
    /// PyTorch: in-place writes through indexing (`x[i] = v`), without the
    /// copy-on-write.
    pub fn as_mut_slice(&mut self) -> &mut [E] {
        let n = self.len();
        if !self.is_contiguous() || self.buf.get_mut().is_none() {
            *self = Self::from_contiguous(self.to_vec(), &self.shape);
        }
        let off = self.offset;
        let buf = self.buf.get_mut().expect("unique after the copy");
        &mut buf[off..off + n]
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
            self.nd()
        )
    }
}

impl<E: Float> fmt::Display for Tensor<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.nd(), f)
    }
}

/// Equal shapes and equal elements (NaN ≠ NaN, as for floats).
impl<E: Float> PartialEq for Tensor<E> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.nd() == other.nd()
    }
}

/// Appends the elements of the strided view (`offset`, `shape`, `strides`
/// into `src`) to `out` in row-major order: the last two axes as a plane
/// (rows copied as slices when the last stride is 1, else in 32×32 tiles
/// so that a transposed matrix is read and written a cache line at a
/// time), the axes before them by recursion. The element-by-element
/// iterator this replaces made every transposed weight gradient cost
/// several times its GEMM.
fn copy_strided<E: Copy + Send + Sync>(
    src: &[E],
    offset: usize,
    shape: &[usize],
    strides: &[isize],
    out: &mut Vec<E>,
) {
    match shape.len() {
        0 => out.push(src[offset]),
        1 => {
            let s = strides[0] as usize;
            out.extend((0..shape[0]).map(|i| src[offset + i * s]));
        }
        2 => {
            let (r, c) = (shape[0], shape[1]);
            let (sr, sc) = (strides[0] as usize, strides[1] as usize);
            if sc == 1 {
                for i in 0..r {
                    out.extend_from_slice(&src[offset + i * sr..offset + i * sr + c]);
                }
                return;
            }
            if sr == 1 {
                let base = out.len();
                out.reserve(r * c);
                let spare = &mut out.spare_capacity_mut()[..r * c];
                crate::transpose::transpose_into(src, offset, sc, r, c, spare);
                // SAFETY: transpose_into wrote all r·c elements after `base`.
                unsafe { out.set_len(base + r * c) };
                return;
            }
            const T: usize = 32;
            let base = out.len();
            out.resize(base + r * c, src[offset]);
            let dst = &mut out[base..];
            for i0 in (0..r).step_by(T) {
                for j0 in (0..c).step_by(T) {
                    for i in i0..(i0 + T).min(r) {
                        let row = &mut dst[i * c..(i + 1) * c];
                        let from = offset + i * sr;
                        for (j, d) in row.iter_mut().enumerate().take((j0 + T).min(c)).skip(j0) {
                            *d = src[from + j * sc];
                        }
                    }
                }
            }
        }
        _ => {
            let s = strides[0] as usize;
            for i in 0..shape[0] {
                copy_strided(src, offset + i * s, &shape[1..], &strides[1..], out);
            }
        }
    }
}
