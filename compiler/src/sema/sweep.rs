//! The `sweep` block: a grid of runs over the file's `let`-bound values, learning rates
//! and seeds, which `hybc sweep` expands into runs. Each field names what varies and
//! lists its values:
//!
//! ```text
//! sweep {
//!     linear = [gdn, gla]          // any let: each value replaces the let's
//!     ratio  = [1, 3, 7]
//!     lr     = [1e-3, 3e-3]        // the optimizer's learning rate
//!     seeds  = 2                   // seeds 0 and 1 (or a list: [0, 7])
//! }
//! ```
//!
//! A run is the file compiled with `let NAME = VALUE` for each axis (an importer's lets
//! override the imported file's, so the values are checked like any other let).

use hyb_grammar::Diagnostic;
use hyb_grammar::ast::{Expr, ExprKind};
use hyb_grammar::diag::closest;

use super::values::Cx;

use crate::ir::train::{Axis, SweepConfig};

/// The list a sweep field gives, or a diagnostic.
fn list<'e>(cx: &Cx, name: &str, expr: &'e Expr) -> Option<&'e [Expr]> {
    match &expr.kind {
        ExprKind::List(items) if !items.is_empty() => Some(items),
        _ => {
            cx.error(
                Diagnostic::error(format!("`{name}` in a sweep takes a list of the values to try"))
                    .at(expr.span, "not a non-empty list")
                    .help(format!("write `{name} = [a, b, c]`")),
            );
            None
        }
    }
}

pub fn check_sweep(cx: &Cx) -> Option<SweepConfig> {
    let block = &cx.scope.sweep;
    let block_span = block.span?;
    let mut config = SweepConfig { axes: Vec::new(), lrs: Vec::new(), seeds: Vec::new() };
    // In the order written: the first axis is the plot's series, the last its x axis.
    let mut fields: Vec<_> = block.fields.iter().collect();
    fields.sort_by_key(|(_, def)| (def.name_span.file, def.name_span.start));
    for (name, def) in fields {
        let value = &def.value.value;
        let [expr] = value.seq.as_slice() else {
            cx.error(
                Diagnostic::error(format!("`{name}` in a sweep takes one list"))
                    .at(value.span, "a sequence")
                    .help(format!("write `{name} = [a, b, c]`")),
            );
            continue;
        };
        match name.as_str() {
            "lr" => {
                if let Some(items) = list(cx, name, expr) {
                    config.lrs = items.iter().filter_map(|e| cx.float(e, "lr", f64::MIN_POSITIVE, 10.0)).collect();
                }
            }
            "seeds" => {
                config.seeds = match &expr.kind {
                    ExprKind::List(_) => list(cx, name, expr)
                        .map(|items| {
                            items.iter().filter_map(|e| super::train::training_seed(cx, e, u64::MAX >> 1)).collect()
                        })
                        .unwrap_or_default(),
                    _ => cx.count(expr, "seeds", 1, 1024).map(|n| (0..n).collect()).unwrap_or_default(),
                };
            }
            _ if cx.scope.lets.contains_key(name) => {
                if let Some(items) = list(cx, name, expr) {
                    let values = items.iter().map(crate::fmt::expr_to_string).collect();
                    config.axes.push(Axis { name: name.clone(), values });
                }
            }
            _ => {
                let lets: Vec<&str> = cx.scope.lets.keys().map(String::as_str).collect();
                let mut diagnostic =
                    Diagnostic::error(format!("a sweep varies lets, `lr` or `seeds`; `{name}` is none"))
                        .at(def.name_span, "no let of this name");
                diagnostic = match closest(name, lets.iter().copied().chain(["lr", "seeds"])) {
                    Some(near) => diagnostic.help(format!("did you mean `{near}`?")),
                    None => diagnostic.help(format!("bind it first: `let {name} = ...`, then sweep over it")),
                };
                cx.error(diagnostic);
            }
        }
    }
    if block.fields.is_empty() {
        cx.error(
            Diagnostic::error("the sweep block varies nothing")
                .at(block_span, "empty")
                .help("list values of a let, e.g. `linear = [gdn, gla]`, or `lr = [1e-3, 3e-3]`"),
        );
    }
    if cx.scope.train.span.is_none() {
        cx.error(
            Diagnostic::error("a sweep needs a train block: each of its runs trains")
                .at(block_span, "no train block in this file or its imports")
                .help("add `train { data = mqar(...) ... }`"),
        );
    }
    Some(config)
}
