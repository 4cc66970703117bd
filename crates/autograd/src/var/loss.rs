//! Losses built from the other ops.

use tapir_tensor::Float;

use crate::error::Result;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// Mean softmax cross-entropy between logits (N, C) and class indices
    /// (`torch.nn.functional.cross_entropy` with mean reduction).
    ///
    /// # Errors
    /// When the logits are not 2-D, the label count differs from N, or a
    /// label is ≥ C.
    pub fn cross_entropy(&self, labels: &[usize]) -> Result<Self> {
        if self.ndim() != 2 || labels.len() != self.shape()[0] {
            return Err(tapir_tensor::Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!(
                    "expects logits (N, C) and N labels, got {:?} and {} labels",
                    self.shape(),
                    labels.len()
                ),
            }
            .into());
        }
        let classes = self.shape()[1];
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
            return Err(tapir_tensor::Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!(
                    "label {l} (sample {i}) is out of range for {classes} classes (logits {:?})",
                    self.shape()
                ),
            }
            .into());
        }
        let idx = tapir_tensor::indices(labels.to_vec(), [labels.len(), 1])?;
        let picked = self.log_softmax(-1)?.gather(1, &idx)?;
        Ok(picked.mean().neg())
    }

    /// Mean squared error against a target of the same shape
    /// (`torch.nn.functional.mse_loss`; PyTorch warns and broadcasts a
    /// target of another shape, which is nearly always a bug, so it is an
    /// error here).
    ///
    /// # Errors
    /// When the shapes differ.
    pub fn mse(&self, target: &Self) -> Result<Self> {
        tapir_tensor::check::same_shape("mse", "input and target", self.shape(), target.shape())?;
        Ok(self.sub(target)?.square().mean())
    }
}
