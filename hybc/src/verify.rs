//! `hybc verify FILE --target cuda`: one training step of the file's model (forward and
//! backward) on the target and on the CPU in lockstep (`Trainer::lockstep`): after every
//! instruction both devices' outputs are compared, each instruction on the CPU's inputs,
//! and every kernel that disagrees is listed — so a user can trust a target before
//! training on it, and a backend's fault is found at its kernel.

use std::path::Path;

use hyb_driver::Target;
use hyb_runtime::{Batch, Trainer};

use crate::{Failure, load_with, target};

/// What `verify` runs: the shape and the tolerance relative to each view's largest value.
pub struct Options {
    pub batch: usize,
    pub seq_len: usize,
    /// Relative to each output's largest value; by default 1e-3, or 1e-2 for a model
    /// that stores bf16 (both devices round each output to bf16).
    pub tolerance: Option<f64>,
    pub seed: u64,
    /// `--set FIELD=VALUE` over the train block.
    pub sets: Vec<String>,
}

pub fn verify(file: &Path, target: Option<Target>, options: &Options) -> Result<(), Failure> {
    let compilation = load_with(file, &options.sets)?;
    let model = compilation.model().expect("no errors means a model");
    // One bf16 rounding apart (2⁻⁸ relative) is the least two devices' bf16 outputs part by.
    let mixed = hyb_driver::storage(model) == hyb_driver::Elem::Bf16;
    let tolerance = options.tolerance.unwrap_or(if mixed { 1e-2 } else { 1e-3 });
    let target = target::chosen(target, model);
    target::preflight(file, &compilation, target)?;
    let failed = |e: hyb_runtime::Error| {
        eprintln!("error: {}: {e}", file.display());
        Failure::User
    };
    let (batch, seq_len) = (options.batch, options.seq_len);
    let mut reference = Trainer::for_target(model, Target::Cpu, batch, seq_len).map_err(failed)?;
    let mut candidate = Trainer::for_target(model, target, batch, seq_len).map_err(failed)?;
    reference.init_params(options.seed);
    let tokens = random_tokens(model.config.vocab, batch * seq_len, options.seed);
    let targets = Batch::next_token_targets(&tokens, seq_len);
    let inputs = Batch { tokens: &tokens, targets: &targets };
    let divergences = candidate.lockstep(&mut reference, &inputs, tolerance).map_err(failed)?;
    let instructions = candidate.program.optimizer_start;
    if divergences.is_empty() {
        println!(
            "{target} agrees with the cpu: {instructions} instructions of a forward and backward at \
             {batch} × {seq_len}, every output within {tolerance:e} of its largest value"
        );
        return Ok(());
    }
    for divergence in &divergences {
        println!("{divergence}");
    }
    let mut kernels: Vec<&str> = divergences.iter().map(|d| d.label.as_str()).collect();
    kernels.sort();
    kernels.dedup();
    eprintln!(
        "error: {target} disagrees with the cpu in {} of {instructions} instructions ({} kernels: {})",
        divergences.iter().map(|d| d.instr).collect::<std::collections::BTreeSet<_>>().len(),
        kernels.len(),
        kernels.join(", ")
    );
    Err(Failure::User)
}

/// Token ids from `seed` (SplitMix64), uniform over the vocabulary.
fn random_tokens(vocab: u64, count: usize, seed: u64) -> Vec<i32> {
    let mut rng = hyb_runtime::rng::SplitMix64::new(seed ^ 0x7665_7269_6679);
    (0..count).map(|_| rng.below(vocab) as i32).collect()
}
