//! Multi-head attention and the pre-norm transformer block.

use tapir_autograd::{Parameter, Result, Var};
use tapir_tensor::{Float, GeluApprox, Rng, Tensor};

use super::{shape_error, Forward, LayerNorm, Linear};
use crate::init;
use crate::Module;

/// From this many scores per head (T·S) on, attention runs as the fused
/// tiled kernel; below, as the composite of matmul, mask and softmax.
/// Measured fwd+bwd at 1,024 tokens, 4 heads of 32, causal: T = 64
/// composite 2.5 ms vs fused 3.6; T = 128, 3.9 vs 4.7; T = 256, 10.7 vs
/// 7.5; T = 512, 15.9 vs 13.1 (and the fused kernel stores no T×S matrix).
const FUSED_MIN_SCORES: usize = 128 * 128;

/// Self-attention up to this many positions reads its heads in place from
/// the fused projection (`Var::qkv_attention`), which keeps one head's T×T
/// scores at a time; longer sequences take the tiled kernel.
const PACKED_MAX_LEN: usize = 512;

/// Which query–key pairs attention may not use.
///
/// PyTorch's conventions: in `key_padding` a `true` marks a padded key
/// (blocked), as in `torch.nn.MultiheadAttention`'s boolean
/// `key_padding_mask`; `attn_mask` is a float mask `[T, S]` added to the
/// scores before the softmax (use −∞ to block). `causal` blocks every key
/// after the query's own position (`is_causal=True`). A query whose keys
/// are all blocked gets NaN, as in PyTorch.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionMask<'a, E: Float = f32> {
    /// Query i sees keys 0..=i only.
    pub causal: bool,
    /// `[B, S]` in row-major order: `true` where the key is padding.
    pub key_padding: Option<&'a [bool]>,
    /// `[T, S]`, added to every head's scores.
    pub attn_mask: Option<&'a Tensor<E>>,
}

impl<'a, E: Float> AttentionMask<'a, E> {
    /// No mask.
    pub fn none() -> Self {
        AttentionMask {
            causal: false,
            key_padding: None,
            attn_mask: None,
        }
    }

    /// The causal mask only.
    pub fn causal() -> Self {
        AttentionMask {
            causal: true,
            ..Self::none()
        }
    }

    fn is_empty(&self) -> bool {
        !self.causal && self.key_padding.is_none() && self.attn_mask.is_none()
    }

