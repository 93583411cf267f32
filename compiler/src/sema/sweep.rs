//! The `sweep` block: a grid of runs over the file's `let`-bound values, and the
//! protocol that measures each cell of it, which `hybc sweep` expands into runs. Each
//! field names what varies and lists its values, or sets the protocol:
//!
//! ```text
//! sweep {
//!     linear = [gdn, gla]                          // any let: each value replaces the let's
//!     ratio  = [1, 3, 7]
//!     lr     = log_grid(from: 3e-4, to: 1e-2, points: 4)   // or a list: [1e-3, 3e-3]
//!     seeds  = 3                                   // seeds 0, 1, 2 (or a list: [0, 7])
//!     search_seeds = 2                             // runs per rate of the search (1)
//!     lr_tie = 0.01                                // within 1 point of the best: the largest rate
//!     lr_refine = true                             // then the midpoints around the best
//!     lr_extend = 2                                // past an end the best lies at: ≤ 2 steps
//!     tokens = 2_000_000                           // every run's budget
//!     stop   = plateau(patience: 3, min_delta: 0.01)
//! }
//! ```
//!
//! A run is the file compiled with `let NAME = VALUE` for each axis (an importer's lets
//! override the imported file's, so the values are checked like any other let). More
//! than one learning rate is a search, decided by the held-out score; `tokens` becomes
//! steps through the train block's `batch × seq_len`; `stop` needs `eval_every` (the
//! plateau is judged at evaluations). Nothing is accepted that a run would then ignore.

use hyb_grammar::ast::{Expr, ExprKind};
use hyb_grammar::diag::closest;
use hyb_grammar::{Diagnostic, Span};

use super::presets::{opt_count, opt_float};
use super::values::{Args, Cx};

use crate::ir::train::{Axis, LrSchedule, Plateau, SweepConfig, TrainConfig, budget_steps};

/// The protocol's fields (every other field is a let to vary).
const FIELDS: &[&str] = &["lr", "seeds", "search_seeds", "lr_tie", "lr_refine", "lr_extend", "tokens", "stop"];

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

