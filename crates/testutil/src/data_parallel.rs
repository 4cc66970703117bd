//! The data-parallel workload shared by the distributed crate's tests
//! (ranks as threads) and `examples/distributed_check.rs` (ranks as MPI
//! processes): a 4-16-3 tanh MLP, 20 steps of a seeded batch of 64 split
//! between ranks as the sharded data loader splits it.

use tapir_autograd::{Gradients, Parameter, Tape};
use tapir_tensor::{Float, Rng, Tensor};

/// Steps per run.
pub const STEPS: usize = 20;
/// The whole batch (all ranks together).
pub const BATCH: usize = 64;

/// The MLP's parameters, the same start on every call.
pub fn model<E: Float>() -> Vec<Parameter<E>> {
    let mut rng = Rng::seed(11);
    let half = E::from_f64(0.5);
    vec![
        Parameter::new(
            "fc1.weight",
            Tensor::randn([4, 16], &mut rng).mul_scalar(half),
        ),
        Parameter::new("fc1.bias", Tensor::zeros([16])),
        Parameter::new(
            "fc2.weight",
            Tensor::randn([16, 3], &mut rng).mul_scalar(half),
        ),
        Parameter::new("fc2.bias", Tensor::zeros([3])),
    ]
}

/// Step `s`'s whole batch: inputs `[64, 4]` and labels (3 classes).
pub fn batch<E: Float>(s: usize) -> (Tensor<E>, Vec<usize>) {
    let mut rng = Rng::seed(100 + s as u64);
    let x: Tensor<E> = Tensor::randn([BATCH, 4], &mut rng);
    let v = x.to_vec();
    let labels = (0..BATCH)
        .map(|i| {
            let a = v[i * 4].to_f64() + v[i * 4 + 1].to_f64();
            if a > 0.5 {
                0
            } else if a > -0.5 {
                1
            } else {
                2
            }
        })
        .collect();
    (x, labels)
}

/// Rows `rank, rank + ranks, …` of a batch: the sharded loader's split.
pub fn share<E: Float>(
    x: &Tensor<E>,
    labels: &[usize],
    rank: usize,
    ranks: usize,
) -> (Tensor<E>, Vec<usize>) {
    let rows: Vec<usize> = (rank..labels.len()).step_by(ranks).collect();
    (
        x.index_select(0, &rows).expect("rows in range"),
        rows.iter().map(|&i| labels[i]).collect(),
    )
}

/// The gradients of the mean cross-entropy on `(x, labels)`.
pub fn grads<E: Float>(params: &[Parameter<E>], x: &Tensor<E>, labels: &[usize]) -> Gradients<E> {
    let tape = Tape::new();
    let v: Vec<_> = params.iter().map(|p| tape.watch(p)).collect();
    let h = tape
        .constant(x.clone())
        .matmul(&v[0])
        .and_then(|h| h.add(&v[1]));
    let logits = h
        .map(|h| h.tanh())
        .and_then(|h| h.matmul(&v[2]))
        .and_then(|l| l.add(&v[3]));
    let loss = logits
        .and_then(|l| l.cross_entropy(labels))
        .expect("the MLP's shapes fit");
    tape.gradient(&loss, params).expect("a scalar loss")
}

/// Every parameter's values, flat, in order.
pub fn values<E: Float>(params: &[Parameter<E>]) -> Vec<E> {
    params.iter().flat_map(|p| p.value().to_vec()).collect()
}

/// One process, batch 64, `apply` stepping the optimizer; with `halves`
/// the gradient is the mean of the two half-batches' gradients, summed in
/// the order a two-rank all-reduce sums them. Returns the final values.
pub fn single<E: Float>(halves: bool, mut apply: impl FnMut(&Gradients<E>)) -> Vec<E> {
    let params = model::<E>();
    for s in 0..STEPS {
        let (x, labels) = batch::<E>(s);
        let g = if halves {
            let (x0, l0) = share(&x, &labels, 0, 2);
            let (x1, l1) = share(&x, &labels, 1, 2);
            let (g0, g1) = (grads(&params, &x0, &l0), grads(&params, &x1, &l1));
            let half = E::from_f64(0.5);
            Gradients::from_pairs(
                params
                    .iter()
                    .map(|p| {
                        let sum = g0[p].zip_map(&g1[p], |a, b| a + b).expect("same shape");
                        (p.clone(), Some(sum.map(|v| v * half)))
                    })
                    .collect(),
            )
        } else {
            grads(&params, &x, &labels)
        };
        apply(&g);
    }
    values(&params)
}

/// The largest |a − b| / max(|b|, 1): relative for large values, absolute
/// below 1 (the parameters are of order 1).
pub fn max_rel<E: Float>(a: &[E], b: &[E]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).abs() / y.to_f64().abs().max(1.0))
        .fold(0.0, f64::max)
}
