//! The `train` and `eval` blocks: parsed and fully checked here, executed by the
//! trainer. Synthetic tasks are checked against the rules of their generators
//! (Zoology's MQAR: even length, `vocab > seq_len`, `4 · pairs ≤ seq_len`) and against
//! the model (task tokens must fit the embedding).

use std::path::PathBuf;

use hyb_grammar::ast::{Expr, ExprKind};
use hyb_grammar::{Diagnostic, Span};

use super::presets::{opt_count, opt_float};
use super::scope::Block;
use super::values::{Args, Cx, describe, unknown_name};
use crate::arena::Arena;
use crate::ir::train::*;
use crate::ir::{Layer, Mixer, MixerKind, ModelConfig};

pub const TRAIN_FIELDS: &[&str] = &[
    "data",
    "seq_len",
    "batch",
    "steps",
    "grad_accum",
    "optimizer",
    "schedule",
    "seed",
    "precision",
    "target",
    "eval_every",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
];
pub const EVAL_FIELDS: &[&str] = &["samples", "batch"];
const TASKS: &[&str] = &["mqar", "forgetting_mqar", "niah", "text", "tokens"];
const EVAL_TASKS: &[&str] = &["mqar", "forgetting_mqar", "niah", "perplexity"];

/// `target = cpu | cuda`, or a string naming the architecture (`"cuda:sm_90a"`).
fn target(cx: &Cx, expr: &Expr) -> Option<hyb_target::Target> {
    let resolved = cx.resolve(expr)?;
    if let ExprKind::Str(lit) = &resolved.expr.kind {
        return match lit.value.parse::<hyb_target::Target>() {
            Ok(target) => Some(target),
            Err(error) => {
                cx.error(
                    Diagnostic::error(error.to_string())
                        .at(resolved.expr.span, "not a target")
                        .help("write `cpu`, `cuda`, or a string naming the architecture such as \"cuda:sm_90a\""),
                );
                None
            }
        };
    }
    let word = cx.symbol(expr, "target", &["cpu", "cuda"])?;
    Some(word.parse().expect("both words are targets"))
}

pub fn check_train(cx: &Cx, model: &ModelConfig) -> Option<TrainConfig> {
    let block = &cx.scope.train;
    let block_span = block.span?;
    check_field_names(cx, block, TRAIN_FIELDS, "train field");
    let get = |name: &str| single(cx, block, name);
    let seq_len_expr = get("seq_len");
    let seq_len = seq_len_expr.map(|expr| cx.count(expr, "seq_len", 1, 1 << 24));
    let data_expr = get("data");
    let Some(data_expr) = data_expr else {
        cx.error(
            Diagnostic::error("the train block has no `data`")
                .at(block_span, "`data` is required")
                .help("e.g. `data = mqar(pairs: 16)` or `data = text(\"corpus.txt\")`"),
        );
        return None;
    };
    let data = data(cx, data_expr, model, seq_len.flatten(), TASKS);
    let seq_len = match (seq_len, &data) {
        (Some(value), _) => value,
        (None, Some(data)) => data_seq_len(data).or_else(|| {
            cx.error(
                Diagnostic::error("the train block has no `seq_len`")
                    .at(block_span, "needed for text data")
                    .help("add `seq_len = 512`"),
            );
            None
        }),
        (None, None) => None,
    };
    if let (Some(expr), Some(train_len), Some(data_len)) = (seq_len_expr, seq_len, data.as_ref().and_then(data_seq_len))
        && train_len != data_len
    {
        cx.error(
            Diagnostic::error(format!(
                "the train block's seq_len {train_len} disagrees with its data's seq_len {data_len}"
            ))
            .at(expr.span, format!("seq_len {train_len}"))
            .also(data_expr.span, format!("generates sequences of {data_len} tokens"))
            .help("give the length once: in the data source or as `seq_len`"),
        );
    }
    let steps = get("steps").map_or(Some(1000), |expr| cx.count(expr, "steps", 1, 1 << 40));
    let schedule = match (get("schedule"), steps) {
        (Some(expr), Some(steps)) => schedule(cx, expr, steps),
        (None, _) => Some(LrSchedule::Cosine { warmup: 0, min_lr: 0.1 }),
        (Some(_), None) => None,
    };
    let batch = get("batch").map_or(Some(8), |expr| cx.count(expr, "batch", 1, 1 << 20));
    let grad_accum = get("grad_accum").map_or(Some(1), |expr| cx.count(expr, "grad_accum", 1, 1 << 16));
    let optimizer = match get("optimizer") {
        Some(expr) => optimizer(cx, expr),
        None => Some(AdamW { lr: 1e-3, betas: (0.9, 0.95), weight_decay: 0.1, eps: 1e-8, clip: Some(1.0) }),
    };
    let seed = get("seed").map_or(Some(0), |expr| training_seed(cx, expr, u32::MAX as u64));
    let precision = match get("precision") {
        Some(expr) => cx
            .symbol(expr, "precision", &["f32", "bf16"])
            .map(|p| if p == "bf16" { Precision::Bf16 } else { Precision::F32 }),
        None => Some(Precision::F32),
    };
    let target = match get("target") {
        Some(expr) => target(cx, expr).map(Some),
        None => Some(None),
    };
    let eval_every = optional_count(cx, get("eval_every"), "eval_every");
    let checkpoint_every = optional_count(cx, get("checkpoint_every"), "checkpoint_every");
    let keep_checkpoints = optional_count(cx, get("keep_checkpoints"), "keep_checkpoints");
    let log_every = get("log_every").map_or(Some(1), |expr| cx.count(expr, "log_every", 1, 1 << 40));
    for (name, every) in [("eval_every", eval_every.flatten()), ("checkpoint_every", checkpoint_every.flatten())] {
        if let (Some(every), Some(steps), Some(expr)) = (every, steps, get(name))
            && every > steps
        {
            cx.error(
                Diagnostic::warning(format!("`{name}` is {every}, but the run has only {steps} steps"))
                    .at(expr.span, "never reached")
                    .help(format!("use a period of at most {steps} steps, or `none`")),
            );
        }
    }
    // Every field is checked before any failure ends the block, so all are reported.
    let config = TrainConfig {
        data: data?,
        seq_len: seq_len?,
        batch: batch?,
        steps: steps?,
        grad_accum: grad_accum?,
        optimizer: optimizer?,
        schedule: schedule?,
        seed: seed?,
        precision: precision?,
        precision_span: get("precision").map(|expr| expr.span),
        target: target?,
        eval_every: eval_every?,
        checkpoint_every: checkpoint_every?,
        keep_checkpoints: keep_checkpoints?,
        log_every: log_every?,
    };
    Some(config)
}

