//! Normalisation layers.

use tapir_autograd::{Parameter, Result, Var};
use tapir_tensor::{Float, Tensor};

use super::{shape_error, Forward};
use crate::Module;

/// Layer normalisation over the trailing `normalized_shape` axes
/// (`torch.nn.LayerNorm`, eps 1e-5, biased variance; Keras's
/// `LayerNormalization` defaults to eps 1e-3): (x − mean)/√(var + eps)·γ
/// + β, γ = 1 and β = 0 at the start.
///
/// ```
/// use tapir_nn::{Forward, LayerNorm};
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let ln: LayerNorm = LayerNorm::new(&[4]);
/// let x = Var::untracked(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 4])?);
/// let y = ln.forward(&x)?.into_value();
/// assert!(y.mean().item()?.abs() < 1e-6);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct LayerNorm<E: Float = f32> {
    /// γ, of shape `normalized_shape` (none without an affine part).
    pub weight: Option<Parameter<E>>,
    /// β, of shape `normalized_shape`.
    pub bias: Option<Parameter<E>>,
    #[module(skip)]
    shape: Vec<usize>,
    #[module(skip)]
    eps: f64,
}

impl<E: Float> LayerNorm<E> {
    /// Normalises over the trailing axes `shape`, with γ and β.
    pub fn new(shape: &[usize]) -> Self {
        LayerNorm {
            weight: Some(Parameter::new("weight", Tensor::ones(shape))),
            bias: Some(Parameter::new("bias", Tensor::zeros(shape))),
            shape: shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// With another eps.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Without γ and β (`elementwise_affine=False`).
    pub fn no_affine(mut self) -> Self {
        self.weight = None;
        self.bias = None;
        self
    }
}

/// The error of a norm layer given an input whose trailing axes are not
/// its normalised shape.
fn check_tail(layer: &'static str, shape: &[usize], x: &[usize]) -> Result<usize> {
    let k = shape.len();
    if x.len() < k || x[x.len() - k..] != shape[..] {
        return Err(shape_error(
            layer,
            format!(
                "{layer}({shape:?}) takes [.., {}], got {x:?}",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ));
    }
    Ok(k)
}

impl<E: Float> Forward<E> for LayerNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let k = check_tail("LayerNorm", &self.shape, x.shape())?;
        // One recorded primitive with an analytic backward.
        let w = self.weight.as_ref().map(|w| x.param(w));
        let b = self.bias.as_ref().map(|b| x.param(b));
        x.layer_norm(k, w.as_ref(), b.as_ref(), self.eps)
    }
}

/// RMS normalisation over the trailing `normalized_shape` axes
/// (`torch.nn.RMSNorm`; Keras has `LayerNormalization(rms_scaling=True)`):
/// x/√(mean(x²) + eps)·γ, γ = 1 at the start, no bias. The default eps is
/// PyTorch's `eps=None`: the dtype's machine epsilon (1.19e-7 in f32,
/// 2.2e-16 in f64).
///
/// ```
/// use tapir_nn::{Forward, RmsNorm};
/// use tapir_autograd::Var;
/// use tapir_tensor::Tensor;
/// let n: RmsNorm = RmsNorm::new(&[2]);
/// let x = Var::untracked(Tensor::from_vec(vec![3.0, 4.0], [1, 2])?);
/// let y = n.forward(&x)?.into_value().to_vec();
/// let rms = (12.5f32).sqrt();
/// assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 4.0 / rms).abs() < 1e-6);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct RmsNorm<E: Float = f32> {
    /// γ, of shape `normalized_shape` (none without an affine part).
    pub weight: Option<Parameter<E>>,
    #[module(skip)]
    shape: Vec<usize>,
    #[module(skip)]
    eps: Option<f64>,
}

impl<E: Float> RmsNorm<E> {
    /// Normalises over the trailing axes `shape`, with γ.
    pub fn new(shape: &[usize]) -> Self {
        RmsNorm {
            weight: Some(Parameter::new("weight", Tensor::ones(shape))),
            shape: shape.to_vec(),
            eps: None,
        }
    }

    /// With a given eps instead of the machine epsilon.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = Some(eps);
        self
    }

    /// Without γ (`elementwise_affine=False`).
    pub fn no_affine(mut self) -> Self {
        self.weight = None;
        self
    }
}

