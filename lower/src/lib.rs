//! Lowering: from the grad IR to the step program the runtime executes.
//!
//! [`fuse`] groups elementwise chains into kernels (the kernel plan); [`program`] (with
//! `forward.rs` and `backward.rs`) builds a training step — or a decoding step — as
//! instructions over typed buffers, each kernel named by a [`hyb_kernels::key::KernelKey`]
//! and run over an iteration space. The program is target-neutral: codegen (in the
//! driver) turns its keys into modules for a target; `--emit program` prints it and
//! [`verify`] checks it. [`precision`] decides, before the buffer plan, which values a
//! mixed-precision step stores as bf16.
//!
//! **Architecture Invariant:** this is the only crate that sees both the graph IR and the
//! kernels' keys; it generates no MLIR and knows no backend. Nothing here looks at
//! presets — the program is read off the graph's ops.

mod backward;
mod forward;
pub mod fuse;
pub mod precision;
pub mod print;
pub mod program;
pub mod verify;

use hyb_compiler::graph::{ScanAttrs, ScanDecay};
use hyb_kernels::attention::AttentionSpec;
use hyb_kernels::scan::{Decay, ScanSpec, ScanUpdate};

/// The attention kernels' spec of an attention op: query heads per key-value head, its
/// window and scale, and the head dim.
pub fn attention_spec(heads: u64, kv_heads: u64, head_dim: u64, window: Option<u64>, scale: f64) -> AttentionSpec {
    AttentionSpec { group: heads / kv_heads, window, scale, head_dim }
}

pub fn scan_spec(attrs: &ScanAttrs) -> ScanSpec {
    ScanSpec {
        update: if attrs.delta { ScanUpdate::Delta } else { ScanUpdate::Additive },
        decay: match attrs.decay {
            ScanDecay::None => Decay::None,
            ScanDecay::PerHead => Decay::PerHead,
            ScanDecay::Scalar => Decay::Scalar,
            ScanDecay::Vector => Decay::Vector,
        },
        q_per_state: attrs.q_per_state,
        states_per_key: attrs.states_per_key,
        scale: attrs.scale,
        query: attrs.query,
        dk: attrs.head_k_dim,
        dv: attrs.head_v_dim,
    }
}
