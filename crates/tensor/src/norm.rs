//! Layer normalisation and RMS normalisation over the trailing axes, each
//! direction in one pass over the rows (the composite of means, squares
//! and broadcasts made about a dozen passes and temporaries).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::{dispatched, PAR_THRESHOLD};
use crate::tensor::Tensor;

/// Which normalisation: LayerNorm subtracts the mean, RMSNorm does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// (x − mean)/√(var + eps), biased variance (`torch.nn.LayerNorm`).
    Layer,
    /// x/√(mean(x²) + eps) (`torch.nn.RMSNorm`).
    Rms,
    /// (x − mean)/√(var + eps) per channel (axis 1) over the batch and
    /// every other axis, biased variance (`torch.nn.BatchNorm*d` in
    /// training); see [`Tensor::batch_norm`].
    Batch,
    /// (x − mean)/√(var + eps) per (sample, group of channels)
    /// (`torch.nn.GroupNorm`); see [`Tensor::group_norm`].
    Group,
}

/// The row statistics a normalisation saves for its backward pass, one
/// value per normalised row (the shape of the leading axes).
#[derive(Clone, Debug)]
pub struct NormStats<E: Float> {
    /// The normalisation these belong to.
    pub kind: NormKind,
    /// The row means (zeros for [`NormKind::Rms`]).
    pub mean: Tensor<E>,
    /// 1/√(var + eps), or 1/√(mean(x²) + eps).
    pub rstd: Tensor<E>,
}

impl<E: Float> NormStats<E> {
    /// From (mean, 1/std) pairs, one per normalised group.
    fn from_pairs(kind: NormKind, pairs: Vec<(E, E)>) -> Result<Self> {
        let n = pairs.len();
        let (mean, rstd): (Vec<E>, Vec<E>) = pairs.into_iter().unzip();
        Ok(NormStats {
            kind,
            mean: Tensor::from_vec(mean, [n])?,
            rstd: Tensor::from_vec(rstd, [n])?,
        })
    }
}

/// `f(i)` for i in 0..n, on rayon when `par` (small inputs stay on the
/// calling thread: a fork-join costs more than their math).
fn map_indices<T: Send>(par: bool, n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if par {
        (0..n).into_par_iter().map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// `f(i, chunk_i)` over `size`-element chunks of `out`, on rayon when `par`.
fn for_chunks<E: Send>(
    par: bool,
    out: &mut [E],
    size: usize,
    f: impl Fn(usize, &mut [E]) + Sync + Send,
) {
    if size == 0 {
        return;
    }
    if par {
        out.par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Rows of `n` elements handled by one parallel task.
fn rows_per_task(n: usize) -> usize {
    (PAR_THRESHOLD / 4 / n.max(1)).max(1)
}

/// Σ f(x) over `row` in f64, in 8 interleaved partial sums (so that the
/// loop vectorises instead of waiting on one f64 add per element), added
/// in a fixed tree at the end: the same result on every run.
#[inline(always)]
fn sum_f64<E: Float>(row: &[E], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v.to_f64());
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|v| f(v.to_f64())).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Mean and 1/√(var + eps) of one row, accumulated in f64.
#[inline(always)]
fn row_stats<E: Float>(row: &[E], kind: NormKind, eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = match kind {
        NormKind::Layer | NormKind::Batch | NormKind::Group => sum_f64(row, |v| v) / n,
        NormKind::Rms => 0.0,
    };
    let var = sum_f64(row, |v| {
        let d = v - mean;
        d * d
    }) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm / RMSNorm forward of the rows of `x` (length `n` each) into
/// `y`, with each row's mean and 1/std; `w` and `b` the optional affine
/// parameters (one loop per combination, no per-element option test).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn norm_rows<E: Float>(
    y: &mut [E],
    x: &[E],
    mean: &mut [E],
    rstd: &mut [E],
    n: usize,
    kind: NormKind,
    eps: f64,
    w: Option<&[E]>,
    b: Option<&[E]>,
) {
    for (((yr, xr), m), r) in y
        .chunks_mut(n)
        .zip(x.chunks(n))
        .zip(mean.iter_mut())
        .zip(rstd.iter_mut())
    {
        let (mu, rs) = row_stats(xr, kind, eps);
        let (mu, rs) = (E::from_f64(mu), E::from_f64(rs));
        match (w, b) {
            (Some(w), Some(b)) => {
                for (((o, &v), &wj), &bj) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                    *o = (v - mu) * rs * wj + bj;
                }
            }
            (Some(w), None) => {
                for ((o, &v), &wj) in yr.iter_mut().zip(xr).zip(w) {
                    *o = (v - mu) * rs * wj;
                }
            }
            (None, Some(b)) => {
                for ((o, &v), &bj) in yr.iter_mut().zip(xr).zip(b) {
                    *o = (v - mu) * rs + bj;
                }
            }
            (None, None) => {
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - mu) * rs;
                }
            }
        }
        *m = mu;
        *r = rs;
    }
}

dispatched!(
    /// [`norm_rows`] in the widest SIMD copy.
    fn norm_rows_dispatch => norm_rows(
        y: &mut [E], x: &[E], mean: &mut [E], rstd: &mut [E], n: usize, kind: NormKind,
        eps: f64, w: Option<&[E]>, b: Option<&[E]>
    )
);

