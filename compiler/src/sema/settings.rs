//! `--set name=value` of `hybc train / eval / sweep`: a field of the `train` or `eval`
//! block given on the command line. Each is a source of its own, named `<--set>`,
//! parsed as a field of the language and laid over the checked file's scope the way a
//! file's own fields are laid over its imports, so its value goes through the same
//! checks and a mistake is reported in the `--set` text.
//!
//! `eval.batch=4` names its block; a bare name is a train field if the train block has
//! it (`batch`, `seed`), else an eval field. A block the file lacks is made from the
//! settings only where the checker can accept it: a train block needs its `data`; an
//! eval block needs tasks, which are not fields, so it cannot be made.

use std::path::PathBuf;

use hyb_grammar::ast::{BlockKind, Field};
use hyb_grammar::{Diagnostic, Span};

use super::scope::{Def, Scope};
use super::train::{EVAL_FIELDS, TRAIN_FIELDS};
use super::values::unknown_name;
use crate::source::SourceMap;

/// The name a `--set` source is shown under.
pub const SOURCE_NAME: &str = "<--set>";

/// One parsed `--set`.
#[derive(Clone, Debug)]
pub struct Setting {
    pub block: BlockKind,
    pub field: Field,
    /// The whole `--set` text.
    pub span: Span,
}

/// Parses each text into `sources` as a `<--set>` file; what does not parse, or names
/// no train or eval field, is reported and left out.
pub fn parse(sources: &mut SourceMap, texts: &[String], diagnostics: &mut Vec<Diagnostic>) -> Vec<Setting> {
    let mut settings = Vec::new();
    for text in texts {
        let file = sources.add(PathBuf::from(SOURCE_NAME), text.clone());
        let span = Span::new(file, 0, text.len());
        // `eval.` / `train.` are blanked (byte offsets kept) and name the block.
        let head = &text[..text.find('=').unwrap_or(0)];
        let (prefix, body) = match head.find('.') {
            Some(dot) => (Some((head[..dot].trim(), Span::new(file, 0, dot))), " ".repeat(dot + 1) + &text[dot + 1..]),
            None => (None, text.clone()),
        };
        let field = match hyb_grammar::parse_field(file, &body) {
            Ok(field) => field,
            Err(errors) => {
                diagnostics.extend(errors.into_iter().map(setting_syntax));
                continue;
            }
        };
        let name = field.name.text.as_str();
        let block = match prefix {
            Some(("train", _)) if TRAIN_FIELDS.contains(&name) => BlockKind::Train,
            Some(("eval", _)) if EVAL_FIELDS.contains(&name) => BlockKind::Eval,
            Some(("train", _)) => {
                diagnostics.push(unknown_name(name, field.name.span, "train field", TRAIN_FIELDS));
                continue;
            }
            Some(("eval", _)) => {
                diagnostics.push(unknown_name(name, field.name.span, "eval field", EVAL_FIELDS));
                continue;
            }
            Some((other, prefix_span)) => {
                diagnostics.push(
                    Diagnostic::error(format!("`--set` cannot change the `{other}` block"))
                        .at(prefix_span, "not `train` or `eval`")
                        .help(
                            "`--set` sets fields of the train and eval blocks: `--set steps=100`, `--set eval.batch=4`",
                        ),
                );
                continue;
            }
            None if TRAIN_FIELDS.contains(&name) => BlockKind::Train,
            None if EVAL_FIELDS.contains(&name) => BlockKind::Eval,
            None => {
                let mut known: Vec<&str> = TRAIN_FIELDS.to_vec();
                known.extend(EVAL_FIELDS.iter().filter(|f| !TRAIN_FIELDS.contains(f)));
                diagnostics.push(unknown_name(name, field.name.span, "train or eval field", &known));
                continue;
            }
        };
        settings.push(Setting { block, field, span });
    }
    settings
}

/// Lays the settings over the scope: each replaces the field of its name.
pub fn apply(scope: &mut Scope, settings: &[Setting], root: &str, diagnostics: &mut Vec<Diagnostic>) {
    for (index, setting) in settings.iter().enumerate() {
        let name = &setting.field.name;
        if let Some(first) =
            settings[..index].iter().find(|s| s.block == setting.block && s.field.name.text == name.text)
        {
            diagnostics.push(
                Diagnostic::error(format!("`{}` is set twice", name.text))
                    .at(name.span, "second `--set`")
                    .also(first.field.name.span, "first `--set`")
                    .help("give each field once"),
            );
            continue;
        }
        let has_block = scope.block(setting.block).span.is_some();
        let block_name = setting.block.as_str();
        if !has_block {
            let makes_train = setting.block == BlockKind::Train
                && settings.iter().any(|s| s.block == BlockKind::Train && s.field.name.text == "data");
            if !makes_train {
                let help = match setting.block {
                    BlockKind::Train => {
                        "add a train block to the file, or make one here by also giving its data: `--set data=mqar(pairs: 4)`"
                    }
                    _ => "add an eval block with its tasks to the file; `--set` changes fields, not tasks",
                };
                diagnostics.push(
                    Diagnostic::error(format!(
                        "`{root}` has no {block_name} block for `--set {}` to change",
                        name.text
                    ))
                    .at(setting.span, format!("a field of the {block_name} block"))
                    .help(help),
                );
                continue;
            }
        }
        let block = scope.block_mut(setting.block);
        block.span = block.span.or(Some(setting.span));
        block.fields.insert(name.text.clone(), Def { value: setting.field.clone(), name_span: name.span });
    }
}

/// A syntax error of a `--set`: where the grammar expects a file's next item, the
/// setting should have ended.
fn setting_syntax(mut diagnostic: Diagnostic) -> Diagnostic {
    const ITEM: &str = "an item (`import`, `let`, `mixer`, `model`, `train`, `eval`)";
    diagnostic.message = diagnostic.message.replace(ITEM, "the end of the setting");
    for label in &mut diagnostic.labels {
        label.message = label.message.replace(ITEM, "the end of the setting");
    }
    match diagnostic.help {
        Some(_) => diagnostic,
        None => diagnostic.help("write `--set name=value` with one value, e.g. `--set steps=100`"),
    }
}
