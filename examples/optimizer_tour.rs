//! The optimizer tour: how gradient descent, momentum, Adam and the rest
//! differ, drawn.
//!
//! `cargo run --release --example optimizer_tour` runs every optimizer of
//! the optim crate from the same start on four functions (Rosenbrock's
//! valley, Beale's plateaus, a saddle between two wells, an ill-conditioned
//! quadratic), each at the learning rate from a grid that serves it best,
//! with gradients from the tape. It prints a table per function (the step
//! from which f − f* stays below 1e-6, the final gap, and the evaluations
//! of f: one per step, L-BFGS's line search may take more) and writes, per
//! function, the paths over the contour plot and the gap per step; then it
//! trains the bundled MNIST MLP for a few epochs with each optimizer at its
//! usual learning rate and draws the loss curves in three charts (classic
//! optimizers, newer ones, Adam with f32 against bf16 moments). `--quick` is
//! the short run CI does; it fails unless Adam ends below its start on
//! every function and its MLP loss falls.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use rayon::prelude::*;
use tapir::nn::data::{DataLoader, Dataset};
use tapir::optim::{Lbfgs, LbfgsOptimizer, LineSearch, Slot};
use tapir::prelude::*;
use tapir_plot::{contour, line_chart, Contour, Panel, Series};

#[path = "common/cli.rs"]
mod cli;
#[path = "common/mnist_net.rs"]
mod mnist_net;
use mnist_net::{load_data, normalize, Model, Net};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Run every optimizer on four functions and on an MNIST MLP.
#[derive(Debug, Parser)]
#[command(name = "optimizer_tour")]
struct Args {
    /// Steps on each function.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Epochs of the MNIST MLP per optimizer.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Where the charts and the table go.
    #[arg(long, default_value = "target/optimizer_tour")]
    out: PathBuf,
    /// A short run for CI: 200 steps, three learning rates, two epochs on
    /// 1,500 images.
    #[arg(long)]
    quick: bool,
}

/// Every optimizer of the optim crate, the momentum forms counted apart.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Gd,
    HeavyBall,
    Nesterov,
    Ema,
    Adagrad,
    Rmsprop,
    Adadelta,
    Adam,
    Amsgrad,
    AdamW,
    Adamax,
    Nadam,
    Radam,
    Lion,
    Lamb,
    Lars,
    Adafactor,
    Muon,
    Ademamix,
    SfAdamW,
    SfSgd,
    Rprop,
    Asgd,
    Sophia,
    Lbfgs,
    SparseAdam,
    AdamBf16,
    AdamBf16Sr,
}

/// Steps between two Hessian estimates of Sophia (the paper's k).
const SOPHIA_EVERY: usize = 10;

/// The index in [`KINDS`] of the first optimizer of issue 13 (Lion).
const FIRST_NEWER: usize = 13;

