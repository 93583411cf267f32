//! Text and token files as training data: a token stream split into a training part
//! and a validation part, whole documents on each side, so no validation text is ever
//! trained on.
//!
//! - A plain text file is tokenised byte by byte (ids 0–255; memory-mapped) or by a
//!   Hugging Face `tokenizer.json` (through the `tokenizers` crate; the ids then live in
//!   memory). It is one document: the split cuts it (bytes) at the split fraction, and a
//!   tokenizer encodes the two sides apart, so each side's bytes are known.
//! - JSON Lines and Parquet files hold a document per line or row
//!   ([`crate::documents`]); each is encoded and ended by the end-of-document token, and
//!   the split falls on the document start nearest the split fraction.
//! - Token files: a `.bin` of little-endian u16 or u32 ids read as it is (one document),
//!   a NumPy `.npy` array after its header (one document), a Megatron `.bin` in the
//!   dtype its `.idx` states, split between documents ([`crate::token_files`]), with
//!   each document's bytes where `hybc tokenize` wrote them beside it (`.bytes`).
//!
//! Training windows ([`Windows`]) are `seq_len + 1` tokens of the training part at a
//! position drawn from the sequence's own random stream, packed across documents;
//! every position predicts the next token. Validation ([`FullPass`]) is a deterministic
//! pass: consecutive windows over the validation part, every validation token a target
//! exactly once, in order.

use std::path::Path;
use std::sync::Arc;

use hyb_compiler::ir::train::{Data, TokenDtype, Tokenizer};
use hyb_runtime::rng::SplitMix64;

use crate::data::{Batch, Task};
use crate::documents::Format;
use crate::generate::Codec;
use crate::token_files::{self, Elem};
use crate::tokenize::Tokenized;

/// A stream of token ids: a file memory-mapped (bytes, u16, u32), or text encoded in
/// memory.
pub struct Corpus {
    storage: Storage,
    /// Tokens before the validation part (a document start where there are documents).
    pub split_at: usize,
    /// The token at which each document starts (one document from 0 where the source
    /// states none).
    pub documents: Vec<usize>,
    /// Each document's text in UTF-8 bytes, where known.
    document_bytes: Option<Vec<u64>>,
    /// Byte-level text: every token but the end-of-document one is one byte.
    byte_level: bool,
    /// The token that ends each document, if the source has one.
    pub eod: Option<u32>,
}

enum Storage {
    /// Ids stored as `elem` from byte `offset` on: bytes of text, or a token file.
    Mapped {
        map: memmap2::Mmap,
        elem: Elem,
        offset: usize,
    },
    Encoded(Vec<u32>),
}

