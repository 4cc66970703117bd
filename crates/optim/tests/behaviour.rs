//! Transforms, validation, skipping, groups, accumulation, EMA and
//! save/restore, with exact expected values.

use tapir_autograd::{Gradients, Parameter, Tape};
use tapir_optim::*;
use tapir_tensor::Tensor;

fn t(v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap()
}

fn grads(pairs: &[(&Parameter<f64>, Option<Tensor<f64>>)]) -> Gradients<f64> {
    Gradients::from_pairs(
        pairs
            .iter()
            .map(|(p, g)| ((*p).clone(), g.clone()))
            .collect(),
    )
}

#[test]
fn hyperparameters_are_validated_when_built() {
    let e = Adam::new(-0.1).build::<f32>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "Adam: lr = -0.1 is invalid: must be finite and >= 0"
    );
    let e = Adam {
        beta1: 1.0,
        ..Default::default()
    }
    .build::<f32>()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Adam: beta1 = 1 is invalid: must lie in [0, 1)"
    );
    let e = Rmsprop {
        eps: 0.0,
        ..Default::default()
    }
    .build::<f32>()
    .unwrap_err();
    assert!(e.to_string().contains("eps = 0"), "{e}");
    let e = Sgd {
        momentum: Momentum::HeavyBall {
            momentum: 1.5,
            dampening: 0.0,
        },
        ..Default::default()
    }
    .build::<f32>()
    .unwrap_err();
    assert!(e.to_string().contains("momentum = 1.5"), "{e}");
    assert!(Sgd {
        weight_decay: WeightDecay::L2(-1.0),
        ..Default::default()
    }
    .build::<f32>()
    .is_err());
    assert!(GradTransform::clip_global_norm(0.0).is_err());
    assert!(GradTransform::accumulate(0).is_err());
    assert!(ParamEma::<f32>::new(&[], 1.5).is_err());
}

#[test]
fn parameters_without_gradients_are_skipped_and_none_at_all_is_an_error() {
    let a = Parameter::new("a", t(&[1.0]));
    let b = Parameter::new("b", t(&[1.0]));
    let mut opt = Sgd::new(0.5).build::<f64>().unwrap();
    opt.apply_gradients(&grads(&[(&a, Some(t(&[2.0]))), (&b, None)]))
        .unwrap();
    assert_eq!(a.value().to_vec(), vec![0.0]);
    assert_eq!(b.value().to_vec(), vec![1.0]);
    let e = opt.apply_gradients(&grads(&[(&b, None)])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "apply_gradients: no parameter has a gradient"
    );
    let e = opt
        .apply_gradients(&grads(&[(&a, Some(t(&[1.0, 2.0])))]))
        .unwrap_err();
    assert!(matches!(e, Error::GradientShape { .. }), "{e}");
}

#[test]
fn clipping_gives_exact_values() {
    let a = Parameter::new("a", t(&[0.0, 0.0]));
    let b = Parameter::new("b", t(&[0.0]));
    let g = || grads(&[(&a, Some(t(&[3.0, -4.0]))), (&b, Some(t(&[12.0])))]);
    // By value: clamp to [-1, 1], then SGD lr 1.
    let mut opt = Sgd::new(1.0)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::clip_value(1.0).unwrap())
        .unwrap();
    opt.apply_gradients(&g()).unwrap();
    assert_eq!(a.value().to_vec(), vec![-1.0, 1.0]);
    assert_eq!(b.value().to_vec(), vec![-1.0]);
    // Per-tensor norm 2.5: a has norm 5 -> halved; b has norm 12 -> 2.5.
    a.set(t(&[0.0, 0.0]));
    b.set(t(&[0.0]));
    let mut opt = Sgd::new(1.0)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::clip_norm(2.5).unwrap())
        .unwrap();
    opt.apply_gradients(&g()).unwrap();
    assert_eq!(a.value().to_vec(), vec![-1.5, 2.0]);
    assert_eq!(b.value().to_vec(), vec![-2.5]);
    // Global norm: √(9 + 16 + 144) = 13; clip to 6.5 halves everything
    // (PyTorch's max/(norm + 1e-6)), and the norm before clipping is reported.
    a.set(t(&[0.0, 0.0]));
    b.set(t(&[0.0]));
    let mut opt = Sgd::new(1.0)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::clip_global_norm(6.5).unwrap())
        .unwrap();
    let r = opt.apply_gradients(&g()).unwrap();
    assert_eq!(r.grad_norm, Some(13.0));
    let s = 6.5 / (13.0 + 1e-6);
    assert_eq!(a.value().to_vec(), vec![-3.0 * s, 4.0 * s]);
    assert_eq!(b.value().to_vec(), vec![-12.0 * s]);
}

