//! Activation checkpointing: a segment of the forward pass that keeps only
//! its inputs and is recomputed during the backward pass.

use std::sync::Arc;

use tapir_tensor::{Float, Tensor};

use crate::custom::CustomOp;
use crate::error::{Error, Result};
use crate::gradients::GradientOptions;
use crate::param::Parameter;
use crate::tape::Tape;
use crate::var::Var;

/// The segment's function: from its input Vars to its output, recorded on
/// whatever tape the inputs belong to (none, a fresh one, or the outer one).
type SegmentFn<E> = dyn for<'s> Fn(&[Var<'s, E>]) -> Result<Var<'s, E>> + Send + Sync;

/// The custom op a checkpointed segment records: its inputs are the
/// segment's inputs, then the Vars of its parameters (so that their
/// gradients reach the outer tape); only their values stay on the tape.
struct Segment<E: Float> {
    f: Arc<SegmentFn<E>>,
    params: Vec<Parameter<E>>,
    inputs: usize,
}

impl<E: Float> CustomOp<E> for Segment<E> {
    fn name(&self) -> &str {
        "checkpoint"
    }

    /// Runs the segment untracked: nothing inside it is recorded.
    fn forward(&self, inputs: &[&Tensor<E>]) -> Result<Tensor<E>> {
        let xs: Vec<Var<'_, E>> = inputs[..self.inputs]
            .iter()
            .map(|t| Var::untracked((*t).clone()))
            .collect();
        Ok((self.f)(&xs)?.value().clone())
    }

    /// Recomputes the segment and takes its vector–Jacobian product with
    /// `grad`. For a first-order gradient the recomputation goes on a
    /// private tape that is dropped right after; under
    /// [`Tape::gradient_graph`] (the inputs are tracked) it is recorded on
    /// the outer tape, so that the gradient can be differentiated again.
    fn backward<'t>(
        &self,
        inputs: &[Var<'t, E>],
        _output: &Var<'t, E>,
        grad: &Var<'t, E>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        if let Some(tape) = inputs.iter().find_map(|v| v.tape) {
            let xs = &inputs[..self.inputs];
            let out = (self.f)(xs)?;
            let sources: Vec<&Var<'t, E>> = inputs.iter().collect();
            // Seeded with `grad` itself: the reverse pass starts at the
            // recomputed output, so `grad`'s own dependence on the inputs
            // is carried, not differentiated again here.
            return tape.vjp_graph(&out, &sources, grad);
        }
        let inner = Tape::new();
        let xs: Vec<Var<'_, E>> = inputs[..self.inputs]
            .iter()
            .map(|v| inner.var(v.value().clone()))
            .collect();
        let out = (self.f)(&xs)?;
        let leaves: Vec<Var<'_, E>> = self.params.iter().map(|p| inner.param(p)).collect();
        let sources: Vec<&Var<'_, E>> = xs.iter().chain(&leaves).collect();
        let opts = GradientOptions {
            output_grad: Some(grad.value().clone()),
            ..Default::default()
        };
        let g = inner.gradient_vars(&out, &sources, &opts)?;
        Ok(g.into_iter().map(|g| g.map(Var::untracked)).collect())
    }
}

impl<E: Float> Tape<E> {
    /// Activation checkpointing (`torch.utils.checkpoint.checkpoint`,
    /// `jax.checkpoint`, `tf.recompute_grad`): runs `f` on `inputs`
    /// without recording what happens inside, keeping on the tape only the
    /// inputs and the output; the backward pass runs `f` again on them and
    /// differentiates that. Memory for the segment's intermediate values
    /// (a transformer block's attention scores, MLP activations) is traded
    /// for one more forward pass of the segment. Gradients are those of the
    /// plain run: the same ops run in the same order, so they are
    /// bit-identical except where a parameter used several times inside
    /// the segment has its contributions summed in another order (a last-bit
    /// difference).
    ///
    /// `params` lists the parameters `f` uses (`module.parameters()`):
    /// their gradients reach [`Tape::gradient`] through the segment; a
    /// parameter used inside but not listed gets no gradient from it.
    /// `f` gets the inputs as Vars and must be deterministic: it runs twice
    /// (a dropout mask drawn twice would differ; PyTorch restores the RNG
    /// state for that, Tapir does not). It is `'static` because the tape
    /// keeps it until the backward pass: move clones of the layers in
    /// (Tapir's layers share their parameters when cloned).
    /// Higher-order gradients ([`Tape::gradient_graph`]) work: there the
    /// recomputation is recorded on this tape.
    ///
    /// ```
    /// use tapir_autograd::{Parameter, Tape};
    /// use tapir_tensor::Tensor;
    ///
    /// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![0.5, -1.0], [2])?);
    /// let tape = Tape::new();
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0], [2])?);
    /// let w2 = w.clone();
    /// let y = tape.checkpoint(&[&w], &[&x], move |xs| {
    ///     let h = xs[0].mul(&xs[0].param(&w2))?.tanh(); // not kept
    ///     Ok(h.square().sum())
    /// })?;
    /// let g = tape.gradient(&y, [&w])?;
    /// // d/dw Σ tanh(x·w)² = 2 tanh(xw)(1 − tanh²(xw))·x
    /// let t = (0.5f64).tanh();
    /// assert!((g[&w].to_vec()[0] - 2.0 * t * (1.0 - t * t)).abs() < 1e-12);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// `f`'s error (in the forward call, or again in the backward pass);
    /// no inputs.
    pub fn checkpoint<'t, F>(
        &'t self,
        params: &[&Parameter<E>],
        inputs: &[&Var<'t, E>],
        f: F,
    ) -> Result<Var<'t, E>>
    where
        F: for<'s> Fn(&[Var<'s, E>]) -> Result<Var<'s, E>> + Send + Sync + 'static,
    {
        if inputs.is_empty() {
            return Err(Error::Custom {
                name: "checkpoint".into(),
                msg: "a checkpointed segment needs at least one input".into(),
            });
        }
        let pvars: Vec<Var<'t, E>> = params.iter().map(|p| self.param(p)).collect();
        let all: Vec<&Var<'t, E>> = inputs.iter().copied().chain(&pvars).collect();
        let op = Segment {
            f: Arc::new(f),
            params: params.iter().map(|p| (*p).clone()).collect(),
            inputs: inputs.len(),
        };
        Var::custom(Arc::new(op), &all)
    }
}
