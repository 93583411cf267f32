//! Gathers the items of a file and everything it imports into one [`Scope`].
//!
//! Rules (docs/LANGUAGE.md, "Imports"): an item in a file overrides an item of the same
//! name in the files it imports — `let`s, `mixer`s, and block fields one by one (an
//! `eval` block's task list is replaced whole). Bindings are late: an imported
//! `layers = linear × 24 with attn every ratio` sees the importer's `let ratio`. Two
//! imports that define the same name, with no definition in the importer to settle
//! it, are an error; so are import cycles and a name defined twice in one file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hyb_grammar::ast::{self, BlockKind, Entry, Expr, Field, ItemKind, Value};
use hyb_grammar::{Diagnostic, FileId, Span};

use crate::source::SourceMap;

/// A definition and where it was written.
#[derive(Clone, Debug)]
pub struct Def<T> {
    pub value: T,
    /// The span of the defining name (or field name).
    pub name_span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub fields: BTreeMap<String, Def<Field>>,
    pub tasks: Vec<Expr>,
    /// Where the block keyword was written (the importer's, if it has one).
    pub span: Option<Span>,
}

#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub lets: BTreeMap<String, Def<Value>>,
    pub mixers: BTreeMap<String, Def<Expr>>,
    pub model: Block,
    pub train: Block,
    pub eval: Block,
    pub sweep: Block,
    pub root: FileId,
    /// The directory of each file, for paths written in it (data files).
    pub dirs: BTreeMap<FileId, PathBuf>,
    /// Names two imports define, not yet settled by an importer.
    clashes: Vec<Clash>,
}

impl Scope {
    pub fn block(&self, kind: BlockKind) -> &Block {
        match kind {
            BlockKind::Model => &self.model,
            BlockKind::Train => &self.train,
            BlockKind::Eval => &self.eval,
            BlockKind::Sweep => &self.sweep,
        }
    }

    pub fn block_mut(&mut self, kind: BlockKind) -> &mut Block {
        match kind {
            BlockKind::Model => &mut self.model,
            BlockKind::Train => &mut self.train,
            BlockKind::Eval => &mut self.eval,
            BlockKind::Sweep => &mut self.sweep,
        }
    }
}

/// Loads and parses `root` and its imports. Syntax errors end the collection (the
/// scope would be missing items and every later error would be noise).
pub fn collect(sources: &mut SourceMap, root: FileId, diagnostics: &mut Vec<Diagnostic>) -> Option<Scope> {
    let mut collector = Collector { sources, stack: Vec::new(), failed: false, diagnostics };
    let scope = collector.file(root);
    for (what, name, a, b) in &scope.clashes {
        collector.fatal(
            Diagnostic::error(format!("`{name}` is defined by two imports"))
                .at(*b, format!("{what} `{name}` here"))
                .also(*a, "and here")
                .help(format!("define `{name}` in the importing file to choose one")),
        );
    }
    if collector.failed { None } else { Some(Scope { root, ..scope }) }
}

/// `a/./b/../c` → `a/c`, so one file reached by two spellings is one file.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Deepest chain of imports accepted.
const MAX_IMPORT_DEPTH: usize = 64;

