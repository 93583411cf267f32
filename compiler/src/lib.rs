//! The hyb compiler's front half: from `.hyb` text to the model IR and what is read off
//! it. Stages, in pipeline order ([`pipeline`] lists them):
//!
//! 1. [`source`]: the files of a compilation (read as UTF-8 by [`encoding`]) and
//!    diagnostic rendering;
//! 2. [`sema`]: imports, names, presets, schedules, checks → [`ir::Model`];
//! 3. [`ir`]: the model IR, its parameters and its stable text form;
//! 4. [`report`], [`export`]: the cost report and fla / HF / Megatron formats;
//!    [`graph`]: the forward pass of a training step as tensor ops (`--emit graph`);
//!    [`grad`]: its backward by IR-level autodiff, and the optimizer step (`--emit grad`);
//!    [`plan`]: every intermediate in one arena by liveness (`--emit plan`);
//! 5. [`import`]: fla / HF `config.json` back to `.hyb`; [`fmt`]: canonical text.
//!
//! **Architecture Invariant:** nothing here links MLIR, LLVM or CUDA; the front end
//! builds and tests in seconds.

pub mod arena;
pub mod encoding;
pub mod export;
pub mod fmt;
pub mod grad;
pub mod graph;
pub mod import;
pub mod ir;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod sema;
pub mod source;
