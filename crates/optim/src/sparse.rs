//! SparseAdam: Adam that updates only the rows an embedding lookup
//! touched.

use tapir_tensor::Float;

use crate::bf16::StateDtype;
use crate::error::Result;
use crate::optimizer::{Optimizer, WeightDecay};
use crate::pieces::{bias_correction, descend};
use crate::rules::{Kernel, Rule};

/// SparseAdam, as `torch.optim.SparseAdam`: the "lazy" Adam for embedding
/// tables. With a row-sparse gradient (from
/// [`Var::embedding`](tapir_autograd::Var::embedding)) only the rows
/// present, and their moments, change, so a step costs in proportion to
/// the batch rather than to the vocabulary:
///
/// m ← m + (1 − β₁)(g − m), v ← v + (1 − β₂)(g² − v),
/// θ ← θ − α·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε)
///
/// on those rows, t counting the parameter's steps (all rows share it, as
/// PyTorch's). ε is added to √v itself, not to the bias-corrected
/// √v̂ as in [`crate::Adam`] (the Adam paper's "ε̂" form), so even with
/// every row present the step differs slightly from Adam's. Rows absent
/// from a step keep their moments; dense Adam would decay them and move
/// the row by its momentum.
///
/// Differences from PyTorch: a dense gradient is accepted and updates
/// every row by the same formula (PyTorch raises), so one optimizer can
/// serve a model with an embedding and dense layers; PyTorch's `maximize`
/// is not offered; there is no weight decay (PyTorch has none either).
///
/// ```
/// use tapir_autograd::{Parameter, Tape};
/// use tapir_optim::SparseAdam;
/// use tapir_tensor::Tensor;
/// let table = Parameter::new("emb", Tensor::<f32>::ones([1000, 8]));
/// let mut opt = SparseAdam::new(0.1).build()?;
/// let tape = Tape::new();
/// let loss = tape.watch(&table).embedding(&[4, 9, 4])?.square().sum();
/// opt.apply_gradients(&tape.gradient(&loss, [&table])?)?;
/// let w = table.value().to_vec();
/// assert!(w[4 * 8] < 1.0 && w[9 * 8] < 1.0); // rows 4 and 9 moved
/// assert!(w[..4 * 8].iter().all(|&x| x == 1.0)); // the rest did not
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseAdam {
    /// α.
    ///
    /// Default: `1e-3`.
    pub lr: f64,
    /// β₁.
    ///
    /// Default: `0.9`.
    pub beta1: f64,
    /// β₂.
    ///
    /// Default: `0.999`.
    pub beta2: f64,
    /// ε.
    ///
    /// Default: `1e-8`.
    pub eps: f64,
    /// The number type of the moments (see
    /// [`Optimizer::with_state_dtype`]).
    ///
    /// Default: `StateDtype::Full`.
    pub state_dtype: StateDtype,
}

impl Default for SparseAdam {
    fn default() -> Self {
        SparseAdam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            state_dtype: StateDtype::Full,
        }
    }
}

impl SparseAdam {
    /// The configuration with learning rate `lr` and PyTorch's defaults
    /// otherwise; `build` validates it.
    pub fn new(lr: f64) -> Self {
        SparseAdam {
            lr,
            ..Default::default()
        }
    }

    /// Sets β₁ and β₂ (PyTorch's `betas=(β₁, β₂)`).
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the number type of the moments.
    pub fn state_dtype(mut self, state_dtype: StateDtype) -> Self {
        self.state_dtype = state_dtype;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// A hyperparameter outside its domain, named with its value.
    pub fn build<E: Float>(self) -> Result<Optimizer<E>> {
        crate::optimizers::adam_family_ok("SparseAdam", self.lr, self.beta1, self.beta2, self.eps)?;
        let rule = SparseAdamRule {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        };
        Optimizer::new(rule, self.lr, WeightDecay::None)?.with_state_dtype(self.state_dtype)
    }
}

pub(crate) struct SparseAdamRule {
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// SparseAdam's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SparseAdamCoeffs<E> {
    /// 1 − β₁ and 1 − β₂, computed in f64.
    c1: E,
    c2: E,
    /// α·√(1 − β₂ᵗ)/(1 − β₁ᵗ), computed in f64.
    step: E,
    eps: E,
}

impl<E: Float> Rule<E> for SparseAdamRule {
    type Coeffs = SparseAdamCoeffs<E>;
    fn name(&self) -> &'static str {
        "SparseAdam"
    }
    /// m, then v.
    fn slots(&self) -> usize {
        2
    }
    fn coeffs(&self, t: u64, lr: f64, _s: &mut [f64]) -> SparseAdamCoeffs<E> {
        let bc1 = bias_correction(self.beta1, t);
        let bc2 = bias_correction(self.beta2, t);
        SparseAdamCoeffs {
            c1: E::from_f64(1.0 - self.beta1),
            c2: E::from_f64(1.0 - self.beta2),
            step: E::from_f64(lr * bc2.sqrt() / bc1),
            eps: E::from_f64(self.eps),
        }
    }
    #[inline(always)]
    fn apply(
        &self,
        p: &mut [E],
        g: &[E],
        s: &mut [&mut [E]],
        _k: &Kernel<E>,
        c: &SparseAdamCoeffs<E>,
    ) {
        let [m, v] = s else {
            crate::rules::bad_slots("SparseAdam", s.len())
        };
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            // PyTorch's order: the increments first, then old + increment.
            let m1 = *m + (g - *m) * c.c1;
            let v1 = *v + (g * g - *v) * c.c2;
            (*m, *v) = (m1, v1);
            *p = descend(*p, c.step * (m1 / (v1.sqrt() + c.eps)));
        }
    }
    fn sparse(&self) -> bool {
        true
    }
}
