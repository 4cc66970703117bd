//! Row-sparse gradients: the gradient of an embedding table that a batch
//! touched in a few rows, kept as those rows.

use tapir_tensor::{Float, Tensor};

use crate::error::Result;

/// A gradient that is zero but in some rows (slices along axis 0): the
/// sorted, distinct row indices and the rows' values, `[rows, ..]`
/// (PyTorch's coalesced sparse COO gradient of `nn.Embedding(sparse=True)`,
/// TensorFlow's `IndexedSlices`). [`crate::Tape::gradient`] makes one for
/// a parameter reached only through [`crate::Var::embedding`] lookups.
///
/// ```
/// use tapir_autograd::RowSparse;
/// use tapir_tensor::Tensor;
/// // Rows 2, 0, 2 of a [4, 2] table, each with its gradient.
/// let g = Tensor::<f64>::from_vec(vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0], [3, 2])?;
/// let r = RowSparse::from_rows(&[2, 0, 2], &g, &[4, 2])?;
/// assert_eq!(r.indices(), &[0, 2]); // sorted, distinct: repeated rows summed
/// assert_eq!(r.values().to_vec(), [2.0, 2.0, 4.0, 4.0]);
/// assert_eq!(r.to_dense().to_vec(), [2.0, 2.0, 0.0, 0.0, 4.0, 4.0, 0.0, 0.0]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RowSparse<E: Float = f32> {
    indices: Vec<usize>,
    values: Tensor<E>,
    shape: Vec<usize>,
}

impl<E: Float> RowSparse<E> {
    /// The gradient of a dense tensor of `shape` whose rows `idx[i]` get
    /// `rows[i]` (repeated indices add up, in the order given).
    ///
    /// # Errors
    /// A `shape` with no axis, `rows` not of shape `[idx.len(), shape[1..]]`,
    /// or an index ≥ `shape[0]`; each names `RowSparse`.
    pub fn from_rows(idx: &[usize], rows: &Tensor<E>, shape: &[usize]) -> Result<Self> {
        Self::from_parts(&[(idx, rows)], shape)
    }

    /// Sums several (indices, rows) parts into one coalesced gradient.
    pub(crate) fn from_parts(parts: &[(&[usize], &Tensor<E>)], shape: &[usize]) -> Result<Self> {
        let bad = |msg: String| -> crate::Error {
            tapir_tensor::Error::InvalidArgument {
                op: "RowSparse",
                msg,
            }
            .into()
        };
        let Some((&n, rest)) = shape.split_first() else {
            return Err(bad("a row-sparse tensor needs at least one axis".into()));
        };
        let width: usize = rest.iter().product();
        let mut vals: Vec<Vec<E>> = Vec::with_capacity(parts.len());
        let mut order: Vec<(usize, usize, usize)> = Vec::new();
        for (p, (idx, rows)) in parts.iter().enumerate() {
            let want: Vec<usize> = std::iter::once(idx.len())
                .chain(rest.iter().copied())
                .collect();
            if rows.shape() != want.as_slice() {
                return Err(bad(format!(
                    "rows of shape {:?} for {} indices into {shape:?}; expected {want:?}",
                    rows.shape(),
                    idx.len()
                )));
            }
            if let Some(&i) = idx.iter().find(|&&i| i >= n) {
                return Err(bad(format!("row {i} out of range for shape {shape:?}")));
            }
            order.extend(idx.iter().enumerate().map(|(k, &i)| (i, p, k)));
            vals.push(rows.to_vec());
        }
        // Stable: repeated rows add up in the order given.
        order.sort_by_key(|&(i, _, _)| i);
        let mut indices: Vec<usize> = Vec::new();
        let mut out: Vec<E> = Vec::new();
        for (i, p, k) in order {
            let src = &vals[p][k * width..(k + 1) * width];
            if indices.last() == Some(&i) {
                let start = out.len() - width;
                for (o, &s) in out[start..].iter_mut().zip(src) {
                    *o += s;
                }
            } else {
                indices.push(i);
                out.extend_from_slice(src);
            }
        }
        let vshape: Vec<usize> = std::iter::once(indices.len())
            .chain(rest.iter().copied())
            .collect();
        Ok(RowSparse {
            values: Tensor::from_vec(out, &vshape)?,
            indices,
            shape: shape.to_vec(),
        })
    }

    /// The rows present, sorted and distinct.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Their values, `[indices().len(), shape()[1..]]`.
    pub fn values(&self) -> &Tensor<E> {
        &self.values
    }

    /// The shape of the dense tensor.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The same rows with other values of the same shape (a clipped or
    /// scaled gradient).
    ///
    /// # Errors
    /// `values` of another shape.
    pub fn with_values(&self, values: Tensor<E>) -> Result<Self> {
        if values.shape() != self.values.shape() {
            return Err(tapir_tensor::Error::InvalidArgument {
                op: "RowSparse::with_values",
                msg: format!(
                    "values of shape {:?} for rows of shape {:?}",
                    values.shape(),
                    self.values.shape()
                ),
            }
            .into());
        }
        Ok(RowSparse {
            indices: self.indices.clone(),
            values,
            shape: self.shape.clone(),
        })
    }

    /// The dense tensor: zeros but in the rows present.
    pub fn to_dense(&self) -> Tensor<E> {
        let n: usize = self.shape.iter().product();
        let width = n / self.shape[0].max(1);
        let mut out = vec![E::ZERO; n];
        let vals = self.values.to_vec();
        for (r, &i) in self.indices.iter().enumerate() {
            out[i * width..(i + 1) * width].copy_from_slice(&vals[r * width..(r + 1) * width]);
        }
        Tensor::from_vec(out, &self.shape).expect("the rows fit the shape")
    }

    /// `dense` plus this gradient (a parameter reached both through a
    /// sparse lookup and densely: tied embeddings).
    pub(crate) fn add_to(&self, dense: &Tensor<E>) -> Result<Tensor<E>> {
        Ok(dense.index_add(0, &self.indices, &self.values)?)
    }
}
