//! Every optimizer and variant, 30 steps on a quadratic with a non-diagonal
//! Hessian, on Rosenbrock and on a small MLP, against PyTorch float64
//! trajectories (`fixtures/gen_optim_fixtures.py` -> `optim_trajectories.txt`):
//! 1e-10 relative in f64, 1e-4 in f32 (relative to max(|θ|, 0.1)). The seed's EMA momentum is checked
//! against PyTorch's SGD(lr = α(1−β), momentum = β), its exact equivalent.

use tapir_autograd::{Parameter, Tape, Var};
use tapir_optim::{
    Adadelta, Adagrad, Adam, Adamax, Momentum, Nadam, Optimizer, Radam, Rmsprop, Sgd, WeightDecay,
};
use tapir_tensor::{Float, Tensor};
use tapir_testutil::{parse_fixtures, Case};

const FIXTURES: &str = include_str!("fixtures/optim_trajectories.txt");

fn build<E: Float>(config: &str, lr: f64) -> Optimizer<E> {
    let l2 = WeightDecay::L2(0.01);
    let sgd = |momentum, weight_decay| {
        Sgd {
            lr,
            momentum,
            weight_decay,
        }
        .build()
    };
    let heavy = |dampening| Momentum::HeavyBall {
        momentum: 0.9,
        dampening,
    };
    let r = match config {
        "sgd" => sgd(Momentum::None, WeightDecay::None),
        "sgd_momentum" => sgd(heavy(0.0), WeightDecay::None),
        "sgd_dampening" => sgd(heavy(0.5), WeightDecay::None),
        "sgd_nesterov" => sgd(Momentum::Nesterov { momentum: 0.9 }, WeightDecay::None),
        "sgd_wd" => sgd(heavy(0.0), l2),
        "ema_momentum" => sgd(Momentum::Ema { beta: 0.9 }, WeightDecay::None),
        "adam" => Adam {
            lr,
            ..Default::default()
        }
        .build(),
        "adam_amsgrad" => Adam {
            lr,
            amsgrad: true,
            ..Default::default()
        }
        .build(),
        "adam_wd" => Adam {
            lr,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "adamw" => Adam::adamw(lr, 0.01).build(),
        "adamw_amsgrad" => Adam {
            amsgrad: true,
            ..Adam::adamw(lr, 0.01)
        }
        .build(),
        "adamax" => Adamax {
            lr,
            ..Default::default()
        }
        .build(),
        "nadam" => Nadam {
            lr,
            ..Default::default()
        }
        .build(),
        "nadam_wd" => Nadam {
            lr,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "radam" => Radam {
            lr,
            ..Default::default()
        }
        .build(),
        "radam_wd" => Radam {
            lr,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "adagrad" => Adagrad {
            lr,
            ..Default::default()
        }
        .build(),
        "adagrad_decay" => Adagrad {
            lr,
            lr_decay: 0.01,
            initial_accumulator: 0.1,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "rmsprop" => Rmsprop {
            lr,
            ..Default::default()
        }
        .build(),
        "rmsprop_momentum" => Rmsprop {
            lr,
            momentum: 0.9,
            ..Default::default()
        }
        .build(),
        "rmsprop_centered" => Rmsprop {
            lr,
            momentum: 0.9,
            ..Default::default()
        }
        .build_centered(),
        "rmsprop_wd" => Rmsprop {
            lr,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "adadelta" => Adadelta {
            lr,
            ..Default::default()
        }
        .build(),
        "adadelta_wd" => Adadelta {
            lr,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "adamax_wd" => Adamax {
            lr,
            weight_decay: l2,
            ..Default::default()
        }
        .build(),
        "nadam_decoupled" => Nadam {
            lr,
            weight_decay: WeightDecay::Decoupled(0.1),
            ..Default::default()
        }
        .build(),
        "radam_decoupled" => Radam {
            lr,
            weight_decay: WeightDecay::Decoupled(0.1),
            ..Default::default()
        }
        .build(),
        other => panic!("no optimizer for fixture config {other}"),
    };
    r.unwrap()
}

/// The loss of a problem, written with the tape.
fn loss<'t, E: Float>(problem: &str, c: &Case, tape: &'t Tape<E>, ps: &[Var<'t, E>]) -> Var<'t, E> {
    let f = |v: f64| E::from_f64(v);
    match problem {
        "quadratic" => {
            let a = tape.constant(
                Tensor::from_vec(
                    [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0]
                        .map(f)
                        .to_vec(),
                    [3, 3],
                )
                .unwrap(),
            );
            let b = tape.constant(Tensor::from_vec([1.0, -2.0, 0.5].map(f).to_vec(), [3]).unwrap());
            let x = &ps[0];
            let quad = x.matmul(&a.matmul(x).unwrap()).unwrap().mul_scalar(f(0.5));
            quad.sub(&x.mul(&b).unwrap().sum()).unwrap()
        }
        "rosenbrock" => {
            let x = ps[0].narrow(0, 0, 1).unwrap();
            let y = ps[0].narrow(0, 1, 1).unwrap();
            let a = x.rsub_scalar(f(1.0)).square();
            let b = y.sub(&x.square()).unwrap().square().mul_scalar(f(100.0));
            a.add(&b).unwrap().sum()
        }
        "mlp" => {
            let x = tape.constant(c.t("X"));
            let y = tape.constant(c.t("Y"));
            let h = x.matmul(&ps[0]).unwrap().add(&ps[1]).unwrap().tanh();
            h.matmul(&ps[2])
                .unwrap()
                .add(&ps[3])
                .unwrap()
                .mse(&y)
                .unwrap()
        }
        other => panic!("unknown problem {other}"),
    }
}

/// Checks |got − want| ≤ rtol·max(|want|, floor) at every step.
fn run<E: Float>(rtol: f64, floor: f64) -> usize {
    let cases = parse_fixtures(FIXTURES);
    let mut checked = 0;
    for c in &cases {
        let (config, problem) = c.name.split_once("__").expect("config__problem");
        let lr = c.t::<f64>("lr").item().unwrap();
        let traj: Vec<Tensor<f64>> = (0..)
            .map_while(|k| c.tensors.get(&format!("p{k}")).cloned())
            .collect();
        let params: Vec<Parameter<E>> = traj
            .iter()
            .enumerate()
            .map(|(k, t)| {
                Parameter::new(
                    format!("p{k}"),
                    t.narrow(0, 0, 1).unwrap().squeeze(0).unwrap().cast(),
                )
            })
            .collect();
        let mut opt = build::<E>(config, lr);
        for step in 1..=30 {
            let tape = Tape::new();
            let vars: Vec<Var<'_, E>> = params.iter().map(|p| tape.watch(p)).collect();
            let l = loss(problem, c, &tape, &vars);
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
