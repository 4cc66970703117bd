//! Fused scaled dot-product attention, forward and backward, tiled over
//! query and key blocks with an online softmax: the T×S score matrix of a
//! head is never written whole, only one block of it at a time.

use ndarray::s;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::dispatched;
use crate::tensor::Tensor;

/// Query rows and key columns per block.
const BLOCK: usize = 64;

/// Options of [`Tensor::attention`].
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams<'a, E: Float> {
    /// Multiplies q·kᵀ; PyTorch's default is 1/√D.
    pub scale: f64,
    /// Query i attends to keys 0..=i only (PyTorch's `is_causal`, aligned
    /// top-left).
    pub causal: bool,
    /// Added to the scaled scores: `[Bm, Hm, T, S]` with Bm 1 or B and Hm 1
    /// or H (broadcast over the others); −∞ blocks a pair.
    pub mask: Option<&'a Tensor<E>>,
}

/// Sizes of one attention call.
#[derive(Clone, Copy)]
struct Dims4 {
    b: usize,
    h: usize,
    t: usize,
    s: usize,
    d: usize,
    dv: usize,
    mb: usize,
    mh: usize,
}

/// The batch and head counts (1 or B, 1 or H) of a mask that must
/// broadcast to `[B, H, T, S]`; (1, 1) without one.
fn mask_dims<E: Float>(
    op: &'static str,
    mask: Option<&Tensor<E>>,
    [b, h, t, s]: [usize; 4],
) -> Result<(usize, usize)> {
    let Some(m) = mask else {
        return Ok((1, 1));
    };
    let ms = m.shape();
    let ok = ms.len() == 4
        && (ms[0] == 1 || ms[0] == b)
        && (ms[1] == 1 || ms[1] == h)
        && ms[2] == t
        && ms[3] == s;
    if !ok {
        return Err(Error::shape(
            op,
            format!(
                "mask must be [1 or B, 1 or H, T, S] = [1 or {b}, 1 or {h}, {t}, {s}], got {ms:?}"
            ),
        ));
    }
    Ok((ms[0], ms[1]))
}

fn check<E: Float>(
    op: &'static str,
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    p: &AttentionParams<'_, E>,
) -> Result<Dims4> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.len() != 4
        || ks.len() != 4
        || vs.len() != 4
        || qs[..2] != ks[..2]
        || ks[..3] != vs[..3]
        || qs[3] != ks[3]
    {
        return Err(Error::shape(
            op,
            format!(
                "takes q [B, H, T, D], k [B, H, S, D] and v [B, H, S, Dv], got {qs:?}, {ks:?}, {vs:?}"
            ),
        ));
    }
    let (b, h, t, s) = (qs[0], qs[1], qs[2], ks[2]);
    let (mb, mh) = mask_dims(op, p.mask, [b, h, t, s])?;
    Ok(Dims4 {
        b,
        h,
        t,
        s,
        d: qs[3],
        dv: vs[3],
        mb,
        mh,
    })
}

/// The [T, D] matrix of head (b, h) of a [B, H, T, D] tensor, copied
/// into a row-major buffer.
fn head<E: Float>(x: &ndarray::ArrayViewD<'_, E>, b: usize, h: usize) -> Vec<E> {
    x.slice(s![b, h, .., ..]).iter().copied().collect()
}

