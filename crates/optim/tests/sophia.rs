//! Sophia against optax.contrib.sophia (`fixtures/gen_large_fixtures.py`
//! -> `sophia_trajectories.txt`), with the Hessian estimates computed by
//! Tapir's own second-order autodiff: Hutchinson's u ⊙ Hu on the
//! quadratic, Rosenbrock and the small MLP, Gauss-Newton-Bartlett on a
//! softmax regression. Each estimate is first checked against torch's
//! double-backward, then fed to the optimizer; the parameters of all 30
//! steps match optax's within 1e-10 (f64).

mod common;

use tapir_autograd::{Gradients, Parameter, Tape, Var};
use tapir_optim::{
    gauss_newton_bartlett, gauss_newton_bartlett_with, hutchinson, objective, rademacher,
    Optimizer, Sophia,
};
use tapir_tensor::{Rng, Tensor};
use tapir_testutil::{parse_fixtures, Case};

const FIXTURES: &str = include_str!("fixtures/sophia_trajectories.txt");
const STEPS: usize = 30;
const K: usize = 3;

fn close(got: &Tensor<f64>, want: &Tensor<f64>, rtol: f64, what: &str) {
    for (i, (g, w)) in got.to_vec().iter().zip(want.to_vec()).enumerate() {
        assert!(
            (g - w).abs() <= rtol * w.abs().max(1e-3),
            "{what}[{i}]: got {g}, reference {w}"
        );
    }
}

fn softmax_logits<'t>(
    c: &Case,
    t: &'t Tape<f64>,
    w: &Parameter<f64>,
) -> tapir_autograd::Result<Var<'t, f64>> {
    t.constant(c.t("X")).matmul(&t.param(w))
}

fn labels_of(t: &Tensor<f64>) -> Vec<usize> {
    t.to_vec().iter().map(|&v| v as usize).collect()
}

#[test]
fn sophia_with_tapirs_estimates_matches_optax() {
    let mut n = 0;
    for c in parse_fixtures(FIXTURES) {
        let (_, problem) = c.name.split_once("__").unwrap();
        let lr = c.t::<f64>("lr").item().unwrap();
        let traj: Vec<Tensor<f64>> = (0..)
            .map_while(|k| c.tensors.get(&format!("p{k}")).cloned())
            .collect();
        let params: Vec<Parameter<f64>> = traj
            .iter()
            .enumerate()
            .map(|(k, t)| {
                Parameter::new(
                    format!("p{k}"),
                    t.narrow(0, 0, 1).unwrap().squeeze(0).unwrap(),
                )
            })
            .collect();
        let refs: Vec<&Parameter<f64>> = params.iter().collect();
        let mut opt: Optimizer<f64> = Sophia::new(lr).build().unwrap();
        let loss = objective(|t: &Tape<f64>| {
            if problem == "softmax" {
                return softmax_logits(&c, t, &params[0])?
                    .cross_entropy(&labels_of(&c.t("labels")));
            }
            let vars: Vec<Var<'_, f64>> = params.iter().map(|p| t.param(p)).collect();
            Ok(common::loss(problem, &c, t, &vars))
        });
        for step in 0..STEPS {
            let estimate: Option<Gradients<f64>> = (step % K == 0).then(|| {
                let h = if problem == "softmax" {
                    let y = labels_of(&c.t(&format!("y_{step}")));
                    gauss_newton_bartlett_with(&refs, |t| softmax_logits(&c, t, &params[0]), &y)
                        .unwrap()
                } else {
                    let u: Vec<Tensor<f64>> = (0..params.len())
                        .map(|k| c.t(&format!("u{k}_{step}")))
                        .collect();
                    hutchinson(&refs, loss, &u).unwrap()
                };
                for (k, p) in params.iter().enumerate() {
                    close(
                        &h[p],
                        &c.t(&format!("h{k}_{step}")),
                        1e-10,
                        &format!("{}: estimate h{k} at step {step}", c.name),
                    );
                }
                h
            });
            let tape = Tape::new();
            let l = loss(&tape).unwrap();
            opt.apply_gradients(&tape.gradient(&l, refs.iter().copied()).unwrap())
                .unwrap();
            if let Some(h) = estimate {
                opt.observe_hessian(&h).unwrap();
            }
            for (k, p) in params.iter().enumerate() {
                let want = traj[k].narrow(0, step + 1, 1).unwrap().squeeze(0).unwrap();
                close(
                    &p.value(),
                    &want,
                    1e-10,
                    &format!("{}: step {}, p{k}", c.name, step + 1),
                );
            }
        }
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn hutchinson_is_unbiased_on_a_quadratic() {
    // f = ½ xᵀAx: H = A, so the mean of u ⊙ Au over many draws → diag A.
    let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
    let x = Parameter::new(
        "x",
        Tensor::<f64>::from_vec(vec![0.3, -0.2, 0.9], [3]).unwrap(),
    );
    let loss = objective(|t: &Tape<f64>| {
        let am = t.constant(Tensor::from_vec(a.to_vec(), [3, 3]).unwrap());
        let v = t.param(&x);
        Ok(v.matmul(&am.matmul(&v)?)?.mul_scalar(0.5))
    });
    let mut rng = Rng::seed(1);
    let mut mean = [0.0; 3];
    let n = 4000;
    for _ in 0..n {
        let h = hutchinson(&[&x], loss, &rademacher(&[&x], &mut rng)).unwrap();
        for (m, v) in mean.iter_mut().zip(h[&x].to_vec()) {
            *m += v / n as f64;
        }
    }
    for (m, d) in mean.iter().zip([4.0, 3.0, 2.0]) {
        assert!((m - d).abs() < 0.05, "mean {m}, diagonal {d}");
    }
}

#[test]
fn gnb_samples_labels_from_the_model_and_errors_are_clear() {
    let w = Parameter::new("w", Tensor::<f64>::zeros([2, 3]));
    let x = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2]).unwrap();
    let mut rng = Rng::seed(4);
    let (h, labels) = gauss_newton_bartlett(
        &[&w],
        |t| t.constant(x.clone()).matmul(&t.param(&w)),
        &mut rng,
    )
    .unwrap();
    assert_eq!(labels.len(), 3);
    assert!(labels.iter().all(|&l| l < 3));
    assert!(
        h[&w].to_vec().iter().all(|&v| v >= 0.0),
        "B·g⊙g is non-negative"
    );
    // Not logits of [batch, classes].
    let e = gauss_newton_bartlett(&[&w], |t| Ok(t.param(&w).sum()), &mut rng).unwrap_err();
    assert!(e.to_string().contains("[batch, classes]"), "{e}");
    // Sophia refuses an estimate before any step, and other optimizers any.
    let mut opt: Optimizer<f64> = Sophia::new(0.1).build().unwrap();
    let e = opt.observe_hessian(&h).unwrap_err();
    assert!(e.to_string().contains("apply a step first"), "{e}");
    let mut adam: Optimizer<f64> = tapir_optim::Adam::new(0.1).build().unwrap();
    let tape = Tape::new();
    let l = tape.param(&w).sum();
    adam.apply_gradients(&tape.gradient(&l, [&w]).unwrap())
        .unwrap();
    let e = adam.observe_hessian(&h).unwrap_err();
    assert!(
        e.to_string().contains("Adam keeps no Hessian estimate"),
        "{e}"
    );
    // A direction of the wrong shape.
    let e = hutchinson(&[&w], |t| Ok(t.param(&w).sum()), &[Tensor::ones([3])]).unwrap_err();
    assert!(e.to_string().contains("'w'"), "{e}");
}
