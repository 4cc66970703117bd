//! Keeping large freed buffers in the process instead of returning them to
//! the kernel after every op.
//!
//! glibc's malloc serves blocks above a threshold (128 KiB at start,
//! adjusted at run time) with a fresh `mmap` and gives them back with
//! `munmap` when freed, and trims the heap's free top above another. A
//! training step allocates and frees the same multi-megabyte activations
//! and gradients every step, so each step paid for mapping fresh pages:
//! a page fault per 4 KiB touched, zeroing by the kernel, and TLB
//! shootdowns across the threads on unmapping — 25–35% of a LeNet step
//! (docs/performance.md). [`tune_allocator`] raises both thresholds once per
//! process so that those blocks are reused from the heap, as PyTorch users
//! get by preloading jemalloc or tcmalloc.

use std::sync::Once;

/// Blocks up to this size come from the heap (glibc's largest allowed
/// value on 64-bit targets: 32 MiB).
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept for reuse before trimming.
pub const TRIM_THRESHOLD: i32 = 64 << 20;
/// Most malloc arenas (glibc's default is 8 per core).
pub const ARENA_MAX: i32 = 2;

static TUNE: Once = Once::new();

/// Raises glibc malloc's mmap and trim thresholds ([`MMAP_THRESHOLD`],
/// [`TRIM_THRESHOLD`]) and caps its arenas at [`ARENA_MAX`], once per
/// process; `Tape::new` calls it. Does nothing
/// on other C libraries, or when the environment variable `TAPIR_MALLOC`
/// is `system` (keep the C library's defaults).
///
/// The cost: up to `TRIM_THRESHOLD` bytes of freed memory per arena stay
/// mapped in the process rather than going back to the system.
pub fn tune_allocator() {
    TUNE.call_once(|| {
        if std::env::var_os("TAPIR_MALLOC").is_some_and(|v| v == "system") {
            return;
        }
        imp::tune();
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::os::raw::c_int;

    // <malloc.h>
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_ARENA_MAX: c_int = -8;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    pub(super) fn tune() {
        // SAFETY: mallopt is glibc's documented, thread-safe tuning call;
        // it only changes two thresholds of the allocator (it takes the
        // allocator's lock) and has no memory-safety preconditions.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, super::MMAP_THRESHOLD);
            mallopt(M_TRIM_THRESHOLD, super::TRIM_THRESHOLD);
            // One arena per core at most: with an arena per thread (glibc
            // allows 8 per core), each kept up to the trim threshold, and
            // many threads (test harnesses) held tens of GiB.
            mallopt(M_ARENA_MAX, super::ARENA_MAX);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn tune() {}
}
