//! `hybc import`: an fla / Hugging Face `config.json` to `.hyb` text.
//!
//! Every key is either translated, known to change nothing hyb models (kernel and
//! fusion switches such as `attn_mode`, `fuse_norm`, `use_cache`; keys fla itself
//! ignores), or refused with the reason; nothing is dropped silently. Attention layers
//! come from fla's `attn.layers` (or HF's `layer_types`); a set of the form
//! `i mod r = r − 1` is written `with attn every r`.

use serde_json::{Map, Value};

use crate::fmt::string_literal;
use crate::ir::print::num;

#[derive(Debug, PartialEq)]
pub struct ImportError(pub String);

/// Keys that change nothing hyb models: kernel choices, fusion, caching, bookkeeping.
const NEUTRAL_KEYS: &[&str] = &[
    "attn_mode",
    "fuse_norm",
    "fuse_swiglu",
    "fuse_cross_entropy",
    "fuse_linear_cross_entropy",
    "use_cache",
    "use_l2warp",
    "transformers_version",
    "architectures",
    "auto_map",
    "_name_or_path",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "torch_dtype",
    "dtype",
    "model_type",
    "use_output_norm",
    "output_gate_activation",
    "use_gk",
    "use_gv",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "torchscript",
    "tie_encoder_decoder",
    "is_decoder",
    "is_encoder_decoder",
    "chunk_size_feed_forward",
    "add_cross_attention",
    "id2label",
    "label2id",
    "problem_type",
    "tokenizer_class",
    "task_specific_params",
    "pruned_heads",
    "tf_legacy_loss",
    "use_bfloat16",
    "finetuning_task",
    "prefix",
    "sep_token_id",
    "decoder_start_token_id",
    "cross_attention_hidden_size",
    "_comment",
];

pub fn import_config(json: &str, source: &str) -> Result<String, ImportError> {
    let value: Value = serde_json::from_str(json).map_err(|e| ImportError(format!("not valid JSON: {e}")))?;
    let Value::Object(config) = value else {
        return Err(ImportError("expected a JSON object".into()));
    };
    let mut reader = Reader { config: &config, used: Vec::new() };
    let model_type = reader.str("model_type").ok_or_else(|| ImportError("no `model_type`".into()))?;
    let preset = match model_type.as_str() {
        "hgrn" | "hgrn2" | "retnet" | "gla" | "transformer" | "gated_deltanet" => model_type.clone(),
        "delta_net" => "deltanet".to_string(),
        other => {
            return Err(ImportError(format!(
                "model_type `{other}` is not one hyb knows (hgrn, hgrn2, retnet, gla, delta_net, gated_deltanet, transformer)"
            )));
        }
    };
    let d_model = reader.int("hidden_size").unwrap_or(2048);
    let layers = reader.int("num_hidden_layers").unwrap_or(24);
    let mut model_lines =
        vec![format!("vocab = {}", reader.int("vocab_size").unwrap_or(32000)), format!("d_model = {d_model}")];
    let mut mixers = Vec::new();
    if preset == "transformer" {
        let args = attention_args(&mut reader, true)?;
        mixers.push(format!("mixer attn = attention({})", args.join(", ")));
        model_lines.push(format!("layers = attn × {layers}"));
    } else {
        let args = linear_args(&mut reader, &preset)?;
        let name = if preset == "gated_deltanet" { "gdn".to_string() } else { preset.clone() };
        mixers.push(format!("mixer {name} = {preset}({})", args.join(", ")));
        let attention_layers = attention_layers(&mut reader, layers)?;
        let schedule = match &attention_layers {
            None => format!("{name} × {layers}"),
            Some((indices, attn_args)) => {
                mixers.push(format!("mixer attn = attention({})", attn_args.join(", ")));
                format!("{name} × {layers} with attn {}", index_rule(indices, layers))
            }
        };
        model_lines.push(format!("layers = {schedule}"));
    }
    let intermediate = reader.get("intermediate_size").and_then(Value::as_u64);
    let ratio = reader.get("hidden_ratio").and_then(Value::as_f64);
    match (intermediate, ratio) {
        (Some(width), _) => model_lines.push(format!("mlp = swiglu(intermediate: {width})")),
        (None, Some(ratio)) => model_lines.push(format!("mlp = swiglu(ratio: {})", num(ratio))),
        (None, None) => {}
    }
    if let Some(eps) = reader.get("norm_eps").and_then(Value::as_f64) {
        model_lines.push(format!("norm = rmsnorm(eps: {})", num(eps)));
    }
    if let Some(tied) = reader.get("tie_word_embeddings").and_then(Value::as_bool) {
        model_lines.push(format!("tie_embeddings = {tied}"));
    }
    if let Some(std) = reader.get("initializer_range").and_then(Value::as_f64) {
        model_lines.push(format!("init_std = {}", num(std)));
    }
    if let Some(max) = reader.int("max_position_embeddings") {
        model_lines.push(format!("max_position = {max}"));
    }
    reader.expect("hidden_act", &Value::from("swish"), "hyb's MLP and gates use swish (SiLU)")?;
    reader.expect("elementwise_affine", &Value::Bool(true), "hyb's norms always have a weight")?;
    reader.expect("attnres_block_size", &Value::Null, "attention residuals (fla 0.6) are not modelled")?;
    // Early-2025 fla configs carry `norm_first`; false (their default) is the block hyb builds.
    reader.expect(
        "norm_first",
        &Value::Bool(false),
        "hyb builds the pre-norm blocks of fla 0.6; norm_first = true is not modelled",
    )?;
    let unused: Vec<&String> =
        config.keys().filter(|k| !reader.used.contains(&k.as_str()) && !NEUTRAL_KEYS.contains(&k.as_str())).collect();
    if let Some(key) = unused.first() {
        return Err(ImportError(format!("config key `{key}` = {} has no meaning in hyb", config[key.as_str()])));
    }
    let mut out = format!("// imported by `hybc import` from {}\n", string_literal(source));
    for mixer in &mixers {
        out.push_str(mixer);
        out.push('\n');
    }
    out.push_str("\nmodel {\n");
    for line in &model_lines {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("}\n");
    crate::fmt::format_source(&out).map_err(|_| ImportError("internal: imported text does not parse".into()))
}

struct Reader<'a> {
    config: &'a Map<String, Value>,
    used: Vec<&'a str>,
}

