//! The tape: a Wengert list of recorded ops, and how ops are recorded on
//! it. The reverse passes are in `backward.rs`, `Var` in `var.rs`.

use std::cell::{Cell, RefCell};
use std::fmt;

use smallvec::SmallVec;
use tapir_tensor::{Float, Tensor};

use crate::error::{Error, Result};
use crate::op::Op;
use crate::param::Parameter;
use crate::var::Var;

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
/// let loss = x.mul(&tape.watch(&w))?.sum(); // 3·w0 + 4·w1
/// let grads = tape.gradient(&loss, [&w])?;
/// assert_eq!(grads[&w].to_vec(), vec![3.0, 4.0]);
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
pub struct Tape<E: Float = f32> {
    pub(crate) nodes: RefCell<Nodes<E>>,
    pub(crate) watched: RefCell<Vec<Watch<E>>>,
}

/// One `watch` call: the parameter, its leaf node, and its shape then.
#[derive(Clone)]
pub(crate) struct Watch<E: Float> {
    pub(crate) param: Parameter<E>,
    pub(crate) node: usize,
    pub(crate) shape: Vec<usize>,
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

fn same_tape<E: Float>(a: &Tape<E>, b: &Tape<E>) -> bool {
    std::ptr::eq(a, b)
}

impl<E: Float> Tape<E> {
    /// An empty tape (`tf.GradientTape(persistent=True)`; PyTorch records
    /// its graph on the tensors instead). Ops record onto it until it is
    /// dropped.
    pub fn new() -> Self {
        // Large activations are freed and re-allocated every step: keep
        // them in the heap (tapir_tensor::alloc; once per process).
        tapir_tensor::alloc::tune_allocator();
        // The main thread runs its share of parallel ops itself
        // (tapir_tensor::threads; once per process).
        tapir_tensor::threads::init();
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
    /// labels, masks): a tensor with `requires_grad=False` in PyTorch, an
    /// unwatched `tf.constant` in TensorFlow. Gradient: none; it is recorded
    /// once, when a tracked op first uses it.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::<f64>::new();
    /// let c = tape.constant(Tensor::ones([2]));
    /// assert!(!c.is_tracked());
    /// assert_eq!(tape.len(), 0);
    /// ```
    pub fn constant(&self, value: Tensor<E>) -> Var<'_, E> {
        Var {
            tape: Some(self),
            id: None,
            value,
            const_node: Cell::new(None),
        }
    }

    /// Starts tracking a parameter: ops on the returned Var are recorded and
    /// [`Tape::gradient`] can be asked for this parameter (TensorFlow's
    /// `tape.watch(variable)`, automatic there for trainable variables;
    /// using a `torch.nn.Parameter` in PyTorch). Watching the same
    /// parameter several times is fine; the gradients add up.
    ///
    /// ```
    /// use tapir_autograd::{Parameter, Tape};
    /// use tapir_tensor::Tensor;
    /// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![2.0], [1])?);
    /// let tape = Tape::new();
    /// let loss = tape.watch(&w).mul(&tape.watch(&w))?.sum(); // w²
    /// assert_eq!(tape.gradient(&loss, [&w])?[&w].to_vec(), [4.0]); // 2w
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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

    /// [`Tape::watch`], once per parameter: the first call records the
    /// leaf, later calls on this tape return a Var of that same node (and
    /// of the value it had then). Layers use this through [`Var::param`],
    /// so that a layer applied at every step of a sequence records its
    /// weights once.
    ///
    /// ```
    /// use tapir_autograd::{Parameter, Tape};
    /// use tapir_tensor::Tensor;
    /// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![3.0], [1])?);
    /// let tape = Tape::new();
    /// let loss = tape.param(&w).mul(&tape.param(&w))?.sum(); // w²
    /// assert_eq!(tape.len(), 3); // one leaf, the product, the sum
    /// assert_eq!(tape.gradient(&loss, [&w])?[&w].to_vec(), [6.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    pub fn param(&self, p: &Parameter<E>) -> Var<'_, E> {
        let found = self
            .watched
            .borrow()
            .iter()
            .rev()
            .find(|w| w.param.id() == p.id())
            .map(|w| w.node);
        match found {
            Some(node) => Var {
                tape: Some(self),
                id: Some(node),
                value: self.nodes.borrow()[node].value.clone(),
                const_node: Cell::new(None),
            },
            None => self.watch(p),
        }
    }

    /// A differentiable input that is not a parameter (for gradients with
    /// respect to data, e.g. saliency maps, or for `jacobian`): PyTorch's
    /// `torch.tensor(..., requires_grad=True)`, TensorFlow's
    /// `tape.watch(tensor)`. Ask [`Tape::gradient_vars`] for its gradient.
    ///
    /// ```
    /// use tapir_autograd::Tape;
    /// use tapir_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
    /// let y = x.square().sum(); // Σ x²
    /// let g = tape.gradient_vars(&y, &[&x], &Default::default())?;
    /// assert_eq!(g[0].as_ref().unwrap().to_vec(), [2.0, 4.0]); // 2x
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
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
        tapir_tensor::threads::keep_warm();
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

    /// The name of the op of every recorded node, in recording order
    /// (leaves and constants included). For coverage tests and debugging.
    #[doc(hidden)]
    pub fn recorded_ops(&self) -> Vec<String> {
        self.nodes
            .borrow()
            .iter()
            .map(|n| n.op.name().to_string())
            .collect()
    }

    pub(crate) fn check_own(&self, op: &'static str, v: &Var<'_, E>) -> Result<()> {
        match v.tape {
            Some(t) if !same_tape(t, self) => Err(Error::TapeMismatch { op }),
            _ => Ok(()),
        }
    }
}
