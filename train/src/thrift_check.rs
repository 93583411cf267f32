//! A Parquet file's Thrift structures checked before the `parquet` crate reads them.
//!
//! The crate skips unknown Thrift fields by their declared sizes without asking whether
//! the file holds them, and reads no byte for a boolean element of a skipped collection:
//! a list declaring 2³¹ booleans is "skipped" element by element, so an 868-byte file
//! kept it busy for tens of seconds (fuzzing found such files: `fuzz/README.md`,
//! findings 10 and 12). This module walks the footer and every page header of the column
//! to be read exactly as the crate skips them — a boolean element takes no byte, every
//! other element at least one — and refuses the file before the crate loops: a
//! collection of other elements may declare no more elements than bytes remain, and the
//! booleans of all collections of a structure together no more than the structure's
//! bytes. Walking as the crate does matters: a walk charging a byte per boolean reads
//! the bytes after such a list as the list's, while the crate reads them as fields (a
//! second, unchecked list among them). Any structure this accepts keeps the crate's walk
//! over it within a few times its size.

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

/// How the crate reads a field of a structure it knows: by the field's id, whatever
/// type the field's header declares (only unknown fields are skipped by that type).
#[derive(Clone, Copy)]
enum Known {
    /// An i32 or an enum: a varint.
    Varint,
    /// A boolean field: its value is in the field's header, no byte follows.
    Bool,
    /// A structure of these known fields.
    Struct(&'static [(i16, Known)]),
}

use Known::{Bool, Struct, Varint};

/// `DataPageHeader` as the crate reads it without statistics (its default: field 5,
/// the statistics, is skipped by its declared type).
const DATA_PAGE: &[(i16, Known)] = &[(1, Varint), (2, Varint), (3, Varint), (4, Varint)];
const DICTIONARY_PAGE: &[(i16, Known)] = &[(1, Varint), (2, Varint), (3, Bool)];
const DATA_PAGE_V2: &[(i16, Known)] =
    &[(1, Varint), (2, Varint), (3, Varint), (4, Varint), (5, Varint), (6, Varint), (7, Bool)];
/// `PageHeader`: type, sizes, CRC, then one of the page kinds' headers (an index
/// page's has no fields).
const PAGE_HEADER: &[(i16, Known)] = &[
    (1, Varint),
    (2, Varint),
    (3, Varint),
    (4, Varint),
    (5, Struct(DATA_PAGE)),
    (6, Struct(&[])),
    (7, Struct(DICTIONARY_PAGE)),
    (8, Struct(DATA_PAGE_V2)),
];

/// A cursor over one structure's bytes.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Boolean elements still allowed (they take no byte): the structure's length.
    booleans: usize,
}

