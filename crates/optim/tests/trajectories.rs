//! Every optimizer and variant of the shared table (tests/common) that has
//! fixtures, 30 steps on a quadratic with a non-diagonal
//! Hessian, on Rosenbrock and on a small MLP, against PyTorch float64
//! trajectories (`fixtures/gen_optim_fixtures.py` -> `optim_trajectories.txt`):
//! 1e-10 relative in f64, 1e-4 in f32 (relative to max(|θ|, 0.1)). The seed's EMA momentum is checked
//! against PyTorch's SGD(lr = α(1−β), momentum = β), its exact equivalent.

mod common;

use tapir_autograd::{Tape, Var};
use tapir_optim::Optimizer;
use tapir_tensor::Float;
use tapir_testutil::parse_fixtures;

const FIXTURES: &str = include_str!("fixtures/optim_trajectories.txt");

/// The table's row for a fixture config.
fn build<E: Float>(config: &str, lr: f64) -> Optimizer<E> {
    common::table()
        .into_iter()
        .find(|r| r.fixtures && r.name == config)
        .unwrap_or_else(|| panic!("no optimizer for fixture config {config}"))
        .build(lr)
}

#[test]
fn every_table_row_with_fixtures_has_them() {
    let cases = parse_fixtures(FIXTURES);
    for r in common::table().iter().filter(|r| r.fixtures) {
        let n = cases
            .iter()
            .filter(|c| c.name.split_once("__").map(|(cfg, _)| cfg) == Some(r.name))
            .count();
        assert_eq!(n, 3, "{}: fixtures for 3 problems", r.name);
    }
}

/// Checks |got − want| ≤ rtol·max(|want|, floor) at every step.
fn run<E: Float>(rtol: f64, floor: f64) -> usize {
    let cases = parse_fixtures(FIXTURES);
    let mut checked = 0;
    for c in &cases {
        let (config, problem) = c.name.split_once("__").expect("config__problem");
        let lr = c.t::<f64>("lr").item().unwrap();
        let (params, traj) = common::start::<E>(c);
        let mut opt = build::<E>(config, lr);
        for step in 1..=30 {
            let tape = Tape::new();
            let vars: Vec<Var<'_, E>> = params.iter().map(|p| tape.watch(p)).collect();
            let l = common::loss(problem, c, &tape, &vars);
            let grads = tape.gradient(&l, &params).unwrap();
            opt.apply_gradients(&grads).unwrap();
            for (k, p) in params.iter().enumerate() {
                let want = traj[k].narrow(0, step, 1).unwrap().squeeze(0).unwrap();
                for (i, (got, w)) in p.value().to_vec().iter().zip(want.to_vec()).enumerate() {
                    let got = got.to_f64();
                    assert!(
                        (got - w).abs() <= rtol * w.abs().max(floor),
                        "{}: step {step}, p{k}[{i}]: got {got}, PyTorch {w}",
                        c.name
                    );
                }
            }
        }
        checked += 1;
    }
    checked
}

#[test]
fn every_optimizer_matches_pytorch_in_f64() {
    assert_eq!(run::<f64>(1e-10, 1e-3), 81);
}

#[test]
fn every_optimizer_matches_pytorch_in_f32() {
    // The parameters are O(1); near zero, f32 rounding of the gradient
    // (Rosenbrock's are ~100) moves them by up to ~1e-5 after RAdam's
    // unrectified first steps, so the relative bound has a floor of 0.1.
    assert_eq!(run::<f32>(1e-4, 0.1), 81);
}
