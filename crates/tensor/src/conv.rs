//! Convolution (im2col + GEMM), its input and weight gradients, and 2-D
//! pooling with the indices its backward needs.
//!
//! Layouts follow PyTorch: inputs (N, C, H, W), weights (O, C/groups, KH, KW).

use std::mem::MaybeUninit;

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::{dispatched, PAR_THRESHOLD};
use crate::linalg::gemm_into;
use crate::reduce::IndexArray;
use crate::shape::check_alloc;
use crate::tensor::Tensor;

/// Hyperparameters of a 2-D convolution (`torch.nn.functional.conv2d`);
/// `Default` is stride 1, no padding, dilation 1, one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between windows, (height, width).
    pub stride: [usize; 2],
    /// Zeros added on each side, (height, width).
    pub padding: [usize; 2],
    /// Spacing between kernel taps, (height, width).
    pub dilation: [usize; 2],
    /// Number of channel groups; input and output channels must divide by it.
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// Hyperparameters of a 1-D convolution (`torch.nn.functional.conv1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dParams {
    /// Step between windows.
    pub stride: usize,
    /// Zeros added on each side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Number of channel groups.
    pub groups: usize,
}

impl Default for Conv1dParams {
    fn default() -> Self {
        Conv1dParams {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Conv1dParams {
    pub(crate) fn to_2d(self) -> Conv2dParams {
        Conv2dParams {
            stride: [1, self.stride],
            padding: [0, self.padding],
            dilation: [1, self.dilation],
            groups: self.groups,
        }
    }
}

/// Hyperparameters of 2-D pooling. [`Pool2dParams::new`] sets the stride to
/// the kernel size, PyTorch's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dParams {
    /// Window size, (height, width).
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit padding on each side (−inf for max, 0 for average); at most
    /// half the kernel, as in PyTorch.
    pub padding: [usize; 2],
}

impl Pool2dParams {
    /// A `kernel` window with stride = kernel and no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        Pool2dParams {
            kernel,
            stride: kernel,
            padding: [0, 0],
        }
    }
}

/// Resolved geometry of one convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    c: usize,
    h: usize,
    w: usize,
    pub(crate) o: usize,
    kh: usize,
    kw: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    g: usize,
    p: Conv2dParams,
}

impl Geom {
    fn cg(&self) -> usize {
        self.c / self.g
    }
    fn og(&self) -> usize {
        self.o / self.g
    }
    fn l(&self) -> usize {
        self.oh * self.ow
    }
    fn ckk(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// Checks that the input, the output and one im2col matrix can be
    /// allocated (their sizes come from shapes and parameters, which may
    /// be huge), so that the products below cannot overflow.
    fn check_buffers<E>(&self, op: &'static str) -> Result<()> {
        // Planes on their own too: with N = 0 the whole is empty but the
        // kernels still multiply H·W.
        check_alloc::<E>(op, &[self.c, self.h, self.w])?;
        check_alloc::<E>(op, &[self.o, self.oh, self.ow])?;
        check_alloc::<E>(op, &[self.n, self.c, self.h, self.w])?;
        check_alloc::<E>(op, &[self.n, self.o, self.oh, self.ow])?;
        check_alloc::<E>(op, &[self.c, self.kh, self.kw, self.oh, self.ow])?;
        check_alloc::<E>(op, &[self.o, self.c, self.kh, self.kw])?;
        Ok(())
    }
}

/// Output length of a sliding window over `n` inputs: kernel `k`, stride
/// `s`, padding `p` on each side, dilation `d`. All arithmetic is
/// checked: huge paddings or dilations are errors, not wrapped sizes.
fn out_size(op: &'static str, n: usize, k: usize, s: usize, p: usize, d: usize) -> Result<usize> {
    if s == 0 || d == 0 {
        return Err(Error::arg(
            op,
            format!("stride and dilation must be positive, got stride {s} and dilation {d}"),
        ));
    }
    if k == 0 {
        return Err(Error::shape(op, "kernel size must be positive, got 0"));
    }
    let span = (k - 1)
        .checked_mul(d)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| Error::arg(op, format!("kernel {k} with dilation {d} overflows")))?;
    let padded = p
        .checked_mul(2)
        .and_then(|v| v.checked_add(n))
        .ok_or_else(|| Error::arg(op, format!("input size {n} with padding {p} overflows")))?;
    if padded < span {
        return Err(Error::shape(
            op,
            format!("input size {n} with padding {p} is smaller than the kernel span {span}"),
        ));
    }
    Ok((padded - span) / s + 1)
}

pub(crate) fn conv_geometry(
    op: &'static str,
    x: &[usize],
    wshape: &[usize],
    p: Conv2dParams,
) -> Result<Geom> {
    if x.len() != 4 || wshape.len() != 4 {
        return Err(Error::shape(
            op,
            format!("expects input (N, C, H, W) and weight (O, C/groups, KH, KW), got {x:?} and {wshape:?}"),
        ));
    }
    let g = p.groups;
    if g == 0 || x[1] % g != 0 || wshape[0] % g != 0 || wshape[1].checked_mul(g) != Some(x[1]) {
        return Err(Error::shape(
            op,
            format!(
                "input {x:?} and weight {wshape:?} do not fit {g} groups (C = weight[1] * groups, O divisible by groups)"
            ),
        ));
    }
    let oh = out_size(
        op,
        x[2],
        wshape[2],
        p.stride[0],
        p.padding[0],
        p.dilation[0],
    )?;
    let ow = out_size(
        op,
        x[3],
        wshape[3],
        p.stride[1],
        p.padding[1],
        p.dilation[1],
    )?;
    Ok(Geom {
        n: x[0],
        c: x[1],
        h: x[2],
        w: x[3],
        o: wshape[0],
        kh: wshape[2],
        kw: wshape[3],
        oh,
        ow,
        g,
        p,
    })
}

