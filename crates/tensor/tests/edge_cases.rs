//! Hand-worked values and edge cases: scalars, size-0 and size-1 axes,
//! broadcasting both ways, non-contiguous inputs, large inputs that take the
//! parallel paths, errors.

use tapir_tensor::{Conv2dParams, Error, Pool2dParams, Rng, Tensor};
use tapir_testutil::assert_close;

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn construction_and_access() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(a.ndim(), 2);
    assert_eq!(a.len(), 6);
    assert_eq!(a.at([1, 2]).unwrap(), 6.0);
    assert!(matches!(a.at([2, 0]), Err(Error::Index { .. })));
    let e = Tensor::<f32>::from_vec(vec![1.0; 5], [2, 3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "from_vec: 5 elements do not fill shape [2, 3] (6 elements)"
    );
    assert_eq!(Tensor::<f32>::scalar(2.5).item().unwrap(), 2.5);
    assert_eq!(Tensor::<f32>::scalar(2.5).shape(), &[] as &[usize]);
    assert!(a.item().is_err());
    assert_eq!(
        Tensor::<f64>::eye(3).to_vec(),
        vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]
    );
    assert_eq!(Tensor::<f64>::full([2], 7.0).to_vec(), vec![7.0, 7.0]);
    assert_eq!(a.zeros_like().to_vec(), vec![0.0; 6]);
    assert_eq!(a.ones_like().sum().item().unwrap(), 6.0);
    assert_eq!(
        Tensor::<f64>::arange(0.0, 1.0, 0.25).unwrap().to_vec(),
        vec![0.0, 0.25, 0.5, 0.75]
    );
    assert_eq!(
        Tensor::<f64>::arange(3.0, 0.0, -1.0).unwrap().to_vec(),
        vec![3.0, 2.0, 1.0]
    );
    assert!(Tensor::<f64>::arange(0.0, 1.0, 0.0).is_err());
    assert_eq!(
        Tensor::<f64>::linspace(0.0, 1.0, 5).to_vec(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(Tensor::<f64>::linspace(2.0, 3.0, 1).to_vec(), vec![2.0]);
}

#[test]
fn random_tensors_depend_only_on_the_seed() {
    let x: Tensor = Tensor::randn([1000], &mut Rng::seed(42));
    let y: Tensor = Tensor::randn([1000], &mut Rng::seed(42));
    let z: Tensor = Tensor::randn([1000], &mut Rng::seed(43));
    assert_eq!(x, y);
    assert_ne!(x, z);
    // Same numbers inside a rayon pool of one thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let w: Tensor = pool.install(|| Tensor::randn([1000], &mut Rng::seed(42)));
    assert_eq!(x, w);
    let u: Tensor<f64> = Tensor::uniform([10_000], -2.0, 3.0, &mut Rng::seed(1));
    assert!(u.min().unwrap().item().unwrap() >= -2.0);
    assert!(u.max().unwrap().item().unwrap() < 3.0);
    assert!((u.mean().item().unwrap() - 0.5).abs() < 0.05);
    let n: Tensor<f64> = Tensor::normal([20_000], 3.0, 2.0, &mut Rng::seed(2));
    assert!((n.mean().item().unwrap() - 3.0).abs() < 0.05);
    assert!((n.std_axes(&[0], false).unwrap().item().unwrap() - 2.0).abs() < 0.05);
}

#[test]
fn ndarray_conversion_does_not_copy_unshared_data() {
    let a = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[3, 4]));
    let p = a.as_ptr();
    let t = Tensor::from_array(a);
    assert_eq!(t.view().as_ptr(), p);
    let back = t.into_array();
    assert_eq!(back.as_ptr(), p);
}

#[test]
fn clones_and_views_share_storage_and_copy_on_write() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let v = a.transpose(0, 1).unwrap();
    assert_eq!(v.view().as_ptr(), a.view().as_ptr());
    assert!(!v.is_contiguous());
    let mut b = a.clone();
    b.as_mut_slice()[0] = 100.0;
    assert_eq!(
        a.at([0, 0]).unwrap(),
        1.0,
        "writing a clone must not change the original"
    );
    assert_eq!(b.at([0, 0]).unwrap(), 100.0);
    let r = a.reshape([3, -1]).unwrap();
    assert_eq!(r.shape(), &[3, 2]);
    assert_eq!(r.view().as_ptr(), a.view().as_ptr());
}

