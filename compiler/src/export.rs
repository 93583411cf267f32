//! The model in the formats people use today: fla's `config.json`, Hugging Face's
//! `layer_types`, Megatron's hybrid layer pattern.
//!
//! An export either says exactly what the model is or refuses with the reason: a
//! target that cannot express head-wise routing, two linear families, or a
//! composition no fla layer implements gets an error, never an approximation. For
//! fla the check is constructive: the config's keys are read back through the same
//! preset code `hybc check` uses and must give the identical mixer.

use serde_json::{Map, Value, json};

use crate::ir::*;
use crate::pipeline::check_text;

#[derive(Debug, PartialEq)]
pub struct ExportError {
    pub message: String,
    pub help: String,
}

fn refuse(message: impl Into<String>, help: impl Into<String>) -> ExportError {
    ExportError { message: message.into(), help: help.into() }
}

/// fla's `config.json` for this model.
pub fn fla_config(model: &Model) -> Result<Value, ExportError> {
    let mut linear: Option<&Mixer> = None;
    let mut attention: Vec<(usize, &AttentionMixer)> = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        let mixer = &model.mixers[layer.mixer];
        match &mixer.kind {
            MixerKind::Routed(_) => {
                return Err(refuse(
                    format!("layer {index} (`{}`) routes heads between mixers; fla has no such layer", mixer.name),
                    "head-wise routing exists only in hyb; export a model without `heads(...)`",
                ));
            }
            MixerKind::Attention(a) if a.conv.is_some() => {
                return Err(refuse(
                    format!(
                        "layer {index} (`{}`) convolves attention's q, k and v; fla's attention has no convolution",
                        mixer.name
                    ),
                    "remove `short_conv` from the attention mixer to export it",
                ));
            }
            MixerKind::Attention(a) => attention.push((index, a)),
            MixerKind::Linear(_) => match linear {
                Some(first) if first.kind != mixer.kind => {
                    return Err(refuse(
                        format!(
                            "fla models have one linear family, this one has `{}` and `{}`",
                            first.name, mixer.name
                        ),
                        "fla's config names one model_type; split the study into one model per family",
                    ));
                }
                _ => linear = Some(mixer),
            },
        }
    }
    let mut config = Map::new();
    let model_type = match linear {
        Some(mixer) => {
            let MixerKind::Linear(linear_mixer) = &mixer.kind else { unreachable!("linear layers hold linear mixers") };
            let (preset, keys) = fla_mixer_keys(mixer, linear_mixer, model.config.d_model)?;
            config.insert("model_type".into(), json!(preset.fla_model_type()));
            config.extend(keys);
            preset
        }
        None => {
            config.insert("model_type".into(), json!(Preset::Attention.fla_model_type()));
            Preset::Attention
        }
    };
    let c = &model.config;
    config.insert("vocab_size".into(), json!(c.vocab));
    config.insert("hidden_size".into(), json!(c.d_model));
    config.insert("num_hidden_layers".into(), json!(model.layers.len()));
    if c.mlp.explicit {
        config.insert("intermediate_size".into(), json!(c.mlp.intermediate));
    } else {
        config.insert("hidden_ratio".into(), json!(c.mlp.ratio.unwrap_or(4.0)));
        config.insert("intermediate_size".into(), Value::Null);
    }
    config.insert("hidden_act".into(), json!("swish"));
    config.insert("norm_eps".into(), json!(c.norm_eps));
    config.insert("tie_word_embeddings".into(), json!(c.tie_embeddings));
    config.insert("initializer_range".into(), json!(c.init_std));
    config.insert("max_position_embeddings".into(), json!(c.max_position));
    if model_type == Preset::Attention {
        let (_, first) = attention[0];
        if attention.iter().any(|(_, a)| *a != first) {
            return Err(refuse(
                "a transformer with two attention configurations",
                "fla's transformer has one attention config",
            ));
        }
        config.insert("num_heads".into(), json!(first.heads));
        config.insert("num_kv_heads".into(), json!(first.kv_heads));
        config.insert("qkv_bias".into(), json!(first.qkv_bias));
        config.insert("qk_norm".into(), json!(first.qk_norm));
        config.insert("window_size".into(), json!(first.window));
        config.insert("rope_theta".into(), json!(first.rope_theta));
        check_attention_head_dim(first, c.d_model)?;
    } else if !attention.is_empty() {
        config.insert("attn".into(), attn_dict(&attention, c.d_model)?);
    }
    Ok(Value::Object(config))
}