impl<E: Float> Forward<E> for RmsNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let k = check_tail("RmsNorm", &self.shape, x.shape())?;
        let w = self.weight.as_ref().map(|w| x.param(w));
        let eps = self.eps.unwrap_or(E::EPSILON.to_f64());
        x.rms_norm(k, w.as_ref(), eps)
    }
}

/// Group normalisation (`torch.nn.GroupNorm(groups, channels)`, Keras
/// `GroupNormalization`): the channels of each sample `[N, C, ..]` split
/// into `groups` groups, each normalised over its channels and positions
/// (biased variance, eps 1e-5), then γ and β per channel (1 and 0 at the
/// start). One recorded primitive ([`Var::group_norm`]) with an analytic
/// backward.
///
/// ```
/// use tapir_nn::{Forward, GroupNorm};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let gn: GroupNorm = GroupNorm::new(2, 4);
/// let x = Var::untracked(Tensor::randn([3, 4, 5, 5], &mut Rng::seed(0)));
/// assert_eq!(gn.forward(&x)?.shape(), &[3, 4, 5, 5]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct GroupNorm<E: Float = f32> {
    /// γ, `[C]` (none without an affine part).
    pub weight: Option<Parameter<E>>,
    /// β, `[C]`.
    pub bias: Option<Parameter<E>>,
    #[module(skip)]
    groups: usize,
    #[module(skip)]
    eps: f64,
}

impl<E: Float> GroupNorm<E> {
    /// `groups` groups over `channels` channels, with γ and β.
    ///
    /// # Panics
    /// If `groups` is zero or does not divide `channels` (PyTorch raises
    /// the same).
    pub fn new(groups: usize, channels: usize) -> Self {
        assert!(
            groups > 0 && channels % groups == 0,
            "GroupNorm: {groups} groups do not divide {channels} channels"
        );
        GroupNorm {
            weight: Some(Parameter::new("weight", Tensor::ones([channels]))),
            bias: Some(Parameter::new("bias", Tensor::zeros([channels]))),
            groups,
            eps: 1e-5,
        }
    }

    /// With another eps.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

/// `[C]` reshaped to `[C, 1, ..]` for an input of rank `nd` laid out
/// `[N, C, ..]`.
fn per_channel<'t, E: Float>(p: &Var<'t, E>, c: usize, nd: usize) -> Result<Var<'t, E>> {
    let mut shape = vec![1usize; nd - 1];
    shape[0] = c;
    p.reshape_usize(&shape)
}

impl<E: Float> Forward<E> for GroupNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let c = self.weight.as_ref().map(|w| w.shape()[0]);
        let s = x.shape().to_vec();
        if s.len() < 2 || c.is_some_and(|c| s[1] != c) || s[1] % self.groups != 0 {
            return Err(shape_error(
                "GroupNorm",
                format!(
                    "GroupNorm({} groups, {} channels) takes [N, C, ..], got {s:?}",
                    self.groups,
                    c.map_or("any".to_string(), |c| c.to_string())
                ),
            ));
        }
        // One recorded primitive, affine part included.
        let w = self.weight.as_ref().map(|w| x.param(w));
        let b = self.bias.as_ref().map(|b| x.param(b));
        x.group_norm(self.groups, w.as_ref(), b.as_ref(), self.eps)
    }
}

/// Batch normalisation over `[N, C]`, `[N, C, L]` (`torch.nn.BatchNorm1d`)
/// or `[N, C, H, W]` (`BatchNorm2d`); Keras `BatchNormalization` (momentum
/// 0.99 there, on the other side of the average). In training, each
/// channel is normalised with the batch mean and biased variance, and the
/// running statistics move by `momentum` (0.1):
/// running = (1 − momentum)·running + momentum·batch, the variance's with
/// the unbiased batch variance. In evaluation the running statistics are
/// used. eps 1e-5; γ = 1, β = 0, running mean 0 and variance 1 at the
/// start. The state dict holds `weight`, `bias`, `running_mean` and
/// `running_var`; PyTorch's int64 `num_batches_tracked` is not kept (it
/// only matters for `momentum=None`). Training runs as one recorded
/// primitive ([`Var::batch_norm`]) with an analytic backward; evaluation is
/// the affine map of the running statistics.
///
/// ```
/// use tapir_nn::{BatchNorm, Forward, Module};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut bn: BatchNorm = BatchNorm::new(3);
/// let x = Var::untracked(Tensor::randn([8, 3, 4, 4], &mut Rng::seed(0)).add_scalar(5.0));
/// let y = bn.forward(&x)?.into_value();
/// assert!(y.mean().item()?.abs() < 1e-5);
/// // The running mean moved a tenth of the way to the batch mean (about 5).
/// let rm = bn.running_mean.value().to_vec();
/// assert!(rm.iter().all(|&m| (m - 0.5).abs() < 0.05));
/// bn.eval();
/// assert_eq!(bn.forward(&x)?.shape(), &[8, 3, 4, 4]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct BatchNorm<E: Float = f32> {
    /// γ, `[C]`.
    pub weight: Option<Parameter<E>>,
    /// β, `[C]`.
    pub bias: Option<Parameter<E>>,
    /// Running mean, `[C]`.
    pub running_mean: crate::Buffer<E>,
    /// Running (unbiased) variance, `[C]`.
    pub running_var: crate::Buffer<E>,
    #[module(skip)]
    momentum: f64,
    #[module(skip)]
    eps: f64,
    training: crate::TrainingFlag,
}

