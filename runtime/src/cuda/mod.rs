//! The CUDA backend: one NVIDIA GPU through the driver API (cudarc, loaded at run time,
//! so everything builds and runs without CUDA): one device buffer per store, PTX modules
//! loaded once (the driver compiles them for the GPU), launches of the `blocks` form —
//! a thread per point of the iteration space, or a block per point and a thread per lane
//! (`hyb_kernels::gpu::Launch`) — and GEMMs through cuBLASLt (bf16 on the tensor cores,
//! or f32), with a workspace of its own.
//!
//! Work is issued in order on one stream of the device's own; `read` waits for it.
//! Recordings are CUDA graphs captured from that stream (`HYB_GPU_GRAPHS=off` issues
//! every range kernel by kernel instead, to compare).
//!
//! **Architecture Invariant:** the only module that calls cudarc.

mod gemm;

use std::ffi::{CString, c_void};

use cudarc::cublaslt::result as blas;
use cudarc::cublaslt::sys::cublasLtHandle_t;
use cudarc::driver::result as driver;
use cudarc::driver::sys::{CUdevice_attribute, CUdeviceptr, CUfunction, CUgraphExec, CUmodule, CUstream};

use hyb_driver::{Form, KernelKey, Module};
use hyb_kernels::gpu::Launch;
use hyb_lower::program::Share;

use crate::device::{BufferId, Device, DeviceError, Gemm, View};

