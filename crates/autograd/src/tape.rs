//! The tape (a Wengert list of recorded ops) and `Var`, a value on it.

use std::cell::{Cell, RefCell};
use std::fmt;

use smallvec::SmallVec;
use tapir_tensor::{Float, Tensor};

use crate::error::{Error, Result};
use crate::gradients::{GradientOptions, Gradients, Unconnected};
use crate::op::Op;
use crate::param::Parameter;
use crate::rules::backward;

/// One recorded op: what it was, which nodes fed it, and its value (shared
/// with the forward result, not copied).
pub(crate) struct Node<E: Float> {
    pub(crate) op: Op<E>,
    pub(crate) inputs: SmallVec<[usize; 2]>,
    pub(crate) value: Tensor<E>,
}

/// Nodes per chunk of the tape's storage.
const CHUNK: usize = 256;

/// The tape's nodes in fixed-size chunks: appending never moves recorded
/// nodes (a growing `Vec` copied every node again at each doubling).
pub(crate) struct Nodes<E: Float> {
    chunks: Vec<Vec<Node<E>>>,
    len: usize,
}

impl<E: Float> Nodes<E> {
    fn new() -> Self {
        Nodes {
            chunks: Vec::new(),
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, node: Node<E>) -> usize {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(node);
        self.len += 1;
        self.len - 1
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &Node<E>> {
        self.chunks.iter().flatten()
    }
}

impl<E: Float> std::ops::Index<usize> for Nodes<E> {
    type Output = Node<E>;
    #[inline]
    fn index(&self, i: usize) -> &Node<E> {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

/// Records operations on [`Var`]s so that [`Tape::gradient`] can run them
/// backwards: the counterpart of `tf.GradientTape` (persistent: it can be
/// asked for gradients any number of times) and of PyTorch's autograd graph.
///
/// Each op appends a node in execution order; the backward pass walks the
/// nodes in reverse, so any Rust control flow in the forward pass (loops,
/// branches, recursion) is differentiated as it ran. Everything is freed when
/// the tape is dropped.
///
/// ```
/// use tapir_autograd::{Parameter, Tape};
/// use tapir_tensor::Tensor;
/// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::from_vec(vec![3.0, 4.0], [2])?);
/// let loss = x.mul(&tape.watch(&w))?.sum_all(); // 3·w0 + 4·w1
/// let grads = tape.gradient(&loss, [&w])?;
/// assert_eq!(grads[&w].to_vec(), vec![3.0, 4.0]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
pub struct Tape<E: Float = f32> {
    pub(crate) nodes: RefCell<Nodes<E>>,
    watched: RefCell<Vec<Watch<E>>>,
}

/// One `watch` call: the parameter, its leaf node, and its shape then.
#[derive(Clone)]
struct Watch<E: Float> {
    param: Parameter<E>,
    node: usize,
    shape: Vec<usize>,
}

impl<E: Float> Default for Tape<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Float> fmt::Debug for Tape<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tape({} nodes)", self.len())
    }
}

/// A value computed under a tape: a tensor plus, when it depends on a
/// watched parameter or source, the node that produced it.
///
/// `Var` offers the differentiable ops of [`Tensor`] under the same names
/// (`matmul`, `relu`, `softmax`, `sum`, ...). A Var made with
/// [`Var::untracked`] belongs to no tape: model code written over `Var`
/// then runs with no recording cost (evaluation, inference).
#[derive(Clone)]
pub struct Var<'t, E: Float = f32> {
    pub(crate) tape: Option<&'t Tape<E>>,
    pub(crate) id: Option<usize>,
    pub(crate) value: Tensor<E>,
    /// For an untracked Var on a tape: the constant node that was recorded
    /// for it the first time a tracked op used it, so that reusing a
    /// constant (a mask, a batch) records it once.
    pub(crate) const_node: Cell<Option<usize>>,
}

impl<E: Float> fmt::Debug for Var<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "Var(#{id}, {:?})", self.value),
            None => write!(f, "Var(untracked, {:?})", self.value),
        }
    }
}

impl<'t, E: Float> Var<'t, E> {
    /// A Var on no tape: every op on it computes values only.
    pub fn untracked(value: Tensor<E>) -> Self {
        Var {
            tape: None,
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }

    /// The value.
    pub fn value(&self) -> &Tensor<E> {
        &self.value
    }

    /// The value, consuming the Var.
    pub fn into_value(self) -> Tensor<E> {
        self.value
    }

    /// Shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.value.ndim()
    }

