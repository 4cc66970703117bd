//! The closed set of recorded primitives. Composite ops (sub, minimum,
//! silu, leaky_relu, elu, mean, var, losses, ...) are built from these in
//! `var/`; every primitive has exactly one backward rule in `rules.rs`.
//!
//! A primitive is kept only where a composition of the others would be
//! slower or less accurate; the reason is written beside each one below
//! (and listed in this directory's README). Each line of the
//! `primitives!` table gives the variant and the name errors use, so the
//! enum and [`Op::name`] cannot drift apart.

use std::sync::Arc;

use tapir_tensor::{
    Conv2dParams, Float, GeluApprox, IndexArray, NormKind, NormStats, Pool2dParams, Tensor,
    XentTargets,
};

use crate::custom::CustomOp;

/// Defines `Op` and its names from one table: `Variant(payload) = "name"`.
macro_rules! primitives {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(( $($tuple:ty),* ))? $({ $($field:ident : $fty:ty),* $(,)? })? = $name:literal,
    )*) => {
        /// A recorded primitive and the non-tensor data its backward rule
        /// needs. Large payloads are boxed: every node stores an `Op`, so
        /// its size is paid on each recorded op. Shapes are not stored: the
        /// rule reads them from the input and output values.
        #[derive(Clone)]
        pub(crate) enum Op<E: Float> {
            $(
                $(#[$doc])*
                $variant $(( $($tuple),* ))? $({ $($field: $fty),* })?,
            )*
            /// A user-defined op (`Var::custom`), named by the op itself.
            Custom(Arc<dyn CustomOp<E>>),
        }

        impl<E: Float> Op<E> {
            /// The op's name in errors: the user-facing op it records (a
            /// slice or `narrow` records `index_select`, `conv_transpose2d`
            /// records `conv2d_input_grad`).
            pub(crate) fn name(&self) -> &str {
                match self {
                    $(Op::$variant { .. } => $name,)*
                    Op::Custom(c) => c.name(),
                }
            }
        }

        /// The names of all built-in primitives, in table order.
        pub(crate) const PRIMITIVES: &[&str] = &[$($name),*];
    };
}

