//! Losses (`torch.nn.functional`, `tf.keras.losses`), each with PyTorch's
//! reductions and divisors.

use tapir_autograd::{Result, Var};
use tapir_tensor::Float;

/// How a loss combines its per-element values (`reduction=` in PyTorch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over every element (PyTorch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: the per-element losses.
    None,
}

fn reduce<'t, E: Float>(v: Var<'t, E>, r: Reduction) -> Var<'t, E> {
    match r {
        Reduction::Mean => v.mean(),
        Reduction::Sum => v.sum(),
        Reduction::None => v,
    }
}

fn same_shape<E: Float>(op: &'static str, a: &Var<'_, E>, b: &Var<'_, E>) -> Result<()> {
    tapir_tensor::check::same_shape(op, "input and target", a.shape(), b.shape())?;
    Ok(())
}

/// Softmax cross-entropy of logits `[N, C]` against class indices, mean
/// over the batch (`F.cross_entropy`, Keras
/// `SparseCategoricalCrossentropy(from_logits=True)`).
///
/// # Errors
/// Logits not `[N, C]`, a label count other than N, a label ≥ C.
pub fn cross_entropy<'t, E: Float>(logits: &Var<'t, E>, labels: &[usize]) -> Result<Var<'t, E>> {
    logits.cross_entropy(labels)
}

/// Options of [`cross_entropy_with`] and [`cross_entropy_probs`]: PyTorch's
/// `weight`, `ignore_index`, `label_smoothing` and `reduction` of
/// `F.cross_entropy`, with its divisors: for class indices, `Mean` divides
/// by Σ weight[y] over the rows not ignored (not by N); for probability
/// targets, by N whatever the weights. Label smoothing ε mixes
/// (1 − ε)·(−log p_y) with ε·(the mean over classes of −log p, weighted by
/// the class weights).
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    /// One weight per class (`weight=`).
    pub weight: Option<Vec<f64>>,
    /// Rows with this label count for nothing (`ignore_index=`).
    pub ignore_index: Option<usize>,
    /// ε in [0, 1] (`label_smoothing=`).
    pub label_smoothing: f64,
    /// Mean (default), sum, or per-row losses.
    pub reduction: Reduction,
}

impl CrossEntropy {
    fn check(&self, op: &'static str, c: usize) -> Result<()> {
        let bad = |msg: String| -> Result<()> {
            Err(tapir_tensor::Error::InvalidArgument { op, msg }.into())
        };
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label_smoothing must be in [0, 1], got {}",
                self.label_smoothing
            ));
        }
        if let Some(w) = &self.weight {
            if w.len() != c {
                return bad(format!("{} class weights for {c} classes", w.len()));
            }
        }
        Ok(())
    }

    fn class_weights<E: Float>(&self, c: usize) -> Vec<E> {
        match &self.weight {
            Some(w) => w.iter().map(|&v| E::from_f64(v)).collect(),
            None => vec![E::ONE; c],
        }
    }
}