impl Corpus {
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Mapped { map, elem, offset } => (map.len() - offset) / elem.width,
            Storage::Encoded(ids) => ids.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at `index` as stored (it may be negative or too large before [`Corpus::open`]
    /// has checked it).
    fn stored(&self, index: usize) -> i128 {
        match &self.storage {
            Storage::Mapped { map, elem, offset } => elem.read(&map[offset + index * elem.width..]),
            Storage::Encoded(ids) => i128::from(ids[index]),
        }
    }

    pub fn token(&self, index: usize) -> u32 {
        self.stored(index) as u32
    }

    /// The document holding token `index`.
    pub fn document_of(&self, index: usize) -> usize {
        self.documents.partition_point(|start| *start <= index) - 1
    }

    /// The UTF-8 bytes of the validation part's text, where known: byte-level text
    /// counts its tokens (less end-of-document ones); other text its documents' bytes.
    pub fn validation_bytes(&self) -> Option<u64> {
        let tokens = self.split_at..self.len();
        if self.byte_level {
            let ends = self.eod.map_or(0, |eod| tokens.clone().filter(|i| self.token(*i) == eod).count());
            return Some((tokens.len() - ends) as u64);
        }
        let first = self.documents.iter().position(|start| *start == self.split_at)?;
        Some(self.document_bytes.as_ref()?[first..].iter().sum())
    }

    /// Opens a `text(...)` or `tokens(...)` source; every id must be below `vocab`, and
    /// both parts must hold a window of `seq_len + 1` tokens.
    pub fn open(data: &Data, vocab: usize, seq_len: usize) -> Result<Corpus, String> {
        let (path, split, mut corpus) = match data {
            Data::Text { path, tokenizer, split, field, eod } => {
                (path, *split, text(path, tokenizer, field, *eod, *split)?)
            }
            Data::Tokens { path, dtype, split } => (path, *split, token_file(path, *dtype)?),
            _ => return Err("not a text or token file".into()),
        };
        corpus.split_at = split_point(&corpus.documents, corpus.len(), split);
        corpus.check_ids(path, vocab)?;
        corpus.check_windows(data, seq_len)?;
        Ok(corpus)
    }

    /// Every id in the vocabulary.
    fn check_ids(&self, path: &Path, vocab: usize) -> Result<(), String> {
        let len = self.len();
        if self.byte_level && vocab < 256 {
            return Err(format!("byte-level text needs a vocab of at least 256; the model's is {vocab}"));
        }
        if let Some(eod) = self.eod.filter(|eod| *eod as usize >= vocab) {
            return Err(format!(
                "`{}`: documents end with token {eod}, outside the model's vocab of {vocab}; \
                 widen the vocab or give the end-of-document id with `eod:`",
                path.display()
            ));
        }
        let bad = match &self.storage {
            Storage::Mapped { map, elem, offset } => first_outside_vocab(&map[..], *elem, *offset, vocab),
            Storage::Encoded(_) => (0..len).map(|i| self.stored(i)).find(|t| *t < 0 || *t >= vocab as i128),
        };
        if let Some(bad) = bad {
            return Err(format!("`{}` holds token id {bad}, outside the model's vocab of {vocab}", path.display()));
        }
        Ok(())
    }

    /// A window of `seq_len + 1` tokens fits the training part, and the validation part
    /// unless `data` keeps none (`split: 1`).
    pub fn check_windows(&self, data: &Data, seq_len: usize) -> Result<(), String> {
        let (Data::Text { path, split, .. } | Data::Tokens { path, split, .. }) = data else {
            return Err("not a text or token file".into());
        };
        let (len, split) = (self.len(), *split);
        let validation = len - self.split_at;
        // An evaluation file (`split` 0) has no training part to fill.
        let training_short = split > 0.0 && self.split_at <= seq_len;
        if training_short || (split < 1.0 && validation <= seq_len) {
            return Err(format!(
                "`{}` has {len} tokens in {} documents, {} for training and {validation} for validation: \
                 too few for windows of {} on both sides",
                path.display(),
                self.documents.len(),
                self.split_at,
                seq_len + 1
            ));
        }
        Ok(())
    }
}

/// Where the validation part starts: at `split × len` tokens for one document, else at
/// the document start nearest it (never the first document's); `len` for `split = 1`;
/// 0 for `split = 0` (an evaluation file, scored whole).
pub fn split_point(documents: &[usize], len: usize, split: f64) -> usize {
    if split <= 0.0 {
        return 0;
    }
    let target = ((len as f64) * split) as usize;
    if split >= 1.0 || documents.len() < 2 {
        return target.min(len);
    }
    *documents[1..].iter().min_by_key(|start| start.abs_diff(target)).expect("two documents")
}

/// A `text(...)` source.
fn text(path: &Path, tokenizer: &Tokenizer, field: &str, eod: Option<u32>, split: f64) -> Result<Corpus, String> {
    let byte_level = *tokenizer == Tokenizer::Bytes;
    let codec = match tokenizer {
        Tokenizer::Bytes => Codec::Bytes,
        Tokenizer::HuggingFace(file) => Codec::from_file(file)?,
    };
    let corpus = |storage, tokens: Tokenized, eod| Corpus {
        storage,
        split_at: 0,
        documents: tokens.documents,
        document_bytes: Some(tokens.bytes),
        byte_level,
        eod,
    };
    match Format::of(path) {
        Format::Plain if byte_level => {
            let map = map(path)?;
            let tokens = Tokenized { ids: Vec::new(), documents: vec![0], bytes: vec![map.len() as u64] };
            Ok(corpus(Storage::Mapped { map, elem: Elem { width: 1, signed: false }, offset: 0 }, tokens, None))
        }
        Format::Plain => {
            let mut tokens = plain_text(path, &codec, split)?;
            let ids = std::mem::take(&mut tokens.ids);
            Ok(corpus(Storage::Encoded(ids), tokens, None))
        }
        Format::JsonLines | Format::Parquet => {
            let eod = eod.or_else(|| codec.end_of_document()).ok_or_else(|| {
                format!(
                    "`{}`: the tokenizer has no end-of-document token named {}; give its id with `eod:`",
                    path.display(),
                    crate::generate::EOD_NAMES.join(", ")
                )
            })?;
            let mut tokens = crate::tokenize::tokenize(&[path.to_path_buf()], field, &codec, eod)?;
            let ids = std::mem::take(&mut tokens.ids);
            Ok(corpus(Storage::Encoded(ids), tokens, Some(eod)))
        }
    }
}

/// A plain text file encoded by a tokenizer as two stretches, cut (at a character
/// boundary) where the split falls, so the validation text's bytes are known.
fn plain_text(path: &Path, codec: &Codec, split: f64) -> Result<Tokenized, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut cut = ((text.len() as f64) * split) as usize;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let mut tokens = Tokenized::default();
    for part in [&text[..cut], &text[cut..]].into_iter().filter(|part| !part.is_empty()) {
        tokens.documents.push(tokens.ids.len());
        tokens.bytes.push(part.len() as u64);
        let ids = codec.encode(part).map_err(|e| format!("`{}`: {e}", path.display()))?;
        tokens.ids.extend(ids.into_iter().map(|id| id as u32));
    }
    if tokens.documents.is_empty() {
        return Err(format!("`{}` holds no text", path.display()));
    }
    Ok(tokens)
}

