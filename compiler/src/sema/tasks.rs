//! The synthetic recall tasks' settings — `mqar(...)`, `forgetting_mqar(...)` and
//! `niah(...)` — checked against the rules of their generators (`hyb_train::data`) and
//! the model, so that a task the generator could not build is an error where it is
//! written, never a crash mid-run.

use hyb_grammar::ast::{Arg, ExprKind};
use hyb_grammar::{Diagnostic, Span};

use super::presets::{opt_count, opt_float};
use super::values::{Args, Cx};
use crate::ir::ModelConfig;
use crate::ir::train::{Data, Haystack, NiahVariant};

/// The most distances a needle task may list (each is a group of its report).
pub const MAX_DISTANCES: usize = 16;

pub(super) fn synthetic(
    cx: &Cx,
    name: &str,
    span: Span,
    args: &[Arg],
    model: &ModelConfig,
    vocab_limit: u64,
    seq_len: Option<u64>,
) -> Option<Data> {
    let allowed: &[&str] = match name {
        "mqar" => &["vocab", "seq_len", "pairs", "power_a", "distance_bins"],
        "forgetting_mqar" => &["vocab", "seq_len", "pairs", "updates"],
        _ => &["vocab", "seq_len", "variant", "haystack", "keys", "values", "queries", "distances"],
    };
    let args = Args::new(cx, name, span, args, allowed, 0);
    let vocab = opt_count(cx, &args, "vocab", model.vocab.min(8192), 4, 1 << 24)?;
    if vocab > vocab_limit {
        cx.error(
            Diagnostic::error(format!(
                "`{name}` draws tokens from a vocabulary of {vocab}, but the model's is {vocab_limit}"
            ))
            .at(args.span_of("vocab"), "tokens would fall outside the embedding")
            .help(format!("use `vocab: {vocab_limit}` or less, or widen the model's `vocab`")),
        );
        return None;
    }
    let task_seq_len = match (args.get("seq_len"), seq_len) {
        (Some(expr), _) => cx.count(expr, "seq_len", 2, 1 << 24)?,
        (None, Some(len)) => len,
        (None, None) => 256,
    };
    match name {
        "mqar" => {
            let pairs = opt_count(cx, &args, "pairs", 8, 1, 1 << 20)?;
            mqar_rules(cx, &args, name, vocab, task_seq_len, pairs)?;
            let power_a = opt_float(cx, &args, "power_a", 0.01, 1e-6, 10.0)?;
            let distance_bins = match args.get("distance_bins") {
                Some(_) => distance_bins(cx, &args, task_seq_len)?,
                None => Vec::new(),
            };
            Some(Data::Mqar { vocab, seq_len: task_seq_len, pairs, power_a, distance_bins })
        }
        "forgetting_mqar" => forgetting_mqar(cx, &args, vocab, task_seq_len),
        _ => niah(cx, &args, vocab, task_seq_len),
    }
}

fn forgetting_mqar(cx: &Cx, args: &Args, vocab: u64, seq_len: u64) -> Option<Data> {
    let pairs = opt_count(cx, args, "pairs", 8, 1, 1 << 20)?;
    mqar_rules(cx, args, "forgetting_mqar", vocab, seq_len, pairs)?;
    let updates = opt_count(cx, args, "updates", pairs / 2 + 1, 1, pairs)?;
    if 4 * pairs + 2 * updates > seq_len {
        let span = if args.has("updates") { args.span_of("updates") } else { args.span };
        cx.error(
            Diagnostic::error(format!(
                "{pairs} pairs and {updates} updates need seq_len ≥ 4 × {pairs} + 2 × {updates} = {}, found {seq_len}",
                4 * pairs + 2 * updates
            ))
            .at(span, "here")
            .help("the pairs, their re-assignments and one query per key each take two tokens"),
        );
        return None;
    }
    Some(Data::ForgettingMqar { vocab, seq_len, pairs, updates })
}

fn niah(cx: &Cx, args: &Args, vocab: u64, seq_len: u64) -> Option<Data> {
    let variant = match args.get("variant") {
        Some(expr) => match cx.symbol(expr, "niah variant", &["single", "multikey", "multivalue", "multiquery"])? {
            "multikey" => NiahVariant::MultiKey,
            "multivalue" => NiahVariant::MultiValue,
            "multiquery" => NiahVariant::MultiQuery,
            _ => NiahVariant::Single,
        },
        None => NiahVariant::Single,
    };
    let haystack = match args.get("haystack") {
        Some(expr) => match cx.symbol(expr, "haystack", &["repeat", "noise", "needles"])? {
            "noise" => Haystack::Noise,
            "needles" => Haystack::Needles,
            _ => Haystack::Repeat,
        },
        None => Haystack::Repeat,
    };
    let keys = opt_count(cx, args, "keys", if variant == NiahVariant::MultiKey { 4 } else { 1 }, 1, 1024)?;
    let values = opt_count(cx, args, "values", if variant == NiahVariant::MultiValue { 4 } else { 1 }, 1, 1024)?;
    let queries = opt_count(cx, args, "queries", if variant == NiahVariant::MultiQuery { 4 } else { 1 }, 1, 1024)?;
    let needle_tokens = keys.max(queries) * (1 + values) + queries;
    if needle_tokens * 2 > seq_len {
        cx.error(
            Diagnostic::error(format!("the needles ({needle_tokens} tokens) take more than half of seq_len {seq_len}"))
                .at(args.span, "no room for a haystack")
                .help("raise `seq_len` or lower keys/values/queries"),
        );
        return None;
    }
    // Keys come from a quarter of the vocabulary (distractor needles need their own),
    // values from a half.
    let distinct_keys = keys.max(queries) * if haystack == Haystack::Needles { 2 } else { 1 };
    if distinct_keys > vocab / 4 || values > vocab / 2 {
        cx.error(
            Diagnostic::error(format!(
                "a vocab of {vocab} has too few tokens for {distinct_keys} distinct keys (a quarter of it) or {values} values (half)"
            ))
            .at(args.span, "here")
            .help("raise `vocab` or lower keys/values/queries"),
        );
        return None;
    }
    let distances = match args.get("distances") {
        Some(_) => distances(cx, args, variant, queries, values, seq_len)?,
        None => Vec::new(),
    };
    Some(Data::Niah { vocab, seq_len, variant, haystack, keys, values, queries, distances })
}

