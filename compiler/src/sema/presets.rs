//! The six linear presets and attention, as defaults over the generic parts, and the
//! composition `linear(...)` that spells the parts out. Defaults are fla's config
//! defaults (LAYERS.md §3.1, `tests/fla/defaults/`), so `gla(heads: 4)` in a model of
//! width 1024 is fla's `GLAConfig(num_heads=4, hidden_size=1024)`.
//!
//! [`check_linear`] is the one place that rejects compositions that make no sense,
//! each with its reason.

use hyb_grammar::ast::{Arg, Expr, ExprKind};
use hyb_grammar::{Diagnostic, Span};

use super::mixer::{MAX_DIM, MixerCx};
use super::values::{Args, Cx};
use crate::ir::*;

pub const PRESET_NAMES: [&str; 10] =
    ["hgrn", "hgrn2", "retnet", "gla", "deltanet", "delta_net", "gated_deltanet", "gdn", "attention", "attn"];

pub fn lookup(name: &str) -> Option<Preset> {
    Some(match name {
        "hgrn" => Preset::Hgrn,
        "hgrn2" => Preset::Hgrn2,
        "retnet" => Preset::RetNet,
        "gla" => Preset::Gla,
        "deltanet" | "delta_net" => Preset::DeltaNet,
        "gated_deltanet" | "gdn" => Preset::GatedDeltaNet,
        "attention" | "attn" => Preset::Attention,
        _ => return None,
    })
}

/// The arguments each preset takes (fla's config keys, in this language's spelling).
pub fn preset_args(preset: Preset) -> &'static [&'static str] {
    match preset {
        Preset::Hgrn => &["expand_ratio", "short_conv", "lower_bound"],
        Preset::Hgrn2 => &["heads", "expand_ratio", "short_conv", "lower_bound"],
        Preset::RetNet => &["heads", "kv_heads", "expand_k", "expand_v", "feature_map", "output_gate", "rope"],
        Preset::Gla => &[
            "heads",
            "kv_heads",
            "expand_k",
            "expand_v",
            "feature_map",
            "output_gate",
            "short_conv",
            "gate_normalizer",
            "gate_low_rank",
            "clamp_min",
        ],
        Preset::DeltaNet => {
            &["heads", "expand_k", "expand_v", "short_conv", "beta", "output_gate", "qk_act", "qk_norm", "neg_eigval"]
        }
        Preset::GatedDeltaNet => {
            &["heads", "head_dim", "expand_v", "v_heads", "short_conv", "output_gate", "neg_eigval"]
        }
        Preset::Attention => &[
            "heads",
            "kv_heads",
            "head_dim",
            "qkv_bias",
            "qk_norm",
            "window",
            "rope",
            "short_conv",
            "conv_act",
            "conv_bias",
        ],
    }
}

pub const LINEAR_ARGS: &[&str] = &[
    "heads",
    "k_heads",
    "v_heads",
    "head_dim",
    "head_k_dim",
    "head_v_dim",
    "state",
    "update",
    "beta",
    "neg_eigval",
    "gate",
    "lower_bound",
    "tie_key_to_gate",
    "short_conv",
    "conv_act",
    "conv_bias",
    "qk_act",
    "v_act",
    "qk_norm",
    "qk",
    "rope",
    "output_gate",
    "output_norm",
    "clamp_min",
    "scale",
];

