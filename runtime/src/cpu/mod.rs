//! The CPU backend: buffers in host memory, kernels JIT-compiled through LLVM (MLIR's
//! ExecutionEngine) and called through their packed entry points, split over rayon's
//! threads along their iteration space; GEMMs through `matrixmultiply`; flush-to-zero on
//! every thread that runs a step.

pub mod denormals;
mod gemm;
mod launch;

use std::rc::Rc;

use rayon::prelude::*;

use hyb_driver::Module;
use hyb_kernels::jit::{Compiled, Entry, JitError};

use crate::device::{BufferId, Device, DeviceError, Gemm, View, f32_bytes};

/// The CPU as a [`Device`].
#[derive(Default)]
pub struct Cpu {
    /// Each buffer as 4-byte words (every element type is at most 4 bytes, every offset
    /// a multiple of its size).
    buffers: Vec<Vec<f32>>,
    entries: Vec<Entry>,
    /// Keeps the compiled modules the entries point into alive.
    _compiled: Vec<Rc<Compiled>>,
}

/// A pointer into a buffer, sendable to the threads of one launch.
#[derive(Clone, Copy)]
pub(crate) struct Ptr(pub *mut u8);
// SAFETY: parallel parts of one launch write disjoint rows; launches run one at a time.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Cpu {
    pub fn new() -> Cpu {
        denormals::flush_to_zero();
        Cpu::default()
    }

    /// A pointer to the view's first byte, bounds-checked.
    pub(crate) fn pointer(&mut self, view: &View) -> Ptr {
        let buffer = &mut self.buffers[view.buffer.0];
        assert!(view.offset + view.bytes() <= buffer.len() * 4, "{view:?} is outside its buffer");
        // SAFETY: in bounds, checked above.
        Ptr(unsafe { buffer.as_mut_ptr().cast::<u8>().add(view.offset) })
    }

    /// The view's bytes, read-only.
    fn bytes_ref(&self, view: &View) -> &[u8] {
        let buffer = &self.buffers[view.buffer.0];
        let all = f32_bytes(buffer);
        &all[view.offset..view.offset + view.bytes()]
    }

    /// The view's bytes, borrowed mutably.
    fn bytes(&mut self, view: &View) -> &mut [u8] {
        let Ptr(pointer) = self.pointer(view);
        // SAFETY: in bounds (checked by `pointer`), borrowed mutably from self.
        unsafe { std::slice::from_raw_parts_mut(pointer, view.bytes()) }
    }

    /// Forgets this thread's compiled modules (to measure a cold compile).
    pub fn clear_cache() {
        CACHE.with(|cache| cache.borrow_mut().clear());
    }
}

thread_local! {
    /// Compiled modules by their MLIR text: the same text is the same machine code, so
    /// a sweep, an evaluation at another length or a test suite pays LLVM once per kernel.
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, Rc<Compiled>>> = Default::default();
}

/// JIT-compiles every module not compiled before on this thread, each its own module
/// (separate modules compile faster in total than one joined module, and in parallel).
fn compile(modules: &[Module]) -> Result<Vec<Rc<Compiled>>, JitError> {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let mut missing: Vec<&String> = modules.iter().map(|m| &m.object).filter(|t| !cache.contains_key(*t)).collect();
        missing.sort();
        missing.dedup();
        let compiled: Vec<Compiled> =
            missing.par_iter().map(|m| hyb_kernels::jit::compile(m)).collect::<Result<_, _>>()?;
        for (text, compiled) in missing.into_iter().zip(compiled) {
            cache.insert(text.clone(), Rc::new(compiled));
        }
        Ok(modules.iter().map(|m| cache[&m.object].clone()).collect())
    })
}

impl Device for Cpu {
    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc(&mut self, bytes: usize) -> Result<BufferId, DeviceError> {
        self.buffers.push(vec![0.0; bytes.div_ceil(4)]);
        Ok(BufferId(self.buffers.len() - 1))
    }

    fn write(&mut self, to: &View, bytes: &[u8]) {
        self.bytes(to).copy_from_slice(bytes);
    }

    fn read(&self, from: &View, into: &mut [u8]) {
        into.copy_from_slice(self.bytes_ref(from));
    }

    fn zero(&mut self, view: &View) {
        self.bytes(view).fill(0);
    }

    fn copy(&mut self, from: &View, to: &View) {
        assert_eq!(from.bytes(), to.bytes(), "a copy fills its view");
        let (Ptr(source), Ptr(target)) = (self.pointer(from), self.pointer(to));
        // SAFETY: both in bounds (checked by `pointer`); `copy` allows overlap.
        unsafe { std::ptr::copy(source, target, from.bytes()) };
    }

    fn load(&mut self, modules: &[Module]) -> Result<(), DeviceError> {
        let compiled = compile(modules).map_err(|e| DeviceError::Load(e.to_string()))?;
        let entries = compiled.iter().zip(modules).map(|(c, m)| c.entry(&m.name)).collect::<Result<_, _>>();
        self.entries = entries.map_err(|e| DeviceError::Load(e.to_string()))?;
        self._compiled = compiled;
        Ok(())
    }

    fn launch(&mut self, kernel: usize, space: usize, args: &[View]) {
        launch::launch(self, self.entries[kernel], space, args);
    }

    fn gemm(&mut self, op: &Gemm) {
        gemm::gemm(self, op);
    }

    /// Every operation has finished when it returns.
    fn synchronize(&mut self) {}
}
