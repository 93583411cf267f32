//! The types a kernel's values carry ([`Scalar`], [`Ty`], [`Value`]) and the
//! configuration a generator runs under ([`Config`]: element types, flags, the layout of
//! the function's memref arguments and whether the function comes wrapped in a module).

use std::fmt;

/// The scalar types the kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    F32,
    Bf16,
    I1,
    I32,
    I64,
    Index,
}

impl Scalar {
    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::Bf16)
    }

    /// The type as MLIR spells it.
    pub fn mlir(self) -> &'static str {
        match self {
            Scalar::F32 => "f32",
            Scalar::Bf16 => "bf16",
            Scalar::I1 => "i1",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::Index => "index",
        }
    }
}

/// A value's type: a scalar, or a dynamically shaped memref of a rank, an element type
/// and a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Scalar(Scalar),
    MemRef { rank: usize, elem: Scalar, layout: Layout },
}

impl Ty {
    /// A dense row-major memref (the identity layout).
    pub fn memref(rank: usize, elem: Scalar) -> Ty {
        Ty::MemRef { rank, elem, layout: Layout::Identity }
    }

    /// The same type with the given layout if it is a memref; a scalar is unchanged.
    pub fn with_layout(self, layout: Layout) -> Ty {
        match self {
            Ty::MemRef { rank, elem, .. } => Ty::MemRef { rank, elem, layout },
            scalar => scalar,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Scalar(scalar) => f.write_str(scalar.mlir()),
            Ty::MemRef { rank, elem, layout: Layout::Identity } => {
                write!(f, "memref<{}{}>", "?x".repeat(*rank), elem.mlir())
            }
            Ty::MemRef { rank, elem, layout: Layout::Strided } => {
                let strides = vec!["?"; *rank].join(", ");
                write!(f, "memref<{}{}, strided<[{strides}], offset: ?>>", "?x".repeat(*rank), elem.mlir())
            }
            Ty::MemRef { rank, elem, layout: Layout::Workgroup } => {
                write!(f, "memref<{}{}, #gpu.address_space<workgroup>>", "?x".repeat(*rank), elem.mlir())
            }
            Ty::MemRef { rank, elem, layout: Layout::Rows } => {
                let mut strides = vec!["?"; rank.saturating_sub(1)];
                strides.push("1");
                let strides = strides.join(", ");
                write!(f, "memref<{}{}, strided<[{strides}], offset: ?>>", "?x".repeat(*rank), elem.mlir())
            }
        }
    }
}

/// The layout of a memref: how its indices map to the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Dense, row-major, from offset 0: `memref<?x?xf32>`.
    Identity,
    /// Any strides and offset, all dynamic: `memref<?x?xf32, strided<[?, ?], offset: ?>>`
    /// — what a `memref.subview` of a dense buffer gives after a `memref.cast`.
    Strided,
    /// Dynamic strides and offset but a unit innermost stride (rows contiguous):
    /// `memref<?x?xf32, strided<[?, 1], offset: ?>>` — the GPU's arguments, views of
    /// dense buffers. Each channel's address is then the row's plus a constant.
    Rows,
    /// Dense, in a GPU block's shared memory: `memref<?x?xf32, #gpu.address_space<workgroup>>`,
    /// a tile of the chunked form ([`Builder::tile`](super::Builder::tile)).
    Workgroup,
}

/// An SSA value and its type. Values are made by a [`Builder`](super::Builder) and only
/// mean something inside the function it is writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    name: String,
    ty: Ty,
}

impl Value {
    pub(super) fn new(name: impl Into<String>, ty: Ty) -> Value {
        Value { name: name.into(), ty }
    }

