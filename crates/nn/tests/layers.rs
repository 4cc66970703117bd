//! Each layer and loss against PyTorch: output, and the gradients of
//! Σ out·r for the input and every weight. Fixtures: tests/fixtures/
//! nn_layers.txt, written by tests/fixtures/gen_nn_fixtures.py.

use tapir_autograd::{Parameter, Tape, Var};
use tapir_nn::loss::{self, Reduction};
use tapir_nn::{AvgPool2d, Conv2d, Forward, LayerNorm, Linear, MaxPool2d, Module, Padding};
use tapir_tensor::{Conv2dParams, Float, Rng, Tensor};
use tapir_testutil::{parse_fixtures, Case};

fn cases() -> Vec<Case> {
    parse_fixtures(include_str!("fixtures/nn_layers.txt"))
}

fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// Runs `layer` on the case's `x`, checks `out`, then the gradients of
/// Σ out·r for `x` and for each named parameter of the layer.
fn check_layer<E: Float, M: Module<E> + Forward<E>>(c: &Case, layer: &M) {
    let tape = Tape::new();
    let x = tape.var(c.t::<E>("x"));
    let out = layer.forward(&x).unwrap();
    c.check("out", out.value());
    let loss = out.mul(&tape.constant(c.t("r"))).unwrap().sum();
    let params = layer.named_parameters();
    let grads = tape.gradient(&loss, params.iter().map(|(_, p)| p)).unwrap();
    let gx = tape
        .gradient_vars(&loss, &[&x], &Default::default())
        .unwrap();
    c.check("g_x", gx[0].as_ref().unwrap());
    for (name, p) in &params {
        c.check(&format!("g_{name}"), &grads[p]);
    }
}

fn set<E: Float>(p: &Parameter<E>, c: &Case, label: &str) {
    p.set(c.t(label));
}

fn linear<E: Float>(name: &str) {
    let c = case(name);
    let mut rng = Rng::seed(0);
    let fc = Linear::<E>::new(5, 4, &mut rng);
    set(&fc.weight, &c, "weight");
    set(fc.bias.as_ref().unwrap(), &c, "bias");
    check_layer(&c, &fc);
}

fn conv<E: Float>(name: &str, build: impl Fn(&mut Rng) -> Conv2d<E>) {
    let c = case(name);
    let conv = build(&mut Rng::seed(0));
    set(&conv.weight, &c, "weight");
    set(conv.bias.as_ref().unwrap(), &c, "bias");
    check_layer(&c, &conv);
}

fn layer_norm<E: Float>(name: &str, shape: &[usize]) {
    let c = case(name);
    let ln = LayerNorm::<E>::new(shape);
    set(ln.weight.as_ref().unwrap(), &c, "weight");
    set(ln.bias.as_ref().unwrap(), &c, "bias");
    check_layer(&c, &ln);
}

type LossFn<E> = for<'t> fn(&Var<'t, E>, &Var<'t, E>) -> tapir_autograd::Result<Var<'t, E>>;

/// `check_layer` for a loss of (x, y), y the case's target.
fn check_loss<E: Float>(name: &str, f: LossFn<E>) {
    check_x::<E>(name, &|c, x| f(x, &x.lift(c.t("y"))).unwrap());
}

fn losses<E: Float>() {
    check_loss::<E>("mse", |x, y| loss::mse(x, y, Reduction::Mean));
    check_loss::<E>("l1", |x, y| loss::l1(x, y, Reduction::Sum));
    check_loss::<E>("huber", |x, y| loss::huber(x, y, 0.7, Reduction::Mean));
    check_loss::<E>("bce_with_logits", |x, y| {
        loss::bce_with_logits(x, y, Reduction::None)
    });
    check_loss::<E>("smooth_l1", |x, y| {
        loss::smooth_l1(x, y, 0.6, Reduction::Mean)
    });
}

