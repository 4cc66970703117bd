//! Every differentiable op through one table and one `gradcheck` (central
//! differences in f64), first and second order: broadcasting, non-contiguous
//! inputs (transposed, sliced) and partial-axis reductions included.

use tapir_autograd::{gradcheck, primitive_names, GradcheckOptions, Result, Tape, Var};
use tapir_tensor::{indices, Conv1dParams, Conv2dParams, GeluApprox, Pool2dParams, Rng, Tensor};

type F = for<'t> fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>;

/// Input domains, chosen to keep off poles and kinks.
enum Dom {
    /// Standard normal.
    Normal,
    /// Uniform in [0.5, 2): for log, sqrt, pow bases, division.
    Positive,
    /// Distinct values about 0.1 apart, never 0 and never shared between
    /// tensors (for max/min, relu, abs, ...: ties and kinks are avoided).
    Distinct,
}

struct Case {
    name: &'static str,
    inputs: Vec<(Vec<usize>, Dom)>,
    f: F,
    second_order: bool,
}

fn case(name: &'static str, inputs: Vec<(Vec<usize>, Dom)>, f: F) -> Case {
    Case {
        name,
        inputs,
        f,
        second_order: true,
    }
}

fn n(s: &[usize]) -> (Vec<usize>, Dom) {
    (s.to_vec(), Dom::Normal)
}
fn p(s: &[usize]) -> (Vec<usize>, Dom) {
    (s.to_vec(), Dom::Positive)
}
fn d(s: &[usize]) -> (Vec<usize>, Dom) {
    (s.to_vec(), Dom::Distinct)
}

fn make(shape: &[usize], dom: &Dom, rng: &mut Rng) -> Tensor<f64> {
    match dom {
        Dom::Normal => Tensor::randn(shape, rng),
        Dom::Positive => Tensor::uniform(shape, 0.5, 2.0, rng),
        Dom::Distinct => {
            let len: usize = shape.iter().product();
            let jitter = 0.01 + 0.02 * rng.uniform();
            let mut v: Vec<f64> = (0..len)
                .map(|i| i as f64 * 0.1 - len as f64 * 0.05 + jitter)
                .collect();
            rng.shuffle(&mut v);
            Tensor::from_vec(v, shape).unwrap()
        }
    }
}

