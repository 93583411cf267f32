//! Reading typed values out of expressions: names resolve through `let`s (late bound,
//! cycle-checked), then a reader checks the kind and range and reports a diagnostic
//! pointing at the value (and at the `let` use that brought it, if any).

use std::cell::RefCell;

use hyb_grammar::ast::{Arg, Expr, ExprKind, Value};
use hyb_grammar::diag::closest;
use hyb_grammar::{Diagnostic, Span};

use super::scope::Scope;

/// Deepest chain of `let a = b` accepted before calling it a cycle.
const MAX_LET_DEPTH: usize = 32;

/// The checking context: the scope and the diagnostics found so far.
pub struct Cx<'a> {
    pub scope: &'a Scope,
    pub diagnostics: RefCell<Vec<Diagnostic>>,
}

impl<'a> Cx<'a> {
    pub fn new(scope: &'a Scope) -> Cx<'a> {
        Cx { scope, diagnostics: RefCell::new(Vec::new()) }
    }

    pub fn error(&self, diagnostic: Diagnostic) {
        self.diagnostics.borrow_mut().push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.borrow().iter().any(Diagnostic::is_error)
    }

    /// The `let` value a name refers to, if it is a let.
    pub fn let_value(&self, expr: &Expr) -> Option<&'a Value> {
        match &expr.kind {
            ExprKind::Name(name) => self.scope.lets.get(&name.text).map(|def| &def.value),
            _ => None,
        }
    }

