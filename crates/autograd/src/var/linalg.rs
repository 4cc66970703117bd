//! Matrix products.

use tapir_tensor::Float;

use crate::error::Result;
use crate::op::{AttentionOp, Op, QkvAttentionOp};
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    binary!(
        /// A·B, the matrix product with NumPy semantics (`torch.matmul`,
        /// Python's `@`; `np.matmul`): 1-D·1-D is a dot product, a 1-D left
        /// (right) operand is a row (column) vector whose axis is removed
        /// afterwards, and the leading axes of operands of rank > 2 are
        /// batch axes that broadcast (`tf.linalg.matmul` takes no 1-D
        /// operands). Gradient: g·Bᵀ for A and Aᵀ·g for B, summed back over
        /// broadcast batch axes.
        ///
        /// ```
        /// use tapir_autograd::Tape;
        /// use tapir_tensor::Tensor;
        /// let tape = Tape::new();
        /// let a = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?);
        /// let b = tape.var(Tensor::<f64>::from_vec(vec![5.0, 6.0], [2, 1])?);
        /// let y = a.matmul(&b)?;
        /// assert_eq!(y.value().to_vec(), [17.0, 39.0]);
        /// let g = tape.gradient_vars(&y.sum(), &[&a, &b], &Default::default())?;
        /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [5.0, 6.0, 5.0, 6.0]); // g·Bᵀ
        /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [4.0, 6.0]); // Aᵀ·g
        /// let v = tape.constant(Tensor::from_vec(vec![1.0, 1.0], [2])?);
        /// assert_eq!(v.matmul(&v)?.value().item()?, 2.0); // a dot product, 0-d
        /// # Ok::<(), tapir_autograd::Error>(())
        /// ```
        matmul, Op::Matmul);

    /// Scaled dot-product attention, one fused primitive:
    /// softmax(q·kᵀ·scale + mask)·v for q = `self` `[B, H, T, D]`, `k`
    /// `[B, H, S, D]`, `v` `[B, H, S, Dv]`, giving `[B, H, T, Dv]`
    /// (`torch.nn.functional.scaled_dot_product_attention(q, k, v,
    /// attn_mask, is_causal=causal, scale=scale)` with a float mask).
    /// `scale` defaults to 1/√D; `mask` (`[1 or B, 1 or H, T, S]`, −∞ to
    /// block) is data, not differentiated. Tiled with an online softmax
    /// ([`Tensor::attention`](tapir_tensor::Tensor::attention)): no T×S
    /// matrix is stored for the backward pass, only the row log-sum-exps.
    /// Gradient: the standard attention backward recomputing the
    /// probabilities block by block; differentiable again (through the
    /// composite formula).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let q = tape.var(Tensor::<f64>::ones([1, 1, 3, 2]));
    /// let v = tape.var(Tensor::from_vec(vec![1.0, 0.0, 3.0, 0.0, 5.0, 0.0], [1, 1, 3, 2])?);
    /// let y = q.scaled_dot_product_attention(&q, &v, None, true, None)?;
    /// // Equal scores: query i averages values 0..=i.
    /// assert_eq!(y.value().to_vec(), [1.0, 0.0, 2.0, 0.0, 3.0, 0.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the shapes are not as above or the Vars are on different tapes.
    pub fn scaled_dot_product_attention(
        &self,
        k: &Self,
        v: &Self,
        mask: Option<&tapir_tensor::Tensor<E>>,
        causal: bool,
        scale: Option<f64>,
    ) -> Result<Self> {
        let d = self.shape().last().copied().unwrap_or(1);
        let scale = scale.unwrap_or(1.0 / (d.max(1) as f64).sqrt());
        let p = tapir_tensor::AttentionParams {
            scale,
            causal,
            mask,
        };
        let (out, lse) = self.value.attention(&k.value, &v.value, p)?;
        let op = Op::Attention(Box::new(AttentionOp {
            scale,
            causal,
            mask: mask.cloned(),
            lse,
        }));
        Tape::record("attention", op, &[self, k, v], out)
    }

    /// Multi-head self-attention straight from a fused projection: `self`
    /// is `[B, T, 3E]`, x·W_qkvᵀ with W_qkv the stacked `[3E, E]` weight
    /// (queries in columns 0..E, keys E..2E, values 2E..3E; head h of each
    /// in columns h·D.. of its third, D = E / `heads`), and the result is
    /// `[B, T, E]`, head h's softmax(q·kᵀ·scale + mask)·v in columns h·D..:
    /// exactly what splitting, reshaping to `[B, H, T, D]`,
    /// [`Var::scaled_dot_product_attention`] and permuting back give, but
    /// read in place, without the copies and with the gradient written
    /// into one `[B, T, 3E]` buffer
    /// ([`Tensor::qkv_attention`](tapir_tensor::Tensor::qkv_attention)).
    /// `scale` defaults to 1/√D; `mask` is `[1 or B, 1 or H, T, T]`,
    /// additive, not differentiated. Keeps each head's T×T scores whole
    /// while it runs: meant for sequences up to a few hundred positions.
    /// Differentiable again (through the composite formula).
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// // One batch, two positions, E = 1: each row is (q, k, v).
    /// let qkv = tape.var(Tensor::<f64>::from_vec(vec![1.0, 0.0, 1.0, 1.0, 0.0, 3.0], [1, 2, 3])?);
    /// let y = qkv.qkv_attention(1, None, true, None)?;
    /// assert_eq!(y.value().to_vec(), [1.0, 2.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When `self` is not `[B, T, 3E]`, `heads` does not divide E or the
    /// mask does not broadcast.
    pub fn qkv_attention(
        &self,
        heads: usize,
        mask: Option<&tapir_tensor::Tensor<E>>,
        causal: bool,
        scale: Option<f64>,
    ) -> Result<Self> {
        let e = self.shape().last().copied().unwrap_or(0) / 3;
        let d = e.checked_div(heads).unwrap_or(1);
        let scale = scale.unwrap_or(1.0 / (d.max(1) as f64).sqrt());
        let p = tapir_tensor::AttentionParams {
            scale,
            causal,
            mask,
        };
        let (out, lse) = self.value.qkv_attention(heads, p)?;
        let op = Op::QkvAttention(Box::new(QkvAttentionOp {
            heads,
            scale,
            causal,
            mask: mask.cloned(),
            lse,
        }));
        Tape::record("qkv_attention", op, &[self], out)
    }
}
