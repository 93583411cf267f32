//! The headers of token files: where the ids start in a file and how each is stored.
//!
//! A NumPy `.npy` file (format 1.0; 2.0 and 3.0 differ only in a 4-byte header length):
//! the magic `\x93NUMPY`, the version's major and minor bytes, the header's length as a
//! little-endian u16, then the header: a Python dict literal such as
//! `{'descr': '<u2', 'fortran_order': False, 'shape': (1000,), }`, padded with spaces
//! and ended by `\n` so that the data starts at a multiple of 64 bytes. The data is the
//! array's elements, one after another. Token arrays here are 1-D, little-endian
//! integers of 1, 2, 4 or 8 bytes.
//!
//! A Megatron-LM indexed dataset (`MMapIndexedDataset`): a `.bin` of the ids of every
//! sequence one after another, and an `.idx` beside it: the magic `MMIDIDX\0\0`, the
//! version (u64, 1), the ids' dtype code (u8: 1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 8 u16;
//! 6 and 7 are floats), the sequence count n and the document-index count d (u64 each),
//! then each sequence's length (i32 × n), its byte offset in the `.bin` (i64 × n), and the
//! sequence index at which each document starts, ending with n (i64 × d). All
//! little-endian.

/// How one id is stored: its width in bytes and whether it is signed (little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elem {
    pub width: usize,
    pub signed: bool,
}

impl Elem {
    /// The id at the start of `bytes` (at least `width` long).
    pub fn read(self, bytes: &[u8]) -> i128 {
        let mut buffer = [0u8; 8];
        buffer[..self.width].copy_from_slice(&bytes[..self.width]);
        let unsigned = u64::from_le_bytes(buffer);
        if self.signed {
            let shift = 64 - 8 * self.width as u32;
            i128::from(((unsigned << shift) as i64) >> shift)
        } else {
            i128::from(unsigned)
        }
    }
}

/// An `.npy` array's ids: where they start and how each is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Npy {
    pub offset: usize,
    pub elem: Elem,
    pub len: usize,
}

pub const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads the header of the `.npy` file `bytes`, checking that the data it describes
/// (a 1-D array of little-endian integers, C order) is all there.
pub fn npy(bytes: &[u8]) -> Result<Npy, String> {
    let truncated = || "truncated: the file ends inside its header".to_string();
    if !bytes.starts_with(NPY_MAGIC) {
        return Err("not a NumPy array: it does not start with `\\x93NUMPY`".into());
    }
    let major = *bytes.get(6).ok_or_else(truncated)?;
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes(bytes.get(8..10).ok_or_else(truncated)?.try_into().unwrap()) as usize, 10),
        2 | 3 => (u32::from_le_bytes(bytes.get(8..12).ok_or_else(truncated)?.try_into().unwrap()) as usize, 12),
        _ => return Err(format!("NumPy format version {major} is not one this reads (1, 2, 3)")),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(truncated)?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text".to_string())?;
    let descr = field(header, "descr").ok_or("the header has no `descr`")?.trim_matches(['\'', '"']);
    let elem = match descr {
        "|u1" | "<u1" => Elem { width: 1, signed: false },
        "|i1" | "<i1" => Elem { width: 1, signed: true },
        "<u2" => Elem { width: 2, signed: false },
        "<i2" => Elem { width: 2, signed: true },
        "<u4" => Elem { width: 4, signed: false },
        "<i4" => Elem { width: 4, signed: true },
        "<u8" => Elem { width: 8, signed: false },
        "<i8" => Elem { width: 8, signed: true },
        d if d.starts_with('>') => return Err(format!("dtype `{d}` is big-endian; save the array little-endian")),
        d => return Err(format!("dtype `{d}` cannot hold token ids: they are little-endian integers")),
    };
    match field(header, "fortran_order") {
        Some("False") => {}
        Some(_) => return Err("the array is in Fortran order; save it in C order".into()),
        None => return Err("the header has no `fortran_order`".into()),
    }
    let shape = field(header, "shape").ok_or("the header has no `shape`")?;
    let dims: Vec<&str> = shape.trim_matches(['(', ')']).split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    let len = match dims[..] {
        [n] => n.parse::<usize>().map_err(|_| format!("the shape `{shape}` is not a length"))?,
        _ => return Err(format!("the shape `{shape}` is not 1-D: token arrays are one stream")),
    };
    let offset = start + header_len;
    let needed = len.checked_mul(elem.width).and_then(|n| n.checked_add(offset));
    if needed != Some(bytes.len()) {
        let held = bytes.len() - offset;
        let what = if needed.is_none_or(|n| n > bytes.len()) { "truncated" } else { "too long" };
        return Err(format!(
            "{what}: shape ({len},) of `{descr}` is {len}×{} bytes; the file holds {held}",
            elem.width
        ));
    }
    Ok(Npy { offset, elem, len })
}

