//! The CPU JIT: MLIR text → a pass pipeline (written as text, `--emit passes`) → LLVM
//! → MLIR's ExecutionEngine, and calls into the compiled functions with memrefs.
//!
//! Every kernel function carries `llvm.emit_c_interface`; the engine's packed wrapper
//! of `_mlir_ciface_NAME` takes one pointer per argument, each to a pointer to a
//! `#[repr(C)]` memref descriptor ([`MemRef`]).

use melior::dialect::DialectRegistry;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};
use melior::{Context, ExecutionEngine};

/// The lowering from the kernels' dialects (func, scf, arith, math, memref) to LLVM.
pub const CPU_PIPELINE: &str =
    "builtin.module(convert-scf-to-cf,convert-math-to-llvm,convert-to-llvm,reconcile-unrealized-casts)";

#[derive(Debug)]
pub enum JitError {
    Parse(String),
    Pipeline(String),
    Invoke(String),
}

impl std::fmt::Display for JitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JitError::Parse(m) => write!(f, "the generated MLIR does not parse: {m}"),
            JitError::Pipeline(m) => write!(f, "lowering failed: {m}"),
            JitError::Invoke(m) => write!(f, "calling the kernel failed: {m}"),
        }
    }
}

impl std::error::Error for JitError {}

/// A compiled module, ready to call.
pub struct Compiled {
    // Field order matters: the engine must drop before the context it was built in.
    engine: ExecutionEngine,
    _context: Context,
}

// SAFETY: an MLIR context and the engine built in it are not tied to the thread that made
// them; a `Compiled` is only ever used by one thread at a time (its entry points, plain
// function pointers, are what threads share). This lets modules compile in parallel.
unsafe impl Send for Compiled {}

fn context() -> Context {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    // One kernel per context, contexts compiled in parallel by the caller: no thread
    // pool of MLIR's own per context.
    let context = Context::new_with_registry(&registry, false);
    register_all_llvm_translations(&context);
    context
}

/// Parses, lowers and JIT-compiles a module at LLVM optimisation level 2 (level 3
/// compiled slower and ran no faster on the training step: runtime/benches/README.md).
pub fn compile(mlir: &str) -> Result<Compiled, JitError> {
    static PASSES: std::sync::Once = std::sync::Once::new();
    PASSES.call_once(register_all_passes);
    let context = context();
    let mut module = Module::parse(&context, mlir).ok_or_else(|| JitError::Parse(first_lines(mlir)))?;
    let manager = PassManager::new(&context);
    parse_pass_pipeline(manager.as_operation_pass_manager(), CPU_PIPELINE)
        .map_err(|e| JitError::Pipeline(e.to_string()))?;
    manager.run(&mut module).map_err(|e| JitError::Pipeline(e.to_string()))?;
    let engine = ExecutionEngine::new(&module, 2, &[], false, false);
    Ok(Compiled { engine, _context: context })
}

fn first_lines(text: &str) -> String {
    text.lines().take(5).collect::<Vec<_>>().join("\n")
}

impl Compiled {
    /// Calls `name` with memref arguments.
    ///
    /// # Safety
    /// The descriptors must describe live buffers of the shapes the kernel expects.
    pub unsafe fn call(&self, name: &str, memrefs: &mut [&mut dyn AsDescriptor]) -> Result<(), JitError> {
        let entry = self.entry(name)?;
        let mut pointers: Vec<*mut ()> = memrefs.iter_mut().map(|m| m.descriptor_ptr()).collect();
        // SAFETY: the caller guarantees the descriptors.
        unsafe { entry.call(&mut pointers) };
        Ok(())
    }
}

/// A ranked memref descriptor, as MLIR's C interface lays it out.
#[repr(C)]
pub struct Descriptor<const N: usize, T> {
    allocated: *mut T,
    aligned: *mut T,
    offset: i64,
    sizes: [i64; N],
    strides: [i64; N],
}

/// A dense row-major tensor (f32 unless said otherwise; token ids are i32) that can be
/// passed to a kernel.
pub struct MemRef<const N: usize, T = f32> {
    pub data: Vec<T>,
    pub shape: [usize; N],
    descriptor: Descriptor<N, T>,
}

