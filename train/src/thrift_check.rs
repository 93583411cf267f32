//! A Parquet file's Thrift structures checked before the `parquet` crate reads them.
//!
//! The crate skips unknown Thrift fields by their declared sizes without asking whether
//! the file holds them, and reads no byte for a boolean element of a skipped collection:
//! a list declaring 2³¹ booleans is "skipped" element by element, so an 868-byte file
//! kept it busy for tens of seconds (fuzzing found such files: `fuzz/README.md`,
//! findings 10 and 12). This module walks the footer and every page header of the column
//! to be read exactly as the crate (60.1.0, as `documents` opens a file) reads them: the
//! fields it knows by their ids, as its schema types them whatever type a field's header
//! declares (a mirror of that schema: `FILE_META_DATA`, `PAGE_HEADER` and the structures
//! under them), the others skipped by their declared types — a boolean element taking no
//! byte, every other element at least one — and refuses the file before the crate loops:
//! a collection of other elements may declare no more elements than bytes remain, and
//! the booleans of all collections of a structure together no more than the structure's
//! bytes. Walking as the crate does matters: a walk charging a byte per boolean reads the
//! bytes after such a list as the list's, and one skipping a known field by its declared
//! type (a binary, say) skips bytes that the crate reads as a structure; either way the
//! crate then reads, as fields, bytes the check never walked (a list of 2³¹ booleans
//! among them). The footer is also walked by its declared types alone, first (what the
//! check did before it mirrored the footer's schema: what that refused stays refused).
//! Any structure this accepts keeps the crate's walk over it within a few times its size.

use parquet::file::reader::ChunkReader;

/// The deepest nesting of structs and collections accepted (the crate's own limit).
const MAX_DEPTH: usize = 64;