/// Visits every (im2col element, input offset) pair of the im2col
/// matrix of one group of one sample; padding positions are skipped.
#[inline]
/// Calls `f(col, x, len)` for every run of valid taps: the cols entries
/// `col, col + 1, ..` (one output row oi of tap row (ci, ki, kj)) read the
/// inputs `x, x + s, ..` (s the width stride), `len` of them. Taps that fall
/// in the padding are skipped (their cols entries stay zero).
fn for_each_run(ge: &Geom, mut f: impl FnMut(usize, usize, usize)) {
    let l = ge.l();
    let (s0, s1) = (ge.p.stride[0], ge.p.stride[1]);
    let (d0, d1) = (ge.p.dilation[0], ge.p.dilation[1]);
    let (p0, p1) = (ge.p.padding[0], ge.p.padding[1]);
    for ci in 0..ge.cg() {
        for ki in 0..ge.kh {
            for kj in 0..ge.kw {
                let row = (ci * ge.kh + ki) * ge.kw + kj;
                // Valid oj: 0 <= oj·s + kj·d − p < w. The geometry checked
                // that the padded size fits usize, so these cannot wrap.
                let off = kj * d1;
                let lo = if off >= p1 {
                    0
                } else {
                    (p1 - off).div_ceil(s1)
                };
                let hi = if ge.w + p1 <= off {
                    0
                } else {
                    (ge.w + p1 - off).div_ceil(s1).min(ge.ow)
                };
                if lo >= hi {
                    continue;
                }
                for oi in 0..ge.oh {
                    let Some(ih) = (oi * s0 + ki * d0).checked_sub(p0).filter(|&v| v < ge.h) else {
                        continue;
                    };
                    let iw = lo * s1 + off - p1;
                    f(
                        row * l + oi * ge.ow + lo,
                        (ci * ge.h + ih) * ge.w + iw,
                        hi - lo,
                    );
                }
            }
        }
    }
}

fn im2col<E: Float>(ge: &Geom, x_group: &[E], cols: &mut [E]) {
    if ge.p.padding != [0, 0] {
        cols.fill(E::ZERO);
    }
    let s = ge.p.stride[1];
    for_each_run(ge, |c, x, len| {
        let dst = &mut cols[c..c + len];
        if s == 1 {
            dst.copy_from_slice(&x_group[x..x + len]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = x_group[x + j * s];
            }
        }
    });
}

fn col2im_add<E: Float>(ge: &Geom, cols: &[E], x_group: &mut [E]) {
    let s = ge.p.stride[1];
    for_each_run(ge, |c, x, len| {
        let src = &cols[c..c + len];
        if s == 1 {
            for (d, &v) in x_group[x..x + len].iter_mut().zip(src) {
                *d += v;
            }
        } else {
            for (j, &v) in src.iter().enumerate() {
                x_group[x + j * s] += v;
            }
        }
    });
}

/// Every pooling index must fall inside its plane of `plane_in` elements.
/// Later taps win only when strictly larger, or NaN over a number: the
/// first maximum, NaN propagating (as PyTorch). Non-short-circuit
/// operators, so that loops compile to selects, not branches that
/// mispredict on every other window.
#[inline(always)]
fn better<E: Float>(v: E, best: E) -> bool {
    (v > best) | (v.is_nan() & !best.is_nan())
}

/// Max pooling 2×2 with stride 2 of one plane `src` (row length `w`) into
/// `o` (rows of `ow`), with the plane-local index of each maximum in `ix`:
/// four fixed taps per output, each row pair read once, straight-line
/// selects (vectorised in the dispatched copies).
#[inline(always)]
fn pool2x2<E: Float>(
    src: &[E],
    w: usize,
    ow: usize,
    o: &mut [MaybeUninit<E>],
    ix: &mut [MaybeUninit<usize>],
) {
    for (oi, (o_row, ix_row)) in o.chunks_mut(ow).zip(ix.chunks_mut(ow)).enumerate() {
        let base = 2 * oi * w;
        let top = &src[base..][..2 * ow];
        let bottom = &src[base + w..][..2 * ow];
        for (oj, (ov, iv)) in o_row.iter_mut().zip(ix_row.iter_mut()).enumerate() {
            let (a, b) = (top[2 * oj], top[2 * oj + 1]);
            let (c, d) = (bottom[2 * oj], bottom[2 * oj + 1]);
            let mut best = a;
            let mut off = 0;
            let tb = better(b, best);
            best = if tb { b } else { best };
            off = if tb { 1 } else { off };
            let tc = better(c, best);
            best = if tc { c } else { best };
            off = if tc { w } else { off };
            let td = better(d, best);
            best = if td { d } else { best };
            off = if td { w + 1 } else { off };
            ov.write(best);
            iv.write(base + 2 * oj + off);
        }
    }
}

dispatched!(
    /// [`pool2x2`] in the widest SIMD copy.
    fn pool2x2_dispatch => pool2x2(
        src: &[E], w: usize, ow: usize, o: &mut [MaybeUninit<E>], ix: &mut [MaybeUninit<usize>]
    )
);

/// The gradient of [`pool2x2`] for one plane `d` of rows `w` = 2·ow: each
/// output's gradient `g` to the position `idx` names in its 2×2 window, 0
/// to the window's other three; every element of `d` is written. Clears
/// `ok` if an index lies outside its output's window (then `d` holds
/// garbage there and the caller takes the general path).
#[inline(always)]
fn unpool2x2<E: Float>(g: &[E], idx: &[usize], w: usize, d: &mut [MaybeUninit<E>], ok: &mut bool) {
    let ow = w / 2;
    let mut all = true;
    for (oi, (gr, ir)) in g.chunks(ow).zip(idx.chunks(ow)).enumerate() {
        let base = 2 * oi * w;
        let (top, bottom) = d[base..base + 2 * w].split_at_mut(w);
        for (oj, (&v, &i)) in gr.iter().zip(ir).enumerate() {
            let rel = i.wrapping_sub(base + 2 * oj);
            let z = E::ZERO;
            top[2 * oj].write(if rel == 0 { v } else { z });
            top[2 * oj + 1].write(if rel == 1 { v } else { z });
            bottom[2 * oj].write(if rel == w { v } else { z });
            bottom[2 * oj + 1].write(if rel == w + 1 { v } else { z });
            all &= (rel <= 1) | (rel == w) | (rel == w + 1);
        }
    }
    *ok &= all;
}

