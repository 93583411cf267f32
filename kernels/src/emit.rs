//! Writing MLIR text for kernels. [`Builder`] is the typed emitter every generator is
//! written with: each [`Value`] carries its MLIR type, so the ops take their types from
//! their operands and a caller spells a type only as a cast's target, a constant's type
//! or a buffer's element type. It names SSA values, indents, and writes loops with and
//! without loop-carried values, `scf.if`, reductions, and the kernel function around them.
//!
//! A generator runs under a [`Config`]: the element types of its tensors ([`ElemTypes`]:
//! a load extends the storage type to the compute type, a store truncates back),
//! [`Flags`] for the choices the kernel's arithmetic does not depend on (fast-math flags,
//! how `exp` is computed, how the special functions are written: [`MathImpl`]), the
//! [`Layout`] of the function's memref arguments, and whether the function comes in a
//! module of its own ([`Wrap`]). [`Config::CPU`], what every public generator uses, is
//! f32 throughout, `reassoc` and `contract` on adds, subtractions and products, the
//! polynomial `exp`, which vectorises, the math dialect, dense arguments and a module.
//! [`Config::gpu`] is the GPU form's: f32 arithmetic on tensors of a storage type,
//! special functions as inline PTX (no libdevice), strided arguments, a bare function;
//! its threads add into shared sums atomically ([`Parallel`]).

mod builder;
mod control;
mod ops;
mod types;

pub use builder::{Builder, LANE_LOCAL_MAX, LaneGrid};
pub use ops::Cmp;
pub use types::{
    BLOCK_THREADS, Config, ElemTypes, ExpImpl, FastMath, Flags, Layout, MathImpl, Parallel, ProcessSwitch, Scalar, Ty,
    Value, Wrap, block_threads, block_threads_switch,
};