impl<'a> Reader<'a> {
    fn get(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.config.get_key_value(key)?;
        self.used.push(k.as_str());
        Some(v)
    }

    fn present(&mut self, key: &str) -> Option<&'a Value> {
        self.get(key).filter(|v| !v.is_null())
    }

    fn str(&mut self, key: &str) -> Option<String> {
        self.present(key).and_then(Value::as_str).map(str::to_string)
    }

    fn int(&mut self, key: &str) -> Option<u64> {
        self.present(key).and_then(Value::as_u64)
    }

    /// A key that must have one value for hyb to model the config.
    fn expect(&mut self, key: &str, wanted: &Value, why: &str) -> Result<(), ImportError> {
        match self.get(key) {
            Some(value) if value != wanted => Err(ImportError(format!("`{key}` = {value} is not supported: {why}"))),
            _ => Ok(()),
        }
    }
}

fn linear_args(reader: &mut Reader, preset: &str) -> Result<Vec<String>, ImportError> {
    let mut args = Vec::new();
    let int_arg = |reader: &mut Reader, key: &str, name: &str, args: &mut Vec<String>| {
        if let Some(value) = reader.int(key) {
            args.push(format!("{name}: {value}"));
        }
    };
    match preset {
        "hgrn" => {
            int_arg(reader, "expand_ratio", "expand_ratio", &mut args);
            reader.get("num_heads");
        }
        "hgrn2" => {
            int_arg(reader, "expand_ratio", "expand_ratio", &mut args);
            if !args.iter().any(|a| a.starts_with("expand_ratio")) {
                int_arg(reader, "num_heads", "heads", &mut args);
            } else {
                // fla ignores num_heads when expand_ratio is set.
                reader.get("num_heads");
            }
        }
        _ => {
            int_arg(reader, "num_heads", "heads", &mut args);
            int_arg(reader, "num_kv_heads", "kv_heads", &mut args);
            int_arg(reader, "num_v_heads", "v_heads", &mut args);
            int_arg(reader, "head_dim", "head_dim", &mut args);
            for key in ["expand_k", "expand_v"] {
                if let Some(value) = reader.present(key).and_then(Value::as_f64) {
                    args.push(format!("{key}: {}", num(value)));
                }
            }
        }
    }
    if let Some(use_conv) = reader.present("use_short_conv").and_then(Value::as_bool) {
        let size = reader.int("conv_size").unwrap_or(4);
        if preset == "retnet" {
            // fla's RetNet declares these but never passes them to the layer.
        } else if use_conv {
            args.push(format!("short_conv: {size}"));
        } else {
            args.push("short_conv: false".to_string());
        }
    } else {
        reader.get("conv_size");
    }
    let bool_key = |reader: &mut Reader, key: &str, name: &str, args: &mut Vec<String>| {
        if let Some(value) = reader.present(key).and_then(Value::as_bool) {
            args.push(format!("{name}: {value}"));
        }
    };
    bool_key(reader, "use_lower_bound", "lower_bound", &mut args);
    bool_key(reader, "use_output_gate", "output_gate", &mut args);
    bool_key(reader, "use_gate", "output_gate", &mut args);
    bool_key(reader, "use_beta", "beta", &mut args);
    bool_key(reader, "allow_neg_eigval", "neg_eigval", &mut args);
    if let Some(map) = reader.str("feature_map") {
        args.push(format!("feature_map: {map}"));
    }
    if let Some(act) = reader.str("qk_activation") {
        args.push(format!("qk_act: {act}"));
    }
    if let Some(norm) = reader.str("qk_norm") {
        args.push(format!("qk_norm: {norm}"));
    }
    if let Some(clamp) = reader.present("clamp_min").and_then(Value::as_f64) {
        args.push(format!("clamp_min: {}", num(clamp)));
    }
    Ok(args)
}