/// A seed in `0..=max` other than the evaluation batches' own ([`EVAL_SEED`], and a
/// sweep's held-out batches', [`HELD_OUT_SEED`]): training on it would train on the
/// very batches recall is evaluated on.
pub(super) fn training_seed(cx: &Cx, expr: &Expr, max: u64) -> Option<u64> {
    let seed = cx.count(expr, "seed", 0, max)?;
    if seed == EVAL_SEED || seed == HELD_OUT_SEED {
        cx.error(
            Diagnostic::error(format!("seed {seed} is the seed of the evaluation batches"))
                .at(expr.span, "training on it would train on the batches recall is scored on")
                .help("choose any other seed"),
        );
        return None;
    }
    Some(seed)
}

fn optional_count(cx: &Cx, expr: Option<&Expr>, what: &str) -> Option<Option<u64>> {
    match expr {
        None => Some(None),
        Some(expr) if cx.is_none(expr) => Some(None),
        Some(expr) => cx.count(expr, what, 1, 1 << 40).map(Some),
    }
}

pub fn check_eval(
    cx: &Cx,
    model: &ModelConfig,
    train: Option<&TrainConfig>,
    mixers: &Arena<Mixer>,
    layers: &[Layer],
) -> Option<EvalConfig> {
    let block = &cx.scope.eval;
    let block_span = block.span?;
    check_field_names(cx, block, EVAL_FIELDS, "eval field");
    let mut tasks = Vec::new();
    let mut recall_span = None;
    for task in &block.tasks {
        let Some(task_value) = eval_task(cx, task, model, train) else {
            continue;
        };
        if matches!(task_value, EvalTask::Recall(_)) {
            recall_span.get_or_insert(task.span);
        }
        tasks.push(task_value);
    }
    if block.tasks.is_empty() {
        cx.error(
            Diagnostic::error("the eval block lists no task")
                .at(block_span, "empty")
                .help("add tasks like `mqar(seq_len: 512, pairs: 64)` or `perplexity(data: text(\"valid.txt\"))`"),
        );
    }
    let has_attention = layers.iter().any(|layer| match &mixers[layer.mixer].kind {
        MixerKind::Attention(_) => true,
        MixerKind::Routed(routed) => routed.branches.iter().any(|b| b.kind.is_attention()),
        MixerKind::Linear(_) => false,
    });
    if let (Some(span), false) = (recall_span, has_attention) {
        cx.error(
            Diagnostic::warning("this eval measures recall, but the model has no attention layer")
                .at(span, "recall task")
                .note("the paper finds recall rises with the share of attention; a pure linear model is the baseline, not the hybrid")
                .help("if a hybrid was intended, add attention, e.g. `layers = gdn × 24 with attn every 4`"),
        );
    }
    let get = |name: &str| single(cx, block, name);
    Some(EvalConfig {
        tasks,
        samples: get("samples").map_or(Some(256), |expr| cx.count(expr, "samples", 1, 1 << 24))?,
        batch: get("batch").map_or(Some(16), |expr| cx.count(expr, "batch", 1, 1 << 20))?,
    })
}

