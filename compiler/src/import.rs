//! `hybc import`: an fla / Hugging Face `config.json` to `.hyb` text.
//!
//! Every key is either translated, known to change nothing hyb models (kernel and
//! fusion switches such as `attn_mode`, `fuse_norm`, `use_cache`; keys fla itself
//! ignores), or refused with the reason; nothing is dropped silently, and a value of the
//! wrong JSON type is an error, not a default. String values are taken only from their
//! known sets (they become `.hyb` words). Attention layers come from fla's `attn.layers`
//! or HF's `layer_types` (`sliding_attention` with `sliding_window`); a set of the form
//! `i mod r = r − 1` is written `with attn every r`. The imported text is checked before
//! it is returned: what `hybc import` writes, `hybc check` accepts.

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
    let mut reader = Reader { config: &config, used: Vec::new(), prefix: "" };
    let model_type = reader.symbol("model_type", MODEL_TYPES)?.ok_or_else(|| ImportError("no `model_type`".into()))?;
    let preset = if model_type == "delta_net" { "deltanet".to_string() } else { model_type.clone() };
    let d_model = reader.int("hidden_size")?.unwrap_or(2048);
    let layers = reader.int("num_hidden_layers")?.unwrap_or(24);
    if layers == 0 || layers > MAX_LAYERS {
        return Err(ImportError(format!("`num_hidden_layers` = {layers} is outside 1 – {MAX_LAYERS}")));
    }
    let vocab = reader.int("vocab_size")?.unwrap_or(32000);
    let mut model_lines = vec![format!("vocab = {vocab}"), format!("d_model = {d_model}")];
    let mut mixers = Vec::new();
    if preset == "transformer" {
        let args = attention_args(&mut reader, true)?;
        mixers.push(format!("mixer attn = attention({})", args.join(", ")));
        model_lines.push(format!("layers = attn × {layers}"));
    } else {
        let args = linear_args(&mut reader, &preset)?;
        let name = if preset == "gated_deltanet" { "gdn".to_string() } else { preset.clone() };
        mixers.push(format!("mixer {name} = {preset}({})", args.join(", ")));
        let mut rules = Vec::new();
        for group in attention_layers(&mut reader, layers)? {
            mixers.push(format!("mixer {} = attention({})", group.mixer, group.args.join(", ")));
            rules.push(format!("{} {}", group.mixer, index_rule(&group.indices, layers)));
        }
        let schedule = match rules.is_empty() {
            true => format!("{name} × {layers}"),
            false => format!("{name} × {layers} with {}", rules.join(", ")),
        };
        model_lines.push(format!("layers = {schedule}"));
    }
    let intermediate = reader.int("intermediate_size")?;
    let ratio = reader.float("hidden_ratio")?;
    match (intermediate, ratio) {
        (Some(width), _) => model_lines.push(format!("mlp = swiglu(intermediate: {width})")),
        (None, Some(ratio)) => model_lines.push(format!("mlp = swiglu(ratio: {})", num(ratio))),
        (None, None) => {}
    }
    if let Some(eps) = reader.float("norm_eps")? {
        model_lines.push(format!("norm = rmsnorm(eps: {})", num(eps)));
    }
    if let Some(tied) = reader.boolean("tie_word_embeddings")? {
        model_lines.push(format!("tie_embeddings = {tied}"));
    }
    if let Some(std) = reader.float("initializer_range")? {
        model_lines.push(format!("init_std = {}", num(std)));
    }
    if let Some(max) = reader.int("max_position_embeddings")? {
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
    reader.refuse_unused()?;
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
    let text =
        crate::fmt::format_source(&out).map_err(|_| ImportError("internal: imported text does not parse".into()))?;
    // What import writes must check: a config fla would refuse is refused here too.
    let compilation = crate::pipeline::check_text("imported.hyb", &text);
    if let Some(error) = compilation.checked.diagnostics.iter().find(|d| d.is_error()) {
        return Err(ImportError(format!("the config describes a model hyb rejects: {}", error.message)));
    }
    Ok(text)
}

const MODEL_TYPES: &[&str] = &["hgrn", "hgrn2", "retnet", "gla", "delta_net", "gated_deltanet", "transformer"];
const MAX_LAYERS: u64 = crate::sema::schedule::MAX_LAYERS;

/// Reads keys of one JSON object, remembering which were read.
struct Reader<'a> {
    config: &'a Map<String, Value>,
    used: Vec<&'a str>,
    /// `attn.` inside the hybrid attention dict, for messages.
    prefix: &'static str,
}

impl<'a> Reader<'a> {
    /// The value of `key`, marking it read; `None` if absent or `null`.
    fn get(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.config.get_key_value(key)?;
        self.used.push(k.as_str());
        (!v.is_null()).then_some(v)
    }

    fn wrong(&self, key: &str, what: &str, value: &Value) -> ImportError {
        ImportError(format!("`{}{key}` must be {what}, found {value}", self.prefix))
    }

