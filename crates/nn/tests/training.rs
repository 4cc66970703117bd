//! One table, four model kinds (MLP, small CNN, LSTM, tiny transformer):
//! each trains for a few dozen Adam steps on a small synthetic task and its
//! loss must fall to under half of where it started.

use tapir_autograd::{Result, Tape, Var};
use tapir_nn::{
    Conv2d, Flatten, Forward, Linear, MaxPool2d, Module, Relu, Rnn, Sequential, TransformerBlock,
};
use tapir_optim::Adam;
use tapir_tensor::{Rng, Tensor};

/// A model kind: its parameters' owner and a loss on the task's batch.
trait Task {
    fn module(&self) -> &dyn Module<f32>;
    fn loss<'t>(&self, tape: &'t Tape) -> Result<Var<'t>>;
}

/// Labels: the class of a fixed random linear map's argmax.
fn labels_of(x: &Tensor<f32>, classes: usize, rng: &mut Rng) -> Vec<usize> {
    let d = x.len() / x.shape()[0];
    let w = Tensor::<f32>::randn([d, classes], rng);
    x.reshape([x.shape()[0] as isize, -1])
        .unwrap()
        .matmul(&w)
        .unwrap()
        .argmax_axes(&[1], false)
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// A feed-forward classifier (the MLP and the CNN).
struct Classifier {
    net: Sequential,
    x: Tensor<f32>,
    y: Vec<usize>,
}

impl Task for Classifier {
    fn module(&self) -> &dyn Module<f32> {
        &self.net
    }
    fn loss<'t>(&self, tape: &'t Tape) -> Result<Var<'t>> {
        self.net
            .forward(&tape.constant(self.x.clone()))?
            .cross_entropy(&self.y)
    }
}

/// Sequence classification: the sign of the sum of the first feature.
#[derive(Module)]
struct LstmTask {
    rnn: Rnn,
    head: Linear,
    #[module(skip)]
    x: Tensor<f32>,
    #[module(skip)]
    y: Vec<usize>,
}

impl Task for LstmTask {
    fn module(&self) -> &dyn Module<f32> {
        self
    }
    fn loss<'t>(&self, tape: &'t Tape) -> Result<Var<'t>> {
        let (_, h, _) = self.rnn.forward_seq(&tape.constant(self.x.clone()), None)?;
        let last = h.reshape([h.shape()[1] as isize, -1])?;
        self.head.forward(&last)?.cross_entropy(&self.y)
    }
}

/// Next-token prediction of a periodic sequence.
#[derive(Module)]
struct TinyLm {
    emb: Linear,
    block: TransformerBlock,
    head: Linear,
    #[module(skip)]
    x: Tensor<f32>,
    #[module(skip)]
    y: Vec<usize>,
}

impl Task for TinyLm {
    fn module(&self) -> &dyn Module<f32> {
        self
    }
    fn loss<'t>(&self, tape: &'t Tape) -> Result<Var<'t>> {
        let h = self.emb.forward(&tape.constant(self.x.clone()))?;
        let h = self.block.forward(&h)?;
        self.head
            .forward(&h)?
            .reshape([-1, 5])?
            .cross_entropy(&self.y)
    }
}

fn one_hot_seq(tokens: &[usize], classes: usize, shape: [usize; 2]) -> Tensor<f32> {
    let mut v = vec![0.0; tokens.len() * classes];
    for (i, &t) in tokens.iter().enumerate() {
        v[i * classes + t] = 1.0;
    }
    Tensor::from_vec(v, [shape[0], shape[1], classes]).unwrap()
}