#[test]
fn broadcasting_both_ways_and_scalars() {
    let col = t(&[1., 2.], &[2, 1]);
    let row = t(&[10., 20., 30.], &[3]);
    assert_eq!((&col + &row).to_vec(), vec![11., 21., 31., 12., 22., 32.]);
    assert_eq!((&row + &col).shape(), &[2, 3]);
    let s = Tensor::scalar(2.0);
    assert_eq!((&row * &s).to_vec(), vec![20., 40., 60.]);
    assert_eq!((&s - &row).to_vec(), vec![-8., -18., -28.]);
    assert_eq!((2.0 - &row).to_vec(), vec![-8., -18., -28.]);
    assert_eq!((&row / 10.0).to_vec(), vec![1., 2., 3.]);
    assert_eq!((-&row).to_vec(), vec![-10., -20., -30.]);
    let e = t(&[1., 2., 3.], &[3]).add(&t(&[1., 2.], &[2])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "add: shapes [3] and [2] cannot be broadcast together"
    );
}

#[test]
#[should_panic(expected = "mul: shapes [3] and [2] cannot be broadcast together")]
fn operators_panic_with_the_method_message() {
    let _ = t(&[1., 2., 3.], &[3]) * t(&[1., 2.], &[2]);
}

#[test]
fn size_zero_axes() {
    let z = Tensor::<f64>::zeros([0, 3]);
    assert_eq!((&z + &t(&[1., 2., 3.], &[3])).shape(), &[0, 3]);
    assert_eq!(z.sum_axes(&[0], false).unwrap().to_vec(), vec![0.0; 3]);
    assert_eq!(z.prod_axes(&[0], false).unwrap().to_vec(), vec![1.0; 3]);
    assert!(z
        .mean_axes(&[0], false)
        .unwrap()
        .to_vec()
        .iter()
        .all(|v| v.is_nan()));
    assert!(z.max_axes(&[0], false).is_err());
    assert!(z.argmax_axes(&[0], false).is_err());
    assert_eq!(z.sum_axes(&[1], false).unwrap().shape(), &[0]);
    assert_eq!(z.matmul(&Tensor::zeros([3, 2])).unwrap().shape(), &[0, 2]);
    // Inner size 0: a product of zeros.
    let p = Tensor::<f64>::zeros([2, 0])
        .matmul(&Tensor::zeros([0, 3]))
        .unwrap();
    assert_eq!(p.to_vec(), vec![0.0; 6]);
    assert_eq!(z.softmax(1).unwrap().shape(), &[0, 3]);
    assert_eq!(
        Tensor::concat(&[&z, &Tensor::ones([1, 3])], 0)
            .unwrap()
            .shape(),
        &[1, 3]
    );
}

#[test]
fn size_one_axes_and_squeeze() {
    let a = t(&[1., 2., 3.], &[1, 3, 1]);
    assert_eq!(a.squeeze(0).unwrap().shape(), &[3, 1]);
    assert_eq!(a.squeeze(1).unwrap().shape(), &[1, 3, 1], "size 3 is kept");
    assert_eq!(a.squeeze_all().shape(), &[3]);
    assert_eq!(a.unsqueeze(-1).unwrap().shape(), &[1, 3, 1, 1]);
    assert_eq!(a.unsqueeze(0).unwrap().shape(), &[1, 1, 3, 1]);
    assert!(a.unsqueeze(4).is_err());
    assert_eq!(
        a.sum_axes(&[0, 2], false).unwrap().to_vec(),
        vec![1., 2., 3.]
    );
    assert_eq!(a.flatten(0, -1).unwrap().shape(), &[3]);
    assert_eq!(a.flatten(1, 2).unwrap().shape(), &[1, 3]);
}