impl<'a> Walk<'a> {
    fn new(bytes: &'a [u8]) -> Walk<'a> {
        Walk { bytes, at: 0, booleans: bytes.len() }
    }
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

    /// A collection's element count, refused beyond the bytes left (each element takes
    /// at least one byte) or, for booleans (which the crate skips reading no byte),
    /// beyond the booleans the structure still allows.
    fn count(&mut self, declared: u64, what: &str, booleans: bool) -> Result<usize, String> {
        if booleans {
            if declared > self.booleans as u64 {
                return Err(format!(
                    "a Thrift {what} declares {declared} booleans in a structure of {} bytes",
                    self.bytes.len()
                ));
            }
            self.booleans -= declared as usize;
        } else if declared > self.remaining() as u64 {
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

    /// A structure the crate knows (`schema`), walked as the crate reads it: known
    /// fields by the schema, the others skipped by their declared types.
    fn known(&mut self, schema: &'static [(i16, Known)], depth: usize) -> Result<(), String> {
        within_depth(depth)?;
        self.fields(depth, |id, kind, walk| walk.known_field(schema, id, kind, depth))
    }

    /// Reads field `id` (declared `kind`) as the crate would if `schema` names it;
    /// whether it did.
    fn known_field(
        &mut self,
        schema: &'static [(i16, Known)],
        id: i16,
        kind: u8,
        depth: usize,
    ) -> Result<bool, String> {
        let Some(&(_, known)) = schema.iter().find(|(known, _)| *known == id) else {
            return Ok(false);
        };
        match known {
            Varint => self.varint().map(drop)?,
            Bool if is_bool(kind) => {}
            Bool => return Err(format!("field {id} should be a boolean, its header says type {kind}")),
            Struct(fields) => self.known(fields, depth + 1)?,
        }
        Ok(true)
    }

    /// Skips one value of `kind`.
    fn value(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        within_depth(depth)?;
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
                let element = header & 0x0f;
                let count = self.count(declared, "list", is_bool(element))?;
                for _ in 0..count {
                    self.value(element, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let declared = self.varint()?;
                if declared == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                let (key, value) = (types >> 4, types & 0x0f);
                let count = self.count(declared, "map", is_bool(key) && is_bool(value))?;
                for _ in 0..count {
                    self.value(key, depth + 1)?;
                    self.value(value, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => self.fields(depth, |_, _, _| Ok(false)),
            UUID => self.skip(16),
            other => Err(format!("a Thrift value of unknown type {other}")),
        }
    }
}

/// Refuses nesting deeper than the crate's bound.
fn within_depth(depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("Thrift structures nested deeper than {MAX_DEPTH}"));
    }
    Ok(())
}

/// Whether a collection's element type is a boolean (which takes no byte to skip).
fn is_bool(kind: u8) -> bool {
    matches!(kind, BOOL_TRUE | BOOL_FALSE)
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
    let mut walk = Walk::new(&bytes);
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

/// The page header at `at` (with `available` bytes of its chunk from there), walked as
/// the crate reads it (`PAGE_HEADER`): its length and its page's compressed size.
fn page_header<R: ChunkReader>(reader: &R, at: u64, available: u64) -> Result<(u64, u64), String> {
    let mut window = 1u64 << 16;
    loop {
        let take = window.min(available);
        let bytes = reader.get_bytes(at, take as usize).map_err(|e| e.to_string())?;
        let mut walk = Walk::new(&bytes);
        let mut compressed: Option<i64> = None;
        let walked = walk.fields(0, |id, kind, walk| {
            // Field 3: the page's compressed size (an i32, read whatever its header says).
            if id == 3 {
                compressed = Some(zigzag(walk.varint()?));
                return Ok(true);
            }
            walk.known_field(PAGE_HEADER, id, kind, 0)
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
        Walk::new(bytes).fields(0, |_, _, _| Ok(false))
    }

    #[test]
    fn a_list_longer_than_its_bytes_is_refused() {
        // Field 1, a list (type 9) of 2³¹ − 1 booleans (long form: 0xF1, then the varint).
        let huge = [0x19, 0xF1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00];
        let error = walk(&huge).expect_err("2³¹ booleans in 8 bytes");
        assert!(error.contains("declares 2147483647 booleans in a structure of 8 bytes"), "{error}");
        // 2³¹ − 1 i32s (type 5) in 8 bytes.
        let error = walk(&[0x19, 0xF5, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00]).expect_err("2³¹ i32s");
        assert!(error.contains("declares 2147483647 elements where 1 bytes remain"), "{error}");
        // A map of 5 i32 → i32 entries with 2 bytes left.
        assert!(walk(&[0x1B, 0x05, 0x55, 0x00]).is_err());
    }

    #[test]
    fn booleans_in_a_list_take_no_byte_as_the_crate_skips_them() {
        // Three booleans, then the stop: the crate reads no byte for them.
        assert_eq!(walk(&[0x19, 0x31, 0x00]), Ok(()));
        // The bytes after them are fields, as the crate reads them: here a second list
        // of 2³¹ − 1 booleans (a walk charging a byte per boolean read it as the first
        // list's elements and accepted what the crate then looped over).
        let hidden = [0x19, 0x31, 0x19, 0xF1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00];
        assert!(walk(&hidden).unwrap_err().contains("declares 2147483647 booleans"));
        // Booleans of all lists together stay within the structure's bytes: 5 + 5 > 7.
        let error = walk(&[0x19, 0x51, 0x19, 0x51, 0x19, 0x51, 0x00]).unwrap_err();
        assert!(error.contains("declares 5 booleans in a structure of 7 bytes"), "{error}");
        // A map of booleans to booleans likewise; of booleans to i32s by its bytes.
        assert!(walk(&[0x1B, 0x7F, 0x11, 0x00]).unwrap_err().contains("booleans"));
        assert_eq!(walk(&[0x1B, 0x02, 0x15, 0x02, 0x04, 0x00]), Ok(()));
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

    #[test]
    fn a_known_field_is_read_as_the_crate_reads_it_whatever_its_header_says() {
        // Page header fields 1–3 (i32s), then field 5 — the data page's header, a struct
        // to the crate — declared a 9-byte binary. Skipped as a binary it hides nothing;
        // read as the crate reads it, its first field (id 5, the statistics, skipped) is
        // a list of 2³¹ − 1 booleans.
        let header = bytes::Bytes::from_static(&[
            0x15, 0x00, 0x15, 0x02, 0x15, 0x04, 0x28, 0x09, 0x0A, 0xF1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00, 0x00, 0x00,
        ]);
        let error = page_header(&header, 0, header.len() as u64).unwrap_err();
        assert!(error.contains("declares 2147483647 booleans"), "{error}");
        // A well-formed header: type 0, sizes 1 and 2, a data page header of 4 i32s.
        let fine = bytes::Bytes::from_static(&[
            0x15, 0x00, 0x15, 0x02, 0x15, 0x04, 0x2C, 0x15, 0x02, 0x15, 0x00, 0x15, 0x06, 0x15, 0x06, 0x00, 0x00,
        ]);
        assert_eq!(page_header(&fine, 0, fine.len() as u64), Ok((17, 2)));
    }
}
