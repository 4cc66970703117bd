//! Every optimizer of the shared table (tests/common) that has a tuning
//! (learning rates tuned for it): each must reach the minimum of the
//! quadratic and come within 1e-3 of Rosenbrock's minimum (1, 1).

mod common;

use tapir_autograd::{Parameter, Tape};
use tapir_optim::*;
use tapir_tensor::Tensor;

fn quadratic_grad(x: &Tensor<f64>) -> Tensor<f64> {
    let a = Tensor::from_vec(vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0], [3, 3]).unwrap();
    let b = Tensor::from_vec(vec![1.0, -2.0, 0.5], [3]).unwrap();
    a.matmul(x).unwrap().sub(&b).unwrap()
}

/// Runs `steps` steps with the learning rate annealed to 0 by a cosine, so
/// that constant-step noise floors (RMSprop, Adam) do not hide convergence.
fn minimise(row: &common::Row, lr: f64, x0: &[f64], steps: usize, rosen: bool) -> Vec<f64> {
    let mut opt = row
        .build::<f64>(lr)
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
    let table = common::table();
    let rows: Vec<_> = table
        .iter()
        .filter_map(|r| r.tuning.map(|t| (r, t)))
        .collect();
    assert_eq!(rows.len(), 14);
    for (r, tuning) in rows {
        let q = minimise(r, tuning.lr.0, &[0.5, -1.0, 1.5], 5_000, false);
        let g = quadratic_grad(&Tensor::from_vec(q.clone(), [3]).unwrap());
        let gnorm = g.square().sum().item().unwrap().sqrt();
        if gnorm > 1e-4 {
            failures.push(format!(
                "{}: quadratic gradient norm {gnorm:.2e} at {q:?}",
                r.name
            ));
        }
        let x = minimise(r, tuning.lr.1, &[-1.5, 2.0], tuning.steps, true);
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
