//! Writing MLIR text for kernels. [`Builder`] is the typed emitter every generator is
//! written with: each [`Value`] carries its MLIR type, so the ops take their types from
//! their operands and a caller spells a type only as a cast's target, a constant's type
//! or a buffer's element type. It names SSA values, indents, and writes loops with and
//! without loop-carried values, `scf.if`, reductions, and the kernel function around them.
//!
//! A generator runs under a [`Config`]: the element types of its tensors ([`ElemTypes`]:
//! a load extends the storage type to the compute type, a store truncates back) and
//! [`Flags`] for the choices the kernel's arithmetic does not depend on (fast-math flags,
//! how `exp` is computed). [`Config::CPU`], what every public generator uses, is f32
//! throughout, `reassoc` and `contract` on adds, subtractions and products, and the
//! polynomial `exp`, which vectorises.
//!
//! [`Emitter`] is the earlier untyped emitter (MLIR pasted as strings); `embed`, `loss`
//! and `copy` are still written with it.

mod builder;
mod control;
mod legacy;
mod ops;
mod types;

pub use builder::Builder;
pub use legacy::{Emitter, T3, accumulate, f32_constant, max_and_sum_exp};
pub use ops::Cmp;
pub use types::{Config, ElemTypes, ExpImpl, FastMath, Flags, Scalar, Ty, Value};
