//! The driver: the one owner of the chain of stages after the model IR.
//!
//! ```text
//! model IR ─► graph ─► grad ─► kernel plan (fuse) ─► buffer plan ─► program ─► codegen
//!                                                                   (verified)   (modules for the target)
//! ```
//!
//! [`compile`] runs every stage for a [`Target`] and a [`Shape`] and returns a [`Build`]
//! holding each stage's output; `hybc compile --emit` prints stages read off that value
//! ([`emit`]), and the runtime executes the same value, so what is printed is what
//! runs. Every caller — hybc's commands, training, evaluation, decoding, benches and
//! tests — compiles through here.
//!
//! **Architecture Invariant:** nothing else calls `graph::build`, `grad::differentiate`,
//! the fusion pass, the planner or the program builder outside of tests of those stages.

mod emit;

pub use emit::{EmitOptions, Stage, emit, report};
pub use hyb_kernels::key::{KernelKey, NoForm};
pub use hyb_lower::program::{Program, Shape};
pub use hyb_target::{Elem, Form, HOPPER, Precision, Target};

use hyb_compiler::grad::GradGraph;
use hyb_compiler::graph::Graph;
use hyb_compiler::ir::{MixerKind, Model, Update};
use hyb_compiler::plan::Plan;
use hyb_grammar::Diagnostic;
use hyb_lower::fuse::{self, Step};
use hyb_lower::program;

/// Every stage's output for one model, target and shape.
pub struct Build {
    pub target: Target,
    /// The grad IR; its `forward` is the graph.
    pub grad: GradGraph,
    /// The kernel plan of the forward.
    pub steps: Vec<Step>,
    /// The buffer plan the program places its values by.
    pub plan: Plan,
    pub program: Program,
    /// One module per kernel of the program, in the program's order.
    pub modules: Vec<Module>,
}

/// A kernel's generated module: its function (the GPU's kernel) is `name`; `text` is
/// the MLIR, `object` what a device loads — the same MLIR for the CPU's JIT, PTX for a
/// GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// The kernel it is the code of (a GPU backend lays out its threads by it).
    pub key: KernelKey,
    pub form: Form,
    pub text: String,
    pub object: String,
}

