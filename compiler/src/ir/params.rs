//! Parameter names and shapes, derived from the generic mixer description alone.
//!
//! Names follow fla, so checkpoints interoperate. fla's layer classes name the same
//! part differently; each rule below is one observation about fla, stated where it
//! decides a name, so a composed mixer gets the name its nearest fla layer would use:
//! - a tied key (HGRN-2) or vector state (HGRN) has `i_proj` for the value and
//!   `f_proj` for a full-rank gate; otherwise q/k/v are `q_proj`, `k_proj`, `v_proj`;
//! - a low-rank per-channel gate is `gk_proj.0` / `gk_proj.1` (with bias, GLA); a
//!   scalar gate is `a_proj` (+ `A_log`, `dt_bias` for Mamba-style);
//! - the output norm is `o_norm` under the delta rule, `g_norm` for HGRN/HGRN-2 and
//!   for ungated norms, `g_norm_swish_gate` for a gated per-head norm (GLA, RetNet).
//!
//! Order: embeddings, lower bounds, then per layer `attn_norm`, mixer, `mlp_norm`,
//! MLP, then the final norm and the LM head. Tests compare against fla by name.

use super::*;

/// All parameters of a model, in the stable order above.
pub fn model_params(config: &ModelConfig, mixers: &Arena<Mixer>, layers: &[Layer]) -> Vec<Param> {
    let d = config.d_model;
    let std = config.init_std;
    let mut out = Vec::new();
    // fla lists a model's direct parameters before its sub-modules: bounds come first.
    if let Some(width) = layers.iter().find_map(|layer| lower_bound_width(&mixers[layer.mixer].kind)) {
        out.push(param("model.lower_bounds", vec![layers.len() as u64, width], Init::Zeros, None));
    }
    out.push(param("model.embeddings.weight", vec![config.vocab, d], Init::Normal { std }, None));
    for (index, layer) in layers.iter().enumerate() {
        let prefix = format!("model.layers.{index}.");
        let mut layer_params = Vec::new();
        layer_params.push(param("attn_norm.weight", vec![d], Init::Ones, None));
        mixer_params(&mixers[layer.mixer].kind, "attn.", d, std, &mut layer_params);
        layer_params.push(param("mlp_norm.weight", vec![d], Init::Ones, None));
        let width = config.mlp.intermediate;
        layer_params.push(param("mlp.gate_proj.weight", vec![width, d], Init::Normal { std }, None));
        layer_params.push(param("mlp.up_proj.weight", vec![width, d], Init::Normal { std }, None));
        layer_params.push(param("mlp.down_proj.weight", vec![d, width], Init::Normal { std }, None));
        for mut p in layer_params {
            p.name.insert_str(0, &prefix);
            p.layer = Some(index);
            out.push(p);
        }
    }
    out.push(param("model.norm.weight", vec![d], Init::Ones, None));
    if !config.tie_embeddings {
        out.push(param("lm_head.weight", vec![config.vocab, d], Init::Normal { std }, None));
    }
    out
}

/// The width of a mixer's layer-wise lower bound (its gate width), if it has one. All
/// bounded layers share one `[layers, width]` parameter; sema checks the widths agree.
pub fn lower_bound_width(kind: &MixerKind) -> Option<u64> {
    match kind {
        MixerKind::Linear(linear) if linear.lower_bound == LowerBound::Layerwise => {
            Some(linear.k_heads * linear.head_k_dim)
        }
        MixerKind::Linear(_) | MixerKind::Attention(_) => None,
        MixerKind::Routed(routed) => routed.branches.iter().find_map(|b| lower_bound_width(&b.kind)),
    }
}

fn param(name: &str, shape: Vec<u64>, init: Init, layer: Option<usize>) -> Param {
    let no_weight_decay = matches!(init, Init::MambaALog | Init::MambaDtBias);
    Param { name: name.to_string(), shape, init, no_weight_decay, layer }
}

/// The parameters of one mixer, names relative to the layer, each prefixed by `prefix`.
pub fn mixer_params(kind: &MixerKind, prefix: &str, d: u64, std: f64, out: &mut Vec<Param>) {
    match kind {
        MixerKind::Linear(linear) => {
            linear_params(linear, prefix, d, std, out);
            out.push(param(&format!("{prefix}o_proj.weight"), vec![d, linear.out_width()], Init::Normal { std }, None));
        }
        MixerKind::Attention(attention) => {
            attention_params(attention, prefix, d, std, out);
            let width = attention.heads * attention.head_dim;
            out.push(param(&format!("{prefix}o_proj.weight"), vec![d, width], Init::Normal { std }, None));
        }
        MixerKind::Routed(routed) => routed_params(routed, prefix, d, std, out),
    }
}

fn routed_params(routed: &RoutedMixer, prefix: &str, d: u64, std: f64, out: &mut Vec<Param>) {
    let mut concat_width = 0;
    for branch in &routed.branches {
        let branch_prefix = format!("{prefix}{}.", branch.name);
        match routed.combine {
            Combine::Concat => {
                concat_width += branch_out_width(&branch.kind);
                match &branch.kind {
                    MixerKind::Linear(linear) => linear_params(linear, &branch_prefix, d, std, out),
                    MixerKind::Attention(attention) => attention_params(attention, &branch_prefix, d, std, out),
                    MixerKind::Routed(_) => unreachable!("sema rejects nested routing"),
                }
            }
            Combine::Mean => {
                mixer_params(&branch.kind, &branch_prefix, d, std, out);
                out.push(param(&format!("{branch_prefix}combine_norm.weight"), vec![d], Init::Ones, None));
            }
        }
    }
    if routed.combine == Combine::Concat {
        out.push(param(&format!("{prefix}o_proj.weight"), vec![d, concat_width], Init::Normal { std }, None));
    }
}

