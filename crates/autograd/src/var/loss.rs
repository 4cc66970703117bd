//! Losses built from the other ops.

use tapir_tensor::Float;

use crate::error::Result;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// Mean softmax cross-entropy of logits (N, C) against class indices,
    /// `−(1/N) Σₙ log softmax(xₙ)[labelₙ]` (`torch.nn.functional.cross_entropy`
    /// with its default mean reduction; Keras
    /// `SparseCategoricalCrossentropy(from_logits=True)`, while
    /// `tf.nn.sparse_softmax_cross_entropy_with_logits` returns the N losses
    /// unaveraged). Gradient: (softmax − one_hot)/N. Composite:
    /// [`Var::log_softmax`], [`Var::gather`] of the labels, [`Var::mean`].
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let logits = tape.var(Tensor::<f64>::zeros([2, 2]));
    /// let loss = logits.cross_entropy(&[0, 1])?;
    /// assert!((loss.value().item()? - std::f64::consts::LN_2).abs() < 1e-12);
    /// let g = tape.gradient_vars(&loss, &[&logits], &Default::default())?;
    /// // (softmax − one_hot)/N with softmax 0.5 everywhere and N = 2.
    /// let expected = [-0.25, 0.25, 0.25, -0.25];
    /// for (gi, ei) in g[0].as_ref().unwrap().to_vec().iter().zip(expected) {
    ///     assert!((gi - ei).abs() < 1e-12);
    /// }
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
        let n = labels.len();
        let t = tapir_tensor::XentTargets::Labels {
            labels: labels.into(),
            a: vec![E::ONE; n].into(),
            b: Vec::new().into(),
            u: Vec::new().into(),
        };
        Ok(self.softmax_cross_entropy(t)?.mean())
    }

    /// Per-row softmax cross-entropy of logits `self` `[N, C]` against the
    /// target weights t (class indices with weights and smoothing, or
    /// dense probabilities; see [`XentTargets`](tapir_tensor::XentTargets)):
    /// loss[i] = Σ_c t[i, c]·(lse[i] − x[i, c]), `[N]`. One fused
    /// primitive, max-shifted (finite for logits of ±1e4); the building
    /// block of every cross-entropy variant in tapir-nn. Gradient:
    /// g[i]·(softmax[i, c]·Σ t[i] − t[i, c]); differentiable again.
    ///
    /// # Errors
    /// When the logits are not 2-D or the targets do not fit them.
    pub fn softmax_cross_entropy(&self, targets: tapir_tensor::XentTargets<E>) -> Result<Self> {
        let (v, _) = self.value.softmax_cross_entropy(&targets)?;
        let op = crate::op::Op::SoftmaxXent(Box::new(crate::op::XentOp { targets }));
        crate::tape::Tape::record("softmax_cross_entropy", op, &[self], v)
    }

    /// Mean squared error against a target of the same shape,
    /// (1/n) Σ (x − target)² (`torch.nn.functional.mse_loss` with its
    /// default mean reduction; Keras `MeanSquaredError`). PyTorch warns and
    /// broadcasts a target of another shape, which is nearly always a bug,
    /// so it is an error here. Gradient: 2(x − target)/n for `self`, the
    /// negative of that for `target`. Composite: `sub`, `square`, `mean`.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
    /// let t = tape.var(Tensor::ones([2, 2]));
    /// let loss = x.mse(&t)?;
    /// assert_eq!(loss.value().item()?, 3.5);
    /// let g = tape.gradient_vars(&loss, &[&x, &t], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.0, 0.5, 1.0, 1.5]);
    /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [0.0, -0.5, -1.0, -1.5]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the shapes differ.
    pub fn mse(&self, target: &Self) -> Result<Self> {
        tapir_tensor::check::same_shape("mse", "input and target", self.shape(), target.shape())?;
        Ok(self.sub(target)?.square().mean())
    }
}
