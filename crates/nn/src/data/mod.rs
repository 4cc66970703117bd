//! Datasets and the data loader (`torch.utils.data`, `tf.data`).
//!
//! A [`Dataset`] holds examples of one shape with class labels; a
//! [`DataLoader`] cuts it into batches in a seeded order (the same seed
//! gives the same order on every run and machine), applies
//! [`Transform`]s, and prepares the next batch on another thread while
//! the current one trains. Readers for MNIST's IDX format and for CSV are
//! in [`idx`] and [`csv`].

pub mod csv;
pub mod idx;
mod loader;

pub use loader::{Batch, DataLoader, Transform};

use std::sync::Arc;

/// Examples of one shape, each with a class label, read by index
/// (`torch.utils.data.Dataset` with `__len__` and `__getitem__`).
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one example (`[1, 28, 28]` for MNIST).
    fn item_shape(&self) -> &[usize];

    /// Writes example `i` into `out` (of the item's size) and returns its
    /// label.
    fn read(&self, i: usize, out: &mut [f32]) -> usize;
}

/// A dataset held in memory: a flat `f32` array of `len × Π item_shape`
/// values and one label per example (`torch.utils.data.TensorDataset`).
#[derive(Debug, Clone)]
pub struct InMemory {
    x: Arc<Vec<f32>>,
    labels: Arc<Vec<usize>>,
    item_shape: Vec<usize>,
    /// Which examples (a split shares the arrays).
    rows: Arc<Vec<usize>>,
}

impl InMemory {
    /// A dataset from values and labels.
    ///
    /// # Panics
    /// If `x.len()` is not `labels.len() × Π item_shape`.
    pub fn new(x: Vec<f32>, labels: Vec<usize>, item_shape: &[usize]) -> Self {
        let size: usize = item_shape.iter().product();
        assert_eq!(
            x.len(),
            labels.len() * size,
            "InMemory: {} values for {} examples of shape {item_shape:?}",
            x.len(),
            labels.len()
        );
        let n = labels.len();
        InMemory {
            x: Arc::new(x),
            labels: Arc::new(labels),
            item_shape: item_shape.to_vec(),
            rows: Arc::new((0..n).collect()),
        }
    }

    /// The examples at `rows` (in that order), sharing the storage.
    pub fn subset(&self, rows: &[usize]) -> Self {
        InMemory {
            rows: Arc::new(rows.iter().map(|&r| self.rows[r]).collect()),
            ..self.clone()
        }
    }

    /// A seeded random split into the first `n_first` examples and the
    /// rest (`torch.utils.data.random_split`).
    pub fn split(&self, n_first: usize, seed: u64) -> (Self, Self) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        tapir_tensor::Rng::seed(seed).shuffle(&mut order);
        let n = n_first.min(order.len());
        (self.subset(&order[..n]), self.subset(&order[n..]))
    }

    /// The labels, in order.
    pub fn labels(&self) -> Vec<usize> {
        self.rows.iter().map(|&r| self.labels[r]).collect()
    }

    /// Changes the item shape (same number of values), e.g. `[784]` to
    /// `[1, 28, 28]`.
    ///
    /// # Panics
    /// If the sizes differ.
    pub fn reshape(mut self, item_shape: &[usize]) -> Self {
        assert_eq!(
            item_shape.iter().product::<usize>(),
            self.item_shape.iter().product::<usize>(),
            "InMemory::reshape: {:?} to {item_shape:?}",
            self.item_shape
        );
        self.item_shape = item_shape.to_vec();
        self
    }
}

impl Dataset for InMemory {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }
    fn read(&self, i: usize, out: &mut [f32]) -> usize {
        let r = self.rows[i];
        let size = out.len();
        out.copy_from_slice(&self.x[r * size..(r + 1) * size]);
        self.labels[r]
    }
}

/// Opens a file and undoes gzip when the content starts with gzip's magic
/// bytes (whatever the file's name).
pub(crate) fn read_maybe_gz(path: &std::path::Path) -> crate::Result<Vec<u8>> {
    use std::io::Read;
    let raw = std::fs::read(path).map_err(crate::error::io(path))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| crate::error::format(path, format!("bad gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}