macro_rules! for_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn f32() {
                super::$body::<f32>();
            }
            #[test]
            fn f64() {
                super::$body::<f64>();
            }
        }
    };
}

fn linear_all<E: Float>() {
    linear::<E>("linear");
    linear::<E>("linear_3d");
}
for_both!(linear_matches_torch, linear_all);

fn conv_all<E: Float>() {
    conv::<E>("conv2d_stride_pad", |r| {
        Conv2d::builder(3, 4, [3, 3])
            .stride([2, 2])
            .padding(Padding::Explicit([1, 1]))
            .build(r)
            .unwrap()
    });
    conv::<E>("conv2d_same_dilated", |r| {
        Conv2d::builder(2, 3, [4, 3])
            .padding(Padding::Same)
            .dilation([1, 2])
            .build(r)
            .unwrap()
    });
    conv::<E>("conv2d_groups", |r| {
        Conv2d::builder(4, 6, [3, 3]).groups(2).build(r).unwrap()
    });
}
for_both!(conv2d_matches_torch, conv_all);

fn pools<E: Float>() {
    check_layer::<E, _>(&case("max_pool2d"), &MaxPool2d::new([2, 2]));
    check_layer::<E, _>(&case("avg_pool2d"), &AvgPool2d::new([2, 2]));
}
for_both!(pooling_matches_torch, pools);

fn norms<E: Float>() {
    layer_norm::<E>("layer_norm", &[6]);
    layer_norm::<E>("layer_norm_2d", &[4, 6]);
    for (name, shape) in [("rms_norm", &[6][..]), ("rms_norm_2d", &[4, 6])] {
        let c = case(name);
        let n = tapir_nn::RmsNorm::<E>::new(shape).eps(1e-6);
        set(n.weight.as_ref().unwrap(), &c, "weight");
        check_layer(&c, &n);
    }
}
for_both!(layer_norm_matches_torch, norms);
for_both!(losses_match_torch, losses);