fn check_attention_head_dim(attention: &AttentionMixer, d_model: u64) -> Result<(), ExportError> {
    if attention.heads * attention.head_dim != d_model {
        return Err(refuse(
            format!(
                "attention with {} heads of dim {} on width {d_model}; fla's head dim is always d_model / heads",
                attention.heads, attention.head_dim
            ),
            "drop `head_dim:` from the attention mixer",
        ));
    }
    Ok(())
}

/// fla's hybrid `attn` entry: one dict, or a list of dicts for several attention configs.
fn attn_dict(attention: &[(usize, &AttentionMixer)], d_model: u64) -> Result<Value, ExportError> {
    let mut groups: Vec<(&AttentionMixer, Vec<usize>)> = Vec::new();
    for (index, mixer) in attention {
        if mixer.qk_norm {
            return Err(refuse(
                format!("attention layer {index} uses qk_norm; fla's hybrid `attn` config ignores qk_norm"),
                "remove `qk_norm` from hybrid attention layers",
            ));
        }
        check_attention_head_dim(mixer, d_model)?;
        match groups.iter_mut().find(|(m, _)| m == mixer) {
            Some((_, layers)) => layers.push(*index),
            None => groups.push((mixer, vec![*index])),
        }
    }
    let dicts: Vec<Value> = groups
        .iter()
        .map(|(mixer, layers)| {
            json!({
                "layers": layers,
                "num_heads": mixer.heads,
                "num_kv_heads": mixer.kv_heads,
                "qkv_bias": mixer.qkv_bias,
                "window_size": mixer.window,
                "rope_theta": mixer.rope_theta,
            })
        })
        .collect();
    Ok(if dicts.len() == 1 { dicts.into_iter().next().expect("one") } else { Value::Array(dicts) })
}

/// The fla config keys of a linear mixer, found by reading candidate keys back through
/// the preset and requiring the identical description.
fn fla_mixer_keys(
    mixer: &Mixer,
    linear: &LinearMixer,
    d_model: u64,
) -> Result<(Preset, Map<String, Value>), ExportError> {
    let candidates: Vec<Preset> = match mixer.preset {
        Some(preset) => vec![preset],
        None => vec![Preset::GatedDeltaNet, Preset::DeltaNet, Preset::Gla, Preset::RetNet, Preset::Hgrn2, Preset::Hgrn],
    };
    for preset in candidates {
        let Some((args, keys)) = candidate_keys(preset, linear, d_model) else {
            continue;
        };
        if reads_back(preset, &args, linear, d_model) {
            return Ok((preset, keys));
        }
    }
    Err(refuse(
        format!("mixer `{}` has no fla layer: no fla config gives this combination of parts", mixer.name),
        "fla implements the six presets with their config options only (e.g. GLA's gate rank is fixed at 16); keep this model in .hyb",
    ))
}

fn reads_back(preset: Preset, args: &str, linear: &LinearMixer, d_model: u64) -> bool {
    let text = format!("model {{\n    d_model = {d_model}\n    layers = m\n}}\nmixer m = {}({args})\n", preset.name());
    let compilation = check_text("<export>", &text);
    compilation
        .model()
        .is_some_and(|model| matches!(&model.mixer_of(0).kind, MixerKind::Linear(back) if back == linear))
}

