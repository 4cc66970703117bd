//! The Module trait and #[derive(Module)]: paths, skipping, containers,
//! shared parameters, training mode, and the training loop it serves.

use tapir_autograd::{Parameter, Tape, Var};
use tapir_nn::{
    Buffer, Conv2d, Dropout, Flatten, Forward, Linear, MaxPool2d, Module, Relu, Sequential,
};
use tapir_optim::Adam;
use tapir_tensor::{Float, Rng, Tensor};

#[derive(Module)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    #[module(skip)]
    heads: Vec<Parameter>,
    scale: f32,
}

#[derive(Module)]
struct Block {
    attn: Attention,
    norm: Option<Linear>,
    extra: Option<Linear>,
    running: Buffer,
}

#[derive(Module)]
struct Model {
    layers: Vec<Block>,
    head: Box<Linear>,
    drop: Dropout,
}

#[derive(Module)]
struct Tuple(Linear, Parameter);

#[derive(Module)]
struct Generic<E: Float> {
    fc: Linear<E>,
}

fn block(rng: &mut Rng) -> Block {
    Block {
        attn: Attention {
            q_proj: Linear::new(4, 4, rng),
            k_proj: Linear::no_bias(4, 4, rng),
            heads: vec![Parameter::new("never", Tensor::zeros([1]))],
            scale: 0.5,
        },
        norm: Some(Linear::new(4, 4, rng)),
        extra: None,
        running: Buffer::new(Tensor::zeros([4])),
    }
}

#[test]
fn paths_follow_fields_like_torch_state_dict_keys() {
    let mut rng = Rng::seed(0);
    let m = Model {
        layers: vec![block(&mut rng), block(&mut rng)],
        head: Box::new(Linear::new(4, 2, &mut rng)),
        drop: Dropout::new(0.1, 0),
    };
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "layers.0.attn.q_proj.weight",
            "layers.0.attn.q_proj.bias",
            "layers.0.attn.k_proj.weight",
            "layers.0.norm.weight",
            "layers.0.norm.bias",
            "layers.1.attn.q_proj.weight",
            "layers.1.attn.q_proj.bias",
            "layers.1.attn.k_proj.weight",
            "layers.1.norm.weight",
            "layers.1.norm.bias",
            "head.weight",
            "head.bias",
        ]
    );
    // The skipped field holds a parameter that is never visited.
    assert_eq!(&*m.layers[0].attn.heads[0].name(), "never");
    assert_eq!(m.layers[0].attn.scale, 0.5);
    // Parameters carry their path as their name (the optimizer's key).
    assert_eq!(&*m.head.weight.name(), "head.weight");
    let sd: Vec<String> = m.state_dict().into_iter().map(|(n, _)| n).collect();
    assert!(sd.contains(&"layers.1.running".to_string()));
    assert_eq!(sd.len(), names.len() + 2);
    assert_eq!(m.named_buffers().len(), 2);
    assert_eq!(m.num_parameters(), 2 * (20 + 16 + 20) + 10);

    let t = Tuple(
        Linear::new(2, 2, &mut rng),
        Parameter::new("p", Tensor::zeros([3])),
    );
    let names: Vec<String> = t.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "1"]);

    let g = Generic::<f64> {
        fc: Linear::new(2, 3, &mut rng),
    };
    assert_eq!(Module::<f64>::num_parameters(&g), 9);
}

#[test]
fn a_shared_parameter_is_listed_once_under_its_first_path() {
    let mut rng = Rng::seed(0);
    let a: Linear = Linear::new(3, 3, &mut rng);
    let b = Linear {
        weight: a.weight.clone(),
        bias: None,
    };
    let tied = Tuple(a, b.weight.clone());
    let names: Vec<String> = tied
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["0.weight", "0.bias"]);
    assert_eq!(tied.state_dict().len(), 2);
}