#[test]
fn wrong_input_shapes_name_the_layer_and_shapes() {
    let mut rng = Rng::seed(0);
    let fc: Linear = Linear::new(5, 4, &mut rng);
    let e = fc
        .forward(&Var::untracked(Tensor::zeros([2, 3])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Linear(5 -> 4)") && e.contains("[2, 3]"), "{e}");
    let conv: Conv2d = Conv2d::new(3, 8, [3, 3], &mut rng);
    let e = conv
        .forward(&Var::untracked(Tensor::zeros([2, 1, 8, 8])))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Conv2d(3 -> 8") && e.contains("[2, 1, 8, 8]"),
        "{e}"
    );
    let ln: LayerNorm = LayerNorm::new(&[6]);
    let e = ln
        .forward(&Var::untracked(Tensor::zeros([2, 5])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("LayerNorm([6])") && e.contains("[2, 5]"), "{e}");
    let e = Conv2d::builder(3, 8, [3, 3])
        .groups(2)
        .build::<f32>(&mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups 2"), "{e}");
    let e = Conv2d::builder(3, 8, [3, 3])
        .stride([2, 2])
        .padding(Padding::Same)
        .build::<f32>(&mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Same needs stride 1"), "{e}");
    let _ = Conv2dParams::default();
}

#[test]
fn default_init_is_torchs_uniform_bound() {
    // U(−1/√fan_in, 1/√fan_in) for weight and bias, as torch.nn.Linear
    // and Conv2d: every value inside the bound, and the spread fills it.
    let mut rng = Rng::seed(1);
    let fc: Linear = Linear::new(400, 300, &mut rng);
    let b = 1.0 / 400f32.sqrt();
    let w = fc.weight.value().to_vec();
    assert!(w.iter().all(|v| v.abs() <= b));
    let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.99 * b, "max {max}, bound {b}");
    let var = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
    assert!((var - b * b / 3.0).abs() < 0.02 * b * b / 3.0, "var {var}");
    let conv: Conv2d = Conv2d::new(16, 8, [5, 5], &mut rng);
    let b = 1.0 / 400f32.sqrt(); // fan_in 16·5·5
    assert!(conv
        .bias
        .as_ref()
        .unwrap()
        .value()
        .to_vec()
        .iter()
        .all(|v| v.abs() <= b));
    let cw = conv.weight.value().to_vec();
    assert!(cw.iter().fold(0f32, |m, v| m.max(v.abs())) > 0.99 * b);
}

#[test]
fn dropout_scales_kept_values_and_is_off_in_eval() {
    use tapir_nn::Dropout;
    let mut d = Dropout::new(0.25, 3);
    let x = Var::untracked(Tensor::<f64>::ones([20000]));
    let y = d.forward(&x).unwrap().into_value().to_vec();
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
    assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
    assert!(y
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-12));
    // Mean preserved in expectation.
    let m = y.iter().sum::<f64>() / y.len() as f64;
    assert!((m - 1.0).abs() < 0.03, "mean {m}");
    Module::<f64>::eval(&mut d);
    assert_eq!(
        d.forward(&x).unwrap().into_value().to_vec(),
        vec![1.0; 20000]
    );
    // Gradient flows through the same mask.
    d.train();
    let tape = Tape::new();
    let xv = tape.var(Tensor::<f64>::ones([100]));
    let y = d.forward(&xv).unwrap();
    let g = tape
        .gradient_vars(&y.sum(), &[&xv], &Default::default())
        .unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec(), y.value().to_vec());
}

#[test]
fn embedding_looks_up_rows_and_its_gradient_counts_uses_except_padding() {
    use tapir_nn::Embedding;
    let emb: Embedding<f64> = Embedding::new(5, 3, &mut Rng::seed(2)).padding_idx(1);
    let w = emb.weight.value().to_vec();
    assert_eq!(&w[3..6], &[0.0, 0.0, 0.0], "padding row starts at zero");
    let tape = Tape::new();
    let ids = [4, 1, 4, 0, 2, 1];
    let y = emb.forward(Some(&tape), &ids, &[2, 3]).unwrap();
    assert_eq!(y.shape(), &[2, 3, 3]);
    let v = y.value().to_vec();
    for (k, &id) in ids.iter().enumerate() {
        assert_eq!(&v[k * 3..k * 3 + 3], &w[id * 3..id * 3 + 3]);
    }
    // d(Σ y)/dW[r] = number of uses of r, and 0 for the padding row.
    let g = tape.gradient(&y.sum(), emb.parameters()).unwrap();
    let gw = g[&emb.weight].to_vec();
    let uses = [1.0, 0.0, 1.0, 0.0, 2.0];
    for r in 0..5 {
        assert_eq!(&gw[r * 3..r * 3 + 3], &[uses[r]; 3], "row {r}");
    }
    let e = emb.forward(None, &[5], &[1]).unwrap_err().to_string();
    assert!(
        e.contains("Embedding(5, 3)") && e.contains("index 5"),
        "{e}"
    );
    let e = emb.forward(None, &[1, 2], &[3]).unwrap_err().to_string();
    assert!(e.contains("do not fill"), "{e}");
    assert!(!emb.forward(None, &[0], &[1]).unwrap().is_tracked());
}

/// A whole-module case: parameters from `p_<name>`, the output of `fwd` on
/// `x`, and the gradients of Σ out·r for `x` and every parameter.
fn check_module<E: Float, M: Module<E>>(
    c: &Case,
    m: &M,
    fwd: impl for<'t> Fn(&M, &Var<'t, E>) -> tapir_autograd::Result<Var<'t, E>>,
) {
    let params = m.named_parameters();
    for (name, p) in &params {
        p.set(c.t(&format!("p_{name}")));
    }
    let tape = Tape::new();
    let x = tape.var(c.t::<E>("x"));
    let out = fwd(m, &x).unwrap();
    c.check("out", out.value());
    let loss = out.mul(&tape.constant(c.t("r"))).unwrap().sum();
    let grads = tape.gradient(&loss, params.iter().map(|(_, p)| p)).unwrap();
    let gx = tape
        .gradient_vars(&loss, &[&x], &Default::default())
        .unwrap();
    c.check("g_x", gx[0].as_ref().unwrap());
    for (name, p) in &params {
        // Unconnected parameters (PyTorch's None) are zero in the fixture.
        let g = grads
            .get(p)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(p.shape()));
        c.check(&format!("g_{name}"), &g);
    }
}