    /// Follows names bound by `let` to the expression they stand for. A let whose value
    /// is a sequence or has rules is returned as the name itself (the schedule
    /// expander reads those). Returns `None` (after reporting) on a cycle.
    pub fn resolve<'e>(&self, expr: &'e Expr) -> Option<Resolved<'e>>
    where
        'a: 'e,
    {
        let mut current = expr;
        let mut via = None;
        for _ in 0..MAX_LET_DEPTH {
            match self.let_value(current) {
                Some(value) if value.seq.len() == 1 && value.rules.is_empty() => {
                    via.get_or_insert(current.span);
                    current = &value.seq[0];
                }
                _ => return Some(Resolved { expr: current, via }),
            }
        }
        self.error(
            Diagnostic::error("these `let`s refer to each other in a cycle")
                .at(expr.span, "never resolves to a value")
                .help("one of the lets must be a value, not another name"),
        );
        None
    }

    fn value_error(&self, resolved: &Resolved, message: String, label: &str, help: Option<String>) {
        // A bare name where a value belongs is most likely an undefined `let`.
        if let ExprKind::Name(name) = &resolved.expr.kind
            && !label.contains("valid")
        {
            let lets: Vec<&str> = self.scope.lets.keys().map(String::as_str).collect();
            let help = match closest(&name.text, lets.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("define it with `let {} = ...`, or write the value here", name.text),
            };
            self.error(
                Diagnostic::error(format!("`{}` is not defined", name.text))
                    .at(resolved.expr.span, "not defined")
                    .help(help),
            );
            return;
        }
        let mut diagnostic = Diagnostic::error(message).at(resolved.expr.span, label.to_string());
        if let Some(via) = resolved.via {
            diagnostic = diagnostic.also(via, "the value comes from this `let`");
        }
        if let Some(help) = help {
            diagnostic = diagnostic.help(help);
        }
        self.error(diagnostic);
    }

    /// True if the expression is `none`, written or bound by a `let`.
    pub fn is_none(&self, expr: &Expr) -> bool {
        self.resolve_quiet(expr).is_some_and(|e| matches!(e.kind, ExprKind::None))
    }

    /// Like [`Cx::resolve`], reporting nothing (a cycle is reported where the value is read).
    fn resolve_quiet<'e>(&self, expr: &'e Expr) -> Option<&'e Expr>
    where
        'a: 'e,
    {
        let mut current = expr;
        for _ in 0..MAX_LET_DEPTH {
            match self.let_value(current) {
                Some(value) if value.seq.len() == 1 && value.rules.is_empty() => current = &value.seq[0],
                _ => return Some(current),
            }
        }
        None
    }

    pub fn int(&self, expr: &Expr, what: &str, min: i64, max: i64) -> Option<i64> {
        let resolved = self.resolve(expr)?;
        let value = match &resolved.expr.kind {
            ExprKind::Number(number) => number.as_int(),
            _ => None,
        };
        let Some(value) = value else {
            let found = describe(resolved.expr);
            self.value_error(
                &resolved,
                format!("`{what}` must be a whole number, found {found}"),
                "expected a whole number",
                Some(format!("write a whole number, e.g. `{what}: 4`")),
            );
            return None;
        };
        self.check_range(&resolved, what, value as f64, min as f64, max as f64)?;
        Some(value)
    }

    pub fn count(&self, expr: &Expr, what: &str, min: u64, max: u64) -> Option<u64> {
        self.int(expr, what, min as i64, max as i64).map(|v| v as u64)
    }

    pub fn float(&self, expr: &Expr, what: &str, min: f64, max: f64) -> Option<f64> {
        let resolved = self.resolve(expr)?;
        let value = match &resolved.expr.kind {
            ExprKind::Number(number) => number.value(),
            _ => None,
        };
        let Some(value) = value else {
            let found = describe(resolved.expr);
            self.value_error(
                &resolved,
                format!("`{what}` must be a number, found {found}"),
                "expected a number",
                Some("write a number, e.g. `1e-3` or `0.5`".to_string()),
            );
            return None;
        };
        self.check_range(&resolved, what, value, min, max)?;
        Some(value)
    }

    fn check_range(&self, resolved: &Resolved, what: &str, value: f64, min: f64, max: f64) -> Option<()> {
        if value < min || value > max {
            let bound =
                if value < min { format!("at least {}", fmt_num(min)) } else { format!("at most {}", fmt_num(max)) };
            self.value_error(
                resolved,
                format!("`{what}` must be {bound}, found {}", fmt_num(value)),
                "out of range",
                Some(format!("`{what}` takes values from {} to {}", fmt_num(min), fmt_num(max))),
            );
            return None;
        }
        Some(())
    }

    pub fn bool(&self, expr: &Expr, what: &str) -> Option<bool> {
        let resolved = self.resolve(expr)?;
        if let ExprKind::Bool(value) = resolved.expr.kind {
            return Some(value);
        }
        let found = describe(resolved.expr);
        self.value_error(
            &resolved,
            format!("`{what}` must be `true` or `false`, found {found}"),
            "expected a boolean",
            Some("write `true` or `false`".to_string()),
        );
        None
    }

    pub fn string(&self, expr: &Expr, what: &str) -> Option<String> {
        let resolved = self.resolve(expr)?;
        if let ExprKind::Str(lit) = &resolved.expr.kind {
            return Some(lit.value.clone());
        }
        let found = describe(resolved.expr);
        self.value_error(
            &resolved,
            format!("`{what}` must be a string, found {found}"),
            "expected a string",
            Some("write a string in double quotes".to_string()),
        );
        None
    }

    /// A bare word from `choices` (e.g. `update: delta`).
    pub fn symbol<'c>(&self, expr: &Expr, what: &str, choices: &[&'c str]) -> Option<&'c str> {
        let resolved = self.resolve(expr)?;
        let word = match &resolved.expr.kind {
            ExprKind::Name(name) => Some(name.text.as_str()),
            ExprKind::None => Some("none"),
            ExprKind::Bool(true) => Some("true"),
            ExprKind::Bool(false) => Some("false"),
            _ => None,
        };
        if let Some(found) = word.and_then(|w| choices.iter().find(|c| **c == w)) {
            return Some(found);
        }
        let list = choices.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
        let help = match word.and_then(|w| closest(w, choices.iter().copied())) {
            Some(suggestion) => format!("did you mean `{suggestion}`? `{what}` is one of {list}"),
            None => format!("`{what}` is one of {list}"),
        };
        let found = describe(resolved.expr);
        self.value_error(&resolved, format!("unknown {what} {found}"), &format!("not a valid {what}"), Some(help));
        None
    }

    /// A list of whole numbers, e.g. `[5, 11, 17, 23]`.
    pub fn int_list(&self, expr: &Expr, what: &str, min: i64, max: i64) -> Option<Vec<i64>> {
        let resolved = self.resolve(expr)?;
        let ExprKind::List(items) = &resolved.expr.kind else {
            let found = describe(resolved.expr);
            self.value_error(
                &resolved,
                format!("`{what}` must be a list like `[1, 2]`, found {found}"),
                "expected a list",
                Some("write a list in brackets, e.g. `[5, 11]`".to_string()),
            );
            return None;
        };
        let values: Vec<Option<i64>> = items.iter().map(|item| self.int(item, what, min, max)).collect();
        values.into_iter().collect()
    }
}

