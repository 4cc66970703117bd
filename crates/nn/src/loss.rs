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

/// Smooth L1 loss with threshold `beta`: ½d²/β where |d| < β, else
/// |d| − ½β (`F.smooth_l1_loss`, default β = 1): [`huber`] divided by β.
///
/// # Errors
/// Shapes that differ, or β ≤ 0.
pub fn smooth_l1<'t, E: Float>(
    x: &Var<'t, E>,
    y: &Var<'t, E>,
    beta: f64,
    r: Reduction,
) -> Result<Var<'t, E>> {
    if beta.is_nan() || beta <= 0.0 {
        return Err(tapir_tensor::Error::InvalidArgument {
            op: "smooth_l1",
            msg: format!("beta must be > 0, got {beta}"),
        }
        .into());
    }
    Ok(huber(x, y, beta, r)?.div_scalar(E::from_f64(beta)))
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

/// Binary cross-entropy on logits with a weight on the positive term,
/// −[p·y·log σ(x) + (1 − y)·log(1 − σ(x))] = p·y·softplus(−x) + (1 −
/// y)·softplus(x) (`F.binary_cross_entropy_with_logits(pos_weight=p)`; p
/// broadcasts over the last axis, one per class). Finite for logits of
/// ±1e4.
///
/// # Errors
/// Shapes that differ, or `pos_weight` not one per element of the last
/// axis.
pub fn bce_with_logits_pos_weight<'t, E: Float>(
    x: &Var<'t, E>,
    y: &Var<'t, E>,
    pos_weight: &[f64],
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("bce_with_logits", x, y)?;
    let c = x.shape().last().copied().unwrap_or(1);
    if pos_weight.len() != c {
        return Err(tapir_tensor::Error::InvalidArgument {
            op: "bce_with_logits",
            msg: format!(
                "{} pos_weight values for a last axis of {c} (input {:?})",
                pos_weight.len(),
                x.shape()
            ),
        }
        .into());
    }
    let p =
        tapir_tensor::Tensor::from_vec(pos_weight.iter().map(|&v| E::from_f64(v)).collect(), [c])?;
    let pos = y.mul(&x.lift(p))?.mul(&x.neg().softplus())?;
    let neg = y.rsub_scalar(E::ONE).mul(&x.softplus())?;
    Ok(reduce(pos.add(&neg)?, r))
}

/// Negative log-likelihood of log-probabilities `[N, C]` at class indices
/// (`F.nll_loss`): −w[y]·logp[i, y], with class weights and an ignored
/// label as [`CrossEntropy`] (label smoothing does not apply); `Mean`
/// divides by Σ w[y] over the rows counted.
///
/// # Errors
/// Input not `[N, C]`, a label count other than N, a label ≥ C (unless
/// ignored), weights not one per class, or a label smoothing.
pub fn nll<'t, E: Float>(
    logp: &Var<'t, E>,
    labels: &[usize],
    opts: &CrossEntropy,
) -> Result<Var<'t, E>> {
    let op = "nll";
    if logp.ndim() != 2 || labels.len() != logp.shape()[0] || opts.label_smoothing != 0.0 {
        return Err(tapir_tensor::Error::InvalidArgument {
            op,
            msg: format!(
                "expects log-probabilities (N, C), N labels and no label smoothing, got {:?} and {} labels",
                logp.shape(),
                labels.len()
            ),
        }
        .into());
    }
    let c = logp.shape()[1];
    opts.check(op, c)?;
    let w = opts.class_weights::<E>(c);
    let keep = |l: usize| opts.ignore_index != Some(l);
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| keep(l) && l >= c) {
        return Err(tapir_tensor::Error::InvalidArgument {
            op,
            msg: format!("label {l} (sample {i}) is out of range for {c} classes"),
        }
        .into());
    }
    let idx: Vec<usize> = labels
        .iter()
        .map(|&l| if keep(l) { l } else { 0 })
        .collect();
    let wy: Vec<E> = labels
        .iter()
        .map(|&l| if keep(l) { w[l] } else { E::ZERO })
        .collect();
    let n = labels.len();
    let picked = logp
        .gather(1, &tapir_tensor::indices(idx, [n, 1])?)?
        .reshape_usize(&[n])?;
    let total = wy.iter().fold(0.0, |s, v| s + v.to_f64());
    let per_row = picked
        .mul(&logp.lift(tapir_tensor::Tensor::from_vec(wy, [n])?))?
        .neg();
    Ok(match opts.reduction {
        Reduction::None => per_row,
        Reduction::Sum => per_row.sum(),
        Reduction::Mean => per_row.sum().div_scalar(E::from_f64(total)),
    })
}

