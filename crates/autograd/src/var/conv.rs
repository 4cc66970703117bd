//! Convolutions and pooling.

use tapir_tensor::{Conv1dParams, Conv2dParams, Float, Pool2dParams};

use crate::error::Result;
use crate::op::Op;
use crate::tape::Tape;
use crate::var::Var;

impl<'t, E: Float> Var<'t, E> {
    /// 2-D convolution (see `Tensor::conv2d`); the bias is added as a
    /// broadcast (O, 1, 1) term.
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
        let v = self.value.conv2d(&weight.value, None, p)?;
        let y = Tape::record("conv2d", Op::Conv2d(Box::new(p)), &[self, weight], v)?;
        match bias {
            None => Ok(y),
            Some(b) => Var::add(&y, &b.reshape_usize(&[b.value.len(), 1, 1])?),
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
    /// 1-D convolution, as a 2-D convolution of height 1.
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
        let y = self
            .unsqueeze(2)?
            .conv2d(&weight.unsqueeze(2)?, None, p2)?
            .squeeze(2)?;
        match bias {
            None => Ok(y),
            Some(b) => Var::add(&y, &b.reshape_usize(&[b.value.len(), 1])?),
        }
    }
    /// Transposed 2-D convolution (see `Tensor::conv_transpose2d`).
    ///
    /// # Errors
    /// When the shapes do not fit.
    pub fn conv_transpose2d(&self, weight: &Self, p: Conv2dParams) -> Result<Self> {
        let v = self.value.conv_transpose2d(&weight.value, p)?;
        let shape = v.shape().to_vec();
        self.conv2d_input_grad(weight, &shape, p)
    }
    /// 2-D max pooling; the gradient goes to the chosen element of each
    /// window (the first on ties).
    ///
    /// # Errors
    /// When the input is not 4-D or the window does not fit.
    pub fn max_pool2d(&self, p: Pool2dParams) -> Result<Self> {
        let (y, idx) = self.value.max_pool2d_with_indices(p)?;
        let s = self.shape().to_vec();
        let (n, c, oh, ow) = (y.shape()[0], y.shape()[1], y.shape()[2], y.shape()[3]);
        // Max pooling is a gather of the chosen elements from each plane.
        let idx = idx
            .into_shape_with_order(ndarray_dyn(&[n * c, oh * ow]))
            .map_err(|e| tapir_tensor::Error::InvalidArgument {
                op: "max_pool2d",
                msg: e.to_string(),
            })?;
        self.reshape_usize(&[s[0] * s[1], s[2] * s[3]])?
            .gather(1, &idx)?
            .reshape_usize(y.shape())
    }
    /// 2-D average pooling (padding counts in the average).
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

fn ndarray_dyn(s: &[usize]) -> tapir_tensor::ndarray::IxDyn {
    tapir_tensor::ndarray::IxDyn(s)
}
