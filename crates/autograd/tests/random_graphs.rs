//! Random computation graphs over the whole op vocabulary, checked against
//! central finite differences in f64, first and second order.
//!
//! A graph is a random program (proptest strategy, so failures shrink): a
//! few input shapes, a data seed and a list of steps. Each step names an op
//! and carries raw numbers that the planner below maps into that op's valid
//! range given the shapes at hand (an axis is `raw % ndim`, an index is
//! `raw % len`, ...), and picks its operands from every value made so far,
//! so a value is often used several times (fan-out).
//!
//! Planning runs the program once on the unperturbed inputs and freezes
//! every choice that depends on values: a step whose result would sit
//! within a margin of a kink or a tie (relu at 0, max with a near-equal
//! runner-up, clamp at a bound, ...) or would overflow is dropped, and large
//! values are scaled down by a constant. The frozen plan is then a smooth
//! function of the inputs in a neighbourhood of the finite differences,
//! which is what `gradcheck` needs.
//!
//! Sizes: `PROPTEST_CASES` sets the number of small graphs (default 256 in
//! CI; run `PROPTEST_CASES=20000 cargo test --release -p tapir-autograd
//! --test random_graphs` for a long run). `TAPIR_BIG_GRAPHS` sets how many
//! graphs are also run with inputs above the rayon thresholds (default 6),
//! checked along random directions.

use std::sync::Arc;

use proptest::prelude::*;
use tapir_autograd::{gradcheck, gradcheck_directional, GradcheckOptions, Result, Var};
use tapir_tensor::{
    indices, Conv1dParams, Conv2dParams, GeluApprox, IndexArray, Pool2dParams, Rng, Tensor,
};

/// Raw numbers of one step; the planner maps them into range.
#[derive(Debug, Clone)]
struct Step {
    op: u8,
    a: u16,
    b: u16,
    c: u16,
    p: [u16; 6],
}

/// A random program: input shapes, the seed of the input values, steps.
#[derive(Debug, Clone)]
struct Program {
    inputs: Vec<Vec<usize>>,
    seed: u64,
    steps: Vec<Step>,
}

/// Number of op kinds the planner knows (`plan_step`'s match).
const N_OPS: u8 = 76;

/// Largest intermediate value the planner keeps, in elements, over the
/// largest input (small graphs stay cheap to difference element by element).
const GROWTH: usize = 8;

type Pool<'t> = [Var<'t, f64>];
type StepFn = Arc<dyn for<'t> Fn(&Pool<'t>) -> Result<Var<'t, f64>> + Send + Sync>;

/// A step with every choice made: its description (for failure reports)
/// and the function of the pool that computes it.
#[derive(Clone)]
struct Planned {
    op: u8,
    what: String,
    f: StepFn,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

fn pos_of<'t>(v: &Var<'t, f64>) -> Var<'t, f64> {
    // Strictly positive, smooth, away from 0: for log, sqrt, division.
    v.square().add_scalar(0.5)
}

/// `v`'s elements, flattened, cut or zero-padded to `shape`'s size and
/// reshaped to it: how any value is made to fit an operand slot.
fn conform<'t>(v: &Var<'t, f64>, shape: &[usize]) -> Result<Var<'t, f64>> {
    let n: usize = shape.iter().product();
    let len = v.value().len();
    let flat = v.reshape_usize(&[len])?;
    let flat = match len.cmp(&n) {
        std::cmp::Ordering::Equal => flat,
        std::cmp::Ordering::Greater => flat.narrow(0, 0, n)?,
        std::cmp::Ordering::Less => flat.pad(&[(0, n - len)], 0.0)?,
    };
    flat.reshape_usize(shape)
}

/// Whether some element of `d` lies strictly between 0 and `margin` in
/// absolute value (exact zeros are ties of one value with itself, or of
/// constants, and are differentiated consistently).
fn near_zero(d: &Tensor<f64>, margin: f64) -> bool {
    d.to_vec().iter().any(|&x| x != 0.0 && x.abs() < margin)
}

fn near_tie_to_extreme(x: &Tensor<f64>, axes: &[isize], max: bool, margin: f64) -> Result<bool> {
    let e = if max {
        x.max_axes(axes, true)?
    } else {
        x.min_axes(axes, true)?
    };
    Ok(near_zero(&x.sub(&e)?, margin))
}

/// Whether some pooling window's maximum has a runner-up within `margin`.
fn pool_near_tie(x: &Tensor<f64>, p: &Pool2dParams, margin: f64) -> bool {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let v = x.contiguous().to_vec();
    let oh = (h + 2 * p.padding[0] - p.kernel[0]) / p.stride[0] + 1;
    let ow = (w + 2 * p.padding[1] - p.kernel[1]) / p.stride[1] + 1;
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let mut vals = Vec::new();
                for ki in 0..p.kernel[0] {
                    for kj in 0..p.kernel[1] {
                        let hi = (i * p.stride[0] + ki) as isize - p.padding[0] as isize;
                        let wj = (j * p.stride[1] + kj) as isize - p.padding[1] as isize;
                        if hi >= 0 && wj >= 0 && (hi as usize) < h && (wj as usize) < w {
                            vals.push(v[plane * h * w + hi as usize * w + wj as usize]);
                        }
                    }
                }
                let m = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if vals.iter().any(|&x| x != m && m - x < margin) {
                    return true;
                }
            }
        }
    }
    false
}

