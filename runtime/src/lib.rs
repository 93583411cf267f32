//! The runtime: executes a compiled step program on a device.
//!
//! The driver (`hyb_driver`) compiles a model into a [`Build`] — the program and one
//! module per kernel for a target; the runtime loads the modules on a [`Device`] of that
//! target, allocates the program's stores there and runs its instructions ([`exec`]).
//! [`Trainer`] is the API: initialise or set parameters, run forward + backward, read
//! gradients, apply AdamW — every value handed out as an owned copy, since a device's
//! memory cannot be lent to the host. [`Decoder`] runs a decoding program.
//!
//! **Architecture Invariant:** nothing here looks at presets, mixer kinds or graph ops:
//! it executes instructions. Only [`cpu`] (and later the CUDA backend) knows a device.

pub mod cpu;
pub mod cuda;
pub mod decode;
pub mod device;
pub mod exec;
pub mod init;
pub mod lockstep;
pub mod rng;

use hyb_compiler::ir::Model;
use hyb_driver::{Build, Shape, Target};

pub use crate::decode::Decoder;
use crate::device::{Device, DeviceError, View, f32_bytes, read_f32};
pub use crate::exec::Batch;
use crate::exec::{Profile, Recordings, Stores};
pub use hyb_compiler::ir::train::AdamW;
pub use hyb_lower::program::ParamSlot;
use hyb_lower::program::{ADAM, Arg, CLIP_MAX, LOSS, Program, SQUARES, Store};

#[derive(Debug)]
pub enum Error {
    /// The model does not compile for the target.
    Compile(hyb_driver::Error),
    /// The target's device is not here, or failed.
    Device(String),
    /// A caller's mistake: wrong token count, unknown parameter, wrong length.
    Input(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Compile(e) => write!(f, "{e}"),
            Error::Device(e) => write!(f, "{e}"),
            Error::Input(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<DeviceError> for Error {
    fn from(error: DeviceError) -> Error {
        Error::Device(error.to_string())
    }
}

/// A device for `target` with `build`'s kernels loaded.
fn device_for(build: &Build) -> Result<Box<dyn Device>, Error> {
    let mut device = new_device(build.target)?;
    device.load(&build.modules)?;
    Ok(device)
}

/// A fresh device of `target`.
fn new_device(target: Target) -> Result<Box<dyn Device>, Error> {
    Ok(match target {
        Target::Cpu => Box::new(cpu::Cpu::new()),
        Target::Cuda { .. } => Box::new(cuda::Cuda::new().map_err(|e| Error::Device(e.to_string()))?),
    })
}

/// Whether the CUDA driver library (`libcuda.so.1`) loads here.
pub fn cuda_driver_installed() -> bool {
    // SAFETY: dlopen with a constant name; the handle is closed at once.
    let handle = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY) };
    if handle.is_null() {
        return false;
    }
    // SAFETY: a handle dlopen returned.
    unsafe { libc::dlclose(handle) };
    true
}

/// Whether an NVIDIA GPU can run here, in words.
pub fn gpu_presence() -> String {
    if !cuda_driver_installed() {
        "no NVIDIA GPU here: the CUDA driver library libcuda.so.1 is not installed".into()
    } else if cuda::available() {
        "a GPU and its driver are here".into()
    } else {
        "the CUDA driver is installed but finds no GPU".into()
    }
}

/// Refuses a program whose stores do not fit the device's free memory, with the
/// figures, before anything is allocated.
fn check_memory(program: &Program, device: &dyn Device) -> Result<(), Error> {
    let Some((free, total)) = device.memory() else { return Ok(()) };
    let needed = exec::Stores::bytes(program);
    if needed > free {
        let (batch, seq_len) = (program.batch, program.seq_len);
        let what = if program.max_len.is_some() {
            format!("decoding {batch} sequences")
        } else if program.trains() {
            format!("the training step at {batch} × {seq_len}")
        } else {
            format!("the evaluation forward at {batch} × {seq_len}")
        };
        return Err(Error::Device(format!(
            "{what} needs {:.2} GiB on {}; {:.2} GiB of its {:.2} GiB are free",
            needed as f64 / (1u64 << 30) as f64,
            device.describe(),
            free as f64 / (1u64 << 30) as f64,
            total as f64 / (1u64 << 30) as f64
        )));
    }
    Ok(())
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    /// The global gradient norm before clipping.
    pub grad_norm: f32,
}

/// Where a parameter's gradient lies on the device, and the instruction of the backward
/// after which nothing touches it (writes it, or reads it): what a data-parallel rank
/// needs to sum it across ranks, in place, as soon as it is complete
/// ([`Trainer::forward_backward_in_ranges`]).
#[derive(Clone, Debug)]
pub struct GradientPlace {
    /// The parameter's index, in the model's order.
    pub param: usize,
    pub view: View,
    pub final_after: usize,
}

/// Every parameter (in the model's order) and AdamW's two moments, as host copies.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub params: Vec<Vec<f32>>,
    pub moment1: Vec<Vec<f32>>,
    pub moment2: Vec<Vec<f32>>,
}