/// The first GPU of this machine as a [`Device`].
pub struct Cuda {
    name: String,
    /// The GPU's streaming multiprocessors (how wide a launch must be to fill it).
    multiprocessors: usize,
    /// Each buffer's address and size in bytes.
    buffers: Vec<(CUdeviceptr, usize)>,
    modules: Vec<CUmodule>,
    functions: Vec<CUfunction>,
    keys: Vec<(KernelKey, Form)>,
    /// Each loaded kernel's name.
    names: Vec<String>,
    blas_lt: cublasLtHandle_t,
    /// cuBLASLt's workspace ([`gemm::WORKSPACE_BYTES`]).
    workspace: CUdeviceptr,
    gemm_plans: gemm::Plans,
    /// Where all work is issued (a blocking stream: the synchronous copies of the legacy
    /// stream wait for it).
    stream: CUstream,
    /// Instantiated graphs, by recording handle.
    graphs: Vec<CUgraphExec>,
    /// Whether ranges are captured as graphs (`HYB_GPU_GRAPHS` is not `off`).
    record: bool,
    /// Device memory in use (the whole GPU's: total − free) after each stage of set-up,
    /// and the most seen at any read since: [`Device::memory_report`].
    ledger: Vec<(&'static str, usize)>,
    /// The most memory in use seen, and the buffers of the whole process then.
    peak: std::cell::Cell<(usize, usize)>,
    /// Bytes of this device's buffers.
    allocated: usize,
}

/// Bytes of buffers allocated and not yet freed by every [`Cuda`] of this process (a
/// trainer's evaluators and decoders are devices of their own).
static ALLOCATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The ordinal of the GPU a new [`Cuda`] uses, among those the driver sees.
static ORDINAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Makes every [`Cuda`] made from now on use GPU `ordinal` (a data-parallel rank's GPU
/// among those its process sees); GPU 0 until then.
pub fn select(ordinal: usize) {
    ORDINAL.store(ordinal, std::sync::atomic::Ordering::SeqCst);
}

/// Device memory in use (total − free), 0 where the driver does not say.
fn in_use() -> usize {
    driver::mem_get_info().map_or(0, |(free, total)| total - free)
}

/// `bytes` as MiB, with thousands separated.
fn mib(bytes: usize) -> String {
    format!("{} MiB", hyb_compiler::report::group((bytes >> 20) as u64))
}

fn error(what: &str) -> impl Fn(driver::DriverError) -> DeviceError + '_ {
    move |e| DeviceError::Load(format!("CUDA: {what}: {e:?}"))
}

/// Whether a CUDA driver and a GPU are here (`false` when libcuda does not load).
pub fn available() -> bool {
    // Loading the library panics inside cudarc when it is missing: ask dlopen first.
    crate::cuda_driver_installed() && driver::init().is_ok() && driver::device::get_count().is_ok_and(|count| count > 0)
}

/// How many GPUs the driver sees here (0 when libcuda does not load).
pub fn device_count() -> usize {
    if !crate::cuda_driver_installed() || driver::init().is_err() {
        return 0;
    }
    driver::device::get_count().map_or(0, |count| count.max(0) as usize)
}

impl Cuda {
    /// The selected GPU ([`select`]; the first by default), its context current on this
    /// thread.
    pub fn new() -> Result<Cuda, DeviceError> {
        if !crate::cuda_driver_installed() {
            return Err(DeviceError::Load(crate::gpu_presence()));
        }
        driver::init().map_err(error("init"))?;
        let ordinal = ORDINAL.load(std::sync::atomic::Ordering::SeqCst);
        let device = driver::device::get(ordinal as i32).map_err(|e| {
            let seen = driver::device::get_count().unwrap_or(0);
            DeviceError::Load(format!("CUDA: no GPU {ordinal} (the driver sees {seen}): {e:?}"))
        })?;
        // SAFETY: a device handle the driver returned; the primary context lives as
        // long as the process.
        let context = unsafe { driver::primary_ctx::retain(device) }.map_err(error("context"))?;
        unsafe { driver::ctx::set_current(context) }.map_err(error("context"))?;
        let name = driver::device::get_name(device).unwrap_or_else(|_| "GPU".into());
        // SAFETY: a device handle the driver returned.
        let multiprocessors = unsafe {
            driver::device::get_attribute(device, CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        }
        .map_err(error("multiprocessor count"))? as usize;
        let mut ledger = vec![("the CUDA context (and whatever else runs on the GPU)", in_use())];
        let blas_lt = blas::create_handle().map_err(|e| DeviceError::Load(format!("cuBLASLt: {e:?}")))?;
        // SAFETY: a fresh allocation, only ever handed to cuBLASLt as its workspace.
        let workspace = unsafe { driver::malloc_sync(gemm::WORKSPACE_BYTES) }.map_err(error("cuBLASLt workspace"))?;
        let stream = driver::stream::create(driver::stream::StreamKind::Default).map_err(error("stream"))?;
        ledger.push(("cuBLASLt, its workspace and a stream", in_use()));
        Ok(Cuda {
            multiprocessors,
            peak: std::cell::Cell::new((in_use(), 0)),
            allocated: 0,
            ledger,
            stream,
            graphs: Vec::new(),
            record: std::env::var("HYB_GPU_GRAPHS").map_or(true, |v| v != "off"),
            name,
            buffers: Vec::new(),
            modules: Vec::new(),
            functions: Vec::new(),
            keys: Vec::new(),
            names: Vec::new(),
            blas_lt,
            workspace,
            gemm_plans: gemm::Plans::default(),
        })
    }

    /// Records the memory in use after stage `what` (replacing an earlier reading of the
    /// same stage, so a stage of many calls reads once it is complete).
    fn note(&mut self, what: &'static str) {
        let now = self.sample();
        match self.ledger.iter_mut().find(|(stage, _)| *stage == what) {
            Some(entry) => entry.1 = now,
            None => self.ledger.push((what, now)),
        }
    }

    /// Reads the memory in use, keeping the most seen so far with the process's buffers
    /// then; returns the reading.
    fn sample(&self) -> usize {
        let now = in_use();
        if now > self.peak.get().0 {
            self.peak.set((now, ALLOCATED.load(std::sync::atomic::Ordering::Relaxed)));
        }
        now
    }

    /// The largest local-memory frame of a loaded kernel, per thread, and its kernel: the
    /// driver reserves such a frame for every thread the GPU can hold when it launches.
    fn largest_frame(&self) -> Option<(usize, String)> {
        let attribute = cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES;
        self.functions
            .iter()
            .zip(&self.names)
            // SAFETY: functions of modules this device loaded and keeps.
            .filter_map(|(f, name)| {
                let bytes = unsafe { driver::function::get_function_attribute(*f, attribute) }.ok()?;
                Some((bytes.max(0) as usize, name.clone()))
            })
            .max_by_key(|(bytes, _)| *bytes)
    }

    fn address(&self, view: &View) -> CUdeviceptr {
        self.buffers[view.buffer.0].0 + view.offset as CUdeviceptr
    }
}

impl Drop for Cuda {
    fn drop(&mut self) {
        // SAFETY: handles this device created and nothing else holds.
        unsafe {
            let _ = driver::ctx::synchronize();
            for graph in self.graphs.drain(..) {
                let _ = driver::graph::exec_destroy(graph);
            }
            let _ = driver::stream::destroy(self.stream);
            std::mem::take(&mut self.gemm_plans);
            let _ = blas::destroy_handle(self.blas_lt);
            let _ = driver::free_sync(self.workspace);
            for module in self.modules.drain(..) {
                let _ = driver::module::unload(module);
            }
            for (buffer, _) in self.buffers.drain(..) {
                let _ = driver::free_sync(buffer);
            }
            ALLOCATED.fetch_sub(self.allocated, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The launch's kernel parameters: per view its memref descriptor (allocated and
/// aligned pointer, offset, sizes, strides), then its split flag; then the points.
fn parameters(cuda: &Cuda, args: &[View], points: usize, split: bool) -> Vec<u64> {
    let mut words = Vec::new();
    for view in args {
        let dims: Vec<usize> = if view.flat { vec![view.len()] } else { view.dims.clone() };
        let pointer = cuda.address(view);
        words.extend([pointer, pointer, 0]);
        words.extend(dims.iter().map(|d| *d as u64));
        let mut strides = vec![0u64; dims.len()];
        let mut stride = 1u64;
        for axis in (0..dims.len()).rev() {
            strides[axis] = stride;
            stride *= dims[axis] as u64;
        }
        words.extend(strides);
        words.push(u64::from(split && view.share == Share::Split));
    }
    words.push(points as u64);
    words
}

impl Device for Cuda {
    /// The GPU's name, and the kernels loaded in a form other than the default lanes
    /// (`cuda (NVIDIA H100 80GB HBM3; chunked scan_bwd)`): a run's result and its pace
    /// say which code ran.
    fn describe(&self) -> String {
        let others: std::collections::BTreeSet<String> = self
            .keys
            .iter()
            .filter(|(_, form)| *form != Form::Lanes)
            .map(|(key, form)| format!("{form} {}", key.label()))
            .collect();
        if others.is_empty() {
            return format!("cuda ({})", self.name);
        }
        format!("cuda ({}; {})", self.name, others.into_iter().collect::<Vec<_>>().join(", "))
    }

    fn memory(&self) -> Option<(usize, usize)> {
        driver::mem_get_info().ok()
    }

    fn raw(&self) -> Option<crate::device::Raw> {
        Some(crate::device::Raw { stream: self.stream as usize, buffers: self.buffers.clone() })
    }

    fn memory_report(&self) -> Option<String> {
        let mut lines = Vec::new();
        let mut before = 0;
        for (stage, reading) in &self.ledger {
            lines.push(format!("  {:>11}  {stage}", mib(reading.saturating_sub(before))));
            before = *reading;
        }
        self.sample();
        let (peak, process_buffers) = self.peak.get();
        let others = process_buffers.saturating_sub(self.allocated);
        lines.push(format!("  {:>11}  other programs' buffers then (evaluation, decoding)", mib(others)));
        lines.push(format!(
            "  {:>11}  the rest at run time (local-memory frames, graphs, \
             other programs' modules and cuBLASLt workspaces)",
            mib(peak.saturating_sub(before).saturating_sub(others))
        ));
        lines.push(format!("  {:>11}  in use at most (the whole GPU's, read at each copy to the host)", mib(peak)));
        if let Some((bytes, kernel)) = self.largest_frame() {
            lines.push(format!("  largest local frame: {bytes} bytes a thread ({kernel})"));
        }
        Some(lines.join("\n"))
    }

    fn alloc(&mut self, bytes: usize) -> Result<BufferId, DeviceError> {
        // SAFETY: a fresh allocation of at least one byte, zeroed before use.
        let pointer = unsafe { driver::malloc_sync(bytes.max(1)) }.map_err(|_| {
            let available = self.memory().map_or(0, |(free, _)| free);
            DeviceError::OutOfMemory { needed: bytes, available }
        })?;
        unsafe { driver::memset_d8_sync(pointer, 0, bytes.max(1)) }.map_err(error("zero"))?;
        self.buffers.push((pointer, bytes.max(1)));
        self.allocated += bytes.max(1);
        ALLOCATED.fetch_add(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
        self.note("the program's buffers (its planned stores)");
        Ok(BufferId(self.buffers.len() - 1))
    }

    fn write(&mut self, to: &View, bytes: &[u8]) {
        assert_eq!(bytes.len(), to.bytes(), "a write fills its view");
        // SAFETY: the view lies in its buffer (the program verifier checked it).
        unsafe { driver::memcpy_htod_sync(self.address(to), bytes) }.expect("CUDA copy to the device");
    }

    fn read(&self, from: &View, into: &mut [u8]) {
        assert_eq!(into.len(), from.bytes(), "a read fills its bytes");
        // SAFETY: our stream; then as for write.
        unsafe { driver::stream::synchronize(self.stream) }.expect("CUDA stream");
        self.sample();
        unsafe { driver::memcpy_dtoh_sync(into, self.address(from)) }.expect("CUDA copy from the device");
    }

    fn zero(&mut self, view: &View) {
        // SAFETY: as for write.
        unsafe { driver::memset_d8_async(self.address(view), 0, view.bytes(), self.stream) }.expect("CUDA memset");
    }

    fn copy(&mut self, from: &View, to: &View) {
        assert_eq!(from.bytes(), to.bytes(), "a copy fills its view");
        // SAFETY: both views lie in live device memory.
        unsafe { driver::memcpy_dtod_async(self.address(to), self.address(from), from.bytes(), self.stream) }
            .expect("CUDA copy on the device");
    }

    fn begin_recording(&mut self) -> bool {
        if self.record {
            // Thread-local: another thread's CUDA calls (a sweep's other runs) do not
            // invalidate the capture.
            let mode = cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
            // SAFETY: our stream, not capturing.
            unsafe { driver::stream::begin_capture(self.stream, mode) }.expect("CUDA graph capture");
        }
        self.record
    }

    fn end_recording(&mut self) -> usize {
        // SAFETY: our stream, capturing since `begin_recording`; the graph is destroyed
        // once instantiated (the executable graph is independent of it).
        let graph = unsafe { driver::stream::end_capture(self.stream) }
            .unwrap_or_else(|e| panic!("CUDA graph capture failed ({e:?}); HYB_GPU_GRAPHS=off runs without graphs"));
        let flags = cudarc::driver::sys::CUgraphInstantiate_flags(0);
        let exec = unsafe { driver::graph::instantiate(graph, flags) }.expect("CUDA graph instantiation");
        unsafe { driver::graph::destroy(graph) }.expect("CUDA graph");
        self.graphs.push(exec);
        self.graphs.len() - 1
    }

    fn replay(&mut self, recording: usize) {
        // SAFETY: a graph this device instantiated, launched on its stream.
        unsafe { driver::graph::launch(self.graphs[recording], self.stream) }.expect("CUDA graph launch");
    }

    fn load(&mut self, modules: &[Module]) -> Result<(), DeviceError> {
        for module in &modules[self.modules.len().min(modules.len())..] {
            let ptx = CString::new(module.object.as_str()).map_err(|_| DeviceError::Load("PTX with a NUL".into()))?;
            // SAFETY: a NUL-terminated PTX image.
            let loaded = unsafe { driver::module::load_data(ptx.as_ptr().cast()) }.map_err(error(&module.name))?;
            let name = CString::new(module.name.as_str()).expect("kernel names have no NUL");
            // SAFETY: a module just loaded; the name is NUL-terminated.
            let function = unsafe { driver::module::get_function(loaded, name) }.map_err(error(&module.name))?;
            self.modules.push(loaded);
            self.functions.push(function);
            self.keys.push((module.key.clone(), module.form));
            self.names.push(module.name.clone());
        }
        self.note("the kernels' modules");
        Ok(())
    }

    fn launch(&mut self, kernel: usize, space: usize, args: &[View]) {
        let (key, form) = &self.keys[kernel];
        let launch = hyb_kernels::gpu::launch(key, *form, args.len());
        // The blocks form runs a call that adds into a shared argument as one block over
        // whole views; the lanes form splits it and adds atomically.
        let split = launch != Launch::Blocks || !args.iter().any(|a| a.share == Share::Sum);
        let points = if split { hyb_kernels::gpu::points(key, launch, space) } else { 1 };
        let dims: Vec<&[usize]> = args.iter().map(|arg| arg.dims.as_slice()).collect();
        let (grid, block) = hyb_kernels::gpu::shape(launch, points, &dims, self.multiprocessors);
        let mut words = parameters(self, args, points, split);
        let mut pointers: Vec<*mut c_void> = words.iter_mut().map(|w| (w as *mut u64).cast()).collect();
        // SAFETY: the parameters match the kernel's signature (one descriptor and flag per
        // argument, each word 8 bytes); every view lies in live device memory.
        unsafe { driver::launch_kernel(self.functions[kernel], grid, block, 0, self.stream, &mut pointers) }
            .expect("CUDA launch");
    }

    fn gemm(&mut self, op: &Gemm) {
        gemm::gemm(self, op);
    }

    fn synchronize(&mut self) {
        // SAFETY: our stream.
        unsafe { driver::stream::synchronize(self.stream) }.expect("CUDA synchronize");
        driver::ctx::synchronize().expect("CUDA synchronize");
    }
}
