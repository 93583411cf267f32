//! The device a step program runs on: memory, modules, launches, GEMMs — no per-op
//! methods, because the kernels come from the compiler.
//!
//! ## Design
//!
//! - **Buffers.** The runtime allocates one buffer per store of the program (the arena
//!   laid out by the buffer plan, scratch, the decoding cache, the host scalars, each
//!   parameter and AdamW moment) and addresses them by [`BufferId`]. A [`View`] is typed
//!   elements of a buffer at a byte offset: what a launch, GEMM or copy sees.
//! - **Ownership.** The device owns its memory; the host never borrows it. Values move
//!   only through [`Device::write`] and [`Device::read`] (into the caller's bytes), so a
//!   backend whose memory the host cannot address implements the same trait.
//! - **Order.** Operations take effect in the order issued. `read` returns the value
//!   after everything issued before it; a backend that queues work (a CUDA stream)
//!   synchronises there. [`Device::synchronize`] waits for all issued work (for timing).
//! - **Recordings.** A backend that can record issued work and replay it as one unit
//!   (a CUDA graph) says so in [`Device::begin_recording`]; the work issued until
//!   [`Device::end_recording`] is recorded instead of run, and [`Device::replay`] runs
//!   it, in order with everything else issued. Recorded work reads and writes device
//!   memory only: host values reach it through buffers written before a replay.
//! - **Modules.** [`Device::load`] takes the driver's modules, one per kernel of the
//!   program, in its order: a launch names its kernel by that index and gives its
//!   iteration space, the points a backend may run in parallel.

use hyb_driver::Module;
use hyb_lower::program::Share;
use hyb_target::Elem;

/// A buffer of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferId(pub usize);

/// Elements of `elem` from byte `offset` of a buffer, seen as `dims` (one flat dim
/// when `flat`); `share` says how a launch's iteration space indexes it.
#[derive(Clone, Debug)]
pub struct View {
    pub buffer: BufferId,
    pub offset: usize,
    pub elem: Elem,
    pub dims: Vec<usize>,
    pub flat: bool,
    pub share: Share,
}

impl View {
    /// `len` f32 values from byte `offset` of `buffer`, flat.
    pub fn floats(buffer: BufferId, offset: usize, len: usize) -> View {
        View { buffer, offset, elem: Elem::F32, dims: vec![len], flat: true, share: Share::Split }
    }

    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.len() * self.elem.bytes() as usize
    }
}

/// `c[m, n] = a[m, k] · b[k, n]`, each operand with its (row, column) strides in
/// elements: f32 operands and product, or bf16 operands (f32 accumulation) and a bf16 or
/// f32 product.
#[derive(Clone, Debug)]
pub struct Gemm {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: (View, [isize; 2]),
    pub b: (View, [isize; 2]),
    pub c: View,
}

/// The largest power of two up to 256 dividing `bytes` (a GEMM operand's address or its
/// offset in a store): the alignment cuBLASLt's kernels are chosen for.
pub(crate) fn alignment(bytes: u64) -> u32 {
    1 << bytes.trailing_zeros().min(8)
}

#[derive(Debug)]
pub enum DeviceError {
    /// The device cannot hold what the program needs.
    OutOfMemory { needed: usize, available: usize },
    /// A module failed to compile or load.
    Load(String),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceError::OutOfMemory { needed, available } => {
                write!(f, "the step needs {needed} bytes; the device has {available} free")
            }
            DeviceError::Load(message) => write!(f, "{message}"),
        }
    }
}

/// A device's memory as the raw handles a collective library acts on in place (NCCL):
/// the stream its work is issued on, and each buffer's address and size in bytes, by
/// [`BufferId`]. Valid while the device lives and allocates nothing more.
#[derive(Clone, Debug)]
pub struct Raw {
    pub stream: usize,
    pub buffers: Vec<(u64, usize)>,
}

pub trait Device {
    /// What it is, for logs: `cpu (2 threads)`.
    fn describe(&self) -> String;
    /// Its memory as raw addresses and its stream, where another library can act on it
    /// (a GPU's, for NCCL); `None` where memory is the host's (the CPU's).
    fn raw(&self) -> Option<Raw> {
        None
    }
    /// Free and total bytes, where the device knows (a GPU); the runtime refuses a
    /// program that does not fit before allocating anything.
    fn memory(&self) -> Option<(usize, usize)> {
        None
    }
    /// Where the device's memory went, stage by stage, for a report (a GPU's).
    fn memory_report(&self) -> Option<String> {
        None
    }
    /// A zeroed buffer of `bytes`.
    fn alloc(&mut self, bytes: usize) -> Result<BufferId, DeviceError>;
    /// Copies host bytes into `to` (`bytes.len()` equals its size).
    fn write(&mut self, to: &View, bytes: &[u8]);
    /// Copies `from` into the caller's bytes, once everything issued before has run.
    fn read(&self, from: &View, into: &mut [u8]);
    fn zero(&mut self, view: &View);
    /// Copies `from` into `to` (of the same byte size), both on the device.
    fn copy(&mut self, from: &View, to: &View) {
        assert_eq!(from.bytes(), to.bytes(), "a copy fills its view");
        let mut bytes = vec![0u8; from.bytes()];
        self.read(from, &mut bytes);
        self.write(to, &bytes);
    }
    /// Starts recording the work issued from now on instead of running it, where the
    /// backend can replay recorded work; `false` (and the work runs as issued) where not.
    fn begin_recording(&mut self) -> bool {
        false
    }
    /// Ends the recording [`Device::begin_recording`] started; its handle.
    fn end_recording(&mut self) -> usize {
        unreachable!("{} records nothing", self.describe())
    }
    /// Runs recording `recording`'s work again.
    fn replay(&mut self, recording: usize) {
        unreachable!("{} has no recording {recording}", self.describe())
    }
    /// Loads the program's kernels, replacing any loaded before.
    fn load(&mut self, modules: &[Module]) -> Result<(), DeviceError>;
    /// Runs kernel `kernel` over an iteration space of `space` points.
    fn launch(&mut self, kernel: usize, space: usize, args: &[View]);
    fn gemm(&mut self, gemm: &Gemm);
    /// Waits until everything issued has finished.
    fn synchronize(&mut self);
}

/// f32 values as the bytes a device copies.
pub fn f32_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding; any byte pattern is readable as bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

pub fn i32_bytes(values: &[i32]) -> &[u8] {
    // SAFETY: as for f32.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// Reads a float view into a new vector of f32 (bf16 widened exactly).
pub fn read_f32(device: &dyn Device, view: &View) -> Vec<f32> {
    if view.elem == Elem::F32 {
        let mut values = vec![0.0f32; view.len()];
        // SAFETY: every byte pattern is a valid f32; the slice covers the vector exactly.
        let bytes = unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), view.bytes()) };
        device.read(view, bytes);
        return values;
    }
    let mut bytes = vec![0u8; view.bytes()];
    device.read(view, &mut bytes);
    floats(&bytes, view.elem)
}

/// Little-endian elements of `elem` as f32 (bf16 widened exactly).
pub fn floats(bytes: &[u8], elem: Elem) -> Vec<f32> {
    match elem {
        Elem::F32 => bytes.chunks_exact(4).map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect(),
        Elem::Bf16 => bytes.chunks_exact(2).map(|h| hyb_target::bf16_value(u16::from_le_bytes([h[0], h[1]]))).collect(),
        Elem::I32 => panic!("floats, not token ids"),
    }
}