const KINDS: [Kind; 28] = [
    Kind::Gd,
    Kind::HeavyBall,
    Kind::Nesterov,
    Kind::Ema,
    Kind::Adagrad,
    Kind::Rmsprop,
    Kind::Adadelta,
    Kind::Adam,
    Kind::Amsgrad,
    Kind::AdamW,
    Kind::Adamax,
    Kind::Nadam,
    Kind::Radam,
    Kind::Lion,
    Kind::Lamb,
    Kind::Lars,
    Kind::Adafactor,
    Kind::Muon,
    Kind::Ademamix,
    Kind::SfAdamW,
    Kind::SfSgd,
    Kind::Rprop,
    Kind::Asgd,
    Kind::Sophia,
    Kind::Lbfgs,
    Kind::SparseAdam,
    Kind::AdamBf16,
    Kind::AdamBf16Sr,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gd => "gradient descent",
            Kind::HeavyBall => "momentum 0.9",
            Kind::Nesterov => "Nesterov 0.9",
            Kind::Ema => "EMA momentum 0.9",
            Kind::Adagrad => "Adagrad",
            Kind::Rmsprop => "RMSprop",
            Kind::Adadelta => "Adadelta",
            Kind::Adam => "Adam",
            Kind::Amsgrad => "AMSGrad",
            Kind::AdamW => "AdamW (decay 0.01)",
            Kind::Adamax => "Adamax",
            Kind::Nadam => "NAdam",
            Kind::Radam => "RAdam",
            Kind::Lion => "Lion",
            Kind::Lamb => "LAMB",
            Kind::Lars => "LARS",
            Kind::Adafactor => "Adafactor",
            // On the 2-D functions x and y are scalars: its AdamW runs.
            Kind::Muon => "Muon (+AdamW)",
            Kind::Ademamix => "AdEMAMix",
            Kind::SfAdamW => "schedule-free AdamW",
            Kind::SfSgd => "schedule-free SGD",
            Kind::Rprop => "Rprop",
            Kind::Asgd => "ASGD",
            Kind::Sophia => "Sophia",
            Kind::Lbfgs => "L-BFGS",
            // Dense gradients here: its formula on every element.
            Kind::SparseAdam => "SparseAdam (dense)",
            Kind::AdamBf16 => "Adam, bf16 state",
            Kind::AdamBf16Sr => "Adam, bf16 state SR",
        }
    }

    /// The optimizer at learning rate `lr`, PyTorch's defaults otherwise.
    fn build<E: Float>(self, lr: f64) -> Result<Stepper<E>, tapir::optim::Error> {
        let opt = match self {
            // One iteration per step of the tour, with the strong-Wolfe
            // line search (torch's max_eval default would leave it no
            // evaluation beyond its first trial at max_iter 1), history 10.
            Kind::Lbfgs => {
                return Ok(Stepper::Lbfgs(
                    Lbfgs::new(lr)
                        .max_iter(1)
                        .max_eval(25)
                        .history_size(10)
                        .line_search(LineSearch::StrongWolfe)
                        .build()?,
                ))
            }
            Kind::Gd => Sgd::new(lr).build(),
            Kind::HeavyBall => Sgd::new(lr).momentum(0.9).build(),
            Kind::Nesterov => Sgd::new(lr).momentum(0.9).nesterov(true).build(),
            // The seed's form v ← βv + (1 − β)g, θ ← θ − αv.
            Kind::Ema => Sgd::new(lr)
                .momentum_as(Momentum::Ema { beta: 0.9 })
                .build(),
            Kind::Adagrad => Adagrad::new(lr).build(),
            Kind::Rmsprop => Rmsprop::new(lr).build(),
            Kind::Adadelta => Adadelta::new(lr).build(),
            Kind::Adam => Adam::new(lr).build(),
            Kind::Amsgrad => Adam::new(lr).amsgrad(true).build(),
            Kind::AdamW => AdamW::new(lr).build(),
            Kind::Adamax => Adamax::new(lr).build(),
            Kind::Nadam => Nadam::new(lr).build(),
            Kind::Radam => Radam::new(lr).build(),
            Kind::Lion => Lion::new(lr).build(),
            Kind::Lamb => Lamb::new(lr).build(),
            Kind::Lars => Lars::new(lr).build(),
            Kind::Adafactor => Adafactor::new(lr).build(),
            // Its AdamW at the same rate on the functions (their
            // parameters are scalars), a tenth of it in the MLP (Keras).
            Kind::Muon => Muon::new(lr).build(),
            Kind::Ademamix => Ademamix::new(lr).build(),
            Kind::SfAdamW => ScheduleFreeAdamW::new(lr).build(),
            Kind::SfSgd => ScheduleFreeSgd::new(lr).build(),
            Kind::Rprop => Rprop::new(lr).build(),
            Kind::Asgd => Asgd::new(lr).build(),
            Kind::Sophia => Sophia::new(lr).build(),
            Kind::SparseAdam => SparseAdam::new(lr).build(),
            Kind::AdamBf16 => Adam::new(lr)
                .state_dtype(StateDtype::Bf16(Rounding::Nearest))
                .build(),
            Kind::AdamBf16Sr => Adam::new(lr)
                .state_dtype(StateDtype::Bf16(Rounding::Stochastic))
                .build(),
        };
        opt.map(Stepper::Opt)
    }

    /// The learning rate people start from on a small network: PyTorch's
    /// defaults where it has one, the usual 0.1 / 0.01 for SGD.
    fn usual_lr(self) -> f64 {
        match self {
            Kind::Gd | Kind::Ema => 0.1,
            Kind::HeavyBall | Kind::Nesterov | Kind::Adagrad => 0.01,
            Kind::Rmsprop => 1e-3,
            Kind::Adadelta => 1.0,
            Kind::Adam | Kind::Amsgrad | Kind::AdamW | Kind::Radam => 1e-3,
            Kind::AdamBf16 | Kind::AdamBf16Sr | Kind::SparseAdam => 1e-3,
            // torch's default: the line search scales it.
            Kind::Lbfgs => 1.0,
            Kind::Adamax | Kind::Nadam => 2e-3,
            // 3–10× below AdamW's (the paper).
            Kind::Lion => 1e-4,
            Kind::Lamb | Kind::Ademamix => 1e-3,
            // The trust coefficient 0.001 scales it down.
            Kind::Lars | Kind::SfSgd => 1.0,
            Kind::Adafactor | Kind::Rprop | Kind::Asgd => 0.01,
            // Keller Jordan's.
            Kind::Muon => 0.02,
            Kind::SfAdamW => 0.0025,
            // Its clipped steps are at most α per element.
            Kind::Sophia => 1e-3,
        }
    }
}

