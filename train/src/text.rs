//! Text and token files as training data: a token stream, memory-mapped, split into a
//! training part (the first `split` of it) and a validation part (the rest). A plain
//! text file is tokenised byte by byte (ids 0–255), or by a Hugging Face
//! `tokenizer.json` (through the `tokenizers` crate; the ids then live in memory); a
//! `.bin` of little-endian u16 or u32 ids is read as it is, a NumPy `.npy` array after
//! its header, a Megatron `.bin` in the dtype its `.idx` states ([`crate::token_files`]).
//! A sequence is a window of `seq_len + 1` tokens at a position drawn from the
//! sequence's own random stream; every position predicts the next token.

use std::path::Path;
use std::sync::Arc;

use hyb_compiler::ir::train::{Data, TokenDtype, Tokenizer};
use hyb_runtime::rng::SplitMix64;

use crate::data::Task;
use crate::token_files::{self, Elem};

/// A stream of token ids: a file memory-mapped (bytes, u16, u32), or a text encoded by
/// a Hugging Face tokenizer.
pub struct Corpus {
    storage: Storage,
    /// Tokens before the validation part.
    pub split_at: usize,
    /// The token at which each document starts (a Megatron index states them; else one
    /// document from 0).
    pub documents: Vec<usize>,
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

    /// Opens a `text(...)` or `tokens(...)` source; every id must be below `vocab`, and
    /// both parts must hold a window of `seq_len + 1` tokens.
    pub fn open(data: &Data, vocab: usize, seq_len: usize) -> Result<Corpus, String> {
        let byte = Elem { width: 1, signed: false };
        let mut documents = vec![0];
        let (path, storage, split) = match data {
            Data::Text { path, tokenizer: Tokenizer::Bytes, split } => {
                (path, Storage::Mapped { map: map(path)?, elem: byte, offset: 0 }, *split)
            }
            Data::Text { path, tokenizer: Tokenizer::HuggingFace(file), split } => (path, encode(path, file)?, *split),
            Data::Tokens { path, dtype, split } => (path, token_file(path, *dtype, &mut documents)?, *split),
            _ => return Err("not a text or token file".into()),
        };
        let bytes_as_tokens = matches!(data, Data::Text { tokenizer: Tokenizer::Bytes, .. });
        let mut corpus = Corpus { storage, split_at: 0, documents };
        let len = corpus.len();
        corpus.split_at = ((len as f64) * split) as usize;
        if bytes_as_tokens && vocab < 256 {
            return Err(format!("byte-level text needs a vocab of at least 256; the model's is {vocab}"));
        }
        if let Some(bad) = (0..len).map(|i| corpus.stored(i)).find(|t| *t < 0 || *t >= vocab as i128) {
            return Err(format!("`{}` holds token id {bad}, outside the model's vocab of {vocab}", path.display()));
        }
        let validation = len - corpus.split_at;
        if corpus.split_at <= seq_len || (split < 1.0 && validation <= seq_len) {
            return Err(format!(
                "`{}` has {len} tokens: too few for windows of {} in both the training and validation parts",
                path.display(),
                seq_len + 1
            ));
        }
        Ok(corpus)
    }
}

/// The text at `path` encoded by the Hugging Face tokenizer at `tokenizer`.
fn encode(path: &Path, tokenizer: &Path) -> Result<Storage, String> {
    let model = tokenizers::Tokenizer::from_file(tokenizer)
        .map_err(|e| format!("cannot load the tokenizer `{}`: {e}", tokenizer.display()))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let encoding = model.encode(text, false).map_err(|e| format!("cannot tokenize `{}`: {e}", path.display()))?;
    Ok(Storage::Encoded(encoding.get_ids().to_vec()))
}

/// A `tokens(...)` file: a NumPy `.npy` array (by its magic or its extension: the header
/// states the dtype), a Megatron `.bin` with its `.idx` beside it (the index states the
/// dtype and the documents), else raw little-endian ids of `dtype`.
fn token_file(path: &Path, dtype: TokenDtype, documents: &mut Vec<usize>) -> Result<Storage, String> {
    let (bin, idx) = (path.with_extension("bin"), path.with_extension("idx"));
    let megatron = matches!(path.extension().and_then(|e| e.to_str()), Some("bin" | "idx")) && idx.exists();
    if megatron {
        let (map, index) =
            (map(&bin)?, std::fs::read(&idx).map_err(|e| format!("cannot read `{}`: {e}", idx.display()))?);
        let index = token_files::megatron(&index, map.len()).map_err(|e| format!("`{}`: {e}", idx.display()))?;
        *documents = index.documents;
        return Ok(Storage::Mapped { map, elem: index.elem, offset: 0 });
    }
    let map = map(path)?;
    if map.starts_with(token_files::NPY_MAGIC) || path.extension().is_some_and(|e| e == "npy") {
        let npy = token_files::npy(&map).map_err(|e| format!("`{}`: {e}", path.display()))?;
        return Ok(Storage::Mapped { map, elem: npy.elem, offset: npy.offset });
    }
    let width = if dtype == TokenDtype::U16 { 2 } else { 4 };
    if map.len() % width != 0 {
        return Err(format!("`{}`: {} bytes is not a whole number of {width}-byte ids", path.display(), map.len()));
    }
    Ok(Storage::Mapped { map, elem: Elem { width, signed: false }, offset: 0 })
}

fn map(path: &Path) -> Result<memmap2::Mmap, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    // SAFETY: the file is only read; a change to it while mapped would change the data
    // seen, not memory safety of this process beyond what the OS maps.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map `{}`: {e}", path.display()))
}

/// Windows of a part of a corpus.
pub struct Windows {
    pub corpus: Arc<Corpus>,
    /// The training part (`false`: validation).
    pub training: bool,
    pub seq_len: usize,
}

impl Task for Windows {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let (start, end) =
            if self.training { (0, self.corpus.split_at) } else { (self.corpus.split_at, self.corpus.len()) };
        let at = rng.index(start..end - self.seq_len);
        let window: Vec<i32> = (at..at + self.seq_len + 1).map(|i| self.corpus.token(i) as i32).collect();
        (window[..self.seq_len].to_vec(), window[1..].to_vec())
    }
}