impl<E: Float> Tensor<E> {
    fn norm_check(
        &self,
        op: &'static str,
        ndim: usize,
        params: &[(&str, Option<&Tensor<E>>)],
    ) -> Result<(usize, usize)> {
        if ndim == 0 || ndim > self.ndim() {
            return Err(Error::arg(
                op,
                format!(
                    "normalises over {ndim} trailing axes of a tensor of shape {:?}",
                    self.shape()
                ),
            ));
        }
        let tail = &self.shape()[self.ndim() - ndim..];
        for (name, p) in params {
            if let Some(p) = p {
                if p.shape() != tail {
                    return Err(Error::shape(
                        op,
                        format!(
                            "{name} has shape {:?}, expected the normalised shape {tail:?} of input {:?}",
                            p.shape(),
                            self.shape()
                        ),
                    ));
                }
            }
        }
        let n: usize = tail.iter().product();
        Ok((self.len() / n.max(1), n))
    }

    /// Normalises over the last `ndim` axes and applies the affine part:
    /// y = (x − mean)·rstd·w + b for [`NormKind::Layer`] (rstd =
    /// 1/√(var + eps), biased variance), y = x·rstd·w + b with rstd =
    /// 1/√(mean(x²) + eps) for [`NormKind::Rms`]. `weight` and `bias`, when
    /// given, have the normalised shape. Statistics are accumulated in
    /// f64. Returns y and the row statistics for
    /// [`Tensor::norm_backward`].
    ///
    /// PyTorch: `torch.nn.functional.layer_norm(x, shape, w, b, eps)` and
    /// `torch.nn.functional.rms_norm(x, shape, w, eps)`.
    ///
    /// # Errors
    /// When `ndim` is 0 or above the rank, or a weight or bias does not
    /// have the normalised shape.
    ///
    /// ```
    /// use tapir_tensor::{NormKind, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 4])?;
    /// let (y, stats) = x.normalize(NormKind::Layer, 1, None, None, 0.0)?;
    /// assert_eq!(stats.mean.to_vec(), [2.5]);
    /// assert!((y.to_vec()[0] + 1.341_640_786).abs() < 1e-8);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn normalize(
        &self,
        kind: NormKind,
        ndim: usize,
        weight: Option<&Tensor<E>>,
        bias: Option<&Tensor<E>>,
        eps: f64,
    ) -> Result<(Tensor<E>, NormStats<E>)> {
        let op = match kind {
            NormKind::Layer => "layer_norm",
            NormKind::Rms => "rms_norm",
            NormKind::Batch | NormKind::Group => {
                return Err(Error::arg(
                    "normalize",
                    "batch and group statistics are Tensor::batch_norm's and group_norm's"
                        .to_string(),
                ))
            }
        };
        let (rows, n) = self.norm_check(op, ndim, &[("weight", weight), ("bias", bias)])?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let w = weight.map(|w| w.to_vec());
        let b = bias.map(|b| b.to_vec());
        let mut y = vec![E::ZERO; xs.len()];
        let mut mean = vec![E::ZERO; rows];
        let mut rstd = vec![E::ZERO; rows];
        let per = rows_per_task(n);
        type Rows<'a, E> = ((&'a mut [E], &'a [E]), (&'a mut [E], &'a mut [E]));
        let work = |((yc, xc), (mc, rc)): Rows<'_, E>| {
            norm_rows_dispatch(yc, xc, mc, rc, n, kind, eps, w.as_deref(), b.as_deref());
        };
        if n > 0 {
            if xs.len() >= PAR_THRESHOLD {
                y.par_chunks_mut(per * n)
                    .zip(xs.par_chunks(per * n))
                    .zip(mean.par_chunks_mut(per).zip(rstd.par_chunks_mut(per)))
                    .for_each(work);
            } else {
                work(((&mut y, xs), (&mut mean, &mut rstd)));
            }
        }
        let lead = &self.shape()[..self.ndim() - ndim];
        Ok((
            Tensor::from_vec(y, self.shape())?,
            NormStats {
                kind,
                mean: Tensor::from_vec(mean, lead)?,
                rstd: Tensor::from_vec(rstd, lead)?,
            },
        ))
    }

    /// The backward pass of [`Tensor::normalize`] (x = `self`, g the
    /// output's gradient): with x̂ = (x − mean)·rstd and ĝ = g·w,
    /// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) for LayerNorm and
    /// dx = rstd·(ĝ − x̂·mean(ĝ·x̂)) for RMSNorm (means over each row),
    /// dw = Σ_rows g·x̂, db = Σ_rows g (pairwise sums in a fixed order).
    /// Returns `[dx, dw, db]`, each computed only where `needs` says.
    ///
    /// # Errors
    /// When the shapes do not fit those of the forward pass.
    pub fn norm_backward(
        &self,
        g: &Tensor<E>,
        stats: &NormStats<E>,
        weight: Option<&Tensor<E>>,
        ndim: usize,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor<E>>; 3]> {
        let op = "norm_backward";
        let (rows, n) = self.norm_check(op, ndim, &[("weight", weight)])?;
        if g.shape() != self.shape() || stats.rstd.len() != rows || stats.mean.len() != rows {
            return Err(Error::shape(
                op,
                format!(
                    "gradient {:?} and {} row statistics do not fit input {:?}",
                    g.shape(),
                    stats.rstd.len(),
                    self.shape()
                ),
            ));
        }
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let gt = g.contiguous();
        let gs = gt.as_slice().expect("contiguous");
        let mean = stats.mean.to_vec();
        let rstd = stats.rstd.to_vec();
        let w = weight.map(|w| w.to_vec());
        let center = stats.kind == NormKind::Layer;
        let tail = &self.shape()[self.ndim() - ndim..];
        // Both buffers are written whole below (every row of every chunk),
        // so they start uninitialised: a zero fill was 2–3% of a
        // transformer step.
        let uninit = || {
            let mut v: Vec<MaybeUninit<E>> = Vec::with_capacity(xs.len());
            // SAFETY: MaybeUninit needs no initialisation.
            unsafe { v.set_len(xs.len()) };
            v
        };
        let mut dx = needs[0].then(uninit);
        // g·x̂ per element, summed over the rows afterwards.
        let mut gx = needs[1].then(uninit);
        let per = rows_per_task(n);
        let inv_n = 1.0 / n.max(1) as f64;
        let row =
            |r: usize, dxr: Option<&mut [MaybeUninit<E>]>, gxr: Option<&mut [MaybeUninit<E>]>| {
                let (xr, gr) = (&xs[r * n..(r + 1) * n], &gs[r * n..(r + 1) * n]);
                let (mu, rs) = (mean[r], rstd[r]);
                if let Some(gxr) = gxr {
                    for ((o, &v), &gv) in gxr.iter_mut().zip(xr).zip(gr) {
                        o.write(gv * ((v - mu) * rs));
                    }
                }
                if let Some(dxr) = dxr {
                    // ĝ = g·w into dx's own row, then the two row means in f64
                    // over 8 interleaved partial sums (so the loops vectorise),
                    // then dx in place.
                    match &w {
                        Some(w) => {
                            for ((o, &gv), &wv) in dxr.iter_mut().zip(gr).zip(w) {
                                o.write(gv * wv);
                            }
                        }
                        None => {
                            for (o, &gv) in dxr.iter_mut().zip(gr) {
                                o.write(gv);
                            }
                        }
                    }
                    // SAFETY: every element of the row was just written (the
                    // row, g's row and w all have n elements), and
                    // MaybeUninit<E> has E's layout.
                    let dxr = unsafe { &mut *(dxr as *mut [MaybeUninit<E>] as *mut [E]) };
                    let (mut a1, mut a2) = ([0.0f64; 8], [0.0f64; 8]);
                    let mut cg = dxr.chunks_exact(8);
                    let mut cx = xr.chunks_exact(8);
                    for (g8, x8) in (&mut cg).zip(&mut cx) {
                        for l in 0..8 {
                            let gj = g8[l].to_f64();
                            a1[l] += gj * ((x8[l] - mu) * rs).to_f64();
                            a2[l] += gj;
                        }
                    }
                    for (&gv, &v) in cg.remainder().iter().zip(cx.remainder()) {
                        let gj = gv.to_f64();
                        a1[0] += gj * ((v - mu) * rs).to_f64();
                        a2[0] += gj;
                    }
                    let (s1, s2): (f64, f64) = (a1.iter().sum(), a2.iter().sum());
                    let c1 = E::from_f64(s1 * inv_n);
                    let c2 = if center {
                        E::from_f64(s2 * inv_n)
                    } else {
                        E::ZERO
                    };
                    for (o, &v) in dxr.iter_mut().zip(xr) {
                        *o = rs * (*o - c2 - ((v - mu) * rs) * c1);
                    }
                }
            };
        let run =
            |r0: usize, dxc: Option<&mut [MaybeUninit<E>]>, gxc: Option<&mut [MaybeUninit<E>]>| {
                let count = dxc
                    .as_ref()
                    .map(|c| c.len())
                    .or(gxc.as_ref().map(|c| c.len()))
                    .unwrap_or(0)
                    / n.max(1);
                let mut dxi = dxc.map(|c| c.chunks_mut(n));
                let mut gxi = gxc.map(|c| c.chunks_mut(n));
                for k in 0..count {
                    row(
                        r0 + k,
                        dxi.as_mut().and_then(|i| i.next()),
                        gxi.as_mut().and_then(|i| i.next()),
                    );
                }
            };
        if n > 0 && (needs[0] || needs[1]) {
            let chunk = per * n;
            if xs.len() >= PAR_THRESHOLD {
                match (dx.as_mut(), gx.as_mut()) {
                    (Some(d), Some(q)) => d
                        .par_chunks_mut(chunk)
                        .zip(q.par_chunks_mut(chunk))
                        .enumerate()
                        .for_each(|(i, (d, q))| run(i * per, Some(d), Some(q))),
                    (Some(d), None) => d
                        .par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(i, d)| run(i * per, Some(d), None)),
                    (None, Some(q)) => q
                        .par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(i, q)| run(i * per, None, Some(q))),
                    (None, None) => {}
                }
            } else {
                run(0, dx.as_deref_mut(), gx.as_deref_mut());
            }
        }
        let column_sums = |data: &[E]| -> Result<Tensor<E>> {
            let mut out = vec![E::ZERO; n];
            crate::sum::sum_rows(data, rows, n, &mut out);
            Tensor::from_vec(out, tail)
        };
        // With n = 0 there are no elements; otherwise every row was written
        // (the loops above cover all `rows` rows of each buffer present).
        let init = |v: Vec<MaybeUninit<E>>| {
            let mut v = std::mem::ManuallyDrop::new(v);
            // SAFETY: all elements are initialised (see above), MaybeUninit<E>
            // has E's layout, and the allocation is handed over whole.
            unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut E, v.len(), v.capacity()) }
        };
        let dw = gx.map(|q| column_sums(&init(q))).transpose()?;
        let db = if needs[2] {
            Some(column_sums(gs)?)
        } else {
            None
        };
        let dx = dx
            .map(|d| Tensor::from_vec(init(d), self.shape()))
            .transpose()?;
        Ok([dx, dw, db])
    }
}