/// An optimizer of the optim crate: one that takes gradients, or L-BFGS,
/// which drives a closure.
enum Stepper<E: Float> {
    Opt(Optimizer<E>),
    Lbfgs(LbfgsOptimizer<E>),
}

/// (loss curve, test accuracy, state bytes per parameter).
type MlpRun = (Vec<(f64, f64)>, f64, f64);

type Objective = for<'t> fn(&Var<'t, f64>, &Var<'t, f64>) -> Var<'t, f64>;

/// A 2-D test function, written with Var ops so the tape differentiates it.
struct Problem {
    name: &'static str,
    file: &'static str,
    f: Objective,
    start: (f64, f64),
    minimum: (f64, f64),
    f_min: f64,
    x: Range<f64>,
    y: Range<f64>,
}

/// (1 − x)² + 100 (y − x²)²: a curved valley, minimum 0 at (1, 1).
fn rosenbrock<'t>(x: &Var<'t, f64>, y: &Var<'t, f64>) -> Var<'t, f64> {
    x.rsub_scalar(1.0).square() + (y - &x.square()).square() * 100.0
}

/// (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²: flat
/// plateaus and steep walls, minimum 0 at (3, 0.5).
fn beale<'t>(x: &Var<'t, f64>, y: &Var<'t, f64>) -> Var<'t, f64> {
    let xy = x * y;
    let xy2 = &xy * y;
    let xy3 = &xy2 * y;
    (xy - x + 1.5).square() + (xy2 - x + 2.25).square() + (xy3 - x + 2.625).square()
}

/// x² + y⁴/4 − y²/2: a saddle at the origin between two wells at
/// (0, ±1) (f = −1/4). Starting on the ridge, only the tiny y offset
/// pushes an optimizer off it.
fn saddle<'t>(x: &Var<'t, f64>, y: &Var<'t, f64>) -> Var<'t, f64> {
    let y2 = y.square();
    x.square() + y2.square() * 0.25 - y2 * 0.5
}

/// ½(u² + 50 v²) in axes rotated by 30°: condition number 50, and the
/// valley runs diagonally, so per-coordinate scaling cannot undo it.
fn quadratic<'t>(x: &Var<'t, f64>, y: &Var<'t, f64>) -> Var<'t, f64> {
    let (s, c) = (0.5f64, 0.75f64.sqrt());
    let u = x * c + &(y * s);
    let v = y * c - &(x * s);
    (u.square() + v.square() * 50.0) * 0.5
}

