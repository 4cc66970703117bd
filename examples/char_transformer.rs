//! A tiny GPT trained on characters.
//!
//! `cargo run --release --example char_transformer` trains a decoder-only
//! transformer (token and position embeddings, pre-norm blocks of causal
//! multi-head attention and a GELU MLP, a final LayerNorm and a linear head)
//! on the State of the Union addresses of 1790–1811 bundled in
//! examples/data (300 KB, public domain; see its README), with AdamW, a
//! linear warm-up then cosine decay of the learning rate, and gradient
//! clipping by global norm. It prints a sample every few hundred steps, the
//! held-out loss against the unigram entropy of the text, and writes the
//! loss curves (PNG) and the weights (safetensors) to --out. `--quick` is
//! CI's short run: it fails unless the loss falls.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tapir::optim::{Linear as LinearRamp, Sequential as Phases};
use tapir::prelude::*;
use tapir_plot::{line_chart, Panel, Series};

#[path = "common/cli.rs"]
mod cli;

/// Train a character-level transformer language model.
#[derive(Debug, Parser)]
#[command(name = "char_transformer")]
struct Args {
    /// Optimizer steps.
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Characters of context.
    #[arg(long, default_value_t = 64)]
    context: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Width of the residual stream.
    #[arg(long, default_value_t = 128)]
    d_model: usize,
    /// Attention heads per block.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Peak learning rate (after warm-up).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Seed of the weights, the batches and the samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the curves and the weights go.
    #[arg(long, default_value = "target/char_transformer")]
    out: PathBuf,
    /// CI's run: 120 steps of a one-block model; fails unless the loss
    /// falls by half a nat.
    #[arg(long)]
    quick: bool,
}

type Error = Box<dyn std::error::Error>;

#[derive(Module)]
struct Gpt {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<TransformerBlock>,
    norm: LayerNorm,
    head: Linear,
}

impl Gpt {
    fn new(vocab: usize, args: &Args, rng: &mut Rng) -> Self {
        let d = args.d_model;
        Gpt {
            tok: Embedding::new(vocab, d, rng),
            pos: Embedding::new(args.context, d, rng),
            blocks: (0..args.layers)
                .map(|_| TransformerBlock::new(d, args.heads, 4 * d, rng).causal())
                .collect(),
            norm: LayerNorm::new(&[d]),
            head: Linear::new(d, vocab, rng),
        }
    }

    /// Logits [B, T, vocab] for token ids [B, T] (row-major in `ids`);
    /// without a tape nothing is recorded (sampling, evaluation).
    fn forward<'t>(
        &self,
        tape: Option<&'t Tape>,
        ids: &[usize],
        batch: usize,
        t: usize,
    ) -> tapir::autograd::Result<Var<'t>> {
        let positions: Vec<usize> = (0..t).collect();
        let mut h = self
            .tok
            .forward(tape, ids, &[batch, t])?
            .add(&self.pos.forward(tape, &positions, &[t])?)?;
        for b in &self.blocks {
            h = b.forward(&h)?;
        }
        self.head.forward(&self.norm.forward(&h)?)
    }
}

/// The characters of a text as ids into its sorted alphabet.
struct Corpus {
    alphabet: Vec<char>,
    ids: Vec<usize>,
}

impl Corpus {
    fn new(text: &str) -> Self {
        let mut alphabet: Vec<char> = text.chars().collect();
        alphabet.sort_unstable();
        alphabet.dedup();
        let ids = text
            .chars()
            .map(|c| alphabet.binary_search(&c).unwrap_or(0))
            .collect();
        Corpus { alphabet, ids }
    }

    fn decode(&self, ids: &[usize]) -> String {
        ids.iter().map(|&i| self.alphabet[i]).collect()
    }
}

