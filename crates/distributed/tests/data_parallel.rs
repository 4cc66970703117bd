//! Data parallelism on the in-process backend (two ranks as threads): two
//! ranks with batch 32 each end where one process with batch 64 ends, for
//! plain data parallelism and for sharded optimizer state, with Adam and
//! with SGD momentum; exactly (f64, every bit) against a single process
//! that averages the two halves' gradients in the all-reduce's order, and
//! within 1e-10 (f64) and 1e-6 (f32) of a single process with the plain
//! batch of 64. Also: ZeRO halves each rank's state, a failing rank stops
//! the other instead of hanging it, and mismatched models are refused at
//! start. The same checks run over MPI in examples/distributed_check.rs
//! (`mpirun -n 2`, in .ci/run).

use std::sync::mpsc;
use std::time::Duration;

use tapir_autograd::Parameter;
use tapir_distributed::{Communicator, DataParallel, Error, LocalGroup, Result, ShardedOptimizer};
use tapir_optim::{Adam, Optimizer, Sgd};
use tapir_tensor::{Float, Tensor};
use tapir_testutil::data_parallel::{self, batch, grads, max_rel, model, share, values, STEPS};

#[derive(Clone, Copy, Debug)]
enum Opt {
    Adam,
    Momentum,
}

fn build<E: Float>(o: Opt) -> Optimizer<E> {
    match o {
        Opt::Adam => Adam::new(0.01).build().unwrap(),
        Opt::Momentum => Sgd::new(0.1).momentum(0.9).build().unwrap(),
    }
}