    fn int(&mut self, key: &str) -> Result<Option<u64>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| self.wrong(key, "a non-negative integer", value)),
        }
    }

    fn float(&mut self, key: &str) -> Result<Option<f64>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_f64().map(Some).ok_or_else(|| self.wrong(key, "a number", value)),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.as_bool().map(Some).ok_or_else(|| self.wrong(key, "true or false", value)),
        }
    }

    /// A string from a known set (it becomes a `.hyb` word, so nothing else may pass).
    fn symbol(&mut self, key: &str, allowed: &[&str]) -> Result<Option<String>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) if allowed.contains(&text.as_str()) => Ok(Some(text.clone())),
            Some(value) => Err(self.wrong(key, &format!("one of {}", allowed.join(", ")), value)),
        }
    }

    /// A key that must have one value for hyb to model the config.
    fn expect(&mut self, key: &str, wanted: &Value, why: &str) -> Result<(), ImportError> {
        match self.config.get_key_value(key) {
            Some((k, value)) => {
                self.used.push(k.as_str());
                if value == wanted {
                    Ok(())
                } else {
                    Err(ImportError(format!("`{key}` = {value} is not supported: {why}")))
                }
            }
            None => Ok(()),
        }
    }

    fn refuse_unused(&self) -> Result<(), ImportError> {
        let neutral = |k: &str| self.prefix.is_empty() && NEUTRAL_KEYS.contains(&k);
        match self.config.keys().find(|k| !self.used.contains(&k.as_str()) && !neutral(k)) {
            Some(key) => Err(ImportError(format!(
                "config key `{}{key}` = {} has no meaning in hyb",
                self.prefix,
                self.config[key.as_str()]
            ))),
            None => Ok(()),
        }
    }
}

fn linear_args(reader: &mut Reader, preset: &str) -> Result<Vec<String>, ImportError> {
    let mut args = Vec::new();
    match preset {
        "hgrn" => {
            if let Some(expand) = reader.int("expand_ratio")? {
                args.push(format!("expand_ratio: {expand}"));
            }
            reader.get("num_heads");
        }
        "hgrn2" => match reader.int("expand_ratio")? {
            Some(expand) => {
                args.push(format!("expand_ratio: {expand}"));
                // fla ignores num_heads when expand_ratio is set.
                reader.get("num_heads");
            }
            None => {
                if let Some(heads) = reader.int("num_heads")? {
                    args.push(format!("heads: {heads}"));
                }
            }
        },
        _ => {
            for (key, name) in [
                ("num_heads", "heads"),
                ("num_kv_heads", "kv_heads"),
                ("num_v_heads", "v_heads"),
                ("head_dim", "head_dim"),
            ] {
                if let Some(value) = reader.int(key)? {
                    args.push(format!("{name}: {value}"));
                }
            }
            for key in ["expand_k", "expand_v"] {
                if let Some(value) = reader.float(key)? {
                    args.push(format!("{key}: {}", num(value)));
                }
            }
        }
    }
    let conv_size = reader.int("conv_size")?.unwrap_or(4);
    match reader.boolean("use_short_conv")? {
        // fla's RetNet declares these but never passes them to the layer.
        Some(_) if preset == "retnet" => {}
        Some(true) => args.push(format!("short_conv: {conv_size}")),
        Some(false) => args.push("short_conv: false".to_string()),
        None => {}
    }
    for (key, name) in [
        ("use_lower_bound", "lower_bound"),
        ("use_output_gate", "output_gate"),
        ("use_gate", "output_gate"),
        ("use_beta", "beta"),
        ("allow_neg_eigval", "neg_eigval"),
    ] {
        if let Some(value) = reader.boolean(key)? {
            args.push(format!("{name}: {value}"));
        }
    }
    if let Some(map) = reader.symbol("feature_map", &["identity", "silu", "swish", "relu", "elu"])? {
        args.push(format!("feature_map: {map}"));
    }
    if let Some(act) = reader.symbol("qk_activation", &["identity", "silu", "relu", "elu"])? {
        args.push(format!("qk_act: {act}"));
    }
    if let Some(norm) = reader.symbol("qk_norm", &["l2", "sum"])? {
        args.push(format!("qk_norm: {norm}"));
    }
    if let Some(clamp) = reader.float("clamp_min")? {
        args.push(format!("clamp_min: {}", num(clamp)));
    }
    Ok(args)
}

fn attention_args(reader: &mut Reader, top_level: bool) -> Result<Vec<String>, ImportError> {
    let mut args = Vec::new();
    if let Some(heads) = reader.int("num_heads")? {
        args.push(format!("heads: {heads}"));
    }
    if let Some(kv) = reader.int("num_kv_heads")? {
        args.push(format!("kv_heads: {kv}"));
    }
    if let Some(bias) = reader.boolean("qkv_bias")? {
        args.push(format!("qkv_bias: {bias}"));
    }
    if top_level {
        if let Some(norm) = reader.boolean("qk_norm")? {
            args.push(format!("qk_norm: {norm}"));
        }
    } else {
        // fla's hybrid `attn` dict keeps `qk_norm` but never uses it.
        reader.get("qk_norm");
    }
    if let Some(window) = reader.int("window_size")? {
        args.push(format!("window: {window}"));
    }
    if let Some(theta) = reader.float("rope_theta")? {
        args.push(format!("rope: {}", num(theta)));
    }
    Ok(args)
}

