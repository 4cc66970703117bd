//! Data parallelism over real MPI processes: `mpirun -n 2
//! target/release/examples/distributed_check` (built with `--features
//! mpi`). Every rank trains the 4-16-3 MLP of the distributed crate's
//! tests for 20 steps on its half of each batch of 64, with plain data
//! parallelism and with sharded optimizer state (ZeRO-1), with Adam and
//! with SGD momentum, in f64 and f32, and checks its parameters against a
//! single process with the whole batch computed on the spot: bit for bit
//! against the fixed-order reference in f64, within 1e-10 (f64) and 1e-6
//! (f32) of the plain batch of 64. Exits non-zero on any difference.
//!
//! `--fail-rank R`: rank R fails at step 3; MPI aborts the job, so no
//! rank waits forever (the exit status is non-zero). `--mismatch`: rank 1
//! builds a different model; every rank reports it at start. `--bench`:
//! all-reduce bandwidth, and each rank's Adam state for the main job's
//! CNN with sharded optimizer state (ZeRO-1) against the whole state.

use std::process::ExitCode;
use std::time::Instant;

use tapir::distributed::{CommFloat, Communicator, DataParallel, Error, MpiComm, ShardedOptimizer};
use tapir::prelude::*;
use tapir_testutil::data_parallel::{self, batch, grads, max_rel, model, share, values, STEPS};

#[path = "common/mnist_net.rs"]
#[allow(dead_code)]
mod mnist_net;

fn build<E: Float>(adam: bool) -> Optimizer<E> {
    if adam {
        Adam::new(0.01).build().expect("valid")
    } else {
        Sgd::new(0.1).momentum(0.9).build().expect("valid")
    }
}

/// Plain data parallelism (0), ZeRO-1 with flat slices (1) or whole
/// parameters (2).
const MODES: [&str; 3] = ["data parallel", "ZeRO-1 flat", "ZeRO-1 by parameter"];

/// Trains on this rank's shares; returns the final parameters.
fn train<E: CommFloat>(comm: &MpiComm, adam: bool, mode: usize) -> Result<Vec<E>, Error> {
    let params = model::<E>();
    let (rank, ranks) = (comm.rank(), comm.size());
    if mode > 0 {
        let mut sharded = if mode == 1 {
            ShardedOptimizer::new(comm, &params, build::<E>(adam))?
        } else {
            ShardedOptimizer::by_parameter(comm, &params, build::<E>(adam))?
        };
        for s in 0..STEPS {
            let (x, labels) = batch::<E>(s);
            let (x, labels) = share(&x, &labels, rank, ranks);
            sharded.step(&grads(&params, &x, &labels))?;
        }
    } else {
        let dp = DataParallel::new(comm, &params)?;
        let mut opt = build::<E>(adam);
        for s in 0..STEPS {
            let (x, labels) = batch::<E>(s);
            let (x, labels) = share(&x, &labels, rank, ranks);
            opt.apply_gradients(&dp.all_reduce(&grads(&params, &x, &labels))?)?;
        }
    }
    Ok(values(&params))
}

/// Every configuration in one float type: (failures, lines to print).
fn check<E: CommFloat>(comm: &MpiComm, tol: f64) -> Result<Vec<String>, Error> {
    let mut bad = Vec::new();
    for adam in [true, false] {
        let mut opt = build::<E>(adam);
        let fixed = data_parallel::single::<E>(true, |g| {
            opt.apply_gradients(g).expect("a valid step");
        });
        let mut opt = build::<E>(adam);
        let plain = data_parallel::single::<E>(false, |g| {
            opt.apply_gradients(g).expect("a valid step");
        });
        for (mode, how) in MODES.iter().enumerate() {
            let got = train::<E>(comm, adam, mode)?;
            let name = format!(
                "{} {} {how}",
                E::NAME,
                if adam { "Adam" } else { "SGD momentum" },
            );
            // The fixed-order reference sums two halves as a two-rank
            // all-reduce does.
            let exact = comm.size() != 2 || got == fixed;
            let d = max_rel(&got, &plain);
            let line = format!(
                "rank {}: {name}: {} the fixed-order run, {d:.1e} from batch 64",
                comm.rank(),
                if exact { "equal to" } else { "DIFFERENT from" }
            );
            if !exact || d > tol {
                bad.push(line);
            } else {
                println!("{line}");
            }
        }
    }
    Ok(bad)
}

