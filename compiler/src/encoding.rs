//! A `.hyb` file's bytes as text. Files are UTF-8; a UTF-8 byte-order mark is dropped
//! (spans count from the character after it). Anything else is a problem in the user's
//! file, not an I/O failure: [`read_source`] returns an `InvalidData` error holding a
//! [`NotUtf8`] that says what the bytes look like — a UTF-16 or UTF-32 byte-order mark,
//! or where the first byte that is not UTF-8 sits (line, column, offset).

use std::path::Path;

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Why a file's bytes are not UTF-8 text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotUtf8 {
    /// It starts with the byte-order mark of another Unicode encoding.
    ByteOrderMark { encoding: &'static str, bytes: &'static str },
    /// The first byte that is not part of a UTF-8 character: its value, its 1-based
    /// line and column (in characters) and its 0-based byte offset.
    InvalidByte { byte: u8, line: usize, column: usize, offset: usize },
}

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotUtf8::ByteOrderMark { encoding, bytes } => {
                write!(f, "it is not UTF-8: it starts with a {encoding} byte-order mark ({bytes})")
            }
            NotUtf8::InvalidByte { byte, line, column, offset } => write!(
                f,
                "it is not UTF-8: the byte 0x{byte:02X} at line {line}, column {column} (byte offset {offset}) \
                 is not valid UTF-8"
            ),
        }
    }
}

impl std::error::Error for NotUtf8 {}

impl NotUtf8 {
    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            NotUtf8::ByteOrderMark { .. } => "save it as UTF-8",
            NotUtf8::InvalidByte { .. } => "save it as UTF-8 (a Latin-1 or Windows-1252 file looks like this)",
        }
    }

    /// The [`NotUtf8`] inside an error of [`read_source`], if that is why it failed.
    pub fn of(error: &std::io::Error) -> Option<&NotUtf8> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<NotUtf8>())
    }
}

/// Reads a source file as UTF-8 text (see the module doc).
pub fn read_source(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    decode(bytes).map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidData, why))
}

/// `bytes` as text without a leading UTF-8 byte-order mark, or why they are not UTF-8.
pub fn decode(mut bytes: Vec<u8>) -> Result<String, NotUtf8> {
    // UTF-32 first: its little-endian mark begins with UTF-16's.
    const MARKS: [(&[u8], &str, &str); 4] = [
        (&[0xFF, 0xFE, 0x00, 0x00], "UTF-32 little-endian", "FF FE 00 00"),
        (&[0x00, 0x00, 0xFE, 0xFF], "UTF-32 big-endian", "00 00 FE FF"),
        (&[0xFF, 0xFE], "UTF-16 little-endian", "FF FE"),
        (&[0xFE, 0xFF], "UTF-16 big-endian", "FE FF"),
    ];
    if let Some((_, encoding, marks)) = MARKS.iter().find(|(mark, _, _)| bytes.starts_with(mark)) {
        return Err(NotUtf8::ByteOrderMark { encoding, bytes: marks });
    }
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
    }
    String::from_utf8(bytes).map_err(|error| {
        let offset = error.utf8_error().valid_up_to();
        let bytes = error.as_bytes();
        let valid = std::str::from_utf8(&bytes[..offset]).expect("valid up to the offset");
        let line_start = valid.rfind('\n').map_or(0, |newline| newline + 1);
        NotUtf8::InvalidByte {
            byte: bytes[offset],
            line: valid.matches('\n').count() + 1,
            column: valid[line_start..].chars().count() + 1,
            offset,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_the_bytes_look_like() {
        let utf16 = decode(vec![0xFF, 0xFE, b'm', 0]).expect_err("UTF-16");
        assert_eq!(utf16.to_string(), "it is not UTF-8: it starts with a UTF-16 little-endian byte-order mark (FF FE)");
        let utf32 = decode(vec![0xFF, 0xFE, 0, 0, b'm', 0, 0, 0]).expect_err("UTF-32");
        assert!(utf32.to_string().contains("UTF-32 little-endian"), "{utf32}");
        let latin1 = decode(b"model {\n  // caf\xE9\n}".to_vec()).expect_err("Latin-1");
        assert_eq!(latin1, NotUtf8::InvalidByte { byte: 0xE9, line: 2, column: 9, offset: 16 });
        assert!(latin1.to_string().contains("0xE9 at line 2, column 9"), "{latin1}");
        assert_eq!(decode(b"\xEF\xBB\xBFmodel".to_vec()).expect("UTF-8 with a mark"), "model");
    }
}
