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
    /// `where_(cond, a, b)`; the condition is data, not an input.
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
