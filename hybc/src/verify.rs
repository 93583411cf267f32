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
    pub tolerance: f64,
    pub seed: u64,
    /// `--set FIELD=VALUE` over the train block.
    pub sets: Vec<String>,
}

pub fn verify(file: &Path, target: Option<Target>, options: &Options) -> Result<(), Failure> {
    let compilation = load_with(file, &options.sets)?;
    let model = compilation.model().expect("no errors means a model");
    if hyb_driver::storage(model) != hyb_driver::Elem::F32 {
        eprintln!(
            "error: {}: `verify` compares the target with the cpu instruction by instruction, so both \
             must run one program, and the cpu stores no bf16\n  = help: verify with `--set precision=f32`; \
             the device suite checks bf16 steps against the cpu within bf16 tolerances",
            file.display()
        );
        return Err(Failure::User);
    }
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
    let divergences = candidate.lockstep(&mut reference, &inputs, options.tolerance).map_err(failed)?;
    let instructions = candidate.program.optimizer_start;
    if divergences.is_empty() {
        println!(
            "{target} agrees with the cpu: {instructions} instructions of a forward and backward at \
             {batch} × {seq_len}, every output within {:e} of its largest value",
            options.tolerance
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
