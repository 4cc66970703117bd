//! Optimizer state in bf16 (`StateDtype::Bf16`): the rounding against
//! torch's `.to(torch.bfloat16)`, Adam with bf16 moments against torch
//! Adam whose moments are rounded to bf16 after every step
//! (`fixtures/gen_sparse_fixtures.py` -> `bf16_fixtures.txt`), the same
//! run bit for bit against f32 Adam whose state is rounded by hand through
//! `state`/`load_state`, stochastic rounding's determinism and its point
//! (a second moment that nearest rounding freezes keeps moving), the
//! halved memory, and the refusals.

mod common;

use common::step;

use tapir_autograd::{Gradients, Parameter, Tape};
use tapir_optim::*;
use tapir_tensor::{Float, Rng, Tensor};
use tapir_testutil::{parse_fixtures, Case};

const FIXTURES: &str = include_str!("fixtures/bf16_fixtures.txt");

fn case(name: &str) -> Case {
    parse_fixtures(FIXTURES)
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// bf16 bits from a public slot.
fn bits<E: Float>(s: &Slot<E>) -> Vec<u16> {
    match s {
        Slot::Bf16(v) => v.clone(),
        Slot::Full(_) => panic!("a full-precision slot"),
    }
}

#[test]
fn nearest_rounding_matches_torch_bit_for_bit() {
    let c = case("bf16_round");
    let xs = c.tensors["x"].to_vec();
    let want = c.iv("bits");
    assert_eq!(xs.len(), want.len());
    assert!(xs.len() > 250, "the fixture holds the edge cases");
    // Through the optimizer's own path: an f32 state converted to bf16.
    let x32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
    assert!(x32
        .iter()
        .zip(&xs)
        .all(|(a, b)| f64::from(*a) == *b || b.is_infinite()));
    let got = bits(&Slot::Full(x32.clone()).converted(StateDtype::Bf16(Rounding::Nearest)));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            *g as usize, *w,
            "x = {:e}: got {g:#06x}, torch {w:#06x}",
            x32[i]
        );
    }
    // And from f64 holding the same values (exact f32s: same bits).
    let got64 = bits(&Slot::Full(xs).converted(StateDtype::Bf16(Rounding::Nearest)));
    assert_eq!(got64, got);
}

/// The largest |got − want| over step `s`, in units of the f32 fixture
/// tolerance 1e-5 + 1e-4·|want| (the trajectory tests' f32 tolerance).
fn worst(params: &[Parameter<f32>], traj: &[Tensor<f64>], s: usize) -> f64 {
    let mut w: f64 = 0.0;
    for (p, t) in params.iter().zip(traj) {
        let want = t.narrow(0, s, 1).unwrap().to_vec();
        for (g, x) in p.value().to_vec().iter().zip(want) {
            w = w.max((f64::from(*g) - x).abs() / (1e-5 + 1e-4 * x.abs()));
        }
    }
    w
}

#[test]
fn adam_with_bf16_moments_follows_torch_with_rounded_moments() {
    for problem in ["quadratic", "mlp"] {
        let c = case(&format!("adam_bf16_state__{problem}"));
        let f32_case = case(&format!("adam_f32_state__{problem}"));
        let lr = c.tensors["lr"].to_vec()[0];
        let (params, traj) = common::start::<f32>(&c);
        let (_, traj_f32) = common::start::<f32>(&f32_case);
        let mut opt = Adam::new(lr)
            .state_dtype(StateDtype::Bf16(Rounding::Nearest))
            .build::<f32>()
            .unwrap();
        let (mut max_err, mut max_gap) = (0.0f64, 0.0f64);
        for s in 1..=30 {
            step(problem, &c, &params, &mut opt);
            max_err = max_err.max(worst(&params, &traj, s));
            max_gap = max_gap.max(worst(&params, &traj_f32, s));
        }
        // Within the f32 tolerance of torch's run with rounded moments
        // (measured: 0.005 and 0.011 of it)...
        assert!(
            max_err <= 1.0,
            "{problem}: off torch by {max_err} tolerances"
        );
        // ...and outside it of torch's run with f32 moments (measured:
        // 16 and 20 times it), so the test sees the rounding.
        assert!(
            max_gap > 5.0,
            "{problem}: bf16 state changed nothing ({max_gap})"
        );
    }
}