fn max_abs(t: &Tensor<f64>) -> f64 {
    t.to_vec().iter().fold(0.0, |m, &x| m.max(x.abs()))
}

/// A small deterministic generator for the planner's secondary choices
/// (index lists, masks, labels), seeded from the step's raw numbers.
fn step_rng(s: &Step, k: u64) -> Rng {
    Rng::seed((s.a as u64) << 48 ^ (s.b as u64) << 32 ^ (s.c as u64) << 16 ^ s.p[5] as u64 ^ k << 8)
}

fn axis_of(raw: u16, nd: usize) -> usize {
    raw as usize % nd.max(1)
}

/// A subset of `0..nd` (never empty when nd > 0), as isize, sometimes
/// with negative spellings.
fn axes_of(raw: u16, nd: usize) -> Vec<isize> {
    let mut axes: Vec<isize> = (0..nd)
        .filter(|&i| raw >> i & 1 == 1)
        .map(|i| i as isize)
        .collect();
    if axes.is_empty() && nd > 0 {
        axes.push((raw as usize % nd) as isize);
    }
    if raw & 0x100 != 0 {
        for a in &mut axes {
            *a -= nd as isize;
        }
    }
    axes
}

/// A shape `b` can be broadcast against `a`'s: some of a's axes set to 1,
/// some leading axes dropped.
fn broadcast_partner(shape: &[usize], raw: u16) -> Vec<usize> {
    let drop = (raw as usize >> 8) % (shape.len() + 1);
    shape[drop..]
        .iter()
        .enumerate()
        .map(|(i, &d)| if raw >> i & 1 == 1 { 1 } else { d })
        .collect()
}

fn indices_below(rng: &mut Rng, n: usize, count: usize) -> Vec<usize> {
    (0..count).map(|_| rng.below(n as u64) as usize).collect()
}

fn index_array(rng: &mut Rng, shape: &[usize], below: usize) -> IndexArray {
    let count: usize = shape.iter().product();
    indices(indices_below(rng, below, count), shape).expect("index shape")
}

/// A 4-D shape (N, C, H, W) for convolution and pooling inputs.
fn nchw(p: u16, c: usize) -> [usize; 4] {
    [
        1 + (p as usize & 1),
        c,
        3 + (p as usize >> 1) % 4,
        3 + (p as usize >> 3) % 4,
    ]
}

/// Clamp bounds of a step (op 19), shared by the planner and the kink check.
fn clamp_bounds(p: &[u16; 6]) -> (Option<f64>, Option<f64>) {
    (
        [None, Some(-0.5), Some(-1.0)][p[1] as usize % 3],
        [None, Some(0.5), Some(1.2)][p[2] as usize % 3],
    )
}

/// Input shape and parameters of a pooling step (ops 70 and 71), shared by
/// the planner and the tie check.
fn pool_params(p: &[u16; 6]) -> ([usize; 4], Pool2dParams) {
    let kernel = [1 + p[3] as usize % 3, 1 + (p[3] as usize >> 2) % 3];
    let pp = Pool2dParams {
        kernel,
        stride: [1 + p[4] as usize % 3, 1 + (p[4] as usize >> 2) % 3],
        padding: [
            (p[5] as usize % 2).min(kernel[0] / 2),
            (p[5] as usize >> 1 & 1).min(kernel[1] / 2),
        ],
    };
    (nchw(p[1], 1 + p[2] as usize % 3), pp)
}

/// Boxes a step function; the bound gives the closure its higher-ranked
/// signature (inference alone would not tie the result to the pool).
fn step_fn<F>(f: F) -> StepFn
where
    F: for<'t> Fn(&Pool<'t>) -> Result<Var<'t, f64>> + Send + Sync + 'static,
{
    Arc::new(f)
}

macro_rules! planned {
    ($what:expr, |$pool:ident| $body:expr) => {
        Planned {
            op: 0,
            what: $what,
            f: step_fn(move |$pool| $body),
        }
    };
}

