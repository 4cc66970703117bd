//! Every backward rule, one arm per primitive, no catch-all: a primitive
//! without a rule does not compile.
//!
//! Rules are written with the same differentiable `Var` ops users call. In a
//! first-order pass the Vars are untracked (plain tensor math); with
//! `gradient_graph` they are tracked, so the backward pass is itself recorded
//! and can be differentiated again. Constants (masks) enter through
//! `Var::lift` and carry no gradient.

use smallvec::{smallvec, SmallVec};
use tapir_tensor::{Float, GeluApprox, Tensor};

use crate::error::{Error, Result};
use crate::op::Op;
use crate::var::Var;

type Grads<'t, E> = SmallVec<[Option<Var<'t, E>>; 2]>;

/// Shape of a reduction's result with `keepdim = true`.
fn kept_shape(shape: &[usize], axes: &[isize]) -> Result<Vec<usize>> {
    let red = axes
        .iter()
        .map(|&a| tapir_tensor::normalize_axis("backward", a, shape))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if red.contains(&i) { 1 } else { d })
        .collect())
}

fn mask<'t, E: Float>(like: &Var<'t, E>, t: Tensor<E>) -> Var<'t, E> {
    like.lift(t)
}

/// Gradients of a primitive's inputs, given its inputs `x`, its output `out`
/// and the gradient `g` of the output. `needs[i]` says whether input i needs
/// a gradient (expensive rules skip the others).
pub(crate) fn backward<'t, E: Float>(
    op: &Op<E>,
    x: &[Var<'t, E>],
    out: &Var<'t, E>,
    g: &Var<'t, E>,
    needs: &[bool],
) -> Result<Grads<'t, E>> {
    let one = |v: Var<'t, E>| -> Grads<'t, E> { smallvec![Some(v)] };
    Ok(match op {
        Op::Leaf | Op::Constant => SmallVec::new(),
        Op::Add => smallvec![Some(g.sum_to(x[0].shape())?), Some(g.sum_to(x[1].shape())?)],
        Op::Mul => smallvec![
            Some(g.mul(&x[1])?.sum_to(x[0].shape())?),
            Some(g.mul(&x[0])?.sum_to(x[1].shape())?)
        ],
        Op::Div => smallvec![
            Some(g.div(&x[1])?.sum_to(x[0].shape())?),
            Some(
                g.mul(&x[0])?
                    .div(&x[1].square())?
                    .neg()
                    .sum_to(x[1].shape())?
            )
        ],
        Op::Pow => {
            // d/da = b·a^(b−1); d/db = a^b·ln a.
            let ga = g
                .mul(&x[1])?
                .mul(&x[0].pow(&x[1].sub_scalar(E::ONE))?)?
                .sum_to(x[0].shape())?;
            let gb = g.mul(out)?.mul(&x[0].log())?.sum_to(x[1].shape())?;
            smallvec![Some(ga), Some(gb)]
        }
        Op::Maximum => {
            let (a, b) = (&x[0].value, &x[1].value);
            let win = a.gt(b)?;
            let tie = a.eq(b)?.mul_scalar(E::from_f64(0.5));
            let wa = win.add(&tie)?;
            let wb = wa.rsub_scalar(E::ONE);
            smallvec![
                Some(g.mul(&mask(g, wa))?.sum_to(x[0].shape())?),
                Some(g.mul(&mask(g, wb))?.sum_to(x[1].shape())?)
            ]
        }
        Op::AddScalar => one(g.clone()),
        Op::MulScalar(c) => one(g.mul_scalar(*c)),
        Op::PowScalar(p) => {
            let d = if *p == E::from_f64(2.0) {
                x[0].mul_scalar(*p)
            } else {
                x[0].pow_scalar(*p - E::ONE).mul_scalar(*p)
            };
            one(g.mul(&d)?)
        }
        Op::Exp => one(g.mul(out)?),
        Op::Log => one(g.div(&x[0])?),
        Op::Log1p => one(g.div(&x[0].add_scalar(E::ONE))?),
        Op::Expm1 => one(g.mul(&out.add_scalar(E::ONE))?),
        Op::Sqrt => one(g.div(&out.mul_scalar(E::from_f64(2.0)))?),
        Op::Sin => one(g.mul(&x[0].cos())?),
        Op::Cos => one(g.mul(&x[0].sin())?.neg()),
        Op::Tanh => one(g.mul(&out.square().rsub_scalar(E::ONE))?),
        Op::Sigmoid => one(g.mul(&out.mul(&out.rsub_scalar(E::ONE))?)?),
        Op::Erf => {
            let k = E::from_f64(std::f64::consts::FRAC_2_SQRT_PI);
            one(g.mul(&x[0].square().neg().exp().mul_scalar(k))?)
        }
        Op::Abs => one(g.mul(&mask(g, x[0].value.sign()))?),
        Op::Sign => one(g.mul_scalar(E::ZERO)),
        Op::Relu => {
            let m = x[0]
                .value
                .map(|v| if v > E::ZERO { E::ONE } else { E::ZERO });
            one(g.mul(&mask(g, m))?)
        }
        Op::Gelu(GeluApprox::None) => {
            // Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
            let xv = &x[0];
            let cdf = xv
                .mul_scalar(E::from_f64(std::f64::consts::FRAC_1_SQRT_2))
                .erf()
                .add_scalar(E::ONE)
                .mul_scalar(E::from_f64(0.5));
            let pdf = xv
                .square()
                .mul_scalar(E::from_f64(-0.5))
                .exp()
                .mul_scalar(E::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt()));
            one(g.mul(&cdf.add(&xv.mul(&pdf)?)?)?)
        }
        Op::Gelu(GeluApprox::Tanh) => {
            // y = ½x(1 + t), t = tanh(k(x + c x³)):
            // y' = ½(1 + t) + ½x(1 − t²)·k(1 + 3c x²).
            let k = E::from_f64((2.0 / std::f64::consts::PI).sqrt());
            let c = E::from_f64(0.044715);
            let half = E::from_f64(0.5);
            let xv = &x[0];
            let x2 = xv.square();
            let t = xv.add(&xv.mul(&x2)?.mul_scalar(c))?.mul_scalar(k).tanh();
            let a = t.add_scalar(E::ONE).mul_scalar(half);
            let b = xv
                .mul(&t.square().rsub_scalar(E::ONE))?
                .mul(&x2.mul_scalar(E::from_f64(3.0) * c).add_scalar(E::ONE))?
                .mul_scalar(half * k);
            one(g.mul(&a.add(&b)?)?)
        }
        Op::Softplus => one(g.mul(&x[0].sigmoid())?),
        Op::Clamp(lo, hi) => {
            let (lo, hi) = (*lo, *hi);
            let m = x[0].value.map(|v| {
                let inside = lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v <= h);
                if inside {
                    E::ONE
                } else {
                    E::ZERO
                }
            });
            one(g.mul(&mask(g, m))?)
        }
        Op::Where(cond) => {
            let m = cond.map(|c| if c != E::ZERO { E::ONE } else { E::ZERO });
            let not_m = m.rsub_scalar(E::ONE);
            smallvec![
                Some(g.mul(&mask(g, m))?.sum_to(x[0].shape())?),
                Some(g.mul(&mask(g, not_m))?.sum_to(x[1].shape())?)
            ]
        }
        Op::Sum { axes, .. } => {
            let ks = kept_shape(x[0].shape(), axes)?;
            one(g.reshape_usize(&ks)?.broadcast_to(x[0].shape())?)
        }
        Op::Max { axes, .. } | Op::Min { axes, .. } => {
            // Tied extremes share the gradient equally (as torch.amax).
            let ks = kept_shape(x[0].shape(), axes)?;
            let ext = out.value.reshape_usize(&ks)?;
            let hit = x[0].value.eq(&ext)?;
            let count = hit.sum_axes(axes, true)?;
            let w = hit.div(&count)?;
            one(g.reshape_usize(&ks)?.mul(&mask(g, w))?)
        }
        Op::Prod { axes, .. } => {
            let ks = kept_shape(x[0].shape(), axes)?;
            let o = out.reshape_usize(&ks)?;
            one(g.reshape_usize(&ks)?.mul(&o)?.div(&x[0])?)
        }
        Op::LogSumExp { axes, .. } => {
            let ks = kept_shape(x[0].shape(), axes)?;
            let o = out.reshape_usize(&ks)?;
            one(g.reshape_usize(&ks)?.mul(&x[0].sub(&o)?.exp())?)
        }
        Op::Softmax(axis) => {
            let s = g.mul(out)?.sum_axes(&[*axis], true)?;
            one(out.mul(&g.sub(&s)?)?)
        }
        Op::LogSoftmax(axis) => {
            let s = g.sum_axes(&[*axis], true)?;
            one(g.sub(&out.exp().mul(&s)?)?)
        }
        Op::Norm(n) => norm_rule(n, x, g, needs)?,
        Op::SoftmaxXent(t) => {
            if !g.is_tracked() && !x[0].is_tracked() {
                one(g.lift(
                    x[0].value
                        .softmax_cross_entropy_backward(&t.targets, &g.value)?,
                ))
            } else {
                // softmax·T − t with the targets dense, as Var ops.
                let (n, c) = (x[0].shape()[0], x[0].shape()[1]);
                let dense = match &t.targets {
                    tapir_tensor::XentTargets::Dense(d) => d.clone(),
                    tapir_tensor::XentTargets::Labels { labels, a, b, u } => {
                        let mut d = vec![E::ZERO; n * c];
                        for i in 0..n {
                            for (j, w) in u.iter().enumerate() {
                                d[i * c + j] = b[i] * *w;
                            }
                            d[i * c + labels[i]] += a[i];
                        }
                        Tensor::from_vec(d, [n, c])?
                    }
                };
                let total = dense.sum_axes(&[1], true)?;
                let p = x[0].softmax(-1)?;
                let d = p.mul(&mask(g, total))?.sub(&mask(g, dense))?;
                one(d.mul(&g.unsqueeze(1)?)?)
            }
        }
        Op::Attention(a) => attention_rule(a, x, out, g, needs)?,
        Op::QkvAttention(a) => qkv_attention_rule(a, &x[0], out, g)?,
        Op::Matmul => matmul_rule(&x[0], &x[1], g, needs)?,
        Op::Reshape => one(g.reshape_usize(x[0].shape())?),
        Op::Permute(p) => {
            let nd = p.len();
            let mut inv = vec![0isize; nd];
            for (i, &a) in p.iter().enumerate() {
                let a = if a < 0 { a + nd as isize } else { a } as usize;
                inv[a] = i as isize;
            }
            one(g.permute(&inv)?)
        }
        Op::BroadcastTo => one(g.sum_to(x[0].shape())?),
        Op::IndexSelect { axis, idx, .. } => {
            let shape = x[0].shape().to_vec();
            one(index_add_zeros(g, *axis, idx, &shape)?)
        }
        Op::IndexAddZeros { axis, idx } => one(g.index_select(*axis as isize, idx)?),
        Op::Concat { axis } => {
            let mut start = 0;
            let mut gs = SmallVec::new();
            for xi in x {
                let len = xi.shape()[*axis];
                gs.push(Some(g.narrow(*axis as isize, start, len)?));
                start += len;
            }
            gs
        }
        Op::Pad(pads) => {
            let mut r = g.clone();
            for (a, &(before, _)) in pads.iter().enumerate() {
                r = r.narrow(a as isize, before, x[0].shape()[a])?;
            }
            one(r)
        }
        Op::Gather { axis, idx } => {
            let zeros = x[0].value.zeros_like();
            let v = zeros.scatter_add_into(*axis as isize, &**idx, &g.value)?;
            let op = Op::ScatterAddZeros {
                axis: *axis,
                idx: idx.clone(),
            };
            one(crate::tape::Tape::record("gather backward", op, &[g], v)?)
        }
        Op::ScatterAddZeros { axis, idx } => {
            // src may be larger than the index (as in torch.scatter_add):
            // only src's leading index-shaped block was scattered, the
            // rest gets zeros, so the gathered gradient is padded at the
            // end of each axis up to src's shape.
            let picked = g.gather(*axis as isize, &**idx)?;
            let src = x[0].shape();
            if picked.shape() == src {
                one(picked)
            } else {
                let pads: Vec<(usize, usize)> = picked
                    .shape()
                    .iter()
                    .zip(src)
                    .map(|(&p, &s)| (0, s - p))
                    .collect();
                one(picked.pad(&pads, E::ZERO)?)
            }
        }
        Op::Conv2d(p) => {
            let mut gs: Grads<'t, E> = smallvec![
                needs[0]
                    .then(|| g.conv2d_input_grad(&x[1], x[0].shape(), **p))
                    .transpose()?,
                needs[1]
                    .then(|| g.conv2d_weight_grad(&x[0], x[1].shape(), **p))
                    .transpose()?
            ];
            // With a bias (third input, [O]): the sum over N, H and W.
            if x.len() == 3 {
                gs.push(
                    needs[2]
                        .then(|| g.sum_axes(&[0, 2, 3], false))
                        .transpose()?,
                );
            }
            gs
        }
        Op::Conv2dInputGrad(p) => {
            // out = Jₓᵀ(gy; w): linear in gy and in w.
            let (gy, w) = (&x[0], &x[1]);
            smallvec![
                needs[0].then(|| g.conv2d(w, None, **p)).transpose()?,
                needs[1]
                    .then(|| gy.conv2d_weight_grad(g, w.shape(), **p))
                    .transpose()?
            ]
        }
        Op::Conv2dWeightGrad(p) => {
            let (gy, xin) = (&x[0], &x[1]);
            smallvec![
                needs[0].then(|| xin.conv2d(g, None, **p)).transpose()?,
                needs[1]
                    .then(|| gy.conv2d_input_grad(g, xin.shape(), **p))
                    .transpose()?
            ]
        }
        Op::MaxPool2d { idx } => {
            let v = g.value.max_pool2d_backward(idx, x[0].shape())?;
            let op = Op::MaxPool2dBackward { idx: idx.clone() };
            one(crate::tape::Tape::record(
                "max_pool2d backward",
                op,
                &[g],
                v,
            )?)
        }
        Op::MaxPool2dBackward { idx } => {
            let v = g.value.max_pool2d_gather(idx)?;
            let op = Op::MaxPool2d { idx: idx.clone() };
            one(crate::tape::Tape::record("max_pool2d", op, &[g], v)?)
        }
        Op::AvgPool2d(p) => one(g.avg_pool2d_backward(x[0].shape(), **p)?),
        Op::AvgPool2dBackward(p) => one(g.avg_pool2d(**p)?),
        Op::Custom(c) => {
            let r = c.backward(x, out, g)?;
            if r.len() != x.len() {
                return Err(Error::Custom {
                    name: c.name().to_string(),
                    msg: format!(
                        "backward returned {} gradients for {} inputs",
                        r.len(),
                        x.len()
                    ),
                });
            }
            for (gi, xi) in r.iter().zip(x) {
                if let Some(gi) = gi {
                    if gi.shape() != xi.shape() {
                        return Err(Error::Custom {
                            name: c.name().to_string(),
                            msg: format!(
                                "backward returned a gradient of shape {:?} for an input of shape {:?}",
                                gi.shape(),
                                xi.shape()
                            ),
                        });
                    }
                }
            }
            r.into_iter().collect()
        }
    })
}

