//! Recurrent layers: RNN (tanh), LSTM and GRU, as cells and as
//! multi-layer, batch-first sequence layers with PyTorch's weight layout.

use tapir_autograd::{Parameter, Result, Var};
use tapir_tensor::{Float, Rng, Tensor};

use super::shape_error;
use crate::{init, Entry, Module, Path};

/// Which recurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RnnKind {
    /// h′ = tanh(W_ih x + b_ih + W_hh h + b_hh) (`torch.nn.RNN`).
    Tanh,
    /// Gates i, f, g, o (`torch.nn.LSTM`): c′ = f⊙c + i⊙g, h′ = o⊙tanh(c′).
    Lstm,
    /// Gates r, z, n (`torch.nn.GRU`): n = tanh(W_in x + b_in + r⊙(W_hn h +
    /// b_hn)), h′ = (1 − z)⊙n + z⊙h.
    Gru,
}

impl RnnKind {
    fn gates(self) -> usize {
        match self {
            RnnKind::Tanh => 1,
            RnnKind::Lstm => 4,
            RnnKind::Gru => 3,
        }
    }
    fn name(self) -> &'static str {
        match self {
            RnnKind::Tanh => "Rnn",
            RnnKind::Lstm => "Lstm",
            RnnKind::Gru => "Gru",
        }
    }
}

/// The four weights of one layer (or one cell).
#[derive(Debug, Clone)]
struct Weights<E: Float> {
    w_ih: Parameter<E>,
    w_hh: Parameter<E>,
    b_ih: Option<Parameter<E>>,
    b_hh: Option<Parameter<E>>,
}

impl<E: Float> Weights<E> {
    /// PyTorch's initialisation: every weight and bias from U(±1/√H).
    fn new(kind: RnnKind, input: usize, hidden: usize, suffix: &str, rng: &mut Rng) -> Self {
        let k = 1.0 / (hidden as f64).sqrt();
        let g = kind.gates() * hidden;
        let mut p = |name: &str, shape: &[usize]| {
            Parameter::new(format!("{name}{suffix}"), init::uniform(shape, -k, k, rng))
        };
        Weights {
            w_ih: p("weight_ih", &[g, input]),
            w_hh: p("weight_hh", &[g, hidden]),
            b_ih: Some(p("bias_ih", &[g])),
            b_hh: Some(p("bias_hh", &[g])),
        }
    }

    fn visit(&self, suffix: &str, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        let mut one = |name: &str, p: &Parameter<E>| {
            let mark = path.push(&format!("{name}{suffix}"));
            f(path, Entry::Parameter(p));
            path.pop(mark);
        };
        one("weight_ih", &self.w_ih);
        one("weight_hh", &self.w_hh);
        if let Some(b) = &self.b_ih {
            one("bias_ih", b);
        }
        if let Some(b) = &self.b_hh {
            one("bias_hh", b);
        }
    }