pub fn preset(mcx: MixerCx, preset: Preset, span: Span, args: &[Arg]) -> Option<MixerKind> {
    let args = Args::new(mcx.cx, preset.name(), span, args, preset_args(preset), 0);
    let linear = match preset {
        Preset::Attention => return attention(mcx, &args).map(MixerKind::Attention),
        Preset::Hgrn => hgrn(mcx, &args)?,
        Preset::Hgrn2 => hgrn2(mcx, &args)?,
        Preset::RetNet => {
            let (heads, kv_heads, head_k_dim, head_v_dim) = expanded_heads(mcx, &args, 8, 1.0, 2.0)?;
            LinearMixer {
                gate: Gate::Fixed,
                rope: Some(opt_float(mcx.cx, &args, "rope", 10000.0, 1.0, 1e9)?),
                qk_act: feature_map(mcx.cx, &args)?,
                output_gate: flag(mcx.cx, &args, "output_gate", true)?.then_some(Act::Silu),
                ..base(heads, kv_heads, head_k_dim, head_v_dim)
            }
        }
        Preset::Gla => {
            let (heads, kv_heads, head_k_dim, head_v_dim) = expanded_heads(mcx, &args, 4, 0.5, 1.0)?;
            let normalizer = opt_float(mcx.cx, &args, "gate_normalizer", 16.0, 1e-6, 1e6)?;
            let low_rank = opt_count(mcx.cx, &args, "gate_low_rank", 16, 1, MAX_DIM)?;
            LinearMixer {
                gate: Gate::Vector(GateParam::LogSigmoid { normalizer, low_rank: Some(low_rank) }),
                qk_act: feature_map(mcx.cx, &args)?,
                conv: short_conv(mcx.cx, &args, None)?.map(|size| Conv { size, bias: false, act: Act::Silu }),
                output_gate: flag(mcx.cx, &args, "output_gate", true)?.then_some(Act::Silu),
                clamp_min: match args.get("clamp_min") {
                    None => None,
                    Some(expr) if mcx.cx.is_none(expr) => None,
                    Some(expr) => Some(mcx.cx.float(expr, "clamp_min", -1e6, 0.0)?),
                },
                ..base(heads, kv_heads, head_k_dim, head_v_dim)
            }
        }
        Preset::DeltaNet => {
            let heads = opt_count(mcx.cx, &args, "heads", 16, 1, MAX_DIM)?;
            let (head_k_dim, head_v_dim) = expand_dims(mcx, &args, heads, 1.0, 1.0)?;
            let beta = if flag(mcx.cx, &args, "beta", true)? { Beta::Sigmoid } else { Beta::One };
            let negative_eigenvalues = flag(mcx.cx, &args, "neg_eigval", false)?;
            let qk_norm = match args.get("qk_norm") {
                Some(expr) => match mcx.cx.symbol(expr, "qk_norm", &["l2", "sum"])? {
                    "l2" => QkNorm::L2,
                    _ => QkNorm::Sum,
                },
                None => QkNorm::L2,
            };
            LinearMixer {
                update: Update::Delta { beta, negative_eigenvalues },
                conv: short_conv(mcx.cx, &args, Some(4))?.map(|size| Conv { size, bias: false, act: Act::Identity }),
                qk_act: match args.get("qk_act") {
                    Some(expr) => act(mcx.cx, expr, "qk_act")?,
                    None => Act::Silu,
                },
                v_act: Act::Silu,
                qk_norm,
                output_gate: flag(mcx.cx, &args, "output_gate", false)?.then_some(Act::Silu),
                ..base(heads, heads, head_k_dim, head_v_dim)
            }
        }
        Preset::GatedDeltaNet => {
            let heads = opt_count(mcx.cx, &args, "heads", 6, 1, MAX_DIM)?;
            let head_dim = opt_count(mcx.cx, &args, "head_dim", 256, 1, MAX_DIM)?;
            let expand_v = opt_float(mcx.cx, &args, "expand_v", 2.0, 1e-3, 64.0)?;
            let head_v_dim = whole(mcx.cx, head_dim as f64 * expand_v, &args, "expand_v", "head_dim × expand_v")?;
            let v_heads = opt_count(mcx.cx, &args, "v_heads", heads, 1, MAX_DIM)?;
            let negative_eigenvalues = flag(mcx.cx, &args, "neg_eigval", false)?;
            LinearMixer {
                update: Update::Delta { beta: Beta::Sigmoid, negative_eigenvalues },
                gate: Gate::Scalar(GateParam::Mamba),
                conv: short_conv(mcx.cx, &args, Some(4))?.map(|size| Conv { size, bias: false, act: Act::Identity }),
                qk_act: Act::Silu,
                v_act: Act::Silu,
                qk_norm: QkNorm::L2,
                output_gate: flag(mcx.cx, &args, "output_gate", true)?.then_some(Act::Silu),
                v_heads,
                ..base(heads, heads, head_dim, head_v_dim)
            }
        }
    };
    check_linear(mcx, &linear, span)?;
    Some(MixerKind::Linear(linear))
}

