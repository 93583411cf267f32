//! `hybc train`: compiles a model's training step and runs it on the CPU, one line per
//! step. (This is the minimal loop; schedules, evaluation and checkpoints come with the
//! full trainer.)

use std::path::Path;
use std::time::Instant;

use hyb_runtime::{AdamW, Batch, Trainer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Command-line overrides of the train block.
pub struct Options {
    pub steps: Option<u64>,
    pub batch: Option<u64>,
    pub seq_len: Option<u64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    /// Print the time per kernel at the end.
    pub profile: bool,
}

/// The synthetic copy task: a first half of random symbols from a small alphabet (ids
/// `1..=32`, fewer with a smaller vocabulary), then the same tokens again. The loss
/// falls from `ln V` to about `ln 32` once the alphabet is learned, and toward half of
/// that as the model learns to copy the second half.
pub struct CopyTask {
    rng: SmallRng,
    alphabet: u64,
}

impl CopyTask {
    pub fn new(vocab: u64, seed: u64) -> CopyTask {
        CopyTask { rng: SmallRng::seed_from_u64(seed), alphabet: (vocab - 1).clamp(1, 32) }
    }

    pub fn batch(&mut self, batch: usize, seq_len: usize) -> Vec<i32> {
        let half = seq_len.div_ceil(2);
        let mut tokens = Vec::with_capacity(batch * seq_len);
        for _ in 0..batch {
            let first: Vec<i32> = (0..half).map(|_| self.rng.random_range(1..=self.alphabet) as i32).collect();
            tokens.extend(first.iter().chain(first.iter()).take(seq_len));
        }
        tokens
    }
}

pub fn train(path: &Path, model: &hyb_compiler::ir::Model, options: &Options) -> Result<(), String> {
    let block = model.train.as_ref();
    let steps = options.steps.or(block.map(|t| t.steps)).unwrap_or(100);
    let batch = options.batch.or(block.map(|t| t.batch)).unwrap_or(8) as usize;
    let seq_len = options.seq_len.or(block.map(|t| t.seq_len)).unwrap_or(128) as usize;
    let seed = options.seed.or(block.map(|t| t.seed)).unwrap_or(0);
    let mut adamw = AdamW::of(model);
    if let Some(lr) = options.lr {
        adamw.lr = lr;
    }
    let started = Instant::now();
    let mut trainer = Trainer::new(model, batch, seq_len).map_err(|e| e.to_string())?;
    trainer.init_params(seed);
    if options.profile {
        trainer.profile = Some(Default::default());
    }
    println!(
        "compiled {} in {:.2} s: {} kernels, arena {:.1} MiB; batch {batch} × seq_len {seq_len}, copy task",
        path.display(),
        started.elapsed().as_secs_f64(),
        trainer.program.kernels.names.len(),
        trainer.program.arena_len as f64 * 4.0 / (1 << 20) as f64,
    );
    let mut data = CopyTask::new(model.config.vocab, seed.wrapping_add(1));
    for step in 1..=steps {
        let tokens = data.batch(batch, seq_len);
        let started = Instant::now();
        let targets = Batch::next_token_targets(&tokens, seq_len);
        let stats =
            trainer.step(&Batch { tokens: &tokens, targets: &targets }, &adamw, adamw.lr).map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        if !stats.loss.is_finite() {
            return Err(format!("step {step}: the loss is {}", stats.loss));
        }
        println!(
            "step {step:>5}  loss {:.4}  grad_norm {:.3}  {:.0} tokens/s",
            stats.loss,
            stats.grad_norm,
            (batch * seq_len) as f64 / seconds
        );
    }
    if let Some(profile) = &trainer.profile {
        println!("time per kernel over {steps} steps:\n{}", profile.table());
    }
    Ok(())
}
