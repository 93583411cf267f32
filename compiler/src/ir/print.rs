//! The stable text form of the model IR (`hybc compile --emit ir`).
//!
//! Layout: the model line; one `mixer` per distinct mixer, each linear mixer written as
//! the `linear(...)` call that denotes it (valid `.hyb`: checking it gives back the same
//! description); model-level parameters; then each layer with its parameters (names
//! relative to `model.layers.N.`); then the head. Numbers print in Rust's shortest
//! round-trip form.

use std::fmt::Write;

use super::*;

pub fn print_model(model: &Model) -> String {
    let mut out = String::new();
    let config = &model.config;
    let mlp = format!("swiglu(intermediate: {})", config.mlp.intermediate);
    let _ = writeln!(
        out,
        "model vocab={} d_model={} layers={} mlp={mlp} norm=rmsnorm(eps: {}) tie_embeddings={} init_std={} max_position={}",
        config.vocab,
        config.d_model,
        model.layers.len(),
        num(config.norm_eps),
        config.tie_embeddings,
        num(config.init_std),
        config.max_position
    );
    out.push('\n');
    for (_, mixer) in model.mixers.iter() {
        let label = mixer.preset.map_or(String::new(), |p| format!(" (preset {})", p.name()));
        let _ = writeln!(out, "mixer {}{label} = {}", mixer.name, mixer_text(&mixer.kind, 0));
    }
    out.push('\n');
    // One pass: parameters grouped by layer (model-level ones before and after).
    let mut by_layer: Vec<Vec<&Param>> = vec![Vec::new(); model.layers.len()];
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for param in &model.params {
        match param.layer {
            Some(index) => by_layer[index].push(param),
            None if param.name.starts_with("model.") && param.name != "model.norm.weight" => before.push(param),
            None => after.push(param),
        }
    }
    for param in before {
        write_param(&mut out, param, "", "");
    }
    for (index, (layer, params)) in model.layers.iter().zip(&by_layer).enumerate() {
        let _ = writeln!(out, "layer{index} {}", model.mixers[layer.mixer].name);
        let prefix = format!("model.layers.{index}.");
        for param in params {
            write_param(&mut out, param, "  ", &prefix);
        }
    }
    for param in after {
        write_param(&mut out, param, "", "");
    }
    let _ = writeln!(
        out,
        "\nparams total={} non_embedding={} tensors={}",
        model.params_total(),
        model.params_non_embedding(),
        model.params.len()
    );
    out
}

fn write_param(out: &mut String, param: &Param, indent: &str, prefix: &str) {
    let name = param.name.strip_prefix(prefix).unwrap_or(&param.name);
    let shape = param.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let decay = if param.no_weight_decay { " no_weight_decay" } else { "" };
    let _ = writeln!(out, "{indent}param {name} [{shape}] {}{decay}", init_text(param.init));
}

fn init_text(init: Init) -> String {
    match init {
        Init::Normal { std } => format!("normal({})", num(std)),
        Init::Ones => "ones".to_string(),
        Init::Zeros => "zeros".to_string(),
        Init::MambaALog => "mamba_a_log".to_string(),
        Init::MambaDtBias => "mamba_dt_bias".to_string(),
    }
}

pub fn num(value: f64) -> String {
    format!("{value}")
}

/// A mixer as `.hyb` text: `linear(...)`, `attention(...)` or `heads(...)` with its
/// branches. `indent` is the nesting depth of the surrounding text.
pub fn mixer_text(kind: &MixerKind, indent: usize) -> String {
    match kind {
        MixerKind::Linear(linear) => linear_text(linear, indent),
        MixerKind::Attention(attention) => attention_text(attention),
        MixerKind::Routed(routed) => {
            let pad = "    ".repeat(indent + 1);
            let combine = match routed.combine {
                Combine::Concat => "concat",
                Combine::Mean => "mean",
            };
            let mut out = format!("heads(combine: {combine}, head_dim: {})", routed.head_dim);
            for branch in &routed.branches {
                let heads = match &branch.kind {
                    MixerKind::Linear(linear) => linear.heads,
                    MixerKind::Attention(attention) => attention.heads,
                    MixerKind::Routed(_) => 0,
                };
                let _ =
                    write!(out, "\n{pad}branch {} × {heads} = {}", branch.name, mixer_text(&branch.kind, indent + 1));
            }
            out
        }
    }
}

