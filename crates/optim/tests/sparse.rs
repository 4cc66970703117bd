//! SparseAdam and row-sparse gradients against torch.optim.SparseAdam with
//! `nn.Embedding(sparse=True)` (`fixtures/gen_sparse_fixtures.py` ->
//! `sparse_trajectories.txt`): 30 steps of a 10×4 table of which a few
//! rows are looked up per step (rows 8 and 9 never), 1e-10 in f64, the
//! f32 tolerance in f32; the tape's coalesced gradient against torch's;
//! dense Adam fed the row-sparse gradient against torch's dense Adam;
//! untouched rows bit-identical; resume, bf16 state, shared parameters,
//! clipping and dense gradients.

mod common;

use tapir_autograd::{Gradient, Gradients, Parameter, Tape};
use tapir_optim::*;
use tapir_tensor::{Float, Tensor};
use tapir_testutil::{parse_fixtures, tolerance, Case};

const FIXTURES: &str = include_str!("fixtures/sparse_trajectories.txt");

fn case(name: &str) -> Case {
    parse_fixtures(FIXTURES)
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// The loss of step `s`: mean((W[idx_s]·(1 + 0.1 s) − T_s)²), the table
/// looked up sparsely.
fn grads<E: Float>(c: &Case, w: &Parameter<E>, s: usize) -> Gradients<E> {
    let idx = c.i("idx");
    let ids: Vec<usize> = (0..6).map(|k| idx[[s, k]]).collect();
    let target: Tensor<E> = c
        .t::<E>("target")
        .narrow(0, s, 1)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let tape = Tape::new();
    let rows = tape.watch(w).embedding(&ids).unwrap();
    let d = rows
        .mul_scalar(E::from_f64(1.0 + 0.1 * s as f64))
        .sub(&tape.constant(target))
        .unwrap();
    let loss = d.square().mean();
    tape.gradient(&loss, [w]).unwrap()
}

fn build<E: Float>(c: &Case, name: &str) -> Optimizer<E> {
    let f = |l: &str| c.tensors[l].to_vec()[0];
    match name {
        "sparse_adam" | "sparse_adam_b" => SparseAdam::new(f("lr"))
            .betas(f("beta1"), f("beta2"))
            .eps(f("eps"))
            .build()
            .unwrap(),
        "adam_dense" => Adam::new(f("lr"))
            .betas(f("beta1"), f("beta2"))
            .eps(f("eps"))
            .build()
            .unwrap(),
        other => panic!("no optimizer for {other}"),
    }
}

fn run<E: Float>() -> usize {
    let (rtol, atol) = tolerance::<E>();
    let mut checked = 0;
    for c in parse_fixtures(FIXTURES) {
        let (config, _) = c.name.split_once("__").unwrap();
        let (params, traj) = common::start::<E>(&c);
        let w = &params[0];
        let mut opt = build::<E>(&c, config);
        for s in 0..30 {
            let g = grads(&c, w, s);
            if s == 0 {
                let Some(Gradient::Rows(r)) = g.gradient(w) else {
                    panic!("the lookup's gradient is not row-sparse")
                };
                assert_eq!(r.indices(), c.iv("gidx").as_slice(), "{}", c.name);
                tapir_testutil::assert_close(r.values(), &c.tensors["gval"], rtol, atol);
            }
            opt.apply_gradients(&g).unwrap();
            let want = traj[0].narrow(0, s + 1, 1).unwrap().squeeze(0).unwrap();
            let got = w.value();
            for (i, (a, b)) in got.to_vec().iter().zip(want.to_vec()).enumerate() {
                let a = a.to_f64();
                assert!(
                    (a - b).abs() <= atol + rtol * b.abs(),
                    "{} ({}) step {}: element {i}: {a} vs torch {b}",
                    c.name,
                    E::NAME,
                    s + 1
                );
            }
        }
        checked += 1;
    }
    checked
}

#[test]
fn trajectories_match_torch_f64() {
    assert_eq!(run::<f64>(), 3);
}

#[test]
fn trajectories_match_torch_f32() {
    assert_eq!(run::<f32>(), 3);
}

#[test]
fn untouched_rows_and_their_state_stay_bit_identical() {
    let c = case("sparse_adam__emb");
    let (params, _) = common::start::<f32>(&c);
    let w = &params[0];
    let mut opt = build::<f32>(&c, "sparse_adam");
    let idx = c.i("idx");
    for s in 0..30 {
        let before = w.value().to_vec();
        let state_before = opt.slot(w, 0).map(|t| t.to_vec());
        opt.apply_gradients(&grads(&c, w, s)).unwrap();
        let after = w.value().to_vec();
        let m = opt.slot(w, 0).unwrap().to_vec();
        let touched: Vec<usize> = (0..6).map(|k| idx[[s, k]]).collect();
        for r in (0..10).filter(|r| !touched.contains(r)) {
            let row = r * 4..(r + 1) * 4;
            assert_eq!(before[row.clone()], after[row.clone()], "step {s} row {r}");
            if let Some(prev) = &state_before {
                assert_eq!(prev[row.clone()], m[row], "step {s} row {r}: m moved");
            }
        }
    }
}

#[test]
fn resume_bf16_state_and_shared_parameters() {
    let c = case("sparse_adam__emb");
    // Resume through state()/load_state at step 13: bit-identical.
    let (pa, _) = common::start::<f32>(&c);
    let (pb, _) = common::start::<f32>(&c);
    let mut oa = build::<f32>(&c, "sparse_adam");
    let mut ob = build::<f32>(&c, "sparse_adam");
    for s in 0..30 {
        if s == 13 {
            let st = ob.state();
            ob = build::<f32>(&c, "sparse_adam");
            ob.load_state(&st, &[&pb[0]]).unwrap();
        }
        oa.apply_gradients(&grads(&c, &pa[0], s)).unwrap();
        ob.apply_gradients(&grads(&c, &pb[0], s)).unwrap();
    }
    assert_eq!(pa[0].value().to_vec(), pb[0].value().to_vec());
    // A live tape holds the old table: the update writes a new buffer and
    // the tape's value stays.
    let (pc, _) = common::start::<f32>(&c);
    let mut oc = build::<f32>(&c, "sparse_adam");
    let tape = Tape::new();
    let held = tape.watch(&pc[0]);
    let old = held.value().to_vec();
    oc.apply_gradients(&grads(&c, &pc[0], 0)).unwrap();
    assert_eq!(held.value().to_vec(), old);
    assert_ne!(pc[0].value().to_vec(), old);
    // bf16 moments, stochastic rounding: runs, halves the state, keeps
    // untouched rows; close to the f32 run.
    let (pd, traj) = common::start::<f32>(&c);
    let start = pd[0].value().to_vec();
    let mut od = SparseAdam::new(0.05)
        .state_dtype(StateDtype::Bf16(Rounding::Stochastic))
        .build::<f32>()
        .unwrap();
    for s in 0..30 {
        od.apply_gradients(&grads(&c, &pd[0], s)).unwrap();
    }
    let st = od.state();
    assert_eq!(
        st.params[0].1.slots.iter().map(Slot::bytes).sum::<usize>(),
        2 * 2 * 40
    );
    let want = traj[0].narrow(0, 30, 1).unwrap().to_vec();
    let got = pd[0].value().to_vec();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((f64::from(*a) - b).abs() < 5e-3, "element {i}: {a} vs {b}");
        if i >= 32 {
            assert_eq!(*a, start[i], "rows 8 and 9 are never touched");
        }
    }
}