/// Width of a branch's per-head outputs before any output projection.
pub fn branch_out_width(kind: &MixerKind) -> u64 {
    match kind {
        MixerKind::Linear(linear) => linear.out_width(),
        MixerKind::Attention(attention) => attention.heads * attention.head_dim,
        MixerKind::Routed(routed) => routed.branches.iter().map(|b| branch_out_width(&b.kind)).sum(),
    }
}

fn attention_params(attention: &AttentionMixer, prefix: &str, d: u64, std: f64, out: &mut Vec<Param>) {
    let q_width = attention.heads * attention.head_dim;
    let kv_width = attention.kv_heads * attention.head_dim;
    for (name, width) in [("q", q_width), ("k", kv_width), ("v", kv_width)] {
        out.push(param(&format!("{prefix}{name}_proj.weight"), vec![width, d], Init::Normal { std }, None));
        if attention.qkv_bias {
            out.push(param(&format!("{prefix}{name}_proj.bias"), vec![width], Init::Zeros, None));
        }
        if let Some(conv) = attention.conv {
            let shape = vec![width, 1, conv.size];
            out.push(param(&format!("{prefix}{name}_conv1d.weight"), shape, Init::Normal { std }, None));
            if conv.bias {
                out.push(param(&format!("{prefix}{name}_conv1d.bias"), vec![width], Init::Zeros, None));
            }
        }
    }
    if attention.qk_norm {
        out.push(param(&format!("{prefix}q_norm.weight"), vec![attention.head_dim], Init::Ones, None));
        out.push(param(&format!("{prefix}k_norm.weight"), vec![attention.head_dim], Init::Ones, None));
    }
}

/// Everything of a linear mixer except its output projection.
fn linear_params(linear: &LinearMixer, prefix: &str, d: u64, std: f64, out: &mut Vec<Param>) {
    let normal = Init::Normal { std };
    let mut push =
        |name: &str, shape: Vec<u64>, init: Init| out.push(param(&format!("{prefix}{name}"), shape, init, None));
    let q_width = linear.heads * linear.head_k_dim;
    let k_width = linear.k_heads * linear.head_k_dim;
    let v_width = linear.v_heads * linear.head_v_dim;
    let hgrn_names = linear.tie_key_to_gate || linear.state == StateKind::Vector;

    // Input projections, and the streams a short convolution runs over.
    let mut conv_streams: Vec<(&str, u64)> = Vec::new();
    if linear.state == StateKind::Matrix {
        push("q_proj.weight", vec![q_width, d], normal);
        conv_streams.push(("q", q_width));
    }
    if !hgrn_names {
        push("k_proj.weight", vec![k_width, d], normal);
        conv_streams.push(("k", k_width));
    }
    let value_name = if hgrn_names { "i" } else { "v" };
    push(&format!("{value_name}_proj.weight"), vec![v_width, d], normal);

    // Gate projections.
    match linear.gate {
        Gate::None | Gate::Fixed => {}
        Gate::Vector(GateParam::LogSigmoid { low_rank: Some(rank), .. }) => {
            push("gk_proj.0.weight", vec![rank, d], normal);
            push("gk_proj.1.weight", vec![k_width, rank], normal);
            push("gk_proj.1.bias", vec![k_width], Init::Zeros);
        }
        Gate::Vector(_) => {
            push("f_proj.weight", vec![k_width, d], normal);
            conv_streams.push(("f", k_width));
        }
        Gate::Scalar(param) => {
            push("a_proj.weight", vec![linear.v_heads, d], normal);
            if param == GateParam::Mamba {
                push("A_log", vec![linear.v_heads], Init::MambaALog);
                push("dt_bias", vec![linear.v_heads], Init::MambaDtBias);
            }
        }
    }
    conv_streams.push((value_name, v_width));
    if let Update::Delta { beta: Beta::Sigmoid, .. } = linear.update {
        push("b_proj.weight", vec![linear.v_heads, d], normal);
    }
    if let Some(conv) = linear.conv {
        for (stream, width) in &conv_streams {
            push(&format!("{stream}_conv1d.weight"), vec![*width, 1, conv.size], normal);
            if conv.bias {
                push(&format!("{stream}_conv1d.bias"), vec![*width], Init::Zeros);
            }
        }
    }
    if linear.output_gate.is_some() {
        push("g_proj.weight", vec![linear.out_width(), d], normal);
    }
    let norm_width = match linear.output_norm {
        OutputNorm::None => None,
        OutputNorm::PerHead => Some(linear.head_v_dim),
        OutputNorm::Full => Some(linear.out_width()),
    };
    if let Some(width) = norm_width {
        push(&format!("{}.weight", output_norm_name(linear)), vec![width], Init::Ones);
    }
}

pub fn output_norm_name(linear: &LinearMixer) -> &'static str {
    if matches!(linear.update, Update::Delta { .. }) {
        "o_norm"
    } else if linear.tie_key_to_gate || linear.state == StateKind::Vector || linear.output_gate.is_none() {
        "g_norm"
    } else {
        "g_norm_swish_gate"
    }
}