fn ratio(value: u64, of: u64) -> f64 {
    value as f64 / of as f64
}

/// (`.hyb` arguments, fla keys) that would describe `linear` as `preset`.
fn candidate_keys(preset: Preset, linear: &LinearMixer, d_model: u64) -> Option<(String, Map<String, Value>)> {
    let mut args: Vec<String> = Vec::new();
    let mut keys = Map::new();
    let mut put = |arg: String, key: &str, value: Value| {
        if !arg.is_empty() {
            args.push(arg);
        }
        keys.insert(key.to_string(), value);
    };
    let conv = linear.conv.map(|c| c.size);
    let short_conv = |put: &mut dyn FnMut(String, &str, Value)| {
        put(
            format!("short_conv: {}", conv.map_or("false".to_string(), |s| s.to_string())),
            "use_short_conv",
            json!(conv.is_some()),
        );
        put(String::new(), "conv_size", json!(conv.unwrap_or(4)));
    };
    let gated = linear.output_gate.is_some();
    match preset {
        Preset::Hgrn => {
            if !linear.head_k_dim.is_multiple_of(d_model) {
                return None;
            }
            put(
                format!("expand_ratio: {}", linear.head_k_dim / d_model),
                "expand_ratio",
                json!(linear.head_k_dim / d_model),
            );
            short_conv(&mut put);
            let lb = linear.lower_bound == LowerBound::Layerwise;
            put(format!("lower_bound: {lb}"), "use_lower_bound", json!(lb));
        }
        Preset::Hgrn2 => {
            put(format!("expand_ratio: {}", linear.head_k_dim), "expand_ratio", json!(linear.head_k_dim));
            put(String::new(), "num_heads", json!(linear.heads));
            short_conv(&mut put);
            let lb = linear.lower_bound == LowerBound::Layerwise;
            put(format!("lower_bound: {lb}"), "use_lower_bound", json!(lb));
        }
        Preset::RetNet | Preset::Gla => {
            let expand_k = ratio(linear.heads * linear.head_k_dim, d_model);
            let expand_v = ratio(linear.heads * linear.head_v_dim, d_model);
            put(format!("heads: {}", linear.heads), "num_heads", json!(linear.heads));
            put(format!("kv_heads: {}", linear.k_heads), "num_kv_heads", json!(linear.k_heads));
            put(format!("expand_k: {expand_k}"), "expand_k", json!(expand_k));
            put(format!("expand_v: {expand_v}"), "expand_v", json!(expand_v));
            let feature_map = match linear.qk_act {
                Act::Identity => Value::Null,
                act => json!(act.name()),
            };
            put(format!("feature_map: {}", linear.qk_act.name()), "feature_map", feature_map);
            put(format!("output_gate: {gated}"), "use_output_gate", json!(gated));
            if preset == Preset::Gla {
                short_conv(&mut put);
                let clamp = linear.clamp_min.map_or("none".to_string(), |c| c.to_string());
                put(format!("clamp_min: {clamp}"), "clamp_min", json!(linear.clamp_min));
            }
        }
        Preset::DeltaNet => {
            put(format!("heads: {}", linear.heads), "num_heads", json!(linear.heads));
            let expand_k = ratio(linear.heads * linear.head_k_dim, d_model);
            let expand_v = ratio(linear.heads * linear.head_v_dim, d_model);
            put(format!("expand_k: {expand_k}"), "expand_k", json!(expand_k));
            put(format!("expand_v: {expand_v}"), "expand_v", json!(expand_v));
            short_conv(&mut put);
            let Update::Delta { beta, negative_eigenvalues } = linear.update else {
                return None;
            };
            let use_beta = beta == Beta::Sigmoid;
            put(format!("beta: {use_beta}"), "use_beta", json!(use_beta));
            put(format!("output_gate: {gated}"), "use_gate", json!(gated));
            put(format!("qk_act: {}", linear.qk_act.name()), "qk_activation", json!(linear.qk_act.name()));
            let qk_norm = match linear.qk_norm {
                QkNorm::L2 => "l2",
                QkNorm::Sum => "sum",
                QkNorm::None => return None,
            };
            put(format!("qk_norm: {qk_norm}"), "qk_norm", json!(qk_norm));
            put(format!("neg_eigval: {negative_eigenvalues}"), "allow_neg_eigval", json!(negative_eigenvalues));
        }
        Preset::GatedDeltaNet => {
            put(format!("heads: {}", linear.heads), "num_heads", json!(linear.heads));
            put(format!("head_dim: {}", linear.head_k_dim), "head_dim", json!(linear.head_k_dim));
            let expand_v = ratio(linear.head_v_dim, linear.head_k_dim);
            put(format!("expand_v: {expand_v}"), "expand_v", json!(expand_v));
            let v_heads = if linear.v_heads == linear.heads { Value::Null } else { json!(linear.v_heads) };
            put(format!("v_heads: {}", linear.v_heads), "num_v_heads", v_heads);
            short_conv(&mut put);
            put(format!("output_gate: {gated}"), "use_gate", json!(gated));
            let Update::Delta { negative_eigenvalues, .. } = linear.update else {
                return None;
            };
            put(format!("neg_eigval: {negative_eigenvalues}"), "allow_neg_eigval", json!(negative_eigenvalues));
        }
        Preset::Attention => return None,
    }
    Some((args.join(", "), keys))
}

