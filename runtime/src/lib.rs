//! The hyb runtime: executes a compiled artifact.
//!
//! It will own, in order of arrival:
//! - the device trait (buffers, copies, module load, launch, sync — no per-op methods);
//! - the CPU backend, the embedded default: kernels JIT-compiled by MLIR's
//!   ExecutionEngine or loaded from an object, GEMMs from a CPU GEMM crate, parallel
//!   over batch × heads;
//! - the CUDA backend (cudarc: PTX modules, cuBLAS, one CUDA graph per training step);
//! - on top: data loaders, tokenizers, the trainer, checkpoints and eval tasks.
//!
//! **Architecture Invariant:** the runtime never links LLVM/MLIR's compiler libraries
//! for the GPU path; a small runtime binary runs an artifact compiled elsewhere.
//!
//! Nothing is implemented yet: the front end (issue 3) comes first.
