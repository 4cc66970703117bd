//! Training checkpoints: parameters, buffers, optimizer state, step and
//! RNG state in one safetensors file, written atomically, with keep-last-N
//! rotation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tapir_optim::{
    AccumulatorState, EmaState, Optimizer, OptimizerState, ParamEma, ParamState, Slot,
};
use tapir_tensor::{Float, Rng, Tensor};

use crate::error::{format, io, Result};
use crate::io::{
    bf16_bits, decode, encode, raw, raw_bf16, raw_f64, read, to_tensor, write_atomic, LoadOptions,
    Raw,
};
use crate::module::{Module, StateDict};

const FORMAT: &str = "tapir-checkpoint-1";

/// Everything needed to resume training bit for bit: the model's state
/// dict, the optimizer's state, the step, the data/dropout generator's
/// state and free-form metadata (Keras's `ModelCheckpoint` with the
/// optimizer; PyTorch's customary `torch.save({"model": ..., "optimizer":
/// ..., "step": ...})`).
///
/// ```
/// use tapir_nn::{Checkpoint, Linear, Module};
/// use tapir_optim::Adam;
/// use tapir_tensor::Rng;
/// let dir = std::env::temp_dir().join(format!("tapir-doc-ckpt-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut rng = Rng::seed(0);
/// let model: Linear = Linear::new(3, 2, &mut rng);
/// let opt = Adam::new(1e-3).build::<f32>()?;
/// let path = dir.join("step-10.safetensors");
/// Checkpoint::capture(&model, &opt, 10, Some(&rng)).save(&path)?;
/// let back = Checkpoint::<f32>::load(&path)?;
/// assert_eq!(back.step, 10);
/// assert_eq!(back.rng, Some(rng.clone()));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<E: Float = f32> {
    /// The model's parameters and buffers.
    pub model: StateDict<E>,
    /// The optimizer's state.
    pub optimizer: OptimizerState<E>,
    /// The training step (or any counter the loop keeps).
    pub step: u64,
    /// The generator that shuffles data or draws masks, if saved.
    pub rng: Option<Rng>,
    /// Free-form metadata (epoch, config, ...).
    pub meta: BTreeMap<String, String>,
    /// A parameter EMA's decay and averages, if one was added
    /// ([`Checkpoint::with_ema`]).
    pub ema: Option<EmaState<E>>,
}

impl<E: Float> Checkpoint<E> {
    /// The state of `model` and `opt` now.
    pub fn capture<M: Module<E> + ?Sized>(
        model: &M,
        opt: &Optimizer<E>,
        step: u64,
        rng: Option<&Rng>,
    ) -> Self {
        Checkpoint {
            model: model.state_dict(),
            optimizer: opt.state(),
            step,
            rng: rng.cloned(),
            meta: BTreeMap::new(),
            ema: None,
        }
    }

    /// Adds a parameter EMA's state (the averages an evaluation swaps in),
    /// restored by [`Checkpoint::restore_ema`].
    pub fn with_ema(mut self, ema: &ParamEma<E>) -> Self {
        self.ema = Some(ema.state());
        self
    }

    /// Puts the saved averages back into `ema` (matched by parameter
    /// name); on an error `ema` is unchanged.
    ///
    /// # Errors
    /// No EMA was saved, or the saved averages do not fit `ema`'s
    /// parameters.
    pub fn restore_ema(&self, ema: &mut ParamEma<E>) -> Result<()> {
        let s = self.ema.as_ref().ok_or_else(|| {
            crate::Error::Optim(tapir_optim::Error::State(
                "the checkpoint holds no parameter EMA".into(),
            ))
        })?;
        ema.load_state(s)?;
        Ok(())
    }

