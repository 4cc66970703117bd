//! The `Module` trait: a model's parameters and buffers, named by path.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tapir_autograd::Parameter;
use tapir_tensor::{Float, Tensor};

/// A tensor that a module keeps but that no optimizer updates: batch
/// norm's running statistics (PyTorch's `register_buffer`, Keras's
/// non-trainable weights). It is saved in the state dict beside the
/// parameters. Cloning gives another handle to the same tensor.
pub struct Buffer<E: Float = f32> {
    value: Arc<RwLock<Tensor<E>>>,
}

impl<E: Float> Clone for Buffer<E> {
    fn clone(&self) -> Self {
        Buffer {
            value: Arc::clone(&self.value),
        }
    }
}

impl<E: Float> std::fmt::Debug for Buffer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer(shape {:?})", self.value().shape())
    }
}

impl<E: Float> Buffer<E> {
    /// A buffer holding `value`.
    pub fn new(value: Tensor<E>) -> Self {
        Buffer {
            value: Arc::new(RwLock::new(value)),
        }
    }

    /// The current value (a cheap shared clone).
    pub fn value(&self) -> Tensor<E> {
        self.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value.
    pub fn set(&self, value: Tensor<E>) {
        *self.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// What [`Module::visit`] finds at a path.
#[derive(Debug)]
pub enum Entry<'a, E: Float> {
    /// A trainable parameter.
    Parameter(&'a Parameter<E>),
    /// A buffer (saved, not trained).
    Buffer(&'a Buffer<E>),
}

/// The dotted path of the field being visited (`layers.0.attn`).
#[derive(Debug, Default, Clone)]
pub struct Path {
    s: String,
}

impl Path {
    /// The empty path (the model itself).
    pub fn new() -> Self {
        Path::default()
    }

    /// Descends into `segment`; returns the mark to give [`Path::pop`].
    pub fn push(&mut self, segment: &str) -> usize {
        let mark = self.s.len();
        if !self.s.is_empty() {
            self.s.push('.');
        }
        self.s.push_str(segment);
        mark
    }

    /// Returns to the path as it was before the matching `push`.
    pub fn pop(&mut self, mark: usize) {
        self.s.truncate(mark);
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.s
    }
}

/// The state dict: each parameter's and buffer's value under its path, in
/// visiting order (PyTorch's `module.state_dict()`).
pub type StateDict<E> = Vec<(String, Tensor<E>)>;

/// A model or a layer: something that holds parameters (and buffers) at
/// stable paths and can switch between training and evaluation.
///
/// Write a layer as a plain struct and `#[derive(Module)]` it; its fields
/// (parameters, other modules, `Vec`s and `Option`s of them) are visited
/// under their names, so a parameter's path equals PyTorch's `state_dict`
/// key for the same architecture. The forward pass is an ordinary method
/// (or [`crate::Forward`] for one input and one output) taking and returning
/// [`tapir_autograd::Var`]s.
///
/// ```
/// use tapir_nn::{Linear, Module, Forward};
/// use tapir_autograd::{Tape, Var};
/// use tapir_tensor::{Rng, Tensor};
///
/// #[derive(Module)]
/// struct Mlp {
///     fc1: Linear,
///     fc2: Linear,
/// }
///
/// let mut rng = Rng::seed(0);
/// let model = Mlp { fc1: Linear::new(4, 8, &mut rng), fc2: Linear::new(8, 2, &mut rng) };
/// let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
/// assert_eq!(model.num_parameters(), 4 * 8 + 8 + 8 * 2 + 2);
///
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::randn([3, 4], &mut rng));
/// let y = model.fc2.forward(&model.fc1.forward(&x)?.relu())?;
/// let grads = tape.gradient(&y.square().mean(), model.parameters())?;
/// assert_eq!(grads.len(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Module",
    note = "fields of a #[derive(Module)] struct must be modules, parameters, buffers, or Vec/Option/Box of them; mark other fields #[module(skip)]; a struct of f64 layers needs #[module(float = f64)]"
)]
pub trait Module<E: Float = f32> {
    /// Calls `f` with the path and entry of every parameter and buffer,
    /// depth first, in field order. `path` is where `self` sits.
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>));

    /// Switches training mode on (`true`) or off for this module and every
    /// submodule (dropout, batch norm).
    fn set_training(&mut self, training: bool);

    /// PyTorch's `module.train()`.
    fn train(&mut self) {
        self.set_training(true);
    }

    /// PyTorch's `module.eval()`: dropout off, batch norm uses its running
    /// statistics.
    fn eval(&mut self) {
        self.set_training(false);
    }

    /// Every parameter under its path (`named_parameters()`), a parameter
    /// shared by two fields once, under its first path. Each parameter is
    /// also [renamed](Parameter::rename) to its path, the name optimizers
    /// key their state by, so optimizer state and checkpoints agree.
    fn named_parameters(&self) -> Vec<(String, Parameter<E>)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.visit(&mut Path::new(), &mut |path, e| {
            if let Entry::Parameter(p) = e {
                if seen.insert(p.id()) {
                    p.rename(path.as_str());
                    out.push((path.as_str().to_string(), p.clone()));
                }
            }
        });
        out
    }

    /// Every parameter (handles to them, in path order), for
    /// `tape.gradient(&loss, model.parameters())`; renames them as
    /// [`Module::named_parameters`] does.
    fn parameters(&self) -> Vec<Parameter<E>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Every buffer under its path.
    fn named_buffers(&self) -> Vec<(String, Buffer<E>)> {
        let mut out = Vec::new();
        self.visit(&mut Path::new(), &mut |path, e| {
            if let Entry::Buffer(b) = e {
                out.push((path.as_str().to_string(), b.clone()));
            }
        });
        out
    }

    /// Number of scalar parameters (buffers not counted).
    fn num_parameters(&self) -> usize {
        self.named_parameters()
            .iter()
            .map(|(_, p)| p.value().len())
            .sum()
    }

    /// Sets parameters and buffers from a state dict by name
    /// (`load_state_dict`); see [`crate::load_state_dict`].
    ///
    /// # Errors
    /// As [`crate::load_state_dict`]; the model is unchanged on an error.
    fn load_state_dict(
        &self,
        state: &StateDict<E>,
        opts: crate::LoadOptions,
    ) -> crate::Result<crate::LoadReport>
    where
        Self: Sized,
    {
        crate::io::load_state_dict(self, state, opts)
    }

    /// Saves the state dict as a safetensors file, atomically; PyTorch
    /// reads it with `safetensors.torch.load_file` and
    /// `load_state_dict`.
    ///
    /// # Errors
    /// [`crate::Error::Io`] naming the file.
    fn save(&self, path: impl AsRef<std::path::Path>) -> crate::Result<()>
    where
        Self: Sized,
    {
        crate::io::write_safetensors(path, &self.state_dict())
    }

    /// Loads a safetensors file (one saved by [`Module::save`] or by
    /// PyTorch's `safetensors.torch.save_file(model.state_dict())`).
    ///
    /// # Errors
    /// A missing, truncated or corrupted file, a dtype other than the
    /// model's (unless converting), a shape mismatch naming the parameter
    /// and both shapes, missing or unexpected names under strict loading.
    /// The model is unchanged on an error.
    fn load(
        &self,
        path: impl AsRef<std::path::Path>,
        opts: crate::LoadOptions,
    ) -> crate::Result<crate::LoadReport>
    where
        Self: Sized,
    {
        let sd = crate::io::read_safetensors(path, opts.converts())?;
        crate::io::load_state_dict(self, &sd, opts)
    }

    /// Parameters and buffers under their paths, in visiting order.
    fn state_dict(&self) -> StateDict<E> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.visit(&mut Path::new(), &mut |path, e| match e {
            Entry::Parameter(p) => {
                if seen.insert(p.id()) {
                    out.push((path.as_str().to_string(), p.value()));
                }
            }
            Entry::Buffer(b) => out.push((path.as_str().to_string(), b.value())),
        });
        out
    }
}

