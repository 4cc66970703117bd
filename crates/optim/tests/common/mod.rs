//! The one table of optimizers, shared by the trajectory test (every row
//! with PyTorch fixtures is checked step by step) and the convergence test
//! (every row with a tuning must converge). A new optimizer or variant is a
//! new row here.
#![allow(dead_code)]

use tapir_autograd::{Parameter, Tape, Var};
use tapir_optim::*;
use tapir_tensor::{Float, Tensor};
use tapir_testutil::Case;

/// Any optimizer's config, so that one table builds for f32 and f64.
#[derive(Debug, Clone, Copy)]
pub enum Config {
    Sgd(Sgd),
    Adam(Adam),
    AdamW(AdamW),
    Adamax(Adamax),
    Nadam(Nadam),
    Radam(Radam),
    Adagrad(Adagrad),
    Rmsprop(Rmsprop),
    Adadelta(Adadelta),
    Lion(Lion),
    Lamb(Lamb),
    Lars(Lars),
    Adafactor(Adafactor),
    Muon(Muon),
    Ademamix(Ademamix),
    Rprop(Rprop),
    Asgd(Asgd),
    ScheduleFreeAdamW(ScheduleFreeAdamW),
    ScheduleFreeSgd(ScheduleFreeSgd),
}

macro_rules! configs {
    ($($t:ident),*) => {
        $(impl From<$t> for Config {
            fn from(c: $t) -> Self {
                Config::$t(c)
            }
        })*

        impl Config {
            /// Builds the optimizer; every row of the table is valid.
            pub fn build<E: Float>(self) -> Optimizer<E> {
                match self {
                    $(Config::$t(c) => c.build(),)*
                }
                .unwrap_or_else(|e| panic!("{self:?}: {e}"))
            }
        }
    };
}
configs!(
    Sgd,
    Adam,
    AdamW,
    Adamax,
    Nadam,
    Radam,
    Adagrad,
    Rmsprop,
    Adadelta,
    Lion,
    Lamb,
    Lars,
    Adafactor,
    Muon,
    Ademamix,
    Rprop,
    Asgd,
    ScheduleFreeAdamW,
    ScheduleFreeSgd
);

/// Learning rates tuned for the convergence test.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Learning rate on the quadratic and on Rosenbrock.
    pub lr: (f64, f64),
    /// Steps allowed on Rosenbrock.
    pub steps: usize,
}

/// One optimizer configuration.
pub struct Row {
    /// The name; for rows with fixtures, the config name of the fixtures.
    pub name: &'static str,
    /// The config for a learning rate.
    pub config: fn(f64) -> Config,
    /// Whether `fixtures/optim_trajectories.txt` has PyTorch trajectories
    /// for it.
    pub fixtures: bool,
    /// The convergence test's tuning, for the rows it runs.
    pub tuning: Option<Tuning>,
}

impl Row {
    /// The optimizer for learning rate `lr`.
    pub fn build<E: Float>(&self, lr: f64) -> Optimizer<E> {
        (self.config)(lr).build()
    }
}

const fn tuned(lr: (f64, f64), steps: usize) -> Option<Tuning> {
    Some(Tuning { lr, steps })
}

macro_rules! row {
    ($name:literal, $fixtures:expr, $tuning:expr, |$lr:ident| $config:expr) => {
        Row {
            name: $name,
            config: |$lr| $config.into(),
            fixtures: $fixtures,
            tuning: $tuning,
        }
    };
}

