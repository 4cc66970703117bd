//! Convolution, pooling and flattening over NCHW tensors.

use tapir_autograd::{Parameter, Result, Var};
use tapir_tensor::{Conv1dParams, Conv2dParams, Float, Pool2dParams, Rng};

use super::activation::stateless;
use super::{shape_error, Forward};
use crate::init;
use crate::Module;

/// How a convolution pads its input (`padding=` in PyTorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Zeros on each side, (height, width).
    Explicit([usize; 2]),
    /// `padding="same"`: the output has the input's height and width
    /// (stride 1 only; an odd total is split with the extra zero at the
    /// end, as in PyTorch and TensorFlow).
    Same,
}

/// 2-D convolution over `[N, C_in, H, W]` (`torch.nn.Conv2d`; Keras's
/// `Conv2D` is NHWC). Weight `[C_out, C_in/groups, kh, kw]`, bias
/// `[C_out]`, PyTorch's layout and default initialisation (U(−1/√fan_in,
/// 1/√fan_in), fan_in = C_in/groups·kh·kw). Build one with
/// [`Conv2d::new`] or [`Conv2d::builder`] for stride, padding, dilation,
/// groups and bias.
///
/// ```
/// use tapir_nn::{Conv2d, Forward, Padding};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let conv: Conv2d = Conv2d::builder(1, 8, [5, 5]).padding(Padding::Same).build(&mut rng)?;
/// let y = conv.forward(&Var::untracked(Tensor::ones([2, 1, 28, 28])))?;
/// assert_eq!(y.shape(), &[2, 8, 28, 28]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Conv2d<E: Float = f32> {
    /// `[C_out, C_in/groups, kh, kw]`.
    pub weight: Parameter<E>,
    /// `[C_out]`, or none.
    pub bias: Option<Parameter<E>>,
    #[module(skip)]
    params: Conv2dParams,
    #[module(skip)]
    same: bool,
}

/// Options of a [`Conv2d`] (PyTorch's keyword arguments, same defaults).
#[derive(Debug, Clone)]
pub struct Conv2dBuilder {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: Padding,
    dilation: [usize; 2],
    groups: usize,
    bias: bool,
}

impl Conv2dBuilder {
    /// Step between windows (default 1).
    pub fn stride(mut self, s: [usize; 2]) -> Self {
        self.stride = s;
        self
    }
    /// Padding (default none).
    pub fn padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// Spacing between taps (default 1).
    pub fn dilation(mut self, d: [usize; 2]) -> Self {
        self.dilation = d;
        self
    }
    /// Channel groups (default 1).
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Whether to add a bias (default true).
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// The layer, its weights drawn from `rng`.
    ///
    /// # Errors
    /// Zero channels, kernel, stride or dilation, channels not divisible
    /// by groups, or `Same` padding with a stride above 1.
    pub fn build<E: Float>(self, rng: &mut Rng) -> Result<Conv2d<E>> {
        let bad = |msg: String| {
            tapir_autograd::Error::Tensor(tapir_tensor::Error::InvalidArgument {
                op: "Conv2d",
                msg,
            })
        };
        let dims = [self.kernel, self.stride, self.dilation].concat();
        if self.in_channels == 0 || self.out_channels == 0 || dims.contains(&0) || self.groups == 0
        {
            return Err(bad(format!(
                "channels ({} -> {}), kernel {:?}, stride {:?}, dilation {:?} and groups {} must be positive",
                self.in_channels, self.out_channels, self.kernel, self.stride, self.dilation, self.groups
            )));
        }
        if self.in_channels % self.groups != 0 || self.out_channels % self.groups != 0 {
            return Err(bad(format!(
                "channels {} -> {} do not divide by groups {}",
                self.in_channels, self.out_channels, self.groups
            )));
        }
        let (padding, same) = match self.padding {
            Padding::Explicit(p) => (p, false),
            Padding::Same => {
                if self.stride != [1, 1] {
                    return Err(bad(format!(
                        "padding Same needs stride 1, got {:?}",
                        self.stride
                    )));
                }
                ([0, 0], true)
            }
        };
        let shape = [
            self.out_channels,
            self.in_channels / self.groups,
            self.kernel[0],
            self.kernel[1],
        ];
        Ok(Conv2d {
            weight: Parameter::new("weight", init::torch_default(&shape, &shape, rng)),
            bias: self.bias.then(|| {
                Parameter::new(
                    "bias",
                    init::torch_default(&[self.out_channels], &shape, rng),
                )
            }),
            params: Conv2dParams {
                stride: self.stride,
                padding,
                dilation: self.dilation,
                groups: self.groups,
            },
            same,
        })
    }
}