/// A model's compiled training step and its state on a device.
pub struct Trainer {
    pub program: Program,
    model: Model,
    target: Target,
    device: Box<dyn Device>,
    stores: Stores,
    /// Optimizer steps taken.
    pub step: u64,
    /// Per-kernel time, when profiling is on.
    pub profile: Option<Profile>,
    inits: Vec<hyb_compiler::ir::Init>,
    /// The ranges of the program the device has recorded (CUDA graphs).
    recordings: Recordings,
}

impl Trainer {
    /// Compiles the step of `model` at `batch × seq_len` for the CPU (parameters zero
    /// until set).
    pub fn new(model: &Model, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        Self::for_target(model, Target::Cpu, batch, seq_len)
    }

    /// Compiles the step of `model` at `batch × seq_len` for `target`.
    pub fn for_target(model: &Model, target: Target, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        let build = hyb_driver::compile(model, target, Shape::Train { batch, seq_len }).map_err(Error::Compile)?;
        Self::from_build(model, build)
    }

    /// Compiles the forward of `model` alone at `batch × seq_len` for `target`: the loss
    /// and the logits, with no gradients, no optimizer state and memory planned for the
    /// forward only (evaluation). Its `forward_backward` and `step` refuse.
    pub fn evaluator(model: &Model, target: Target, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        let build = hyb_driver::compile(model, target, Shape::Eval { batch, seq_len }).map_err(Error::Compile)?;
        Self::from_build(model, build)
    }

    /// Whether the program has a backward and an optimizer step (not an evaluator's).
    pub fn trains(&self) -> bool {
        self.program.trains()
    }

    /// An evaluator of the same model at `batch × seq_len` on the same target, with a
    /// copy of the current parameters.
    pub fn evaluation(&self, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        let mut other = Self::evaluator(&self.model, self.target, batch, seq_len)?;
        other.copy_params_from(self);
        Ok(other)
    }

    /// Runs what the driver built (a training program of `model`).
    pub fn from_build(model: &Model, build: Build) -> Result<Trainer, Error> {
        let device = new_device(build.target)?;
        Self::on_device(model, build, device)
    }