/// A `tokens(...)` file: a NumPy `.npy` array (by its magic or its extension: the header
/// states the dtype), a Megatron `.bin` with its `.idx` beside it (the index states the
/// dtype and the documents), else raw little-endian ids of `dtype`.
fn token_file(path: &Path, dtype: TokenDtype) -> Result<Corpus, String> {
    let corpus = |storage, documents| Corpus {
        storage,
        split_at: 0,
        documents,
        document_bytes: None,
        byte_level: false,
        eod: None,
    };
    let (bin, idx) = (path.with_extension("bin"), path.with_extension("idx"));
    let megatron = matches!(path.extension().and_then(|e| e.to_str()), Some("bin" | "idx")) && idx.exists();
    if megatron {
        let (map, index) =
            (map(&bin)?, std::fs::read(&idx).map_err(|e| format!("cannot read `{}`: {e}", idx.display()))?);
        let layout = token_layout(&map, Some(&index), false, dtype).map_err(|e| format!("`{}`: {e}", idx.display()))?;
        let mut megatron = corpus(Storage::Mapped { map, elem: layout.elem, offset: 0 }, layout.documents);
        megatron.document_bytes = document_bytes(&bin.with_extension("bytes"), megatron.documents.len())?;
        return Ok(megatron);
    }
    let map = map(path)?;
    let npy = path.extension().is_some_and(|e| e == "npy");
    let layout = token_layout(&map, None, npy, dtype).map_err(|e| format!("`{}`: {e}", path.display()))?;
    Ok(corpus(Storage::Mapped { map, elem: layout.elem, offset: layout.offset }, layout.documents))
}

/// Where the ids of a token file's bytes are and how each is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenLayout {
    pub elem: Elem,
    /// The byte at which the ids start; the rest of the file is ids.
    pub offset: usize,
    /// The id at which each document starts: `[0]` for one document.
    pub documents: Vec<usize>,
}

/// The layout of the token file `bytes`: a Megatron `.bin` when `index` (its `.idx`) is
/// given, a NumPy array when it starts with the `.npy` magic or `npy` (its extension) is
/// set, else raw little-endian ids of `dtype`. What [`Corpus::open`] reads `tokens(...)`
/// files with, apart from the files themselves.
pub fn token_layout(bytes: &[u8], index: Option<&[u8]>, npy: bool, dtype: TokenDtype) -> Result<TokenLayout, String> {
    if let Some(index) = index {
        let index = token_files::megatron(index, bytes.len())?;
        return Ok(TokenLayout { elem: index.elem, offset: 0, documents: index.documents });
    }
    if npy || bytes.starts_with(token_files::NPY_MAGIC) {
        let npy = token_files::npy(bytes)?;
        return Ok(TokenLayout { elem: npy.elem, offset: npy.offset, documents: vec![0] });
    }
    let width = if dtype == TokenDtype::U16 { 2 } else { 4 };
    if !bytes.len().is_multiple_of(width) {
        return Err(format!("{} bytes is not a whole number of {width}-byte ids", bytes.len()));
    }
    Ok(TokenLayout { elem: Elem { width, signed: false }, offset: 0, documents: vec![0] })
}

