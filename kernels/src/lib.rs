//! Kernel generators: each emits MLIR for one op family from the kernel plan.
//!
//! It will own:
//! - the linear-attention family: ONE generator parameterised by the generic mixer
//!   description of `hyb_compiler::ir::LinearMixer` (state vector or matrix, update
//!   additive or delta, gate none / fixed / scalar / per-channel, lower bound, tied
//!   key), producing the token recurrence, its checkpointed reverse scan, and later
//!   the chunked and tensor-core schedules of the same description;
//! - causal softmax attention with RoPE (online softmax, optional window);
//! - norms, activations, short convolution, embedding, fused cross-entropy, AdamW and
//!   fused elementwise chains.
//!
//! **Architecture Invariant:** no per-preset code path. A mixer composed in `.hyb`
//! compiles here with no change to this crate. GEMMs are library calls, not kernels.
//!
//! Nothing is implemented yet: the front end (issue 3) comes first.