    /// Adds a metadata entry.
    pub fn with_meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.meta.insert(key.to_string(), value.into());
        self
    }

    /// Puts the saved state back into `model` and `opt` (and returns the
    /// saved generator, if any). Everything is checked first: on an error
    /// neither is changed.
    ///
    /// # Errors
    /// The model's names or shapes differ from the saved ones, or the
    /// optimizer refuses the state (another rule, other shapes).
    pub fn restore<M: Module<E> + ?Sized>(
        &self,
        model: &M,
        opt: &mut Optimizer<E>,
    ) -> Result<Option<Rng>> {
        // Both parts are checked before either changes: the model's names
        // and shapes here, the optimizer's state by `load_state` (which
        // changes nothing on an error).
        crate::io::check_state_dict(model, &self.model, LoadOptions::default())?;
        let params = model.parameters();
        let refs: Vec<_> = params.iter().collect();
        opt.load_state(&self.optimizer, &refs)?;
        crate::io::set_state_dict(model, &self.model);
        Ok(self.rng.clone())
    }

    /// Writes the checkpoint to `path` atomically: a crash or kill during
    /// the save leaves the previous file (or none) intact, never a broken
    /// one.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut tensors: Vec<(String, Raw)> = Vec::new();
        let mut meta: HashMap<String, String> = HashMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("dtype".into(), E::NAME.into());
        meta.insert("step".into(), self.step.to_string());
        if let Some(r) = &self.rng {
            let s = r.state();
            meta.insert(
                "rng".into(),
                s.iter()
                    .map(|x| format!("{x:016x}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        for (k, v) in &self.meta {
            meta.insert(format!("meta.{k}"), v.clone());
        }
        for (n, t) in &self.model {
            tensors.push((format!("model/{n}"), raw(t)));
        }
        let o = &self.optimizer;
        meta.insert("optim.rule".into(), o.rule.clone());
        meta.insert("optim.step".into(), o.step.to_string());
        meta.insert("optim.skipped".into(), o.skipped.to_string());
        meta.insert("optim.params".into(), o.params.len().to_string());
        tensors.push((
            "optim/schedule".into(),
            raw_f64(&o.schedule, vec![o.schedule.len()]),
        ));
        for (i, (n, p)) in o.params.iter().enumerate() {
            meta.insert(format!("optim.param.{i}.name"), n.clone());
            meta.insert(format!("optim.param.{i}.t"), p.t.to_string());
            meta.insert(format!("optim.param.{i}.slots"), p.slots.len().to_string());
            let numel: usize = p.shape.iter().product();
            for (j, s) in p.slots.iter().enumerate() {
                // A slot of another length (Adafactor's factored moments)
                // is stored flat; the optimizer checks lengths on load.
                let shape = if s.len() == numel {
                    p.shape.clone()
                } else {
                    vec![s.len()]
                };
                let r = match s {
                    Slot::Full(v) => {
                        let t = Tensor::from_vec(v.clone(), &shape).map_err(|e| {
                            format(
                                path,
                                format!("optimizer slot of '{n}' does not fit its shape: {e}"),
                            )
                        })?;
                        raw(&t)
                    }
                    // bf16 state (`StateDtype::Bf16`) is stored as bf16,
                    // bit for bit.
                    Slot::Bf16(v) => raw_bf16(v, shape),
                };
                tensors.push((format!("optim/{i}/slot{j}"), r));
            }
            tensors.push((
                format!("optim/{i}/scalars"),
                raw_f64(&p.scalars, vec![p.scalars.len()]),
            ));
            tensors.push((
                format!("optim/{i}/shape"),
                raw_f64(
                    &p.shape.iter().map(|&d| d as f64).collect::<Vec<_>>(),
                    vec![p.shape.len()],
                ),
            ));
        }
        meta.insert(
            "optim.accumulators".into(),
            o.accumulators.len().to_string(),
        );
        for (i, a) in o.accumulators.iter().enumerate() {
            meta.insert(format!("optim.accum.{i}.k"), a.k.to_string());
            meta.insert(format!("optim.accum.{i}.seen"), a.seen.to_string());
            meta.insert(format!("optim.accum.{i}.sums"), a.sums.len().to_string());
            for (j, (n, t)) in a.sums.iter().enumerate() {
                meta.insert(format!("optim.accum.{i}.{j}.name"), n.clone());
                tensors.push((format!("optim/accum{i}/{j}"), raw(t)));
            }
        }
        if let Some(e) = &self.ema {
            meta.insert("ema.decay".into(), format!("{:?}", e.decay));
            meta.insert("ema.count".into(), e.averages.len().to_string());
            for (i, (n, t)) in e.averages.iter().enumerate() {
                meta.insert(format!("ema.{i}.name"), n.clone());
                tensors.push((format!("ema/{i}"), raw(t)));
            }
        }
        let bytes = encode(path, &tensors, meta)?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    ///
    /// # Errors
    /// A missing file ([`Error::Io`]); a truncated, corrupted or foreign
    /// file, or one saved for another float type ([`Error::Format`]); never
    /// a panic.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let d = decode(path, &bytes)?;
        let meta = &d.meta;
        let get = |k: &str| -> Result<&String> {
            meta.get(k)
                .ok_or_else(|| format(path, format!("not a Tapir checkpoint: no '{k}' entry")))
        };
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse::<u64>()
                .map_err(|_| format(path, format!("'{k}' is not a count")))
        };
        if get("format")? != FORMAT {
            return Err(format(
                path,
                format!("unknown checkpoint format '{}'", get("format")?),
            ));
        }
        if get("dtype")? != E::NAME {
            return Err(format(
                path,
                format!("saved for {}, loaded as {}", get("dtype")?, E::NAME),
            ));
        }
        let tensor = |k: &str| -> Result<&safetensors::tensor::TensorView<'_>> {
            d.tensors
                .get(k)
                .ok_or_else(|| format(path, format!("tensor '{k}' is missing")))
        };
        let f64s = |k: &str| -> Result<Vec<f64>> {
            Ok(to_tensor::<f64>(path, k, tensor(k)?, false)?.to_vec())
        };
        let rng = match meta.get("rng") {
            None => None,
            Some(s) => {
                let parts: Vec<u64> = s
                    .split(',')
                    .map(|p| u64::from_str_radix(p, 16))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| format(path, "the generator state is malformed"))?;
                let st: [u64; 4] = parts
                    .try_into()
                    .map_err(|_| format(path, "the generator state is malformed"))?;
                Some(
                    Rng::from_state(st)
                        .ok_or_else(|| format(path, "the generator state is all zero"))?,
                )
            }
        };
        let mut model = Vec::new();
        for (k, t) in &d.tensors {
            if let Some(n) = k.strip_prefix("model/") {
                model.push((n.to_string(), to_tensor::<E>(path, k, t, false)?));
            }
        }
        let nparams = num("optim.params")? as usize;
        if nparams > d.tensors.len() {
            return Err(format(
                path,
                "optimizer parameter count exceeds the tensors stored",
            ));
        }
        let mut params = Vec::with_capacity(nparams);
        for i in 0..nparams {
            let name = get(&format!("optim.param.{i}.name"))?.clone();
            let nslots = num(&format!("optim.param.{i}.slots"))? as usize;
            if nslots > d.tensors.len() {
                return Err(format(path, format!("'{name}': slot count out of range")));
            }
            let shape_f = f64s(&format!("optim/{i}/shape"))?;
            if shape_f
                .iter()
                .any(|&x| x < 0.0 || x.fract() != 0.0 || x > 1e15)
            {
                return Err(format(path, format!("'{name}': the shape is malformed")));
            }
            let shape: Vec<usize> = shape_f.iter().map(|&x| x as usize).collect();
            let mut slots = Vec::with_capacity(nslots);
            for j in 0..nslots {
                let k = format!("optim/{i}/slot{j}");
                let view = tensor(&k)?;
                let (slot, got) = if view.dtype() == safetensors::Dtype::BF16 {
                    (Slot::Bf16(bf16_bits(view)), view.shape().to_vec())
                } else {
                    let t = to_tensor::<E>(path, &k, view, false)?;
                    (Slot::Full(t.to_vec()), t.shape().to_vec())
                };
                let numel = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
                let flat = got.len() == 1 && Some(slot.len()) != numel;
                if got != shape && !flat {
                    return Err(format(
                        path,
                        format!("'{name}': slot {j} does not have the shape {shape:?}"),
                    ));
                }
                slots.push(slot);
            }
            params.push((
                name,
                ParamState {
                    t: num(&format!("optim.param.{i}.t"))?,
                    slots,
                    scalars: f64s(&format!("optim/{i}/scalars"))?,
                    shape,
                },
            ));
        }
        let nacc = num("optim.accumulators")? as usize;
        if nacc > d.tensors.len() + 64 {
            return Err(format(path, "accumulator count out of range"));
        }
        let mut accumulators = Vec::with_capacity(nacc);
        for i in 0..nacc {
            let nsums = num(&format!("optim.accum.{i}.sums"))? as usize;
            if nsums > d.tensors.len() {
                return Err(format(path, "accumulator sum count out of range"));
            }
            let mut sums = Vec::with_capacity(nsums);
            for j in 0..nsums {
                let k = format!("optim/accum{i}/{j}");
                sums.push((
                    get(&format!("optim.accum.{i}.{j}.name"))?.clone(),
                    to_tensor::<f64>(path, &k, tensor(&k)?, false)?,
                ));
            }
            accumulators.push(AccumulatorState {
                k: num(&format!("optim.accum.{i}.k"))? as usize,
                seen: num(&format!("optim.accum.{i}.seen"))? as usize,
                sums,
            });
        }
        let ema = match meta.get("ema.decay") {
            None => None,
            Some(dec) => {
                let decay: f64 = dec
                    .parse()
                    .map_err(|_| format(path, "'ema.decay' is not a number"))?;
                let count = num("ema.count")? as usize;
                if count > d.tensors.len() {
                    return Err(format(path, "EMA average count out of range"));
                }
                let mut averages = Vec::with_capacity(count);
                for i in 0..count {
                    let k = format!("ema/{i}");
                    averages.push((
                        get(&format!("ema.{i}.name"))?.clone(),
                        to_tensor::<E>(path, &k, tensor(&k)?, false)?,
                    ));
                }
                Some(EmaState { decay, averages })
            }
        };
        let user = meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("meta.").map(|k| (k.to_string(), v.clone())))
            .collect();
        Ok(Checkpoint {
            model,
            optimizer: OptimizerState {
                rule: get("optim.rule")?.clone(),
                step: num("optim.step")?,
                skipped: num("optim.skipped")?,
                schedule: f64s("optim/schedule")?,
                params,
                accumulators,
            },
            step: num("step")?,
            rng,
            meta: user,
            ema,
        })
    }
}