#[test]
fn non_finite_steps_are_skipped_leaving_parameters_and_state_untouched() {
    let a = Parameter::new("a", t(&[1.0, 2.0]));
    let mut opt = Adam::new(0.1)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::SkipNonFinite)
        .unwrap()
        .with_transform(GradTransform::clip_global_norm(1.0).unwrap())
        .unwrap();
    opt.apply_gradients(&grads(&[(&a, Some(t(&[0.5, 0.5])))]))
        .unwrap();
    let (before, state) = (a.value(), opt.state());
    let r = opt
        .apply_gradients(&grads(&[(&a, Some(t(&[f64::INFINITY, 0.0])))]))
        .unwrap();
    assert!(r.skipped);
    assert_eq!(opt.skipped_steps(), 1);
    assert_eq!(a.value(), before);
    assert_eq!(opt.state().params, state.params);
    assert_eq!(opt.steps(), 1);
    let r = opt
        .apply_gradients(&grads(&[(&a, Some(t(&[f64::NAN, 0.0])))]))
        .unwrap();
    assert!(r.skipped);
    assert_eq!(opt.skipped_steps(), 2);
}

#[test]
fn accumulation_applies_the_mean_on_the_kth_micro_step() {
    let a = Parameter::new("a", t(&[1.0]));
    let mut opt = Sgd::new(0.5)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::accumulate(3).unwrap())
        .unwrap();
    for g in [1.0, 2.0] {
        opt.apply_gradients(&grads(&[(&a, Some(t(&[g])))])).unwrap();
        assert_eq!(
            a.value().to_vec(),
            vec![1.0],
            "nothing applied before the 3rd"
        );
    }
    opt.apply_gradients(&grads(&[(&a, Some(t(&[6.0])))]))
        .unwrap();
    assert_eq!(a.value().to_vec(), vec![1.0 - 0.5 * 3.0]);
    assert_eq!(opt.steps(), 1);
}

#[test]
fn l1_adds_the_sign_of_the_weights() {
    let a = Parameter::new("a", t(&[2.0, -3.0, 0.0]));
    let mut opt = Sgd::new(1.0)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::l1(0.25).unwrap())
        .unwrap();
    opt.apply_gradients(&grads(&[(&a, Some(t(&[0.0, 0.0, 1.0])))]))
        .unwrap();
    assert_eq!(a.value().to_vec(), vec![1.75, -2.75, -1.0]);
}

#[test]
fn groups_select_hyperparameters_by_name() {
    // AdamW with zero gradients only decays; the bias group has no decay
    // and half the learning rate.
    let w = Parameter::new("layer.weight", t(&[1.0]));
    let b = Parameter::new("layer.bias", t(&[1.0]));
    let mut opt = AdamW::new(0.1)
        .weight_decay(0.5)
        .build::<f64>()
        .unwrap()
        .with_group(
            |name| name.ends_with("bias"),
            GroupOptions {
                lr_scale: Some(0.5),
                weight_decay: Some(WeightDecay::None),
            },
        )
        .unwrap();
    opt.apply_gradients(&grads(&[(&w, Some(t(&[0.0]))), (&b, Some(t(&[0.0])))]))
        .unwrap();
    assert_eq!(w.value().to_vec(), vec![1.0 - 0.1 * 0.5]);
    assert_eq!(b.value().to_vec(), vec![1.0]);
    let b2 = Parameter::new("bias", t(&[0.0]));
    let mut opt = Sgd::new(1.0)
        .build::<f64>()
        .unwrap()
        .with_group(
            |n| n == "bias",
            GroupOptions {
                lr_scale: Some(0.5),
                weight_decay: None,
            },
        )
        .unwrap();
    opt.apply_gradients(&grads(&[(&b2, Some(t(&[1.0])))]))
        .unwrap();
    assert_eq!(b2.value().to_vec(), vec![-0.5]);
}