/// One process, batch 64 (see `data_parallel::single`).
fn single<E: Float>(o: Opt, halves: bool) -> Vec<E> {
    let mut opt = build::<E>(o);
    data_parallel::single(halves, |g| {
        opt.apply_gradients(g).unwrap();
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Plain,
    /// ZeRO-1, flat slices.
    Flat,
    /// ZeRO-1, whole parameters.
    ByParam,
}

const MODES: [Mode; 3] = [Mode::Plain, Mode::Flat, Mode::ByParam];

/// Two ranks, batch 32 each. Returns each rank's final parameters.
fn parallel<E: tapir_distributed::CommFloat>(o: Opt, mode: Mode) -> Vec<Vec<E>> {
    run(2, move |comm| {
        let params = model::<E>();
        let (rank, ranks) = (comm.rank(), comm.size());
        if mode != Mode::Plain {
            let mut sharded = if mode == Mode::Flat {
                ShardedOptimizer::new(comm, &params, build::<E>(o))?
            } else {
                ShardedOptimizer::by_parameter(comm, &params, build::<E>(o))?
            };
            for s in 0..STEPS {
                let (x, labels) = batch::<E>(s);
                let (x, labels) = share(&x, &labels, rank, ranks);
                sharded.step(&grads(&params, &x, &labels))?;
            }
        } else {
            let dp = DataParallel::new(comm, &params)?;
            let mut opt = build::<E>(o);
            for s in 0..STEPS {
                let (x, labels) = batch::<E>(s);
                let (x, labels) = share(&x, &labels, rank, ranks);
                opt.apply_gradients(&dp.all_reduce(&grads(&params, &x, &labels))?)?;
            }
        }
        Ok(values(&params))
    })
    .into_iter()
    .map(|r| r.unwrap())
    .collect()
}

/// `LocalGroup::run` with a watchdog: a hang fails the test after 60 s.
fn run<T: Send + 'static>(
    size: usize,
    f: impl Fn(&tapir_distributed::LocalComm<'_>) -> Result<T> + Sync + Send + 'static,
) -> Vec<Result<T>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(LocalGroup::run(size, f));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the ranks did not finish within 60 s: a hang")
}

#[test]
fn two_ranks_of_32_equal_one_process_of_64_f64() {
    for o in [Opt::Adam, Opt::Momentum] {
        let fixed = single::<f64>(o, true);
        let plain = single::<f64>(o, false);
        for zero in MODES {
            let ranks = parallel::<f64>(o, zero);
            assert_eq!(ranks[0], ranks[1], "{o:?} {zero:?}: the ranks differ");
            assert_eq!(
                ranks[0], fixed,
                "{o:?} {zero:?}: not the fixed-order reference's bits"
            );
            let d = max_rel(&ranks[0], &plain);
            assert!(d < 1e-10, "{o:?} {zero:?}: {d:e} from batch 64");
        }
    }
}

#[test]
fn two_ranks_of_32_equal_one_process_of_64_f32() {
    for o in [Opt::Adam, Opt::Momentum] {
        let plain = single::<f32>(o, false);
        let fixed = single::<f32>(o, true);
        for zero in MODES {
            let ranks = parallel::<f32>(o, zero);
            assert_eq!(ranks[0], ranks[1], "{o:?} {zero:?}: the ranks differ");
            assert_eq!(ranks[0], fixed, "{o:?} {zero:?}");
            let d = max_rel(&ranks[0], &plain);
            assert!(d < 1e-6, "{o:?} {zero:?}: {d:e} from batch 64");
        }
    }
}

#[test]
fn zero_shards_the_state_and_buckets_group_the_gradients() {
    let out = run(2, |comm| {
        let params = model::<f32>();
        let (x, labels) = batch::<f32>(0);
        let (x, labels) = share(&x, &labels, comm.rank(), comm.size());
        let g = grads(&params, &x, &labels);
        let mut flat = ShardedOptimizer::new(comm, &params, build::<f32>(Opt::Adam))?;
        assert!(flat.owners().is_none());
        flat.step(&g)?;
        let mut whole = ShardedOptimizer::by_parameter(comm, &params, build::<f32>(Opt::Adam))?;
        whole.step(&g)?;
        let dp = DataParallel::with_bucket_bytes(comm, &params, 64 * 4)?;
        Ok((
            flat.state_bytes(),
            whole.state_bytes(),
            whole.owners().unwrap().to_vec(),
            dp.buckets(),
        ))
    });
    let (f0, b0, owners, buckets) = out[0].as_ref().unwrap();
    let (f1, b1, owners1, _) = out[1].as_ref().unwrap();
    // Adam keeps 8 bytes per f32 parameter, 64 + 16 + 48 + 3 = 131 in all:
    // flat slices of 66 and 65, exactly half each (but the rounding).
    assert_eq!((*f0, *f1), (8 * 66, 8 * 65));
    assert_eq!(b0 + b1, 8 * 131);
    // Largest first to the least loaded rank: fc1.weight (64) to rank 0,
    // fc2.weight (48) and fc1.bias (16) to rank 1, then fc2.bias (3) to
    // rank 0 (64 each, the lower rank).
    assert_eq!(owners, &vec![0, 1, 1, 0]);
    assert_eq!(owners, owners1);
    assert_eq!((*b0, *b1), (8 * 67, 8 * 64));
    // 64-element buckets, closed once full: fc1.weight; fc1.bias and
    // fc2.weight; fc2.bias.
    assert_eq!(*buckets, 3);
}

#[test]
fn a_failing_rank_stops_the_others() {
    let out = run(2, |comm| {
        let params = model::<f64>();
        let dp = DataParallel::new(comm, &params)?;
        for s in 0..STEPS {
            if comm.rank() == 1 && s == 3 {
                return Err(Error::Buffer {
                    op: "test",
                    msg: "simulated failure on rank 1".into(),
                });
            }
            let (x, labels) = batch::<f64>(s);
            dp.all_reduce(&grads(&params, &x, &labels))?;
        }
        Ok(())
    });
    assert!(matches!(out[1], Err(Error::Buffer { .. })));
    match &out[0] {
        Err(e @ Error::PeerFailed { rank: 0, failed: 1 }) => {
            assert!(e.to_string().contains("rank 1 failed"), "{e}");
        }
        other => panic!("rank 0 got {other:?}"),
    }
}

#[test]
fn mismatched_models_are_refused_at_start() {
    let out = run(2, |comm| {
        let mut params = model::<f64>();
        if comm.rank() == 1 {
            params[2] = Parameter::new("fc2.weight", Tensor::zeros([16, 4]));
        }
        DataParallel::new(comm, &params).map(|_| ())
    });
    for (rank, r) in out.iter().enumerate() {
        assert!(
            matches!(r, Err(Error::Mismatch { .. })),
            "rank {rank}: {r:?}"
        );
    }
    let msg = out[1].as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("fc2.weight") && msg.contains("[16, 4]") && msg.contains("[16, 3]"),
        "{msg}"
    );
    // A different count is refused too.
    let out = run(2, |comm| {
        let mut params = model::<f64>();
        if comm.rank() == 1 {
            params.pop();
        }
        DataParallel::new(comm, &params).map(|_| ())
    });
    assert!(out.iter().all(|r| matches!(r, Err(Error::Mismatch { .. }))));
    // And rank 0's values reach every rank.
    let out = run(2, |comm| {
        let params = model::<f64>();
        if comm.rank() == 1 {
            params[1].set(Tensor::ones([16]));
        }
        DataParallel::new(comm, &params)?;
        Ok(params[1].value().to_vec())
    });
    assert_eq!(out[1].as_ref().unwrap(), &vec![0.0; 16]);
}

