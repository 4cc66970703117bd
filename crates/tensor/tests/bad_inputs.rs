//! Bad inputs, as a careless or hostile user would pass them: one table of
//! cases, each asserting the exact error variant and that the message names
//! the op that was called; then proptests that feed random shapes, axes,
//! strides, paddings and indices (values near `usize::MAX` included) to the
//! public ops and require an `Ok` with a sane result or an `Err`, never a
//! panic.
//!
//! `PROPTEST_CASES` raises the proptests' case count for long runs by hand
//! (CI runs the default).

use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use tapir_tensor::{indices, Conv1dParams, Conv2dParams, Error, Pool2dParams, Rng, Tensor};

type T = Tensor<f32>;

/// Which error variant a case must give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    TooLarge,
    Shape,
    Arg,
    Axis,
    Index,
    Broadcast,
    DataLength,
}

fn kind_of(e: &Error) -> Option<Kind> {
    Some(match e {
        Error::TooLarge { .. } => Kind::TooLarge,
        Error::Shape { .. } => Kind::Shape,
        Error::InvalidArgument { .. } => Kind::Arg,
        Error::Axis { .. } => Kind::Axis,
        Error::Index { .. } => Kind::Index,
        Error::Broadcast { .. } => Kind::Broadcast,
        Error::DataLength { .. } => Kind::DataLength,
        _ => return None,
    })
}

struct Case {
    name: &'static str,
    kind: Kind,
    /// What the message must contain: the op's name, and a value or shape.
    needles: &'static [&'static str],
    run: Box<dyn Fn() -> Result<(), Error>>,
}

macro_rules! case {
    ($name:expr, $kind:ident, [$($n:expr),*], $body:expr) => {
        Case {
            name: $name,
            kind: Kind::$kind,
            needles: &[$($n),*],
            run: Box::new(move || {
                $body?;
                Ok(())
            }),
        }
    };
}