/// Saves checkpoints into a folder as `{prefix}-{step:08}.safetensors`,
/// keeping the newest `keep` (Keras `ModelCheckpoint` +
/// `BackupAndRestore`; Orbax's `max_to_keep`).
#[derive(Debug, Clone)]
pub struct CheckpointManager {
    dir: PathBuf,
    prefix: String,
    keep: usize,
}

impl CheckpointManager {
    /// Checkpoints in `dir` (created if missing), keeping the last `keep`
    /// (at least 1).
    ///
    /// # Errors
    /// [`Error::Io`] if the folder cannot be created.
    pub fn new(dir: impl AsRef<Path>, prefix: &str, keep: usize) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(CheckpointManager {
            dir,
            prefix: prefix.to_string(),
            keep: keep.max(1),
        })
    }

    /// The file the checkpoint of `step` goes to.
    pub fn path(&self, step: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{step:08}.safetensors", self.prefix))
    }

    /// The saved checkpoints, oldest first, with their steps.
    ///
    /// # Errors
    /// [`Error::Io`] if the folder cannot be read.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let e = e.map_err(io(&self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name
                .strip_prefix(&format!("{}-", self.prefix))
                .and_then(|s| s.strip_suffix(".safetensors"))
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(s) = step {
                out.push((s, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The newest checkpoint's path, if any.
    ///
    /// # Errors
    /// [`Error::Io`] if the folder cannot be read.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        Ok(self.list()?.pop().map(|(_, p)| p))
    }

    /// Saves `ckpt` under its step, then deletes all but the newest
    /// `keep`; returns the path written. The new file is complete before
    /// any old one is removed.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save<E: Float>(&self, ckpt: &Checkpoint<E>) -> Result<PathBuf> {
        let path = self.path(ckpt.step);
        ckpt.save(&path)?;
        let all = self.list()?;
        if all.len() > self.keep {
            for (_, old) in &all[..all.len() - self.keep] {
                std::fs::remove_file(old).map_err(io(old))?;
            }
        }
        Ok(path)
    }
}
