//! One table of optimizers, each with learning rates tuned here: every one
//! must reach the minimum of the quadratic and come within 1e-3 of
//! Rosenbrock's minimum (1, 1).

use tapir_autograd::{Parameter, Tape};
use tapir_optim::*;
use tapir_tensor::Tensor;

struct Row {
    name: &'static str,
    make: fn(f64) -> Optimizer<f64>,
    /// Learning rate on the quadratic and on Rosenbrock.
    lr: (f64, f64),
    /// Steps allowed on Rosenbrock.
    steps: usize,
}

fn table() -> Vec<Row> {
    vec![
        Row {
            name: "sgd",
            make: |lr| Sgd::new(lr).unwrap(),
            lr: (0.1, 2e-3),
            steps: 60_000,
        },
        Row {
            name: "sgd_momentum",
            make: |lr| {
                Sgd {
                    lr,
                    momentum: Momentum::HeavyBall {
                        momentum: 0.9,
                        dampening: 0.0,
                    },
                    ..Default::default()
                }
                .build()
                .unwrap()
            },
            lr: (0.05, 2e-4),
            steps: 60_000,
        },
        Row {
            name: "sgd_nesterov",
            make: |lr| {
                Sgd {
                    lr,
                    momentum: Momentum::Nesterov { momentum: 0.9 },
                    ..Default::default()
                }
                .build()
                .unwrap()
            },
            lr: (0.05, 2e-4),
            steps: 60_000,
        },
        Row {
            name: "ema_momentum",
            make: |lr| {
                Sgd {
                    lr,
                    momentum: Momentum::Ema { beta: 0.9 },
                    ..Default::default()
                }
                .build()
                .unwrap()
            },
            lr: (0.2, 2e-3),
            steps: 60_000,
        },
        Row {
            name: "adam",
            make: |lr| Adam::new(lr).unwrap(),
            lr: (0.05, 0.01),
            steps: 20_000,
        },
        Row {
            name: "adam_amsgrad",
            make: |lr| {
                Adam {
                    lr,
                    amsgrad: true,
                    ..Default::default()
                }
                .build()
                .unwrap()
            },
            lr: (0.05, 0.01),
            steps: 20_000,
        },
        Row {
            name: "adamw",
            make: |lr| Adam::adamw(lr, 0.0).build().unwrap(),
            lr: (0.05, 0.01),
            steps: 20_000,
        },
        Row {
            name: "adamax",
            make: |lr| Adamax::new(lr).unwrap(),
            lr: (0.05, 0.01),
            steps: 20_000,
        },
        Row {
            name: "nadam",
            make: |lr| Nadam::new(lr).unwrap(),
            lr: (0.05, 0.01),
            steps: 20_000,
        },
        Row {
            name: "radam",
            make: |lr| Radam::new(lr).unwrap(),
            lr: (0.05, 0.01),
            steps: 20_000,
        },
        Row {
            name: "adagrad",
            make: |lr| Adagrad::new(lr).unwrap(),
            lr: (0.5, 0.5),
            steps: 60_000,
        },
        Row {
            name: "rmsprop",
            make: |lr| Rmsprop::new(lr).unwrap(),
            lr: (0.01, 1e-3),
            steps: 60_000,
        },
        Row {
            name: "rmsprop_centered",
            make: |lr| {
                Rmsprop {
                    lr,
                    momentum: 0.5,
                    ..Default::default()
                }
                .build_centered()
                .unwrap()
            },
            lr: (0.01, 1e-3),
            steps: 60_000,
        },
        Row {
            name: "adadelta",
            make: |lr| Adadelta::new(lr).unwrap(),
            lr: (1.0, 20.0),
            steps: 150_000,
        },
    ]
}

fn quadratic_grad(x: &Tensor<f64>) -> Tensor<f64> {
    let a = Tensor::from_vec(vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0], [3, 3]).unwrap();
    let b = Tensor::from_vec(vec![1.0, -2.0, 0.5], [3]).unwrap();
    a.matmul(x).unwrap().sub(&b).unwrap()
}

/// Runs `steps` steps with the learning rate annealed to 0 by a cosine, so
/// that constant-step noise floors (RMSprop, Adam) do not hide convergence.
fn minimise(
    make: fn(f64) -> Optimizer<f64>,
    lr: f64,
    x0: &[f64],
    steps: usize,
    rosen: bool,
) -> Vec<f64> {
    let mut opt = make(lr)
        .with_schedule(Cosine {
            t_max: steps as u64,
            eta_min: 0.0,
        })
        .unwrap();
    let opt = &mut opt;
    let p = Parameter::new("x", Tensor::from_vec(x0.to_vec(), [x0.len()]).unwrap());
    for _ in 0..steps {
        let tape = Tape::new();
        let v = tape.watch(&p);
        let loss = if rosen {
            let x = v.narrow(0, 0, 1).unwrap();
            let y = v.narrow(0, 1, 1).unwrap();
            x.rsub_scalar(1.0)
                .square()
                .add(&y.sub(&x.square()).unwrap().square().mul_scalar(100.0))
                .unwrap()
                .sum()
        } else {
            let g = quadratic_grad(&p.value());
            // ½xᵀAx − bᵀx has gradient Ax − b: ⟨x, Ax − b⟩ with the second
            // factor held constant has the same first-order gradient.
            v.mul(&tape.constant(g)).unwrap().sum()
        };
        let grads = tape.gradient(&loss, [&p]).unwrap();
        opt.apply_gradients(&grads).unwrap();
    }
    p.value().to_vec()
}

#[test]
fn every_optimizer_converges_on_the_quadratic_and_rosenbrock() {
    let mut failures = Vec::new();
    for r in table() {
        let q = minimise(r.make, r.lr.0, &[0.5, -1.0, 1.5], 5_000, false);
        let g = quadratic_grad(&Tensor::from_vec(q.clone(), [3]).unwrap());
        let gnorm = g.square().sum().item().unwrap().sqrt();
        if gnorm > 1e-4 {
            failures.push(format!(
                "{}: quadratic gradient norm {gnorm:.2e} at {q:?}",
                r.name
            ));
        }
        let x = minimise(r.make, r.lr.1, &[-1.5, 2.0], r.steps, true);
        let d = ((x[0] - 1.0).powi(2) + (x[1] - 1.0).powi(2)).sqrt();
        if d > 1e-3 {
            failures.push(format!(
                "{}: Rosenbrock ended at {x:?}, {d:.2e} from (1, 1)",
                r.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