/// Hugging Face's `layer_types`: `linear_attention`, `full_attention` or
/// `sliding_attention` per layer.
pub fn hf_layer_types(model: &Model) -> Result<Value, ExportError> {
    let mut types = Vec::new();
    for (index, layer) in model.layers.iter().enumerate() {
        let mixer = &model.mixers[layer.mixer];
        types.push(match &mixer.kind {
            MixerKind::Linear(_) => "linear_attention",
            MixerKind::Attention(a) if a.window.is_some() => "sliding_attention",
            MixerKind::Attention(_) => "full_attention",
            MixerKind::Routed(_) => {
                return Err(refuse(
                    format!(
                        "layer {index} (`{}`) routes heads between mixers; `layer_types` has one type per layer",
                        mixer.name
                    ),
                    "head-wise routing cannot be written as layer types",
                ));
            }
        });
    }
    Ok(json!({ "layer_types": types }))
}

/// Megatron-LM's `hybrid_override_pattern`: one symbol per sublayer, `*` attention and
/// `-` MLP. Megatron's only recurrent symbol, `M`, means a Mamba-2 layer, which none
/// of hyb's mixers is; a linear layer therefore needs `linear_symbol`, chosen by the
/// user who knows what their Megatron build maps it to.
pub fn megatron_pattern(model: &Model, linear_symbol: Option<char>) -> Result<String, ExportError> {
    let mut pattern = String::new();
    for (index, layer) in model.layers.iter().enumerate() {
        let mixer = &model.mixers[layer.mixer];
        let symbol = match &mixer.kind {
            MixerKind::Attention(_) => '*',
            MixerKind::Linear(_) => linear_symbol.ok_or_else(|| {
                refuse(
                    format!("layer {index} (`{}`) is a linear-attention layer, which Megatron's pattern has no symbol for", mixer.name),
                    "Megatron's `M` is a Mamba-2 layer; pass `--megatron-linear M` (or your build's symbol) to map linear layers to it knowingly",
                )
            })?,
            MixerKind::Routed(_) => {
                return Err(refuse(
                    format!("layer {index} (`{}`) routes heads between mixers; Megatron's pattern has one mixer per layer", mixer.name),
                    "head-wise routing cannot be written as a Megatron pattern",
                ));
            }
        };
        pattern.push(symbol);
        pattern.push('-');
    }
    Ok(pattern)
}