fn attention_args(reader: &mut Reader, top_level: bool) -> Result<Vec<String>, ImportError> {
    let mut args = Vec::new();
    if let Some(heads) = reader.int("num_heads") {
        args.push(format!("heads: {heads}"));
    }
    if let Some(kv) = reader.int("num_kv_heads") {
        args.push(format!("kv_heads: {kv}"));
    }
    if let Some(bias) = reader.present("qkv_bias").and_then(Value::as_bool) {
        args.push(format!("qkv_bias: {bias}"));
    }
    if top_level && let Some(norm) = reader.present("qk_norm").and_then(Value::as_bool) {
        args.push(format!("qk_norm: {norm}"));
    }
    if let Some(window) = reader.int("window_size") {
        args.push(format!("window: {window}"));
    } else {
        reader.get("window_size");
    }
    if let Some(theta) = reader.present("rope_theta").and_then(Value::as_f64) {
        args.push(format!("rope: {}", num(theta)));
    }
    Ok(args)
}

type AttentionLayers = Option<(Vec<u64>, Vec<String>)>;

/// The attention layers of a hybrid: fla's `attn` dict, or HF's `layer_types`.
fn attention_layers(reader: &mut Reader, layers: u64) -> Result<AttentionLayers, ImportError> {
    if let Some(Value::Array(types)) = reader.present("layer_types") {
        let indices: Vec<u64> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_str().is_some_and(|t| t.contains("attention") && t != "linear_attention"))
            .map(|(i, _)| i as u64)
            .collect();
        if reader.present("attn").is_none() {
            if indices.is_empty() {
                return Ok(None);
            }
            // Hugging Face hybrids give the attention heads at the top level.
            let heads = reader.int("num_attention_heads").ok_or_else(|| {
                ImportError(
                    "`layer_types` names attention layers, but the config gives no `num_attention_heads`".into(),
                )
            })?;
            let mut args = vec![format!("heads: {heads}")];
            if let Some(kv) = reader.int("num_key_value_heads") {
                args.push(format!("kv_heads: {kv}"));
            }
            return Ok(Some((indices, args)));
        }
    }
    let Some(attn) = reader.present("attn") else {
        return Ok(None);
    };
    let dict = match attn {
        Value::Object(dict) => dict,
        Value::Array(list) if list.len() == 1 => {
            list[0].as_object().ok_or_else(|| ImportError("`attn` entries must be objects".into()))?
        }
        Value::Array(_) => {
            return Err(ImportError("`attn` lists several attention configurations; write this model by hand with one mixer per configuration".into()));
        }
        _ => return Err(ImportError("`attn` must be an object".into())),
    };
    let mut inner = Reader { config: dict, used: Vec::new() };
    let indices: Vec<u64> = match inner.present("layers") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_u64).collect(),
        _ => {
            return Err(ImportError("`attn.layers` must be a list of layer indices".into()));
        }
    };
    if let Some(bad) = indices.iter().find(|i| **i >= layers) {
        return Err(ImportError(format!("`attn.layers` names layer {bad}, but the model has {layers} layers")));
    }
    let args = attention_args(&mut inner, false)?;
    inner.get("qk_norm");
    let unused: Vec<&String> = dict.keys().filter(|k| !inner.used.contains(&k.as_str())).collect();
    if let Some(key) = unused.first() {
        return Err(ImportError(format!("`attn.{key}` has no meaning in hyb")));
    }
    Ok(Some((indices, args)))
}

/// `every r` when the indices are exactly `{i : i mod r = r − 1}`, else `at [..]`.
fn index_rule(indices: &[u64], layers: u64) -> String {
    for period in 1..=layers {
        let expected: Vec<u64> = (0..layers).filter(|i| i % period == period - 1).collect();
        if expected == indices {
            return format!("every {period}");
        }
    }
    format!("at [{}]", indices.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}
