//! Shape and layout ops: views where the layout allows, copies otherwise.

use ndarray::{Axis, IxDyn, Slice};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::shape::{normalize_axis, normalize_axis_rank, numel, Shape};
use crate::tensor::{row_major_strides, Dims, Tensor};

impl<E: Float> Tensor<E> {
    /// Swaps two axes (a view, no copy), as `torch.transpose`.
    ///
    /// # Errors
    /// When an axis is out of range.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let a = normalize_axis("transpose", a, self.shape())?;
        let b = normalize_axis("transpose", b, self.shape())?;
        let (mut sh, mut st, off) = self.layout();
        sh.swap(a, b);
        st.swap(a, b);
        Ok(self.with_layout(sh, st, off))
    }

    /// Reverses the axes of a tensor of rank ≤ 2 (a view), as `Tensor.t()`.
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

    /// Reorders the axes (a view), as `torch.permute`.
    ///
    /// # Errors
    /// When `axes` is not a permutation of `0..ndim`.
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

    /// Gives the tensor a new shape with the same number of elements; one
    /// size may be −1 and is inferred. A view for contiguous data, a copy
    /// otherwise (`torch.reshape`).
    ///
    /// # Errors
    /// When the sizes do not match, or more than one −1 or another negative
    /// size is given.
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

    /// Removes `axis` if its size is 1 (otherwise returns the tensor
    /// unchanged, as `torch.squeeze(x, dim)`).
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

    /// Removes every axis of size 1 (`torch.squeeze(x)`).
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

    /// Inserts an axis of size 1 at `axis` (−1 appends), as `torch.unsqueeze`.
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

    /// Broadcasts to `shape` by NumPy's rules (`torch.broadcast_to`). The
    /// result is materialised: ndarray's shared arrays cannot hold the zero
    /// strides of a broadcast view.
    ///
    /// # Errors
    /// When the tensor does not broadcast to `shape`.
    pub fn broadcast_to(&self, shape: impl AsRef<[usize]>) -> Result<Self> {
        let shape = shape.as_ref();
        if shape == self.shape() {
            return Ok(self.clone());
        }
        // The size is checked before ndarray is asked (it refuses an
        // overflowing shape as if it did not broadcast).
        match crate::shape::broadcast_shapes("broadcast_to", self.shape(), shape) {
            Ok(s) if s.as_slice() == shape => {
                crate::shape::check_alloc::<E>("broadcast_to", shape)?;
            }
            Err(e @ Error::TooLarge { .. }) => return Err(e),
            _ => {}
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

    /// Merges axes `start..=end` into one (`torch.flatten`); `(0, -1)`
    /// flattens everything.
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

    /// Elements `start, start + step, ...` before `end` along `axis` (a
    /// view), as Python's `x[..., start:end:step]`. Negative `start`/`end`
    /// count from the end and out-of-range bounds are clipped, as in Python;
    /// `end = None` runs to the end.
    ///
    /// # Errors
    /// When the axis is out of range or `step` is not positive.
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

    /// `length` elements from `start` along `axis` (a view), as `torch.narrow`.
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

    /// Joins tensors along an existing axis (`torch.cat`):
    /// `Tensor::concat(&[&a, &b], 0)`, the same form as `Var::concat`.
    ///
    /// # Errors
    /// When the list is empty, ranks differ, or sizes differ off `axis`.
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

    /// Joins equal-shaped tensors along a new axis (`torch.stack`):
    /// `Tensor::stack(&[&a, &b], 0)`, the same form as `Var::stack`.
    ///
    /// # Errors
    /// When the list is empty or shapes differ.
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

    /// Splits along `axis` into pieces of the given sizes (views), as
    /// `torch.split` with a list.
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

    /// Splits along `axis` into pieces of `size` (the last may be smaller),
    /// as `torch.split` with an int.
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

    /// Splits into `chunks` pieces of size ceil(n / chunks) (fewer if the
    /// axis is short), as `torch.chunk`.
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

    /// Pads with a constant: `pads[i] = (before, after)` for axis i, one
    /// pair per axis, first axis first (NumPy's `np.pad` order; note that
    /// `torch.nn.functional.pad` lists the last axis first).
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
