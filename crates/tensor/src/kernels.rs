//! Shared elementwise kernels: contiguous fast paths, broadcasting, and
//! rayon above a size threshold.

use ndarray::{IxDyn, Zip};
use rayon::prelude::*;

use crate::error::Result;
use crate::float::Float;
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

/// Below this many elements, unary kernels (mostly transcendental: exp,
/// tanh, erf, ...), reductions and softmax stay on the calling thread: a
/// rayon fork/join costs microseconds, more than the math below it. Measured
/// by examples/par_threshold.rs: rayon pays for `exp` from 16K f32 elements
/// (1.27× at 16K and 32K, 1.7× from 64K); see docs/performance.md.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// The same threshold for the cheap binary kernels (`add`, `mul`, masks,
/// `where_`): memory-bound loops at under 0.3 ns an element, for which rayon
/// lost up to 2× below 64K elements and won from 128K (1.2×) on.
pub const PAR_THRESHOLD_CHEAP: usize = 1 << 17;

/// Elements per parallel chunk: large enough to amortise scheduling, small
/// enough to split work evenly over the cores.
pub const PAR_CHUNK: usize = 1 << 13;

/// Applies `f` to every element.
#[inline]
pub(crate) fn map<E, F>(x: &Tensor<E>, f: F) -> Tensor<E>
where
    E: Float,
    F: Fn(E) -> E + Sync + Send,
{
    let v: Vec<E> = match x.as_slice() {
        Some(s) if s.len() >= PAR_THRESHOLD => s
            .par_iter()
            .with_min_len(PAR_CHUNK)
            .map(|&v| f(v))
            .collect(),
        // One allocation, written in place (a sized iterator).
        Some(s) => return Tensor::from_slice_like(s.iter().map(|&v| f(v)).collect(), x),
        None => {
            let nd = x.nd();
            if nd.len() >= PAR_THRESHOLD {
                return Tensor::from_owned(Zip::from(&nd).par_map_collect(|&v| f(v)));
            }
            return Tensor::from_owned(nd.map(|&v| f(v)));
        }
    };
    Tensor::from_contiguous(v, x.shape())
}

/// Applies `f` pairwise after NumPy broadcasting.
#[inline]
pub(crate) fn zip_with<E, F>(
    op: &'static str,
    a: &Tensor<E>,
    b: &Tensor<E>,
    f: F,
) -> Result<Tensor<E>>
where
    E: Float,
    F: Fn(E, E) -> E + Sync + Send,
{
    if same_shape(a.shape(), b.shape()) {
        if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
            if x.len() < PAR_THRESHOLD_CHEAP {
                let buf = x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect();
                return Ok(Tensor::from_slice_like(buf, a));
            }
            let v: Vec<E> = x
                .par_iter()
                .zip(y.par_iter())
                .with_min_len(PAR_CHUNK)
                .map(|(&p, &q)| f(p, q))
                .collect();
            return Ok(Tensor::from_contiguous(v, a.shape()));
        }
    }
    zip_broadcast(op, a, b, f)
}

/// Shape equality without a `memcmp` call (shapes are a few words).
#[inline]
fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The general (broadcasting or strided) case of [`zip_with`].
fn zip_broadcast<E, F>(op: &'static str, a: &Tensor<E>, b: &Tensor<E>, f: F) -> Result<Tensor<E>>
where
    E: Float,
    F: Fn(E, E) -> E + Sync + Send,
{
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let (an, bn) = (a.nd(), b.nd());
    let av = an.broadcast(IxDyn(&shape)).expect("checked broadcast");
    let bv = bn.broadcast(IxDyn(&shape)).expect("checked broadcast");
    let z = Zip::from(&av).and(&bv);
    let out = if av.len() >= PAR_THRESHOLD_CHEAP {
        z.par_map_collect(|&p, &q| f(p, q))
    } else {
        z.map_collect(|&p, &q| f(p, q))
    };
    Ok(Tensor::from_owned(out))
}