impl<const N: usize, T> MemRef<N, T> {
    fn with_data(shape: [usize; N], data: Vec<T>) -> MemRef<N, T> {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "data does not fill the shape");
        let mut strides = [0i64; N];
        let mut stride = 1i64;
        for axis in (0..N).rev() {
            strides[axis] = stride;
            stride *= shape[axis] as i64;
        }
        let descriptor = Descriptor {
            allocated: std::ptr::null_mut(),
            aligned: std::ptr::null_mut(),
            offset: 0,
            sizes: shape.map(|s| s as i64),
            strides,
        };
        MemRef { data, shape, descriptor }
    }
}

impl<const N: usize> MemRef<N> {
    pub fn new(shape: [usize; N], data: Vec<f32>) -> MemRef<N> {
        MemRef::with_data(shape, data)
    }

    pub fn zeros(shape: [usize; N]) -> MemRef<N> {
        MemRef::new(shape, vec![0.0; shape.iter().product()])
    }

    pub fn at(&self, index: [usize; N]) -> f32 {
        let flat = index.iter().zip(&self.shape).fold(0, |flat, (i, size)| flat * size + i);
        self.data[flat]
    }
}

impl<const N: usize> MemRef<N, i32> {
    /// Token ids.
    pub fn ints(shape: [usize; N], data: Vec<i32>) -> MemRef<N, i32> {
        MemRef::with_data(shape, data)
    }
}

pub trait AsDescriptor {
    /// A pointer to a descriptor that points at the current data.
    fn descriptor_ptr(&mut self) -> *mut ();
}

impl<const N: usize, T> AsDescriptor for MemRef<N, T> {
    fn descriptor_ptr(&mut self) -> *mut () {
        let pointer = self.data.as_mut_ptr();
        self.descriptor.allocated = pointer;
        self.descriptor.aligned = pointer;
        &mut self.descriptor as *mut Descriptor<N, T> as *mut ()
    }
}

/// A compiled function's packed entry point (`void(void**)`), callable from any thread.
#[derive(Clone, Copy, Debug)]
pub struct Entry(unsafe extern "C" fn(*mut *mut ()));

impl Compiled {
    /// The packed entry of function `name`, looked up once.
    pub fn entry(&self, name: &str) -> Result<Entry, JitError> {
        let symbol = self.engine.lookup(&format!("_mlir__mlir_ciface_{name}"));
        if symbol.is_null() {
            return Err(JitError::Invoke(format!("no compiled function `{name}`")));
        }
        // SAFETY: the engine's packed wrappers all have the signature `void(void**)`.
        Ok(Entry(unsafe { std::mem::transmute::<*mut (), unsafe extern "C" fn(*mut *mut ())>(symbol) }))
    }
}

impl Entry {
    /// Calls the function with one descriptor pointer per argument.
    ///
    /// # Safety
    /// Each pointer must point to a live descriptor of the rank and element type the
    /// function expects, describing memory it may read and write.
    pub unsafe fn call(&self, descriptors: &mut [*mut ()]) {
        let mut slots: Vec<*mut ()> = descriptors.iter_mut().map(|p| p as *mut *mut () as *mut ()).collect();
        // SAFETY: the caller guarantees the descriptors; each slot points to a pointer to one.
        unsafe { (self.0)(slots.as_mut_ptr()) }
    }
}

/// A dense row-major descriptor of any rank over memory the caller owns: the words
/// `[allocated, aligned, offset, sizes…, strides…]` of MLIR's C layout.
pub struct RawDescriptor {
    words: Vec<i64>,
}

impl RawDescriptor {
    pub fn new<T>(pointer: *mut T, dims: &[usize]) -> RawDescriptor {
        let mut words = vec![pointer as i64, pointer as i64, 0];
        words.extend(dims.iter().map(|d| *d as i64));
        let mut strides = vec![0i64; dims.len()];
        let mut stride = 1i64;
        for axis in (0..dims.len()).rev() {
            strides[axis] = stride;
            stride *= dims[axis] as i64;
        }
        words.extend(strides);
        RawDescriptor { words }
    }

    pub fn as_ptr(&mut self) -> *mut () {
        self.words.as_mut_ptr() as *mut ()
    }
}
