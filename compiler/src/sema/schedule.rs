//! Layer schedules to the flat layer list.
//!
//! `(gdn × 3, attn) × 6` expands left to right; a name bound by `let` expands to its
//! value; `with attn at [..]` / `with attn every N offset K` then replace the layers
//! they select (offset defaults to N − 1, so `every 4` is layers 3, 7, 11, ...). Two
//! rules selecting one layer, an index past the end, an empty group (a model needs a
//! layer) or more than [`MAX_LAYERS`] layers are errors. Sizes are computed before
//! anything is materialised, so `gdn × 1000000000` is an error, not an allocation.

use hyb_grammar::ast::{Expr, ExprKind, RuleKind, Value};
use hyb_grammar::{Diagnostic, Span};

use super::values::{Cx, describe};

pub const MAX_LAYERS: u64 = 4096;
/// Nesting of groups and `let`s; cycles are rejected first, and brackets are bounded by
/// the parser, so real schedules never come near this.
const MAX_DEPTH: usize = 1024;

/// One scheduled layer: the mixer expression that names it and where it was placed.
#[derive(Clone, Debug)]
pub struct Slot<'e> {
    pub mixer: &'e Expr,
    pub span: Span,
}

pub fn expand<'e>(cx: &'e Cx, value: &'e Value) -> Option<Vec<Slot<'e>>> {
    for expr in &value.seq {
        if let Some(name) = find_cycle(cx, expr, &mut Vec::new()) {
            cx.error(
                Diagnostic::error("the schedule refers to itself")
                    .at(name.span, "this name leads back to a `let` that contains it")
                    .help("a `let` used in a schedule must not contain itself"),
            );
            return None;
        }
    }
    let mut slots = Vec::new();
    expand_value(cx, value, &mut slots, 0)?;
    Some(slots)
}

/// The first name in `expr` that leads back to a `let` being expanded, if any.
fn find_cycle<'e>(cx: &'e Cx, expr: &'e Expr, stack: &mut Vec<&'e str>) -> Option<&'e Expr> {
    match &expr.kind {
        ExprKind::Name(name) => {
            let value = cx.let_value(expr)?;
            if stack.contains(&name.text.as_str()) {
                return Some(expr);
            }
            stack.push(&name.text);
            let found = value.seq.iter().find_map(|item| find_cycle(cx, item, stack));
            stack.pop();
            found
        }
        ExprKind::Group(items) => items.iter().find_map(|item| find_cycle(cx, item, stack)),
        ExprKind::Repeat { body, .. } => find_cycle(cx, body, stack),
        _ => None,
    }
}

fn expand_value<'e>(cx: &'e Cx, value: &'e Value, out: &mut Vec<Slot<'e>>, depth: usize) -> Option<()> {
    let start = out.len();
    for expr in &value.seq {
        expand_expr(cx, expr, out, depth)?;
    }
    apply_rules(cx, value, out, start)
}

fn expand_expr<'e>(cx: &'e Cx, expr: &'e Expr, out: &mut Vec<Slot<'e>>, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        cx.error(
            Diagnostic::error("the schedule refers to itself")
                .at(expr.span, "never ends")
                .help("a `let` used in a schedule must not contain itself"),
        );
        return None;
    }
    let total = layer_count(cx, expr, depth)?;
    if (out.len() as u64).saturating_add(total) > MAX_LAYERS {
        let here = if total == u64::MAX {
            "2⁶⁴ − 1 layers or more here".to_string()
        } else {
            format!("{total} layers here")
        };
        cx.error(
            Diagnostic::error(format!("the schedule has more than {MAX_LAYERS} layers"))
                .at(expr.span, here)
                .help("check the repetition counts"),
        );
        return None;
    }
    match &expr.kind {
        ExprKind::Name(_) => match cx.let_value(expr) {
            Some(value) => expand_value(cx, value, out, depth + 1),
            None => {
                out.push(Slot { mixer: expr, span: expr.span });
                Some(())
            }
        },
        ExprKind::Call { .. } => {
            out.push(Slot { mixer: expr, span: expr.span });
            Some(())
        }
        ExprKind::Group(items) if items.is_empty() => {
            cx.error(
                Diagnostic::error("an empty group in the schedule")
                    .at(expr.span, "holds no layer")
                    .help("a group holds at least one mixer, as in `(gdn × 3, attn)`; remove the `()`"),
            );
            None
        }
        ExprKind::Group(items) => {
            for item in items {
                expand_expr(cx, item, out, depth + 1)?;
            }
            Some(())
        }
        ExprKind::Repeat { body, count } => {
            let count = cx.count(count, "repetition count", 1, MAX_LAYERS)?;
            let start = out.len();
            expand_expr(cx, body, out, depth + 1)?;
            let once = out[start..].to_vec();
            for _ in 1..count {
                out.extend(once.iter().cloned());
            }
            Some(())
        }
        _ => {
            cx.error(not_a_layer(expr));
            None
        }
    }
}