fn index_add_zeros<'t, E: Float>(
    g: &Var<'t, E>,
    axis: usize,
    idx: &std::sync::Arc<[usize]>,
    shape: &[usize],
) -> Result<Var<'t, E>> {
    let v = Tensor::zeros(shape).index_add(axis as isize, idx, &g.value)?;
    let op = Op::IndexAddZeros {
        axis,
        idx: idx.clone(),
    };
    crate::tape::Tape::record("index_select backward", op, &[g], v)
}

/// Scaled dot-product attention. First order: the tiled kernel, which
/// recomputes the probabilities from the saved log-sum-exps. Recorded
/// (higher order): the same gradients from the composite softmax(q·kᵀ·s +
/// mask) with Var ops.
fn attention_rule<'t, E: Float>(
    a: &crate::op::AttentionOp<E>,
    x: &[Var<'t, E>],
    out: &Var<'t, E>,
    g: &Var<'t, E>,
    needs: &[bool],
) -> Result<Grads<'t, E>> {
    let (q, k, v) = (&x[0], &x[1], &x[2]);
    if !g.is_tracked() && x.iter().all(|v| !v.is_tracked()) {
        let p = tapir_tensor::AttentionParams {
            scale: a.scale,
            causal: a.causal,
            mask: a.mask.as_ref(),
        };
        let [dq, dk, dv] = q.value.attention_backward(
            &k.value,
            &v.value,
            &out.value,
            &a.lse,
            &g.value,
            p,
            [needs[0], needs[1], needs[2]],
        )?;
        return Ok(smallvec![
            dq.map(|t| g.lift(t)),
            dk.map(|t| g.lift(t)),
            dv.map(|t| g.lift(t))
        ]);
    }
    let [dq, dk, dv] = attention_composite(
        q,
        k,
        v,
        g,
        a.scale,
        a.causal,
        a.mask.as_ref(),
        [needs[0], needs[1], needs[2]],
    )?;
    Ok(smallvec![dq, dk, dv])
}

