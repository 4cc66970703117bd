//! Shape and layout ops: views where the layout allows, copies otherwise.

use ndarray::{Axis, IxDyn, Slice};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::shape::{normalize_axis, normalize_axis_rank, numel, Shape};
use crate::tensor::{row_major_strides, Dims, Tensor};

impl<E: Float> Tensor<E> {
    /// Swaps axes `a` and `b` (a view, no copy):
    /// `out[…, j, …, i, …] = x[…, i, …, j, …]`.
    ///
    /// Gradient: the same swap applied to the output gradient.
    ///
    /// PyTorch: `torch.transpose(x, a, b)`; NumPy `np.swapaxes` (`np.transpose`
    /// and `tf.transpose` take a whole permutation, see [`Tensor::permute`]).
    ///
    /// # Errors
    /// When an axis is out of range.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// let y = x.transpose(0, 1)?;
    /// assert_eq!(y.shape(), &[3, 2]);
    /// assert_eq!(y.to_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let a = normalize_axis("transpose", a, self.shape())?;
        let b = normalize_axis("transpose", b, self.shape())?;
        let (mut sh, mut st, off) = self.layout();
        sh.swap(a, b);
        st.swap(a, b);
        Ok(self.with_layout(sh, st, off))
    }

    /// Matrix transpose xᵀ of a tensor of rank ≤ 2 (a view); ranks 0 and 1
    /// come back unchanged.
    ///
    /// Gradient: transposed back.
    ///
    /// PyTorch: `Tensor.t()`; NumPy `x.T` (which reverses any rank).
    ///
    /// # Errors
    /// When the rank is above 2.
    pub fn t(&self) -> Result<Self> {
        if self.ndim() > 2 {
            return Err(Error::shape(
                "t",
                format!("expects rank <= 2, got shape {:?}", self.shape()),
            ));
        }
        let (mut sh, mut st, off) = self.layout();
        sh.reverse();
        st.reverse();
        Ok(self.with_layout(sh, st, off))
    }

    /// Reorders the axes (a view): axis i of the result is axis `axes[i]` of
    /// `self`.
    ///
    /// Gradient: permuted back by the inverse permutation.
    ///
    /// PyTorch: `torch.permute(x, dims)`; NumPy `np.transpose(x, axes)`,
    /// TensorFlow `tf.transpose(x, perm)`.
    ///
    /// # Errors
    /// When `axes` is not a permutation of `0..ndim`.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec((0..6).map(|v| v as f32).collect(), [1, 2, 3])?;
    /// let y = x.permute(&[2, 0, 1])?;
    /// assert_eq!(y.shape(), &[3, 1, 2]);
    /// assert_eq!(y.to_vec(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn permute(&self, axes: &[isize]) -> Result<Self> {
        let nd = self.ndim();
        let mut seen = vec![false; nd];
        let mut p = Vec::with_capacity(nd);
        if axes.len() != nd {
            return Err(Error::shape(
                "permute",
                format!(
                    "{axes:?} is not a permutation of the axes of shape {:?}",
                    self.shape()
                ),
            ));
        }
        for &a in axes {
            let a = normalize_axis("permute", a, self.shape())?;
            if seen[a] {
                return Err(Error::shape(
                    "permute",
                    format!(
                        "{axes:?} is not a permutation of the axes of shape {:?}",
                        self.shape()
                    ),
                ));
            }
            seen[a] = true;
            p.push(a);
        }
        let sh = p.iter().map(|&a| self.shape()[a]).collect();
        let st = p.iter().map(|&a| self.strides()[a]).collect();
        Ok(self.with_layout(sh, st, self.offset()))
    }

    /// Gives the tensor a new shape with the same elements in row-major
    /// order; one size may be −1 and is inferred. A view for contiguous
    /// data, a copy otherwise.
    ///
    /// Gradient: reshaped back to the input's shape.
    ///
    /// PyTorch: `torch.reshape`; NumPy `np.reshape`, TensorFlow `tf.reshape`.
    ///
    /// # Errors
    /// When the sizes do not match, or more than one −1 or another negative
    /// size is given.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// let y = x.reshape([3, -1])?;
    /// assert_eq!(y.shape(), &[3, 2]);
    /// assert_eq!(y.to_vec(), x.to_vec());
    /// assert!(x.reshape([4, -1]).is_err());
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn reshape(&self, shape: impl AsRef<[isize]>) -> Result<Self> {
        let spec = shape.as_ref();
        let mut infer = None;
        let mut known = 1usize;
        for (i, &d) in spec.iter().enumerate() {
            if d == -1 {
                if infer.is_some() {
                    return Err(Error::shape(
                        "reshape",
                        format!("only one size may be -1, got {spec:?}"),
                    ));
                }
                infer = Some(i);
            } else if d < 0 {
                return Err(Error::shape("reshape", format!("invalid size in {spec:?}")));
            } else {
                // Saturating: an overflowing product matches no length.
                known = known.saturating_mul(d as usize);
            }
        }
        let mut out: Shape = spec.iter().map(|&d| d.max(0) as usize).collect();
        if let Some(i) = infer {
            if known == 0 || self.len() % known != 0 {
                return Err(Error::shape(
                    "reshape",
                    format!(
                        "cannot reshape {:?} ({} elements) to {spec:?}",
                        self.shape(),
                        self.len()
                    ),
                ));
            }
            out[i] = self.len() / known;
        }
        self.reshape_usize(&out)
    }

    /// [`Tensor::reshape`] with explicit sizes.
    ///
    /// Gradient: reshaped back to the input's shape.
    ///
    /// PyTorch: `torch.reshape` with no −1.
    ///
    /// # Errors
    /// When the number of elements differs.
    pub fn reshape_usize(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.len() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot reshape {:?} ({} elements) to {shape:?}",
                    self.shape(),
                    self.len()
                ),
            ));
        }
        if self.is_contiguous() {
            let st = row_major_strides(shape);
            return Ok(self.with_layout(Dims::from_slice(shape), st, self.offset()));
        }
        let v = self.to_vec();
        Self::from_vec(v, shape)
    }

    /// Removes `axis` if its size is 1 (a view); otherwise returns the
    /// tensor unchanged.
    ///
    /// Gradient: reshaped back to the input's shape.
    ///
    /// PyTorch: `torch.squeeze(x, dim)`; NumPy's `np.squeeze(x, axis)` and
    /// `tf.squeeze` raise an error instead when the axis is not of size 1.
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn squeeze(&self, axis: isize) -> Result<Self> {
        let a = normalize_axis("squeeze", axis, self.shape())?;
        if self.shape()[a] != 1 {
            return Ok(self.clone());
        }
        let (mut sh, mut st, off) = self.layout();
        sh.remove(a);
        st.remove(a);
        Ok(self.with_layout(sh, st, off))
    }

    /// Removes every axis of size 1 (a view).
    ///
    /// Gradient: reshaped back to the input's shape.
    ///
    /// PyTorch: `torch.squeeze(x)`; NumPy `np.squeeze(x)`.
    pub fn squeeze_all(&self) -> Self {
        let (mut sh, mut st, off) = self.layout();
        for a in (0..self.ndim()).rev() {
            if sh[a] == 1 {
                sh.remove(a);
                st.remove(a);
            }
        }
        self.with_layout(sh, st, off)
    }

    /// Inserts an axis of size 1 at `axis` (a view; −1 appends).
    ///
    /// Gradient: reshaped back to the input's shape.
    ///
    /// PyTorch: `torch.unsqueeze`; NumPy `np.expand_dims`, TensorFlow
    /// `tf.expand_dims`.
    ///
    /// # Errors
    /// When the axis is outside `-(ndim+1)..=ndim`.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        let a = normalize_axis_rank("unsqueeze", axis, self.ndim() + 1, self.shape())?;
        let (mut sh, mut st, off) = self.layout();
        // Any stride serves an axis of size 1; the row-major one keeps a
        // contiguous tensor contiguous.
        let inner = st.get(a).map_or(1, |&s| s * sh[a] as isize);
        sh.insert(a, 1);
        st.insert(a, inner);
        Ok(self.with_layout(sh, st, off))
    }

    /// Broadcasts to `shape` by NumPy's rules, repeating size-1 and missing
    /// leading axes. The result is materialised: ndarray's shared arrays
    /// cannot hold the zero strides of a broadcast view.
    ///
    /// Gradient: summed back over the broadcast axes ([`Tensor::sum_to`]).
    ///
    /// PyTorch: `torch.broadcast_to` (a view there, a copy here); NumPy
    /// `np.broadcast_to`.
    ///
    /// # Errors
    /// When the tensor does not broadcast to `shape`.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0], [2, 1])?;
    /// let y = x.broadcast_to([2, 3])?;
    /// assert_eq!(y.to_vec(), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// assert_eq!(y.sum_to(&[2, 1])?.to_vec(), [3.0, 6.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn broadcast_to(&self, shape: impl AsRef<[usize]>) -> Result<Self> {
        let shape = shape.as_ref();
        if shape == self.shape() {
            return Ok(self.clone());
        }
        // The size is checked before ndarray is asked (it refuses an
        // overflowing shape as if it did not broadcast).
        let broadcasts = match crate::shape::broadcast_shapes("broadcast_to", self.shape(), shape) {
            Ok(s) if s.as_slice() == shape => {
                crate::shape::check_alloc::<E>("broadcast_to", shape)?;
                true
            }
            Err(e @ Error::TooLarge { .. }) => return Err(e),
            _ => false,
        };
        // Fast paths: one element filled everywhere, or a contiguous block
        // that only gains leading axes, repeated whole (the gradient of a
        // sum, a bias over rows). Everything else goes through ndarray.
        let fits = broadcasts && shape.len() >= self.ndim();
        // When it fits, check_alloc passed: the product does not overflow.
        let total: usize = if fits { shape.iter().product() } else { 0 };
        if fits && self.len() == 1 {
            let v = self.to_vec()[0];
            return Self::from_vec(vec![v; total], shape);
        }
        let core = {
            let s = self.shape();
            let lead = s.iter().take_while(|&&d| d == 1).count();
            &s[lead..]
        };
        if let (Some(xs), true) = (self.as_slice(), fits) {
            if !xs.is_empty() && shape[shape.len() - core.len()..] == *core {
                let mut out = Vec::with_capacity(total);
                for _ in 0..total / xs.len() {
                    out.extend_from_slice(xs);
                }
                return Self::from_vec(out, shape);
            }
        }
        match self.nd().broadcast(IxDyn(shape)) {
            Some(v) => Ok(Self::from_owned(v.as_standard_layout().into_owned())),
            None => Err(Error::Broadcast {
                op: "broadcast_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            }),
        }
    }

    /// Merges axes `start..=end` into one of their product's size; `(0, -1)`
    /// flattens everything, and a 0-d tensor becomes shape `[1]`.
    ///
    /// Gradient: reshaped back to the input's shape.
    ///
    /// PyTorch: `torch.flatten(x, start_dim, end_dim)`; NumPy's
    /// `x.flatten()` always flattens everything.
    ///
    /// # Errors
    /// When an axis is out of range or start > end.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Self> {
        if self.ndim() == 0 {
            return self.reshape_usize(&[1]);
        }
        let s = normalize_axis("flatten", start, self.shape())?;
        let e = normalize_axis("flatten", end, self.shape())?;
        if s > e {
            return Err(Error::arg(
                "flatten",
                format!("start axis {start} comes after end axis {end}"),
            ));
        }
        let sh = self.shape();
        let mut out: Shape = sh[..s].iter().copied().collect();
        out.push(sh[s..=e].iter().product());
        out.extend(sh[e + 1..].iter().copied());
        self.reshape_usize(&out)
    }

    /// Slices along `axis` (a view): the elements at `start, start + step,
    /// ...` before `end`. Negative `start`/`end` count from the end and
    /// out-of-range bounds are clipped, as in Python; `end = None` runs to
    /// the end.
    ///
    /// Gradient: scattered back into zeros at the selected positions (a
    /// `Var` records the slice as `index_select`, whose adjoint is
    /// `index_add`).
    ///
    /// PyTorch: `x[..., start:end:step]` on that axis (the step must be
    /// positive there too; NumPy also allows negative steps).
    ///
    /// # Errors
    /// When the axis is out of range or `step` is not positive.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let x = Tensor::<f32>::from_vec((0..10).map(|v| v as f32).collect(), [2, 5])?;
    /// let y = x.slice(1, 1, None, 2)?; // x[:, 1::2]
    /// assert_eq!(y.shape(), &[2, 2]);
    /// assert_eq!(y.to_vec(), [1.0, 3.0, 6.0, 8.0]);
    /// assert_eq!(x.slice(1, -2, None, 1)?.to_vec(), [3.0, 4.0, 8.0, 9.0]); // x[:, -2:]
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn slice(
        &self,
        axis: isize,
        start: isize,
        end: Option<isize>,
        step: usize,
    ) -> Result<Self> {
        let a = normalize_axis("slice", axis, self.shape())?;
        if step == 0 {
            return Err(Error::arg("slice", "step must be positive, got 0"));
        }
        let n = self.shape()[a] as isize;
        let clip = |v: isize| {
            let v = if v < 0 { v + n } else { v };
            v.clamp(0, n)
        };
        let s = clip(start);
        let e = clip(end.unwrap_or(n)).max(s);
        let (mut sh, mut st, off) = self.layout();
        let (s, e) = (s as usize, e as usize);
        sh[a] = (e - s).div_ceil(step);
        let off = off + s * st[a] as usize;
        // With two or more elements, step < n, so the product stays within
        // the storage; with fewer the stride is never stepped along (and a
        // huge step would overflow it).
        if sh[a] > 1 {
            st[a] *= step as isize;
        }
        Ok(self.with_layout(sh, st, off))
    }

    /// The `length` elements from `start` along `axis` (a view):
    /// `x[…, start..start + length, …]`.
    ///
    /// Gradient: scattered back into zeros at those positions, as
    /// [`Tensor::slice`].
    ///
    /// PyTorch: `torch.narrow(x, dim, start, length)`.
    ///
    /// # Errors
    /// When the range does not fit in the axis.
    pub fn narrow(&self, axis: isize, start: usize, length: usize) -> Result<Self> {
        let a = normalize_axis("narrow", axis, self.shape())?;
        let n = self.shape()[a];
        if start.checked_add(length).is_none_or(|end| end > n) {
            return Err(Error::shape(
                "narrow",
                format!(
                    "start {start} and length {length} are out of bounds for axis {a} of shape {:?}",
                    self.shape()
                ),
            ));
        }
        let (mut sh, st, off) = self.layout();
        sh[a] = length;
        let off = off + start * st[a] as usize;
        Ok(self.with_layout(sh, st, off))
    }

    /// Joins tensors along an existing axis, in order:
    /// `Tensor::concat(&[&a, &b], 0)`, the same form as `Var::concat`.
    ///
    /// Gradient: split back along `axis`; each input gets its own slice.
    ///
    /// PyTorch: `torch.cat` (alias `torch.concat`); NumPy `np.concatenate`,
    /// TensorFlow `tf.concat`.
    ///
    /// # Errors
    /// When the list is empty, ranks differ, or sizes differ off `axis`.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0], [1, 2])?;
    /// let b = Tensor::<f32>::from_vec(vec![3.0, 4.0, 5.0, 6.0], [2, 2])?;
    /// let c = Tensor::concat(&[&a, &b], 0)?;
    /// assert_eq!(c.shape(), &[3, 2]);
    /// assert_eq!(c.to_vec(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn concat(tensors: &[&Self], axis: isize) -> Result<Self> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::arg("concat", "needs at least one tensor"))?;
        let a = normalize_axis("concat", axis, first.shape())?;
        for t in tensors {
            let ok = t.ndim() == first.ndim()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !ok {
                return Err(Error::shape(
                    "concat",
                    format!(
                        "shapes {:?} and {:?} differ off axis {a}",
                        first.shape(),
                        t.shape()
                    ),
                ));
            }
        }
        let total = tensors
            .iter()
            .try_fold(0usize, |acc, t| acc.checked_add(t.shape()[a]))
            .unwrap_or(usize::MAX);
        let mut out_shape = first.shape().to_vec();
        out_shape[a] = total;
        crate::shape::check_alloc::<E>("concat", &out_shape)?;
        let views: Vec<_> = tensors.iter().map(|t| t.nd()).collect();
        let out = ndarray::concatenate(Axis(a), &views).expect("shapes checked");
        Ok(Self::from_owned(out))
    }

    /// Joins equal-shaped tensors along a new axis `axis`:
    /// `Tensor::stack(&[&a, &b], 0)`, the same form as `Var::stack`.
    ///
    /// Gradient: each input gets its slice of the new axis.
    ///
    /// PyTorch: `torch.stack`; NumPy `np.stack`, TensorFlow `tf.stack`.
    ///
    /// # Errors
    /// When the list is empty or shapes differ.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0], [2])?;
    /// let b = Tensor::<f32>::from_vec(vec![3.0, 4.0], [2])?;
    /// let s = Tensor::stack(&[&a, &b], 1)?;
    /// assert_eq!(s.shape(), &[2, 2]);
    /// assert_eq!(s.to_vec(), [1.0, 3.0, 2.0, 4.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn stack(tensors: &[&Self], axis: isize) -> Result<Self> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::arg("stack", "needs at least one tensor"))?;
        let a = normalize_axis_rank("stack", axis, first.ndim() + 1, first.shape())?;
        if let Some(t) = tensors.iter().find(|t| t.shape() != first.shape()) {
            return Err(Error::shape(
                "stack",
                format!("shapes {:?} and {:?} differ", first.shape(), t.shape()),
            ));
        }
        let mut out_shape = first.shape().to_vec();
        out_shape.insert(a, tensors.len());
        crate::shape::check_alloc::<E>("stack", &out_shape)?;
        let views: Vec<_> = tensors.iter().map(|t| t.nd()).collect();
        let out = ndarray::stack(Axis(a), &views).expect("shapes checked");
        Ok(Self::from_owned(out))
    }

    /// Splits along `axis` into consecutive pieces of the given sizes
    /// (views).
    ///
    /// Gradient: each piece's gradient goes back to its range of `axis`
    /// (the pieces are slices).
    ///
    /// PyTorch: `torch.split(x, sizes, dim)` with a list; TensorFlow
    /// `tf.split(x, sizes, axis)`; NumPy's `np.split` takes split indices,
    /// not sizes.
    ///
    /// # Errors
    /// When the sizes do not add up to the axis length.
    pub fn split_sizes(&self, sizes: &[usize], axis: isize) -> Result<Vec<Self>> {
        let a = normalize_axis("split", axis, self.shape())?;
        // Checked: sizes that wrap around to the axis length are refused.
        let total = sizes.iter().try_fold(0usize, |t, &s| t.checked_add(s));
        if total != Some(self.shape()[a]) {
            let total = sizes.iter().fold(0u128, |t, &s| t + s as u128);
            return Err(Error::shape(
                "split",
                format!(
                    "sizes {sizes:?} add up to {total}, axis {a} of shape {:?} has {}",
                    self.shape(),
                    self.shape()[a]
                ),
            ));
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            out.push(self.narrow(a as isize, start, s)?);
            start += s;
        }
        Ok(out)
    }

    /// Splits along `axis` into consecutive pieces of `size` (views; the
    /// last may be smaller).
    ///
    /// Gradient: each piece's gradient goes back to its range of `axis`.
    ///
    /// PyTorch: `torch.split(x, size, dim)` with an int; NumPy's
    /// `np.split(x, n)` takes a number of equal pieces instead.
    ///
    /// # Errors
    /// When `size` is 0 or the axis is out of range.
    pub fn split(&self, size: usize, axis: isize) -> Result<Vec<Self>> {
        let a = normalize_axis("split", axis, self.shape())?;
        if size == 0 {
            return Err(Error::arg("split", "split size must be positive"));
        }
        let n = self.shape()[a];
        let mut sizes = vec![size; n / size];
        if n % size != 0 {
            sizes.push(n % size);
        }
        self.split_sizes(&sizes, axis)
    }

    /// Splits along `axis` into `chunks` pieces of size ⌈n / chunks⌉
    /// (views; fewer pieces if the axis is short).
    ///
    /// Gradient: each piece's gradient goes back to its range of `axis`.
    ///
    /// PyTorch: `torch.chunk`; NumPy's `np.array_split` sizes pieces
    /// differently (always `chunks` pieces, the larger ones first).
    ///
    /// # Errors
    /// When `chunks` is 0 or the axis is out of range.
    pub fn chunk(&self, chunks: usize, axis: isize) -> Result<Vec<Self>> {
        let a = normalize_axis("chunk", axis, self.shape())?;
        if chunks == 0 {
            return Err(Error::arg("chunk", "number of chunks must be positive"));
        }
        let n = self.shape()[a];
        if n == 0 {
            return Ok(vec![self.clone()]);
        }
        self.split(n.div_ceil(chunks), axis)
    }

    /// Pads with a constant `value`: `pads[i] = (before, after)` elements
    /// added on axis i, one pair per axis, first axis first.
    ///
    /// Gradient: the unpadded block of the output gradient; the padding
    /// gets none.
    ///
    /// PyTorch: `torch.nn.functional.pad(x, pad, value=v)`, which lists the
    /// last axis first as flat pairs; NumPy `np.pad(x, pads,
    /// constant_values=v)` and `tf.pad` use this order.
    ///
    /// # Errors
    /// When `pads` does not have one pair per axis.
    pub fn pad(&self, pads: &[(usize, usize)], value: E) -> Result<Self> {
        if pads.len() != self.ndim() {
            return Err(Error::shape(
                "pad",
                format!(
                    "needs one (before, after) pair per axis of shape {:?}, got {}",
                    self.shape(),
                    pads.len()
                ),
            ));
        }
        let out_shape: Shape = self
            .shape()
            .iter()
            .zip(pads)
            .map(|(&n, &(b, a))| {
                n.checked_add(b)
                    .and_then(|v| v.checked_add(a))
                    .ok_or_else(|| {
                        Error::arg(
                            "pad",
                            format!("padding {pads:?} of shape {:?} overflows", self.shape()),
                        )
                    })
            })
            .collect::<Result<_>>()?;
        crate::shape::check_alloc::<E>("pad", &out_shape)?;
        let mut out = ndarray::ArrayD::from_elem(IxDyn(&out_shape), value);
        {
            let mut v = out.view_mut();
            for (i, (&n, &(b, _))) in self.shape().iter().zip(pads).enumerate() {
                v.slice_axis_inplace(Axis(i), Slice::from(b as isize..(b + n) as isize));
            }
            v.assign(&self.nd());
        }
        Ok(Self::from_owned(out))
    }
}
