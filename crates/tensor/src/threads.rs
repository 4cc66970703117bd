//! The thread pool the parallel kernels run on.
//!
//! Tapir's kernels split large ops across rayon's global pool. Left to
//! itself, rayon starts one worker per core, and a thread outside the pool
//! that calls into it — a program's main thread — queues the job, wakes a
//! worker and sleeps until the workers are done. A training step makes
//! dozens of parallel calls, and on a 2-core machine each one then paid for
//! waking a worker and waking the main thread again, with three threads
//! competing for two cores: 11% of a tiny transformer's step went to the
//! kernel's scheduler (docs/performance.md). [`init`] builds the global
//! pool with the main thread as its thread 0 instead, so the main thread
//! runs its share of every op itself and only the other cores' workers are
//! woken — what OpenMP does for PyTorch, whose calling thread is its
//! master thread.

use std::sync::Once;

static INIT: Once = Once::new();

/// Threads the pool gets: `RAYON_NUM_THREADS` when it is a positive
/// number (rayon's own variable), else the number of cores.
fn wanted() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Makes the main thread thread 0 of rayon's global pool, once per
/// process; `Tape::new` and every parallel matrix product call it.
///
/// It does nothing when called from another thread than the main one
/// (a thread that may end while the pool lives must not be one of its
/// threads), when the pool would have one thread (the main thread alone
/// would then be the only one to run jobs that other threads queue, and it
/// runs them only while it is inside a parallel call itself), when the
/// global pool was already built (by the program, or by an earlier
/// parallel call of any library), or when the environment variable
/// `TAPIR_THREADS` is `rayon` (keep rayon's default pool).
///
/// A program that wants its own pool builds it with
/// `rayon::ThreadPoolBuilder::build_global` before its first Tapir op.
pub fn init() {
    if INIT.is_completed() {
        return;
    }
    if std::thread::current().name() != Some("main") {
        return;
    }
    INIT.call_once(|| {
        if std::env::var_os("TAPIR_THREADS").is_some_and(|v| v == "rayon") {
            return;
        }
        let n = wanted();
        if n < 2 {
            return;
        }
        // An error means the global pool exists already: keep it.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .use_current_thread()
            .build_global();
    });
}

/// Sets the number of threads parallel ops use, as `torch.set_num_threads`
/// does; call it before the first Tapir op. With `n ≥ 2` and a call from
/// the main thread, the main thread is one of the `n` (see [`init`]);
/// otherwise the pool has `n` worker threads of its own.
///
/// # Errors
/// `InvalidArgument` when `n` is 0, or when the global pool exists already
/// (rayon's pool is built once per process, by the first parallel op or by
/// an earlier call).
pub fn set_num_threads(n: usize) -> crate::Result<()> {
    if n == 0 {
        return Err(crate::Error::InvalidArgument {
            op: "set_num_threads",
            msg: "the pool needs at least one thread, got 0".into(),
        });
    }
    let mut builder = rayon::ThreadPoolBuilder::new().num_threads(n);
    if n >= 2 && std::thread::current().name() == Some("main") {
        builder = builder.use_current_thread();
    }
    builder
        .build_global()
        .map_err(|e| crate::Error::InvalidArgument {
            op: "set_num_threads",
            msg: format!(
                "the thread pool was already built ({e}); call it before the first parallel op"
            ),
        })
}
