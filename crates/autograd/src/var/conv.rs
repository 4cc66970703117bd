//! Convolutions and pooling.

use std::sync::Arc;

use tapir_tensor::{Conv1dParams, Conv2dParams, Float, Pool2dParams};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// 2-D convolution (a cross-correlation, as PyTorch) of `self`
    /// (N, C, H, W) with `weight` (O, C/groups, KH, KW), plus an optional
    /// `bias` (O) added as a broadcast (O, 1, 1) term:
    /// `y[n, o] = b[o] + Σ_c x[n, c] ⋆ w[o, c]` (`torch.nn.functional.conv2d`;
    /// `tf.nn.conv2d` defaults to NHWC inputs and (KH, KW, C, O) filters).
    /// Gradient: conv2d_input_grad (a transposed convolution) for x,
    /// conv2d_weight_grad for w, a sum over N, H, W for the bias; both
    /// are recorded ops, so the gradient can be differentiated again.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::{Conv2dParams, Tensor};
    /// let tape = Tape::new();
    /// let data: Vec<f64> = (1..=9).map(f64::from).collect();
    /// let x = tape.var(Tensor::from_vec(data, [1, 1, 3, 3])?);
    /// let w = tape.var(Tensor::ones([1, 1, 2, 2]));
    /// let b = tape.var(Tensor::from_vec(vec![10.0], [1])?);
    /// let y = x.conv2d(&w, Some(&b), Conv2dParams::default())?;
    /// assert_eq!(y.shape(), &[1, 1, 2, 2]);
    /// assert_eq!(y.value().to_vec(), [22.0, 26.0, 34.0, 38.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x, &w, &b], &Default::default())?;
    /// // How many windows cover each input; each tap's sum over the windows.
    /// let gx = [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0];
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), gx);
    /// assert_eq!(g[1].as_ref().unwrap().to_vec(), [12.0, 16.0, 24.0, 28.0]);
    /// assert_eq!(g[2].as_ref().unwrap().to_vec(), [4.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv2d(&self, weight: &Self, bias: Option<&Self>, p: Conv2dParams) -> Result<Self> {
        // The tensor op's check, bias included (the bias is added below as
        // a broadcast, which would accept other lengths).
        tapir_tensor::check::conv2d(
            "conv2d",
            self.shape(),
            weight.shape(),
            bias.map(|b| b.shape()),
            p,
        )?;
        // The bias is added inside the convolution (each output row starts
        // as its bias before the GEMM adds to it), not as a second pass
        // over the output; the op then has it as a third input.
        let v = self
            .value
            .conv2d(&weight.value, bias.map(|b| &b.value), p)?;
        match bias {
            None => Tape::record("conv2d", Op::Conv2d(Box::new(p)), &[self, weight], v),
            Some(b) => Tape::record("conv2d", Op::Conv2d(Box::new(p)), &[self, weight, b], v),
        }
    }
    /// Input gradient of a convolution, as a differentiable op (used by the
    /// backward rule of `conv2d` so that it can be differentiated again).
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub(crate) fn conv2d_input_grad(
        &self,
        weight: &Self,
        input_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        let v = self
            .value
            .conv2d_input_grad(&weight.value, input_shape, p)?;
        Tape::record(
            "conv2d_input_grad",
            Op::Conv2dInputGrad(Box::new(p)),
            &[self, weight],
            v,
        )
    }
    /// Weight gradient of a convolution, as a differentiable op.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub(crate) fn conv2d_weight_grad(
        &self,
        input: &Self,
        weight_shape: &[usize],
        p: Conv2dParams,
    ) -> Result<Self> {
        let v = self
            .value
            .conv2d_weight_grad(&input.value, weight_shape, p)?;
        Tape::record(
            "conv2d_weight_grad",
            Op::Conv2dWeightGrad(Box::new(p)),
            &[self, input],
            v,
        )
    }
    /// 1-D convolution (a cross-correlation) of `self` (N, C, L) with
    /// `weight` (O, C/groups, K), plus an optional `bias` (O)
    /// (`torch.nn.functional.conv1d`; `tf.nn.conv1d` defaults to NWC
    /// inputs and (K, C, O) filters). Gradient: as [`Var::conv2d`]'s.
    /// Composite: a conv2d of height 1.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::{Conv1dParams, Tensor};
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 4])?);
    /// let w = tape.var(Tensor::from_vec(vec![1.0, -1.0], [1, 1, 2])?);
    /// let y = x.conv1d(&w, None, Conv1dParams::default())?;
    /// assert_eq!(y.value().to_vec(), [-1.0, -1.0, -1.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [1.0, 0.0, 0.0, -1.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv1d(&self, weight: &Self, bias: Option<&Self>, p: Conv1dParams) -> Result<Self> {
        // The tensor op's check, so errors name conv1d and a bias of the
        // wrong shape is refused.
        tapir_tensor::check::conv1d(
            "conv1d",
            self.shape(),
            weight.shape(),
            bias.map(|b| b.shape()),
            p,
        )?;
        let p2 = Conv2dParams {
            stride: [1, p.stride],
            padding: [0, p.padding],
            dilation: [1, p.dilation],
            groups: p.groups,
        };
        self.unsqueeze(2)?
            .conv2d(&weight.unsqueeze(2)?, bias, p2)?
            .squeeze(2)
    }
    /// Transposed 2-D convolution of `self` (N, O, H, W) with `weight`
    /// (O, C/groups, KH, KW), giving (N, C, H', W') with
    /// H' = (H − 1)·stride − 2·padding + dilation·(KH − 1) + 1: the input
    /// gradient of a conv2d (`torch.nn.functional.conv_transpose2d` with
    /// output_padding 0, whose weight has this layout;
    /// `tf.nn.conv2d_transpose` takes the output shape instead). Gradient:
    /// a conv2d of g with `weight` for `self`, and conv2d_weight_grad (with
    /// `self` as the output gradient and g as the input) for `weight`.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv_transpose2d(&self, weight: &Self, p: Conv2dParams) -> Result<Self> {
        let v = self.value.conv_transpose2d(&weight.value, p)?;
        let shape = v.shape().to_vec();
        self.conv2d_input_grad(weight, &shape, p)
    }
    /// The maximum of each `kernel` window of `self` (N, C, H, W), padding
    /// counting as −∞ (`torch.nn.functional.max_pool2d`; `tf.nn.max_pool2d`
    /// defaults to NHWC). Gradient: to the chosen element of each window,
    /// the first on ties (as PyTorch), accumulated where windows overlap.
    /// One primitive: the indices of the chosen elements are saved for the
    /// backward pass.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::{Pool2dParams, Tensor};
    /// let tape = Tape::new();
    /// let data = vec![1.0, 5.0, 2.0, 2.0, 3.0, 0.0, 2.0, 1.0];
    /// let x = tape.var(Tensor::<f64>::from_vec(data, [1, 1, 2, 4])?);
    /// let y = x.max_pool2d(Pool2dParams::new([2, 2]))?;
    /// assert_eq!(y.shape(), &[1, 1, 1, 2]);
    /// assert_eq!(y.value().to_vec(), [5.0, 2.0]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    pub fn max_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        let (y, idx) = self.value.max_pool2d_with_indices(p)?;
        let op = Op::MaxPool2d { idx: Arc::new(idx) };
        Tape::record("max_pool2d", op, &[self], y)
    }
    /// The mean of each `kernel` window of `self` (N, C, H, W); padded zeros
    /// count in the average (`torch.nn.functional.avg_pool2d` with its
    /// default `count_include_pad=True`; `tf.nn.avg_pool2d` defaults to
    /// NHWC). Gradient: each output's g spread evenly, g/(KH·KW), over its
    /// window.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::{Pool2dParams, Tensor};
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2])?);
    /// let y = x.avg_pool2d(Pool2dParams::new([2, 2]))?;
    /// assert_eq!(y.value().to_vec(), [2.5]);
    /// let g = tape.gradient_vars(&y.sum(), &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [0.25; 4]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    pub fn avg_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        let v = self.value.avg_pool2d(p)?;
        Tape::record("avg_pool2d", Op::AvgPool2d(Box::new(p)), &[self], v)
    }
    /// The adjoint of [`Var::avg_pool2d`], as a differentiable op.
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub(crate) fn avg_pool2d_backward(
        &self,
        input_shape: &[usize],
        p: Pool2dParams,
    ) -> Result<Self> {
        let v = self.value.avg_pool2d_backward(input_shape, p)?;
        Tape::record(
            "avg_pool2d_backward",
            Op::AvgPool2dBackward(Box::new(p)),
            &[self],
            v,
        )
    }
}