/// `y += a·x` over equal-length slices (vectorises).
#[inline(always)]
fn axpy<E: Float>(y: &mut [E], a: E, x: &[E]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Σ x in 16 interleaved partial sums (so the loop vectorises; a single
/// running sum is a chain of dependent adds).
#[inline(always)]
fn sum16<E: Float>(x: &[E]) -> E {
    let mut acc = [E::ZERO; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut t = chunks.remainder().iter().fold(E::ZERO, |a, &v| a + v);
    for a in acc {
        t += a;
    }
    t
}

/// max x (NaN wins), in 16 interleaved partial maxima.
#[inline(always)]
fn max16<E: Float>(x: &[E]) -> E {
    let mut acc = [E::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max_nan(v);
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .fold(E::NEG_INFINITY, |a, &v| a.max_nan(v));
    acc.iter().fold(m, |a, &v| a.max_nan(v))
}

/// `out[j·rows + i] = x[i·cols + j]`: a [rows, cols] block transposed.
#[inline(always)]
fn transpose_into<E: Float>(x: &[E], rows: usize, cols: usize, out: &mut [E]) {
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = x[i * cols + j];
        }
    }
}

/// Per-head sizes and options.
#[derive(Clone, Copy)]
struct Head<'a, E: Float> {
    t: usize,
    s: usize,
    d: usize,
    dv: usize,
    scale: E,
    causal: bool,
    /// [t, s] for this head.
    mask: Option<&'a [E]>,
}

impl<'a, E: Float> Head<'a, E> {
    /// Head (b, h) of a call: its sizes, options and slice of the mask.
    fn of(d: Dims4, p: &AttentionParams<'_, E>, mask: Option<&'a [E]>, b: usize, h: usize) -> Self {
        Head {
            t: d.t,
            s: d.s,
            d: d.d,
            dv: d.dv,
            scale: E::from_f64(p.scale),
            causal: p.causal,
            mask: mask.map(|m| {
                let at = ((b % d.mb) * d.mh + (h % d.mh)) * d.t * d.s;
                &m[at..at + d.t * d.s]
            }),
        }
    }
}

/// Scores of the block (queries i0.., keys j0..), scaled and masked, into
/// `sb` ([br, bc] row-major): S = Q·Kᵀ from the transposed keys `kt`
/// ([d, s]), one vectorised row update per (query, feature).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores<E: Float>(
    hd: &Head<'_, E>,
    q: &[E],
    kt: &[E],
    i0: usize,
    br: usize,
    j0: usize,
    bc: usize,
    sb: &mut [E],
) {
    for r in 0..br {
        let row = &mut sb[r * bc..(r + 1) * bc];
        let qr = &q[(i0 + r) * hd.d..(i0 + r + 1) * hd.d];
        if bc == BLOCK {
            // A fixed-size accumulator the compiler keeps in registers
            // across the whole sum over features.
            let mut acc = [E::ZERO; BLOCK];
            for (c, &qv) in qr.iter().enumerate() {
                let kr: &[E; BLOCK] = kt[c * hd.s + j0..c * hd.s + j0 + BLOCK]
                    .try_into()
                    .expect("BLOCK elements");
                for (a, &kv) in acc.iter_mut().zip(kr) {
                    *a += qv * kv;
                }
            }
            row.copy_from_slice(&acc);
        } else {
            row.fill(E::ZERO);
            for (c, &qv) in qr.iter().enumerate() {
                axpy(row, qv, &kt[c * hd.s + j0..c * hd.s + j0 + bc]);
            }
        }
        for v in row.iter_mut() {
            *v *= hd.scale;
        }
        if let Some(m) = hd.mask {
            for (v, &mv) in row.iter_mut().zip(&m[(i0 + r) * hd.s + j0..]) {
                *v += mv;
            }
        }
        if hd.causal {
            // Keys after query i0 + r.
            let from = (i0 + r + 1).saturating_sub(j0).min(bc);
            row[from..].fill(E::NEG_INFINITY);
        }
    }
}

/// One head forward: `out` [t, dv] and `lse` [t].
#[inline(always)]
fn forward_head<E: Float>(
    hd: &Head<'_, E>,
    q: &[E],
    k: &[E],
    v: &[E],
    out: &mut [E],
    lse: &mut [E],
) {
    let mut kt = vec![E::ZERO; hd.d * hd.s];
    transpose_into(k, hd.s, hd.d, &mut kt);
    let mut sb = vec![E::ZERO; BLOCK * BLOCK];
    let mut mx = [E::NEG_INFINITY; BLOCK];
    let mut sum = [E::ZERO; BLOCK];
    out.fill(E::ZERO);
    for i0 in (0..hd.t).step_by(BLOCK) {
        let br = BLOCK.min(hd.t - i0);
        mx[..br].fill(E::NEG_INFINITY);
        sum[..br].fill(E::ZERO);
        for j0 in (0..hd.s).step_by(BLOCK) {
            if hd.causal && j0 > i0 + br - 1 {
                break;
            }
            let bc = BLOCK.min(hd.s - j0);
            scores(hd, q, &kt, i0, br, j0, bc, &mut sb);
            for r in 0..br {
                let row = &mut sb[r * bc..(r + 1) * bc];
                let new = mx[r].max_nan(max16(row));
                // All blocked so far: keep every term at 0.
                let shift = if new == E::NEG_INFINITY { E::ZERO } else { new };
                let alpha = (mx[r] - shift).exp();
                for x in row.iter_mut() {
                    *x = (*x - shift).exp();
                }
                let t = sum16(row);
                sum[r] = sum[r] * alpha + t;
                mx[r] = new;
                let acc = &mut out[(i0 + r) * hd.dv..(i0 + r + 1) * hd.dv];
                if alpha != E::ONE {
                    for a in acc.iter_mut() {
                        *a *= alpha;
                    }
                }
                for (c, &pv) in row.iter().enumerate() {
                    axpy(acc, pv, &v[(j0 + c) * hd.dv..(j0 + c + 1) * hd.dv]);
                }
            }
        }
        for r in 0..br {
            let inv = E::ONE / sum[r];
            for a in out[(i0 + r) * hd.dv..(i0 + r + 1) * hd.dv].iter_mut() {
                *a *= inv;
            }
            lse[i0 + r] = mx[r] + sum[r].ln();
        }
    }
}

