//! Data parallelism: the same model on every rank, gradients averaged in
//! buckets (`DataParallel`), or optimizer state sharded across the ranks
//! (`ShardedOptimizer`, ZeRO stage 1).

use tapir_autograd::{Gradients, Parameter};
use tapir_optim::{Optimizer, OptimizerState, ParamState, Slot, StepReport};
use tapir_tensor::Tensor;

use crate::comm::{CommFloat, Communicator};
use crate::error::{Error, Result};

/// Gradient bucket size, as PyTorch DDP's default `bucket_cap_mb = 25`.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Checks that every rank has the same parameters (count, names, shapes,
/// in order) and gives every rank rank 0's values.
fn start<C: Communicator, E: CommFloat>(comm: &C, params: &[Parameter<E>]) -> Result<()> {
    // A description every rank can compare with rank 0's: the count, then
    // per parameter a hash of its name (two 32-bit halves, exact in any
    // float), its rank and its dims.
    let mut desc = vec![params.len() as f64];
    for p in params {
        let h = fnv(p.name().as_bytes());
        desc.push((h >> 32) as f64);
        desc.push((h & 0xffff_ffff) as f64);
        let s = p.shape();
        desc.push(s.len() as f64);
        desc.extend(s.iter().map(|&d| d as f64));
    }
    // Lengths first, so that the broadcast itself cannot mismatch.
    let mut len = [desc.len() as f64];
    comm.broadcast(&mut len, 0)?;
    let mut root = vec![0.0; len[0] as usize];
    if comm.rank() == 0 {
        root.copy_from_slice(&desc);
    }
    comm.broadcast(&mut root, 0)?;
    // Every rank reports whether it matches, so that all fail together.
    let mismatch = describe_mismatch(&root, &desc, params);
    let mut bad = [if mismatch.is_some() { 1.0 } else { 0.0 }];
    comm.all_reduce_sum(&mut bad)?;
    if let Some(what) = mismatch {
        return Err(Error::Mismatch {
            rank: comm.rank(),
            what,
        });
    }
    if bad[0] > 0.0 {
        return Err(Error::Mismatch {
            rank: comm.rank(),
            what: "another rank's parameters differ from rank 0's".into(),
        });
    }
    for p in params {
        let mut v = p.value().to_vec();
        comm.broadcast(&mut v, 0)?;
        p.set(Tensor::from_vec(v, p.shape())?);
    }
    Ok(())
}

fn describe_mismatch<E: CommFloat>(
    root: &[f64],
    mine: &[f64],
    params: &[Parameter<E>],
) -> Option<String> {
    if root == mine {
        return None;
    }
    if root.first() != mine.first() {
        return Some(format!(
            "{} parameters here, {} on rank 0",
            params.len(),
            root.first().copied().unwrap_or(0.0)
        ));
    }
    // Walk both descriptions parameter by parameter.
    let (mut a, mut b) = (1, 1);
    for p in params {
        let nd_a = root.get(a + 2).copied().unwrap_or(0.0) as usize;
        let nd_b = mine[b + 2] as usize;
        let ra = root.get(a..(a + 3 + nd_a).min(root.len())).unwrap_or(&[]);
        let rb = &mine[b..b + 3 + nd_b];
        if ra != rb {
            let dims: Vec<usize> = ra.iter().skip(3).map(|&d| d as usize).collect();
            return Some(if ra.get(..2) != rb.get(..2) {
                format!("parameter '{}' has another name on rank 0", p.name())
            } else {
                format!(
                    "parameter '{}' has shape {:?} here, {dims:?} on rank 0",
                    p.name(),
                    p.shape()
                )
            });
        }
        a += 3 + nd_a;
        b += 3 + nd_b;
    }
    Some("the parameter lists differ".into())
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Each parameter's gradient flat (zeros where it has none; a row-sparse
/// gradient made dense).
fn flat_grad<E: CommFloat>(grads: &Gradients<E>, p: &Parameter<E>, n: usize) -> Vec<E> {
    match grads.get(p) {
        Some(g) => g.to_vec(),
        None => vec![E::ZERO; n],
    }
}

/// Data parallelism, as PyTorch's `DistributedDataParallel`: every rank
/// holds the whole model and optimizer, runs its own shard of the batch,
/// and before each optimizer step the gradients are averaged over the
/// ranks, so every rank applies the same step and the parameters stay
/// equal.
///
/// [`DataParallel::new`] checks that the ranks have the same parameters
/// (names, shapes, order) and copies rank 0's values to every rank.
/// [`DataParallel::all_reduce`] averages gradients in buckets of about
/// 25 MB (PyTorch's default), each one all-reduce, not one per tensor.
///
/// ```
/// use tapir_autograd::{Parameter, Tape};
/// use tapir_distributed::{Communicator, DataParallel, LocalGroup};
/// use tapir_optim::Sgd;
/// use tapir_tensor::Tensor;
/// let out = LocalGroup::run(2, |comm| {
///     let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
///     let dp = DataParallel::new(comm, &[w.clone()])?;
///     let mut opt = Sgd::new(0.1).build()?;
///     // Each rank's own data: here a different scale per rank.
///     let tape = Tape::new();
///     let loss = tape.watch(&w).mul_scalar(comm.rank() as f64 + 1.0).sum();
///     let grads = dp.all_reduce(&tape.gradient(&loss, [&w])?)?; // mean: 1.5
///     opt.apply_gradients(&grads)?;
///     Ok(w.value().to_vec())
/// });
/// assert_eq!(out[0].as_ref().unwrap(), &vec![0.85, 1.85]);
/// assert_eq!(out[1].as_ref().unwrap(), &vec![0.85, 1.85]);
/// ```
pub struct DataParallel<'c, C: Communicator, E: CommFloat> {
    comm: &'c C,
    params: Vec<Parameter<E>>,
    /// Parameter index ranges, one all-reduce each.
    buckets: Vec<std::ops::Range<usize>>,
}

