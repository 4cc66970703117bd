//! Shape ops: reshape, permute, transpose, squeeze, flatten, broadcast,
//! slicing, splitting, concatenation, stacking, padding.

use tapir_tensor::{Float, Tensor};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// The same elements in row-major order under a new `shape`, in which
    /// one size may be −1 and is inferred (`torch.reshape`, `Tensor.view`/
    /// `reshape`; `tf.reshape`, `np.reshape`). Gradient: reshaped back.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?);
    /// let y = x.reshape([3, -1])?;
    /// assert_eq!(y.shape(), &[3, 2]);
    /// assert_eq!(y.value().to_vec(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// // Weighting each output by its own value gives x back as the gradient.
    /// let loss = y.mul(&tape.constant(y.value().clone()))?.sum();
    /// let g = tape.gradient_vars(&loss, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().shape(), &[2, 3]);
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), x.value().to_vec());
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the sizes do not match.
    pub fn reshape(&self, shape: impl AsRef<[isize]>) -> Result<Self> {
        let v = self.value.reshape(shape)?;
        Tape::record("reshape", Op::Reshape, &[self], v)
    }
    /// [`Var::reshape`] with explicit sizes (no −1); a no-op when `shape` is
    /// already the shape. Gradient: reshaped back.
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
    /// Reorders the axes: axis i of the result is axis `axes[i]` of `self`
    /// (`torch.permute`, `Tensor.permute`; `tf.transpose(x, perm)`,
    /// `np.transpose(x, axes)`). Gradient: permuted back by the inverse
    /// permutation.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 2, 3])?);
    /// let y = x.permute(&[2, 0, 1])?;
    /// assert_eq!(y.shape(), &[3, 1, 2]);
    /// assert_eq!(y.value().to_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// // Weighting each output by its own value gives x back as the gradient.
    /// let loss = y.mul(&tape.constant(y.value().clone()))?.sum();
    /// let g = tape.gradient_vars(&loss, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().shape(), &[1, 2, 3]);
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), x.value().to_vec());
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `axes` is not a permutation.
    pub fn permute(&self, axes: &[isize]) -> Result<Self> {
        let v = self.value.permute(axes)?;
        Tape::record("permute", Op::Permute(axes.to_vec()), &[self], v)
    }
    /// Swaps axes `a` and `b` (`torch.transpose(x, dim0, dim1)`; NumPy's
    /// `np.swapaxes`, whereas `np.transpose` and `tf.transpose` reverse all
    /// axes by default). Gradient: the same two axes swapped back.
    /// Composite: a [`Var::permute`].
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?);
    /// let y = x.transpose(0, -1)?;
    /// assert_eq!(y.shape(), &[3, 2]);
    /// assert_eq!(y.value().to_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// let loss = y.mul(&tape.constant(y.value().clone()))?.sum();
    /// let g = tape.gradient_vars(&loss, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), x.value().to_vec());
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// Transpose of a matrix; a 0-d or 1-d Var is returned as it is
    /// (`Tensor.t()`, `torch.t`; NumPy's `x.T`). Gradient: transposed back.
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
    /// Removes `axis` if its size is 1 and otherwise returns `self`
    /// unchanged (`torch.squeeze(x, dim)`; `tf.squeeze` and `np.squeeze`
    /// refuse an axis of another size). Gradient: reshaped back. Composite:
    /// a [`Var::reshape_usize`].
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn squeeze(&self, axis: isize) -> Result<Self> {
        let v = self.value.squeeze(axis)?;
        self.reshape_usize(v.shape())
    }
    /// Inserts an axis of size 1 at `axis`, −1 appending one
    /// (`torch.unsqueeze`; `tf.expand_dims`, `np.expand_dims`). Gradient:
    /// reshaped back. Composite: a [`Var::reshape_usize`].
    ///
    /// # Errors
    /// When the axis is out of range.
    pub fn unsqueeze(&self, axis: isize) -> Result<Self> {
        let v = self.value.unsqueeze(axis)?;
        self.reshape_usize(v.shape())
    }
    /// Merges axes `start..=end` into one; `(0, -1)` flattens everything
    /// (`torch.flatten(x, start_dim, end_dim)`). Gradient: reshaped back.
    /// Composite: a [`Var::reshape_usize`].
    ///
    /// # Errors
    /// When an axis is out of range.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Self> {
        let v = self.value.flatten(start, end)?;
        self.reshape_usize(v.shape())
    }
    /// Repeats `self` along new leading axes and axes of size 1 to fill
    /// `shape`, by NumPy's broadcasting rules (`torch.broadcast_to`,
    /// `Tensor.expand`; `tf.broadcast_to`, `np.broadcast_to`). Gradient:
    /// summed back over the broadcast axes ([`Var::sum_to`]).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2, 1])?);
    /// let y = x.broadcast_to([2, 3])?;
    /// assert_eq!(y.value().to_vec(), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [3.0, 3.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// Elements `start, start + step, ...` before `end` along `axis`, as
    /// Python's `x[..., start:end:step]` (`Tensor.__getitem__`,
    /// `torch.narrow` for step 1; `tf.strided_slice`): negative bounds count
    /// from the end, out-of-range ones are clipped, `end = None` runs to the
    /// end. Gradient: g at the picked positions, 0 elsewhere (recorded as
    /// an index_select, so it is scatter-added back into zeros).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [6])?);
    /// let y = x.slice(0, 1, None, 2)?; // x[1::2]
    /// assert_eq!(y.value().to_vec(), [1.0, 3.0, 5.0]);
    /// assert_eq!(x.slice(0, -2, None, 1)?.value().to_vec(), [4.0, 5.0]); // x[-2:]
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
            sparse: false,
        };
        Tape::record("slice", op, &[self], v)
    }
    /// `length` entries from `start` along `axis`, i.e.
    /// `x[..., start:start + length]` (`torch.narrow`; `tf.slice` takes a
    /// begin and a size per axis). Gradient: g in the narrowed range, 0
    /// elsewhere. Composite: a [`Var::slice`].
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
    /// Splits along `axis` into consecutive pieces of the given `sizes`
    /// (`torch.split(x, sizes, dim)`, `tf.split(x, sizes, axis)`; NumPy's
    /// `np.split` takes the split points instead). Gradient: each piece's
    /// gradient goes back to its range; pieces left unused contribute 0.
    /// Composite: one [`Var::narrow`] per piece.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], [5])?);
    /// let parts = x.split_sizes(&[2, 3], 0)?;
    /// assert_eq!(parts[0].value().to_vec(), [1.0, 2.0]);
    /// assert_eq!(parts[1].value().to_vec(), [3.0, 4.0, 5.0]);
    /// let g = tape.gradient_vars(&parts[1].sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.0, 0.0, 1.0, 1.0, 1.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// Splits along `axis` into pieces of `size` entries, the last one
    /// possibly shorter (`torch.split(x, size, dim)`; with an int,
    /// `tf.split` and `np.split` take the number of pieces instead, as
    /// [`Var::chunk`]). Gradient: each piece's gradient goes back to its
    /// range. Composite: one [`Var::narrow`] per piece.
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
    /// Splits along `axis` into `chunks` pieces of ⌈n / `chunks`⌉ entries
    /// (fewer pieces when the axis is short; the last may be shorter), as
    /// `torch.chunk`. Gradient: each piece's gradient goes back to its
    /// range. Composite: one [`Var::narrow`] per piece.
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
    /// Joins Vars end to end along an existing `axis` (`torch.cat`;
    /// `tf.concat`, `np.concatenate`). Gradient: g cut back into the
    /// inputs' ranges along `axis` (narrowed).
    ///
    /// ```
    /// use tapir_autograd::{Tape, Var};
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let a = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
    /// let b = tape.var(Tensor::<f64>::from_vec(vec![3.0, 4.0, 5.0], [3])?);
    /// let y = Var::concat(&[&a, &b], 0)?;
    /// assert_eq!(y.value().to_vec(), [1.0, 2.0, 3.0, 4.0, 5.0]);
    /// let loss = y.mul(&tape.constant(y.value().clone()))?.sum();
    /// let g = tape.gradient_vars(&loss, &[&a, &b], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0, 2.0]);
    /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [3.0, 4.0, 5.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the list is empty or shapes differ off `axis`.
    pub fn concat(vars: &[&Self], axis: isize) -> Result<Self> {
        let values: Vec<&Tensor<E>> = vars.iter().map(|v| &v.value).collect();
        let v = Tensor::concat(&values, axis)?;
        let a = tapir_tensor::normalize_axis("concat", axis, values[0].shape())?;
        Tape::record("concat", Op::Concat { axis: a }, vars, v)
    }
    /// Joins equal-shaped Vars along a new `axis` (`torch.stack`;
    /// `tf.stack`, `np.stack`). Gradient: each input gets its slice of g
    /// along `axis`. Composite: [`Var::unsqueeze`] then [`Var::concat`].
    ///
    /// ```
    /// use tapir_autograd::{Tape, Var};
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let a = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
    /// let b = tape.var(Tensor::<f64>::from_vec(vec![3.0, 4.0], [2])?);
    /// let y = Var::stack(&[&a, &b], 1)?;
    /// assert_eq!(y.shape(), &[2, 2]);
    /// assert_eq!(y.value().to_vec(), [1.0, 3.0, 2.0, 4.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
    /// Adds `value` around `self`: `pads[i] = (before, after)` entries on
    /// axis i, one pair per axis, first axis first (`np.pad(x, pads,
    /// constant_values=value)`, `tf.pad`; `torch.nn.functional.pad` lists
    /// the last axis first, as a flat list). Gradient: g with the padding
    /// cropped off (narrowed back).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
    /// let y = x.pad(&[(1, 2)], 0.0)?;
    /// assert_eq!(y.value().to_vec(), [0.0, 1.0, 2.0, 0.0, 0.0]);
    /// let loss = y.mul(&tape.constant(Tensor::from_vec(vec![9.0, 1.0, 2.0, 9.0, 9.0], [5])?))?;
    /// let g = tape.gradient_vars(&loss.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0, 2.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `pads` does not have one pair per axis.
    pub fn pad(&self, pads: &[(usize, usize)], value: E) -> Result<Self> {
        let v = self.value.pad(pads, value)?;
        Tape::record("pad", Op::Pad(pads.to_vec()), &[self], v)
    }
}