/// The text of `key`'s value in a Python dict literal: a quoted string, a tuple, or a
/// bare word.
fn field<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let at = dict.find(&format!("'{key}'")).or_else(|| dict.find(&format!("\"{key}\"")))?;
    let rest = dict[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    let end = match rest.chars().next()? {
        quote @ ('\'' | '"') => rest[1..].find(quote)? + 2,
        '(' => rest.find(')')? + 1,
        _ => rest.find([',', '}']).unwrap_or(rest.len()),
    };
    Some(rest[..end].trim())
}

pub const MEGATRON_MAGIC: &[u8] = b"MMIDIDX\x00\x00";

/// A Megatron index: how the ids of its `.bin` are stored, and the token at which each
/// document starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MegatronIndex {
    pub elem: Elem,
    pub documents: Vec<usize>,
}

/// Reads the Megatron `.idx` file `idx`, checking it against its `.bin` of `bin_len`
/// bytes: the sequences follow one another and fill the `.bin`.
pub fn megatron(idx: &[u8], bin_len: usize) -> Result<MegatronIndex, String> {
    let truncated = || "truncated: the index ends early".to_string();
    let u64_at = |at: usize| -> Result<u64, String> {
        Ok(u64::from_le_bytes(idx.get(at..at + 8).ok_or_else(truncated)?.try_into().unwrap()))
    };
    if !idx.starts_with(MEGATRON_MAGIC) {
        return Err("not a Megatron index: it does not start with `MMIDIDX`".into());
    }
    if u64_at(9)? != 1 {
        return Err(format!("Megatron index version {} is not 1", u64_at(9)?));
    }
    let elem = match *idx.get(17).ok_or_else(truncated)? {
        1 => Elem { width: 1, signed: false },
        2 => Elem { width: 1, signed: true },
        3 => Elem { width: 2, signed: true },
        4 => Elem { width: 4, signed: true },
        5 => Elem { width: 8, signed: true },
        8 => Elem { width: 2, signed: false },
        code => return Err(format!("dtype code {code} cannot hold token ids (1–5 and 8 are integers)")),
    };
    let (n, d) = (u64_at(18)? as usize, u64_at(26)? as usize);
    if n == 0 {
        return Err("the index holds no sequences".into());
    }
    let needed = n.checked_mul(12).and_then(|b| b.checked_add(d.checked_mul(8)?)).and_then(|b| b.checked_add(34));
    if needed.is_none_or(|b| b > idx.len()) {
        return Err(truncated());
    }
    let int = |at: usize, width: usize| Elem { width, signed: true }.read(&idx[at..]);
    let (lengths, pointers, starts) = (34, 34 + 4 * n, 34 + 12 * n);
    let mut offsets = Vec::with_capacity(n + 1);
    let mut bytes = 0i128;
    for i in 0..n {
        if int(pointers + 8 * i, 8) != bytes {
            return Err(format!("sequence {i} is not where the one before it ends"));
        }
        offsets.push((bytes / elem.width as i128) as usize);
        let length = int(lengths + 4 * i, 4);
        if length < 0 {
            return Err(format!("sequence {i} has the negative length {length}"));
        }
        bytes += length * elem.width as i128;
    }
    offsets.push((bytes / elem.width as i128) as usize);
    if bytes != bin_len as i128 {
        return Err(format!("the sequences take {bytes} bytes; the `.bin` holds {bin_len}"));
    }
    let starts: Vec<i128> = (0..d).map(|k| int(starts + 8 * k, 8)).collect();
    let ordered = starts.windows(2).all(|w| w[0] <= w[1]);
    if starts.first() != Some(&0) || starts.last() != Some(&(n as i128)) || !ordered {
        return Err(format!("the document indices do not run from 0 up to {n}"));
    }
    let documents = starts[..d - 1].iter().map(|s| offsets[*s as usize]).collect();
    Ok(MegatronIndex { elem, documents })
}

/// The Megatron `.idx` of a `.bin` holding one sequence per document, of the lengths
/// given, in ids of dtype `code` and `width` bytes (the layout in the module doc).
pub fn megatron_index(code: u8, width: u64, lengths: &[u64]) -> Result<Vec<u8>, String> {
    let n = lengths.len();
    let mut bytes = MEGATRON_MAGIC.to_vec();
    bytes.extend(1u64.to_le_bytes());
    bytes.push(code);
    bytes.extend((n as u64).to_le_bytes());
    bytes.extend((n as u64 + 1).to_le_bytes());
    for (i, length) in lengths.iter().enumerate() {
        let length =
            i32::try_from(*length).map_err(|_| format!("document {i} has {length} ids; an index holds < 2³¹"))?;
        bytes.extend(length.to_le_bytes());
    }
    let mut pointer = 0u64;
    for length in lengths {
        bytes.extend(pointer.to_le_bytes());
        pointer += length * width;
    }
    bytes.extend((0..=n as u64).flat_map(u64::to_le_bytes));
    Ok(bytes)
}