/// Layers of one attention mixer in a hybrid.
struct AttentionGroup {
    mixer: &'static str,
    args: Vec<String>,
    indices: Vec<u64>,
}

/// The attention layers of a hybrid: fla's `attn` dict, or HF's `layer_types`.
fn attention_layers(reader: &mut Reader, layers: u64) -> Result<Vec<AttentionGroup>, ImportError> {
    if let Some(types) = reader.get("layer_types") {
        if reader.config.get("attn").is_none_or(Value::is_null) {
            return layer_types(reader, types, layers);
        }
        return Err(ImportError("the config has both `attn` and `layer_types`; keep one".into()));
    }
    let dict = match reader.get("attn") {
        None => return Ok(Vec::new()),
        Some(Value::Object(dict)) => dict,
        Some(Value::Array(list)) if list.len() == 1 => {
            list[0].as_object().ok_or_else(|| ImportError("`attn` entries must be objects".into()))?
        }
        Some(Value::Array(_)) => {
            return Err(ImportError(
                "`attn` lists several attention configurations; write this model by hand with one mixer per configuration"
                    .into(),
            ));
        }
        Some(other) => return Err(ImportError(format!("`attn` must be an object, found {other}"))),
    };
    let mut inner = Reader { config: dict, used: Vec::new(), prefix: "attn." };
    let Some(Value::Array(list)) = inner.get("layers") else {
        return Err(ImportError("`attn.layers` must be a list of layer indices".into()));
    };
    let mut indices = Vec::new();
    for entry in list {
        let index =
            entry.as_u64().ok_or_else(|| ImportError(format!("`attn.layers` holds {entry}, not a layer index")))?;
        if index >= layers {
            return Err(ImportError(format!("`attn.layers` names layer {index}, but the model has {layers} layers")));
        }
        if indices.contains(&index) {
            return Err(ImportError(format!("`attn.layers` names layer {index} twice")));
        }
        indices.push(index);
    }
    indices.sort_unstable();
    let args = attention_args(&mut inner, false)?;
    inner.refuse_unused()?;
    Ok(if indices.is_empty() { Vec::new() } else { vec![AttentionGroup { mixer: "attn", args, indices }] })
}

/// HF's `layer_types`: `linear_attention`, `full_attention`, `sliding_attention`; the
/// attention heads come from `num_attention_heads` / `num_key_value_heads`, the window
/// from `sliding_window`.
fn layer_types(reader: &mut Reader, types: &Value, layers: u64) -> Result<Vec<AttentionGroup>, ImportError> {
    let Value::Array(types) = types else {
        return Err(ImportError(format!("`layer_types` must be a list, found {types}")));
    };
    if types.len() as u64 != layers {
        return Err(ImportError(format!("`layer_types` has {} entries for {layers} layers", types.len())));
    }
    let (mut full, mut sliding) = (Vec::new(), Vec::new());
    for (index, kind) in types.iter().enumerate() {
        match kind.as_str() {
            Some("linear_attention") => {}
            Some("full_attention" | "attention") => full.push(index as u64),
            Some("sliding_attention") => sliding.push(index as u64),
            _ => return Err(ImportError(format!("`layer_types` holds {kind}, not a layer type hyb knows"))),
        }
    }
    if full.is_empty() && sliding.is_empty() {
        return Ok(Vec::new());
    }
    let heads = reader.int("num_attention_heads")?.ok_or_else(|| {
        ImportError("`layer_types` names attention layers, but the config gives no `num_attention_heads`".into())
    })?;
    let mut args = vec![format!("heads: {heads}")];
    if let Some(kv) = reader.int("num_key_value_heads")? {
        args.push(format!("kv_heads: {kv}"));
    }
    let mut groups = Vec::new();
    if !full.is_empty() {
        groups.push(AttentionGroup { mixer: "attn", args: args.clone(), indices: full });
    }
    if !sliding.is_empty() {
        let window = reader.int("sliding_window")?.ok_or_else(|| {
            ImportError("`layer_types` names sliding-window layers, but the config gives no `sliding_window`".into())
        })?;
        args.push(format!("window: {window}"));
        groups.push(AttentionGroup { mixer: "swa", args, indices: sliding });
    }
    Ok(groups)
}

/// `every r` when the (sorted) indices are exactly `{i : i mod r = r − 1}`, else `at [..]`.
fn index_rule(indices: &[u64], layers: u64) -> String {
    let period = indices[0] + 1;
    let every: Vec<u64> = (period - 1..layers).step_by(period as usize).collect();
    if every == indices {
        return format!("every {period}");
    }
    format!("at [{}]", indices.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
}