#[test]
fn non_contiguous_inputs() {
    // Transposed.
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let at = a.t().unwrap();
    assert_eq!(at.to_vec(), vec![1., 4., 2., 5., 3., 6.]);
    assert_eq!(at.exp().to_vec(), at.contiguous().exp().to_vec());
    assert_eq!(at.sum_axes(&[0], false).unwrap().to_vec(), vec![6., 15.]);
    assert_eq!(at.sum_axes(&[1], false).unwrap().to_vec(), vec![5., 7., 9.]);
    assert_eq!(
        (&at + &t(&[1., 1.], &[2])).to_vec(),
        vec![2., 5., 3., 6., 4., 7.]
    );
    assert_eq!(at.softmax(0).unwrap(), at.contiguous().softmax(0).unwrap());
    assert_eq!(at.matmul(&a).unwrap(), at.contiguous().matmul(&a).unwrap());
    assert_eq!(
        at.reshape([6]).unwrap().to_vec(),
        vec![1., 4., 2., 5., 3., 6.]
    );
    // Sliced with a step.
    let r = Tensor::<f64>::arange(0.0, 10.0, 1.0).unwrap();
    let s = r.slice(0, 1, Some(8), 3).unwrap();
    assert_eq!(s.to_vec(), vec![1., 4., 7.]);
    assert_eq!(r.slice(0, -3, None, 1).unwrap().to_vec(), vec![7., 8., 9.]);
    assert_eq!(
        r.slice(0, 5, Some(100), 2).unwrap().to_vec(),
        vec![5., 7., 9.]
    );
    assert_eq!(r.slice(0, 8, Some(2), 1).unwrap().len(), 0);
    assert!(r.slice(0, 0, None, 0).is_err());
    assert_eq!((&s * &s).to_vec(), vec![1., 16., 49.]);
    assert_eq!(s.max().unwrap().item().unwrap(), 7.0);
    // Broadcast views materialised by broadcast_to, then sliced.
    let b = t(&[1., 2.], &[2, 1]).broadcast_to([2, 3]).unwrap();
    assert_eq!(b.to_vec(), vec![1., 1., 1., 2., 2., 2.]);
    let bs = b.narrow(1, 1, 2).unwrap();
    assert_eq!(bs.sum_axes(&[1], false).unwrap().to_vec(), vec![2., 4.]);
    assert!(t(&[1., 2., 3.], &[3]).broadcast_to([2]).is_err());
    // Permuted 3-D and reduced over a middle axis.
    let c = Tensor::<f64>::arange(0.0, 24.0, 1.0)
        .unwrap()
        .reshape([2, 3, 4])
        .unwrap();
    let p = c.permute(&[2, 0, 1]).unwrap();
    assert_eq!(p.shape(), &[4, 2, 3]);
    assert_eq!(p.at([1, 1, 2]).unwrap(), c.at([1, 2, 1]).unwrap());
    assert_eq!(
        p.sum_axes(&[1], false).unwrap().to_vec(),
        c.sum_axes(&[0], false)
            .unwrap()
            .permute(&[1, 0])
            .unwrap()
            .to_vec()
    );
    assert!(c.permute(&[0, 0, 1]).is_err());
}

#[test]
fn large_inputs_take_the_parallel_paths_and_agree_with_serial() {
    let n = 300_000;
    let mut rng = Rng::seed(9);
    let x: Tensor<f64> = Tensor::randn([n], &mut rng);
    let y: Tensor<f64> = Tensor::randn([n], &mut rng);
    let xs = x.to_vec();
    let ys = y.to_vec();
    let sum: Vec<f64> = xs.iter().zip(&ys).map(|(a, b)| a + b).collect();
    assert_eq!((&x + &y).to_vec(), sum);
    assert_eq!(
        x.tanh().to_vec(),
        xs.iter().map(|v| v.tanh()).collect::<Vec<_>>()
    );
    let serial: f64 = xs.iter().sum();
    assert!((x.sum().item().unwrap() - serial).abs() < 1e-9);
    // Thread count does not change a parallel reduction.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    assert_eq!(pool.install(|| x.sum()), x.sum());
    let m = x.reshape([600, 500]).unwrap();
    let rows = m.sum_axes(&[1], false).unwrap();
    let cols = m.sum_axes(&[0], false).unwrap();
    for (i, r) in rows.to_vec().iter().enumerate() {
        let want: f64 = xs[i * 500..(i + 1) * 500].iter().sum();
        assert!((r - want).abs() < 1e-9);
    }
    for (j, c) in cols.to_vec().iter().enumerate() {
        let want: f64 = (0..600).map(|i| xs[i * 500 + j]).sum();
        assert!((c - want).abs() < 1e-9);
    }
    let sm = m.softmax(-1).unwrap();
    assert_close(
        &sm.sum_axes(&[-1], false).unwrap(),
        &Tensor::<f64>::ones([600]),
        1e-12,
        1e-12,
    );
    // Broadcasting parallel path.
    let b = t(&[1.0; 500], &[500]);
    assert_eq!(
        (&m + &b).to_vec(),
        xs.iter().map(|v| v + 1.0).collect::<Vec<_>>()
    );
}

#[test]
fn large_matmul_matches_a_naive_product() {
    // Big enough that the GEMM uses both cores; odd sizes exercise edges.
    let (m, k, n) = (257, 190, 131);
    let mut rng = Rng::seed(3);
    let a: Tensor<f64> = Tensor::randn([m, k], &mut rng);
    let b: Tensor<f64> = Tensor::randn([k, n], &mut rng);
    let c = a.matmul(&b).unwrap();
    let (av, bv, cv) = (a.to_vec(), b.to_vec(), c.to_vec());
    for i in (0..m).step_by(17) {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| av[i * k + p] * bv[p * n + j]).sum();
            assert!((cv[i * n + j] - want).abs() < 1e-10);
        }
    }
    // Batched small matrices run in parallel; compare with one-by-one.
    let x: Tensor<f32> = Tensor::randn([64, 5, 7], &mut rng);
    let y: Tensor<f32> = Tensor::randn([7, 3], &mut rng);
    let z = x.matmul(&y).unwrap();
    for bi in [0usize, 31, 63] {
        let xb = x.narrow(0, bi, 1).unwrap().squeeze(0).unwrap();
        assert_eq!(
            z.narrow(0, bi, 1).unwrap().squeeze(0).unwrap(),
            xb.matmul(&y).unwrap()
        );
    }
}

