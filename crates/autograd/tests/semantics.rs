//! What the tape promises: arbitrary graphs, control flow, sources that are
//! parameters or Vars, the unconnected policies, errors, stop_gradient,
//! untracked evaluation, custom ops, higher-order gradients, and memory that
//! does not grow.

use std::sync::Arc;

use tapir_autograd::{
    hvp, jacobian, CustomOp, Error, GradientOptions, Parameter, Result, Tape, Unconnected, Var,
};
use tapir_tensor::{Rng, Tensor};

fn t(v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap()
}

#[track_caller]
fn close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_vec().iter().zip(b.to_vec()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn fan_out_reuse_and_diamonds_accumulate() {
    let w = Parameter::new("w", t(&[0.5, -1.0, 2.0]));
    let tape = Tape::new();
    let x = tape.watch(&w);
    // y = x² + x: the Var is used three times.
    let y = (&x * &x + &x).sum();
    let g = tape.gradient(&y, [&w]).unwrap();
    close(&g[&w], &t(&[2.0, -1.0, 5.0]), 1e-12);
    // Diamond: a feeds two branches that meet again.
    let a = x.exp();
    let loss = a.sin().mul(&a.cos()).unwrap().sum(); // ½ sin(2eˣ)
    let g = tape.gradient(&loss, [&w]).unwrap();
    let want = w.value().map(|v| (2.0 * v.exp()).cos() * v.exp());
    close(&g[&w], &want, 1e-12);
}

#[test]
fn a_parameter_watched_twice_gets_the_sum() {
    let w = Parameter::new("w", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let l1 = tape
        .watch(&w)
        .mul(&tape.constant(t(&[3.0, 4.0])))
        .unwrap()
        .sum();
    let l2 = tape.watch(&w).square().sum();
    let g = tape.gradient(&(l1 + l2), [&w]).unwrap();
    close(&g[&w], &t(&[5.0, 8.0]), 1e-12);
}

/// x^n by recursion, with a data-dependent branch.
fn power<'t>(x: &Var<'t, f64>, n: u32) -> Var<'t, f64> {
    if n == 0 {
        return x.mul_scalar(0.0).add_scalar(1.0);
    }
    let rest = power(x, n - 1);
    if x.value().sum().item().unwrap() > 0.0 {
        &rest * x
    } else {
        &(&rest * x) * 1.0
    }
}

#[test]
fn rust_control_flow_is_differentiated_as_it_ran() {
    let w = Parameter::new("w", Tensor::scalar(1.5));
    let tape = Tape::new();
    let x = tape.watch(&w);
    let mut acc = x.clone();
    for i in 0..3 {
        acc = if i % 2 == 0 {
            acc.mul(&x).unwrap()
        } else {
            acc.add(&x).unwrap()
        };
    }
    // acc = (x·x + x)·x = x³ + x²
    let y = acc.add(&power(&x, 4)).unwrap(); // + x⁴
    let g = tape.gradient(&y, [&w]).unwrap();
    let v = 1.5f64;
    let want = 3.0 * v * v + 2.0 * v + 4.0 * v.powi(3);
    assert!((g[&w].item().unwrap() - want).abs() < 1e-12);
}

#[test]
fn gradients_with_respect_to_inputs() {
    // Saliency: d loss / d input with constant weights.
    let tape = Tape::new();
    let x = tape.var(t(&[1.0, -2.0, 3.0]));
    let w = tape.constant(t(&[0.5, 0.25, -1.0]));
    let loss = x.mul(&w).unwrap().tanh().sum();
    let g = tape
        .gradient_vars(&loss, &[&x], &GradientOptions::default())
        .unwrap();
    let want = x
        .value()
        .mul(w.value())
        .unwrap()
        .map(|v| 1.0 - v.tanh() * v.tanh())
        .mul(w.value())
        .unwrap();
    close(g[0].as_ref().unwrap(), &want, 1e-12);
}

