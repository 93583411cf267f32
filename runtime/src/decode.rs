//! Decoding: the model's forward one token per sequence at a time, each mixer carrying
//! its state from token to token — the recurrences their state, the convolutions their
//! window, attention its keys and values — so a token costs one step of every layer.
//! The program is `hyb_lower::program::build_decode`'s; its logits equal the full
//! forward pass's at the same position (tested for every mixer kind).

use hyb_compiler::ir::Model;
use hyb_lower::program::{self, POSITION, ParamSlot, Program};

use crate::exec::{self, Batch, Kernels, Memory};
use crate::{Error, Trainer};

/// A model's decoding step for `batch` sequences of up to `max_len` tokens.
pub struct Decoder {
    program: Program,
    kernels: Kernels,
    memory: Memory,
    position: usize,
    /// Per-kernel time, when profiling is on.
    pub profile: Option<exec::Profile>,
}

impl Trainer {
    /// A decoder for this model with a copy of its current parameters.
    pub fn decoder(&self, batch: usize, max_len: usize) -> Result<Decoder, Error> {
        let mut decoder = Decoder::new(&self.model, batch, max_len)?;
        decoder.memory.params.clone_from(&self.memory.params);
        Ok(decoder)
    }
}

impl Decoder {
    /// Compiles the decoding step of `model` for `batch` sequences of up to `max_len`
    /// tokens (parameters zero until set).
    pub fn new(model: &Model, batch: usize, max_len: usize) -> Result<Decoder, Error> {
        let program =
            program::build_decode(model, &crate::grad_graph(model), batch, max_len).map_err(Error::Unsupported)?;
        let kernels = Kernels::compile(&program).map_err(Error::Jit)?;
        crate::denormals::flush_to_zero();
        let memory = Memory::new(&program);
        Ok(Decoder { program, kernels, memory, position: 0, profile: None })
    }

    /// The parameters, in the model's order.
    pub fn params(&self) -> &[ParamSlot] {
        &self.program.params
    }

    /// Sets every parameter (in [`Decoder::params`]' order and sizes).
    pub fn set_params(&mut self, params: Vec<Vec<f32>>) -> Result<(), Error> {
        let fits = params.len() == self.memory.params.len()
            && params.iter().zip(&self.memory.params).all(|(given, own)| given.len() == own.len());
        if !fits {
            return Err(Error::Input("the parameters do not fit the model".into()));
        }
        self.memory.params = params;
        Ok(())
    }

    /// Tokens decoded since the last reset.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn max_len(&self) -> usize {
        self.program.max_len.expect("a decoding program")
    }

    pub fn vocab(&self) -> usize {
        self.program.vocab
    }

    /// Forgets every sequence: the next token is at position 0.
    pub fn reset(&mut self) {
        self.memory.cache.fill(0.0);
        self.position = 0;
    }

    /// Feeds one token per sequence; returns the next-token logits `[batch, vocab]`.
    pub fn step(&mut self, tokens: &[i32]) -> Result<&[f32], Error> {
        if tokens.len() != self.program.batch {
            return Err(Error::Input(format!(
                "a decoding step takes {} tokens, got {}",
                self.program.batch,
                tokens.len()
            )));
        }
        let vocab = self.program.vocab as i32;
        if let Some(bad) = tokens.iter().find(|t| !(0..vocab).contains(*t)) {
            return Err(Error::Input(format!("token id {bad} is outside the vocabulary [0, {vocab})")));
        }
        if self.position >= self.max_len() {
            return Err(Error::Input(format!("the decoder holds at most {} tokens", self.max_len())));
        }
        self.memory.host[POSITION] = self.position as f32;
        let batch = Batch { tokens, ..Batch::NONE };
        exec::run(
            &self.program,
            &self.kernels,
            &mut self.memory,
            0..self.program.forward_end,
            &batch,
            None,
            self.profile.as_mut(),
        );
        self.position += 1;
        let logits = self.program.logits.clone();
        Ok(self.memory.slice(&logits))
    }
}
