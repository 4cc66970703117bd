//! Bad inputs to the autograd crate: `Var` ops (which must refuse what
//! their `Tensor` counterparts refuse, with the same op names), the
//! gradient entry points, custom ops and the functional helpers. One table,
//! each case asserting the error variant and the words its message must
//! contain; then a proptest that drives Var ops on a tape with random
//! arguments (values near `usize::MAX` included) and differentiates the
//! result, requiring `Ok` or `Err`, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use proptest::prelude::*;
use tapir_autograd::{
    hvp, CustomOp, Error, GradientOptions, Parameter, Result, Tape, Unconnected, Var,
};
use tapir_tensor::{indices, Conv1dParams, Conv2dParams, Pool2dParams, Tensor};

type T = Tensor<f64>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A tensor error of this shape (`Shape`, `InvalidArgument`, ...).
    TShape,
    TArg,
    TAxis,
    TIndex,
    TBroadcast,
    TTooLarge,
    TapeMismatch,
    NonScalar,
    OutputGrad,
    ParamShape,
    Unconnected,
    Custom,
}

fn kind_of(e: &Error) -> Option<Kind> {
    use tapir_tensor::Error as TE;
    Some(match e {
        Error::Tensor(TE::Shape { .. }) => Kind::TShape,
        Error::Tensor(TE::InvalidArgument { .. }) => Kind::TArg,
        Error::Tensor(TE::Axis { .. }) => Kind::TAxis,
        Error::Tensor(TE::Index { .. }) => Kind::TIndex,
        Error::Tensor(TE::Broadcast { .. }) => Kind::TBroadcast,
        Error::Tensor(TE::TooLarge { .. }) => Kind::TTooLarge,
        Error::TapeMismatch { .. } => Kind::TapeMismatch,
        Error::NonScalarTarget { .. } => Kind::NonScalar,
        Error::OutputGradShape { .. } => Kind::OutputGrad,
        Error::ParameterShapeChanged { .. } => Kind::ParamShape,
        Error::Unconnected { .. } => Kind::Unconnected,
        Error::Custom { .. } => Kind::Custom,
        _ => return None,
    })
}

struct Case {
    name: &'static str,
    kind: Kind,
    needles: &'static [&'static str],
    run: Box<dyn Fn() -> Result<()>>,
}

macro_rules! case {
    ($name:expr, $kind:ident, [$($n:expr),*], |$tape:ident| $body:expr) => {
        Case {
            name: $name,
            kind: Kind::$kind,
            needles: &[$($n),*],
            run: Box::new(move || {
                let $tape = Tape::<f64>::new();
                let _ = &$tape;
                $body?;
                Ok(())
            }),
        }
    };
}

fn ones(s: &[usize]) -> T {
    T::ones(s)
}

const MAX: usize = usize::MAX;

/// A custom op whose backward returns whatever shape it was built with.
struct BadShape(Vec<usize>, usize);
impl CustomOp<f64> for BadShape {
    fn name(&self) -> &str {
        "bad_shape"
    }
    fn forward(&self, inputs: &[&T]) -> Result<T> {
        Ok(inputs[0].clone())
    }
    fn backward<'t>(
        &self,
        _inputs: &[Var<'t, f64>],
        _output: &Var<'t, f64>,
        grad: &Var<'t, f64>,
    ) -> Result<Vec<Option<Var<'t, f64>>>> {
        Ok(vec![Some(grad.lift(T::ones(&self.0))); self.1])
    }
}

