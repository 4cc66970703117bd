//! The reverse passes and the gradient entry points of `Tape`:
//! `backward` (first order, on plain tensors, gradients in recycled slots)
//! and `backward_graph` (records the rules, for higher order).

use std::borrow::Borrow;
use std::cell::Cell;

use smallvec::SmallVec;
use tapir_tensor::{Float, Tensor};

use crate::error::{Error, Result};
use crate::gradients::{Gradient, GradientOptions, Gradients, Unconnected};
use crate::op::Op;
use crate::param::Parameter;
use crate::rules::backward;
use crate::slots::NodeGrads;
use crate::sparse::RowSparse;
use crate::tape::Tape;
use crate::var::Var;

impl<E: Float> Tape<E> {
    /// Gradients of a scalar `target` with respect to `params`, one per
    /// parameter in order; a parameter that does not reach the target gets
    /// `None` (see [`Tape::gradient_with`] for other policies).
    ///
    /// # Errors
    /// A non-scalar target, a target from another tape, a parameter whose
    /// shape changed since `watch`, or a failing backward rule.
    pub fn gradient<P: Borrow<Parameter<E>>>(
        &self,
        target: &Var<'_, E>,
        params: impl IntoIterator<Item = P>,
    ) -> Result<Gradients<E>> {
        self.gradient_with(target, params, &GradientOptions::default())
    }

    /// [`Tape::gradient`] with options: an output gradient for a non-scalar
    /// target and the policy for unconnected parameters.
    ///
    /// # Errors
    /// As [`Tape::gradient`], plus an output gradient of the wrong shape and,
    /// under [`Unconnected::Error`], an unconnected parameter.
    pub fn gradient_with<P: Borrow<Parameter<E>>>(
        &self,
        target: &Var<'_, E>,
        params: impl IntoIterator<Item = P>,
        opts: &GradientOptions<E>,
    ) -> Result<Gradients<E>> {
        let params: Vec<Parameter<E>> = params.into_iter().map(|p| p.borrow().clone()).collect();
        let mut leaves: Vec<Vec<usize>> = Vec::with_capacity(params.len());
        for p in &params {
            leaves.push(self.param_leaves(p)?);
        }
        let all: Vec<usize> = leaves.iter().flatten().copied().collect();
        let (grads, rows) = self.backward(target, &all, opts.output_grad.as_ref(), true)?;
        let mut out = Vec::with_capacity(params.len());
        for (p, ids) in params.into_iter().zip(leaves) {
            let mut acc: Option<Tensor<E>> = None;
            for &id in &ids {
                if let Some(g) = grads.get(id) {
                    acc = Some(match acc {
                        None => g.clone(),
                        Some(a) => a.add(g)?,
                    });
                }
            }
            // Rows from embedding lookups stay rows, unless the parameter
            // also has a dense gradient (tied weights): then they are added
            // into it.
            let mine: Vec<(&[usize], &Tensor<E>)> = rows
                .iter()
                .filter(|(j, _, _)| ids.contains(j))
                .map(|(_, idx, g)| (&idx[..], g))
                .collect();
            let grad = if mine.is_empty() {
                acc.map(Gradient::Dense)
            } else {
                let r = RowSparse::from_parts(&mine, &p.shape())?;
                Some(match acc {
                    None => Gradient::Rows(r),
                    Some(d) => Gradient::Dense(r.add_to(&d)?),
                })
            };
            let grad = match grad {
                Some(g) => Some(g),
                None => self
                    .unconnected(None, opts.unconnected, &p.name(), || p.value().zeros_like())?
                    .map(Gradient::Dense),
            };
            out.push((p, grad));
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
        let ids: Vec<Option<usize>> = sources
            .iter()
            .map(|s| {
                self.check_own("gradient", s)?;
                Ok(s.id)
            })
            .collect::<Result<_>>()?;
        let all: Vec<usize> = ids.iter().flatten().copied().collect();
        let (grads, _) = self.backward(target, &all, opts.output_grad.as_ref(), false)?;
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
    /// `create_graph=True`, TensorFlow's nested tapes). A source is a `Var`
    /// or a watched `Parameter` (see [`Source`]), so a Hessian-vector
    /// product with respect to a parameter needs no extra bookkeeping.
    /// Unconnected sources give `None`.
    ///
    /// ```
    /// use tapir_autograd::{Parameter, Tape};
    /// use tapir_tensor::Tensor;
    /// let w = Parameter::new("w", Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?);
    /// let tape = Tape::new();
    /// let loss = tape.watch(&w).pow_scalar(3.0).sum(); // Σ w³
    /// let g = tape.gradient_graph(&loss, &[&w], None)?[0].clone().unwrap(); // 3w²
    /// let v = Tensor::from_vec(vec![1.0, 1.0], [2])?;
    /// let gv = g.mul(&tape.constant(v))?.sum();
    /// let hv = tape.gradient(&gv, [&w])?; // H·v = 6w ⊙ v
    /// assert_eq!(hv[&w].to_vec(), vec![6.0, 12.0]);
    /// # Ok::<(), tapir_autograd::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Tape::gradient_with`].
    pub fn gradient_graph<'t, S: Source<E>>(
        &'t self,
        target: &Var<'t, E>,
        sources: &[S],
        output_grad: Option<&Tensor<E>>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        self.graph_grads(target, sources, output_grad, None)
    }

    /// The recorded reverse pass from `target` (seeded with `output_grad`,
    /// or with the Var `seed_var`), summed per source.
    fn graph_grads<'t, S: Source<E>>(
        &'t self,
        target: &Var<'t, E>,
        sources: &[S],
        output_grad: Option<&Tensor<E>>,
        seed_var: Option<&Var<'t, E>>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        let ids: Vec<Vec<usize>> = sources
            .iter()
            .map(|s| s.source_nodes(self))
            .collect::<Result<_>>()?;
        let all: Vec<usize> = ids.iter().flatten().copied().collect();
        let grads = self.backward_graph(target, &all, output_grad, seed_var)?;
        self.sum_sources(&ids, grads)
    }

