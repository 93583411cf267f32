//! The settings of a model's `train`, `eval` and `sweep` blocks, as sema checked them:
//! the data, the optimizer, the schedule, the storage precision, the evaluation tasks
//! and the sweep's grid. One type per concept, read by the trainer, the runtime (AdamW)
//! and the command line alike.

use std::path::PathBuf;

use hyb_grammar::Span;

/// The seed of the evaluation batches of recall tasks: a stream of their own. A training
/// run with this seed would train on exactly those batches, so sema refuses it.
pub const EVAL_SEED: u64 = 0xE7A1_5EED;

#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub data: Data,
    pub seq_len: u64,
    pub batch: u64,
    pub steps: u64,
    pub grad_accum: u64,
    pub optimizer: AdamW,
    pub schedule: LrSchedule,
    pub seed: u64,
    pub precision: Precision,
    /// Where `precision` was set, if it was (a target that cannot store it points here).
    pub precision_span: Option<Span>,
    /// Where the file asks to train (`target = cuda`); `--target` overrides it.
    pub target: Option<hyb_target::Target>,
    pub eval_every: Option<u64>,
    pub checkpoint_every: Option<u64>,
    /// Checkpoints kept: after one is written, all but the newest k are removed; none:
    /// every one is kept.
    pub keep_checkpoints: Option<u64>,
    pub log_every: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f64,
    pub betas: (f64, f64),
    pub weight_decay: f64,
    pub eps: f64,
    /// Global gradient-norm clip, if any.
    pub clip: Option<f64>,
}

impl AdamW {
    /// The train block's optimizer, or flame's defaults for a model without one.
    pub fn of(model: &crate::ir::Model) -> AdamW {
        match &model.train {
            Some(train) => train.optimizer.clone(),
            None => AdamW { lr: 3e-4, betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.1, clip: Some(1.0) },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    /// Linear warmup, then cosine decay to `min_lr × lr`.
    Cosine {
        warmup: u64,
        min_lr: f64,
    },
    /// Linear warmup, then linear decay to `min_lr × lr`.
    Linear {
        warmup: u64,
        min_lr: f64,
    },
    Constant {
        warmup: u64,
    },
}

pub use hyb_target::Precision;

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Zoology's multi-query associative recall.
    Mqar {
        vocab: u64,
        seq_len: u64,
        pairs: u64,
        power_a: f64,
    },
    /// MQAR where keys are re-assigned later and the latest value counts.
    ForgettingMqar {
        vocab: u64,
        seq_len: u64,
        pairs: u64,
        updates: u64,
    },
    /// RULER-style needle in a haystack at token level.
    Niah {
        vocab: u64,
        seq_len: u64,
        variant: NiahVariant,
        haystack: Haystack,
        keys: u64,
        values: u64,
        queries: u64,
    },
    /// Text: a plain file (one document), JSON Lines or Parquet (a document per line or
    /// row, its text in `field`); documents are split between training and validation
    /// whole, and each ends with the end-of-document token `eod` (the tokenizer's own if
    /// none is given: 256 for bytes).
    Text {
        path: PathBuf,
        tokenizer: Tokenizer,
        split: f64,
        field: String,
        eod: Option<u32>,
    },
    Tokens {
        path: PathBuf,
        dtype: TokenDtype,
        split: f64,
    },
}

impl Data {
    pub fn is_recall(&self) -> bool {
        matches!(self, Data::Mqar { .. } | Data::ForgettingMqar { .. } | Data::Niah { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NiahVariant {
    Single,
    MultiKey,
    MultiValue,
    MultiQuery,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Haystack {
    /// A repeated filler sequence.
    Repeat,
    /// Random tokens.
    Noise,
    /// Distractor needles with other keys.
    Needles,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tokenizer {
    Bytes,
    HuggingFace(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenDtype {
    U16,
    U32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    pub tasks: Vec<EvalTask>,
    pub samples: u64,
    pub batch: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EvalTask {
    /// Answer accuracy on a recall task.
    Recall(Data),
    Perplexity(Data),
}

/// One varied `let`: its name and each value's source text.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SweepConfig {
    pub axes: Vec<Axis>,
    /// Learning rates to try per combination (none: the train block's).
    pub lrs: Vec<f64>,
    /// Seeds (none: the train block's).
    pub seeds: Vec<u64>,
}

impl SweepConfig {
    /// Runs in the grid.
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product::<usize>() * self.lrs.len().max(1) * self.seeds.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