fn table() -> Vec<Case> {
    let mut t = vec![
        // Family 2: Var ops check what their Tensor ops check.
        case!(
            "conv2d bias length",
            TShape,
            ["conv2d", "bias", "[3]", "[4]"],
            |tape| {
                tape.var(ones(&[1, 2, 5, 5])).conv2d(
                    &tape.var(ones(&[4, 2, 3, 3])),
                    Some(&tape.var(ones(&[3]))),
                    Conv2dParams::default(),
                )
            }
        ),
        case!(
            "conv2d bias 2-D",
            TShape,
            ["conv2d", "bias", "[4, 1]"],
            |tape| {
                tape.var(ones(&[1, 2, 5, 5])).conv2d(
                    &tape.var(ones(&[4, 2, 3, 3])),
                    Some(&tape.var(ones(&[4, 1]))),
                    Conv2dParams::default(),
                )
            }
        ),
        case!(
            "conv2d bias untracked",
            TShape,
            ["conv2d", "bias"],
            |tape| {
                Var::untracked(ones(&[1, 2, 5, 5])).conv2d(
                    &Var::untracked(ones(&[4, 2, 3, 3])),
                    Some(&Var::untracked(ones(&[5]))),
                    Conv2dParams::default(),
                )
            }
        ),
        case!(
            "conv1d bias 2-D",
            TShape,
            ["conv1d", "bias", "[2, 3]"],
            |tape| {
                tape.var(ones(&[1, 2, 5])).conv1d(
                    &tape.var(ones(&[3, 2, 2])),
                    Some(&tape.var(ones(&[2, 3]))),
                    Conv1dParams::default(),
                )
            }
        ),
        case!(
            "conv1d bias length",
            TShape,
            ["conv1d", "bias", "[2]"],
            |tape| {
                tape.var(ones(&[1, 2, 5])).conv1d(
                    &tape.var(ones(&[3, 2, 2])),
                    Some(&tape.var(ones(&[2]))),
                    Conv1dParams::default(),
                )
            }
        ),
        case!(
            "conv1d channels name conv1d",
            TShape,
            ["conv1d", "[1, 2, 5]", "[3, 4, 2]"],
            |tape| {
                tape.var(ones(&[1, 2, 5])).conv1d(
                    &tape.var(ones(&[3, 4, 2])),
                    None,
                    Conv1dParams::default(),
                )
            }
        ),
        case!(
            "conv1d stride zero names conv1d",
            TArg,
            ["conv1d", "stride 0"],
            |tape| {
                tape.var(ones(&[1, 2, 5])).conv1d(
                    &tape.var(ones(&[3, 2, 2])),
                    None,
                    Conv1dParams {
                        stride: 0,
                        ..Default::default()
                    },
                )
            }
        ),
        case!("conv1d rank", TShape, ["conv1d", "(N, C, L)"], |tape| {
            tape.var(ones(&[2, 5])).conv1d(
                &tape.var(ones(&[3, 2, 2])),
                None,
                Conv1dParams::default(),
            )
        }),
        case!(
            "conv_transpose2d names itself",
            TShape,
            ["conv_transpose2d"],
            |tape| {
                tape.var(ones(&[1, 3, 3, 3]))
                    .conv_transpose2d(&tape.var(ones(&[4, 2, 3, 3])), Conv2dParams::default())
            }
        ),
        case!(
            "conv2d stride zero shows values",
            TArg,
            ["conv2d", "stride 0", "dilation 1"],
            |tape| {
                tape.var(ones(&[1, 2, 5, 5])).conv2d(
                    &tape.var(ones(&[4, 2, 3, 3])),
                    None,
                    Conv2dParams {
                        stride: [0, 1],
                        ..Default::default()
                    },
                )
            }
        ),
        case!(
            "sum_to same element count",
            TShape,
            ["sum_to", "[6]", "[2, 3]"],
            |tape| tape.var(ones(&[2, 3])).sum_to(&[6])
        ),
        case!("sum_to transposed", TShape, ["sum_to", "[3, 2]"], |tape| {
            tape.var(ones(&[2, 3])).sum_to(&[3, 2])
        }),
        case!("sum_to more axes", TShape, ["sum_to"], |tape| tape
            .var(ones(&[2, 3]))
            .sum_to(&[1, 2, 3])),
        case!("sum_to wrong size", TShape, ["sum_to", "[2, 2]"], |tape| {
            tape.var(ones(&[2, 3])).sum_to(&[2, 2])
        }),
        case!(
            "mse other shape",
            TShape,
            ["mse", "[2, 3]", "[3]"],
            |tape| tape.var(ones(&[2, 3])).mse(&tape.constant(ones(&[3])))
        ),
        case!("mse transposed target", TShape, ["mse", "[3, 2]"], |tape| {
            tape.var(ones(&[2, 3])).mse(&tape.constant(ones(&[3, 2])))
        }),
        case!("mse untracked", TShape, ["mse"], |tape| Var::untracked(
            ones(&[2])
        )
        .mse(&Var::untracked(ones(&[1])))),
        case!(
            "stack names stack",
            TShape,
            ["stack", "[2, 3]", "[3, 2]"],
            |tape| { Var::stack(&[&tape.var(ones(&[2, 3])), &tape.var(ones(&[3, 2]))], 0) }
        ),
        case!("stack third differs", TShape, ["stack"], |tape| {
            let a = tape.var(ones(&[2]));
            Var::stack(&[&a, &a, &tape.var(ones(&[3]))], 0)
        }),
        case!(
            "stack empty",
            TArg,
            ["stack", "at least one"],
            |tape| Var::<f64>::stack(&[], 0)
        ),
        case!("stack bad axis", TAxis, ["stack"], |tape| Var::stack(
            &[&tape.var(ones(&[2]))],
            3
        )),
        case!(
            "cross_entropy label",
            TArg,
            ["cross_entropy", "label 5", "3 classes"],
            |tape| tape.var(ones(&[2, 3])).cross_entropy(&[0, 5])
        ),
        case!(
            "cross_entropy label MAX",
            TArg,
            ["cross_entropy", "18446744073709551615"],
            |tape| tape.var(ones(&[1, 3])).cross_entropy(&[MAX])
        ),
        case!(
            "cross_entropy count",
            TArg,
            ["cross_entropy", "3 labels"],
            |tape| tape.var(ones(&[2, 3])).cross_entropy(&[0, 1, 2])
        ),
        case!("cross_entropy rank", TArg, ["cross_entropy"], |tape| tape
            .var(ones(&[3]))
            .cross_entropy(&[0])),
        case!(
            "hvp direction shape",
            TShape,
            ["hvp", "[3]", "[2]"],
            |tape| hvp(|x| Ok(x.square().sum()), &ones(&[3]), &ones(&[2]))
        ),
        case!("hvp direction rank", TShape, ["hvp"], |tape| hvp(
            |x| Ok(x.square().sum()),
            &ones(&[2, 2]),
            &ones(&[4])
        )),
        // Var ops pass the tensor checks through with their names.
        case!("narrow start MAX", TShape, ["narrow"], |tape| tape
            .var(ones(&[3]))
            .narrow(0, MAX, 2)),
        case!("narrow length MAX", TShape, ["narrow"], |tape| tape
            .var(ones(&[3]))
            .narrow(0, 1, MAX)),
        case!("split_sizes wrapping", TShape, ["split"], |tape| tape
            .var(ones(&[3]))
            .split_sizes(&[MAX, 4], 0)),
        case!("split zero", TArg, ["split"], |tape| tape
            .var(ones(&[3]))
            .split(0, 0)),
        case!("chunk zero", TArg, ["chunk"], |tape| tape
            .var(ones(&[3]))
            .chunk(0, 0)),
        case!("slice step zero", TArg, ["slice"], |tape| tape
            .var(ones(&[3]))
            .slice(0, 0, None, 0)),
        case!("pad huge", TTooLarge, ["pad", "bytes"], |tape| tape
            .var(ones(&[3]))
            .pad(&[(1 << 61, 0)], 0.0)),
        case!("pad overflow", TArg, ["pad"], |tape| tape
            .var(ones(&[3]))
            .pad(&[(MAX, 1)], 0.0)),
        case!("broadcast_to huge", TTooLarge, ["broadcast_to"], |tape| {
            tape.var(ones(&[1])).broadcast_to([1 << 62, 4])
        }),
        case!("reshape wrapping", TShape, ["reshape"], |tape| tape
            .var(ones(&[4]))
            .reshape_usize(&[(1 << 62) + 1, 4])),
        case!("index_select MAX", TIndex, ["index_select"], |tape| tape
            .var(ones(&[3]))
            .index_select(0, &[MAX])),
        case!("index_add MAX", TIndex, ["index_add"], |tape| tape
            .var(ones(&[3]))
            .index_add(0, &[MAX], &tape.var(ones(&[1])))),
        case!("gather MAX", TIndex, ["gather"], |tape| tape
            .var(ones(&[3]))
            .gather(0, indices(vec![MAX], [1]).unwrap())),
        case!("scatter_add MAX", TIndex, ["scatter_add"], |tape| tape
            .var(ones(&[3]))
            .scatter_add(
                0,
                indices(vec![MAX], [1]).unwrap(),
                &tape.var(ones(&[1]))
            )),
        case!("scatter_add src small", TShape, ["scatter_add"], |tape| {
            tape.var(ones(&[3])).scatter_add(
                0,
                indices(vec![0, 1], [2]).unwrap(),
                &tape.var(ones(&[1])),
            )
        }),
        case!(
            "max_pool2d padding",
            TArg,
            ["max_pool2d", "padding"],
            |tape| tape.var(ones(&[1, 1, 4, 4])).max_pool2d(Pool2dParams {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [MAX, 0]
            })
        ),
        case!(
            "avg_pool2d kernel zero",
            TArg,
            ["avg_pool2d", "kernel"],
            |tape| tape.var(ones(&[1, 1, 4, 4])).avg_pool2d(Pool2dParams {
                kernel: [0, 2],
                stride: [2, 2],
                padding: [0, 0]
            })
        ),
        case!(
            "conv2d padding huge",
            TTooLarge,
            ["conv2d", "bytes"],
            |tape| {
                tape.var(ones(&[1, 2, 5, 5])).conv2d(
                    &tape.var(ones(&[4, 2, 3, 3])),
                    None,
                    Conv2dParams {
                        padding: [1 << 31, 1 << 31],
                        ..Default::default()
                    },
                )
            }
        ),
        case!(
            "conv2d dilation overflow",
            TArg,
            ["conv2d", "dilation"],
            |tape| {
                tape.var(ones(&[1, 2, 5, 5])).conv2d(
                    &tape.var(ones(&[4, 2, 3, 3])),
                    None,
                    Conv2dParams {
                        dilation: [MAX, 1],
                        ..Default::default()
                    },
                )
            }
        ),
        case!("matmul inner", TShape, ["matmul"], |tape| tape
            .var(ones(&[2, 3]))
            .matmul(&tape.var(ones(&[2, 3])))),
        case!("add broadcast", TBroadcast, ["add"], |tape| tape
            .var(ones(&[2, 3]))
            .add(&tape.var(ones(&[2])))),
        case!("where_ broadcast", TBroadcast, ["where_"], |tape| {
            tape.var(ones(&[2, 3]))
                .where_(&ones(&[4]), &tape.var(ones(&[3])))
        }),
        case!("softmax axis", TAxis, ["softmax"], |tape| tape
            .var(ones(&[2, 3]))
            .softmax(2)),
        case!("sum axis MIN", TAxis, ["sum"], |tape| tape
            .var(ones(&[2, 3]))
            .sum_axes(&[isize::MIN], false)),
        case!("std axis names std", TAxis, ["std"], |tape| tape
            .var(ones(&[2, 3]))
            .std_axes(&[5], false)),
        case!("permute repeated", TShape, ["permute"], |tape| tape
            .var(ones(&[2, 3]))
            .permute(&[1, 1])),
        case!("unsqueeze MAX", TAxis, ["unsqueeze"], |tape| tape
            .var(ones(&[2, 3]))
            .unsqueeze(isize::MAX)),
        case!("index_select bad axis", TAxis, ["index_select"], |tape| {
            tape.var(ones(&[2, 3])).index_select(2, &[0])
        }),
        case!("gather rank", TShape, ["gather"], |tape| tape
            .var(ones(&[2, 3]))
            .gather(1, indices(vec![0], [1]).unwrap())),
        case!("flatten reversed", TArg, ["flatten"], |tape| tape
            .var(ones(&[2, 3]))
            .flatten(1, 0)),
        case!("transpose bad axis", TAxis, ["transpose"], |tape| tape
            .var(ones(&[2, 3]))
            .transpose(0, 5)),
        case!("log_softmax axis", TAxis, ["log_softmax"], |tape| tape
            .var(ones(&[2, 3]))
            .log_softmax(-3)),
        case!("concat mismatch", TShape, ["concat"], |tape| Var::concat(
            &[&tape.var(ones(&[2, 3])), &tape.var(ones(&[2, 2]))],
            0
        )),
        case!("clamp reversed", TArg, ["clamp"], |tape| tape
            .var(ones(&[2]))
            .clamp(Some(1.0), Some(-1.0))),
        // The gradient entry points.
        case!(
            "two tapes",
            TapeMismatch,
            ["add", "different tapes"],
            |tape| {
                let other = Tape::new();
                let r = tape.var(ones(&[2])).add(&other.var(ones(&[2]))).map(|_| ());
                r
            }
        ),
        case!(
            "target from another tape",
            TapeMismatch,
            ["gradient"],
            |tape| {
                let other = Tape::new();
                let y = other.var(ones(&[1])).sum();
                tape.gradient_vars(&y, &[], &GradientOptions::default())
            }
        ),
        case!(
            "source from another tape",
            TapeMismatch,
            ["gradient"],
            |tape| {
                let other = Tape::new();
                let x = tape.var(ones(&[2]));
                let y = x.sum();
                tape.gradient_vars(&y, &[&other.var(ones(&[2]))], &GradientOptions::default())
            }
        ),
        case!(
            "non-scalar target",
            NonScalar,
            ["gradient", "[2, 3]", "output gradient"],
            |tape| {
                let x = tape.var(ones(&[2, 3]));
                tape.gradient_vars(&x.exp(), &[&x], &GradientOptions::default())
            }
        ),
        case!(
            "output gradient shape",
            OutputGrad,
            ["gradient", "[3]", "[2, 3]"],
            |tape| {
                let x = tape.var(ones(&[2, 3]));
                let opts = GradientOptions {
                    output_grad: Some(ones(&[3])),
                    unconnected: Unconnected::None,
                };
                tape.gradient_vars(&x.exp(), &[&x], &opts)
            }
        ),
        case!(
            "gradient_graph output gradient shape",
            OutputGrad,
            ["gradient"],
            |tape| {
                let x = tape.var(ones(&[2, 3]));
                tape.gradient_graph(&x.exp(), &[&x], Some(&ones(&[6])))
            }
        ),
        case!(
            "parameter resized",
            ParamShape,
            ["gradient", "'w'", "[2]", "[3]"],
            |tape| {
                let w = Parameter::new("w", ones(&[2]));
                let y = tape.watch(&w).sum();
                w.set(ones(&[3]));
                tape.gradient(&y, [&w])
            }
        ),
        case!(
            "unconnected under Error",
            Unconnected,
            ["gradient", "'b'"],
            |tape| {
                let (w, b) = (
                    Parameter::new("w", ones(&[2])),
                    Parameter::new("b", ones(&[2])),
                );
                let y = tape.watch(&w).sum();
                let _ = tape.watch(&b);
                let opts = GradientOptions {
                    output_grad: None,
                    unconnected: Unconnected::Error,
                };
                tape.gradient_with(&y, [&w, &b], &opts)
            }
        ),
        case!(
            "custom op wrong shape",
            Custom,
            ["bad_shape", "[5]", "[2]"],
            |tape| {
                let x = tape.var(ones(&[2]));
                let y = Var::custom(Arc::new(BadShape(vec![5], 1)), &[&x])?.sum();
                tape.gradient_vars(&y, &[&x], &GradientOptions::default())
            }
        ),
        case!(
            "custom op wrong count",
            Custom,
            ["bad_shape", "2 gradients for 1 inputs"],
            |tape| {
                let x = tape.var(ones(&[2]));
                let y = Var::custom(Arc::new(BadShape(vec![2], 2)), &[&x])?.sum();
                tape.gradient_vars(&y, &[&x], &GradientOptions::default())
            }
        ),
        case!(
            "custom op wrong shape, second order",
            Custom,
            ["bad_shape"],
            |tape| {
                let x = tape.var(ones(&[2]));
                let y = Var::custom(Arc::new(BadShape(vec![1, 2], 1)), &[&x])?.sum();
                tape.gradient_graph(&y, &[&x], None)
            }
        ),
    ];
    // Each Var binary op refuses a mismatched pair under its own name.
    type Bin = for<'t> fn(&Var<'t, f64>, &Var<'t, f64>) -> Result<Var<'t, f64>>;
    let bins: [(&'static str, Bin); 7] = [
        ("sub", |a, b| a.sub(b)),
        ("mul", |a, b| a.mul(b)),
        ("div", |a, b| a.div(b)),
        ("pow", |a, b| a.pow(b)),
        ("maximum", |a, b| a.maximum(b)),
        ("minimum", |a, b| a.minimum(b)),
        ("add", |a, b| a.add(b)),
    ];
    for (name, f) in bins {
        for (a, b) in [
            (vec![2, 3], vec![2]),
            (vec![4], vec![3]),
            (vec![2, 1, 3], vec![2, 2]),
        ] {
            t.push(Case {
                name,
                kind: Kind::TBroadcast,
                needles: match name {
                    "sub" => &["sub"],
                    "mul" => &["mul"],
                    "div" => &["div"],
                    "pow" => &["pow"],
                    "maximum" => &["maximum"],
                    "minimum" => &["minimum"],
                    _ => &["add"],
                },
                run: Box::new(move || {
                    let tape = Tape::new();
                    f(&tape.var(ones(&a)), &tape.var(ones(&b))).map(|_| ())
                }),
            });
        }
    }
    // Each Var reduction refuses bad axes under its own name.
    type Red = for<'t> fn(&Var<'t, f64>, &[isize], bool) -> Result<Var<'t, f64>>;
    let reds: [(&'static str, Red); 8] = [
        ("sum", |x, a, k| x.sum_axes(a, k)),
        ("mean", |x, a, k| x.mean_axes(a, k)),
        ("max", |x, a, k| x.max_axes(a, k)),
        ("min", |x, a, k| x.min_axes(a, k)),
        ("prod", |x, a, k| x.prod_axes(a, k)),
        ("var", |x, a, k| x.var_axes(a, k)),
        ("std", |x, a, k| x.std_axes(a, k)),
        ("logsumexp", |x, a, k| x.logsumexp_axes(a, k)),
    ];
    for (name, f) in reds {
        for axes in [vec![2isize], vec![-3], vec![isize::MAX], vec![isize::MIN]] {
            t.push(Case {
                name,
                kind: Kind::TAxis,
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
                run: Box::new(move || {
                    let tape = Tape::new();
                    f(&tape.var(ones(&[2, 3])), &axes, false).map(|_| ())
                }),
            });
        }
    }
    t
}

#[test]
fn bad_inputs_give_the_right_error_naming_the_op() {
    let cases = table();
    assert!(cases.len() >= 120, "{} cases", cases.len());
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

/// `Gradients` indexing is the documented panicking form; `get` is its
/// `Option` form.
#[test]
fn gradients_index_panics_as_documented_and_get_does_not() {
    let (w, b) = (
        Parameter::new("w", ones(&[2])),
        Parameter::new("b", ones(&[2])),
    );
    let tape = Tape::new();
    let y = tape.watch(&w).sum();
    let grads = tape.gradient(&y, [&w]).unwrap();
    assert!(grads.get(&b).is_none());
    assert!(catch_unwind(AssertUnwindSafe(|| grads[&b].clone())).is_err());
}

fn near_max() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..6,
        Just(usize::MAX),
        Just(1usize << 50),
        Just(1usize << 62)
    ]
}

