//! Prints the best time of one Adam step over 10 million f32 parameters (best of 200).
//! Used by benches/compare/compare.py (`--only adam`) next to PyTorch's fused Adam.
//! `--bf16` (`--bf16-sr`) keeps the moments in bf16, rounded to nearest
//! (stochastically), to measure what the narrower state costs.

use std::time::Instant;

use tapir::optim::Adam;
use tapir::prelude::*;

fn main() {
    let n = 10_000_000;
    let mut rng = Rng::seed(0);
    let p = Parameter::new("p", Tensor::<f32>::randn([n], &mut rng));
    let g = Gradients::from_pairs(vec![(p.clone(), Some(Tensor::randn([n], &mut rng)))]);
    let arg = std::env::args().nth(1);
    let state = match arg.as_deref() {
        Some("--bf16") => StateDtype::Bf16(Rounding::Nearest),
        Some("--bf16-sr") => StateDtype::Bf16(Rounding::Stochastic),
        _ => StateDtype::Full,
    };
    let mut opt = Adam::new(1e-3)
        .state_dtype(state)
        .build::<f32>()
        .expect("valid lr");
    opt.apply_gradients(&g).expect("step");
    let mut best = f64::INFINITY;
    for _ in 0..200 {
        let t = Instant::now();
        opt.apply_gradients(&g).expect("step");
        best = best.min(t.elapsed().as_secs_f64());
    }
    let tag = match state {
        StateDtype::Full => "",
        StateDtype::Bf16(Rounding::Nearest) => "_bf16",
        StateDtype::Bf16(Rounding::Stochastic) => "_bf16_sr",
    };
    println!("tapir adam_10M{tag} ms={:.3}", best * 1e3);
}