    /// The vector–Jacobian product of `target` with the Var `seed`,
    /// recorded (for a checkpointed segment under `gradient_graph`).
    pub(crate) fn vjp_graph<'t>(
        &'t self,
        target: &Var<'t, E>,
        sources: &[&Var<'t, E>],
        seed: &Var<'t, E>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        self.graph_grads(target, sources, Some(seed.value()), Some(seed))
    }

    /// Each source's gradient: the sum over its nodes.
    fn sum_sources<'t>(
        &'t self,
        ids: &[Vec<usize>],
        grads: Vec<Option<Var<'t, E>>>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        ids.iter()
            .map(|nodes| {
                let mut acc: Option<Var<'t, E>> = None;
                for &i in nodes {
                    if let Some(g) = &grads[i] {
                        acc = Some(match acc {
                            None => g.clone(),
                            Some(a) => a.add(g)?,
                        });
                    }
                }
                Ok(acc)
            })
            .collect()
    }

    /// The leaf nodes `watch` made for `p` on this tape.
    pub(crate) fn param_leaves(&self, p: &Parameter<E>) -> Result<Vec<usize>> {
        let watched = self.watched.borrow();
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
        Ok(ids)
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
    /// With `sparse`, the gradient of an `embedding` lookup into a source
    /// leaf is not scattered into that leaf's gradient but returned apart,
    /// as (leaf, indices, rows).
    ///
    /// Rules compute on plain tensors and never touch the tape, so the
    /// nodes stay borrowed and nothing is cloned but tensor handles; the
    /// common elementwise rules take the fast paths of `fast.rs`.
    fn backward(
        &self,
        target: &Var<'_, E>,
        sources: &[usize],
        output_grad: Option<&Tensor<E>>,
        sparse: bool,
    ) -> Result<(NodeGrads<E>, Vec<SparseRows<E>>)> {
        let mut grads = NodeGrads::new(self.len());
        let mut rows = Vec::new();
        let Some((seed, tid, needed)) = self.prepare(target, sources, output_grad)? else {
            return Ok((grads, rows));
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
            tapir_tensor::threads::keep_warm();
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
            if sparse {
                if let Op::IndexSelect {
                    axis: 0,
                    idx,
                    sparse: true,
                } = &node.op
                {
                    let j = inputs[0];
                    if keep[j] && nodes[j].inputs.is_empty() {
                        rows.push((j, idx.clone(), g));
                        continue;
                    }
                }
            }
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
                )
                .map_err(in_rule(&node.op))?
                {
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
            let gin = backward(&node.op, &in_vars, &out, &Var::untracked(g), &needs)
                .map_err(in_rule(&node.op))?;
            for (k, ((&j, gj), &need)) in node.inputs.iter().zip(gin).zip(&needs).enumerate() {
                if let Some(gj) = gj.filter(|_| need) {
                    check_shape(&node.op, k, &gj.value, ins[k])?;
                    grads.add(j, gj.into_value())?;
                }
            }
        }
        Ok((grads, rows))
    }

    /// The reverse pass recorded on this tape (`create_graph`): rules run
    /// on tracked Vars, so the gradients can be differentiated again.
    ///
    /// `seed_var`, when given, is the target's gradient as a Var (its value
    /// is `output_grad`): the rules then carry its dependence on other
    /// nodes, as a checkpointed segment's backward needs under
    /// `gradient_graph`.
    fn backward_graph<'t>(
        &'t self,
        target: &Var<'_, E>,
        sources: &[usize],
        output_grad: Option<&Tensor<E>>,
        seed_var: Option<&Var<'t, E>>,
    ) -> Result<Vec<Option<Var<'t, E>>>> {
        let mut grads: Vec<Option<Var<'t, E>>> = vec![None; self.len()];
        let Some((seed, tid, needed)) = self.prepare(target, sources, output_grad)? else {
            return Ok(grads);
        };
        grads[tid] = Some(match seed_var {
            Some(v) => v.clone(),
            None => Var::untracked(seed),
        });
        // Rules record onto this tape, so no borrow of the nodes may be
        // held while they run: copy out what each step needs (cheap clones
        // of shared tensors).
        for i in (0..=tid).rev() {
            let Some(g) = grads[i].clone() else { continue };
            tapir_tensor::threads::keep_warm();
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
            let gin =
                backward(&op, &in_vars, &tracked(i, value), &g, &needs).map_err(in_rule(&op))?;
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

/// What [`Tape::gradient_graph`] differentiates with respect to: a
/// [`Var`] (its node; none when untracked) or a [`Parameter`] (every node
/// `watch` made for it on that tape, their gradients summed, as in
/// [`Tape::gradient`]).
pub trait Source<E: Float> {
    /// The source's nodes on `tape`.
    ///
    /// # Errors
    /// A Var of another tape, or a parameter whose shape changed since
    /// `watch`.
    fn source_nodes(&self, tape: &Tape<E>) -> Result<Vec<usize>>;
}

impl<E: Float> Source<E> for &Var<'_, E> {
    fn source_nodes(&self, tape: &Tape<E>) -> Result<Vec<usize>> {
        tape.check_own("gradient", self)?;
        Ok(self.id.into_iter().collect())
    }
}