#[test]
fn unconnected_sources_follow_the_policy() {
    let used = Parameter::new("used", t(&[1.0]));
    let unused = Parameter::new("unused", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let _ = tape.watch(&unused); // watched but not on the path
    let loss = tape.watch(&used).square().sum();
    let g = tape.gradient(&loss, [&used, &unused]).unwrap();
    assert!(g.get(&unused).is_none());
    assert_eq!(g.len(), 2);
    let names: Vec<String> = g.iter().map(|(p, _)| p.name().to_string()).collect();
    assert_eq!(names, vec!["used", "unused"], "source order is kept");
    let zero = GradientOptions {
        unconnected: Unconnected::Zero,
        ..Default::default()
    };
    let g = tape.gradient_with(&loss, [&used, &unused], &zero).unwrap();
    assert_eq!(g[&unused].to_vec(), vec![0.0, 0.0]);
    let err = GradientOptions {
        unconnected: Unconnected::Error,
        ..Default::default()
    };
    let e = tape
        .gradient_with(&loss, [&used, &unused], &err)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "gradient: source 'unused' is not connected to the target"
    );
    // Never watched at all: also unconnected.
    let never = Parameter::new("never", t(&[0.0]));
    assert!(tape
        .gradient(&loss, [&never])
        .unwrap()
        .get(&never)
        .is_none());
}

#[test]
fn errors_instead_of_panics() {
    let w = Parameter::new("w", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let other = Tape::new();
    let a = tape.watch(&w);
    let b = other.watch(&w);
    assert!(matches!(a.add(&b), Err(Error::TapeMismatch { op: "add" })));
    let sq = a.square();
    let e = tape.gradient(&sq, [&w]).unwrap_err();
    assert!(matches!(e, Error::NonScalarTarget { .. }), "{e}");
    let bad = GradientOptions {
        output_grad: Some(t(&[1.0, 1.0, 1.0])),
        ..Default::default()
    };
    assert!(matches!(
        tape.gradient_with(&sq, [&w], &bad),
        Err(Error::OutputGradShape { .. })
    ));
    // A non-scalar target with an output gradient is a vector–Jacobian product.
    let vjp = GradientOptions {
        output_grad: Some(t(&[1.0, 10.0])),
        ..Default::default()
    };
    assert_eq!(
        tape.gradient_with(&sq, [&w], &vjp).unwrap()[&w].to_vec(),
        vec![2.0, 40.0]
    );
    // The target belongs to the other tape.
    let lb = b.sum();
    assert!(matches!(
        tape.gradient(&lb, [&w]),
        Err(Error::TapeMismatch { .. })
    ));
    // The parameter changed shape after watch.
    let loss = a.sum();
    w.set(t(&[1.0, 2.0, 3.0]));
    let e = tape.gradient(&loss, [&w]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "gradient: parameter 'w' had shape [2] when watched and has [3] now"
    );
    // Shape errors of ops come through with their tensor message.
    let e = a.matmul(&tape.constant(Tensor::zeros([3, 1]))).unwrap_err();
    assert!(
        e.to_string().starts_with("matmul: inner sizes differ"),
        "{e}"
    );
}

#[test]
#[should_panic(expected = "add: shapes [2] and [3] cannot be broadcast together")]
fn var_operators_panic_with_the_method_message() {
    let tape = Tape::new();
    let _ = tape.var(t(&[1.0, 2.0])) + tape.var(t(&[1.0, 2.0, 3.0]));
}

#[test]
fn the_tape_answers_repeatedly() {
    let w = Parameter::new("w", t(&[1.0, -1.0]));
    let tape = Tape::new();
    let loss = tape.watch(&w).exp().sum();
    let g1 = tape.gradient(&loss, [&w]).unwrap();
    let g2 = tape.gradient(&loss, [&w]).unwrap();
    assert_eq!(g1[&w], g2[&w]);
}

#[test]
fn stop_gradient_cuts_the_path() {
    let w = Parameter::new("w", t(&[3.0]));
    let tape = Tape::new();
    let x = tape.watch(&w);
    let y = x.mul(&x.stop_gradient()).unwrap().sum(); // d/dw = w, not 2w
    assert_eq!(tape.gradient(&y, [&w]).unwrap()[&w].to_vec(), vec![3.0]);
    let z = x.detach().square().sum();
    assert!(tape.gradient(&z, [&w]).unwrap().get(&w).is_none());
}

fn model<'t>(x: &Var<'t, f64>, w: &Var<'t, f64>) -> Result<Var<'t, f64>> {
    x.matmul(w)?.relu().sum_axes(&[1], false)
}

#[test]
fn untracked_vars_evaluate_without_recording() {
    let mut rng = Rng::seed(0);
    let w: Tensor<f64> = Tensor::randn([4, 3], &mut rng);
    let x: Tensor<f64> = Tensor::randn([5, 4], &mut rng);
    let eval = model(&Var::untracked(x.clone()), &Var::untracked(w.clone())).unwrap();
    let tape = Tape::new();
    let p = Parameter::new("w", w);
    let train = model(&tape.constant(x.clone()), &tape.watch(&p)).unwrap();
    assert_eq!(eval.value(), train.value());
    assert!(!eval.is_tracked());
    // Constants alone record nothing either.
    let tape2 = Tape::<f64>::new();
    let c = model(&tape2.constant(x), &tape2.constant(p.value())).unwrap();
    assert!(!c.is_tracked());
    assert_eq!(tape2.len(), 0);
}

/// Identity forward, −λ·g backward (the gradient-reversal layer of domain
/// adaptation).
struct GradReverse(f64);

impl CustomOp<f64> for GradReverse {
    fn name(&self) -> &str {
        "grad_reverse"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].clone())
    }
    fn backward<'t>(
        &self,
        _x: &[Var<'t, f64>],
        _out: &Var<'t, f64>,
        g: &Var<'t, f64>,
    ) -> Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(g.mul_scalar(-self.0))])
    }
}

