//! Evaluation: answer accuracy on a recall task — the argmax of the logits at every
//! position with a target, against it — and the mean loss, on batches drawn with a
//! seed of their own (never a training batch).

use hyb_runtime::Trainer;

use crate::data::Task;

/// One evaluation set: a task at its own sequence length.
pub struct EvalSet {
    pub name: String,
    pub task: Box<dyn Task>,
    pub samples: usize,
    pub batch: usize,
    /// Report perplexity (language modelling) rather than answer accuracy (recall).
    pub perplexity: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub name: String,
    pub correct: u64,
    pub total: u64,
    pub loss: f64,
    pub perplexity: bool,
    /// (group, correct, total) for a task that groups its answers (a needle's depth).
    pub by_group: Vec<(String, u64, u64)>,
}

impl Score {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }

    /// `exp` of the mean loss.
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }

    /// `group 93.8%, …` for a task with groups; empty otherwise.
    pub fn breakdown(&self) -> String {
        let parts: Vec<String> = self
            .by_group
            .iter()
            .filter(|(_, _, total)| *total > 0)
            .map(|(name, correct, total)| format!("{name} {:.1}%", 100.0 * *correct as f64 / *total as f64))
            .collect();
        parts.join(", ")
    }

    /// The figure a person reads: perplexity, or accuracy in percent.
    pub fn headline(&self) -> String {
        if self.perplexity {
            format!("perplexity {:.3}", self.perplexity())
        } else {
            format!("accuracy {:.1}% ({} answers)", 100.0 * self.accuracy(), self.total)
        }
    }
}

/// The seed evaluation batches are drawn with: far from any training seed's stream.
const EVAL_SEED: u64 = 0xE7A1_5EED;

/// Scores `set` with `evaluator` (the model at the set's shape, parameters current).
pub fn score(evaluator: &mut Trainer, set: &EvalSet) -> Result<Score, hyb_runtime::Error> {
    let (mut correct, mut total, mut loss_sum, mut batches) = (0u64, 0u64, 0.0, 0u64);
    let mut by_group: Vec<(String, u64, u64)> = set.task.groups().into_iter().map(|g| (g, 0, 0)).collect();
    let vocab = evaluator.program.vocab;
    for index in 0..set.samples.div_ceil(set.batch) {
        let batch = set.task.batch(EVAL_SEED, index as u64, set.batch);
        loss_sum += evaluator.forward(&batch.inputs())? as f64;
        batches += 1;
        let logits = evaluator.logits();
        for (position, target) in batch.targets.iter().enumerate() {
            if *target < 0 {
                continue;
            }
            let row = &logits[position * vocab..(position + 1) * vocab];
            let best = row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            let hit = u64::from(best == *target as usize);
            correct += hit;
            total += 1;
            if let Some(group) = by_group.get_mut(batch.groups[position] as usize) {
                group.1 += hit;
                group.2 += 1;
            }
        }
    }
    let loss = loss_sum / batches.max(1) as f64;
    Ok(Score { name: set.name.clone(), correct, total, loss, perplexity: set.perplexity, by_group })
}

/// A checkpoint's scores on the eval sets of `model` (its eval block's, else its
/// training task's own), each with an evaluator (the forward alone: no gradients or
/// optimizer state) holding the checkpoint's weights; and the tasks skipped as not
/// supported yet. (Only the weights are read: a checkpoint without optimizer state, a
/// published directory, evaluates too.)
pub fn score_checkpoint(
    model: &hyb_compiler::ir::Model,
    ckpt: &std::path::Path,
    target: hyb_target::Target,
) -> Result<(Vec<Score>, Vec<String>), String> {
    let seq_len = model.train.as_ref().map_or(128, |t| t.seq_len) as usize;
    let (sets, skipped) = crate::tasks::eval_sets(model, seq_len)?;
    let Some(first) = sets.first() else {
        return Err(
            "nothing to evaluate: add an eval block (`eval { mqar(pairs: 16) }`) or a train block's data".into()
        );
    };
    let mut base = Trainer::evaluator(model, target, 1, first.task.seq_len()).map_err(|e| e.to_string())?;
    crate::checkpoint::load_weights_into(ckpt, &mut base).map_err(|e| e.to_string())?;
    let mut scores = Vec::new();
    for set in &sets {
        let mut evaluator = base.resized(set.batch, set.task.seq_len()).map_err(|e| e.to_string())?;
        scores.push(score(&mut evaluator, set).map_err(|e| e.to_string())?);
    }
    Ok((scores, skipped))
}