/// Turns one raw step into a planned step over the current `pool`, or
/// `None` when the op does not apply to the picked operands.
fn plan_step(s: &Step, pool: &Pool<'_>) -> Option<Planned> {
    let n = pool.len();
    let ia = n - 1 - s.a as usize % n;
    let ib = s.b as usize % n;
    let ic = s.c as usize % n;
    let a = pool[ia].value();
    let sa = a.shape().to_vec();
    let nd = sa.len();
    let p = s.p;
    let unary = |name: &str, f: for<'t> fn(&Var<'t, f64>) -> Var<'t, f64>| -> Option<Planned> {
        Some(planned!(format!("{name}(#{ia})"), |v| Ok(f(&v[ia]))))
    };
    let scalar: f64 = [-1.5, -0.5, 0.3, 0.7, 1.0, 2.0, 2.5][p[0] as usize % 7];
    Some(match s.op {
        0 => unary("neg", |x| x.neg())?,
        1 => unary("exp", |x| x.exp())?,
        2 => unary("log(x²+½)", |x| pos_of(x).log())?,
        3 => unary("log1p(x²)", |x| x.square().log1p())?,
        4 => unary("expm1", |x| x.expm1())?,
        5 => unary("sqrt(x²+½)", |x| pos_of(x).sqrt())?,
        6 => unary("sin", |x| x.sin())?,
        7 => unary("cos", |x| x.cos())?,
        8 => unary("tanh", |x| x.tanh())?,
        9 => unary("sigmoid", |x| x.sigmoid())?,
        10 => unary("erf", |x| x.erf())?,
        11 => unary("abs", |x| x.abs())?,
        12 => unary("relu", |x| x.relu())?,
        13 => planned!(format!("leaky_relu(#{ia}, 0.1)"), |v| Ok(
            v[ia].leaky_relu(0.1)
        )),
        14 => planned!(format!("elu(#{ia}, {})", scalar.abs()), |v| Ok(
            v[ia].elu(scalar.abs())
        )),
        15 => planned!(format!("gelu(#{ia})"), |v| Ok(v[ia].gelu(GeluApprox::None))),
        16 => planned!(format!("gelu_tanh(#{ia})"), |v| Ok(
            v[ia].gelu(GeluApprox::Tanh)
        )),
        17 => unary("silu", |x| x.silu())?,
        18 => unary("softplus", |x| x.softplus())?,
        19 => {
            let (lo, hi) = clamp_bounds(&p);
            planned!(format!("clamp(#{ia}, {lo:?}, {hi:?})"), |v| v[ia]
                .clamp(lo, hi))
        }
        20 => unary("square", |x| x.square())?,
        21 => unary("recip(x²+½)", |x| pos_of(x).recip())?,
        22 => unary("rsqrt(x²+½)", |x| pos_of(x).rsqrt())?,
        23 => planned!(format!("pow_scalar(x²+½ #{ia}, {scalar})"), |v| Ok(
            pos_of(&v[ia]).pow_scalar(scalar)
        )),
        24 => planned!(format!("add_scalar(#{ia}, {scalar})"), |v| Ok(
            v[ia].add_scalar(scalar)
        )),
        25 => planned!(format!("mul_scalar(#{ia}, {scalar})"), |v| Ok(
            v[ia].mul_scalar(scalar)
        )),
        26 => planned!(format!("div_scalar(#{ia}, {scalar})"), |v| Ok(
            v[ia].div_scalar(scalar)
        )),
        27 => planned!(format!("rsub_scalar(#{ia}, {scalar})"), |v| Ok(
            v[ia].rsub_scalar(scalar)
        )),
        28 => unary("sign", |x| x.sign())?,
        29..=36 => {
            // Binary ops with broadcasting; sometimes the small side first.
            let sb = broadcast_partner(&sa, p[1]);
            let swap = p[2] & 1 == 1;
            let which = s.op;
            let what = format!(
                "{}(#{ia} {sa:?}, #{ib} as {sb:?}{})",
                ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "where"]
                    [(which - 29) as usize],
                if swap { ", swapped" } else { "" }
            );
            let mut rng = step_rng(s, 1);
            let cond: Tensor<f64> = Tensor::from_vec(
                (0..a.len()).map(|_| rng.below(2) as f64).collect(),
                sa.as_slice(),
            )
            .ok()?;
            planned!(what, |v| {
                let x = v[ia].clone();
                let y = conform(&v[ib], &sb)?;
                let (l, r) = if swap { (y, x) } else { (x, y) };
                match which {
                    29 => l.add(&r),
                    30 => l.sub(&r),
                    31 => l.mul(&r),
                    32 => l.div(&pos_of(&r)),
                    33 => pos_of(&l).pow(&r.tanh()),
                    34 => l.maximum(&r),
                    35 => l.minimum(&r),
                    _ => {
                        if swap {
                            r.where_(&cond, &l)
                        } else {
                            l.where_(&cond, &r)
                        }
                    }
                }
            })
        }
        37..=44 => {
            if nd == 0 {
                return None;
            }
            let axes = axes_of(p[1], nd);
            let keep = p[2] & 1 == 1;
            let which = s.op;
            let name = [
                "sum",
                "mean",
                "max",
                "min",
                "prod",
                "var",
                "std",
                "logsumexp",
            ][(which - 37) as usize];
            let correction = p[3] as usize % 2;
            planned!(
                format!("{name}(#{ia} {sa:?}, axes {axes:?}, keepdim {keep})"),
                |v| {
                    let x = &v[ia];
                    match which {
                        37 => x.sum_axes(&axes, keep),
                        38 => x.mean_axes(&axes, keep),
                        39 => x.max_axes(&axes, keep),
                        40 => x.min_axes(&axes, keep),
                        41 => x.prod_axes(&axes, keep),
                        42 => x.var_with(&axes, keep, correction),
                        43 => x.std_axes(&axes, keep),
                        _ => x.logsumexp_axes(&axes, keep),
                    }
                }
            )
        }
        45 | 46 => {
            if nd == 0 {
                return None;
            }
            let axis = axis_of(p[1], nd) as isize - if p[2] & 1 == 1 { nd as isize } else { 0 };
            let log = s.op == 46;
            planned!(
                format!(
                    "{}(#{ia} {sa:?}, {axis})",
                    if log { "log_softmax" } else { "softmax" }
                ),
                |v| if log {
                    v[ia].log_softmax(axis)
                } else {
                    v[ia].softmax(axis)
                }
            )
        }
        47 => {
            let which = p[1] % 5;
            let name = ["sum_all", "mean_all", "max_all", "min_all", "prod_all"][which as usize];
            planned!(format!("{name}(#{ia})"), |v| match which {
                0 => Ok(v[ia].sum()),
                1 => Ok(v[ia].mean()),
                2 => v[ia].max(),
                3 => v[ia].min(),
                _ => Ok(v[ia].prod()),
            })
        }
        48 => {
            // A random factorisation of the length, with one -1 sometimes.
            let len = a.len();
            let mut rest = len;
            let mut shape: Vec<isize> = Vec::new();
            let mut raw = p[1] as usize;
            while rest > 1 && shape.len() < 3 {
                let divs: Vec<usize> = (1..=rest).filter(|d| rest % d == 0).collect();
                let d = divs[raw % divs.len()];
                raw /= divs.len().max(2);
                shape.push(d as isize);
                rest /= d;
            }
            shape.push(rest as isize);
            if p[2] & 1 == 1 {
                let k = p[3] as usize % shape.len();
                shape[k] = -1;
            }
            planned!(format!("reshape(#{ia} {sa:?}, {shape:?})"), |v| v[ia]
                .reshape(&shape))
        }
        49 => {
            let mut perm: Vec<isize> = (0..nd as isize).collect();
            step_rng(s, 2).shuffle(&mut perm);
            planned!(format!("permute(#{ia} {sa:?}, {perm:?})"), |v| v[ia]
                .permute(&perm))
        }
        50 => {
            if nd == 0 {
                return None;
            }
            let (x, y) = (axis_of(p[1], nd) as isize, axis_of(p[2], nd) as isize);
            planned!(format!("transpose(#{ia} {sa:?}, {x}, {y})"), |v| v[ia]
                .transpose(x, y))
        }
        51 => {
            let ax = (p[1] as usize % (nd + 1)) as isize;
            planned!(format!("unsqueeze(#{ia} {sa:?}, {ax})"), |v| v[ia]
                .unsqueeze(ax))
        }
        52 => {
            let ones: Vec<usize> = (0..nd).filter(|&i| sa[i] == 1).collect();
            if ones.is_empty() {
                return None;
            }
            let ax = ones[p[1] as usize % ones.len()] as isize;
            planned!(format!("squeeze(#{ia} {sa:?}, {ax})"), |v| v[ia]
                .squeeze(ax))
        }
        53 => {
            if nd == 0 {
                return None;
            }
            let x = axis_of(p[1], nd);
            let y = x + p[2] as usize % (nd - x);
            planned!(format!("flatten(#{ia} {sa:?}, {x}, {y})"), |v| v[ia]
                .flatten(x as isize, y as isize))
        }
        54 => {
            // Expand size-1 axes and maybe add a leading axis.
            let mut to: Vec<usize> = sa
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d == 1 {
                        1 + (p[1] as usize >> i) % 3
                    } else {
                        d
                    }
                })
                .collect();
            if p[2] & 1 == 1 || to == sa {
                to.insert(0, 2 + p[3] as usize % 2);
            }
            planned!(format!("broadcast_to(#{ia} {sa:?}, {to:?})"), |v| v[ia]
                .broadcast_to(&to))
        }
        55 => {
            let to = broadcast_partner(&sa, p[1]);
            planned!(format!("sum_to(#{ia} {sa:?}, {to:?})"), |v| v[ia]
                .sum_to(&to))
        }
        56 => {
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let idx = indices_below(&mut step_rng(s, 3), sa[ax], 1 + p[2] as usize % 5);
            planned!(format!("index_select(#{ia} {sa:?}, {ax}, {idx:?})"), |v| v
                [ia]
                .index_select(ax as isize, &idx))
        }
        57 => {
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let len = sa[ax] as isize;
            let start = p[2] as isize % (2 * len) - len;
            let end = if p[3] & 1 == 1 {
                None
            } else {
                Some(p[3] as isize / 2 % (2 * len + 1) - len)
            };
            let step = 1 + p[4] as usize % 3;
            planned!(
                format!("slice(#{ia} {sa:?}, {ax}, {start}:{end:?}:{step})"),
                |v| v[ia].slice(ax as isize, start, end, step)
            )
        }
        58 => {
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let start = p[2] as usize % sa[ax];
            let length = 1 + p[3] as usize % (sa[ax] - start);
            planned!(
                format!("narrow(#{ia} {sa:?}, {ax}, {start}, {length})"),
                |v| v[ia].narrow(ax as isize, start, length)
            )
        }
        59 => {
            // Split or chunk, then join the pieces in reverse order.
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let k = 1 + p[2] as usize % sa[ax];
            let chunk = p[3] & 1 == 1;
            planned!(
                format!(
                    "{}(#{ia} {sa:?}, {k}, {ax}) reversed and concatenated",
                    if chunk { "chunk" } else { "split" }
                ),
                |v| {
                    let mut parts = if chunk {
                        v[ia].chunk(k, ax as isize)?
                    } else {
                        v[ia].split(k, ax as isize)?
                    };
                    parts.reverse();
                    let refs: Vec<&Var<'_, f64>> = parts.iter().collect();
                    Var::concat(&refs, ax as isize)
                }
            )
        }
        60 => {
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let mut sb = sa.clone();
            sb[ax] = 1 + p[2] as usize % 3;
            planned!(
                format!("concat(#{ia} {sa:?}, #{ib} as {sb:?}, {ax})"),
                |v| Var::concat(&[&v[ia], &conform(&v[ib], &sb)?], ax as isize)
            )
        }
        61 => {
            let ax = (p[1] as usize % (nd + 1)) as isize;
            planned!(format!("stack(#{ia} {sa:?}, #{ib}, #{ia}, {ax})"), |v| {
                Var::stack(&[&v[ia], &conform(&v[ib], &sa)?, &v[ia]], ax)
            })
        }
        62 => {
            let pads: Vec<(usize, usize)> = (0..nd)
                .map(|i| {
                    (
                        (p[1] as usize >> (2 * i)) % 3,
                        (p[2] as usize >> (2 * i)) % 3,
                    )
                })
                .collect();
            let value = [0.0, 0.25, -1.0][p[3] as usize % 3];
            planned!(format!("pad(#{ia} {sa:?}, {pads:?}, {value})"), |v| v[ia]
                .pad(&pads, value))
        }
        63 => {
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let count = 1 + p[2] as usize % 4;
            let idx = indices_below(&mut step_rng(s, 4), sa[ax], count);
            let mut sb = sa.clone();
            sb[ax] = count;
            planned!(
                format!("index_add(#{ia} {sa:?}, {ax}, {idx:?}, #{ib} as {sb:?})"),
                |v| v[ia].index_add(ax as isize, &idx, &conform(&v[ib], &sb)?)
            )
        }
        64 | 65 => {
            if nd == 0 {
                return None;
            }
            let ax = axis_of(p[1], nd);
            let ishape: Vec<usize> = (0..nd)
                .map(|i| {
                    if i == ax {
                        1 + (p[2] as usize >> i) % 4
                    } else {
                        1 + (p[2] as usize >> (2 * i)) % sa[i]
                    }
                })
                .collect();
            let idx = index_array(&mut step_rng(s, 5), &ishape, sa[ax]);
            if s.op == 64 {
                planned!(
                    format!("gather(#{ia} {sa:?}, {ax}, index {:?})", idx.as_slice()),
                    |v| v[ia].gather(ax as isize, &idx)
                )
            } else {
                // src may be larger than the index (issue 15's case).
                let ssrc: Vec<usize> = ishape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| d + (p[3] as usize >> i) % 2)
                    .collect();
                planned!(
                    format!(
                        "scatter_add(#{ia} {sa:?}, {ax}, index {ishape:?} {:?}, #{ib} as {ssrc:?})",
                        idx.as_slice()
                    ),
                    |v| v[ia].scatter_add(ax as isize, &idx, &conform(&v[ib], &ssrc)?)
                )
            }
        }
        66 => {
            // matmul in its 1-D, 2-D and batched forms.
            let (m, k, nn) = (
                1 + p[1] as usize % 4,
                1 + p[2] as usize % 4,
                1 + p[3] as usize % 4,
            );
            let batch = 1 + p[4] as usize % 3;
            let (sl, sr): (Vec<usize>, Vec<usize>) = match p[0] % 6 {
                0 => (vec![m, k], vec![k, nn]),
                1 => (vec![k], vec![k, nn]),
                2 => (vec![m, k], vec![k]),
                3 => (vec![k], vec![k]),
                4 => (vec![batch, m, k], vec![k, nn]),
                _ => (vec![batch, m, k], vec![1, k, nn]),
            };
            planned!(format!("matmul(#{ia} as {sl:?}, #{ib} as {sr:?})"), |v| {
                conform(&v[ia], &sl)?.matmul(&conform(&v[ib], &sr)?)
            })
        }
        67..=69 => {
            let groups = 1 + p[1] as usize % 2;
            let c = groups * (1 + p[2] as usize % 2);
            let o = groups * (1 + p[3] as usize % 2);
            let kh = 1 + p[4] as usize % 3;
            let kw = 1 + (p[4] as usize >> 2) % 3;
            let stride = [1 + (p[5] as usize & 1), 1 + (p[5] as usize >> 1 & 1)];
            let padding = [(p[5] as usize >> 2) % 3, (p[5] as usize >> 4) % 3];
            let dilation = [1 + (p[5] as usize >> 6 & 1), 1 + (p[5] as usize >> 7 & 1)];
            let cp = Conv2dParams {
                stride,
                padding,
                dilation,
                groups,
            };
            let with_bias = p[0] & 1 == 1;
            match s.op {
                67 => {
                    let xs = nchw(p[0] >> 1, c);
                    for d in 0..2 {
                        if xs[2 + d] + 2 * padding[d] < dilation[d] * ([kh, kw][d] - 1) + 1 {
                            return None;
                        }
                    }
                    let ws = [o, c / groups, kh, kw];
                    planned!(
                        format!(
                            "conv2d(#{ia} as {xs:?}, #{ib} as {ws:?}, bias {}, {cp:?})",
                            if with_bias {
                                format!("#{ic}")
                            } else {
                                "none".into()
                            }
                        ),
                        |v| {
                            let b = if with_bias {
                                Some(conform(&v[ic], &[o])?)
                            } else {
                                None
                            };
                            conform(&v[ia], &xs)?.conv2d(&conform(&v[ib], &ws)?, b.as_ref(), cp)
                        }
                    )
                }
                68 => {
                    let xs = [
                        1 + (p[0] as usize >> 1 & 1),
                        c,
                        3 + (p[0] as usize >> 2) % 6,
                    ];
                    let p1 = Conv1dParams {
                        stride: stride[0],
                        padding: padding[0],
                        dilation: dilation[0],
                        groups,
                    };
                    if xs[2] + 2 * padding[0] < dilation[0] * (kh - 1) + 1 {
                        return None;
                    }
                    let ws = [o, c / groups, kh];
                    planned!(
                        format!(
                            "conv1d(#{ia} as {xs:?}, #{ib} as {ws:?}, bias {with_bias}, {p1:?})"
                        ),
                        |v| {
                            let b = if with_bias {
                                Some(conform(&v[ic], &[o])?)
                            } else {
                                None
                            };
                            conform(&v[ia], &xs)?.conv1d(&conform(&v[ib], &ws)?, b.as_ref(), p1)
                        }
                    )
                }
                _ => {
                    // conv_transpose2d: input (N, O, H, W), weight (O, C/g, kh, kw).
                    let xs = nchw(p[0] >> 1, o);
                    for d in 0..2 {
                        let out = (xs[2 + d] - 1) * stride[d] + dilation[d] * ([kh, kw][d] - 1) + 1;
                        if out <= 2 * padding[d] {
                            return None;
                        }
                    }
                    let ws = [o, c / groups, kh, kw];
                    planned!(
                        format!("conv_transpose2d(#{ia} as {xs:?}, #{ib} as {ws:?}, {cp:?})"),
                        |v| conform(&v[ia], &xs)?.conv_transpose2d(&conform(&v[ib], &ws)?, cp)
                    )
                }
            }
        }
        70 | 71 => {
            let (xs, pp) = pool_params(&p);
            let max = s.op == 70;
            planned!(
                format!(
                    "{}(#{ia} as {xs:?}, {pp:?})",
                    if max { "max_pool2d" } else { "avg_pool2d" }
                ),
                |v| {
                    let x = conform(&v[ia], &xs)?;
                    if max {
                        x.max_pool2d(pp)
                    } else {
                        x.avg_pool2d(pp)
                    }
                }
            )
        }
        72 => {
            let (rows, classes) = (1 + p[1] as usize % 4, 2 + p[2] as usize % 4);
            let labels = indices_below(&mut step_rng(s, 6), classes, rows);
            planned!(
                format!("cross_entropy(#{ia} as [{rows}, {classes}], {labels:?})"),
                |v| conform(&v[ia], &[rows, classes])?.cross_entropy(&labels)
            )
        }
        73 => planned!(format!("mse(#{ia} {sa:?}, #{ib})"), |v| v[ia]
            .mse(&conform(&v[ib], &sa)?)),
        74 => {
            if nd > 2 {
                return None;
            }
            planned!(format!("t(#{ia} {sa:?})"), |v| v[ia].t())
        }
        _ => {
            // Fan-out of one value into a product with itself.
            planned!(format!("mul(#{ia}, #{ia})"), |v| v[ia].mul(&v[ia]))
        }
    })
}

