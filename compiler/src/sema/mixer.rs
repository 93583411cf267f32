//! Mixer expressions to the generic description: presets (`gla(heads: 4)`), the
//! composition `linear(...)`, `attention(...)` and head-wise routing `heads(...)`.
//!
//! Every preset is written here as a table of defaults over the SAME parts that
//! `linear(...)` takes (see `presets.rs`); after this module nothing knows which preset
//! a mixer came from except its label.

use hyb_grammar::ast::{Expr, ExprKind};
use hyb_grammar::{Diagnostic, Span};

use super::presets::{self, PRESET_NAMES};
use super::values::{Args, Cx, describe, unknown_name};
use crate::ir::*;

/// Largest head count or head dimension accepted (keeps shapes far from overflow).
pub const MAX_DIM: u64 = 1 << 16;

/// The context a mixer is resolved in.
#[derive(Clone, Copy)]
pub struct MixerCx<'c, 'a> {
    pub cx: &'c Cx<'a>,
    pub d_model: u64,
    /// The user mixer whose definition is being resolved: inside `mixer gla =
    /// gla(heads: 4)`, the name `gla` means the preset, not the mixer itself.
    pub defining: Option<&'c str>,
}

/// A resolved mixer: its description and the preset it came from.
pub struct Resolved {
    pub preset: Option<Preset>,
    pub kind: MixerKind,
}

/// Resolves a mixer expression: a name (user mixer, preset, alias) or a call.
pub fn resolve(mcx: MixerCx, expr: &Expr, depth: usize) -> Option<Resolved> {
    let cx = mcx.cx;
    if depth > 16 {
        cx.error(
            Diagnostic::error("mixers refer to each other in a cycle")
                .at(expr.span, "never resolves to a mixer")
                .help("one of these mixers must be defined by a preset, `linear(...)` or `heads(...)`"),
        );
        return None;
    }
    let resolved = cx.resolve(expr)?;
    let (callee, args) = match &resolved.expr.kind {
        ExprKind::Name(name) => (name, &[][..]),
        ExprKind::Call { callee, args } => (callee, &args[..]),
        _ => {
            cx.error(
                Diagnostic::error(format!("expected a mixer, found {}", describe(resolved.expr)))
                    .at(resolved.expr.span, "not a mixer")
                    .help("a mixer is a preset like `gla(heads: 4)`, a `linear(...)` composition, or the name of a `mixer`"),
            );
            return None;
        }
    };
    // A user-defined mixer, possibly called with overrides: `base(heads: 8)`.
    let user = cx.scope.mixers.get_key_value(&callee.text).filter(|(name, _)| mcx.defining != Some(name.as_str()));
    if let Some((name, def)) = user {
        let inner = MixerCx { defining: Some(name.as_str()), ..mcx };
        if args.is_empty() {
            return resolve(inner, &def.value, depth + 1);
        }
        return resolve_with_overrides(inner, &def.value, args, resolved.expr.span, depth);
    }
    let span = resolved.expr.span;
    match callee.text.as_str() {
        "linear" => presets::linear(mcx, &Args::new(cx, "linear", span, args, presets::LINEAR_ARGS, 0))
            .map(|linear| Resolved { preset: None, kind: MixerKind::Linear(linear) }),
        "heads" => routed(mcx, span, args, depth),
        name => match presets::lookup(name) {
            Some(preset) => {
                presets::preset(mcx, preset, span, args).map(|kind| Resolved { preset: Some(preset), kind })
            }
            None => {
                let mut known: Vec<&str> = cx.scope.mixers.keys().map(String::as_str).collect();
                known.extend(PRESET_NAMES);
                known.extend(["linear", "heads"]);
                cx.error(unknown_name(name, callee.span, "mixer", &known).note(
                    "presets: hgrn, hgrn2, retnet, gla, deltanet, gated_deltanet (gdn), attention (attn); compose with linear(...)",
                ));
                None
            }
        },
    }
}

/// `base(args)` where `base` is a user mixer bound to a call: the call's arguments,
/// with these overriding them by name.
fn resolve_with_overrides(
    mcx: MixerCx,
    base: &Expr,
    overrides: &[hyb_grammar::ast::Arg],
    span: Span,
    depth: usize,
) -> Option<Resolved> {
    let cx = mcx.cx;
    let base_resolved = cx.resolve(base)?;
    let merged = match &base_resolved.expr.kind {
        ExprKind::Call { callee, args } => {
            let mut merged: Vec<_> = args
                .iter()
                .filter(|arg| {
                    !overrides.iter().any(|o| o.name.as_ref().map(|n| &n.text) == arg.name.as_ref().map(|n| &n.text))
                })
                .cloned()
                .collect();
            merged.extend(overrides.iter().cloned());
            Expr { kind: ExprKind::Call { callee: callee.clone(), args: merged }, span }
        }
        ExprKind::Name(name) => Expr { kind: ExprKind::Call { callee: name.clone(), args: overrides.to_vec() }, span },
        _ => return resolve(mcx, base, depth + 1),
    };
    resolve(mcx, &merged, depth + 1)
}

