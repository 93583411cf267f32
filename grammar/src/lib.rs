//! The `.hyb` front end's first stage: text to a syntax tree with spans.
//!
//! - [`parser::parse`] runs the pest grammar (`hyb.pest`) and builds the [`ast`].
//! - [`comments`] collects `//` comments, which the grammar treats as trivia, for
//!   `hybc fmt`.
//! - [`delimiters`] reads the bracket structure beside pest (nesting bound, unclosed
//!   brackets reported where they were opened).
//! - [`diag`] is the one diagnostic type every later phase also uses.
//!
//! **Architecture Invariant:** this crate knows nothing of mixers, presets or the model
//! IR; it accepts any syntactically valid file, meaningful or not.

pub mod ast;
pub mod comments;
pub mod delimiters;
pub mod diag;
pub mod parser;
pub mod span;

pub use diag::{Diagnostic, Label, Severity};
pub use parser::{parse, parse_field};
pub use span::{FileId, Span};