fn attention<E: Float>() {
    use tapir_nn::{AttentionMask, MultiHeadAttention, TransformerBlock};
    let mha = MultiHeadAttention::<E>::new(8, 2, &mut Rng::seed(0));
    let names: Vec<String> = mha.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "in_proj_weight",
            "in_proj_bias",
            "out_proj.weight",
            "out_proj.bias"
        ]
    );
    let causal = mha.clone().causal();
    check_module(&case("mha_causal"), &causal, |m, x| m.forward(x));
    let c = case("mha_padding");
    let kp: Vec<bool> = c.iv("kp").iter().map(|&v| v != 0).collect();
    let fmask = c.t::<E>("fmask");
    let mask = AttentionMask {
        causal: false,
        key_padding: Some(&kp),
        attn_mask: Some(&fmask),
    };
    check_module(&c, &mha, |m, x| m.self_attention(x, &mask));
    let c = case("mha_weights");
    let kp: Vec<bool> = c.iv("kp").iter().map(|&v| v != 0).collect();
    let mask = AttentionMask {
        key_padding: Some(&kp),
        ..AttentionMask::none()
    };
    check_module(&c, &mha, |m, x| {
        Ok(m.attend_with_weights(x, x, x, &mask)?.1)
    });
    let c = case("mha_cross");
    let mem = c.t::<E>("mem");
    check_module(&c, &mha, |m, x| {
        let mem = x.lift(mem.clone());
        m.attend(x, &mem, &mem, &AttentionMask::none())
    });
    let block = TransformerBlock::<E>::new(16, 4, 32, &mut Rng::seed(0)).causal();
    check_module(&case("transformer_block"), &block, |m, x| m.forward(x));
}
for_both!(attention_matches_torch, attention);

#[test]
fn attention_rejects_bad_shapes_and_masks() {
    use tapir_nn::{AttentionMask, MultiHeadAttention};
    let mha: MultiHeadAttention = MultiHeadAttention::new(8, 2, &mut Rng::seed(0));
    let x = Var::untracked(Tensor::zeros([2, 5, 6]));
    let e = mha.forward(&x).unwrap_err().to_string();
    assert!(e.contains("embed_dim 8") && e.contains("[2, 5, 6]"), "{e}");
    let x = Var::untracked(Tensor::zeros([2, 5, 8]));
    let kp = [false; 9];
    let mask = AttentionMask {
        key_padding: Some(&kp),
        ..AttentionMask::none()
    };
    let e = mha.self_attention(&x, &mask).unwrap_err().to_string();
    assert!(e.contains("key_padding") && e.contains("got 9"), "{e}");
    let am = Tensor::zeros([5, 4]);
    let mask = AttentionMask {
        attn_mask: Some(&am),
        ..AttentionMask::none()
    };
    let e = mha.self_attention(&x, &mask).unwrap_err().to_string();
    assert!(e.contains("attn_mask") && e.contains("[5, 4]"), "{e}");
}