fn train(opt: &mut Optimizer<f64>, w: &Parameter<f64>, steps: usize) {
    for _ in 0..steps {
        let tape = Tape::new();
        let loss = tape.watch(w).sin().mul(&tape.watch(w)).unwrap().sum();
        opt.apply_gradients(&tape.gradient(&loss, [w]).unwrap())
            .unwrap();
    }
}

#[test]
fn restoring_state_continues_bit_identically() {
    let make = || {
        Adam {
            lr: 0.05,
            amsgrad: true,
            ..Default::default()
        }
        .build::<f64>()
        .unwrap()
        .with_schedule(Cosine {
            t_max: 40,
            eta_min: 0.0,
        })
        .unwrap()
    };
    let w = Parameter::new("w", t(&[0.3, -1.2, 2.0]));
    let mut a = make();
    train(&mut a, &w, 20);
    let saved = a.state();
    let mid = w.value();
    train(&mut a, &w, 20);
    let straight = w.value();

    let w2 = Parameter::new("w", mid);
    let mut b = make();
    b.load_state(&saved, &[&w2]).unwrap();
    assert_eq!(b.steps(), 20);
    train(&mut b, &w2, 20);
    assert_eq!(w2.value().to_vec(), straight.to_vec(), "bit-identical");

    // States that do not fit are errors.
    let other = Parameter::new("other", t(&[0.0, 0.0, 0.0]));
    let e = make().load_state(&saved, &[&other]).unwrap_err();
    assert_eq!(e.to_string(), "load_state: no parameter named 'w'");
    let short = Parameter::new("w", t(&[0.0]));
    assert!(make().load_state(&saved, &[&short]).is_err());
    let e = Sgd::new(0.1)
        .build::<f64>()
        .unwrap()
        .load_state(&saved, &[&w2])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("state of Adam cannot be loaded into SGD"),
        "{e}"
    );
}

#[test]
fn parameter_ema_averages_and_swaps() {
    let w = Parameter::new("w", t(&[0.0]));
    let mut ema = ParamEma::new(&[&w], 0.5).unwrap();
    w.set(t(&[4.0]));
    ema.update().unwrap();
    assert_eq!(ema.average(&w).unwrap().to_vec(), vec![2.0]);
    ema.swap();
    assert_eq!(w.value().to_vec(), vec![2.0]);
    ema.swap();
    assert_eq!(w.value().to_vec(), vec![4.0]);
}