fn problems() -> [Problem; 4] {
    [
        Problem {
            name: "Rosenbrock",
            file: "rosenbrock",
            f: rosenbrock,
            start: (-1.5, 2.0),
            minimum: (1.0, 1.0),
            f_min: 0.0,
            x: -2.0..2.0,
            y: -1.0..3.0,
        },
        Problem {
            name: "Beale",
            file: "beale",
            f: beale,
            start: (-1.0, -1.0),
            minimum: (3.0, 0.5),
            f_min: 0.0,
            x: -4.5..4.5,
            y: -4.5..4.5,
        },
        Problem {
            name: "saddle between two wells",
            file: "saddle",
            f: saddle,
            start: (1.5, 1e-3),
            minimum: (0.0, 1.0),
            f_min: -0.25,
            x: -2.0..2.0,
            y: -1.6..1.6,
        },
        Problem {
            name: "ill-conditioned quadratic",
            file: "quadratic",
            f: quadratic,
            start: (-2.0, 1.5),
            minimum: (0.0, 0.0),
            f_min: 0.0,
            x: -2.5..2.5,
            y: -2.0..2.0,
        },
    ]
}

/// f − f* staying below this to the end counts as converged.
const TOL: f64 = 1e-6;

/// One optimizer's run on one function.
struct Run {
    kind: Kind,
    lr: f64,
    /// Positions, the start first.
    path: Vec<(f64, f64)>,
    /// f − f* before each step.
    gaps: Vec<f64>,
    /// The step from which f − f* stays below TOL to the end.
    hit: Option<usize>,
    /// f − f* at the end (infinite when the run diverged).
    last_gap: f64,
    /// Evaluations of f and its gradient up to convergence, or in all
    /// when the run did not converge: one per step, but L-BFGS's line
    /// search may evaluate several times per step.
    evals: usize,
}

impl Run {
    /// Sorts runs: converged ones by steps, the rest by their final gap.
    fn key(&self) -> (usize, f64) {
        (self.hit.unwrap_or(usize::MAX), self.last_gap)
    }
}

fn f_at(p: &Problem, x: f64, y: f64) -> f64 {
    let v = |a: f64| Var::untracked(Tensor::<f64>::scalar(a));
    (p.f)(&v(x), &v(y)).value().item().unwrap_or(f64::NAN)
}

fn run_one(p: &Problem, kind: Kind, lr: f64, steps: usize) -> Result<Run, Error> {
    let px = Parameter::new("x", Tensor::<f64>::scalar(p.start.0));
    let py = Parameter::new("y", Tensor::<f64>::scalar(p.start.1));
    let mut opt = match kind.build::<f64>(lr)? {
        Stepper::Opt(o) => o,
        Stepper::Lbfgs(l) => return run_lbfgs(p, kind, lr, steps, l),
    };
    let mut path = vec![p.start];
    let mut gaps = Vec::with_capacity(steps);
    let mut rng = Rng::seed(0);
    for step in 0..steps {
        // Sophia-H: Hutchinson's estimate of the Hessian diagonal every 10
        // steps, at the point the step starts from.
        let estimate = if matches!(kind, Kind::Sophia) && step % SOPHIA_EVERY == 0 {
            let u = tapir::optim::rademacher(&[&px, &py], &mut rng);
            let f =
                tapir::optim::objective(|t: &Tape<f64>| Ok((p.f)(&t.param(&px), &t.param(&py))));
            Some(tapir::optim::hutchinson(&[&px, &py], f, &u)?)
        } else {
            None
        };
        let tape = Tape::new();
        let f = (p.f)(&tape.watch(&px), &tape.watch(&py));
        let gap = f.value().item()? - p.f_min;
        gaps.push(gap);
        let grads = tape.gradient(&f, [&px, &py])?;
        if opt.apply_gradients(&grads)?.skipped {
            break; // a non-finite gradient: diverged
        }
        if let Some(h) = estimate {
            opt.observe_hessian(&h)?;
        }
        // Schedule-free optimizers are judged at their average x (a no-op
        // for the others).
        opt.eval(&[&px, &py]);
        let (x, y) = (px.value().item()?, py.value().item()?);
        opt.train(&[&px, &py]);
        path.push((x, y));
        if !(x.abs() < 1e6 && y.abs() < 1e6) {
            break;
        }
    }
    Ok(finish(p, kind, lr, path, gaps))
}