/// Long sequences take the fused attention kernel, short ones and
/// `attend_with_weights` the composite: both give the same outputs and
/// gradients (the composite is the path checked against PyTorch above).
#[test]
fn fused_attention_path_matches_the_composite() {
    use tapir_nn::{AttentionMask, MultiHeadAttention};
    let mut rng = Rng::seed(3);
    let mha = MultiHeadAttention::<f64>::new(8, 2, &mut rng);
    let (b, t) = (2, 131); // 131² scores per head: past the fused threshold
    let x = Tensor::<f64>::randn([b, t, 8], &mut rng);
    let r = Tensor::<f64>::randn([b, t, 8], &mut rng);
    let kp: Vec<bool> = (0..b * t).map(|i| i % t > 120 && i / t == 1).collect();
    let mask = AttentionMask {
        causal: true,
        key_padding: Some(&kp),
        attn_mask: None,
    };
    let run = |fused: bool| {
        let tape = Tape::new();
        let xv = tape.var(x.clone());
        let y = if fused {
            mha.self_attention(&xv, &mask).unwrap()
        } else {
            mha.attend_with_weights(&xv, &xv, &xv, &mask).unwrap().0
        };
        let loss = y.mul(&tape.constant(r.clone())).unwrap().sum();
        let gp = tape.gradient(&loss, mha.parameters()).unwrap();
        let gx = tape
            .gradient_vars(&loss, &[&xv], &Default::default())
            .unwrap();
        let mut all = vec![y.value().to_vec(), gx[0].as_ref().unwrap().to_vec()];
        all.extend(mha.parameters().iter().map(|p| gp[p].to_vec()));
        all
    };
    for (a, c) in run(true).iter().zip(run(false)) {
        for (u, v) in a.iter().zip(&c) {
            assert!((u - v).abs() < 1e-10 * (1.0 + v.abs()), "{u} vs {v}");
        }
    }
}

/// A case with one differentiable input `x`: `f`'s output against `out`,
/// and the gradient of Σ out·r against `g_x`.
fn check_x<E: Float>(name: &str, f: &dyn for<'t> Fn(&Case, &Var<'t, E>) -> Var<'t, E>) {
    let c = case(name);
    let tape = Tape::new();
    let x = tape.var(c.t::<E>("x"));
    let out = f(&c, &x);
    c.check("out", out.value());
    let loss = out.mul(&tape.constant(c.t("r"))).unwrap().sum();
    let g = tape
        .gradient_vars(&loss, &[&x], &Default::default())
        .unwrap();
    c.check("g_x", g[0].as_ref().unwrap());
}

fn cross_entropies<E: Float>() {
    use tapir_nn::loss::{cross_entropy_probs, cross_entropy_with, CrossEntropy};
    let run = check_x::<E>;
    let weights = |c: &Case| Some(c.t::<f64>("w").to_vec());
    run("ce_options", &|c, x| {
        let o = CrossEntropy {
            weight: weights(c),
            ignore_index: Some(1),
            label_smoothing: 0.1,
            ..Default::default()
        };
        cross_entropy_with(x, &c.iv("y"), &o).unwrap()
    });
    run("ce_none", &|c, x| {
        let o = CrossEntropy {
            weight: weights(c),
            label_smoothing: 0.25,
            reduction: Reduction::None,
            ..Default::default()
        };
        cross_entropy_with(x, &c.iv("y"), &o).unwrap()
    });
    run("ce_probs", &|c, x| {
        let o = CrossEntropy {
            weight: weights(c),
            label_smoothing: 0.2,
            ..Default::default()
        };
        cross_entropy_probs(x, &c.t("p"), &o).unwrap()
    });
    run("ce_huge", &|c, x| {
        let o = CrossEntropy {
            reduction: Reduction::None,
            ..Default::default()
        };
        cross_entropy_with(x, &c.iv("y"), &o).unwrap()
    });
}
for_both!(cross_entropy_matches_torch, cross_entropies);