#[test]
fn train_and_eval_reach_every_submodule() {
    let mut rng = Rng::seed(0);
    let mut m = Model {
        layers: vec![block(&mut rng)],
        head: Box::new(Linear::new(4, 2, &mut rng)),
        drop: Dropout::new(0.5, 1),
    };
    let x = Var::untracked(Tensor::<f32>::ones([64]));
    let train = m.drop.forward(&x).unwrap().into_value().to_vec();
    assert!(train.contains(&0.0));
    m.eval();
    assert_eq!(
        m.drop.forward(&x).unwrap().into_value().to_vec(),
        vec![1.0; 64]
    );
    m.train();
    assert!(m
        .drop
        .forward(&x)
        .unwrap()
        .into_value()
        .to_vec()
        .contains(&0.0));
}

#[test]
fn a_layer_used_many_times_on_a_tape_records_its_weights_once() {
    let mut rng = Rng::seed(0);
    let cell: Linear<f64> = Linear::new(3, 3, &mut rng);
    let tape = Tape::new();
    let mut h = tape.constant(Tensor::ones([1, 3]));
    for _ in 0..5 {
        h = cell.forward(&h).unwrap().tanh();
    }
    let leaves = tape
        .recorded_ops()
        .iter()
        .filter(|o| o.as_str() == "leaf")
        .count();
    assert_eq!(leaves, 2, "{:?}", tape.recorded_ops());
    // And the gradient is the sum over the five uses: compare with a
    // finite difference on one weight.
    let loss = h.sum();
    let g = tape.gradient(&loss, cell.parameters()).unwrap();
    let w = cell.weight.value();
    let run = |w: Tensor<f64>| {
        cell.weight.set(w);
        let mut h = Var::untracked(Tensor::ones([1, 3]));
        for _ in 0..5 {
            h = cell.forward(&h).unwrap().tanh();
        }
        h.into_value().sum().item().unwrap()
    };
    let mut plus = w.to_vec();
    plus[4] += 1e-6;
    let mut minus = w.to_vec();
    minus[4] -= 1e-6;
    let fd = (run(Tensor::from_vec(plus, [3, 3]).unwrap())
        - run(Tensor::from_vec(minus, [3, 3]).unwrap()))
        / 2e-6;
    let analytic = g[&cell.weight].to_vec()[4];
    assert!((fd - analytic).abs() < 1e-6, "fd {fd}, analytic {analytic}");
}

#[test]
fn evaluation_records_nothing() {
    let mut rng = Rng::seed(0);
    let net: Sequential = Sequential::new()
        .add(Linear::new(4, 8, &mut rng))
        .add(Relu)
        .add(Linear::new(8, 2, &mut rng));
    let y = net.forward(&Var::untracked(Tensor::ones([3, 4]))).unwrap();
    assert!(!y.is_tracked());
}

/// The training loop of the seed article, line for line, on a small CNN
/// built from the layers: the loss falls.
#[test]
fn the_tensorflow_training_loop_reads_line_for_line() {
    #[derive(Module)]
    struct Cnn {
        conv: Conv2d,
        pool: MaxPool2d,
        flat: Flatten,
        fc: Linear,
    }
    impl Forward for Cnn {
        fn forward<'t>(&self, x: &Var<'t>) -> tapir_autograd::Result<Var<'t>> {
            let h = self.pool.forward(&self.conv.forward(x)?.relu())?;
            self.fc.forward(&self.flat.forward(&h)?)
        }
    }
    let mut rng = Rng::seed(3);
    let model = Cnn {
        conv: Conv2d::new(1, 4, [3, 3], &mut rng),
        pool: MaxPool2d::new([2, 2]),
        flat: Flatten,
        fc: Linear::new(4 * 3 * 3, 3, &mut rng),
    };
    let x = Tensor::randn([12, 1, 8, 8], &mut rng);
    let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
    let mut opt = Adam::new(1e-2).build().unwrap();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let tape = Tape::new();
        let loss = model
            .forward(&tape.constant(x.clone()))
            .unwrap()
            .cross_entropy(&labels)
            .unwrap();
        let grads = tape.gradient(&loss, model.parameters()).unwrap();
        opt.apply_gradients(&grads).unwrap();
        losses.push(loss.value().item().unwrap());
    }
    assert!(losses[39] < 0.2 * losses[0], "{losses:?}");
}
