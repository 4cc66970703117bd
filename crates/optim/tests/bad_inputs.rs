//! Bad inputs to the optimizers: one table of cases (schedules, per-step
//! learning rates, group options, transforms, parameter state, saved
//! state), each asserting the exact error variant and that the message
//! names the schedule, optimizer or parameter and the offending value; then
//! tests that a refused step or load changes nothing; then a proptest that
//! builds every schedule from random fields (0, negative, huge, NaN and
//! infinities included) and requires either a refusal or finite,
//! non-negative rates at every step up to `u64::MAX`.
//!
//! `PROPTEST_CASES` raises the proptest's case count for long runs by hand.

use proptest::prelude::*;
use tapir_autograd::{Gradients, Parameter};
use tapir_optim::*;
use tapir_tensor::Tensor;

type Opt = Optimizer<f64>;

fn t(v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap()
}

fn p(name: &str, v: &[f64]) -> Parameter<f64> {
    Parameter::new(name, t(v))
}

fn grads(pairs: &[(&Parameter<f64>, Option<Tensor<f64>>)]) -> Gradients<f64> {
    Gradients::from_pairs(
        pairs
            .iter()
            .map(|(p, g)| ((*p).clone(), g.clone()))
            .collect(),
    )
}

/// A gradient of ones shaped like `p`.
fn ones(p: &Parameter<f64>) -> Option<Tensor<f64>> {
    Some(Tensor::ones(p.shape()))
}

fn sgd() -> Opt {
    Sgd::new(0.1).build::<f64>().unwrap()
}

/// Puts a schedule into an optimizer.
fn sched(s: impl Schedule + 'static) -> Result<()> {
    sgd().with_schedule(s).map(drop)
}

/// Puts a parameter group into an optimizer.
fn group(options: GroupOptions) -> Result<()> {
    sgd().with_group(|_| true, options).map(drop)
}

/// Puts a transform into an optimizer.
fn transform(tr: GradTransform) -> Result<()> {
    sgd().with_transform(tr).map(drop)
}

/// `steps` steps of `opt` on `w` with unit gradients.
fn steps(opt: &mut Opt, w: &Parameter<f64>, steps: usize) -> Result<()> {
    for _ in 0..steps {
        opt.apply_gradients(&grads(&[(w, ones(w))]))?;
    }
    Ok(())
}

/// An optimizer of `make` after one step on `w = [1, 2]`, and its state.
fn saved(make: fn() -> Opt) -> (Opt, OptimizerState<f64>, Parameter<f64>) {
    let w = p("w", &[1.0, 2.0]);
    let mut opt = make();
    steps(&mut opt, &w, 1).unwrap();
    let st = opt.state();
    (opt, st, w)
}

fn nadam() -> Opt {
    Nadam::new(0.01).build::<f64>().unwrap()
}

fn adam() -> Opt {
    Adam::new(0.01).build::<f64>().unwrap()
}

fn plateau() -> Opt {
    sgd()
        .with_schedule(ReduceOnPlateau::new(0.5, 2, 1e-4, 0, 0.0))
        .unwrap()
}

fn warmup_plateau() -> Opt {
    sgd()
        .with_schedule(Sequential {
            schedules: vec![
                Box::new(Linear {
                    start: 0.5,
                    end: 1.0,
                    steps: 5,
                }),
                Box::new(ReduceOnPlateau::new(0.5, 2, 1e-4, 0, 0.0)),
            ],
            milestones: vec![5],
        })
        .unwrap()
}

/// Loads a state of `make`'s optimizer after `edit` changes it.
fn load_edited(make: fn() -> Opt, edit: fn(&mut OptimizerState<f64>)) -> Result<()> {
    let (_, mut st, w) = saved(make);
    edit(&mut st);
    make().load_state(&st, &[&w])
}

/// The variant a case must give.
type Want = fn(&Error) -> bool;

struct Case {
    name: &'static str,
    want: Want,
    /// What the message must contain: who refused, and the value or name.
    needles: &'static [&'static str],
    run: fn() -> Result<()>,
}

/// `Error::Hyperparameter` from `who` for field `name` with value `v`
/// (`nan` for NaN).
macro_rules! hyper {
    ($who:literal, $name:literal, nan) => {
        |e: &Error| {
            matches!(e, Error::Hyperparameter { optimizer: $who, name: $name, value, .. }
                if value.is_nan())
        }
    };
    ($who:literal, $name:literal, $v:expr) => {
        |e: &Error| {
            matches!(e, Error::Hyperparameter { optimizer: $who, name: $name, value, .. }
                if *value == $v)
        }
    };
}

macro_rules! case {
    ($name:expr, $want:expr, [$($n:expr),*], $run:expr) => {
        Case {
            name: $name,
            want: $want,
            needles: &[$($n),*],
            run: $run,
        }
    };
}

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