/// A problem over `n` elements: loss Σ c ⊙ (θ − 1)², c varied per element.
fn quad_grads<E: Float>(p: &Parameter<E>, c: &Tensor<E>) -> Gradients<E> {
    let tape = Tape::new();
    let d = tape.watch(p).add_scalar(E::from_f64(-1.0));
    let loss = d.square().mul(&tape.constant(c.clone())).unwrap().sum();
    tape.gradient(&loss, [p]).unwrap()
}

/// bf16-nearest state equals f32 state rounded by hand after each step,
/// bit for bit: for Adam, AMSGrad (three slots) and NAdam, in f32 and
/// f64, on a parameter big enough to run in parallel chunks.
fn rounded_by_hand<E: Float>(build: impl Fn(StateDtype) -> Optimizer<E>, n: usize) {
    let mut rng = Rng::seed(3);
    let start: Tensor<E> = Tensor::randn([n], &mut rng);
    let c: Tensor<E> = Tensor::rand([n], &mut rng).add_scalar(E::from_f64(0.1));
    let a = Parameter::new("w", start.clone());
    let b = Parameter::new("w", start);
    let mut bf = build(StateDtype::Bf16(Rounding::Nearest));
    let mut full = build(StateDtype::Full);
    for _ in 0..5 {
        bf.apply_gradients(&quad_grads(&a, &c)).unwrap();
        full.apply_gradients(&quad_grads(&b, &c)).unwrap();
        let mut st = full.state();
        for (_, p) in &mut st.params {
            for s in &mut p.slots {
                let w = std::mem::replace(s, Slot::Full(Vec::new()));
                // Round to bf16 and widen back: f32 state holding bf16 values.
                let h = w.converted(StateDtype::Bf16(Rounding::Nearest));
                *s = h.converted(StateDtype::Full);
            }
        }
        full.load_state(&st, &[&b]).unwrap();
        assert_eq!(a.value().to_vec(), b.value().to_vec());
    }
    let (sa, sb) = (bf.state(), full.state());
    for (x, y) in sa.params[0].1.slots.iter().zip(&sb.params[0].1.slots) {
        assert_eq!(x.to_vec(), y.to_vec());
    }
}

#[test]
fn bf16_state_equals_full_state_rounded_after_each_step() {
    let n = 140_000; // more than two parallel chunks of 65,536
    rounded_by_hand::<f32>(|d| Adam::new(0.01).state_dtype(d).build().unwrap(), n);
    rounded_by_hand::<f32>(
        |d| {
            Adam::new(0.01)
                .amsgrad(true)
                .state_dtype(d)
                .build()
                .unwrap()
        },
        n,
    );
    rounded_by_hand::<f64>(|d| Nadam::new(0.01).state_dtype(d).build().unwrap(), 1000);
    rounded_by_hand::<f32>(|d| AdamW::new(0.01).state_dtype(d).build().unwrap(), 3000);
}

#[test]
fn state_memory_halves() {
    let p = Parameter::new("w", Tensor::<f32>::ones([1000]));
    let c = Tensor::ones([1000]);
    let bytes = |d: StateDtype| {
        let mut opt = Adam::new(0.01).state_dtype(d).build::<f32>().unwrap();
        opt.apply_gradients(&quad_grads(&p, &c)).unwrap();
        opt.state().params[0]
            .1
            .slots
            .iter()
            .map(Slot::bytes)
            .sum::<usize>()
    };
    assert_eq!(bytes(StateDtype::Full), 8000);
    assert_eq!(bytes(StateDtype::Bf16(Rounding::Stochastic)), 4000);
}