#[test]
fn restoring_mid_accumulation_continues_bit_identically() {
    let make = || {
        Adam::new(0.05)
            .build::<f64>()
            .unwrap()
            .with_transform(GradTransform::accumulate(3).unwrap())
            .unwrap()
    };
    let w = Parameter::new("w", t(&[0.3, -1.2, 2.0]));
    let mut a = make();
    // One update (micro-steps 1-3), then one micro-step summed but not applied.
    train(&mut a, &w, 4);
    let saved = a.state();
    assert_eq!(saved.accumulators.len(), 1);
    let acc = &saved.accumulators[0];
    assert_eq!((acc.k, acc.seen, acc.sums.len()), (3, 1, 1));
    assert_eq!(acc.sums[0].0, "w");
    let mid = w.value();
    train(&mut a, &w, 8);
    let straight = w.value();

    let w2 = Parameter::new("w", mid.clone());
    let mut b = make();
    b.load_state(&saved, &[&w2]).unwrap();
    assert_eq!(b.state(), saved);
    train(&mut b, &w2, 8);
    assert_eq!(w2.value().to_vec(), straight.to_vec(), "bit-identical");

    // Dropping the partial sum changes the run: the state matters.
    let mut lost = saved.clone();
    lost.accumulators[0] = AccumulatorState {
        k: 3,
        seen: 0,
        sums: vec![],
    };
    let w3 = Parameter::new("w", mid);
    let mut c = make();
    c.load_state(&lost, &[&w3]).unwrap();
    train(&mut c, &w3, 8);
    assert_ne!(w3.value().to_vec(), straight.to_vec());

    // Accumulation states that do not fit are errors, and change nothing.
    let e = Adam::new(0.05)
        .build::<f64>()
        .unwrap()
        .load_state(&saved, &[&w2])
        .unwrap_err();
    assert!(e.to_string().contains("1 accumulation states"), "{e}");
    let mut other_k = Adam::new(0.05)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::accumulate(2).unwrap())
        .unwrap();
    let before = other_k.state();
    let e = other_k.load_state(&saved, &[&w2]).unwrap_err();
    assert!(e.to_string().contains("k = 3"), "{e}");
    assert_eq!(other_k.state(), before);
    let mut bad = saved.clone();
    bad.accumulators[0].seen = 3;
    assert!(make().load_state(&bad, &[&w2]).is_err());
    let mut bad = saved.clone();
    bad.accumulators[0].sums[0].1 = t(&[1.0]);
    let e = make().load_state(&bad, &[&w2]).unwrap_err();
    assert!(e.to_string().contains("partial sum has [1]"), "{e}");

    // reset_state drops the parameter's partial sum too.
    let mut d = make();
    d.load_state(&saved, &[&w2]).unwrap();
    assert!(d.reset_state("w"));
    assert!(d.state().accumulators[0].sums.is_empty());
}

#[test]
fn builders_set_every_option_and_defaults_are_pytorchs() {
    assert_eq!(Adam::new(1e-3), Adam::default());
    assert_eq!(
        Adam::new(0.01)
            .betas(0.8, 0.99)
            .eps(1e-6)
            .amsgrad(true)
            .state_dtype(StateDtype::Bf16(Rounding::Nearest))
            .weight_decay(0.1),
        Adam {
            lr: 0.01,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            amsgrad: true,
            state_dtype: StateDtype::Bf16(Rounding::Nearest),
            weight_decay: WeightDecay::L2(0.1),
        }
    );
    assert_eq!(Adam::default().state_dtype, StateDtype::Full);
    assert_eq!(SparseAdam::new(1e-3), SparseAdam::default());
    // weight_decay means L2 for Adam (torch.optim.Adam) and decoupled for
    // AdamW (torch.optim.AdamW, default 0.01); 0 is none; the enum chooses.
    assert_eq!(AdamW::default().weight_decay, WeightDecay::Decoupled(0.01));
    assert_eq!(
        AdamW::new(1e-3).weight_decay(0.1).weight_decay,
        WeightDecay::Decoupled(0.1)
    );
    assert_eq!(
        Adam::new(1e-3).weight_decay(0.0).weight_decay,
        WeightDecay::None
    );
    assert_eq!(
        Nadam::new(1e-3)
            .weight_decay_as(WeightDecay::Decoupled(0.2))
            .weight_decay,
        WeightDecay::Decoupled(0.2)
    );
    // SGD's momentum setters compose in any order into the enum.
    let m = |s: Sgd| s.momentum;
    assert_eq!(m(Sgd::new(0.1)), Momentum::None);
    assert_eq!(
        m(Sgd::new(0.1).momentum(0.9)),
        Momentum::HeavyBall {
            momentum: 0.9,
            dampening: 0.0
        }
    );
    assert_eq!(
        m(Sgd::new(0.1).dampening(0.5).momentum(0.9)),
        Momentum::HeavyBall {
            momentum: 0.9,
            dampening: 0.5
        }
    );
    assert_eq!(
        m(Sgd::new(0.1).nesterov(true).momentum(0.9)),
        Momentum::Nesterov { momentum: 0.9 }
    );
    assert_eq!(
        m(Sgd::new(0.1).momentum(0.9).nesterov(true).nesterov(false)),
        Momentum::HeavyBall {
            momentum: 0.9,
            dampening: 0.0
        }
    );
    let e = Sgd::new(0.1).nesterov(true).build::<f32>().unwrap_err();
    assert!(e.to_string().contains("for Nesterov"), "{e}");
    let r = Rmsprop::new(1e-3).momentum(0.5).centered(true).alpha(0.9);
    assert!(r.centered && r.momentum == 0.5 && r.alpha == 0.9);
    let a = Adagrad::new(0.1).lr_decay(0.01).initial_accumulator(0.1);
    assert_eq!(
        (a.lr_decay, a.initial_accumulator, a.eps),
        (0.01, 0.1, 1e-10)
    );
    assert_eq!(Adadelta::default().lr, 1.0);
    assert_eq!(Adamax::default().lr, 2e-3);
    assert_eq!(Nadam::default().momentum_decay, 4e-3);
    assert_eq!(Radam::new(0.5).eps(1e-3).eps, 1e-3);
    // Messages name the optimizer as the user wrote it.
    let e = AdamW::new(1e-3).betas(1.0, 0.9).build::<f32>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "AdamW: beta1 = 1 is invalid: must lie in [0, 1)"
    );
}