    /// The additive mask `[B or 1, 1, T, S]` (0 or −∞, plus `attn_mask`),
    /// the causal part only if `causal`.
    fn additive(&self, b: usize, t: usize, s: usize, causal: bool) -> Result<Tensor<E>> {
        let rows = if self.key_padding.is_some() { b } else { 1 };
        let mut m = vec![E::ZERO; rows * t * s];
        if let Some(am) = self.attn_mask {
            if am.shape() != [t, s] {
                return Err(shape_error(
                    "MultiHeadAttention",
                    format!(
                        "attn_mask must be [T, S] = [{t}, {s}], got {:?}",
                        am.shape()
                    ),
                ));
            }
            let a = am.to_vec();
            for r in 0..rows {
                m[r * t * s..(r + 1) * t * s].copy_from_slice(&a);
            }
        }
        if causal && self.causal {
            for r in 0..rows {
                for i in 0..t {
                    for j in i + 1..s {
                        m[(r * t + i) * s + j] = E::NEG_INFINITY;
                    }
                }
            }
        }
        if let Some(kp) = self.key_padding {
            if kp.len() != b * s {
                return Err(shape_error(
                    "MultiHeadAttention",
                    format!(
                        "key_padding must hold B·S = {b}·{s} = {} flags, got {}",
                        b * s,
                        kp.len()
                    ),
                ));
            }
            for r in 0..b {
                for i in 0..t {
                    for j in 0..s {
                        if kp[r * s + j] {
                            m[(r * t + i) * s + j] = E::NEG_INFINITY;
                        }
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, [rows, 1, t, s])?)
    }
}

/// Multi-head scaled dot-product attention (`torch.nn.MultiheadAttention`
/// with `batch_first=True`; Keras `MultiHeadAttention`, which keeps one
/// kernel per projection).
///
/// Inputs are `[B, T, E]` (query) and `[B, S, E]` (key and value). The
/// weights have PyTorch's layout and names, so a PyTorch state dict loads
/// unchanged: `in_proj_weight` `[3E, E]` stacks the query, key and value
/// projections by rows (query first), `in_proj_bias` `[3E]` likewise, and
/// `out_proj` is a [`Linear`] E → E. Head h uses the slice h·E/H..(h+1)·E/H
/// of each projected vector; scores are scaled by 1/√(E/H). Initialisation
/// is PyTorch's: Xavier-uniform `in_proj_weight`, zero biases, `out_proj`
/// weight U(±1/√E).
///
/// As a [`Forward`] layer it is self-attention, causal when built with
/// [`causal`](Self::causal).
///
/// ```
/// use tapir_nn::{AttentionMask, Forward, MultiHeadAttention};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let mha: MultiHeadAttention = MultiHeadAttention::new(8, 2, &mut rng);
/// let x = Var::untracked(Tensor::randn([2, 5, 8], &mut rng));
/// let y = mha.attend(&x, &x, &x, &AttentionMask::causal())?;
/// assert_eq!(y.shape(), &[2, 5, 8]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct MultiHeadAttention<E: Float = f32> {
    /// `[3E, E]`: query, key and value projections stacked by rows.
    pub in_proj_weight: Parameter<E>,
    /// `[3E]`, or none.
    pub in_proj_bias: Option<Parameter<E>>,
    /// The output projection E → E.
    pub out_proj: Linear<E>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    causal: bool,
}

impl<E: Float> MultiHeadAttention<E> {
    /// `heads` heads over vectors of size `embed_dim`, with biases.
    ///
    /// # Panics
    /// If `heads` is zero or does not divide `embed_dim`.
    pub fn new(embed_dim: usize, heads: usize, rng: &mut Rng) -> Self {
        assert!(
            heads > 0 && embed_dim % heads == 0,
            "MultiHeadAttention: {heads} heads do not divide embed_dim {embed_dim}"
        );
        let in_proj_weight = Parameter::new(
            "in_proj_weight",
            init::xavier_uniform(&[3 * embed_dim, embed_dim], 1.0, rng),
        );
        let out_proj = Linear::new(embed_dim, embed_dim, rng);
        if let Some(b) = &out_proj.bias {
            b.set(Tensor::zeros([embed_dim]));
        }
        MultiHeadAttention {
            in_proj_weight,
            in_proj_bias: Some(Parameter::new(
                "in_proj_bias",
                Tensor::zeros([3 * embed_dim]),
            )),
            out_proj,
            heads,
            causal: false,
        }
    }

    /// Without the projection biases (`bias=False`).
    pub fn no_bias(mut self) -> Self {
        self.in_proj_bias = None;
        self.out_proj.bias = None;
        self
    }

    /// Makes the [`Forward`] self-attention causal.
    pub fn causal(mut self) -> Self {
        self.causal = true;
        self
    }

    /// (embed_dim, heads).
    pub fn dims(&self) -> (usize, usize) {
        (self.in_proj_weight.shape()[1], self.heads)
    }

