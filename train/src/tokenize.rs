//! Documents to token ids, and token ids to a Megatron-LM indexed dataset.
//!
//! [`tokenize`] reads the documents of text files ([`crate::documents`]: a plain file is
//! one, JSON Lines and Parquet one per line or row), encodes each with a [`Codec`] and
//! ends it with the end-of-document token, as Megatron's `preprocess_data.py
//! --append-eod` does; it records where each document starts and how many UTF-8 bytes
//! its text had (for bits per byte). [`write_megatron`] writes the ids as a `.bin` of
//! little-endian u16 or i32 and its `.idx` with one sequence per document (the layout
//! in [`crate::token_files`]), which `tokens("….bin")` reads back, and beside them
//! `OUT.bytes`, each document's UTF-8 bytes as a little-endian u64, from which the
//! reader knows the validation text's bytes (bits per byte).

use std::path::{Path, PathBuf};

use hyb_compiler::ir::train::TokenDtype;

use crate::generate::Codec;

/// Documents as one stream of ids, each ended by the end-of-document token.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    /// The id at which each document starts.
    pub documents: Vec<usize>,
    /// Each document's text in UTF-8 bytes.
    pub bytes: Vec<u64>,
}

impl Tokenized {
    /// Appends one document: its ids, then `eod`.
    pub fn push(&mut self, text: &str, codec: &Codec, eod: u32) -> Result<(), String> {
        self.documents.push(self.ids.len());
        self.bytes.push(text.len() as u64);
        self.ids.extend(codec.encode(text)?.into_iter().map(|id| id as u32));
        self.ids.push(eod);
        Ok(())
    }
}

/// The documents of every file of `paths`, in order (`field`: the text's field or
/// column in JSON Lines and Parquet files).
pub fn tokenize(paths: &[PathBuf], field: &str, codec: &Codec, eod: u32) -> Result<Tokenized, String> {
    let mut out = Tokenized::default();
    for path in paths {
        crate::documents::read(path, field, &mut |text| out.push(text, codec, eod))?;
    }
    Ok(out)
}

/// The narrowest dtype that holds every id below `vocab`: u16 up to 65536 ids.
pub fn dtype_for(vocab: usize) -> TokenDtype {
    if vocab <= 1 << 16 { TokenDtype::U16 } else { TokenDtype::U32 }
}

/// The `.bin` and `.idx` paths of an output: `OUT.bin` / `OUT.idx` (an `OUT` ending in
/// `.bin` or `.idx` names the pair).
pub fn megatron_paths(out: &Path) -> (PathBuf, PathBuf) {
    let stem = match out.extension().and_then(|e| e.to_str()) {
        Some("bin" | "idx") => out.with_extension(""),
        _ => out.to_path_buf(),
    };
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", stem.display()));
    (with("bin"), with("idx"))
}

/// Writes `tokens` as a Megatron `.bin` of `dtype` ids (u32 as i32, Megatron's widest
/// integer code below i64) and its `.idx` (and `.bytes` where every document's bytes are
/// known); returns the `.bin` and `.idx` paths. An id that does not
/// fit the dtype is an error naming it and its document.
pub fn write_megatron(out: &Path, tokens: &Tokenized, dtype: TokenDtype) -> Result<(PathBuf, PathBuf), String> {
    let (bin_path, idx_path) = megatron_paths(out);
    let limit: u64 = if dtype == TokenDtype::U16 { u16::MAX as u64 } else { i32::MAX as u64 };
    if let Some(at) = tokens.ids.iter().position(|id| u64::from(*id) > limit) {
        let document = tokens.documents.partition_point(|start| *start <= at);
        let name = if dtype == TokenDtype::U16 { "u16" } else { "i32" };
        return Err(format!("token id {} (document {document}, counting from 1) does not fit {name}", tokens.ids[at]));
    }
    let bin: Vec<u8> = match dtype {
        TokenDtype::U16 => tokens.ids.iter().flat_map(|id| (*id as u16).to_le_bytes()).collect(),
        TokenDtype::U32 => tokens.ids.iter().flat_map(|id| id.to_le_bytes()).collect(),
    };
    let ends = tokens.documents.iter().skip(1).copied().chain(std::iter::once(tokens.ids.len()));
    let lengths: Vec<u64> = tokens.documents.iter().zip(ends).map(|(start, end)| (end - start) as u64).collect();
    let (code, width) = if dtype == TokenDtype::U16 { (8, 2) } else { (4, 4) };
    let idx = crate::token_files::megatron_index(code, width, &lengths)?;
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    };
    write(&bin_path, &bin)?;
    write(&idx_path, &idx)?;
    if tokens.bytes.len() == tokens.documents.len() {
        let bytes: Vec<u8> = tokens.bytes.iter().flat_map(|b| b.to_le_bytes()).collect();
        write(&bin_path.with_extension("bytes"), &bytes)?;
    }
    Ok((bin_path, idx_path))
}