/// L-BFGS on `p`: each step one iteration, with as many evaluations of
/// f as its line search asks for (counted, in the table's last column).
fn run_lbfgs(
    p: &Problem,
    kind: Kind,
    lr: f64,
    steps: usize,
    mut opt: LbfgsOptimizer<f64>,
) -> Result<Run, Error> {
    let px = Parameter::new("x", Tensor::<f64>::scalar(p.start.0));
    let py = Parameter::new("y", Tensor::<f64>::scalar(p.start.1));
    let mut path = vec![p.start];
    let mut gaps = Vec::with_capacity(steps);
    let mut evals = 0usize;
    // Evaluations after each step.
    let mut used = Vec::with_capacity(steps);
    for _ in 0..steps {
        // torch's L-BFGS returns the loss from before the step.
        let before = opt.step(&[&px, &py], || {
            evals += 1;
            let tape = Tape::new();
            let f = (p.f)(&tape.watch(&px), &tape.watch(&py));
            Ok((f.value().item()?, tape.gradient(&f, [&px, &py])?))
        })?;
        gaps.push(before - p.f_min);
        used.push(evals);
        let (x, y) = (px.value().item()?, py.value().item()?);
        path.push((x, y));
        if !(x.abs() < 1e6 && y.abs() < 1e6 && before.is_finite()) {
            break;
        }
    }
    let mut run = finish(p, kind, lr, path, gaps);
    run.evals = match run.hit {
        Some(0) => 0,
        Some(k) => used[k - 1],
        None => evals,
    };
    Ok(run)
}

/// The run's convergence step and final gap from its path and gaps.
fn finish(p: &Problem, kind: Kind, lr: f64, path: Vec<(f64, f64)>, gaps: Vec<f64>) -> Run {
    let (x, y) = *path.last().unwrap_or(&p.start);
    let last = f_at(p, x, y) - p.f_min;
    // A run that touched the tolerance and left again has not converged.
    let hit = match gaps.iter().rposition(|&g| g.is_nan() || g >= TOL) {
        _ if last.is_nan() || last >= TOL => None,
        Some(k) => Some(k + 1),
        None => Some(0),
    };
    let evals = hit.unwrap_or(gaps.len());
    Run {
        kind,
        lr,
        path,
        gaps,
        hit,
        last_gap: if last.is_finite() {
            last
        } else {
            f64::INFINITY
        },
        evals,
    }
}

/// Every optimizer at each learning rate of `lrs`; for each, the run that
/// converges soonest (or gets closest).
fn tour(p: &Problem, lrs: &[f64], steps: usize) -> Result<Vec<Run>, Error> {
    let jobs: Vec<(Kind, f64)> = KINDS
        .iter()
        .flat_map(|&k| lrs.iter().map(move |&lr| (k, lr)))
        .collect();
    let runs = jobs
        .par_iter()
        .map(|&(k, lr)| run_one(p, k, lr, steps))
        .collect::<Result<Vec<Run>, Error>>()?;
    let mut best: Vec<Run> = Vec::new();
    for r in runs {
        match best.iter_mut().find(|b| b.kind.name() == r.kind.name()) {
            Some(b) => {
                if r.key() < b.key() {
                    *b = r;
                }
            }
            None => best.push(r),
        }
    }
    Ok(best)
}