    /// The SSA name, with its `%`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ty(&self) -> Ty {
        self.ty
    }

    /// The scalar type; a memref here is a generator bug.
    pub fn scalar(&self) -> Scalar {
        match self.ty {
            Ty::Scalar(scalar) => scalar,
            Ty::MemRef { .. } => panic!("{} is a memref, not a scalar", self.name),
        }
    }

    /// The element type and rank of a memref; a scalar here is a generator bug.
    pub fn memref(&self) -> (Scalar, usize) {
        match self.ty {
            Ty::MemRef { rank, elem, .. } => (elem, rank),
            Ty::Scalar(_) => panic!("{} is a scalar, not a memref", self.name),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The element types of a kernel: tensors are stored as `storage` and computed on as
/// `compute`. A load of a float tensor extends to `compute`; a store truncates back.
/// Scratch buffers a kernel allocates hold `compute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ElemTypes {
    pub storage: Scalar,
    pub compute: Scalar,
}

impl ElemTypes {
    pub const F32: ElemTypes = ElemTypes { storage: Scalar::F32, compute: Scalar::F32 };
    /// bf16 tensors, f32 arithmetic.
    pub const BF16_STORAGE: ElemTypes = ElemTypes { storage: Scalar::Bf16, compute: Scalar::F32 };
}

/// Which fast-math flags float adds, subtractions and products carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FastMath {
    /// No flags: IEEE semantics, operation by operation.
    Strict,
    /// `fastmath<reassoc,contract>`: LLVM may vectorise reductions and fuse multiply-adds.
    /// Never `nnan` or `ninf`: NaNs must propagate and a maximum's fold starts at −∞.
    ReassocContract,
}

/// How `exp` is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpImpl {
    /// A range reduction and a polynomial in plain arithmetic
    /// ([`Builder::exp`](super::Builder::exp)), which LLVM vectorises on the CPU (libm's
    /// `expf`, what `math.exp` becomes there, is a scalar call). f32 values only; other
    /// types fall back to `math.exp`.
    Polynomial,
    /// The target's own `exp`, as [`Flags::math`] writes it: `math.exp` under
    /// [`MathImpl::Cpu`], `ex2.approx(x · log₂e)` under [`MathImpl::Ptx`].
    MathDialect,
}

/// How the transcendental and special functions (`exp` as [`ExpImpl::MathDialect`],
/// `log`, `log1p`, `sqrt`, `rsqrt`, `tanh`, `abs`, `floor`, `sin`, `cos`, `fma`) are
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathImpl {
    /// The math dialect's ops (`math.log`, ...), which the CPU pipeline lowers to LLVM
    /// intrinsics and libm.
    Cpu,
    /// NVVM inline PTX (`nvvm.inline_ptx "lg2.approx.ftz.f32 $0, $1;" ...`): MLIR's NVVM
    /// lowering turns every math op (and LLVM intrinsic: even `fabs`, `floor`, `fma`)
    /// into a libdevice call (`__nv_logf`), which nothing links. `exp` is
    /// `ex2.approx(x · log₂e)`, `log` is `lg2.approx · ln 2`, `sqrt` is `sqrt.rn` (IEEE),
    /// `rsqrt` is `rsqrt.approx`, `sin` and `cos` are the `.approx` instructions on the
    /// angle reduced to `[−π, π]`, `floor` is `cvt.rmi`, `abs` is `abs.f32`, `fma` is
    /// `fma.rn`; `log1p` and `tanh` switch to a series near 0 (see their methods). NaN
    /// propagates through every one; subnormals flush to zero (`.ftz`), as on the CPU.
    Ptx,
}

/// The choices a kernel's arithmetic does not depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flags {
    pub fastmath: FastMath,
    pub exp: ExpImpl,
    pub math: MathImpl,
}

/// What the generated text is: a module to compile on its own, or one function to paste
/// into another module (a GPU wrapper's `gpu.module`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wrap {
    /// `module { func.func @name(...) attributes {llvm.emit_c_interface} { ... } }`.
    Module,
    /// `func.func @name(...) { ... }` alone, with no attributes.
    Bare,
}

