//! `hybc tokenize`: text files (plain text, one document each; JSON Lines and Parquet,
//! a document per line or row) to a Megatron-style indexed dataset — a `.bin` of token
//! ids (u16 when the vocabulary fits, else i32) and an `.idx` with one sequence per
//! document — that `tokens("OUT.bin")` trains on, with `OUT.bytes` (each document's
//! UTF-8 bytes) for bits per byte. Byte-level (ids 0–255, the end of a
//! document 256) unless `--tokenizer` names a Hugging Face `tokenizer.json`.

use std::path::{Path, PathBuf};

use hyb_compiler::ir::train::TokenDtype;
use hyb_train::generate::{Codec, EOD_NAMES};
use hyb_train::tokenize::{dtype_for, tokenize, write_megatron};

/// What `hybc tokenize` was asked for.
pub struct Request<'a> {
    pub inputs: &'a [PathBuf],
    pub tokenizer: Option<&'a Path>,
    pub output: &'a Path,
    pub field: &'a str,
    pub eod: Option<u32>,
    pub dtype: Option<TokenDtype>,
}

/// Tokenizes every input into one dataset; prints what it wrote.
pub fn run(request: &Request) -> Result<(), String> {
    let codec = match request.tokenizer {
        Some(file) => Codec::from_file(file)?,
        None => Codec::Bytes,
    };
    let eod = request.eod.or_else(|| codec.end_of_document()).ok_or_else(|| {
        format!("the tokenizer has no end-of-document token named {}; give its id with --eod", EOD_NAMES.join(", "))
    })?;
    let vocab = codec.vocab_size().max(eod as usize + 1);
    let dtype = request.dtype.unwrap_or_else(|| dtype_for(vocab));
    let tokens = tokenize(request.inputs, request.field, &codec, eod)?;
    let (bin, idx) = write_megatron(request.output, &tokens, dtype)?;
    let name = if dtype == TokenDtype::U16 { "u16" } else { "i32" };
    println!(
        "{} documents, {} tokens ({name}, end of document {eod}, vocab {vocab}) → {} + {} + {}",
        tokens.documents.len(),
        tokens.ids.len(),
        bin.display(),
        idx.display(),
        bin.with_extension("bytes").display()
    );
    Ok(())
}
