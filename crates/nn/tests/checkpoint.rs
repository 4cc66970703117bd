//! Saving and loading: PyTorch's safetensors into Tapir and back, every
//! bad file an error (never a panic), training checkpoints that resume
//! bit-identically, rotation.

use std::path::PathBuf;

use proptest::prelude::*;
use tapir_autograd::{Tape, Var};
use tapir_nn::{
    read_safetensors, Checkpoint, CheckpointManager, Conv2d, Error, Forward, Linear, LoadOptions,
    Module, Padding,
};
use tapir_optim::{Adam, GradTransform, Rounding, StateDtype};
use tapir_tensor::{Pool2dParams, Rng, Tensor};
use tapir_testutil::parse_fixtures;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tapir-nn-ckpt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The architecture of gen_nn_fixtures.py's `Cnn`, field names as there.
#[derive(Module)]
struct Cnn {
    conv: Conv2d,
    fc: Linear,
}

/// The fixture CNN's conv layer: 3×3, 1 → 4 channels, padding 1.
fn conv<E: tapir_tensor::Float>(rng: &mut Rng) -> Conv2d<E> {
    Conv2d::builder(1, 4, [3, 3])
        .padding(Padding::Explicit([1, 1]))
        .build(rng)
        .unwrap()
}

impl Cnn {
    fn new(rng: &mut Rng) -> Self {
        Self::with_classes(10, rng)
    }

    /// The same with another number of outputs (a shape mismatch).
    fn with_classes(classes: usize, rng: &mut Rng) -> Self {
        Cnn {
            conv: conv(rng),
            fc: Linear::new(64, classes, rng),
        }
    }
}

impl Forward for Cnn {
    fn forward<'t>(&self, x: &Var<'t>) -> tapir_autograd::Result<Var<'t>> {
        let h = self
            .conv
            .forward(x)?
            .relu()
            .max_pool2d(Pool2dParams::new([2, 2]))?;
        self.fc.forward(&h.flatten(1, -1)?)
    }
}

const TORCH_CNN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/torch_cnn.safetensors"
);

#[test]
fn a_model_saved_by_pytorch_loads_and_gives_pytorchs_outputs() {
    let model = Cnn::new(&mut Rng::seed(9));
    let report = model.load(TORCH_CNN, LoadOptions::default()).unwrap();
    assert_eq!(report.loaded.len(), 4);
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    let cases = parse_fixtures(include_str!("fixtures/nn_layers.txt"));
    let c = cases.iter().find(|c| c.name == "torch_cnn").unwrap();
    let y = model.forward(&Var::untracked(c.t::<f32>("x"))).unwrap();
    tapir_testutil::assert_close(y.value(), &c.t::<f32>("out"), 1e-5, 1e-5);
}

