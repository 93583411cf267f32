//! The cost report (`hybc compile --emit report`): per layer its mixer, heads and
//! state; totals for parameters, FLOPs per token, inference memory per sequence and
//! the KV-cache saving against the same model with attention in every layer.
//!
//! Conventions (stated in the report's footer too):
//! - FLOPs count multiply-adds as 2: every weight matrix applied per token (the LM
//!   head included, the embedding gather not), short convolutions, the recurrence
//!   (matrix state: 4·d_k·d_v per state head for an additive update, 6·d_k·d_v for the
//!   delta rule, plus d_k·d_v for a decay; vector state: 4 per channel) and attention
//!   scores and values (4·heads·head_dim per attended token, averaged over positions
//!   1..context under the causal mask). Norms and activations are not counted.
//!   Training is 3 × forward.
//! - Recurrent states are fp32 (4 bytes), as fla keeps them; conv caches and the KV
//!   cache are bf16 (2 bytes). fla's conv cache holds `conv_size` inputs per channel.

use serde::Serialize;

use crate::ir::*;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub params_total: u64,
    pub params_non_embedding: u64,
    pub layers: Vec<LayerRow>,
    pub context: u64,
    pub flops_forward_per_token: u64,
    pub flops_train_per_token: u64,
    pub state_bytes: u64,
    pub kv_cache_bytes: u64,
    pub all_attention_kv_cache_bytes: u64,
    /// `all_attention_kv_cache_bytes / (state_bytes + kv_cache_bytes)`.
    pub kv_saving: f64,
    pub linear_layers: u64,
    pub attention_layers: u64,
    pub routed_layers: u64,
    /// The planned peak memory of one training step (arena + parameters + AdamW
    /// moments) at the train block's batch × seq_len, if the file has a train block.
    pub planned_training_bytes: Option<u64>,
    /// The planned peak of the forward alone (arena + parameters) at the same shape:
    /// what evaluation needs.
    pub planned_eval_bytes: Option<u64>,
    /// The element type the planned training step stores activations in (`f32`, or
    /// `bf16` with `precision = bf16`: parameters, their gradients and moments stay f32).
    pub training_storage: Option<&'static str>,
    pub train_batch: Option<u64>,
    pub train_seq_len: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    pub index: usize,
    pub mixer: String,
    pub kind: &'static str,
    pub heads: u64,
    /// e.g. `4×256×256` (state heads × d_k × d_v), `1024` (vector), `kv 2×16×64/token`.
    pub state_shape: String,
    pub state_bytes: u64,
    pub kv_bytes_per_token: u64,
}

const STATE_BYTES: u64 = 4;
const CACHE_BYTES: u64 = 2;

/// How the report names the training step's storage.
fn storage(report: &Report) -> &'static str {
    match report.training_storage {
        Some("bf16") => "bf16 activations, f32 weights, gradients and moments",
        _ => "f32",
    }
}

pub fn report(model: &Model, context: u64) -> Report {
    let d = model.config.d_model;
    let mut layers = Vec::new();
    let (mut state_bytes, mut kv_cache_bytes, mut mixer_flops) = (0u64, 0u64, 0u64);
    let (mut linear_layers, mut attention_layers, mut routed_layers) = (0, 0, 0);
    for (index, layer) in model.layers.iter().enumerate() {
        let mixer = &model.mixers[layer.mixer];
        let cost = mixer_cost(&mixer.kind, context);
        let kind = match &mixer.kind {
            MixerKind::Linear(_) => {
                linear_layers += 1;
                "linear"
            }
            MixerKind::Attention(_) => {
                attention_layers += 1;
                "attention"
            }
            MixerKind::Routed(_) => {
                routed_layers += 1;
                "routed"
            }
        };
        state_bytes += cost.state_bytes;
        kv_cache_bytes += cost.kv_bytes_per_token * cost.cached_tokens;
        mixer_flops += cost.flops;
        layers.push(LayerRow {
            index,
            mixer: mixer.name.clone(),
            kind,
            heads: cost.heads,
            state_shape: cost.shape,
            state_bytes: cost.state_bytes,
            kv_bytes_per_token: cost.kv_bytes_per_token,
        });
    }
    let weight_flops: u64 = model
        .params
        .iter()
        .filter(|p| p.shape.len() == 2 && p.name != "model.embeddings.weight" && p.name != "model.lower_bounds")
        .map(|p| 2 * p.numel())
        .sum();
    // A tied head still multiplies by the embedding matrix.
    let tied_head = if model.config.tie_embeddings { 2 * model.config.vocab * d } else { 0 };
    let conv_flops: u64 = model.params.iter().filter(|p| p.shape.len() == 3).map(|p| 2 * p.numel()).sum();
    let forward = weight_flops + tied_head + conv_flops + mixer_flops;
    let reference_per_token = reference_attention_kv(model);
    let all_attention = reference_per_token * model.layers.len() as u64 * context;
    let ours = state_bytes + kv_cache_bytes;
    Report {
        params_total: model.params_total(),
        params_non_embedding: model.params_non_embedding(),
        layers,
        context,
        flops_forward_per_token: forward,
        flops_train_per_token: 3 * forward,
        state_bytes,
        kv_cache_bytes,
        all_attention_kv_cache_bytes: all_attention,
        kv_saving: if ours == 0 { 1.0 } else { all_attention as f64 / ours as f64 },
        linear_layers,
        attention_layers,
        routed_layers,
        planned_training_bytes: None,
        planned_eval_bytes: None,
        training_storage: None,
        train_batch: model.train.as_ref().map(|t| t.batch),
        train_seq_len: model.train.as_ref().map(|t| t.seq_len),
    }
}