    /// Attention of `query` `[B, T, E]` over `key` and `value` `[B, S, E]`:
    /// `[B, T, E]`.
    ///
    /// # Errors
    /// Inputs that are not `[B, T, E]`, `[B, S, E]`, `[B, S, E]`, or a
    /// mask of the wrong size, naming the layer and the shapes.
    pub fn attend<'t>(
        &self,
        query: &Var<'t, E>,
        key: &Var<'t, E>,
        value: &Var<'t, E>,
        mask: &AttentionMask<'_, E>,
    ) -> Result<Var<'t, E>> {
        Ok(self.run(query, key, value, mask, false, false)?.0)
    }

    /// Self-attention of `x` `[B, T, E]` (query, key and value all `x`),
    /// projected by one GEMM with the whole `in_proj_weight`.
    ///
    /// # Errors
    /// As [`attend`](Self::attend).
    pub fn self_attention<'t>(
        &self,
        x: &Var<'t, E>,
        mask: &AttentionMask<'_, E>,
    ) -> Result<Var<'t, E>> {
        Ok(self.run(x, x, x, mask, false, true)?.0)
    }

    /// As [`attend`](Self::attend), also returning the attention weights
    /// averaged over the heads, `[B, T, S]` (PyTorch's `need_weights=True`,
    /// `average_attn_weights=True`).
    ///
    /// # Errors
    /// As [`attend`](Self::attend).
    pub fn attend_with_weights<'t>(
        &self,
        query: &Var<'t, E>,
        key: &Var<'t, E>,
        value: &Var<'t, E>,
        mask: &AttentionMask<'_, E>,
    ) -> Result<(Var<'t, E>, Var<'t, E>)> {
        let (y, w) = self.run(query, key, value, mask, true, false)?;
        Ok((y, w.expect("weights asked for")))
    }

    fn check(&self, q: &[usize], k: &[usize], v: &[usize]) -> Result<()> {
        let (e, _) = self.dims();
        let ok3 = |s: &[usize]| s.len() == 3 && s[2] == e;
        if !ok3(q) || !ok3(k) || !ok3(v) || q[0] != k[0] || k != v {
            return Err(shape_error(
                "MultiHeadAttention",
                format!(
                    "MultiHeadAttention(embed_dim {e}) takes query [B, T, {e}] and key, value \
                     [B, S, {e}], got {q:?}, {k:?}, {v:?}"
                ),
            ));
        }
        Ok(())
    }

    fn run<'t>(
        &self,
        query: &Var<'t, E>,
        key: &Var<'t, E>,
        value: &Var<'t, E>,
        mask: &AttentionMask<'_, E>,
        weights: bool,
        self_attn: bool,
    ) -> Result<(Var<'t, E>, Option<Var<'t, E>>)> {
        self.check(query.shape(), key.shape(), value.shape())?;
        let (e, h) = self.dims();
        let d = e / h;
        let (b, t, s) = (query.shape()[0], query.shape()[1], key.shape()[1]);
        let w = query.param(&self.in_proj_weight);
        let bias = self.in_proj_bias.as_ref().map(|p| query.param(p));
        // Projections: one GEMM [B·T, E]·[E, 3E] for self-attention, one
        // per input otherwise.
        let project = |x: &Var<'t, E>, rows: usize, n: usize| -> Result<Var<'t, E>> {
            // The whole weight needs no slice (and no slice gradient).
            let part = |p: &Var<'t, E>| {
                if n == 3 * e {
                    Ok(p.clone())
                } else {
                    p.narrow(0, rows, n)
                }
            };
            let mut y = x.reshape([-1, e as isize])?.matmul(&part(&w)?.t()?)?;
            if let Some(bb) = &bias {
                y = y.add(&part(bb)?)?;
            }
            Ok(y)
        };
        let scale = 1.0 / (d as f64).sqrt();
        let extra = || {
            (mask.key_padding.is_some() || mask.attn_mask.is_some())
                .then(|| mask.additive(b, t, s, false))
                .transpose()
        };
        if self_attn && !weights && t <= PACKED_MAX_LEN {
            // Heads read in place from the fused projection (docs/performance.md).
            let qkv = project(query, 0, 3 * e)?.reshape_usize(&[b, t, 3 * e])?;
            let ctx = qkv.qkv_attention(h, extra()?.as_ref(), mask.causal, Some(scale))?;
            return Ok((self.out_proj.forward(&ctx)?, None));
        }
        let heads = |y: Var<'t, E>, len: usize| -> Result<Var<'t, E>> {
            // [B·len, E] → [B, H, len, D]
            y.reshape_usize(&[b, len, h, d])?.permute(&[0, 2, 1, 3])
        };
        let (q, k, v) = if self_attn {
            let qkv = project(query, 0, 3 * e)?;
            let parts = qkv.split(e, 1)?;
            let mut it = parts.into_iter();
            let (q, k, v) = (it.next(), it.next(), it.next());
            (
                heads(q.expect("3 parts"), t)?,
                heads(k.expect("3 parts"), s)?,
                heads(v.expect("3 parts"), s)?,
            )
        } else {
            (
                heads(project(query, 0, e)?, t)?,
                heads(project(key, e, e)?, s)?,
                heads(project(value, 2 * e, e)?, s)?,
            )
        };
        let (ctx, avg) = if weights || t * s <= FUSED_MIN_SCORES {
            // The composite: it has the probabilities when they are wanted,
            // and is faster for short sequences (docs/performance.md).
            let mut scores = q
                .mul_scalar(E::from_f64(scale))
                .matmul(&k.transpose(-1, -2)?)?;
            if !mask.is_empty() {
                scores = scores.add(&query.lift(mask.additive(b, t, s, true)?))?;
            }
            let p = scores.softmax(-1)?;
            let avg = weights.then(|| p.mean_axes(&[1], false)).transpose()?;
            (p.matmul(&v)?, avg)
        } else {
            // The fused kernel; causality as a flag, not a mask tensor.
            let extra = extra()?;
            let ctx =
                q.scaled_dot_product_attention(&k, &v, extra.as_ref(), mask.causal, Some(scale))?;
            (ctx, None)
        };
        // [B, H, T, D] → [B, T, E]
        let ctx = ctx.permute(&[0, 2, 1, 3])?.reshape_usize(&[b, t, e])?;
        let y = self.out_proj.forward(&ctx)?;
        Ok((y, avg))
    }
}