fn print_table(p: &Problem, runs: &[Run], steps: usize) {
    println!(
        "\n{}: start ({}, {}), minimum {} at ({}, {}), {} steps, tolerance f - f* < {TOL:e}",
        p.name, p.start.0, p.start.1, p.f_min, p.minimum.0, p.minimum.1, steps
    );
    println!(
        "  {:<20} {:>8} {:>14} {:>14} {:>8}",
        "optimizer", "best lr", "steps to tol", "final f - f*", "f evals"
    );
    for r in runs {
        let hit = r.hit.map_or("-".to_string(), |s| s.to_string());
        println!(
            "  {:<20} {:>8} {:>14} {:>14.3e} {:>8}",
            r.kind.name(),
            r.lr,
            hit,
            r.last_gap,
            r.evals
        );
    }
}

/// Adam's run must end below where it started (CI's check of the tour).
fn check_adam(p: &Problem, runs: &[Run]) -> Result<(), Error> {
    let adam = runs
        .iter()
        .find(|r| matches!(r.kind, Kind::Adam))
        .ok_or("no Adam run")?;
    let start = f_at(p, p.start.0, p.start.1) - p.f_min;
    if adam.last_gap < start {
        Ok(())
    } else {
        Err(format!(
            "{}: Adam ended at f - f* = {:e}, not below its start {:e}",
            p.name, adam.last_gap, start
        )
        .into())
    }
}

/// Trains the MLP with `kind` at its usual learning rate; returns the
/// mean loss of each block of 10 steps (at the block's last step) and the
/// test accuracy.
///
/// Returns the loss curve, the test accuracy and the optimizer's state in
/// bytes per parameter.
fn train_mlp<D: Dataset + Sync>(
    kind: Kind,
    train: &DataLoader<D>,
    test: &DataLoader<D>,
    epochs: usize,
) -> Result<MlpRun, Error> {
    let net = Net::new(Model::Mlp, &mut Rng::seed(0)).map_err(|e| e.to_string())?;
    let params = net.module().parameters();
    let mut opt = match kind.build::<f32>(kind.usual_lr())? {
        Stepper::Opt(o) => o,
        Stepper::Lbfgs(l) => return train_mlp_lbfgs(&net, l, train, test, epochs),
    };
    let mut rng = Rng::seed(0);
    let (mut curve, mut block, mut step) = (Vec::new(), Vec::new(), 0usize);
    for epoch in 0..epochs {
        for b in train.epoch(epoch as u64) {
            // Sophia-G: the Gauss-Newton-Bartlett estimate on the batch,
            // labels drawn from the model, every 10 steps.
            let estimate = if matches!(kind, Kind::Sophia) && step % SOPHIA_EVERY == 0 {
                let refs: Vec<&Parameter<f32>> = params.iter().collect();
                let logits =
                    tapir::optim::objective(|t: &Tape<f32>| net.forward(&t.constant(b.x.clone())));
                Some(tapir::optim::gauss_newton_bartlett(&refs, logits, &mut rng)?.0)
            } else {
                None
            };
            let tape = Tape::new();
            let loss = net.forward(&tape.constant(b.x))?.cross_entropy(&b.labels)?;
            opt.apply_gradients(&tape.gradient(&loss, &params)?)?;
            if let Some(h) = estimate {
                opt.observe_hessian(&h)?;
            }
            block.push(f64::from(loss.value().item()?));
            step += 1;
            if block.len() == 10 {
                curve.push((step as f64, block.iter().sum::<f64>() / 10.0));
                block.clear();
            }
        }
    }
    // The optimizer's state in bytes per parameter, as saved (tensors in
    // f32 or bf16, scalars in f64).
    let state = opt.state();
    let bytes: usize = state
        .params
        .iter()
        .map(|(_, p)| p.slots.iter().map(Slot::bytes).sum::<usize>() + 8 * p.scalars.len())
        .sum();
    let count: usize = params
        .iter()
        .map(|p| p.shape().iter().product::<usize>())
        .sum();
    let per_param = bytes as f64 / count.max(1) as f64;
    let refs: Vec<&Parameter<f32>> = params.iter().collect();
    opt.eval(&refs);
    Ok((curve, test_accuracy(&net, test)?, per_param))
}