/// The gradients of softmax(q·kᵀ·scale + mask)·v for q, k, v `[B, H, T or
/// S, D]` written with Var ops (recorded, differentiable again).
#[allow(clippy::too_many_arguments)]
fn attention_composite<'t, E: Float>(
    q: &Var<'t, E>,
    k: &Var<'t, E>,
    v: &Var<'t, E>,
    g: &Var<'t, E>,
    scale: f64,
    causal: bool,
    mask_t: Option<&Tensor<E>>,
    needs: [bool; 3],
) -> Result<[Option<Var<'t, E>>; 3]> {
    let sc = E::from_f64(scale);
    let mut scores = q.matmul(&k.transpose(-1, -2)?)?.mul_scalar(sc);
    if let Some(m) = mask_t {
        scores = scores.add(&mask(g, m.clone()))?;
    }
    if causal {
        let (t, s) = (q.shape()[2], k.shape()[2]);
        let mut c = vec![E::ZERO; t * s];
        for i in 0..t {
            for j in i + 1..s {
                c[i * s + j] = E::NEG_INFINITY;
            }
        }
        scores = scores.add(&mask(g, Tensor::from_vec(c, [t, s])?))?;
    }
    let p = scores.softmax(-1)?;
    let dv = needs[2]
        .then(|| p.transpose(-1, -2)?.matmul(g))
        .transpose()?;
    let (mut dq, mut dk) = (None, None);
    if needs[0] || needs[1] {
        let dp = g.matmul(&v.transpose(-1, -2)?)?;
        let r = dp.mul(&p)?.sum_axes(&[-1], true)?;
        let ds = p.mul(&dp.sub(&r)?)?.mul_scalar(sc);
        if needs[0] {
            dq = Some(ds.matmul(k)?);
        }
        if needs[1] {
            dk = Some(ds.transpose(-1, -2)?.matmul(q)?);
        }
    }
    Ok([dq, dk, dv])
}