fn cases() -> Vec<Case> {
    vec![
        // ---- Schedules, checked by with_schedule.
        case!(
            "constant factor < 0",
            hyper!("Constant", "factor", -0.5),
            ["Constant", "factor = -0.5", "[0, 1]"],
            || sched(Constant {
                factor: -0.5,
                steps: 5
            })
        ),
        case!(
            "constant factor > 1",
            hyper!("Constant", "factor", 1.5),
            ["Constant", "factor = 1.5"],
            || sched(Constant {
                factor: 1.5,
                steps: 5
            })
        ),
        case!(
            "constant factor NaN",
            hyper!("Constant", "factor", nan),
            ["Constant", "factor = NaN"],
            || sched(Constant {
                factor: NAN,
                steps: 5
            })
        ),
        case!(
            "step decay zero period",
            hyper!("StepDecay", "step_size", 0.0),
            ["StepDecay", "step_size = 0", ">= 1"],
            || sched(StepDecay {
                step_size: 0,
                gamma: 0.1
            })
        ),
        case!(
            "step decay gamma < 0 (ascent)",
            hyper!("StepDecay", "gamma", -0.1),
            ["StepDecay", "gamma = -0.1"],
            || sched(StepDecay {
                step_size: 10,
                gamma: -0.1
            })
        ),
        case!(
            "step decay gamma > 1 (overflow)",
            hyper!("StepDecay", "gamma", 1.5),
            ["StepDecay", "gamma = 1.5"],
            || sched(StepDecay {
                step_size: 10,
                gamma: 1.5
            })
        ),
        case!(
            "step decay gamma NaN",
            hyper!("StepDecay", "gamma", nan),
            ["StepDecay", "gamma = NaN"],
            || sched(StepDecay {
                step_size: 10,
                gamma: NAN
            })
        ),
        case!(
            "multistep gamma < 0",
            hyper!("MultiStep", "gamma", -1.0),
            ["MultiStep", "gamma = -1"],
            || sched(MultiStep {
                milestones: vec![10, 20],
                gamma: -1.0
            })
        ),
        case!(
            "multistep gamma inf",
            hyper!("MultiStep", "gamma", INF),
            ["MultiStep", "gamma = inf"],
            || sched(MultiStep {
                milestones: vec![10],
                gamma: INF
            })
        ),
        case!(
            "exponential gamma < 0",
            hyper!("Exponential", "gamma", -0.9),
            ["Exponential", "gamma = -0.9"],
            || sched(Exponential { gamma: -0.9 })
        ),
        case!(
            "exponential gamma > 1",
            hyper!("Exponential", "gamma", 1.01),
            ["Exponential", "gamma = 1.01"],
            || sched(Exponential { gamma: 1.01 })
        ),
        case!(
            "exponential gamma NaN",
            hyper!("Exponential", "gamma", nan),
            ["Exponential", "gamma = NaN"],
            || sched(Exponential { gamma: NAN })
        ),
        case!(
            "polynomial zero length",
            hyper!("Polynomial", "total_steps", 0.0),
            ["Polynomial", "total_steps = 0"],
            || sched(Polynomial {
                total_steps: 0,
                power: 1.0
            })
        ),
        case!(
            "polynomial power < 0",
            hyper!("Polynomial", "power", -1.0),
            ["Polynomial", "power = -1"],
            || sched(Polynomial {
                total_steps: 10,
                power: -1.0
            })
        ),
        case!(
            "polynomial power inf",
            hyper!("Polynomial", "power", INF),
            ["Polynomial", "power = inf"],
            || sched(Polynomial {
                total_steps: 10,
                power: INF
            })
        ),
        case!(
            "inverse time rate < 0",
            hyper!("InverseTime", "rate", -0.5),
            ["InverseTime", "rate = -0.5"],
            || sched(InverseTime {
                rate: -0.5,
                steps: 10
            })
        ),
        case!(
            "inverse time rate NaN",
            hyper!("InverseTime", "rate", nan),
            ["InverseTime", "rate = NaN"],
            || sched(InverseTime {
                rate: NAN,
                steps: 10
            })
        ),
        case!(
            "inverse time zero steps",
            hyper!("InverseTime", "steps", 0.0),
            ["InverseTime", "steps = 0"],
            || sched(InverseTime {
                rate: 0.5,
                steps: 0
            })
        ),
        case!(
            "cosine t_max = 0",
            hyper!("Cosine", "t_max", 0.0),
            ["Cosine", "t_max = 0", ">= 1"],
            || sched(Cosine {
                t_max: 0,
                eta_min: 0.0
            })
        ),
        case!(
            "cosine eta_min < 0",
            hyper!("Cosine", "eta_min", -0.01),
            ["Cosine", "eta_min = -0.01"],
            || sched(Cosine {
                t_max: 10,
                eta_min: -0.01
            })
        ),
        case!(
            "cosine eta_min NaN",
            hyper!("Cosine", "eta_min", nan),
            ["Cosine", "eta_min = NaN"],
            || sched(Cosine {
                t_max: 10,
                eta_min: NAN
            })
        ),
        case!(
            "restarts zero first cycle",
            hyper!("CosineRestarts", "t0", 0.0),
            ["CosineRestarts", "t0 = 0"],
            || sched(CosineRestarts {
                t0: 0,
                t_mult: 2,
                eta_min: 0.0
            })
        ),
        case!(
            "restarts zero multiplier",
            hyper!("CosineRestarts", "t_mult", 0.0),
            ["CosineRestarts", "t_mult = 0"],
            || sched(CosineRestarts {
                t0: 10,
                t_mult: 0,
                eta_min: 0.0
            })
        ),
        case!(
            "restarts eta_min < 0",
            hyper!("CosineRestarts", "eta_min", -1.0),
            ["CosineRestarts", "eta_min = -1"],
            || sched(CosineRestarts {
                t0: 10,
                t_mult: 2,
                eta_min: -1.0
            })
        ),
        case!(
            "restarts eta_min inf",
            hyper!("CosineRestarts", "eta_min", INF),
            ["CosineRestarts", "eta_min = inf"],
            || sched(CosineRestarts {
                t0: 10,
                t_mult: 2,
                eta_min: INF
            })
        ),
        case!(
            "linear start < 0",
            hyper!("Linear", "start", -0.1),
            ["Linear", "start = -0.1"],
            || sched(Linear {
                start: -0.1,
                end: 1.0,
                steps: 10
            })
        ),
        case!(
            "linear end > 1",
            hyper!("Linear", "end", 2.0),
            ["Linear", "end = 2"],
            || sched(Linear {
                start: 0.1,
                end: 2.0,
                steps: 10
            })
        ),
        case!(
            "linear start NaN",
            hyper!("Linear", "start", nan),
            ["Linear", "start = NaN"],
            || sched(Linear {
                start: NAN,
                end: 1.0,
                steps: 10
            })
        ),
        case!(
            "linear zero-length ramp",
            hyper!("Linear", "steps", 0.0),
            ["Linear", "steps = 0"],
            || sched(Linear {
                start: 0.1,
                end: 1.0,
                steps: 0
            })
        ),
        case!(
            "sequential of nothing",
            hyper!("Sequential", "schedules", 0.0),
            ["Sequential", "schedules = 0"],
            || sched(Sequential {
                schedules: vec![],
                milestones: vec![]
            })
        ),
        case!(
            "sequential milestone count",
            hyper!("Sequential", "milestones", 0.0),
            ["Sequential", "milestones = 0", "one fewer"],
            || sched(Sequential {
                schedules: vec![
                    Box::new(Exponential { gamma: 0.9 }),
                    Box::new(Exponential { gamma: 0.5 })
                ],
                milestones: vec![],
            })
        ),
        case!(
            "sequential unsorted milestones",
            hyper!("Sequential", "milestone", 10.0),
            ["Sequential", "milestone = 10", "strictly increasing"],
            || sched(Sequential {
                schedules: vec![
                    Box::new(Exponential { gamma: 0.9 }),
                    Box::new(Exponential { gamma: 0.8 }),
                    Box::new(Exponential { gamma: 0.7 }),
                ],
                milestones: vec![30, 10],
            })
        ),
        case!(
            "sequential repeated milestone",
            hyper!("Sequential", "milestone", 10.0),
            ["Sequential", "milestone = 10"],
            || sched(Sequential {
                schedules: vec![
                    Box::new(Exponential { gamma: 0.9 }),
                    Box::new(Exponential { gamma: 0.8 }),
                    Box::new(Exponential { gamma: 0.7 }),
                ],
                milestones: vec![10, 10],
            })
        ),
        case!(
            "sequential milestone 0",
            hyper!("Sequential", "milestone", 0.0),
            ["Sequential", "milestone = 0", "> 0"],
            || sched(Sequential {
                schedules: vec![
                    Box::new(Exponential { gamma: 0.9 }),
                    Box::new(Exponential { gamma: 0.5 })
                ],
                milestones: vec![0],
            })
        ),
        case!(
            "sequential with a bad part",
            hyper!("Cosine", "t_max", 0.0),
            ["Cosine", "t_max = 0"],
            || sched(Sequential {
                schedules: vec![
                    Box::new(Linear {
                        start: 0.1,
                        end: 1.0,
                        steps: 5
                    }),
                    Box::new(Cosine {
                        t_max: 0,
                        eta_min: 0.0
                    }),
                ],
                milestones: vec![5],
            })
        ),
        case!(
            "nested sequential with a bad part",
            hyper!("Exponential", "gamma", -2.0),
            ["Exponential", "gamma = -2"],
            || sched(Sequential {
                schedules: vec![
                    Box::new(Constant {
                        factor: 0.5,
                        steps: 3
                    }),
                    Box::new(Sequential {
                        schedules: vec![
                            Box::new(Constant {
                                factor: 1.0,
                                steps: 1
                            }),
                            Box::new(Exponential { gamma: -2.0 }),
                        ],
                        milestones: vec![4],
                    }),
                ],
                milestones: vec![3],
            })
        ),
        case!(
            "one-cycle zero steps",
            hyper!("OneCycle", "total_steps", 0.0),
            ["OneCycle", "total_steps = 0"],
            || sched(OneCycle::new(0.1, 0))
        ),
        case!(
            "one-cycle pct_start > 1",
            hyper!("OneCycle", "pct_start", 1.5),
            ["OneCycle", "pct_start = 1.5", "[0, 1]"],
            || sched(OneCycle {
                pct_start: 1.5,
                ..OneCycle::new(0.1, 100)
            })
        ),
        case!(
            "one-cycle pct_start < 0",
            hyper!("OneCycle", "pct_start", -0.1),
            ["OneCycle", "pct_start = -0.1"],
            || sched(OneCycle {
                pct_start: -0.1,
                ..OneCycle::new(0.1, 100)
            })
        ),
        case!(
            "one-cycle pct_start NaN",
            hyper!("OneCycle", "pct_start", nan),
            ["OneCycle", "pct_start = NaN"],
            || sched(OneCycle {
                pct_start: NAN,
                ..OneCycle::new(0.1, 100)
            })
        ),
        case!(
            "one-cycle max_lr < 0",
            hyper!("OneCycle", "max_lr", -1.0),
            ["OneCycle", "max_lr = -1"],
            || sched(OneCycle::new(-1.0, 100))
        ),
        case!(
            "one-cycle max_lr inf",
            hyper!("OneCycle", "max_lr", INF),
            ["OneCycle", "max_lr = inf"],
            || sched(OneCycle::new(INF, 100))
        ),
        case!(
            "one-cycle div 0",
            hyper!("OneCycle", "div", 0.0),
            ["OneCycle", "div = 0", ">= 1"],
            || sched(OneCycle {
                div: 0.0,
                ..OneCycle::new(0.1, 100)
            })
        ),
        case!(
            "one-cycle div < 1",
            hyper!("OneCycle", "div", 0.5),
            ["OneCycle", "div = 0.5"],
            || sched(OneCycle {
                div: 0.5,
                ..OneCycle::new(0.1, 100)
            })
        ),
        case!(
            "one-cycle final_div NaN",
            hyper!("OneCycle", "final_div", nan),
            ["OneCycle", "final_div = NaN"],
            || sched(OneCycle {
                final_div: NAN,
                ..OneCycle::new(0.1, 100)
            })
        ),
        case!(
            "cyclic zero step size",
            hyper!("Cyclic", "step_size_up", 0.0),
            ["Cyclic", "step_size_up = 0"],
            || sched(Cyclic {
                base_lr: 0.001,
                max_lr: 0.1,
                step_size_up: 0
            })
        ),
        case!(
            "cyclic base_lr < 0",
            hyper!("Cyclic", "base_lr", -0.1),
            ["Cyclic", "base_lr = -0.1"],
            || sched(Cyclic {
                base_lr: -0.1,
                max_lr: 0.1,
                step_size_up: 5
            })
        ),
        case!(
            "cyclic max_lr NaN",
            hyper!("Cyclic", "max_lr", nan),
            ["Cyclic", "max_lr = NaN"],
            || sched(Cyclic {
                base_lr: 0.001,
                max_lr: NAN,
                step_size_up: 5
            })
        ),
        case!(
            "plateau factor 1",
            hyper!("ReduceOnPlateau", "factor", 1.0),
            ["ReduceOnPlateau", "factor = 1", "[0, 1)"],
            || sched(ReduceOnPlateau::new(1.0, 10, 1e-4, 0, 0.0))
        ),
        case!(
            "plateau factor > 1",
            hyper!("ReduceOnPlateau", "factor", 2.0),
            ["ReduceOnPlateau", "factor = 2"],
            || sched(ReduceOnPlateau::new(2.0, 10, 1e-4, 0, 0.0))
        ),
        case!(
            "plateau factor < 0",
            hyper!("ReduceOnPlateau", "factor", -0.5),
            ["ReduceOnPlateau", "factor = -0.5"],
            || sched(ReduceOnPlateau::new(-0.5, 10, 1e-4, 0, 0.0))
        ),
        case!(
            "plateau threshold < 0",
            hyper!("ReduceOnPlateau", "threshold", -1e-4),
            ["ReduceOnPlateau", "threshold = -0.0001"],
            || sched(ReduceOnPlateau::new(0.1, 10, -1e-4, 0, 0.0))
        ),
        case!(
            "plateau threshold 1",
            hyper!("ReduceOnPlateau", "threshold", 1.0),
            ["ReduceOnPlateau", "threshold = 1"],
            || sched(ReduceOnPlateau::new(0.1, 10, 1.0, 0, 0.0))
        ),
        case!(
            "plateau min_lr < 0",
            hyper!("ReduceOnPlateau", "min_lr", -1e-3),
            ["ReduceOnPlateau", "min_lr = -0.001"],
            || sched(ReduceOnPlateau::new(0.1, 10, 1e-4, 0, -1e-3))
        ),
        case!(
            "plateau min_lr NaN",
            hyper!("ReduceOnPlateau", "min_lr", nan),
            ["ReduceOnPlateau", "min_lr = NaN"],
            || sched(ReduceOnPlateau::new(0.1, 10, 1e-4, 0, NAN))
        ),
        // ---- The rate reaching the rule, checked every step.
        case!(
            "closure gives NaN",
            |e| matches!(e, Error::LearningRate { optimizer: "SGD", name, lr, step: 0, group: None, .. }
                if name == "w" && lr.is_nan()),
            ["SGD", "learning rate NaN", "'w'", "step 0"],
            || {
                let w = p("w", &[1.0]);
                steps(
                    &mut sgd().with_schedule(FnSchedule(|_, _| f64::NAN))?,
                    &w,
                    1,
                )
            }
        ),
        case!(
            "closure gives a negative rate",
            |e| matches!(e, Error::LearningRate { name, lr, .. } if name == "w" && *lr == -0.1),
            ["learning rate -0.1", "'w'", "finite and >= 0"],
            || {
                let w = p("w", &[1.0]);
                steps(&mut sgd().with_schedule(FnSchedule(|_, _| -0.1))?, &w, 1)
            }
        ),
        case!(
            "closure gives inf at step 3",
            |e| matches!(e, Error::LearningRate { step: 3, lr, scheduled, .. }
                if *lr == f64::INFINITY && *scheduled == f64::INFINITY),
            ["learning rate inf", "step 3"],
            || {
                let w = p("w", &[1.0]);
                let s = FnSchedule(|t, base| if t < 3 { base } else { f64::INFINITY });
                steps(&mut sgd().with_schedule(s)?, &w, 4)
            }
        ),
        case!(
            "group scale overflows the rate",
            |e| matches!(e, Error::LearningRate { name, lr, group: Some(1), scale, .. }
                if name == "b" && *lr == f64::INFINITY && *scale == 1e200),
            [
                "learning rate inf",
                "'b'",
                "group 1 scales it by 1",
                "the schedule gave 1"
            ],
            || {
                let b = p("b", &[1.0]);
                let mut opt = Sgd::new(1e200)
                    .build::<f64>()?
                    .with_group(|n| n == "a", GroupOptions::default())?
                    .with_group(
                        |n| n == "b",
                        GroupOptions {
                            lr_scale: Some(1e200),
                            weight_decay: None,
                        },
                    )?;
                steps(&mut opt, &b, 1)
            }
        ),
        // ---- Group options, checked by with_group.
        case!(
            "group lr_scale < 0",
            hyper!("SGD", "group lr_scale", -0.5),
            ["SGD", "group lr_scale = -0.5"],
            || group(GroupOptions {
                lr_scale: Some(-0.5),
                weight_decay: None
            })
        ),
        case!(
            "group lr_scale NaN",
            hyper!("SGD", "group lr_scale", nan),
            ["SGD", "group lr_scale = NaN"],
            || group(GroupOptions {
                lr_scale: Some(NAN),
                weight_decay: None
            })
        ),
        case!(
            "group lr_scale inf",
            hyper!("SGD", "group lr_scale", INF),
            ["SGD", "group lr_scale = inf"],
            || group(GroupOptions {
                lr_scale: Some(INF),
                weight_decay: None
            })
        ),
        case!(
            "group L2 decay NaN",
            hyper!("SGD", "group weight_decay", nan),
            ["SGD", "group weight_decay = NaN"],
            || group(GroupOptions {
                lr_scale: None,
                weight_decay: Some(WeightDecay::L2(NAN))
            })
        ),
        case!(
            "group decoupled decay < 0",
            hyper!("Adam", "group weight_decay", -0.1),
            ["Adam", "group weight_decay = -0.1"],
            || adam()
                .with_group(
                    |_| true,
                    GroupOptions {
                        lr_scale: None,
                        weight_decay: Some(WeightDecay::Decoupled(-0.1)),
                    }
                )
                .map(drop)
        ),
        case!(
            "group L2 decay inf",
            hyper!("SGD", "group weight_decay", INF),
            ["SGD", "group weight_decay = inf"],
            || group(GroupOptions {
                lr_scale: Some(1.0),
                weight_decay: Some(WeightDecay::L2(INF))
            })
        ),
        // ---- Transforms built from their variants, checked by with_transform.
        case!(
            "clip_norm < 0 (would flip gradients)",
            hyper!("clip_norm", "max", -1.0),
            ["clip_norm", "max = -1"],
            || transform(GradTransform::ClipNorm(-1.0))
        ),
        case!(
            "clip_global_norm NaN",
            hyper!("clip_global_norm", "max", nan),
            ["clip_global_norm", "max = NaN"],
            || transform(GradTransform::ClipGlobalNorm(NAN))
        ),
        case!(
            "clip_value < 0",
            hyper!("clip_value", "c", -1.0),
            ["clip_value", "c = -1"],
            || transform(GradTransform::ClipValue(-1.0))
        ),
        case!(
            "l1 inf",
            hyper!("l1", "lambda", INF),
            ["l1", "lambda = inf"],
            || transform(GradTransform::L1(INF))
        ),
        case!(
            "l1 NaN from its constructor",
            hyper!("l1", "lambda", nan),
            ["l1", "lambda = NaN"],
            || GradTransform::l1(NAN).map(drop)
        ),
        // ---- Parameters and their state, checked every step.
        case!(
            "parameter resized after a step",
            |e| matches!(e, Error::StateShape { optimizer: "Adam", name, param, state }
                if name == "w" && param == &[3] && state == &[2]),
            ["Adam", "'w'", "[3]", "[2]"],
            || {
                let w = p("w", &[1.0, 2.0]);
                let mut opt = adam();
                steps(&mut opt, &w, 1)?;
                w.set(t(&[1.0, 2.0, 3.0]));
                steps(&mut opt, &w, 1)
            }
        ),
        case!(
            "parameter reshaped (same length) after a step",
            |e| matches!(e, Error::StateShape { name, param, state, .. }
                if name == "m" && param == &[2, 1] && state == &[2]),
            ["'m'", "[2, 1]", "[2]"],
            || {
                let m = p("m", &[1.0, 2.0]);
                let mut opt = sgd();
                steps(&mut opt, &m, 1)?;
                m.set(Tensor::from_vec(vec![1.0, 2.0], [2, 1])?);
                steps(&mut opt, &m, 1)
            }
        ),
        case!(
            "parameter resized while accumulating",
            |e| matches!(e, Error::StateShape { optimizer: "accumulate", name, param, state }
                if name == "w" && param == &[1] && state == &[2]),
            ["accumulate", "'w'", "[1]", "[2]"],
            || {
                let w = p("w", &[1.0, 2.0]);
                let mut opt = sgd().with_transform(GradTransform::accumulate(2)?)?;
                steps(&mut opt, &w, 1)?;
                w.set(t(&[1.0]));
                steps(&mut opt, &w, 1)
            }
        ),
        case!(
            "two parameters with one name while accumulating",
            |e| matches!(e, Error::DuplicateName { optimizer: "accumulate", name, .. } if name == "w"),
            ["accumulate", "'w'", "unique"],
            || {
                let (w, w2) = (p("w", &[1.0]), p("w", &[2.0]));
                let mut opt = sgd().with_transform(GradTransform::accumulate(3)?)?;
                steps(&mut opt, &w, 1)?;
                steps(&mut opt, &w2, 1)
            }
        ),
        case!(
            "parameter resized under an EMA",
            |e| matches!(e, Error::StateShape { optimizer: "ParamEma", name, .. } if name == "w"),
            ["ParamEma", "'w'", "[1]", "[2]"],
            || {
                let w = p("w", &[1.0, 2.0]);
                let mut ema = ParamEma::new(&[&w], 0.9)?;
                w.set(t(&[1.0]));
                ema.update()
            }
        ),
        case!(
            "same parameter twice in one step",
            |e| matches!(e, Error::DuplicateParameter { optimizer: "SGD", name } if name == "w"),
            ["SGD", "'w'", "more than once"],
            || {
                let w = p("w", &[1.0]);
                sgd()
                    .apply_gradients(&grads(&[(&w, ones(&w)), (&w, ones(&w))]))
                    .map(drop)
            }
        ),
        case!(
            "same parameter twice, once without a gradient",
            |e| matches!(e, Error::DuplicateParameter { name, .. } if name == "w"),
            ["'w'", "more than once"],
            || {
                let w = p("w", &[1.0]);
                sgd()
                    .apply_gradients(&grads(&[(&w, ones(&w)), (&w, None)]))
                    .map(drop)
            }
        ),
        case!(
            "two parameters named alike in one step",
            |e| matches!(e, Error::DuplicateName { optimizer: "Adam", name, .. } if name == "w"),
            ["Adam", "'w'", "unique"],
            || {
                let (a, b) = (p("w", &[1.0]), p("w", &[2.0]));
                adam()
                    .apply_gradients(&grads(&[(&a, ones(&a)), (&b, ones(&b))]))
                    .map(drop)
            }
        ),
        case!(
            "a second parameter takes a tracked name later",
            |e| matches!(e, Error::DuplicateName { name, first, second, .. }
                if name == "layer.w" && first < second),
            ["'layer.w'", "two different parameters"],
            || {
                let (a, b) = (p("layer.w", &[1.0]), p("layer.w", &[2.0]));
                let mut opt = sgd();
                steps(&mut opt, &a, 1)?;
                steps(&mut opt, &b, 1)
            }
        ),
        // ---- Saved state, checked by load_state.
        case!(
            "load: NAdam's scalars missing",
            |e| matches!(e, Error::State(m) if m.contains("NAdam keeps 1 scalars")),
            ["load_state", "'w'", "NAdam", "the state has 0"],
            || load_edited(nadam, |st| st.params[0].1.scalars.clear())
        ),
        case!(
            "load: NAdam's scalar NaN",
            |e| matches!(e, Error::State(m) if m.contains("not finite")),
            ["load_state", "'w'", "NaN"],
            || load_edited(nadam, |st| st.params[0].1.scalars[0] = f64::NAN)
        ),
        case!(
            "load: a slot missing",
            |e| matches!(e, Error::State(m) if m.contains("slots do not fit Adam")),
            ["load_state", "'w'", "1 slots", "expected 2"],
            || load_edited(adam, |st| {
                st.params[0].1.slots.pop();
            })
        ),
        case!(
            "load: a slot too short",
            |e| matches!(e, Error::State(m) if m.contains("slots do not fit")),
            ["load_state", "'w'", "[2, 1]", "lengths [2, 2]"],
            || load_edited(adam, |st| {
                st.params[0].1.slots[1] = Slot::Full(vec![0.0]);
            })
        ),
        case!(
            "load: the state's shape differs",
            |e| matches!(e, Error::State(m) if m.contains("the state has [1, 2]")),
            ["load_state", "'w'", "[2]"],
            || load_edited(adam, |st| st.params[0].1.shape = vec![1, 2])
        ),
        case!(
            "load: a name saved twice",
            |e| matches!(e, Error::State(m) if m.contains("twice")),
            ["load_state", "'w'"],
            || load_edited(adam, |st| {
                let again = st.params[0].clone();
                st.params.push(again);
            })
        ),
        case!(
            "load: two parameters with the saved name",
            |e| matches!(e, Error::State(m) if m.contains("two different parameters are named 'w'")),
            ["load_state", "'w'"],
            || {
                let (_, st, w) = saved(adam);
                let other = p("w", &[0.0, 0.0]);
                adam().load_state(&st, &[&w, &other])
            }
        ),
        case!(
            "load: another optimizer's state",
            |e| matches!(e, Error::State(m) if m.contains("state of NAdam cannot be loaded into Adam")),
            ["load_state", "NAdam", "Adam"],
            || {
                let (_, st, w) = saved(nadam);
                adam().load_state(&st, &[&w])
            }
        ),
        case!(
            "load: plateau state too short",
            |e| matches!(e, Error::State(m) if m.contains("ReduceOnPlateau")),
            ["load_state", "ReduceOnPlateau", "3 values", "expected 4"],
            || load_edited(plateau, |st| {
                st.schedule.pop();
            })
        ),
        case!(
            "load: plateau scale out of range",
            |e| matches!(e, Error::State(m) if m.contains("scale = 2")),
            ["load_state", "ReduceOnPlateau", "[0, 1]"],
            || load_edited(plateau, |st| st.schedule[3] = 2.0)
        ),
        case!(
            "load: plateau scale NaN",
            |e| matches!(e, Error::State(m) if m.contains("scale = NaN")),
            ["load_state", "ReduceOnPlateau"],
            || load_edited(plateau, |st| st.schedule[3] = f64::NAN)
        ),
        case!(
            "load: plateau counter negative",
            |e| matches!(e, Error::State(m) if m.contains("bad = -1")),
            ["load_state", "ReduceOnPlateau", "whole number"],
            || load_edited(plateau, |st| st.schedule[1] = -1.0)
        ),
        case!(
            "load: plateau counter fractional",
            |e| matches!(e, Error::State(m) if m.contains("cooling = 0.5")),
            ["load_state", "ReduceOnPlateau", "whole number"],
            || load_edited(plateau, |st| st.schedule[2] = 0.5)
        ),
        case!(
            "load: plateau best NaN",
            |e| matches!(e, Error::State(m) if m.contains("best metric is NaN")),
            ["load_state", "ReduceOnPlateau"],
            || load_edited(plateau, |st| st.schedule[0] = f64::NAN)
        ),
        case!(
            "load: schedule state, but no schedule",
            |e| matches!(e, Error::State(m) if m.contains("no schedule")),
            ["load_state", "4 schedule values"],
            || {
                let (_, st, w) = saved(plateau);
                sgd().load_state(&st, &[&w])
            }
        ),
        case!(
            "load: schedule state into a stateless schedule",
            |e| matches!(e, Error::State(m) if m.contains("keeps none")),
            ["load_state", "4 values"],
            || {
                let (_, st, w) = saved(plateau);
                sgd()
                    .with_schedule(Cosine {
                        t_max: 10,
                        eta_min: 0.0,
                    })?
                    .load_state(&st, &[&w])
            }
        ),
        case!(
            "load: sequential state with a bad length prefix",
            |e| matches!(e, Error::State(m) if m.contains("Sequential: part 1 claims 9")),
            ["load_state", "Sequential", "4 remain"],
            || load_edited(warmup_plateau, |st| st.schedule[1] = 9.0)
        ),
        case!(
            "load: sequential state with values left over",
            |e| matches!(e, Error::State(m) if m.contains("left over")),
            ["load_state", "Sequential", "1 saved state values"],
            || load_edited(warmup_plateau, |st| st.schedule.push(0.0))
        ),
    ]
}