/// Whether the op of `step` would be evaluated next to a kink or a tie of
/// its operands, so that finite differences would straddle it.
fn near_kink(s: &Step, pool: &Pool<'_>, margin: f64) -> Result<bool> {
    let n = pool.len();
    let ia = n - 1 - s.a as usize % n;
    let x = pool[ia].value();
    let p = s.p;
    Ok(match s.op {
        11 | 12 | 13 | 14 | 28 => near_zero(x, margin),
        19 => {
            let (lo, hi) = clamp_bounds(&p);
            lo.is_some_and(|l| near_zero(&x.add_scalar(-l), margin))
                || hi.is_some_and(|h| near_zero(&x.add_scalar(-h), margin))
        }
        34 | 35 => {
            // Re-evaluate the operands as the step sees them.
            let ib = s.b as usize % n;
            let sb = broadcast_partner(x.shape(), p[1]);
            let y = conform(&pool[ib], &sb)?;
            near_zero(&x.sub(y.value())?, margin)
        }
        39 | 40 if x.ndim() > 0 => {
            near_tie_to_extreme(x, &axes_of(p[1], x.ndim()), s.op == 39, margin)?
        }
        47 if p[1] % 5 == 2 || p[1] % 5 == 3 => {
            let all: Vec<isize> = (0..x.ndim() as isize).collect();
            near_tie_to_extreme(x, &all, p[1] % 5 == 2, margin)?
        }
        43 if x.ndim() > 0 => {
            // std at zero variance has an infinite derivative.
            let v = x.var_axes(&axes_of(p[1], x.ndim()), false)?;
            v.to_vec().iter().any(|&v| v < margin)
        }
        41 | 47 => {
            // prod's rule divides by the input: keep off zeros.
            x.to_vec().iter().any(|&v| v.abs() < margin) && (s.op == 41 || p[1] % 5 == 4)
        }
        70 => {
            let (xs, pp) = pool_params(&p);
            let xv = conform(&pool[ia], &xs)?.into_value();
            pool_near_tie(&xv, &pp, margin)
        }
        _ => false,
    })
}

