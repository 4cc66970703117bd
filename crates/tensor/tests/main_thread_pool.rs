//! `tapir_tensor::threads`: the main thread becomes thread 0 of rayon's
//! global pool, parallel ops still give the serial result, other threads
//! still get their jobs run, and the pool cannot be set twice. A plain
//! `main` (no test harness) so that the code runs on the main thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tapir_tensor::{threads, Tensor};

fn main() {
    // Three threads whatever the machine has, so the assertions below do
    // not depend on the core count. SAFETY (edition 2021: a safe fn): no
    // other thread exists yet.
    std::env::set_var("RAYON_NUM_THREADS", "3");
    // Workers spin for 30 ms after the last job (keep_warm below).
    std::env::set_var("TAPIR_SPIN_US", "30000");
    assert!(rayon::current_thread_index().is_none());

    let err = threads::set_num_threads(0).unwrap_err().to_string();
    assert!(
        err.contains("set_num_threads") && err.contains("0"),
        "{err}"
    );

    threads::init();
    assert_eq!(rayon::current_num_threads(), 3);
    assert_eq!(rayon::current_thread_index(), Some(0));
    threads::init(); // idempotent
    assert_eq!(rayon::current_thread_index(), Some(0));

    // A product big enough to run in parallel equals the serial one.
    let n = 256;
    let a: Vec<f64> = (0..n * n).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
    let b: Vec<f64> = (0..n * n).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
    let ta = Tensor::from_vec(a.clone(), [n, n]).unwrap();
    let tb = Tensor::from_vec(b.clone(), [n, n]).unwrap();
    let c = ta.matmul(&tb).unwrap().to_vec();
    for i in (0..n).step_by(37) {
        for j in (0..n).step_by(41) {
            let want: f64 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            assert_eq!(c[i * n + j], want, "c[{i},{j}]");
        }
    }

    // keep_warm: both other workers spin, take the main thread's jobs
    // while they do (the same product, the same result), and go back to
    // sleep once no job came for the spin time.
    assert_eq!(threads::spinning_workers(), 0);
    threads::keep_warm();
    let t0 = std::time::Instant::now();
    while threads::spinning_workers() < 2 && t0.elapsed().as_secs() < 5 {
        std::thread::yield_now();
    }
    assert_eq!(threads::spinning_workers(), 2);
    threads::keep_warm(); // no more than one spinner per worker
    assert_eq!(threads::spinning_workers(), 2);
    for _ in 0..3 {
        threads::keep_warm();
        assert_eq!(ta.matmul(&tb).unwrap().to_vec(), c);
    }
    // A thread outside the pool does not arm spinners.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(threads::spinning_workers(), 0);
    std::thread::spawn(threads::keep_warm).join().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_eq!(threads::spinning_workers(), 0);

    // The other two threads take work from the main thread's joins.
    let others = Arc::new(AtomicBool::new(false));
    for _ in 0..1000 {
        let o = others.clone();
        rayon::join(
            || std::thread::sleep(std::time::Duration::from_micros(200)),
            move || {
                if rayon::current_thread_index() != Some(0) {
                    o.store(true, Ordering::Relaxed);
                }
            },
        );
        if others.load(Ordering::Relaxed) {
            break;
        }
    }
    assert!(
        others.load(Ordering::Relaxed),
        "no job ran off the main thread"
    );

    // A thread outside the pool gets its parallel work done while the main
    // thread is blocked outside rayon (joining that thread).
    let t = std::thread::spawn(|| {
        let x = Tensor::from_vec((0..1 << 18).map(|i| i as f64).collect(), [1 << 18]).unwrap();
        let s = x.sum().to_vec()[0];
        let idx = rayon::current_thread_index();
        (s, idx)
    });
    let (s, idx) = t.join().unwrap();
    assert_eq!(s, ((1u64 << 18) * ((1 << 18) - 1) / 2) as f64);
    assert_eq!(idx, None);

    let err = threads::set_num_threads(2).unwrap_err().to_string();
    assert!(
        err.contains("set_num_threads") && err.contains("already"),
        "{err}"
    );
    println!("main_thread_pool: ok");
}