pub fn check_sweep(cx: &Cx, train: Option<&TrainConfig>) -> Option<SweepConfig> {
    let block = &cx.scope.sweep;
    let block_span = block.span?;
    let mut config = SweepConfig {
        axes: Vec::new(),
        lrs: Vec::new(),
        seeds: Vec::new(),
        search_runs: 1,
        lr_tie: 0.0,
        refine: false,
        extend: 0,
        tokens: None,
        plateau: None,
    };
    let mut spans = Spans::default();
    // In the order written: the first axis is the plot's series, the last its x axis.
    let mut fields: Vec<_> = block.fields.iter().collect();
    fields.sort_by_key(|(_, def)| (def.name_span.file, def.name_span.start));
    for (name, def) in fields {
        let value = &def.value.value;
        let [expr] = value.seq.as_slice() else {
            cx.error(
                Diagnostic::error(format!("`{name}` in a sweep takes one value"))
                    .at(value.span, "a sequence")
                    .help(format!("write `{name} = [a, b, c]`")),
            );
            continue;
        };
        match name.as_str() {
            "lr" => config.lrs = learning_rates(cx, expr).unwrap_or_default(),
            "seeds" => config.seeds = seeds(cx, expr).unwrap_or_default(),
            "search_seeds" => {
                config.search_runs = cx.count(expr, "search_seeds", 1, 64).unwrap_or(1);
                spans.search_seeds = Some(expr.span);
            }
            "lr_tie" => {
                config.lr_tie = cx.float(expr, "lr_tie", 0.0, 0.5).unwrap_or(0.0);
                spans.lr_tie = Some(expr.span);
            }
            "lr_refine" => {
                config.refine = cx.bool(expr, "lr_refine").unwrap_or(false);
                spans.lr_refine = Some(expr.span);
            }
            "lr_extend" => {
                config.extend = cx.count(expr, "lr_extend", 0, 8).unwrap_or(0) as usize;
                spans.lr_extend = Some(expr.span);
            }
            "tokens" => {
                config.tokens = cx.float(expr, "tokens", 1.0, 1e15).and_then(|t| whole(cx, expr, t));
                spans.tokens = Some(expr.span);
            }
            "stop" => {
                config.plateau = plateau(cx, expr);
                spans.stop = Some(expr.span);
            }
            _ if cx.scope.lets.contains_key(name) => {
                if let Some(items) = list(cx, name, expr) {
                    let values = items.iter().map(crate::fmt::expr_to_string).collect();
                    config.axes.push(Axis { name: name.clone(), values });
                }
            }
            _ => cx.error(unknown_field(cx, name, def.name_span)),
        }
    }
    // Settings of a learning-rate search, written where there is none.
    if !config.searches() {
        let needs_search = [
            (
                spans.search_seeds,
                "`search_seeds` sets the runs per rate of a learning-rate search",
                "no search to run it in",
            ),
            (spans.lr_tie, "`lr_tie` sets how a learning-rate search breaks near-ties", "no search to choose in"),
            (
                spans.lr_refine.filter(|_| config.refine),
                "`lr_refine` refines a learning-rate search around its best rate",
                "no search to refine",
            ),
            (
                spans.lr_extend.filter(|_| config.extend > 0),
                "`lr_extend` carries a learning-rate search past the end its best rate lies at",
                "no search to extend",
            ),
        ];
        for (span, what, label) in needs_search {
            if let Some(span) = span {
                cx.error(
                    Diagnostic::error(format!("{what}, and this sweep has none"))
                        .at(span, label)
                        .help("list several rates to search, e.g. `lr = log_grid(from: 3e-4, to: 3e-3, points: 3)`"),
                );
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
    match train {
        Some(train) => check_against_train(cx, &config, &spans, train),
        None if cx.scope.train.span.is_none() => cx.error(
            Diagnostic::error("a sweep needs a train block: each of its runs trains")
                .at(block_span, "no train block in this file or its imports")
                .help("add `train { data = mqar(...) ... }`"),
        ),
        None => {}
    }
    Some(config)
}

/// Where the protocol's settings were written, for errors found against the train block.
#[derive(Default)]
struct Spans {
    tokens: Option<Span>,
    search_seeds: Option<Span>,
    lr_tie: Option<Span>,
    lr_refine: Option<Span>,
    lr_extend: Option<Span>,
    stop: Option<Span>,
}

fn unknown_field(cx: &Cx, name: &str, span: Span) -> Diagnostic {
    let lets: Vec<&str> = cx.scope.lets.keys().map(String::as_str).collect();
    let diagnostic = Diagnostic::error(format!(
        "a sweep varies lets or sets `lr`, `seeds`, `search_seeds`, `lr_tie`, `lr_refine`, `lr_extend`, \
         `tokens`, `stop`; \
         `{name}` is none"
    ))
    .at(span, "no let or sweep setting of this name");
    match closest(name, lets.iter().copied().chain(FIELDS.iter().copied())) {
        Some(near) => diagnostic.help(format!("did you mean `{near}`?")),
        None => diagnostic.help(format!("bind it first: `let {name} = ...`, then sweep over it")),
    }
}

/// `lr = [a, b]` or `lr = log_grid(from: a, to: b, points: n)`.
fn learning_rates(cx: &Cx, expr: &Expr) -> Option<Vec<f64>> {
    if let ExprKind::Call { .. } = &expr.kind {
        let example = "`log_grid(from: 3e-4, to: 1e-2, points: 4)` or a list `[1e-3, 3e-3]`";
        let call = cx.call(expr, "a learning-rate grid", &["log_grid"], example)?;
        let args = Args::new(cx, call.name, call.span, call.args, &["from", "to", "points"], 0);
        let (Some(from), Some(to)) = (args.get("from"), args.get("to")) else {
            cx.error(
                Diagnostic::error("`log_grid` needs `from` and `to`")
                    .at(call.span, "missing an end")
                    .help(format!("write {example}")),
            );
            return None;
        };
        let (from_span, from, to) =
            (from.span, cx.float(from, "from", f64::MIN_POSITIVE, 10.0), cx.float(to, "to", f64::MIN_POSITIVE, 10.0));
        let points = opt_count(cx, &args, "points", 4, 2, 32)?;
        let (from, to) = (from?, to?);
        if from >= to {
            cx.error(
                Diagnostic::error(format!("the grid runs from {from:e} to {to:e}: `from` must be the smaller"))
                    .at(from_span, "not below `to`")
                    .help("swap them, or list the rates: `lr = [1e-3]`"),
            );
            return None;
        }
        return Some(log_grid(from, to, points));
    }
    let items = list(cx, "lr", expr)?;
    let lrs: Vec<Option<f64>> = items.iter().map(|e| cx.float(e, "lr", f64::MIN_POSITIVE, 10.0)).collect();
    lrs.into_iter().collect()
}

/// `points` rates evenly spaced in log from `from` to `to`, each to three significant
/// digits (so run names stay short).
pub fn log_grid(from: f64, to: f64, points: u64) -> Vec<f64> {
    let ratio = (to / from).ln() / (points - 1) as f64;
    (0..points).map(|i| round3(from * (ratio * i as f64).exp())).collect()
}

/// `value` to three significant digits, as a grid's rates are written (`1.78e-3`).
pub fn round3(value: f64) -> f64 {
    format!("{value:.2e}").parse().expect("a number")
}

fn seeds(cx: &Cx, expr: &Expr) -> Option<Vec<u64>> {
    match &expr.kind {
        ExprKind::List(_) => {
            let items = list(cx, "seeds", expr)?;
            let seeds: Vec<Option<u64>> =
                items.iter().map(|e| super::train::training_seed(cx, e, u64::MAX >> 1)).collect();
            seeds.into_iter().collect()
        }
        _ => cx.count(expr, "seeds", 1, 1024).map(|n| (0..n).collect()),
    }
}

/// A count written as a number (`2e6` reads as 2 000 000); a fraction is an error.
fn whole(cx: &Cx, expr: &Expr, value: f64) -> Option<u64> {
    if value.fract() == 0.0 {
        return Some(value as u64);
    }
    cx.error(
        Diagnostic::error(format!("`tokens` is a count of tokens, found {value}"))
            .at(expr.span, "not a whole number")
            .help("write a whole number, e.g. `tokens = 2_000_000` or `tokens = 2e6`"),
    );
    None
}

/// `stop = plateau(patience: P, min_delta: D)`.
fn plateau(cx: &Cx, expr: &Expr) -> Option<Plateau> {
    let example = "`plateau(patience: 3, min_delta: 0.01)`";
    let call = cx.call(expr, "a stopping rule", &["plateau"], example)?;
    let args = Args::new(cx, call.name, call.span, call.args, &["patience", "min_delta"], 0);
    let patience = opt_count(cx, &args, "patience", 3, 1, 1000);
    let min_delta = opt_float(cx, &args, "min_delta", 0.0, 0.0, 1e9);
    Some(Plateau { patience: patience?, min_delta: min_delta? })
}

/// The budget and the plateau stop against the train block they run with: at least one
/// step, a warmup that ends before the budget does, and evaluations to judge a plateau.
fn check_against_train(cx: &Cx, config: &SweepConfig, spans: &Spans, train: &TrainConfig) {
    if let (Some(tokens), Some(span)) = (config.tokens, spans.tokens) {
        let per_step = train.batch * train.seq_len * train.grad_accum.max(1);
        let steps = budget_steps(tokens, train);
        if tokens < per_step {
            cx.error(
                Diagnostic::error(format!("{tokens} tokens are less than one step of {per_step} tokens"))
                    .at(span, "less than one step")
                    .help(format!(
                        "a step is batch {} × seq_len {} tokens; give at least {per_step}",
                        train.batch, train.seq_len
                    )),
            );
        } else if warmup(&train.schedule) >= steps {
            cx.error(
                Diagnostic::error(format!(
                    "the budget buys {steps} steps, not more than the schedule's warmup of {}",
                    warmup(&train.schedule)
                ))
                .at(span, format!("{steps} steps of {per_step} tokens"))
                .help("raise the budget, or shorten the warmup in the train block's schedule"),
            );
        }
    }
    if let (Some(_), Some(span), None) = (config.plateau, spans.stop, train.eval_every) {
        cx.error(
            Diagnostic::error("a plateau stop needs evaluations during the run")
                .at(span, "judged at each evaluation")
                .help("set `eval_every` in the train block, e.g. `eval_every = 50`"),
        );
    }
}

fn warmup(schedule: &LrSchedule) -> u64 {
    match schedule {
        LrSchedule::Cosine { warmup, .. } | LrSchedule::Linear { warmup, .. } | LrSchedule::Constant { warmup } => {
            *warmup
        }
    }
}
