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

pub mod exec;
pub mod init;

use hyb_compiler::ir::Model;

use crate::exec::{Kernels, Memory};
use hyb_lower::program::{self, ADAM, LOSS, Program, SQUARES, Unsupported};

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
    kernels: Kernels,
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
        let graph = hyb_compiler::graph::build::build(model);
        let grad = hyb_compiler::grad::differentiate(model, graph);
        let program = program::build(model, &grad, batch, seq_len).map_err(Error::Unsupported)?;
        let kernels = Kernels::compile(&program).map_err(Error::Jit)?;
        let memory = Memory::new(&program);
        let inits = model.params.iter().map(|p| p.init.clone()).collect();
        Ok(Trainer { program, kernels, memory, step: 0, inits, profile: None })
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

    fn check_tokens(&self, tokens: &[i32]) -> Result<(), Error> {
        let expected = self.program.batch * self.program.seq_len;
        if tokens.len() != expected {
            return Err(Error::Input(format!(
                "a step takes {expected} tokens (batch × seq_len), got {}",
                tokens.len()
            )));
        }
        Ok(())
    }

    /// Forward and backward on `tokens` (`[batch, seq_len]` row-major); returns the loss.
    /// Gradients are readable with [`Trainer::grad`] until the next call.
    pub fn forward_backward(&mut self, tokens: &[i32]) -> Result<f32, Error> {
        self.check_tokens(tokens)?;
        let end = self.program.optimizer_start;
        exec::run(&self.program, &self.kernels, &mut self.memory, 0..end, tokens, None, self.profile.as_mut());
        Ok(self.memory.host[LOSS])
    }

    /// The gradient of parameter `name` from the last [`Trainer::forward_backward`].
    pub fn grad(&mut self, name: &str) -> Result<Vec<f32>, Error> {
        let arg = self.program.grads[self.index(name)?].clone();
        Ok(self.memory.slice(&arg).to_vec())
    }

    /// Clipping and one AdamW update at learning rate `lr`; returns the gradient norm.
    pub fn optimizer_step(&mut self, adamw: &AdamW, lr: f64) -> f32 {
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
            1.0,
        ];
        for (slot, value) in self.memory.host[ADAM..ADAM + 8].iter_mut().zip(scalars) {
            *slot = value as f32;
        }
        let range = self.program.optimizer_start..self.program.instrs.len();
        exec::run(&self.program, &self.kernels, &mut self.memory, range, &[], adamw.clip, self.profile.as_mut());
        self.memory.host[SQUARES]
    }

    /// One training step: forward, backward, clipping, AdamW.
    pub fn step(&mut self, tokens: &[i32], adamw: &AdamW, lr: f64) -> Result<StepStats, Error> {
        let loss = self.forward_backward(tokens)?;
        let grad_norm = self.optimizer_step(adamw, lr);
        Ok(StepStats { loss, grad_norm })
    }
}
