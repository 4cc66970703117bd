//! Self-attention read straight from the fused q/k/v projection.
//!
//! A transformer's self-attention projects x once with the stacked weight
//! `[3E, E]` and attends with the three thirds of the result. Done with
//! general ops, that meant splitting the `[B, T, 3E]` projection into q, k
//! and v, permuting each to `[B, H, T, D]` (three copies), the scores, the
//! mask, the softmax, a product, a permute back (a fourth copy), and on
//! the way back a gradient scattered into a zeroed `[B, T, 3E]` once per
//! third. Here head h of batch b reads its queries, keys and values in
//! place (columns h·D.., E + h·D.., 2E + h·D.. of the batch's rows, strided
//! GEMM operands), keeps its T×T scores in one per-task buffer, writes its
//! output into columns h·D.. of `[B, T, E]` (the out-projection's input
//! layout) and its gradients into the same columns of one `[B, T, 3E]`
//! buffer. Batches run in parallel; within one, heads run one after
//! another on the same scratch, so that everything a head touches stays in
//! the core's cache for sequences up to a few hundred positions. Like the
//! tiled kernel, only the row log-sum-exps are kept for the backward pass,
//! which recomputes the probabilities (one extra T×T×D product).

use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

use super::AttentionParams;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::dispatched;
use crate::linalg::gemm_into;
use crate::tensor::Tensor;

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    e: usize,
    h: usize,
    d: usize,
    /// Batches and heads of the mask (1 or b, 1 or h).
    mb: usize,
    mh: usize,
}

impl Dims {
    /// The [t, t] mask block of head (b, h).
    fn mask<'a, E>(&self, m: Option<&'a [E]>, b: usize, h: usize) -> Option<&'a [E]> {
        let n = self.t * self.t;
        m.map(|m| {
            let at = ((b % self.mb) * self.mh + (h % self.mh)) * n;
            &m[at..at + n]
        })
    }
}

fn check<E: Float>(
    op: &'static str,
    qkv: &Tensor<E>,
    heads: usize,
    p: &AttentionParams<'_, E>,
) -> Result<Dims> {
    let s = qkv.shape();
    if s.len() != 3 || s[2] % 3 != 0 {
        return Err(Error::shape(
            op,
            format!("takes the fused projection [B, T, 3E], got {s:?}"),
        ));
    }
    let (b, t, e) = (s[0], s[1], s[2] / 3);
    if heads == 0 || e % heads != 0 {
        return Err(Error::InvalidArgument {
            op,
            msg: format!("{heads} heads do not divide the embedding size {e} of {s:?}"),
        });
    }
    let h = heads;
    let (mb, mh) = super::mask_dims(op, p.mask, [b, h, t, t])?;
    Ok(Dims {
        b,
        t,
        e,
        h,
        d: e / h,
        mb,
        mh,
    })
}

/// A [rows, cols] matrix starting at `s[0]` with row stride `rs` and
/// column stride `cs`.
fn view<E>(s: &[E], rows: usize, cols: usize, rs: usize, cs: usize) -> ArrayView2<'_, E> {
    ArrayView2::from_shape((rows, cols).strides((rs, cs)), s).expect("view inside its buffer")
}

fn view_mut<E>(s: &mut [E], rows: usize, cols: usize, rs: usize) -> ArrayViewMut2<'_, E> {
    ArrayViewMut2::from_shape((rows, cols).strides((rs, 1)), s).expect("view inside its buffer")
}

