//! Metrics: accuracy, top-k accuracy, confusion matrix, running mean.

use tapir_tensor::{Float, Tensor};

/// The rows of `[N, C]` scores as slices (a contiguous copy when needed).
fn rows<E: Float>(scores: &Tensor<E>) -> (Vec<E>, usize) {
    let c = if scores.ndim() == 2 {
        scores.shape()[1]
    } else {
        0
    };
    (scores.to_vec(), c)
}

/// The index of each row's largest score (first on ties; NaN ranks above
/// everything, as `torch.argmax`).
pub fn argmax_rows<E: Float>(scores: &Tensor<E>) -> Vec<usize> {
    let (v, c) = rows(scores);
    if c == 0 {
        return Vec::new();
    }
    v.chunks(c)
        .map(|r| {
            let mut best = 0;
            for (j, &x) in r.iter().enumerate() {
                if x.is_nan() && !r[best].is_nan() || x > r[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// The fraction of rows of `[N, C]` scores whose largest score is at the
/// label (Keras `SparseCategoricalAccuracy`); 0 for no rows.
///
/// ```
/// use tapir_nn::metrics::accuracy;
/// use tapir_tensor::Tensor;
/// let s = Tensor::<f32>::from_vec(vec![0.1, 0.9, 0.8, 0.2], [2, 2])?;
/// assert_eq!(accuracy(&s, &[1, 1]), 0.5);
/// # Ok::<(), tapir_tensor::Error>(())
/// ```
pub fn accuracy<E: Float>(scores: &Tensor<E>, labels: &[usize]) -> f64 {
    let pred = argmax_rows(scores);
    if pred.is_empty() {
        return 0.0;
    }
    let hit = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
    hit as f64 / pred.len() as f64
}

/// The fraction of rows whose label is among the `k` largest scores
/// (Keras `SparseTopKCategoricalAccuracy`; ties counted in the label's
/// favour only when strictly fewer than k scores beat it).
pub fn top_k_accuracy<E: Float>(scores: &Tensor<E>, labels: &[usize], k: usize) -> f64 {
    let (v, c) = rows(scores);
    if c == 0 || labels.is_empty() {
        return 0.0;
    }
    let hit = v
        .chunks(c)
        .zip(labels)
        .filter(|(r, &l)| l < c && r.iter().filter(|&&x| x > r[l]).count() < k)
        .count();
    hit as f64 / labels.len() as f64
}

/// `m[true][predicted]` counts over `classes` classes (labels or
/// predictions out of range are not counted).
pub fn confusion_matrix<E: Float>(
    scores: &Tensor<E>,
    labels: &[usize],
    classes: usize,
) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (p, &l) in argmax_rows(scores).iter().zip(labels) {
        if l < classes && *p < classes {
            m[l][*p] += 1;
        }
    }
    m
}

/// A mean of values weighted by counts (Keras `metrics.Mean`), for the
/// loss and accuracy of an epoch over batches of different sizes.
#[derive(Debug, Clone, Default)]
pub struct RunningMean {
    sum: f64,
    count: f64,
}

impl RunningMean {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds `value` with weight `count` (a batch's mean and its size).
    pub fn add(&mut self, value: f64, count: usize) {
        self.sum += value * count as f64;
        self.count += count as f64;
    }
    /// The mean so far (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0.0 {
            0.0
        } else {
            self.sum / self.count
        }
    }
    /// The total weight added (the examples counted).
    pub fn count(&self) -> usize {
        self.count as usize
    }
    /// Forgets everything.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