#[test]
fn adamw_is_adam_with_decoupled_decay() {
    let run = |mut opt: Optimizer<f64>| {
        let w = Parameter::new("w", t(&[0.3, -1.2, 2.0]));
        train(&mut opt, &w, 10);
        w.value().to_vec()
    };
    let adamw = run(AdamW::new(0.05).weight_decay(0.1).build().unwrap());
    let adam = run(Adam::new(0.05)
        .weight_decay_as(WeightDecay::Decoupled(0.1))
        .build()
        .unwrap());
    assert_eq!(adamw, adam);
    assert_ne!(adamw, run(Adam::new(0.05).build().unwrap()));
}

#[test]
fn a_schedule_with_its_own_rate_needs_no_base() {
    let s = Cosine {
        t_max: 10,
        eta_min: 0.0,
    }
    .with_lr(0.5);
    assert_eq!(s.lr(0), 0.5);
    assert_eq!(s.lr(10), 0.0);
    // In an optimizer, the schedule's own rate replaces the optimizer's.
    let opt = Sgd::new(0.1)
        .build::<f64>()
        .unwrap()
        .with_schedule(s)
        .unwrap();
    assert_eq!(opt.current_lr(), 0.5);
    let plain = Sgd::new(0.1)
        .build::<f64>()
        .unwrap()
        .with_schedule(Cosine {
            t_max: 10,
            eta_min: 0.0,
        })
        .unwrap();
    assert_eq!(plain.current_lr(), 0.1);
    assert!(Sgd::new(0.1)
        .build::<f64>()
        .unwrap()
        .with_schedule(Exponential { gamma: 0.9 }.with_lr(-1.0))
        .is_err());
    assert_eq!(OneCycle::new(0.1, 100).lr(99), 0.1 / 25.0 / 1e4);
}

#[test]
fn a_parameter_still_held_by_a_tape_updates_like_a_free_one() {
    // With the tape alive, the parameter's storage is shared and the update
    // writes a new buffer chunk by chunk; the result must be the in-place
    // one bit for bit, and the tape's recorded value must not change. Both
    // the serial size and the parallel-chunked size (2·65,536 and up).
    for n in [1_000, 300_000] {
        let init: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 * 1e-3 - 0.5)
            .collect();
        let run = |keep_tape: bool| {
            let w = Parameter::new("w", Tensor::from_vec(init.clone(), [n]).unwrap());
            let mut opt = Adam::new(1e-2).build::<f64>().unwrap();
            for _ in 0..3 {
                let tape = Tape::new();
                let wv = tape.watch(&w);
                let loss = wv.mul(&wv).unwrap().sum();
                let g = tape.gradient(&loss, [&w]).unwrap();
                let before = wv.value().to_vec();
                if keep_tape {
                    opt.apply_gradients(&g).unwrap();
                    assert_eq!(wv.value().to_vec(), before, "the tape's value moved");
                } else {
                    drop(wv);
                    drop(tape);
                    opt.apply_gradients(&g).unwrap();
                }
            }
            w.value().to_vec()
        };
        let shared = run(true);
        assert_eq!(shared, run(false), "n = {n}");
        assert_ne!(shared, init);
    }
}
