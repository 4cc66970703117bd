//! Every op against PyTorch/NumPy reference values, in f64 and f32.
//!
//! The values in `fixtures/tensor_ops.txt` were produced by
//! `fixtures/gen_tensor_fixtures.py` (PyTorch, f64); CI only reads them.

use tapir_tensor::{Conv1dParams, Conv2dParams, Float, GeluApprox, Pool2dParams, Tensor};
use tapir_testutil::{parse_fixtures, Case};

const FIXTURES: &str = include_str!("fixtures/tensor_ops.txt");

/// A fixture case name and the check that recomputes it.
type Row = (&'static str, fn(&Case));

/// One row per fixture case: the case name and the code that recomputes it.
fn table<E: Float>() -> Vec<Row> {
    macro_rules! unary {
        ($name:literal, |$x:ident| $e:expr) => {
            ($name, |c: &Case| {
                let $x: Tensor<E> = c.t("x");
                c.check("out", &$e)
            })
        };
    }
    macro_rules! binary {
        ($name:literal, |$x:ident, $y:ident| $e:expr) => {
            ($name, |c: &Case| {
                let $x: Tensor<E> = c.t("x");
                let $y: Tensor<E> = c.t("y");
                c.check("out", &$e.unwrap())
            })
        };
    }
    vec![
        unary!("neg", |x| x.neg()),
        unary!("exp", |x| x.exp()),
        unary!("log", |x| x.log()),
        unary!("log1p", |x| x.log1p()),
        unary!("expm1", |x| x.expm1()),
        unary!("sqrt", |x| x.sqrt()),
        unary!("rsqrt", |x| x.rsqrt()),
        unary!("abs", |x| x.abs()),
        unary!("sign", |x| x.sign()),
        unary!("square", |x| x.square()),
        unary!("sin", |x| x.sin()),
        unary!("cos", |x| x.cos()),
        unary!("tanh", |x| x.tanh()),
        unary!("sigmoid", |x| x.sigmoid()),
        unary!("relu", |x| x.relu()),
        unary!("silu", |x| x.silu()),
        unary!("softplus", |x| x.softplus()),
        unary!("leaky_relu", |x| x.leaky_relu(E::from_f64(0.1))),
        unary!("elu", |x| x.elu(E::from_f64(1.3))),
        unary!("gelu_erf", |x| x.gelu(GeluApprox::None)),
        unary!("gelu_tanh", |x| x.gelu(GeluApprox::Tanh)),
        unary!("clamp", |x| x
            .clamp(Some(E::from_f64(-0.5)), Some(E::from_f64(0.7)))
            .unwrap()),
        unary!("pow_scalar", |x| x.pow_scalar(E::from_f64(2.5))),
        unary!("recip", |x| x.recip()),
        binary!("add", |x, y| x.add(&y)),
        binary!("sub", |x, y| x.sub(&y)),
        binary!("mul", |x, y| x.mul(&y)),
        binary!("div", |x, y| x.div(&y)),
        binary!("pow", |x, y| x.pow(&y)),
        binary!("maximum", |x, y| x.maximum(&y)),
        binary!("minimum", |x, y| x.minimum(&y)),
        binary!("eq", |x, y| x.eq(&y)),
        binary!("ne", |x, y| x.ne(&y)),
        binary!("lt", |x, y| x.lt(&y)),
        binary!("le", |x, y| x.le(&y)),
        binary!("gt", |x, y| x.gt(&y)),
        binary!("ge", |x, y| x.ge(&y)),
        ("where", |c: &Case| {
            let (k, x, y): (Tensor<E>, Tensor<E>, Tensor<E>) = (c.t("cond"), c.t("x"), c.t("y"));
            c.check("out", &x.where_(&k, &y).unwrap())
        }),
        unary!("sum_1", |x| x.sum_axes(&[1], false).unwrap()),
        unary!("sum_02_keep", |x| x.sum_axes(&[0, 2], true).unwrap()),
        unary!("mean_m1", |x| x.mean_axes(&[-1], false).unwrap()),
        unary!("prod_1", |x| x.prod_axes(&[1], false).unwrap()),
        unary!("max_2", |x| x.max_axes(&[2], false).unwrap()),
        unary!("min_0", |x| x.min_axes(&[0], false).unwrap()),
        unary!("var_1", |x| x.var_axes(&[1], false).unwrap()),
        unary!("var0_2", |x| x.var_with(&[2], false, 0).unwrap()),
        unary!("std_02", |x| x.std_axes(&[0, 2], false).unwrap()),
        ("argmax_1", |c: &Case| {
            let x: Tensor<E> = c.t("x");
            assert_eq!(&x.argmax_axes(&[1], false).unwrap(), c.i("out"));
        }),
        ("argmin_2", |c: &Case| {
            let x: Tensor<E> = c.t("x");
            assert_eq!(&x.argmin_axes(&[2], false).unwrap(), c.i("out"));
        }),
        unary!("logsumexp_1", |x| x.logsumexp_axes(&[1], false).unwrap()),
        unary!("sum_all", |x| x.sum()),
        unary!("mean_all", |x| x.mean()),
        unary!("softmax_1", |x| x.softmax(1).unwrap()),
        unary!("log_softmax_1", |x| x.log_softmax(1).unwrap()),
        unary!("softmax_last", |x| x.softmax(-1).unwrap()),
        unary!("log_softmax_last", |x| x.log_softmax(-1).unwrap()),
        unary!("softmax_large", |x| x.softmax(-1).unwrap()),
        unary!("log_softmax_large", |x| x.log_softmax(-1).unwrap()),
        unary!("logsumexp_large", |x| x
            .logsumexp_axes(&[-1], false)
            .unwrap()),
        binary!("mm", |x, y| x.matmul(&y)),
        binary!("mv", |x, y| x.matmul(&y)),
        binary!("vm", |x, y| x.matmul(&y)),
        binary!("dot", |x, y| x.matmul(&y)),
        binary!("bmm_broadcast", |x, y| x.matmul(&y)),
        binary!("matmul_1d_batched", |x, y| x.matmul(&y)),
        ("index_select", |c: &Case| {
            let x: Tensor<E> = c.t("x");
            c.check("out", &x.index_select(0, &c.iv("idx")).unwrap())
        }),
        ("gather", |c: &Case| {
            let x: Tensor<E> = c.t("x");
            c.check("out", &x.gather(1, c.i("idx")).unwrap())
        }),
        ("scatter_add", |c: &Case| {
            let (x, s): (Tensor<E>, Tensor<E>) = (c.t("x"), c.t("src"));
            c.check("out", &x.scatter_add(0, c.i("idx"), &s).unwrap())
        }),
        ("index_add", |c: &Case| {
            let (x, s): (Tensor<E>, Tensor<E>) = (c.t("x"), c.t("src"));
            c.check("out", &x.index_add(0, &c.iv("idx"), &s).unwrap())
        }),
        ("one_hot", |c: &Case| {
            c.check("out", &Tensor::<E>::one_hot(c.i("idx"), 4).unwrap())
        }),
        unary!("pad", |x| x
            .pad(&[(1, 0), (2, 1)], E::from_f64(1.5))
            .unwrap()),
        ("conv2d_basic", |c: &Case| {
            check_conv2d::<E>(c, Conv2dParams::default())
        }),
        ("conv2d_full", |c: &Case| {
            check_conv2d::<E>(
                c,
                Conv2dParams {
                    stride: [2, 1],
                    padding: [1, 2],
                    dilation: [2, 1],
                    groups: 2,
                },
            )
        }),
        ("conv1d", |c: &Case| {
            let p = Conv1dParams {
                stride: 2,
                padding: 1,
                dilation: 2,
                groups: 2,
            };
            let (x, w, b, gy): (Tensor<E>, Tensor<E>, Tensor<E>, Tensor<E>) =
                (c.t("x"), c.t("w"), c.t("b"), c.t("gy"));
            c.check("out", &x.conv1d(&w, Some(&b), p).unwrap());
            c.check("gx", &gy.conv1d_input_grad(&w, x.shape(), p).unwrap());
            c.check("gw", &gy.conv1d_weight_grad(&x, w.shape(), p).unwrap());
        }),
        ("conv_transpose2d", |c: &Case| {
            let (x, w): (Tensor<E>, Tensor<E>) = (c.t("x"), c.t("w"));
            let p = Conv2dParams {
                stride: [2, 1],
                padding: [1, 0],
                ..Default::default()
            };
            c.check("out", &x.conv_transpose2d(&w, p).unwrap())
        }),
        ("max_pool2d", |c: &Case| {
            let (x, gy): (Tensor<E>, Tensor<E>) = (c.t("x"), c.t("gy"));
            let p = Pool2dParams {
                kernel: [3, 2],
                stride: [2, 2],
                padding: [1, 1],
            };
            let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
            c.check("out", &y);
            assert_eq!(&idx, c.i("out2"));
            c.check("gx", &gy.max_pool2d_backward(&idx, x.shape()).unwrap());
        }),
        ("avg_pool2d", |c: &Case| {
            let (x, gy): (Tensor<E>, Tensor<E>) = (c.t("x"), c.t("gy"));
            let p = Pool2dParams {
                kernel: [3, 2],
                stride: [2, 1],
                padding: [1, 1],
            };
            c.check("out", &x.avg_pool2d(p).unwrap());
            c.check("gx", &gy.avg_pool2d_backward(x.shape(), p).unwrap());
        }),
    ]
}

fn check_conv2d<E: Float>(c: &Case, p: Conv2dParams) {
    let (x, w, b, gy): (Tensor<E>, Tensor<E>, Tensor<E>, Tensor<E>) =
        (c.t("x"), c.t("w"), c.t("b"), c.t("gy"));
    c.check("out", &x.conv2d(&w, Some(&b), p).unwrap());
    c.check("gx", &gy.conv2d_input_grad(&w, x.shape(), p).unwrap());
    c.check("gw", &gy.conv2d_weight_grad(&x, w.shape(), p).unwrap());
}

fn run_all<E: Float>() {
    let cases = parse_fixtures(FIXTURES);
    let table = table::<E>();
    // Every fixture has a row and every row has a fixture: nothing is
    // silently skipped.
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for (name, _) in &table {
        assert!(names.contains(name), "no fixture for {name}");
    }
    for case in &cases {
        let (_, f) = table
            .iter()
            .find(|(n, _)| *n == case.name)
            .unwrap_or_else(|| panic!("fixture {} has no test row", case.name));
        f(case);
    }
}

#[test]
fn reference_values_f64() {
    run_all::<f64>();
}

#[test]
fn reference_values_f32() {
    run_all::<f32>();
}