#[test]
fn cross_entropy_options_are_checked() {
    use tapir_nn::loss::{cross_entropy_with, CrossEntropy};
    let x = Var::untracked(Tensor::<f32>::zeros([2, 3]));
    let o = CrossEntropy {
        label_smoothing: 1.5,
        ..Default::default()
    };
    let e = cross_entropy_with(&x, &[0, 1], &o).unwrap_err().to_string();
    assert!(e.contains("label_smoothing"), "{e}");
    let o = CrossEntropy {
        weight: Some(vec![1.0; 2]),
        ..Default::default()
    };
    let e = cross_entropy_with(&x, &[0, 1], &o).unwrap_err().to_string();
    assert!(e.contains("2 class weights for 3 classes"), "{e}");
    let e = cross_entropy_with(&x, &[0, 3], &CrossEntropy::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 3"), "{e}");
    // An ignored label may be out of range (PyTorch's -100 convention).
    let o = CrossEntropy {
        ignore_index: Some(100),
        ..Default::default()
    };
    assert!(cross_entropy_with(&x, &[0, 100], &o).is_ok());
}

fn more_layers<E: Float>() {
    use tapir_nn::{BatchNorm, Elu, GroupNorm, Hardtanh, LogSoftmax, Mish, Softplus};
    check_layer::<E, _>(&case("mish"), &Mish);
    check_layer::<E, _>(&case("softplus"), &Softplus);
    check_layer::<E, _>(&case("hardtanh"), &Hardtanh);
    check_layer::<E, _>(&case("elu"), &Elu(0.7));
    check_layer::<E, _>(&case("log_softmax"), &LogSoftmax(-1));
    check_module(&case("group_norm"), &GroupNorm::<E>::new(3, 6), |m, x| {
        m.forward(x)
    });
    // Training: batch statistics, and the running ones move as PyTorch's.
    let c = case("batch_norm_train");
    let mut bn = BatchNorm::<E>::new(3);
    bn.running_mean.set(c.t("rm0"));
    bn.running_var.set(c.t("rv0"));
    check_module(&c, &bn, |m, x| m.forward(x));
    // check_module ran forward once on its tape.
    c.check("rm1", &bn.running_mean.value());
    c.check("rv1", &bn.running_var.value());
    // Evaluation: the running statistics, and no update.
    let c = case("batch_norm_eval");
    bn.eval();
    bn.running_mean.set(c.t("rm"));
    bn.running_var.set(c.t("rv"));
    check_module(&c, &bn, |m, x| m.forward(x));
    c.check("rm", &bn.running_mean.value());
    let bn1 = BatchNorm::<E>::new(4);
    check_module(&case("batch_norm_1d"), &bn1, |m, x| m.forward(x));
    let names: Vec<String> = Module::<E>::state_dict(&bn1)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["weight", "bias", "running_mean", "running_var"]);
}
for_both!(more_layers_match_torch, more_layers);