fn eval_task(cx: &Cx, task: &Expr, model: &ModelConfig, train: Option<&TrainConfig>) -> Option<EvalTask> {
    let ExprKind::Call { callee, args } = &task.kind else {
        cx.error(Diagnostic::error("expected an eval task").at(task.span, "not a task").help(
            "tasks are calls: `mqar(pairs: 16)`, `niah(variant: single)`, `perplexity(data: text(\"valid.txt\"))`",
        ));
        return None;
    };
    if callee.text == "perplexity" {
        let task_args = Args::new(cx, "perplexity", task.span, args, &["data", "tokens"], 0);
        let Some(data_expr) = task_args.get("data") else {
            cx.error(
                Diagnostic::error("`perplexity` needs `data`")
                    .at(task.span, "no data")
                    .help("e.g. `perplexity(data: text(\"valid.txt\"))`"),
            );
            return None;
        };
        let seq_len = train.map(|t| t.seq_len);
        let data = data(cx, data_expr, model, seq_len, &["text", "tokens"])?;
        let tokens = match task_args.get("tokens") {
            Some(expr) => Some(cx.count(expr, "tokens", 1, 1 << 48)?),
            None => None,
        };
        return Some(EvalTask::Perplexity(scored_whole_unless_training(cx, data_expr, data, train)?, tokens));
    }
    if !EVAL_TASKS.contains(&callee.text.as_str()) {
        cx.error(unknown_name(&callee.text, callee.span, "eval task", EVAL_TASKS));
        return None;
    }
    // Recall tasks default their vocabulary to the training task's.
    let train_vocab = train.and_then(|t| match &t.data {
        Data::Mqar { vocab, .. } | Data::ForgettingMqar { vocab, .. } | Data::Niah { vocab, .. } => Some(*vocab),
        _ => None,
    });
    let scoped = ModelConfig { vocab: train_vocab.unwrap_or(model.vocab), ..model.clone() };
    let data = data_with_vocab_limit(cx, task, &scoped, model.vocab, train.map(|t| t.seq_len), EVAL_TASKS)?;
    Some(EvalTask::Recall(data))
}

/// A perplexity source: the training data's own file keeps its split (its validation
/// part); any other file is evaluation data and is scored whole (`split` 0), so a
/// `split:` written on it would do nothing and is refused.
fn scored_whole_unless_training(cx: &Cx, expr: &Expr, data: Data, train: Option<&TrainConfig>) -> Option<Data> {
    let path_of = |d: &Data| match d {
        Data::Text { path, .. } | Data::Tokens { path, .. } => Some(path.clone()),
        _ => None,
    };
    let split_of = |d: &Data| match d {
        Data::Text { split, .. } | Data::Tokens { split, .. } => *split,
        _ => 1.0,
    };
    let resolved = cx.resolve(expr)?;
    let written = match &resolved.expr.kind {
        ExprKind::Call { args, .. } => args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.text == "split")),
        _ => None,
    };
    if let Some(train) = train.filter(|t| path_of(&t.data).is_some() && path_of(&t.data) == path_of(&data)) {
        // The training data's file: scored on the training source's validation part.
        if let Some(split) = written.filter(|_| split_of(&data) != split_of(&train.data)) {
            cx.error(
                Diagnostic::error(format!(
                    "this `split` does nothing: the training data's file is scored on the validation part its \
                     training source sets (split {})",
                    split_of(&train.data)
                ))
                .at(split.span, "not used")
                .help("remove `split:` here, or change it on the training source"),
            );
            return None;
        }
        return Some(data);
    }
    if let Some(split) = written {
        cx.error(
            Diagnostic::error("`split` on an evaluation file does nothing: a file other than the training data's is scored whole")
                .at(split.span, "not used")
                .help("remove `split:`; to hold out part of the training data, give `split:` to the training source and name its file here"),
        );
        return None;
    }
    Some(match data {
        Data::Text { path, tokenizer, field, eod, .. } => Data::Text { path, tokenizer, split: 0.0, field, eod },
        Data::Tokens { path, dtype, .. } => Data::Tokens { path, dtype, split: 0.0 },
        other => other,
    })
}