/// A call (or a bare name, or `none`) naming one of a known set of things:
/// `rmsnorm(eps: 1e-6)`, `adamw(lr: 1e-3)`, `cosine`, `mqar(pairs: 16)`.
pub struct CallRef<'e> {
    pub name: &'e str,
    pub args: &'e [Arg],
    /// The whole call.
    pub span: Span,
}

impl<'a> Cx<'a> {
    /// Reads `expr` as a call of one of `kinds`; reports a non-call (with `example` as the
    /// help) or an unknown name (with did-you-mean) and returns `None`.
    pub fn call<'e>(&self, expr: &'e Expr, what: &str, kinds: &[&str], example: &str) -> Option<CallRef<'e>>
    where
        'a: 'e,
    {
        let resolved = self.resolve(expr)?;
        let span = resolved.expr.span;
        let (name, name_span, args): (&str, Span, &[Arg]) = match &resolved.expr.kind {
            ExprKind::Call { callee, args } => (&callee.text, callee.span, args),
            ExprKind::Name(name) => (&name.text, name.span, &[]),
            ExprKind::None => ("none", span, &[]),
            _ => {
                self.error(
                    Diagnostic::error(format!("expected {what}, found {}", describe(resolved.expr)))
                        .at(span, format!("not {what}"))
                        .help(format!("write {example}")),
                );
                return None;
            }
        };
        if !kinds.contains(&name) {
            self.error(unknown_name(name, name_span, what.trim_start_matches("a ").trim_start_matches("an "), kinds));
            return None;
        }
        Some(CallRef { name, args, span })
    }
}

pub struct Resolved<'e> {
    pub expr: &'e Expr,
    /// The name that led here through a `let`, if any.
    pub via: Option<Span>,
}

/// A short description of an expression for "found ..." messages.
pub fn describe(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Number(number) => format!("`{}`", number.text),
        ExprKind::Str(lit) => format!("the string \"{}\"", lit.value),
        ExprKind::Bool(value) => format!("`{value}`"),
        ExprKind::None => "`none`".to_string(),
        ExprKind::Name(name) => format!("`{}`", name.text),
        ExprKind::Call { callee, .. } => format!("a call to `{}`", callee.text),
        ExprKind::Group(_) => "a parenthesised group".to_string(),
        ExprKind::List(_) => "a list".to_string(),
        ExprKind::Repeat { .. } => "a repetition `× N`".to_string(),
    }
}

pub fn fmt_num(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { format!("{value}") }
}

/// The arguments of one call, checked against the names the callee accepts: unknown
/// names get a did-you-mean (and fla's spelling, if the user wrote fla's), duplicates
/// and misplaced positional arguments are reported once, up front.
pub struct Args<'e> {
    pub callee: String,
    pub span: Span,
    named: Vec<(&'e str, &'e Arg)>,
    positional: Vec<&'e Expr>,
}

