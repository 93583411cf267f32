//! What a sweep's protocol adds to a run: the held-out set its learning rate is chosen
//! on — never the test set — and the stop once the held-out score has plateaued.
//!
//! A recall task's held-out set is the same task drawn from a random stream of its own
//! (other sequences than the test batches). A perplexity set is a deterministic pass
//! over the validation part, the same whatever the seed, so under the protocol that
//! pass is cut in two: its first half is the held-out set, its second half the test set.

use hyb_runtime::rng::SplitMix64;

use crate::data::{Batch, Task};
use crate::eval::{EvalSet, Score};

/// A task whose batches come from another stream than the wrapped task's.
struct HeldOut(Box<dyn Task>);

impl Task for HeldOut {
    fn seq_len(&self) -> usize {
        self.0.seq_len()
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        self.0.sequence(rng)
    }

    fn groups(&self) -> Vec<String> {
        self.0.groups()
    }

    fn chance(&self) -> Option<f64> {
        self.0.chance()
    }

    fn grouped_sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>, Vec<u8>) {
        self.0.grouped_sequence(rng)
    }

    /// The test set's batches are drawn with `EVAL_SEED`; these with a seed of their own.
    fn batch(&self, _seed: u64, step: u64, size: usize) -> Batch {
        self.0.batch(hyb_compiler::ir::train::HELD_OUT_SEED, step, size)
    }
}

/// The name a held-out set reports under: `held-out <test set's name>`.
pub fn held_out_name(test_name: &str) -> String {
    format!("held-out {test_name}")
}

/// A run's first evaluation set split into (test, held-out) sets: for recall, `set`
/// itself and `twin` (a second copy of it) drawn from the held-out stream; for
/// perplexity, the second and the first half of the pass (`twin` is not needed). Bits
/// per byte are not known for a half.
pub fn held_out(set: EvalSet, twin: EvalSet) -> (EvalSet, EvalSet) {
    if !set.perplexity {
        let held_out = EvalSet { name: held_out_name(&twin.name), task: Box::new(HeldOut(twin.task)), ..twin };
        return (set, held_out);
    }
    let pass: std::sync::Arc<dyn Task> = std::sync::Arc::from(set.task);
    let windows = set.samples;
    let first = windows / 2;
    let half = |offset: usize, windows: usize| Half { pass: pass.clone(), offset, windows };
    let held_out =
        EvalSet { name: held_out_name(&set.name), task: Box::new(half(0, first)), samples: first, bytes: None, ..twin };
    let test = EvalSet { task: Box::new(half(first, windows - first)), samples: windows - first, bytes: None, ..set };
    (test, held_out)
}

/// Windows `offset .. offset + windows` of a deterministic pass, whose batch of one at
/// step `w` is its window `w` (as [`crate::text::FullPass`] is), as a pass of their own
/// (a half of the pass here; a prefix for `perplexity(..., tokens: N)`).
pub(crate) struct Half {
    pub(crate) pass: std::sync::Arc<dyn Task>,
    pub(crate) offset: usize,
    pub(crate) windows: usize,
}

impl Task for Half {
    fn seq_len(&self) -> usize {
        self.pass.seq_len()
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let batch = self.pass.batch(0, (self.offset + rng.index(0..self.windows.max(1))) as u64, 1);
        (batch.tokens, batch.targets)
    }

    fn batch(&self, seed: u64, step: u64, size: usize) -> Batch {
        let seq_len = self.seq_len();
        let mut batch = Batch { tokens: Vec::new(), targets: Vec::new(), groups: Vec::new(), seq_len };
        for w in step as usize * size..(step as usize + 1) * size {
            let window = if w < self.windows { Some(self.pass.batch(seed, (self.offset + w) as u64, 1)) } else { None };
            let (tokens, targets) = window.map_or((vec![0; seq_len], vec![-1; seq_len]), |b| (b.tokens, b.targets));
            batch.tokens.extend(tokens);
            batch.targets.extend(targets);
        }
        batch.groups = vec![0; batch.tokens.len()];
        batch
    }
}

/// A score where higher is better: accuracy, or minus the loss for perplexity.
pub fn higher_is_better(score: &Score) -> f64 {
    if score.perplexity { -score.loss } else { score.accuracy() }
}

/// `stop = plateau(...)` as the loop applies it to one evaluation set.
#[derive(Clone, Copy, Debug)]
pub struct PlateauStop {
    /// The index of the watched set among the run's evaluation sets.
    pub set: usize,
    pub patience: u64,
    pub min_delta: f64,
}

/// The best score so far and the evaluations since it improved.
#[derive(Clone, Debug, Default)]
pub struct Plateau {
    best: Option<f64>,
    since: u64,
}

impl Plateau {
    /// Records one evaluation's score (higher is better); true once `patience`
    /// evaluations in a row improved the best by no more than `min_delta`.
    pub fn plateaued(&mut self, rule: &PlateauStop, score: f64) -> bool {
        match self.best {
            Some(best) if score <= best + rule.min_delta => self.since += 1,
            _ => {
                self.best = Some(self.best.map_or(score, |b| b.max(score)));
                self.since = 0;
            }
        }
        self.since >= rule.patience
    }
}
