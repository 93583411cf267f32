//! The runtime: executes a compiled training step.
//!
//! `hyb_lower::program` turns the grad IR, the fusion pass's kernel plan and the buffer
//! plan into a flat list of instructions over concrete buffers; [`exec`] runs it on the CPU — JIT-compiled MLIR kernels called in
//! parallel over the batch, GEMMs through `matrixmultiply`. [`Trainer`] is the API:
//! build for a model at batch × sequence length, initialise or set parameters, run
//! forward + backward, read gradients, apply AdamW.
//!
//! **Architecture Invariant:** nothing here looks at presets or mixer kinds: the
//! program is read off the graph IR's ops alone.

pub mod decode;
pub mod denormals;
pub mod exec;
pub mod init;

use hyb_compiler::ir::Model;

pub use crate::decode::Decoder;
pub use crate::exec::Batch;
use crate::exec::{Kernels, Memory};
pub use hyb_lower::program::ParamSlot;
use hyb_lower::program::{self, ADAM, LOSS, Program, SQUARES, Unsupported};

/// The grad IR of a model: its forward graph differentiated, with the optimizer step.
fn grad_graph(model: &Model) -> hyb_compiler::grad::GradGraph {
    hyb_compiler::grad::differentiate(model, hyb_compiler::graph::build::build(model))
}

#[derive(Debug)]
pub enum Error {
    Unsupported(Unsupported),
    Jit(hyb_kernels::jit::JitError),
    /// A caller's mistake: wrong token count, unknown parameter, wrong length.
    Input(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unsupported(e) => write!(f, "{e}"),
            Error::Jit(e) => write!(f, "{e}"),
            Error::Input(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// AdamW's settings (PyTorch's meaning; `clip` is the global gradient-norm bound).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub clip: Option<f64>,
}

impl AdamW {
    /// The train block's optimizer, or flame's defaults without one.
    pub fn of(model: &Model) -> AdamW {
        match &model.train {
            Some(train) => {
                let o = &train.optimizer;
                AdamW { lr: o.lr, betas: o.betas, eps: o.eps, weight_decay: o.weight_decay, clip: o.clip }
            }
            None => AdamW { lr: 3e-4, betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.1, clip: Some(1.0) },
        }
    }
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
}

/// A model's compiled training step and its state.
pub struct Trainer {
    pub program: Program,
    kernels: std::rc::Rc<Kernels>,
    model: Model,
    memory: Memory,
    /// Optimizer steps taken.
    pub step: u64,
    /// Per-kernel time, when profiling is on ([`Trainer::profile`]).
    pub profile: Option<exec::Profile>,
    inits: Vec<hyb_compiler::ir::Init>,
}

impl Trainer {
    /// Compiles the step of `model` at `batch × seq_len` (parameters zero until set).
    pub fn new(model: &Model, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        let program = Self::program(model, batch, seq_len)?;
        let kernels = std::rc::Rc::new(Kernels::compile(&program).map_err(Error::Jit)?);
        Ok(Self::with(model, program, kernels))
    }

    fn program(model: &Model, batch: usize, seq_len: usize) -> Result<Program, Error> {
        program::build(model, &grad_graph(model), batch, seq_len).map_err(Error::Unsupported)
    }

    /// Runs instructions `range` of the step program.
    fn run(&mut self, range: std::ops::Range<usize>, batch: &Batch, clip: Option<f64>) {
        exec::run(&self.program, &self.kernels, &mut self.memory, range, batch, clip, self.profile.as_mut());
    }

    fn with(model: &Model, program: Program, kernels: std::rc::Rc<Kernels>) -> Trainer {
        denormals::flush_to_zero();
        let memory = Memory::new(&program);
        let inits = model.params.iter().map(|p| p.init.clone()).collect();
        Trainer { program, kernels, model: model.clone(), memory, step: 0, inits, profile: None }
    }

    /// The same model at another batch × sequence length, sharing the compiled kernels
    /// (they do not depend on the shape), with a copy of the current parameters.
    pub fn resized(&self, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        let program = Self::program(&self.model, batch, seq_len)?;
        assert_eq!(program.kernels.modules, self.program.kernels.modules, "kernels are shape-independent");
        let mut other = Self::with(&self.model, program, self.kernels.clone());
        other.memory.params.clone_from(&self.memory.params);
        Ok(other)
    }

    /// Copies the parameters of `other` (the same model) into this one.
    pub fn copy_params_from(&mut self, other: &Trainer) {
        self.memory.params.clone_from(&other.memory.params);
    }

    /// Every parameter, in the model's order, and AdamW's two moments.
    pub fn state(&self) -> (&[Vec<f32>], &[Vec<f32>], &[Vec<f32>]) {
        (&self.memory.params, &self.memory.moment1, &self.memory.moment2)
    }

    /// Restores parameters, moments and the step count (as [`Trainer::state`] gave them).
    pub fn restore(
        &mut self,
        params: Vec<Vec<f32>>,
        moment1: Vec<Vec<f32>>,
        moment2: Vec<Vec<f32>>,
        step: u64,
    ) -> Result<(), Error> {
        for (what, given) in [("parameters", &params), ("first moments", &moment1), ("second moments", &moment2)] {
            let fits = given.len() == self.memory.params.len()
                && given.iter().zip(&self.memory.params).all(|(g, p)| g.len() == p.len());
            if !fits {
                return Err(Error::Input(format!("the checkpoint's {what} do not fit this model")));
            }
        }
        self.memory.params = params;
        self.memory.moment1 = moment1;
        self.memory.moment2 = moment2;
        self.step = step;
        Ok(())
    }

    /// Initialises every parameter as the model states, from `seed`.
    pub fn init_params(&mut self, seed: u64) {
        let mut rng = init::rng(seed);
        for (init, values) in self.inits.iter().zip(&mut self.memory.params) {
            init::fill(init, values, &mut rng);
        }
    }

    fn index(&self, name: &str) -> Result<usize, Error> {
        self.program
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| Error::Input(format!("no parameter `{name}`")))
    }

    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.program.params.iter().map(|p| p.name.as_str())
    }