/// How a launch's work is divided, which decides how shared outputs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parallel {
    /// The CPU's: each part of a call runs the function on its own rows and adds into
    /// its own copy of every `sum` argument (the backend adds the copies).
    Parts,
    /// The GPU's `blocks` form: one thread per point walks all of it; `sum` arguments
    /// are added into atomically (a call with one runs as one block, so nothing races).
    Blocks,
    /// A GPU's: every thread of the launch runs the function, all of them adding into
    /// the one copy of a `sum` argument (atomic adds); a generator with a lane form
    /// (the scan) also divides a point's work over the threads of `gpu.block_id y` ×
    /// `gpu.thread_id x`.
    Threads,
    /// The GPU form's code run one lane per call on the CPU, the lane read from a last
    /// argument `%lane_id: memref<1xi32>` (tests of the lane forms without a GPU): no
    /// warps, and the calls run one after another, so shared sums are plain adds.
    OneLane,
    /// A GPU's chunked form: the [`BLOCK_THREADS`] threads of a block work on one
    /// (point, block row) together, in phases ([`Builder::for_threads`](super::Builder::for_threads))
    /// that hand data on through shared-memory tiles ([`Builder::tile`](super::Builder::tile))
    /// and end in a barrier; `sum` arguments are added into atomically.
    Block,
    /// The chunked form's code on the CPU in one call: every block row in turn, each
    /// phase's items one after another — last first when `reversed` — tiles on the
    /// stack, filled with NaN before each chunk, no barriers (the kernel tests of the
    /// chunked form without a GPU: a phase whose items read one another's results, or
    /// an entry no phase wrote, gives NaN or a different answer in one of the two
    /// orders, as a GPU's threads would).
    Phases { reversed: bool },
}

/// Threads in a block of the chunked form ([`Parallel::Block`]), unless
/// `HYB_CHUNKED_THREADS` says otherwise ([`block_threads`]).
pub const BLOCK_THREADS: u64 = 128;

/// The threads of a chunked form's block: [`BLOCK_THREADS`], or the measurement switch
/// `HYB_CHUNKED_THREADS` (64, 128, 256 or 512: at the study's shape a launch has about
/// one block a multiprocessor, so the block's threads are all the warps it gets). Read
/// once a process ([`ProcessSwitch`]), as the kernel's phases (at codegen) and its launch
/// (each call) must take the same count.
pub fn block_threads() -> u64 {
    THREADS.value()
}

/// `HYB_CHUNKED_THREADS` checked ([`ProcessSwitch::check`]).
pub fn block_threads_switch() -> Result<Option<u64>, String> {
    THREADS.check()
}

static THREADS: ProcessSwitch = ProcessSwitch::new(
    "HYB_CHUNKED_THREADS",
    BLOCK_THREADS,
    |n| matches!(n, 64 | 128 | 256 | 512),
    "64, 128, 256 or 512 threads a block",
);

/// A measurement switch that codegen and the launch both read: taken from the
/// environment once a process (so a launch reads no environment, and the count a kernel
/// was written for is the count it is launched with); `check` refuses a malformed value,
/// and a value other than the one already taken, never ignores either.
pub struct ProcessSwitch {
    name: &'static str,
    default: u64,
    accepts: fn(u64) -> bool,
    expected: &'static str,
    taken: std::sync::OnceLock<u64>,
}

impl ProcessSwitch {
    /// The switch `name`, `default` when unset; a count `accepts` refuses, or text that
    /// is no count, is an error saying it `expected` this.
    pub const fn new(name: &'static str, default: u64, accepts: fn(u64) -> bool, expected: &'static str) -> Self {
        ProcessSwitch { name, default, accepts, expected, taken: std::sync::OnceLock::new() }
    }

    /// The value this process takes (read on first use).
    pub fn value(&self) -> u64 {
        // A malformed switch never gets here: `hyb_driver::codegen` refuses it first.
        *self.taken.get_or_init(|| self.read().ok().flatten().unwrap_or(self.default))
    }

    /// The switch as the environment holds it now: none when unset.
    fn read(&self) -> Result<Option<u64>, String> {
        let Ok(text) = std::env::var(self.name) else { return Ok(None) };
        match text.trim().parse::<u64>() {
            Ok(n) if (self.accepts)(n) => Ok(Some(n)),
            _ => Err(format!("{}=`{text}`: expected {}", self.name, self.expected)),
        }
    }

