//! A Parquet file's Thrift structures checked before the `parquet` crate reads them.
//!
//! The crate skips unknown Thrift fields by their declared sizes without asking whether
//! the file holds them: a list declaring 2³¹ booleans is "skipped" element by element
//! (the crate reads no byte for a boolean in a list), so an 868-byte file kept it busy
//! for tens of seconds (fuzzing found two such files: `fuzz/README.md`, finding 10).
//! In Thrift's compact protocol every element of a collection takes at least one byte,
//! so a collection declaring more elements than bytes remain is malformed; this module
//! walks the footer and every page header of the column to be read with that rule (and
//! a depth bound), and refuses the file before the crate loops. Any structure it
//! accepts holds only collections its bytes can back, so the crate's own walk over it
//! is bounded by the file's size.

use parquet::file::reader::ChunkReader;

/// The deepest nesting of structs and collections accepted (the crate's own limit).
const MAX_DEPTH: usize = 64;

/// Compact-protocol value types.
const STOP: u8 = 0;
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

/// A cursor over one structure's bytes.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or("a Thrift structure runs past its bytes")?;
        self.at += 1;
        Ok(byte)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!("a Thrift value declares {n} bytes where {} remain", self.remaining()));
        }
        self.at += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift.min(63);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a Thrift integer longer than 10 bytes".into())
    }

    /// A collection's element count, refused beyond the bytes left (each element of a
    /// compact-protocol collection takes at least one byte, a boolean included).
    fn count(&mut self, declared: u64, what: &str) -> Result<usize, String> {
        if declared > self.remaining() as u64 {
            return Err(format!(
                "a Thrift {what} declares {declared} elements where {} bytes remain",
                self.remaining()
            ));
        }
        Ok(declared as usize)
    }

    /// A struct's fields up to its stop (at `depth`, which [`Walk::value`] bounds);
    /// calls `field(id, type, walk)` for each field of this struct first, which returns
    /// whether it read the value itself, else the value is skipped.
    fn fields(
        &mut self,
        depth: usize,
        mut field: impl FnMut(i16, u8, &mut Self) -> Result<bool, String>,
    ) -> Result<(), String> {
        let mut id: i16 = 0;
        loop {
            let header = self.byte()?;
            let kind = header & 0x0f;
            if kind == STOP {
                return Ok(());
            }
            let delta = (header >> 4) as i16;
            id = if delta == 0 { zigzag(self.varint()?) as i16 } else { id.wrapping_add(delta) };
            if !field(id, kind, self)? {
                self.value(kind, depth + 1)?;
            }
        }
    }

    /// Skips one value of `kind`.
    fn value(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("Thrift structures nested deeper than {MAX_DEPTH}"));
        }
        match kind {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip(8),
            BINARY => {
                let length = self.varint()?;
                self.skip(usize::try_from(length).unwrap_or(usize::MAX))
            }
            LIST | SET => {
                let header = self.byte()?;
                let short = u64::from(header >> 4);
                let declared = if short == 15 { self.varint()? } else { short };
                let count = self.count(declared, "list")?;
                let element = header & 0x0f;
                for _ in 0..count {
                    self.element(element, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let declared = self.varint()?;
                let count = self.count(declared, "map")?;
                if count > 0 {
                    let types = self.byte()?;
                    for _ in 0..count {
                        self.element(types >> 4, depth + 1)?;
                        self.element(types & 0x0f, depth + 1)?;
                    }
                }
                Ok(())
            }
            STRUCT => self.fields(depth, |_, _, _| Ok(false)),
            UUID => self.skip(16),
            other => Err(format!("a Thrift value of unknown type {other}")),
        }
    }

    /// A collection's element: a boolean takes a byte here, unlike a field's.
    fn element(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        match kind {
            BOOL_TRUE | BOOL_FALSE => self.skip(1),
            _ => self.value(kind, depth),
        }
    }
}