#[test]
fn every_bad_input_is_refused_with_its_variant_and_a_message_naming_it() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        match (c.run)() {
            Ok(()) => failures.push(format!("{}: accepted", c.name)),
            Err(e) => {
                let msg = e.to_string();
                if !(c.want)(&e) {
                    failures.push(format!("{}: wrong error {e:?}", c.name));
                }
                for n in c.needles {
                    if !msg.contains(n) {
                        failures.push(format!("{}: message {msg:?} lacks {n:?}", c.name));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_refused_step_changes_nothing() {
    let w = p("w", &[1.0, 2.0]);
    let b = p("b", &[3.0]);
    // From step 2 the group scale overflows b's rate only: w, listed
    // before it, must not have moved either, nor any state.
    let mut opt = Adam::new(0.1)
        .build::<f64>()
        .unwrap()
        .with_schedule(FnSchedule(|t, base| if t < 2 { base } else { 1e300 }))
        .unwrap()
        .with_transform(GradTransform::accumulate(1).unwrap())
        .unwrap()
        .with_group(
            |n| n == "b",
            GroupOptions {
                lr_scale: Some(1e10),
                weight_decay: None,
            },
        )
        .unwrap();
    let g = || grads(&[(&w, ones(&w)), (&b, ones(&b))]);
    opt.apply_gradients(&g()).unwrap();
    opt.apply_gradients(&g()).unwrap();
    let (wv, bv, st) = (w.value(), b.value(), opt.state());
    let e = opt.apply_gradients(&g()).unwrap_err();
    assert!(
        matches!(&e, Error::LearningRate { name, step: 2, group: Some(0), .. } if name == "b"),
        "{e}"
    );
    assert_eq!(w.value(), wv);
    assert_eq!(b.value(), bv);
    assert_eq!(opt.state(), st);
    assert_eq!(opt.steps(), 2);

    // A resized second parameter: the first is untouched too.
    let c = p("c", &[0.0]);
    let mut opt = sgd();
    opt.apply_gradients(&grads(&[(&w, ones(&w)), (&c, ones(&c))]))
        .unwrap();
    c.set(t(&[0.0, 0.0]));
    let (wv, st) = (w.value(), opt.state());
    let e = opt
        .apply_gradients(&grads(&[(&w, ones(&w)), (&c, ones(&c))]))
        .unwrap_err();
    assert!(matches!(e, Error::StateShape { .. }), "{e}");
    assert_eq!(w.value(), wv);
    assert_eq!(opt.state(), st);
    assert_eq!(opt.steps(), 1);
}

#[test]
fn reset_state_lets_a_resized_or_renamed_parameter_train_again() {
    let w = p("w", &[1.0, 2.0]);
    let mut opt = Adam::new(0.1).build::<f64>().unwrap();
    steps(&mut opt, &w, 2).unwrap();
    w.set(t(&[1.0, 2.0, 3.0]));
    assert!(steps(&mut opt, &w, 1).is_err());
    assert!(opt.reset_state("w"));
    assert!(!opt.reset_state("w"));
    steps(&mut opt, &w, 1).unwrap();
    let st = opt.state();
    assert_eq!(st.params.len(), 1);
    assert_eq!(st.params[0].1.t, 1, "a fresh state");
    assert_eq!(st.params[0].1.shape, vec![3]);
    // A replacement parameter with the old one's name.
    let w2 = p("w", &[0.0]);
    assert!(matches!(
        steps(&mut opt, &w2, 1),
        Err(Error::DuplicateName { .. })
    ));
    opt.reset_state("w");
    steps(&mut opt, &w2, 1).unwrap();
    assert_eq!(opt.state().params.len(), 1);
}

#[test]
fn a_refused_load_changes_nothing() {
    // Two plateau parts: when the second part's saved state is refused, the
    // first part's restore is undone.
    let part = || Box::new(ReduceOnPlateau::new(0.5, 0, 0.0, 0, 0.0)) as Box<dyn Schedule>;
    let mut s = Sequential {
        schedules: vec![part(), part()],
        milestones: vec![5],
    };
    let fresh = s.state();
    for m in [1.0, 2.0, 3.0] {
        s.observe(m);
    }
    let now = s.state();
    assert_ne!(now, fresh);
    let mut bad = fresh.clone();
    bad[9] = 7.0; // [4, part 0 (4 values), 4, part 1 (best, bad, cooling, scale)]
    let e = s.set_state(&bad).unwrap_err();
    assert!(e.to_string().contains("scale = 7"), "{e}");
    assert_eq!(s.state(), now);
    s.set_state(&fresh).unwrap();
    assert_eq!(s.state(), fresh);

    // Through an optimizer: a refused schedule state or parameter entry
    // leaves state, step count and rate as they were.
    let (mut a, good, w) = saved(warmup_plateau);
    steps(&mut a, &w, 6).unwrap();
    for m in [5.0, 4.0, 4.0, 4.0, 4.0, 4.0] {
        a.report_metric(m);
    }
    let (before, lr) = (a.state(), a.current_lr());
    let mut bad = good.clone();
    *bad.schedule.last_mut().unwrap() = 7.0;
    assert!(a.load_state(&bad, &[&w]).is_err());
    assert_eq!((a.state(), a.current_lr()), (before.clone(), lr));
    let mut bad = good.clone();
    bad.params[0].1.slots.push(Slot::Full(vec![0.0; 2]));
    assert!(a.load_state(&bad, &[&w]).is_err());
    assert_eq!(a.state(), before);
    a.load_state(&good, &[&w]).unwrap();
    assert_eq!(a.state(), good);
}

#[test]
fn edge_values_inside_the_domains_are_accepted_and_evaluate_finitely() {
    let huge = [
        0,
        1,
        1 << 31,
        (1 << 31) + 1,
        1 << 32,
        1 << 53,
        u64::MAX - 1,
        u64::MAX,
    ];
    let check = |s: &dyn Schedule| {
        s.validate().unwrap();
        for &t in &huge {
            for base in [0.0, 0.1, f64::MAX] {
                let lr = s.rate(t, base);
                assert!(lr.is_finite() && lr >= 0.0, "step {t}, base {base}: {lr}");
            }
        }
    };
    // γⁿ past i32's range used to wrap the exponent negative (γ^(−2³¹) = inf).
    let e = Exponential { gamma: 0.99 };
    check(&e);
    assert_eq!(e.with_lr(1.0).lr(1 << 31), 0.0);
    assert_eq!(Exponential { gamma: 1.0 }.with_lr(0.5).lr(u64::MAX), 0.5);
    check(&StepDecay {
        step_size: 1,
        gamma: 0.0,
    });
    check(&Constant {
        factor: 0.0,
        steps: 0,
    });
    check(&Constant {
        factor: 1.0,
        steps: u64::MAX,
    });
    check(&Linear {
        start: 0.0,
        end: 0.0,
        steps: 1,
    });
    check(&Polynomial {
        total_steps: u64::MAX,
        power: 0.0,
    });
    check(&InverseTime {
        rate: f64::MAX,
        steps: 1,
    });
    check(&Cosine {
        t_max: 1,
        eta_min: f64::MAX,
    });
    // Restarts: t_mult 1 is closed-form, huge multipliers saturate.
    for t_mult in [1, 2, 3, u64::MAX] {
        for t0 in [1, 7, u64::MAX] {
            check(&CosineRestarts {
                t0,
                t_mult,
                eta_min: 0.0,
            });
        }
    }
    let r = CosineRestarts {
        t0: 10,
        t_mult: 1,
        eta_min: 0.0,
    };
    let r = r.with_lr(1.0);
    assert_eq!(r.lr(25), r.lr(5));
    assert_eq!(r.lr(u64::MAX - u64::MAX % 10), 1.0, "a restart");
    // One-cycle with its phases at the edges of PyTorch's domain.
    for pct_start in [0.0, 1e-9, 0.01, 0.5, 1.0] {
        for total_steps in [1, 2, 100, u64::MAX] {
            let s = OneCycle {
                pct_start,
                ..OneCycle::new(0.1, total_steps)
            };
            check(&s);
            let peak = 0.1 * (1.0 + 1e-12);
            assert!(s.lr(0) <= peak && s.lr(total_steps) <= peak);
        }
    }
    let s = OneCycle {
        pct_start: 1.0 / 100.0,
        ..OneCycle::new(0.1, 100)
    };
    assert_eq!(s.lr(0), 0.1, "a one-step rise ends at the peak");
    assert_eq!(
        OneCycle::new(0.1, 100).lr(u64::MAX),
        0.1 / 25.0 / 1e4,
        "the final rate holds"
    );
    check(&Cyclic {
        base_lr: 0.0,
        max_lr: f64::MAX,
        step_size_up: u64::MAX,
    });
    // MultiStep counts milestones, order and repeats as PyTorch's Counter.
    let a = MultiStep {
        milestones: vec![30, 10, 10],
        gamma: 0.5,
    };
    check(&a);
    assert_eq!(a.rate(10, 1.0), 0.25);
    assert_eq!(a.rate(30, 1.0), 0.125);
    let s = Sequential {
        schedules: vec![
            Box::new(Linear {
                start: 0.0,
                end: 1.0,
                steps: 10,
            }),
            Box::new(CosineRestarts {
                t0: 1,
                t_mult: 1,
                eta_min: 0.0,
            }),
        ],
        milestones: vec![u64::MAX],
    };
    check(&s);
    // Step counts past i32's range (a loaded state) keep the bias
    // corrections finite.
    let makes: [fn() -> Opt; 4] = [
        adam,
        nadam,
        || Radam::new(0.01).build::<f64>().unwrap(),
        || Adamax::new(0.01).build::<f64>().unwrap(),
    ];
    for make in makes {
        for t in [i32::MAX as u64, 1 << 40, u64::MAX - 1, u64::MAX] {
            let (_, mut st, w) = saved(make);
            st.params[0].1.t = t;
            let mut opt = make();
            opt.load_state(&st, &[&w]).unwrap();
            steps(&mut opt, &w, 2).unwrap();
            let v = w.value().to_vec();
            assert!(v.iter().all(|x| x.is_finite()), "{opt:?} at t = {t}: {v:?}");
        }
    }
    // A zero rate is a valid rate: the step runs and changes nothing.
    let w = p("w", &[1.0]);
    let mut opt = sgd().with_schedule(FnSchedule(|_, _| 0.0)).unwrap();
    steps(&mut opt, &w, 1).unwrap();
    assert_eq!(w.value().to_vec(), vec![1.0]);
}

// ---- The proptest.

/// Floats a careless caller might pass, in a domain often enough that
/// whole schedules pass validation too.
fn wild_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0..=1.0f64,
        2 => 1.0..1e6f64,
        2 => prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.0 - f64::EPSILON,
            1.0 + f64::EPSILON,
            2.0,
            1e-300,
            5e-324,
            1e300,
            f64::MAX,
            -f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]),
        1 => -10.0..10.0f64,
        1 => any::<f64>(),
    ]
}

