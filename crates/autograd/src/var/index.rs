//! Indexing ops: index_select, index_add, gather, scatter_add.

use std::sync::Arc;
use tapir_tensor::{AsIndex, Float};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// Picks entries `idx` along `axis` (`torch.index_select`; an embedding
    /// lookup with axis 0).
    ///
    /// # Errors
    /// When the axis or an index is out of range.
    pub fn index_select(&self, axis: isize, idx: &[usize]) -> Result<Self> {
        let v = self.value.index_select(axis, idx)?;
        let axis = tapir_tensor::normalize_axis("index_select", axis, self.shape())?;
        let op = Op::IndexSelect {
            axis,
            idx: idx.into(),
        };
        Tape::record("index_select", op, &[self], v)
    }

    /// `self` with the slices of `src` added at `idx` along `axis`
    /// (`torch.index_add`); differentiable in both.
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
    /// `torch.gather` along `axis`.
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
    /// `self` with `src` added at `index` along `axis` (`torch.scatter_add`).
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