/// The frozen plan of a program on given inputs.
#[derive(Debug, Clone)]
struct Plan {
    inputs: Vec<Tensor<f64>>,
    steps: Vec<Planned>,
}

fn make_inputs(prog: &Program, scale: usize) -> Vec<Tensor<f64>> {
    let mut rng = Rng::seed(prog.seed);
    prog.inputs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s[0] *= scale;
            Tensor::randn(s.as_slice(), &mut rng)
        })
        .collect()
}

/// Runs the program once on untracked inputs, keeping the steps that are
/// safe to difference (see the module docs).
fn plan(prog: &Program, inputs: Vec<Tensor<f64>>, margin: f64) -> Result<Plan> {
    let limit = GROWTH * inputs.iter().map(|x| x.len()).max().unwrap_or(1).max(64);
    let mut pool: Vec<Var<'_, f64>> = inputs.iter().map(|x| Var::untracked(x.clone())).collect();
    let mut steps = Vec::new();
    for s in &prog.steps {
        let Some(mut step) = plan_step(s, &pool) else {
            continue;
        };
        step.op = s.op;
        if near_kink(s, &pool, margin)? {
            continue;
        }
        let y = match (step.f)(&pool) {
            Ok(y) => y,
            Err(e) => panic!("planned step {} failed: {e}", step.what),
        };
        let v = y.value();
        if v.is_empty() || v.len() > limit || v.to_vec().iter().any(|x| !x.is_finite()) {
            continue;
        }
        // Keep magnitudes moderate with a constant scale, fixed here: a
        // power of two, so that scaling is exact and cannot create a value
        // that sits exactly on a kink or ties another scaled value.
        let m = max_abs(y.value());
        if m > 8.0 {
            let c = (-(m / 4.0).log2().ceil()).exp2();
            let inner = step.f.clone();
            steps.push(Planned {
                op: s.op,
                what: format!("{} scaled by {c:.3e}", step.what),
                f: step_fn(move |v| Ok(inner(v)?.mul_scalar(c))),
            });
            pool.push(y.mul_scalar(c));
        } else {
            steps.push(step);
            pool.push(y);
        }
    }
    Ok(Plan { inputs, steps })
}

