//! The stages in order, and the entry points the command line and tests call.
//!
//! parse (hyb_grammar) → sema → model IR → {ir text, cost report, fla config, HF layer
//! types, Megatron pattern}. The stages after the model IR (graph, grad, plan, program,
//! kernels) belong to the driver crate (`hyb_driver`), which owns the whole chain so
//! that what it prints is what runs.

use std::path::Path;

use hyb_grammar::FileId;

use crate::export::{self, ExportError};

use crate::ir::Model;
use crate::sema::{self, Checked};
use crate::source::SourceMap;

/// What the model IR alone gives (`hybc compile --emit`), in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    Ir,
    FlaConfig,
    HfLayerTypes,
    MegatronPattern,
}

/// How an emitted stage is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmitOptions {
    pub json: bool,
    /// Megatron's symbol for linear-attention layers (see `export::megatron_pattern`).
    pub megatron_linear: Option<char>,
}

/// The text of one stage of a checked model, or why the target cannot express it.
pub fn emit(model: &Model, stage: Emit, options: EmitOptions) -> Result<String, ExportError> {
    let pretty = |value: serde_json::Value| serde_json::to_string_pretty(&value).expect("JSON values serialise") + "\n";
    Ok(match stage {
        Emit::Ir if options.json => crate::ir::print::print_model_json(model),
        Emit::Ir => crate::ir::print::print_model(model),
        Emit::FlaConfig => pretty(export::fla_config(model)?),
        Emit::HfLayerTypes => pretty(export::hf_layer_types(model)?),
        Emit::MegatronPattern => export::megatron_pattern(model, options.megatron_linear)? + "\n",
    })
}

/// A checked compilation: the sources (for rendering) and the outcome.
pub struct Compilation {
    pub sources: SourceMap,
    pub root: FileId,
    pub checked: Checked,
}

impl Compilation {
    pub fn model(&self) -> Option<&Model> {
        self.checked.model.as_ref()
    }

    pub fn render(&self) -> String {
        self.sources.render(&self.checked.diagnostics)
    }
}

/// Loads and checks a file from disk.
pub fn check_path(path: &Path) -> std::io::Result<Compilation> {
    check_path_with(path, &[])
}

/// [`check_path`] with `--set name=value` texts over the train and eval blocks.
pub fn check_path_with(path: &Path, sets: &[String]) -> std::io::Result<Compilation> {
    let mut sources = SourceMap::fs();
    let root = sources.load(path)?;
    let checked = sema::check_with(&mut sources, root, sets);
    Ok(Compilation { sources, root, checked })
}

/// Checks text held in memory as if it were the file at `path`: its imports are read
/// from disk relative to that path (how `hybc sweep` compiles each run's overrides),
/// with `--set` texts as in [`check_path_with`].
pub fn check_source(path: &Path, text: &str, sets: &[String]) -> Compilation {
    let mut sources = SourceMap::fs();
    let root = sources.add(path.to_path_buf(), text.to_string());
    let checked = sema::check_with(&mut sources, root, sets);
    Compilation { sources, root, checked }
}

/// Checks text held in memory; it can import nothing (there is no file system behind it).
pub fn check_text(name: &str, text: &str) -> Compilation {
    let (mut sources, root) = SourceMap::single(name, text);
    let checked = sema::check(&mut sources, root);
    Compilation { sources, root, checked }
}
