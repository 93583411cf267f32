//! The data-task factory: the training task and the evaluation sets a model's `train`
//! and `eval` blocks describe (recall tasks generated from a seed, windows of a text or
//! token file), with the command line's sequence-length override checked against them.
//! Perplexity on the training data's own file is measured on the training data's
//! validation part (its split, its tokenizer), so an eval source can never reach into
//! the text the model trains on.

use std::sync::{Arc, Mutex, Weak};

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::{Data, EvalTask};

use crate::data::{Copy, ForgettingMqar, Mqar, Niah, Task};
use crate::eval::EvalSet;
use crate::text::{Corpus, FullPass, Windows};

/// Corpora opened and still in use, so the training task and the evaluation of one
/// source share one (a large JSON Lines file is tokenised once).
static OPENED: Mutex<Vec<(Data, usize, Weak<Corpus>)>> = Mutex::new(Vec::new());

/// `data` opened for a model of `vocab` with windows of `seq_len`, or the corpus already
/// open for it.
fn open(data: &Data, vocab: usize, seq_len: usize) -> Result<Arc<Corpus>, String> {
    let mut opened = OPENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    opened.retain(|(_, _, corpus)| corpus.strong_count() > 0);
    let found = opened.iter().find(|(d, v, _)| d == data && *v == vocab).and_then(|(_, _, c)| c.upgrade());
    if let Some(corpus) = found {
        corpus.check_windows(data, seq_len)?;
        return Ok(corpus);
    }
    let corpus = Arc::new(Corpus::open(data, vocab, seq_len)?);
    opened.push((data.clone(), vocab, Arc::downgrade(&corpus)));
    Ok(corpus)
}

/// Training windows of a `text(...)` / `tokens(...)` source.
fn windows(data: &Data, model: &Model, seq_len: usize) -> Result<Box<dyn Task>, String> {
    let corpus = open(data, model.config.vocab as usize, seq_len)?;
    Ok(Box::new(Windows { corpus, seq_len }))
}

/// The perplexity set of a source's validation part: a full pass, `batch` windows at a
/// time, or its first windows holding `tokens` (bits per byte then unknown). A source
/// reading the training data's file is the training data itself.
fn perplexity_set(
    data: &Data,
    model: &Model,
    seq_len: usize,
    batch: usize,
    tokens: Option<u64>,
) -> Result<EvalSet, String> {
    let training = model.train.as_ref().map(|t| &t.data).filter(|train| same_file(train, data));
    let corpus = open(training.unwrap_or(data), model.config.vocab as usize, seq_len)?;
    if corpus.split_at == corpus.len() {
        return Err(format!("perplexity on {} needs a validation part; its split keeps none", name(data)));
    }
    let bytes = corpus.validation_bytes();
    let pass = FullPass { corpus, seq_len };
    let windows = pass.windows();
    let set = |name: String, task: Box<dyn Task>, samples: usize, bytes: Option<u64>| EvalSet {
        name,
        task,
        samples,
        batch,
        perplexity: true,
        bytes,
    };
    match tokens.map(|n| (n as usize).div_ceil(seq_len)).filter(|prefix| *prefix < windows) {
        Some(prefix) => {
            let half = crate::protocol::Half { pass: Arc::new(pass), offset: 0, windows: prefix };
            let name = format!("perplexity({}, first {} tokens)", name(data), prefix * seq_len);
            Ok(set(name, Box::new(half), prefix, None))
        }
        None => Ok(set(format!("perplexity({})", name(data)), Box::new(pass), windows, bytes)),
    }
}

/// Whether two sources read the same file.
fn same_file(a: &Data, b: &Data) -> bool {
    let path = |data: &Data| match data {
        Data::Text { path, .. } | Data::Tokens { path, .. } => std::fs::canonicalize(path).ok(),
        _ => None,
    };
    path(a).is_some_and(|p| Some(p) == path(b))
}

/// The training task of the train block (the copy task without one).
pub fn task(model: &Model, seq_len: Option<u64>) -> Result<Box<dyn Task>, String> {
    if let Some(data @ (Data::Text { .. } | Data::Tokens { .. })) = model.train.as_ref().map(|t| &t.data) {
        let length = seq_len.or(model.train.as_ref().map(|t| t.seq_len)).unwrap_or(256) as usize;
        return windows(data, model, length);
    }
    if let (Some(Data::Mqar { pairs, .. }), Some(length)) = (model.train.as_ref().map(|t| &t.data), seq_len)
        && (length % 2 != 0 || 4 * pairs > length)
    {
        return Err(format!(
            "--seq-len {length}: MQAR with {pairs} pairs needs an even length of at least {}",
            4 * pairs
        ));
    }
    if let (Some(Data::ForgettingMqar { pairs, updates, .. }), Some(length)) =
        (model.train.as_ref().map(|t| &t.data), seq_len)
        && (length % 2 != 0 || 4 * pairs + 2 * updates > length)
    {
        return Err(format!(
            "--seq-len {length}: forgetting-MQAR needs an even length of at least {}",
            4 * pairs + 2 * updates
        ));
    }
    if let (Some(Data::Niah { distances, values, .. }), Some(length)) = (model.train.as_ref().map(|t| &t.data), seq_len)
        && let Some(far) = distances.iter().find(|d| **d + values > length)
    {
        return Err(format!(
            "--seq-len {length}: a needle at distance {far} needs seq_len ≥ {far} + {values} (its values)"
        ));
    }
    match model.train.as_ref().map(|t| &t.data) {
        None => {
            let alphabet = (model.config.vocab as usize - 1).clamp(1, 32);
            Ok(Box::new(Copy { alphabet, seq_len: seq_len.unwrap_or(128) as usize }))
        }
        Some(data) => recall_task(data, seq_len).ok_or_else(|| {
            format!("training on {} is not supported yet (mqar is; without a train block, a copy task)", name(data))
        }),
    }
}

