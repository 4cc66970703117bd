//! The main job: train a LeNet-like CNN on MNIST digits.
//!
//! `cargo run --release --example mnist` trains on the 5,000-image MNIST
//! subset bundled in examples/data (4,000 train, 1,000 test, split with a
//! fixed seed) with Adam, shows a progress bar per epoch, prints a summary
//! per epoch and the final test accuracy, and writes the trained weights
//! (safetensors), a training checkpoint and the learning curves (PNG and CSV) to
//! --out. Ctrl-C saves a checkpoint and stops; `--resume` continues from
//! it, bit for bit, mid-epoch included. `--help` lists the options; `--data DIR` trains on full MNIST or
//! Fashion-MNIST IDX files instead. benches/compare/mnist_torch.py is the
//! same recipe in PyTorch.
//!
//! Data-parallel over MPI (built with `--features mpi`):
//! `mpirun -n 2 target/release/examples/mnist --distributed --threads 1`.
//! Each rank trains on its share of every epoch (`DataLoader::shard`) with
//! `--batch-size` examples per step, gradients averaged over the ranks
//! before each step (`DataParallel`), so the ranks' models stay equal and
//! the effective batch is the ranks times `--batch-size`; only rank 0
//! prints, evaluates and writes files, and every rank can `--resume` from
//! its checkpoint.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tapir::nn::data::{DataLoader, Dataset, InMemory};
use tapir::nn::metrics::{accuracy, RunningMean};
use tapir::nn::Checkpoint;
use tapir::optim::Optimizer;
use tapir::prelude::*;
use tapir_plot::{line_chart, Panel, Series};

#[path = "common/mnist_net.rs"]
mod mnist_net;
use mnist_net::{load_data, normalize, Model, Net};

#[path = "common/cli.rs"]
mod cli;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Opt {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    Adamw,
    Adamax,
    Nadam,
    Radam,
    Adagrad,
    Rmsprop,
    Adadelta,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Sched {
    /// The learning rate stays.
    Constant,
    /// Cosine annealing to 0 over the whole run.
    Cosine,
}

/// Train a CNN (or an MLP) on MNIST digits.
#[derive(Debug, Parser)]
#[command(name = "mnist")]
struct Args {
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = Opt::Adam)]
    optimizer: Opt,
    /// The learning-rate schedule.
    #[arg(long, value_enum, default_value_t = Sched::Constant)]
    schedule: Sched,
    /// The model.
    #[arg(long, value_enum, default_value_t = Model::Cnn)]
    model: Model,
    /// A folder with MNIST-layout IDX files (train-images-idx3-ubyte[.gz],
    /// ...) to train on instead of the bundled subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Worker threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the initial weights and the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue from this training checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Where the weights, the checkpoint and the curves go.
    #[arg(long, default_value = "target/mnist")]
    out: PathBuf,
    /// A short run for CI (2 epochs on 2,000 training images); fails unless
    /// the test accuracy beats 85%.
    #[arg(long)]
    quick: bool,
    /// Data-parallel training over MPI, one process per rank under
    /// `mpirun` (needs the cargo feature `mpi`); `--batch-size` is per rank.
    #[arg(long)]
    distributed: bool,
}

/// Set by Ctrl-C; the loop saves a checkpoint and stops at the next step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn optimizer(args: &Args, total_steps: u64) -> Result<Optimizer, tapir::optim::Error> {
    let lr = args.lr;
    let opt = match args.optimizer {
        Opt::Sgd => Sgd::new(lr).build()?,
        Opt::Momentum => Sgd::new(lr).momentum(0.9).build()?,
        Opt::Nesterov => Sgd::new(lr).momentum(0.9).nesterov(true).build()?,
        Opt::Adam => Adam::new(lr).build()?,
        Opt::Adamw => AdamW::new(lr).build()?,
        Opt::Adamax => Adamax::new(lr).build()?,
        Opt::Nadam => Nadam::new(lr).build()?,
        Opt::Radam => Radam::new(lr).build()?,
        Opt::Adagrad => Adagrad::new(lr).build()?,
        Opt::Rmsprop => Rmsprop::new(lr).build()?,
        Opt::Adadelta => Adadelta::new(lr).build()?,
    };
    match args.schedule {
        Sched::Constant => Ok(opt),
        Sched::Cosine => opt.with_schedule(Cosine {
            t_max: total_steps.max(1),
            eta_min: 0.0,
        }),
    }
}