primitives! {
    /// A watched parameter or a source made by `Tape::var`.
    Leaf = "leaf",
    /// An untracked input of a recorded op.
    Constant = "constant",
    /// Kept: the sum that every composite and every fan-out uses.
    Add = "add",
    /// Kept: products (a composite would need log and exp).
    Mul = "mul",
    /// Kept: one correctly rounded quotient, where a·(1/b) rounds twice.
    Div = "div",
    /// Kept: aᵇ with both sides differentiable.
    Pow = "pow",
    /// Kept: its tie rule (half to each side); minimum is −max(−a, −b).
    Maximum = "maximum",
    /// Kept for speed: one pass, no broadcast tensor for the constant.
    AddScalar = "add_scalar",
    /// Kept for speed: one pass; also negation (c = −1) and division by a
    /// scalar.
    MulScalar(E) = "mul_scalar",
    /// Kept for speed: square, rsqrt and recip in one pass each.
    PowScalar(E) = "pow_scalar",
    /// Kept: transcendental.
    Exp = "exp",
    /// Kept: transcendental.
    Log = "log",
    /// Kept for accuracy: ln(1 + x) for small x, which log(1 + x) loses.
    Log1p = "log1p",
    /// Kept for accuracy: eˣ − 1 for small x, which exp(x) − 1 loses.
    Expm1 = "expm1",
    /// Kept for accuracy: correctly rounded, where pow_scalar(0.5) is not.
    Sqrt = "sqrt",
    /// Kept: transcendental.
    Sin = "sin",
    /// Kept: transcendental.
    Cos = "cos",
    /// Kept for speed (one vectorised pass) and stability (a composite of
    /// exponentials overflows for large |x|).
    Tanh = "tanh",
    /// Kept for speed and stability: 1/(1 + e⁻ˣ) composed overflows for
    /// large −x.
    Sigmoid = "sigmoid",
    /// Kept: special function (exact GELU).
    Erf = "erf",
    /// Kept: decides the kink at 0 (gradient 0).
    Abs = "abs",
    /// Kept: piecewise constant, gradient 0 everywhere.
    Sign = "sign",
    /// Kept for speed (the most common activation, a first-order fast
    /// path); decides the kink at 0 (gradient 0).
    Relu = "relu",
    /// Kept for speed: one pass where the composite records about ten
    /// nodes (every transformer MLP).
    Gelu(GeluApprox) = "gelu",
    /// Kept for stability: max(x, 0) + log1p(e^−|x|) never overflows.
    Softplus = "softplus",
    /// Kept: the gradient passes at the bounds (inclusive), a kink decided
    /// here.
    Clamp(Option<E>, Option<E>) = "clamp",
    /// `a.where_(cond, b)`; the condition is data, not an input. Kept:
    /// selection by a mask.
    Where(Box<Tensor<E>>) = "where",
    /// Kept: the reduction.
    Sum { axes: Vec<isize> } = "sum",
    /// Kept: ties share the gradient equally.
    Max { axes: Vec<isize> } = "max",
    /// Kept for speed (one pass); ties share the gradient as in `Max`.
    Min { axes: Vec<isize> } = "min",
    /// Kept: a composite exp(Σ log x) fails for x ≤ 0.
    Prod { axes: Vec<isize> } = "prod",
    /// Kept for stability: m + log Σ e^(x − m).
    LogSumExp { axes: Vec<isize> } = "logsumexp",
    /// Kept for stability and speed: max-shifted, one-pass rule.
    Softmax(isize) = "softmax",
    /// Kept for stability: x − logsumexp(x) without forming the softmax.
    LogSoftmax(isize) = "log_softmax",
    /// Inputs (x, [weight], [bias]). Kept for speed: LayerNorm and RMSNorm
    /// in one pass each way (rows' mean and 1/std saved), where the
    /// composite recorded about ten nodes and as many full-size passes.
    Norm(Box<NormOp<E>>) = "normalize",
    /// Inputs (q, k, v). Kept for speed and memory: fused scaled dot-product
    /// attention, tiled with an online softmax (the composite wrote every
    /// T×S score matrix, its mask sum and its softmax, forward and back).
    Attention(Box<AttentionOp<E>>) = "attention",
    /// Input: the fused projection `[B, T, 3E]`. Kept for speed:
    /// self-attention read in place from the projection (no split, no
    /// permute copies, one gradient buffer), per-head T×T scores in cache.
    QkvAttention(Box<QkvAttentionOp<E>>) = "qkv_attention",
    /// Input: logits `[N, C]`; output: per-row losses `[N]`. Kept for
    /// stability and speed: the fused softmax cross-entropy, max-shifted
    /// (finite for logits of ±1e4), softmax·T − t in one backward pass.
    SoftmaxXent(Box<XentOp<E>>) = "softmax_cross_entropy",
    /// Kept: GEMM.
    Matmul = "matmul",
    /// Kept: shape change without copying.
    Reshape = "reshape",
    /// Kept: axis reordering (views).
    Permute(Vec<isize>) = "permute",
    /// Kept: its rule is the `sum_to` every broadcast needs.
    BroadcastTo = "broadcast_to",
    /// Slices, narrow, split, chunk and embedding lookups. Kept: picks
    /// without copying the rest. `sparse` (from `Var::embedding`): the
    /// first-order pass hands a watched parameter's gradient on as the
    /// rows picked ([`crate::RowSparse`]) instead of scattering it into
    /// zeros; the rule itself is the same.
    IndexSelect { axis: usize, idx: Arc<[usize]>, sparse: bool } = "index_select",
    /// Zeros of the output's shape with the input added at `idx` along
    /// `axis`: the adjoint of `IndexSelect`, kept so that rule is
    /// differentiable again.
    IndexAddZeros { axis: usize, idx: Arc<[usize]> } = "index_add",
    /// Kept: one node joins many inputs.
    Concat { axis: usize } = "concat",
    /// Kept: the adjoint of slicing.
    Pad(Vec<(usize, usize)>) = "pad",
    /// Kept: picks by an index tensor (max pooling, cross-entropy).
    Gather { axis: usize, idx: Arc<IndexArray> } = "gather",
    /// The adjoint of `Gather`, kept so that rule is differentiable again.
    ScatterAddZeros { axis: usize, idx: Arc<IndexArray> } = "scatter_add",
    /// Inputs (x, w), or (x, w, b) with a bias added inside the kernel.
    /// Kept for speed: im2col + GEMM.
    Conv2d(Box<Conv2dParams>) = "conv2d",
    /// Inputs (output gradient, w); output shaped like the conv input. The
    /// adjoint of `Conv2d` in x (and `conv_transpose2d`).
    Conv2dInputGrad(Box<Conv2dParams>) = "conv2d_input_grad",
    /// Inputs (output gradient, x); output shaped like the weight. The
    /// adjoint of `Conv2d` in w.
    Conv2dWeightGrad(Box<Conv2dParams>) = "conv2d_weight_grad",
    /// Kept for speed: one pass over the windows, saving the chosen
    /// element of each (plane-local indices, shaped like the output); the
    /// gather composite read the input a second time and scattered through
    /// the generic index path.
    MaxPool2d { idx: Arc<IndexArray> } = "max_pool2d",
    /// Input: output gradient; output shaped like the pooling input. The
    /// adjoint of `MaxPool2d` (each gradient to its window's maximum),
    /// kept so that rule is differentiable again.
    MaxPool2dBackward { idx: Arc<IndexArray> } = "max_pool2d_backward",
    /// Kept for speed: one pass over the windows.
    AvgPool2d(Box<Pool2dParams>) = "avg_pool2d",
    /// Input: output gradient; output shaped like the pooling input. The
    /// adjoint of `AvgPool2d`, kept so that rule is differentiable again.
    AvgPool2dBackward(Box<Pool2dParams>) = "avg_pool2d_backward",
}

