//! Lookup tables.

use tapir_autograd::{Parameter, Result, Tape, Var};
use tapir_tensor::{Float, Rng, Tensor};

use super::shape_error;
use crate::Module;

/// A table of `num` vectors of size `dim`, looked up by index
/// (`torch.nn.Embedding`, Keras `Embedding`). Weight `[num, dim]`, drawn
/// from N(0, 1) as PyTorch does (Keras draws U(−0.05, 0.05)). With a
/// padding index, that row starts at zero and gets no gradient, so it
/// stays zero (`padding_idx`). With `.sparse(true)` (PyTorch's
/// `sparse=True`) the weight's gradient is row-sparse: only the rows a
/// batch looked up ([`Var::embedding`]), for [`tapir_optim::SparseAdam`]
/// or any other optimizer (which makes it dense).
///
/// ```
/// use tapir_nn::Embedding;
/// use tapir_autograd::Tape;
/// use tapir_tensor::Rng;
/// let emb: Embedding = Embedding::new(10, 4, &mut Rng::seed(0)).padding_idx(0);
/// let tape = Tape::new();
/// let y = emb.forward(Some(&tape), &[3, 0, 3, 7, 1, 0], &[2, 3])?;
/// assert_eq!(y.shape(), &[2, 3, 4]);
/// assert!(emb.forward(None, &[10], &[1]).is_err()); // out of range
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Embedding<E: Float = f32> {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Parameter<E>,
    #[module(skip)]
    padding_idx: Option<usize>,
    #[module(skip)]
    sparse: bool,
}

impl<E: Float> Embedding<E> {
    /// `num` vectors of size `dim`.
    pub fn new(num: usize, dim: usize, rng: &mut Rng) -> Self {
        Embedding {
            weight: Parameter::new("weight", Tensor::randn([num, dim], rng)),
            padding_idx: None,
            sparse: false,
        }
    }

    /// Whether the weight's gradient is row-sparse (default `false`, as
    /// PyTorch). A padding row, if any, is among the rows with a zero
    /// gradient, which leaves it at zero under SparseAdam too.
    pub fn sparse(mut self, sparse: bool) -> Self {
        self.sparse = sparse;
        self
    }

    /// Makes row `idx` the padding row: zeroed now, never updated.
    ///
    /// # Panics
    /// If `idx` is not a row of the table.
    pub fn padding_idx(mut self, idx: usize) -> Self {
        let s = self.weight.shape();
        assert!(
            idx < s[0],
            "Embedding: padding_idx {idx} out of range for {} rows",
            s[0]
        );
        let mut w = self.weight.value().to_vec();
        w[idx * s[1]..(idx + 1) * s[1]].fill(E::ZERO);
        self.weight
            .set(Tensor::from_vec(w, &s).expect("same shape"));
        self.padding_idx = Some(idx);
        self
    }

    /// The vectors of `ids` (row-major, of shape `shape`), giving
    /// `[..shape, dim]`: recorded on `tape` when given, plain values when
    /// `None` (evaluation).
    ///
    /// # Errors
    /// An index ≥ the number of rows, or `ids` not filling `shape`; both
    /// name the layer.
    pub fn forward<'t>(
        &self,
        tape: Option<&'t Tape<E>>,
        ids: &[usize],
        shape: &[usize],
    ) -> Result<Var<'t, E>> {
        let s = self.weight.shape();
        let (num, dim) = (s[0], s[1]);
        if ids.len() != shape.iter().product::<usize>() {
            return Err(shape_error(
                "Embedding",
                format!("{} indices do not fill shape {shape:?}", ids.len()),
            ));
        }
        if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id >= num) {
            return Err(shape_error(
                "Embedding",
                format!("Embedding({num}, {dim}): index {id} (position {i}) is out of range"),
            ));
        }
        let w = match tape {
            Some(t) => t.param(&self.weight),
            None => Var::untracked(self.weight.value()),
        };
        let mut rows = if self.sparse {
            w.embedding(ids)?
        } else {
            w.index_select(0, ids)?
        };
        if let Some(p) = self.padding_idx {
            if ids.contains(&p) {
                // Zero the padding rows' output, so their gradient is zero.
                let mask: Vec<E> = ids
                    .iter()
                    .flat_map(|&id| {
                        std::iter::repeat_n(if id == p { E::ZERO } else { E::ONE }, dim)
                    })
                    .collect();
                rows = rows.mul(&rows.lift(Tensor::from_vec(mask, [ids.len(), dim])?))?;
            }
        }
        let mut out = shape.to_vec();
        out.push(dim);
        rows.reshape_usize(&out)
    }
}
