//! Dropout.

use std::sync::Mutex;

use tapir_autograd::{Result, Var};
use tapir_tensor::{Float, Rng, Tensor};

use super::Forward;
use crate::{Entry, Module, Path};

/// Zeroes each element with probability `p` in training and scales the
/// rest by 1/(1−p); the identity in evaluation (`torch.nn.Dropout`,
/// Keras `Dropout`). Its masks come from its own generator, seeded at
/// construction, so a run is reproducible.
///
/// ```
/// use tapir_nn::{Dropout, Forward, Module};
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let mut drop = Dropout::new(0.5, 7);
/// let x = Var::untracked(Tensor::<f32>::ones([1000]));
/// let y = drop.forward(&x)?.into_value().to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.eval();
/// assert_eq!(drop.forward(&x)?.into_value().to_vec(), vec![1.0; 1000]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    training: bool,
    rng: Mutex<Rng>,
}

impl Dropout {
    /// Dropout with probability `p`, masks drawn from `Rng::seed(seed)`.
    ///
    /// # Panics
    /// If `p` is not in [0, 1) (PyTorch raises for p outside [0, 1]; p = 1
    /// would divide by zero).
    pub fn new(p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout: p must be in [0, 1), got {p}"
        );
        Dropout {
            p,
            training: true,
            rng: Mutex::new(Rng::seed(seed)),
        }
    }

    /// Training mode: masks on ([`Module::train`] without naming the
    /// float type).
    pub fn train(&mut self) {
        self.training = true;
    }

    /// Evaluation mode: the identity ([`Module::eval`]).
    pub fn eval(&mut self) {
        self.training = false;
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl<E: Float> Module<E> for Dropout {
    fn visit(&self, _: &mut Path, _: &mut dyn FnMut(&Path, Entry<'_, E>)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl<E: Float> Forward<E> for Dropout {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        let keep = E::from_f64(1.0 / (1.0 - self.p));
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<E> = (0..x.value().len())
            .map(|_| {
                if rng.uniform() < self.p {
                    E::ZERO
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape())?;
        x.mul(&x.lift(mask))
    }
}