#[test]
fn matmul_errors_name_the_shapes() {
    let a = Tensor::<f32>::zeros([2, 3]);
    let e = a.matmul(&Tensor::zeros([4, 5])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "matmul: inner sizes differ: [2, 3] @ [4, 5] (3 vs 4)"
    );
    let e = Tensor::<f32>::zeros([2, 2, 3])
        .matmul(&Tensor::zeros([3, 3, 1]))
        .unwrap_err();
    assert!(e
        .to_string()
        .contains("batch axes of [2, 2, 3] and [3, 3, 1]"));
    assert!(Tensor::<f32>::scalar(1.0).matmul(&a).is_err());
}

#[test]
fn softmax_and_logsumexp_are_stable_for_extreme_inputs() {
    let x = t(&[1e308, 1e308, -1e308], &[3]);
    let l = x.logsumexp_axes(&[0], false).unwrap().item().unwrap();
    assert!((l - (1e308 + 2f64.ln())).abs() <= 1e292);
    let s = x.softmax(0).unwrap().to_vec();
    assert_eq!(s, vec![0.5, 0.5, 0.0]);
    let tiny = t(&[-1e4, -1e4 - 1.0], &[2]);
    let ls = tiny.log_softmax(0).unwrap().to_vec();
    assert!((ls[0] - (-(1.0 + (-1f64).exp()).ln())).abs() < 1e-12);
    let neg_inf = t(&[f64::NEG_INFINITY, 0.0], &[2]);
    assert_eq!(neg_inf.softmax(0).unwrap().to_vec(), vec![0.0, 1.0]);
    let all_neg_inf = t(&[f64::NEG_INFINITY; 2], &[2]);
    assert_eq!(
        all_neg_inf
            .logsumexp_axes(&[0], false)
            .unwrap()
            .item()
            .unwrap(),
        f64::NEG_INFINITY
    );
    let xf: Tensor<f32> = Tensor::from_vec(vec![80.0, 100.0, 60.0], [3]).unwrap();
    let sf = xf.softmax(0).unwrap();
    assert!(sf.to_vec().iter().all(|v| v.is_finite()));
    assert!((sf.sum().item().unwrap() - 1.0).abs() < 1e-6);
}

#[test]
fn nan_is_a_value_not_an_error() {
    let x = t(&[1.0, f64::NAN, 3.0], &[3]);
    assert!(x.max().unwrap().item().unwrap().is_nan());
    assert_eq!(x.argmax().unwrap(), 1);
    assert!(x.sum().item().unwrap().is_nan());
    assert!(x.maximum(&t(&[0.0], &[1])).unwrap().to_vec()[1].is_nan());
    assert_eq!(x.eq(&x).unwrap().to_vec(), vec![1.0, 0.0, 1.0]);
    assert!(x.clamp(Some(0.0), Some(2.0)).unwrap().to_vec()[1].is_nan());
    assert!(t(&[-1.0], &[1]).sqrt().to_vec()[0].is_nan());
    assert_eq!(t(&[0.0], &[1]).log().to_vec()[0], f64::NEG_INFINITY);
}