/// Every part of an attention mixer; its convolution only where it has one (fla's
/// attention has none, and neither do most models).
fn attention_text(attention: &AttentionMixer) -> String {
    let window = attention.window.map_or("none".to_string(), |w| w.to_string());
    let conv = attention.conv.map_or(String::new(), |conv| format!(", {}", conv_text(conv)));
    format!(
        "attention(heads: {}, kv_heads: {}, head_dim: {}, qkv_bias: {}, qk_norm: {}, window: {window}, rope: {}{conv})",
        attention.heads,
        attention.kv_heads,
        attention.head_dim,
        attention.qkv_bias,
        attention.qk_norm,
        num(attention.rope_theta)
    )
}

fn conv_text(conv: Conv) -> String {
    format!("short_conv: {}, conv_act: {}, conv_bias: {}", conv.size, conv.act.name(), conv.bias)
}

/// Every part of a linear mixer, grouped one theme per line.
pub fn linear_text(linear: &LinearMixer, indent: usize) -> String {
    let pad = "    ".repeat(indent + 1);
    let mut lines = Vec::new();
    lines.push(format!(
        "heads: {}, k_heads: {}, v_heads: {}, head_k_dim: {}, head_v_dim: {}",
        linear.heads, linear.k_heads, linear.v_heads, linear.head_k_dim, linear.head_v_dim
    ));
    let state = match linear.state {
        StateKind::Vector => "vector",
        StateKind::Matrix => "matrix",
    };
    lines.push(match linear.update {
        Update::Additive => format!("state: {state}, update: additive"),
        Update::Delta { beta, negative_eigenvalues } => {
            let beta = match beta {
                Beta::Sigmoid => "sigmoid",
                Beta::One => "one",
            };
            format!("state: {state}, update: delta, beta: {beta}, neg_eigval: {negative_eigenvalues}")
        }
    });
    let lower_bound = match linear.lower_bound {
        LowerBound::None => "none",
        LowerBound::Layerwise => "layerwise",
    };
    lines.push(format!(
        "gate: {}, lower_bound: {lower_bound}, tie_key_to_gate: {}",
        gate_text(linear.gate),
        linear.tie_key_to_gate
    ));
    lines.push(match linear.conv {
        None => "short_conv: none".to_string(),
        Some(conv) => conv_text(conv),
    });
    let qk_norm = match linear.qk_norm {
        QkNorm::None => "none",
        QkNorm::L2 => "l2",
        QkNorm::Sum => "sum",
    };
    let rope = linear.rope.map_or("none".to_string(), num);
    lines.push(format!(
        "qk_act: {}, v_act: {}, qk_norm: {qk_norm}, rope: {rope}",
        linear.qk_act.name(),
        linear.v_act.name()
    ));
    let output_norm = match linear.output_norm {
        OutputNorm::None => "none",
        OutputNorm::PerHead => "per_head",
        OutputNorm::Full => "full",
    };
    let clamp = linear.clamp_min.map_or("none".to_string(), num);
    lines.push(format!(
        "output_gate: {}, output_norm: {output_norm}, clamp_min: {clamp}, scale: {}",
        linear.output_gate.map_or("none", Act::name),
        num(linear.scale)
    ));
    let closing = "    ".repeat(indent);
    format!("linear(\n{}\n{closing})", lines.iter().map(|line| format!("{pad}{line},")).collect::<Vec<_>>().join("\n"))
}

fn gate_text(gate: Gate) -> String {
    let param = |kind: &str, param: GateParam| match param {
        GateParam::Mamba => format!("{kind}(mamba)"),
        GateParam::LogSigmoid { normalizer, low_rank } if kind == "vector" => {
            let rank = low_rank.map_or("none".to_string(), |r| r.to_string());
            format!("vector(logsigmoid, normalizer: {}, low_rank: {rank})", num(normalizer))
        }
        GateParam::LogSigmoid { normalizer, .. } => {
            format!("{kind}(logsigmoid, normalizer: {})", num(normalizer))
        }
    };
    match gate {
        Gate::None => "none".to_string(),
        Gate::Fixed => "fixed".to_string(),
        Gate::Scalar(p) => param("scalar", p),
        Gate::Vector(p) => param("vector", p),
    }
}

/// The IR's parameters and layers as JSON (`--emit ir --format json`), for tools: each
/// parameter as `[name, shape]` in the same order as the text form.
pub fn print_model_json(model: &Model) -> String {
    let layers: Vec<serde_json::Value> = model
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| serde_json::json!({ "index": index, "mixer": model.mixers[layer.mixer].name }))
        .collect();
    let params: Vec<serde_json::Value> = model.params.iter().map(|p| serde_json::json!([p.name, p.shape])).collect();
    let json = serde_json::json!({
        "params_total": model.params_total(),
        "params_non_embedding": model.params_non_embedding(),
        "layers": layers,
        "params": params,
    });
    serde_json::to_string_pretty(&json).expect("JSON values serialise") + "\n"
}