    /// Runs what the driver built on a caller's device (a wrapped backend, in tests).
    pub fn on_device(model: &Model, build: Build, mut device: Box<dyn Device>) -> Result<Trainer, Error> {
        device.load(&build.modules)?;
        check_memory(&build.program, device.as_ref())?;
        let stores = Stores::new(&build.program, device.as_mut())?;
        let inits = model.params.iter().map(|p| p.init).collect();
        Ok(Trainer {
            program: build.program,
            model: model.clone(),
            target: build.target,
            device,
            stores,
            step: 0,
            profile: None,
            inits,
            recordings: Recordings::default(),
        })
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// The device the step runs on, in words (`cpu (2 threads)`, `cuda (NVIDIA H200)`).
    pub fn device(&self) -> String {
        self.device.describe()
    }

    /// Runs instructions `range` of the step program: as one recording of the device
    /// (a CUDA graph, recorded on first use) unless profiling, which times each.
    fn run(&mut self, range: std::ops::Range<usize>, batch: &Batch) {
        let (program, device, stores) = (&self.program, self.device.as_mut(), &self.stores);
        exec::run_or_replay(program, device, stores, range, batch, self.profile.as_mut(), &mut self.recordings);
    }

    /// Where the device's memory went (a GPU's, stage by stage), for the run's report.
    pub fn memory_report(&self) -> Option<String> {
        self.device.memory_report()
    }

    /// How many ranges of the program the device has recorded and replays (CUDA graphs;
    /// none on the CPU).
    pub fn recorded(&self) -> usize {
        self.recordings.len()
    }

    fn host(&mut self, slot: usize) -> f32 {
        read_f32(self.device.as_ref(), &self.stores.view(&Arg::host(slot, 1)))[0]
    }

    fn set_host(&mut self, slot: usize, values: &[f32]) {
        let view = self.stores.view(&Arg::host(slot, values.len()));
        self.device.write(&view, f32_bytes(values));
    }

    fn view(&self, store: hyb_lower::program::Store, index: usize) -> View {
        let len = self.program.params[index].shape.iter().product();
        let arg = Arg { store, offset: 0, dims: vec![len], ..Arg::host(0, 1) };
        self.stores.view(&arg)
    }

    /// The same model at another batch × sequence length on the same target (a trainer,
    /// or an evaluator of one), with a copy of the current parameters (a compiled kernel
    /// is reused: kernels do not depend on the shape).
    pub fn resized(&self, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        let mut other = Self::of_kind(&self.model, self.target, self.trains(), batch, seq_len)?;
        assert_eq!(other.program.kernels.keys, self.program.kernels.keys, "kernels are shape-independent");
        other.copy_params_from(self);
        Ok(other)
    }

    /// [`Trainer::resized`], consuming this one: the same trainer where the shape is
    /// already `batch × seq_len`; else its device is freed before the other's is made
    /// (the parameters held on the host in between), so the weights are never on the
    /// device twice — an evaluation of a large model needs one copy.
    pub fn into_resized(self, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        if (self.program.batch, self.program.seq_len) == (batch, seq_len) {
            return Ok(self);
        }
        let (params, model, target, trains) = (self.params(), self.model.clone(), self.target, self.trains());
        drop(self);
        let mut other = Self::of_kind(&model, target, trains, batch, seq_len)?;
        other.write_params(&params);
        Ok(other)
    }

    /// A trainer of `model` at `batch × seq_len`, or an evaluator where `trains` is false.
    fn of_kind(model: &Model, target: Target, trains: bool, batch: usize, seq_len: usize) -> Result<Trainer, Error> {
        if trains {
            Self::for_target(model, target, batch, seq_len)
        } else {
            Self::evaluator(model, target, batch, seq_len)
        }
    }

    /// Copies the parameters of `other` (the same model) into this one.
    pub fn copy_params_from(&mut self, other: &Trainer) {
        let params = other.params();
        self.write_params(&params);
    }

    /// A copy of every parameter, in the model's order.
    pub fn params(&self) -> Vec<Vec<f32>> {
        let mut copies = Vec::new();
        for index in 0..self.program.params.len() {
            let view = self.view(hyb_lower::program::Store::Param(index), index);
            copies.push(read_f32(self.device.as_ref(), &view));
        }
        copies
    }

    fn write_params(&mut self, params: &[Vec<f32>]) {
        for (index, values) in params.iter().enumerate() {
            let view = self.view(hyb_lower::program::Store::Param(index), index);
            self.device.write(&view, f32_bytes(values));
        }
    }

    /// Every parameter, in the model's order, and AdamW's two moments.
    pub fn state(&self) -> State {
        let read = |store: fn(usize) -> Store| -> Vec<Vec<f32>> {
            (0..self.program.params.len()).map(|i| read_f32(self.device.as_ref(), &self.view(store(i), i))).collect()
        };
        State { params: read(Store::Param), moment1: read(Store::Moment1), moment2: read(Store::Moment2) }
    }

    /// Restores parameters, moments and the step count (as [`Trainer::state`] gave them).
    pub fn restore(&mut self, state: State, step: u64) -> Result<(), Error> {
        for (what, given) in
            [("parameters", &state.params), ("first moments", &state.moment1), ("second moments", &state.moment2)]
        {
            let fits = given.len() == self.program.params.len()
                && given.iter().zip(&self.program.params).all(|(g, p)| g.len() == p.shape.iter().product::<usize>());
            if !fits {
                return Err(Error::Input(format!("the checkpoint's {what} do not fit this model")));
            }
        }
        for (store, values) in [
            (Store::Param as fn(usize) -> Store, &state.params),
            (Store::Moment1, &state.moment1),
            (Store::Moment2, &state.moment2),
        ] {
            for (index, values) in values.iter().enumerate() {
                let view = self.view(store(index), index);
                self.device.write(&view, f32_bytes(values));
            }
        }
        self.step = step;
        Ok(())
    }

    /// Fills the arena and scratch with NaN: a later read of anything the step did not
    /// write shows up as NaN (the device suite's check that outputs are written).
    pub fn poison_scratch(&mut self) {
        for (store, bytes) in [(Store::Arena, self.program.arena_bytes), (Store::Temp, self.program.temp_bytes)] {
            let arg = Arg { store, offset: 0, dims: vec![bytes / 4], ..Arg::host(0, 1) };
            self.device.write(&self.stores.view(&arg), &vec![0xFF; bytes / 4 * 4]);
        }
    }

    /// Initialises every parameter as the model states, from `seed`.
    pub fn init_params(&mut self, seed: u64) {
        let mut rng = init::rng(seed);
        let params: Vec<Vec<f32>> = self
            .inits
            .iter()
            .zip(&self.program.params)
            .map(|(init, slot)| {
                let mut values = vec![0.0; slot.shape.iter().product()];
                init::fill(init, &mut values, &mut rng);
                values
            })
            .collect();
        self.write_params(&params);
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

    /// A copy of parameter `name`.
    pub fn param(&mut self, name: &str) -> Result<Vec<f32>, Error> {
        let index = self.index(name)?;
        let view = self.view(hyb_lower::program::Store::Param(index), index);
        Ok(read_f32(self.device.as_ref(), &view))
    }

    pub fn set_param(&mut self, name: &str, values: &[f32]) -> Result<(), Error> {
        let index = self.index(name)?;
        let view = self.view(hyb_lower::program::Store::Param(index), index);
        if view.len() != values.len() {
            return Err(Error::Input(format!("`{name}` has {} values, got {}", view.len(), values.len())));
        }
        self.device.write(&view, f32_bytes(values));
        Ok(())
    }

    /// [`Trainer::check`] for a backward: an evaluator has none.
    fn check_training(&self, batch: &Batch) -> Result<(), Error> {
        if !self.trains() {
            return Err(Error::Input("an evaluator runs the forward alone: it has no backward".into()));
        }
        self.check(batch)
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
        self.run(0..self.program.forward_end, batch);
        Ok(self.host(LOSS))
    }

    /// A copy of the logits `[batch, seq_len, vocab]` of the last forward pass.
    pub fn logits(&mut self) -> Vec<f32> {
        let view = self.stores.view(&self.program.logits);
        read_f32(self.device.as_ref(), &view)
    }

    /// Forward and backward; returns the loss. Gradients are readable with
    /// [`Trainer::grad`] until the next call.
    pub fn forward_backward(&mut self, batch: &Batch) -> Result<f32, Error> {
        self.check_training(batch)?;
        self.run(0..self.program.optimizer_start, batch);
        Ok(self.host(LOSS))
    }

    /// Forward and backward of `batch` here and on `reference` (the same model on
    /// another device, its parameters copied here first) in lockstep: every divergence
    /// of this device's instructions from the reference's beyond `tolerance`, each
    /// checked on the reference's inputs ([`lockstep`]). Scratch is poisoned on both.
    pub fn lockstep(
        &mut self,
        reference: &mut Trainer,
        batch: &Batch,
        tolerance: f64,
    ) -> Result<Vec<lockstep::Divergence>, Error> {
        let (mine, theirs) = (&self.program.instrs, &reference.program.instrs);
        let alike = mine.len() == theirs.len() && mine.iter().zip(theirs).all(|(a, b)| a.alike(b));
        if !alike || !self.trains() {
            return Err(Error::Input("lockstep needs two training programs alike".into()));
        }
        self.check(batch)?;
        self.copy_params_from(reference);
        self.poison_scratch();
        reference.poison_scratch();
        let reference_side = lockstep::Side { device: reference.device.as_mut(), stores: &reference.stores };
        let side = lockstep::Side { device: self.device.as_mut(), stores: &self.stores };
        Ok(lockstep::run(&self.program, reference_side, side, 0..self.program.optimizer_start, batch, tolerance))
    }

    /// Forward and backward of `batch` in ranges, each one recording of the device (a
    /// CUDA graph, recorded on first use): a range ends after each instruction of `stops`
    /// (increasing, inside the backward) and at the end of the backward, and
    /// `after(i, device)` runs once the range ending at instruction `i` is issued — where
    /// a data-parallel rank issues the gradient buckets that became final. Reads nothing
    /// back (no wait for the device): [`Trainer::norm_and_loss`] follows.
    pub fn forward_backward_in_ranges(
        &mut self,
        batch: &Batch,
        stops: &[usize],
        after: &mut dyn FnMut(usize, &mut (dyn Device + 'static)) -> Result<(), String>,
    ) -> Result<(), Error> {
        self.check_training(batch)?;
        let end = self.program.optimizer_start;
        if stops.windows(2).any(|w| w[0] >= w[1]) || stops.last().is_some_and(|s| *s >= end) {
            return Err(Error::Input(format!(
                "range stops {stops:?} are not increasing inside the backward (< {end})"
            )));
        }
        let mut start = 0;
        for stop in stops.iter().copied().chain((stops.last() != Some(&(end - 1))).then_some(end - 1)) {
            self.run(start..stop + 1, batch);
            after(stop, self.device.as_mut()).map_err(Error::Device)?;
            start = stop + 1;
        }
        Ok(())
    }

    /// The gradient norm (and clipping factor) of the gradients the backward left, then
    /// one read of the loss and the norm: what follows
    /// [`Trainer::forward_backward_in_ranges`] and whatever was issued after it.
    pub fn norm_and_loss(&mut self, adamw: &AdamW) -> StepStats {
        self.run_norm(adamw);
        self.loss_and_norm()
    }

    /// Sets the clipping bound AdamW's clip (if any) asks for, where the norm reads it.
    fn set_clip(&mut self, adamw: &AdamW) {
        self.set_host(CLIP_MAX, &[adamw.clip.map_or(f32::INFINITY, |c| c as f32)]);
    }

    /// Issues the gradient norm and the clipping factor over the gradients left.
    fn run_norm(&mut self, adamw: &AdamW) {
        self.set_clip(adamw);
        self.run(self.program.optimizer_start..self.program.update_start, &Batch::NONE);
    }

    /// The loss and the gradient norm, read at once (one wait for the device).
    fn loss_and_norm(&self) -> StepStats {
        let both = read_f32(self.device.as_ref(), &self.stores.view(&Arg::host(LOSS, 2)));
        const { assert!(SQUARES == LOSS + 1, "the loss and the norm are read at once") };
        StepStats { loss: both[0], grad_norm: both[1] }
    }

    /// Where the forward leaves the loss (one f32 of the host scalars' buffer).
    pub fn loss_place(&self) -> View {
        self.stores.view(&Arg::host(LOSS, 1))
    }

    /// Every parameter's buffer, then (for a training program) AdamW's first and second
    /// moments', each as f32: the state a data-parallel run starts alike on every rank.
    pub fn state_places(&self) -> Vec<View> {
        let kinds: &[fn(usize) -> Store] =
            if self.trains() { &[Store::Param, Store::Moment1, Store::Moment2] } else { &[Store::Param] };
        kinds.iter().flat_map(|store| (0..self.program.params.len()).map(|i| self.view(store(i), i))).collect()
    }

    /// The device, for a collective that acts on its memory between the ranges of a
    /// step ([`Trainer::forward_backward_in_ranges`]).
    pub fn device_mut(&mut self) -> &mut (dyn Device + 'static) {
        self.device.as_mut()
    }

    /// The device's memory as raw addresses and its stream (a GPU's; see
    /// [`device::Raw`]), for a collective acting on it in place.
    pub fn raw_memory(&self) -> Option<device::Raw> {
        self.device.raw()
    }

    /// Each parameter's gradient: where it lies and the last backward instruction that
    /// touches it ([`GradientPlace`]).
    pub fn gradient_places(&self) -> Vec<GradientPlace> {
        let overlap = |a: &View, b: &View| {
            a.buffer == b.buffer && a.offset < b.offset + b.bytes() && b.offset < a.offset + a.bytes()
        };
        // What each instruction may write or read as memory a collective could be
        // changing: its written views, zeroings (a gradient no kernel adds to is final
        // once zeroed) and a GEMM's operands too.
        let touched: Vec<Vec<View>> = self.program.instrs[..self.program.optimizer_start]
            .iter()
            .map(|instr| match instr {
                hyb_lower::program::Instr::Zero(arg) => vec![self.stores.view(arg)],
                hyb_lower::program::Instr::Gemm { a, b, c, .. } => {
                    [&a.0, &b.0, c].into_iter().map(|arg| self.stores.view(arg)).collect()
                }
                _ => exec::written(instr, &self.stores),
            })
            .collect();
        self.program
            .grads
            .iter()
            .enumerate()
            .map(|(param, grad)| {
                let view = self.stores.view(grad);
                let final_after = touched.iter().rposition(|w| w.iter().any(|v| overlap(v, &view))).unwrap_or(0);
                GradientPlace { param, view, final_after }
            })
            .collect()
    }

    /// The gradient of parameter `name` from the last [`Trainer::forward_backward`].
    pub fn grad(&mut self, name: &str) -> Result<Vec<f32>, Error> {
        let view = self.stores.view(&self.program.grads[self.index(name)?]);
        Ok(read_f32(self.device.as_ref(), &view))
    }

    /// Every parameter's gradient from the last [`Trainer::forward_backward`], in order.
    pub fn grads(&mut self) -> Vec<Vec<f32>> {
        let views: Vec<View> = self.program.grads.iter().map(|g| self.stores.view(g)).collect();
        views.iter().map(|view| read_f32(self.device.as_ref(), view)).collect()
    }

    /// Replaces the gradients the optimizer step will read (gradient accumulation).
    pub fn set_grads(&mut self, grads: &[Vec<f32>]) -> Result<(), Error> {
        let views: Vec<View> = self.program.grads.iter().map(|g| self.stores.view(g)).collect();
        if grads.len() != views.len() || grads.iter().zip(&views).any(|(g, v)| g.len() != v.len()) {
            return Err(Error::Input("the gradients do not fit the model's parameters".into()));
        }
        for (view, values) in views.iter().zip(grads) {
            self.device.write(view, f32_bytes(values));
        }
        Ok(())
    }

    /// The first parameter (in the model's order: by layer) whose gradient from the last
    /// [`Trainer::forward_backward`] holds a NaN or an infinity.
    pub fn first_non_finite_grad(&mut self) -> Option<String> {
        let names: Vec<String> = self.program.params.iter().map(|p| p.name.clone()).collect();
        let grads = self.grads();
        grads.iter().zip(names).find(|(g, _)| g.iter().any(|v| !v.is_finite())).map(|(_, name)| name)
    }

    /// The global norm of the gradients from the last backward (NaN or infinite if any
    /// gradient is), and the clipping factor it sets for [`Trainer::apply_update`].
    pub fn gradient_norm(&mut self, adamw: &AdamW) -> f32 {
        self.run_norm(adamw);
        self.host(SQUARES)
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
        let scalars: Vec<f32> = scalars.iter().map(|v| *v as f32).collect();
        self.set_host(ADAM, &scalars);
        self.run(self.program.update_start..self.program.instrs.len(), &Batch::NONE);
    }

    /// Forward, backward and the gradient norm as one unit of device work (one CUDA
    /// graph), then one read of the loss and the norm: a training step's only wait for
    /// the device. [`Trainer::apply_update`] completes the step.
    pub fn forward_backward_norm(&mut self, batch: &Batch, adamw: &AdamW) -> Result<StepStats, Error> {
        self.check_training(batch)?;
        self.set_clip(adamw);
        self.run(0..self.program.update_start, batch);
        Ok(self.loss_and_norm())
    }

    /// Clipping and one AdamW update at learning rate `lr`; returns the gradient norm.
    pub fn optimizer_step(&mut self, adamw: &AdamW, lr: f64) -> f32 {
        let norm = self.gradient_norm(adamw);
        self.apply_update(adamw, lr);
        norm
    }

    /// One training step: forward, backward, clipping, AdamW.
    pub fn step(&mut self, batch: &Batch, adamw: &AdamW, lr: f64) -> Result<StepStats, Error> {
        let stats = self.forward_backward_norm(batch, adamw)?;
        self.apply_update(adamw, lr);
        Ok(stats)
    }
}