/// The plan as a function of its inputs: replays the steps, then joins
/// every value that no later step used (flattened), so that every step
/// reaches the output.
fn run<'t>(plan: &Plan, xs: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
    let mut pool: Vec<Var<'t, f64>> = xs.to_vec();
    for s in &plan.steps {
        let y = (s.f)(&pool)?;
        pool.push(y);
    }
    let sinks: Vec<Var<'t, f64>> = pool[xs.len()..]
        .iter()
        .rev()
        .take(3)
        .map(|v| v.reshape_usize(&[v.value().len()]))
        .collect::<Result<_>>()?;
    if sinks.is_empty() {
        return xs[0].tanh().mul(&xs[0]);
    }
    let refs: Vec<&Var<'t, f64>> = sinks.iter().collect();
    Var::concat(&refs, 0)
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        0..N_OPS,
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<[u16; 6]>(),
    )
        .prop_map(|(op, a, b, c, p)| Step { op, a, b, c, p })
}

fn program_strategy(max_steps: usize) -> impl Strategy<Value = Program> {
    let shape = prop::collection::vec(1usize..=4, 1..=4).prop_map(|mut s| {
        // At most 48 elements per input: element-wise differences stay cheap.
        while s.iter().product::<usize>() > 48 {
            let i = (0..s.len()).max_by_key(|&i| s[i]).unwrap();
            s[i] -= 1;
        }
        s
    });
    (
        prop::collection::vec(shape, 1..=3),
        any::<u64>(),
        prop::collection::vec(step_strategy(), 1..=max_steps),
    )
        .prop_map(|(inputs, seed, steps)| Program {
            inputs,
            seed,
            steps,
        })
}