/// A matrix-state additive mixer with per-head output norm and no gate: the common
/// ground every preset starts from.
fn base(heads: u64, k_heads: u64, head_k_dim: u64, head_v_dim: u64) -> LinearMixer {
    LinearMixer {
        state: StateKind::Matrix,
        update: Update::Additive,
        gate: Gate::None,
        lower_bound: LowerBound::None,
        tie_key_to_gate: false,
        heads,
        k_heads,
        v_heads: k_heads,
        head_k_dim,
        head_v_dim,
        conv: None,
        qk_act: Act::Identity,
        v_act: Act::Identity,
        qk_norm: QkNorm::None,
        rope: None,
        output_gate: None,
        output_norm: OutputNorm::PerHead,
        clamp_min: None,
        scale: (head_k_dim as f64).powf(-0.5),
    }
}

fn hgrn(mcx: MixerCx, args: &Args) -> Option<LinearMixer> {
    let expand = opt_count(mcx.cx, args, "expand_ratio", 1, 1, 64)?;
    let width = mcx.d_model * expand;
    let lower_bound = flag(mcx.cx, args, "lower_bound", true)?;
    Some(LinearMixer {
        state: StateKind::Vector,
        gate: Gate::Vector(GateParam::LogSigmoid { normalizer: 1.0, low_rank: None }),
        lower_bound: if lower_bound { LowerBound::Layerwise } else { LowerBound::None },
        tie_key_to_gate: true,
        conv: short_conv(mcx.cx, args, None)?.map(|size| Conv { size, bias: false, act: Act::Identity }),
        v_act: Act::Silu,
        output_gate: Some(Act::Silu),
        output_norm: OutputNorm::Full,
        scale: 1.0,
        ..base(1, 1, width, width)
    })
}

fn hgrn2(mcx: MixerCx, args: &Args) -> Option<LinearMixer> {
    let d = mcx.d_model;
    // fla: expand_ratio wins; without it, expand_ratio = d / heads.
    let (heads, expand) = match (args.get("heads"), args.get("expand_ratio")) {
        (Some(heads_expr), None) => {
            let heads = mcx.cx.count(heads_expr, "heads", 1, d)?;
            (heads, d / heads)
        }
        (heads_expr, expand_expr) => {
            let expand = match expand_expr {
                Some(expr) => mcx.cx.count(expr, "expand_ratio", 1, d)?,
                None => 128.min(d),
            };
            let heads = d / expand;
            if let Some(heads_expr) = heads_expr {
                let given = mcx.cx.count(heads_expr, "heads", 1, d)?;
                if given != heads {
                    mcx.cx.error(
                        Diagnostic::error(format!(
                            "hgrn2's heads are d_model / expand_ratio = {d} / {expand} = {heads}, not {given}"
                        ))
                        .at(args.span_of("heads"), "disagrees with expand_ratio")
                        .help("give `heads` or `expand_ratio`, not both"),
                    );
                    return None;
                }
            }
            (heads, expand)
        }
    };
    if heads == 0 || !d.is_multiple_of(heads) {
        mcx.cx.error(
            Diagnostic::error(format!("hgrn2 needs d_model ({d}) divisible by its {heads} heads"))
                .at(args.span, "value head dim would not be whole")
                .help("choose heads (or expand_ratio) dividing d_model"),
        );
        return None;
    }
    let lower_bound = flag(mcx.cx, args, "lower_bound", true)?;
    Some(LinearMixer {
        gate: Gate::Vector(GateParam::LogSigmoid { normalizer: 1.0, low_rank: None }),
        lower_bound: if lower_bound { LowerBound::Layerwise } else { LowerBound::None },
        tie_key_to_gate: true,
        conv: short_conv(mcx.cx, args, None)?.map(|size| Conv { size, bias: false, act: Act::Identity }),
        qk_act: Act::Silu,
        output_norm: OutputNorm::Full,
        ..base(heads, heads, expand, d / heads)
    })
}

