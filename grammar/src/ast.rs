//! The syntax tree of one `.hyb` file.
//!
//! Every node carries the [`Span`] of the text it came from, so later stages can point
//! back into the user's file. The tree is purely syntactic: names are not resolved,
//! numbers keep their source text (so `hybc fmt` prints `1e-3` as written), and a
//! parenthesised group `(a, b)` is the same node whether it is a schedule group or a
//! tuple of betas; the compiler decides which from where it appears.
//!
//! **API Boundary:** the compiler and `hybc fmt` consume this tree; the pest rules
//! behind it are private to this crate.

use crate::span::Span;

/// One parsed file: its items in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    /// `import "path.hyb"`
    Import(StrLit),
    /// `let name = value`
    Let { name: Ident, value: Value },
    /// `mixer name = expr`
    Mixer { name: Ident, value: Expr },
    /// `model { ... }`, `train { ... }`, `eval { ... }`, `sweep { ... }`
    Block { kind: BlockKind, kind_span: Span, entries: Vec<Entry> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    Model,
    Train,
    Eval,
    Sweep,
}

impl BlockKind {
    pub const ALL: [BlockKind; 4] = [BlockKind::Model, BlockKind::Train, BlockKind::Eval, BlockKind::Sweep];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Model => "model",
            BlockKind::Train => "train",
            BlockKind::Eval => "eval",
            BlockKind::Sweep => "sweep",
        }
    }
}

/// A line inside a block: `key = value`, or a bare call (an eval task).
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Field(Field),
    Task(Expr),
}

impl Entry {
    pub fn span(&self) -> Span {
        match self {
            Entry::Field(field) => field.span,
            Entry::Task(expr) => expr.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: Ident,
    pub value: Value,
    pub span: Span,
}

/// The right-hand side of `=`: a comma sequence of expressions and optional index
/// rules after `with`. Most values are a single expression with no rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub seq: Vec<Expr>,
    pub rules: Vec<Rule>,
    pub span: Span,
}

/// `attn at [5, 11]` or `attn every 4 offset 3`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub mixer: Expr,
    pub kind: RuleKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    At(Expr),
    Every { period: Expr, offset: Option<Expr> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A number as written; [`Number::value`] and [`Number::as_int`] read it.
    Number(Number),
    Str(StrLit),
    Bool(bool),
    None,
    Name(Ident),
    Call {
        callee: Ident,
        args: Vec<Arg>,
    },
    /// `(a, b, ...)`: a schedule group or a tuple.
    Group(Vec<Expr>),
    /// `[a, b, ...]`
    List(Vec<Expr>),
    /// `body × count`
    Repeat {
        body: Box<Expr>,
        count: Box<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    /// The unescaped contents.
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    /// The literal as written, e.g. `32_000` or `1e-3`.
    pub text: String,
}

impl Number {
    /// The value as a float; `None` if it does not fit (e.g. `1e999`).
    pub fn value(&self) -> Option<f64> {
        let clean: String = self.text.chars().filter(|c| *c != '_').collect();
        clean.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// The value as an integer, if the literal is written as one (no `.` or exponent)
    /// and fits in an `i64`.
    pub fn as_int(&self) -> Option<i64> {
        if self.is_float_syntax() {
            return None;
        }
        let clean: String = self.text.chars().filter(|c| *c != '_').collect();
        clean.parse::<i64>().ok()
    }

    pub fn is_float_syntax(&self) -> bool {
        self.text.contains(['.', 'e', 'E'])
    }
}
