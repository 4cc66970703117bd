//! Learning rates at every step of a 200-step run against PyTorch's
//! schedulers (`fixtures/gen_schedule_fixtures.py` -> `schedules.txt`), read
//! through the optimizer as a training loop sees them.

use tapir_autograd::{Gradients, Parameter};
use tapir_optim::*;
use tapir_tensor::Tensor;
use tapir_testutil::parse_fixtures;

const FIXTURES: &str = include_str!("fixtures/schedules.txt");

fn schedule(name: &str) -> Box<dyn Schedule> {
    match name {
        "step" => Box::new(StepDecay {
            step_size: 30,
            gamma: 0.1,
        }),
        "multistep" => Box::new(MultiStep {
            milestones: vec![50, 120],
            gamma: 0.5,
        }),
        "exponential" => Box::new(Exponential { gamma: 0.98 }),
        "polynomial" => Box::new(Polynomial {
            total_steps: 150,
            power: 2.0,
        }),
        "cosine" => Box::new(Cosine {
            t_max: 100,
            eta_min: 0.001,
        }),
        "cosine_restarts" => Box::new(CosineRestarts {
            t0: 40,
            t_mult: 2,
            eta_min: 0.0,
        }),
        "warmup_cosine" => Box::new(Sequential {
            schedules: vec![
                Box::new(Linear {
                    start: 0.1,
                    end: 1.0,
                    steps: 20,
                }),
                Box::new(Cosine {
                    t_max: 180,
                    eta_min: 0.0,
                }),
            ],
            milestones: vec![20],
        }),
        "onecycle" => Box::new(OneCycle::new(0.1, 200)),
        "cyclic" => Box::new(Cyclic {
            base_lr: 0.001,
            max_lr: 0.1,
            step_size_up: 25,
        }),
        "linear_warmup" => Box::new(Linear {
            start: 0.25,
            end: 1.0,
            steps: 10,
        }),
        "constant" => Box::new(Constant {
            factor: 0.5,
            steps: 40,
        }),
        "reduce_on_plateau" => Box::new(ReduceOnPlateau::new(0.5, 5, 1e-4, 2, 0.001)),
        other => panic!("no schedule for fixture {other}"),
    }
}

#[test]
fn every_schedule_matches_pytorch_for_200_steps() {
    let cases = parse_fixtures(FIXTURES);
    assert_eq!(cases.len(), 12);
    for c in &cases {
        let want = c.t::<f64>("lrs").to_vec();
        let metrics = c.tensors.get("metrics").map(|m| m.to_vec());
        let p = Parameter::new("p", Tensor::<f64>::zeros([1]));
        let mut opt = Sgd::new(0.1)
            .build::<f64>()
            .unwrap()
            .with_schedule(schedule(&c.name))
            .unwrap();
        for (t, w) in want.iter().enumerate() {
            let got = opt.current_lr();
            assert!(
                (got - w).abs() <= 1e-12 + 1e-9 * w.abs(),
                "{}: step {t}: lr {got}, PyTorch {w}",
                c.name
            );
            let grads = Gradients::from_pairs(vec![(p.clone(), Some(Tensor::zeros([1])))]);
            let report = opt.apply_gradients(&grads).unwrap();
            assert_eq!(report.lr, got);
            if let Some(m) = &metrics {
                opt.report_metric(m[t]);
            }
        }
    }
}

#[test]
fn inverse_time_and_closures() {
    let s = InverseTime {
        rate: 0.5,
        steps: 10,
    }
    .with_lr(1.0);
    assert_eq!(s.lr(0), 1.0);
    assert_eq!(s.lr(20), 0.5);
    let f = FnSchedule(|t, base| base / (1 + t) as f64).with_lr(2.0);
    assert_eq!(f.lr(3), 0.5);
}

#[test]
fn a_plateau_schedule_resumes_exactly_from_saved_state() {
    let c = parse_fixtures(FIXTURES)
        .into_iter()
        .find(|c| c.name == "reduce_on_plateau")
        .unwrap();
    let want = c.t::<f64>("lrs").to_vec();
    let metrics = c.t::<f64>("metrics").to_vec();
    let p = Parameter::new("p", Tensor::<f64>::zeros([1]));
    let g = || Gradients::from_pairs(vec![(p.clone(), Some(Tensor::zeros([1])))]);
    let make = || {
        Sgd::new(0.1)
            .build::<f64>()
            .unwrap()
            .with_schedule(ReduceOnPlateau::new(0.5, 5, 1e-4, 2, 0.001))
            .unwrap()
    };
    let mut a = make();
    for &m in &metrics[..40] {
        a.apply_gradients(&g()).unwrap();
        a.report_metric(m);
    }
    // Resume mid-plateau (the rate was last cut at step 37, cooldown running).
    let mut b = make();
    b.load_state(&a.state(), &[&p]).unwrap();
    for t in 40..200 {
        assert!((b.current_lr() - want[t]).abs() < 1e-12, "step {t}");
        b.apply_gradients(&g()).unwrap();
        b.report_metric(metrics[t]);
    }
}