fn tasks() -> Vec<(&'static str, Box<dyn Task>)> {
    let mut rng = Rng::seed(21);
    let x = Tensor::<f32>::randn([32, 8], &mut rng);
    let y = labels_of(&x, 3, &mut rng);
    let mlp = Classifier {
        net: Sequential::new()
            .add(Linear::new(8, 16, &mut rng))
            .add(Relu)
            .add(Linear::new(16, 3, &mut rng)),
        x,
        y,
    };
    let x = Tensor::<f32>::randn([16, 1, 8, 8], &mut rng);
    let y = labels_of(&x, 3, &mut rng);
    let cnn = Classifier {
        net: Sequential::new()
            .add(Conv2d::new(1, 4, [3, 3], &mut rng))
            .add(Relu)
            .add(MaxPool2d::new([2, 2]))
            .add(Flatten)
            .add(Linear::new(36, 3, &mut rng)),
        x,
        y,
    };
    let x = Tensor::<f32>::randn([16, 6, 2], &mut rng);
    let xs = x.to_vec();
    let y: Vec<usize> = (0..16)
        .map(|b| usize::from((0..6).map(|t| xs[(b * 6 + t) * 2]).sum::<f32>() > 0.0))
        .collect();
    let lstm = LstmTask {
        rnn: Rnn::lstm(2, 8, 1, &mut rng),
        head: Linear::new(8, 2, &mut rng),
        x,
        y,
    };
    // Tokens 0..5 cycling from a random start; predict the next one.
    let (b, t) = (4, 8);
    let starts: Vec<usize> = (0..b).map(|i| (i * 3) % 5).collect();
    let tok = |i: usize, j: usize| (starts[i] + j) % 5;
    let inputs: Vec<usize> = (0..b)
        .flat_map(|i| (0..t).map(move |j| (i, j)))
        .map(|(i, j)| tok(i, j))
        .collect();
    let targets: Vec<usize> = (0..b)
        .flat_map(|i| (0..t).map(move |j| (i, j)))
        .map(|(i, j)| tok(i, j + 1))
        .collect();
    let lm = TinyLm {
        emb: Linear::new(5, 16, &mut rng),
        block: TransformerBlock::new(16, 2, 32, &mut rng).causal(),
        head: Linear::new(16, 5, &mut rng),
        x: one_hot_seq(&inputs, 5, [b, t]),
        y: targets,
    };
    vec![
        ("mlp", Box::new(mlp)),
        ("cnn", Box::new(cnn)),
        ("lstm", Box::new(lstm)),
        ("transformer", Box::new(lm)),
    ]
}

#[test]
fn each_model_kind_learns_its_task() {
    for (name, task) in tasks() {
        let mut opt = Adam::new(1e-2).build::<f32>().unwrap();
        let mut losses = Vec::new();
        for _ in 0..40 {
            let tape = Tape::new();
            let loss = task.loss(&tape).unwrap();
            losses.push(loss.value().item().unwrap());
            let grads = tape.gradient(&loss, task.module().parameters()).unwrap();
            opt.apply_gradients(&grads).unwrap();
        }
        let (first, last) = (losses[0], *losses.last().unwrap());
        assert!(
            last < 0.5 * first,
            "{name}: loss {first:.4} -> {last:.4} in 40 steps"
        );
    }
}

/// A bag-of-embeddings classifier with a sparse embedding (PyTorch's
/// `nn.Embedding(sparse=True)` with `SparseAdam`): one optimizer serves
/// the row-sparse table and the dense head, the loss halves, and rows no
/// batch looks up never change.
#[test]
fn a_sparse_embedding_trains_with_sparse_adam() {
    use tapir_autograd::Gradient;
    use tapir_nn::Embedding;
    #[derive(tapir_nn::Module)]
    struct Bag {
        emb: Embedding,
        head: Linear,
    }
    let mut rng = Rng::seed(3);
    let bag = Bag {
        emb: Embedding::new(50, 8, &mut rng).sparse(true),
        head: Linear::new(8, 2, &mut rng),
    };
    let (emb, head) = (&bag.emb, &bag.head);
    // Tokens 0..40 only; the label is whether the first token is even.
    let seqs: Vec<Vec<usize>> = (0..16)
        .map(|i| (0..4).map(|k| (i * 7 + k * 13) % 40).collect())
        .collect();
    let labels: Vec<usize> = seqs.iter().map(|s| s[0] % 2).collect();
    let ids: Vec<usize> = seqs.concat();
    let mut opt = tapir_optim::SparseAdam::new(0.05).build().unwrap();
    let unused = emb.weight.value().narrow(0, 40, 10).unwrap().to_vec();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let tape = Tape::new();
        let x = emb.forward(Some(&tape), &ids, &[16, 4]).unwrap(); // [16, 4, 8]
        let pooled = x.mean_axes(&[1], false).unwrap();
        let loss = head
            .forward(&pooled)
            .unwrap()
            .cross_entropy(&labels)
            .unwrap();
        losses.push(loss.value().item().unwrap());
        let params = bag.parameters();
        let grads = tape.gradient(&loss, &params).unwrap();
        assert!(matches!(
            grads.gradient(&emb.weight),
            Some(Gradient::Rows(_))
        ));
        opt.apply_gradients(&grads).unwrap();
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert_eq!(
        emb.weight.value().narrow(0, 40, 10).unwrap().to_vec(),
        unused
    );
}