    pub fn param(&self, name: &str) -> Result<&[f32], Error> {
        Ok(&self.memory.params[self.index(name)?])
    }

    pub fn set_param(&mut self, name: &str, values: &[f32]) -> Result<(), Error> {
        let index = self.index(name)?;
        let target = &mut self.memory.params[index];
        if target.len() != values.len() {
            return Err(Error::Input(format!("`{name}` has {} values, got {}", target.len(), values.len())));
        }
        target.copy_from_slice(values);
        Ok(())
    }

    /// Token ids in `[0, vocab)`, targets below `vocab` (negative: none), both
    /// `batch × seq_len`: anything else would read outside the embedding or the logits.
    fn check(&self, batch: &Batch) -> Result<(), Error> {
        let expected = self.program.batch * self.program.seq_len;
        for (what, ids) in [("tokens", batch.tokens), ("targets", batch.targets)] {
            if ids.len() != expected {
                return Err(Error::Input(format!(
                    "a step takes {expected} {what} (batch × seq_len), got {}",
                    ids.len()
                )));
            }
        }
        let vocab = self.program.vocab as i32;
        if let Some(bad) = batch.tokens.iter().find(|t| !(0..vocab).contains(*t)) {
            return Err(Error::Input(format!("token id {bad} is outside the vocabulary [0, {vocab})")));
        }
        if let Some(bad) = batch.targets.iter().find(|t| **t >= vocab) {
            return Err(Error::Input(format!("target {bad} is outside the vocabulary [0, {vocab})")));
        }
        Ok(())
    }

    /// The forward pass alone; returns the loss. The logits are then readable with
    /// [`Trainer::logits`].
    pub fn forward(&mut self, batch: &Batch) -> Result<f32, Error> {
        self.check(batch)?;
        self.run(0..self.program.forward_end, batch, None);
        Ok(self.memory.host[LOSS])
    }

