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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

static INIT: Once = Once::new();
/// Whether [`init`] built the global pool with the main thread as thread 0.
static OURS: AtomicBool = AtomicBool::new(false);
/// Workers currently inside [`spin`].
static SPINNERS: AtomicUsize = AtomicUsize::new(0);
/// How long an idle worker keeps looking for work before it sleeps, in µs.
static SPIN_US: AtomicU64 = AtomicU64::new(DEFAULT_SPIN_US);

/// The default of [`SPIN_US`]: a few ops' worth of serial bookkeeping
/// between two parallel ops of a step stays well below it.
pub const DEFAULT_SPIN_US: u64 = 2_000;

thread_local! {
    static IN_SPIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

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
        let built = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .use_current_thread()
            .build_global();
        if built.is_ok() {
            if let Some(us) = std::env::var("TAPIR_SPIN_US")
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                SPIN_US.store(us, Ordering::Relaxed);
            }
            OURS.store(true, Ordering::Release);
        }
    });
}

/// Keeps the pool's other workers looking for work for a while
/// ([`DEFAULT_SPIN_US`], or `TAPIR_SPIN_US` microseconds; 0 turns it off)
/// instead of going to sleep after each parallel op, so that the next op
/// does not pay for waking them through the kernel: OpenMP's spin-wait,
/// which PyTorch's parallel loops get. Called by the main thread at each
/// recorded op and each optimizer step; costs an atomic load when the
/// workers are already awake, and does nothing unless [`init`] built the
/// pool.
///
/// The price: an idle worker keeps its core busy for up to that time after
/// the last parallel op.
#[inline]
pub fn keep_warm() {
    if !OURS.load(Ordering::Acquire) {
        return;
    }
    let want = rayon::current_num_threads().saturating_sub(1);
    if SPINNERS.load(Ordering::Relaxed) >= want {
        return;
    }
    arm(want);
}

/// How many of the pool's workers are in [`keep_warm`]'s spin-wait now (for
/// tests and diagnostics).
pub fn spinning_workers() -> usize {
    SPINNERS.load(Ordering::Acquire)
}

#[cold]
fn arm(want: usize) {
    // Only the main thread (thread 0) arms: a spinner spawned by a worker
    // would sit in that worker's own queue.
    if rayon::current_thread_index() != Some(0) || SPIN_US.load(Ordering::Relaxed) == 0 {
        return;
    }
    while SPINNERS.load(Ordering::Relaxed) < want {
        SPINNERS.fetch_add(1, Ordering::AcqRel);
        rayon::spawn(spin);
    }
}

/// Runs the pool's pending jobs as they come (stealing them from the main
/// thread's queue) until none came for the spin time.
fn spin() {
    // The main thread can pick this job up itself while it waits inside a
    // parallel op, and a spinner can be stolen by a worker already
    // spinning: neither may stay.
    if rayon::current_thread_index() == Some(0) || IN_SPIN.with(|f| f.replace(true)) {
        SPINNERS.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let limit = Duration::from_micros(SPIN_US.load(Ordering::Relaxed));
    let mut last = Instant::now();
    let mut idle = 0u32;
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                last = Instant::now();
                idle = 0;
            }
            Some(rayon::Yield::Idle) => {
                if last.elapsed() > limit {
                    break;
                }
                idle = idle.wrapping_add(1);
                if idle % 16 == 0 {
                    // Lets another runnable thread of the process (a data
                    // loader's) have this core now and then.
                    std::thread::yield_now();
                } else {
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                }
            }
            None => break,
        }
    }
    IN_SPIN.with(|f| f.set(false));
    SPINNERS.fetch_sub(1, Ordering::AcqRel);
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