struct BadShape;

impl CustomOp<f64> for BadShape {
    fn name(&self) -> &str {
        "bad_shape"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].clone())
    }
    fn backward<'t>(
        &self,
        _x: &[Var<'t, f64>],
        _out: &Var<'t, f64>,
        g: &Var<'t, f64>,
    ) -> Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(g.sum())])
    }
}

struct FailsInside;

impl CustomOp<f64> for FailsInside {
    fn name(&self) -> &str {
        "fails_inside"
    }
    fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
        Ok(x[0].clone())
    }
    fn backward<'t>(
        &self,
        _x: &[Var<'t, f64>],
        _out: &Var<'t, f64>,
        g: &Var<'t, f64>,
    ) -> Result<Vec<Option<Var<'t, f64>>>> {
        // [2] + [5] does not broadcast: a tensor error inside the rule.
        Ok(vec![Some(g.add(&Var::untracked(Tensor::zeros([5])))?)])
    }
}

#[test]
fn an_error_inside_a_backward_rule_names_the_op() {
    for graph in [false, true] {
        let tape = Tape::new();
        let xv = tape.var(t(&[1.0, 2.0]));
        let y = Var::custom(Arc::new(FailsInside), &[&xv]).unwrap().sum();
        let e = if graph {
            tape.gradient_graph(&y, &[&xv], None).unwrap_err()
        } else {
            tape.gradient_vars(&y, &[&xv], &GradientOptions::default())
                .unwrap_err()
        };
        let Error::Backward { op, source } = &e else {
            panic!("not Error::Backward: {e:?}");
        };
        assert_eq!(op, "fails_inside");
        assert!(matches!(**source, Error::Tensor(_)), "{source:?}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("backward of fails_inside: add:") && msg.contains("[5]"),
            "{msg}"
        );
    }
}

#[test]
fn custom_ops_compose_with_other_ops() {
    let w = Parameter::new("w", t(&[0.5, -0.3]));
    let tape = Tape::new();
    let x = tape.watch(&w);
    let r = Var::custom(Arc::new(GradReverse(2.0)), &[&x.tanh()]).unwrap();
    let loss = r.square().sum();
    let g = tape.gradient(&loss, [&w]).unwrap();
    let want = w
        .value()
        .map(|v| -2.0 * 2.0 * v.tanh() * (1.0 - v.tanh() * v.tanh()));
    close(&g[&w], &want, 1e-12);
    // Higher order through a custom op written with Var ops.
    let tape = Tape::new();
    let xv = tape.var(t(&[0.7]));
    let y = Var::custom(Arc::new(GradReverse(1.0)), &[&xv.square()])
        .unwrap()
        .sum();
    let gx = tape.gradient_graph(&y, &[&xv], None).unwrap()[0]
        .clone()
        .unwrap();
    assert!((gx.value().item().unwrap() + 1.4).abs() < 1e-12); // −2x
    let h = tape
        .gradient_vars(&gx.sum(), &[&xv], &GradientOptions::default())
        .unwrap();
    assert!((h[0].as_ref().unwrap().item().unwrap() + 2.0).abs() < 1e-12);
    // A backward that returns the wrong shape is an error naming the op.
    let tape = Tape::new();
    let xv = tape.var(t(&[1.0, 2.0]));
    let y = Var::custom(Arc::new(BadShape), &[&xv]).unwrap().sum();
    let e = tape
        .gradient_vars(&y, &[&xv], &GradientOptions::default())
        .unwrap_err();
    assert!(e.to_string().starts_with("custom op 'bad_shape'"), "{e}");
}

