//! Text to syntax tree: runs the pest grammar, builds [`crate::ast`] nodes with spans,
//! and turns pest's failures into [`Diagnostic`]s.
//!
//! Recovery: after a syntax error the parser blanks the broken top-level item (from
//! its keyword to the next line that starts with one) and parses again, so one run
//! reports the errors of several items. Each new parse starts after the items already
//! known to parse (see `syntax_errors`), so recovering from many errors costs about one
//! pass over the file, not one pass per error. [`crate::delimiters`] bounds bracket nesting
//! before pest sees the text, and points a syntax error that an unclosed bracket
//! caused at that bracket as well.

use pest::Parser as _;
use std::sync::Mutex;

use pest::iterators::{Pair, Pairs};

use crate::ast::*;
use crate::delimiters;
use crate::diag::Diagnostic;
use crate::span::{FileId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "hyb.pest"]
struct HybParser;

pub use crate::delimiters::MAX_NESTING;
/// At most this many syntax errors are reported per file.
const MAX_SYNTAX_ERRORS: usize = 20;
const TOP_LEVEL_KEYWORDS: [&str; 6] = ["import", "let", "mixer", "model", "train", "eval"];

/// pest's call limit and error detail are process-wide switches read when a parse
/// starts: this lock keeps one thread from flipping them under another's parse.
static PEST_SWITCHES: Mutex<()> = Mutex::new(());

/// Runs the grammar from `rule` over `text`, collecting pest's expected tokens (for the
/// messages; it about doubles a parse's time) only when `detail` is set. The caller
/// holds [`PEST_SWITCHES`].
fn run(rule: Rule, text: &str, detail: bool) -> Result<Pairs<'_, Rule>, pest::error::Error<Rule>> {
    pest::set_call_limit(std::num::NonZeroUsize::new(5_000_000));
    pest::set_error_detail(detail);
    HybParser::parse(rule, text)
}

/// Parses one file. On failure returns every syntax error found (at least one).
pub fn parse(file: FileId, text: &str) -> Result<File, Vec<Diagnostic>> {
    if let Some(diagnostic) = delimiters::check_nesting(file, text) {
        return Err(vec![diagnostic]);
    }
    let _switches = PEST_SWITCHES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match run(Rule::file, text, false) {
        Ok(mut pairs) => {
            let file_pair = pairs.next().expect("the file rule always yields one pair");
            Ok(Builder { file, code_end: code_ends(text) }.file(file_pair))
        }
        Err(_) => Err(syntax_errors(file, text)),
    }
}

/// Every syntax error of a `text` that does not parse, by recovery (the module's doc).
///
/// `work[..done]` is a run of whole items (and trivia) that parses on its own and ends
/// where a line starts with an item keyword, so each parse starts at `done`: in a PEG an
/// item matched in the prefix is matched the same way in the whole text (the next byte
/// starts a keyword line, which continues no item) and `item*` never backtracks into
/// it, so the parse fails where a parse of all of `work` would. Only the expected tokens
/// can differ: those by which the item before `done` could have continued are not
/// listed.
fn syntax_errors(file: FileId, text: &str) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut work = text.to_string();
    let mut done = 0;
    loop {
        let Err(error) = run(Rule::file, &work[done..], true) else { return errors };
        let (diagnostic, position) = syntax_error(file, &work, done, &error);
        errors.push(diagnostic);
        let Some(blanked_start) = blank_item_around(&mut work, position) else { return errors };
        if errors.len() >= MAX_SYNTAX_ERRORS {
            return errors;
        }
        if blanked_start > done && run(Rule::file, &work[done..blanked_start], false).is_ok() {
            done = blanked_start;
        }
    }
}