    /// Whether gradients can flow through this Var (it depends on a watched
    /// parameter or a source).
    pub fn is_tracked(&self) -> bool {
        self.id.is_some()
    }

    /// The same value, cut from the graph: gradients do not flow through it
    /// (`tf.stop_gradient`, `Tensor.detach`).
    pub fn stop_gradient(&self) -> Self {
        Var {
            tape: self.tape,
            id: None,
            value: self.value.clone(),
            const_node: Cell::new(None),
        }
    }

    /// Alias of [`Var::stop_gradient`] with PyTorch's name.
    pub fn detach(&self) -> Self {
        self.stop_gradient()
    }

    /// A constant on the same tape as `self` (no gradient).
    pub fn lift(&self, value: Tensor<E>) -> Self {
        Var {
            tape: self.tape,
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }
}

fn same_tape<E: Float>(a: &Tape<E>, b: &Tape<E>) -> bool {
    std::ptr::eq(a, b)
}

impl<E: Float> Tape<E> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            nodes: RefCell::new(Nodes::new()),
            watched: RefCell::new(Vec::new()),
        }
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the recorded values (counting shared storage once per
    /// node that holds it; an upper bound, for leak tests and diagnostics).
    pub fn value_bytes(&self) -> usize {
        self.nodes
            .borrow()
            .iter()
            .map(|n| n.value.len() * std::mem::size_of::<E>())
            .sum()
    }

    /// A value that is recorded as an input but never differentiated (data,
    /// labels, masks).
    pub fn constant(&self, value: Tensor<E>) -> Var<'_, E> {
        Var {
            tape: Some(self),
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }

    /// Starts tracking a parameter: ops on the returned Var are recorded and
    /// `gradient` can be asked for this parameter. Watching the same
    /// parameter several times is fine; the gradients add up.
    pub fn watch(&self, p: &Parameter<E>) -> Var<'_, E> {
        let value = p.value();
        let id = self.push(Op::Leaf, SmallVec::new(), value.clone());
        self.watched.borrow_mut().push(Watch {
            param: p.clone(),
            node: id,
            shape: value.shape().to_vec(),
        });
        Var {
            tape: Some(self),
            id: Some(id),
            value,
            const_node: Cell::new(None),
        }
    }

    /// A differentiable input that is not a parameter (for gradients with
    /// respect to data, e.g. saliency maps, or for `jacobian`).
    pub fn var(&self, value: Tensor<E>) -> Var<'_, E> {
        let id = self.push(Op::Leaf, SmallVec::new(), value.clone());
        Var {
            tape: Some(self),
            id: Some(id),
            value,
            const_node: Cell::new(None),
        }
    }

    fn push(&self, op: Op<E>, inputs: SmallVec<[usize; 2]>, value: Tensor<E>) -> usize {
        self.nodes.borrow_mut().push(Node { op, inputs, value })
    }

    /// [`Tape::record`] for one input, which cannot mismatch tapes: no
    /// `Result` to build and unwrap on the hottest path.
    #[inline]
    pub(crate) fn record_unary<'t>(op: Op<E>, x: &Var<'t, E>, value: Tensor<E>) -> Var<'t, E> {
        let (Some(t), Some(xid)) = (x.tape, x.id) else {
            return Var {
                tape: x.tape,
                id: None,
                value,
                const_node: Cell::new(None),
            };
        };
        let id = t.push(op, smallvec::smallvec![xid], value.clone());
        Var {
            tape: Some(t),
            id: Some(id),
            value,
            const_node: Cell::new(None),
        }
    }

    /// Records `op` with `inputs` and the computed `value`. Untracked inputs
    /// become constant nodes; if no input is tracked nothing is recorded.
    pub(crate) fn record<'t>(
        name: &'static str,
        op: Op<E>,
        inputs: &[&Var<'t, E>],
        value: Tensor<E>,
    ) -> Result<Var<'t, E>> {
        let mut tape: Option<&'t Tape<E>> = None;
        let mut tracked = false;
        for v in inputs {
            if let Some(t) = v.tape {
                match tape {
                    Some(t0) if !same_tape(t0, t) => return Err(Error::TapeMismatch { op: name }),
                    _ => tape = Some(t),
                }
            }
            tracked |= v.id.is_some();
        }
        let Some(t) = tape.filter(|_| tracked) else {
            return Ok(Var {
                tape,
                id: None,
                value,
                const_node: Cell::new(None),
            });
        };
        let mut ids: SmallVec<[usize; 2]> = SmallVec::new();
        for v in inputs {
            ids.push(match (v.id, v.const_node.get()) {
                (Some(id), _) => id,
                // The cache is only valid on the Var's own tape.
                (None, Some(id)) if v.tape.is_some() => id,
                (None, _) => {
                    let id = t.push(Op::Constant, SmallVec::new(), v.value.clone());
                    if v.tape.is_some() {
                        v.const_node.set(Some(id));
                    }
                    id
                }
            });
        }
        let id = t.push(op, ids, value.clone());
        Ok(Var {
            tape: Some(t),
            id: Some(id),
            value,
            const_node: Cell::new(None),
        })
    }

    fn check_own(&self, op: &'static str, v: &Var<'_, E>) -> Result<()> {
        match v.tape {
            Some(t) if !same_tape(t, self) => Err(Error::TapeMismatch { op }),
            _ => Ok(()),
        }
    }

    /// Gradients of a scalar `target` with respect to `params`, one per
    /// parameter in order; a parameter that does not reach the target gets
    /// `None` (see [`Tape::gradient_with`] for other policies).
    ///
    /// # Errors
    /// A non-scalar target, a target from another tape, a parameter whose
    /// shape changed since `watch`, or a failing backward rule.
    pub fn gradient<'p>(
        &self,
        target: &Var<'_, E>,
        params: impl IntoIterator<Item = &'p Parameter<E>>,
    ) -> Result<Gradients<E>>
    where
        E: 'p,
    {
        self.gradient_with(target, params, &GradientOptions::default())
    }

    /// [`Tape::gradient`] with options: an output gradient for a non-scalar
    /// target and the policy for unconnected parameters.
    ///
    /// # Errors
    /// As [`Tape::gradient`], plus an output gradient of the wrong shape and,
    /// under [`Unconnected::Error`], an unconnected parameter.
    pub fn gradient_with<'p>(
        &self,
        target: &Var<'_, E>,
        params: impl IntoIterator<Item = &'p Parameter<E>>,
        opts: &GradientOptions<E>,
    ) -> Result<Gradients<E>>
    where
        E: 'p,
    {
        let params: Vec<Parameter<E>> = params.into_iter().cloned().collect();
        let watched = self.watched.borrow().clone();
        let mut leaves: Vec<Vec<usize>> = Vec::with_capacity(params.len());
        for p in &params {
            let mut ids = Vec::new();
            for w in watched.iter().filter(|w| &w.param == p) {
                let now = p.shape();
                if now != w.shape {
                    return Err(Error::ParameterShapeChanged {
                        name: p.name().to_string(),
                        watched: w.shape.clone(),
                        now,
                    });
                }
                ids.push(w.node);
            }
            leaves.push(ids);
        }
        let all: Vec<usize> = leaves.iter().flatten().copied().collect();
        let grads = self.backward(target, &all, opts.output_grad.as_ref())?;
        let mut out = Vec::with_capacity(params.len());
        for (p, ids) in params.into_iter().zip(leaves) {
            let mut acc: Option<Tensor<E>> = None;
            for id in ids {
                if let Some(g) = grads.get(id) {
                    acc = Some(match acc {
                        None => g.clone(),
                        Some(a) => a.add(g)?,
                    });
                }
            }
            let acc =
                self.unconnected(acc, opts.unconnected, p.name(), || p.value().zeros_like())?;
            out.push((p, acc));
        }
        Ok(Gradients::new(out))
    }

    fn unconnected(
        &self,
        g: Option<Tensor<E>>,
        policy: Unconnected,
        name: &str,
        zeros: impl FnOnce() -> Tensor<E>,
    ) -> Result<Option<Tensor<E>>> {
        match (g, policy) {
            (Some(g), _) => Ok(Some(g)),
            (None, Unconnected::None) => Ok(None),
            (None, Unconnected::Zero) => Ok(Some(zeros())),
            (None, Unconnected::Error) => Err(Error::Unconnected {
                name: name.to_string(),
            }),
        }
    }

    /// Gradients of `target` with respect to Vars made by [`Tape::var`] or
    /// [`Tape::watch`] (or any tracked intermediate), as tensors.
    ///
    /// # Errors
    /// As [`Tape::gradient_with`].
    pub fn gradient_vars(
        &self,
        target: &Var<'_, E>,
        sources: &[&Var<'_, E>],
        opts: &GradientOptions<E>,
    ) -> Result<Vec<Option<Tensor<E>>>> {
        let ids = self.source_ids(sources)?;
        let all: Vec<usize> = ids.iter().flatten().copied().collect();
        let grads = self.backward(target, &all, opts.output_grad.as_ref())?;
        ids.iter()
            .zip(sources)
            .map(|(id, s)| {
                let g = id.and_then(|i| grads.get(i).cloned());
                let name = id.map_or("untracked var".to_string(), |i| format!("var#{i}"));
                self.unconnected(g, opts.unconnected, &name, || s.value.zeros_like())
            })
            .collect()
    }

    /// Gradients of `target` with respect to `sources`, recorded on this tape
    /// as Vars so that they can be differentiated again (PyTorch's
    /// `create_graph=True`, TensorFlow's nested tapes). Unconnected sources
    /// give `None`.
    ///
    /// # Errors
    /// As [`Tape::gradient_with`].
    pub fn gradient_graph<'t>(
        &'t self,
        target: &Var<'t, E>,
        sources: &[&Var<'t, E>],
        output_grad: Option<&Tensor<E>>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        let ids = self.source_ids(sources)?;
        let all: Vec<usize> = ids.iter().flatten().copied().collect();
        let grads = self.backward_graph(target, &all, output_grad)?;
        Ok(ids
            .iter()
            .map(|id| id.and_then(|i| grads[i].clone()))
            .collect())
    }

    fn source_ids(&self, sources: &[&Var<'_, E>]) -> Result<Vec<Option<usize>>> {
        sources
            .iter()
            .map(|s| {
                self.check_own("gradient", s)?;
                Ok(s.id)
            })
            .collect()
    }

    /// The seed gradient of `target` and, per node, whether it lies on a
    /// path from a source (only those need gradients). `None` when the
    /// target does not depend on any source.
    fn prepare(
        &self,
        target: &Var<'_, E>,
        sources: &[usize],
        output_grad: Option<&Tensor<E>>,
    ) -> Result<Option<Pass<E>>> {
        self.check_own("gradient", target)?;
        let seed = match output_grad {
            Some(g) => {
                if g.shape() != target.shape() {
                    return Err(Error::OutputGradShape {
                        got: g.shape().to_vec(),
                        want: target.shape().to_vec(),
                    });
                }
                g.clone()
            }
            None => {
                if target.value.len() != 1 {
                    return Err(Error::NonScalarTarget {
                        shape: target.shape().to_vec(),
                    });
                }
                target.value.ones_like()
            }
        };
        let Some(tid) = target.id else {
            return Ok(None);
        };
        let mut needed = vec![false; self.len()];
        for &s in sources {
            needed[s] = true;
        }
        let nodes = self.nodes.borrow();
        for i in 0..=tid {
            if !needed[i] && nodes[i].inputs.iter().any(|&j| needed[j]) {
                needed[i] = true;
            }
        }
        Ok(needed[tid].then_some((seed, tid, needed)))
    }

    /// The first-order reverse pass. Returns the gradients of the `sources`
    /// (by node id); the gradients of other nodes are consumed on the way.
    ///
    /// Rules compute on plain tensors and never touch the tape, so the
    /// nodes stay borrowed and nothing is cloned but tensor handles; the
    /// common elementwise rules take the fast paths of `fast.rs`.
    fn backward(
        &self,
        target: &Var<'_, E>,
        sources: &[usize],
        output_grad: Option<&Tensor<E>>,
    ) -> Result<NodeGrads<E>> {
        let mut grads = NodeGrads::new(self.len());
        let Some((seed, tid, needed)) = self.prepare(target, sources, output_grad)? else {
            return Ok(grads);
        };
        grads.set(tid, seed);
        let mut keep = vec![false; self.len()];
        for &s in sources {
            keep[s] = true;
        }
        let nodes = self.nodes.borrow();
        for i in (0..=tid).rev() {
            if !needed[i] {
                continue;
            }
            let node = &nodes[i];
            if node.inputs.is_empty() {
                continue;
            }
            // A source's gradient is the result; other nodes' are consumed.
            let g = if keep[i] {
                grads.get(i).cloned()
            } else {
                grads.take(i)
            };
            let Some(g) = g else { continue };
            let inputs = &node.inputs[..];
            // One or two inputs (nearly every op): plain arrays for the fast
            // rules, no vectors built.
            let g = if inputs.len() <= 2 {
                let (j0, j1) = (inputs[0], inputs[inputs.len() - 1]);
                let needs = [needed[j0], needed[j1]];
                let ins = [&nodes[j0].value, &nodes[j1].value];
                let n = inputs.len();
                let mut out = [None, None];
                match crate::fast::backward(
                    &node.op,
                    &ins[..n],
                    &node.value,
                    g,
                    &needs[..n],
                    &mut out,
                )? {
                    None => {
                        // The invariant holds by construction here: a fast
                        // rule runs only when every input has g's shape,
                        // and writes elementwise maps of g.
                        let [g0, g1] = out;
                        if let Some(g0) = g0 {
                            debug_assert!(g0.same_shape(ins[0]));
                            grads.add(j0, g0)?;
                        }
                        if let Some(g1) = g1 {
                            debug_assert!(g1.same_shape(ins[n - 1]));
                            grads.add(j1, g1)?;
                        }
                        continue;
                    }
                    Some(g) => g,
                }
            } else {
                g
            };
            let needs: SmallVec<[bool; 2]> = inputs.iter().map(|&j| needed[j]).collect();
            let ins: SmallVec<[&Tensor<E>; 2]> = inputs.iter().map(|&j| &nodes[j].value).collect();
            let in_vars: SmallVec<[Var<'_, E>; 2]> =
                ins.iter().map(|t| Var::untracked((*t).clone())).collect();
            let out = Var::untracked(node.value.clone());
            let gin = backward(&node.op, &in_vars, &out, &Var::untracked(g), &needs)?;
            for (k, ((&j, gj), &need)) in node.inputs.iter().zip(gin).zip(&needs).enumerate() {
                if let Some(gj) = gj.filter(|_| need) {
                    check_shape(&node.op, k, &gj.value, ins[k])?;
                    grads.add(j, gj.into_value())?;
                }
            }
        }
        Ok(grads)
    }

    /// The reverse pass recorded on this tape (`create_graph`): rules run
    /// on tracked Vars, so the gradients can be differentiated again.
    fn backward_graph<'t>(
        &'t self,
        target: &Var<'_, E>,
        sources: &[usize],
        output_grad: Option<&Tensor<E>>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        let mut grads: Vec<Option<Var<'t, E>>> = vec![None; self.len()];
        let Some((seed, tid, needed)) = self.prepare(target, sources, output_grad)? else {
            return Ok(grads);
        };
        grads[tid] = Some(Var::untracked(seed));
        // Rules record onto this tape, so no borrow of the nodes may be
        // held while they run: copy out what each step needs (cheap clones
        // of shared tensors).
        for i in (0..=tid).rev() {
            let Some(g) = grads[i].clone() else { continue };
            let (op, inputs, value, in_values) = {
                let nodes = self.nodes.borrow();
                let node = &nodes[i];
                let ins: SmallVec<[Tensor<E>; 2]> = node
                    .inputs
                    .iter()
                    .map(|&j| nodes[j].value.clone())
                    .collect();
                (
                    node.op.clone(),
                    node.inputs.clone(),
                    node.value.clone(),
                    ins,
                )
            };
            if inputs.is_empty() {
                continue;
            }
            let tracked = |id: usize, value: Tensor<E>| Var {
                tape: Some(self),
                id: Some(id),
                value,
                const_node: Cell::new(None),
            };
            let in_vars: SmallVec<[Var<'t, E>; 2]> = inputs
                .iter()
                .zip(in_values)
                .map(|(&j, v)| tracked(j, v))
                .collect();
            let needs: SmallVec<[bool; 2]> = inputs.iter().map(|&j| needed[j]).collect();
            let gin = backward(&op, &in_vars, &tracked(i, value), &g, &needs)?;
            for (k, (gk, xk)) in gin.iter().zip(&in_vars).enumerate() {
                if let Some(gk) = gk {
                    check_shape(&op, k, &gk.value, &xk.value)?;
                }
            }
            accumulate(&mut grads, &inputs, gin, &needs)?;
        }
        Ok(grads)
    }
}

/// The reverse pass's invariant: a rule returns, for each input, a
/// gradient of exactly that input's shape. Without this check a wrong
/// shape would be broadcast into the input's accumulated gradient, a wrong
/// value with no error.
#[inline]
fn check_shape<E: Float>(op: &Op<E>, input: usize, g: &Tensor<E>, x: &Tensor<E>) -> Result<()> {
    if g.same_shape(x) {
        Ok(())
    } else {
        Err(shape_error(op, input, g, x))
    }
}

#[cold]
#[inline(never)]
fn shape_error<E: Float>(op: &Op<E>, input: usize, g: &Tensor<E>, x: &Tensor<E>) -> Error {
    Error::Backward {
        op: op.name().to_string(),
        input,
        got: g.shape().to_vec(),
        want: x.shape().to_vec(),
    }
}

/// The gradients of a first-order pass: per node, a slot number into a
/// small store of tensors. Slots are recycled once a gradient has been
/// consumed, so a long chain keeps a couple of live gradients in a few
/// cache lines instead of a tensor-sized entry per node.
pub(crate) struct NodeGrads<E: Float> {
    slot: Vec<usize>,
    store: Vec<Option<Tensor<E>>>,
    free: Vec<usize>,
}

const NO_SLOT: usize = usize::MAX;

impl<E: Float> NodeGrads<E> {
    fn new(n: usize) -> Self {
        NodeGrads {
            slot: vec![NO_SLOT; n],
            store: Vec::new(),
            free: Vec::new(),
        }
    }

    /// The gradient of node `i`, if it has one.
    pub(crate) fn get(&self, i: usize) -> Option<&Tensor<E>> {
        match self.slot[i] {
            NO_SLOT => None,
            k => self.store[k].as_ref(),
        }
    }

    /// Removes and returns the gradient of node `i`.
    fn take(&mut self, i: usize) -> Option<Tensor<E>> {
        let k = std::mem::replace(&mut self.slot[i], NO_SLOT);
        if k == NO_SLOT {
            return None;
        }
        self.free.push(k);
        self.store[k].take()
    }

    /// Adds `g` into node `i`'s gradient (fan-out sums), in place when the
    /// storage is not shared.
    fn add(&mut self, i: usize, g: Tensor<E>) -> Result<()> {
        let sum = match self.take(i) {
            None => g,
            Some(prev) if prev.same_shape(&g) => prev.zip_map_into(&g, |a, b| a + b)?,
            Some(prev) => prev.add(&g)?,
        };
        self.set(i, sum);
        Ok(())
    }

    fn set(&mut self, i: usize, g: Tensor<E>) {
        match self.slot[i] {
            NO_SLOT => {
                let k = match self.free.pop() {
                    Some(k) => {
                        self.store[k] = Some(g);
                        k
                    }
                    None => {
                        self.store.push(Some(g));
                        self.store.len() - 1
                    }
                };
                self.slot[i] = k;
            }
            k => self.store[k] = Some(g),
        }
    }
}

/// What a reverse pass starts from: the seed gradient, the target's node,
/// and which nodes need gradients.
type Pass<E> = (Tensor<E>, usize, Vec<bool>);

/// Adds each input's gradient into its slot (fan-out sums).
fn accumulate<'t, E: Float>(
    grads: &mut [Option<Var<'t, E>>],
    inputs: &[usize],
    gin: SmallVec<[Option<Var<'t, E>>; 2]>,
    needs: &[bool],
) -> Result<()> {
    for ((&j, gj), &need) in inputs.iter().zip(gin).zip(needs) {
        let Some(gj) = gj else { continue };
        if !need {
            continue;
        }
        grads[j] = Some(match grads[j].take() {
            None => gj,
            Some(prev) => prev.add(&gj)?,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node whose recorded input does not have the shape its rule
    /// assumes: the rule's gradient (shaped like the output) does not fit
    /// the input, and both reverse passes report it instead of
    /// broadcasting it into the input's gradient.
    #[test]
    fn a_rule_returning_a_wrong_shape_is_an_error() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::ones([2, 1]));
        // Recorded as if neg mapped [2, 1] to [2, 3] (a faulty op).
        let y = Tape::record("neg", Op::Neg, &[&x], Tensor::ones([2, 3])).unwrap();
        let loss = y.sum_all();
        let want = Error::Backward {
            op: "neg".into(),
            input: 0,
            got: vec![2, 3],
            want: vec![2, 1],
        };
        let opts = GradientOptions::default();
        assert_eq!(
            tape.gradient_vars(&loss, &[&x], &opts).err(),
            Some(want.clone())
        );
        assert_eq!(tape.gradient_graph(&loss, &[&x], None).err(), Some(want));
        let msg = Error::Backward {
            op: "neg".into(),
            input: 0,
            got: vec![2, 3],
            want: vec![2, 1],
        }
        .to_string();
        assert!(msg.contains("neg") && msg.contains("[2, 3]") && msg.contains("[2, 1]"));
    }
}