/// KV bytes per token per layer of the attention the model uses (its first attention
/// mixer), or of multi-head attention over d_model if it has none.
fn reference_attention_kv(model: &Model) -> u64 {
    let attention = model.mixers.values().find_map(|mixer| match &mixer.kind {
        MixerKind::Attention(attention) => Some(attention.clone()),
        _ => None,
    });
    match attention {
        Some(attention) => 2 * attention.kv_heads * attention.head_dim * CACHE_BYTES,
        None => 2 * model.config.d_model * CACHE_BYTES,
    }
}

struct Cost {
    heads: u64,
    shape: String,
    state_bytes: u64,
    kv_bytes_per_token: u64,
    cached_tokens: u64,
    flops: u64,
}

fn mixer_cost(kind: &MixerKind, context: u64) -> Cost {
    match kind {
        MixerKind::Linear(linear) => linear_cost(linear),
        MixerKind::Attention(attention) => {
            let cached_tokens = attention.window.map_or(context, |w| w.min(context));
            // Mean over positions t = 1..context of the attended length min(t, window).
            let window = attention.window.unwrap_or(context).min(context);
            let attended: u64 = (window * (window + 1)) / 2 + (context - window) * window;
            let average = attended as f64 / context.max(1) as f64;
            let flops = (4.0 * (attention.heads * attention.head_dim) as f64 * average) as u64;
            // A convolution's cache holds its last taps of q, k and v, whatever the context.
            let conv_channels = (attention.heads + 2 * attention.kv_heads) * attention.head_dim;
            let kv = format!("kv 2×{}×{}/token", attention.kv_heads, attention.head_dim);
            let (shape, state_bytes) = match attention.conv {
                Some(conv) => {
                    (format!("{kv}, conv {}×{conv_channels}", conv.size), conv_channels * conv.size * CACHE_BYTES)
                }
                None => (kv, 0),
            };
            Cost {
                heads: attention.heads,
                shape,
                state_bytes,
                kv_bytes_per_token: 2 * attention.kv_heads * attention.head_dim * CACHE_BYTES,
                cached_tokens,
                flops,
            }
        }
        MixerKind::Routed(routed) => {
            let parts: Vec<Cost> = routed.branches.iter().map(|b| mixer_cost(&b.kind, context)).collect();
            let shape = routed
                .branches
                .iter()
                .zip(&parts)
                .map(|(branch, cost)| format!("{}: {}", branch.name, cost.shape))
                .collect::<Vec<_>>()
                .join(" + ");
            let kv_bytes_per_token = parts.iter().map(|c| c.kv_bytes_per_token).sum();
            let cached_tokens = parts.iter().map(|c| c.cached_tokens).max().unwrap_or(0);
            Cost {
                heads: parts.iter().map(|c| c.heads).sum(),
                shape,
                state_bytes: parts.iter().map(|c| c.state_bytes).sum(),
                kv_bytes_per_token,
                cached_tokens,
                flops: parts.iter().map(|c| c.flops).sum(),
            }
        }
    }
}

fn linear_cost(linear: &LinearMixer) -> Cost {
    let conv_cache = linear.conv.map_or(0, |conv| conv_channels(linear) * conv.size * CACHE_BYTES);
    let decays = !matches!(linear.gate, Gate::None);
    match linear.state {
        StateKind::Vector => {
            let width = linear.head_k_dim;
            Cost {
                heads: 1,
                shape: format!("{width}"),
                state_bytes: width * STATE_BYTES + conv_cache,
                kv_bytes_per_token: 0,
                cached_tokens: 0,
                flops: 4 * width,
            }
        }
        StateKind::Matrix => {
            let heads = linear.state_heads();
            let per_head = linear.head_k_dim * linear.head_v_dim;
            let update = match linear.update {
                Update::Additive => 4,
                Update::Delta { .. } => 6,
            } + u64::from(decays);
            // Query heads beyond the state heads (GQA) each read a state.
            let reads = linear.out_heads().saturating_sub(heads) * 2 * per_head;
            Cost {
                heads: linear.heads,
                shape: format!("{heads}×{}×{}", linear.head_k_dim, linear.head_v_dim),
                state_bytes: heads * per_head * STATE_BYTES + conv_cache,
                kv_bytes_per_token: 0,
                cached_tokens: 0,
                flops: update * heads * per_head + reads,
            }
        }
    }
}