fn any_axis() -> impl Strategy<Value = isize> {
    prop_oneof![-4isize..4, Just(isize::MAX), Just(isize::MIN)]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4, 0..4)
}

/// Runs `f` on a tape over a Var of `shape`, then asks for the gradient of
/// the sum of its result, first and second order: any step may refuse,
/// none may panic.
fn no_panic(
    shape: &[usize],
    f: impl for<'t> Fn(&Var<'t, f64>) -> Result<Var<'t, f64>>,
) -> std::result::Result<(), TestCaseError> {
    let r = catch_unwind(AssertUnwindSafe(|| -> Result<()> {
        let tape = Tape::new();
        let x = tape.var(T::ones(shape));
        let y = f(&x)?.sum();
        let g = tape.gradient_vars(&y, &[&x], &GradientOptions::default())?;
        if let Some(g) = &g[0] {
            assert_eq!(g.shape(), x.shape());
        }
        if let Some(g) = &tape.gradient_graph(&y, &[&x], None)?[0] {
            let s = g.sum();
            tape.gradient_vars(&s, &[&x], &GradientOptions::default())?;
        }
        Ok(())
    }));
    prop_assert!(r.is_ok(), "panicked");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn var_ops_never_panic(s in shape(), a in any_axis(), b in any_axis(), n1 in near_max(),
                           n2 in near_max(), step in near_max(), keep in any::<bool>(),
                           st in any::<isize>(), t2 in shape()) {
        no_panic(&s, |x| x.narrow(a, n1, n2))?;
        no_panic(&s, |x| x.slice(a, st, None, step))?;
        no_panic(&s, |x| x.transpose(a, b))?;
        no_panic(&s, |x| x.unsqueeze(a)?.squeeze(b))?;
        no_panic(&s, |x| x.flatten(a, b))?;
        no_panic(&s, |x| x.sum_axes(&[a, b], keep))?;
        no_panic(&s, |x| x.max_axes(&[a], keep))?;
        no_panic(&s, |x| x.std_axes(&[a], keep))?;
        no_panic(&s, |x| x.logsumexp_axes(&[b], keep))?;
        no_panic(&s, |x| x.softmax(a))?;
        no_panic(&s, |x| x.reshape_usize(&[n1, n2]))?;
        no_panic(&s, |x| x.broadcast_to([n1, n2]))?;
        no_panic(&s, |x| x.sum_to(&t2))?;
        no_panic(&s, |x| x.pad(&vec![(n1 % 3, n2); x.ndim()], 0.5))?;
        no_panic(&s, |x| x.index_select(a, &[n1, n2]))?;
        no_panic(&s, |x| x.split_sizes(&[n1, n2], a).map(|v| v[0].clone()))?;
        no_panic(&s, |x| x.chunk(n1, a).map(|v| v[0].clone()))?;
        no_panic(&s, |x| Var::stack(&[x, x], a))?;
        no_panic(&s, |x| Var::concat(&[x, x], a))?;
        no_panic(&s, |x| x.add(&x.lift(T::ones(&t2))))?;
        no_panic(&s, |x| x.mse(&x.lift(T::ones(&t2))))?;
        no_panic(&s, |x| x.matmul(&x.lift(T::ones(&t2))))?;
        no_panic(&s, |x| x.cross_entropy(&[n1, n2]))?;
        no_panic(&s, |x| x.gather(a, indices(vec![n1], [1]).unwrap()))?;
        no_panic(&s, |x| x.scatter_add(a, indices(vec![n1 % 3], [1]).unwrap(), &x.lift(T::ones([2]))))?;
    }

    #[test]
    fn conv_and_pool_never_panic(n in 0usize..3, c in 1usize..4, h in 0usize..6, o in 1usize..3,
                                 k in 1usize..4, stride in near_max(), pad in near_max(),
                                 dil in near_max(), groups in near_max(), bias in 0usize..5) {
        let p = Conv2dParams { stride: [stride, 1], padding: [pad, 0], dilation: [dil, 1], groups };
        no_panic(&[n, c, h, h], |x| x.conv2d(&x.lift(T::ones([o, c, k, k])), Some(&x.lift(T::ones([bias]))), p))?;
        no_panic(&[n, c, h], |x| x.conv1d(&x.lift(T::ones([o, c, k])), Some(&x.lift(T::ones([bias]))),
            Conv1dParams { stride, padding: pad, dilation: dil, groups }))?;
        no_panic(&[n, c, h, h], |x| x.conv_transpose2d(&x.lift(T::ones([c, o, k, k])), p))?;
        let pp = Pool2dParams { kernel: [k, k], stride: [stride, 1], padding: [pad, 0] };
        no_panic(&[n, c, h, h], |x| x.max_pool2d(pp))?;
        no_panic(&[n, c, h, h], |x| x.avg_pool2d(pp))?;
    }
}