impl<E: Float> Forward<E> for MultiHeadAttention<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let mask = if self.causal {
            AttentionMask::causal()
        } else {
            AttentionMask::none()
        };
        self.self_attention(x, &mask)
    }
}

/// A pre-norm transformer encoder block:
/// x + attn(norm1(x)), then x + linear2(gelu(linear1(norm2(x)))).
///
/// The field names are those of `torch.nn.TransformerEncoderLayer` with
/// `norm_first=True, batch_first=True` (`self_attn`, `linear1`, `linear2`,
/// `norm1`, `norm2`), so its state dict loads unchanged; that layer with
/// `activation="gelu"` (exact) and dropout 0 computes the same function.
/// Dropout is not part of the block here; add [`Dropout`](super::Dropout)
/// around it if wanted.
///
/// ```
/// use tapir_nn::{Forward, Module, TransformerBlock};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let block: TransformerBlock = TransformerBlock::new(16, 4, 64, &mut rng).causal();
/// let x = Var::untracked(Tensor::randn([2, 7, 16], &mut rng));
/// assert_eq!(block.forward(&x)?.shape(), &[2, 7, 16]);
/// assert_eq!(block.num_parameters(), 3 * 16 * 16 + 3 * 16 + 16 * 16 + 16 + 2 * 16 * 64 + 64 + 16 + 4 * 16);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct TransformerBlock<E: Float = f32> {
    /// Self-attention.
    pub self_attn: MultiHeadAttention<E>,
    /// E → feed-forward width.
    pub linear1: Linear<E>,
    /// Feed-forward width → E.
    pub linear2: Linear<E>,
    /// Before attention.
    pub norm1: LayerNorm<E>,
    /// Before the feed-forward part.
    pub norm2: LayerNorm<E>,
    #[module(skip)]
    gelu: GeluApprox,
}

impl<E: Float> TransformerBlock<E> {
    /// A block over vectors of size `d_model` with `heads` heads and a
    /// feed-forward part of width `d_ff`, exact GELU.
    ///
    /// # Panics
    /// If `heads` does not divide `d_model`.
    pub fn new(d_model: usize, heads: usize, d_ff: usize, rng: &mut Rng) -> Self {
        TransformerBlock {
            self_attn: MultiHeadAttention::new(d_model, heads, rng),
            linear1: Linear::new(d_model, d_ff, rng),
            linear2: Linear::new(d_ff, d_model, rng),
            norm1: LayerNorm::new(&[d_model]),
            norm2: LayerNorm::new(&[d_model]),
            gelu: GeluApprox::None,
        }
    }

    /// Causal self-attention (a decoder-only language model's block).
    pub fn causal(mut self) -> Self {
        self.self_attn = self.self_attn.causal();
        self
    }

    /// With the tanh approximation of GELU.
    pub fn gelu_tanh(mut self) -> Self {
        self.gelu = GeluApprox::Tanh;
        self
    }

    /// The block with an explicit mask (key padding, float mask).
    ///
    /// # Errors
    /// As [`MultiHeadAttention::attend`].
    pub fn forward_masked<'t>(
        &self,
        x: &Var<'t, E>,
        mask: &AttentionMask<'_, E>,
    ) -> Result<Var<'t, E>> {
        let n1 = self.norm1.forward(x)?;
        let x = x.add(&self.self_attn.self_attention(&n1, mask)?)?;
        let n2 = self.norm2.forward(&x)?;
        let f = self.linear1.forward(&n2)?.gelu(self.gelu);
        x.add(&self.linear2.forward(&f)?)
    }
}

impl<E: Float> Forward<E> for TransformerBlock<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let mask = if self.self_attn.causal {
            AttentionMask::causal()
        } else {
            AttentionMask::none()
        };
        self.forward_masked(x, &mask)
    }
}