impl<E: Float> Tensor<E> {
    /// `[N, C, ..]` as (N, C, S) with S the product of the rest.
    fn channels(
        &self,
        op: &'static str,
        params: &[(&str, Option<&Tensor<E>>)],
    ) -> Result<(usize, usize, usize)> {
        if self.ndim() < 2 {
            return Err(Error::shape(
                op,
                format!("takes [N, C, ..], got {:?}", self.shape()),
            ));
        }
        let (n, c) = (self.shape()[0], self.shape()[1]);
        for (name, p) in params {
            if let Some(p) = p {
                if p.shape() != [c] {
                    return Err(Error::shape(
                        op,
                        format!(
                            "{name} has shape {:?}, expected [{c}] for input {:?}",
                            p.shape(),
                            self.shape()
                        ),
                    ));
                }
            }
        }
        Ok((n, c, self.shape()[2..].iter().product()))
    }

    /// Batch normalisation with batch statistics: per channel c (axis 1)
    /// of `self` `[N, C, ..]`, mean and biased variance over every other
    /// axis (in f64), y = (x − mean)·rstd·w + b with rstd = 1/√(var + eps).
    /// Returns y and the per-channel statistics (`[C]`, kind
    /// [`NormKind::Batch`]) for [`Tensor::batch_norm_backward`]; PyTorch's
    /// running averages are the caller's (tapir-nn's `BatchNorm`).
    ///
    /// PyTorch: `torch.nn.functional.batch_norm(x, None, None, w, b,
    /// training=True, eps=eps)`.
    ///
    /// # Errors
    /// Fewer than 2 axes, fewer than 2 values per channel, or a weight or
    /// bias not of shape `[C]`.
    pub fn batch_norm(
        &self,
        weight: Option<&Tensor<E>>,
        bias: Option<&Tensor<E>>,
        eps: f64,
    ) -> Result<(Tensor<E>, NormStats<E>)> {
        let op = "batch_norm";
        let (n, c, sp) = self.channels(op, &[("weight", weight), ("bias", bias)])?;
        let m = n * sp;
        if m < 2 {
            return Err(Error::arg(
                op,
                format!(
                    "needs more than one value per channel, got input {:?}",
                    self.shape()
                ),
            ));
        }
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let par = xs.len() >= PAR_THRESHOLD;
        let stats: Vec<(E, E)> = map_indices(par, c, |ch| {
            let rows = || (0..n).map(move |i| &xs[(i * c + ch) * sp..(i * c + ch + 1) * sp]);
            let mean = rows().flatten().map(|v| v.to_f64()).sum::<f64>() / m as f64;
            let var = rows()
                .flatten()
                .map(|v| {
                    let d = v.to_f64() - mean;
                    d * d
                })
                .sum::<f64>()
                / m as f64;
            (E::from_f64(mean), E::from_f64(1.0 / (var + eps).sqrt()))
        });
        let (w, b) = (weight.map(|t| t.to_vec()), bias.map(|t| t.to_vec()));
        let mut y = vec![E::ZERO; xs.len()];
        let block = c * sp;
        for_chunks(par, &mut y, block, |i, yr| {
            let xr = &xs[i * block..(i + 1) * block];
            for ch in 0..c {
                let (mu, rs) = stats[ch];
                let wc = w.as_ref().map_or(E::ONE, |w| w[ch]);
                let bc = b.as_ref().map_or(E::ZERO, |b| b[ch]);
                for (o, &v) in yr[ch * sp..(ch + 1) * sp]
                    .iter_mut()
                    .zip(&xr[ch * sp..(ch + 1) * sp])
                {
                    *o = (v - mu) * rs * wc + bc;
                }
            }
        });
        Ok((
            Tensor::from_vec(y, self.shape())?,
            NormStats::from_pairs(NormKind::Batch, stats)?,
        ))
    }

