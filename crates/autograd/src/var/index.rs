//! Indexing ops: index_select, index_add, gather, scatter_add.

use std::sync::Arc;
use tapir_tensor::{AsIndex, Float};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// The slices `idx` along `axis`, in that order and with repeats: with
    /// a weight matrix and axis 0, an embedding lookup (`torch.index_select`;
    /// `tf.gather(x, idx, axis)`, `np.take`). Gradient: scatter-added back
    /// (index_add into zeros), so repeated indices accumulate.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2])?);
    /// let y = x.index_select(0, &[2, 0, 2])?;
    /// assert_eq!(y.value().to_vec(), [5.0, 6.0, 1.0, 2.0, 5.0, 6.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the axis or an index is out of range.
    pub fn index_select(&self, axis: isize, idx: &[usize]) -> Result<Self> {
        let v = self.value.index_select(axis, idx)?;
        let axis = tapir_tensor::normalize_axis("index_select", axis, self.shape())?;
        let op = Op::IndexSelect {
            axis,
            idx: idx.into(),
            sparse: false,
        };
        Tape::record("index_select", op, &[self], v)
    }

    /// The rows `idx` of a table (axis 0, in that order, with repeats), as
    /// [`Var::index_select`], but a watched parameter's gradient comes out
    /// of [`Tape::gradient`] as the rows looked up
    /// ([`crate::RowSparse`], coalesced), not as a dense tensor of the
    /// table's size: PyTorch's `F.embedding(.., sparse=True)`,
    /// TensorFlow's `IndexedSlices` from `tf.gather`. An optimizer that
    /// updates only those rows ([`SparseAdam`]) then costs in proportion
    /// to the batch, not to the vocabulary; the others make it dense.
    /// The gradient is dense when the table is also used densely (a tied
    /// output layer), with respect to a Var rather than a parameter, and
    /// in recorded passes (`gradient_graph`).
    ///
    /// [`SparseAdam`]: https://docs.rs/tapir-optim
    ///
    /// ```
    /// use tapir_autograd::{Gradient, Parameter, Tape};
    /// use tapir_tensor::Tensor;
    /// let w = Parameter::new("w", Tensor::<f64>::ones([1000, 4]));
    /// let tape = Tape::new();
    /// let rows = tape.watch(&w).embedding(&[7, 3, 7])?;
    /// let grads = tape.gradient(&rows.sum(), [&w])?;
    /// let Some(Gradient::Rows(g)) = grads.gradient(&w) else { panic!() };
    /// assert_eq!(g.indices(), &[3, 7]);
    /// assert_eq!(g.values().to_vec(), [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]);
    /// assert_eq!(grads[&w].shape(), &[1000, 4]); // a dense view on request
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// A table with no axis, or an index out of range.
    pub fn embedding(&self, idx: &[usize]) -> Result<Self> {
        let v = self.value.index_select(0, idx)?;
        let op = Op::IndexSelect {
            axis: 0,
            idx: idx.into(),
            sparse: true,
        };
        Tape::record("embedding", op, &[self], v)
    }

    /// `self` with slice i of `src` added at slice `idx[i]` along `axis`,
    /// repeated indices accumulating (`torch.index_add`,
    /// `Tensor.index_add(dim, index, source)`). Gradient: g to `self`, and
    /// g's slices `idx` (an index_select) to `src`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::zeros([3]));
    /// let src = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3])?);
    /// let y = x.index_add(0, &[0, 0, 2], &src)?;
    /// assert_eq!(y.value().to_vec(), [3.0, 0.0, 3.0]);
    /// let w = tape.constant(Tensor::from_vec(vec![10.0, 20.0, 30.0], [3])?);
    /// let g = tape.gradient_vars(&y.mul(&w)?.sum(), &[&x, &src], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [10.0, 20.0, 30.0]);
    /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [10.0, 10.0, 30.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When an index is out of range or `src` has the wrong shape.
    pub fn index_add(&self, axis: isize, idx: &[usize], src: &Self) -> Result<Self> {
        // Validates shapes and indices with the tensor op's messages.
        let v = self.value.zeros_like().index_add(axis, idx, &src.value)?;
        let a = tapir_tensor::normalize_axis("index_add", axis, self.shape())?;
        let op = Op::IndexAddZeros {
            axis: a,
            idx: idx.into(),
        };
        let added = Tape::record("index_add", op, &[src], v)?;
        self.add(&added)
    }
    /// `out[p] = self[p with p[axis] = index[p]]`, shaped like `index`
    /// (`torch.gather(x, dim, index)`; `np.take_along_axis`). Not
    /// `tf.gather`, which picks whole slices as [`Var::index_select`].
    /// `index` is any [`AsIndex`]: a `(data, shape)` pair, an index array
    /// or a float tensor of integers. Gradient: scatter-added back
    /// (scatter_add into zeros), so repeated indices accumulate.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?);
    /// let y = x.gather(1, (vec![2, 2, 0, 1], [2, 2]))?;
    /// assert_eq!(y.value().to_vec(), [3.0, 3.0, 4.0, 5.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.0, 0.0, 2.0, 1.0, 1.0, 0.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the index does not fit.
    pub fn gather(&self, axis: isize, index: impl AsIndex) -> Result<Self> {
        let index = index.as_index("gather")?;
        let v = self.value.gather(axis, &*index)?;
        let a = tapir_tensor::normalize_axis("gather", axis, self.shape())?;
        let op = Op::Gather {
            axis: a,
            idx: Arc::new(index.into_owned()),
        };
        Tape::record("gather", op, &[self], v)
    }
    /// `self` with `src[p]` added at `p with p[axis] = index[p]` for every
    /// position p of `index`, repeats accumulating (`torch.scatter_add(x,
    /// dim, index, src)`; TensorFlow's `tf.tensor_scatter_nd_add` takes full
    /// coordinates instead). The adjoint of [`Var::gather`]. Gradient: g to
    /// `self`, and g gathered at `index` to `src` (0 for the entries of a
    /// `src` larger than `index`).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::zeros([3]));
    /// let src = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3])?);
    /// let y = x.scatter_add(0, (vec![0, 2, 0], [3]), &src)?;
    /// assert_eq!(y.value().to_vec(), [4.0, 0.0, 2.0]);
    /// let w = tape.constant(Tensor::from_vec(vec![10.0, 20.0, 30.0], [3])?);
    /// let g = tape.gradient_vars(&y.mul(&w)?.sum(), &[&x, &src], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [10.0, 20.0, 30.0]);
    /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [10.0, 30.0, 10.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the index does not fit.
    pub fn scatter_add(&self, axis: isize, index: impl AsIndex, src: &Self) -> Result<Self> {
        let index = index.as_index("scatter_add")?;
        let zeros = self.value.zeros_like();
        let a = tapir_tensor::normalize_axis("scatter_add", axis, self.shape())?;
        let v = zeros.scatter_add(axis, &*index, &src.value)?;
        let op = Op::ScatterAddZeros {
            axis: a,
            idx: Arc::new(index.into_owned()),
        };
        let scattered = Tape::record("scatter_add", op, &[src], v)?;
        self.add(&scattered)
    }
}
