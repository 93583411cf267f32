//! The settings of a model's `train`, `eval` and `sweep` blocks, as sema checked them:
//! the data, the optimizer, the schedule, the storage precision, the evaluation tasks
//! and the sweep's grid. One type per concept, read by the trainer, the runtime (AdamW)
//! and the command line alike.

use std::path::PathBuf;

use hyb_grammar::Span;

/// The seed of the evaluation batches of recall tasks: a stream of their own. A training
/// run with this seed would train on exactly those batches, so sema refuses it.
pub const EVAL_SEED: u64 = 0xE7A1_5EED;

/// The seed of a sweep's held-out batches (the protocol's learning-rate choice): a
/// stream apart from the evaluation batches and, like them, refused as a training seed.
pub const HELD_OUT_SEED: u64 = 0x4E1D_0075_0974_5EEC;

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
        /// Upper edges of the key–query distance bins its answers are scored in (none:
        /// no breakdown).
        distance_bins: Vec<u64>,
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
        /// Where the queried needle sits: empty for a uniformly drawn depth; else each
        /// sequence draws one of these distances (tokens from the needle's key to its
        /// query's key) and accuracy is reported per distance.
        distances: Vec<u64>,
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
    /// Perplexity on a validation part (or a whole evaluation file); on its first N
    /// tokens where `tokens: N` is given.
    Perplexity(Data, Option<u64>),
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
    /// Learning rates (none: the train block's). More than one is a search: each cell
    /// trains every rate once on the search seed, scored on the held-out set, and its
    /// seeds train at the rate that scored best there.
    pub lrs: Vec<f64>,
    /// Seeds as written (none: three with a search, else the train block's).
    pub seeds: Vec<u64>,
    /// Runs per rate of a search, each on its own search seed, their held-out scores
    /// averaged (`search_seeds = k`; 1 unless written): where a model learns in some
    /// runs and not in others, one run per rate cannot see which rate learns more often.
    pub search_runs: u64,
    /// `lr_tie = x`: rates whose held-out score is within `x` of the best count as tied,
    /// and the largest of them is chosen (accuracy: `x` as a fraction, 0.01 a point;
    /// perplexity: `x` of the best perplexity). 0 unless written: the best, the first of
    /// an exact tie. Near the low edge of a learning window a model may learn in some
    /// runs and not others; a larger rate that scores as well is the safer choice.
    pub lr_tie: f64,
    /// `lr_refine = true`: once a cell's search has finished, it trains the geometric
    /// midpoints between the best rate and each of its neighbours (half a step beyond
    /// the grid where the best is at an end), on the same search seeds, and chooses over
    /// all of them ([`REFINED_RATES`] more a cell). At this size a model's window can be
    /// narrower than a half-decade step; the refinement halves the step around the
    /// optimum at a fraction of the cost of a finer grid everywhere.
    pub refine: bool,
    /// `lr_extend = N`: while the best of a cell's searched rates (the refinement's
    /// included) is the lowest (highest) of them, and some rate learned, the search
    /// trains one grid step below (above) it, the grid's step at that end, up to `N`
    /// rates a cell (0 unless written). A best rate at an end of the grid says the window
    /// may lie beyond it; the extension looks there before the seeds take a rate.
    pub extend: usize,
    /// The budget of every run in tokens (none: the train block's steps).
    pub tokens: Option<u64>,
    /// Stop a run once its held-out score has stopped improving.
    pub plateau: Option<Plateau>,
}

/// `stop = plateau(patience: P, min_delta: D)`: a run stops after `patience`
/// evaluations in a row that did not improve its best held-out score by more than
/// `min_delta` (accuracy as a fraction; for perplexity, the loss in nats).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plateau {
    pub patience: u64,
    pub min_delta: f64,
}

/// The seeds a protocol cell trains when the sweep names none.
pub const DEFAULT_SEEDS: u64 = 3;

/// The rates `lr_refine` adds to each cell's search: one below its best, one above.
pub const REFINED_RATES: usize = 2;

impl SweepConfig {
    /// Whether the sweep searches learning rates (more than one to try).
    pub fn searches(&self) -> bool {
        self.lrs.len() > 1
    }

    /// Whether runs are scored on the held-out set (a search or a plateau stop reads it).
    pub fn held_out(&self) -> bool {
        self.searches() || self.plateau.is_some()
    }

    /// The seeds each cell is measured with (none: the train block's).
    pub fn test_seeds(&self) -> Vec<u64> {
        match (self.seeds.is_empty(), self.searches()) {
            (false, _) => self.seeds.clone(),
            (true, true) => (0..DEFAULT_SEEDS).collect(),
            (true, false) => Vec::new(),
        }
    }

    /// The seeds of the search runs: from one past the last test seed, so no measured
    /// run is one its learning rate was chosen on; `search_runs` of them.
    pub fn search_seeds(&self) -> Vec<u64> {
        let first = self.test_seeds().iter().max().map_or(0, |s| s + 1);
        (first..first + self.search_runs.max(1)).collect()
    }

    /// Cells: every combination of the varied lets.
    pub fn cells(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product::<usize>()
    }

    /// The rates each cell's search may train: the grid's, the refinement's, and at most
    /// `extend` past an end.
    pub fn searched_rates(&self) -> usize {
        self.lrs.len() + if self.refine { REFINED_RATES } else { 0 } + self.extend
    }

    /// Runs in the grid: per cell, the search's rates (with their refinement and the
    /// most its extension may add) and then the seeds (at the chosen rate); without a
    /// search, every rate × seed.
    pub fn len(&self) -> usize {
        let seeds = self.test_seeds().len().max(1);
        if self.searches() {
            self.cells() * (self.searched_rates() * self.search_seeds().len() + seeds)
        } else {
            self.cells() * self.lrs.len().max(1) * seeds
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The steps a budget of `tokens` buys at `batch × seq_len` tokens a step (with
/// `grad_accum` micro-batches), rounded up.
pub fn budget_steps(tokens: u64, train: &TrainConfig) -> u64 {
    tokens.div_ceil(train.batch * train.seq_len * train.grad_accum.max(1))
}