    /// The backward pass of [`Tensor::batch_norm`] (x = `self`): with
    /// x̂ = (x − mean)·rstd and sums over each channel's M values,
    /// dw = Σ g·x̂, db = Σ g, dx = rstd·(g·w − w·db/M − x̂·w·dw/M).
    /// Returns `[dx, dw, db]` where `needs` asks.
    ///
    /// # Errors
    /// Shapes that do not fit the forward pass.
    pub fn batch_norm_backward(
        &self,
        g: &Tensor<E>,
        stats: &NormStats<E>,
        weight: Option<&Tensor<E>>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor<E>>; 3]> {
        let op = "batch_norm_backward";
        let (n, c, sp) = self.channels(op, &[("weight", weight)])?;
        if g.shape() != self.shape() || stats.mean.shape() != [c] || stats.rstd.shape() != [c] {
            return Err(Error::shape(
                op,
                format!(
                    "gradient {:?} and statistics {:?} do not fit input {:?}",
                    g.shape(),
                    stats.mean.shape(),
                    self.shape()
                ),
            ));
        }
        let m = (n * sp) as f64;
        let x = self.contiguous();
        let gt = g.contiguous();
        let (xs, gs) = (
            x.as_slice().expect("contiguous"),
            gt.as_slice().expect("contiguous"),
        );
        let (mean, rstd) = (stats.mean.to_vec(), stats.rstd.to_vec());
        let w = weight.map(|t| t.to_vec());
        // Per channel: Σ g·x̂ and Σ g, in f64, in a fixed order.
        let par = xs.len() >= PAR_THRESHOLD;
        let sums: Vec<(f64, f64)> = map_indices(par, c, |ch| {
            let (mu, rs) = (mean[ch], rstd[ch]);
            let (mut a, mut b) = (0.0f64, 0.0f64);
            for i in 0..n {
                let at = (i * c + ch) * sp;
                for (&v, &gv) in xs[at..at + sp].iter().zip(&gs[at..at + sp]) {
                    let gd = gv.to_f64();
                    a += gd * ((v - mu) * rs).to_f64();
                    b += gd;
                }
            }
            (a, b)
        });
        let dx = if needs[0] {
            let mut dx = vec![E::ZERO; xs.len()];
            for_chunks(par, &mut dx, c * sp, |i, dr| {
                for ch in 0..c {
                    let (mu, rs) = (mean[ch], rstd[ch]);
                    let wc = w.as_ref().map_or(E::ONE, |w| w[ch]);
                    let (a, b) = sums[ch];
                    let wf = wc.to_f64();
                    let c1 = E::from_f64(wf * a / m);
                    let c2 = E::from_f64(wf * b / m);
                    let at = (i * c + ch) * sp;
                    for ((o, &v), &gv) in dr[ch * sp..(ch + 1) * sp]
                        .iter_mut()
                        .zip(&xs[at..at + sp])
                        .zip(&gs[at..at + sp])
                    {
                        *o = rs * (gv * wc - c2 - ((v - mu) * rs) * c1);
                    }
                }
            });
            Some(Tensor::from_vec(dx, self.shape())?)
        } else {
            None
        };
        let col = |k: usize| -> Result<Tensor<E>> {
            Tensor::from_vec(
                sums.iter()
                    .map(|s| E::from_f64(if k == 0 { s.0 } else { s.1 }))
                    .collect(),
                [c],
            )
        };
        Ok([
            dx,
            needs[1].then(|| col(0)).transpose()?,
            needs[2].then(|| col(1)).transpose()?,
        ])
    }
}