/// Self-attention from the fused projection `[B, T, 3E]`. First order: the
/// packed kernel (probabilities recomputed from the saved log-sum-exps),
/// the gradient written into one `[B, T, 3E]` buffer. Recorded: q, k and v
/// sliced out of the projection and split into heads with Var ops, the
/// composite attention gradient, and the three parts joined back.
fn qkv_attention_rule<'t, E: Float>(
    a: &crate::op::QkvAttentionOp<E>,
    x: &Var<'t, E>,
    out: &Var<'t, E>,
    g: &Var<'t, E>,
) -> Result<Grads<'t, E>> {
    let p = tapir_tensor::AttentionParams {
        scale: a.scale,
        causal: a.causal,
        mask: a.mask.as_ref(),
    };
    if !g.is_tracked() && !x.is_tracked() {
        let dx = x
            .value
            .qkv_attention_backward(&out.value, &a.lse, &g.value, a.heads, p)?;
        return Ok(smallvec![Some(g.lift(dx))]);
    }
    let s = x.shape();
    let (b, t, e) = (s[0], s[1], s[2] / 3);
    let (h, d) = (a.heads, e / a.heads);
    let heads = |y: Var<'t, E>| y.reshape_usize(&[b, t, h, d])?.permute(&[0, 2, 1, 3]);
    let part = |i: usize| heads(x.narrow(-1, i * e, e)?);
    let (q, k, v) = (part(0)?, part(1)?, part(2)?);
    let gh = heads(g.clone())?;
    let grads = attention_composite(
        &q,
        &k,
        &v,
        &gh,
        a.scale,
        a.causal,
        a.mask.as_ref(),
        [true; 3],
    )?;
    let back = |y: Option<Var<'t, E>>| -> Result<Var<'t, E>> {
        y.expect("all three asked for")
            .permute(&[0, 2, 1, 3])?
            .reshape_usize(&[b, t, e])
    };
    let [dq, dk, dv] = grads;
    let (dq, dk, dv) = (back(dq)?, back(dk)?, back(dv)?);
    Ok(smallvec![Some(Var::concat(&[&dq, &dk, &dv], -1)?)])
}

