//! The stages in order, and the entry points the command line and tests call.
//!
//! parse (hyb_grammar) → sema → model IR → {ir text, cost report, fla config,
//! HF layer types, Megatron pattern}. Each `--emit` stops after its stage.

use std::path::Path;

use hyb_grammar::{Diagnostic, FileId};

use crate::ir::Model;
use crate::sema::{self, Checked};
use crate::source::SourceMap;

/// What `hybc compile --emit` prints, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    Ir,
    Report,
    FlaConfig,
    HfLayerTypes,
    MegatronPattern,
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

/// Checks text held in memory (imports resolve against `loader`-less memory: none).
pub fn check_text(name: &str, text: &str) -> Compilation {
    let (mut sources, root) = SourceMap::single(name, text);
    let checked = sema::check(&mut sources, root);
    Compilation { sources, root, checked }
}

/// Errors of an export, rendered as diagnostics without a span.
pub fn export_error(message: String, help: &str) -> Diagnostic {
    Diagnostic::error(message).help(help.to_string())
}