/// Every optimizer and variant.
pub fn table() -> Vec<Row> {
    vec![
        row!("sgd", true, tuned((0.1, 2e-3), 60_000), |lr| Sgd::new(lr)),
        row!("sgd_momentum", true, tuned((0.05, 2e-4), 60_000), |lr| {
            Sgd::new(lr).momentum(0.9)
        }),
        row!("sgd_dampening", true, None, |lr| Sgd::new(lr)
            .momentum(0.9)
            .dampening(0.5)),
        row!("sgd_nesterov", true, tuned((0.05, 2e-4), 60_000), |lr| {
            Sgd::new(lr).momentum(0.9).nesterov(true)
        }),
        row!("sgd_wd", true, None, |lr| Sgd::new(lr)
            .momentum(0.9)
            .weight_decay(0.01)),
        row!("ema_momentum", true, tuned((0.2, 2e-3), 60_000), |lr| {
            Sgd::new(lr).momentum_as(Momentum::Ema { beta: 0.9 })
        }),
        row!("adam", true, tuned((0.05, 0.01), 20_000), |lr| Adam::new(
            lr
        )),
        row!("adam_amsgrad", true, tuned((0.05, 0.01), 20_000), |lr| {
            Adam::new(lr).amsgrad(true)
        }),
        row!("adam_wd", true, None, |lr| Adam::new(lr).weight_decay(0.01)),
        row!("adamw", true, None, |lr| AdamW::new(lr)),
        row!("adamw_no_decay", false, tuned((0.05, 0.01), 20_000), |lr| {
            AdamW::new(lr).weight_decay(0.0)
        }),
        row!("adamw_amsgrad", true, None, |lr| AdamW::new(lr)
            .amsgrad(true)),
        row!("adamax", true, tuned((0.05, 0.01), 20_000), |lr| {
            Adamax::new(lr)
        }),
        row!("adamax_wd", true, None, |lr| Adamax::new(lr)
            .weight_decay(0.01)),
        row!("nadam", true, tuned((0.05, 0.01), 20_000), |lr| Nadam::new(
            lr
        )),
        row!("nadam_wd", true, None, |lr| Nadam::new(lr)
            .weight_decay(0.01)),
        row!("nadam_decoupled", true, None, |lr| Nadam::new(lr)
            .weight_decay_as(WeightDecay::Decoupled(0.1))),
        row!("radam", true, tuned((0.05, 0.01), 20_000), |lr| Radam::new(
            lr
        )),
        row!("radam_wd", true, None, |lr| Radam::new(lr)
            .weight_decay(0.01)),
        row!("radam_decoupled", true, None, |lr| Radam::new(lr)
            .weight_decay_as(WeightDecay::Decoupled(0.1))),
        row!("adagrad", true, tuned((0.5, 0.5), 60_000), |lr| {
            Adagrad::new(lr)
        }),
        row!("adagrad_decay", true, None, |lr| Adagrad::new(lr)
            .lr_decay(0.01)
            .initial_accumulator(0.1)
            .weight_decay(0.01)),
        row!("rmsprop", true, tuned((0.01, 1e-3), 60_000), |lr| {
            Rmsprop::new(lr)
        }),
        row!("rmsprop_momentum", true, None, |lr| Rmsprop::new(lr)
            .momentum(0.9)),
        row!("rmsprop_centered", true, None, |lr| Rmsprop::new(lr)
            .momentum(0.9)
            .centered(true)),
        row!(
            "rmsprop_centered_half_momentum",
            false,
            tuned((0.01, 1e-3), 60_000),
            |lr| Rmsprop::new(lr).momentum(0.5).centered(true)
        ),
        row!("rmsprop_wd", true, None, |lr| Rmsprop::new(lr)
            .weight_decay(0.01)),
        row!("adadelta", true, tuned((1.0, 20.0), 150_000), |lr| {
            Adadelta::new(lr)
        }),
        row!("adadelta_wd", true, None, |lr| Adadelta::new(lr)
            .weight_decay(0.01)),
    ]
}