/// The deepest nesting of schema groups accepted (the crate rebuilds the schema with one
/// recursive call per level; real schemas nest a few levels).
const MAX_SCHEMA_DEPTH: usize = 256;

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
    /// An i16, i32, i64 or an enum: a varint.
    Varint,
    /// An i8: one byte.
    Byte,
    /// A double: 8 bytes.
    Double,
    /// A string or a binary: a varint length, then that many bytes.
    Binary,
    /// A boolean field: its value is in the field's header, no byte follows.
    Bool,
    /// A structure (or a union: its one field) of these known fields.
    Struct(&'static [(i16, Known)]),
    /// A list whose header must declare elements of this compact type (the crate's
    /// `validate_list_type`), each read as the `Known`.
    List(u8, &'static Known),
}

use Known::{Binary, Bool, Byte, Double, List, Struct, Varint};

/// A union member that is an empty structure (`skip_empty_struct`: its stop).
const EMPTY: Known = Struct(&[]);

// The footer as `SerializedFileReader::new` reads it (`parquet_metadata_from_bytes`,
// no options: every statistic read, encoding stats as a mask; without the `encryption`
// feature, which `train/Cargo.toml` leaves off, the fields of encryption — FileMetaData
// 8 and 9, ColumnChunk 8 and 9 — are skipped by their declared types, as are the fields
// the crate ignores: ColumnMetaData 3 and 8, RowGroup 6). The crate's unions (LogicalType,
// TimeUnit, ColumnOrder) read one field and then their stop; walked as structures (a
// second field, which the crate refuses, is walked as well). The crate's other footer
// reader, `parquet_schema_from_bytes` (`ParquetMetaDataReader::decode_schema`), is not
// on `documents`' path.

/// `FileMetaData` (`parquet_metadata_from_bytes`).
const FILE_META_DATA: &[(i16, Known)] = &[
    (1, Varint),
    (2, List(STRUCT, &Struct(SCHEMA_ELEMENT))),
    (3, Varint),
    (4, List(STRUCT, &Struct(ROW_GROUP))),
    (5, List(STRUCT, &Struct(KEY_VALUE))),
    (6, Binary),
    (7, List(STRUCT, &Struct(COLUMN_ORDER))),
];
/// `SchemaElement`: type, type length, repetition, name, children, converted type,
/// scale, precision, field id, logical type.
const SCHEMA_ELEMENT: &[(i16, Known)] = &[
    (1, Varint),
    (2, Varint),
    (3, Varint),
    (4, Binary),
    (5, Varint),
    (6, Varint),
    (7, Varint),
    (8, Varint),
    (9, Varint),
    (10, Struct(LOGICAL_TYPE)),
];
/// `LogicalType` (a union; 9 is reserved, unknown members are skipped).
const LOGICAL_TYPE: &[(i16, Known)] = &[
    (1, EMPTY),
    (2, EMPTY),
    (3, EMPTY),
    (4, EMPTY),
    (5, Struct(DECIMAL_TYPE)),
    (6, EMPTY),
    (7, Struct(TIMESTAMP_TYPE)),
    (8, Struct(TIMESTAMP_TYPE)),
    (10, Struct(INT_TYPE)),
    (11, EMPTY),
    (12, EMPTY),
    (13, EMPTY),
    (14, EMPTY),
    (15, EMPTY),
    (16, Struct(VARIANT_TYPE)),
    (17, Struct(GEOMETRY_TYPE)),
    (18, Struct(GEOGRAPHY_TYPE)),
    (19, EMPTY),
];
/// `DecimalType`: scale, precision.
const DECIMAL_TYPE: &[(i16, Known)] = &[(1, Varint), (2, Varint)];
/// `TimestampType` (and `TimeType`, the same): adjusted to UTC, unit.
const TIMESTAMP_TYPE: &[(i16, Known)] = &[(1, Bool), (2, Struct(TIME_UNIT))];
/// `TimeUnit` (a union of empty structures).
const TIME_UNIT: &[(i16, Known)] = &[(1, EMPTY), (2, EMPTY), (3, EMPTY)];
/// `IntType`: bit width (an i8), signed.
const INT_TYPE: &[(i16, Known)] = &[(1, Byte), (2, Bool)];
/// `VariantType`: specification version (an i8).
const VARIANT_TYPE: &[(i16, Known)] = &[(1, Byte)];
/// `GeometryType`: CRS.
const GEOMETRY_TYPE: &[(i16, Known)] = &[(1, Binary)];
/// `GeographyType`: CRS, edge interpolation algorithm.
const GEOGRAPHY_TYPE: &[(i16, Known)] = &[(1, Binary), (2, Varint)];
/// `RowGroup` (`read_row_group`): columns, byte size, rows, sorting columns, file
/// offset, ordinal (6, the compressed size, is skipped).
const ROW_GROUP: &[(i16, Known)] = &[
    (1, List(STRUCT, &Struct(COLUMN_CHUNK))),
    (2, Varint),
    (3, Varint),
    (4, List(STRUCT, &Struct(SORTING_COLUMN))),
    (5, Varint),
    (7, Varint),
];
/// `SortingColumn`: column index, descending, nulls first.
const SORTING_COLUMN: &[(i16, Known)] = &[(1, Varint), (2, Bool), (3, Bool)];
/// `ColumnChunk` (`read_column_chunk`): file path, file offset, metadata, offset and
/// column index offsets and lengths.
const COLUMN_CHUNK: &[(i16, Known)] =
    &[(1, Binary), (2, Varint), (3, Struct(COLUMN_META_DATA)), (4, Varint), (5, Varint), (6, Varint), (7, Varint)];
/// `ColumnMetaData` (`read_column_metadata`): type, encodings (`EncodingMask`), codec,
/// value count, sizes, data, index and dictionary page offsets, statistics, encoding
/// stats (`read_encoding_stats_as_mask`), bloom filter offset and length, size and
/// geospatial statistics.
const COLUMN_META_DATA: &[(i16, Known)] = &[
    (1, Varint),
    (2, List(I32, &Varint)),
    (4, Varint),
    (5, Varint),
    (6, Varint),
    (7, Varint),
    (9, Varint),
    (10, Varint),
    (11, Varint),
    (12, Struct(STATISTICS)),
    (13, List(STRUCT, &Struct(PAGE_ENCODING_STATS))),
    (14, Varint),
    (15, Varint),
    (16, Struct(SIZE_STATISTICS)),
    (17, Struct(GEOSPATIAL_STATISTICS)),
];
/// `Statistics`: max, min, null and distinct counts, max and min values, whether they
/// are exact, NaN count.
const STATISTICS: &[(i16, Known)] =
    &[(1, Binary), (2, Binary), (3, Varint), (4, Varint), (5, Binary), (6, Binary), (7, Bool), (8, Bool), (9, Varint)];
/// `PageEncodingStats`: page type, encoding, count.
const PAGE_ENCODING_STATS: &[(i16, Known)] = &[(1, Varint), (2, Varint), (3, Varint)];
/// `SizeStatistics`: unencoded byte array bytes, repetition and definition level
/// histograms.
const SIZE_STATISTICS: &[(i16, Known)] = &[(1, Varint), (2, List(I64, &Varint)), (3, List(I64, &Varint))];
/// `GeospatialStatistics`: bounding box, geospatial types.
const GEOSPATIAL_STATISTICS: &[(i16, Known)] = &[(1, Struct(BOUNDING_BOX)), (2, List(I32, &Varint))];
/// `BoundingBox`: x, y, z and m ranges.
const BOUNDING_BOX: &[(i16, Known)] =
    &[(1, Double), (2, Double), (3, Double), (4, Double), (5, Double), (6, Double), (7, Double), (8, Double)];
/// `KeyValue`: key, value.
const KEY_VALUE: &[(i16, Known)] = &[(1, Binary), (2, Binary)];
/// `ColumnOrder` (a union of empty structures; unknown members are skipped).
const COLUMN_ORDER: &[(i16, Known)] = &[(1, EMPTY), (2, EMPTY), (3, EMPTY)];

// A page header as `get_next_page` reads it (`PageHeader::read_thrift_without_stats`).

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
        self.read(known, id, kind, depth)?;
        Ok(true)
    }

    /// Reads a value of field `id` (declared `kind`: a field's header, or a list's
    /// element type) as the crate reads `known`.
    fn read(&mut self, known: Known, id: i16, kind: u8, depth: usize) -> Result<(), String> {
        match known {
            Varint => self.varint().map(drop),
            Byte => self.skip(1),
            Double => self.skip(8),
            Binary => self.binary(),
            Bool if is_bool(kind) => Ok(()),
            Bool => Err(format!("field {id} should be a boolean, its header says type {kind}")),
            Struct(fields) => self.known(fields, depth + 1),
            List(element, of) => self.list(id, element, *of, depth + 1),
        }
    }

    /// A list of field `id` as the crate reads a known one (`read_thrift_vec`): its
    /// header must declare `element`s, each read as `of`.
    fn list(&mut self, id: i16, element: u8, of: Known, depth: usize) -> Result<(), String> {
        within_depth(depth)?;
        let (declared_type, declared) = self.list_header()?;
        if declared_type != element {
            return Err(format!("field {id} should be a list of type {element}, its header says type {declared_type}"));
        }
        for _ in 0..self.count(declared, "list", false)? {
            self.read(of, id, element, depth)?;
        }
        Ok(())
    }

    /// A list's or set's header: its element type and declared count (in the header's
    /// high nibble, or a varint after it when that nibble is 15).
    fn list_header(&mut self) -> Result<(u8, u64), String> {
        let header = self.byte()?;
        let short = u64::from(header >> 4);
        let declared = if short == 15 { self.varint()? } else { short };
        Ok((header & 0x0f, declared))
    }

    /// Skips a string or binary: its length, then its bytes.
    fn binary(&mut self) -> Result<(), String> {
        let length = self.varint()?;
        self.skip(usize::try_from(length).unwrap_or(usize::MAX))
    }

    /// Skips one value of `kind`.
    fn value(&mut self, kind: u8, depth: usize) -> Result<(), String> {
        within_depth(depth)?;
        match kind {
            BOOL_TRUE | BOOL_FALSE => Ok(()),
            BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip(8),
            BINARY => self.binary(),
            LIST | SET => {
                let (element, declared) = self.list_header()?;
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

/// Checks the footer (the file metadata) of a Parquet file: walked by its declared types
/// (the check before it knew the crate's schema, kept so that what it refused stays
/// refused, with the same messages), then as the crate reads it (`FILE_META_DATA`).
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
    let declared = Walk::new(&bytes).fields(0, |_, _, _| Ok(false));
    let read = declared.and_then(|()| Walk::new(&bytes).known(FILE_META_DATA, 0));
    let tree = read.and_then(|()| schema_tree(&children_counts(&bytes)?));
    tree.map_err(|e| format!("its footer is malformed: {e}"))
}

/// Each schema element's `num_children` (field 5; `None` where it is not set), from a
/// footer that [`Walk::known`] accepted.
fn children_counts(bytes: &[u8]) -> Result<Vec<Option<i64>>, String> {
    let mut counts = Vec::new();
    Walk::new(bytes).fields(0, |id, kind, walk| {
        if id != 2 {
            return walk.known_field(FILE_META_DATA, id, kind, 0);
        }
        let (_, declared) = walk.list_header()?;
        for _ in 0..walk.count(declared, "list", false)? {
            let mut children = None;
            walk.fields(1, |id, kind, walk| {
                if id == 5 {
                    children = Some(zigzag(walk.varint()?));
                    return Ok(true);
                }
                walk.known_field(SCHEMA_ELEMENT, id, kind, 1)
            })?;
            counts.push(children);
        }
        Ok(true)
    })?;
    Ok(counts)
}

/// The schema is a tree flattened depth first, each group naming its count of children;
/// the crate rebuilds it recursively, one call per level (10,000 nested groups overflow
/// an 8 MiB stack, aborting the process), reserving room for each group's declared count
/// first (2³¹ − 1 children, a 16 GiB reservation, from 14 bytes). Refuses a group that
/// declares more children than elements follow it, or nesting deeper than `MAX_SCHEMA_DEPTH`.
fn schema_tree(children: &[Option<i64>]) -> Result<(), String> {
    // Children still to come of each open group, innermost last.
    let mut open: Vec<i64> = Vec::new();
    for (index, count) in children.iter().enumerate() {
        if let Some(last) = open.last_mut() {
            *last -= 1;
        }
        match *count {
            Some(count) if count > 0 => {
                let following = (children.len() - index - 1) as i64;
                if count > following {
                    return Err(format!(
                        "schema element {index} declares {count} children where {following} elements follow"
                    ));
                }
                open.push(count);
                if open.len() > MAX_SCHEMA_DEPTH {
                    return Err(format!("its schema nests groups deeper than {MAX_SCHEMA_DEPTH}"));
                }
            }
            _ => {}
        }
        while open.last() == Some(&0) {
            open.pop();
        }
    }
    Ok(())
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

    /// A file of `metadata` (the footer's Thrift bytes): magic, metadata, length, magic.
    fn file(metadata: &[u8]) -> bytes::Bytes {
        let mut file = b"PAR1".to_vec();
        file.extend(metadata);
        file.extend((metadata.len() as u32).to_le_bytes());
        file.extend(b"PAR1");
        file.into()
    }

    #[test]
    fn a_known_footer_field_is_read_as_the_crate_reads_it_whatever_its_header_says() {
        // FileMetaData: field 1, the version (an i32); field 2, the schema — a list of
        // SchemaElements to the crate — declared a binary of 28 bytes. The crate reads the
        // length byte, 0x1C, as a list header (one struct), then a SchemaElement whose
        // field 11 (unknown, skipped) is a list of 2³¹ − 1 booleans, which it skips one
        // by one reading no byte (`skip_till_depth`). Padding, then the stop.
        let mut metadata = vec![0x15, 0x02, 0x18, 0x1C, 0xB9, 0xF1, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00];
        metadata.resize(4 + 28, 0x00);
        metadata.push(0x00);
        // Walked by declared types alone (the footer's whole check before it mirrored the
        // crate's schema), the binary's bytes are skipped and nothing is wrong.
        assert_eq!(walk(&metadata), Ok(()));
        let error = footer(&file(&metadata)).unwrap_err();
        assert!(error.contains("declares 2147483647 booleans in a structure of 33 bytes"), "{error}");
        // A known list must hold the element type the crate expects (it checks, as
        // `validate_list_type`): here row groups (field 4) of i32s.
        let error = footer(&file(&[0x15, 0x02, 0x39, 0x15, 0x00, 0x00])).unwrap_err();
        assert!(error.contains("field 4 should be a list of type 12, its header says type 5"), "{error}");
        // A known boolean must be declared one (the crate takes its value from the header):
        // SortingColumn's `descending` (field 2 of the first sorting column, field 4 of
        // the first row group) declared an i32.
        let sorting = [0x15, 0x02, 0x39, 0x1C, 0x49, 0x1C, 0x15, 0x00, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00];
        let error = footer(&file(&sorting)).unwrap_err();
        assert!(error.contains("field 2 should be a boolean, its header says type 5"), "{error}");
    }

    /// A footer of a version and a schema of one element a `num_children` each (`None`:
    /// a leaf), every element named `a`.
    fn footer_of_schema(children: &[Option<i64>]) -> Vec<u8> {
        let mut metadata = vec![0x15, 0x02, 0x19];
        let n = children.len() as u64;
        if n < 15 {
            metadata.push(((n as u8) << 4) | STRUCT);
        } else {
            metadata.push(0xF0 | STRUCT);
            varint_into(&mut metadata, n);
        }
        for count in children {
            metadata.extend([0x48, 0x01, b'a']);
            if let Some(count) = count {
                metadata.push(0x15);
                varint_into(&mut metadata, ((count << 1) ^ (count >> 63)) as u64);
            }
            metadata.push(0x00);
        }
        metadata.push(0x00);
        metadata
    }

    fn varint_into(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    #[test]
    fn a_schema_the_crate_would_rebuild_without_bound_is_refused() {
        // A root declaring 2³¹ − 1 children (the crate reserves room for them first).
        let error = footer(&file(&footer_of_schema(&[Some(i64::from(i32::MAX))]))).unwrap_err();
        assert!(error.contains("schema element 0 declares 2147483647 children where 0 elements follow"), "{error}");
        // 300 groups nested one in another (the crate recurses once per level), then a leaf.
        let mut chain = vec![Some(1); 300];
        chain.push(None);
        let error = footer(&file(&footer_of_schema(&chain))).unwrap_err();
        assert!(error.contains("nests groups deeper than 256"), "{error}");
        // 200 levels, and a flat root of three leaves (one `num_children: 0`), pass.
        let mut chain = vec![Some(1); 200];
        chain.push(None);
        assert_eq!(footer(&file(&footer_of_schema(&chain))), Ok(()));
        assert_eq!(footer(&file(&footer_of_schema(&[Some(3), None, Some(0), None]))), Ok(()));
        // A group whose children run past the list: the second group declares 2 of 1.
        let error = footer(&file(&footer_of_schema(&[Some(2), Some(2), None]))).unwrap_err();
        assert!(error.contains("schema element 1 declares 2 children where 1 elements follow"), "{error}");
    }

    #[test]
    fn footers_written_by_pyarrow_pass() {
        // The fuzzer's seeds (`fuzz/make_reader_seeds.py`): every one a footer the crate
        // reads, and this check passes.
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/parquet");
        let mut count = 0;
        for entry in std::fs::read_dir(seeds).expect("the seeds") {
            let path = entry.expect("an entry").path();
            let bytes = bytes::Bytes::from(std::fs::read(&path).expect("a seed"));
            assert_eq!(footer(&bytes), Ok(()), "{}", path.display());
            let read = parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&bytes);
            assert!(read.is_ok(), "{}: {read:?}", path.display());
            count += 1;
        }
        assert!(count >= 9, "only {count} seeds");
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
