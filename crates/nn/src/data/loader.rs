//! Batches in a seeded order, prepared on another thread.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use tapir_tensor::{Rng, Tensor};

use super::Dataset;

/// A per-example transform applied as batches are made
/// (`torchvision.transforms`). Random ones draw from a generator seeded by
/// the loader's seed, the epoch and the batch, so a run is reproducible
/// whatever the threads do.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// (x − mean[c]) / std[c] per channel (axis 0 of the item); one value
    /// applies to every channel (`transforms.Normalize`).
    Normalize {
        /// Per-channel means (or one).
        mean: Vec<f32>,
        /// Per-channel standard deviations (or one).
        std: Vec<f32>,
    },
    /// Pads `[C, H, W]` by `padding` zeros on each side and crops a random
    /// H×W window (`transforms.RandomCrop(size, padding)`).
    RandomCrop {
        /// Zeros added on each side.
        padding: usize,
    },
    /// Mirrors `[C, H, W]` left to right with probability ½
    /// (`transforms.RandomHorizontalFlip`).
    RandomHorizontalFlip,
}

impl Transform {
    fn apply(&self, item: &mut [f32], shape: &[usize], rng: &mut Rng, scratch: &mut Vec<f32>) {
        match self {
            Transform::Normalize { mean, std } => {
                let c = if shape.len() >= 2 { shape[0] } else { 1 };
                let per = item.len() / c.max(1);
                for (ch, chunk) in item.chunks_mut(per.max(1)).enumerate() {
                    let m = mean[ch.min(mean.len() - 1)];
                    let s = std[ch.min(std.len() - 1)];
                    chunk.iter_mut().for_each(|v| *v = (*v - m) / s);
                }
            }
            Transform::RandomCrop { padding } => {
                let [c, h, w] = chw(shape);
                let p = *padding;
                let dy = rng.below((2 * p + 1) as u64) as isize - p as isize;
                let dx = rng.below((2 * p + 1) as u64) as isize - p as isize;
                scratch.clear();
                scratch.extend_from_slice(item);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            item[(ch * h + y) * w + x] =
                                if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                                    scratch[(ch * h + sy as usize) * w + sx as usize]
                                } else {
                                    0.0
                                };
                        }
                    }
                }
            }
            Transform::RandomHorizontalFlip => {
                let [_, _, w] = chw(shape);
                if rng.below(2) == 1 {
                    item.chunks_mut(w).for_each(|row| row.reverse());
                }
            }
        }
    }
}

fn chw(shape: &[usize]) -> [usize; 3] {
    match *shape {
        [c, h, w] => [c, h, w],
        [h, w] => [1, h, w],
        _ => panic!("image transforms need items of shape [C, H, W] or [H, W], got {shape:?}"),
    }
}

/// One batch: inputs `[B, ...item_shape]` and their labels.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The inputs.
    pub x: Tensor<f32>,
    /// One label per input.
    pub labels: Vec<usize>,
}

/// Batches of a dataset (`torch.utils.data.DataLoader`): shuffled with a
/// seed (the same seed and epoch give the same order), the last short
/// batch kept or dropped, transforms applied, and the next batch made on
/// a background thread while the caller trains on the current one.
///
/// ```
/// use tapir_nn::data::{DataLoader, InMemory};
/// let data = InMemory::new((0..20).map(|v| v as f32).collect(), (0..10).collect(), &[2]);
/// let loader = DataLoader::new(data, 4).shuffle(7).drop_last(true);
/// assert_eq!(loader.batches(), 2);
/// let a: Vec<Vec<usize>> = loader.epoch(0).map(|b| b.labels).collect();
/// let b: Vec<Vec<usize>> = loader.epoch(0).map(|b| b.labels).collect();
/// assert_eq!(a, b); // same seed, same epoch, same order
/// assert_ne!(a, loader.epoch(1).map(|b| b.labels).collect::<Vec<_>>());
/// ```
pub struct DataLoader<D: Dataset + 'static> {
    data: Arc<D>,
    batch: usize,
    seed: Option<u64>,
    drop_last: bool,
    transforms: Arc<Vec<Transform>>,
    prefetch: bool,
    /// (rank, ranks): this process's share of every epoch.
    shard: (usize, usize),
}

