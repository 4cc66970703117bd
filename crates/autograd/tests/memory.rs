//! Memory returns to where it was: 1,000 training steps of a small model
//! leave the tape size and the process's resident memory flat. This is the
//! only test in its binary, so the process's memory is this test's alone.

use tapir_autograd::{Parameter, Tape};
use tapir_tensor::{Rng, Tensor};

fn rss_kb() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

#[test]
fn memory_does_not_grow_over_a_thousand_steps() {
    let mut rng = Rng::seed(3);
    let w = Parameter::new(
        "w",
        Tensor::<f32>::randn([32, 16], &mut rng).mul_scalar(0.1),
    );
    let b = Parameter::new("b", Tensor::<f32>::zeros([16]));
    let x: Tensor<f32> = Tensor::randn([64, 32], &mut rng);
    let labels: Vec<usize> = (0..64).map(|i| i % 16).collect();
    let mut shape_of_tape = None;
    let mut rss_after_warmup = 0;
    for step in 0..1000 {
        let tape = Tape::new();
        let logits = tape.constant(x.clone()).matmul(&tape.watch(&w)).unwrap() + tape.watch(&b);
        let loss = logits.cross_entropy(&labels).unwrap();
        let g = tape.gradient(&loss, [&w, &b]).unwrap();
        for p in [&w, &b] {
            let d = g[p].mul_scalar(0.1);
            p.update(|v| *v = v.sub(&d).unwrap());
        }
        let now = (tape.len(), tape.value_bytes());
        assert_eq!(
            *shape_of_tape.get_or_insert(now),
            now,
            "tape grew at step {step}"
        );
        if step == 100 {
            rss_after_warmup = rss_kb().unwrap_or(0);
        }
    }
    if let Some(end) = rss_kb() {
        assert!(
            end < rss_after_warmup + 4096,
            "resident memory grew from {rss_after_warmup} kB to {end} kB"
        );
    }
    // Nothing but the parameter itself holds its storage after the tapes died.
    let mut v = w.value();
    let p = v.view().as_ptr();
    drop(w);
    assert_eq!(v.as_mut_slice().as_ptr(), p, "storage was still shared");
}