/// One head backward into `dq` [t, d], `dk` [s, d], `dv` [s, dv] (zeroed
/// here), given the output `o`, its gradient `g` and `lse`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_head<E: Float>(
    hd: &Head<'_, E>,
    q: &[E],
    k: &[E],
    v: &[E],
    o: &[E],
    g: &[E],
    lse: &[E],
    dq: &mut [E],
    dk: &mut [E],
    dv: &mut [E],
) {
    let mut kt = vec![E::ZERO; hd.d * hd.s];
    transpose_into(k, hd.s, hd.d, &mut kt);
    let mut vt = vec![E::ZERO; hd.dv * hd.s];
    transpose_into(v, hd.s, hd.dv, &mut vt);
    let dsum: Vec<E> = (0..hd.t)
        .map(|i| {
            let (gr, or) = (
                &g[i * hd.dv..(i + 1) * hd.dv],
                &o[i * hd.dv..(i + 1) * hd.dv],
            );
            gr.iter().zip(or).fold(E::ZERO, |a, (&x, &y)| a + x * y)
        })
        .collect();
    dq.fill(E::ZERO);
    dk.fill(E::ZERO);
    dv.fill(E::ZERO);
    let mut pb = vec![E::ZERO; BLOCK * BLOCK];
    let mut ds = [E::ZERO; BLOCK];
    for i0 in (0..hd.t).step_by(BLOCK) {
        let br = BLOCK.min(hd.t - i0);
        for j0 in (0..hd.s).step_by(BLOCK) {
            if hd.causal && j0 > i0 + br - 1 {
                break;
            }
            let bc = BLOCK.min(hd.s - j0);
            scores(hd, q, &kt, i0, br, j0, bc, &mut pb);
            for r in 0..br {
                let i = i0 + r;
                let lr = lse[i];
                let prow = &mut pb[r * bc..(r + 1) * bc];
                for x in prow.iter_mut() {
                    *x = (*x - lr).exp();
                }
                let gr = &g[i * hd.dv..(i + 1) * hd.dv];
                // dv[j] += p[i, j]·g[i]
                for (c, &pv) in prow.iter().enumerate() {
                    axpy(&mut dv[(j0 + c) * hd.dv..(j0 + c + 1) * hd.dv], pv, gr);
                }
                // dP row = g[i]·Vᵀ, then dS = P ∘ (dP − rowsum)·scale.
                let dsr = &mut ds[..bc];
                dsr.fill(E::ZERO);
                for (c, &gv) in gr.iter().enumerate() {
                    axpy(dsr, gv, &vt[c * hd.s + j0..c * hd.s + j0 + bc]);
                }
                for (x, &pv) in dsr.iter_mut().zip(prow.iter()) {
                    *x = pv * (*x - dsum[i]) * hd.scale;
                }
                let qr = &q[i * hd.d..(i + 1) * hd.d];
                let dqr = &mut dq[i * hd.d..(i + 1) * hd.d];
                for (c, &sv) in dsr.iter().enumerate() {
                    let j = j0 + c;
                    axpy(dqr, sv, &k[j * hd.d..(j + 1) * hd.d]);
                    axpy(&mut dk[j * hd.d..(j + 1) * hd.d], sv, qr);
                }
            }
        }
    }
}

dispatched!(
    /// [`forward_head`] in the widest SIMD copy.
    fn forward_dispatch => forward_head(
        hd: &Head<'_, E>, q: &[E], k: &[E], v: &[E], out: &mut [E], lse: &mut [E]
    )
);

dispatched!(
    /// [`backward_head`] in the widest SIMD copy.
    fn backward_dispatch => backward_head(
        hd: &Head<'_, E>, q: &[E], k: &[E], v: &[E], o: &[E], g: &[E], lse: &[E],
        dq: &mut [E], dk: &mut [E], dv: &mut [E]
    )
);

