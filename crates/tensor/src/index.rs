//! Indexing ops: index_select / index_add (embedding lookup and its
//! backward), gather / scatter_add, one_hot.

use std::borrow::Cow;

use ndarray::{Axis, Dimension, IxDyn};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::{PAR_CHUNK, PAR_THRESHOLD};
use crate::reduce::IndexArray;
use crate::shape::{contiguous_strides, normalize_axis};
use crate::tensor::Tensor;

/// Builds an index array (for `gather`, `scatter_add`, `one_hot`) from
/// row-major data.
///
/// # Errors
/// When the length does not fill the shape.
pub fn indices(data: Vec<usize>, shape: impl AsRef<[usize]>) -> Result<IndexArray> {
    let shape = shape.as_ref();
    let expected = crate::shape::numel(shape);
    if data.len() != expected {
        return Err(Error::DataLength {
            op: "indices",
            len: data.len(),
            shape: shape.to_vec(),
            expected,
        });
    }
    Ok(IndexArray::from_shape_vec(IxDyn(shape), data).expect("length checked"))
}

/// What `gather`, `scatter_add` and `one_hot` accept as their index tensor
/// (PyTorch passes a `LongTensor`):
///
/// - an [`IndexArray`] (what `argmax_axes` returns), by value or reference;
/// - a pair `(data, shape)` of row-major `usize` data and a shape, e.g.
///   `(vec![0, 2, 1], [3, 1])` or `(&idx[..], &shape[..])`;
/// - a float [`Tensor`] holding non-negative integers, e.g. labels read
///   from a file.
///
/// ```
/// use tapir_tensor::Tensor;
/// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
/// let picked = x.gather(1, (vec![2, 0], [2, 1]))?;
/// assert_eq!(picked.to_vec(), [3.0, 4.0]);
/// let as_tensor = Tensor::<f32>::from_vec(vec![2.0, 0.0], [2, 1])?;
/// assert_eq!(x.gather(1, &as_tensor)?.to_vec(), [3.0, 4.0]);
/// # Ok::<(), tapir_tensor::Error>(())
/// ```
pub trait AsIndex {
    /// The index array, borrowed where it already is one.
    ///
    /// # Errors
    /// When data and shape disagree in length, or a float index is not a
    /// non-negative integer; the error names `op`.
    fn as_index(&self, op: &'static str) -> Result<Cow<'_, IndexArray>>;
}

impl AsIndex for IndexArray {
    fn as_index(&self, _op: &'static str) -> Result<Cow<'_, IndexArray>> {
        Ok(Cow::Borrowed(self))
    }
}

impl<T: AsIndex + ?Sized> AsIndex for &T {
    fn as_index(&self, op: &'static str) -> Result<Cow<'_, IndexArray>> {
        (**self).as_index(op)
    }
}

impl<D: AsRef<[usize]>, S: AsRef<[usize]>> AsIndex for (D, S) {
    fn as_index(&self, op: &'static str) -> Result<Cow<'_, IndexArray>> {
        let (data, shape) = (self.0.as_ref(), self.1.as_ref());
        let expected = crate::shape::numel(shape);
        if data.len() != expected {
            return Err(Error::DataLength {
                op,
                len: data.len(),
                shape: shape.to_vec(),
                expected,
            });
        }
        let a = IndexArray::from_shape_vec(IxDyn(shape), data.to_vec()).expect("length checked");
        Ok(Cow::Owned(a))
    }
}

impl<E: Float> AsIndex for Tensor<E> {
    fn as_index(&self, op: &'static str) -> Result<Cow<'_, IndexArray>> {
        let mut data = Vec::with_capacity(self.len());
        for v in self.to_vec() {
            let f = v.to_f64();
            // 2^53: above it f64 no longer holds every integer.
            if !(f >= 0.0 && f.fract() == 0.0 && f < 9007199254740992.0) {
                return Err(Error::arg(
                    op,
                    format!("index tensor holds {f}, not a non-negative integer"),
                ));
            }
            data.push(f as usize);
        }
        let a = IndexArray::from_shape_vec(IxDyn(self.shape()), data).expect("same length");
        Ok(Cow::Owned(a))
    }
}

/// An index that matches its input on every axis but `axis`, in standard
/// layout: the input and the index are then (outer, n or ni, inner) blocks
/// that `gather` and `scatter_add` walk with plain loops.
struct Lanes {
    outer: usize,
    ni: usize,
    inner: usize,
}

impl Lanes {
    fn of(shape: &[usize], a: usize, index: &IndexArray) -> Option<Self> {
        let is = index.shape();
        let same_off_axis =
            is.len() == shape.len() && (0..shape.len()).all(|d| d == a || is[d] == shape[d]);
        if !same_off_axis || !index.is_standard_layout() {
            return None;
        }
        Some(Lanes {
            outer: shape[..a].iter().product(),
            ni: is[a],
            inner: shape[a + 1..].iter().product(),
        })
    }
}

fn check_index(op: &'static str, i: usize, axis: usize, size: usize) -> Result<()> {
    if i >= size {
        return Err(Error::Index {
            op,
            index: i,
            axis,
            size,
        });
    }
    Ok(())
}

/// Flat offset of position `p` with its coordinate on `axis` replaced by `i`.
fn offset_along(p: &[usize], axis: usize, i: usize, strides: &[usize]) -> usize {
    p.iter()
        .zip(strides)
        .enumerate()
        .map(|(d, (&pd, &s))| s * if d == axis { i } else { pd })
        .sum()
}

impl<E: Float> Tensor<E> {
    /// Picks the slices `idx` along `axis`: `out[…, k, …] = x[…, idx[k], …]`.
    /// With a weight matrix and axis 0 this is an embedding lookup.
    ///
    /// Gradient: scatter-added back into zeros at `idx`
    /// ([`Tensor::index_add`]), so repeated indices accumulate.
    ///
    /// PyTorch: `torch.index_select(x, dim, index)`; NumPy
    /// `np.take(x, idx, axis)`, TensorFlow `tf.gather(x, idx, axis=axis)`.
    ///
    /// # Errors
    /// When the axis or an index is out of range.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let w = Tensor::<f32>::from_vec(vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0], [3, 2])?;
    /// let rows = w.index_select(0, &[2, 0, 2])?;
    /// assert_eq!(rows.shape(), &[3, 2]);
    /// assert_eq!(rows.to_vec(), [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn index_select(&self, axis: isize, idx: &[usize]) -> Result<Self> {
        let a = normalize_axis("index_select", axis, self.shape())?;
        for &i in idx {
            check_index("index_select", i, a, self.shape()[a])?;
        }
        let mut out_shape = self.shape().to_vec();
        out_shape[a] = idx.len();
        crate::shape::check_alloc::<E>("index_select", &out_shape)?;
        Ok(Self::from_owned(self.nd().select(Axis(a), idx)))
    }