/// `heads`, `kv_heads`, `expand_k`, `expand_v` as GLA and RetNet read them.
fn expanded_heads(
    mcx: MixerCx,
    args: &Args,
    default_heads: u64,
    expand_k: f64,
    expand_v: f64,
) -> Option<(u64, u64, u64, u64)> {
    let heads = opt_count(mcx.cx, args, "heads", default_heads, 1, MAX_DIM)?;
    let kv_heads = opt_count(mcx.cx, args, "kv_heads", heads, 1, MAX_DIM)?;
    let (head_k_dim, head_v_dim) = expand_dims(mcx, args, heads, expand_k, expand_v)?;
    Some((heads, kv_heads, head_k_dim, head_v_dim))
}

/// Per-head key and value dims from `expand_k`/`expand_v`: `d · expand / heads`.
fn expand_dims(mcx: MixerCx, args: &Args, heads: u64, expand_k: f64, expand_v: f64) -> Option<(u64, u64)> {
    let d = mcx.d_model as f64;
    let expand_k = opt_float(mcx.cx, args, "expand_k", expand_k, 1e-3, 64.0)?;
    let expand_v = opt_float(mcx.cx, args, "expand_v", expand_v, 1e-3, 64.0)?;
    let key_dim = whole(mcx.cx, d * expand_k, args, "expand_k", "d_model × expand_k")?;
    let value_dim = whole(mcx.cx, d * expand_v, args, "expand_v", "d_model × expand_v")?;
    for (total, what) in [(key_dim, "key"), (value_dim, "value")] {
        if total % heads != 0 {
            mcx.cx.error(
                Diagnostic::error(format!("the {what} width {total} is not divisible by {heads} heads"))
                    .at(args.span_of("heads"), "head dim would not be whole")
                    .help("choose heads that divide d_model × expand"),
            );
            return None;
        }
    }
    Some((key_dim / heads, value_dim / heads))
}

fn whole(cx: &Cx, value: f64, args: &Args, arg: &str, what: &str) -> Option<u64> {
    if value.fract() != 0.0 || value < 1.0 {
        cx.error(
            Diagnostic::error(format!("{what} = {value} is not a whole number of channels"))
                .at(args.span_of(arg), "here")
                .help("choose an expansion that gives whole channels"),
        );
        return None;
    }
    Some(value as u64)
}

/// Attention's rotary embedding rotates pairs of channels: an odd head dim is an error
/// at `span` (an attention layer's arguments, or the routing branch it is re-headed in).
pub fn even_rope_head_dim(cx: &Cx, head_dim: u64, span: Span) -> Option<()> {
    if !head_dim.is_multiple_of(2) {
        cx.error(
            Diagnostic::error(format!("RoPE needs an even head dim, found {head_dim}"))
                .at(span, "odd head dim")
                .help("rotary embedding rotates pairs of channels; choose an even head_dim"),
        );
        return None;
    }
    Some(())
}

pub fn attention(mcx: MixerCx, args: &Args) -> Option<AttentionMixer> {
    let cx = mcx.cx;
    let heads = opt_count(cx, args, "heads", 32, 1, MAX_DIM)?;
    let kv_heads = opt_count(cx, args, "kv_heads", heads, 1, MAX_DIM)?;
    let head_dim = match args.get("head_dim") {
        Some(expr) => cx.count(expr, "head_dim", 1, MAX_DIM)?,
        None => {
            if !mcx.d_model.is_multiple_of(heads) {
                cx.error(
                    Diagnostic::error(format!("d_model {} is not divisible by {heads} attention heads", mcx.d_model))
                        .at(args.span_of("heads"), "head dim would not be whole")
                        .help("choose a head count that divides d_model, or give `head_dim:`"),
                );
                return None;
            }
            mcx.d_model / heads
        }
    };
    if heads % kv_heads != 0 {
        cx.error(
            Diagnostic::error(format!("{heads} heads cannot be shared evenly by {kv_heads} key/value heads"))
                .at(args.span_of("kv_heads"), "must divide heads")
                .help("each key/value head serves the same number of query heads"),
        );
        return None;
    }
    even_rope_head_dim(cx, head_dim, args.span)?;
    let window = match args.get("window") {
        None => None,
        Some(expr) if cx.is_none(expr) => None,
        Some(expr) => Some(cx.count(expr, "window", 1, 1 << 24)?),
    };
    Some(AttentionMixer {
        heads,
        kv_heads,
        head_dim,
        qkv_bias: flag(cx, args, "qkv_bias", false)?,
        qk_norm: flag(cx, args, "qk_norm", false)?,
        window,
        rope_theta: opt_float(cx, args, "rope", 10000.0, 1.0, 1e9)?,
        conv: spelled_conv(cx, args, Act::Identity)?,
    })
}