/// −Σ p ln p of the characters of `ids`, in nats: the loss of the best
/// model that ignores context.
fn unigram_entropy(ids: &[usize], vocab: usize) -> f64 {
    let mut counts = vec![0usize; vocab];
    for &i in ids {
        counts[i] += 1;
    }
    let n = ids.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// `batch` random windows of `t + 1` characters: inputs and next-character
/// targets, each [batch·t].
fn windows(ids: &[usize], batch: usize, t: usize, rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let (mut x, mut y) = (Vec::with_capacity(batch * t), Vec::with_capacity(batch * t));
    for _ in 0..batch {
        let start = rng.below((ids.len() - t - 1) as u64) as usize;
        x.extend_from_slice(&ids[start..start + t]);
        y.extend_from_slice(&ids[start + 1..start + t + 1]);
    }
    (x, y)
}

/// Mean cross-entropy on `batches` fixed windows of the held-out text.
fn held_out_loss(gpt: &Gpt, ids: &[usize], args: &Args, batches: usize) -> Result<f64, Error> {
    let mut rng = Rng::seed(12345);
    let mut total = 0.0;
    for _ in 0..batches {
        let (x, y) = windows(ids, args.batch_size, args.context, &mut rng);
        let logits = gpt.forward(None, &x, args.batch_size, args.context)?;
        let vocab = logits.shape()[2] as isize;
        total += f64::from(
            logits
                .reshape([-1, vocab])?
                .cross_entropy(&y)?
                .value()
                .item()?,
        );
    }
    Ok(total / batches as f64)
}

/// `n` characters continuing `prompt`, drawn at temperature 0.8.
fn sample(
    gpt: &Gpt,
    corpus: &Corpus,
    prompt: &str,
    n: usize,
    args: &Args,
    rng: &mut Rng,
) -> Result<String, Error> {
    let mut ids: Vec<usize> = prompt
        .chars()
        .map(|c| corpus.alphabet.binary_search(&c).unwrap_or(0))
        .collect();
    let start = ids.len();
    for _ in 0..n {
        let ctx = &ids[ids.len().saturating_sub(args.context)..];
        let logits = gpt.forward(None, ctx, 1, ctx.len())?;
        let last = logits
            .value()
            .narrow(1, ctx.len() - 1, 1)?
            .mul_scalar(1.0 / 0.8);
        let p = last
            .reshape_usize(&[corpus.alphabet.len()])?
            .softmax(0)?
            .to_vec();
        let mut u = rng.uniform() as f32;
        let mut next = p.len() - 1;
        for (i, &pi) in p.iter().enumerate() {
            if u < pi {
                next = i;
                break;
            }
            u -= pi;
        }
        ids.push(next);
    }
    Ok(corpus.decode(&ids[start..]))
}

fn main() -> std::process::ExitCode {
    cli::exit_code(run)
}

fn run() -> Result<(), Error> {
    let start = Instant::now();
    let mut args = Args::parse();
    if args.quick {
        args.steps = args.steps.min(120);
        args.layers = 1;
        args.batch_size = args.batch_size.min(8);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/sotu_1790_1811.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let corpus = Corpus::new(&text);
    let vocab = corpus.alphabet.len();
    let split = corpus.ids.len() * 9 / 10;
    let (train, held_out) = corpus.ids.split_at(split);
    if held_out.len() <= args.context + 1 {
        return Err(format!(
            "--context {} is longer than the held-out text",
            args.context
        )
        .into());
    }
    let entropy = unigram_entropy(train, vocab);

    let mut rng = Rng::seed(args.seed);
    let gpt = Gpt::new(vocab, &args, &mut rng);
    let params = gpt.parameters();
    let n_params: usize = params.iter().map(|p| p.value().len()).sum();
    println!(
        "{} characters ({} distinct), {} to train on; {} blocks, d_model {}, {} heads, context {}: {} parameters",
        corpus.ids.len(),
        vocab,
        train.len(),
        args.layers,
        args.d_model,
        args.heads,
        args.context,
        n_params
    );
    println!("unigram entropy of the text: {entropy:.3} nats per character");

    let warmup = (args.steps / 10).max(1) as u64;
    let total = args.steps.max(2) as u64;
    let schedule = Phases {
        schedules: vec![
            Box::new(LinearRamp {
                start: 0.0,
                end: 1.0,
                steps: warmup,
            }),
            Box::new(Cosine {
                t_max: (total - warmup).max(1),
                eta_min: 0.1 * args.lr,
            }),
        ],
        milestones: vec![warmup],
    };
    let mut opt = AdamW::new(args.lr)
        .weight_decay(0.1)
        .build::<f32>()?
        .with_schedule(schedule)?
        .with_transform(GradTransform::ClipGlobalNorm(1.0))?;

    let every = (args.steps / 5).max(1);
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} {msg}")?.progress_chars("=> "),
    );
    let (mut train_pts, mut held_pts, mut window) = (Vec::new(), Vec::new(), Vec::new());
    let (mut first, mut last) = (None, f64::NAN);
    let mut batch_rng = Rng::seed(args.seed ^ 0x5eed);
    let mut sample_rng = Rng::seed(args.seed ^ 0xface);
    for step in 1..=args.steps {
        let (x, y) = windows(train, args.batch_size, args.context, &mut batch_rng);
        let tape = Tape::new();
        let logits = gpt.forward(Some(&tape), &x, args.batch_size, args.context)?;
        let loss = logits.reshape([-1, vocab as isize])?.cross_entropy(&y)?;
        opt.apply_gradients(&tape.gradient(&loss, &params)?)?;
        window.push(f64::from(loss.value().item()?));
        if window.len() == 10 || step == args.steps {
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            first.get_or_insert(mean);
            last = mean;
            train_pts.push((step as f64, mean));
            window.clear();
            bar.set_message(format!("loss {mean:.3} lr {:.2e}", opt.current_lr()));
        }
        bar.inc(1);
        if step % every == 0 || step == args.steps {
            let held = held_out_loss(&gpt, held_out, &args, 4)?;
            held_pts.push((step as f64, held));
            let text = sample(
                &gpt,
                &corpus,
                "Fellow-Citizens",
                160,
                &args,
                &mut sample_rng,
            )?;
            bar.suspend(|| {
                println!(
                    "step {step:>5}  train loss {last:.3}  held-out loss {held:.3}  ({:.0} s)",
                    start.elapsed().as_secs_f64()
                );
                println!("  Fellow-Citizens{}", text.replace('\n', " "));
            });
        }
    }
    bar.finish_and_clear();
    let held = held_pts.last().map_or(f64::NAN, |p| p.1);
    println!(
        "held-out loss {held:.3} nats per character, unigram entropy {entropy:.3} ({:.0}% below)",
        100.0 * (1.0 - held / entropy)
    );

    std::fs::create_dir_all(&args.out)?;
    let steps = args.steps as f64;
    let panel = Panel::new("character-level transformer on the State of the Union, 1790-1811")
        .x_label("step")
        .y_label("cross-entropy (nats per character)")
        .series(Series::new("train (mean of 10 steps)", train_pts))
        .series(Series::new("held out", held_pts))
        .series(Series::new(
            "unigram entropy",
            vec![(0.0, entropy), (steps, entropy)],
        ));
    let curve = args.out.join("loss.png");
    tapir::nn::write_atomic(&curve, &line_chart(&[panel], (1000, 500))?)?;
    let weights = args.out.join("char_transformer.safetensors");
    tapir::nn::write_safetensors(&weights, &gpt.state_dict())?;
    println!("wrote {} and {}", curve.display(), weights.display());
    println!("total wall time {:.1} s", start.elapsed().as_secs_f64());
    let first = first.unwrap_or(f64::NAN);
    if args.quick && (last.is_nan() || last > first - 0.5) {
        return Err(format!(
            "quick run: the loss went from {first:.3} to {last:.3}, not down by 0.5"
        )
        .into());
    }
    Ok(())
}