impl<'e> Args<'e> {
    /// `allowed` are the named arguments; `max_positional` the positional ones.
    pub fn new(
        cx: &Cx,
        callee: &str,
        span: Span,
        args: &'e [Arg],
        allowed: &[&str],
        max_positional: usize,
    ) -> Args<'e> {
        let mut named: Vec<(&str, &Arg)> = Vec::new();
        let mut positional = Vec::new();
        for arg in args {
            let Some(name) = &arg.name else {
                if positional.len() >= max_positional || !named.is_empty() {
                    let help = if allowed.is_empty() {
                        format!("`{callee}` takes no arguments")
                    } else {
                        format!("write arguments by name: `{callee}({}: ...)`", allowed[0])
                    };
                    cx.error(
                        Diagnostic::error(format!("unexpected positional argument to `{callee}`"))
                            .at(arg.span, "needs a name")
                            .help(help),
                    );
                } else {
                    positional.push(&arg.value);
                }
                continue;
            };
            if let Some((_, first)) = named.iter().find(|(n, _)| *n == name.text) {
                cx.error(
                    Diagnostic::error(format!("argument `{}` given twice", name.text))
                        .at(name.span, "again here")
                        .also(first.span, "first here")
                        .help("remove one of them"),
                );
                continue;
            }
            if !allowed.contains(&name.text.as_str()) {
                let mut diagnostic = unknown_name(&name.text, name.span, "argument", allowed);
                diagnostic.message = format!("unknown argument `{}` to `{callee}`", name.text);
                cx.error(diagnostic);
                continue;
            }
            named.push((name.text.as_str(), arg));
        }
        Args { callee: callee.to_string(), span, named, positional }
    }

    pub fn get(&self, name: &str) -> Option<&'e Expr> {
        self.named.iter().find(|(n, _)| *n == name).map(|(_, arg)| &arg.value)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn positional(&self, index: usize) -> Option<&'e Expr> {
        self.positional.get(index).copied()
    }

    /// The span of a named argument (name and value), or of the whole call.
    pub fn span_of(&self, name: &str) -> Span {
        self.named.iter().find(|(n, _)| *n == name).map_or(self.span, |(_, arg)| arg.span)
    }

    pub fn named(&self) -> impl Iterator<Item = (&'e str, &'e Arg)> + '_ {
        self.named.iter().copied()
    }
}

/// fla's config keys and what this language calls them, for "did you mean".
const FLA_SPELLINGS: &[(&str, &str)] = &[
    ("num_heads", "heads"),
    ("num_kv_heads", "kv_heads"),
    ("num_v_heads", "v_heads"),
    ("use_short_conv", "short_conv"),
    ("conv_size", "short_conv"),
    ("use_output_gate", "output_gate"),
    ("use_gate", "output_gate"),
    ("use_lower_bound", "lower_bound"),
    ("use_beta", "beta"),
    ("allow_neg_eigval", "neg_eigval"),
    ("gate_logit_normalizer", "gate_normalizer"),
    ("gate_low_rank_dim", "gate_low_rank"),
    ("qk_activation", "qk_act"),
    ("window_size", "window"),
    ("rope_theta", "rope"),
    ("hidden_size", "d_model"),
    ("vocab_size", "vocab"),
    ("tie_word_embeddings", "tie_embeddings"),
    ("initializer_range", "init_std"),
    ("max_position_embeddings", "max_position"),
    ("intermediate_size", "mlp"),
    ("hidden_ratio", "mlp"),
    ("norm_eps", "norm"),
    ("num_hidden_layers", "layers"),
    ("head_k_dim", "head_dim"),
    ("lr", "optimizer"),
    ("learning_rate", "optimizer"),
    ("warmup", "schedule"),
    ("batch_size", "batch"),
    ("max_steps", "steps"),
];

/// "unknown X `name`" with the closest allowed name, or fla's spelling of it.
pub fn unknown_name(name: &str, span: Span, what: &str, allowed: &[&str]) -> Diagnostic {
    let diagnostic = Diagnostic::error(format!("unknown {what} `{name}`")).at(span, "unknown name");
    if let Some((_, ours)) = FLA_SPELLINGS.iter().find(|(fla, ours)| *fla == name && allowed.contains(ours)) {
        return diagnostic.help(format!("fla's `{name}` is written `{ours}` here"));
    }
    match closest(name, allowed.iter().copied()) {
        Some(suggestion) => diagnostic.help(format!("did you mean `{suggestion}`?")),
        None if allowed.is_empty() => diagnostic.help("it takes no named arguments".to_string()),
        None => diagnostic.help(format!("expected one of: {}", allowed.join(", "))),
    }
}