impl<'c, C: Communicator, E: CommFloat> DataParallel<'c, C, E> {
    /// Checks the ranks' parameters against rank 0's and broadcasts rank
    /// 0's values, with the default bucket size.
    ///
    /// # Errors
    /// [`Error::Mismatch`] on every rank when any rank's parameter count,
    /// names or shapes differ from rank 0's (the message names the first
    /// difference on the rank that has it); [`Error::PeerFailed`].
    pub fn new(comm: &'c C, params: &[Parameter<E>]) -> Result<Self> {
        Self::with_bucket_bytes(comm, params, BUCKET_BYTES)
    }

    /// As [`DataParallel::new`], with buckets of about `bytes` bytes (a
    /// parameter larger than that is a bucket of its own).
    ///
    /// # Errors
    /// As [`DataParallel::new`].
    pub fn with_bucket_bytes(comm: &'c C, params: &[Parameter<E>], bytes: usize) -> Result<Self> {
        start(comm, params)?;
        let cap = (bytes / std::mem::size_of::<E>()).max(1);
        let mut buckets = Vec::new();
        let (mut first, mut filled) = (0, 0);
        for (i, p) in params.iter().enumerate() {
            filled += p.shape().iter().product::<usize>();
            if filled >= cap {
                buckets.push(first..i + 1);
                (first, filled) = (i + 1, 0);
            }
        }
        if first < params.len() {
            buckets.push(first..params.len());
        }
        Ok(DataParallel {
            comm,
            params: params.to_vec(),
            buckets,
        })
    }

    /// The number of all-reduce calls per step.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The gradients averaged over the ranks, for every parameter given to
    /// [`DataParallel::new`] (a parameter without a gradient on a rank
    /// counts as zero there; row-sparse gradients are made dense). Sums
    /// run in a fixed order, so every rank gets the same bits.
    ///
    /// # Errors
    /// [`Error::PeerFailed`].
    pub fn all_reduce(&self, grads: &Gradients<E>) -> Result<Gradients<E>> {
        let scale = E::from_f64(1.0 / self.comm.size() as f64);
        let mut out = Vec::with_capacity(self.params.len());
        for b in &self.buckets {
            let ps = &self.params[b.clone()];
            let sizes: Vec<usize> = ps.iter().map(|p| p.shape().iter().product()).collect();
            let mut flat = Vec::with_capacity(sizes.iter().sum());
            for (p, &n) in ps.iter().zip(&sizes) {
                flat.extend(flat_grad(grads, p, n));
            }
            self.comm.all_reduce_sum(&mut flat)?;
            let mut at = 0;
            for (p, &n) in ps.iter().zip(&sizes) {
                let g: Vec<E> = flat[at..at + n].iter().map(|&v| v * scale).collect();
                out.push((p.clone(), Some(Tensor::from_vec(g, p.shape())?)));
                at += n;
            }
        }
        Ok(Gradients::from_pairs(out))
    }
}