#[test]
fn reductions_hand_worked() {
    let x = t(&[1., 5., 3., 4., 2., 6.], &[2, 3]);
    assert_eq!(
        x.sum_axes(&[], false).unwrap(),
        x,
        "no axes reduces nothing"
    );
    assert_eq!(x.sum_axes(&[0, 1], false).unwrap().item().unwrap(), 21.0);
    assert_eq!(x.max_axes(&[1], true).unwrap().to_vec(), vec![5., 6.]);
    assert_eq!(x.max_axes(&[1], true).unwrap().shape(), &[2, 1]);
    assert_eq!(
        x.argmax_axes(&[1], false)
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        x.argmin_axes(&[0], false)
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![0, 1, 0]
    );
    assert_eq!(
        x.argmax_axes(&[0, 1], false)
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![5]
    );
    // Ties pick the first.
    assert_eq!(t(&[2., 7., 7.], &[3]).argmax().unwrap(), 1);
    assert_eq!(x.prod().item().unwrap(), 720.0);
    assert_eq!(x.var().item().unwrap(), 3.5);
    assert!(t(&[1.0], &[1])
        .var_axes(&[0], false)
        .unwrap()
        .item()
        .unwrap()
        .is_nan());
    let e = x.sum_axes(&[2], false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "sum: axis 2 is out of range for a tensor of shape [2, 3]"
    );
    assert!(x.sum_axes(&[1, -1], false).is_err());
    // sum_to undoes broadcasting.
    let g = Tensor::<f64>::ones([4, 2, 3]);
    assert_eq!(g.sum_to(&[2, 1]).unwrap().to_vec(), vec![12., 12.]);
    assert_eq!(g.sum_to(&[3]).unwrap().to_vec(), vec![8., 8., 8.]);
    assert_eq!(g.sum_to(&[]).unwrap().item().unwrap(), 24.0);
    assert!(g.sum_to(&[5]).is_err());
}

#[test]
fn shape_ops_hand_worked() {
    let a = t(&[1., 2., 3., 4.], &[2, 2]);
    let b = t(&[5., 6.], &[1, 2]);
    assert_eq!(
        Tensor::concat(&[&a, &b], 0).unwrap().to_vec(),
        vec![1., 2., 3., 4., 5., 6.]
    );
    assert!(Tensor::concat(&[&a, &b], 1).is_err());
    let s = Tensor::stack(&[&a, &a], 1).unwrap();
    assert_eq!(s.shape(), &[2, 2, 2]);
    assert_eq!(s.to_vec(), vec![1., 2., 1., 2., 3., 4., 3., 4.]);
    assert!(Tensor::stack(&[&a, &b], 0).is_err());
    assert!(Tensor::<f64>::stack(&[], 0).is_err());
    let r = Tensor::<f64>::arange(0.0, 7.0, 1.0).unwrap();
    let parts = r.split(3, 0).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    let parts = r.chunk(3, 0).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(parts[2].to_vec(), vec![6.0]);
    let parts = r.split_sizes(&[2, 5], 0).unwrap();
    assert_eq!(parts[1].to_vec(), vec![2., 3., 4., 5., 6.]);
    assert!(r.split_sizes(&[2, 4], 0).is_err());
    assert!(r.reshape([-1, -1]).is_err());
    assert!(r.reshape([2, -1]).is_err());
    assert_eq!(r.reshape([7, 1]).unwrap().shape(), &[7, 1]);
    assert!(r.narrow(0, 5, 3).is_err());
    let p = a.pad(&[(0, 1), (1, 0)], 0.0).unwrap();
    assert_eq!(p.to_vec(), vec![0., 1., 2., 0., 3., 4., 0., 0., 0.]);
    assert!(a.pad(&[(1, 1)], 0.0).is_err());
}