/// `linear(...)`: every part spelled out; defaults are the plainest choice
/// (additive matrix state, no gate, per-head norm, no conv).
pub fn linear(mcx: MixerCx, args: &Args) -> Option<LinearMixer> {
    let cx = mcx.cx;
    let d = mcx.d_model;
    let state = match args.get("state") {
        Some(expr) => match cx.symbol(expr, "state", &["matrix", "vector"])? {
            "vector" => StateKind::Vector,
            _ => StateKind::Matrix,
        },
        None => StateKind::Matrix,
    };
    let heads_default = if state == StateKind::Vector { 1 } else { 4.min(d) };
    let heads = opt_count(cx, args, "heads", heads_default, 1, MAX_DIM)?;
    // Head dims default to d_model / heads; when that is not whole, they must be given.
    let default_dim = d.is_multiple_of(heads).then(|| d / heads);
    let head_dim = match args.get("head_dim") {
        Some(expr) => Some(cx.count(expr, "head_dim", 1, MAX_DIM)?),
        None => default_dim,
    };
    let dim = |name: &str| -> Option<Option<u64>> {
        match args.get(name) {
            Some(expr) => cx.count(expr, name, 1, MAX_DIM).map(Some),
            None => Some(head_dim),
        }
    };
    let (Some(head_k_dim), Some(head_v_dim)) = (dim("head_k_dim")?, dim("head_v_dim")?) else {
        cx.error(
            Diagnostic::error(format!("d_model {d} is not divisible by {heads} heads"))
                .at(args.span_of("heads"), "head dims would not be whole")
                .help(
                    "give `head_dim:` (or both `head_k_dim:` and `head_v_dim:`), or choose heads that divide d_model",
                ),
        );
        return None;
    };
    let k_heads = opt_count(cx, args, "k_heads", heads, 1, MAX_DIM)?;
    let v_heads = opt_count(cx, args, "v_heads", k_heads, 1, MAX_DIM)?;
    let update = match args.get("update") {
        Some(expr) => match cx.symbol(expr, "update", &["additive", "delta"])? {
            "delta" => {
                let beta = match args.get("beta") {
                    Some(expr) => match cx.symbol(expr, "beta", &["sigmoid", "one"])? {
                        "sigmoid" => Beta::Sigmoid,
                        _ => Beta::One,
                    },
                    None => Beta::Sigmoid,
                };
                Update::Delta { beta, negative_eigenvalues: flag(cx, args, "neg_eigval", false)? }
            }
            _ => Update::Additive,
        },
        None => Update::Additive,
    };
    if update == Update::Additive {
        for name in ["beta", "neg_eigval"] {
            if args.has(name) {
                cx.error(
                    Diagnostic::error(format!("`{name}` only applies to the delta rule"))
                        .at(args.span_of(name), "no delta update here")
                        .help("add `update: delta`, or remove this argument"),
                );
                return None;
            }
        }
    }
    let gate = match args.get("gate") {
        Some(expr) => gate(cx, expr)?,
        None => Gate::None,
    };
    let lower_bound = match args.get("lower_bound") {
        Some(expr) => match cx.symbol(expr, "lower_bound", &["layerwise", "none"])? {
            "layerwise" => LowerBound::Layerwise,
            _ => LowerBound::None,
        },
        None => LowerBound::None,
    };
    let conv = spelled_conv(cx, args, Act::Silu)?;
    let is_delta = matches!(update, Update::Delta { .. });
    if args.has("qk") && args.has("qk_norm") {
        cx.error(
            Diagnostic::error("`qk` and `qk_norm` both given")
                .at(args.span_of("qk"), "`qk` is short for `qk_norm`")
                .help("keep one of them"),
        );
        return None;
    }
    let qk_norm = match args.get("qk_norm").or(args.get("qk")) {
        Some(expr) => match cx.symbol(expr, "qk_norm", &["l2", "l2norm", "sum", "sumnorm", "none"])? {
            "l2" | "l2norm" => QkNorm::L2,
            "sum" | "sumnorm" => QkNorm::Sum,
            _ => QkNorm::None,
        },
        None if is_delta => QkNorm::L2,
        None => QkNorm::None,
    };
    let output_norm = match args.get("output_norm") {
        Some(expr) => match cx.symbol(expr, "output_norm", &["per_head", "full", "none"])? {
            "per_head" => OutputNorm::PerHead,
            "full" => OutputNorm::Full,
            _ => OutputNorm::None,
        },
        None => OutputNorm::PerHead,
    };
    let linear = LinearMixer {
        state,
        update,
        gate,
        lower_bound,
        tie_key_to_gate: flag(cx, args, "tie_key_to_gate", false)?,
        heads,
        k_heads,
        v_heads,
        head_k_dim,
        head_v_dim,
        conv,
        qk_act: opt_act(cx, args, "qk_act")?,
        v_act: opt_act(cx, args, "v_act")?,
        qk_norm,
        rope: match args.get("rope") {
            None => None,
            Some(expr) if cx.is_none(expr) => None,
            Some(expr) => Some(cx.float(expr, "rope", 1.0, 1e9)?),
        },
        output_gate: match args.get("output_gate") {
            None => None,
            Some(expr) => match act(cx, expr, "output_gate")? {
                Act::Identity => None,
                other => Some(other),
            },
        },
        output_norm,
        clamp_min: match args.get("clamp_min") {
            None => None,
            Some(expr) if cx.is_none(expr) => None,
            Some(expr) => Some(cx.float(expr, "clamp_min", -1e6, 0.0)?),
        },
        scale: match args.get("scale") {
            Some(expr) => cx.float(expr, "scale", 1e-9, 1e9)?,
            None if state == StateKind::Vector => 1.0,
            None => (head_k_dim as f64).powf(-0.5),
        },
    };
    check_linear(mcx, &linear, args.span)?;
    Some(linear)
}

