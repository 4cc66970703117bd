//! The networks and the data of the MNIST examples (`mnist`, `saliency`,
//! the MLP part of `optimizer_tour`),
//! included by each with `#[path]` so they train and read the same model.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use tapir::nn::data::{csv, idx, InMemory, Transform};
use tapir::nn::{Conv2d, Forward, Linear, MaxPool2d, Module, Padding};
use tapir::prelude::*;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// conv 5×5 1→16, pool, conv 5×5 16→32, pool, linear 1568→128→10.
    Cnn,
    /// linear 784→256→10.
    Mlp,
}

#[derive(Module)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl Forward for Cnn {
    fn forward<'t>(&self, x: &Var<'t>) -> tapir::autograd::Result<Var<'t>> {
        let pool = MaxPool2d::new([2, 2]);
        let h = pool.forward(&self.conv1.forward(x)?.relu())?;
        let h = pool.forward(&self.conv2.forward(&h)?.relu())?;
        let h = self.fc1.forward(&h.flatten(1, -1)?)?.relu();
        self.fc2.forward(&h)
    }
}

#[derive(Module)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Forward for Mlp {
    fn forward<'t>(&self, x: &Var<'t>) -> tapir::autograd::Result<Var<'t>> {
        let h = self.fc1.forward(&x.flatten(1, -1)?)?.relu();
        self.fc2.forward(&h)
    }
}

/// The network chosen on the command line.
pub enum Net {
    Cnn(Cnn),
    Mlp(Mlp),
}

impl Net {
    /// A freshly initialised network.
    pub fn new(kind: Model, rng: &mut Rng) -> Result<Self, Box<dyn std::error::Error>> {
        let conv = |i, o, rng: &mut Rng| {
            Conv2d::builder(i, o, [5, 5])
                .padding(Padding::Explicit([2, 2]))
                .build(rng)
        };
        Ok(match kind {
            Model::Cnn => Net::Cnn(Cnn {
                conv1: conv(1, 16, rng)?,
                conv2: conv(16, 32, rng)?,
                fc1: Linear::new(32 * 7 * 7, 128, rng),
                fc2: Linear::new(128, 10, rng),
            }),
            Model::Mlp => Net::Mlp(Mlp {
                fc1: Linear::new(784, 256, rng),
                fc2: Linear::new(256, 10, rng),
            }),
        })
    }

    pub fn module(&self) -> &dyn Module {
        match self {
            Net::Cnn(m) => m,
            Net::Mlp(m) => m,
        }
    }

    pub fn forward<'t>(&self, x: &Var<'t>) -> tapir::autograd::Result<Var<'t>> {
        match self {
            Net::Cnn(m) => m.forward(x),
            Net::Mlp(m) => m.forward(x),
        }
    }
}

/// MNIST's pixel mean and standard deviation (of the 60,000 training
/// images, scaled to [0, 1]), as torchvision's examples use.
pub fn normalize() -> Transform {
    Transform::Normalize {
        mean: vec![0.1307],
        std: vec![0.3081],
    }
}

/// The train and test sets: MNIST-layout IDX files in `dir`, or else the
/// bundled 5,000-image subset split 4,000 / 1,000. Pixels in [0, 1].
pub fn load_data(dir: Option<&Path>) -> Result<(InMemory, InMemory), Box<dyn std::error::Error>> {
    if let Some(dir) = dir {
        return Ok(idx::mnist_folder(dir)?);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist_5k.csv.gz");
    let opts = csv::CsvOptions {
        classes: 10,
        scale: 1.0 / 255.0,
        ..Default::default()
    };
    let all = csv::read(&path, &opts)?.reshape(&[1, 28, 28]);
    Ok(all.split(4000, 0))
}