fn check_field_names(cx: &Cx, block: &Block, allowed: &[&str], what: &str) {
    for (name, def) in &block.fields {
        if !allowed.contains(&name.as_str()) {
            cx.error(unknown_name(name, def.name_span, what, allowed));
        }
    }
}

fn single<'a>(cx: &Cx, block: &'a Block, name: &str) -> Option<&'a Expr> {
    let field = &block.fields.get(name)?.value;
    if field.value.seq.len() != 1 || !field.value.rules.is_empty() {
        cx.error(
            Diagnostic::error(format!("`{name}` takes one value"))
                .at(field.value.span, "a list of values")
                .help("only `layers` takes a comma-separated schedule"),
        );
        return None;
    }
    Some(&field.value.seq[0])
}

fn data_seq_len(data: &Data) -> Option<u64> {
    match data {
        Data::Mqar { seq_len, .. } | Data::ForgettingMqar { seq_len, .. } | Data::Niah { seq_len, .. } => {
            Some(*seq_len)
        }
        Data::Text { .. } | Data::Tokens { .. } => None,
    }
}

fn data(cx: &Cx, expr: &Expr, model: &ModelConfig, seq_len: Option<u64>, allowed: &[&str]) -> Option<Data> {
    data_with_vocab_limit(cx, expr, model, model.vocab, seq_len, allowed)
}

/// A data source. `model.vocab` is the default task vocabulary; `vocab_limit` the
/// embedding size every token must fit.
fn data_with_vocab_limit(
    cx: &Cx,
    expr: &Expr,
    model: &ModelConfig,
    vocab_limit: u64,
    seq_len: Option<u64>,
    allowed: &[&str],
) -> Option<Data> {
    let example = format!("a data source ({})", allowed.join(", "));
    let call = cx.call(expr, "a data source", allowed, &example)?;
    let (name, span, args) = (call.name, call.span, call.args);
    match name {
        "text" | "tokens" => file_data(cx, name, span, args),
        _ => super::tasks::synthetic(cx, name, span, args, model, vocab_limit, seq_len),
    }
}

fn file_data(cx: &Cx, name: &str, span: Span, args: &[hyb_grammar::ast::Arg]) -> Option<Data> {
    let allowed: &[&str] = if name == "text" { &["tokenizer", "split", "field", "eod"] } else { &["dtype", "split"] };
    let args = Args::new(cx, name, span, args, allowed, 1);
    let Some(path_expr) = args.positional(0) else {
        cx.error(
            Diagnostic::error(format!("`{name}` needs a file path"))
                .at(span, "no path")
                .help(format!("e.g. `{name}(\"data/corpus.{}\")`", if name == "text" { "txt" } else { "bin" })),
        );
        return None;
    };
    // Paths are relative to the file they are written in, as imports are.
    let written = PathBuf::from(cx.string(path_expr, "path")?);
    let dir = cx.scope.dirs.get(&path_expr.span.file).cloned().unwrap_or_default();
    let path = if written.is_absolute() { written } else { dir.join(written) };
    let split = opt_float(cx, &args, "split", 0.99, 0.01, 1.0)?;
    if name == "tokens" {
        let dtype = match args.get("dtype") {
            Some(expr) => match cx.symbol(expr, "dtype", &["u16", "u32"])? {
                "u32" => TokenDtype::U32,
                _ => TokenDtype::U16,
            },
            None => TokenDtype::U16,
        };
        return Some(Data::Tokens { path, dtype, split });
    }
    let tokenizer = match args.get("tokenizer") {
        None => Tokenizer::Bytes,
        Some(expr) => {
            let resolved = cx.resolve(expr)?;
            match &resolved.expr.kind {
                ExprKind::Name(n) if n.text == "bytes" => Tokenizer::Bytes,
                // Relative to the file it is written in, as the data path is.
                ExprKind::Str(lit) => {
                    let written = PathBuf::from(&lit.value);
                    let dir = cx.scope.dirs.get(&resolved.expr.span.file).cloned().unwrap_or_default();
                    Tokenizer::HuggingFace(if written.is_absolute() { written } else { dir.join(written) })
                }
                _ => {
                    cx.error(
                        Diagnostic::error("expected a tokenizer")
                            .at(resolved.expr.span, "not a tokenizer")
                            .help("`bytes` (the default) or the path of a Hugging Face `tokenizer.json`"),
                    );
                    return None;
                }
            }
        }
    };
    let field = text_field(cx, &args, &path)?;
    let eod = match args.get("eod") {
        Some(expr) => Some(cx.count(expr, "eod", 0, u32::MAX as u64)? as u32),
        None => None,
    };
    Some(Data::Text { path, tokenizer, split, field, eod })
}