fn test_accuracy<D: Dataset + Sync>(net: &Net, test: &DataLoader<D>) -> Result<f64, Error> {
    let (mut right, mut total) = (0.0, 0usize);
    for b in test.epoch(0) {
        let logits = net.forward(&Var::untracked(b.x))?;
        right += tapir::nn::metrics::accuracy(logits.value(), &b.labels) * b.labels.len() as f64;
        total += b.labels.len();
    }
    Ok(right / total.max(1) as f64)
}

/// L-BFGS on the MLP: one iteration per mini-batch (its closure evaluates
/// that batch, as many times as the line search asks), the curvature
/// pairs carried across batches, as torch.optim.LBFGS would be used in a
/// mini-batch loop. The curve holds the loss before each step.
fn train_mlp_lbfgs<D: Dataset + Sync>(
    net: &Net,
    mut opt: LbfgsOptimizer<f32>,
    train: &DataLoader<D>,
    test: &DataLoader<D>,
    epochs: usize,
) -> Result<MlpRun, Error> {
    let params = net.module().parameters();
    let refs: Vec<&Parameter<f32>> = params.iter().collect();
    let (mut curve, mut block, mut step) = (Vec::new(), Vec::new(), 0usize);
    for epoch in 0..epochs {
        for b in train.epoch(epoch as u64) {
            let before = opt.step(&refs, || {
                let tape = Tape::new();
                let loss = net
                    .forward(&tape.constant(b.x.clone()))?
                    .cross_entropy(&b.labels)?;
                Ok((
                    f64::from(loss.value().item()?),
                    tape.gradient(&loss, &params)?,
                ))
            })?;
            block.push(before);
            step += 1;
            if block.len() == 10 {
                curve.push((step as f64, block.iter().sum::<f64>() / 10.0));
                block.clear();
            }
        }
    }
    // Its state: the direction, the last gradient and step, and the
    // history pairs (s, y), all f32.
    let st = opt.state();
    let floats = st.d.len()
        + st.prev_flat_grad.len()
        + st.old_dirs
            .iter()
            .chain(&st.old_stps)
            .map(Vec::len)
            .sum::<usize>();
    let count: usize = refs
        .iter()
        .map(|p| p.shape().iter().product::<usize>())
        .sum();
    let per_param = 4.0 * floats as f64 / count.max(1) as f64;
    Ok((curve, test_accuracy(net, test)?, per_param))
}

fn main() -> std::process::ExitCode {
    cli::exit_code(run)
}