/// Test-set accuracy, evaluated without a tape.
fn evaluate(net: &Net, test: &DataLoader<InMemory>) -> Result<f64, Box<dyn std::error::Error>> {
    let mut acc = RunningMean::new();
    for b in test.epoch(0) {
        let logits = net.forward(&Var::untracked(b.x))?;
        acc.add(accuracy(logits.value(), &b.labels), b.labels.len());
    }
    Ok(acc.mean())
}

fn main() -> std::process::ExitCode {
    cli::exit_code(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut args = Args::parse();
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; `signal` is given a valid `extern "C"` function.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    if let Some(t) = args.threads {
        tapir::set_num_threads(t)?;
    }
    if args.quick {
        args.epochs = args.epochs.min(2);
    }
    #[cfg(feature = "mpi")]
    let comm = if args.distributed {
        Some(tapir::distributed::MpiComm::init()?)
    } else {
        None
    };
    #[cfg(feature = "mpi")]
    let (rank, ranks) = {
        use tapir::distributed::Communicator;
        comm.as_ref().map_or((0, 1), |c| (c.rank(), c.size()))
    };
    #[cfg(not(feature = "mpi"))]
    let (rank, ranks) = if args.distributed {
        return Err("--distributed needs MPI: build with \
                    `cargo build --release --features mpi --example mnist` \
                    and start with `mpirun -n 2 target/release/examples/mnist --distributed`"
            .into());
    } else {
        (0usize, 1usize)
    };
    // Rank 0 prints and writes; the others train quietly.
    let lead = rank == 0;
    let (mut train, test) = load_data(args.data.as_deref())?;
    if args.quick {
        train = train.subset(&(0..2000.min(train.len())).collect::<Vec<_>>());
    }
    let normalize = normalize();
    let n_train = train.len();
    let train = DataLoader::new(train, args.batch_size)
        .shuffle(args.seed)
        .shard(rank, ranks)
        .transform(normalize.clone());
    let test = DataLoader::new(test, 1000).transform(normalize);
    if lead {
        println!(
            "{} training and {} test images of {:?}; {:?}, {:?} lr {}, batch {}, {} epochs",
            n_train,
            test.dataset().len(),
            train.dataset().item_shape(),
            args.model,
            args.optimizer,
            args.lr,
            args.batch_size * ranks,
            args.epochs
        );
        if ranks > 1 {
            println!(
                "data parallel over {ranks} ranks, {} per rank",
                args.batch_size
            );
        }
    }

    let mut rng = Rng::seed(args.seed);
    let net = Net::new(args.model, &mut rng)?;
    let params = net.module().parameters();
    let steps_per_epoch = train.batches() as u64;
    let mut opt = optimizer(&args, steps_per_epoch * args.epochs as u64)?;
    let mut step = 0u64;
    if let Some(path) = &args.resume {
        let ck = Checkpoint::<f32>::load(path)?;
        ck.restore(net.module(), &mut opt)?;
        step = ck.step;
        if lead {
            println!("resumed from {} at step {step}", path.display());
        }
    }
    // Rank 0's model on every rank (checked alike first), and the
    // gradient averaging.
    #[cfg(feature = "mpi")]
    let dp = match &comm {
        Some(c) => Some(tapir::distributed::DataParallel::new(c, &params)?),
        None => None,
    };
    std::fs::create_dir_all(&args.out)?;
    let mut curves = String::from("epoch,train_loss,train_accuracy,test_accuracy,seconds\n");
    let (mut loss_pts, mut train_pts, mut test_pts) = (Vec::new(), Vec::new(), Vec::new());
    let ckpt = args.out.join("checkpoint.safetensors");
    let mut test_acc = 0.0;
    let first_epoch = (step / steps_per_epoch.max(1)) as usize;
    for epoch in first_epoch..args.epochs {
        let t0 = Instant::now();
        let bar = if lead {
            ProgressBar::new(steps_per_epoch)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos}/{len} {msg}")?
                .progress_chars("=> "),
        );
        bar.set_prefix((epoch + 1).to_string());
        let (mut loss_m, mut acc_m) = (RunningMean::new(), RunningMean::new());
        // A run interrupted mid-epoch resumes at the batch it stopped at.
        let skip = if epoch == first_epoch {
            (step % steps_per_epoch.max(1)) as usize
        } else {
            0
        };
        for (i, b) in train.epoch(epoch as u64).enumerate().skip(skip) {
            let tape = Tape::new();
            let logits = net.forward(&tape.constant(b.x))?;
            let loss = logits.cross_entropy(&b.labels)?;
            let grads = tape.gradient(&loss, &params)?;
            #[cfg(feature = "mpi")]
            let grads = match &dp {
                Some(dp) => dp.all_reduce(&grads)?,
                None => grads,
            };
            opt.apply_gradients(&grads)?;
            step += 1;
            loss_m.add(f64::from(loss.value().item()?), b.labels.len());
            acc_m.add(accuracy(logits.value(), &b.labels), b.labels.len());
            if i % 4 == 0 {
                // Images per second over all ranks.
                let ips = (i + 1 - skip) as f64 * (args.batch_size * ranks) as f64
                    / t0.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} acc {:.1}% {:.0} img/s",
                    loss_m.mean(),
                    100.0 * acc_m.mean(),
                    ips
                ));
            }
            bar.inc(1);
            if INTERRUPTED.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                if !lead {
                    std::process::exit(130);
                }
                Checkpoint::capture(net.module(), &opt, step, None).save(&ckpt)?;
                println!(
                    "interrupted at step {step} (epoch {}): saved {}; continue with --resume {}",
                    epoch + 1,
                    ckpt.display(),
                    ckpt.display()
                );
                std::process::exit(130);
            }
        }
        bar.finish_and_clear();
        if !lead {
            continue;
        }
        test_acc = evaluate(&net, &test)?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "epoch {:>2}  loss {:.4}  train acc {:5.1}%  test acc {:5.1}%  {:.2} s  {:.0} img/s",
            epoch + 1,
            loss_m.mean(),
            100.0 * acc_m.mean(),
            100.0 * test_acc,
            secs,
            (loss_m.count() * ranks) as f64 / secs
        );
        curves.push_str(&format!(
            "{},{},{},{},{}\n",
            epoch + 1,
            loss_m.mean(),
            acc_m.mean(),
            test_acc,
            secs
        ));
        let e = (epoch + 1) as f64;
        loss_pts.push((e, loss_m.mean()));
        train_pts.push((e, 100.0 * acc_m.mean()));
        test_pts.push((e, 100.0 * test_acc));
    }
    if !lead {
        return Ok(());
    }
    let weights = args.out.join("mnist.safetensors");
    tapir::nn::write_safetensors(&weights, &net.module().state_dict())?;
    Checkpoint::capture(net.module(), &opt, step, None).save(&ckpt)?;
    let curve_path = args.out.join("curves.csv");
    tapir::nn::write_atomic(&curve_path, curves.as_bytes())?;
    let plot_path = args.out.join("curves.png");
    if !loss_pts.is_empty() {
        let panels = [
            Panel::new("training loss")
                .x_label("epoch")
                .y_label("cross-entropy")
                .log_y()
                .series(Series::new("train", loss_pts)),
            Panel::new("accuracy")
                .x_label("epoch")
                .y_label("%")
                .series(Series::new("train", train_pts))
                .series(Series::new("test", test_pts)),
        ];
        tapir::nn::write_atomic(&plot_path, &line_chart(&panels, (960, 380))?)?;
    }
    println!("test accuracy {:.1}%", 100.0 * test_acc);
    println!(
        "wrote {} (weights), {} (checkpoint), {} and {} (learning curves)",
        weights.display(),
        ckpt.display(),
        plot_path.display(),
        curve_path.display()
    );
    println!("total wall time {:.2} s", start.elapsed().as_secs_f64());
    if args.quick && test_acc <= 0.85 {
        return Err(format!(
            "quick run: test accuracy {:.1}% is not above 85%",
            100.0 * test_acc
        )
        .into());
    }
    Ok(())
}