fn bench(comm: &MpiComm) -> Result<(), Box<dyn std::error::Error>> {
    for mb in [1usize, 25] {
        let n = (mb << 20) / 4;
        let mut buf = vec![1.0f32; n];
        comm.all_reduce_sum(&mut buf)?;
        let reps = 20;
        let t = Instant::now();
        for _ in 0..reps {
            comm.all_reduce_sum(&mut buf)?;
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        if comm.rank() == 0 {
            println!(
                "all-reduce of {mb} MB (f32) over {} ranks: {:.2} ms, {:.2} GB/s of buffer",
                comm.size(),
                secs * 1e3,
                (n * 4) as f64 / secs / 1e9
            );
        }
    }
    // ZeRO-1 on the main job's CNN: one Adam step on a batch of zeros
    // creates the state; each rank reports what it holds.
    let net = mnist_net::Net::new(mnist_net::Model::Cnn, &mut Rng::seed(0))?;
    let params = net.module().parameters();
    let whole: usize = params
        .iter()
        .map(|p| p.shape().iter().product::<usize>())
        .sum();
    let tape = Tape::new();
    let x = tape.constant(Tensor::zeros([2, 1, 28, 28]));
    let loss = net.forward(&x)?.cross_entropy(&[0, 1])?;
    let grads = tape.gradient(&loss, &params)?;
    for flat in [true, false] {
        let opt = Adam::new(1e-3).build()?;
        let mut sharded = if flat {
            ShardedOptimizer::new(comm, &params, opt)?
        } else {
            ShardedOptimizer::by_parameter(comm, &params, opt)?
        };
        sharded.step(&grads)?;
        let mine = sharded.state_bytes();
        let mut all = vec![0.0f64; comm.size()];
        comm.all_gather(&[mine as f64], &mut all)?;
        if comm.rank() == 0 {
            println!(
                "ZeRO-1 {}, Adam, the CNN ({whole} parameters): {} bytes of state unsharded; \
                 per rank {:?}",
                if flat { "flat" } else { "by parameter" },
                8 * whole,
                all.iter().map(|&b| b as usize).collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let comm = MpiComm::init()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().position(|a| a == f);
    if flag("--bench").is_some() {
        bench(&comm)?;
        return Ok(true);
    }
    if flag("--mismatch").is_some() {
        let mut params = model::<f64>();
        if comm.rank() == 1 {
            params[2] = Parameter::new("fc2.weight", Tensor::zeros([16, 4]));
        }
        return match DataParallel::new(&comm, &params) {
            Err(e @ Error::Mismatch { .. }) => {
                println!("rank {}: refused at start: {e}", comm.rank());
                Ok(true)
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(false),
        };
    }
    if let Some(i) = flag("--fail-rank") {
        let who: usize = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1);
        let params = model::<f64>();
        let dp = DataParallel::new(&comm, &params)?;
        for s in 0..STEPS {
            if comm.rank() == who && s == 3 {
                comm.abort("simulated failure at step 3");
            }
            let (x, labels) = batch::<f64>(s);
            dp.all_reduce(&grads(&params, &x, &labels))?;
        }
        return Ok(false);
    }
    let mut bad = check::<f64>(&comm, 1e-10)?;
    bad.extend(check::<f32>(&comm, 1e-6)?);
    for line in &bad {
        eprintln!("{line}");
    }
    Ok(bad.is_empty())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
