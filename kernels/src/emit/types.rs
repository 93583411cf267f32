//! The types a kernel's values carry ([`Scalar`], [`Ty`], [`Value`]) and the
//! configuration a generator runs under ([`Config`]: element types and flags).

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

/// A value's type: a scalar, or a dynamically shaped memref of a rank and element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Scalar(Scalar),
    MemRef { rank: usize, elem: Scalar },
}

impl Ty {
    pub fn memref(rank: usize, elem: Scalar) -> Ty {
        Ty::MemRef { rank, elem }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Scalar(scalar) => f.write_str(scalar.mlir()),
            Ty::MemRef { rank, elem } => write!(f, "memref<{}{}>", "?x".repeat(*rank), elem.mlir()),
        }
    }
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
            Ty::MemRef { rank, elem } => (elem, rank),
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
    /// `math.exp`, left to the target's lowering.
    MathDialect,
}

/// The choices a kernel's arithmetic does not depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flags {
    pub fastmath: FastMath,
    pub exp: ExpImpl,
}

/// Everything a generator is parameterised by besides its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    pub types: ElemTypes,
    pub flags: Flags,
}

impl Config {
    /// The CPU JIT's configuration: f32 throughout, `reassoc` and `contract`, and the
    /// polynomial `exp`.
    pub const CPU: Config = Config {
        types: ElemTypes::F32,
        flags: Flags { fastmath: FastMath::ReassocContract, exp: ExpImpl::Polynomial },
    };
}

impl Default for Config {
    fn default() -> Config {
        Config::CPU
    }
}