    /// x·W_ihᵀ + b_ih over all leading axes of `x` `[.., in]`.
    fn input_part<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        let w = x.param(&self.w_ih);
        let lead = &x.shape()[..x.ndim() - 1];
        let fin = x.shape()[x.ndim() - 1];
        let mut y = x.reshape([-1, fin as isize])?.matmul(&w.t()?)?;
        if let Some(b) = &self.b_ih {
            y = y.add(&x.param(b))?;
        }
        let mut shape = lead.to_vec();
        shape.push(y.shape()[1]);
        y.reshape_usize(&shape)
    }

    /// One step from the input part `xi` `[B, G·H]` and the state.
    fn step<'t>(
        &self,
        kind: RnnKind,
        xi: &Var<'t, E>,
        h: &Var<'t, E>,
        c: Option<&Var<'t, E>>,
    ) -> Result<(Var<'t, E>, Option<Var<'t, E>>)> {
        let hd = h.shape()[1];
        let mut hh = h.matmul(&xi.param(&self.w_hh).t()?)?;
        if let Some(b) = &self.b_hh {
            hh = hh.add(&xi.param(b))?;
        }
        let part = |v: &Var<'t, E>, k: usize| v.narrow(1, k * hd, hd);
        Ok(match kind {
            RnnKind::Tanh => (xi.add(&hh)?.tanh(), None),
            RnnKind::Lstm => {
                let g = xi.add(&hh)?;
                let i = part(&g, 0)?.sigmoid();
                let f = part(&g, 1)?.sigmoid();
                let gg = part(&g, 2)?.tanh();
                let o = part(&g, 3)?.sigmoid();
                let c = c.expect("LSTM has a cell state");
                let c2 = f.mul(c)?.add(&i.mul(&gg)?)?;
                (o.mul(&c2.tanh())?, Some(c2))
            }
            RnnKind::Gru => {
                let r = part(xi, 0)?.add(&part(&hh, 0)?)?.sigmoid();
                let z = part(xi, 1)?.add(&part(&hh, 1)?)?.sigmoid();
                let n = part(xi, 2)?.add(&r.mul(&part(&hh, 2)?)?)?.tanh();
                // (1 − z)⊙n + z⊙h = n + z⊙(h − n)
                (n.add(&z.mul(&h.sub(&n)?)?)?, None)
            }
        })
    }
}

/// A multi-layer recurrent sequence layer, batch first: input
/// `[B, T, input]`, output `[B, T, hidden]` (the last layer's states),
/// final states `[layers, B, hidden]` (as PyTorch, even batch first). Build
/// with [`Rnn::simple`], [`Rnn::lstm`] or [`Rnn::gru`]. The parameters are
/// named as PyTorch's (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
/// `bias_hh_l0`, then `_l1`, ...), gate blocks stacked by rows in its order
/// (LSTM i, f, g, o; GRU r, z, n), initialised from U(±1/√hidden), so a
/// PyTorch state dict loads unchanged. Keras's `LSTM`/`GRU` keep one
/// kernel per layer with columns per gate (and GRU's `reset_after`
/// default matches PyTorch's form).
///
/// The input projections of all time steps are one GEMM per layer; the
/// recurrence is a loop over time on the tape.
///
/// ```
/// use tapir_nn::{Module, Rnn};
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let lstm: Rnn = Rnn::lstm(3, 8, 2, &mut rng);
/// let x = Var::untracked(Tensor::randn([4, 10, 3], &mut rng));
/// let (y, h, c) = lstm.forward_seq(&x, None)?;
/// assert_eq!(y.shape(), &[4, 10, 8]);
/// assert_eq!(h.shape(), &[2, 4, 8]);
/// assert_eq!(c.unwrap().shape(), &[2, 4, 8]);
/// assert_eq!(Module::<f32>::named_parameters(&lstm)[0].0, "weight_ih_l0");
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rnn<E: Float = f32> {
    kind: RnnKind,
    hidden: usize,
    layers: Vec<Weights<E>>,
}

impl<E: Float> Rnn<E> {
    fn new(kind: RnnKind, input: usize, hidden: usize, layers: usize, rng: &mut Rng) -> Self {
        assert!(layers > 0, "{}: needs at least one layer", kind.name());
        Rnn {
            kind,
            hidden,
            layers: (0..layers)
                .map(|l| {
                    let fin = if l == 0 { input } else { hidden };
                    Weights::new(kind, fin, hidden, &format!("_l{l}"), rng)
                })
                .collect(),
        }
    }

    /// Elman RNN with tanh (`torch.nn.RNN(input, hidden, layers,
    /// batch_first=True)`).
    pub fn simple(input: usize, hidden: usize, layers: usize, rng: &mut Rng) -> Self {
        Self::new(RnnKind::Tanh, input, hidden, layers, rng)
    }

