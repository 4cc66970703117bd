//! Saliency maps: which pixels the trained MNIST network looks at.
//!
//! `cargo run --release --example saliency` loads the weights the main job
//! wrote (`target/mnist/mnist.safetensors`; run
//! `cargo run --release --example mnist` first, or pass `--weights`), and
//! for the first few test images computes
//! - the gradient of the predicted class's score with respect to the input
//!   image: the image is a differentiable input (`tape.var`), not a
//!   parameter, and `tape.gradient_vars` returns its gradient;
//! - integrated gradients (Sundararajan et al. 2017): the input minus a
//!   black baseline times the mean gradient along the straight path from
//!   the baseline to the input (midpoint rule, `--steps` points, all in
//!   one batch). They sum to the score's change from baseline to input
//!   (completeness), which the program checks and prints.
//!
//! It writes `saliency.png`: per image, the input, |gradient| and
//! |integrated gradients| as heatmaps. `--quick` (CI) also checks one
//! gradient entry against a central finite difference.

use std::path::PathBuf;

use clap::Parser;
use tapir::nn::data::DataLoader;
use tapir::nn::{load_state_dict, read_safetensors, LoadOptions};
use tapir::prelude::*;
use tapir_plot::{image_grid, Colormap, Image};

#[path = "common/mnist_net.rs"]
mod mnist_net;
use mnist_net::{load_data, normalize, Model, Net};

#[path = "common/cli.rs"]
mod cli;

/// Gradient saliency and integrated gradients of the MNIST network.
#[derive(Debug, Parser)]
#[command(name = "saliency")]
struct Args {
    /// The trained weights (safetensors, as the mnist example writes them).
    #[arg(long, default_value = "target/mnist/mnist.safetensors")]
    weights: PathBuf,
    /// How many test images.
    #[arg(long, default_value_t = 6)]
    images: usize,
    /// Points on the path from the baseline for integrated gradients.
    #[arg(long, default_value_t = 64)]
    steps: usize,
    /// Where the PNG goes.
    #[arg(long, default_value = "target/saliency")]
    out: PathBuf,
    /// CI's run: three images, and the gradient checked against a finite
    /// difference.
    #[arg(long)]
    quick: bool,
}

type Error = Box<dyn std::error::Error>;

/// The score of class `class` for each image of `x` ([B, 1, 28, 28]),
/// summed over the batch, and the gradient of that sum with respect to x.
fn score_and_grad(net: &Net, x: &Tensor, class: usize) -> Result<(f32, Tensor), Error> {
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let score = net.forward(&xv)?.narrow(1, class, 1)?.sum();
    let mut g = tape.gradient_vars(&score, &[&xv], &Default::default())?;
    let g = g
        .pop()
        .flatten()
        .ok_or("the score does not depend on the input")?;
    Ok((score.value().item()?, g))
}

/// Integrated gradients of class `class` at `x` ([1, 1, 28, 28]) from
/// `baseline`.
fn integrated_gradients(
    net: &Net,
    x: &Tensor,
    baseline: &Tensor,
    class: usize,
    steps: usize,
) -> Result<Tensor, Error> {
    let (xv, bv) = (x.to_vec(), baseline.to_vec());
    let n = xv.len();
    let mut path = Vec::with_capacity(steps * n);
    for k in 0..steps {
        let a = (k as f32 + 0.5) / steps as f32;
        path.extend(xv.iter().zip(&bv).map(|(&x, &b)| b + a * (x - b)));
    }
    let path = Tensor::from_vec(path, [steps, 1, 28, 28])?;
    let (_, g) = score_and_grad(net, &path, class)?;
    let mean_grad = g.mean_axes(&[0], true)?;
    Ok(x.sub(baseline)?.mul(&mean_grad)?)
}

fn abs_values(t: &Tensor) -> Vec<f32> {
    t.to_vec().iter().map(|v| v.abs()).collect()
}

fn main() -> std::process::ExitCode {
    cli::exit_code(run)
}

