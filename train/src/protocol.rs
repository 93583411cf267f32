//! What a sweep's protocol adds to a run: the held-out set its learning rate is chosen
//! on — the evaluation task drawn from a stream of its own, never the test batches —
//! and the stop once the held-out score has plateaued.

use hyb_runtime::rng::SplitMix64;

use crate::data::{Batch, Task};
use crate::eval::{EvalSet, Score};

/// Mixed into the seed of the test set's batches to give the held-out set its own
/// stream: no held-out sequence is a test sequence (but for chance collisions).
const HELD_OUT_STREAM: u64 = 0x4E1D_0075_EED5_0001;

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

    fn grouped_sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>, Vec<u8>) {
        self.0.grouped_sequence(rng)
    }

    fn batch(&self, seed: u64, step: u64, size: usize) -> Batch {
        self.0.batch(seed ^ HELD_OUT_STREAM, step, size)
    }
}

/// The name a held-out set reports under: `held-out <test set's name>`.
pub fn held_out_name(test_name: &str) -> String {
    format!("held-out {test_name}")
}

/// The held-out twin of a test set: the same task, size and figure, other batches.
pub fn held_out(set: EvalSet) -> EvalSet {
    EvalSet { name: held_out_name(&set.name), task: Box::new(HeldOut(set.task)), ..set }
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