/// Step counts a careless caller might pass.
fn wild_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1..300u64,
        2 => prop::sample::select(vec![
            0,
            1,
            2,
            3,
            (1 << 31) - 1,
            1 << 31,
            1 << 32,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ]),
        1 => any::<u64>(),
    ]
}

/// A schedule's fields, to build it from (the schedules themselves are
/// neither `Debug` nor `Clone`).
#[derive(Debug, Clone)]
enum Spec {
    Constant(f64, u64),
    Step(u64, f64),
    Multi(Vec<u64>, f64),
    Exp(f64),
    Poly(u64, f64),
    Inverse(f64, u64),
    Cosine(u64, f64),
    Restarts(u64, u64, f64),
    Linear(f64, f64, u64),
    OneCycle(f64, u64, f64, f64, f64),
    Cyclic(f64, f64, u64),
    Plateau(f64, u64, f64, u64, f64),
    Seq(Vec<Spec>, Vec<u64>),
}

fn leaf() -> impl Strategy<Value = Spec> {
    let (f, u) = (wild_f64, wild_u64);
    prop_oneof![
        (f(), u()).prop_map(|(a, b)| Spec::Constant(a, b)),
        (u(), f()).prop_map(|(a, b)| Spec::Step(a, b)),
        (prop::collection::vec(u(), 0..4), f()).prop_map(|(a, b)| Spec::Multi(a, b)),
        f().prop_map(Spec::Exp),
        (u(), f()).prop_map(|(a, b)| Spec::Poly(a, b)),
        (f(), u()).prop_map(|(a, b)| Spec::Inverse(a, b)),
        (u(), f()).prop_map(|(a, b)| Spec::Cosine(a, b)),
        (u(), u(), f()).prop_map(|(a, b, c)| Spec::Restarts(a, b, c)),
        (f(), f(), u()).prop_map(|(a, b, c)| Spec::Linear(a, b, c)),
        (f(), u(), f(), f(), f()).prop_map(|(a, b, c, d, e)| Spec::OneCycle(a, b, c, d, e)),
        (f(), f(), u()).prop_map(|(a, b, c)| Spec::Cyclic(a, b, c)),
        (f(), u(), f(), u(), f()).prop_map(|(a, b, c, d, e)| Spec::Plateau(a, b, c, d, e)),
    ]
}