impl<E: Float> Conv2d<E> {
    /// A `kernel` convolution from `in_channels` to `out_channels` with
    /// stride 1, no padding, and a bias.
    ///
    /// # Panics
    /// If a size is zero (use [`Conv2d::builder`] for a `Result`).
    pub fn new(in_channels: usize, out_channels: usize, kernel: [usize; 2], rng: &mut Rng) -> Self {
        Conv2d::builder(in_channels, out_channels, kernel)
            .build(rng)
            .expect("Conv2d::new: sizes must be positive")
    }
}

impl Conv2d {
    /// Options beyond [`Conv2d::new`]'s; the float type is chosen by
    /// [`Conv2dBuilder::build`].
    pub fn builder(in_channels: usize, out_channels: usize, kernel: [usize; 2]) -> Conv2dBuilder {
        Conv2dBuilder {
            in_channels,
            out_channels,
            kernel,
            stride: [1, 1],
            padding: Padding::Explicit([0, 0]),
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
}

impl<E: Float> Forward<E> for Conv2d<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let ws = self.weight.shape();
        let cin = ws[1] * self.params.groups;
        if x.ndim() != 4 || x.shape()[1] != cin {
            return Err(shape_error(
                "Conv2d",
                format!(
                    "Conv2d({cin} -> {}, kernel {:?}) takes [N, {cin}, H, W], got {:?}",
                    ws[0],
                    &ws[2..],
                    x.shape()
                ),
            ));
        }
        let w = x.param(&self.weight);
        let b = self.bias.as_ref().map(|b| x.param(b));
        if !self.same {
            return x.conv2d(&w, b.as_ref(), self.params);
        }
        // "same": total padding d·(k−1) per axis, the odd zero at the end.
        let mut pads = [(0, 0), (0, 0), (0, 0), (0, 0)];
        let mut sym = [0; 2];
        for a in 0..2 {
            let total = self.params.dilation[a] * (ws[2 + a] - 1);
            sym[a] = total / 2;
            pads[2 + a] = (0, total % 2);
        }
        let p = Conv2dParams {
            padding: sym,
            ..self.params
        };
        if pads[2].1 == 0 && pads[3].1 == 0 {
            x.conv2d(&w, b.as_ref(), p)
        } else {
            x.pad(&pads, E::ZERO)?.conv2d(&w, b.as_ref(), p)
        }
    }
}

/// Max pooling over `[N, C, H, W]` (`torch.nn.MaxPool2d`; stride defaults
/// to the kernel).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d(pub Pool2dParams);
stateless!(MaxPool2d);

impl MaxPool2d {
    /// A `kernel` window with stride = kernel, no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        MaxPool2d(Pool2dParams::new(kernel))
    }
}

impl<E: Float> Forward<E> for MaxPool2d {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        x.max_pool2d(self.0)
    }
}

/// Average pooling over `[N, C, H, W]` (`torch.nn.AvgPool2d`, padding
/// counted in the divisor as PyTorch's default `count_include_pad=True`).
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d(pub Pool2dParams);
stateless!(AvgPool2d);