#[test]
fn a_tapir_save_reads_back_exactly_and_in_torchs_layout() {
    let dir = tmp("roundtrip");
    let a = Cnn::new(&mut Rng::seed(1));
    let path = dir.join("cnn.safetensors");
    a.save(&path).unwrap();
    let b = Cnn::new(&mut Rng::seed(2));
    b.load(&path, LoadOptions::default()).unwrap();
    for ((na, ta), (nb, tb)) in a.state_dict().iter().zip(b.state_dict().iter()) {
        assert_eq!(na, nb);
        assert_eq!(ta.to_vec(), tb.to_vec());
    }
    // The same names and shapes as PyTorch's file.
    let theirs = read_safetensors::<f32>(TORCH_CNN, false).unwrap();
    let ours = read_safetensors::<f32>(&path, false).unwrap();
    let shapes = |sd: &Vec<(String, Tensor<f32>)>| {
        sd.iter()
            .map(|(n, t)| (n.clone(), t.shape().to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(shapes(&theirs), shapes(&ours));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_files_and_mismatches_are_clear_errors() {
    let dir = tmp("errors");
    let model = Cnn::new(&mut Rng::seed(1));
    let before = model.state_dict();
    let unchanged = |m: &Cnn| {
        for ((_, a), (_, b)) in m.state_dict().iter().zip(before.iter()) {
            assert_eq!(a.to_vec(), b.to_vec());
        }
    };
    // Missing file: names it.
    let e = model
        .load(dir.join("nope.safetensors"), LoadOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("nope.safetensors"),
        "{e}"
    );
    // Truncated.
    let good = std::fs::read(TORCH_CNN).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &good[..good.len() - 7]).unwrap();
    let e = model.load(&cut, LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::Format { .. }) && e.to_string().contains("cut.safetensors"),
        "{e}"
    );
    // A flipped bit in the data of a file Tapir wrote: the checksum says so.
    let ours = dir.join("ours.safetensors");
    model.save(&ours).unwrap();
    let mut bytes = std::fs::read(&ours).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    let flipped = dir.join("flipped.safetensors");
    std::fs::write(&flipped, &bytes).unwrap();
    let e = model.load(&flipped, LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    // Wrong dtype: an f64 model's file into an f32 model.
    let m64 = {
        let mut rng = Rng::seed(4);
        Cnn64 {
            conv: conv(&mut rng),
            fc: Linear::new(64, 10, &mut rng),
        }
    };
    let f64file = dir.join("f64.safetensors");
    m64.save(&f64file).unwrap();
    let e = model.load(&f64file, LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::Dtype { .. }) && e.to_string().contains("f64"),
        "{e}"
    );
    unchanged(&model);
    // ... and converted when asked.
    model
        .load(&f64file, LoadOptions::default().convert_dtype(true))
        .unwrap();
    let want = m64.fc.weight.value().to_vec();
    let got = model.fc.weight.value().to_vec();
    assert!(want.iter().zip(&got).all(|(a, b)| (*a as f32) == *b));
    // Missing and unexpected names: strict refuses, listing both; partial
    // loads report them.
    let other = Other {
        conv: conv(&mut Rng::seed(5)),
        head: Linear::new(64, 10, &mut Rng::seed(5)),
    };
    let e = other.load(&ours, LoadOptions::default()).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("head.weight") && s.contains("fc.weight"), "{s}");
    let r = other
        .load(&ours, LoadOptions::default().strict(false))
        .unwrap();
    assert_eq!(r.loaded, ["conv.weight", "conv.bias"]);
    assert_eq!(r.missing, ["head.weight", "head.bias"]);
    assert_eq!(r.unexpected, ["fc.bias", "fc.weight"]);
    // Shape mismatch: names the parameter and both shapes; nothing changes.
    let wide = Cnn::with_classes(12, &mut Rng::seed(6));
    let conv_before = wide.conv.weight.value().to_vec();
    let e = wide
        .load(&ours, LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fc.weight") && e.contains("[12, 64]") && e.contains("[10, 64]"),
        "{e}"
    );
    assert_eq!(wide.conv.weight.value().to_vec(), conv_before);
    std::fs::remove_dir_all(dir).unwrap();
}

#[derive(Module)]
#[module(float = f64)]
struct Cnn64 {
    conv: Conv2d<f64>,
    fc: Linear<f64>,
}

#[derive(Module)]
struct Other {
    conv: Conv2d,
    head: Linear,
}

fn step(model: &Cnn, opt: &mut tapir_optim::Optimizer, x: &Tensor<f32>, labels: &[usize]) {
    let tape = Tape::new();
    let loss = model
        .forward(&tape.constant(x.clone()))
        .unwrap()
        .cross_entropy(labels)
        .unwrap();
    let grads = tape.gradient(&loss, model.parameters()).unwrap();
    opt.apply_gradients(&grads).unwrap();
}

fn optimizer() -> tapir_optim::Optimizer {
    // Accumulation state must survive a save between micro-steps too.
    Adam::new(1e-2)
        .weight_decay(1e-3)
        .build()
        .unwrap()
        .with_transform(GradTransform::accumulate(2).unwrap())
        .unwrap()
}

#[test]
fn resuming_from_a_checkpoint_is_bit_identical_to_never_stopping() {
    let dir = tmp("resume");
    let mut rng = Rng::seed(7);
    let x = Tensor::randn([8, 1, 8, 8], &mut rng);
    let labels: Vec<usize> = (0..8).map(|i| i % 10).collect();
    // Uninterrupted: 9 steps.
    let a = Cnn::new(&mut Rng::seed(1));
    let mut oa = optimizer();
    for _ in 0..9 {
        step(&a, &mut oa, &x, &labels);
    }
    // Interrupted after 5 (mid-accumulation), saved, restored into fresh
    // objects, 4 more.
    let b = Cnn::new(&mut Rng::seed(1));
    let mut ob = optimizer();
    for _ in 0..5 {
        step(&b, &mut ob, &x, &labels);
    }
    let path = dir.join("ckpt.safetensors");
    let data_rng = Rng::seed(99);
    Checkpoint::capture(&b, &ob, 5, Some(&data_rng))
        .with_meta("epoch", "0")
        .save(&path)
        .unwrap();
    drop((b, ob));
    let c = Cnn::new(&mut Rng::seed(123));
    let mut oc = optimizer();
    let ck = Checkpoint::<f32>::load(&path).unwrap();
    assert_eq!(ck.step, 5);
    assert_eq!(ck.meta.get("epoch").map(String::as_str), Some("0"));
    let back = ck.restore(&c, &mut oc).unwrap();
    assert_eq!(back, Some(data_rng));
    for _ in 0..4 {
        step(&c, &mut oc, &x, &labels);
    }
    for ((n, ta), (_, tc)) in a.state_dict().iter().zip(c.state_dict().iter()) {
        let bits = |t: &Tensor<f32>| t.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(ta), bits(tc), "{n} differs");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn optimizers_with_factored_or_mixed_state_resume_through_a_file() {
    // Adafactor keeps row and column means (slots shorter than the
    // parameter, stored flat); Muon keeps one slot for matrices and two
    // (its AdamW) for the rest; Adam with bf16 moments stores them as
    // BF16 tensors, and its stochastic rounding must draw the same bits
    // after the resume.
    let builds: [fn() -> tapir_optim::Optimizer; 3] = [
        || tapir_optim::Adafactor::new(1e-2).build().unwrap(),
        || tapir_optim::Muon::new(2e-2).build().unwrap(),
        || {
            Adam::new(1e-2)
                .state_dtype(StateDtype::Bf16(Rounding::Stochastic))
                .build()
                .unwrap()
        },
    ];
    for (i, build) in builds.iter().enumerate() {
        let dir = tmp(&format!("factored{i}"));
        let mut rng = Rng::seed(7);
        let x = Tensor::randn([8, 1, 8, 8], &mut rng);
        let labels: Vec<usize> = (0..8).map(|i| i % 10).collect();
        let a = Cnn::new(&mut Rng::seed(1));
        let mut oa = build();
        for _ in 0..6 {
            step(&a, &mut oa, &x, &labels);
        }
        let b = Cnn::new(&mut Rng::seed(1));
        let mut ob = build();
        for _ in 0..3 {
            step(&b, &mut ob, &x, &labels);
        }
        let path = dir.join("ckpt.safetensors");
        Checkpoint::capture(&b, &ob, 3, None).save(&path).unwrap();
        let c = Cnn::new(&mut Rng::seed(5));
        let mut oc = build();
        let loaded = Checkpoint::<f32>::load(&path).unwrap();
        assert_eq!(
            loaded.optimizer,
            ob.state(),
            "optimizer {i}: state changed in the file"
        );
        loaded.restore(&c, &mut oc).unwrap();
        for _ in 0..3 {
            step(&c, &mut oc, &x, &labels);
        }
        for ((n, ta), (_, tc)) in a.state_dict().iter().zip(c.state_dict().iter()) {
            assert_eq!(ta.to_vec(), tc.to_vec(), "optimizer {i}: {n} differs");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn restoring_into_another_architecture_fails_and_changes_nothing() {
    let dir = tmp("restore-mismatch");
    let a = Cnn::new(&mut Rng::seed(1));
    let oa = optimizer();
    let path = dir.join("a.safetensors");
    Checkpoint::capture(&a, &oa, 0, None).save(&path).unwrap();
    let wide = Cnn::with_classes(12, &mut Rng::seed(6));
    let before = wide.conv.weight.value().to_vec();
    let mut ow = optimizer();
    let e = Checkpoint::<f32>::load(&path)
        .unwrap()
        .restore(&wide, &mut ow)
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("fc.") && s.contains("[12") && s.contains("[10"),
        "{s}"
    );
    assert_eq!(wide.conv.weight.value().to_vec(), before);
    // Loaded as the wrong float type: an error naming both.
    let e = Checkpoint::<f64>::load(&path).unwrap_err().to_string();
    assert!(e.contains("f32") && e.contains("f64"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_manager_keeps_the_last_n() {
    let dir = tmp("rotate");
    let m = Cnn::new(&mut Rng::seed(1));
    let opt = optimizer();
    let mgr = CheckpointManager::new(dir.join("ckpts"), "run", 2).unwrap();
    for s in [10, 20, 30, 40] {
        mgr.save(&Checkpoint::capture(&m, &opt, s, None)).unwrap();
    }
    let steps: Vec<u64> = mgr.list().unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(steps, [30, 40]);
    assert_eq!(mgr.latest().unwrap(), Some(mgr.path(40)));
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(dir.join("ckpts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn checkpoint_bytes() -> Vec<u8> {
    let dir = tmp("fuzz-src");
    let m = Cnn::new(&mut Rng::seed(1));
    let mut opt = optimizer();
    let x = Tensor::randn([2, 1, 8, 8], &mut Rng::seed(2));
    step(&m, &mut opt, &x, &[1, 2]);
    let p = dir.join("c.safetensors");
    Checkpoint::capture(&m, &opt, 1, Some(&Rng::seed(3)))
        .save(&p)
        .unwrap();
    let b = std::fs::read(&p).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Truncated and mutated checkpoints and weight files: loading returns
    /// an error or (for a mutation the format cannot see, such as a
    /// changed header space) a checkpoint; it never panics.
    #[test]
    fn mutated_files_never_panic(
        cut in 0usize..1usize << 20,
        flips in proptest::collection::vec((0usize..1usize << 20, 1u8..=255), 0..4),
        truncate in any::<bool>(),
    ) {
        thread_local! {
            static SRC: Vec<u8> = checkpoint_bytes();
            static DIR: PathBuf = tmp("fuzz");
        }
        let mut b = SRC.with(|s| s.clone());
        if truncate {
            b.truncate(cut % (b.len() + 1));
        }
        for (at, x) in flips {
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= x;
            }
        }
        let p = DIR.with(|d| d.join(format!("f-{:?}.safetensors", std::thread::current().id())));
        std::fs::write(&p, &b).unwrap();
        let _ = Checkpoint::<f32>::load(&p);
        let _ = read_safetensors::<f32>(&p, true);
        let m = Cnn::new(&mut Rng::seed(1));
        let _ = m.load(&p, LoadOptions::default().strict(false));
    }
}

/// A parameter EMA rides in the checkpoint: the averages come back exactly,
/// by name, and a run resumed with them keeps averaging as one never
/// stopped.
#[test]
fn parameter_ema_is_saved_and_restored() {
    use tapir_optim::ParamEma;
    let dir = tmp("ema");
    let x = Tensor::<f32>::randn([8, 3], &mut Rng::seed(4));
    let train = |model: &Linear, opt: &mut tapir_optim::Optimizer<f32>, ema: &mut ParamEma<f32>| {
        let tape = Tape::new();
        let loss = model
            .forward(&tape.constant(x.clone()))
            .unwrap()
            .square()
            .mean();
        let grads = tape.gradient(&loss, model.parameters()).unwrap();
        opt.apply_gradients(&grads).unwrap();
        ema.update().unwrap();
    };
    let fresh = || {
        let m: Linear = Linear::new(3, 2, &mut Rng::seed(1));
        m.named_parameters();
        m
    };
    // Uninterrupted: 6 steps.
    let a = fresh();
    let mut opt_a = Adam::new(1e-2).build::<f32>().unwrap();
    let pa = a.parameters();
    let mut ema_a = ParamEma::new(&pa.iter().collect::<Vec<_>>(), 0.9).unwrap();
    for _ in 0..6 {
        train(&a, &mut opt_a, &mut ema_a);
    }
    // Interrupted after 3, saved, restored into new objects, 3 more.
    let b = fresh();
    let mut opt_b = Adam::new(1e-2).build::<f32>().unwrap();
    let pb = b.parameters();
    let mut ema_b = ParamEma::new(&pb.iter().collect::<Vec<_>>(), 0.9).unwrap();
    for _ in 0..3 {
        train(&b, &mut opt_b, &mut ema_b);
    }
    let path = dir.join("ema.safetensors");
    Checkpoint::capture(&b, &opt_b, 3, None)
        .with_ema(&ema_b)
        .save(&path)
        .unwrap();
    let back = Checkpoint::<f32>::load(&path).unwrap();
    assert_eq!(back.ema, Some(ema_b.state()));
    let c = Linear::<f32>::new(3, 2, &mut Rng::seed(99));
    c.named_parameters();
    let mut opt_c = Adam::new(1e-2).build::<f32>().unwrap();
    back.restore(&c, &mut opt_c).unwrap();
    let pc = c.parameters();
    let mut ema_c = ParamEma::new(&pc.iter().collect::<Vec<_>>(), 0.5).unwrap();
    back.restore_ema(&mut ema_c).unwrap();
    for _ in 0..3 {
        train(&c, &mut opt_c, &mut ema_c);
    }
    for (p, q) in pa.iter().zip(&pc) {
        assert_eq!(
            ema_a.average(p).unwrap().to_vec(),
            ema_c.average(q).unwrap().to_vec()
        );
        assert_eq!(p.value().to_vec(), q.value().to_vec());
    }
    // A checkpoint without an EMA, or an EMA over other parameters: errors.
    let plain = Checkpoint::capture(&b, &opt_b, 3, None);
    assert!(plain.restore_ema(&mut ema_c).is_err());
    let other: Linear = Linear::new(4, 2, &mut Rng::seed(2));
    other.named_parameters();
    let po = other.parameters();
    let mut ema_o = ParamEma::new(&po.iter().collect::<Vec<_>>(), 0.9).unwrap();
    let before = ema_o.state();
    let e = back.restore_ema(&mut ema_o).unwrap_err().to_string();
    assert!(e.contains("weight"), "{e}");
    assert_eq!(ema_o.state(), before, "unchanged on error");
    std::fs::remove_dir_all(&dir).ok();
}