/// Optimizer state sharded across the ranks (ZeRO stage 1): each rank
/// keeps the optimizer state of its share of the parameters only and
/// updates only that share. A step reduce-scatters the gradients (each
/// rank receives the sum over the ranks of its share's gradients only),
/// updates its share, and all-gathers the parameters, so every rank ends
/// with the same model while holding about 1/size of the state.
///
/// Two ways to share out the parameters:
/// - [`ShardedOptimizer::new`] (DeepSpeed's ZeRO-1): the parameters laid
///   end to end, cut into `size` equal slices; each rank's optimizer
///   updates its slice as one flat parameter. The state falls by exactly
///   the number of ranks. For elementwise rules only (not LAMB, LARS,
///   Adafactor, Muon), and parameter groups, which match names, do not
///   apply (the slice has one name).
/// - [`ShardedOptimizer::by_parameter`] (PyTorch's
///   `ZeroRedundancyOptimizer`): whole parameters, largest first to the
///   rank with the fewest elements so far; any rule and groups work, but
///   one large tensor can leave the shares uneven.
///
/// Transforms that need every gradient (global-norm clipping) see only
/// the rank's share: clip before, or use per-tensor transforms.
pub struct ShardedOptimizer<'c, C: Communicator, E: CommFloat> {
    comm: &'c C,
    params: Vec<Parameter<E>>,
    layout: Layout<E>,
    opt: Optimizer<E>,
}

enum Layout<E: CommFloat> {
    /// The parameters end to end, `block` elements a rank; `shard` is this
    /// rank's slice as a parameter of its own (empty past the end).
    Flat {
        block: usize,
        total: usize,
        shard: Option<Parameter<E>>,
    },
    /// Whole parameters: each one's rank, each rank's parameters in order,
    /// and the longest share in elements (every rank's block).
    ByParam {
        owner: Vec<usize>,
        shards: Vec<Vec<usize>>,
        block: usize,
    },
}

fn numel<E: CommFloat>(p: &Parameter<E>) -> usize {
    p.shape().iter().product()
}

/// Elements `from..to` of the parameters laid end to end, copied from the
/// parameters they fall in (not from a copy of the whole model).
fn flat_slice<E: CommFloat>(params: &[Parameter<E>], from: usize, to: usize) -> Vec<E> {
    let mut out = Vec::with_capacity(to.saturating_sub(from));
    let mut at = 0;
    for p in params {
        let n = numel(p);
        let (a, b) = (from.max(at), to.min(at + n));
        if a < b {
            let v = p.value().contiguous();
            out.extend_from_slice(&v.as_slice().expect("contiguous")[a - at..b - at]);
        }
        at += n;
    }
    out
}

impl<'c, C: Communicator, E: CommFloat> ShardedOptimizer<'c, C, E> {
    /// Flat sharding: checks and broadcasts the parameters as
    /// [`DataParallel::new`], lays them end to end and gives each rank an
    /// equal slice, which `opt` will update.
    ///
    /// # Errors
    /// As [`DataParallel::new`]; [`Error::Buffer`] (on every rank) when
    /// `opt`'s rule needs each parameter whole: use
    /// [`ShardedOptimizer::by_parameter`].
    pub fn new(comm: &'c C, params: &[Parameter<E>], opt: Optimizer<E>) -> Result<Self> {
        if !opt.is_elementwise() {
            return Err(Error::Buffer {
                op: "ShardedOptimizer::new",
                msg: "flat shards need an elementwise rule; this one needs each parameter \
                      whole: use ShardedOptimizer::by_parameter"
                    .into(),
            });
        }
        start(comm, params)?;
        let total: usize = params.iter().map(numel).sum();
        let block = total.div_ceil(comm.size());
        let from = (comm.rank() * block).min(total);
        let to = (from + block).min(total);
        let shard = if to > from {
            Some(Parameter::new(
                format!("zero.shard{}", comm.rank()),
                Tensor::from_vec(flat_slice(params, from, to), [to - from])?,
            ))
        } else {
            None
        };
        Ok(ShardedOptimizer {
            comm,
            params: params.to_vec(),
            layout: Layout::Flat {
                block,
                total,
                shard,
            },
            opt,
        })
    }