/// Parses one `name = value` on its own (a command line's `--set`): the whole text is
/// the field, spans are offsets into it.
pub fn parse_field(file: FileId, text: &str) -> Result<Field, Vec<Diagnostic>> {
    if let Some(diagnostic) = delimiters::check_nesting(file, text) {
        return Err(vec![diagnostic]);
    }
    let _switches = PEST_SWITCHES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match run(Rule::setting, text, true) {
        Ok(mut pairs) => {
            let setting = pairs.next().expect("the setting rule always yields one pair");
            let field = setting.into_inner().next().expect("the grammar guarantees this pair");
            match (Builder { file, code_end: code_ends(text) }).entry(field) {
                Entry::Field(field) => Ok(field),
                Entry::Task(_) => unreachable!("the setting rule holds a field"),
            }
        }
        Err(error) => Err(vec![syntax_error(file, text, 0, &error).0]),
    }
}

/// Replaces the top-level item containing `position` with spaces (newlines kept, so
/// offsets and line numbers stay). Returns where the blanked item starts, or `None` if
/// nothing could be blanked.
fn blank_item_around(work: &mut String, position: usize) -> Option<usize> {
    let starts = item_starts(work);
    let start = starts.iter().copied().rfind(|s| *s <= position).unwrap_or(0);
    let end = starts.iter().copied().find(|s| *s > position).unwrap_or(work.len());
    if start >= end {
        return None;
    }
    let region: String = work[start..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
    let mut blanked = work[..start].to_string();
    blanked.push_str(&region);
    blanked.push_str(&work[end..]);
    let changed = blanked != *work;
    // Multi-byte characters became one space each: pad to keep byte offsets.
    let padding = work.len().saturating_sub(blanked.len());
    *work = blanked;
    let insert_at = start + region.len();
    work.insert_str(insert_at, &" ".repeat(padding));
    changed.then_some(start)
}

/// Byte offsets of lines that begin (at column 0) with a top-level keyword.
fn item_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_item = TOP_LEVEL_KEYWORDS.iter().any(|keyword| {
            line.strip_prefix(keyword)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        });
        if is_item {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts
}

/// The diagnostic for `error`, raised by parsing `text[base..]`, and the position in
/// `text` that recovery should blank around.
fn syntax_error(file: FileId, text: &str, base: usize, error: &pest::error::Error<Rule>) -> (Diagnostic, usize) {
    let position = base
        + match error.location {
            pest::error::InputLocation::Pos(position) => position,
            pest::error::InputLocation::Span((start, _)) => start,
        };
    let found = token_at(text, position);
    let end = position + found.len().max(1).min(text.len().saturating_sub(position).max(1));
    let span = Span::new(file, position, end.min(text.len()).max(position));
    let punctuation: Vec<String> = error
        .parse_attempts()
        .map(|attempts| attempts.expected_tokens())
        .unwrap_or_default()
        .into_iter()
        .map(|token| token.to_string())
        // Openers (`(`, `[`, `-`) start values, which the rule names already cover.
        .filter(|token| [")", "]", "}", ",", "=", ":", "{"].contains(&token.as_str()))
        .collect();
    let expected = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => describe_expected(positives, &punctuation),
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    let found_text = if found.is_empty() { "end of file".to_string() } else { format!("`{found}`") };
    let unbalanced = delimiters::unbalanced(text);
    if let Some(&(open, opener)) = unbalanced.unclosed.iter().rfind(|(open, _)| *open < position) {
        let (opener, closer) = (opener as char, delimiters::closer_of(opener) as char);
        let line = text[..open].matches('\n').count() + 1;
        let diagnostic = Diagnostic::error(format!("unclosed delimiter `{opener}`"))
            .at(span, format!("expected {expected}, found {found_text}"))
            .also(Span::new(file, open, open + 1), "unclosed delimiter")
            .help(format!("close the `{opener}` opened on line {line} with `{closer}`"));
        // Recovery blanks the item that opened the bracket: the error is there.
        return (diagnostic, open);
    }
    if let Some(&(_, closer)) = unbalanced.stray.iter().find(|(offset, _)| *offset == position) {
        let diagnostic = Diagnostic::error(format!("unexpected closing delimiter `{}`", closer as char))
            .at(span, "closes nothing")
            .help("every closing bracket needs the opening one before it; remove this one or add its partner");
        return (diagnostic, position);
    }
    let diagnostic = Diagnostic::error(format!("syntax error: expected {expected}, found {found_text}"))
        .at(span, format!("expected {expected}"))
        .help(syntax_help(&expected, found));
    (diagnostic, position)
}

fn syntax_help(expected: &str, found: &str) -> String {
    if found.starts_with('"') && !found[1..].contains('"') {
        return "strings end with `\"` on the same line".to_string();
    }
    if expected.contains("an item") {
        return "a file holds `import`, `let`, `mixer`, `model { }`, `train { }` and `eval { }` items".to_string();
    }
    if expected.contains("a field") {
        return "inside a block write one `name = value` per line (or, in `eval`, a task like `mqar(pairs: 16)`)"
            .to_string();
    }
    if expected.contains("`,`") || expected.contains("`)`") {
        return "separate arguments and schedule items with `,` and close every bracket".to_string();
    }
    if expected.contains("`=`") {
        return "write `name = value`".to_string();
    }
    "see docs/LANGUAGE.md for the syntax of each construct".to_string()
}

/// The token starting at `position`, for "found `...`".
fn token_at(text: &str, position: usize) -> &str {
    let rest = text.get(position..).unwrap_or("");
    let rest = rest.trim_end_matches(['\n', '\r']);
    let first = match rest.chars().next() {
        Some(c) => c,
        None => return "",
    };
    let len = if first.is_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len())
    } else {
        first.len_utf8()
    };
    &rest[..len]
}