impl<E: Float> BatchNorm<E> {
    /// Over `channels` channels, with γ and β, training mode.
    pub fn new(channels: usize) -> Self {
        BatchNorm {
            weight: Some(Parameter::new("weight", Tensor::ones([channels]))),
            bias: Some(Parameter::new("bias", Tensor::zeros([channels]))),
            running_mean: crate::Buffer::new(Tensor::zeros([channels])),
            running_var: crate::Buffer::new(Tensor::ones([channels])),
            momentum: 0.1,
            eps: 1e-5,
            training: crate::TrainingFlag::default(),
        }
    }

    /// With another momentum (PyTorch's sense: the weight of the batch).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// With another eps.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Training mode ([`Module::train`] without naming the float type).
    pub fn train(&mut self) {
        self.training.set(true);
    }

    /// Evaluation mode: the running statistics.
    pub fn eval(&mut self) {
        self.training.set(false);
    }
}

impl<E: Float> Forward<E> for BatchNorm<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let c = self.running_mean.value().len();
        let s = x.shape().to_vec();
        if !(2..=4).contains(&s.len()) || s[1] != c {
            return Err(shape_error(
                "BatchNorm",
                format!("BatchNorm({c}) takes [N, {c}], [N, {c}, L] or [N, {c}, H, W], got {s:?}"),
            ));
        }
        let nd = s.len();
        let count: usize = s
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 1)
            .map(|(_, &d)| d)
            .product();
        let eps = E::from_f64(self.eps);
        if self.training.get() {
            if count < 2 {
                return Err(shape_error(
                    "BatchNorm",
                    format!("training needs more than one value per channel, got input {s:?}"),
                ));
            }
            // One primitive with its analytic backward.
            let w = self.weight.as_ref().map(|w| x.param(w));
            let b = self.bias.as_ref().map(|b| x.param(b));
            let (y, st) = x.batch_norm_stats(w.as_ref(), b.as_ref(), self.eps)?;
            // Running statistics, outside the tape (PyTorch updates them
            // under no_grad): var = 1/rstd² − eps, made unbiased.
            let m = self.momentum;
            let unbias = count as f64 / (count - 1) as f64;
            let var: Vec<E> = st
                .rstd
                .to_vec()
                .iter()
                .map(|&r| {
                    let r = r.to_f64();
                    E::from_f64((1.0 / (r * r) - self.eps) * unbias)
                })
                .collect();
            let blend = |old: Tensor<E>, new: &Tensor<E>| -> Result<Tensor<E>> {
                Ok(old
                    .mul_scalar(E::from_f64(1.0 - m))
                    .add(&new.mul_scalar(E::from_f64(m)))?)
            };
            self.running_mean
                .set(blend(self.running_mean.value(), &st.mean)?);
            self.running_var.set(blend(
                self.running_var.value(),
                &Tensor::from_vec(var, [c])?,
            )?);
            return Ok(y);
        }
        let shape: Vec<usize> = (0..nd).map(|i| if i == 1 { c } else { 1 }).collect();
        let rm = x.lift(self.running_mean.value().reshape_usize(&shape)?);
        let rv = x.lift(self.running_var.value().reshape_usize(&shape)?);
        let y = x.sub(&rm)?.mul(&rv.add_scalar(eps).rsqrt())?;
        let mut y = y;
        if let Some(w) = &self.weight {
            y = y.mul(&per_channel(&x.param(w), c, nd)?)?;
        }
        if let Some(b) = &self.bias {
            y = y.add(&per_channel(&x.param(b), c, nd)?)?;
        }
        Ok(y)
    }
}