impl<E: Float> Module<E> for Parameter<E> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        f(path, Entry::Parameter(self));
    }
    fn set_training(&mut self, _: bool) {}
}

impl<E: Float> Module<E> for Buffer<E> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        f(path, Entry::Buffer(self));
    }
    fn set_training(&mut self, _: bool) {}
}

/// A layer's train/eval switch as a field: it holds no tensors, and
/// [`Module::set_training`] (from `train()`/`eval()` on any enclosing
/// module, derived or not) sets it. A custom layer whose forward pass
/// differs in training (dropout, batch statistics) keeps one of these
/// instead of a `bool` that the derive would not reach. Starts in
/// training mode, as PyTorch's modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingFlag(bool);

impl Default for TrainingFlag {
    fn default() -> Self {
        TrainingFlag(true)
    }
}

impl TrainingFlag {
    /// Whether the layer is in training mode.
    pub fn get(&self) -> bool {
        self.0
    }

    /// Sets the mode.
    pub fn set(&mut self, training: bool) {
        self.0 = training;
    }
}

impl<E: Float> Module<E> for TrainingFlag {
    fn visit(&self, _: &mut Path, _: &mut dyn FnMut(&Path, Entry<'_, E>)) {}
    fn set_training(&mut self, training: bool) {
        self.0 = training;
    }
}

/// Elements under their index (`layers.0`, `layers.1`), as in
/// `torch.nn.ModuleList`.
impl<E: Float, M: Module<E>> Module<E> for Vec<M> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        for (i, m) in self.iter().enumerate() {
            let mark = path.push(&i.to_string());
            m.visit(path, f);
            path.pop(mark);
        }
    }
    fn set_training(&mut self, training: bool) {
        for m in self {
            m.set_training(training);
        }
    }
}

/// `None` holds nothing (an optional bias); `Some(m)` is `m` at the same
/// path.
impl<E: Float, M: Module<E>> Module<E> for Option<M> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        if let Some(m) = self {
            m.visit(path, f);
        }
    }
    fn set_training(&mut self, training: bool) {
        if let Some(m) = self {
            m.set_training(training);
        }
    }
}

impl<E: Float, M: Module<E> + ?Sized> Module<E> for Box<M> {
    fn visit(&self, path: &mut Path, f: &mut dyn FnMut(&Path, Entry<'_, E>)) {
        (**self).visit(path, f);
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training);
    }
}

macro_rules! holds_nothing {
    ($($t:ty),*) => {$(
        /// Holds no parameters (a layer's configuration).
        impl<E: Float> Module<E> for $t {
            fn visit(&self, _: &mut Path, _: &mut dyn FnMut(&Path, Entry<'_, E>)) {}
            fn set_training(&mut self, _: bool) {}
        }
    )*};
}

holds_nothing!(
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    f32,
    f64,
    String,
    tapir_tensor::Conv2dParams,
    tapir_tensor::Conv1dParams,
    tapir_tensor::Pool2dParams,
    tapir_tensor::GeluApprox
);
