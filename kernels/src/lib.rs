//! Kernel generators: each emits MLIR for one op family; [`jit`] lowers MLIR to LLVM
//! and runs it on the CPU.
//!
//! Built so far: [`scan`], the linear-attention family's token recurrence — forward, the
//! forward that saves a state every `chunk` tokens, and the reverse scan that recomputes
//! states from those checkpoints — generated from one description for every point of
//! the family (update additive or delta; decay none, fixed per head, data-dependent per
//! head, per key channel; GQA and GVA head grouping; readout with or without a query,
//! so a vector state such as HGRN's is one 1 × 1 state per channel read without a
//! query). `tests/kernels.rs` checks the forward against a plain f64 recurrence and
//! every gradient against finite differences.
//!
//! [`attention`]: causal softmax attention, forward with an online softmax (no `T × T`
//! matrix) and the backward from the saved log-sum-exp; sliding window; grouped kv
//! heads; and RoPE (rotate-half) whose inverse is its backward. Checked against f64
//! references and finite differences in `tests/kernels/`.
//!
//! [`pointwise`]: fused elementwise chains (any inputs and outputs, one loop, shared
//! subexpressions once; inputs may be broadcast per channel) and their backward by
//! symbolic differentiation — the kernel of every chain of activations, gates, biases
//! and residual arithmetic.
//!
//! [`norms`]: RMSNorm (plain and SiLU-gated, per row of any head grouping), L2 and sum
//! normalisation, forward and backward. [`floor`]: HGRN's layer-wise lower bound (a
//! softmax over the layer axis, summed up to the layer) and its backward.
//!
//! [`conv`] the short causal depthwise convolution, [`embed`] gather and scatter-add,
//! [`loss`] fused next-token cross-entropy (loss and gradient in one pass), [`optim`]
//! AdamW (PyTorch's formulas, per-step scalars in a buffer) and the sum of squares for
//! global-norm clipping.
//!
//! [`emit`]: the typed MLIR emitter the generators are written with. Values carry their
//! types; the element types (storage and compute) and the flags (fast-math, how `exp`
//! is computed) are a [`emit::Config`], [`emit::Config::CPU`] for every public generator.
//!
//! To come (issue 4): tiling of the scan and attention for the cache; the chunked and
//! tensor-core schedules of the same description.
//!
//! **Architecture Invariant:** no per-preset code path. A mixer composed in `.hyb`
//! compiles here with no change to this crate. GEMMs are library calls, not kernels.
//! **Architecture Invariant:** this crate knows nothing of `.hyb` or the model IR; the
//! compiler's lowering maps a `LinearMixer` to a [`scan::ScanSpec`].

pub mod attention;
pub mod conv;
pub mod copy;
pub mod embed;
pub mod emit;
pub mod floor;
pub mod gpu;
pub mod jit;
pub mod key;
pub mod loss;
pub mod norms;
pub mod optim;
pub mod pointwise;
pub mod ptx;
pub mod scan;