mod packed;

/// Writes a per-head [rows, cols] block into a [B, rows, H, cols]-ordered
/// buffer (the layout of `x.permute([0, 2, 1, 3])` made contiguous).
fn scatter_bthd<E: Float>(
    out: &mut [E],
    blk: &[E],
    d: Dims4,
    b: usize,
    h: usize,
    rows: usize,
    cols: usize,
) {
    for r in 0..rows {
        let at = ((b * rows + r) * d.h + h) * cols;
        out[at..at + cols].copy_from_slice(&blk[r * cols..(r + 1) * cols]);
    }
}

/// A [B, rows, H, cols] buffer seen as [B, H, rows, cols].
fn bhtd_view<E: Float>(buf: Vec<E>, d: Dims4, rows: usize, cols: usize) -> Result<Tensor<E>> {
    Tensor::from_vec(buf, [d.b, rows, d.h, cols])?.permute(&[0, 2, 1, 3])
}

impl<E: Float> Tensor<E> {
    /// Scaled dot-product attention of queries `self` `[B, H, T, D]` over
    /// keys `k` `[B, H, S, D]` and values `v` `[B, H, S, Dv]`:
    /// softmax(q·kᵀ·scale + mask)·v, row-wise softmax over the keys.
    /// Returns the output `[B, H, T, Dv]` (stored as `[B, T, H, Dv]`, so
    /// that `permute([0, 2, 1, 3])` of it is contiguous) and the log-sum-exp
    /// of each score row `[B, H, T]`, which the backward pass needs.
    ///
    /// One head at a time in parallel; within a head, blocks of 64 queries
    /// against blocks of 64 keys with a running maximum and sum (an online
    /// softmax), so memory beyond the inputs and output is a few 64×64
    /// blocks per thread. With `causal`, key blocks wholly after a query
    /// block are skipped. A query whose keys are all blocked gets NaN, as
    /// in `torch.nn.MultiheadAttention`.
    ///
    /// PyTorch: `torch.nn.functional.scaled_dot_product_attention(q, k, v,
    /// attn_mask, is_causal=..., scale=...)` with a float mask.
    ///
    /// # Errors
    /// When the shapes are not as above or the mask does not broadcast.
    ///
    /// ```
    /// use tapir_tensor::{AttentionParams, Tensor};
    /// let q = Tensor::<f64>::from_vec(vec![1.0, 0.0], [1, 1, 2, 1])?;
    /// let v = Tensor::<f64>::from_vec(vec![1.0, 3.0], [1, 1, 2, 1])?;
    /// let p = AttentionParams { scale: 1.0, causal: true, mask: None };
    /// let (out, _) = q.attention(&q, &v, p)?;
    /// // Query 0 sees key 0 only; query 1 sees both with equal scores (0).
    /// assert_eq!(out.to_vec(), [1.0, 2.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn attention(
        &self,
        k: &Tensor<E>,
        v: &Tensor<E>,
        p: AttentionParams<'_, E>,
    ) -> Result<(Tensor<E>, Tensor<E>)> {
        let d = check("attention", self, k, v, &p)?;
        let (qn, kn, vn) = (self.nd(), k.nd(), v.nd());
        let mask = p.mask.map(|m| m.contiguous());
        let mask_s = mask.as_ref().map(|m| m.as_slice().expect("contiguous"));
        let heads: Vec<(Vec<E>, Vec<E>)> = (0..d.b * d.h)
            .into_par_iter()
            .map(|bh| {
                let (b, h) = (bh / d.h, bh % d.h);
                let (q2, k2, v2) = (head(&qn, b, h), head(&kn, b, h), head(&vn, b, h));
                let hd = Head::of(d, &p, mask_s, b, h);
                let mut out = vec![E::ZERO; d.t * d.dv];
                let mut lse = vec![E::ZERO; d.t];
                forward_dispatch(&hd, &q2, &k2, &v2, &mut out, &mut lse);
                (out, lse)
            })
            .collect();
        let mut out = vec![E::ZERO; d.b * d.h * d.t * d.dv];
        let mut lse = Vec::with_capacity(d.b * d.h * d.t);
        for (bh, (o, l)) in heads.iter().enumerate() {
            scatter_bthd(&mut out, o, d, bh / d.h, bh % d.h, d.t, d.dv);
            lse.extend_from_slice(l);
        }
        Ok((
            bhtd_view(out, d, d.t, d.dv)?,
            Tensor::from_vec(lse, [d.b, d.h, d.t])?,
        ))
    }

    /// The backward pass of [`Tensor::attention`] (q = `self`), given its
    /// output `out`, log-sum-exps `lse` and the output gradient `g`
    /// `[B, H, T, Dv]`: with P = exp(q·kᵀ·scale + mask − lse) recomputed
    /// block by block, dv = Pᵀ·g, dP = g·vᵀ, dS = P ∘ (dP − rowsum(g ∘ out)),
    /// dq = dS·k·scale, dk = dSᵀ·q·scale. Returns `[dq, dk, dv]` (stored
    /// like the forward output), each only where `needs` asks.
    ///
    /// # Errors
    /// When the shapes do not fit the forward pass.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward(
        &self,
        k: &Tensor<E>,
        v: &Tensor<E>,
        out: &Tensor<E>,
        lse: &Tensor<E>,
        g: &Tensor<E>,
        p: AttentionParams<'_, E>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor<E>>; 3]> {
        let op = "attention_backward";
        let d = check(op, self, k, v, &p)?;
        let want_out = [d.b, d.h, d.t, d.dv];
        if out.shape() != want_out || g.shape() != want_out || lse.shape() != [d.b, d.h, d.t] {
            return Err(Error::shape(
                op,
                format!(
                    "output {:?}, gradient {:?} and lse {:?} do not fit q {:?} and v {:?}",
                    out.shape(),
                    g.shape(),
                    lse.shape(),
                    self.shape(),
                    v.shape()
                ),
            ));
        }
        let (qn, kn, vn, on, gn) = (self.nd(), k.nd(), v.nd(), out.nd(), g.nd());
        let lse = lse.contiguous();
        let lse_s = lse.as_slice().expect("contiguous");
        let mask = p.mask.map(|m| m.contiguous());
        let mask_s = mask.as_ref().map(|m| m.as_slice().expect("contiguous"));
        type Grads3<E> = (Vec<E>, Vec<E>, Vec<E>);
        type Heads<E> = Vec<Grads3<E>>;
        let heads: Heads<E> = (0..d.b * d.h)
            .into_par_iter()
            .map(|bh| {
                let (b, h) = (bh / d.h, bh % d.h);
                let (q2, k2, v2) = (head(&qn, b, h), head(&kn, b, h), head(&vn, b, h));
                let (o2, g2) = (head(&on, b, h), head(&gn, b, h));
                let hd = Head::of(d, &p, mask_s, b, h);
                let l = &lse_s[bh * d.t..(bh + 1) * d.t];
                let mut dq = vec![E::ZERO; d.t * d.d];
                let mut dk = vec![E::ZERO; d.s * d.d];
                let mut dv = vec![E::ZERO; d.s * d.dv];
                backward_dispatch(&hd, &q2, &k2, &v2, &o2, &g2, l, &mut dq, &mut dk, &mut dv);
                (dq, dk, dv)
            })
            .collect();
        let gather =
            |pick: fn(&Grads3<E>) -> &Vec<E>, rows: usize, cols: usize| -> Result<Tensor<E>> {
                let mut buf = vec![E::ZERO; d.b * d.h * rows * cols];
                for (bh, hd) in heads.iter().enumerate() {
                    scatter_bthd(&mut buf, pick(hd), d, bh / d.h, bh % d.h, rows, cols);
                }
                bhtd_view(buf, d, rows, cols)
            };
        Ok([
            needs[0].then(|| gather(|x| &x.0, d.t, d.d)).transpose()?,
            needs[1].then(|| gather(|x| &x.1, d.s, d.d)).transpose()?,
            needs[2].then(|| gather(|x| &x.2, d.s, d.dv)).transpose()?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    /// softmax(q·kᵀ·scale + mask)·v written out plainly, and its gradients
    /// by the textbook formulas, for one head.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f64],
        k: &[f64],
        v: &[f64],
        g: &[f64],
        t: usize,
        s: usize,
        dd: usize,
        scale: f64,
        causal: bool,
        mask: Option<&[f64]>,
    ) -> [Vec<f64>; 4] {
        let mut p = vec![0.0; t * s];
        for i in 0..t {
            let mut row: Vec<f64> = (0..s)
                .map(|j| {
                    let mut x = (0..dd).map(|c| q[i * dd + c] * k[j * dd + c]).sum::<f64>() * scale;
                    if let Some(m) = mask {
                        x += m[i * s + j];
                    }
                    if causal && j > i {
                        x = f64::NEG_INFINITY;
                    }
                    x
                })
                .collect();
            let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|x| (x - mx).exp()).sum();
            for (j, x) in row.iter_mut().enumerate() {
                p[i * s + j] = (*x - mx).exp() / z;
            }
        }
        let mm = |a: &[f64], b: &[f64], n: usize, kk: usize, m: usize, ta: bool, tb: bool| {
            let mut c = vec![0.0; n * m];
            for i in 0..n {
                for j in 0..m {
                    c[i * m + j] = (0..kk)
                        .map(|l| {
                            let x = if ta { a[l * n + i] } else { a[i * kk + l] };
                            let y = if tb { b[j * kk + l] } else { b[l * m + j] };
                            x * y
                        })
                        .sum();
                }
            }
            c
        };
        let out = mm(&p, v, t, s, dd, false, false);
        let dv = mm(&p, g, s, t, dd, true, false);
        let dp = mm(g, v, t, dd, s, false, true);
        let mut ds = vec![0.0; t * s];
        for i in 0..t {
            let r: f64 = (0..s).map(|j| dp[i * s + j] * p[i * s + j]).sum();
            for j in 0..s {
                ds[i * s + j] = p[i * s + j] * (dp[i * s + j] - r) * scale;
            }
        }
        let dq = mm(&ds, k, t, s, dd, false, false);
        let dk = mm(&ds, q, s, t, dd, true, false);
        [out, dq, dk, dv]
    }

    #[test]
    fn matches_the_plain_formulas_across_blocks() {
        // T and S over one block (64) so the online softmax and the causal
        // block skipping are exercised; a head-broadcast mask.
        let mut rng = Rng::seed(9);
        let (b, h, t, s, dd) = (2, 2, 70, 70, 3);
        let q = Tensor::<f64>::randn([b, h, t, dd], &mut rng);
        let k = Tensor::<f64>::randn([b, h, s, dd], &mut rng);
        let v = Tensor::<f64>::randn([b, h, s, dd], &mut rng);
        let g = Tensor::<f64>::randn([b, h, t, dd], &mut rng);
        let mask = Tensor::<f64>::randn([b, 1, t, s], &mut rng);
        for (causal, m) in [(true, None), (false, Some(&mask)), (true, Some(&mask))] {
            let p = AttentionParams {
                scale: 0.7,
                causal,
                mask: m,
            };
            let (out, lse) = q.attention(&k, &v, p).unwrap();
            let [dq, dk, dv] = q
                .attention_backward(&k, &v, &out, &lse, &g, p, [true; 3])
                .unwrap();
            let all = |x: &Tensor<f64>| x.to_vec();
            let (qv, kv, vv, gv) = (all(&q), all(&k), all(&v), all(&g));
            let got = [
                all(&out),
                all(&dq.unwrap()),
                all(&dk.unwrap()),
                all(&dv.unwrap()),
            ];
            let mv = mask.to_vec();
            for bh in 0..b * h {
                let sl = |x: &[f64], n: usize| x[bh * n * dd..(bh + 1) * n * dd].to_vec();
                let mb = (bh / h) * t * s;
                let want = naive(
                    &sl(&qv, t),
                    &sl(&kv, s),
                    &sl(&vv, s),
                    &sl(&gv, t),
                    t,
                    s,
                    dd,
                    0.7,
                    causal,
                    m.map(|_| &mv[mb..mb + t * s]),
                );
                for (w, gt) in want.iter().zip(&got) {
                    let gs = &gt[bh * w.len()..(bh + 1) * w.len()];
                    for (a, b) in gs.iter().zip(w) {
                        assert!((a - b).abs() < 1e-10, "{a} vs {b} (causal {causal})");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let q = Tensor::<f32>::zeros([1, 2, 3, 4]);
        let k = Tensor::<f32>::zeros([1, 2, 5, 3]);
        let p = AttentionParams {
            scale: 1.0,
            causal: false,
            mask: None,
        };
        let e = q.attention(&k, &k, p).unwrap_err().to_string();
        assert!(e.contains("attention") && e.contains("[1, 2, 5, 3]"), "{e}");
        let k = Tensor::<f32>::zeros([1, 2, 5, 4]);
        let m = Tensor::<f32>::zeros([1, 1, 3, 4]);
        let p = AttentionParams {
            mask: Some(&m),
            ..p
        };
        let e = q.attention(&k, &k, p).unwrap_err().to_string();
        assert!(e.contains("mask") && e.contains("[1, 1, 3, 4]"), "{e}");
    }
}