/// LayerNorm / RMSNorm. First order: the tensor crate's one-pass kernel
/// from the saved statistics. Recorded (higher order): the same formulas
/// with Var ops, the statistics recomputed from x so that they carry their
/// own dependence on x.
fn norm_rule<'t, E: Float>(
    n: &crate::op::NormOp<E>,
    x: &[Var<'t, E>],
    g: &Var<'t, E>,
    needs: &[bool],
) -> Result<Grads<'t, E>> {
    let wi = n.has_weight.then_some(1);
    let bi = n.has_bias.then_some(1 + usize::from(n.has_weight));
    let need = |i: Option<usize>| i.is_some_and(|i| needs[i]);
    let mut out: Grads<'t, E> = smallvec![None; x.len()];
    let batch = n.kind == tapir_tensor::NormKind::Batch;
    if !g.is_tracked() && x.iter().all(|v| !v.is_tracked()) {
        let w = wi.map(|i| &x[i].value);
        let want = [needs[0], need(wi), need(bi)];
        let [dx, dw, db] = match n.kind {
            tapir_tensor::NormKind::Batch => x[0]
                .value
                .batch_norm_backward(&g.value, &n.stats, w, want)?,
            tapir_tensor::NormKind::Group => x[0]
                .value
                .group_norm_backward(&g.value, &n.stats, w, want)?,
            _ => x[0]
                .value
                .norm_backward(&g.value, &n.stats, w, n.ndim, want)?,
        };
        out[0] = dx.map(|t| g.lift(t));
        if let Some(i) = wi {
            out[i] = dw.map(|t| g.lift(t));
        }
        if let Some(i) = bi {
            out[i] = db.map(|t| g.lift(t));
        }
        return Ok(out);
    }
    if n.kind == tapir_tensor::NormKind::Group {
        return group_norm_rule(n.ndim, n.eps, x, g, wi, bi, needs);
    }
    let nd = x[0].ndim();
    let axes: Vec<isize> = if batch {
        std::iter::once(0).chain(2..nd as isize).collect()
    } else {
        (0..n.ndim as isize).map(|i| -1 - i).collect()
    };
    // Batch norm's [C] weight broadcast as [C, 1, ..].
    let per_channel = |v: &Var<'t, E>| -> Result<Var<'t, E>> {
        if batch {
            let mut s = vec![1usize; nd - 1];
            s[0] = v.shape()[0];
            v.reshape_usize(&s)
        } else {
            Ok(v.clone())
        }
    };
    let xc = match n.kind {
        tapir_tensor::NormKind::Rms => x[0].clone(),
        _ => x[0].sub(&x[0].mean_axes(&axes, true)?)?,
    };
    let rstd = xc
        .square()
        .mean_axes(&axes, true)?
        .add_scalar(E::from_f64(n.eps))
        .rsqrt();
    let xhat = xc.mul(&rstd)?;
    if needs[0] {
        let gw = match wi {
            Some(i) => g.mul(&per_channel(&x[i])?)?,
            None => g.clone(),
        };
        let m1 = gw.mul(&xhat)?.mean_axes(&axes, true)?;
        let mut inner = gw.sub(&xhat.mul(&m1)?)?;
        if n.kind != tapir_tensor::NormKind::Rms {
            inner = inner.sub(&gw.mean_axes(&axes, true)?)?;
        }
        out[0] = Some(rstd.mul(&inner)?);
    }
    // Sums over the normalised positions, in the parameter's shape.
    let reduce_to = |v: Var<'t, E>, shape: &[usize]| -> Result<Var<'t, E>> {
        if batch {
            v.sum_axes(&axes, false)?.reshape_usize(shape)
        } else {
            v.sum_to(shape)
        }
    };
    if let Some(i) = wi.filter(|&i| needs[i]) {
        out[i] = Some(reduce_to(g.mul(&xhat)?, x[i].shape())?);
    }
    if let Some(i) = bi.filter(|&i| needs[i]) {
        out[i] = Some(reduce_to(g.clone(), x[i].shape())?);
    }
    Ok(out)
}

