//! `hybc fmt`: the canonical text of a `.hyb` file.
//!
//! Canonical means: four-space indents; one item or field per line; `=` aligned within
//! a block and within a run of `let`s or `mixer`s; `×` for repetition; calls that do not
//! fit in [`WIDTH`] columns broken one argument per line with a trailing comma; at most
//! one blank line, kept where the author had one. Comments are kept: a comment on its
//! own line stays above the item or field that follows it, a comment at the end of a
//! line stays at the end of that item's or field's line. (A comment inside a call that
//! spans lines moves above the field it belongs to.) Formatting is idempotent.

use hyb_grammar::ast::*;
use hyb_grammar::comments::{self, Comment};

pub const WIDTH: usize = 100;
const INDENT: &str = "    ";

/// Formats `text`, or returns the syntax errors that prevent it.
pub fn format_source(text: &str) -> Result<String, Vec<hyb_grammar::Diagnostic>> {
    let file = hyb_grammar::parse(hyb_grammar::FileId(0), text)?;
    Ok(format_file(&file, text))
}

pub fn format_file(file: &File, text: &str) -> String {
    let placement = place_comments(file, text);
    let mut out = String::new();
    let mut previous_end: Option<usize> = None;
    let widths = item_name_widths(file, text);
    for (index, item) in file.items.iter().enumerate() {
        let leading = &placement.item_leading[index];
        let first_start = leading.first().map_or(item.span.start as usize, |c| c.start);
        if let Some(end) = previous_end
            && (has_blank_line(text, end, first_start) || needs_separation(&file.items[index - 1], item))
        {
            out.push('\n');
        }
        push_leading(&mut out, leading, item.span.start as usize, text, "");
        let body = format_item(item, widths[index], &placement, index, text);
        out.push_str(&body);
        if let Some(comment) = &placement.item_trailing[index] {
            out.push(' ');
            out.push_str(&comment.text);
        }
        out.push('\n');
        previous_end = Some(item.span.end as usize);
    }
    if !placement.file_end.is_empty() {
        if let Some(end) = previous_end
            && has_blank_line(text, end, placement.file_end[0].start)
        {
            out.push('\n');
        }
        for comment in &placement.file_end {
            out.push_str(&comment.text);
            out.push('\n');
        }
    }
    out
}

/// Blocks always stand apart from what precedes them.
fn needs_separation(previous: &Item, item: &Item) -> bool {
    matches!(item.kind, ItemKind::Block { .. }) || matches!(previous.kind, ItemKind::Block { .. })
}

/// Width to pad `let`/`mixer` names to: the longest in the run of same-kind items
/// not separated by a blank line.
fn item_name_widths(file: &File, text: &str) -> Vec<usize> {
    let name_of = |item: &Item| match &item.kind {
        ItemKind::Let { name, .. } => Some(("let", name.text.chars().count())),
        ItemKind::Mixer { name, .. } => Some(("mixer", name.text.chars().count())),
        _ => None,
    };
    let mut widths = vec![0; file.items.len()];
    let mut run_start = 0;
    for index in 0..=file.items.len() {
        let breaks = index == file.items.len()
            || index == 0
            || name_of(&file.items[index]).map(|n| n.0) != name_of(&file.items[index - 1]).map(|n| n.0)
            || has_blank_line(text, file.items[index - 1].span.end as usize, file.items[index].span.start as usize);
        if breaks && index > 0 {
            let width =
                file.items[run_start..index].iter().filter_map(|item| name_of(item).map(|n| n.1)).max().unwrap_or(0);
            widths[run_start..index].iter_mut().for_each(|w| *w = width);
            run_start = index;
        }
    }
    widths
}

fn format_item(item: &Item, name_width: usize, placement: &Placement, index: usize, text: &str) -> String {
    match &item.kind {
        ItemKind::Import(path) => format!("import {}", string_literal(&path.value)),
        ItemKind::Let { name, value } => {
            let head = format!("let {:<name_width$} = ", name.text);
            let indent_width = 0;
            format!("{head}{}", value_to_string(value, head.chars().count(), indent_width))
        }
        ItemKind::Mixer { name, value } => {
            let head = format!("mixer {:<name_width$} = ", name.text);
            format!("{head}{}", expr_at(value, head.chars().count(), 0))
        }
        ItemKind::Block { kind, entries, .. } => format_block(*kind, entries, &placement.entries[index], text),
    }
}