/// A two-layer MLP whose parameters are packed in one vector, so that the
/// Hessian with respect to all of them is a plain matrix.
fn mlp_loss<'t>(theta: &Var<'t, f64>) -> Result<Var<'t, f64>> {
    let x = theta.lift(Tensor::from_vec(
        vec![0.5, -1.0, 1.5, 0.2, -0.3, 0.8],
        [3, 2],
    )?);
    let y = theta.lift(Tensor::from_vec(vec![1.0, -1.0, 0.5], [3, 1])?);
    let w1 = theta.narrow(0, 0, 6)?.reshape([2, 3])?;
    let b1 = theta.narrow(0, 6, 3)?;
    let w2 = theta.narrow(0, 9, 3)?.reshape([3, 1])?;
    let h = x.matmul(&w1)?.add(&b1)?.tanh();
    h.matmul(&w2)?.mse(&y)
}

#[test]
fn hessian_of_a_small_mlp_matches_finite_differences_of_the_gradient() {
    let theta: Tensor<f64> = Tensor::randn([12], &mut Rng::seed(4));
    let grad_at = |th: &Tensor<f64>| -> Tensor<f64> {
        let tape = Tape::new();
        let v = tape.var(th.clone());
        let l = mlp_loss(&v).unwrap();
        tape.gradient_vars(&l, &[&v], &GradientOptions::default())
            .unwrap()[0]
            .clone()
            .unwrap()
    };
    let eps = 1e-5;
    let mut cols = Vec::new();
    for j in 0..12 {
        let mut e = vec![0.0; 12];
        e[j] = 1.0;
        let (g, hv) = hvp(mlp_loss, &theta, &t(&e)).unwrap();
        close(&g, &grad_at(&theta), 1e-12);
        let mut plus = theta.clone();
        plus.as_mut_slice()[j] += eps;
        let mut minus = theta.clone();
        minus.as_mut_slice()[j] -= eps;
        let fd = grad_at(&plus)
            .sub(&grad_at(&minus))
            .unwrap()
            .div_scalar(2.0 * eps);
        close(&hv, &fd, 1e-6);
        cols.push(hv);
    }
    // The Hessian from the columns is symmetric.
    let h = Tensor::stack(&cols.iter().collect::<Vec<_>>(), 1).unwrap();
    close(&h, &h.t().unwrap().contiguous(), 1e-10);
}

#[test]
fn jacobian_of_a_linear_map_is_its_matrix() {
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
    let ac = a.clone();
    let j = jacobian(move |x| x.lift(ac.clone()).matmul(x), &t(&[0.1, 0.2, 0.3])).unwrap();
    assert_eq!(j, a);
}

#[test]
fn a_gradient_penalty_loss_trains() {
    // f(x) = tanh(x·w1)·w2; loss = mse(f(x), y) + λ·mean((‖∂f/∂x‖² − 1)²),
    // trained by plain gradient descent: the penalty needs the gradient of a
    // gradient with respect to the parameters.
    let mut rng = Rng::seed(8);
    let w1 = Parameter::new("w1", Tensor::<f64>::randn([2, 8], &mut rng).mul_scalar(0.5));
    let w2 = Parameter::new("w2", Tensor::<f64>::randn([8, 1], &mut rng).mul_scalar(0.5));
    let x: Tensor<f64> = Tensor::randn([16, 2], &mut rng);
    let y = x.sum_axes(&[1], true).unwrap().sin();
    let step = |lr: f64| -> (f64, f64) {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let out = xv
            .matmul(&tape.watch(&w1))
            .unwrap()
            .tanh()
            .matmul(&tape.watch(&w2))
            .unwrap();
        let gx = tape.gradient_graph(&out.sum(), &[&xv], None).unwrap()[0]
            .clone()
            .unwrap();
        let norm2 = gx.square().sum_axes(&[1], false).unwrap();
        let penalty = norm2.sub_scalar(1.0).square().mean();
        let fit = out.mse(&tape.constant(y.clone())).unwrap();
        let loss = fit.add(&penalty.mul_scalar(0.5)).unwrap();
        let g = tape.gradient(&loss, [&w1, &w2]).unwrap();
        for p in [&w1, &w2] {
            let d = g[p].mul_scalar(lr);
            p.update(|v| *v = v.sub(&d).unwrap());
        }
        (
            loss.value().item().unwrap(),
            penalty.value().item().unwrap(),
        )
    };
    let (first, p0) = step(0.05);
    let mut last = (first, p0);
    for _ in 0..300 {
        last = step(0.05);
    }
    assert!(last.0 < 0.5 * first, "loss {first} -> {}", last.0);
    assert!(last.1 < p0, "penalty {p0} -> {}", last.1);
}