impl<D: Dataset + 'static> DataLoader<D> {
    /// Batches of `batch` examples in dataset order.
    ///
    /// # Panics
    /// If `batch` is 0.
    pub fn new(data: D, batch: usize) -> Self {
        assert!(batch > 0, "DataLoader: batch size must be positive");
        DataLoader {
            data: Arc::new(data),
            batch,
            seed: None,
            drop_last: false,
            transforms: Arc::new(Vec::new()),
            prefetch: true,
            shard: (0, 1),
        }
    }

    /// Makes this loader rank `rank`'s of `ranks` for data-parallel
    /// training (PyTorch's `DistributedSampler`): every rank shuffles the
    /// epoch alike (same seed), the order is padded by repeating its start
    /// to a multiple of `ranks`, and rank r takes positions r, r + ranks,
    /// r + 2·ranks, …: disjoint shares of equal size that together cover
    /// the epoch. With a batch of B on each of R ranks, step k's R batches
    /// together are the single-process loader's step k with batch R·B
    /// (when the dataset divides evenly).
    ///
    /// ```
    /// use tapir_nn::data::{DataLoader, InMemory};
    /// let data = || InMemory::new(vec![0.0; 8], (0..8).collect(), &[1]);
    /// let whole: Vec<usize> = DataLoader::new(data(), 4).shuffle(3).epoch(0).next().unwrap().labels;
    /// let a = DataLoader::new(data(), 2).shuffle(3).shard(0, 2).epoch(0).next().unwrap().labels;
    /// let b = DataLoader::new(data(), 2).shuffle(3).shard(1, 2).epoch(0).next().unwrap().labels;
    /// assert_eq!(vec![a[0], b[0], a[1], b[1]], whole);
    /// ```
    ///
    /// # Panics
    /// If `ranks` is 0 or `rank ≥ ranks`.
    pub fn shard(mut self, rank: usize, ranks: usize) -> Self {
        assert!(
            rank < ranks,
            "DataLoader::shard: rank {rank} is not below the number of ranks {ranks}"
        );
        self.shard = (rank, ranks);
        self
    }

    /// This rank's share of the dataset's indices, in epoch order.
    fn share(&self, order: Vec<usize>) -> Vec<usize> {
        let (rank, ranks) = self.shard;
        if ranks == 1 || order.is_empty() {
            return order;
        }
        let total = order.len().div_ceil(ranks) * ranks;
        (rank..total)
            .step_by(ranks)
            .map(|i| order[i % order.len()])
            .collect()
    }

    /// Shuffles every epoch, the order fixed by `seed` and the epoch.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Drops the last batch when it is short.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Adds a transform (applied in the order added).
    pub fn transform(mut self, t: Transform) -> Self {
        Arc::make_mut(&mut self.transforms).push(t);
        self
    }

    /// Whether to make batches on a background thread (default true).
    pub fn prefetch(mut self, on: bool) -> Self {
        self.prefetch = on;
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &D {
        &self.data
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        let (_, ranks) = self.shard;
        let n = match self.data.len() {
            0 => 0,
            n => n.div_ceil(ranks),
        };
        if self.drop_last {
            n / self.batch
        } else {
            n.div_ceil(self.batch)
        }
    }

    /// The batches of epoch `epoch` (from 0).
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let n = self.data.len();
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(s) = self.seed {
            Rng::seed(mix(s, epoch, u64::MAX)).shuffle(&mut order);
        }
        let order = self.share(order);
        let job = Job {
            data: Arc::clone(&self.data) as Arc<dyn Dataset>,
            order,
            batch: self.batch,
            batches: self.batches(),
            transforms: Arc::clone(&self.transforms),
            // Each rank draws its own augmentations (rank 0 those of an
            // unsharded loader).
            seed: mix(self.seed.unwrap_or(0), epoch, 0)
                ^ (self.shard.0 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        if self.prefetch {
            let (tx, rx) = sync_channel(2);
            let handle = std::thread::spawn(move || {
                for b in 0..job.batches {
                    if tx.send(job.make(b)).is_err() {
                        return;
                    }
                }
            });
            Epoch {
                inner: Inner::Thread {
                    rx,
                    handle: Some(handle),
                },
            }
        } else {
            Epoch {
                inner: Inner::Here { job, next: 0 },
            }
        }
    }
}

fn mix(seed: u64, epoch: u64, salt: u64) -> u64 {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(epoch.wrapping_add(1));
    s ^= salt.rotate_left(17);
    Rng::seed(s).next_u64()
}

struct Job {
    data: Arc<dyn Dataset>,
    order: Vec<usize>,
    batch: usize,
    batches: usize,
    transforms: Arc<Vec<Transform>>,
    seed: u64,
}

impl Job {
    fn make(&self, b: usize) -> Batch {
        let rows = &self.order[b * self.batch..((b + 1) * self.batch).min(self.order.len())];
        let shape = self.data.item_shape().to_vec();
        let size: usize = shape.iter().product();
        let mut x = vec![0f32; rows.len() * size];
        let mut labels = Vec::with_capacity(rows.len());
        let mut rng = Rng::seed(mix(self.seed, b as u64, 1));
        let mut scratch = Vec::new();
        for (i, &r) in rows.iter().enumerate() {
            let item = &mut x[i * size..(i + 1) * size];
            labels.push(self.data.read(r, item));
            for t in self.transforms.iter() {
                t.apply(item, &shape, &mut rng, &mut scratch);
            }
        }
        let mut full = vec![rows.len()];
        full.extend_from_slice(&shape);
        Batch {
            x: Tensor::from_vec(x, full).expect("length matches"),
            labels,
        }
    }
}

/// The batches of one epoch, in order.
pub struct Epoch {
    inner: Inner,
}

enum Inner {
    Thread {
        rx: Receiver<Batch>,
        handle: Option<JoinHandle<()>>,
    },
    Here {
        job: Job,
        next: usize,
    },
}

impl Iterator for Epoch {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        match &mut self.inner {
            Inner::Thread { rx, handle } => match rx.recv() {
                Ok(b) => Some(b),
                Err(_) => {
                    if let Some(h) = handle.take() {
                        // A panic in the producer (a bad transform shape)
                        // surfaces here rather than as a short epoch.
                        if let Err(p) = h.join() {
                            std::panic::resume_unwind(p);
                        }
                    }
                    None
                }
            },
            Inner::Here { job, next } => {
                if *next >= job.batches {
                    return None;
                }
                *next += 1;
                Some(job.make(*next - 1))
            }
        }
    }
}