#[test]
fn index_ops_hand_worked_and_errors() {
    let w = t(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
    assert_eq!(
        w.index_select(0, &[2, 0, 2]).unwrap().to_vec(),
        vec![20., 21., 0., 1., 20., 21.]
    );
    let e = w.index_select(0, &[3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "index_select: index 3 is out of range for axis 0 of size 3"
    );
    let g = Tensor::<f64>::zeros([3, 2])
        .index_add(0, &[2, 2], &t(&[1., 2., 3., 4.], &[2, 2]))
        .unwrap();
    assert_eq!(g.to_vec(), vec![0., 0., 0., 0., 4., 6.]);
    let idx = tapir_tensor::indices(vec![1, 0, 5], [3]).unwrap();
    assert!(Tensor::<f32>::one_hot(&idx, 4).is_err());
    let idx = tapir_tensor::indices(vec![0, 4], [1, 2]).unwrap();
    assert!(w.gather(1, &idx).is_err());
    assert!(tapir_tensor::indices(vec![0, 1], [3]).is_err());
}

#[test]
fn conv_and_pool_hand_worked() {
    // 1 channel 3x3 input, 2x2 kernel of ones: window sums.
    let x = t(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], &[1, 1, 3, 3]);
    let w = Tensor::<f64>::ones([1, 1, 2, 2]);
    let y = x.conv2d(&w, None, Conv2dParams::default()).unwrap();
    assert_eq!(y.to_vec(), vec![12., 16., 24., 28.]);
    let (m, idx) = x
        .max_pool2d_with_indices(Pool2dParams::new([2, 2]))
        .unwrap();
    assert_eq!(m.to_vec(), vec![5.]);
    assert_eq!(idx.iter().copied().collect::<Vec<_>>(), vec![4]);
    let a = x
        .avg_pool2d(Pool2dParams {
            kernel: [2, 2],
            stride: [1, 1],
            padding: [0, 0],
        })
        .unwrap();
    assert_eq!(a.to_vec(), vec![3., 4., 6., 7.]);
    let e = x
        .conv2d(&Tensor::ones([1, 2, 2, 2]), None, Conv2dParams::default())
        .unwrap_err();
    assert!(e
        .to_string()
        .starts_with("conv2d: input [1, 1, 3, 3] and weight [1, 2, 2, 2]"));
    let e = x
        .conv2d(&Tensor::ones([1, 1, 4, 4]), None, Conv2dParams::default())
        .unwrap_err();
    assert!(e.to_string().contains("smaller than the kernel"));
    assert!(x
        .max_pool2d(Pool2dParams {
            kernel: [2, 2],
            stride: [1, 1],
            padding: [2, 2]
        })
        .is_err());
    assert!(x
        .reshape([9])
        .unwrap()
        .avg_pool2d(Pool2dParams::new([2, 2]))
        .is_err());
}

#[test]
fn views_at_the_edges_of_their_storage() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    // Empty views at the very end of the storage.
    let e = a.narrow(1, 3, 0).unwrap();
    assert_eq!(e.shape(), &[2, 0]);
    assert!(e.to_vec().is_empty());
    let e = a.slice(0, 5, None, 1).unwrap();
    assert_eq!(e.shape(), &[0, 3]);
    assert_eq!(e.sum().item().unwrap(), 0.0);
    // A strided view of the last column, then rank changes on the view.
    let col = a.slice(1, 2, None, 1).unwrap();
    assert_eq!(col.to_vec(), vec![3., 6.]);
    let u = col.squeeze(1).unwrap().unsqueeze(0).unwrap();
    assert_eq!(u.shape(), &[1, 2]);
    assert_eq!(u.to_vec(), vec![3., 6.]);
    assert_eq!(u.at([0, 1]).unwrap(), 6.0);
    // Every other element of the transpose.
    let s = a.t().unwrap().slice(0, 0, None, 2).unwrap();
    assert_eq!(s.shape(), &[2, 2]);
    assert_eq!(s.to_vec(), vec![1., 4., 3., 6.]);
    // Writing a view whose original is gone: it owns its storage alone but
    // starts mid-buffer; only its own elements change.
    let mut tail = t(&[1., 2., 3., 4., 5., 6.], &[6]).narrow(0, 4, 2).unwrap();
    tail.as_mut_slice()[1] = 60.0;
    assert_eq!(tail.to_vec(), vec![5., 60.]);
}

/// The direct-loop paths of gather and scatter_add (an index that matches
/// the input off the axis) against a plain multi-index loop, on every axis,
/// small and above the parallel threshold.
#[test]
fn gather_and_scatter_add_fast_paths_match_a_plain_loop() {
    for &(d0, d1, d2) in &[(3usize, 5usize, 4usize), (64, 40, 36)] {
        let shape = [d0, d1, d2];
        let n: usize = shape.iter().product();
        let x =
            Tensor::<f64>::from_vec((0..n).map(|v| v as f64 * 0.5 - 3.0).collect(), shape).unwrap();
        for axis in 0..3 {
            let mut ishape = shape;
            ishape[axis] = shape[axis] / 2 + 1;
            let m: usize = ishape.iter().product();
            let idx: Vec<usize> = (0..m).map(|i| (i * 7 + 3) % shape[axis]).collect();
            let at = |p: [usize; 3]| p[0] * ishape[1] * ishape[2] + p[1] * ishape[2] + p[2];
            let flat = |p: [usize; 3]| p[0] * d1 * d2 + p[1] * d2 + p[2];
            let got = x
                .gather(axis as isize, (idx.clone(), ishape))
                .unwrap()
                .to_vec();
            let src =
                Tensor::<f64>::from_vec((0..m).map(|v| v as f64 + 1.0).collect(), ishape).unwrap();
            let scattered = x
                .scatter_add(axis as isize, (idx.clone(), ishape), &src)
                .unwrap()
                .to_vec();
            let xs = x.to_vec();
            let mut want_s = xs.clone();
            for i in 0..ishape[0] {
                for j in 0..ishape[1] {
                    for k in 0..ishape[2] {
                        let mut q = [i, j, k];
                        q[axis] = idx[at([i, j, k])];
                        assert_eq!(got[at([i, j, k])], xs[flat(q)], "gather axis {axis}");
                        want_s[flat(q)] += (at([i, j, k]) + 1) as f64;
                    }
                }
            }
            assert_eq!(
                scattered, want_s,
                "scatter_add axis {axis}, shape {shape:?}"
            );
        }
    }
    // Out of range still names the op on the fast path.
    let x = Tensor::<f32>::zeros([2, 3]);
    let e = x.gather(1, (vec![0, 3, 1, 1, 2, 0], [2, 3])).unwrap_err();
    assert!(e.to_string().contains("gather"), "{e}");
    let e = x
        .scatter_add(1, (vec![0, 1, 5, 1, 2, 0], [2, 3]), &Tensor::zeros([2, 3]))
        .unwrap_err();
    assert!(e.to_string().contains("scatter_add"), "{e}");
}