fn run() -> Result<(), Error> {
    let start = Instant::now();
    let mut args = Args::parse();
    let lrs: &[f64] = if args.quick {
        args.steps = args.steps.min(200);
        args.epochs = 2;
        &[1e-3, 1e-2, 1e-1]
    } else {
        &[1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]
    };
    std::fs::create_dir_all(&args.out)?;
    let mut table = String::from("function,optimizer,lr,steps_to_tol,final_gap,evals\n");
    let mut written = Vec::new();
    for p in problems() {
        let runs = tour(&p, lrs, args.steps)?;
        print_table(&p, &runs, args.steps);
        for r in &runs {
            let hit = r.hit.map_or(String::new(), |s| s.to_string());
            table.push_str(&format!(
                "{},{},{},{hit},{:e},{}\n",
                p.file,
                r.kind.name(),
                r.lr,
                r.last_gap,
                r.evals
            ));
        }
        let f = |x: f64, y: f64| f_at(&p, x, y);
        let label = |r: &Run| format!("{} (lr {})", r.kind.name(), r.lr);
        let paths = runs
            .iter()
            .map(|r| Series::new(label(r), r.path.clone()))
            .collect();
        let chart = Contour {
            title: format!(
                "{}: {} steps from ({}, {})",
                p.name, args.steps, p.start.0, p.start.1
            ),
            f: &f,
            x: p.x.clone(),
            y: p.y.clone(),
            paths,
            mark: Some(p.minimum),
        };
        let path = args.out.join(format!("{}.png", p.file));
        tapir::nn::write_atomic(&path, &contour(&chart, (1100, 700))?)?;
        written.push(path);
        let mut panel = Panel::new(format!("{}: f - f* per step", p.name))
            .x_label("step")
            .y_label("f - f*")
            .log_y();
        for r in &runs {
            let pts = r
                .gaps
                .iter()
                .enumerate()
                .map(|(k, &g)| (k as f64, g.max(1e-16)))
                .collect();
            panel = panel.series(Series::new(label(r), pts));
        }
        let path = args.out.join(format!("{}_gap.png", p.file));
        tapir::nn::write_atomic(&path, &line_chart(&[panel], (1100, 600))?)?;
        written.push(path);
        if args.quick {
            check_adam(&p, &runs)?;
        }
    }
    let table_path = args.out.join("tour.csv");
    tapir::nn::write_atomic(&table_path, table.as_bytes())?;
    written.push(table_path);

    // The same optimizers on a real network.
    let (mut train, test) = load_data(None).map_err(|e| e.to_string())?;
    if args.quick {
        train = train.subset(&(0..1500).collect::<Vec<_>>());
    }
    let train = DataLoader::new(train, 64).shuffle(0).transform(normalize());
    let test = DataLoader::new(test, 1000).transform(normalize());
    println!(
        "\nMNIST MLP 784-256-10, batch 64, {} epoch(s) on {} images, each optimizer at its usual lr:",
        args.epochs,
        train.dataset().len()
    );
    println!(
        "  {:<20} {:>8} {:>12} {:>14} {:>14}",
        "optimizer", "lr", "last loss", "test accuracy", "state B/param"
    );
    // Two charts, so that no two lines share a colour: the classic
    // optimizers, and the newer ones with Adam for reference.
    let panel = |title: &str| {
        Panel::new(title)
            .x_label("step")
            .y_label("cross-entropy")
            .log_y()
    };
    let mut classic = panel("MNIST MLP, classic optimizers: training loss (mean of 10 steps)");
    let mut newer = panel("MNIST MLP, newer optimizers (Adam for reference)");
    let mut bf16 = panel("MNIST MLP, Adam with its moments in f32 or bf16");
    for (i, kind) in KINDS.into_iter().enumerate() {
        let (curve, acc, state) = train_mlp(kind, &train, &test, args.epochs)?;
        let last = curve.last().map_or(f64::NAN, |p| p.1);
        println!(
            "  {:<20} {:>8} {:>12.4} {:>13.1}% {:>14.3}",
            kind.name(),
            kind.usual_lr(),
            last,
            100.0 * acc,
            state
        );
        if args.quick && matches!(kind, Kind::Adam) {
            let first = curve.first().map_or(f64::NAN, |p| p.1);
            if last.is_nan() || last >= first {
                return Err(format!("MLP with Adam: loss {first} -> {last} did not fall").into());
            }
        }
        let label = format!("{} (lr {})", kind.name(), kind.usual_lr());
        if matches!(kind, Kind::Adam) {
            newer = newer.series(Series::new(label.clone(), curve.clone()));
            bf16 = bf16.series(Series::new(label.clone(), curve.clone()));
        }
        if i < FIRST_NEWER {
            classic = classic.series(Series::new(label, curve));
        } else if matches!(kind, Kind::AdamBf16 | Kind::AdamBf16Sr) {
            bf16 = bf16.series(Series::new(label, curve));
        } else {
            newer = newer.series(Series::new(label, curve));
        }
    }
    for (file, p) in [
        ("mnist_mlp.png", classic),
        ("mnist_mlp_newer.png", newer),
        ("mnist_mlp_bf16.png", bf16),
    ] {
        let path = args.out.join(file);
        tapir::nn::write_atomic(&path, &line_chart(&[p], (1100, 600))?)?;
        written.push(path);
    }
    println!();
    for p in &written {
        println!("wrote {}", p.display());
    }
    println!("total wall time {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