dispatched!(
    /// [`unpool2x2`] in the widest SIMD copy.
    fn unpool2x2_dispatch => unpool2x2(
        g: &[E], idx: &[usize], w: usize, d: &mut [MaybeUninit<E>], ok: &mut bool
    )
);

fn check_plane_indices(op: &'static str, is: &[usize], plane_in: usize) -> Result<()> {
    match is.iter().find(|&&i| i >= plane_in) {
        Some(&bad) => Err(Error::Index {
            op,
            index: bad,
            axis: 2,
            size: plane_in,
        }),
        None => Ok(()),
    }
}

fn view2<E: Float>(s: &[E], r: usize, c: usize) -> ArrayView2<'_, E> {
    ArrayView2::from_shape((r, c), s).expect("sizes match")
}

impl<E: Float> Tensor<E> {
    /// 2-D convolution (cross-correlation, as PyTorch) of `self` (N, C, H, W)
    /// with `weight` (O, C/groups, KH, KW), plus an optional `bias` (O):
    /// `out[n, o, i, j] = bias[o] + Σ_{c,u,v} weight[o, c, u, v]·x[n, c′, i·s
    /// − p + u·d, j·s − p + v·d]`, with c′ the c-th channel of o's group,
    /// s, p, d the stride, padding and dilation, and zeros outside x. The
    /// output has OH = ⌊(H + 2p − d·(KH − 1) − 1)/s⌋ + 1 rows, likewise OW.
    ///
    /// Gradient: the input gets [`Tensor::conv2d_input_grad`] (a transposed
    /// convolution of the output gradient), the weight
    /// [`Tensor::conv2d_weight_grad`], the bias the output gradient summed
    /// over N, OH and OW.
    ///
    /// PyTorch: `torch.nn.functional.conv2d(x, weight, bias, stride,
    /// padding, dilation, groups)`; TensorFlow's `tf.nn.conv2d` defaults to
    /// NHWC inputs and (KH, KW, C, O) filters.
    ///
    /// # Errors
    /// When the shapes do not fit each other or the parameters.
    ///
    /// ```
    /// use tapir_tensor::{Conv2dParams, Tensor};
    /// let x = Tensor::<f32>::from_vec((1..=9).map(|v| v as f32).collect(), [1, 1, 3, 3])?;
    /// let w = Tensor::<f32>::ones([1, 1, 2, 2]);
    /// let b = Tensor::<f32>::from_vec(vec![0.5], [1])?;
    /// let y = x.conv2d(&w, Some(&b), Conv2dParams::default())?;
    /// assert_eq!(y.shape(), &[1, 1, 2, 2]);
    /// assert_eq!(y.to_vec(), [12.5, 16.5, 24.5, 28.5]); // 2×2 window sums + 0.5
    /// let p = Conv2dParams { padding: [1, 1], ..Default::default() };
    /// assert_eq!(x.conv2d(&w, None, p)?.shape(), &[1, 1, 4, 4]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn conv2d(&self, weight: &Self, bias: Option<&Self>, p: Conv2dParams) -> Result<Self> {
        self.conv2d_as("conv2d", weight, bias, p)
    }

    /// [`Tensor::conv2d`] with errors naming `op` (the op the user called).
    pub(crate) fn conv2d_as(
        &self,
        op: &'static str,
        weight: &Self,
        bias: Option<&Self>,
        p: Conv2dParams,
    ) -> Result<Self> {
        let ge = crate::check::conv2d_geometry(
            op,
            self.shape(),
            weight.shape(),
            bias.map(|b| b.shape()),
            p,
        )?;
        ge.check_buffers::<E>(op)?;
        let x = self.contiguous();
        let w = weight.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let ws = w.as_slice().expect("contiguous");
        let (l, ckk, og, cg) = (ge.l(), ge.ckk(), ge.og(), ge.cg());
        let bias_v = bias.map(|b| b.to_vec());
        let total = ge.n * ge.o * l;
        let mut out: Vec<MaybeUninit<E>> = Vec::with_capacity(total);
        // SAFETY: MaybeUninit needs no initialisation; every element is
        // written below before the buffer is read or turned into a Vec<E>.
        unsafe { out.set_len(total) };
        let plane = ge.h * ge.w;
        // The column buffer is made once per rayon task, not per sample
        // (its zero fill was 3% of a LeNet step); im2col rewrites it whole.
        let new_cols = || vec![E::ZERO; ckk * l];
        let per_sample = |cols: &mut Vec<E>, (ni, o): (usize, &mut [MaybeUninit<E>])| {
            // Each output row starts as its bias (or zero) and the GEMM
            // adds to it: no zero fill of the output and no second pass
            // adding the bias.
            for (oc, row) in o.chunks_mut(l).enumerate() {
                let b = bias_v.as_ref().map_or(E::ZERO, |b| b[oc]);
                row.iter_mut().for_each(|v| {
                    v.write(b);
                });
            }
            // SAFETY: every element of `o` was just written, and
            // MaybeUninit<E> has E's layout.
            let o = unsafe { &mut *(o as *mut [MaybeUninit<E>] as *mut [E]) };
            for gi in 0..ge.g {
                let xg = &xs[(ni * ge.c + gi * cg) * plane..][..cg * plane];
                im2col(&ge, xg, cols);
                let wg = view2(&ws[gi * og * ckk..][..og * ckk], og, ckk);
                let mut og_out =
                    ndarray::ArrayViewMut2::from_shape((og, l), &mut o[gi * og * l..][..og * l])
                        .expect("sizes match");
                gemm_into(&wg, &view2(cols, ckk, l), &mut og_out, true, ge.n <= 1);
            }
        };
        // An empty sample (O·L = 0) has nothing to compute; rayon refuses
        // chunks of size 0.
        if ge.n > 1 && ge.o * l > 0 {
            out.par_chunks_mut(ge.o * l)
                .enumerate()
                .for_each_init(new_cols, per_sample);
        } else if ge.n == 1 {
            per_sample(&mut new_cols(), (0, &mut out));
        }
        let mut out = std::mem::ManuallyDrop::new(out);
        // SAFETY: all `total` elements are initialised (each sample's chunk
        // was filled by `per_sample`), MaybeUninit<E> has E's layout, and
        // the allocation is handed over whole with its capacity.
        let out = unsafe { Vec::from_raw_parts(out.as_mut_ptr() as *mut E, total, out.capacity()) };
        Self::from_vec(out, [ge.n, ge.o, ge.oh, ge.ow])
    }

    /// Gradient of [`Tensor::conv2d`] with respect to its input, given the
    /// output gradient `self` (N, O, OH, OW): the transposed convolution of
    /// `self` with `weight`, cropped to `input_shape`,
    /// `dx[n, c′, i·s − p + u·d, …] += Σ_o g[n, o, i, j]·weight[o, c, u, v]`.
    ///
    /// Gradient (it is linear in both): `self` gets the conv2d of the
    /// output gradient with `weight`; `weight` gets the conv2d weight
    /// gradient of `self` against the output gradient.
    ///
    /// PyTorch: `torch.nn.grad.conv2d_input(input_size, weight, grad_output,
    /// stride, padding, dilation, groups)`.
    ///
    /// # Errors
    /// When the shapes do not fit each other or the parameters.
    pub fn conv2d_input_grad(
        &self,
        weight: &Self,
        input_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        self.conv2d_input_grad_as("conv2d_input_grad", weight, input_shape, p)
    }

    /// [`Tensor::conv2d_input_grad`] with errors naming `op`.
    pub(crate) fn conv2d_input_grad_as(
        &self,
        op: &'static str,
        weight: &Self,
        input_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        let ge = conv_geometry(op, input_shape, weight.shape(), p)?;
        self.check_grad_shape(op, &ge)?;
        ge.check_buffers::<E>(op)?;
        let gy = self.contiguous();
        let w = weight.contiguous();
        let (gs, ws) = (gy.as_slice().expect("c"), w.as_slice().expect("c"));
        let (l, ckk, og, cg) = (ge.l(), ge.ckk(), ge.og(), ge.cg());
        let plane = ge.h * ge.w;
        let mut dx = vec![E::ZERO; ge.n * ge.c * plane];
        // One column buffer per rayon task; the GEMM overwrites it whole
        // (accumulate = false) before col2im reads it.
        let new_cols = || vec![E::ZERO; ckk * l];
        let per_sample = |cols: &mut Vec<E>, (ni, d): (usize, &mut [E])| {
            for gi in 0..ge.g {
                let wg = view2(&ws[gi * og * ckk..][..og * ckk], og, ckk);
                let gyg = view2(&gs[(ni * ge.o + gi * og) * l..][..og * l], og, l);
                let mut cv =
                    ndarray::ArrayViewMut2::from_shape((ckk, l), &mut cols[..]).expect("sizes");
                gemm_into(&wg.t(), &gyg, &mut cv, false, ge.n <= 1);
                col2im_add(&ge, cols, &mut d[gi * cg * plane..][..cg * plane]);
            }
        };
        if ge.n > 1 && ge.c * plane > 0 {
            dx.par_chunks_mut(ge.c * plane)
                .enumerate()
                .for_each_init(new_cols, per_sample);
        } else if ge.n == 1 {
            per_sample(&mut new_cols(), (0, &mut dx));
        }
        Self::from_vec(dx, input_shape)
    }

    /// Gradient of [`Tensor::conv2d`] with respect to its weight, given the
    /// output gradient `self` (N, O, OH, OW) and the forward `input`:
    /// `dw[o, c, u, v] = Σ_{n,i,j} g[n, o, i, j]·x[n, c′, i·s − p + u·d, …]`.
    ///
    /// Gradient (it is linear in both): `self` gets the conv2d of `input`
    /// with the output gradient; `input` gets the conv2d input gradient of
    /// `self` with the output gradient as weight.
    ///
    /// PyTorch: `torch.nn.grad.conv2d_weight(input, weight_size,
    /// grad_output, stride, padding, dilation, groups)`.
    ///
    /// # Errors
    /// When the shapes do not fit each other or the parameters.
    pub fn conv2d_weight_grad(
        &self,
        input: &Self,
        weight_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        let ge = conv_geometry("conv2d_weight_grad", input.shape(), weight_shape, p)?;
        self.check_grad_shape("conv2d_weight_grad", &ge)?;
        ge.check_buffers::<E>("conv2d_weight_grad")?;
        let gy = self.contiguous();
        let x = input.contiguous();
        let (gs, xs) = (gy.as_slice().expect("c"), x.as_slice().expect("c"));
        let (l, ckk, og, cg) = (ge.l(), ge.ckk(), ge.og(), ge.cg());
        let plane = ge.h * ge.w;
        let wlen = ge.o * ckk;
        // Fixed chunks of samples, each summed into its own buffer, then the
        // buffers added in order: the result does not depend on thread count.
        const SAMPLES_PER_CHUNK: usize = 8;
        // No sample, or empty samples: the gradient is zero (and a huge N
        // of empty samples must not be looped over).
        if ge.n == 0 || ge.c * ge.h * ge.w == 0 || ge.o * l == 0 {
            return Ok(Self::zeros(weight_shape));
        }
        let nchunks = ge.n.div_ceil(SAMPLES_PER_CHUNK);
        // Per group, dwᵀ [C/g·KH·KW, O/g] += cols [.., L] · gyᵀ [L, O/g]:
        // both GEMM operands then have the layouts the GEMM packs fastest
        // (gy · colsᵀ made it pack colsᵀ element by element: 4% of the
        // main job); gyᵀ is small and transposed here, dwᵀ once at the end.
        let partial = |ch: usize| {
            let mut dwt = vec![E::ZERO; wlen];
            let mut cols = vec![E::ZERO; ckk * l];
            for ni in ch * SAMPLES_PER_CHUNK..((ch + 1) * SAMPLES_PER_CHUNK).min(ge.n) {
                for gi in 0..ge.g {
                    im2col(
                        &ge,
                        &xs[(ni * ge.c + gi * cg) * plane..][..cg * plane],
                        &mut cols,
                    );
                    let gyg = &gs[(ni * ge.o + gi * og) * l..][..og * l];
                    let mut dv = ndarray::ArrayViewMut2::from_shape(
                        (ckk, og),
                        &mut dwt[gi * og * ckk..][..og * ckk],
                    )
                    .expect("sizes");
                    // gyᵀ as a column-major view of gy: the GEMM packs it.
                    let gv = ndarray::ArrayView2::from_shape(
                        ndarray::ShapeBuilder::strides((l, og), (1, l)),
                        gyg,
                    )
                    .expect("sizes");
                    let cv = view2(&cols, ckk, l);
                    gemm_into(&cv, &gv, &mut dv, true, nchunks <= 1);
                }
            }
            dwt
        };
        let parts: Vec<Vec<E>> = if nchunks > 1 {
            (0..nchunks).into_par_iter().map(partial).collect()
        } else {
            (0..nchunks).map(partial).collect()
        };
        let mut dwt = vec![E::ZERO; wlen];
        for part in parts {
            dwt.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        let mut dw = vec![E::ZERO; wlen];
        for gi in 0..ge.g {
            let (src, dst) = (
                &dwt[gi * og * ckk..][..og * ckk],
                &mut dw[gi * og * ckk..][..og * ckk],
            );
            for (k, row) in src.chunks_exact(og).enumerate() {
                for (o, &v) in row.iter().enumerate() {
                    dst[o * ckk + k] = v;
                }
            }
        }
        Self::from_vec(dw, weight_shape)
    }

    fn check_grad_shape(&self, op: &'static str, ge: &Geom) -> Result<()> {
        if self.shape() != [ge.n, ge.o, ge.oh, ge.ow] {
            return Err(Error::shape(
                op,
                format!(
                    "output gradient has shape {:?}, expected {:?}",
                    self.shape(),
                    [ge.n, ge.o, ge.oh, ge.ow]
                ),
            ));
        }
        Ok(())
    }

    /// Transposed 2-D convolution of `self` (N, O, H, W) with `weight`
    /// (O, C/groups, KH, KW), giving (N, C, H′, W′), where
    /// H′ = (H − 1)·stride − 2·padding + dilation·(KH − 1) + 1: the input
    /// gradient of a [`Tensor::conv2d`] with the same weight and parameters.
    ///
    /// Gradient: the input gets the conv2d of the output gradient with
    /// `weight`; the weight gets the conv2d weight gradient of `self`
    /// against the output gradient (a `Var` records it as
    /// `conv2d_input_grad`).
    ///
    /// PyTorch: `torch.nn.functional.conv_transpose2d(x, weight, stride=,
    /// padding=, dilation=, groups=)` with output_padding 0; TensorFlow's
    /// `tf.nn.conv2d_transpose` takes the output shape instead.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv_transpose2d(&self, weight: &Self, p: Conv2dParams) -> Result<Self> {
        if self.ndim() != 4 || weight.ndim() != 4 {
            return Err(Error::shape(
                "conv_transpose2d",
                format!(
                    "expects input (N, O, H, W) and weight (O, C/groups, KH, KW), got {:?} and {:?}",
                    self.shape(),
                    weight.shape()
                ),
            ));
        }
        let (s, w) = (self.shape(), weight.shape());
        let size = |k: usize, d: usize| -> Result<usize> {
            let full = (s[2 + d].max(1) - 1)
                .checked_mul(p.stride[d])
                .and_then(|a| Some((a, p.dilation[d].checked_mul(k.max(1) - 1)?)))
                .and_then(|(a, b)| a.checked_add(b)?.checked_add(1))
                .ok_or_else(|| {
                    Error::arg(
                        "conv_transpose2d",
                        format!(
                            "output size overflows for input {s:?}, weight {w:?}, stride {:?}, dilation {:?}",
                            p.stride, p.dilation
                        ),
                    )
                })?;
            full.checked_sub(p.padding[d].saturating_mul(2))
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    Error::shape(
                        "conv_transpose2d",
                        format!("padding {:?} leaves no output for input {s:?}", p.padding),
                    )
                })
        };
        let h = size(w[2], 0)?;
        let ww = size(w[3], 1)?;
        let c = crate::shape::mul_checked("conv_transpose2d", "channels", w[1], p.groups)?;
        let input_shape = [s[0], c, h, ww];
        self.conv2d_input_grad_as("conv_transpose2d", weight, &input_shape, p)
    }

    /// 1-D convolution (cross-correlation) of `self` (N, C, L) with `weight`
    /// (O, C/groups, K) and an optional `bias` (O):
    /// `out[n, o, i] = bias[o] + Σ_{c,u} weight[o, c, u]·x[n, c′, i·s − p + u·d]`.
    ///
    /// Gradient: as [`Tensor::conv2d`] of height 1 (a `Var` records it that
    /// way).
    ///
    /// PyTorch: `torch.nn.functional.conv1d(x, weight, bias, stride,
    /// padding, dilation, groups)`; TensorFlow's `tf.nn.conv1d` defaults to
    /// NWC inputs.
    ///
    /// # Errors
    /// When the shapes do not fit each other or the parameters.
    ///
    /// ```
    /// use tapir_tensor::{Conv1dParams, Tensor};
    /// let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 4])?;
    /// let w = Tensor::<f32>::from_vec(vec![1.0, -1.0], [1, 1, 2])?;
    /// let y = x.conv1d(&w, None, Conv1dParams::default())?;
    /// assert_eq!(y.shape(), &[1, 1, 3]);
    /// assert_eq!(y.to_vec(), [-1.0, -1.0, -1.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn conv1d(&self, weight: &Self, bias: Option<&Self>, p: Conv1dParams) -> Result<Self> {
        crate::check::conv1d(
            "conv1d",
            self.shape(),
            weight.shape(),
            bias.map(|b| b.shape()),
            p,
        )?;
        let (x, w) = conv1d_as_2d("conv1d", self, weight)?;
        let y = x.conv2d_as("conv1d", &w, bias, p.to_2d())?;
        y.squeeze(2)
    }

    /// Gradient of [`Tensor::conv1d`] with respect to its input, given the
    /// output gradient `self` (N, O, OL): the transposed 1-D convolution of
    /// `self` with `weight`, cropped to `input_shape`.
    ///
    /// Gradient: linear in `self` and `weight`, as
    /// [`Tensor::conv2d_input_grad`]; autograd differentiates a `Var`
    /// conv1d through conv2d, not through this.
    ///
    /// PyTorch: `torch.nn.grad.conv1d_input`.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv1d_input_grad(
        &self,
        weight: &Self,
        input_shape: &[usize],
        p: Conv1dParams,
    ) -> Result<Self> {
        let (gy, w) = conv1d_as_2d("conv1d_input_grad", self, weight)?;
        if input_shape.len() != 3 {
            return Err(Error::shape(
                "conv1d_input_grad",
                format!("input shape {input_shape:?} is not (N, C, L)"),
            ));
        }
        let shape4 = [input_shape[0], input_shape[1], 1, input_shape[2]];
        gy.conv2d_input_grad(&w, &shape4, p.to_2d())?.squeeze(2)
    }

    /// Gradient of [`Tensor::conv1d`] with respect to its weight, given the
    /// output gradient `self` (N, O, OL) and the forward `input`:
    /// `dw[o, c, u] = Σ_{n,i} g[n, o, i]·x[n, c′, i·s − p + u·d]`.
    ///
    /// Gradient: linear in `self` and `input`, as
    /// [`Tensor::conv2d_weight_grad`]; autograd differentiates a `Var`
    /// conv1d through conv2d, not through this.
    ///
    /// PyTorch: `torch.nn.grad.conv1d_weight`.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv1d_weight_grad(
        &self,
        input: &Self,
        weight_shape: &[usize],
        p: Conv1dParams,
    ) -> Result<Self> {
        let (gy, x) = conv1d_as_2d("conv1d_weight_grad", self, input)?;
        if weight_shape.len() != 3 {
            return Err(Error::shape(
                "conv1d_weight_grad",
                format!("weight shape {weight_shape:?} is not (O, C/groups, K)"),
            ));
        }
        let shape4 = [weight_shape[0], weight_shape[1], 1, weight_shape[2]];
        gy.conv2d_weight_grad(&x, &shape4, p.to_2d())?.squeeze(2)
    }

    /// 2-D max pooling of (N, C, H, W): `out[n, c, i, j]` is the maximum of
    /// `x[n, c]` over the KH×KW window at (i·s − p, j·s − p), padding
    /// counting as −∞.
    /// Ties pick the first; NaN wins.
    ///
    /// Gradient: to the chosen element of each window only (the first on
    /// ties, unlike [`Tensor::max_axes`]), accumulating where windows
    /// overlap.
    ///
    /// PyTorch: `torch.nn.functional.max_pool2d(x, kernel_size, stride,
    /// padding)`, whose stride defaults to the kernel size as
    /// [`Pool2dParams::new`] does; TensorFlow's `tf.nn.max_pool2d` defaults
    /// to NHWC.
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    ///
    /// ```
    /// use tapir_tensor::{Pool2dParams, Tensor};
    /// let x = Tensor::<f32>::from_vec((0..16).map(|v| v as f32).collect(), [1, 1, 4, 4])?;
    /// let y = x.max_pool2d(Pool2dParams::new([2, 2]))?;
    /// assert_eq!(y.shape(), &[1, 1, 2, 2]);
    /// assert_eq!(y.to_vec(), [5.0, 7.0, 13.0, 15.0]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn max_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        Ok(self.max_pool2d_with_indices(p)?.0)
    }

    /// [`Tensor::max_pool2d`] that also returns, for each output, the flat
    /// index h·W + w of the chosen input within its (H, W) plane.
    ///
    /// Gradient: the values as [`Tensor::max_pool2d`]; the indices are not
    /// differentiable.
    ///
    /// PyTorch: `torch.nn.functional.max_pool2d_with_indices`, or
    /// `max_pool2d(..., return_indices=True)`.
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    pub fn max_pool2d_with_indices(&self, p: Pool2dParams) -> Result<(Self, IndexArray)> {
        let (n, c, h, w, oh, ow) = pool_geometry("max_pool2d", self.shape(), p)?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("c");
        let total = n * c * oh * ow;
        // Every output and index is written below (each task fills its
        // planes whole), so the buffers start uninitialised.
        let mut out: Vec<E> = Vec::with_capacity(total);
        let mut idx: Vec<usize> = Vec::with_capacity(total);
        let plane_in = h * w;
        let plane_out = oh * ow;
        // The window ranges depend on the output row or column only.
        let rows: Vec<_> = (0..oh)
            .map(|oi| taps(oi, p.stride[0], p.padding[0], p.kernel[0], h))
            .collect();
        let cols: Vec<_> = (0..ow)
            .map(|oj| taps(oj, p.stride[1], p.padding[1], p.kernel[1], w))
            .collect();
        let two_by_two = p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0];
        type Planes<'a, E> = (
            usize,
            (&'a mut [MaybeUninit<E>], &'a mut [MaybeUninit<usize>]),
        );
        let run = |(pi, (o, ix)): Planes<'_, E>| {
            let src = &xs[pi * plane_in..][..plane_in];
            if two_by_two {
                return pool2x2_dispatch(src, w, ow, o, ix);
            }
            for (oi, rr) in rows.iter().enumerate() {
                for (oj, cr) in cols.iter().enumerate() {
                    let mut best = E::NEG_INFINITY;
                    let mut bi = usize::MAX;
                    for ih in rr.clone() {
                        for iw in cr.clone() {
                            let fi = ih * w + iw;
                            let v = src[fi];
                            if bi == usize::MAX || better(v, best) {
                                best = v;
                                bi = fi;
                            }
                        }
                    }
                    o[oi * ow + oj].write(best);
                    ix[oi * ow + oj].write(bi);
                }
            }
        };
        if plane_out > 0 {
            out.spare_capacity_mut()[..total]
                .par_chunks_mut(plane_out)
                .zip(idx.spare_capacity_mut()[..total].par_chunks_mut(plane_out))
                .enumerate()
                .with_min_len(64)
                .for_each(run);
        }
        // SAFETY: each of the n·c planes (all `total` elements) was written
        // above, by the 2×2 kernel or the general loop.
        unsafe {
            out.set_len(total);
            idx.set_len(total);
        }
        let shape = [n, c, oh, ow];
        Ok((
            Self::from_vec(out, shape)?,
            crate::index::indices(idx, shape)?,
        ))
    }

    /// Gradient of [`Tensor::max_pool2d`]: routes each output gradient
    /// (`self`) to the input position recorded in `indices`,
    /// `dx[n, c, indices[n, c, i, j]] += g[n, c, i, j]`.
    ///
    /// Gradient: linear in `self`; its adjoint is
    /// [`Tensor::max_pool2d_gather`] at the same indices (autograd records
    /// the pair as `max_pool2d` and `max_pool2d_backward`).
    ///
    /// PyTorch: the internal `aten::max_pool2d_with_indices_backward`;
    /// `torch.nn.functional.max_unpool2d` is close but writes instead of
    /// adding where windows overlap.
    ///
    /// # Errors
    /// When shapes disagree or an index is out of range.
    pub fn max_pool2d_backward(&self, indices: &IndexArray, input_shape: &[usize]) -> Result<Self> {
        if input_shape.len() != 4
            || self.ndim() != 4
            || indices.shape() != self.shape()
            || self.shape()[..2] != input_shape[..2]
        {
            return Err(Error::shape(
                "max_pool2d_backward",
                format!(
                    "gradient {:?}, indices {:?} and input {input_shape:?} do not match",
                    self.shape(),
                    indices.shape()
                ),
            ));
        }
        let n_in = check_alloc::<E>("max_pool2d_backward", input_shape)?;
        let plane_in = input_shape[2] * input_shape[3];
        let plane_out = self.shape()[2] * self.shape()[3];
        let g = self.contiguous();
        let gs = g.as_slice().expect("c");
        let ind = indices.as_standard_layout();
        let is = ind.as_slice().expect("c");
        let (oh, ow) = (self.shape()[2], self.shape()[3]);
        let (h, w) = (input_shape[2], input_shape[3]);
        if h == 2 * oh && w == 2 * ow && plane_out > 0 {
            // Planes that 2×2/2 windows tile exactly: if every index lies in
            // its own output's window (always so for 2×2 stride-2 pooling),
            // each input position gets its one gradient or 0, written once,
            // with no zero-fill first and no scatter.
            let mut dx: Vec<E> = Vec::with_capacity(n_in);
            let plane = |(pi, d): (usize, &mut [MaybeUninit<E>])| {
                let mut ok = true;
                unpool2x2_dispatch(
                    &gs[pi * plane_out..][..plane_out],
                    &is[pi * plane_out..][..plane_out],
                    w,
                    d,
                    &mut ok,
                );
                ok
            };
            let planes = &mut dx.spare_capacity_mut()[..n_in];
            let all_in_window = if n_in >= PAR_THRESHOLD {
                planes
                    .par_chunks_mut(plane_in)
                    .enumerate()
                    .with_min_len((PAR_THRESHOLD / 4 / plane_in).max(1))
                    .map(plane)
                    .reduce(|| true, |a, b| a & b)
            } else {
                planes.chunks_mut(plane_in).enumerate().all(plane)
            };
            if all_in_window {
                // SAFETY: unpool2x2 wrote every element of every plane (it
                // reported an index outside its window otherwise).
                unsafe { dx.set_len(n_in) };
                return Self::from_vec(dx, input_shape);
            }
        }
        check_plane_indices("max_pool2d_backward", is, plane_in)?;
        let mut dx = vec![E::ZERO; n_in];
        // Each plane of dx is written by one task, its outputs added in
        // order (overlapping windows accumulate as in PyTorch).
        let run = |(pi, d): (usize, &mut [E])| {
            let (gp, ip) = (
                &gs[pi * plane_out..][..plane_out],
                &is[pi * plane_out..][..plane_out],
            );
            for (&i, &v) in ip.iter().zip(gp) {
                d[i] += v;
            }
        };
        if plane_in > 0 && plane_out > 0 {
            if n_in >= PAR_THRESHOLD {
                dx.par_chunks_mut(plane_in)
                    .enumerate()
                    .with_min_len((PAR_THRESHOLD / 4 / plane_in).max(1))
                    .for_each(run);
            } else {
                dx.chunks_mut(plane_in).enumerate().for_each(run);
            }
        }
        Self::from_vec(dx, input_shape)
    }

    /// The adjoint of [`Tensor::max_pool2d_backward`]: each plane of `self`
    /// (N, C, H, W) read at `indices` (N, C, OH, OW, plane-local
    /// positions as [`Tensor::max_pool2d_with_indices`] returns them).
    /// With the indices of `x`'s pooling, `x.max_pool2d_gather(&idx)` is
    /// `x.max_pool2d(..)`.
    ///
    /// # Errors
    /// When shapes disagree or an index is out of range.
    pub fn max_pool2d_gather(&self, indices: &IndexArray) -> Result<Self> {
        let (s, is_) = (self.shape(), indices.shape());
        if s.len() != 4 || is_.len() != 4 || s[..2] != is_[..2] {
            return Err(Error::shape(
                "max_pool2d_gather",
                format!("input {s:?} and indices {is_:?} do not match"),
            ));
        }
        let (plane_in, plane_out) = (s[2] * s[3], is_[2] * is_[3]);
        let x = self.contiguous();
        let xs = x.as_slice().expect("c");
        let ind = indices.as_standard_layout();
        let is = ind.as_slice().expect("c");
        check_plane_indices("max_pool2d_gather", is, plane_in)?;
        let out: Vec<E> = is
            .iter()
            .enumerate()
            .map(|(k, &i)| xs[(k / plane_out.max(1)) * plane_in + i])
            .collect();
        Self::from_vec(out, is_)
    }

    /// 2-D average pooling of (N, C, H, W): `out[n, c, i, j]` is
    /// (1/(KH·KW))·Σ of `x[n, c]` over the KH×KW window at (i·s − p,
    /// j·s − p); padded zeros count in the average.
    ///
    /// Gradient: each output gradient spread evenly, 1/(KH·KW), over its
    /// window ([`Tensor::avg_pool2d_backward`]).
    ///
    /// PyTorch: `torch.nn.functional.avg_pool2d(x, kernel_size, stride,
    /// padding)` with its default `count_include_pad=True`.
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    ///
    /// ```
    /// use tapir_tensor::{Pool2dParams, Tensor};
    /// let x = Tensor::<f32>::from_vec((0..16).map(|v| v as f32).collect(), [1, 1, 4, 4])?;
    /// let y = x.avg_pool2d(Pool2dParams::new([2, 2]))?;
    /// assert_eq!(y.to_vec(), [2.5, 4.5, 10.5, 12.5]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn avg_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        let (n, c, h, w, oh, ow) = pool_geometry("avg_pool2d", self.shape(), p)?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("c");
        let inv = E::ONE / E::from_f64(p.kernel[0] as f64 * p.kernel[1] as f64);
        let mut out = vec![E::ZERO; n * c * oh * ow];
        let (plane_in, plane_out) = (h * w, oh * ow);
        if plane_out > 0 {
            out.par_chunks_mut(plane_out)
                .enumerate()
                .with_min_len(64)
                .for_each(|(pi, o)| {
                    let src = &xs[pi * plane_in..][..plane_in];
                    for_each_window(p, h, w, oh, ow, |oidx, iidx| o[oidx] += src[iidx] * inv);
                });
        }
        Self::from_vec(out, [n, c, oh, ow])
    }

    /// Gradient of [`Tensor::avg_pool2d`] given the output gradient `self`:
    /// each output gradient spread evenly, 1/(KH·KW), over its window.
    ///
    /// Gradient (it is linear): the [`Tensor::avg_pool2d`] of the output
    /// gradient.
    ///
    /// PyTorch: the internal `aten::avg_pool2d_backward`.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn avg_pool2d_backward(&self, input_shape: &[usize], p: Pool2dParams) -> Result<Self> {
        let (n, c, h, w, oh, ow) = pool_geometry("avg_pool2d_backward", input_shape, p)?;
        if self.shape() != [n, c, oh, ow] {
            return Err(Error::shape(
                "avg_pool2d_backward",
                format!(
                    "gradient has shape {:?}, expected {:?}",
                    self.shape(),
                    [n, c, oh, ow]
                ),
            ));
        }
        let g = self.contiguous();
        let gs = g.as_slice().expect("c");
        let inv = E::ONE / E::from_f64(p.kernel[0] as f64 * p.kernel[1] as f64);
        let (plane_in, plane_out) = (h * w, oh * ow);
        let mut dx = vec![E::ZERO; n * c * plane_in];
        if plane_in > 0 {
            dx.par_chunks_mut(plane_in)
                .enumerate()
                .with_min_len(64)
                .for_each(|(pi, d)| {
                    let src = &gs[pi * plane_out..][..plane_out];
                    for_each_window(p, h, w, oh, ow, |oidx, iidx| d[iidx] += src[oidx] * inv);
                });
        }
        Self::from_vec(dx, input_shape)
    }
}