    /// The logits `[batch, seq_len, vocab]` of the last forward pass.
    pub fn logits(&mut self) -> &[f32] {
        let arg = self.program.logits.clone();
        self.memory.slice(&arg)
    }

    /// Forward and backward; returns the loss. Gradients are readable with
    /// [`Trainer::grad`] until the next call.
    pub fn forward_backward(&mut self, batch: &Batch) -> Result<f32, Error> {
        self.check(batch)?;
        self.run(0..self.program.optimizer_start, batch, None);
        Ok(self.memory.host[LOSS])
    }

    /// The gradient of parameter `name` from the last [`Trainer::forward_backward`].
    pub fn grad(&mut self, name: &str) -> Result<Vec<f32>, Error> {
        let arg = self.program.grads[self.index(name)?].clone();
        Ok(self.memory.slice(&arg).to_vec())
    }

    /// Every parameter's gradient from the last [`Trainer::forward_backward`], in order.
    pub fn grads(&mut self) -> Vec<Vec<f32>> {
        let args = self.program.grads.clone();
        args.iter().map(|arg| self.memory.slice(arg).to_vec()).collect()
    }

    /// Replaces the gradients the optimizer step will read (gradient accumulation).
    pub fn set_grads(&mut self, grads: &[Vec<f32>]) -> Result<(), Error> {
        let args = self.program.grads.clone();
        if grads.len() != args.len() || grads.iter().zip(&args).any(|(g, a)| g.len() != a.len()) {
            return Err(Error::Input("the gradients do not fit the model's parameters".into()));
        }
        for (arg, values) in args.iter().zip(grads) {
            self.memory.slice(arg).copy_from_slice(values);
        }
        Ok(())
    }

    /// The first parameter (in the model's order: by layer) whose gradient from the last
    /// [`Trainer::forward_backward`] holds a NaN or an infinity.
    pub fn first_non_finite_grad(&mut self) -> Option<String> {
        let grads = self.program.grads.clone();
        grads
            .iter()
            .zip(&self.program.params)
            .find(|(arg, _)| self.memory.slice(arg).iter().any(|g| !g.is_finite()))
            .map(|(_, p)| p.name.clone())
    }

    /// The global norm of the gradients from the last backward (NaN or infinite if any
    /// gradient is), and the clipping factor it sets for [`Trainer::apply_update`].
    pub fn gradient_norm(&mut self, adamw: &AdamW) -> f32 {
        self.run(self.program.optimizer_start..self.program.update_start, &Batch::NONE, adamw.clip);
        self.memory.host[SQUARES]
    }

    /// One AdamW update at learning rate `lr`, with the clipping factor of the last
    /// [`Trainer::gradient_norm`].
    pub fn apply_update(&mut self, adamw: &AdamW, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let scalars = [
            lr,
            adamw.betas.0,
            adamw.betas.1,
            adamw.eps,
            adamw.weight_decay,
            1.0 - adamw.betas.0.powi(t),
            1.0 - adamw.betas.1.powi(t),
        ];
        for (slot, value) in self.memory.host[ADAM..ADAM + 7].iter_mut().zip(scalars) {
            *slot = value as f32;
        }
        self.run(self.program.update_start..self.program.instrs.len(), &Batch::NONE, adamw.clip);
    }

    /// Clipping and one AdamW update at learning rate `lr`; returns the gradient norm.
    pub fn optimizer_step(&mut self, adamw: &AdamW, lr: f64) -> f32 {
        let norm = self.gradient_norm(adamw);
        self.apply_update(adamw, lr);
        norm
    }

    /// One training step: forward, backward, clipping, AdamW.
    pub fn step(&mut self, batch: &Batch, adamw: &AdamW, lr: f64) -> Result<StepStats, Error> {
        let loss = self.forward_backward(batch)?;
        let grad_norm = self.optimizer_step(adamw, lr);
        Ok(StepStats { loss, grad_norm })
    }
}
