//! Shape ops: reshape, permute, transpose, squeeze, flatten, broadcast, slicing, splitting, concatenation, stacking, padding.

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
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
        let values: Vec<&Tensor<E>> = vars.iter().map(|v| &v.value).collect();
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
        Tensor::stack(&[&first.value], axis)?;
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
}