impl AvgPool2d {
    /// A `kernel` window with stride = kernel, no padding.
    pub fn new(kernel: [usize; 2]) -> Self {
        AvgPool2d(Pool2dParams::new(kernel))
    }
}

impl<E: Float> Forward<E> for AvgPool2d {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        x.avg_pool2d(self.0)
    }
}

/// Flattens every axis after the first (`torch.nn.Flatten()` with its
/// defaults, Keras `Flatten`): `[N, ...]` → `[N, Π...]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten;
stateless!(Flatten);

impl<E: Float> Forward<E> for Flatten {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        if x.ndim() < 2 {
            return Ok(x.clone());
        }
        x.flatten(1, -1)
    }
}

/// 1-D convolution over `[N, C, L]` (`torch.nn.Conv1d`, Keras `Conv1D`
/// with NWC inputs): weight `[C_out, C_in/groups, k]`, bias `[C_out]`,
/// PyTorch's U(±1/√fan_in) initialisation; stride, padding, dilation and
/// groups as [`Conv1dParams`].
///
/// ```
/// use tapir_nn::{Conv1d, Forward};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Conv1dParams, Rng, Tensor};
/// let p = Conv1dParams { padding: 1, ..Default::default() };
/// let conv: Conv1d = Conv1d::new(2, 4, 3, p, &mut Rng::seed(0))?;
/// let y = conv.forward(&Var::untracked(Tensor::zeros([5, 2, 9])))?;
/// assert_eq!(y.shape(), &[5, 4, 9]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Conv1d<E: Float = f32> {
    /// `[C_out, C_in/groups, k]`.
    pub weight: Parameter<E>,
    /// `[C_out]`, or none.
    pub bias: Option<Parameter<E>>,
    #[module(skip)]
    params: Conv1dParams,
}

impl<E: Float> Conv1d<E> {
    /// From `in_channels` to `out_channels` with a kernel of `kernel` taps.
    ///
    /// # Errors
    /// Zero sizes, or groups that do not divide both channel counts.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        params: Conv1dParams,
        rng: &mut Rng,
    ) -> Result<Self> {
        let g = params.groups;
        if in_channels == 0 || out_channels == 0 || kernel == 0 || g == 0 {
            return Err(shape_error(
                "Conv1d",
                "sizes and groups must be positive".into(),
            ));
        }
        if in_channels % g != 0 || out_channels % g != 0 {
            return Err(shape_error(
                "Conv1d",
                format!("groups {g} must divide in_channels {in_channels} and out_channels {out_channels}"),
            ));
        }
        let shape = [out_channels, in_channels / g, kernel];
        Ok(Conv1d {
            weight: Parameter::new("weight", init::torch_default(&shape, &shape, rng)),
            bias: Some(Parameter::new(
                "bias",
                init::torch_default(&[out_channels], &shape, rng),
            )),
            params,
        })
    }

    /// The same layer without a bias.
    pub fn no_bias(mut self) -> Self {
        self.bias = None;
        self
    }
}

impl<E: Float> Forward<E> for Conv1d<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let w = x.param(&self.weight);
        let b = self.bias.as_ref().map(|b| x.param(b));
        x.conv1d(&w, b.as_ref(), self.params)
    }
}

/// Transposed 2-D convolution over `[N, C_in, H, W]`
/// (`torch.nn.ConvTranspose2d` with output_padding 0; Keras
/// `Conv2DTranspose`): weight `[C_in, C_out/groups, kh, kw]` (PyTorch's
/// layout), bias `[C_out]`; output size (H − 1)·stride − 2·padding +
/// dilation·(kh − 1) + 1. Initialisation as PyTorch's (fan_in from the
/// weight's second axis on).
///
/// ```
/// use tapir_nn::{ConvTranspose2d, Forward};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Conv2dParams, Rng, Tensor};
/// let p = Conv2dParams { stride: [2, 2], ..Default::default() };
/// let up: ConvTranspose2d = ConvTranspose2d::new(4, 2, [2, 2], p, &mut Rng::seed(0))?;
/// let y = up.forward(&Var::untracked(Tensor::zeros([1, 4, 5, 5])))?;
/// assert_eq!(y.shape(), &[1, 2, 10, 10]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct ConvTranspose2d<E: Float = f32> {
    /// `[C_in, C_out/groups, kh, kw]`.
    pub weight: Parameter<E>,
    /// `[C_out]`, or none.
    pub bias: Option<Parameter<E>>,
    #[module(skip)]
    params: Conv2dParams,
}