/// `distance_bins: [16, 32, 64]`: MQAR's answers scored by the distance from the key to
/// its query, in bins up to each edge (and one past the last): increasing edges, each
/// from 1 to seq_len − 2.
fn distance_bins(cx: &Cx, args: &Args, seq_len: u64) -> Option<Vec<u64>> {
    let resolved = cx.resolve(args.get("distance_bins")?)?;
    let help = "write `distance_bins: [16, 32, 64]`: the answers scored in bins of key–query distance up to \
                each edge (1–16, 17–32, 33–64) and past the last (> 64)";
    let items = match &resolved.expr.kind {
        ExprKind::List(items) if !items.is_empty() && items.len() < MAX_DISTANCES => items,
        _ => {
            cx.error(
                Diagnostic::error(format!("`distance_bins` takes a list of 1 to {} edges", MAX_DISTANCES - 1))
                    .at(resolved.expr.span, "not a list of edges")
                    .help(help),
            );
            return None;
        }
    };
    let mut edges: Vec<u64> = Vec::new();
    for item in items {
        let edge = cx.count(item, "a bin edge", 1, seq_len.saturating_sub(2).max(1))?;
        if edges.last().is_some_and(|last| *last >= edge) {
            cx.error(
                Diagnostic::error(format!("distance bin edge {edge} does not follow the one before it"))
                    .at(item.span, "not above the previous edge")
                    .help(help),
            );
            return None;
        }
        edges.push(edge);
    }
    Some(edges)
}

/// `distances: [16, 64, 256]`: each the number of tokens from the queried needle's key
/// to its query's key, so from `1 + values` (the needle just before the query) to
/// `seq_len − values` (the needle first in the sequence); one needle is queried.
fn distances(cx: &Cx, args: &Args, variant: NiahVariant, queries: u64, values: u64, seq_len: u64) -> Option<Vec<u64>> {
    let expr = args.get("distances")?;
    let resolved = cx.resolve(expr)?;
    let items = match &resolved.expr.kind {
        ExprKind::List(items) if !items.is_empty() && items.len() <= MAX_DISTANCES => items,
        _ => {
            cx.error(
                Diagnostic::error(format!("`distances` takes a list of 1 to {MAX_DISTANCES} distances"))
                    .at(resolved.expr.span, "not a list of distances")
                    .help("write `distances: [16, 64, 256]`: tokens from the needle's key to its query"),
            );
            return None;
        }
    };
    if variant == NiahVariant::MultiQuery || queries > 1 {
        cx.error(
            Diagnostic::error("`distances` places the one queried needle, but this task queries several")
                .at(args.span_of("distances"), "needs a single query")
                .help("use `variant: single`, `multikey` or `multivalue` with one query, or drop `distances`"),
        );
        return None;
    }
    let (low, high) = (1 + values, seq_len - values);
    let mut found = Vec::new();
    for item in items {
        let distance = cx.count(item, "a distance", 1, 1 << 24)?;
        let problem = if distance < low {
            Some(format!("a needle of {} tokens cannot end before a query {distance} tokens after its key", 1 + values))
        } else if distance > high {
            Some(format!("a query at the end of seq_len {seq_len} has at most {high} tokens before its key"))
        } else if found.contains(&distance) {
            Some(format!("distance {distance} is listed twice"))
        } else {
            None
        };
        if let Some(message) = problem {
            cx.error(
                Diagnostic::error(format!("needle distance {distance} does not fit: {message}"))
                    .at(item.span, "this distance")
                    .help(format!(
                        "each distance is from {low} (1 + values: the needle right before its query) to {high} \
                         (seq_len − values: the needle first), listed once"
                    )),
            );
            return None;
        }
        found.push(distance);
    }
    Some(found)
}

/// Zoology's MQAR generator asserts these; failing them later would be a crash.
fn mqar_rules(cx: &Cx, args: &Args, name: &str, vocab: u64, seq_len: u64, pairs: u64) -> Option<()> {
    let fail = |message: String, at: &str, help: &str| {
        let span = if args.has(at) { args.span_of(at) } else { args.span };
        cx.error(Diagnostic::error(message).at(span, "here").help(help.to_string()));
        None
    };
    if !seq_len.is_multiple_of(2) {
        return fail(
            format!("`{name}` needs an even seq_len, found {seq_len}"),
            "seq_len",
            "keys and values come in pairs",
        );
    }
    if 4 * pairs > seq_len {
        return fail(
            format!("{pairs} pairs need seq_len ≥ 4 × {pairs} = {}, found {seq_len}", 4 * pairs),
            "pairs",
            "the pairs take 2 × pairs tokens and the queries need as much room again",
        );
    }
    if vocab <= seq_len {
        return fail(
            format!("`{name}` needs vocab > seq_len ({vocab} ≤ {seq_len})"),
            "vocab",
            "keys and values are drawn without repetition from halves of the vocabulary",
        );
    }
    Some(())
}
