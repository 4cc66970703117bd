//! Row-sparse gradients from `Var::embedding`: the same numbers as the
//! dense gradient of `index_select`, kept as the rows looked up
//! (coalesced: sorted, repeats summed); dense where the table is also used
//! densely, for Vars, in recorded passes, and under every unconnected
//! policy; bad rows are errors naming RowSparse.

use tapir_autograd::{Gradient, GradientOptions, Parameter, RowSparse, Tape, Unconnected};
use tapir_tensor::{Rng, Tensor};

fn table() -> Parameter<f64> {
    Parameter::new("emb", Tensor::randn([12, 3], &mut Rng::seed(1)))
}

fn weights(n: usize) -> Tensor<f64> {
    Tensor::randn([n, 3], &mut Rng::seed(2))
}

#[test]
fn the_rows_equal_the_dense_gradient() {
    let w = table();
    let ids = [5, 1, 5, 9, 1, 5, 0];
    let c = weights(ids.len());
    let grad_of = |sparse: bool| {
        let tape = Tape::new();
        let t = tape.watch(&w);
        let rows = if sparse {
            t.embedding(&ids).unwrap()
        } else {
            t.index_select(0, &ids).unwrap()
        };
        let loss = rows.tanh().mul(&tape.constant(c.clone())).unwrap().sum();
        tape.gradient(&loss, [&w]).unwrap()
    };
    let sparse = grad_of(true);
    let dense = grad_of(false);
    let Some(Gradient::Rows(r)) = sparse.gradient(&w) else {
        panic!("not row-sparse: {:?}", sparse.gradient(&w))
    };
    assert_eq!(r.indices(), &[0, 1, 5, 9]);
    assert_eq!(r.values().shape(), &[4, 3]);
    assert_eq!(r.shape(), &[12, 3]);
    assert!(matches!(dense.gradient(&w), Some(Gradient::Dense(_))));
    let want = dense[&w].to_vec();
    let got = r.to_dense().to_vec();
    for (g, d) in got.iter().zip(&want) {
        assert!((g - d).abs() <= 1e-15 * d.abs().max(1.0), "{g} vs {d}");
    }
    // The dense view of the sparse gradient is the same tensor.
    assert_eq!(sparse[&w].to_vec(), got);
    assert_eq!(sparse.global_norm(), dense.global_norm());
}

#[test]
fn tied_and_var_and_recorded_gradients_are_dense() {
    let w = table();
    let ids = [2, 7, 2];
    // Tied: looked up sparsely and used as an output matrix.
    let tape = Tape::new();
    let t = tape.watch(&w);
    let h = t.embedding(&ids).unwrap(); // [3, 3]
    let logits = h.matmul(&t.transpose(0, 1).unwrap()).unwrap(); // [3, 12]
    let loss = logits.sum();
    let g = tape.gradient(&loss, [&w]).unwrap();
    let Some(Gradient::Dense(tied)) = g.gradient(&w) else {
        panic!("a tied table's gradient is dense")
    };
    // Against the all-dense formulation.
    let tape2 = Tape::new();
    let t2 = tape2.watch(&w);
    let h2 = t2.index_select(0, &ids).unwrap();
    let loss2 = h2.matmul(&t2.transpose(0, 1).unwrap()).unwrap().sum();
    let want = tape2.gradient(&loss2, [&w]).unwrap()[&w].to_vec();
    for (a, b) in tied.to_vec().iter().zip(&want) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0));
    }
    // A Var source, and a recorded pass: dense.
    let tape = Tape::new();
    let x = tape.var(w.value());
    let loss = x.embedding(&ids).unwrap().square().sum();
    let gv = tape
        .gradient_vars(&loss, &[&x], &GradientOptions::default())
        .unwrap();
    assert_eq!(gv[0].as_ref().unwrap().shape(), &[12, 3]);
    let tape = Tape::new();
    let loss = tape.watch(&w).embedding(&ids).unwrap().square().sum();
    let gg = tape.gradient_graph(&loss, &[&w], None).unwrap();
    assert_eq!(gg[0].as_ref().unwrap().shape(), &[12, 3]);
}

#[test]
fn unconnected_policies_still_apply() {
    let w = table();
    let other = Parameter::new("other", Tensor::<f64>::ones([2]));
    let tape = Tape::new();
    let loss = tape.watch(&w).embedding(&[3]).unwrap().sum();
    let opts = GradientOptions {
        unconnected: Unconnected::Zero,
        ..Default::default()
    };
    let g = tape.gradient_with(&loss, [&w, &other], &opts).unwrap();
    assert!(matches!(g.gradient(&w), Some(Gradient::Rows(_))));
    assert_eq!(g[&other].to_vec(), [0.0, 0.0]);
    let g = tape.gradient(&loss, [&w, &other]).unwrap();
    assert!(g.gradient(&other).is_none());
}

#[test]
fn clipping_scales_the_rows() {
    let w = table();
    let tape = Tape::new();
    let loss = tape
        .watch(&w)
        .embedding(&[4, 4, 8])
        .unwrap()
        .mul_scalar(100.0)
        .sum();
    let mut g = tape.gradient(&loss, [&w]).unwrap();
    let before = g.clip_global_norm(1.0).unwrap();
    assert!(before > 1.0);
    assert!((g.global_norm() - 1.0).abs() < 1e-5);
    assert!(matches!(g.gradient(&w), Some(Gradient::Rows(_))));
}

#[test]
fn bad_rows_are_errors() {
    let g = Tensor::<f64>::ones([2, 3]);
    let e = RowSparse::from_rows(&[0, 12], &g, &[12, 3]).unwrap_err();
    assert!(
        e.to_string().contains("RowSparse") && e.to_string().contains("12"),
        "{e}"
    );
    let e = RowSparse::from_rows(&[0], &g, &[12, 3]).unwrap_err();
    assert!(e.to_string().contains("[2, 3]"), "{e}");
    assert!(RowSparse::from_rows(&[], &Tensor::<f64>::zeros([0]), &[]).is_err());
    let r = RowSparse::from_rows(&[1, 0], &g, &[12, 3]).unwrap();
    assert!(r.with_values(Tensor::ones([3, 3])).is_err());
}