/// `gate: none | fixed | scalar(mamba) | scalar(logsigmoid, normalizer: N) |
/// vector(logsigmoid, normalizer: N, low_rank: R | none)`.
fn gate(cx: &Cx, expr: &Expr) -> Option<Gate> {
    let example =
        "`none`, `fixed`, `scalar(mamba)`, `scalar(logsigmoid)` or `vector(logsigmoid, normalizer: 16, low_rank: 16)`";
    let call = cx.call(expr, "a gate", &["none", "fixed", "scalar", "vector"], example)?;
    let (kind, args, span) = (call.name, call.args, call.span);
    match kind {
        "none" | "fixed" => {
            Args::new(cx, kind, span, args, &[], 0);
            Some(if kind == "none" { Gate::None } else { Gate::Fixed })
        }
        // `scalar` or `vector`.
        _ => {
            let allowed: &[&str] = if kind == "vector" { &["normalizer", "low_rank"] } else { &["normalizer"] };
            let gate_args = Args::new(cx, kind, span, args, allowed, 1);
            let parameterisation = match gate_args.positional(0) {
                Some(expr) => cx.symbol(expr, "gate parameterisation", &["logsigmoid", "mamba"])?,
                None if kind == "scalar" => "mamba",
                None => "logsigmoid",
            };
            let param = if parameterisation == "mamba" {
                if gate_args.has("normalizer") || gate_args.has("low_rank") {
                    cx.error(
                        Diagnostic::error("the Mamba-style gate takes no normalizer or rank")
                            .at(span, "mamba gate")
                            .help("`scalar(mamba)` is −exp(A_log)·softplus(W_a x + dt_bias); use `logsigmoid` for a normalised gate"),
                    );
                    return None;
                }
                if kind == "vector" {
                    cx.error(
                        Diagnostic::error("the Mamba-style gate is one value per head")
                            .at(span, "vector(mamba)")
                            .help("write `scalar(mamba)`, or `vector(logsigmoid, ...)` for a per-channel gate"),
                    );
                    return None;
                }
                GateParam::Mamba
            } else {
                let normalizer = opt_float(cx, &gate_args, "normalizer", 1.0, 1e-6, 1e6)?;
                let low_rank = match gate_args.get("low_rank") {
                    None => None,
                    Some(expr) if cx.is_none(expr) => None,
                    Some(expr) => Some(cx.count(expr, "low_rank", 1, MAX_DIM)?),
                };
                GateParam::LogSigmoid { normalizer, low_rank }
            };
            Some(if kind == "scalar" { Gate::Scalar(param) } else { Gate::Vector(param) })
        }
    }
}