#[test]
fn flat_shards_refuse_whole_tensor_rules() {
    let out = run(2, |comm| {
        let params = model::<f32>();
        let lamb = tapir_optim::Lamb::new(1e-3).build::<f32>()?;
        match ShardedOptimizer::new(comm, &params, lamb) {
            Err(Error::Buffer { msg, .. }) => Ok(msg),
            Err(e) => Err(e),
            Ok(_) => Ok(String::new()),
        }
    });
    for r in out {
        assert!(r.unwrap().contains("by_parameter"));
    }
}

/// Flat ZeRO-1's state gathered to rank 0 is the state of one optimizer
/// over the whole model, and loading it on every rank resumes bit for bit.
#[test]
fn sharded_state_gathers_to_one_optimizers_and_resumes() {
    // Ten steps on two ranks; rank 0 gathers.
    let train = |from: usize,
                 to: usize,
                 state: Option<tapir_optim::OptimizerState<f64>>,
                 start: Option<Vec<f64>>| {
        run(2, move |comm| {
            let params = model::<f64>();
            if let Some(v) = &start {
                let mut at = 0;
                for p in &params {
                    let n: usize = p.shape().iter().product();
                    p.set(Tensor::from_vec(v[at..at + n].to_vec(), p.shape())?);
                    at += n;
                }
            }
            let mut sharded = ShardedOptimizer::new(comm, &params, build::<f64>(Opt::Adam))?;
            if let Some(st) = &state {
                sharded.load_state(st)?;
            }
            for s in from..to {
                let (x, labels) = batch::<f64>(s);
                let (x, labels) = share(&x, &labels, comm.rank(), comm.size());
                sharded.step(&grads(&params, &x, &labels))?;
            }
            Ok((values(&params), sharded.gather_state()?))
        })
        .into_iter()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>()
    };
    let half = train(0, 10, None, None);
    assert!(half[1].1.is_none(), "only rank 0 gathers");
    let gathered = half[0].1.clone().unwrap();
    // One optimizer over the whole model, the same gradients (the mean of
    // the two halves', in the all-reduce's order).
    let params = model::<f64>();
    let mut one = build::<f64>(Opt::Adam);
    for s in 0..10 {
        let (x, labels) = batch::<f64>(s);
        let (x0, l0) = share(&x, &labels, 0, 2);
        let (x1, l1) = share(&x, &labels, 1, 2);
        let (g0, g1) = (grads(&params, &x0, &l0), grads(&params, &x1, &l1));
        let g = tapir_autograd::Gradients::from_pairs(
            params
                .iter()
                .map(|p| {
                    let sum = g0[p].zip_map(&g1[p], |a, b| a + b).unwrap();
                    (p.clone(), Some(sum.map(|v| v * 0.5)))
                })
                .collect(),
        );
        one.apply_gradients(&g).unwrap();
    }
    assert_eq!(gathered, one.state());
    // Resume: ten more steps from the gathered state equal twenty at once.
    let resumed = train(10, 20, Some(gathered), Some(half[0].0.clone()));
    let straight = train(0, 20, None, None);
    assert_eq!(resumed[0].0, straight[0].0);
    assert_eq!(resumed[1].0, straight[1].0);
    assert_eq!(resumed[0].1, straight[0].1);
}
