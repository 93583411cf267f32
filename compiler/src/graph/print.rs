//! The graph IR's text (`hybc compile --emit graph`): one line per node,
//! `%n = op(inputs) {attributes} : type`, under a `layerN:` or `model:` line for the
//! layer (or the embedding and head) each node belongs to.

use std::fmt::Write;

use super::*;

fn dims(ty: &TensorType) -> String {
    let dims: Vec<String> = ty
        .shape
        .iter()
        .map(|d| match d {
            Dim::Batch => "B".to_string(),
            Dim::Time => "T".to_string(),
            Dim::Fixed(n) => n.to_string(),
        })
        .collect();
    let elem = match ty.elem {
        Elem::F32 => "f32",
        Elem::Bf16 => "bf16",
        Elem::I32 => "i32",
    };
    format!("[{}] {elem}", dims.join(", "))
}

fn attributes(op: &Op) -> String {
    let text = match op {
        Op::RmsNorm { eps, groups } => format!("eps: {eps}, groups: {groups}"),
        Op::RmsNormGated { eps, groups, act } => format!("eps: {eps}, groups: {groups}, act: {}", act.name()),
        Op::L2Norm { groups } | Op::SumNorm { groups } => format!("groups: {groups}"),
        Op::ShortConv { size } => format!("size: {size}"),
        Op::LogSigmoid { normalizer } => format!("normalizer: {normalizer}"),
        Op::ClampMin { min } => format!("min: {min}"),
        Op::LayerFloor { layer } => format!("layer: {layer}"),
        Op::FixedDecay { heads } => format!("heads: {heads}"),
        Op::Rope { heads, theta } => format!("heads: {heads}, theta: {theta}"),
        Op::Scan(a) => {
            let decay = match a.decay {
                ScanDecay::None => "none",
                ScanDecay::PerHead => "per_head",
                ScanDecay::Scalar => "scalar",
                ScanDecay::Vector => "vector",
            };
            format!(
                "update: {}, decay: {decay}, query: {}, beta: {}, state_heads: {}, q_per_state: {}, states_per_key: {}, dk: {}, dv: {}, scale: {}",
                if a.delta { "delta" } else { "additive" },
                a.query,
                a.beta,
                a.state_heads,
                a.q_per_state,
                a.states_per_key,
                a.head_k_dim,
                a.head_v_dim,
                a.scale
            )
        }
        Op::Attention { heads, kv_heads, head_dim, window, scale } => {
            let window = window.map_or("none".to_string(), |w| w.to_string());
            format!("heads: {heads}, kv_heads: {kv_heads}, head_dim: {head_dim}, window: {window}, scale: {scale}")
        }
        Op::Tokens
        | Op::Targets
        | Op::Param(_)
        | Op::Embed
        | Op::MatMul
        | Op::Add
        | Op::Mul
        | Op::OneMinusExp
        | Op::Act(_) => String::new(),
        Op::Sigmoid | Op::Mamba | Op::Bound | Op::Concat | Op::Mean | Op::SwiGlu | Op::CrossEntropy => String::new(),
    };
    if text.is_empty() { text } else { format!(" {{{text}}}") }
}

pub fn print_graph(graph: &Graph) -> String {
    let mut out = String::new();
    let mut section = None;
    for (handle, node) in graph.nodes.iter() {
        if section != Some(node.layer) {
            section = Some(node.layer);
            match node.layer {
                Some(index) => {
                    let _ = writeln!(out, "layer{index}:");
                }
                None => {
                    let _ = writeln!(out, "model:");
                }
            }
        }
        let inputs: Vec<String> = node.inputs.iter().map(|i| format!("%{}", i.index())).collect();
        let call = if inputs.is_empty() { String::new() } else { format!("({})", inputs.join(", ")) };
        let _ = writeln!(
            out,
            "  %{} = {}{call}{} : {}",
            handle.index(),
            node.op.name(),
            attributes(&node.op),
            dims(&node.ty)
        );
    }
    if let Some(loss) = graph.loss {
        let _ = writeln!(out, "loss %{}", loss.index());
    }
    out
}