    /// LSTM (`torch.nn.LSTM(input, hidden, layers, batch_first=True)`).
    pub fn lstm(input: usize, hidden: usize, layers: usize, rng: &mut Rng) -> Self {
        Self::new(RnnKind::Lstm, input, hidden, layers, rng)
    }

    /// GRU (`torch.nn.GRU(input, hidden, layers, batch_first=True)`).
    pub fn gru(input: usize, hidden: usize, layers: usize, rng: &mut Rng) -> Self {
        Self::new(RnnKind::Gru, input, hidden, layers, rng)
    }

    /// The recurrence.
    pub fn kind(&self) -> RnnKind {
        self.kind
    }

    /// Runs the sequence `x` `[B, T, input]` from the initial states
    /// `(h0, c0)` (`[layers, B, hidden]`; zeros when `None`; c0 only for
    /// LSTM): returns the output `[B, T, hidden]`, h_n, and for LSTM c_n.
    ///
    /// # Errors
    /// An input that is not `[B, T, input]` or initial states of the wrong
    /// shape, naming the layer and the shapes.
    #[allow(clippy::type_complexity)]
    pub fn forward_seq<'t>(
        &self,
        x: &Var<'t, E>,
        state: Option<(&Var<'t, E>, Option<&Var<'t, E>>)>,
    ) -> Result<(Var<'t, E>, Var<'t, E>, Option<Var<'t, E>>)> {
        let name = self.kind.name();
        let fin = self.layers[0].w_ih.shape()[1];
        let s = x.shape();
        if s.len() != 3 || s[2] != fin {
            return Err(shape_error(
                name,
                format!(
                    "{name}({fin} -> {}) takes [B, T, {fin}], got {s:?}",
                    self.hidden
                ),
            ));
        }
        let (b, t) = (s[0], s[1]);
        let nl = self.layers.len();
        let want = [nl, b, self.hidden];
        let lstm = self.kind == RnnKind::Lstm;
        if let Some((h0, c0)) = state {
            let bad = h0.shape() != want || c0.is_some_and(|c| c.shape() != want);
            if bad || (lstm && c0.is_none()) {
                return Err(shape_error(
                    name,
                    format!(
                        "initial states must be [layers, B, hidden] = {want:?}{}, got {:?}",
                        if lstm { " (h0 and c0)" } else { "" },
                        h0.shape()
                    ),
                ));
            }
        }
        let zeros = || x.lift(Tensor::zeros([b, self.hidden]));
        let mut input = x.clone();
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for (l, w) in self.layers.iter().enumerate() {
            let pick = |v: &Var<'t, E>| -> Result<Var<'t, E>> {
                v.narrow(0, l, 1)?.reshape_usize(&[b, self.hidden])
            };
            let mut h = match state {
                Some((h0, _)) => pick(h0)?,
                None => zeros(),
            };
            let mut c = if lstm {
                Some(match state.and_then(|(_, c0)| c0) {
                    Some(c0) => pick(c0)?,
                    None => zeros(),
                })
            } else {
                None
            };
            let xi = w.input_part(&input)?; // [B, T, G·H]
            let g = xi.shape()[2];
            let mut outs = Vec::with_capacity(t);
            for step in 0..t {
                let xt = xi.narrow(1, step, 1)?.reshape_usize(&[b, g])?;
                let (h2, c2) = w.step(self.kind, &xt, &h, c.as_ref())?;
                h = h2;
                c = c2;
                outs.push(h.clone());
            }
            input = Var::stack(&outs.iter().collect::<Vec<_>>(), 1)?;
            hs.push(h);
            if let Some(c) = c {
                cs.push(c);
            }
        }
        let stack0 = |v: &[Var<'t, E>]| Var::stack(&v.iter().collect::<Vec<_>>(), 0);
        let h_n = stack0(&hs)?;
        let c_n = if lstm { Some(stack0(&cs)?) } else { None };
        Ok((input, h_n, c_n))
    }
}

