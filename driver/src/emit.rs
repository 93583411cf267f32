//! `hybc compile --emit STAGE` for the stages after the model IR: each is read off a
//! [`Build`](crate::Build) (or the front stages the build starts from), so the text is
//! that of what runs.

use hyb_compiler::ir::Model;
use hyb_compiler::report::{self, Report};
use hyb_target::Target;

use crate::{Error, Shape, compile, compile_program};

/// A stage after the model IR, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The forward graph.
    Graph,
    /// Its backward and the optimizer step.
    Grad,
    /// The kernel plan: fused chains, GEMMs, generated kernels.
    Kernels,
    /// The buffer plan the program runs with.
    Plan,
    /// The step program: instructions over typed buffers, kernel keys.
    Program,
    /// Every kernel's module for the target.
    Mlir,
    /// Every kernel's PTX (a GPU target).
    Ptx,
    /// The pass pipeline that lowers the modules.
    Passes,
    /// The cost report, with the planned peak of the program's plan.
    Report,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct EmitOptions {
    pub target: Target,
    /// The sequence length of the plan and program (and the report's context); `None`:
    /// the train block's, else 4096.
    pub context: Option<u64>,
    pub json: bool,
}

/// The shape `--emit plan` / `program` / `mlir` compile at: the train block's batch ×
/// seq_len (the context overriding the length), else one sequence of the context.
fn shape(model: &Model, context: Option<u64>) -> Shape {
    let (batch, seq_len) = match &model.train {
        Some(train) => (train.batch, context.unwrap_or(train.seq_len)),
        None => (1, context.unwrap_or(4096)),
    };
    Shape::Train { batch: batch as usize, seq_len: seq_len as usize }
}

/// The text of `stage`.
pub fn emit(model: &Model, stage: Stage, options: EmitOptions) -> Result<String, Error> {
    let target = options.target;
    let shape = shape(model, options.context);
    Ok(match stage {
        Stage::Graph => hyb_compiler::graph::print::print_graph(&crate::graph(model)),
        Stage::Grad => hyb_compiler::grad::print(&crate::grad(model)),
        Stage::Kernels => {
            let grad = crate::grad(model);
            hyb_lower::fuse::print(&grad.forward, &hyb_lower::fuse::training_plan(&grad))
        }
        Stage::Plan => hyb_compiler::plan::print(&compile_program(model, target, shape)?.plan),
        Stage::Program => hyb_lower::print::print(&compile_program(model, target, shape)?.program),
        Stage::Mlir => {
            let build = compile(model, target, shape)?;
            let mut out = String::new();
            for (module, key) in build.modules.iter().zip(&build.program.kernels.keys) {
                out.push_str(&format!("// {} = {key} ({} form)\n{}\n", module.name, module.form, module.text));
            }
            out
        }
        Stage::Ptx => {
            if !target.is_gpu() {
                return Err(Error::Setting(
                    hyb_grammar::Diagnostic::error(format!("`--emit ptx` is for a GPU target, not {target}"))
                        .help("add `--target cuda`"),
                ));
            }
            let build = compile(model, target, shape)?;
            build.modules.iter().map(|m| format!("// {} ({} form)\n{}\n", m.name, m.form, m.object)).collect()
        }
        Stage::Passes => passes(target)?,
        Stage::Report => {
            let report = report(model, options.context, target)?;
            if options.json { report::to_json(&report) } else { report::to_text(&report) }
        }
    })
}

/// The pass pipeline of each form the target runs.
fn passes(target: Target) -> Result<String, Error> {
    match target {
        Target::Cpu => Ok(format!("cpu (loops): {}\n", hyb_kernels::jit::CPU_PIPELINE)),
        Target::Cuda { sm } => Ok(format!("cuda (blocks): {}\n", hyb_kernels::ptx::pipeline(&sm.to_string()))),
    }
}

/// What the program of `model` at `shape` allocates on `target`: its stores, scratch
/// included (what the runtime checks against a GPU's free memory, less a few bytes of
/// staging).
fn planned_bytes(model: &Model, shape: Shape, target: Target) -> Result<u64, Error> {
    let grad = crate::grad_at(model, shape);
    let (steps, plan) = crate::plans(&grad, shape, target)?;
    let program = hyb_lower::program::build(model, &grad, &steps, &plan, shape, target).map_err(Error::Unsupported)?;
    Ok(program.store_bytes() as u64)
}

/// The cost report at `context` (else the train block's seq_len, else 4096), with the
/// planned peak of a training step at the train block's batch × seq_len.
pub fn report(model: &Model, context: Option<u64>, target: Target) -> Result<Report, Error> {
    let context = context.or(model.train.as_ref().map(|t| t.seq_len)).unwrap_or(4096);
    let mut report = report::report(model, context);
    if let Some(train) = &model.train {
        let (batch, seq_len) = (train.batch as usize, train.seq_len as usize);
        report.planned_training_bytes = Some(planned_bytes(model, Shape::Train { batch, seq_len }, target)?);
        report.training_storage = Some(crate::storage(model).name());
        report.planned_eval_bytes = Some(planned_bytes(model, Shape::Eval { batch, seq_len }, target)?);
    }
    Ok(report)
}
