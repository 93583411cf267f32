//! The bracket structure of a file, read from its code bytes (outside strings and
//! comments) before and beside pest: nesting is bounded before pest sees the text, so
//! no input can exhaust the stack, and a syntax error caused by a bracket that is never
//! closed (or closed without being opened) is reported at that bracket too, as rustc
//! does ("unclosed delimiter", a secondary label where it was opened).
//!
//! Matching follows rustc's rule: a closer matches the nearest open bracket of its kind,
//! and every bracket opened after that one is unclosed; a closer with no open bracket of
//! its kind is stray.

use crate::diag::Diagnostic;
use crate::span::{FileId, Span};

/// Deepest bracket nesting accepted; real files stay below 10.
pub const MAX_NESTING: usize = 64;

/// Brackets that do not pair up: (byte offset, bracket), in offset order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unbalanced {
    pub unclosed: Vec<(usize, u8)>,
    pub stray: Vec<(usize, u8)>,
}

pub fn closer_of(opener: u8) -> u8 {
    match opener {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

fn opener_of(closer: u8) -> u8 {
    match closer {
        b')' => b'(',
        b']' => b'[',
        _ => b'{',
    }
}

pub fn unbalanced(text: &str) -> Unbalanced {
    let mut open: Vec<(usize, u8)> = Vec::new();
    let mut result = Unbalanced::default();
    for (offset, byte) in code_bytes(text) {
        match byte {
            b'(' | b'[' | b'{' => open.push((offset, byte)),
            b')' | b']' | b'}' => match open.iter().rposition(|(_, opener)| *opener == opener_of(byte)) {
                Some(index) => result.unclosed.extend(open.drain(index..).skip(1)),
                None => result.stray.push((offset, byte)),
            },
            _ => {}
        }
    }
    result.unclosed.extend(open);
    result.unclosed.sort_unstable();
    result
}

/// An error if brackets nest deeper than [`MAX_NESTING`].
pub fn check_nesting(file: FileId, text: &str) -> Option<Diagnostic> {
    let mut depth = 0usize;
    for (offset, byte) in code_bytes(text) {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let span = Span::new(file, offset, offset + 1);
                    return Some(
                        Diagnostic::error(format!("brackets nested more than {MAX_NESTING} deep"))
                            .at(span, "too deep")
                            .help("flatten the schedule, or bind a part of it to a `let`"),
                    );
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The bytes of `text` that are code: outside strings and comments, with offsets.
fn code_bytes(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let bytes = text.as_bytes();
    let mut index = 0;
    std::iter::from_fn(move || {
        while index < bytes.len() {
            let at = index;
            match bytes[at] {
                b'"' => {
                    index += 1;
                    while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                        index += if bytes[index] == b'\\' { 2 } else { 1 };
                    }
                    index += 1;
                }
                b'/' if bytes.get(at + 1) == Some(&b'/') => {
                    while index < bytes.len() && bytes[index] != b'\n' {
                        index += 1;
                    }
                }
                byte => {
                    index += 1;
                    return Some((at, byte));
                }
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_pair_as_rustc_pairs_them() {
        let text = "a = f(x, [1, 2]\nb { c = \"(\" } // (\n]";
        let found = unbalanced(text);
        assert_eq!(found.unclosed, vec![(5, b'(')]);
        assert_eq!(found.stray, vec![(35, b']')]);
        assert_eq!(unbalanced("m { l = (g × 3, a\n}").unclosed, vec![(8, b'(')]);
        assert_eq!(unbalanced("(a, [b], {c})"), Unbalanced::default());
    }
}