/// Visits (output index, input index) of every in-bounds tap of every window.
fn for_each_window(
    p: Pool2dParams,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    mut f: impl FnMut(usize, usize),
) {
    for oi in 0..oh {
        for ih in taps(oi, p.stride[0], p.padding[0], p.kernel[0], h) {
            for oj in 0..ow {
                for iw in taps(oj, p.stride[1], p.padding[1], p.kernel[1], w) {
                    f(oi * ow + oj, ih * w + iw);
                }
            }
        }
    }
}

/// The input positions that window `o` (stride `s`, padding `pad`, kernel
/// `k`) covers inside an axis of `n` inputs. Iterating these instead of the
/// whole kernel keeps the cost at the input's size whatever the kernel
/// and padding (a huge padded kernel once looped for hours).
fn taps(o: usize, s: usize, pad: usize, k: usize, n: usize) -> std::ops::Range<usize> {
    // Window o spans padded positions o·s .. o·s + k, inputs start at pad.
    let first = o * s;
    let lo = first.max(pad) - pad;
    let hi = first
        .saturating_add(k)
        .min(pad.saturating_add(n))
        .saturating_sub(pad);
    lo..hi.max(lo)
}

fn pool_geometry(
    op: &'static str,
    s: &[usize],
    p: Pool2dParams,
) -> Result<(usize, usize, usize, usize, usize, usize)> {
    if s.len() != 4 {
        return Err(Error::shape(op, format!("expects (N, C, H, W), got {s:?}")));
    }
    for d in 0..2 {
        if p.kernel[d] == 0 || p.stride[d] == 0 {
            return Err(Error::arg(
                op,
                format!(
                    "kernel {:?} and stride {:?} must be positive",
                    p.kernel, p.stride
                ),
            ));
        }
        if p.padding[d] > p.kernel[d] / 2 {
            return Err(Error::arg(
                op,
                format!(
                    "padding {:?} must be at most half the kernel {:?}",
                    p.padding, p.kernel
                ),
            ));
        }
    }
    let oh = out_size(op, s[2], p.kernel[0], p.stride[0], p.padding[0], 1)?;
    let ow = out_size(op, s[3], p.kernel[1], p.stride[1], p.padding[1], 1)?;
    // f64 and usize indices are the largest elements these kernels keep.
    check_alloc::<f64>(op, s)?;
    check_alloc::<f64>(op, &[s[0], s[1], oh, ow])?;
    check_alloc::<f64>(op, &[s[2], s[3]])?;
    check_alloc::<f64>(op, &[oh, ow])?;
    Ok((s[0], s[1], s[2], s[3], oh, ow))
}

fn conv1d_as_2d<E: Float>(
    op: &'static str,
    a: &Tensor<E>,
    b: &Tensor<E>,
) -> Result<(Tensor<E>, Tensor<E>)> {
    if a.ndim() != 3 || b.ndim() != 3 {
        return Err(Error::shape(
            op,
            format!(
                "expects 3-D tensors (N, C, L) and (O, C/groups, K), got {:?} and {:?}",
                a.shape(),
                b.shape()
            ),
        ));
    }
    Ok((a.unsqueeze(2)?, b.unsqueeze(2)?))
}