fn run() -> Result<(), Error> {
    let mut args = Args::parse();
    if args.quick {
        args.images = args.images.min(3);
    }
    let state = read_safetensors::<f32>(&args.weights, false).map_err(|e| {
        format!(
            "{e}\n(train the network first: cargo run --release --example mnist, or pass --weights)"
        )
    })?;
    let kind = if state.iter().any(|(name, _)| name.starts_with("conv1.")) {
        Model::Cnn
    } else {
        Model::Mlp
    };
    let net = Net::new(kind, &mut Rng::seed(0))?;
    load_state_dict(net.module(), &state, LoadOptions::default())?;
    println!("loaded {} ({kind:?})", args.weights.display());

    let (_, test) = load_data(None)?;
    let loader = DataLoader::new(test, args.images.max(1)).transform(normalize());
    let batch = loader.epoch(0).next().ok_or("the test set is empty")?;
    let probs = net
        .forward(&Var::untracked(batch.x.clone()))?
        .value()
        .softmax(1)?;
    // A black image, normalised as the inputs are.
    let black = Tensor::full([1, 1, 28, 28], (0.0 - 0.1307) / 0.3081);

    let mut tiles = Vec::new();
    for (i, &label) in batch.labels.iter().enumerate() {
        let x = batch.x.narrow(0, i, 1)?;
        let p = probs.narrow(0, i, 1)?;
        let pred = p.argmax()?;
        let conf = p.to_vec()[pred];
        let (at_x, grad) = score_and_grad(&net, &x, pred)?;
        let (at_base, _) = score_and_grad(&net, &black, pred)?;
        let ig = integrated_gradients(&net, &x, &black, pred, args.steps)?;
        let total = ig.sum().item()?;
        let change = at_x - at_base;
        let gap = (total - change).abs() / change.abs().max(1e-3);
        println!(
            "image {i}: label {}, predicted {pred} (p = {conf:.3}); integrated gradients sum to {total:.4}, \
             score change from black {change:.4} (relative gap {gap:.2e})",
            label
        );
        if args.quick && gap > 0.05 {
            return Err(
                format!("image {i}: integrated gradients miss completeness by {gap:.3}").into(),
            );
        }
        if args.quick {
            check_finite_difference(&net, &x, &grad, pred)?;
        }
        tiles.push(Image {
            title: format!("label {} → {pred} ({:.0}%)", label, 100.0 * conf),
            width: 28,
            height: 28,
            values: x.to_vec(),
            colormap: Colormap::Gray,
        });
        tiles.push(Image {
            title: "|gradient|".into(),
            width: 28,
            height: 28,
            values: abs_values(&grad),
            colormap: Colormap::Heat,
        });
        tiles.push(Image {
            title: "|integrated gradients|".into(),
            width: 28,
            height: 28,
            values: abs_values(&ig),
            colormap: Colormap::Heat,
        });
    }
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("saliency.png");
    tapir::nn::write_atomic(&path, &image_grid(&tiles, 3, 200)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The tape's gradient at the pixel where it is largest against a central
/// difference of the score (in f64 arithmetic on f32 forward passes).
fn check_finite_difference(
    net: &Net,
    x: &Tensor,
    grad: &Tensor,
    class: usize,
) -> Result<(), Error> {
    let g = grad.to_vec();
    let k = (0..g.len())
        .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
        .ok_or("empty gradient")?;
    let h = 1e-2f32;
    let shifted = |d: f32| -> Result<f64, Error> {
        let mut v = x.to_vec();
        v[k] += d;
        let (s, _) = score_and_grad(net, &Tensor::from_vec(v, x.shape())?, class)?;
        Ok(f64::from(s))
    };
    let fd = (shifted(h)? - shifted(-h)?) / (2.0 * f64::from(h));
    let rel = (fd - f64::from(g[k])).abs() / fd.abs().max(1e-3);
    println!(
        "  pixel {k}: tape gradient {:.5}, central difference {fd:.5} (relative gap {rel:.1e})",
        g[k]
    );
    if rel > 0.05 {
        return Err(format!("pixel {k}: gradient {} but finite difference {fd}", g[k]).into());
    }
    Ok(())
}
