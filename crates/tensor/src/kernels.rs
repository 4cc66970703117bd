//! Shared elementwise kernels: contiguous fast paths, broadcasting, and
//! rayon above a size threshold.

use ndarray::{ArcArray, Array, ArrayD, IxDyn, Zip};
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
pub(crate) fn map<E, F>(x: &ArcArray<E, IxDyn>, f: F) -> ArrayD<E>
where
    E: Float,
    F: Fn(E) -> E + Sync + Send,
{
    map_to(x, f)
}

/// Applies `f` to every element, producing another element type.
pub(crate) fn map_to<E, T, F>(x: &ArcArray<E, IxDyn>, f: F) -> ArrayD<T>
where
    E: Float,
    T: Copy + Send + Sync,
    F: Fn(E) -> T + Sync + Send,
{
    if let Some(s) = x.as_slice() {
        let v: Vec<T> = if s.len() >= PAR_THRESHOLD {
            s.par_iter()
                .with_min_len(PAR_CHUNK)
                .map(|&v| f(v))
                .collect()
        } else {
            s.iter().map(|&v| f(v)).collect()
        };
        return Array::from_shape_vec(x.raw_dim(), v).expect("same length");
    }
    if x.len() >= PAR_THRESHOLD {
        Zip::from(x).par_map_collect(|&v| f(v))
    } else {
        x.map(|&v| f(v))
    }
}

/// Applies `f` pairwise after NumPy broadcasting.
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
    if a.shape() == b.shape() {
        if let (Some(x), Some(y)) = (a.data.as_slice(), b.data.as_slice()) {
            let v: Vec<E> = if x.len() >= PAR_THRESHOLD_CHEAP {
                x.par_iter()
                    .zip(y.par_iter())
                    .with_min_len(PAR_CHUNK)
                    .map(|(&p, &q)| f(p, q))
                    .collect()
            } else {
                x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect()
            };
            return Ok(Tensor::from_owned(
                Array::from_shape_vec(a.data.raw_dim(), v).expect("same length"),
            ));
        }
    }
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let av = a.data.broadcast(IxDyn(&shape)).expect("checked broadcast");
    let bv = b.data.broadcast(IxDyn(&shape)).expect("checked broadcast");
    let z = Zip::from(&av).and(&bv);
    let out = if av.len() >= PAR_THRESHOLD_CHEAP {
        z.par_map_collect(|&p, &q| f(p, q))
    } else {
        z.map_collect(|&p, &q| f(p, q))
    };
    Ok(Tensor::from_owned(out))
}