#[test]
fn stochastic_rounding_repeats_and_resumes_bit_for_bit() {
    let n = 140_000;
    let mut rng = Rng::seed(9);
    let start: Tensor<f32> = Tensor::randn([n], &mut rng);
    let c: Tensor<f32> = Tensor::rand([n], &mut rng);
    let run = |steps: usize, resume_at: Option<usize>| {
        let p = Parameter::new("w", start.clone());
        let build = || {
            Adam::new(0.01)
                .state_dtype(StateDtype::Bf16(Rounding::Stochastic))
                .build::<f32>()
                .unwrap()
        };
        let mut opt = build();
        for s in 0..steps {
            if resume_at == Some(s) {
                let st = opt.state();
                opt = build();
                opt.load_state(&st, &[&p]).unwrap();
            }
            opt.apply_gradients(&quad_grads(&p, &c)).unwrap();
        }
        (p.value().to_vec(), opt.state())
    };
    let (a, sa) = run(6, None);
    let (b, sb) = run(6, None);
    let (r, sr) = run(6, Some(3));
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_eq!(a, r);
    assert_eq!(sa, sr);
    // And it is not nearest rounding under another name.
    let p = Parameter::new("w", start.clone());
    let mut near = Adam::new(0.01)
        .state_dtype(StateDtype::Bf16(Rounding::Nearest))
        .build::<f32>()
        .unwrap();
    for _ in 0..6 {
        near.apply_gradients(&quad_grads(&p, &c)).unwrap();
    }
    assert_ne!(
        bits(&near.state().params[0].1.slots[1]),
        bits(&sa.params[0].1.slots[1])
    );
}

/// With a constant gradient 1, v ← β₂v + (1 − β₂) climbs to 1 − β₂ᵗ.
/// Once (1 − β₂)(1 − v) is below half a bf16 step of v, nearest rounding
/// gives v back unchanged and v stops; stochastic rounding moves it up
/// with the right probability, so its mean follows the exact curve.
#[test]
fn stochastic_rounding_keeps_a_slow_second_moment_moving() {
    let n = 4096;
    let steps = 3000;
    let exact = 1.0 - 0.999f64.powi(steps);
    let v_after = |rounding: Rounding| {
        let p = Parameter::new("w", Tensor::<f32>::zeros([n]));
        // lr 0: the parameter stays, only the moments move.
        let mut opt = Adam::new(0.0)
            .state_dtype(StateDtype::Bf16(rounding))
            .build::<f32>()
            .unwrap();
        let g = Gradients::from_pairs(vec![(p.clone(), Some(Tensor::ones([n])))]);
        for _ in 0..steps {
            opt.apply_gradients(&g).unwrap();
        }
        let v = opt.slot(&p, 1).unwrap().to_vec();
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64
    };
    let near = v_after(Rounding::Nearest);
    let stoch = v_after(Rounding::Stochastic);
    assert!(
        near < 0.5,
        "nearest rounding should stall far below {exact}: {near}"
    );
    assert!(
        (stoch - exact).abs() < 0.01 * exact,
        "stochastic mean {stoch} vs exact {exact}"
    );
}

#[test]
fn loading_converts_between_state_dtypes() {
    let p = Parameter::new(
        "w",
        Tensor::<f32>::from_vec(vec![0.3, -1.7, 2.2], [3]).unwrap(),
    );
    let c = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap();
    let mut full = Adam::new(0.01).build::<f32>().unwrap();
    full.apply_gradients(&quad_grads(&p, &c)).unwrap();
    let saved = full.state();
    let mut bf = Adam::new(0.01)
        .state_dtype(StateDtype::Bf16(Rounding::Nearest))
        .build::<f32>()
        .unwrap();
    bf.load_state(&saved, &[&p]).unwrap();
    let st = bf.state();
    for (got, was) in st.params[0].1.slots.iter().zip(&saved.params[0].1.slots) {
        let want = was.clone().converted(StateDtype::Bf16(Rounding::Nearest));
        assert_eq!(bits(got), bits(&want));
    }
    // And switching an optimizer that already has state.
    let back = bf.with_state_dtype(StateDtype::Full).unwrap();
    assert!(matches!(back.state().params[0].1.slots[0], Slot::Full(_)));
}

#[test]
fn whole_tensor_rules_refuse_bf16_state() {
    let err = Lamb::new(0.01)
        .build::<f32>()
        .unwrap()
        .with_state_dtype(StateDtype::Bf16(Rounding::Nearest))
        .unwrap_err();
    assert_eq!(err, Error::StateDtype { optimizer: "LAMB" });
    let msg = err.to_string();
    assert!(msg.contains("LAMB") && msg.contains("bf16"), "{msg}");
    // An elementwise rule outside the Adam family takes it.
    assert!(Lion::new(0.01)
        .build::<f32>()
        .unwrap()
        .with_state_dtype(StateDtype::Bf16(Rounding::Stochastic))
        .is_ok());
}