impl<E: Float> ConvTranspose2d<E> {
    /// From `in_channels` to `out_channels` with a `kernel` window.
    ///
    /// # Errors
    /// Zero sizes, or groups that do not divide both channel counts.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        params: Conv2dParams,
        rng: &mut Rng,
    ) -> Result<Self> {
        let g = params.groups;
        if in_channels == 0 || out_channels == 0 || kernel.contains(&0) || g == 0 {
            return Err(shape_error(
                "ConvTranspose2d",
                "sizes and groups must be positive".into(),
            ));
        }
        if in_channels % g != 0 || out_channels % g != 0 {
            return Err(shape_error(
                "ConvTranspose2d",
                format!("groups {g} must divide in_channels {in_channels} and out_channels {out_channels}"),
            ));
        }
        let shape = [in_channels, out_channels / g, kernel[0], kernel[1]];
        Ok(ConvTranspose2d {
            weight: Parameter::new("weight", init::torch_default(&shape, &shape, rng)),
            bias: Some(Parameter::new(
                "bias",
                init::torch_default(&[out_channels], &shape, rng),
            )),
            params,
        })
    }
}

impl<E: Float> Forward<E> for ConvTranspose2d<E> {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let y = x.conv_transpose2d(&x.param(&self.weight), self.params)?;
        match &self.bias {
            None => Ok(y),
            Some(b) => {
                let c = b.shape()[0];
                y.add(&x.param(b).reshape_usize(&[c, 1, 1])?)
            }
        }
    }
}

/// Average pooling to a fixed output size (`torch.nn.AdaptiveAvgPool2d`,
/// Keras `GlobalAveragePooling2D` for 1×1): output bin i along an axis of
/// size n averages rows floor(i·n/out) up to ceil((i+1)·n/out), PyTorch's
/// bins (neighbouring bins overlap when out does not divide n).
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool2d(pub [usize; 2]);
stateless!(AdaptiveAvgPool2d);

impl<E: Float> Forward<E> for AdaptiveAvgPool2d {
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let [oh, ow] = self.0;
        if x.ndim() != 4 || oh == 0 || ow == 0 {
            return Err(shape_error(
                "AdaptiveAvgPool2d",
                format!(
                    "AdaptiveAvgPool2d({oh}, {ow}) takes [N, C, H, W], got {:?}",
                    x.shape()
                ),
            ));
        }
        let (h, w) = (x.shape()[2], x.shape()[3]);
        if (oh, ow) == (1, 1) {
            return x.mean_axes(&[2, 3], true);
        }
        let bin = |i: usize, out: usize, n: usize| (i * n / out, ((i + 1) * n).div_ceil(out));
        let mut rows = Vec::with_capacity(oh);
        for i in 0..oh {
            let (h0, h1) = bin(i, oh, h);
            let band = x.narrow(2, h0, h1 - h0)?;
            let mut cells = Vec::with_capacity(ow);
            for j in 0..ow {
                let (w0, w1) = bin(j, ow, w);
                cells.push(band.narrow(3, w0, w1 - w0)?.mean_axes(&[2, 3], false)?);
            }
            rows.push(Var::stack(&cells.iter().collect::<Vec<_>>(), 2)?);
        }
        Var::stack(&rows.iter().collect::<Vec<_>>(), 2)
    }
}