fn format_block(kind: BlockKind, entries: &[Entry], placement: &BlockPlacement, text: &str) -> String {
    let mut out = format!("{} {{\n", kind.as_str());
    let width = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Field(field) => Some(field.name.text.chars().count()),
            Entry::Task(_) => None,
        })
        .max()
        .unwrap_or(0);
    for (index, entry) in entries.iter().enumerate() {
        let leading = &placement.leading[index];
        let first_start = leading.first().map_or(entry.span().start as usize, |c| c.start);
        if index > 0 && has_blank_line(text, entries[index - 1].span().end as usize, first_start) {
            out.push('\n');
        }
        push_leading(&mut out, leading, entry.span().start as usize, text, INDENT);
        out.push_str(INDENT);
        match entry {
            Entry::Field(field) => {
                let head = format!("{:<width$} = ", field.name.text);
                out.push_str(&head);
                out.push_str(&value_to_string(&field.value, INDENT.len() + head.chars().count(), 1));
            }
            Entry::Task(task) => out.push_str(&expr_at(task, INDENT.len(), 1)),
        }
        if let Some(comment) = &placement.trailing[index] {
            out.push(' ');
            out.push_str(&comment.text);
        }
        out.push('\n');
    }
    for comment in &placement.end {
        out.push_str(INDENT);
        out.push_str(&comment.text);
        out.push('\n');
    }
    out.push('}');
    out
}

/// Comments above an item or field, keeping a blank line where the author left one
/// between them or before the code.
fn push_leading(out: &mut String, leading: &[Comment], code_start: usize, text: &str, indent: &str) {
    for (index, comment) in leading.iter().enumerate() {
        out.push_str(indent);
        out.push_str(&comment.text);
        out.push('\n');
        let next = leading.get(index + 1).map_or(code_start, |c| c.start);
        if has_blank_line(text, comment.start + comment.text.len(), next) {
            out.push('\n');
        }
    }
}

fn has_blank_line(text: &str, from: usize, to: usize) -> bool {
    let between = text.get(from.min(to)..to).unwrap_or("");
    let segments: Vec<&str> = between.split('\n').collect();
    segments.len() > 2 && segments[1..segments.len() - 1].iter().any(|segment| segment.trim().is_empty())
}

/// A value on one line if it fits, else with its calls broken.
fn value_to_string(value: &Value, column: usize, depth: usize) -> String {
    let flat = value_flat(value);
    if column + flat.chars().count() <= WIDTH {
        return flat;
    }
    let mut parts: Vec<String> = value.seq.iter().map(|expr| expr_at(expr, column, depth)).collect();
    if !value.rules.is_empty() {
        let rules: Vec<String> = value.rules.iter().map(rule_to_string).collect();
        let last = parts.pop().unwrap_or_default();
        parts.push(format!("{last} with {}", rules.join(", ")));
    }
    parts.join(", ")
}

fn value_flat(value: &Value) -> String {
    let mut out = value.seq.iter().map(expr_to_string).collect::<Vec<_>>().join(", ");
    if !value.rules.is_empty() {
        out.push_str(" with ");
        out.push_str(&value.rules.iter().map(rule_to_string).collect::<Vec<_>>().join(", "));
    }
    out
}

fn rule_to_string(rule: &Rule) -> String {
    let mixer = expr_to_string(&rule.mixer);
    match &rule.kind {
        RuleKind::At(list) => format!("{mixer} at {}", expr_to_string(list)),
        RuleKind::Every { period, offset: None } => format!("{mixer} every {}", expr_to_string(period)),
        RuleKind::Every { period, offset: Some(offset) } => {
            format!("{mixer} every {} offset {}", expr_to_string(period), expr_to_string(offset))
        }
    }
}

/// An expression starting at `column`, nested `depth` indents deep: flat if it fits,
/// else a call, group or list broken one element per line.
fn expr_at(expr: &Expr, column: usize, depth: usize) -> String {
    let flat = expr_to_string(expr);
    if column + flat.chars().count() <= WIDTH {
        return flat;
    }
    let inner_indent = INDENT.repeat(depth + 1);
    let (open, close, items): (String, &str, Vec<String>) = match &expr.kind {
        ExprKind::Call { callee, args } => (
            format!("{}(", callee.text),
            ")",
            args.iter()
                .map(|arg| {
                    let head = arg.name.as_ref().map_or(String::new(), |name| format!("{}: ", name.text));
                    let value = expr_at(&arg.value, inner_indent.len() + head.len(), depth + 1);
                    format!("{head}{value}")
                })
                .collect(),
        ),
        ExprKind::Group(items) => {
            ("(".to_string(), ")", items.iter().map(|e| expr_at(e, inner_indent.len(), depth + 1)).collect())
        }
        ExprKind::List(items) => {
            ("[".to_string(), "]", items.iter().map(|e| expr_at(e, inner_indent.len(), depth + 1)).collect())
        }
        _ => return flat,
    };
    if items.is_empty() {
        return flat;
    }
    let mut out = open;
    out.push('\n');
    for item in items {
        out.push_str(&inner_indent);
        out.push_str(&item);
        out.push_str(",\n");
    }
    out.push_str(&INDENT.repeat(depth));
    out.push_str(close);
    out
}