/// Scores into probabilities, row by row in place (`s` is [t, t]): scaled,
/// masked, keys after the query blocked when causal, softmax; `lse[i]`
/// gets the row's log-sum-exp. A row with every key blocked gives NaN, as
/// the tiled kernel and PyTorch do.
#[inline(always)]
fn softmax_scores<E: Float>(
    s: &mut [E],
    t: usize,
    scale: E,
    mask: Option<&[E]>,
    causal: bool,
    lse: &mut [E],
) {
    for (i, row) in s.chunks_exact_mut(t).enumerate() {
        let live = if causal { i + 1 } else { t };
        let (row, dead) = row.split_at_mut(live);
        for v in row.iter_mut() {
            *v *= scale;
        }
        if let Some(m) = mask {
            for (v, &mv) in row.iter_mut().zip(&m[i * t..]) {
                *v += mv;
            }
        }
        let mut mx = [E::NEG_INFINITY; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for (m, &v) in mx.iter_mut().zip(c) {
                *m = m.max_nan(v);
            }
        }
        let m = chunks
            .remainder()
            .iter()
            .chain(mx.iter())
            .fold(E::NEG_INFINITY, |a, &v| a.max_nan(v));
        let shift = if m.is_finite() { m } else { E::ZERO };
        let mut acc = [E::ZERO; 16];
        let mut chunks = row.chunks_exact_mut(16);
        for c in &mut chunks {
            for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
                *v = (*v - shift).exp();
                *a += *v;
            }
        }
        let mut total = E::ZERO;
        for v in chunks.into_remainder() {
            *v = (*v - shift).exp();
            total += *v;
        }
        for a in acc {
            total += a;
        }
        let inv = E::ONE / total;
        for v in row.iter_mut() {
            *v *= inv;
        }
        dead.fill(E::ZERO);
        lse[i] = shift + total.ln();
    }
}

/// The probabilities again from the scores in `s` and the saved `lse`:
/// p = exp(s·scale + mask − lse), 0 after the query when causal.
#[inline(always)]
fn probs_from_lse<E: Float>(
    s: &mut [E],
    t: usize,
    scale: E,
    mask: Option<&[E]>,
    causal: bool,
    lse: &[E],
) {
    for (i, row) in s.chunks_exact_mut(t).enumerate() {
        let live = if causal { i + 1 } else { t };
        let (row, dead) = row.split_at_mut(live);
        let l = lse[i];
        match mask {
            Some(m) => {
                for (v, &mv) in row.iter_mut().zip(&m[i * t..]) {
                    *v = (*v * scale + mv - l).exp();
                }
            }
            None => {
                for v in row.iter_mut() {
                    *v = (*v * scale - l).exp();
                }
            }
        }
        dead.fill(E::ZERO);
    }
}

/// dS = P ∘ (dP − rowsum(g ∘ out))·scale in place of dP (both [t, t]);
/// `dsum[i]` is row i's Σ g·out.
#[inline(always)]
fn score_grads<E: Float>(dp: &mut [E], p: &[E], t: usize, dsum: &[E], scale: E) {
    for ((dr, pr), &r) in dp.chunks_exact_mut(t).zip(p.chunks_exact(t)).zip(dsum) {
        for (x, &pv) in dr.iter_mut().zip(pr) {
            *x = pv * (*x - r) * scale;
        }
    }
}

dispatched!(
    /// [`softmax_scores`] in the widest SIMD copy.
    fn softmax_dispatch => softmax_scores(
        s: &mut [E], t: usize, scale: E, mask: Option<&[E]>, causal: bool, lse: &mut [E]
    )
);

dispatched!(
    /// [`probs_from_lse`] in the widest SIMD copy.
    fn probs_dispatch => probs_from_lse(
        s: &mut [E], t: usize, scale: E, mask: Option<&[E]>, causal: bool, lse: &[E]
    )
);

dispatched!(
    /// [`score_grads`] in the widest SIMD copy.
    fn score_grads_dispatch => score_grads(dp: &mut [E], p: &[E], t: usize, dsum: &[E], scale: E)
);