fn check_small(prog: &Program) -> std::result::Result<(), TestCaseError> {
    let inputs = make_inputs(prog, 1);
    let plan = plan(prog, inputs, 1e-3).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let opts = GradcheckOptions {
        second_order: true,
        ..Default::default()
    };
    let p2 = plan.clone();
    gradcheck(move |v| run(&p2, v), &plan.inputs, opts)
        .map_err(|e| TestCaseError::fail(format!("{e}\nplan: {:#?}", plan.steps)))
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides this for long runs by hand.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_graphs_match_finite_differences(prog in program_strategy(10)) {
        check_small(&prog)?;
    }
}

/// How much to stretch every input's first axis so that the largest input
/// exceeds the rayon thresholds (131,072 elements for the cheapest
/// kernels).
fn big_scale(prog: &Program) -> usize {
    let large: usize = prog
        .inputs
        .iter()
        .map(|s| s.iter().product::<usize>())
        .max()
        .unwrap_or(1);
    140_000usize.div_ceil(large)
}

/// The same kind of graphs with every input's first axis stretched so that
/// values exceed the rayon thresholds (131,072 elements for the cheapest
/// kernels), checked along random directions (element-wise differences
/// would take hours at this size).
#[test]
fn random_graphs_above_the_parallel_thresholds() {
    let count: usize = std::env::var("TAPIR_BIG_GRAPHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: count as u32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&program_strategy(8), |prog| {
            let scale = big_scale(&prog);
            let inputs = make_inputs(&prog, scale);
            // Finite differences of a sum over ~10⁵ terms: a smaller step
            // (the margin follows it) and tolerances scaled by the size.
            let eps = 1e-7;
            let plan =
                plan(&prog, inputs, 1e3 * eps).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let size: usize = plan.inputs.iter().map(|x| x.len()).sum();
            let opts = GradcheckOptions {
                eps,
                atol: 1e-6 * size as f64,
                rtol: 1e-4,
                second_order: true,
            };
            let p2 = plan.clone();
            gradcheck_directional(move |v| run(&p2, v), &plan.inputs, opts)
                .map_err(|e| TestCaseError::fail(format!("{e}\nplan: {:#?}", plan.steps)))
        })
        .unwrap();
}