/// GroupNorm's recorded (higher-order) rule: the LayerNorm formulas over
/// the regrouped input `[N, G, C/G·S]`, the weight applied per channel.
fn group_norm_rule<'t, E: Float>(
    groups: usize,
    eps: f64,
    x: &[Var<'t, E>],
    g: &Var<'t, E>,
    wi: Option<usize>,
    bi: Option<usize>,
    needs: &[bool],
) -> Result<Grads<'t, E>> {
    let shape = x[0].shape().to_vec();
    let nd = shape.len();
    let grouped = [
        shape[0],
        groups,
        shape[1..].iter().product::<usize>() / groups,
    ];
    let per_channel = |v: &Var<'t, E>| -> Result<Var<'t, E>> {
        let mut s = vec![1usize; nd - 1];
        s[0] = v.shape()[0];
        v.reshape_usize(&s)
    };
    let xg = x[0].reshape_usize(&grouped)?;
    let xc = xg.sub(&xg.mean_axes(&[-1], true)?)?;
    let rstd = xc
        .square()
        .mean_axes(&[-1], true)?
        .add_scalar(E::from_f64(eps))
        .rsqrt();
    let xhat_g = xc.mul(&rstd)?;
    let mut out: Grads<'t, E> = smallvec![None; x.len()];
    if needs[0] {
        let gw = match wi {
            Some(i) => g.mul(&per_channel(&x[i])?)?,
            None => g.clone(),
        }
        .reshape_usize(&grouped)?;
        let m1 = gw.mul(&xhat_g)?.mean_axes(&[-1], true)?;
        let m2 = gw.mean_axes(&[-1], true)?;
        let dx = rstd.mul(&gw.sub(&m2)?.sub(&xhat_g.mul(&m1)?)?)?;
        out[0] = Some(dx.reshape_usize(&shape)?);
    }
    let axes: Vec<isize> = std::iter::once(0).chain(2..nd as isize).collect();
    if let Some(i) = wi.filter(|&i| needs[i]) {
        let xhat = xhat_g.reshape_usize(&shape)?;
        out[i] = Some(g.mul(&xhat)?.sum_axes(&axes, false)?);
    }
    if let Some(i) = bi.filter(|&i| needs[i]) {
        out[i] = Some(g.sum_axes(&axes, false)?);
    }
    Ok(out)
}