/// Number of layers an expression expands to, saturating, without expanding it.
fn layer_count(cx: &Cx, expr: &Expr, depth: usize) -> Option<u64> {
    if depth > MAX_DEPTH {
        cx.error(
            Diagnostic::error("the schedule refers to itself")
                .at(expr.span, "never ends")
                .help("a `let` used in a schedule must not contain itself"),
        );
        return None;
    }
    Some(match &expr.kind {
        ExprKind::Name(_) => match cx.let_value(expr) {
            Some(value) => {
                let mut total = 0u64;
                for item in &value.seq {
                    total = total.saturating_add(layer_count(cx, item, depth + 1)?);
                }
                total
            }
            None => 1,
        },
        ExprKind::Call { .. } => 1,
        ExprKind::Group(items) => {
            let mut total = 0u64;
            for item in items {
                total = total.saturating_add(layer_count(cx, item, depth + 1)?);
            }
            total
        }
        ExprKind::Repeat { body, count } => {
            let count = cx.count(count, "repetition count", 1, MAX_LAYERS)?;
            layer_count(cx, body, depth + 1)?.saturating_mul(count)
        }
        _ => {
            cx.error(not_a_layer(expr));
            return None;
        }
    })
}

fn not_a_layer(expr: &Expr) -> Diagnostic {
    Diagnostic::error(format!("expected a mixer in the schedule, found {}", describe(expr)))
        .at(expr.span, "not a layer")
        .help("a schedule lists mixers: `(gdn × 3, attn) × 6`")
}

fn apply_rules<'e>(cx: &'e Cx, value: &'e Value, out: &mut [Slot<'e>], start: usize) -> Option<()> {
    let layers = out.len() - start;
    let mut assigned: Vec<Option<Span>> = vec![None; layers];
    for rule in &value.rules {
        let indices: Vec<usize> = match &rule.kind {
            RuleKind::At(list) => {
                let values = cx.int_list(list, "layer index", 0, MAX_LAYERS as i64)?;
                let mut indices = Vec::new();
                for index in values {
                    let index = index as usize;
                    if index >= layers {
                        cx.error(
                            Diagnostic::error(format!("layer index {index} is past the end of the schedule"))
                                .at(
                                    list.span,
                                    format!("the schedule has {layers} layers (0..{})", layers.saturating_sub(1)),
                                )
                                .help("indices start at 0"),
                        );
                        return None;
                    }
                    indices.push(index);
                }
                indices
            }
            RuleKind::Every { period, offset } => {
                let period = cx.count(period, "period", 1, MAX_LAYERS)? as usize;
                let offset = match offset {
                    Some(expr) => cx.count(expr, "offset", 0, period as u64 - 1)? as usize,
                    None => period - 1,
                };
                (0..layers).filter(|i| i % period == offset).collect()
            }
        };
        if indices.is_empty() {
            cx.error(
                Diagnostic::error("this rule selects no layer")
                    .at(rule.span, format!("the schedule has {layers} layers"))
                    .help("check the period and offset against the number of layers"),
            );
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(repeated) = indices.iter().find(|index| !seen.insert(**index)) {
            cx.error(
                Diagnostic::error(format!("layer {repeated} is listed twice in this rule"))
                    .at(rule.span, "repeated index")
                    .help("list each layer once"),
            );
            return None;
        }
        for index in indices {
            if let Some(previous) = assigned[index] {
                cx.error(
                    Diagnostic::error(format!("layer {index} is chosen by two rules"))
                        .at(rule.span, "second rule")
                        .also(previous, "first rule")
                        .help("each layer may be replaced by one rule"),
                );
                return None;
            }
            assigned[index] = Some(rule.span);
            out[start + index] = Slot { mixer: &rule.mixer, span: rule.span };
        }
    }
    Some(())
}