#[test]
fn train_and_eval_reach_batch_norm_inside_a_derived_model() {
    use tapir_nn::{BatchNorm, Linear};
    #[derive(tapir_nn::Module)]
    struct Net {
        fc: Linear,
        bn: BatchNorm,
    }
    let mut net = Net {
        fc: Linear::new(3, 4, &mut Rng::seed(0)),
        bn: BatchNorm::new(4),
    };
    let x = Var::untracked(Tensor::randn([6, 4], &mut Rng::seed(1)));
    Module::<f32>::eval(&mut net);
    let before = net.bn.running_mean.value().to_vec();
    net.bn.forward(&x).unwrap();
    assert_eq!(
        net.bn.running_mean.value().to_vec(),
        before,
        "eval: no update"
    );
    Module::<f32>::train(&mut net);
    net.bn.forward(&x).unwrap();
    assert_ne!(
        net.bn.running_mean.value().to_vec(),
        before,
        "train: updated"
    );
    let _ = &net.fc;
    let e = net
        .bn
        .forward(&Var::untracked(Tensor::zeros([1, 4])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than one value per channel"), "{e}");
}

/// A PyTorch BatchNorm state dict (with its int64 `num_batches_tracked`)
/// loads strictly, and holds the running statistics Tapir's BatchNorm
/// reaches after the same training step.
#[test]
fn batch_norm_loads_a_pytorch_state_dict() {
    use tapir_nn::{BatchNorm, LoadOptions};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch_bn.safetensors"
    );
    let loaded = BatchNorm::<f32>::new(4);
    let report = loaded.load(path, LoadOptions::default()).unwrap();
    assert!(report.unexpected.is_empty() && report.missing.is_empty());
    let c = case("batch_norm_1d");
    let mine = BatchNorm::<f32>::new(4);
    mine.forward(&Var::untracked(c.t("x"))).unwrap();
    for (a, b) in [
        (&loaded.running_mean, &mine.running_mean),
        (&loaded.running_var, &mine.running_var),
    ] {
        tapir_testutil::assert_close(&a.value(), &b.value(), 1e-5, 1e-6);
    }
}

fn recurrent<E: Float>() {
    use tapir_nn::{Rnn, RnnCell};
    let mut rng = Rng::seed(0);
    let lstm = Rnn::<E>::lstm(3, 4, 2, &mut rng);
    let names: Vec<String> = lstm
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names[..4],
        ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    );
    assert_eq!(names.len(), 8);
    check_module(&case("lstm_out"), &lstm, |m, x| {
        Ok(m.forward_seq(x, None)?.0)
    });
    check_module(&case("lstm_states"), &lstm, |m, x| {
        let (_, h, c) = m.forward_seq(x, None)?;
        Var::concat(&[&h, &c.unwrap()], 0)
    });
    let c = case("lstm_from_state");
    let (h0, c0) = (c.t::<E>("h0"), c.t::<E>("c0"));
    check_module(&c, &lstm, |m, x| {
        let (h, cc) = (x.lift(h0.clone()), x.lift(c0.clone()));
        Ok(m.forward_seq(x, Some((&h, Some(&cc))))?.0)
    });
    let gru = Rnn::<E>::gru(3, 4, 2, &mut rng);
    check_module(&case("gru_out"), &gru, |m, x| Ok(m.forward_seq(x, None)?.0));
    check_module(&case("gru_states"), &gru, |m, x| {
        Ok(m.forward_seq(x, None)?.1)
    });
    let rnn = Rnn::<E>::simple(3, 4, 1, &mut rng);
    check_module(&case("rnn_out"), &rnn, |m, x| Ok(m.forward_seq(x, None)?.0));
    let c = case("lstm_cell");
    let (h, cc) = (c.t::<E>("h"), c.t::<E>("c"));
    check_module(&c, &RnnCell::<E>::lstm(3, 4, &mut rng), |m, x| {
        let (h1, c1) = m.step(x, &x.lift(h.clone()), Some(&x.lift(cc.clone())))?;
        Var::concat(&[&h1, &c1.unwrap()], 1)
    });
    let c = case("gru_cell");
    let h = c.t::<E>("h");
    check_module(&c, &RnnCell::<E>::gru(3, 4, &mut rng), |m, x| {
        Ok(m.step(x, &x.lift(h.clone()), None)?.0)
    });
}
for_both!(recurrent_layers_match_torch, recurrent);

