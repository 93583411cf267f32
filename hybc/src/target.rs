//! `--target`: what a command checks before it runs a model on a target. A setting the
//! target cannot honour is a located error; on a GPU target the model is compiled as
//! far as this build can take it, then the command says why it stops — no kernel forms
//! for the GPU yet, and whether a GPU is here at all — before anything is allocated.

use std::io::IsTerminal;
use std::path::Path;

use hyb_compiler::pipeline::Compilation;
use hyb_driver::{Shape, Target};

use crate::Failure;

pub use hybc::chosen_target as chosen;

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
    let codegen = hyb_driver::codegen(program, target);
    if codegen.is_ok() && hyb_runtime::cuda::available() {
        return Ok(());
    }
    eprintln!(
        "compiled for {target}: the step program ({} instructions, {} kernels, {:.1} MiB planned) verifies",
        program.instrs.len(),
        program.kernels.len(),
        build.plan.peak_bytes() as f64 / (1 << 20) as f64
    );
    match codegen {
        Err(hyb_driver::Error::NoForm { kernels, .. }) => eprintln!(
            "codegen: {} of its {} kernels have no GPU form yet, e.g. `{}`",
            kernels.len(),
            program.kernels.len(),
            kernels[0].key
        ),
        Err(error) => eprintln!("codegen: {error}"),
        Ok(_) => eprintln!("codegen: every kernel lowered to PTX for {target}"),
    }
    eprintln!("error: cannot run on {target}: {}", hyb_runtime::gpu_presence());
    eprintln!("  help: train on the CPU (`--target cpu`, the default)");
    Err(Failure::User)
}
