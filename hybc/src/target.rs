//! `--target`: what a command checks before it runs a model on a target. A setting the
//! target cannot honour is a located error; on a GPU target the model is compiled as
//! far as this build can take it, then the command says why it stops — no kernel forms
//! for the GPU yet, and whether a GPU is here at all — before anything is allocated.

use std::io::IsTerminal;
use std::path::Path;

use hyb_compiler::pipeline::Compilation;
use hyb_driver::{Shape, Target};

use crate::Failure;

/// Checks that `target` can run the compiled model; prints why not.
pub fn preflight(path: &Path, compilation: &Compilation, target: Target) -> Result<(), Failure> {
    let model = compilation.model().expect("no errors means a model");
    if let Err(diagnostic) = hyb_driver::check(model, target) {
        let diagnostics = [diagnostic];
        let text = if std::io::stderr().is_terminal() {
            compilation.sources.render_colored(&diagnostics)
        } else {
            compilation.sources.render(&diagnostics)
        };
        eprint!("{text}");
        eprintln!("error: {} cannot run on {target}", path.display());
        return Err(Failure::User);
    }
    if target == Target::Cpu {
        return Ok(());
    }
    let (batch, seq_len) = model.train.as_ref().map_or((1, 128), |t| (t.batch as usize, t.seq_len as usize));
    let build = hyb_driver::compile_program(model, target, Shape::Train { batch, seq_len }).map_err(|error| {
        eprintln!("error: {}: {error}", path.display());
        Failure::User
    })?;
    let program = &build.program;
    eprintln!(
        "compiled for {target}: the step program ({} instructions, {} kernels, {:.1} MiB planned) verifies",
        program.instrs.len(),
        program.kernels.len(),
        build.plan.peak_bytes() as f64 / (1 << 20) as f64
    );
    if let Err(missing) = hyb_driver::codegen(program, target) {
        eprintln!(
            "codegen: {} of its {} kernels have no GPU form yet, e.g. `{}`",
            missing.len(),
            program.kernels.len(),
            missing[0].key
        );
    }
    eprintln!("error: cannot run on {target}: {}", hyb_runtime::gpu_presence());
    eprintln!("  help: train on the CPU (`--target cpu`, the default); the CUDA backend is not built yet");
    Err(Failure::User)
}