/// The optimizers of issue 13, with fixtures in
/// `fixtures/large_trajectories.txt` (`gen_large_fixtures.py`: torch.optim,
/// optax and the `schedulefree` package), on four problems each.
pub fn large_table() -> Vec<Row> {
    vec![
        row!("lion", true, None, |lr| Lion::new(lr)),
        row!("lion_wd", true, None, |lr| Lion::new(lr).weight_decay(1e-3)),
        row!("lion_betas", true, None, |lr| Lion::new(lr)
            .betas(0.95, 0.98)),
        row!("lamb", true, None, |lr| Lamb::new(lr)),
        row!("lamb_wd", true, None, |lr| Lamb::new(lr).weight_decay(0.01)),
        row!("lamb_keras", true, None, |lr| Lamb::new(lr)
            .keras(true)
            .weight_decay(0.01)),
        row!("lars", true, None, |lr| Lars::new(lr)),
        row!("lars_wd", true, None, |lr| Lars::new(lr)
            .weight_decay(0.01)
            .nesterov(true)),
        row!("adafactor", true, None, |lr| Adafactor::new(lr)),
        row!("adafactor_wd", true, None, |lr| Adafactor::new(lr)
            .weight_decay(0.01)
            .beta2_decay(-0.5)),
        row!("muon", true, None, |lr| Muon::new(lr)),
        row!("muon_plain", true, None, |lr| Muon::new(lr)
            .nesterov(false)
            .weight_decay(0.0)
            .scale(MuonScale::MatchRmsAdamW)),
        row!("muon_bf16", false, None, |lr| Muon::new(lr)
            .precision(NsPrecision::Bf16)),
        row!("ademamix", true, None, |lr| Ademamix::new(lr)),
        row!("ademamix_warmup", true, None, |lr| Ademamix::new(lr)
            .warmup(Some(20))
            .weight_decay(0.01)),
        row!("rprop", true, None, |lr| Rprop::new(lr)),
        row!("rprop_tight", true, None, |lr| Rprop::new(lr)
            .etas(0.3, 1.5)
            .step_sizes(1e-4, 0.1)),
        row!("asgd", true, None, |lr| Asgd::new(lr)),
        row!("asgd_avg", true, None, |lr| Asgd::new(lr)
            .lambd(1e-3)
            .t0(10.0)
            .weight_decay(0.01)),
        row!("sf_adamw", true, None, |lr| ScheduleFreeAdamW::new(lr)
            .warmup_steps(5)
            .weight_decay(0.01)),
        row!("sf_adamw_plain", true, None, |lr| ScheduleFreeAdamW::new(
            lr
        )),
        row!("sf_sgd", true, None, |lr| ScheduleFreeSgd::new(lr)
            .warmup_steps(5)
            .weight_decay(0.01)),
    ]
}

/// The loss of a fixture problem, written with the tape (the same losses
/// as the fixture scripts).
pub fn loss<'t, E: Float>(
    problem: &str,
    c: &Case,
    tape: &'t Tape<E>,
    ps: &[Var<'t, E>],
) -> Var<'t, E> {
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
        "matrix" => {
            let x = tape.constant(c.t("X"));
            let y = tape.constant(c.t("Y"));
            x.matmul(&ps[0]).unwrap().mse(&y).unwrap()
        }
        other => panic!("unknown problem {other}"),
    }
}

/// The parameters `p0`, `p1`, … of a fixture case at step 0 (named so),
/// and their trajectories.
pub fn start<E: Float>(c: &Case) -> (Vec<Parameter<E>>, Vec<Tensor<f64>>) {
    let traj: Vec<Tensor<f64>> = (0..)
        .map_while(|k| c.tensors.get(&format!("p{k}")).cloned())
        .collect();
    let params = traj
        .iter()
        .enumerate()
        .map(|(k, t)| {
            Parameter::new(
                format!("p{k}"),
                t.narrow(0, 0, 1).unwrap().squeeze(0).unwrap().cast(),
            )
        })
        .collect();
    (params, traj)
}

/// One step of `opt` on `problem` at the parameters' current values.
pub fn step<E: Float>(problem: &str, c: &Case, params: &[Parameter<E>], opt: &mut Optimizer<E>) {
    let tape = Tape::new();
    let vars: Vec<Var<'_, E>> = params.iter().map(|p| tape.watch(p)).collect();
    let l = loss(problem, c, &tape, &vars);
    let grads = tape.gradient(&l, params).unwrap();
    opt.apply_gradients(&grads).unwrap();
}
