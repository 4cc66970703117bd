//! Prints the best time of one Adam step over 10 million f32 parameters (best of 200).
//! Used by benches/compare/compare.py (`--only adam`) next to PyTorch's fused Adam.

use std::time::Instant;

use tapir::optim::Adam;
use tapir::prelude::*;

fn main() {
    let n = 10_000_000;
    let mut rng = Rng::seed(0);
    let p = Parameter::new("p", Tensor::<f32>::randn([n], &mut rng));
    let g = Gradients::from_pairs(vec![(p.clone(), Some(Tensor::randn([n], &mut rng)))]);
    let mut opt = Adam::new(1e-3).build::<f32>().expect("valid lr");
    opt.apply_gradients(&g).expect("step");
    let mut best = f64::INFINITY;
    for _ in 0..200 {
        let t = Instant::now();
        opt.apply_gradients(&g).expect("step");
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("tapir adam_10M ms={:.3}", best * 1e3);
}