fn describe_expected(rules: &[Rule], punctuation: &[String]) -> String {
    let mut words: Vec<String> = Vec::new();
    for expected_rule in rules {
        let word = describe_rule(*expected_rule).to_string();
        if !words.contains(&word) {
            words.push(word);
        }
    }
    for token in punctuation {
        let word = format!("`{token}`");
        if !words.contains(&word) {
            words.push(word);
        }
    }
    match words.len() {
        0 => "something else".to_string(),
        1 => words[0].to_string(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

fn describe_rule(grammar_rule: Rule) -> &'static str {
    match grammar_rule {
        Rule::EOI | Rule::import_item | Rule::let_item | Rule::mixer_item | Rule::block | Rule::block_kind => {
            "an item (`import`, `let`, `mixer`, `model`, `train`, `eval`)"
        }
        Rule::field | Rule::task | Rule::setting => "a field (`name = value`)",
        Rule::value | Rule::expr | Rule::call | Rule::group | Rule::list | Rule::number | Rule::string => "a value",
        Rule::boolean | Rule::none => "a value",
        Rule::string_inner => "the rest of the string",
        Rule::arg => "an argument",
        Rule::ident => "a name",
        Rule::times => "`×`",
        Rule::index_rule | Rule::at_rule | Rule::every_rule => "an index rule (`NAME at [..]` or `NAME every N`)",
        Rule::kw_with => "`with`",
        Rule::kw_at => "`at`",
        Rule::kw_every => "`every`",
        Rule::kw_offset => "`offset`",
        Rule::keyword => "a keyword",
        Rule::file | Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char => "a value",
        Rule::item => "an item (`import`, `let`, `mixer`, `model`, `train`, `eval`)",
        Rule::entry => "a field (`name = value`)",
        Rule::expr_atom => "a value",
    }
}

struct Builder {
    file: FileId,
    /// `code_end[i]`: the end of the last code byte before offset `i`.
    code_end: Vec<usize>,
}

/// For each offset, where the code before it ends: pest rules absorb the whitespace
/// and comments that follow them, and spans must not.
fn code_ends(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut ends = vec![0; bytes.len() + 1];
    let mut last = 0;
    let mut index = 0;
    let mut in_comment = false;
    let mut in_string = false;
    while index < bytes.len() {
        ends[index] = last;
        let byte = bytes[index];
        if in_comment {
            in_comment = byte != b'\n';
        } else if in_string {
            last = index + 1;
            if byte == b'\\' && index + 1 < bytes.len() {
                index += 1;
                ends[index] = last;
                last = index + 1;
            } else if byte == b'"' || byte == b'\n' {
                in_string = false;
            }
        } else if byte == b'/' && bytes.get(index + 1) == Some(&b'/') {
            in_comment = true;
        } else if byte == b'"' {
            in_string = true;
            last = index + 1;
        } else if !byte.is_ascii_whitespace() {
            last = index + 1;
        }
        index += 1;
    }
    ends[bytes.len()] = last;
    ends
}

impl Builder {
    fn span(&self, pair: &Pair<Rule>) -> Span {
        let span = pair.as_span();
        let end = self.code_end[span.end()].max(span.start());
        Span::new(self.file, span.start(), end)
    }

    fn file(&self, pair: Pair<Rule>) -> File {
        let span = self.span(&pair);
        let items = pair.into_inner().filter(|p| p.as_rule() != Rule::EOI).map(|p| self.item(p)).collect();
        File { items, span }
    }

    fn item(&self, pair: Pair<Rule>) -> Item {
        let span = self.span(&pair);
        let item_rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let kind = match item_rule {
            Rule::import_item => ItemKind::Import(self.string(inner.next().expect("the grammar guarantees this pair"))),
            Rule::let_item => {
                let name = self.ident(inner.next().expect("the grammar guarantees this pair"));
                ItemKind::Let { name, value: self.value(inner.next().expect("the grammar guarantees this pair")) }
            }
            Rule::mixer_item => {
                let name = self.ident(inner.next().expect("the grammar guarantees this pair"));
                ItemKind::Mixer { name, value: self.expr(inner.next().expect("the grammar guarantees this pair")) }
            }
            Rule::block => {
                let kind_pair = inner.next().expect("the grammar guarantees this pair");
                let kind_span = self.span(&kind_pair);
                let kind = match kind_pair.as_str() {
                    "model" => BlockKind::Model,
                    "train" => BlockKind::Train,
                    "eval" => BlockKind::Eval,
                    _ => BlockKind::Sweep,
                };
                let entries = inner.map(|entry| self.entry(entry)).collect();
                ItemKind::Block { kind, kind_span, entries }
            }
            other => unreachable!("not an item rule: {other:?}"),
        };
        Item { kind, span }
    }

    fn entry(&self, pair: Pair<Rule>) -> Entry {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::field => {
                let mut inner = pair.into_inner();
                let name = self.ident(inner.next().expect("the grammar guarantees this pair"));
                let value = self.value(inner.next().expect("the grammar guarantees this pair"));
                Entry::Field(Field { name, value, span })
            }
            Rule::task => {
                Entry::Task(self.expr_atom(pair.into_inner().next().expect("the grammar guarantees this pair")))
            }
            other => unreachable!("not an entry rule: {other:?}"),
        }
    }

    fn value(&self, pair: Pair<Rule>) -> Value {
        let span = self.span(&pair);
        let mut seq = Vec::new();
        let mut rules = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::expr => seq.push(self.expr(part)),
                Rule::index_rule => rules.push(self.rule(part)),
                Rule::kw_with => {}
                other => unreachable!("not a value part: {other:?}"),
            }
        }
        Value { seq, rules, span }
    }

    fn rule(&self, pair: Pair<Rule>) -> crate::ast::Rule {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let mixer = self.expr_atom(inner.next().expect("the grammar guarantees this pair"));
        let kind_pair = inner.next().expect("the grammar guarantees this pair");
        let kind = match kind_pair.as_rule() {
            Rule::at_rule => {
                RuleKind::At(self.expr_atom(kind_pair.into_inner().nth(1).expect("the grammar guarantees this pair")))
            }
            _ => {
                let mut parts =
                    kind_pair.into_inner().filter(|p| !matches!(p.as_rule(), Rule::kw_every | Rule::kw_offset));
                let period = self.expr_atom(parts.next().expect("the grammar guarantees this pair"));
                let offset = parts.next().map(|p| self.expr_atom(p));
                RuleKind::Every { period, offset }
            }
        };
        crate::ast::Rule { mixer, kind, span }
    }

    fn expr(&self, pair: Pair<Rule>) -> Expr {
        let mut inner = pair.into_inner().filter(|p| p.as_rule() != Rule::times);
        let mut expr = self.expr_atom(inner.next().expect("the grammar guarantees this pair"));
        for count in inner {
            let count = self.expr_atom(count);
            let span = expr.span.to(count.span);
            expr = Expr { kind: ExprKind::Repeat { body: Box::new(expr), count: Box::new(count) }, span };
        }
        expr
    }

    fn exprs(&self, pair: Pair<Rule>) -> Vec<Expr> {
        pair.into_inner().map(|p| self.expr(p)).collect()
    }

    fn expr_atom(&self, pair: Pair<Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::expr => return self.expr(pair),
            Rule::number => ExprKind::Number(Number { text: pair.as_str().to_string() }),
            Rule::string => ExprKind::Str(self.string(pair)),
            Rule::boolean => ExprKind::Bool(pair.as_str() == "true"),
            Rule::none => ExprKind::None,
            Rule::ident => ExprKind::Name(self.ident(pair)),
            Rule::group => ExprKind::Group(self.exprs(pair)),
            Rule::list => ExprKind::List(self.exprs(pair)),
            Rule::call => {
                let mut inner = pair.into_inner();
                let callee = self.ident(inner.next().expect("the grammar guarantees this pair"));
                let args = inner.map(|arg| self.arg(arg)).collect();
                ExprKind::Call { callee, args }
            }
            other => unreachable!("not an expression rule: {other:?}"),
        };
        Expr { kind, span }
    }

    fn arg(&self, pair: Pair<Rule>) -> Arg {
        let span = self.span(&pair);
        let mut name = None;
        let mut value = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                _ => value = Some(self.expr(part)),
            }
        }
        Arg { name, value: value.expect("an argument always has a value"), span }
    }

    fn ident(&self, pair: Pair<Rule>) -> Ident {
        Ident { text: pair.as_str().to_string(), span: self.span(&pair) }
    }

    fn string(&self, pair: Pair<Rule>) -> StrLit {
        let span = self.span(&pair);
        let raw = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
        StrLit { value: unescape(raw), span }
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recovery as it was first written, the reference: blank the broken item and
    /// parse the whole file again, once per error.
    fn syntax_errors_by_whole_reparses(file: FileId, text: &str) -> Vec<Diagnostic> {
        let _switches = PEST_SWITCHES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut errors, mut work) = (Vec::new(), text.to_string());
        while let Err(error) = run(Rule::file, &work, true) {
            let (diagnostic, position) = syntax_error(file, &work, 0, &error);
            errors.push(diagnostic);
            if blank_item_around(&mut work, position).is_none() || errors.len() >= MAX_SYNTAX_ERRORS {
                break;
            }
        }
        errors
    }

    fn spans(errors: &[Diagnostic]) -> Vec<Vec<(u32, u32)>> {
        errors.iter().map(|e| e.labels.iter().map(|l| (l.span.start, l.span.end)).collect()).collect()
    }

    /// Recovery that starts each parse after the items known to parse reports the same
    /// errors at the same places as reparsing the whole file, on every file the fuzzer
    /// kept and every hand-written seed (the expected-token lists may differ).
    #[test]
    fn recovery_from_the_last_good_item_finds_what_whole_reparses_find() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let (mut files, mut with_several_errors, mut resumed_later) = (0, 0, 0);
        for dir in ["seeds/parse_check", "corpus/parse_check"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("the fuzz corpus is committed") {
                let path = entry.expect("a directory entry").path();
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                if delimiters::check_nesting(FileId(0), &text).is_some() {
                    continue;
                }
                files += 1;
                let Err(errors) = parse(FileId(0), &text) else { continue };
                let reference = syntax_errors_by_whole_reparses(FileId(0), &text);
                assert_eq!(spans(&errors), spans(&reference), "{}", path.display());
                if errors.len() >= 2 {
                    with_several_errors += 1;
                    resumed_later += usize::from(errors.iter().zip(&reference).any(|(a, b)| a.message != b.message));
                }
            }
        }
        assert!(files > 1000 && with_several_errors > 300, "{files} files, {with_several_errors} with several errors");
        assert!(resumed_later > 0, "no file's messages differ: the resumed parses are not exercised");
    }
}