/// Why a model does not compile for a target.
#[derive(Debug)]
pub enum Error {
    /// A setting of the file the target cannot honour (rendered against its sources).
    Setting(Diagnostic),
    /// An op with no kernel mapping.
    Unsupported(program::Unsupported),
    /// Kernels with no form on the target: the program was built, codegen stopped.
    NoForm { target: Target, kernels: Vec<NoForm> },
    /// A verifier found a broken plan or program (a compiler bug).
    Verify(Vec<String>),
    /// An environment switch codegen reads holds no value it knows ([`check_switches`]).
    Switch(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setting(diagnostic) => write!(f, "{}", diagnostic.message),
            Error::Unsupported(e) => write!(f, "{e}"),
            Error::NoForm { target, kernels } if kernels.is_empty() => {
                write!(f, "target {target} has no kernel forms yet")
            }
            Error::NoForm { target, kernels } => {
                write!(f, "{} of the program's kernels have no form on target {target}", kernels.len())?;
                for kernel in kernels.iter().take(3) {
                    write!(f, "\n  {kernel}")?;
                }
                if kernels.len() > 3 {
                    write!(f, "\n  ... and {} more", kernels.len() - 3)?;
                }
                if target.is_gpu() {
                    write!(f, "\n  help: GPU kernel forms are not built yet; train on `--target cpu`")?;
                }
                Ok(())
            }
            Error::Verify(errors) => {
                write!(f, "internal error: the compiled step fails verification:\n{}", errors.join("\n"))
            }
            Error::Switch(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// The forward graph of a training step.
pub fn graph(model: &Model) -> Graph {
    hyb_compiler::graph::build::build(model)
}

/// The grad IR: the forward graph differentiated, with the optimizer step.
pub fn grad(model: &Model) -> GradGraph {
    hyb_compiler::grad::differentiate(model, graph(model))
}

/// Whether `target` can honour the file's settings: each refusal a located diagnostic.
pub fn check(model: &Model, target: Target) -> Result<(), Diagnostic> {
    check_lane_vectors(model, target)?;
    let Some(train) = &model.train else { return Ok(()) };
    let storage = train.precision.storage();
    if target.storage_elems().contains(&storage) {
        return Ok(());
    }
    let mut diagnostic = Diagnostic::error(format!("target {target} cannot store activations as {storage}"));
    if let Some(span) = train.precision_span {
        diagnostic = diagnostic.at(span, format!("{storage} storage asked for here"));
    }
    let supported: Vec<&str> = target.storage_elems().iter().map(|e| e.name()).collect();
    Err(diagnostic.help(format!("the {target} target stores {}; write `precision = f32`", supported.join(", "))))
}

/// The grad IR of a program at `shape`: a training step's values stored as the train
/// block's `precision` asks ([`hyb_lower::precision`]), other programs' as f32.
fn grad_at(model: &Model, shape: Shape) -> GradGraph {
    let mut grad = grad(model);
    if let Shape::Train { .. } = shape {
        hyb_lower::precision::store(&mut grad, storage(model));
    }
    grad
}

/// The element type a training step stores activations in (`precision` of the train
/// block; f32 without one). Evaluation and decoding programs store f32: they read the
/// f32 master weights and keep no activations for a backward.
pub fn storage(model: &Model) -> Elem {
    model.train.as_ref().map_or(Elem::F32, |train| train.precision.storage())
}

/// The GPU's lanes form keeps a head's channels (attention's head dim, the delta rule's
/// value dim) in each thread's frame, up to [`hyb_kernels::emit::LANE_LOCAL_MAX`].
fn check_lane_vectors(model: &Model, target: Target) -> Result<(), Diagnostic> {
    if !target.forms().contains(&Form::Lanes) {
        return Ok(());
    }
    let max = hyb_kernels::emit::LANE_LOCAL_MAX;
    for (_, mixer) in model.mixers.iter() {
        let channels = lane_vector(&mixer.kind);
        if channels > max {
            return Err(Diagnostic::error(format!(
                "mixer `{}` is too wide for the {target} target's lanes form",
                mixer.name
            ))
            .at(mixer.span, format!("heads of {channels} channels"))
            .help(format!("each GPU thread keeps a head's channels, at most {max}; use narrower heads")));
        }
    }
    Ok(())
}

/// The longest per-head vector a mixer's lane kernels keep per thread.
fn lane_vector(kind: &MixerKind) -> u64 {
    match kind {
        MixerKind::Linear(linear) if matches!(linear.update, Update::Delta { .. }) => linear.head_v_dim,
        MixerKind::Linear(_) => 0,
        MixerKind::Attention(attention) => attention.head_dim,
        MixerKind::Routed(routed) => routed.branches.iter().map(|b| lane_vector(&b.kind)).max().unwrap_or(0),
    }
}

/// The kernel plan and the buffer plan at `shape`.
fn plans(grad: &GradGraph, shape: Shape, target: Target) -> Result<(Vec<Step>, Plan), Error> {
    let steps = fuse::training_plan(grad);
    let plan = program::scheduled_plan(grad, &steps, shape, target);
    hyb_compiler::plan::verify(&plan).map_err(Error::Verify)?;
    Ok((steps, plan))
}

/// Compiles `model` for `target` at `shape`, every stage through codegen.
pub fn compile(model: &Model, target: Target, shape: Shape) -> Result<Build, Error> {
    let build = compile_program(model, target, shape)?;
    let modules = codegen(&build.program, target)?;
    Ok(Build { modules, ..build })
}

/// Every stage up to the verified program (no modules): how far a target without
/// kernel forms gets.
pub fn compile_program(model: &Model, target: Target, shape: Shape) -> Result<Build, Error> {
    check(model, target).map_err(Error::Setting)?;
    let grad = grad_at(model, shape);
    let (steps, plan) = plans(&grad, shape, target)?;
    let program = program::build(model, &grad, &steps, &plan, shape, target).map_err(Error::Unsupported)?;
    hyb_lower::verify::verify(&program).map_err(Error::Verify)?;
    Ok(Build { target, grad, steps, plan, program, modules: Vec::new() })
}

/// The environment switches codegen reads: the GPU form (`HYB_GPU_FORM`) and a
/// measurement's register bounds (`HYB_MAXNREG_KERNELS`), chunked value blocks
/// (`HYB_CHUNKED_VALUE_BLOCK`), threads a chunked block (`HYB_CHUNKED_THREADS`) and the
/// chunked form's partial sums (`HYB_CHUNKED_SPLIT`; these three are taken once a
/// process). [`codegen`] refuses a malformed value (so every caller, Python's too,
/// does), never ignores it; `hybc` checks them at start as well.
pub fn check_switches() -> Result<(), String> {
    Target::check_form_switch().map_err(|e| e.to_string())?;
    hyb_kernels::gpu::register_overrides()?;
    hyb_kernels::scan::chunked::value_block_cap()?;
    hyb_kernels::scan::chunked::split_switch()?;
    hyb_kernels::emit::block_threads_switch().map(|_| ())
}

/// Codegen: each of the program's kernel keys as a module in the target's preferred
/// form that its generator has — MLIR for the CPU's JIT, lowered on to PTX for a GPU;
/// every key without one is reported.
pub fn codegen(program: &Program, target: Target) -> Result<Vec<Module>, Error> {
    check_switches().map_err(Error::Switch)?;
    let mut generated = Vec::new();
    let mut missing = Vec::new();
    for (index, key) in program.kernels.keys.iter().enumerate() {
        let name = program.kernels.name(index);
        let signature = &program.kernels.signatures[index];
        let form = target.form_for(key.forms(), key.preferred_gpu_form());
        let text = match (form, target) {
            (Some(Form::Loops), _) => hyb_kernels::key::generate(key, Form::Loops, signature, &name),
            (Some(form @ (Form::Blocks | Form::Lanes | Form::Chunked)), Target::Cuda { sm }) => {
                hyb_kernels::gpu::generate(key, &name, &sm.to_string(), signature, form)
            }
            _ => {
                let storage = hyb_kernels::key::storage_of(signature);
                Err(NoForm { key: key.to_string(), form: target.forms()[0], storage })
            }
        };
        match text {
            Ok(text) => generated.push((name, key.clone(), form.expect("a form"), text)),
            Err(no_form) => missing.push(no_form),
        }
    }
    if !missing.is_empty() {
        return Err(Error::NoForm { target, kernels: missing });
    }
    generated.into_iter().map(|(name, key, form, text)| lower(name, key, form, text, target)).collect()
}

/// The loadable object of a module: the MLIR itself for the CPU's JIT, its PTX for a GPU.
fn lower(name: String, key: KernelKey, form: Form, text: String, target: Target) -> Result<Module, Error> {
    let object = match target {
        Target::Cpu => text.clone(),
        Target::Cuda { sm } => hyb_kernels::ptx::compile(&text, &sm.to_string())
            .map_err(|e| Error::Verify(vec![format!("kernel {name} does not lower to PTX: {e}")]))?,
    };
    Ok(Module { name, key, form, text, object })
}