/// First-order and recorded (second-pass) gradient of `f` at `x`: both
/// paths must give the documented value at kinks and ties.
fn grad_at(x: &[f64], f: impl for<'t> Fn(&Var<'t, f64>) -> Result<Var<'t, f64>>) -> Vec<f64> {
    let tape = Tape::new();
    let v = tape.var(t(x));
    let y = f(&v).unwrap().sum();
    let first = tape
        .gradient_vars(&y, &[&v], &GradientOptions::default())
        .unwrap()
        .remove(0)
        .unwrap()
        .to_vec();
    let recorded = tape.gradient_graph(&y, &[&v], None).unwrap()[0]
        .clone()
        .unwrap()
        .value()
        .to_vec();
    assert_eq!(first, recorded, "first-order and recorded passes differ");
    first
}

/// The conventions of docs/autograd.md ("Kinks and ties"), at the kinks
/// themselves, with literal inputs.
#[test]
fn kinks_and_ties_follow_the_documented_conventions() {
    // relu'(0) = 0 (PyTorch); relu' is 1 above and 0 below.
    assert_eq!(
        grad_at(&[-1.0, 0.0, 2.0], |x| Ok(x.relu())),
        [0.0, 0.0, 1.0]
    );
    // abs'(0) = 0; sign' = 0 everywhere.
    assert_eq!(
        grad_at(&[-2.0, 0.0, 3.0], |x| Ok(x.abs())),
        [-1.0, 0.0, 1.0]
    );
    assert_eq!(
        grad_at(&[-2.0, 0.0, 3.0], |x| Ok(x.sign())),
        [0.0, 0.0, 0.0]
    );
    // leaky_relu'(0) = slope; elu'(0) = α (both as PyTorch).
    assert_eq!(
        grad_at(&[-1.0, 0.0, 1.0], |x| Ok(x.leaky_relu(0.25))),
        [0.25, 0.25, 1.0]
    );
    assert_eq!(grad_at(&[0.0, 1.0], |x| Ok(x.elu(1.5))), [1.5, 1.0]);
    // elu far above 0: the unused negative branch stays finite.
    assert_eq!(grad_at(&[1000.0], |x| Ok(x.elu(1.0))), [1.0]);
    // clamp passes the gradient at the bounds (inclusive), not outside.
    assert_eq!(
        grad_at(&[-2.0, -1.0, 0.0, 1.0, 2.0], |x| x
            .clamp(Some(-1.0), Some(1.0))),
        [0.0, 1.0, 1.0, 1.0, 0.0]
    );
    // maximum / minimum ties: half to each input.
    let tie = |max: bool| {
        let tape = Tape::new();
        let a = tape.var(t(&[1.0, 2.0, 3.0]));
        let b = tape.var(t(&[1.0, 5.0, 0.0]));
        let y = if max { a.maximum(&b) } else { a.minimum(&b) };
        let y = y.unwrap().sum();
        let g = tape
            .gradient_vars(&y, &[&a, &b], &GradientOptions::default())
            .unwrap();
        (
            g[0].clone().unwrap().to_vec(),
            g[1].clone().unwrap().to_vec(),
        )
    };
    assert_eq!(tie(true), (vec![0.5, 0.0, 1.0], vec![0.5, 1.0, 0.0]));
    assert_eq!(tie(false), (vec![0.5, 1.0, 0.0], vec![0.5, 0.0, 1.0]));
    // max / min reductions: tied extremes share the gradient equally.
    assert_eq!(
        grad_at(&[3.0, 1.0, 3.0, 3.0], |x| x.max()),
        [1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0]
    );
    assert_eq!(grad_at(&[0.0, 0.0, 2.0], |x| x.min()), [0.5, 0.5, 0.0]);
    // max_pool2d ties: the first element of the window gets it all.
    assert_eq!(
        grad_at(&[7.0, 7.0, 7.0, 7.0], |x| {
            x.reshape([1, 1, 2, 2])?
                .max_pool2d(tapir_tensor::Pool2dParams::new([2, 2]))
        }),
        [1.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn gradient_graph_takes_parameters_as_sources() {
    // f(w) = Σ w³: ∇f = 3w², H·v = 6w ⊙ v, with w watched twice (summed).
    let w = Parameter::new("w", t(&[1.0, -2.0]));
    let tape = Tape::new();
    let (a, b) = (tape.watch(&w), tape.watch(&w));
    let f = a.pow_scalar(2.0).mul(&b).unwrap().sum();
    let g = tape.gradient_graph(&f, &[&w], None).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(g.value().to_vec(), [3.0, 12.0]);
    let gv = g.mul(&tape.constant(t(&[1.0, 0.5]))).unwrap().sum();
    let hv = tape.gradient(&gv, [&w]).unwrap();
    assert_eq!(hv[&w].to_vec(), [6.0, -6.0]);
    // A parameter never watched on this tape is unconnected: None.
    let other = Parameter::new("other", t(&[1.0]));
    assert!(tape.gradient_graph(&f, &[&other], None).unwrap()[0].is_none());
}

#[test]
fn gradients_offer_global_norm_clipping_and_map() {
    let p = Parameter::new("p", t(&[0.0, 0.0]));
    let q = Parameter::new("q", t(&[0.0]));
    let r = Parameter::new("r", t(&[0.0]));
    let mut grads = tapir_autograd::Gradients::from_pairs(vec![
        (p.clone(), Some(t(&[3.0, 0.0]))),
        (q.clone(), Some(t(&[4.0]))),
        (r.clone(), None),
    ]);
    assert_eq!(grads.global_norm(), 5.0);
    // Below the bound: untouched, and the norm is reported.
    assert_eq!(grads.clip_global_norm(10.0).unwrap(), 5.0);
    assert_eq!(grads[&q].to_vec(), [4.0]);
    // Above: scaled by max / (norm + 1e-6), as clip_grad_norm_.
    assert_eq!(grads.clip_global_norm(1.0).unwrap(), 5.0);
    let s = 1.0 / (5.0 + 1e-6);
    close(&grads[&p], &t(&[3.0 * s, 0.0]), 1e-15);
    close(&grads[&q], &t(&[4.0 * s]), 1e-15);
    assert!(grads.get(&r).is_none());
    assert!(grads.clip_global_norm(0.0).is_err());
    assert!(grads.clip_global_norm(f64::NAN).is_err());
    let doubled = grads.map(|_, g| g.mul_scalar(2.0));
    close(&doubled[&q], &t(&[8.0 * s]), 1e-15);
    assert!(doubled.get(&r).is_none());
}

#[test]
fn qkv_attention_equals_split_heads_and_fused_attention() {
    // The packed primitive against the general path it replaces: split the
    // projection, heads to [B, H, T, D], attention, heads back. Values and
    // gradients, causal with an extra per-batch mask.
    let (b, t, e, h) = (2, 7, 16, 4);
    let d = e / h;
    let mut rng = Rng::seed(11);
    let x = Tensor::<f64>::randn([b, t, 3 * e], &mut rng);
    let w = Tensor::<f64>::randn([b, t, e], &mut rng);
    let mut m = vec![0.0; b * t * t];
    m[3] = f64::NEG_INFINITY;
    m[t * t + 2 * t] = -1.5;
    let m = Tensor::from_vec(m, [b, 1, t, t]).unwrap();
    let run = |packed: bool| {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let y = if packed {
            xv.qkv_attention(h, Some(&m), true, None).unwrap()
        } else {
            let heads = |i: usize| {
                xv.narrow(-1, i * e, e)
                    .unwrap()
                    .reshape_usize(&[b, t, h, d])
                    .unwrap()
                    .permute(&[0, 2, 1, 3])
                    .unwrap()
            };
            heads(0)
                .scaled_dot_product_attention(&heads(1), &heads(2), Some(&m), true, None)
                .unwrap()
                .permute(&[0, 2, 1, 3])
                .unwrap()
                .reshape_usize(&[b, t, e])
                .unwrap()
        };
        let loss = y.mul(&tape.constant(w.clone())).unwrap().sum();
        let g = tape
            .gradient_vars(&loss, &[&xv], &Default::default())
            .unwrap();
        (y.value().clone(), g[0].clone().unwrap())
    };
    let (y1, g1) = run(true);
    let (y2, g2) = run(false);
    close(&y1, &y2, 1e-12);
    close(&g1, &g2, 1e-12);
    // A bad head count names the op.
    let tape = Tape::new();
    let err = tape
        .var(x.clone())
        .qkv_attention(3, None, true, None)
        .unwrap_err();
    assert!(err.to_string().contains("qkv_attention"), "{err}");
}
