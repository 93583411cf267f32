//! Evaluation: answer accuracy on a recall task — the argmax of the logits at every
//! position with a target, against it — on batches drawn with a seed of their own
//! (never a training batch); perplexity on a validation part, a deterministic full pass
//! ([`crate::text::FullPass`]: every validation token scored once), with bits per byte
//! where the text's bytes are known. The loss is the mean over every scored token
//! (each batch's mean weighted by its targets).

// Recall batches are drawn with a seed no training run has (sema refuses it).
use hyb_compiler::ir::train::EVAL_SEED;
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
    /// The UTF-8 bytes of the text the set's targets encode, where known (bits per byte).
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub name: String,
    pub correct: u64,
    pub total: u64,
    /// The mean loss per scored token (nats).
    pub loss: f64,
    /// Tokens scored.
    pub tokens: u64,
    pub perplexity: bool,
    /// Bits per byte of text: the summed loss in bits over the text's UTF-8 bytes.
    pub bits_per_byte: Option<f64>,
    /// (group, correct, total) for a task that groups its answers (a needle's depth).
    pub by_group: Vec<(String, u64, u64)>,
    /// The task's chance accuracy ([`crate::data::Task::chance`]; none for perplexity).
    pub chance: Option<f64>,
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
            match self.bits_per_byte {
                Some(bpb) => format!("perplexity {:.3}, {bpb:.4} bits/byte", self.perplexity()),
                None => format!("perplexity {:.3}", self.perplexity()),
            }
        } else {
            format!("accuracy {:.1}% ({} answers)", 100.0 * self.accuracy(), self.total)
        }
    }
}

/// Scores `set` with `evaluator` (the model at the set's shape, parameters current).
pub fn score(evaluator: &mut Trainer, set: &EvalSet) -> Result<Score, hyb_runtime::Error> {
    let (mut correct, mut total, mut nats, mut tokens) = (0u64, 0u64, 0.0, 0u64);
    let mut by_group: Vec<(String, u64, u64)> = set.task.groups().into_iter().map(|g| (g, 0, 0)).collect();
    let vocab = evaluator.program.vocab;
    for index in 0..set.samples.div_ceil(set.batch) {
        let batch = set.task.batch(EVAL_SEED, index as u64, set.batch);
        let scored = batch.targets.iter().filter(|t| **t >= 0).count() as u64;
        nats += evaluator.forward(&batch.inputs())? as f64 * scored as f64;
        tokens += scored;
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
    let loss = nats / tokens.max(1) as f64;
    let bits_per_byte = set
        .bytes
        .filter(|bytes| set.perplexity && *bytes > 0)
        .map(|bytes| nats / std::f64::consts::LN_2 / bytes as f64);
    Ok(Score {
        name: set.name.clone(),
        correct,
        total,
        loss,
        tokens,
        perplexity: set.perplexity,
        bits_per_byte,
        by_group,
        chance: set.task.chance(),
    })
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
    // One evaluator, moved from shape to shape: the weights are on the device once.
    let mut evaluator =
        Trainer::evaluator(model, target, first.batch, first.task.seq_len()).map_err(|e| e.to_string())?;
    crate::checkpoint::load_weights_into(ckpt, &mut evaluator).map_err(|e| e.to_string())?;
    let mut scores = Vec::new();
    for set in &sets {
        evaluator = evaluator.into_resized(set.batch, set.task.seq_len()).map_err(|e| e.to_string())?;
        scores.push(score(&mut evaluator, set).map_err(|e| e.to_string())?);
    }
    Ok((scores, skipped))
}