    /// Sharding by whole parameters: checks and broadcasts the parameters
    /// as [`DataParallel::new`] and gives each to one rank, largest first
    /// to the rank with the fewest elements so far (ties to the lower rank
    /// and the earlier parameter), as every rank computes alike.
    ///
    /// # Errors
    /// As [`DataParallel::new`].
    pub fn by_parameter(comm: &'c C, params: &[Parameter<E>], opt: Optimizer<E>) -> Result<Self> {
        start(comm, params)?;
        let size = comm.size();
        let sizes: Vec<usize> = params.iter().map(numel).collect();
        let mut order: Vec<usize> = (0..params.len()).collect();
        order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
        let mut load = vec![0usize; size];
        let mut owner = vec![0usize; params.len()];
        for i in order {
            let r = (0..size).min_by_key(|&r| (load[r], r)).expect("size > 0");
            owner[i] = r;
            load[r] += sizes[i];
        }
        let shards: Vec<Vec<usize>> = (0..size)
            .map(|r| (0..params.len()).filter(|&i| owner[i] == r).collect())
            .collect();
        let block = load.iter().copied().max().unwrap_or(0);
        Ok(ShardedOptimizer {
            comm,
            params: params.to_vec(),
            layout: Layout::ByParam {
                owner,
                shards,
                block,
            },
            opt,
        })
    }

    /// With [`ShardedOptimizer::by_parameter`], the rank that owns each
    /// parameter, in the order given; `None` for flat shards.
    pub fn owners(&self) -> Option<&[usize]> {
        match &self.layout {
            Layout::ByParam { owner, .. } => Some(owner),
            Layout::Flat { .. } => None,
        }
    }

    /// The optimizer of this rank's share (its state covers only that).
    pub fn optimizer(&self) -> &Optimizer<E> {
        &self.opt
    }

    /// Bytes of optimizer state this rank holds (its slots, in their
    /// dtype, and its scalars as f64).
    pub fn state_bytes(&self) -> usize {
        self.opt
            .state()
            .params
            .iter()
            .map(|(_, p)| p.slots.iter().map(|s| s.bytes()).sum::<usize>() + 8 * p.scalars.len())
            .sum()
    }

    /// One step: reduce-scatter the gradients (averaged over the ranks),
    /// update this rank's share, all-gather every parameter. Returns this
    /// rank's optimizer report (`None` when its share is empty).
    ///
    /// # Errors
    /// The optimizer's refusal (which also stops the other ranks: see
    /// [`Communicator::abort`]), [`Error::PeerFailed`].
    pub fn step(&mut self, grads: &Gradients<E>) -> Result<Option<StepReport>> {
        match &self.layout {
            Layout::Flat { .. } => self.step_flat(grads),
            Layout::ByParam { .. } => self.step_by_param(grads),
        }
    }