struct Collector<'a> {
    sources: &'a mut SourceMap,
    stack: Vec<(FileId, PathBuf)>,
    failed: bool,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Collector<'_> {
    fn file(&mut self, file: FileId) -> Scope {
        let path = self.sources.file(file).path.clone();
        self.stack.push((file, path.clone()));
        let parsed = match hyb_grammar::parse(file, &self.sources.file(file).text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                self.diagnostics.extend(errors);
                self.failed = true;
                self.stack.pop();
                return Scope::default();
            }
        };
        let imported = self.imports(&parsed, &path);
        let mut own = self.own_items(&parsed);
        own.dirs.insert(file, path.parent().map(Path::to_path_buf).unwrap_or_default());
        self.stack.pop();
        override_with(imported, own)
    }

    /// The merged scope of this file's imports.
    fn imports(&mut self, parsed: &ast::File, path: &Path) -> Scope {
        let mut merged = Scope::default();
        for item in &parsed.items {
            let ItemKind::Import(target) = &item.kind else {
                continue;
            };
            let target_path = normalize(&path.parent().unwrap_or(Path::new("")).join(&target.value));
            if self.stack.len() >= MAX_IMPORT_DEPTH {
                self.fatal(
                    Diagnostic::error(format!("imports nested more than {MAX_IMPORT_DEPTH} deep"))
                        .at(target.span, "too deep")
                        .help("flatten the chain of imports"),
                );
                continue;
            }
            if let Some(position) = self.stack.iter().position(|(_, p)| *p == target_path) {
                let cycle: Vec<String> = self.stack[position..]
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .chain([target_path.display().to_string()])
                    .collect();
                self.fatal(
                    Diagnostic::error("import cycle")
                        .at(target.span, "this import leads back to a file that is being imported")
                        .note(format!("cycle: {}", cycle.join(" → ")))
                        .help("move what both files need into a third file that imports neither"),
                );
                continue;
            }
            let id = match self.sources.load(&target_path) {
                Ok(id) => id,
                Err(error) => {
                    let help = crate::encoding::NotUtf8::of(&error)
                        .map_or("import paths are relative to the importing file", |why| why.help());
                    self.fatal(
                        Diagnostic::error(format!("cannot read `{}`: {error}", target_path.display()))
                            .at(target.span, "imported here")
                            .help(help),
                    );
                    continue;
                }
            };
            let scope = self.file(id);
            merged = self.merge_siblings(merged, scope);
        }
        merged
    }

    /// Two imports of one file: the same name from both is ambiguous, unless an importer
    /// settles it or it is the same definition reached twice (a diamond).
    fn merge_siblings(&mut self, mut first: Scope, second: Scope) -> Scope {
        let mut clashes = std::mem::take(&mut first.clashes);
        clashes.extend(second.clashes.iter().cloned());
        first.dirs.extend(second.dirs.clone());
        merge_map(&mut first.lets, second.lets.clone(), "let", &mut clashes);
        merge_map(&mut first.mixers, second.mixers.clone(), "mixer", &mut clashes);
        for kind in BlockKind::ALL {
            let theirs = second.block(kind).clone();
            let ours = first.block_mut(kind);
            merge_map(&mut ours.fields, theirs.fields, kind.as_str(), &mut clashes);
            if ours.tasks.is_empty() {
                ours.tasks = theirs.tasks;
            }
            ours.span = ours.span.or(theirs.span);
        }
        first.clashes = clashes;
        first
    }

    fn own_items(&mut self, parsed: &ast::File) -> Scope {
        let mut own = Scope::default();
        for item in &parsed.items {
            match &item.kind {
                ItemKind::Import(_) => {}
                ItemKind::Let { name, value } => {
                    self.define(&mut own.lets, name, value.clone(), "let");
                }
                ItemKind::Mixer { name, value } => {
                    self.define(&mut own.mixers, name, value.clone(), "mixer");
                }
                ItemKind::Block { kind, kind_span, entries } => {
                    let block = own.block_mut(*kind);
                    if let Some(previous) = block.span {
                        self.error(
                            Diagnostic::error(format!("a second `{}` block in one file", kind.as_str()))
                                .at(*kind_span, "second block")
                                .also(previous, "first block")
                                .help("merge the two blocks into one"),
                        );
                        continue;
                    }
                    block.span = Some(*kind_span);
                    for entry in entries {
                        match entry {
                            Entry::Field(field) => {
                                let block = own.block_mut(*kind);
                                let what = format!("`{}` field", kind.as_str());
                                self.define(&mut block.fields, &field.name, field.clone(), &what);
                            }
                            Entry::Task(task) => own.block_mut(*kind).tasks.push(task.clone()),
                        }
                    }
                }
            }
        }
        own
    }

    fn define<T>(&mut self, map: &mut BTreeMap<String, Def<T>>, name: &ast::Ident, value: T, what: &str) {
        if let Some(previous) = map.get(&name.text) {
            let diagnostic = Diagnostic::error(format!("`{}` is defined twice", name.text))
                .at(name.span, format!("second definition ({what})"))
                .also(previous.name_span, "first defined here")
                .help("remove one of them, or rename it");
            self.error(diagnostic);
            return;
        }
        map.insert(name.text.clone(), Def { value, name_span: name.span });
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// An import problem: the scope would miss items, and what follows would be noise.
    fn fatal(&mut self, diagnostic: Diagnostic) {
        self.failed = true;
        self.diagnostics.push(diagnostic);
    }
}

type Clash = (&'static str, String, Span, Span);

fn merge_map<T>(
    ours: &mut BTreeMap<String, Def<T>>,
    theirs: BTreeMap<String, Def<T>>,
    what: &str,
    clashes: &mut Vec<Clash>,
) {
    let what: &'static str = match what {
        "let" => "let",
        "mixer" => "mixer",
        "model" => "model field",
        "train" => "train field",
        "sweep" => "sweep field",
        _ => "eval field",
    };
    for (name, def) in theirs {
        if let Some(existing) = ours.get(&name) {
            if existing.name_span != def.name_span {
                clashes.push((what, name, existing.name_span, def.name_span));
            }
        } else {
            ours.insert(name, def);
        }
    }
}

/// The importer's own items win over imported ones, and settle clashes between them.
fn override_with(mut imported: Scope, own: Scope) -> Scope {
    imported.clashes.retain(|(what, name, _, _)| match *what {
        "let" => !own.lets.contains_key(name),
        "mixer" => !own.mixers.contains_key(name),
        "model field" => !own.model.fields.contains_key(name),
        "train field" => !own.train.fields.contains_key(name),
        "sweep field" => !own.sweep.fields.contains_key(name),
        _ => !own.eval.fields.contains_key(name),
    });
    imported.dirs.extend(own.dirs.clone());
    imported.lets.extend(own.lets.clone());
    imported.mixers.extend(own.mixers.clone());
    for kind in BlockKind::ALL {
        let own_block = own.block(kind).clone();
        let block = imported.block_mut(kind);
        block.fields.extend(own_block.fields);
        if !own_block.tasks.is_empty() {
            block.tasks = own_block.tasks;
        }
        block.span = own_block.span.or(block.span);
    }
    imported
}