fn table() -> Vec<Case> {
    vec![
        // Binary, with broadcasting both ways.
        case("add", vec![n(&[2, 3]), n(&[3])], |v| v[0].add(&v[1])),
        case("sub", vec![n(&[2, 1]), n(&[1, 3])], |v| v[0].sub(&v[1])),
        case("mul", vec![n(&[2, 3]), n(&[2, 1])], |v| v[0].mul(&v[1])),
        case("div", vec![n(&[3]), p(&[2, 3])], |v| v[0].div(&v[1])),
        case("pow", vec![p(&[2, 3]), n(&[3])], |v| v[0].pow(&v[1])),
        case("maximum", vec![d(&[2, 3]), d(&[3])], |v| {
            v[0].maximum(&v[1])
        }),
        case("minimum", vec![d(&[2, 3]), d(&[2, 3])], |v| {
            v[0].minimum(&v[1])
        }),
        case("where", vec![n(&[2, 3]), n(&[3])], |v| {
            let c = Tensor::from_vec(vec![1.0, 0.0], [2, 1])?;
            v[0].where_(&c, &v[1])
        }),
        // Unary.
        case("neg", vec![n(&[4])], |v| Ok(v[0].neg())),
        case("exp", vec![n(&[4])], |v| Ok(v[0].exp())),
        case("log", vec![p(&[4])], |v| Ok(v[0].log())),
        case("log1p", vec![p(&[4])], |v| Ok(v[0].log1p())),
        case("expm1", vec![n(&[4])], |v| Ok(v[0].expm1())),
        case("sqrt", vec![p(&[4])], |v| Ok(v[0].sqrt())),
        case("rsqrt", vec![p(&[4])], |v| Ok(v[0].rsqrt())),
        case("recip", vec![p(&[4])], |v| Ok(v[0].recip())),
        case("square", vec![n(&[4])], |v| Ok(v[0].square())),
        case("pow_scalar", vec![p(&[4])], |v| Ok(v[0].pow_scalar(2.7))),
        case("sin", vec![n(&[4])], |v| Ok(v[0].sin())),
        case("cos", vec![n(&[4])], |v| Ok(v[0].cos())),
        case("tanh", vec![n(&[4])], |v| Ok(v[0].tanh())),
        case("sigmoid", vec![n(&[4])], |v| Ok(v[0].sigmoid())),
        case("erf", vec![n(&[4])], |v| Ok(v[0].erf())),
        case("abs", vec![d(&[6])], |v| Ok(v[0].abs())),
        case("sign", vec![d(&[6])], |v| v[0].sign().add(&v[0])),
        case("relu", vec![d(&[6])], |v| Ok(v[0].relu())),
        case("leaky_relu", vec![d(&[6])], |v| Ok(v[0].leaky_relu(0.1))),
        case("elu", vec![d(&[6])], |v| Ok(v[0].elu(1.3))),
        case("gelu_erf", vec![n(&[6])], |v| {
            Ok(v[0].gelu(GeluApprox::None))
        }),
        case("gelu_tanh", vec![n(&[6])], |v| {
            Ok(v[0].gelu(GeluApprox::Tanh))
        }),
        case("layer_norm", vec![n(&[3, 5]), n(&[5]), n(&[5])], |v| {
            v[0].layer_norm(1, Some(&v[1]), Some(&v[2]), 1e-5)
        }),
        case("layer_norm_2_axes", vec![n(&[2, 3, 4]), n(&[3, 4])], |v| {
            v[0].layer_norm(2, Some(&v[1]), None, 1e-5)
        }),
        case("layer_norm_plain", vec![n(&[4, 6])], |v| {
            v[0].layer_norm(1, None, None, 1e-5)
        }),
        case(
            "batch_norm",
            vec![n(&[3, 2, 2, 2]), n(&[2]), n(&[2])],
            |v| v[0].batch_norm(Some(&v[1]), Some(&v[2]), 1e-5),
        ),
        case("batch_norm_1d_plain", vec![n(&[4, 3])], |v| {
            v[0].batch_norm(None, None, 1e-5)
        }),
        case("group_norm", vec![n(&[2, 4, 3]), n(&[4]), n(&[4])], |v| {
            v[0].group_norm(2, Some(&v[1]), Some(&v[2]), 1e-5)
        }),
        case("rms_norm", vec![n(&[3, 5]), n(&[5])], |v| {
            v[0].rms_norm(1, Some(&v[1]), 1e-6)
        }),
        case(
            "attention_causal",
            vec![n(&[2, 2, 3, 2]), n(&[2, 2, 3, 2]), n(&[2, 2, 3, 2])],
            |v| v[0].scaled_dot_product_attention(&v[1], &v[2], None, true, None),
        ),
        case(
            "attention_masked",
            vec![n(&[1, 2, 3, 2]), n(&[1, 2, 4, 2]), n(&[1, 2, 4, 3])],
            |v| {
                let m = Tensor::from_vec(
                    vec![
                        0.0,
                        -0.5,
                        1.0,
                        f64::NEG_INFINITY,
                        0.3,
                        0.0,
                        -1.0,
                        0.2,
                        0.0,
                        0.0,
                        0.7,
                        -0.2,
                    ],
                    [1, 1, 3, 4],
                )?;
                v[0].scaled_dot_product_attention(&v[1], &v[2], Some(&m), false, Some(0.8))
            },
        ),
        case("qkv_attention_causal", vec![n(&[2, 3, 12])], |v| {
            v[0].qkv_attention(2, None, true, None)
        }),
        case("qkv_attention_masked", vec![n(&[2, 3, 6])], |v| {
            // Per-batch mask, shared by the heads; one blocked key.
            let mut m = vec![0.0; 2 * 9];
            m[1] = f64::NEG_INFINITY;
            m[5] = 0.4;
            m[9 + 3] = -0.7;
            let m = Tensor::from_vec(m, [2, 1, 3, 3])?;
            v[0].qkv_attention(1, Some(&m), false, Some(0.9))
        }),
        case("softmax_cross_entropy_labels", vec![n(&[3, 4])], |v| {
            let t = tapir_tensor::XentTargets::Labels {
                labels: vec![2, 0, 3].into(),
                a: vec![0.9, 1.5, 0.0].into(),
                b: vec![0.05, 0.1, 0.2].into(),
                u: vec![1.0, 0.5, 2.0, 1.0].into(),
            };
            v[0].softmax_cross_entropy(t)
        }),
        case("softmax_cross_entropy_dense", vec![n(&[2, 3])], |v| {
            let t = Tensor::from_vec(vec![0.2, 0.5, 0.3, 0.0, 1.0, 0.0], [2, 3])?;
            v[0].softmax_cross_entropy(tapir_tensor::XentTargets::Dense(t))
        }),
        case("silu", vec![n(&[6])], |v| Ok(v[0].silu())),
        case("softplus", vec![n(&[6])], |v| Ok(v[0].softplus())),
        case("clamp", vec![d(&[8])], |v| {
            v[0].clamp(Some(-0.22), Some(0.13))
        }),
        case("scalar_ops", vec![n(&[3])], |v| {
            Ok(v[0]
                .add_scalar(1.5)
                .mul_scalar(-2.0)
                .div_scalar(3.0)
                .rsub_scalar(0.5))
        }),
        // Reductions over one axis, several axes, all, with and without keepdim.
        case("sum_axis", vec![n(&[2, 3, 4])], |v| {
            v[0].sum_axes(&[1], false)
        }),
        case("sum_axes_keep", vec![n(&[2, 3, 4])], |v| {
            v[0].sum_axes(&[0, 2], true)
        }),
        case("sum_all", vec![n(&[2, 3])], |v| Ok(v[0].sum())),
        case("mean", vec![n(&[2, 3, 4])], |v| v[0].mean_axes(&[-1], true)),
        case("mean_all", vec![n(&[2, 3])], |v| Ok(v[0].mean())),
        case("max", vec![d(&[2, 3, 4])], |v| v[0].max_axes(&[1], false)),
        case("min", vec![d(&[2, 3, 4])], |v| v[0].min_axes(&[0, 2], true)),
        case("prod", vec![p(&[2, 3])], |v| v[0].prod_axes(&[1], false)),
        case("var", vec![n(&[3, 4])], |v| v[0].var_axes(&[1], false)),
        case("std", vec![n(&[3, 4])], |v| v[0].std_axes(&[0], true)),
        case("logsumexp", vec![n(&[2, 3, 4])], |v| {
            v[0].logsumexp_axes(&[1, 2], false)
        }),
        case("softmax", vec![n(&[2, 3, 4])], |v| v[0].softmax(1)),
        case("log_softmax", vec![n(&[3, 4])], |v| v[0].log_softmax(-1)),
        // Matmul: 2-D, batched with broadcast batch, 1-D on either side.
        case("matmul", vec![n(&[3, 4]), n(&[4, 2])], |v| {
            v[0].matmul(&v[1])
        }),
        case(
            "matmul_batched",
            vec![n(&[2, 1, 3, 4]), n(&[3, 4, 2])],
            |v| v[0].matmul(&v[1]),
        ),
        case("matmul_vec", vec![n(&[4]), n(&[2, 4, 3])], |v| {
            v[0].matmul(&v[1])
        }),
        case("matmul_mat_vec", vec![n(&[3, 4]), n(&[4])], |v| {
            v[0].matmul(&v[1])
        }),
        case("dot", vec![n(&[4]), n(&[4])], |v| v[0].matmul(&v[1])),
        // Non-contiguous inputs: a transposed and a sliced operand.
        case("matmul_transposed", vec![n(&[4, 3]), n(&[2, 4])], |v| {
            v[0].t()?.matmul(&v[1].t()?)
        }),
        case("sliced_mul", vec![n(&[4, 6])], |v| {
            let s = v[0].slice(1, 1, None, 2)?;
            s.mul(&s.transpose(0, 1)?.sum_axes(&[0], true)?.t()?)
        }),
        // Shape ops.
        case("reshape", vec![n(&[2, 6])], |v| {
            v[0].reshape([3, -1])?.exp().reshape([12])
        }),
        case("permute", vec![n(&[2, 3, 4])], |v| {
            Ok(v[0].permute(&[2, 0, 1])?.sin())
        }),
        case("transpose", vec![n(&[2, 3, 4])], |v| {
            Ok(v[0].transpose(0, 2)?.square())
        }),
        case("squeeze_unsqueeze_flatten", vec![n(&[2, 1, 3])], |v| {
            Ok(v[0].squeeze(1)?.unsqueeze(0)?.flatten(0, -1)?.tanh())
        }),
        case("broadcast_to", vec![n(&[3, 1])], |v| {
            Ok(v[0].broadcast_to([2, 3, 4])?.square())
        }),
        case("slice_step", vec![n(&[7, 3])], |v| {
            Ok(v[0].slice(0, -6, Some(6), 2)?.square())
        }),
        case("narrow_split_chunk", vec![n(&[6, 2])], |v| {
            let a = v[0].narrow(0, 1, 3)?;
            let parts = v[0].split(4, 0)?;
            let chunks = v[0].chunk(3, 0)?;
            a.sum()
                .add(&parts[1].square().sum())?
                .add(&chunks[2].exp().sum())
        }),
        case("concat", vec![n(&[2, 3]), n(&[1, 3])], |v| {
            Ok(Var::concat(&[&v[0], &v[1], &v[0]], 0)?.square())
        }),
        case("stack", vec![n(&[2, 3]), n(&[2, 3])], |v| {
            Ok(Var::stack(&[&v[0], &v[1]], 1)?.sin())
        }),
        case("pad", vec![n(&[2, 3])], |v| {
            Ok(v[0].pad(&[(1, 0), (2, 1)], 0.5)?.square())
        }),
        // Indexing.
        case("index_select", vec![n(&[4, 3])], |v| {
            Ok(v[0].index_select(0, &[2, 0, 2])?.square())
        }),
        case("gather", vec![n(&[3, 4])], |v| {
            let idx = indices(vec![0, 3, 1, 1, 2, 0], [3, 2])?;
            Ok(v[0].gather(1, &idx)?.square())
        }),
        case("scatter_add", vec![n(&[3, 5]), n(&[2, 5])], |v| {
            let idx = indices(vec![0, 1, 2, 0, 0, 2, 0, 0, 1, 2], [2, 5])?;
            Ok(v[0].scatter_add(0, &idx, &v[1])?.square())
        }),
        case("index_add", vec![n(&[4, 3]), n(&[3, 3])], |v| {
            Ok(v[0].index_add(0, &[1, 3, 1], &v[1])?.square())
        }),
        case("max_min_prod_all", vec![d(&[2, 3])], |v| {
            v[0].max()?.add(&v[0].min()?)?.add(&v[0].prod())
        }),
        case("cross_entropy", vec![n(&[4, 3])], |v| {
            v[0].cross_entropy(&[0, 2, 1, 2])
        }),
        case("mse", vec![n(&[4, 3]), n(&[4, 3])], |v| v[0].mse(&v[1])),
        // Convolution and pooling.
        case(
            "conv2d",
            vec![n(&[2, 4, 5, 6]), n(&[4, 2, 3, 2]), n(&[4])],
            |v| {
                let p = Conv2dParams {
                    stride: [2, 1],
                    padding: [1, 1],
                    dilation: [1, 2],
                    groups: 2,
                };
                Ok(v[0].conv2d(&v[1], Some(&v[2]), p)?.square())
            },
        ),
        case("conv1d", vec![n(&[2, 2, 7]), n(&[3, 2, 3]), n(&[3])], |v| {
            let p = Conv1dParams {
                stride: 2,
                padding: 1,
                dilation: 1,
                groups: 1,
            };
            Ok(v[0].conv1d(&v[1], Some(&v[2]), p)?.square())
        }),
        case(
            "conv_transpose2d",
            vec![n(&[1, 2, 3, 3]), n(&[2, 3, 2, 2])],
            |v| {
                let p = Conv2dParams {
                    stride: [2, 2],
                    ..Default::default()
                };
                Ok(v[0].conv_transpose2d(&v[1], p)?.square())
            },
        ),
        case("max_pool2d", vec![d(&[2, 2, 5, 4])], |v| {
            let p = Pool2dParams {
                kernel: [3, 2],
                stride: [2, 2],
                padding: [1, 0],
            };
            Ok(v[0].max_pool2d(p)?.square())
        }),
        case("avg_pool2d", vec![n(&[2, 2, 5, 4])], |v| {
            let p = Pool2dParams {
                kernel: [3, 2],
                stride: [2, 1],
                padding: [1, 1],
            };
            Ok(v[0].avg_pool2d(p)?.square())
        }),
        // Composite: layer norm, as the nn crate will build it.
        case("layer_norm", vec![n(&[2, 5]), n(&[5]), n(&[5])], |v| {
            let mean = v[0].mean_axes(&[-1], true)?;
            let var = v[0].var_with(&[-1], true, 0)?;
            let z = v[0].sub(&mean)?.div(&var.add_scalar(1e-5).sqrt())?;
            z.mul(&v[1])?.add(&v[2])
        }),
    ]
}