    /// Applies this rank's gradients; a refusal stops every rank rather
    /// than leaving them waiting in the all-gather.
    fn apply(
        &mut self,
        pairs: Vec<(Parameter<E>, Option<Tensor<E>>)>,
    ) -> Result<Option<StepReport>> {
        if pairs.is_empty() {
            return Ok(None);
        }
        match self.opt.apply_gradients(&Gradients::from_pairs(pairs)) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                self.comm.abort(&e.to_string());
                Err(e.into())
            }
        }
    }

    /// The whole optimizer state, as one optimizer over all the
    /// parameters would hold it (keyed by the parameters' names), gathered
    /// to rank 0 for a checkpoint: `Some` there, `None` on the other
    /// ranks. Every rank must call it (it is a collective). Flat shards
    /// only; state kept in bf16 comes back widened (exactly).
    ///
    /// # Errors
    /// [`Error::Buffer`] for a [`ShardedOptimizer::by_parameter`]
    /// optimizer; [`Error::PeerFailed`].
    pub fn gather_state(&self) -> Result<Option<OptimizerState<E>>> {
        let Layout::Flat { block, total, .. } = &self.layout else {
            return Err(Error::Buffer {
                op: "gather_state",
                msg: "only flat shards (ShardedOptimizer::new) gather their state".into(),
            });
        };
        let (block, total) = (*block, *total);
        let mine = self.opt.state();
        let own = mine.params.first().map(|(_, p)| p);
        // The step count, scalars and slot count, from the ranks that
        // have a share (rank 0 always has one unless there is nothing).
        let slots = own.map_or(0, |p| p.slots.len());
        let nscalars = own.map_or(0, |p| p.scalars.len());
        let mut head = vec![0.0f64; 3 + nscalars];
        if let Some(p) = own {
            head[0] = p.t as f64;
            head[1] = slots as f64;
            head[2] = nscalars as f64;
            head[3..].copy_from_slice(&p.scalars);
        }
        let mut len = [head.len() as f64];
        self.comm.broadcast(&mut len, 0)?;
        head.resize(len[0] as usize, 0.0);
        self.comm.broadcast(&mut head, 0)?;
        let (t, slots) = (head[0] as u64, head[1] as usize);
        let scalars = head[3..].to_vec();
        let mut full: Vec<Vec<E>> = Vec::with_capacity(slots);
        for k in 0..slots {
            let mut out = own
                .and_then(|p| p.slots.get(k))
                .map(Slot::to_vec)
                .unwrap_or_default();
            out.resize(block, E::ZERO);
            let mut all = vec![E::ZERO; self.comm.size() * block];
            self.comm.all_gather(&out, &mut all)?;
            all.truncate(total);
            full.push(all);
        }
        if self.comm.rank() != 0 {
            return Ok(None);
        }
        let mut params = Vec::new();
        if slots > 0 {
            let mut at = 0;
            for p in &self.params {
                let n = numel(p);
                params.push((
                    p.name().to_string(),
                    ParamState {
                        t,
                        slots: full
                            .iter()
                            .map(|f| Slot::Full(f[at..at + n].to_vec()))
                            .collect(),
                        scalars: scalars.clone(),
                        shape: p.shape(),
                    },
                ));
                at += n;
            }
            params.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(Some(OptimizerState { params, ..mine }))
    }

    /// Loads a state saved from [`ShardedOptimizer::gather_state`] (or from
    /// one optimizer over the same parameters): every rank takes its
    /// slice. Every rank must call it, with the same state (read from the
    /// same checkpoint).
    ///
    /// # Errors
    /// [`Error::Buffer`] for a [`ShardedOptimizer::by_parameter`]
    /// optimizer, a parameter missing from the state or a slot of the
    /// wrong length; the optimizer's refusal of the slice.
    pub fn load_state(&mut self, state: &OptimizerState<E>) -> Result<()> {
        let Layout::Flat {
            block,
            total,
            shard,
        } = &self.layout
        else {
            return Err(Error::Buffer {
                op: "load_state",
                msg: "only flat shards (ShardedOptimizer::new) load a whole state".into(),
            });
        };
        let bad = |msg: String| Error::Buffer {
            op: "load_state",
            msg,
        };
        let mut mine = OptimizerState {
            params: Vec::new(),
            ..state.clone()
        };
        if let (Some(sp), false) = (shard, state.params.is_empty()) {
            let mut t = 0;
            let mut scalars = Vec::new();
            let mut slots: Vec<Vec<E>> = Vec::new();
            for p in &self.params {
                let name = p.name();
                let (_, st) = state
                    .params
                    .iter()
                    .find(|(n, _)| *n == *name)
                    .ok_or_else(|| bad(format!("the state has no parameter '{name}'")))?;
                if slots.is_empty() {
                    slots = vec![Vec::with_capacity(*total); st.slots.len()];
                    (t, scalars) = (st.t, st.scalars.clone());
                }
                if st.slots.len() != slots.len() || st.slots.iter().any(|s| s.len() != numel(p)) {
                    return Err(bad(format!("'{name}': its slots do not fit its shape")));
                }
                for (f, s) in slots.iter_mut().zip(&st.slots) {
                    f.extend(s.to_vec());
                }
            }
            let from = (self.comm.rank() * block).min(*total);
            let to = from + numel(sp);
            mine.params.push((
                sp.name().to_string(),
                ParamState {
                    t,
                    slots: slots
                        .iter()
                        .map(|f| Slot::Full(f[from..to].to_vec()))
                        .collect(),
                    scalars,
                    shape: vec![to - from],
                },
            ));
        }
        let sp = shard.clone();
        let refs: Vec<&Parameter<E>> = sp.iter().collect();
        self.opt.load_state(&mine, &refs)?;
        Ok(())
    }

    fn step_flat(&mut self, grads: &Gradients<E>) -> Result<Option<StepReport>> {
        let Layout::Flat {
            block,
            total,
            shard,
        } = &self.layout
        else {
            unreachable!("a flat layout")
        };
        let (block, total, shard) = (*block, *total, shard.clone());
        let size = self.comm.size();
        let mut send = Vec::with_capacity(size * block);
        for p in &self.params {
            send.extend(flat_grad(grads, p, numel(p)));
        }
        send.resize(size * block, E::ZERO);
        let mut mine = vec![E::ZERO; block];
        self.comm.reduce_scatter_sum(&send, &mut mine)?;
        let scale = E::from_f64(1.0 / size as f64);
        let from = (self.comm.rank() * block).min(total);
        let report = match &shard {
            Some(sp) => {
                // The slice's values from the parameters (they may have
                // been set from outside since the last step).
                let m = numel(sp);
                sp.set(Tensor::from_vec(
                    flat_slice(&self.params, from, from + m),
                    [m],
                )?);
                let g: Vec<E> = mine[..m].iter().map(|&v| v * scale).collect();
                self.apply(vec![(sp.clone(), Some(Tensor::from_vec(g, [m])?))])?
            }
            None => None,
        };
        let mut out = vec![E::ZERO; block];
        if let Some(sp) = &shard {
            let v = sp.value().to_vec();
            out[..v.len()].copy_from_slice(&v);
        }
        let mut all = vec![E::ZERO; size * block];
        self.comm.all_gather(&out, &mut all)?;
        let mut at = 0;
        for p in &self.params {
            let n = numel(p);
            p.set(Tensor::from_vec(all[at..at + n].to_vec(), p.shape())?);
            at += n;
        }
        Ok(report)
    }

    fn step_by_param(&mut self, grads: &Gradients<E>) -> Result<Option<StepReport>> {
        let Layout::ByParam { shards, block, .. } = &self.layout else {
            unreachable!("a by-parameter layout")
        };
        let (shards, block) = (shards.clone(), *block);
        let size = self.comm.size();
        let rank = self.comm.rank();
        let sizes: Vec<usize> = self.params.iter().map(numel).collect();
        let n = |i: usize| sizes[i];
        // Every rank's block: its parameters' gradients, zero-padded.
        let mut send = vec![E::ZERO; size * block];
        for (r, shard) in shards.iter().enumerate() {
            let mut at = r * block;
            for &i in shard {
                let g = flat_grad(grads, &self.params[i], n(i));
                send[at..at + g.len()].copy_from_slice(&g);
                at += g.len();
            }
        }
        let mut mine = vec![E::ZERO; block];
        self.comm.reduce_scatter_sum(&send, &mut mine)?;
        let scale = E::from_f64(1.0 / size as f64);
        let mut pairs = Vec::with_capacity(shards[rank].len());
        let mut at = 0;
        for &i in &shards[rank] {
            let g: Vec<E> = mine[at..at + n(i)].iter().map(|&v| v * scale).collect();
            let p = &self.params[i];
            pairs.push((p.clone(), Some(Tensor::from_vec(g, p.shape())?)));
            at += n(i);
        }
        let report = self.apply(pairs)?;
        let mut out = vec![E::ZERO; block];
        let mut at = 0;
        for &i in &shards[rank] {
            let v = self.params[i].value().to_vec();
            out[at..at + v.len()].copy_from_slice(&v);
            at += v.len();
        }
        let mut all = vec![E::ZERO; size * block];
        self.comm.all_gather(&out, &mut all)?;
        for (r, shard) in shards.iter().enumerate() {
            if r == rank {
                continue;
            }
            let mut at = r * block;
            for &i in shard {
                let p = &self.params[i];
                p.set(Tensor::from_vec(all[at..at + n(i)].to_vec(), p.shape())?);
                at += n(i);
            }
        }
        Ok(report)
    }
}