/// d(A·B): gA = g·Bᵀ, gB = Aᵀ·g, with 1-D operands promoted to matrices and
/// broadcast batch axes summed back.
fn matmul_rule<'t, E: Float>(
    a: &Var<'t, E>,
    b: &Var<'t, E>,
    g: &Var<'t, E>,
    needs: &[bool],
) -> Result<Grads<'t, E>> {
    let a2 = if a.ndim() == 1 {
        a.unsqueeze(0)?
    } else {
        a.clone()
    };
    let b2 = if b.ndim() == 1 {
        b.unsqueeze(-1)?
    } else {
        b.clone()
    };
    // g in the promoted shape: batch + [m, n].
    let mut gshape: Vec<usize> = g.shape().to_vec();
    if a.ndim() == 1 {
        let at = gshape.len() - usize::from(b.ndim() != 1);
        gshape.insert(at, 1);
    }
    if b.ndim() == 1 {
        gshape.push(1);
    }
    let g2 = g.reshape_usize(&gshape)?;
    let ga = if needs[0] {
        let r = g2.matmul(&b2.transpose(-1, -2)?)?.sum_to(a2.shape())?;
        Some(r.reshape_usize(a.shape())?)
    } else {
        None
    };
    let gb = if needs[1] {
        let r = a2.transpose(-1, -2)?.matmul(&g2)?.sum_to(b2.shape())?;
        Some(r.reshape_usize(b.shape())?)
    } else {
        None
    };
    Ok(smallvec![ga, gb])
}