    /// Adds the slices of `src` into a copy of `self` at positions `idx`
    /// along `axis`: `out[…, idx[k], …] += src[…, k, …]`, accumulating
    /// repeated indices. The backward of [`Tensor::index_select`].
    ///
    /// Gradient: `self` gets the output gradient; `src` gets it picked at
    /// `idx` ([`Tensor::index_select`]).
    ///
    /// PyTorch: `torch.index_add(x, dim, index, source)` (not in place, unlike
    /// `Tensor.index_add_`); NumPy `np.add.at`.
    ///
    /// # Errors
    /// When an index is out of range or `src` has the wrong shape.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::zeros([3]);
    /// let src = Tensor::<f32>::from_vec(vec![1.0, 2.0, 4.0], [3])?;
    /// assert_eq!(x.index_add(0, &[2, 0, 2], &src)?.to_vec(), [2.0, 0.0, 5.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn index_add(&self, axis: isize, idx: &[usize], src: &Self) -> Result<Self> {
        let a = normalize_axis("index_add", axis, self.shape())?;
        let mut want: Vec<usize> = self.shape().to_vec();
        want[a] = idx.len();
        if src.shape() != want.as_slice() {
            return Err(Error::shape(
                "index_add",
                format!(
                    "src has shape {:?}, expected {want:?} for {} indices into {:?} along axis {a}",
                    src.shape(),
                    idx.len(),
                    self.shape()
                ),
            ));
        }
        for &i in idx {
            check_index("index_add", i, a, self.shape()[a])?;
        }
        // Row-major loops over [outer, axis, inner] blocks: contiguous runs
        // of `inner` elements (the gradient of a slice or split along the
        // last axis is a per-row copy, not a strided walk per index).
        let shape = self.shape();
        let n = shape[a];
        let inner: usize = shape[a + 1..].iter().product();
        let outer: usize = shape[..a].iter().product();
        let mut out = self.to_vec();
        let src = src.contiguous();
        let ss = src.as_slice().expect("contiguous");
        let m = idx.len();
        for o in 0..outer {
            let dst = &mut out[o * n * inner..(o + 1) * n * inner];
            let from = &ss[o * m * inner..(o + 1) * m * inner];
            for (k, &i) in idx.iter().enumerate() {
                let d = &mut dst[i * inner..(i + 1) * inner];
                for (d, &v) in d.iter_mut().zip(&from[k * inner..(k + 1) * inner]) {
                    *d += v;
                }
            }
        }
        Self::from_vec(out, shape)
    }

