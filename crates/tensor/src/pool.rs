//! A per-thread cache of small element buffers.
//!
//! Autograd on small tensors allocates and frees one buffer per op; with
//! thousands of buffers alive between the forward and the backward pass the
//! C allocator falls off its fast path (it caches only a few blocks per
//! size). A tensor of at most [`MAX_LEN`] elements whose storage nobody
//! else shares gives its buffer here when it is dropped, and the
//! elementwise kernels take buffers of the right length from here before
//! asking the allocator. Each thread keeps at most [`MAX_BYTES`] per element
//! type; beyond that, buffers are freed as usual. This is the idea of
//! PyTorch's caching allocator, reduced to small CPU buffers.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::sync::Arc;

use crate::float::Float;

/// Longest buffer (in elements) the pool keeps.
pub(crate) const MAX_LEN: usize = 256;
/// Most bytes the pool of one thread keeps per element type.
pub(crate) const MAX_BYTES: usize = 4 << 20;

pub(crate) struct Pool<E> {
    /// `buckets[n - 1]` holds buffers of length n.
    buckets: Vec<Vec<Arc<[E]>>>,
    bytes: usize,
}

impl<E> Pool<E> {
    const fn new() -> Self {
        Pool {
            buckets: Vec::new(),
            bytes: 0,
        }
    }
}

thread_local! {
    static POOL_F32: RefCell<Pool<f32>> = const { RefCell::new(Pool::new()) };
    static POOL_F64: RefCell<Pool<f64>> = const { RefCell::new(Pool::new()) };
}

/// Runs `f` on this thread's pool for `E`; `None` while the thread is
/// shutting down (or re-entered), when callers fall back to the allocator.
#[inline]
fn with<E: Float, R>(f: impl FnOnce(&mut Pool<E>) -> R) -> Option<R> {
    fn run<T: Any, E: Float, R>(
        key: &'static std::thread::LocalKey<RefCell<Pool<T>>>,
        f: impl FnOnce(&mut Pool<E>) -> R,
    ) -> Option<R> {
        key.try_with(|p| {
            let mut p = p.try_borrow_mut().ok()?;
            let p: &mut dyn Any = &mut *p;
            p.downcast_mut::<Pool<E>>().map(f)
        })
        .ok()
        .flatten()
    }
    if TypeId::of::<E>() == TypeId::of::<f32>() {
        run(&POOL_F32, f)
    } else if TypeId::of::<E>() == TypeId::of::<f64>() {
        run(&POOL_F64, f)
    } else {
        None
    }
}

/// A cached buffer of exactly `len` elements that no tensor shares (its
/// contents are stale), if the pool has one.
#[inline]
pub(crate) fn take<E: Float>(len: usize) -> Option<Arc<[E]>> {
    if len == 0 || len > MAX_LEN {
        return None;
    }
    with(|p: &mut Pool<E>| {
        let b = p.buckets.get_mut(len - 1)?.pop()?;
        p.bytes -= len * std::mem::size_of::<E>();
        Some(b)
    })
    .flatten()
}

/// Offers an unshared buffer to the pool; gives it back when the pool does
/// not keep it (too long, or the pool is full), so the caller frees it.
#[inline]
pub(crate) fn put<E: Float>(buf: Arc<[E]>) -> Option<Arc<[E]>> {
    let len = buf.len();
    let size = len * std::mem::size_of::<E>();
    if len == 0 || len > MAX_LEN {
        return Some(buf);
    }
    let mut buf = Some(buf);
    with(|p: &mut Pool<E>| {
        if p.bytes + size > MAX_BYTES {
            return;
        }
        if p.buckets.len() < len {
            p.buckets.resize_with(len, Vec::new);
        }
        p.buckets[len - 1].push(buf.take().expect("offered once"));
        p.bytes += size;
    });
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_small_unshared_buffers_up_to_the_cap() {
        // On a new thread, whose pool starts empty (and which leaves the
        // pools of the test threads alone).
        std::thread::spawn(check_pool).join().expect("no panic");
    }

    fn check_pool() {
        let a: Arc<[f32]> = Arc::from(vec![1.0f32; 16]);
        let p = Arc::as_ptr(&a) as *const f32;
        assert!(put(a).is_none(), "kept");
        assert!(take::<f32>(15).is_none(), "wrong length");
        assert!(take::<f64>(16).is_none(), "other type");
        let b = take::<f32>(16).expect("cached");
        assert_eq!(Arc::as_ptr(&b) as *const f32, p, "the same buffer");
        assert!(take::<f32>(16).is_none(), "taken once");
        let long: Arc<[f32]> = Arc::from(vec![0.0f32; MAX_LEN + 1]);
        assert!(put(long).is_some(), "too long to keep");
        // The byte cap: fill it with the longest buffers, then one more.
        let per = MAX_LEN * 4;
        for _ in 0..MAX_BYTES / per {
            assert!(put(Arc::<[f32]>::from(vec![0.0f32; MAX_LEN])).is_none());
        }
        assert!(
            put(Arc::<[f32]>::from(vec![0.0f32; MAX_LEN])).is_some(),
            "full"
        );
    }
}