/// One-line text of an expression, canonical spelling.
pub fn expr_to_string(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Number(number) => number.text.clone(),
        ExprKind::Str(lit) => string_literal(&lit.value),
        ExprKind::Bool(value) => value.to_string(),
        ExprKind::None => "none".to_string(),
        ExprKind::Name(name) => name.text.clone(),
        ExprKind::Call { callee, args } => {
            let args: Vec<String> = args
                .iter()
                .map(|arg| match &arg.name {
                    Some(name) => format!("{}: {}", name.text, expr_to_string(&arg.value)),
                    None => expr_to_string(&arg.value),
                })
                .collect();
            format!("{}({})", callee.text, args.join(", "))
        }
        ExprKind::Group(items) => format!("({})", items.iter().map(expr_to_string).collect::<Vec<_>>().join(", ")),
        ExprKind::List(items) => format!("[{}]", items.iter().map(expr_to_string).collect::<Vec<_>>().join(", ")),
        ExprKind::Repeat { body, count } => {
            format!("{} × {}", expr_to_string(body), expr_to_string(count))
        }
    }
}

pub fn string_literal(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// Where each comment goes.
struct Placement {
    item_leading: Vec<Vec<Comment>>,
    item_trailing: Vec<Option<Comment>>,
    entries: Vec<BlockPlacement>,
    file_end: Vec<Comment>,
}

#[derive(Default)]
struct BlockPlacement {
    leading: Vec<Vec<Comment>>,
    trailing: Vec<Option<Comment>>,
    end: Vec<Comment>,
}

fn place_comments(file: &File, text: &str) -> Placement {
    let mut placement = Placement {
        item_leading: vec![Vec::new(); file.items.len()],
        item_trailing: vec![None; file.items.len()],
        entries: file
            .items
            .iter()
            .map(|item| match &item.kind {
                ItemKind::Block { entries, .. } => BlockPlacement {
                    leading: vec![Vec::new(); entries.len()],
                    trailing: vec![None; entries.len()],
                    end: Vec::new(),
                },
                _ => BlockPlacement::default(),
            })
            .collect(),
        file_end: Vec::new(),
    };
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count();
    for comment in comments::collect(text) {
        let at = comment.start;
        let containing =
            file.items.iter().position(|item| (item.span.start as usize) < at && at < item.span.end as usize);
        if let Some(index) = containing {
            if let ItemKind::Block { entries, .. } = &file.items[index].kind {
                let block = &mut placement.entries[index];
                place_in_block(block, entries, comment, &line_of);
            } else {
                placement.item_leading[index].push(comment);
            }
            continue;
        }
        let before_on_line = file
            .items
            .iter()
            .rposition(|item| (item.span.end as usize) <= at && line_of(item.span.end as usize) == line_of(at));
        match before_on_line {
            Some(index) if comment.trailing && placement.item_trailing[index].is_none() => {
                placement.item_trailing[index] = Some(comment);
            }
            _ => match file.items.iter().position(|item| item.span.start as usize > at) {
                Some(next) => placement.item_leading[next].push(comment),
                None => placement.file_end.push(comment),
            },
        }
    }
    placement
}

fn place_in_block(block: &mut BlockPlacement, entries: &[Entry], comment: Comment, line_of: &dyn Fn(usize) -> usize) {
    let at = comment.start;
    if let Some(index) = entries.iter().position(|e| (e.span().start as usize) < at && at < e.span().end as usize) {
        block.leading[index].push(comment);
        return;
    }
    let before_on_line =
        entries.iter().rposition(|e| (e.span().end as usize) <= at && line_of(e.span().end as usize) == line_of(at));
    match before_on_line {
        Some(index) if comment.trailing && block.trailing[index].is_none() => block.trailing[index] = Some(comment),
        _ => match entries.iter().position(|e| e.span().start as usize > at) {
            Some(next) => block.leading[next].push(comment),
            None => block.end.push(comment),
        },
    }
}
