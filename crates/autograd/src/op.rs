//! The closed set of recorded primitives. Composite ops (mean, var, layer
//! norm, losses, ...) are built from these in `var_ops.rs`; every primitive
//! has exactly one backward rule in `rules.rs`.

use std::sync::Arc;

use tapir_tensor::{Conv2dParams, Float, GeluApprox, IndexArray, Pool2dParams, Tensor};

use crate::custom::CustomOp;

/// A recorded primitive and the non-tensor data its backward rule needs.
/// Large payloads are boxed: every node stores an `Op`, so its size is
/// paid on each recorded op.
/// Shapes are not stored: the rule reads them from the input and output
/// values.
#[derive(Clone)]
pub(crate) enum Op<E: Float> {
    /// A watched parameter or a source made by `Tape::var`.
    Leaf,
    /// An untracked input of a recorded op.
    Constant,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    Neg,
    AddScalar,
    MulScalar(E),
    PowScalar(E),
    Exp,
    Log,
    Log1p,
    Expm1,
    Sqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Erf,
    Abs,
    Sign,
    Relu,
    LeakyRelu(E),
    Elu(E),
    Gelu(GeluApprox),
    Silu,
    Softplus,
    Clamp(Option<E>, Option<E>),
    /// `a.where_(cond, b)`; the condition is data, not an input.
    Where(Box<Tensor<E>>),
    Sum {
        axes: Vec<isize>,
    },
    Max {
        axes: Vec<isize>,
    },
    Min {
        axes: Vec<isize>,
    },
    Prod {
        axes: Vec<isize>,
    },
    LogSumExp {
        axes: Vec<isize>,
    },
    Softmax(isize),
    LogSoftmax(isize),
    Matmul,
    Reshape,
    Permute(Vec<isize>),
    BroadcastTo,
    /// Slices, narrow, split, chunk and embedding lookups.
    IndexSelect {
        axis: usize,
        idx: Arc<[usize]>,
    },
    /// Zeros of the output's shape with the input added at `idx` along
    /// `axis`: the adjoint of `IndexSelect`.
    IndexAddZeros {
        axis: usize,
        idx: Arc<[usize]>,
    },
    Concat {
        axis: usize,
    },
    Pad(Vec<(usize, usize)>),
    Gather {
        axis: usize,
        idx: Arc<IndexArray>,
    },
    /// The adjoint of `Gather`.
    ScatterAddZeros {
        axis: usize,
        idx: Arc<IndexArray>,
    },
    /// Inputs (x, w).
    Conv2d(Box<Conv2dParams>),
    /// Inputs (output gradient, w); output shaped like the conv input.
    Conv2dInputGrad(Box<Conv2dParams>),
    /// Inputs (output gradient, x); output shaped like the weight.
    Conv2dWeightGrad(Box<Conv2dParams>),
    AvgPool2d(Box<Pool2dParams>),
    /// Input: output gradient; output shaped like the pooling input.
    AvgPool2dBackward(Box<Pool2dParams>),
    Custom(Arc<dyn CustomOp<E>>),
}

impl<E: Float> Op<E> {
    /// The op's name in errors: the user-facing op it records (a slice or
    /// `narrow` records `index_select`, `conv_transpose2d` records
    /// `conv2d_input_grad`).
    pub(crate) fn name(&self) -> &str {
        match self {
            Op::Leaf => "leaf",
            Op::Constant => "constant",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Pow => "pow",
            Op::Maximum => "maximum",
            Op::Minimum => "minimum",
            Op::Neg => "neg",
            Op::AddScalar => "add_scalar",
            Op::MulScalar(..) => "mul_scalar",
            Op::PowScalar(..) => "pow_scalar",
            Op::Exp => "exp",
            Op::Log => "log",
            Op::Log1p => "log1p",
            Op::Expm1 => "expm1",
            Op::Sqrt => "sqrt",
            Op::Sin => "sin",
            Op::Cos => "cos",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Erf => "erf",
            Op::Abs => "abs",
            Op::Sign => "sign",
            Op::Relu => "relu",
            Op::LeakyRelu(..) => "leaky_relu",
            Op::Elu(..) => "elu",
            Op::Gelu(..) => "gelu",
            Op::Silu => "silu",
            Op::Softplus => "softplus",
            Op::Clamp(..) => "clamp",
            Op::Where(..) => "where",
            Op::Sum { .. } => "sum",
            Op::Max { .. } => "max",
            Op::Min { .. } => "min",
            Op::Prod { .. } => "prod",
            Op::LogSumExp { .. } => "logsumexp",
            Op::Softmax(..) => "softmax",
            Op::LogSoftmax(..) => "log_softmax",
            Op::Matmul => "matmul",
            Op::Reshape => "reshape",
            Op::Permute(..) => "permute",
            Op::BroadcastTo => "broadcast_to",
            Op::IndexSelect { .. } => "index_select",
            Op::IndexAddZeros { .. } => "index_add",
            Op::Concat { .. } => "concat",
            Op::Pad(..) => "pad",
            Op::Gather { .. } => "gather",
            Op::ScatterAddZeros { .. } => "scatter_add",
            Op::Conv2d(..) => "conv2d",
            Op::Conv2dInputGrad(..) => "conv2d_input_grad",
            Op::Conv2dWeightGrad(..) => "conv2d_weight_grad",
            Op::AvgPool2d(..) => "avg_pool2d",
            Op::AvgPool2dBackward(..) => "avg_pool2d_backward",
            Op::Custom(c) => c.name(),
        }
    }
}