/// A leaf, or a sequence of specs whose milestones are mostly well formed
/// (increasing, one fewer than the parts, possibly huge) and otherwise wild.
fn spec() -> impl Strategy<Value = Spec> {
    let tree = leaf().prop_recursive(2, 8, 3, |inner| {
        (
            prop::collection::vec(inner, 0..4),
            prop::collection::vec(wild_u64(), 3),
            prop::collection::vec(wild_u64(), 0..4),
            prop::bool::weighted(0.75),
        )
            .prop_map(|(parts, gaps, wild, well_formed)| {
                let milestones = if well_formed {
                    let mut at = 0u64;
                    let n = parts.len().saturating_sub(1);
                    gaps[..n]
                        .iter()
                        .map(|g| {
                            at = at.saturating_add(*g);
                            at
                        })
                        .collect()
                } else {
                    wild
                };
                Spec::Seq(parts, milestones)
            })
    });
    prop_oneof![leaf(), tree]
}

fn build(s: &Spec) -> Box<dyn Schedule> {
    match s.clone() {
        Spec::Constant(factor, steps) => Box::new(Constant { factor, steps }),
        Spec::Step(step_size, gamma) => Box::new(StepDecay { step_size, gamma }),
        Spec::Multi(milestones, gamma) => Box::new(MultiStep { milestones, gamma }),
        Spec::Exp(gamma) => Box::new(Exponential { gamma }),
        Spec::Poly(total_steps, power) => Box::new(Polynomial { total_steps, power }),
        Spec::Inverse(rate, steps) => Box::new(InverseTime { rate, steps }),
        Spec::Cosine(t_max, eta_min) => Box::new(Cosine { t_max, eta_min }),
        Spec::Restarts(t0, t_mult, eta_min) => Box::new(CosineRestarts {
            t0,
            t_mult,
            eta_min,
        }),
        Spec::Linear(start, end, steps) => Box::new(Linear { start, end, steps }),
        Spec::OneCycle(max_lr, total_steps, pct_start, div, final_div) => Box::new(OneCycle {
            max_lr,
            total_steps,
            pct_start,
            div,
            final_div,
        }),
        Spec::Cyclic(base_lr, max_lr, step_size_up) => Box::new(Cyclic {
            base_lr,
            max_lr,
            step_size_up,
        }),
        Spec::Plateau(factor, patience, threshold, cooldown, min_lr) => Box::new(
            ReduceOnPlateau::new(factor, patience, threshold, cooldown, min_lr),
        ),
        Spec::Seq(parts, milestones) => Box::new(Sequential {
            schedules: parts.iter().map(build).collect(),
            milestones,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_schedule_is_refused_or_gives_finite_non_negative_rates(
        spec in spec(),
        base in prop::sample::select(vec![0.0, 1e-300, 1e-3, 0.1, 1.0, 1e300, f64::MAX]),
        metrics in prop::collection::vec(wild_f64(), 0..40),
        far in prop::collection::vec(any::<u64>(), 8),
    ) {
        let mut s = build(&spec);
        let valid = s.validate();
        // The optimizer agrees with the schedule's own check.
        let opt = Sgd::new(base).build::<f64>().unwrap().with_schedule(build(&spec));
        prop_assert_eq!(valid.is_ok(), opt.is_ok());
        if let Err(e) = valid {
            prop_assert!(matches!(e, Error::Hyperparameter { .. }), "{e:?}");
            return Ok(());
        }
        let near_max = (0..64).map(|k| u64::MAX - k);
        let powers = (0..64).flat_map(|k| [(1u64 << k) - 1, 1 << k, (1u64 << k) + 1]);
        let steps: Vec<u64> = (0..200).chain(near_max).chain(powers).chain(far).collect();
        let check = |s: &dyn Schedule, when: &str| -> Result<(), TestCaseError> {
            for &t in &steps {
                let lr = s.rate(t, base);
                prop_assert!(lr.is_finite() && lr >= 0.0, "{when}: step {t}: lr {lr} for {spec:?}");
            }
            Ok(())
        };
        check(&*s, "fresh")?;
        // Metric-driven state, and a save/restore round trip of it.
        for &m in &metrics {
            s.observe(m);
        }
        check(&*s, "after metrics")?;
        let st = s.state();
        let mut again = build(&spec);
        prop_assert!(again.set_state(&st).is_ok());
        prop_assert_eq!(again.state(), st);
        // Through an optimizer, a few real steps, and the last steps.
        let mut opt = opt.unwrap();
        let w = p("w", &[1.0, -1.0]);
        for _ in 0..3 {
            let r = opt.apply_gradients(&grads(&[(&w, ones(&w))]));
            prop_assert!(r.is_ok(), "{r:?}");
        }
        let mut st = opt.state();
        st.step = u64::MAX - 1;
        opt.load_state(&st, &[&w]).unwrap();
        for _ in 0..2 {
            let r = opt.apply_gradients(&grads(&[(&w, ones(&w))]));
            prop_assert!(r.is_ok(), "{r:?}");
        }
        prop_assert_eq!(opt.steps(), u64::MAX);
    }
}
