//! Decoding: the model's forward one token per sequence at a time, each mixer carrying
//! its state from token to token — the recurrences their state, the convolutions their
//! window, attention its keys and values — so a token costs one step of every layer.
//! The program is the driver's at [`Shape::Decode`]; its logits equal the full forward
//! pass's at the same position (tested for every mixer kind). The state stays on the
//! device between tokens.

use hyb_compiler::ir::Model;
use hyb_driver::{Shape, Target};
use hyb_lower::program::{Arg, POSITION, ParamSlot, Program, Store};

use crate::device::{Device, f32_bytes, read_f32};
use crate::exec::{self, Batch, Profile, Recordings, Stores};
use crate::{Error, Trainer};

/// A model's decoding step for `batch` sequences of up to `max_len` tokens.
pub struct Decoder {
    program: Program,
    device: Box<dyn Device>,
    stores: Stores,
    position: usize,
    /// Per-kernel time, when profiling is on.
    pub profile: Option<Profile>,
    /// The step, recorded once (a CUDA graph) where the device records.
    recordings: Recordings,
}

impl Trainer {
    /// A decoder for this model, on its target, with a copy of its current parameters.
    pub fn decoder(&self, batch: usize, max_len: usize) -> Result<Decoder, Error> {
        let mut decoder = Decoder::for_target(&self.model, self.target, batch, max_len)?;
        decoder.set_params(self.params())?;
        Ok(decoder)
    }
}

impl Decoder {
    /// Compiles the decoding step of `model` for `batch` sequences of up to `max_len`
    /// tokens on the CPU (parameters zero until set).
    pub fn new(model: &Model, batch: usize, max_len: usize) -> Result<Decoder, Error> {
        Self::for_target(model, Target::Cpu, batch, max_len)
    }

    pub fn for_target(model: &Model, target: Target, batch: usize, max_len: usize) -> Result<Decoder, Error> {
        let build = hyb_driver::compile(model, target, Shape::Decode { batch, max_len }).map_err(Error::Compile)?;
        let mut device = crate::device_for(&build)?;
        crate::check_memory(&build.program, device.as_ref())?;
        let stores = Stores::new(&build.program, device.as_mut())?;
        let recordings = Recordings::default();
        Ok(Decoder { program: build.program, device, stores, position: 0, profile: None, recordings })
    }

    /// The parameters, in the model's order.
    pub fn params(&self) -> &[ParamSlot] {
        &self.program.params
    }

    /// Sets every parameter (in [`Decoder::params`]' order and sizes).
    pub fn set_params(&mut self, params: Vec<Vec<f32>>) -> Result<(), Error> {
        let sizes = self.program.params.iter().map(|p| p.shape.iter().product::<usize>());
        let fits = params.len() == self.program.params.len() && params.iter().zip(sizes).all(|(p, n)| p.len() == n);
        if !fits {
            return Err(Error::Input("the parameters do not fit the model".into()));
        }
        params.iter().enumerate().try_for_each(|(index, values)| self.set_param(index, values))
    }

    /// Sets parameter `index` (in [`Decoder::params`]' order), one tensor at a time.
    pub fn set_param(&mut self, index: usize, values: &[f32]) -> Result<(), Error> {
        let Some(slot) = self.program.params.get(index) else {
            return Err(Error::Input(format!("no parameter {index}")));
        };
        if slot.shape.iter().product::<usize>() != values.len() {
            return Err(Error::Input(format!("`{}` has {:?}, got {} values", slot.name, slot.shape, values.len())));
        }
        let arg = Arg { store: Store::Param(index), offset: 0, dims: vec![values.len()], ..Arg::host(0, 1) };
        self.device.write(&self.stores.view(&arg), f32_bytes(values));
        Ok(())
    }

    /// Tokens decoded since the last reset.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn max_len(&self) -> usize {
        self.program.max_len.expect("a decoding program")
    }

    /// Sequences decoded at once (tokens per [`Decoder::step`]).
    pub fn batch(&self) -> usize {
        self.program.batch
    }

    pub fn vocab(&self) -> usize {
        self.program.vocab
    }

    /// Forgets every sequence: the next token is at position 0.
    pub fn reset(&mut self) {
        let cache = Arg { store: Store::Cache, offset: 0, dims: vec![self.program.cache_bytes / 4], ..Arg::host(0, 1) };
        self.device.zero(&self.stores.view(&cache));
        self.position = 0;
    }

    /// Feeds one token per sequence; returns the next-token logits `[batch, vocab]`.
    pub fn step(&mut self, tokens: &[i32]) -> Result<Vec<f32>, Error> {
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
        let position = self.stores.view(&Arg::host(POSITION, 1));
        self.device.write(&position, f32_bytes(&[self.position as f32]));
        let batch = Batch { tokens, ..Batch::NONE };
        let range = 0..self.program.forward_end;
        let (program, device, stores) = (&self.program, self.device.as_mut(), &self.stores);
        exec::run_or_replay(program, device, stores, range, &batch, self.profile.as_mut(), &mut self.recordings);
        self.position += 1;
        Ok(read_f32(self.device.as_ref(), &self.stores.view(&self.program.logits)))
    }
}