/// `heads(gdn: 12, attn: 4, combine: concat, head_dim: 64)`.
fn routed(mcx: MixerCx, span: Span, args: &[hyb_grammar::ast::Arg], depth: usize) -> Option<Resolved> {
    let cx = mcx.cx;
    let mut branches_args = Vec::new();
    let mut option_args = Vec::new();
    for arg in args {
        match arg.name.as_ref().map(|n| n.text.as_str()) {
            Some("combine" | "head_dim") => option_args.push(arg.clone()),
            Some(_) => branches_args.push(arg),
            None => {
                cx.error(
                    Diagnostic::error("a routing branch needs a mixer name")
                        .at(arg.span, "unnamed branch")
                        .help("write branches as `MIXER: HEADS`, e.g. `heads(gdn: 12, attn: 4)`"),
                );
                return None;
            }
        }
    }
    let options = Args::new(cx, "heads", span, &option_args, &["combine", "head_dim"], 0);
    if branches_args.len() < 2 {
        cx.error(
            Diagnostic::error("head-wise routing needs at least two branches")
                .at(span, format!("{} branch", branches_args.len()))
                .help("e.g. `heads(gdn: 12, attn: 4)`; a single mixer needs no routing"),
        );
        return None;
    }
    let mut counts = Vec::new();
    for arg in &branches_args {
        counts.push(cx.count(&arg.value, "heads of a branch", 1, MAX_DIM)?);
    }
    let total: u64 = counts.iter().sum();
    let head_dim = match options.get("head_dim") {
        Some(expr) => cx.count(expr, "head_dim", 1, MAX_DIM)?,
        None => {
            if !mcx.d_model.is_multiple_of(total) {
                let split = counts.iter().map(u64::to_string).collect::<Vec<_>>().join(" + ");
                cx.error(
                    Diagnostic::error(format!(
                        "the head split does not add up: d_model {} is not divisible by {split} = {total} heads",
                        mcx.d_model
                    ))
                    .at(span, "head dim would not be whole")
                    .help("change the split so the heads divide d_model, or give `head_dim:` explicitly"),
                );
                return None;
            }
            mcx.d_model / total
        }
    };
    let combine = match options.get("combine") {
        Some(expr) => match cx.symbol(expr, "combine rule", &["concat", "mean"])? {
            "concat" => Combine::Concat,
            _ => Combine::Mean,
        },
        None => Combine::Concat,
    };
    let mut branches = Vec::new();
    let mut ok = true;
    for (arg, heads) in branches_args.iter().zip(counts) {
        let name = arg.name.as_ref().expect("branches are named");
        if branches.iter().any(|b: &Branch| b.name == name.text) {
            cx.error(
                Diagnostic::error(format!("branch `{}` appears twice", name.text))
                    .at(name.span, "again here")
                    .help("give each mixer one head count"),
            );
            ok = false;
            continue;
        }
        let mixer_expr = Expr { kind: ExprKind::Name(name.clone()), span: name.span };
        let Some(resolved) = resolve(mcx, &mixer_expr, depth + 1) else {
            ok = false;
            continue;
        };
        match rehead(mcx, resolved.kind, heads, head_dim, name.span, &name.text) {
            Some(kind) => branches.push(Branch { name: name.text.clone(), preset: resolved.preset, kind }),
            None => ok = false,
        }
    }
    ok.then_some(Resolved { preset: None, kind: MixerKind::Routed(RoutedMixer { branches, combine, head_dim }) })
}

/// A branch's mixer with the routed layer's head count and head dim.
fn rehead(mcx: MixerCx, kind: MixerKind, heads: u64, head_dim: u64, span: Span, name: &str) -> Option<MixerKind> {
    let cx = mcx.cx;
    match kind {
        MixerKind::Routed(_) => {
            cx.error(
                Diagnostic::error("head-wise routing cannot be nested")
                    .at(span, format!("`{name}` is itself a `heads(...)` layer"))
                    .help("list all branches in one `heads(...)`"),
            );
            None
        }
        MixerKind::Attention(attention) => {
            if attention.kv_heads != attention.heads {
                cx.error(grouped_branch(span, name));
                return None;
            }
            presets::even_rope_head_dim(cx, head_dim, span)?;
            Some(MixerKind::Attention(AttentionMixer { heads, kv_heads: heads, head_dim, ..attention }))
        }
        MixerKind::Linear(linear) => {
            if linear.state == StateKind::Vector {
                cx.error(
                    Diagnostic::error(format!(
                        "`{name}` has a vector state with no heads; it cannot be a routing branch"
                    ))
                    .at(span, "vector-state mixer")
                    .help("route between mixers with heads (matrix state or attention)"),
                );
                return None;
            }
            if linear.k_heads != linear.heads || linear.v_heads != linear.heads {
                cx.error(grouped_branch(span, name));
                return None;
            }
            if !(linear.head_v_dim * head_dim).is_multiple_of(linear.head_k_dim) {
                cx.error(
                    Diagnostic::error(format!("`{name}`'s value/key head ratio does not scale to head_dim {head_dim}"))
                        .at(span, "value head dim would not be whole")
                        .help("choose a head_dim the mixer's value/key ratio divides evenly"),
                );
                return None;
            }
            let head_v_dim = linear.head_v_dim * head_dim / linear.head_k_dim;
            // The default scale follows the new key head dim; an explicit one is kept.
            let default_scale = linear.scale == (linear.head_k_dim as f64).powf(-0.5);
            let mut rehead =
                LinearMixer { heads, k_heads: heads, v_heads: heads, head_k_dim: head_dim, head_v_dim, ..linear };
            if default_scale {
                rehead.scale = (head_dim as f64).powf(-0.5);
            }
            presets::check_linear(mcx, &rehead, span)?;
            Some(MixerKind::Linear(rehead))
        }
    }
}

fn grouped_branch(span: Span, name: &str) -> Diagnostic {
    Diagnostic::error(format!("`{name}` shares key/value heads between query heads; a routing branch has plain heads"))
        .at(span, "grouped heads")
        .help("drop `kv_heads`/`v_heads` from this mixer, or use a separate mixer for routing")
}