/// How [`kl_div`] reduces: PyTorch's `reduction=` of `F.kl_div`, where
/// `"batchmean"` (the mathematically right one) divides the sum by the
/// batch size and `"mean"` averages over every element.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KlReduction {
    /// Sum over everything divided by the size of the first axis.
    #[default]
    BatchMean,
    /// The mean over every element (PyTorch's default, which it warns
    /// about).
    Mean,
    /// The sum.
    Sum,
    /// Per element.
    None,
}

/// Kullback–Leibler divergence of `target` (probabilities) from the
/// distribution whose log-probabilities are `input` (`F.kl_div(input,
/// target)`, Keras `KLDivergence` takes probabilities for both):
/// target·(log target − input), 0 where target is 0. `target` is data.
///
/// # Errors
/// Shapes that differ.
pub fn kl_div<'t, E: Float>(
    input: &Var<'t, E>,
    target: &tapir_tensor::Tensor<E>,
    r: KlReduction,
) -> Result<Var<'t, E>> {
    tapir_tensor::check::same_shape("kl_div", "input and target", input.shape(), target.shape())?;
    // target·log target, with 0·log 0 = 0 (PyTorch's xlogy).
    let tlogt = target.map(|t| if t > E::ZERO { t * t.ln() } else { E::ZERO });
    let t = input.lift(target.clone());
    let v = input.lift(tlogt).sub(&t.mul(input)?)?;
    Ok(match r {
        KlReduction::None => v,
        KlReduction::Sum => v.sum(),
        KlReduction::Mean => v.mean(),
        KlReduction::BatchMean => {
            let n = input.shape().first().copied().unwrap_or(1).max(1);
            v.sum().div_scalar(E::from_usize(n))
        }
    })
}

/// Cosine embedding loss of row pairs `x1`, `x2` `[N, D]` with targets
/// `y` ∈ {1, −1} (`F.cosine_embedding_loss`): 1 − cos for y = 1,
/// max(0, cos − margin) for y = −1, cos = x1·x2/√((|x1|² + 1e-12)(|x2|² +
/// 1e-12)) as PyTorch computes it.
///
/// # Errors
/// Shapes that differ or are not 2-D, a target count other than N, or a
/// target other than ±1.
pub fn cosine_embedding<'t, E: Float>(
    x1: &Var<'t, E>,
    x2: &Var<'t, E>,
    y: &[f64],
    margin: f64,
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("cosine_embedding", x1, x2)?;
    if x1.ndim() != 2 || y.len() != x1.shape()[0] || y.iter().any(|&v| v != 1.0 && v != -1.0) {
        return Err(tapir_tensor::Error::InvalidArgument {
            op: "cosine_embedding",
            msg: format!(
                "expects inputs (N, D) and N targets of 1 or -1, got {:?} and {} targets",
                x1.shape(),
                y.len()
            ),
        }
        .into());
    }
    let n = y.len();
    let eps = E::from_f64(1e-12);
    let dot = x1.mul(x2)?.sum_axes(&[1], false)?;
    let n1 = x1.square().sum_axes(&[1], false)?.add_scalar(eps);
    let n2 = x2.square().sum_axes(&[1], false)?.add_scalar(eps);
    let cos = dot.div(&n1.mul(&n2)?.sqrt())?;
    let pos = cos.rsub_scalar(E::ONE);
    let neg = cos.sub_scalar(E::from_f64(margin)).relu();
    let is_pos = tapir_tensor::Tensor::from_vec(
        y.iter()
            .map(|&v| if v > 0.0 { E::ONE } else { E::ZERO })
            .collect(),
        [n],
    )?;
    Ok(reduce(pos.where_(&is_pos, &neg)?, r))
}

/// Margin ranking loss max(0, −y·(x1 − x2) + margin) for y ∈ {1, −1}
/// (`F.margin_ranking_loss`; `y` is data of the inputs' shape).
///
/// # Errors
/// Shapes that differ.
pub fn margin_ranking<'t, E: Float>(
    x1: &Var<'t, E>,
    x2: &Var<'t, E>,
    y: &tapir_tensor::Tensor<E>,
    margin: f64,
    r: Reduction,
) -> Result<Var<'t, E>> {
    same_shape("margin_ranking", x1, x2)?;
    tapir_tensor::check::same_shape("margin_ranking", "inputs and target", x1.shape(), y.shape())?;
    let v = x1
        .sub(x2)?
        .mul(&x1.lift(y.neg()))?
        .add_scalar(E::from_f64(margin))
        .relu();
    Ok(reduce(v, r))
}