impl<E: Float> Source<E> for &Parameter<E> {
    fn source_nodes(&self, tape: &Tape<E>) -> Result<Vec<usize>> {
        tape.param_leaves(self)
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
    Error::BackwardShape {
        op: op.name().to_string(),
        input,
        got: g.shape().to_vec(),
        want: x.shape().to_vec(),
    }
}

/// Wraps an error raised inside `op`'s backward rule so that it names the
/// op (a rule's own errors name the Var ops it calls, which the user never
/// called). Errors already naming a rule pass unchanged.
fn in_rule<E: Float>(op: &Op<E>) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::Backward { .. } | Error::BackwardShape { .. } | Error::Custom { .. } => e,
        e => Error::Backward {
            op: op.name().to_string(),
            source: Box::new(e),
        },
    }
}

/// What a reverse pass starts from: the seed gradient, the target's node,
/// and which nodes need gradients.
type Pass<E> = (Tensor<E>, usize, Vec<bool>);

/// An embedding lookup's gradient kept apart: (the table's leaf node, the
/// rows looked up, their gradients).
type SparseRows<E> = (usize, std::sync::Arc<[usize]>, Tensor<E>);

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
        // Recorded as if exp mapped [2, 1] to [2, 3] (a faulty op).
        let y = Tape::record("exp", Op::Exp, &[&x], Tensor::ones([2, 3])).unwrap();
        let loss = y.sum();
        let want = Error::BackwardShape {
            op: "exp".into(),
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
        let msg = Error::BackwardShape {
            op: "exp".into(),
            input: 0,
            got: vec![2, 3],
            want: vec![2, 1],
        }
        .to_string();
        assert!(msg.contains("exp") && msg.contains("[2, 3]") && msg.contains("[2, 1]"));
    }
}