#[test]
fn scatter_add_into_a_strided_tensor_adds_in_logical_order() {
    let base = Tensor::<f64>::from_vec((0..6).map(|v| v as f64).collect(), [2, 3]).unwrap();
    let t = base.transpose(0, 1).unwrap(); // [3, 2], strided
    let src = Tensor::<f64>::ones([3, 2]);
    let idx = (vec![1usize, 0, 0, 1, 1, 1], [3, 2]);
    let got = t.clone().scatter_add_into(1, idx.clone(), &src).unwrap();
    // Rows of t: [0, 3], [1, 4], [2, 5].
    assert_eq!(got.to_vec(), [1.0, 4.0, 2.0, 5.0, 2.0, 7.0]);
    assert_eq!(t.scatter_add(1, idx, &src).unwrap().to_vec(), got.to_vec());
    assert_eq!(
        t.to_vec(),
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
        "input untouched"
    );
}

/// The fixed-tap 2×2/2 max pooling path against a plain loop over the
/// window, with ties (first wins) and NaNs (propagate), odd sizes included.
#[test]
fn max_pool_two_by_two_fast_path_matches_a_plain_window_loop() {
    use tapir_tensor::Pool2dParams;
    let (n, c, h, w) = (2usize, 3usize, 7usize, 6usize);
    let vals: Vec<f64> = (0..n * c * h * w)
        .map(|i| match i % 11 {
            3 => f64::NAN,
            5 | 6 => 2.0,
            k => (k as f64) * 0.5 - 1.0,
        })
        .collect();
    let x = Tensor::from_vec(vals.clone(), [n, c, h, w]).unwrap();
    let (y, idx) = x
        .max_pool2d_with_indices(Pool2dParams::new([2, 2]))
        .unwrap();
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(y.shape(), &[n, c, oh, ow]);
    let y = y.to_vec();
    let idx: Vec<usize> = idx.iter().copied().collect();
    for plane in 0..n * c {
        for oi in 0..oh {
            for oj in 0..ow {
                let mut best = f64::NEG_INFINITY;
                let mut bi = usize::MAX;
                for ih in 2 * oi..2 * oi + 2 {
                    for iw in 2 * oj..2 * oj + 2 {
                        let v = vals[plane * h * w + ih * w + iw];
                        if bi == usize::MAX || v > best || (v.is_nan() && !best.is_nan()) {
                            best = v;
                            bi = ih * w + iw;
                        }
                    }
                }
                let k = plane * oh * ow + oi * ow + oj;
                assert_eq!(idx[k], bi, "plane {plane} ({oi}, {oj})");
                assert!(y[k] == best || (y[k].is_nan() && best.is_nan()));
            }
        }
    }
}

/// `max_pool2d_backward` and `max_pool2d_gather` are adjoint
/// (<B g, u> = <g, G u>) for disjoint and overlapping windows, on inputs
/// below and above the parallel threshold; and gathering `x` at its own
/// pooling indices is its pooling.
#[test]
fn max_pool_backward_and_gather_are_adjoint() {
    use tapir_tensor::{Pool2dParams, Rng};
    let mut rng = Rng::seed(21);
    let overlapping = Pool2dParams {
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
    };
    for (shape, p) in [
        ([2, 3, 6, 8], Pool2dParams::new([2, 2])),
        ([2, 3, 6, 8], overlapping),
        ([8, 16, 28, 28], Pool2dParams::new([2, 2])),
        ([4, 8, 30, 30], overlapping),
    ] {
        let x = Tensor::<f64>::randn(shape, &mut rng);
        let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
        assert_eq!(x.max_pool2d_gather(&idx).unwrap().to_vec(), y.to_vec());
        let g = Tensor::<f64>::randn(y.shape(), &mut rng);
        let u = Tensor::<f64>::randn(shape, &mut rng);
        let bg = g.max_pool2d_backward(&idx, &shape).unwrap();
        let gu = u.max_pool2d_gather(&idx).unwrap();
        let dot = |a: &Tensor<f64>, b: &Tensor<f64>| -> f64 {
            a.to_vec().iter().zip(b.to_vec()).map(|(p, q)| p * q).sum()
        };
        let (l, r) = (dot(&bg, &u), dot(&g, &gu));
        assert!(
            (l - r).abs() < 1e-9 * (1.0 + l.abs()),
            "{shape:?}: {l} vs {r}"
        );
    }
    let (_, idx) = Tensor::<f64>::zeros([1, 1, 4, 4])
        .max_pool2d_with_indices(Pool2dParams::new([2, 2]))
        .unwrap();
    assert!(Tensor::<f64>::zeros([1, 1, 1, 3])
        .max_pool2d_gather(&idx)
        .is_err());
    assert!(Tensor::<f64>::zeros([1, 2, 4, 4])
        .max_pool2d_gather(&idx)
        .is_err());
}