    /// Gathers along `axis`: `out[p] = x[p with p[axis] = index[p]]`; the
    /// result has the shape of `index`.
    ///
    /// Gradient: scatter-added back into zeros at the gathered positions
    /// ([`Tensor::scatter_add`]), so repeated indices accumulate.
    ///
    /// PyTorch: `torch.gather(x, dim, index)`; NumPy
    /// `np.take_along_axis(x, index, axis)` (TensorFlow's `tf.gather` is
    /// [`Tensor::index_select`] instead).
    ///
    /// # Errors
    /// When ranks differ, `index` is larger than `self` off `axis`, or an
    /// index is out of range; see [`AsIndex`] for the index forms.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// // Per row, the entries at columns 2, 0 and 1, 1.
    /// let y = x.gather(1, (vec![2, 0, 1, 1], [2, 2]))?;
    /// assert_eq!(y.shape(), &[2, 2]);
    /// assert_eq!(y.to_vec(), [3.0, 1.0, 5.0, 5.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn gather(&self, axis: isize, index: impl AsIndex) -> Result<Self> {
        let index = index.as_index("gather")?;
        let index: &IndexArray = &index;
        let a = normalize_axis("gather", axis, self.shape())?;
        self.check_scatter_shapes("gather", a, index, None)?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let n = self.shape()[a];
        if let Some(lanes) = Lanes::of(self.shape(), a, index) {
            // The index matches the input off `axis` (max pooling's planes,
            // cross-entropy's picked classes): direct loops, no per-element
            // multi-index.
            let is = index.as_slice().expect("standard layout");
            if let Some(&bad) = is.iter().find(|&&i| i >= n) {
                check_index("gather", bad, a, n)?;
            }
            let mut out = vec![E::ZERO; is.len()];
            let block_in = n * lanes.inner;
            let block_idx = lanes.ni * lanes.inner;
            let run = |(o, (dst, ix)): (usize, (&mut [E], &[usize]))| {
                let src = &xs[o * block_in..][..block_in];
                for (d, ix) in dst.chunks_mut(lanes.inner).zip(ix.chunks(lanes.inner)) {
                    for (k, (d, &i)) in d.iter_mut().zip(ix).enumerate() {
                        *d = src[i * lanes.inner + k];
                    }
                }
            };
            if block_idx > 0 {
                if is.len() >= PAR_THRESHOLD && lanes.outer > 1 {
                    out.par_chunks_mut(block_idx)
                        .zip(is.par_chunks(block_idx))
                        .enumerate()
                        .with_min_len((PAR_CHUNK / block_idx).max(1))
                        .for_each(run);
                } else {
                    out.chunks_mut(block_idx)
                        .zip(is.chunks(block_idx))
                        .enumerate()
                        .for_each(run);
                }
            }
            return Self::from_vec(out, index.shape());
        }
        let st = contiguous_strides(self.shape());
        let mut out = Vec::with_capacity(index.len());
        for (p, &i) in index.indexed_iter() {
            check_index("gather", i, a, n)?;
            out.push(xs[offset_along(p.slice(), a, i, &st)]);
        }
        Self::from_vec(out, index.shape())
    }

    /// Returns `self` with `src[p]` added at `p with p[axis] = index[p]` for
    /// every position p of `index`, accumulating repeats:
    /// the backward of [`Tensor::gather`].
    ///
    /// Gradient: `self` gets the output gradient; `src` gets it gathered at
    /// `index` ([`Tensor::gather`]), zero where `src` is larger than
    /// `index`.
    ///
    /// PyTorch: `torch.scatter_add(x, dim, index, src)` (not in place, unlike
    /// `Tensor.scatter_add_`).
    ///
    /// # Errors
    /// When ranks differ, `index` is larger than `src` or than `self` off
    /// `axis`, or an index is out of range.
    pub fn scatter_add(&self, axis: isize, index: impl AsIndex, src: &Self) -> Result<Self> {
        self.clone().scatter_add_into(axis, index, src)
    }