/// Rejects compositions that make no sense, with the reason.
pub fn check_linear(mcx: MixerCx, linear: &LinearMixer, span: Span) -> Option<()> {
    let cx = mcx.cx;
    let reject = |message: &str, help: &str| {
        cx.error(Diagnostic::error(message.to_string()).at(span, "in this mixer").help(help.to_string()));
        None
    };
    let is_delta = matches!(linear.update, Update::Delta { .. });
    let logsigmoid_gate = matches!(linear.gate.param(), Some(GateParam::LogSigmoid { .. }));
    if linear.state == StateKind::Vector {
        if is_delta {
            return reject(
                "the delta rule needs a matrix state",
                "it reads the state back with the key (Sᵀk); use `state: matrix`, or `update: additive`",
            );
        }
        if !matches!(linear.gate, Gate::Vector(_)) {
            return reject(
                "a vector state needs a per-channel data-dependent gate",
                "use `gate: vector(logsigmoid)` (HGRN)",
            );
        }
        if linear.heads != 1 || linear.k_heads != 1 || linear.v_heads != 1 {
            return reject("a vector state has no heads", "remove `heads`; the state is one value per channel");
        }
        if linear.head_k_dim != linear.head_v_dim {
            return reject("a vector state has one width", "give `head_dim` only");
        }
        if linear.rope.is_some() || linear.qk_norm != QkNorm::None || linear.qk_act != Act::Identity {
            return reject(
                "a vector state has no query or key to rotate, normalise or map",
                "remove `rope`, `qk_norm` and `qk_act`",
            );
        }
    }
    if linear.tie_key_to_gate {
        if !matches!(linear.gate, Gate::Vector(_)) {
            return reject(
                "`tie_key_to_gate` needs a per-channel data-dependent gate",
                "the tied key is 1 − α per key channel; use `gate: vector(logsigmoid)`",
            );
        }
        if is_delta {
            return reject(
                "`tie_key_to_gate` cannot be used with the delta rule",
                "the delta rule is a contraction only for ‖k‖ ≤ 1, and the tied key 1 − α is not normalised",
            );
        }
        if linear.qk_norm != QkNorm::None {
            return reject("a tied key has no projection to normalise", "remove `qk_norm`, or untie the key");
        }
    }
    if is_delta && linear.qk_norm == QkNorm::None {
        return reject(
            "the delta rule needs normalised keys",
            "with unnormalised k, (I − βkkᵀ) is not a contraction and the state diverges; use `qk_norm: l2`",
        );
    }
    if linear.lower_bound == LowerBound::Layerwise && !matches!(linear.gate, Gate::Vector(GateParam::LogSigmoid { .. }))
    {
        return reject(
            "`lower_bound: layerwise` needs a per-channel log-sigmoid gate",
            "HGRN's floor is one value per channel, λ = γ + (1 − γ)·σ(f); use `gate: vector(logsigmoid)`",
        );
    }
    if linear.clamp_min.is_some() && !logsigmoid_gate {
        return reject(
            "`clamp_min` clamps a log-sigmoid gate",
            "use `gate: vector(logsigmoid, ...)`, or remove `clamp_min`",
        );
    }
    if linear.rope.is_some() && !linear.head_k_dim.is_multiple_of(2) {
        return reject("RoPE needs an even key head dim", "choose an even `head_k_dim`");
    }
    let gqa = linear.k_heads == linear.v_heads && linear.heads.is_multiple_of(linear.k_heads);
    let gva = linear.k_heads == linear.heads && linear.v_heads.is_multiple_of(linear.heads);
    if !(gqa || gva) {
        return reject(
            "this head grouping is not supported",
            "either keys and values share heads that divide the query heads (kv_heads), or values have a multiple of the query heads (v_heads)",
        );
    }
    Some(())
}