/// The payload of [`Op::Norm`].
#[derive(Clone)]
pub(crate) struct NormOp<E: Float> {
    pub(crate) kind: NormKind,
    /// Normalised trailing axes (LayerNorm, RMSNorm); the group count
    /// (GroupNorm); unused (BatchNorm).
    pub(crate) ndim: usize,
    pub(crate) eps: f64,
    pub(crate) has_weight: bool,
    pub(crate) has_bias: bool,
    /// Row statistics of the forward pass.
    pub(crate) stats: NormStats<E>,
}

/// The payload of [`Op::Attention`].
#[derive(Clone)]
pub(crate) struct AttentionOp<E: Float> {
    pub(crate) scale: f64,
    pub(crate) causal: bool,
    /// The additive mask, `[1 or B, 1 or H, T, S]`.
    pub(crate) mask: Option<Tensor<E>>,
    /// Log-sum-exp of each score row, `[B, H, T]`.
    pub(crate) lse: Tensor<E>,
}

/// The payload of [`Op::QkvAttention`].
#[derive(Clone)]
pub(crate) struct QkvAttentionOp<E: Float> {
    pub(crate) heads: usize,
    pub(crate) scale: f64,
    pub(crate) causal: bool,
    /// The additive mask, `[1 or B, 1 or H, T, T]`.
    pub(crate) mask: Option<Tensor<E>>,
    /// Log-sum-exp of each score row, `[B, H, T]`.
    pub(crate) lse: Tensor<E>,
}

/// The payload of [`Op::SoftmaxXent`].
#[derive(Clone)]
pub(crate) struct XentOp<E: Float> {
    pub(crate) targets: XentTargets<E>,
}