impl<E: Float> Tensor<E> {
    /// Multi-head self-attention from the fused projection `self`
    /// `[B, T, 3E]`: queries are columns `0..E`, keys `E..2E`, values
    /// `2E..3E`, and head h of each is its columns `h·D..(h+1)·D`,
    /// D = E/`heads` — the layout of `x·Wᵀ` with PyTorch's stacked
    /// `in_proj_weight`. Returns the heads' outputs side by side, `[B, T,
    /// E]` (head h in columns h·D..), which is what the out-projection
    /// takes, and the log-sum-exp of every score row, `[B, H, T]`, for the
    /// backward pass. The mask (`[1 or B, 1 or H, T, T]`, additive) and the
    /// causal flag are as in [`Tensor::attention`]; so is the result, up to
    /// rounding: per head, softmax(q·kᵀ·scale + mask)·v.
    ///
    /// Batches run in parallel and heads in turn within a batch, each
    /// head's T×T scores in one scratch buffer (module docs): the kernel
    /// for short sequences, where the tiled [`Tensor::attention`] spends
    /// its time in row updates.
    ///
    /// # Errors
    /// When `self` is not `[B, T, 3E]`, `heads` does not divide E, or the
    /// mask does not broadcast.
    ///
    /// ```
    /// use tapir_tensor::{AttentionParams, Tensor};
    /// // One batch, two positions, E = 1: rows are (q, k, v).
    /// let qkv = Tensor::<f64>::from_vec(vec![1.0, 0.0, 1.0, 1.0, 0.0, 3.0], [1, 2, 3])?;
    /// let p = AttentionParams { scale: 1.0, causal: true, mask: None };
    /// let (out, _) = qkv.qkv_attention(1, p)?;
    /// // Position 0 sees key 0 only; position 1 sees both with equal scores.
    /// assert_eq!(out.to_vec(), [1.0, 2.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn qkv_attention(
        &self,
        heads: usize,
        p: AttentionParams<'_, E>,
    ) -> Result<(Tensor<E>, Tensor<E>)> {
        let d = check("qkv_attention", self, heads, &p)?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let mask = p.mask.map(|m| m.contiguous());
        let ms = mask.as_ref().map(|m| m.as_slice().expect("contiguous"));
        let scale = E::from_f64(p.scale);
        let (t, e, hd) = (d.t, d.e, d.d);
        let mut out = vec![E::ZERO; d.b * t * e];
        let mut lse = vec![E::ZERO; d.b * d.h * t];
        if !out.is_empty() && t > 0 {
            let one = |(b, (ob, lb)): (usize, (&mut [E], &mut [E]))| {
                let xb = &xs[b * t * 3 * e..(b + 1) * t * 3 * e];
                let mut s = vec![E::ZERO; t * t];
                for h in 0..d.h {
                    let q = view(&xb[h * hd..], t, hd, 3 * e, 1);
                    let kt = view(&xb[e + h * hd..], hd, t, 1, 3 * e);
                    let v = view(&xb[2 * e + h * hd..], t, hd, 3 * e, 1);
                    gemm_into(&q, &kt, &mut view_mut(&mut s, t, t, t), false, false);
                    let l = &mut lb[h * t..(h + 1) * t];
                    softmax_dispatch(&mut s, t, scale, d.mask(ms, b, h), p.causal, l);
                    let pv = view(&s, t, t, t, 1);
                    gemm_into(
                        &pv,
                        &v,
                        &mut view_mut(&mut ob[h * hd..], t, hd, e),
                        false,
                        false,
                    );
                }
            };
            out.par_chunks_mut(t * e)
                .zip(lse.par_chunks_mut(d.h * t))
                .enumerate()
                .for_each(one);
        }
        Ok((
            Tensor::from_vec(out, [d.b, t, e])?,
            Tensor::from_vec(lse, [d.b, d.h, t])?,
        ))
    }

    /// The backward pass of [`Tensor::qkv_attention`] (`self` the fused
    /// projection), given its output `out` `[B, T, E]`, log-sum-exps `lse`
    /// and the output gradient `g` `[B, T, E]`: per head, with P recomputed
    /// from `lse`, dv = Pᵀ·g, dP = g·vᵀ, dS = P ∘ (dP − rowsum(g ∘ out))·scale,
    /// dq = dS·k, dk = dSᵀ·q. Returns the gradient of the projection,
    /// `[B, T, 3E]`, each head's three parts in its columns.
    ///
    /// # Errors
    /// When the shapes do not fit the forward pass.
    pub fn qkv_attention_backward(
        &self,
        out: &Tensor<E>,
        lse: &Tensor<E>,
        g: &Tensor<E>,
        heads: usize,
        p: AttentionParams<'_, E>,
    ) -> Result<Tensor<E>> {
        let op = "qkv_attention_backward";
        let d = check(op, self, heads, &p)?;
        let (t, e, hd) = (d.t, d.e, d.d);
        let want = [d.b, t, e];
        if out.shape() != want || g.shape() != want || lse.shape() != [d.b, d.h, t] {
            return Err(Error::shape(
                op,
                format!(
                    "output {:?}, gradient {:?} and lse {:?} do not fit the projection {:?} with {heads} heads",
                    out.shape(),
                    g.shape(),
                    lse.shape(),
                    self.shape()
                ),
            ));
        }
        let (x, o, gc, l) = (
            self.contiguous(),
            out.contiguous(),
            g.contiguous(),
            lse.contiguous(),
        );
        let (xs, os, gs, ls) = (
            x.as_slice().expect("contiguous"),
            o.as_slice().expect("contiguous"),
            gc.as_slice().expect("contiguous"),
            l.as_slice().expect("contiguous"),
        );
        let mask = p.mask.map(|m| m.contiguous());
        let ms = mask.as_ref().map(|m| m.as_slice().expect("contiguous"));
        let scale = E::from_f64(p.scale);
        let mut dx = vec![E::ZERO; d.b * t * 3 * e];
        if !dx.is_empty() && t > 0 {
            let one = |(b, db): (usize, &mut [E])| {
                let xb = &xs[b * t * 3 * e..(b + 1) * t * 3 * e];
                let ob = &os[b * t * e..(b + 1) * t * e];
                let gb = &gs[b * t * e..(b + 1) * t * e];
                let mut pm = vec![E::ZERO; t * t];
                let mut dp = vec![E::ZERO; t * t];
                let mut dsum = vec![E::ZERO; t];
                for h in 0..d.h {
                    let q = view(&xb[h * hd..], t, hd, 3 * e, 1);
                    let k = view(&xb[e + h * hd..], t, hd, 3 * e, 1);
                    let v = view(&xb[2 * e + h * hd..], t, hd, 3 * e, 1);
                    let gh = view(&gb[h * hd..], t, hd, e, 1);
                    gemm_into(&q, &k.t(), &mut view_mut(&mut pm, t, t, t), false, false);
                    let lh = &ls[(b * d.h + h) * t..(b * d.h + h + 1) * t];
                    probs_dispatch(&mut pm, t, scale, d.mask(ms, b, h), p.causal, lh);
                    let pv = view(&pm, t, t, t, 1);
                    let mut dv = view_mut(&mut db[2 * e + h * hd..], t, hd, 3 * e);
                    gemm_into(&pv.t(), &gh, &mut dv, false, false);
                    gemm_into(&gh, &v.t(), &mut view_mut(&mut dp, t, t, t), false, false);
                    for (i, r) in dsum.iter_mut().enumerate() {
                        let (gr, or) = (
                            &gb[i * e + h * hd..i * e + (h + 1) * hd],
                            &ob[i * e + h * hd..i * e + (h + 1) * hd],
                        );
                        *r = gr.iter().zip(or).fold(E::ZERO, |a, (&x, &y)| a + x * y);
                    }
                    score_grads_dispatch(&mut dp, &pm, t, &dsum, scale);
                    let ds = view(&dp, t, t, t, 1);
                    let mut dq = view_mut(&mut db[h * hd..], t, hd, 3 * e);
                    gemm_into(&ds, &k, &mut dq, false, false);
                    let mut dk = view_mut(&mut db[e + h * hd..], t, hd, 3 * e);
                    gemm_into(&ds.t(), &q, &mut dk, false, false);
                }
            };
            dx.par_chunks_mut(t * 3 * e).enumerate().for_each(one);
        }
        Tensor::from_vec(dx, [d.b, t, 3 * e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    /// q, k, v as [B, H, T, D] from the fused projection.
    fn split_heads(x: &Tensor<f64>, h: usize) -> [Tensor<f64>; 3] {
        let (b, t, e) = (x.shape()[0], x.shape()[1], x.shape()[2] / 3);
        [0, 1, 2].map(|i| {
            x.narrow(2, i * e, e)
                .unwrap()
                .reshape_usize(&[b, t, h, e / h])
                .unwrap()
                .permute(&[0, 2, 1, 3])
                .unwrap()
        })
    }

    /// [B, H, T, D] back to [B, T, H·D].
    fn merge_heads(x: &Tensor<f64>) -> Tensor<f64> {
        let s = x.shape().to_vec();
        x.permute(&[0, 2, 1, 3])
            .unwrap()
            .reshape_usize(&[s[0], s[2], s[1] * s[3]])
            .unwrap()
    }

    fn close(a: &Tensor<f64>, b: &Tensor<f64>, what: &str) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        for (i, (x, y)) in a.to_vec().iter().zip(b.to_vec()).enumerate() {
            assert!((x - y).abs() < 1e-11, "{what}[{i}]: {x} vs {y}");
        }
    }

    #[test]
    fn matches_the_tiled_kernel() {
        // T = 70 crosses the tiled kernel's 64 block and the 16-lane
        // chunks here; T = 1 is a single key; masks per batch and head and
        // broadcast over both.
        let mut rng = Rng::seed(3);
        for &(b, t, e, h) in &[(2, 70, 12, 3), (3, 1, 4, 2), (1, 17, 8, 1)] {
            let x = Tensor::<f64>::randn([b, t, 3 * e], &mut rng);
            let g = Tensor::<f64>::randn([b, t, e], &mut rng);
            let full = Tensor::<f64>::randn([b, h, t, t], &mut rng);
            let shared = Tensor::<f64>::randn([1, 1, t, t], &mut rng);
            let masks = [None, Some(&full), Some(&shared)];
            for (causal, m) in [false, true]
                .into_iter()
                .flat_map(|c| masks.map(|m| (c, m)))
            {
                let p = AttentionParams {
                    scale: 0.6,
                    causal,
                    mask: m,
                };
                let (out, lse) = x.qkv_attention(h, p).unwrap();
                let [q, k, v] = split_heads(&x, h);
                let (want, want_lse) = q.attention(&k, &v, p).unwrap();
                close(&out, &merge_heads(&want), "out");
                close(&lse, &want_lse, "lse");
                let dx = x.qkv_attention_backward(&out, &lse, &g, h, p).unwrap();
                let g4 = g
                    .reshape_usize(&[b, t, h, e / h])
                    .unwrap()
                    .permute(&[0, 2, 1, 3])
                    .unwrap();
                let [dq, dk, dv] = q
                    .attention_backward(&k, &v, &want, &want_lse, &g4, p, [true; 3])
                    .unwrap();
                let parts = [dq, dk, dv].map(|t| merge_heads(&t.unwrap()));
                let want_dx = Tensor::concat(&[&parts[0], &parts[1], &parts[2]], 2).unwrap();
                close(&dx, &want_dx, "dx");
            }
        }
    }

    #[test]
    fn a_fully_blocked_row_is_nan_and_others_are_not() {
        let x = Tensor::<f64>::ones([1, 2, 3]);
        let m = Tensor::<f64>::from_vec(
            vec![f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0, 0.0],
            [1, 1, 2, 2],
        )
        .unwrap();
        let p = AttentionParams {
            scale: 1.0,
            causal: false,
            mask: Some(&m),
        };
        let out = x.qkv_attention(1, p).unwrap().0.to_vec();
        assert!(out[0].is_nan());
        assert_eq!(out[1], 1.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let p = AttentionParams {
            scale: 1.0,
            causal: false,
            mask: None,
        };
        let x = Tensor::<f32>::zeros([2, 3, 7]);
        let e = x.qkv_attention(1, p).unwrap_err().to_string();
        assert!(
            e.contains("qkv_attention") && e.contains("[2, 3, 7]"),
            "{e}"
        );
        let x = Tensor::<f32>::zeros([2, 3, 12]);
        let e = x.qkv_attention(3, p).unwrap_err().to_string();
        assert!(e.contains("3 heads") && e.contains("4"), "{e}");
        let m = Tensor::<f32>::zeros([1, 1, 3, 4]);
        let e = x
            .qkv_attention(
                2,
                AttentionParams {
                    mask: Some(&m),
                    ..p
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask") && e.contains("[1, 1, 3, 4]"), "{e}");
        let (out, lse) = x.qkv_attention(2, p).unwrap();
        let bad = Tensor::<f32>::zeros([2, 3, 5]);
        let e = x
            .qkv_attention_backward(&out, &lse, &bad, 2, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("qkv_attention_backward") && e.contains("[2, 3, 5]"),
            "{e}"
        );
    }
}