fn x23() -> T {
    T::from_vec((0..6).map(|v| v as f32).collect(), [2, 3]).unwrap()
}
fn x3() -> T {
    T::from_vec(vec![1.0, 2.0, 3.0], [3]).unwrap()
}
fn img() -> T {
    T::ones([1, 2, 5, 5])
}
fn w2() -> T {
    T::ones([4, 2, 3, 3])
}
fn conv(
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Conv2dParams {
    Conv2dParams {
        stride,
        padding,
        dilation,
        groups,
    }
}
fn pool(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Pool2dParams {
    Pool2dParams {
        kernel,
        stride,
        padding,
    }
}

const MAX: usize = usize::MAX;
const BIG: usize = 1 << 40;

fn table() -> Vec<Case> {
    let mut t = vec![
        // Family 1: sizes that cannot exist.
        case!(
            "try_zeros 2^32 x 2^32",
            TooLarge,
            ["zeros", "[4294967296, 4294967296]", "bytes"],
            T::try_zeros([1 << 32, 1 << 32])
        ),
        case!(
            "try_zeros MAX x 2",
            TooLarge,
            ["zeros", "bytes"],
            T::try_zeros([MAX, 2])
        ),
        case!("try_zeros MAX", TooLarge, ["zeros"], T::try_zeros([MAX])),
        case!(
            "try_zeros 2^62 f32",
            TooLarge,
            ["zeros"],
            T::try_zeros([1 << 62])
        ),
        case!(
            "try_zeros six big axes",
            TooLarge,
            ["zeros", "2^128"],
            T::try_zeros([MAX; 6])
        ),
        case!(
            "try_zeros 2^40 x 2^40 x 2^40",
            TooLarge,
            ["zeros"],
            T::try_zeros([BIG, BIG, BIG])
        ),
        case!(
            "try_full f64 2^61",
            TooLarge,
            ["full"],
            Tensor::<f64>::try_full([1 << 61], 1.0)
        ),
        case!(
            "try_full 2^20 x 2^20 x 2^20",
            TooLarge,
            ["full"],
            T::try_full([1 << 20, 1 << 20, 1 << 20], 0.5)
        ),
        case!(
            "arange 1e20 steps",
            TooLarge,
            ["arange", "bytes"],
            T::arange(0.0, 1e20, 1.0)
        ),
        case!(
            "arange f64 1e300 steps",
            TooLarge,
            ["arange"],
            Tensor::<f64>::arange(-1e300, 1e300, 1.0)
        ),
        case!(
            "arange zero step",
            Arg,
            ["arange", "step 0"],
            T::arange(0.0, 1.0, 0.0)
        ),
        case!(
            "arange nan end",
            Arg,
            ["arange", "NaN"],
            T::arange(0.0, f32::NAN, 1.0)
        ),
        case!(
            "arange inf start",
            Arg,
            ["arange", "inf"],
            T::arange(f32::NEG_INFINITY, 0.0, 1.0)
        ),
        case!(
            "one_hot huge classes",
            TooLarge,
            ["one_hot", "bytes"],
            T::one_hot(indices(vec![0, 1], [2]).unwrap(), 1 << 62)
        ),
        case!(
            "one_hot MAX classes",
            TooLarge,
            ["one_hot"],
            T::one_hot(indices(vec![0], [1]).unwrap(), MAX)
        ),
        case!(
            "one_hot index out of range",
            Index,
            ["one_hot", "5"],
            T::one_hot(indices(vec![5], [1]).unwrap(), 3)
        ),
        case!(
            "from_vec overflowing shape",
            DataLength,
            ["from_vec"],
            T::from_vec(vec![], [1 << 32, 1 << 32])
        ),
        case!(
            "from_vec wrapping shape",
            DataLength,
            ["from_vec"],
            T::from_vec(vec![0.0; 4], [(1 << 62) + 1, 4])
        ),
        case!(
            "from_vec short",
            DataLength,
            ["from_vec", "5 elements"],
            T::from_vec(vec![0.0; 5], [2, 3])
        ),
        case!(
            "broadcast_to huge",
            TooLarge,
            ["broadcast_to", "bytes"],
            x3().reshape_usize(&[3, 1])?.broadcast_to([3, 1 << 62])
        ),
        case!(
            "broadcast_to overflowing",
            TooLarge,
            ["broadcast_to"],
            T::ones([1]).broadcast_to([1 << 32, 1 << 32, 1 << 32])
        ),
        case!(
            "broadcast_to mismatch",
            Broadcast,
            ["broadcast_to", "[2, 3]"],
            x23().broadcast_to([3, 3])
        ),
        case!(
            "pad overflow",
            Arg,
            ["pad", "overflows"],
            x3().pad(&[(MAX, 1)], 0.0)
        ),
        case!(
            "pad overflow after",
            Arg,
            ["pad"],
            x3().pad(&[(1, MAX - 2)], 0.0)
        ),
        case!(
            "pad huge",
            TooLarge,
            ["pad", "bytes"],
            x3().pad(&[(1 << 61, 0)], 0.0)
        ),
        case!(
            "pad 2-D huge",
            TooLarge,
            ["pad"],
            x23().pad(&[(BIG, 0), (0, BIG)], 0.0)
        ),
        case!(
            "pad wrong arity",
            Shape,
            ["pad", "one (before, after) pair"],
            x23().pad(&[(1, 1)], 0.0)
        ),
        case!(
            "reshape wrapping product",
            Shape,
            ["reshape"],
            T::ones([4]).reshape_usize(&[(1 << 62) + 1, 4])
        ),
        case!(
            "reshape overflow",
            Shape,
            ["reshape"],
            T::ones([4]).reshape_usize(&[1 << 32, 1 << 32])
        ),
        case!(
            "reshape -1 overflow",
            Shape,
            ["reshape"],
            T::ones([4]).reshape([-1, 1 << 40, 1 << 40])
        ),
        case!(
            "reshape two -1",
            Shape,
            ["reshape", "-1"],
            T::ones([4]).reshape([-1, -1])
        ),
        case!(
            "reshape negative",
            Shape,
            ["reshape", "-3"],
            T::ones([4]).reshape([-3, 2])
        ),
        case!(
            "narrow start MAX",
            Shape,
            ["narrow", "18446744073709551615"],
            x3().narrow(0, MAX, 2)
        ),
        case!(
            "narrow length MAX",
            Shape,
            ["narrow"],
            x3().narrow(0, 1, MAX)
        ),
        case!(
            "narrow past end",
            Shape,
            ["narrow", "start 2", "length 2"],
            x3().narrow(0, 2, 2)
        ),
        case!(
            "narrow bad axis",
            Axis,
            ["narrow", "axis 1"],
            x3().narrow(1, 0, 1)
        ),
        case!(
            "split_sizes wrapping sum",
            Shape,
            ["split"],
            x3().split_sizes(&[MAX, 4], 0)
        ),
        case!(
            "split_sizes short",
            Shape,
            ["split", "add up to 2"],
            x3().split_sizes(&[1, 1], 0)
        ),
        case!("split zero", Arg, ["split", "positive"], x3().split(0, 0)),
        case!("chunk zero", Arg, ["chunk", "positive"], x3().chunk(0, 0)),
        case!(
            "concat empty list",
            Arg,
            ["concat", "at least one"],
            T::concat(&[], 0)
        ),
        case!(
            "concat mismatch",
            Shape,
            ["concat", "[2, 3]", "[3]"],
            T::concat(&[&x23(), &x3()], 0)
        ),
        case!(
            "stack mismatch",
            Shape,
            ["stack", "[2, 3]"],
            T::stack(&[&x23(), &x3()], 0)
        ),
        case!("stack empty", Arg, ["stack"], T::stack(&[], 0)),
        case!(
            "stack bad axis",
            Axis,
            ["stack", "axis 4"],
            T::stack(&[&x23()], 4)
        ),
        // Conv and pooling geometry.
        case!(
            "conv2d padding overflow",
            Arg,
            ["conv2d", "overflows"],
            img().conv2d(&w2(), None, conv([1, 1], [MAX / 2 + 1, 0], [1, 1], 1))
        ),
        case!(
            "conv2d padding huge",
            TooLarge,
            ["conv2d", "bytes"],
            img().conv2d(&w2(), None, conv([1, 1], [1 << 31, 1 << 31], [1, 1], 1))
        ),
        case!(
            "conv2d dilation overflow",
            Arg,
            ["conv2d", "dilation"],
            img().conv2d(&w2(), None, conv([1, 1], [0, 0], [MAX, 1], 1))
        ),
        case!(
            "conv2d dilation too wide",
            Shape,
            ["conv2d", "kernel span"],
            img().conv2d(&w2(), None, conv([1, 1], [0, 0], [3, 1], 1))
        ),
        case!(
            "conv2d stride zero",
            Arg,
            ["conv2d", "stride 0"],
            img().conv2d(&w2(), None, conv([0, 1], [0, 0], [1, 1], 1))
        ),
        case!(
            "conv2d dilation zero",
            Arg,
            ["conv2d", "dilation 0"],
            img().conv2d(&w2(), None, conv([1, 1], [0, 0], [1, 0], 1))
        ),
        case!(
            "conv2d groups zero",
            Shape,
            ["conv2d", "0 groups"],
            img().conv2d(&w2(), None, conv([1, 1], [0, 0], [1, 1], 0))
        ),
        case!(
            "conv2d groups MAX",
            Shape,
            ["conv2d", "groups"],
            img().conv2d(&w2(), None, conv([1, 1], [0, 0], [1, 1], MAX))
        ),
        case!(
            "conv2d groups overflow",
            Shape,
            ["conv2d"],
            img().conv2d(
                &T::from_vec(vec![], [4, 1 << 62, 0, 1])?,
                None,
                conv([1, 1], [0, 0], [1, 1], 8)
            )
        ),
        case!(
            "conv2d channels",
            Shape,
            ["conv2d", "[1, 2, 5, 5]", "[4, 3, 3, 3]"],
            img().conv2d(&T::ones([4, 3, 3, 3]), None, Conv2dParams::default())
        ),
        case!(
            "conv2d rank",
            Shape,
            ["conv2d", "(N, C, H, W)"],
            x23().conv2d(&w2(), None, Conv2dParams::default())
        ),
        case!(
            "conv2d bias length",
            Shape,
            ["conv2d", "bias", "[3]", "[4]"],
            img().conv2d(&w2(), Some(&x3()), Conv2dParams::default())
        ),
        case!(
            "conv2d bias 2-D",
            Shape,
            ["conv2d", "bias", "[2, 3]"],
            img().conv2d(&w2(), Some(&x23()), Conv2dParams::default())
        ),
        case!(
            "conv1d bias 2-D",
            Shape,
            ["conv1d", "bias", "[2, 3]"],
            T::ones([1, 2, 5]).conv1d(&T::ones([3, 2, 2]), Some(&x23()), Conv1dParams::default())
        ),
        case!(
            "conv1d channels",
            Shape,
            ["conv1d", "[1, 2, 5]", "[3, 4, 2]"],
            T::ones([1, 2, 5]).conv1d(&T::ones([3, 4, 2]), None, Conv1dParams::default())
        ),
        case!(
            "conv1d rank",
            Shape,
            ["conv1d", "(N, C, L)"],
            img().conv1d(&w2(), None, Conv1dParams::default())
        ),
        case!(
            "conv1d stride zero",
            Arg,
            ["conv1d", "stride 0"],
            T::ones([1, 2, 5]).conv1d(
                &T::ones([3, 2, 2]),
                None,
                Conv1dParams {
                    stride: 0,
                    ..Default::default()
                }
            )
        ),
        case!(
            "conv1d kernel too long",
            Shape,
            ["conv1d"],
            T::ones([1, 2, 5]).conv1d(&T::ones([3, 2, 9]), None, Conv1dParams::default())
        ),
        case!(
            "conv_transpose2d stride overflow",
            Arg,
            ["conv_transpose2d", "overflows"],
            T::ones([1, 4, 3, 3]).conv_transpose2d(&w2(), conv([MAX, 1], [0, 0], [1, 1], 1))
        ),
        case!(
            "conv_transpose2d padding eats output",
            Shape,
            ["conv_transpose2d", "padding"],
            T::ones([1, 4, 3, 3]).conv_transpose2d(&w2(), conv([1, 1], [MAX, 0], [1, 1], 1))
        ),
        case!(
            "conv_transpose2d channels",
            Shape,
            ["conv_transpose2d"],
            T::ones([1, 3, 3, 3]).conv_transpose2d(&w2(), Conv2dParams::default())
        ),
        case!(
            "conv_transpose2d groups overflow",
            Arg,
            ["conv_transpose2d"],
            T::ones([1, 4, 3, 3]).conv_transpose2d(&w2(), conv([1, 1], [0, 0], [1, 1], MAX))
        ),
        case!(
            "conv_transpose2d stride zero",
            Arg,
            ["conv_transpose2d", "stride"],
            T::ones([1, 4, 3, 3]).conv_transpose2d(&w2(), conv([0, 1], [0, 0], [1, 1], 1))
        ),
        case!(
            "max_pool2d padding huge",
            Arg,
            ["max_pool2d", "padding"],
            img().max_pool2d(pool([2, 2], [2, 2], [MAX, 0]))
        ),
        case!(
            "max_pool2d kernel zero",
            Arg,
            ["max_pool2d", "kernel"],
            img().max_pool2d(pool([0, 2], [2, 2], [0, 0]))
        ),
        case!(
            "max_pool2d stride zero",
            Arg,
            ["max_pool2d", "stride"],
            img().max_pool2d(pool([2, 2], [2, 0], [0, 0]))
        ),
        case!(
            "max_pool2d kernel huge",
            Shape,
            ["max_pool2d", "kernel span"],
            img().max_pool2d(pool([MAX, 2], [1, 1], [0, 0]))
        ),
        case!(
            "max_pool2d rank",
            Shape,
            ["max_pool2d", "(N, C, H, W)"],
            x23().max_pool2d(pool([2, 2], [2, 2], [0, 0]))
        ),
        case!(
            "avg_pool2d padding",
            Arg,
            ["avg_pool2d", "padding"],
            img().avg_pool2d(pool([2, 2], [2, 2], [2, 0]))
        ),
        case!(
            "avg_pool2d kernel huge",
            Shape,
            ["avg_pool2d"],
            img().avg_pool2d(pool([6, 6], [1, 1], [0, 0]))
        ),
        case!(
            "avg_pool2d_backward huge input",
            TooLarge,
            ["avg_pool2d_backward"],
            T::ones([1, 1, 1, 1])
                .avg_pool2d_backward(&[1 << 32, 1 << 32, 1, 1], pool([1, 1], [1, 1], [0, 0]))
        ),
        case!(
            "max_pool2d_backward huge input",
            TooLarge,
            ["max_pool2d_backward"],
            T::ones([1, 1, 1, 1]).max_pool2d_backward(
                &tapir_tensor::ndarray::ArrayD::<usize>::zeros(tapir_tensor::ndarray::IxDyn(&[
                    1, 1, 1, 1
                ])),
                &[1, 1, 1 << 40, 1 << 40]
            )
        ),
        case!(
            "conv2d_input_grad huge input",
            Shape,
            ["conv2d_input_grad"],
            T::ones([1, 4, 3, 3]).conv2d_input_grad(
                &w2(),
                &[1, 2, 1 << 40, 1 << 40],
                Conv2dParams::default()
            )
        ),
        // Axes and indices.
        case!(
            "sum axis MIN",
            Axis,
            ["sum", "-9223372036854775808"],
            x23().sum_axes(&[isize::MIN], false)
        ),
        case!(
            "sum axis MAX",
            Axis,
            ["sum"],
            x23().sum_axes(&[isize::MAX], false)
        ),
        case!(
            "sum repeated axis",
            Arg,
            ["sum", "repeated"],
            x23().sum_axes(&[0, -2], false)
        ),
        case!("mean bad axis", Axis, ["mean"], x23().mean_axes(&[2], true)),
        case!(
            "max empty axis",
            Shape,
            ["max", "empty"],
            T::zeros([2, 0]).max_axes(&[1], false)
        ),
        case!(
            "sum of empty with huge result",
            TooLarge,
            ["sum"],
            T::try_zeros([0, 1 << 62]).and_then(|z| z.sum_axes(&[0], false))
        ),
        case!("softmax bad axis", Axis, ["softmax"], x23().softmax(5)),
        case!(
            "log_softmax bad axis",
            Axis,
            ["log_softmax"],
            x23().log_softmax(-3)
        ),
        case!(
            "transpose bad axis",
            Axis,
            ["transpose"],
            x23().transpose(0, 2)
        ),
        case!(
            "permute repeated",
            Shape,
            ["permute"],
            x23().permute(&[0, 0])
        ),
        case!("permute short", Shape, ["permute"], x23().permute(&[0])),
        case!(
            "permute huge axis",
            Axis,
            ["permute"],
            x23().permute(&[0, isize::MAX])
        ),
        case!(
            "unsqueeze MAX",
            Axis,
            ["unsqueeze"],
            x23().unsqueeze(isize::MAX)
        ),
        case!(
            "unsqueeze MIN",
            Axis,
            ["unsqueeze"],
            x23().unsqueeze(isize::MIN)
        ),
        case!("squeeze MIN", Axis, ["squeeze"], x23().squeeze(isize::MIN)),
        case!(
            "flatten reversed",
            Arg,
            ["flatten", "comes after"],
            x23().flatten(1, 0)
        ),
        case!(
            "slice step zero",
            Arg,
            ["slice", "step"],
            x3().slice(0, 0, None, 0)
        ),
        case!("slice bad axis", Axis, ["slice"], x3().slice(1, 0, None, 1)),
        case!(
            "at index MAX",
            Index,
            ["at", "18446744073709551615"],
            x23().at([MAX, 0])
        ),
        case!("at wrong arity", Shape, ["at"], x23().at([0])),
        case!("item of non-scalar", Shape, ["item"], x23().item()),
        case!(
            "index_select index MAX",
            Index,
            ["index_select", "18446744073709551615"],
            x23().index_select(1, &[0, MAX])
        ),
        case!(
            "index_select bad axis",
            Axis,
            ["index_select"],
            x23().index_select(2, &[0])
        ),
        case!(
            "index_add index out of range",
            Index,
            ["index_add", "7"],
            x23().index_add(0, &[7], &T::ones([1, 3]))
        ),
        case!(
            "index_add src shape",
            Shape,
            ["index_add", "[2, 2]"],
            x23().index_add(0, &[0], &T::ones([2, 2]))
        ),
        case!(
            "gather index MAX",
            Index,
            ["gather"],
            x23().gather(1, indices(vec![MAX], [1, 1]).unwrap())
        ),
        case!(
            "gather rank",
            Shape,
            ["gather"],
            x23().gather(1, indices(vec![0], [1]).unwrap())
        ),
        case!(
            "gather index too wide",
            Shape,
            ["gather"],
            x23().gather(0, indices(vec![0; 4], [1, 4]).unwrap())
        ),
        case!(
            "scatter_add index MAX",
            Index,
            ["scatter_add"],
            x23().scatter_add(1, indices(vec![MAX], [1, 1]).unwrap(), &x23())
        ),
        case!(
            "scatter_add src small",
            Shape,
            ["scatter_add", "src"],
            x23().scatter_add(1, indices(vec![0, 0], [1, 2]).unwrap(), &T::ones([1, 1]))
        ),
        case!(
            "matmul inner",
            Shape,
            ["matmul", "inner sizes"],
            x23().matmul(&x23())
        ),
        case!(
            "matmul batch",
            Shape,
            ["matmul", "batch"],
            T::ones([2, 2, 3]).matmul(&T::ones([3, 3, 2]))
        ),
        case!(
            "matmul scalar",
            Shape,
            ["matmul"],
            T::scalar(1.0).matmul(&x3())
        ),
        case!(
            "add broadcast",
            Broadcast,
            ["add", "[2, 3]", "[2]"],
            x23().add(&T::ones([2]))
        ),
        case!(
            "mul broadcast",
            Broadcast,
            ["mul"],
            x23().mul(&T::ones([3, 1, 2]))
        ),
        case!(
            "div broadcast",
            Broadcast,
            ["div"],
            x23().div(&T::ones([4]))
        ),
        case!(
            "pow broadcast",
            Broadcast,
            ["pow"],
            x23().pow(&T::ones([4]))
        ),
        case!(
            "maximum broadcast",
            Broadcast,
            ["maximum"],
            x23().maximum(&T::ones([4]))
        ),
        case!(
            "where_ broadcast",
            Broadcast,
            ["where_"],
            x23().where_(&T::ones([4]), &x23())
        ),
        case!(
            "sum_to not a broadcast",
            Shape,
            ["sum_to", "[3, 2]"],
            x23().sum_to(&[3, 2])
        ),
        case!(
            "sum_to same count",
            Shape,
            ["sum_to", "[6]"],
            x23().sum_to(&[6])
        ),
        case!(
            "sum_to more axes",
            Shape,
            ["sum_to"],
            x23().sum_to(&[1, 2, 3])
        ),
    ];
    // Every binary op refuses the same mismatched pair with its own name.
    for (name, f) in [
        ("sub", T::sub as fn(&T, &T) -> Result<T, Error>),
        ("minimum", T::minimum),
        ("gt", T::gt),
        ("lt", T::lt),
        ("eq", T::eq),
        ("ne", T::ne),
        ("le", T::le),
        ("ge", T::ge),
    ] {
        t.push(Case {
            name,
            kind: Kind::Broadcast,
            needles: match name {
                "sub" => &["sub"],
                "minimum" => &["minimum"],
                "gt" => &["gt"],
                "lt" => &["lt"],
                "eq" => &["eq"],
                "ne" => &["ne"],
                "le" => &["le"],
                _ => &["ge"],
            },
            run: Box::new(move || f(&x23(), &T::ones([4])).map(|_| ())),
        });
    }
    // Every reduction refuses out-of-range and repeated axes by name.
    type Red = fn(&T, &[isize], bool) -> Result<T, Error>;
    let reductions: [(&'static str, Red); 8] = [
        ("sum", T::sum_axes),
        ("mean", T::mean_axes),
        ("max", T::max_axes),
        ("min", T::min_axes),
        ("prod", T::prod_axes),
        ("var", T::var_axes),
        ("std", T::std_axes),
        ("logsumexp", T::logsumexp_axes),
    ];
    for (name, f) in reductions {
        for (axes, kind) in [
            (vec![2isize], Kind::Axis),
            (vec![-3], Kind::Axis),
            (vec![isize::MAX], Kind::Axis),
            (vec![isize::MIN], Kind::Axis),
            (vec![1, -1], Kind::Arg),
        ] {
            t.push(Case {
                name,
                kind,
                needles: match name {
                    "sum" => &["sum"],
                    "mean" => &["mean"],
                    "max" => &["max"],
                    "min" => &["min"],
                    "prod" => &["prod"],
                    "var" => &["var"],
                    "std" => &["std"],
                    _ => &["logsumexp"],
                },
                run: Box::new(move || f(&x23(), &axes, false).map(|_| ())),
            });
        }
    }
    t
}

#[test]
fn bad_inputs_give_the_right_error_naming_the_op() {
    let cases = table();
    assert!(cases.len() >= 150, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        match catch_unwind(AssertUnwindSafe(|| (c.run)())) {
            Err(_) => failures.push(format!("{}: panicked", c.name)),
            Ok(Ok(())) => failures.push(format!("{}: accepted", c.name)),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if kind_of(&e) != Some(c.kind) {
                    failures.push(format!("{}: expected {:?}, got {e:?}", c.name, c.kind));
                }
                for n in c.needles {
                    if !msg.contains(n) {
                        failures.push(format!("{}: message {msg:?} lacks {n:?}", c.name));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The repro of the old segfault: a tensor claiming 2^64 elements over an
/// empty buffer can no longer be made, so nothing can read through it.
#[test]
fn an_impossible_tensor_cannot_be_made() {
    let msg = catch_unwind(|| T::zeros([1 << 32, 1 << 32]))
        .expect_err("zeros of 2^64 elements must not succeed")
        .downcast::<String>()
        .expect("a message");
    assert!(msg.contains("zeros") && msg.contains("bytes"), "{msg}");
    for f in [
        (|| drop(T::ones([MAX, 2]))) as fn(),
        || drop(T::full([1 << 40, 1 << 40], 1.0)),
        || drop(T::randn([1 << 62], &mut Rng::seed(0))),
        || drop(T::uniform([MAX], 0.0, 1.0, &mut Rng::seed(0))),
        || drop(T::eye(1 << 33)),
        || drop(T::linspace(0.0, 1.0, MAX)),
    ] {
        let msg = catch_unwind(f)
            .expect_err("must refuse")
            .downcast::<String>()
            .expect("a message");
        assert!(msg.contains("needs") && msg.contains("bytes"), "{msg}");
    }
}

/// Views stay inside their storage for any start, length and step.
#[test]
fn views_stay_inside_their_storage() {
    let x = T::from_vec((0..12).map(|v| v as f32).collect(), [3, 4]).unwrap();
    for step in [1, 2, 3, 4, 5, 1 << 31, usize::MAX / 2, usize::MAX] {
        for start in [isize::MIN, -5, -1, 0, 1, 3, 4, isize::MAX] {
            for end in [None, Some(isize::MIN), Some(-1), Some(2), Some(isize::MAX)] {
                let v = x.slice(1, start, end, step).unwrap();
                let vals = v.to_vec();
                assert!(vals.iter().all(|&e| (0.0..12.0).contains(&e)));
                assert_eq!(vals.len(), v.len());
            }
        }
    }
    for (start, len) in [
        (0, 0),
        (3, 0),
        (0, 3),
        (MAX, 0),
        (MAX, 1),
        (1, MAX),
        (MAX, MAX),
    ] {
        match x.narrow(0, start, len) {
            Ok(v) => assert!(v.to_vec().iter().all(|&e| (0.0..12.0).contains(&e))),
            Err(e) => assert!(matches!(e, Error::Shape { .. }), "{e}"),
        }
    }
    // A huge padded window costs the input's size, not the kernel's.
    let y = img()
        .max_pool2d(pool([1 << 40, 1 << 40], [1, 1], [1 << 39, 1 << 39]))
        .unwrap();
    assert_eq!(y.shape(), &[1, 2, 6, 6]);
    assert!(y.to_vec().iter().all(|&v| v == 1.0));
    // Empty tensors with huge other axes: zero strides, no overflow.
    let e = T::from_vec(vec![], [0, MAX, 2]).unwrap();
    assert_eq!(e.len(), 0);
    assert!(e.transpose(0, 2).unwrap().to_vec().is_empty());
    assert!(e
        .permute(&[2, 1, 0])
        .unwrap()
        .contiguous()
        .to_vec()
        .is_empty());
}

/// Small values, or values so large that no machine could allocate what
/// they ask for (values that are merely large, such as 2^32 elements, would
/// make the test allocate for real).
fn near_max() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..6,
        Just(usize::MAX),
        Just(usize::MAX / 2 + 1),
        Just(1usize << 50),
        Just(1usize << 62),
        (0usize..4).prop_map(|k| usize::MAX - k),
    ]
}

fn any_axis() -> impl Strategy<Value = isize> {
    prop_oneof![-4isize..4, Just(isize::MAX), Just(isize::MIN)]
}

fn small_tensor() -> impl Strategy<Value = T> {
    prop::collection::vec(0usize..4, 0..4).prop_map(|s| {
        let n: usize = s.iter().product();
        T::from_vec((0..n).map(|v| v as f32 * 0.5 - 1.0).collect(), s).unwrap()
    })
}

/// Elements of a result are finite reads of real storage: `to_vec` of a
/// view gives as many elements as its shape claims.
fn sane(t: &T) -> bool {
    t.to_vec().len() == t.len() && t.shape().iter().product::<usize>() == t.len()
}

fn no_panic<R>(
    f: impl FnOnce() -> Result<R, Error>,
    check: impl FnOnce(&R) -> bool,
) -> Result<(), TestCaseError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Err(_) => Err(TestCaseError::fail("panicked")),
        Ok(Ok(r)) => {
            prop_assert!(check(&r), "insane result");
            Ok(())
        }
        Ok(Err(_)) => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn shape_ops_never_panic(x in small_tensor(), a in any_axis(), b in any_axis(),
                             n1 in near_max(), n2 in near_max(), step in near_max(),
                             s in any::<isize>(), e in prop::option::of(any::<isize>())) {
        no_panic(|| x.narrow(a, n1, n2), sane)?;
        no_panic(|| x.slice(a, s, e, step), sane)?;
        no_panic(|| x.transpose(a, b), sane)?;
        no_panic(|| x.unsqueeze(a), sane)?;
        no_panic(|| x.squeeze(a), sane)?;
        no_panic(|| x.flatten(a, b), sane)?;
        no_panic(|| x.split(n1, a).map(|v| v.len()), |_| true)?;
        no_panic(|| x.chunk(n1, a).map(|v| v.len()), |_| true)?;
        no_panic(|| x.split_sizes(&[n1, n2], a).map(|v| v.len()), |_| true)?;
        no_panic(|| x.reshape_usize(&[n1, n2]), sane)?;
        no_panic(|| x.reshape([a, b]), sane)?;
        no_panic(|| x.broadcast_to([n1, n2]), sane)?;
        no_panic(|| x.sum_to(&[n1]), sane)?;
        no_panic(|| x.pad(&vec![(n1, n2); x.ndim()], 0.0), sane)?;
        no_panic(|| x.permute(&[a, b]), sane)?;
        no_panic(|| x.index_select(a, &[n1, n2]), sane)?;
        no_panic(|| x.at([n1, n2]), |_| true)?;
        no_panic(|| T::try_zeros([n1, n2]), sane)?;
        no_panic(|| T::concat(&[&x, &x], a), sane)?;
        no_panic(|| T::stack(&[&x, &x], a), sane)?;
    }

    #[test]
    fn reductions_never_panic(x in small_tensor(), a in any_axis(), b in any_axis(), keep in any::<bool>()) {
        no_panic(|| x.sum_axes(&[a, b], keep), sane)?;
        no_panic(|| x.mean_axes(&[a], keep), sane)?;
        no_panic(|| x.max_axes(&[a], keep), sane)?;
        no_panic(|| x.min_axes(&[b], keep), sane)?;
        no_panic(|| x.prod_axes(&[a], keep), sane)?;
        no_panic(|| x.var_axes(&[a], keep), sane)?;
        no_panic(|| x.std_axes(&[b], keep), sane)?;
        no_panic(|| x.logsumexp_axes(&[a], keep), sane)?;
        no_panic(|| x.softmax(a), sane)?;
        no_panic(|| x.log_softmax(b), sane)?;
        no_panic(|| x.argmax_axes(&[a], keep).map(|i| i.len()), |_| true)?;
    }

    #[test]
    fn conv_and_pool_geometry_never_panics(
        n in 0usize..3, c in 1usize..4, h in 0usize..6, w in 0usize..6,
        o in 1usize..4, k in near_max(), stride in near_max(), pad in near_max(),
        dil in near_max(), groups in near_max(),
    ) {
        let x = T::ones([n, c, h, w]);
        let kk = k.min(4);
        let wt = T::ones([o, c, kk, kk]);
        let p = conv([stride, 1], [pad, 0], [dil, 1], groups);
        no_panic(|| x.conv2d(&wt, None, p), sane)?;
        no_panic(|| x.conv_transpose2d(&T::ones([c, o, kk, kk]), p), sane)?;
        no_panic(|| T::ones([n, c, w]).conv1d(&T::ones([o, c, kk]), None,
            Conv1dParams { stride, padding: pad, dilation: dil, groups }), sane)?;
        let pp = pool([k, 2], [stride, 1], [pad, 0]);
        no_panic(|| x.max_pool2d(pp), sane)?;
        no_panic(|| x.avg_pool2d(pp), sane)?;
        no_panic(|| x.avg_pool2d_backward(&[n, c, h.max(1) * k.min(3), w], pp), sane)?;
    }

    #[test]
    fn indexing_never_panics(x in small_tensor(), a in any_axis(), i in near_max(), j in near_max(), classes in near_max()) {
        let idx = indices(vec![i, j], [1, 2]).unwrap();
        no_panic(|| x.gather(a, &idx), sane)?;
        no_panic(|| x.scatter_add(a, &idx, &T::ones([1, 2])), sane)?;
        no_panic(|| x.index_add(a, &[i], &x), sane)?;
        no_panic(|| T::one_hot(indices(vec![i.min(3)], [1]).unwrap(), classes), sane)?;
        no_panic(|| T::arange(0.0, i as f32, 1.0 / (1 + j % 7) as f32), sane)?;
    }
}