fn zigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Checks the footer (the file metadata) of a Parquet file.
pub fn footer<R: ChunkReader>(reader: &R) -> Result<(), String> {
    let len = reader.len();
    if len < 12 {
        return Err(format!("{len} bytes is too short for a Parquet file"));
    }
    let tail = reader.get_bytes(len - 8, 8).map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Err("the file does not end with Parquet's magic bytes `PAR1`".into());
    }
    let metadata = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if metadata > len - 8 {
        return Err(format!("its footer declares {metadata} bytes of metadata in a file of {len}"));
    }
    let bytes = reader.get_bytes(len - 8 - metadata, metadata as usize).map_err(|e| e.to_string())?;
    let mut walk = Walk { bytes: &bytes, at: 0 };
    walk.fields(0, |_, _, _| Ok(false)).map_err(|e| format!("its footer is malformed: {e}"))
}

/// Checks every page header of a column chunk of `size` bytes from `start`: each a
/// well-formed structure, each page's declared size within the chunk. Reads the headers
/// alone (through a window grown while a header does not fit it), not the pages.
pub fn pages<R: ChunkReader>(reader: &R, start: u64, size: u64) -> Result<(), String> {
    let end = start.checked_add(size).filter(|end| *end <= reader.len());
    let Some(end) = end else {
        return Err(format!("a column chunk of {size} bytes from byte {start} lies outside the file"));
    };
    let mut at = start;
    while at < end {
        let (length, compressed) = page_header(reader, at, end - at)?;
        at += length;
        if compressed > end - at {
            return Err(format!(
                "the page at byte {at} declares {compressed} bytes where its column chunk holds {}",
                end - at
            ));
        }
        at += compressed;
    }
    Ok(())
}

/// The page header at `at` (with `available` bytes of its chunk from there): its length
/// and its page's compressed size.
fn page_header<R: ChunkReader>(reader: &R, at: u64, available: u64) -> Result<(u64, u64), String> {
    let mut window = 1u64 << 16;
    loop {
        let take = window.min(available);
        let bytes = reader.get_bytes(at, take as usize).map_err(|e| e.to_string())?;
        let mut walk = Walk { bytes: &bytes, at: 0 };
        let mut compressed: Option<i64> = None;
        let walked = walk.fields(0, |id, kind, walk| {
            // PageHeader's field 3: the page's compressed size (an i32).
            if id == 3 && kind == I32 {
                compressed = Some(zigzag(walk.varint()?));
                return Ok(true);
            }
            Ok(false)
        });
        match walked {
            // The header may only look malformed for being cut by the window.
            Err(_) if take < available => window *= 4,
            Err(e) => return Err(format!("the page header at byte {at} is malformed: {e}")),
            Ok(()) => {
                let Some(compressed) = compressed.filter(|c| *c >= 0) else {
                    return Err(format!("the page header at byte {at} has no page size"));
                };
                return Ok((walk.at as u64, compressed as u64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(bytes: &[u8]) -> Result<(), String> {
        Walk { bytes, at: 0 }.fields(0, |_, _, _| Ok(false))
    }

    #[test]
    fn a_list_longer_than_its_bytes_is_refused() {
        // Field 1, a list (type 9) of 2³¹ − 1 booleans (long form: 0xF1, then the varint).
        let huge = [0x19, 0xF1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00];
        let error = walk(&huge).expect_err("2³¹ booleans in 8 bytes");
        assert!(error.contains("declares 2147483647 elements"), "{error}");
        // Three booleans in three bytes, then the stop: fine.
        assert_eq!(walk(&[0x19, 0x31, 1, 2, 1, 0x00]), Ok(()));
        // A map of 5 entries with 2 bytes left.
        assert!(walk(&[0x1B, 0x05, 0x55, 0x00]).is_err());
    }

    #[test]
    fn nesting_and_lengths_are_bounded() {
        // 100 nested structs (field 1 of type struct, each): deeper than 64.
        let mut deep = vec![0x1C; 100];
        deep.extend(vec![0x00; 101]);
        assert!(walk(&deep).unwrap_err().contains("deeper"));
        // A binary declaring 1000 bytes where 1 remains.
        assert!(walk(&[0x18, 0xE8, 0x07, 0x00]).unwrap_err().contains("declares 1000 bytes"));
        // An i32 (zigzag 150), a double, the stop.
        let mut fine = vec![0x15, 0xAC, 0x02, 0x17];
        fine.extend([0u8; 8]);
        fine.push(0);
        assert_eq!(walk(&fine), Ok(()));
        assert!(walk(&[0x15, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
    }
}