impl<E: Float> Tensor<E> {
    /// Group normalisation: the channels of each sample of `self`
    /// `[N, C, ..]` in `groups` consecutive groups, each normalised over its
    /// channels and positions (mean and biased variance in f64), then
    /// y = x̂·w[c] + b[c] per channel. Returns y and the statistics (`[N·G]`,
    /// kind [`NormKind::Group`]) for [`Tensor::group_norm_backward`].
    ///
    /// PyTorch: `torch.nn.functional.group_norm(x, groups, w, b, eps)`.
    ///
    /// # Errors
    /// Fewer than 2 axes, `groups` 0 or not dividing C, or a weight or
    /// bias not `[C]`.
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Tensor<E>>,
        bias: Option<&Tensor<E>>,
        eps: f64,
    ) -> Result<(Tensor<E>, NormStats<E>)> {
        let op = "group_norm";
        let (n, c, sp) = self.channels(op, &[("weight", weight), ("bias", bias)])?;
        if groups == 0 || c % groups != 0 {
            return Err(Error::arg(
                op,
                format!(
                    "{groups} groups do not divide {c} channels (input {:?})",
                    self.shape()
                ),
            ));
        }
        let len = c / groups * sp;
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let (w, b) = (weight.map(|t| t.to_vec()), bias.map(|t| t.to_vec()));
        let rows = n * groups;
        let par = xs.len() >= PAR_THRESHOLD;
        let stats: Vec<(E, E)> = map_indices(par, if len > 0 { rows } else { 0 }, |r| {
            let (mu, rs) = row_stats(&xs[r * len..(r + 1) * len], NormKind::Group, eps);
            (E::from_f64(mu), E::from_f64(rs))
        });
        let stats = if len > 0 {
            stats
        } else {
            vec![(E::ZERO, E::ZERO); rows]
        };
        let mut y = vec![E::ZERO; xs.len()];
        for_chunks(par, &mut y, len, |r, yr| {
            let (mu, rs) = stats[r];
            let c0 = (r % groups) * (c / groups);
            for (j, (o, &v)) in yr.iter_mut().zip(&xs[r * len..(r + 1) * len]).enumerate() {
                let ch = c0 + j / sp;
                let t = (v - mu) * rs;
                let t = w.as_ref().map_or(t, |w| t * w[ch]);
                *o = b.as_ref().map_or(t, |b| t + b[ch]);
            }
        });
        Ok((
            Tensor::from_vec(y, self.shape())?,
            NormStats::from_pairs(NormKind::Group, stats)?,
        ))
    }

    /// The backward pass of [`Tensor::group_norm`] (x = `self`): with
    /// ĝ = g·w[c] and means over each (sample, group),
    /// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dw[c] = Σ g·x̂ and
    /// db[c] = Σ g over samples and positions (fixed order). Returns
    /// `[dx, dw, db]` where `needs` asks.
    ///
    /// # Errors
    /// Shapes that do not fit the forward pass.
    pub fn group_norm_backward(
        &self,
        g: &Tensor<E>,
        stats: &NormStats<E>,
        weight: Option<&Tensor<E>>,
        needs: [bool; 3],
    ) -> Result<[Option<Tensor<E>>; 3]> {
        let op = "group_norm_backward";
        let (n, c, sp) = self.channels(op, &[("weight", weight)])?;
        let rows = stats.rstd.len();
        if g.shape() != self.shape() || n == 0 || rows % n != 0 || c % (rows / n).max(1) != 0 {
            return Err(Error::shape(
                op,
                format!(
                    "gradient {:?} and {rows} group statistics do not fit input {:?}",
                    g.shape(),
                    self.shape()
                ),
            ));
        }
        let groups = rows / n;
        let cg = c / groups;
        let len = cg * sp;
        let x = self.contiguous();
        let gt = g.contiguous();
        let (xs, gs) = (
            x.as_slice().expect("contiguous"),
            gt.as_slice().expect("contiguous"),
        );
        let (mean, rstd) = (stats.mean.to_vec(), stats.rstd.to_vec());
        let w = weight.map(|t| t.to_vec());
        let inv = 1.0 / len.max(1) as f64;
        let par = xs.len() >= PAR_THRESHOLD;
        // Per row (sample, group): its channels' Σ g·x̂ and Σ g, and the
        // row's Σ ĝ·x̂ and Σ ĝ for dx.
        type RowSums = (Vec<(f64, f64)>, f64, f64);
        let per_row: Vec<RowSums> = map_indices(par, if len > 0 { rows } else { 0 }, |r| {
            let (xr, gr) = (&xs[r * len..(r + 1) * len], &gs[r * len..(r + 1) * len]);
            let (mu, rs) = (mean[r], rstd[r]);
            let c0 = (r % groups) * cg;
            let mut pr = vec![(0.0f64, 0.0f64); cg];
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for (j, (&v, &gv)) in xr.iter().zip(gr).enumerate() {
                let xh = ((v - mu) * rs).to_f64();
                let gd = gv.to_f64();
                pr[j / sp].0 += gd * xh;
                pr[j / sp].1 += gd;
                let wc = w.as_ref().map_or(1.0, |w| w[c0 + j / sp].to_f64());
                s1 += gd * wc * xh;
                s2 += gd * wc;
            }
            (pr, s1, s2)
        });
        let mut dx = vec![E::ZERO; if needs[0] { xs.len() } else { 0 }];
        for_chunks(par, &mut dx, len, |r, dr| {
            let (xr, gr) = (&xs[r * len..(r + 1) * len], &gs[r * len..(r + 1) * len]);
            let (mu, rs) = (mean[r], rstd[r]);
            let c0 = (r % groups) * cg;
            let (_, s1, s2) = &per_row[r];
            let (c1, c2) = (E::from_f64(s1 * inv), E::from_f64(s2 * inv));
            for (j, ((o, &v), &gv)) in dr.iter_mut().zip(xr).zip(gr).enumerate() {
                let wc = w.as_ref().map_or(E::ONE, |w| w[c0 + j / sp]);
                *o = rs * (gv * wc - c2 - ((v - mu) * rs) * c1);
            }
        });
        // Row r holds channels r·cg.. of sample r / groups: in row order
        // these are (sample, channel) in row-major order.
        let part: Vec<(f64, f64)> = if len > 0 {
            per_row.into_iter().flat_map(|(p, _, _)| p).collect()
        } else {
            vec![(0.0, 0.0); n * c]
        };
        let col = |k: usize| -> Result<Tensor<E>> {
            let v: Vec<E> = (0..c)
                .map(|ch| {
                    E::from_f64(
                        (0..n)
                            .map(|i| {
                                let p = part[i * c + ch];
                                if k == 0 {
                                    p.0
                                } else {
                                    p.1
                                }
                            })
                            .sum::<f64>(),
                    )
                })
                .collect();
            Tensor::from_vec(v, [c])
        };
        Ok([
            if needs[0] {
                Some(Tensor::from_vec(dx, self.shape())?)
            } else {
                None
            },
            needs[1].then(|| col(0)).transpose()?,
            needs[2].then(|| col(1)).transpose()?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    /// The one-pass kernels against the textbook formulas in f64.
    #[test]
    fn matches_the_formulas() {
        let mut rng = Rng::seed(4);
        let x = Tensor::<f64>::randn([5, 3, 4], &mut rng);
        let w = Tensor::<f64>::randn([3, 4], &mut rng);
        let b = Tensor::<f64>::randn([3, 4], &mut rng);
        let g = Tensor::<f64>::randn([5, 3, 4], &mut rng);
        for kind in [NormKind::Layer, NormKind::Rms] {
            let (y, st) = x.normalize(kind, 2, Some(&w), Some(&b), 1e-5).unwrap();
            let [dx, dw, db] = x
                .norm_backward(&g, &st, Some(&w), 2, [true, true, true])
                .unwrap();
            let (xv, wv, bv, gv) = (x.to_vec(), w.to_vec(), b.to_vec(), g.to_vec());
            let (yv, dxv) = (y.to_vec(), dx.unwrap().to_vec());
            let mut dwv = [0.0; 12];
            let mut dbv = [0.0; 12];
            for r in 0..5 {
                let row = &xv[r * 12..(r + 1) * 12];
                let mu = if kind == NormKind::Layer {
                    row.iter().sum::<f64>() / 12.0
                } else {
                    0.0
                };
                let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / 12.0;
                let rs = 1.0 / (var + 1e-5).sqrt();
                let xh: Vec<f64> = row.iter().map(|v| (v - mu) * rs).collect();
                let gw: Vec<f64> = (0..12).map(|j| gv[r * 12 + j] * wv[j]).collect();
                let m1 = gw.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / 12.0;
                let m2 = if kind == NormKind::Layer {
                    gw.iter().sum::<f64>() / 12.0
                } else {
                    0.0
                };
                for j in 0..12 {
                    let want_y = xh[j] * wv[j] + bv[j];
                    assert!((yv[r * 12 + j] - want_y).abs() < 1e-12);
                    let want_dx = rs * (gw[j] - m2 - xh[j] * m1);
                    assert!((dxv[r * 12 + j] - want_dx).abs() < 1e-12, "{kind:?}");
                    dwv[j] += gv[r * 12 + j] * xh[j];
                    dbv[j] += gv[r * 12 + j];
                }
            }
            for (a, b) in dw.unwrap().to_vec().iter().zip(dwv) {
                assert!((a - b).abs() < 1e-12);
            }
            for (a, b) in db.unwrap().to_vec().iter().zip(dbv) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    /// The parallel path (large inputs) gives the serial path's bits.
    #[test]
    fn parallel_rows_match_serial() {
        let mut rng = Rng::seed(5);
        let x = Tensor::<f32>::randn([600, 128], &mut rng);
        let g = Tensor::<f32>::randn([600, 128], &mut rng);
        let w = Tensor::<f32>::randn([128], &mut rng);
        let (y, st) = x
            .normalize(NormKind::Layer, 1, Some(&w), None, 1e-5)
            .unwrap();
        let [dx, dw, _] = x
            .norm_backward(&g, &st, Some(&w), 1, [true, true, false])
            .unwrap();
        // Row by row, each small enough for the serial path.
        let (dxv, yv) = (dx.unwrap().to_vec(), y.to_vec());
        for r in [0, 17, 599] {
            let xr = x.narrow(0, r, 1).unwrap();
            let gr = g.narrow(0, r, 1).unwrap();
            let (yr, sr) = xr
                .normalize(NormKind::Layer, 1, Some(&w), None, 1e-5)
                .unwrap();
            let [dxr, _, _] = xr
                .norm_backward(&gr, &sr, Some(&w), 1, [true, false, false])
                .unwrap();
            assert_eq!(yr.to_vec(), &yv[r * 128..(r + 1) * 128]);
            assert_eq!(dxr.unwrap().to_vec(), &dxv[r * 128..(r + 1) * 128]);
        }
        assert_eq!(dw.unwrap().shape(), &[128]);
    }

    /// Batch statistics against the formulas, f64, [N, C, S]: a small
    /// input (the serial path) and one past PAR_THRESHOLD (rayon).
    #[test]
    fn batch_norm_matches_the_formulas() {
        for (n, c, sp) in [(3, 2, 5), (4, 3, 3000)] {
            assert_eq!(n * c * sp >= PAR_THRESHOLD, sp == 3000);
            batch_norm_case(n, c, sp);
        }
        assert!(Tensor::<f64>::zeros([1, 3])
            .batch_norm(None, None, 1e-5)
            .is_err());
    }

    fn batch_norm_case(n: usize, c: usize, sp: usize) {
        let mut rng = Rng::seed(6);
        let x = Tensor::<f64>::randn([n, c, sp], &mut rng);
        let g = Tensor::<f64>::randn([n, c, sp], &mut rng);
        let w = Tensor::<f64>::randn([c], &mut rng);
        let b = Tensor::<f64>::randn([c], &mut rng);
        let (y, st) = x.batch_norm(Some(&w), Some(&b), 1e-5).unwrap();
        let [dx, dw, db] = x.batch_norm_backward(&g, &st, Some(&w), [true; 3]).unwrap();
        let (xv, gv, wv, bv) = (x.to_vec(), g.to_vec(), w.to_vec(), b.to_vec());
        let (yv, dxv, dwv, dbv) = (
            y.to_vec(),
            dx.unwrap().to_vec(),
            dw.unwrap().to_vec(),
            db.unwrap().to_vec(),
        );
        let m = (n * sp) as f64;
        for ch in 0..c {
            let idx: Vec<usize> = (0..n)
                .flat_map(|i| (0..sp).map(move |s| (i * c + ch) * sp + s))
                .collect();
            let mu = idx.iter().map(|&k| xv[k]).sum::<f64>() / m;
            let var = idx.iter().map(|&k| (xv[k] - mu).powi(2)).sum::<f64>() / m;
            let rs = 1.0 / (var + 1e-5).sqrt();
            let xh = |k: usize| (xv[k] - mu) * rs;
            let sdw: f64 = idx.iter().map(|&k| gv[k] * xh(k)).sum();
            let sdb: f64 = idx.iter().map(|&k| gv[k]).sum();
            assert!((dwv[ch] - sdw).abs() < 1e-9 && (dbv[ch] - sdb).abs() < 1e-9);
            for &k in &idx {
                assert!((yv[k] - (xh(k) * wv[ch] + bv[ch])).abs() < 1e-12);
                let want = rs * wv[ch] * (gv[k] - sdb / m - xh(k) * sdw / m);
                assert!((dxv[k] - want).abs() < 1e-12);
            }
        }
    }

    /// Group norm equals layer norm over each regrouped sample followed by
    /// the per-channel affine map, forward and backward.
    #[test]
    fn group_norm_matches_layer_norm_regrouped() {
        for (n, c, sp, gr) in [(2, 6, 4, 3), (4, 6, 1500, 3)] {
            assert_eq!(n * c * sp >= PAR_THRESHOLD, sp == 1500);
            group_norm_case(n, c, sp, gr);
        }
        let x = Tensor::<f64>::zeros([2, 6, 4]);
        assert!(x.group_norm(4, None, None, 1e-5).is_err());
    }

    fn group_norm_case(n: usize, c: usize, sp: usize, gr: usize) {
        let mut rng = Rng::seed(12);
        let x = Tensor::<f64>::randn([n, c, sp], &mut rng);
        let g = Tensor::<f64>::randn([n, c, sp], &mut rng);
        let w = Tensor::<f64>::randn([c], &mut rng);
        let b = Tensor::<f64>::randn([c], &mut rng);
        let (y, st) = x.group_norm(gr, Some(&w), Some(&b), 1e-5).unwrap();
        let [dx, dw, db] = x.group_norm_backward(&g, &st, Some(&w), [true; 3]).unwrap();
        // Reference: layer norm over [N·G, C/G·S] with the weights spread.
        let xr = x.reshape_usize(&[n * gr, c / gr * sp]).unwrap();
        let (xh, st2) = xr.normalize(NormKind::Layer, 1, None, None, 1e-5).unwrap();
        let (wv, bv, gv, xhv) = (w.to_vec(), b.to_vec(), g.to_vec(), xh.to_vec());
        let ch = |k: usize| (k / sp) % c;
        let yv = y.to_vec();
        for k in 0..yv.len() {
            assert!((yv[k] - (xhv[k] * wv[ch(k)] + bv[ch(k)])).abs() < 1e-12);
        }
        let gw: Vec<f64> = (0..gv.len()).map(|k| gv[k] * wv[ch(k)]).collect();
        let gw = Tensor::from_vec(gw, [n * gr, c / gr * sp]).unwrap();
        let [dxr, _, _] = xr
            .norm_backward(&gw, &st2, None, 1, [true, false, false])
            .unwrap();
        for (a, b) in dx.unwrap().to_vec().iter().zip(dxr.unwrap().to_vec()) {
            assert!((a - b).abs() < 1e-12);
        }
        let (dwv, dbv) = (dw.unwrap().to_vec(), db.unwrap().to_vec());
        for cc in 0..c {
            let ks = (0..gv.len()).filter(|&k| ch(k) == cc);
            let (sw, sb) = ks.fold((0.0, 0.0), |(a, s), k| (a + gv[k] * xhv[k], s + gv[k]));
            assert!((dwv[cc] - sw).abs() < 1e-9 && (dbv[cc] - sb).abs() < 1e-9);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = Tensor::<f32>::zeros([2, 3]);
        let e = x
            .normalize(NormKind::Layer, 1, Some(&Tensor::zeros([4])), None, 1e-5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer_norm") && e.contains("[4]") && e.contains("[2, 3]"),
            "{e}"
        );
        assert!(x.normalize(NormKind::Rms, 3, None, None, 1e-5).is_err());
    }
}