/// The first id of `bytes` (ids of `elem` from byte `offset` on) that is negative or not below `vocab`.
pub fn first_outside_vocab(bytes: &[u8], elem: Elem, offset: usize, vocab: usize) -> Option<i128> {
    bytes[offset..].chunks_exact(elem.width).map(|id| elem.read(id)).find(|t| *t < 0 || *t >= vocab as i128)
}

/// The byte counts `hybc tokenize` writes beside a dataset (`OUT.bytes`: each
/// document's UTF-8 bytes, a little-endian u64 each), if the file is there.
fn document_bytes(path: &Path, documents: usize) -> Result<Option<Vec<u64>>, String> {
    let Ok(bytes) = std::fs::read(path) else { return Ok(None) };
    if bytes.len() != 8 * documents {
        return Err(format!(
            "`{}` holds {} bytes; the index's {documents} documents need {} (a u64 each)",
            path.display(),
            bytes.len(),
            8 * documents
        ));
    }
    Ok(Some(bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()))
}

fn map(path: &Path) -> Result<memmap2::Mmap, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    // SAFETY: the file is only read; a change to it while mapped would change the data
    // seen, not memory safety of this process beyond what the OS maps.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map `{}`: {e}", path.display()))
}

/// Training windows: `seq_len + 1` tokens at a random position of the training part.
pub struct Windows {
    pub corpus: Arc<Corpus>,
    pub seq_len: usize,
}

impl Task for Windows {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let at = rng.index(0..self.corpus.split_at - self.seq_len);
        let window: Vec<i32> = (at..at + self.seq_len + 1).map(|i| self.corpus.token(i) as i32).collect();
        (window[..self.seq_len].to_vec(), window[1..].to_vec())
    }
}

/// The validation part as consecutive windows: window `w` reads `seq_len` tokens from
/// `split_at − 1 + w · seq_len` (the token before the part is context only, so its
/// first token is scored too) and predicts the next of each; positions past the end
/// have no target. Every validation token is a target once, in order; batch `b` holds
/// windows `b · size …`, whatever the seed.
pub struct FullPass {
    pub corpus: Arc<Corpus>,
    pub seq_len: usize,
}

impl FullPass {
    /// Windows the pass takes.
    pub fn windows(&self) -> usize {
        (self.corpus.len() - self.corpus.split_at).div_ceil(self.seq_len)
    }

    /// Window `w`'s (tokens, targets): targets are the part's tokens from
    /// `split_at + w · seq_len` on, each input the token before its target. The part's
    /// first token is read after the token before it in the file or, where the part
    /// starts the file (an evaluation file scored whole), after the end-of-document
    /// token (id 0 where the source has none), as if a document had just ended.
    pub fn window(&self, w: usize) -> (Vec<i32>, Vec<i32>) {
        let (first, end) = (self.corpus.split_at + w * self.seq_len, self.corpus.len());
        let at = |i: usize| if i < end { self.corpus.token(i) as i32 } else { -1 };
        let before = |i: usize| if i == 0 { self.corpus.eod.map_or(0, |eod| eod as i32) } else { at(i - 1).max(0) };
        let tokens = (first..first + self.seq_len).map(before).collect();
        let targets = (first..first + self.seq_len).map(at).collect();
        (tokens, targets)
    }
}

impl Task for FullPass {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// A window of the pass at random (the pass itself is [`Task::batch`]).
    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        self.window(rng.index(0..self.windows()))
    }

    fn batch(&self, _seed: u64, step: u64, size: usize) -> Batch {
        let mut batch = Batch { tokens: Vec::new(), targets: Vec::new(), groups: Vec::new(), seq_len: self.seq_len };
        for w in step as usize * size..(step as usize + 1) * size {
            let (tokens, targets) =
                if w < self.windows() { self.window(w) } else { (vec![0; self.seq_len], vec![-1; self.seq_len]) };
            batch.tokens.extend(tokens);
            batch.targets.extend(targets);
        }
        batch.groups = vec![0; batch.tokens.len()];
        batch
    }
}
