//! Writing your own layers: one with its own parameters, one with a
//! hand-written gradient, both trained (docs/custom-layers.md walks
//! through them).
//!
//! The task: classify 2-D points by whether they lie inside a ring.
//! `Rbf` is a radial-basis layer (learnt centres and widths, its own
//! parameters); `BinaryStep` quantises activations to ±1 in the forward
//! pass and passes the gradient straight through where |x| ≤ 1 in the
//! backward pass (the straight-through estimator of binarised networks),
//! a gradient no composition of ops gives. The program trains
//! `Rbf → Linear` and `Linear → BinaryStep → Linear` with Adam, prints
//! both losses, and fails unless each falls to under half its start.
//! `--quick` runs fewer steps.

use std::sync::Arc;

use tapir::autograd::{CustomOp, Result};
use tapir::prelude::*;

/// φ_j(x) = exp(−‖x − c_j‖² · exp(s_j)): `units` Gaussian bumps with
/// learnt centres `c` and log inverse widths `s`.
#[derive(Module)]
struct Rbf {
    /// `[units, in]`.
    centres: Parameter,
    /// `[units]`.
    log_scale: Parameter,
}

impl Rbf {
    fn new(inputs: usize, units: usize, rng: &mut Rng) -> Self {
        Rbf {
            centres: Parameter::new("centres", Tensor::uniform([units, inputs], -1.5, 1.5, rng)),
            log_scale: Parameter::new("log_scale", Tensor::zeros([units])),
        }
    }
}

impl Forward for Rbf {
    fn forward<'t>(&self, x: &Var<'t>) -> Result<Var<'t>> {
        let c = x.param(&self.centres); // [U, D]
        let s = x.param(&self.log_scale); // [U]
                                          // ‖x − c‖² for every (sample, unit): [N, 1, D] − [U, D] → [N, U, D].
        let d2 = x.unsqueeze(1)?.sub(&c)?.square().sum_axes(&[-1], false)?;
        Ok(d2.mul(&s.exp())?.neg().exp())
    }
}

/// sign(x) forward; gradient g·1{|x| ≤ 1} backward (straight-through).
struct BinaryStepOp;

impl CustomOp<f32> for BinaryStepOp {
    fn name(&self) -> &str {
        "binary_step"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(inputs[0].map(|v| if v >= 0.0 { 1.0 } else { -1.0 }))
    }
    fn backward<'t>(
        &self,
        inputs: &[Var<'t>],
        _output: &Var<'t>,
        grad: &Var<'t>,
    ) -> Result<Vec<Option<Var<'t>>>> {
        let pass = inputs[0]
            .value()
            .map(|v| if v.abs() <= 1.0 { 1.0 } else { 0.0 });
        Ok(vec![Some(grad.mul(&grad.lift(pass))?)])
    }
}

/// The custom op as a layer (no parameters).
struct BinaryStep;

impl Module for BinaryStep {
    fn visit(
        &self,
        _: &mut tapir::nn::Path,
        _: &mut dyn FnMut(&tapir::nn::Path, tapir::nn::Entry<'_, f32>),
    ) {
    }
    fn set_training(&mut self, _: bool) {}
}

impl Forward for BinaryStep {
    fn forward<'t>(&self, x: &Var<'t>) -> Result<Var<'t>> {
        Var::custom(Arc::new(BinaryStepOp), &[x])
    }
}

/// Points in [−2, 2]² labelled 1 inside the ring 0.8 < r < 1.5.
fn ring(n: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let x = Tensor::uniform([n, 2], -2.0, 2.0, rng);
    let v = x.to_vec();
    let y: Vec<f32> = v
        .chunks(2)
        .map(|p| {
            let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
            f32::from(u8::from(r > 0.8 && r < 1.5))
        })
        .collect();
    (x, Tensor::from_vec(y, [n, 1]).expect("n labels"))
}

fn train(name: &str, model: &Sequential, steps: usize, x: &Tensor, y: &Tensor) -> (f32, f32) {
    let mut opt = Adam::new(0.02).build().expect("valid");
    let mut first = f32::NAN;
    let mut last = f32::NAN;
    for step in 0..steps {
        let tape = Tape::new();
        let logits = model
            .forward(&tape.constant(x.clone()))
            .expect("shapes fit");
        let loss = tapir::nn::loss::bce_with_logits(
            &logits,
            &tape.constant(y.clone()),
            tapir::nn::loss::Reduction::Mean,
        )
        .expect("shapes fit");
        let grads = tape
            .gradient(&loss, model.parameters())
            .expect("a scalar loss");
        opt.apply_gradients(&grads).expect("finite gradients");
        last = loss.value().item().expect("scalar");
        if step == 0 {
            first = last;
        }
    }
    println!(
        "{name}: {} parameters, loss {first:.4} -> {last:.4} in {steps} steps",
        model.num_parameters()
    );
    (first, last)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps = if quick { 300 } else { 600 };
    let mut rng = Rng::seed(1);
    let (x, y) = ring(512, &mut rng);
    let rbf = Sequential::new()
        .add(Rbf::new(2, 16, &mut rng))
        .add(Linear::new(16, 1, &mut rng));
    let names: Vec<String> = rbf.named_parameters().into_iter().map(|(n, _)| n).collect();
    println!("rbf parameters: {names:?}");
    let bin = Sequential::new()
        .add(Linear::new(2, 32, &mut rng))
        .add(BinaryStep)
        .add(Linear::new(32, 1, &mut rng));
    let results = [
        train("rbf -> linear", &rbf, steps, &x, &y),
        train(
            "linear -> binary step (straight-through) -> linear",
            &bin,
            steps,
            &x,
            &y,
        ),
    ];
    for (first, last) in results {
        let halved = last < 0.5 * first; // false for NaN too
        if !halved {
            return Err(format!("loss did not halve: {first} -> {last}").into());
        }
    }
    Ok(())
}
