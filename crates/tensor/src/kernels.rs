//! Shared elementwise kernels: contiguous fast paths, broadcasting, and
//! rayon above a size threshold.

use std::mem::MaybeUninit;
use std::sync::Arc;

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

/// Whether the AVX2 + FMA copies of the small loops below may run.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Whether the AVX-512 (F, VL, DQ, BW) copies may run.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && has_avx2()
}

/// Defines a small (single-threaded) elementwise loop as a function that
/// runs it in an AVX-512 copy or an AVX2 + FMA copy when the CPU has those
/// and in the baseline x86-64 (SSE2) copy otherwise: the body is
/// instantiated once per copy, which doubles (AVX2) or quadruples
/// (AVX-512) the vector width of `exp`/`tanh`/`sigmoid`/`erf` and friends.
/// Rust never contracts `a * b + c` into an FMA, so every copy gives the
/// same bits (tested below).
macro_rules! simd_loop {
    ($(#[$doc:meta])* fn $name:ident<F: Fn($($fin:ty),*) -> E>($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        #[inline]
        pub(crate) fn $name<E: Float, F: Fn($($fin),*) -> E>($($arg: $ty),*) {
            #[inline(always)]
            fn body<E: Float, F: Fn($($fin),*) -> E>($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<E: Float, F: Fn($($fin),*) -> E>($($arg: $ty),*) {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
            unsafe fn avx512<E: Float, F: Fn($($fin),*) -> E>($($arg: $ty),*) {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            if has_avx512() {
                // SAFETY: the CPU supports these features, checked just above.
                return unsafe { avx512($($arg),*) };
            }
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

simd_loop!(
    /// `out[i] = f(s[i])`.
    fn map_fill<F: Fn(E) -> E>(s: &[E], out: &mut [MaybeUninit<E>], f: &F) {
        for (o, &v) in out.iter_mut().zip(s) {
            o.write(f(v));
        }
    }
);

simd_loop!(
    /// `out[i] = f(x[i], y[i])`.
    fn zip_fill<F: Fn(E, E) -> E>(x: &[E], y: &[E], out: &mut [MaybeUninit<E>], f: &F) {
        for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
            o.write(f(p, q));
        }
    }
);

simd_loop!(
    /// `s[i] = f(s[i])`.
    fn map_inplace<F: Fn(E) -> E>(s: &mut [E], f: &F) {
        for v in s {
            *v = f(*v);
        }
    }
);

simd_loop!(
    /// `x[i] = f(x[i], y[i])`.
    fn zip_inplace<F: Fn(E, E) -> E>(x: &mut [E], y: &[E], f: &F) {
        for (p, &q) in x.iter_mut().zip(y) {
            *p = f(*p, q);
        }
    }
);

/// The same two copies for a loop without a closure: its per-element math
/// written inline (`#[inline(always)]` functions all the way down), for
/// bodies too large for the compiler to inline a closure's call into the
/// loop.
macro_rules! simd_fn {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        #[inline]
        pub(crate) fn $name<E: Float>($($arg: $ty),*) {
            #[inline(always)]
            fn body<E: Float>($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<E: Float>($($arg: $ty),*) {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
            unsafe fn avx512<E: Float>($($arg: $ty),*) {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            if has_avx512() {
                // SAFETY: the CPU supports these features, checked just above.
                return unsafe { avx512($($arg),*) };
            }
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

simd_fn!(
    /// `out[i] = gelu(x[i])`, exact GELU. A kernel of its own rather than
    /// [`map_fill`] with a closure: the f32 evaluation is long enough that
    /// the compiler stopped inlining the closure into the vectorised loop.
    fn gelu_exact_fill(x: &[E], out: &mut [MaybeUninit<E>]) {
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(v.gelu_erf());
        }
    }
);

simd_fn!(
    /// `g[i] ← g[i]·gelu′(x[i])`, exact GELU.
    fn gelu_exact_grad_inplace(g: &mut [E], x: &[E]) {
        for (g, &x) in g.iter_mut().zip(x) {
            *g = x.gelu_erf_grad(*g);
        }
    }
);

simd_fn!(
    /// `g[i] ← g[i]·gelu′(x[i])`, tanh form.
    fn gelu_tanh_grad_inplace(g: &mut [E], x: &[E]) {
        for (g, &x) in g.iter_mut().zip(x) {
            *g = crate::elementwise::gelu_tanh_grad(*g, x);
        }
    }
);

simd_fn!(
    /// Softmax of each row of `n` elements of `x` into `out`: max (NaN
    /// wins; a non-finite max shifts by 0, as the generic path), e^(x − max),
    /// the sum in 16 interleaved partial sums, one division per element.
    fn softmax_rows(x: &[E], out: &mut [E], n: usize) {
        for (xr, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let mut mx = [E::NEG_INFINITY; 16];
            let mut xc = xr.chunks_exact(16);
            for c in &mut xc {
                for (m, &v) in mx.iter_mut().zip(c) {
                    *m = m.max_nan(v);
                }
            }
            let m = xc
                .remainder()
                .iter()
                .chain(mx.iter())
                .fold(E::NEG_INFINITY, |a, &v| a.max_nan(v));
            let m = if m.is_finite() { m } else { E::ZERO };
            for (oi, &xi) in o.iter_mut().zip(xr) {
                *oi = (xi - m).exp();
            }
            let mut acc = [E::ZERO; 16];
            let mut oc = o.chunks_exact(16);
            for c in &mut oc {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a += v;
                }
            }
            let mut total = oc.remainder().iter().fold(E::ZERO, |a, &v| a + v);
            for a in acc {
                total += a;
            }
            for oi in o.iter_mut() {
                *oi /= total;
            }
        }
    }
);

/// [`map_inplace`], over chunks in parallel from `threshold` elements.
#[inline]
pub(crate) fn map_inplace_par<E: Float, F: Fn(E) -> E + Sync>(
    s: &mut [E],
    f: &F,
    threshold: usize,
) {
    if s.len() < threshold {
        map_inplace(s, f);
    } else {
        s.par_chunks_mut(PAR_CHUNK).for_each(|c| map_inplace(c, f));
    }
}

/// [`zip_inplace`], over chunks in parallel from `threshold` elements.
#[inline]
pub(crate) fn zip_inplace_par<E: Float, F: Fn(E, E) -> E + Sync>(
    x: &mut [E],
    y: &[E],
    f: &F,
    threshold: usize,
) {
    assert_eq!(x.len(), y.len(), "zip of unequal lengths");
    if x.len() < threshold {
        zip_inplace(x, y, f);
    } else {
        x.par_chunks_mut(PAR_CHUNK)
            .zip(y.par_chunks(PAR_CHUNK))
            .for_each(|(p, q)| zip_inplace(p, q, f));
    }
}

/// A buffer of `len` elements, filled by `fill`, which must write every
/// element: from this thread's pool when it has one of that length,
/// otherwise newly allocated.
#[inline]
fn new_buffer<E: Float>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<E>])) -> Arc<[E]> {
    if let Some(mut buf) = crate::pool::take::<E>(len) {
        let out = Arc::get_mut(&mut buf).expect("pooled buffers are unshared");
        // SAFETY: MaybeUninit<E> has E's layout, and the fill only writes
        // initialised values, so the slice stays initialised.
        fill(unsafe { &mut *(out as *mut [E] as *mut [MaybeUninit<E>]) });
        return buf;
    }
    let mut buf = Arc::<[E]>::new_uninit_slice(len);
    fill(Arc::get_mut(&mut buf).expect("a new allocation is unique"));
    // SAFETY: every caller's fill writes all `len` elements.
    unsafe { buf.assume_init() }
}

/// `f` of each pair into a new buffer.
#[inline]
fn zip_small<E: Float, F: Fn(E, E) -> E>(x: &[E], y: &[E], f: &F) -> Arc<[E]> {
    // The fill writes min(x, y) elements; `new_buffer` needs all of them.
    assert_eq!(x.len(), y.len(), "zip of unequal lengths");
    new_buffer(x.len(), |out| zip_fill(x, y, out, f))
}

/// Applies `f` to every element.
#[inline]
pub(crate) fn map<E, F>(x: &Tensor<E>, f: F) -> Tensor<E>
where
    E: Float,
    F: Fn(E) -> E + Sync + Send,
{
    match x.as_slice() {
        // Chunks in parallel, each through the dispatched (vectorised)
        // loop: a per-element rayon map would call `f` out of line.
        Some(_) => map_kernel(x, |c, o| map_fill(c, o, &f)),
        None => {
            let nd = x.nd();
            if nd.len() >= PAR_THRESHOLD {
                return Tensor::from_owned(Zip::from(&nd).par_map_collect(|&v| f(v)));
            }
            Tensor::from_owned(nd.map(|&v| f(v)))
        }
    }
}

/// A new tensor from a kernel that fills `out` from `x` elementwise (every
/// element written), run over chunks in parallel for large tensors.
#[inline]
pub(crate) fn map_kernel<E, K>(x: &Tensor<E>, kernel: K) -> Tensor<E>
where
    E: Float,
    K: Fn(&[E], &mut [MaybeUninit<E>]) + Sync,
{
    let x = x.contiguous();
    let s = x.as_slice().expect("contiguous");
    let buf = new_buffer(s.len(), |out| {
        if s.len() >= PAR_THRESHOLD {
            out.par_chunks_mut(PAR_CHUNK)
                .zip(s.par_chunks(PAR_CHUNK))
                .for_each(|(o, c)| kernel(c, o));
        } else {
            kernel(s, out);
        }
    });
    Tensor::from_slice_like(buf, &x)
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
    if a.same_shape(b) {
        if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
            if x.len() < PAR_THRESHOLD_CHEAP {
                return Ok(Tensor::from_slice_like(zip_small(x, y, &f), a));
            }
            let buf = new_buffer(x.len(), |out| {
                out.par_chunks_mut(PAR_CHUNK)
                    .zip(x.par_chunks(PAR_CHUNK).zip(y.par_chunks(PAR_CHUNK)))
                    .for_each(|(o, (p, q))| zip_fill(p, q, o, &f))
            });
            return Ok(Tensor::from_slice_like(buf, a));
        }
    }
    if let Some(t) = zip_suffix(a, b, &f) {
        return Ok(t);
    }
    if let Some(t) = zip_channels(a, b, &f) {
        return Ok(t);
    }
    zip_broadcast(op, a, b, f)
}

/// The per-channel broadcast of a conv bias or a norm's weight: `b`'s
/// shape, less leading 1s, is `[C, 1, .., 1]` against `a`'s `[.., C, H, ..]`
/// (a contiguous `a`, `b` any length-C vector). Each of `b`'s values meets
/// one contiguous run of `a`, one vectorised loop per run (the general
/// strided zip cost 8% of a CNN step).
fn zip_channels<E, F>(a: &Tensor<E>, b: &Tensor<E>, f: &F) -> Option<Tensor<E>>
where
    E: Float,
    F: Fn(E, E) -> E + Sync + Send,
{
    let (xs, bs) = (a.as_slice()?, b.as_slice()?);
    let (big, small) = (a.shape(), b.shape());
    let lead = small.iter().take_while(|&&d| d == 1).count();
    let s = &small[lead..];
    let trail = s.iter().rev().take_while(|&&d| d == 1).count();
    let mid = &s[..s.len() - trail];
    if mid.is_empty() || small.len() > big.len() || trail == 0 {
        return None;
    }
    let k = big.len() - s.len();
    if big[k..k + mid.len()] != *mid {
        return None;
    }
    let inner: usize = big[k + mid.len()..].iter().product();
    let n = bs.len();
    let block = n * inner;
    if inner == 0 || block == 0 {
        return None;
    }
    let fill = |o: &mut [MaybeUninit<E>], c: &[E]| {
        for ((o, c), &bv) in o.chunks_mut(inner).zip(c.chunks(inner)).zip(bs) {
            map_fill(c, o, &|v| f(v, bv));
        }
    };
    let buf = new_buffer(xs.len(), |out| {
        if xs.len() >= PAR_THRESHOLD_CHEAP {
            out.par_chunks_mut(block)
                .zip(xs.par_chunks(block))
                .for_each(|(o, c)| fill(o, c));
        } else {
            for (o, c) in out.chunks_mut(block).zip(xs.chunks(block)) {
                fill(o, c)
            }
        }
    });
    Some(Tensor::from_slice_like(buf, a))
}

/// Whether `small`'s shape, less leading 1s, ends `big`'s shape: `small`
/// repeats along `big`'s leading axes (a bias over rows, a mask over heads).
fn is_suffix(big: &[usize], small: &[usize]) -> bool {
    let lead = small.iter().take_while(|&&d| d == 1).count();
    let s = &small[lead..];
    s.len() <= big.len() && big[big.len() - s.len()..] == *s && small.len() <= big.len()
}

/// The common broadcast of a contiguous tensor against a contiguous one
/// repeated along its leading axes: one vectorised row loop per repeat
/// (chunks in parallel when large) instead of the general strided zip.
fn zip_suffix<E, F>(a: &Tensor<E>, b: &Tensor<E>, f: &F) -> Option<Tensor<E>>
where
    E: Float,
    F: Fn(E, E) -> E + Sync + Send,
{
    let (x, y) = (a.as_slice()?, b.as_slice()?);
    let big_is_a = x.len() >= y.len();
    let (big, small) = if big_is_a { (a, b) } else { (b, a) };
    let n = small.len();
    if n == 0 || !is_suffix(big.shape(), small.shape()) {
        return None;
    }
    let (bs, ss) = (big.as_slice()?, small.as_slice()?);
    let fill = |o: &mut [MaybeUninit<E>], c: &[E]| {
        if big_is_a {
            zip_fill(c, ss, o, f)
        } else {
            zip_fill(ss, c, o, f)
        }
    };
    let buf = new_buffer(bs.len(), |out| {
        if bs.len() >= PAR_THRESHOLD_CHEAP {
            let per = (PAR_CHUNK / n).max(1) * n;
            out.par_chunks_mut(per)
                .zip(bs.par_chunks(per))
                .for_each(|(o, c)| {
                    for (o, c) in o.chunks_mut(n).zip(c.chunks(n)) {
                        fill(o, c)
                    }
                });
        } else {
            for (o, c) in out.chunks_mut(n).zip(bs.chunks(n)) {
                fill(o, c)
            }
        }
    });
    Some(Tensor::from_slice_like(buf, big))
}

/// The general (broadcasting or strided) case of [`zip_with`].
fn zip_broadcast<E, F>(op: &'static str, a: &Tensor<E>, b: &Tensor<E>, f: F) -> Result<Tensor<E>>
where
    E: Float,
    F: Fn(E, E) -> E + Sync + Send,
{
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    crate::shape::check_alloc::<E>(op, &shape)?;
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

/// Defines `$name`, which runs `$body` in the widest SIMD copy the CPU
/// has (AVX-512, AVX2 + FMA, or the baseline build): the same code
/// compiled three times, as `kernels::simd_loop` does for the elementwise
/// loops. Used as `dispatched!(/// doc\n fn name => body(arg: Type, ...));`
/// with `body` an `#[inline(always)]` generic function returning `()`.
macro_rules! dispatched {
    ($(#[$m:meta])* fn $name:ident => $body:ident($($arg:ident: $ty:ty),*)) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name<E: Float>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide<E: Float>($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2<E: Float>($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if crate::kernels::has_avx512() {
                    // SAFETY: the CPU has these features, checked just above.
                    return unsafe { wide($($arg),*) };
                }
                if crate::kernels::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatched;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    fn bits<E: Float>(v: &[E]) -> Vec<u64> {
        v.iter().map(|x| x.to_f64().to_bits()).collect()
    }

    /// The last-axis softmax kernel agrees with the generic row path (a
    /// transposed input takes the generic one), including -inf and NaN rows.
    #[test]
    fn softmax_row_kernel_matches_the_generic_path() {
        let mut rng = Rng::seed(4);
        for (r, c) in [(3, 5), (7, 37), (300, 128)] {
            let mut v = Tensor::<f64>::randn([r, c], &mut rng).to_vec();
            v[..c].fill(f64::NEG_INFINITY);
            v[c + 1] = f64::NAN;
            v[2 * c] = 1e4;
            let x = Tensor::from_vec(v, [r, c]).unwrap();
            let fast = x.softmax(-1).unwrap().to_vec();
            let slow = x.t().unwrap().softmax(0).unwrap().t().unwrap().to_vec();
            for (a, b) in fast.iter().zip(&slow) {
                assert!(
                    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-15 * (1.0 + b.abs()),
                    "{a} vs {b}"
                );
            }
        }
    }

    /// The suffix and per-channel broadcast fast paths give the general
    /// path's values, both operand orders, small and parallel sizes.
    #[test]
    fn suffix_broadcast_matches_the_general_zip() {
        let mut rng = Rng::seed(8);
        for (sa, sb) in [
            (vec![4, 5], vec![5]),
            (vec![1, 5], vec![3, 2, 5]),
            (vec![2, 3, 4], vec![1, 3, 4]),
            (vec![300, 512], vec![512]),
            (vec![64, 2, 64, 64], vec![1, 1, 64, 64]),
            (vec![3, 4, 5, 6], vec![4, 1, 1]),
            (vec![64, 32, 24, 24], vec![32, 1, 1]),
            (vec![2, 4, 5], vec![1, 4, 1]),
        ] {
            let a = Tensor::<f32>::randn(&sa, &mut rng);
            let b = Tensor::<f32>::randn(&sb, &mut rng);
            let f = |p: f32, q: f32| p - 2.0 * q;
            let fast = zip_with("t", &a, &b, f).unwrap();
            let slow = zip_broadcast("t", &a, &b, f).unwrap();
            assert_eq!(fast.shape(), slow.shape());
            assert_eq!(fast.to_vec(), slow.to_vec(), "{sa:?} {sb:?}");
            let fast = zip_with("t", &b, &a, f).unwrap();
            let slow = zip_broadcast("t", &b, &a, f).unwrap();
            assert_eq!(fast.to_vec(), slow.to_vec(), "{sb:?} {sa:?}");
        }
    }

    /// The dispatched loops (AVX2 + FMA where the CPU has them) give the
    /// bits of plain scalar evaluation, for new buffers and in place.
    #[test]
    fn simd_copies_match_scalar_math() {
        let mut rng = Rng::seed(3);
        let x = Tensor::<f32>::uniform([1000], -30.0, 30.0, &mut rng);
        let y = Tensor::<f32>::uniform([1000], 0.5, 2.0, &mut rng);
        let (xs, ys) = (x.to_vec(), y.to_vec());
        let scalar = |f: fn(f32) -> f32| bits(&xs.iter().map(|&v| f(v)).collect::<Vec<_>>());
        assert_eq!(bits(&x.tanh().to_vec()), scalar(Float::tanh));
        assert_eq!(bits(&x.exp().to_vec()), scalar(Float::exp));
        assert_eq!(bits(&x.sigmoid().to_vec()), scalar(Float::sigmoid));
        assert_eq!(bits(&x.sin().to_vec()), scalar(Float::sin));
        let div: Vec<f32> = xs.iter().zip(&ys).map(|(a, b)| a / b).collect();
        assert_eq!(bits(&x.div(&y).unwrap().to_vec()), bits(&div));
        // In place: a private copy, so the storage is unshared.
        let own = Tensor::from_vec(xs.clone(), [1000]).unwrap();
        assert_eq!(
            bits(&own.map_into(Float::tanh).to_vec()),
            scalar(Float::tanh)
        );
        let own = Tensor::from_vec(xs.clone(), [1000]).unwrap();
        let got = own.zip_map_into(&y, |a, b| a / b).unwrap();
        assert_eq!(bits(&got.to_vec()), bits(&div));
        // A shared tensor is never written through.
        let shared = x.clone();
        let _ = shared.map_into(|v| v * 2.0);
        assert_eq!(x.to_vec(), xs);
    }

    /// GELU's own kernels (forward through `map_kernel`, backward in
    /// place) give the scalar `Float::gelu_erf` / `gelu_erf_grad` bits: small
    /// and parallel sizes, a transposed (non-contiguous) input, f32 and f64.
    #[test]
    fn gelu_kernels_match_scalar_math() {
        fn check<E: Float>(rng: &mut Rng) {
            for n in [37, 3 * PAR_THRESHOLD + 5] {
                let x = Tensor::<E>::uniform([n], E::from_f64(-15.0), E::from_f64(15.0), rng);
                let g = Tensor::<E>::uniform([n], E::from_f64(-2.0), E::from_f64(2.0), rng);
                let (xs, gs) = (x.to_vec(), g.to_vec());
                let want: Vec<E> = xs.iter().map(|v| v.gelu_erf()).collect();
                assert_eq!(x.gelu(crate::GeluApprox::None).to_vec(), want);
                let want: Vec<E> = xs
                    .iter()
                    .zip(&gs)
                    .map(|(v, g)| v.gelu_erf_grad(*g))
                    .collect();
                let got = x.gelu_backward(g.clone(), crate::GeluApprox::None).unwrap();
                assert_eq!(got.to_vec(), want);
            }
            let x = Tensor::<E>::uniform([40, 30], E::from_f64(-6.0), E::from_f64(6.0), rng)
                .t()
                .unwrap();
            assert!(!x.is_contiguous());
            let want: Vec<E> = x.to_vec().iter().map(|v| v.gelu_erf()).collect();
            let y = x.gelu(crate::GeluApprox::None);
            assert_eq!(y.shape(), &[30, 40]);
            assert_eq!(y.to_vec(), want);
        }
        let mut rng = Rng::seed(11);
        check::<f32>(&mut rng);
        check::<f64>(&mut rng);
    }

    /// Dropping one of two tensors that share a buffer must not hand the
    /// buffer to the pool: the next result would overwrite the survivor.
    #[test]
    fn shared_buffers_are_not_recycled() {
        // On a new thread: an empty pool, whatever ran before.
        std::thread::spawn(check_recycling)
            .join()
            .expect("no panic");
    }

    fn check_recycling() {
        let x = Tensor::<f32>::full([16], 0.5);
        let a = x.exp();
        let b = a.clone();
        let want = b.to_vec();
        drop(a);
        let c = x.tanh();
        assert_ne!(c.view().as_ptr(), b.view().as_ptr());
        assert_eq!(b.to_vec(), want);
        // Once the last owner is gone, the buffer is reused.
        let p = b.view().as_ptr();
        drop(b);
        let d = x.sigmoid();
        assert_eq!(d.view().as_ptr(), p);
        assert_eq!(d.to_vec(), vec![0.5f32.sigmoid(); 16]);
    }
}
