//! Comments, which the grammar skips, collected with their positions so that
//! `hybc fmt` can put each one back next to the code it was written beside.

/// One `// ...` comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// Byte offset of the `//`.
    pub start: usize,
    /// The comment text including `//`, without the line break.
    pub text: String,
    /// True if code precedes it on its line (`x = 1 // like this`).
    pub trailing: bool,
}

/// Every comment in `text`, in order; `//` inside strings is not a comment.
pub fn collect(text: &str) -> Vec<Comment> {
    let bytes = text.as_bytes();
    let mut comments = Vec::new();
    let mut index = 0;
    let mut code_on_line = false;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => {
                code_on_line = false;
                index += 1;
            }
            b'"' => {
                code_on_line = true;
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
                index += 1;
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                let end = text[index..].find('\n').map_or(text.len(), |n| index + n);
                let body = text[index..end].trim_end().to_string();
                comments.push(Comment { start: index, text: body, trailing: code_on_line });
                index = end;
            }
            b' ' | b'\t' | b'\r' => index += 1,
            _ => {
                code_on_line = true;
                index += 1;
            }
        }
    }
    comments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_own_line_and_trailing_comments_but_not_strings() {
        let text = "// head\nlet a = \"x // y\" // tail\n";
        let comments = collect(text);
        assert_eq!(comments.len(), 2);
        assert_eq!(comments[0], Comment { start: 0, text: "// head".into(), trailing: false });
        assert_eq!(comments[1].text, "// tail");
        assert!(comments[1].trailing);
    }
}