/// Softmax cross-entropy of logits `[N, C]` against class indices with
/// PyTorch's options ([`CrossEntropy`]): one fused primitive
/// ([`Var::softmax_cross_entropy`]), finite for logits of ±1e4. Labels
/// equal to `ignore_index` may be out of range; others must be < C.
///
/// ```
/// use tapir_nn::loss::{cross_entropy_with, CrossEntropy};
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let x = Var::untracked(Tensor::<f64>::from_vec(vec![2.0, 0.0, 0.0, 1.0], [2, 2])?);
/// let opts = CrossEntropy { ignore_index: Some(0), ..Default::default() };
/// // Only row 1 (label 1) counts, divided by 1.
/// let l = cross_entropy_with(&x, &[0, 1], &opts)?.value().item()?;
/// assert!((l - (1.0 + (-1f64).exp()).ln()).abs() < 1e-12);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
///
/// # Errors
/// Logits not `[N, C]`, a label count other than N, a label ≥ C, weights
/// not one per class, or ε outside [0, 1].
pub fn cross_entropy_with<'t, E: Float>(
    logits: &Var<'t, E>,
    labels: &[usize],
    opts: &CrossEntropy,
) -> Result<Var<'t, E>> {
    let op = "cross_entropy";
    if logits.ndim() != 2 || labels.len() != logits.shape()[0] {
        return Err(tapir_tensor::Error::InvalidArgument {
            op,
            msg: format!(
                "expects logits (N, C) and N labels, got {:?} and {} labels",
                logits.shape(),
                labels.len()
            ),
        }
        .into());
    }
    let c = logits.shape()[1];
    opts.check(op, c)?;
    let w = opts.class_weights::<E>(c);
    let eps = E::from_f64(opts.label_smoothing);
    let keep = |l: usize| opts.ignore_index != Some(l);
    // Ignored rows point at class 0 with zero weight.
    let ls: Vec<usize> = labels
        .iter()
        .map(|&l| if keep(l) { l } else { 0 })
        .collect();
    let wy: Vec<E> = labels
        .iter()
        .map(|&l| if keep(l) && l < c { w[l] } else { E::ZERO })
        .collect();
    let a: Vec<E> = wy.iter().map(|&v| (E::ONE - eps) * v).collect();
    let (b, u): (Vec<E>, Vec<E>) = if opts.label_smoothing > 0.0 {
        let per = eps / E::from_usize(c);
        (
            labels
                .iter()
                .map(|&l| if keep(l) { per } else { E::ZERO })
                .collect(),
            w.clone(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let t = tapir_tensor::XentTargets::Labels {
        labels: ls.into(),
        a: a.into(),
        b: b.into(),
        u: u.into(),
    };
    let per_row = logits.softmax_cross_entropy(t)?;
    Ok(match opts.reduction {
        Reduction::None => per_row,
        Reduction::Sum => per_row.sum(),
        Reduction::Mean => {
            // PyTorch divides by the summed weights of the counted rows
            // (0/0 = NaN when every row is ignored, as PyTorch).
            let total = wy.iter().fold(0.0, |s, v| s + v.to_f64());
            per_row.sum().div_scalar(E::from_f64(total))
        }
    })
}

/// Softmax cross-entropy of logits `[N, C]` against probability targets
/// `[N, C]` (`F.cross_entropy` with float targets; Keras
/// `CategoricalCrossentropy(from_logits=True)`), with class weights and
/// label smoothing as [`CrossEntropy`] says; `Mean` divides by N.
/// `ignore_index` does not apply (PyTorch rejects it here too).
///
/// # Errors
/// Shapes that differ, weights not one per class, ε outside [0, 1], or an
/// `ignore_index`.
pub fn cross_entropy_probs<'t, E: Float>(
    logits: &Var<'t, E>,
    probs: &tapir_tensor::Tensor<E>,
    opts: &CrossEntropy,
) -> Result<Var<'t, E>> {
    let op = "cross_entropy_probs";
    tapir_tensor::check::same_shape(op, "logits and targets", logits.shape(), probs.shape())?;
    if logits.ndim() != 2 || opts.ignore_index.is_some() {
        return Err(tapir_tensor::Error::InvalidArgument {
            op,
            msg: format!(
                "expects logits and targets (N, C) and no ignore_index, got {:?}",
                logits.shape()
            ),
        }
        .into());
    }
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    opts.check(op, c)?;
    let w = opts.class_weights::<E>(c);
    let eps = opts.label_smoothing;
    let pv = probs.to_vec();
    let t: Vec<E> = pv
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            let mixed = E::from_f64(1.0 - eps) * p + E::from_f64(eps / c as f64);
            w[k % c] * mixed
        })
        .collect();
    let t = tapir_tensor::XentTargets::Dense(tapir_tensor::Tensor::from_vec(t, [n, c])?);
    Ok(reduce(logits.softmax_cross_entropy(t)?, opts.reduction))
}

/// (x − y)² (`F.mse_loss`, Keras `MeanSquaredError`).
///
/// # Errors
/// Shapes that differ.
pub fn mse<'t, E: Float>(x: &Var<'t, E>, y: &Var<'t, E>, r: Reduction) -> Result<Var<'t, E>> {
    same_shape("mse", x, y)?;
    Ok(reduce(x.sub(y)?.square(), r))
}

/// |x − y| (`F.l1_loss`, Keras `MeanAbsoluteError`).
///
/// # Errors
/// Shapes that differ.
pub fn l1<'t, E: Float>(x: &Var<'t, E>, y: &Var<'t, E>, r: Reduction) -> Result<Var<'t, E>> {
    same_shape("l1", x, y)?;
    Ok(reduce(x.sub(y)?.abs(), r))
}

/// Huber loss with threshold `delta`: ½d² where |d| < δ, else
/// δ(|d| − ½δ) (`F.huber_loss`, Keras `Huber`). Smooth L1 is this
/// divided by δ (`F.smooth_l1_loss` with `beta = δ`).
///
/// # Errors
/// Shapes that differ.
pub fn huber<'t, E: Float>(
    x: &Var<'t, E>,
    y: &Var<'t, E>,
    delta: f64,
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("huber", x, y)?;
    let d = x.sub(y)?;
    let a = d.abs();
    let de = E::from_f64(delta);
    let quad = d.square().mul_scalar(E::from_f64(0.5));
    let lin = a.sub_scalar(E::from_f64(0.5 * delta)).mul_scalar(de);
    let small = a.value().map(|v| if v < de { E::ONE } else { E::ZERO });
    Ok(reduce(quad.where_(&small, &lin)?, r))
}

/// Binary cross-entropy on logits, max(x, 0) − x·y + log(1 + e^−|x|)
/// (stable for any logit; `F.binary_cross_entropy_with_logits`, Keras
/// `BinaryCrossentropy(from_logits=True)`).
///
/// # Errors
/// Shapes that differ.
pub fn bce_with_logits<'t, E: Float>(
    x: &Var<'t, E>,
    y: &Var<'t, E>,
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("bce_with_logits", x, y)?;
    let v = x
        .relu()
        .sub(&x.mul(y)?)?
        .add(&x.abs().neg().exp().log1p())?;
    Ok(reduce(v, r))
}
