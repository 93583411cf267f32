//! Lowering: from the graph IR to the kernels that run it.
//!
//! Each graph op with a kernel of its own — the recurrence `mix.scan`, `mix.attention`,
//! `pos.rope` — becomes a kernel spec and its generated MLIR (forward for training,
//! with checkpoints, and backward); identical specs share one kernel. `--emit mlir`
//! prints them and `--emit passes` the pass pipeline that lowers them to LLVM.
//! [`fuse`] groups elementwise chains into kernels; [`program`] (with `backward.rs`)
//! builds the whole training step as instructions over planned buffers, for the
//! runtime to execute.
//!
//! **Architecture Invariant:** this is the only crate that sees both the graph IR and the
//! kernel generators; the compiler stays free of MLIR, the kernels free of `.hyb`.

mod backward;
mod forward;
pub mod fuse;
pub mod program;

use hyb_compiler::graph::{Graph, Op, ScanAttrs, ScanDecay};
use hyb_kernels::attention::{self, AttentionSpec};
use hyb_kernels::scan::{self, Decay, ScanSpec, ScanUpdate};

/// Tokens between the states the training forward saves for the backward (fla's chunk).
pub const CHECKPOINT_INTERVAL: u64 = 64;

/// The pass pipelines, as `--emit passes` prints them.
pub fn passes() -> String {
    format!("cpu: {}\n", hyb_kernels::jit::CPU_PIPELINE)
}

/// One generated kernel module and the layers that use it.
pub struct Kernel {
    pub name: String,
    pub layers: Vec<usize>,
    pub mlir: String,
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
    }
}

/// The kernels of a graph, in order of first use, each spec once.
pub fn kernels(graph: &Graph) -> Vec<Kernel> {
    let mut kernels: Vec<(String, Kernel)> = Vec::new();
    let mut add = |key: String, layer: Option<usize>, make: &dyn Fn(&str) -> String, kind: &str| {
        if let Some((_, kernel)) = kernels.iter_mut().find(|(k, _)| *k == key) {
            kernel.layers.extend(layer.filter(|l| !kernel.layers.contains(l)));
            return;
        }
        let name = format!("{kind}{}", kernels.iter().filter(|(_, k)| k.name.starts_with(kind)).count());
        kernels.push((key, Kernel { name: name.clone(), layers: layer.into_iter().collect(), mlir: make(&name) }));
    };
    for node in graph.nodes.values() {
        match &node.op {
            Op::Scan(attrs) => {
                let spec = scan_spec(attrs);
                add(
                    format!("{spec:?}"),
                    node.layer,
                    &|name| {
                        let forward = scan::forward_train(&spec, &format!("{name}_fwd"), CHECKPOINT_INTERVAL);
                        let backward = scan::backward(&spec, &format!("{name}_bwd"), CHECKPOINT_INTERVAL);
                        format!("{forward}{backward}")
                    },
                    "scan",
                );
            }
            Op::Attention { heads, kv_heads, window, scale, .. } => {
                let spec = AttentionSpec { group: heads / kv_heads, window: *window, scale: *scale };
                add(
                    format!("{spec:?}"),
                    node.layer,
                    &|name| {
                        let forward = attention::forward(&spec, &format!("{name}_fwd"));
                        let backward = attention::backward(&spec, &format!("{name}_bwd"));
                        format!("{forward}{backward}")
                    },
                    "attention",
                );
            }
            Op::Rope { theta, .. } => {
                add(
                    format!("rope {theta}"),
                    node.layer,
                    &|name| {
                        let forward = attention::rope(*theta, &format!("{name}_fwd"), false);
                        let backward = attention::rope(*theta, &format!("{name}_bwd"), true);
                        format!("{forward}{backward}")
                    },
                    "rope",
                );
            }
            _ => {}
        }
    }
    kernels.into_iter().map(|(_, kernel)| kernel).collect()
}

/// `--emit mlir`: every kernel module with a header naming it and its layers.
pub fn emit_mlir(graph: &Graph) -> String {
    let mut out = String::new();
    for kernel in kernels(graph) {
        let layers: Vec<String> = kernel.layers.iter().map(|l| l.to_string()).collect();
        out.push_str(&format!("// kernel {} (layers {})\n", kernel.name, layers.join(", ")));
        out.push_str(&kernel.mlir);
        out.push('\n');
    }
    out
}
