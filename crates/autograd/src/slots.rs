//! Gradient storage of the first-order pass.

use tapir_tensor::{Float, Tensor};

use crate::error::Result;

/// The gradients of a first-order pass: per node, a slot number into a
/// small store of tensors. Slots are recycled once a gradient has been
/// consumed, so a long chain keeps a couple of live gradients in a few
/// cache lines instead of a tensor-sized entry per node.
pub(crate) struct NodeGrads<E: Float> {
    slot: Vec<usize>,
    store: Vec<Option<Tensor<E>>>,
    free: Vec<usize>,
}

const NO_SLOT: usize = usize::MAX;

impl<E: Float> NodeGrads<E> {
    pub(crate) fn new(n: usize) -> Self {
        NodeGrads {
            slot: vec![NO_SLOT; n],
            store: Vec::new(),
            free: Vec::new(),
        }
    }

    /// The gradient of node `i`, if it has one.
    pub(crate) fn get(&self, i: usize) -> Option<&Tensor<E>> {
        match self.slot[i] {
            NO_SLOT => None,
            k => self.store[k].as_ref(),
        }
    }

    /// Removes and returns the gradient of node `i`.
    pub(crate) fn take(&mut self, i: usize) -> Option<Tensor<E>> {
        let k = std::mem::replace(&mut self.slot[i], NO_SLOT);
        if k == NO_SLOT {
            return None;
        }
        self.free.push(k);
        self.store[k].take()
    }

    /// Adds `g` into node `i`'s gradient (fan-out sums), in place when the
    /// storage is not shared.
    pub(crate) fn add(&mut self, i: usize, g: Tensor<E>) -> Result<()> {
        let sum = match self.take(i) {
            None => g,
            Some(prev) if prev.same_shape(&g) => prev.zip_map_into(&g, |a, b| a + b)?,
            Some(prev) => prev.add(&g)?,
        };
        self.set(i, sum);
        Ok(())
    }

    pub(crate) fn set(&mut self, i: usize, g: Tensor<E>) {
        match self.slot[i] {
            NO_SLOT => {
                let k = match self.free.pop() {
                    Some(k) => {
                        self.store[k] = Some(g);
                        k
                    }
                    None => {
                        self.store.push(Some(g));
                        self.store.len() - 1
                    }
                };
                self.slot[i] = k;
            }
            k => self.store[k] = Some(g),
        }
    }
}