pub fn flag(cx: &Cx, args: &Args, name: &str, default: bool) -> Option<bool> {
    match args.get(name) {
        Some(expr) => cx.bool(expr, name),
        None => Some(default),
    }
}

pub fn opt_count(cx: &Cx, args: &Args, name: &str, default: u64, min: u64, max: u64) -> Option<u64> {
    match args.get(name) {
        Some(expr) => cx.count(expr, name, min, max),
        None => Some(default),
    }
}

pub fn opt_float(cx: &Cx, args: &Args, name: &str, default: f64, min: f64, max: f64) -> Option<f64> {
    match args.get(name) {
        Some(expr) => cx.float(expr, name, min, max),
        None => Some(default),
    }
}

/// A convolution spelled out by `short_conv`, `conv_act` (else `default_act`) and
/// `conv_bias` (else none); the last two are errors without the first.
fn spelled_conv(cx: &Cx, args: &Args, default_act: Act) -> Option<Option<Conv>> {
    let conv_act = match args.get("conv_act") {
        Some(expr) => act(cx, expr, "conv_act")?,
        None => default_act,
    };
    let conv_bias = flag(cx, args, "conv_bias", false)?;
    let conv = short_conv(cx, args, None)?.map(|size| Conv { size, bias: conv_bias, act: conv_act });
    if conv.is_none() {
        for name in ["conv_act", "conv_bias"] {
            if args.has(name) {
                cx.error(
                    Diagnostic::error(format!("`{name}` needs a short convolution"))
                        .at(args.span_of(name), "there is no convolution")
                        .help("add `short_conv: 4`, or remove this argument"),
                );
                return None;
            }
        }
    }
    Some(conv)
}

/// `short_conv: 4`, `short_conv: true` (4), `short_conv: false | none`.
fn short_conv(cx: &Cx, args: &Args, default: Option<u64>) -> Option<Option<u64>> {
    let Some(expr) = args.get("short_conv") else {
        return Some(default);
    };
    let resolved = cx.resolve(expr)?;
    match &resolved.expr.kind {
        ExprKind::Bool(true) => Some(Some(4)),
        ExprKind::Bool(false) | ExprKind::None => Some(None),
        _ => cx.count(expr, "short_conv", 1, 64).map(Some),
    }
}

const ACTS: &[&str] = &["identity", "none", "silu", "swish", "relu", "elu"];

fn act(cx: &Cx, expr: &Expr, what: &str) -> Option<Act> {
    let resolved = cx.resolve(expr)?;
    if let ExprKind::Bool(value) = resolved.expr.kind {
        return Some(if value { Act::Silu } else { Act::Identity });
    }
    Some(match cx.symbol(expr, what, ACTS)? {
        "silu" | "swish" => Act::Silu,
        "relu" => Act::Relu,
        "elu" => Act::EluP1,
        _ => Act::Identity,
    })
}

fn opt_act(cx: &Cx, args: &Args, name: &str) -> Option<Act> {
    match args.get(name) {
        Some(expr) => act(cx, expr, name),
        None => Some(Act::Identity),
    }
}

fn feature_map(cx: &Cx, args: &Args) -> Option<Act> {
    opt_act(cx, args, "feature_map")
}