#[test]
fn a_dense_gradient_updates_every_row_and_clipping_reads_the_rows() {
    let c = case("sparse_adam__emb");
    // Dense: the same formula on every row; the sparse step with every row
    // present gives the same bits.
    let (pa, _) = common::start::<f64>(&c);
    let (pb, _) = common::start::<f64>(&c);
    let g = Tensor::<f64>::randn([10, 4], &mut tapir_tensor::Rng::seed(4));
    let mut oa = SparseAdam::new(0.05).build::<f64>().unwrap();
    let mut ob = SparseAdam::new(0.05).build::<f64>().unwrap();
    let all: Vec<usize> = (0..10).collect();
    let rows = tapir_autograd::RowSparse::from_rows(&all, &g, &[10, 4]).unwrap();
    for _ in 0..3 {
        oa.apply_gradients(&Gradients::from_pairs(vec![(
            pa[0].clone(),
            Some(g.clone()),
        )]))
        .unwrap();
        ob.apply_gradients(&Gradients::from_grads(vec![(
            pb[0].clone(),
            Some(Gradient::Rows(rows.clone())),
        )]))
        .unwrap();
    }
    assert_eq!(pa[0].value().to_vec(), pb[0].value().to_vec());
    // Global-norm clipping inside the optimizer scales the rows' values:
    // the same as clipping the gradient by hand first.
    let (pc, _) = common::start::<f64>(&c);
    let (pd, _) = common::start::<f64>(&c);
    let mut oc = SparseAdam::new(0.05)
        .build::<f64>()
        .unwrap()
        .with_transform(GradTransform::ClipGlobalNorm(0.01))
        .unwrap();
    let mut od = SparseAdam::new(0.05).build::<f64>().unwrap();
    for s in 0..5 {
        let rc = oc.apply_gradients(&grads(&c, &pc[0], s)).unwrap();
        let mut gd = grads(&c, &pd[0], s);
        let norm = gd.clip_global_norm(0.01).unwrap();
        assert_eq!(rc.grad_norm, Some(norm));
        assert!(matches!(gd.gradient(&pd[0]), Some(Gradient::Rows(_))));
        od.apply_gradients(&gd).unwrap();
    }
    assert_eq!(pc[0].value().to_vec(), pd[0].value().to_vec());
    // With accumulation the gradient is made dense, so a row seen at
    // step 0 but not at step 1 (row 5) still moves at step 1 by its
    // momentum, unlike the lazy update.
    assert!(!(0..6).any(|k| c.i("idx")[[1, k]] == 5));
    let row5 = |p: &Parameter<f64>| p.value().to_vec()[20..24].to_vec();
    for accumulate in [false, true] {
        let (pe, _) = common::start::<f64>(&c);
        let mut oe = SparseAdam::new(0.05).build::<f64>().unwrap();
        if accumulate {
            oe = oe
                .with_transform(GradTransform::accumulate(1).unwrap())
                .unwrap();
        }
        oe.apply_gradients(&grads(&c, &pe[0], 0)).unwrap();
        let after0 = row5(&pe[0]);
        oe.apply_gradients(&grads(&c, &pe[0], 1)).unwrap();
        assert_eq!(
            row5(&pe[0]) != after0,
            accumulate,
            "accumulate {accumulate}"
        );
    }
}