// Regression cases: graphs that failed once, kept by name.

/// Issue 15: scatter_add with an index smaller than src. d loss/d src has
/// src's shape, zeros where nothing was scattered.
#[test]
fn scatter_add_src_larger_than_index() -> Result<()> {
    let tape = tapir_autograd::Tape::<f64>::new();
    let x = tape.var(Tensor::zeros([2, 3]));
    let src = tape.var(Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        [2, 4],
    )?);
    let idx = indices(vec![0, 2, 1, 1], [2, 2])?;
    let w = tape.constant(Tensor::from_vec(
        vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75],
        [2, 3],
    )?);
    let loss = w.mul(&x.scatter_add(1, &idx, &src)?)?.sum();
    let opts = tapir_autograd::GradientOptions::default();
    let g = tape.gradient_vars(&loss, &[&src], &opts)?;
    let g = g[0].as_ref().expect("connected");
    assert_eq!(g.shape(), &[2, 4]);
    assert_eq!(g.to_vec(), vec![0.5, 2.0, 0.0, 0.0, 0.25, 0.25, 0.0, 0.0]);
    // The same through the recorded (second-order) path.
    let gg = tape.gradient_graph(&loss, &[&src], None)?;
    let gg = gg[0].as_ref().expect("connected");
    assert_eq!(gg.value().to_vec(), g.to_vec());
    Ok(())
}

/// Issue 15: src also used elsewhere, so a wrong-shaped gradient would
/// have been broadcast into its accumulated gradient.
#[test]
fn scatter_add_src_with_fan_out() -> Result<()> {
    let tape = tapir_autograd::Tape::<f64>::new();
    let x = tape.var(Tensor::zeros([2, 3]));
    let src = tape.var(Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [2, 3],
    )?);
    let idx = indices(vec![1, 0, 1], [1, 3])?;
    let w = tape.constant(Tensor::from_vec(
        vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75],
        [2, 3],
    )?);
    let loss = w
        .mul(&x.scatter_add(0, &idx, &src)?)?
        .sum()
        .add(&src.sum())?;
    let opts = tapir_autograd::GradientOptions::default();
    let g = tape.gradient_vars(&loss, &[&src], &opts)?;
    assert_eq!(
        g[0].as_ref().expect("connected").to_vec(),
        vec![2.5, 0.0, 0.25, 1.0, 1.0, 1.0]
    );
    let gg = tape.gradient_graph(&loss, &[&src], None)?;
    assert_eq!(
        gg[0].as_ref().expect("connected").value().to_vec(),
        vec![2.5, 0.0, 0.25, 1.0, 1.0, 1.0]
    );
    // And second order through gradcheck (src and x both differentiated).
    let opts = GradcheckOptions {
        second_order: true,
        ..Default::default()
    };
    let xs = [
        Tensor::randn([2, 3], &mut Rng::seed(1)),
        Tensor::randn([2, 4], &mut Rng::seed(2)),
    ];
    gradcheck(
        |v| {
            let idx = indices(vec![0, 2, 1, 1], [2, 2])?;
            v[0].scatter_add(1, &idx, &v[1].tanh())?
                .mul(&v[1].narrow(1, 0, 3)?)
        },
        &xs,
        opts,
    )
}

/// The generator reaches the whole vocabulary: over a fixed sample of
/// programs, every op kind survives planning (is neither inapplicable nor
/// always dropped near a kink) many times, in the small and the big sizes.
#[test]
fn generator_covers_every_op() {
    use proptest::strategy::ValueTree;
    // (input scale, 0 for the big graphs; margin; programs; least count)
    for (scale, margin, programs, least) in [(1, 1e-3, 3000, 50), (0, 1e-4, 400, 1)] {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut kept = vec![0usize; N_OPS as usize];
        for _ in 0..programs {
            let prog = program_strategy(10)
                .new_tree(&mut runner)
                .expect("a program")
                .current();
            let scale = if scale == 0 { big_scale(&prog) } else { scale };
            let plan = plan(&prog, make_inputs(&prog, scale), margin).expect("plans");
            for s in &plan.steps {
                kept[s.op as usize] += 1;
            }
        }
        let rare: Vec<(usize, usize)> = kept
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, k)| k < least)
            .collect();
        assert!(
            rare.is_empty(),
            "op kinds (index, times kept) too rare at scale {scale}: {rare:?}"
        );
    }
}

fn step(op: u8, a: u16, b: u16, c: u16, p: [u16; 6]) -> Step {
    Step { op, a, b, c, p }
}

/// Programs the long runs found failing, kept after their fix.
#[test]
fn regression_programs() {
    let progs = [Program {
        inputs: vec![vec![4, 3]],
        seed: 13105307760648831950,
        steps: vec![
            step(4, 0, 0, 0, [0; 6]),
            step(25, 6678, 0, 0, [30347, 0, 0, 0, 0, 0]),
            step(0, 0, 0, 0, [0; 6]),
            step(0, 0, 0, 0, [0; 6]),
            step(0, 0, 0, 0, [0; 6]),
            step(19, 21757, 0, 0, [0, 0, 31580, 0, 0, 0]),
        ],
    }];
    for prog in &progs {
        if let Err(e) = check_small(prog) {
            panic!("{prog:?}: {e}");
        }
    }
}