/// `max_pool2d_backward` against a plain scatter-add, where the planes are
/// exactly tiled by 2×2 windows (the write-once path) and where only the
/// shape matches (3×3 stride 2 padding 1, indices outside the 2×2
/// windows, overlapping choices: the general path), and with indices made
/// by hand: one outside its window but inside the plane (general path,
/// same sums), one outside the plane (an error naming the op).
#[test]
fn max_pool_backward_matches_a_plain_scatter() {
    use tapir_tensor::{indices, Pool2dParams, Rng};
    let mut rng = Rng::seed(5);
    let scatter = |g: &Tensor<f64>, idx: &[usize], shape: [usize; 4]| -> Vec<f64> {
        let plane_in = shape[2] * shape[3];
        let plane_out = g.shape()[2] * g.shape()[3];
        let mut dx = vec![0.0; shape.iter().product()];
        for (k, (&i, v)) in idx.iter().zip(g.to_vec()).enumerate() {
            dx[(k / plane_out) * plane_in + i] += v;
        }
        dx
    };
    let k3 = Pool2dParams {
        kernel: [3, 3],
        stride: [2, 2],
        padding: [1, 1],
    };
    for (shape, p) in [
        ([2, 3, 8, 6], Pool2dParams::new([2, 2])),
        ([8, 16, 24, 24], Pool2dParams::new([2, 2])),
        ([2, 3, 8, 6], k3),
    ] {
        let x = Tensor::<f64>::randn(shape, &mut rng);
        let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
        let g = Tensor::<f64>::randn(y.shape(), &mut rng);
        let iv: Vec<usize> = idx.iter().copied().collect();
        let got = g.max_pool2d_backward(&idx, &shape).unwrap();
        assert_eq!(got.to_vec(), scatter(&g, &iv, shape), "{shape:?} {p:?}");
    }
    // [1, 1, 4, 4] input, [1, 1, 2, 2] output; output (0, 1)'s index 0 is
    // in output (0, 0)'s window.
    let g = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]).unwrap();
    let idx = indices(vec![5, 0, 8, 15], [1, 1, 2, 2]).unwrap();
    let got = g.max_pool2d_backward(&idx, &[1, 1, 4, 4]).unwrap();
    assert_eq!(got.to_vec(), scatter(&g, &[5, 0, 8, 15], [1, 1, 4, 4]));
    let idx = indices(vec![5, 16, 8, 15], [1, 1, 2, 2]).unwrap();
    let e = g.max_pool2d_backward(&idx, &[1, 1, 4, 4]).unwrap_err();
    assert!(e.to_string().contains("max_pool2d_backward"), "{e}");
}

/// broadcast_to's fast paths (one element; a block gaining leading axes)
/// give what the general strided path gives, and a target of lower rank
/// is still refused.
#[test]
fn broadcast_to_fast_paths_match_the_general_path() {
    let x = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 2, 3]).unwrap();
    let got = x.broadcast_to([2, 2, 2, 3]).unwrap();
    let want: Vec<f64> = (0..4).flat_map(|_| x.to_vec()).collect();
    assert_eq!(got.to_vec(), want);
    assert_eq!(got.shape(), &[2, 2, 2, 3]);
    let s = Tensor::<f64>::from_vec(vec![7.0], [1, 1]).unwrap();
    assert_eq!(s.broadcast_to([2, 3]).unwrap().to_vec(), vec![7.0; 6]);
    assert_eq!(s.broadcast_to([0, 3]).unwrap().shape(), &[0, 3]);
    // A middle axis broadcast takes the general path.
    let c = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2, 1]).unwrap();
    assert_eq!(
        c.broadcast_to([2, 3]).unwrap().to_vec(),
        [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    );
    assert!(x.broadcast_to([2, 3]).is_err());
    assert!(s.broadcast_to([1]).is_err());
    assert!(x.broadcast_to([2, 2, 4]).is_err());
}