/// The field (JSON Lines) or column (Parquet) holding each document's text: `text`
/// unless `field:` names another. A plain text file is one document: it has no field
/// and no end-of-document token.
fn text_field(cx: &Cx, args: &Args, path: &std::path::Path) -> Option<String> {
    let documents = matches!(path.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson" | "parquet"));
    let mut misplaced = false;
    for (name, what) in [("field", "names the text of"), ("eod", "ends each of")] {
        if args.has(name) && !documents {
            cx.error(
                Diagnostic::error(format!("`{name}` {what} a JSON Lines or Parquet file's documents"))
                    .at(args.span_of(name), "this file is read as plain text, one document")
                    .help(format!("use a `.jsonl` or `.parquet` file, or drop `{name}`")),
            );
            misplaced = true;
        }
    }
    let field = match args.get("field") {
        Some(expr) => cx.string(expr, "field")?,
        None => "text".into(),
    };
    (!misplaced).then_some(field)
}

fn schedule(cx: &Cx, expr: &Expr, steps: u64) -> Option<LrSchedule> {
    let example = "`cosine(warmup: 100, min_lr: 0.1)`, `linear(...)` or `constant(warmup: 10)`";
    let call = cx.call(expr, "a learning-rate schedule", &["cosine", "linear", "constant"], example)?;
    let allowed: &[&str] = if call.name == "constant" { &["warmup"] } else { &["warmup", "min_lr"] };
    let args = Args::new(cx, call.name, call.span, call.args, allowed, 0);
    let warmup = opt_count(cx, &args, "warmup", 0, 0, 1 << 40)?;
    if warmup >= steps {
        cx.error(
            Diagnostic::error(format!("warmup ({warmup} steps) is not shorter than the run ({steps} steps)"))
                .at(args.span_of("warmup"), "too long")
                .help("warmup must end before the last step"),
        );
        return None;
    }
    let min_lr = opt_float(cx, &args, "min_lr", 0.1, 0.0, 1.0)?;
    Some(match call.name {
        "cosine" => LrSchedule::Cosine { warmup, min_lr },
        "linear" => LrSchedule::Linear { warmup, min_lr },
        _ => LrSchedule::Constant { warmup },
    })
}

fn optimizer(cx: &Cx, expr: &Expr) -> Option<AdamW> {
    let example = "`adamw(lr: 1e-3, betas: (0.9, 0.95), weight_decay: 0.1, clip: 1.0)`";
    let call = cx.call(expr, "an optimizer", &["adamw"], example)?;
    let args = Args::new(cx, call.name, call.span, call.args, &["lr", "betas", "weight_decay", "eps", "clip"], 0);
    let betas = match args.get("betas") {
        None => (0.9, 0.95),
        Some(expr) => {
            let resolved = cx.resolve(expr)?;
            match &resolved.expr.kind {
                ExprKind::Group(items) if items.len() == 2 => {
                    let b1 = cx.float(&items[0], "beta1", 0.0, 0.999999);
                    let b2 = cx.float(&items[1], "beta2", 0.0, 0.999999);
                    (b1?, b2?)
                }
                _ => {
                    cx.error(
                        Diagnostic::error(format!(
                            "`betas` must be a pair like `(0.9, 0.95)`, found {}",
                            describe(resolved.expr)
                        ))
                        .at(resolved.expr.span, "expected two numbers")
                        .help("write `betas: (0.9, 0.95)`"),
                    );
                    return None;
                }
            }
        }
    };
    let clip = match args.get("clip") {
        None => Some(1.0),
        Some(expr) if cx.is_none(expr) => None,
        Some(expr) => Some(cx.float(expr, "clip", 1e-9, 1e9)?),
    };
    Some(AdamW {
        lr: opt_float(cx, &args, "lr", 1e-3, 1e-12, 10.0)?,
        betas,
        weight_decay: opt_float(cx, &args, "weight_decay", 0.1, 0.0, 10.0)?,
        eps: opt_float(cx, &args, "eps", 1e-8, 1e-30, 1.0)?,
        clip,
    })
}