#[test]
fn every_op_passes_gradcheck_first_and_second_order() {
    let mut rng = Rng::seed(11);
    let mut failures = Vec::new();
    let table = table();
    for c in &table {
        let inputs: Vec<Tensor<f64>> = c
            .inputs
            .iter()
            .map(|(s, dom)| make(s, dom, &mut rng))
            .collect();
        let opts = GradcheckOptions {
            second_order: c.second_order,
            ..Default::default()
        };
        if let Err(e) = gradcheck(c.f, &inputs, opts) {
            failures.push(format!("{}: {e}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "gradcheck failures:\n{}",
        failures.join("\n")
    );
}

/// Coverage is enforced, not counted: every built-in primitive must be
/// recorded by some row of the table, in its forward pass or in the
/// recorded backward pass that the second-order check differentiates. A new
/// `Op` variant without a row fails here.
#[test]
fn the_table_covers_every_primitive() {
    let mut rng = Rng::seed(12);
    let mut seen = std::collections::BTreeSet::new();
    for c in table() {
        let tape = Tape::<f64>::new();
        let vars: Vec<Var<'_, f64>> = c
            .inputs
            .iter()
            .map(|(s, dom)| tape.var(make(s, dom, &mut rng)))
            .collect();
        let y = (c.f)(&vars).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let sources: Vec<&Var<'_, f64>> = vars.iter().collect();
        tape.gradient_graph(&y.sum(), &sources, None)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        seen.extend(tape.recorded_ops());
    }
    let missing: Vec<&str> = primitive_names()
        .iter()
        .copied()
        .filter(|n| !seen.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "primitives that no gradcheck row records: {missing:?}"
    );
}

#[test]
fn gradcheck_catches_a_wrong_gradient() {
    use std::sync::Arc;
    use tapir_autograd::CustomOp;
    // sin with the derivative of cos: gradcheck must say so.
    struct WrongSin;
    impl CustomOp<f64> for WrongSin {
        fn name(&self) -> &str {
            "wrong_sin"
        }
        fn forward(&self, x: &[&Tensor<f64>]) -> Result<Tensor<f64>> {
            Ok(x[0].sin())
        }
        fn backward<'t>(
            &self,
            x: &[Var<'t, f64>],
            _out: &Var<'t, f64>,
            g: &Var<'t, f64>,
        ) -> Result<Vec<Option<Var<'t, f64>>>> {
            Ok(vec![Some(g.mul(&x[0].sin().neg())?)])
        }
    }
    let x: Tensor<f64> = Tensor::randn([3], &mut Rng::seed(1));
    let r = gradcheck(
        |v| Var::custom(Arc::new(WrongSin), &[&v[0]]),
        &[x],
        GradcheckOptions::default(),
    );
    assert!(
        matches!(
            r,
            Err(tapir_autograd::Error::GradcheckMismatch { order: "first", .. })
        ),
        "{r:?}"
    );
}
