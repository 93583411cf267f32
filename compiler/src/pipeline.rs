//! The stages in order, and the entry points the command line and tests call.
//!
//! parse (hyb_grammar) → sema → model IR → {ir text, graph IR, cost report, fla
//! config, HF layer types, Megatron pattern}. Each `--emit` stops after its stage.

use std::path::Path;

use hyb_grammar::FileId;

use crate::export::{self, ExportError};

use crate::ir::Model;
use crate::sema::{self, Checked};
use crate::source::SourceMap;

/// What `hybc compile --emit` prints, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    Ir,
    Graph,
    Grad,
    Plan,
    Report,
    FlaConfig,
    HfLayerTypes,
    MegatronPattern,
}

/// How an emitted stage is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmitOptions {
    pub json: bool,
    /// Context length for the report; `None`: the train block's seq_len, else 4096.
    pub context: Option<u64>,
    /// Megatron's symbol for linear-attention layers (see `export::megatron_pattern`).
    pub megatron_linear: Option<char>,
}

/// The text of one stage of a checked model, or why the target cannot express it.
pub fn emit(model: &Model, stage: Emit, options: EmitOptions) -> Result<String, ExportError> {
    let pretty = |value: serde_json::Value| serde_json::to_string_pretty(&value).expect("JSON values serialise") + "\n";
    Ok(match stage {
        Emit::Ir if options.json => crate::ir::print::print_model_json(model),
        Emit::Ir => crate::ir::print::print_model(model),
        Emit::Graph => crate::graph::print::print_graph(&crate::graph::build::build(model)),
        Emit::Grad => crate::grad::print(&crate::grad::differentiate(model, crate::graph::build::build(model))),
        Emit::Plan => {
            // The train block's batch × seq_len, else one sequence of the context.
            let (batch, seq_len) = match &model.train {
                Some(train) => (train.batch, options.context.unwrap_or(train.seq_len)),
                None => (1, options.context.unwrap_or(4096)),
            };
            let grad = crate::grad::differentiate(model, crate::graph::build::build(model));
            crate::plan::print(&crate::plan::plan(&grad, batch, seq_len))
        }
        Emit::Report => {
            let context = options.context.or(model.train.as_ref().map(|t| t.seq_len)).unwrap_or(4096);
            let report = crate::report::report(model, context);
            if options.json { crate::report::to_json(&report) } else { crate::report::to_text(&report) }
        }
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
    let mut sources = SourceMap::fs();
    let root = sources.load(path)?;
    let checked = sema::check(&mut sources, root);
    Ok(Compilation { sources, root, checked })
}

/// Checks text held in memory as if it were the file at `path`: its imports are read
/// from disk relative to that path (how `hybc sweep` compiles each run's overrides).
pub fn check_source(path: &Path, text: &str) -> Compilation {
    let mut sources = SourceMap::fs();
    let root = sources.add(path.to_path_buf(), text.to_string());
    let checked = sema::check(&mut sources, root);
    Compilation { sources, root, checked }
}

/// Checks text held in memory; it can import nothing (there is no file system behind it).
pub fn check_text(name: &str, text: &str) -> Compilation {
    let (mut sources, root) = SourceMap::single(name, text);
    let checked = sema::check(&mut sources, root);
    Compilation { sources, root, checked }
}