/// Channels that pass through a short convolution (its cache width).
fn conv_channels(linear: &LinearMixer) -> u64 {
    let q = linear.heads * linear.head_k_dim;
    let k = linear.k_heads * linear.head_k_dim;
    let v = linear.v_heads * linear.head_v_dim;
    match (linear.state, linear.tie_key_to_gate) {
        (StateKind::Vector, _) => 2 * v,
        (StateKind::Matrix, true) => q + k + v,
        (StateKind::Matrix, false) => {
            q + k
                + v
                + if matches!(linear.gate, Gate::Vector(GateParam::LogSigmoid { low_rank: None, .. })) { k } else { 0 }
        }
    }
}

pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report serialises") + "\n"
}

pub fn to_text(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let name_width = report.layers.iter().map(|l| l.mixer.chars().count()).max().unwrap_or(5).max(5);
    let _ = writeln!(out, "{:>5}  {:<name_width$}  {:<9}  {:>5}  state", "layer", "mixer", "kind", "heads");
    for row in &report.layers {
        let (kv, state) = (bytes(row.kv_bytes_per_token), bytes(row.state_bytes));
        let state = match (row.kv_bytes_per_token > 0, row.state_bytes > 0) {
            (true, false) => format!("{} ({kv})", row.state_shape),
            // A routed layer's attention heads, or attention's convolution cache.
            (true, true) => format!("{} ({state} state, {kv}/token)", row.state_shape),
            (false, _) => format!("{} ({state})", row.state_shape),
        };
        let _ =
            writeln!(out, "{:>5}  {:<name_width$}  {:<9}  {:>5}  {state}", row.index, row.mixer, row.kind, row.heads);
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "params             {} (non-embedding {})",
        group(report.params_total),
        group(report.params_non_embedding)
    );
    let _ = writeln!(
        out,
        "FLOPs per token    forward {}, training {} (at context {})",
        si(report.flops_forward_per_token),
        si(report.flops_train_per_token),
        report.context
    );
    let _ =
        writeln!(out, "recurrent state    {} per sequence (fp32 states, bf16 conv caches)", bytes(report.state_bytes));
    let _ = writeln!(
        out,
        "KV cache           {} per sequence at {} tokens (bf16)",
        bytes(report.kv_cache_bytes),
        report.context
    );
    let _ = writeln!(out, "linear:attention   {}", ratio(report));
    let _ = writeln!(
        out,
        "KV-cache saving    {:.1}× against attention in every layer ({} → {})",
        report.kv_saving,
        bytes(report.all_attention_kv_cache_bytes),
        bytes(report.state_bytes + report.kv_cache_bytes)
    );
    if let (Some(peak), Some(batch), Some(seq_len)) =
        (report.planned_training_bytes, report.train_batch, report.train_seq_len)
    {
        let _ = writeln!(
            out,
            "training memory    {} planned peak at batch {batch} × {seq_len} tokens ({})",
            bytes(peak),
            storage(report)
        );
        if let Some(eval) = report.planned_eval_bytes {
            let _ = writeln!(out, "evaluation memory  {} planned peak, the forward alone at that shape", bytes(eval));
        }
    }
    out
}

fn ratio(report: &Report) -> String {
    let (linear, attention, routed) = (report.linear_layers, report.attention_layers, report.routed_layers);
    let reduced = match (linear, attention) {
        (0, 0) => String::new(),
        (_, 0) if routed == 0 => " (pure linear)".to_string(),
        (0, _) if routed == 0 => " (all attention)".to_string(),
        (_, 0) | (0, _) => String::new(),
        (l, a) if l % a == 0 => format!(" ({}:1)", l / a),
        (l, a) => format!(" ({:.2}:1)", l as f64 / a as f64),
    };
    let routed = if routed > 0 { format!(", plus {routed} routed layers") } else { String::new() };
    format!("{linear}:{attention}{reduced}{routed}")
}

/// `value` with its thousands separated by commas: `1,264,097,408`.
pub fn group(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn si(value: u64) -> String {
    let v = value as f64;
    if v >= 1e9 {
        format!("{:.2} GFLOP", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} MFLOP", v / 1e6)
    } else {
        format!("{:.1} kFLOP", v / 1e3)
    }
}

pub fn bytes(value: u64) -> String {
    let v = value as f64;
    if v >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", v / (1u64 << 30) as f64)
    } else if v >= (1u64 << 20) as f64 {
        format!("{:.2} MiB", v / (1u64 << 20) as f64)
    } else if v >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{value} B")
    }
}