pub fn recall_task(data: &Data, seq_len_override: Option<u64>) -> Option<Box<dyn Task>> {
    match data {
        Data::Mqar { vocab, seq_len, pairs, power_a, distance_bins } => Some(Box::new(Mqar {
            vocab: *vocab as usize,
            seq_len: seq_len_override.unwrap_or(*seq_len) as usize,
            pairs: *pairs as usize,
            power_a: *power_a,
            distance_bins: distance_bins.iter().map(|d| *d as usize).collect(),
        })),
        Data::Niah { vocab, seq_len, variant, haystack, keys, values, queries, distances } => Some(Box::new(Niah {
            vocab: *vocab as usize,
            seq_len: seq_len_override.unwrap_or(*seq_len) as usize,
            variant: *variant,
            haystack: *haystack,
            keys: *keys as usize,
            values: *values as usize,
            queries: *queries as usize,
            distances: distances.iter().map(|d| *d as usize).collect(),
        })),
        Data::ForgettingMqar { vocab, seq_len, pairs, updates } => Some(Box::new(ForgettingMqar {
            vocab: *vocab as usize,
            seq_len: seq_len_override.unwrap_or(*seq_len) as usize,
            pairs: *pairs as usize,
            updates: *updates as usize,
        })),
        _ => None,
    }
}

pub fn name(data: &Data) -> String {
    match data {
        Data::Mqar { seq_len, pairs, .. } => format!("mqar(seq_len: {seq_len}, pairs: {pairs})"),
        Data::ForgettingMqar { seq_len, pairs, updates, .. } => {
            format!("forgetting_mqar(seq_len: {seq_len}, pairs: {pairs}, updates: {updates})")
        }
        Data::Niah { seq_len, variant, haystack, distances, .. } if !distances.is_empty() => {
            let distances: Vec<String> = distances.iter().map(u64::to_string).collect();
            format!("niah({variant:?}, {haystack:?}, seq_len: {seq_len}, distances: [{}])", distances.join(", "))
                .to_lowercase()
        }
        Data::Niah { seq_len, variant, haystack, .. } => {
            format!("niah({variant:?}, {haystack:?}, seq_len: {seq_len})").to_lowercase()
        }
        Data::Text { path, .. } | Data::Tokens { path, .. } => {
            path.file_name().map_or("text".into(), |n| n.to_string_lossy().into_owned())
        }
    }
}

/// The eval block's sets (recall accuracy, perplexity on a validation part); without
/// one, the training task's own (its recall task, or its text's validation part).
pub fn eval_sets(model: &Model, seq_len: usize) -> Result<(Vec<EvalSet>, Vec<String>), String> {
    let mut sets = Vec::new();
    let mut skipped = Vec::new();
    match &model.eval {
        Some(eval) => {
            for task in &eval.tasks {
                match task {
                    EvalTask::Recall(data) => match recall_task(data, None) {
                        Some(t) => sets.push(EvalSet {
                            name: name(data),
                            task: t,
                            samples: eval.samples as usize,
                            batch: eval.batch as usize,
                            perplexity: false,
                            bytes: None,
                        }),
                        None => skipped.push(name(data)),
                    },
                    EvalTask::Perplexity(data, tokens) => {
                        sets.push(perplexity_set(data, model, seq_len, eval.batch as usize, *tokens)?)
                    }
                }
            }
        }
        None => match model.train.as_ref().map(|t| &t.data) {
            // Data kept whole for training (`split: 1`) has nothing to evaluate on.
            Some(data @ (Data::Text { split, .. } | Data::Tokens { split, .. })) if *split < 1.0 => {
                sets.push(perplexity_set(data, model, seq_len, 16, None)?)
            }
            Some(Data::Text { .. } | Data::Tokens { .. }) => {}
            Some(data) => {
                if let Some(t) = recall_task(data, None) {
                    sets.push(EvalSet {
                        name: name(data),
                        task: t,
                        samples: 256,
                        batch: 16,
                        perplexity: false,
                        bytes: None,
                    });
                }
            }
            None => {}
        },
    }
    Ok((sets, skipped))
}