    /// The environment's value now, an error where it is malformed or differs from the
    /// value this process already took.
    pub fn check(&self) -> Result<Option<u64>, String> {
        let asked = self.read()?;
        match self.taken.get() {
            Some(&taken) if asked.unwrap_or(self.default) != taken => {
                Err(format!("{} changed after this process's kernels took {taken}: start a new process", self.name))
            }
            _ => Ok(asked),
        }
    }
}

/// Everything a generator is parameterised by besides its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    pub types: ElemTypes,
    pub flags: Flags,
    /// The layout of every memref argument of the generated function (and so of every
    /// load, store and dim on one). Buffers the kernel allocates are dense either way.
    pub layout: Layout,
    pub wrap: Wrap,
    pub parallel: Parallel,
    /// The float arguments stored as bf16 whatever `types.storage` says: bit `i` for the
    /// function's argument `i` (mixed-precision kernels: bf16 activations beside f32
    /// parameters, gradients and states). Loads extend to `types.compute`, stores
    /// truncate, as for any storage type.
    pub bf16_args: u64,
}

impl Parallel {
    /// Whether a generator with a lane form divides a point's work over lanes.
    pub fn has_lanes(self) -> bool {
        matches!(self, Parallel::Threads | Parallel::OneLane)
    }

    /// Whether a generator with a chunked form writes it: blocks of threads working
    /// together, on a GPU or with their phases run in turn on the CPU.
    pub fn is_block(self) -> bool {
        matches!(self, Parallel::Block | Parallel::Phases { .. })
    }

    /// Whether this code runs as GPU threads (thread indices, warps, atomics).
    pub fn on_gpu_threads(self) -> bool {
        matches!(self, Parallel::Threads | Parallel::Block)
    }
}

impl Config {
    /// The CPU JIT's configuration: f32 throughout, `reassoc` and `contract`, the
    /// polynomial `exp`, the math dialect, dense arguments, a module of its own.
    pub const CPU: Config = Config {
        types: ElemTypes::F32,
        flags: Flags { fastmath: FastMath::ReassocContract, exp: ExpImpl::Polynomial, math: MathImpl::Cpu },
        layout: Layout::Identity,
        wrap: Wrap::Module,
        parallel: Parallel::Parts,
        bf16_args: 0,
    };

    /// The GPU form's configuration: tensors stored as `storage`, computed in f32,
    /// `reassoc` and `contract`, `exp` as `ex2.approx`, every special function as
    /// inline PTX (no libdevice), arguments of any outer strides and offset with
    /// contiguous rows (the wrapper passes row ranges of dense buffers: [`Layout::Rows`]),
    /// and a bare `func.func` for the wrapper's `gpu.module`.
    pub const fn gpu(storage: Scalar) -> Config {
        Config::gpu_form(storage, Parallel::Threads)
    }

    /// [`Config::gpu`] with the GPU form's division of work: [`Parallel::Blocks`] or
    /// [`Parallel::Threads`].
    pub const fn gpu_form(storage: Scalar, parallel: Parallel) -> Config {
        Config {
            types: ElemTypes { storage, compute: Scalar::F32 },
            flags: Flags { fastmath: FastMath::ReassocContract, exp: ExpImpl::MathDialect, math: MathImpl::Ptx },
            layout: Layout::Rows,
            wrap: Wrap::Bare,
            parallel,
            bf16_args: 0,
        }
    }

    /// The same configuration with the arguments at `positions` stored as bf16.
    pub fn with_bf16_args(self, positions: impl IntoIterator<Item = usize>) -> Config {
        let bf16_args = positions.into_iter().fold(0u64, |mask, i| {
            assert!(i < 64, "a kernel of at most 64 arguments");
            mask | 1 << i
        });
        Config { bf16_args, ..self }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::CPU
    }
}