impl<E: Float> Module<E> for Rnn<E> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        for (l, w) in self.layers.iter().enumerate() {
            w.visit(&format!("_l{l}"), path, f);
        }
    }
    fn set_training(&mut self, _: bool) {}
}

impl<E: Float> super::Forward<E> for Rnn<E> {
    /// The output sequence from zero initial states.
    fn forward<'t>(&self, x: &Var<'t, E>) -> Result<Var<'t, E>> {
        Ok(self.forward_seq(x, None)?.0)
    }
}

/// One recurrent step as a layer (`torch.nn.RNNCell`, `LSTMCell`,
/// `GRUCell`): weights `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`
/// in PyTorch's layout.
///
/// ```
/// use tapir_nn::RnnCell;
/// use tapir_autograd::Var;
/// use tapir_tensor::{Rng, Tensor};
/// let mut rng = Rng::seed(0);
/// let cell: RnnCell = RnnCell::gru(3, 5, &mut rng);
/// let x = Var::untracked(Tensor::randn([2, 3], &mut rng));
/// let h = Var::untracked(Tensor::zeros([2, 5]));
/// let (h1, c1) = cell.step(&x, &h, None)?;
/// assert_eq!(h1.shape(), &[2, 5]);
/// assert!(c1.is_none());
/// # Ok::<(), tapir_autograd::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RnnCell<E: Float = f32> {
    kind: RnnKind,
    w: Weights<E>,
}

impl<E: Float> RnnCell<E> {
    /// `torch.nn.RNNCell` (tanh).
    pub fn simple(input: usize, hidden: usize, rng: &mut Rng) -> Self {
        RnnCell {
            kind: RnnKind::Tanh,
            w: Weights::new(RnnKind::Tanh, input, hidden, "", rng),
        }
    }

    /// `torch.nn.LSTMCell`.
    pub fn lstm(input: usize, hidden: usize, rng: &mut Rng) -> Self {
        RnnCell {
            kind: RnnKind::Lstm,
            w: Weights::new(RnnKind::Lstm, input, hidden, "", rng),
        }
    }

    /// `torch.nn.GRUCell`.
    pub fn gru(input: usize, hidden: usize, rng: &mut Rng) -> Self {
        RnnCell {
            kind: RnnKind::Gru,
            w: Weights::new(RnnKind::Gru, input, hidden, "", rng),
        }
    }

    /// One step: `x` `[B, input]`, `h` `[B, hidden]`, and for LSTM `c`;
    /// returns h′ and (LSTM) c′.
    ///
    /// # Errors
    /// Inputs of the wrong shape (or an LSTM step without `c`).
    pub fn step<'t>(
        &self,
        x: &Var<'t, E>,
        h: &Var<'t, E>,
        c: Option<&Var<'t, E>>,
    ) -> Result<(Var<'t, E>, Option<Var<'t, E>>)> {
        let (fin, hd) = (self.w.w_ih.shape()[1], self.w.w_hh.shape()[1]);
        let ok = x.ndim() == 2
            && x.shape()[1] == fin
            && h.shape() == [x.shape()[0], hd]
            && (self.kind != RnnKind::Lstm || c.is_some_and(|c| c.shape() == h.shape()));
        if !ok {
            let name = self.kind.name();
            return Err(shape_error(
                name,
                format!(
                    "{name}Cell({fin} -> {hd}) takes x [B, {fin}] and state [B, {hd}]{}, got {:?} and {:?}",
                    if self.kind == RnnKind::Lstm { " (h and c)" } else { "" },
                    x.shape(),
                    h.shape()
                ),
            ));
        }
        let xi = self.w.input_part(x)?;
        self.w.step(self.kind, &xi, h, c)
    }
}

impl<E: Float> Module<E> for RnnCell<E> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        self.w.visit("", path, f);
    }
    fn set_training(&mut self, _: bool) {}
}