    /// [`Tensor::scatter_add`] that consumes `self` and adds into its
    /// storage when nothing else shares it (no copy of `self`), as
    /// `map_into` does; the backward of `gather` scatters into fresh zeros
    /// this way.
    ///
    /// PyTorch: `Tensor.scatter_add_(dim, index, src)` on a tensor nobody
    /// else holds.
    ///
    /// # Errors
    /// As [`Tensor::scatter_add`].
    pub fn scatter_add_into(self, axis: isize, index: impl AsIndex, src: &Self) -> Result<Self> {
        let index = index.as_index("scatter_add")?;
        let index: &IndexArray = &index;
        let a = normalize_axis("scatter_add", axis, self.shape())?;
        self.check_scatter_shapes("scatter_add", a, index, Some(src))?;
        let shape = self.shape().to_vec();
        // A strided `self` is copied to row-major first; a contiguous one
        // moves (no copy when unshared).
        let owned = if self.is_contiguous() {
            self
        } else {
            self.contiguous()
        };
        let mut out = owned.into_array();
        let st = contiguous_strides(&shape);
        let n = shape[a];
        let os = out.as_slice_mut().expect("contiguous");
        let lanes = Lanes::of(&shape, a, index)
            .filter(|_| src.shape() == index.shape() && src.is_contiguous());
        if let Some(lanes) = lanes {
            // Direct loops, as in `gather`; each outer block of `out` is
            // written by one task, its sources added in index order.
            let is = index.as_slice().expect("standard layout");
            if let Some(&bad) = is.iter().find(|&&i| i >= n) {
                check_index("scatter_add", bad, a, n)?;
            }
            let ss = src.as_slice().expect("contiguous");
            let block_out = n * lanes.inner;
            let block_idx = lanes.ni * lanes.inner;
            let run = |(dst, (ix, sv)): (&mut [E], (&[usize], &[E]))| {
                for (ix, sv) in ix.chunks(lanes.inner).zip(sv.chunks(lanes.inner)) {
                    for (k, (&i, &v)) in ix.iter().zip(sv).enumerate() {
                        dst[i * lanes.inner + k] += v;
                    }
                }
            };
            if block_idx > 0 && block_out > 0 {
                if is.len() >= PAR_THRESHOLD && lanes.outer > 1 {
                    os.par_chunks_mut(block_out)
                        .zip(is.par_chunks(block_idx).zip(ss.par_chunks(block_idx)))
                        .with_min_len((PAR_CHUNK / block_idx).max(1))
                        .for_each(run);
                } else {
                    os.chunks_mut(block_out)
                        .zip(is.chunks(block_idx).zip(ss.chunks(block_idx)))
                        .for_each(run);
                }
            }
            return Ok(Self::from_owned(out));
        }
        let src_nd = src.nd();
        for (p, &i) in index.indexed_iter() {
            check_index("scatter_add", i, a, n)?;
            os[offset_along(p.slice(), a, i, &st)] += src_nd[&p];
        }
        Ok(Self::from_owned(out))
    }

    fn check_scatter_shapes(
        &self,
        op: &'static str,
        a: usize,
        index: &IndexArray,
        src: Option<&Self>,
    ) -> Result<()> {
        let bad = index.ndim() != self.ndim()
            || index
                .shape()
                .iter()
                .zip(self.shape())
                .enumerate()
                .any(|(d, (&i, &s))| d != a && i > s)
            || src.is_some_and(|s| {
                s.ndim() != index.ndim() || index.shape().iter().zip(s.shape()).any(|(i, s)| i > s)
            });
        if bad {
            return Err(Error::shape(
                op,
                format!(
                    "index of shape {:?} does not fit input {:?}{} along axis {a}",
                    index.shape(),
                    self.shape(),
                    src.map(|s| format!(" and src {:?}", s.shape()))
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// One-hot encoding: `out[…, k] = 1` if `index[…] = k`, else 0, with shape
    /// `index.shape + [num_classes]`.
    ///
    /// Not differentiable (its input is indices).
    ///
    /// PyTorch: `torch.nn.functional.one_hot(index, num_classes)`, which
    /// returns integers where this returns `E`; TensorFlow
    /// `tf.one_hot(indices, depth)`.
    ///
    /// # Errors
    /// When an index is ≥ `num_classes`.
    pub fn one_hot(index: impl AsIndex, num_classes: usize) -> Result<Self> {
        let index = index.as_index("one_hot")?;
        let index: &IndexArray = &index;
        let mut shape = index.shape().to_vec();
        shape.push(num_classes);
        let n = crate::shape::check_alloc::<E>("one_hot", &shape)?;
        let mut out = vec![E::ZERO; n];
        for (k, &i) in index.iter().enumerate() {
            check_index("one_hot", i, index.ndim(), num_classes)?;
            out[k * num_classes + i] = E::ONE;
        }
        Self::from_vec(out, shape)
    }
}