#[test]
fn recurrent_layers_reject_bad_shapes() {
    use tapir_nn::Rnn;
    let lstm: Rnn = Rnn::lstm(3, 4, 2, &mut Rng::seed(0));
    let e = lstm
        .forward_seq(&Var::untracked(Tensor::zeros([2, 5, 4])), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Lstm(3 -> 4)") && e.contains("[2, 5, 4]"), "{e}");
    let x = Var::untracked(Tensor::zeros([2, 5, 3]));
    let h = Var::untracked(Tensor::zeros([2, 2, 4]));
    let e = lstm
        .forward_seq(&x, Some((&h, None)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("h0 and c0"), "{e}");
}

fn other_losses<E: Float>() {
    use tapir_nn::loss::{
        bce_with_logits_pos_weight, cosine_embedding, kl_div, margin_ranking, nll, CrossEntropy,
        KlReduction,
    };
    let run = check_x::<E>;
    run("bce_pos_weight", &|c, x| {
        let pw = c.t::<f64>("pw").to_vec();
        bce_with_logits_pos_weight(x, &x.lift(c.t("y")), &pw, Reduction::Mean).unwrap()
    });
    run("nll", &|c, x| {
        let o = CrossEntropy {
            weight: Some(c.t::<f64>("w").to_vec()),
            ignore_index: Some(0),
            ..Default::default()
        };
        nll(x, &c.iv("y"), &o).unwrap()
    });
    run("kl_batchmean", &|c, x| {
        kl_div(x, &c.t("p"), KlReduction::BatchMean).unwrap()
    });
    run("kl_none", &|c, x| {
        kl_div(x, &c.t("p"), KlReduction::None).unwrap()
    });
    run("cosine_embedding", &|c, x| {
        let y = c.t::<f64>("yc").to_vec();
        cosine_embedding(x, &x.lift(c.t("x2")), &y, 0.2, Reduction::Mean).unwrap()
    });
    run("margin_ranking", &|c, x| {
        margin_ranking(x, &x.lift(c.t("x2")), &c.t("ym"), 0.5, Reduction::Mean).unwrap()
    });
}
for_both!(other_losses_match_torch, other_losses);

fn conv_family<E: Float>() {
    use tapir_nn::{AdaptiveAvgPool2d, Bilinear, Conv1d, ConvTranspose2d, Residual};
    use tapir_tensor::Conv1dParams;
    let mut rng = Rng::seed(0);
    let c = case("conv1d");
    let p = Conv1dParams {
        stride: 2,
        padding: 1,
        groups: 2,
        ..Default::default()
    };
    let conv = Conv1d::<E>::new(4, 6, 3, p, &mut rng).unwrap();
    set(&conv.weight, &c, "weight");
    set(conv.bias.as_ref().unwrap(), &c, "bias");
    check_layer(&c, &conv);
    let c = case("conv_transpose2d");
    let p = Conv2dParams {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    let up = ConvTranspose2d::<E>::new(3, 2, [3, 3], p, &mut rng).unwrap();
    set(&up.weight, &c, "weight");
    set(up.bias.as_ref().unwrap(), &c, "bias");
    check_layer(&c, &up);
    check_layer::<E, _>(&case("adaptive_avg_pool2d"), &AdaptiveAvgPool2d([3, 4]));
    let c = case("bilinear");
    let bl = Bilinear::<E>::new(3, 5, 2, &mut rng);
    set(&bl.weight, &c, "weight");
    set(bl.bias.as_ref().unwrap(), &c, "bias");
    let tape = Tape::new();
    let x = tape.var(c.t::<E>("x"));
    let out = bl.forward2(&x, &tape.constant(c.t("x2"))).unwrap();
    c.check("out", out.value());
    let loss = out.mul(&tape.constant(c.t("r"))).unwrap().sum();
    let grads = tape.gradient(&loss, bl.parameters()).unwrap();
    let gx = tape
        .gradient_vars(&loss, &[&x], &Default::default())
        .unwrap();
    c.check("g_x", gx[0].as_ref().unwrap());
    c.check("g_weight", &grads[&bl.weight]);
    c.check("g_bias", &grads[bl.bias.as_ref().unwrap()]);
    // Residual: x + f(x), the wrapped layer's names unchanged.
    let fc = Linear::<E>::new(3, 3, &mut rng);
    let res = Residual(fc.clone());
    let names: Vec<String> = res.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight", "bias"]);
    let x = Var::untracked(Tensor::<E>::ones([2, 3]));
    let want = x.add(&fc.forward(&x).unwrap()).unwrap();
    assert_eq!(
        res.forward(&x).unwrap().value().to_vec(),
        want.value().to_vec()
    );
}
for_both!(conv_family_matches_torch, conv_family);
