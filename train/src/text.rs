//! Text and token files as training data: a token stream, memory-mapped, split into a
//! training part (the first `split` of it) and a validation part (the rest). A plain
//! text file is tokenised byte by byte (ids 0–255), or by a Hugging Face
//! `tokenizer.json` (through the `tokenizers` crate; the ids then live in memory); a
//! `.bin` of little-endian u16 or u32 ids is read as it is. A sequence is a window of `seq_len + 1` tokens at a position
//! drawn from the sequence's own random stream; every position predicts the next token.

use std::path::Path;
use std::sync::Arc;

use hyb_compiler::ir::train::{Data, TokenDtype, Tokenizer};
use hyb_runtime::rng::SplitMix64;

use crate::data::Task;

/// A stream of token ids: a file memory-mapped (bytes, u16, u32), or a text encoded by
/// a Hugging Face tokenizer.
pub struct Corpus {
    storage: Storage,
    /// Tokens before the validation part.
    pub split_at: usize,
}

enum Storage {
    /// `width` bytes per token: 1 (text as bytes), 2 or 4.
    Mapped {
        map: memmap2::Mmap,
        width: usize,
    },
    Encoded(Vec<u32>),
}

impl Corpus {
    pub fn len(&self) -> usize {
        match &self.storage {
            Storage::Mapped { map, width } => map.len() / width,
            Storage::Encoded(ids) => ids.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn token(&self, index: usize) -> u32 {
        let (map, width) = match &self.storage {
            Storage::Mapped { map, width } => (map, *width),
            Storage::Encoded(ids) => return ids[index],
        };
        let bytes = &map[index * width..(index + 1) * width];
        match width {
            1 => u32::from(bytes[0]),
            2 => u32::from(u16::from_le_bytes([bytes[0], bytes[1]])),
            _ => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        }
    }

    /// Opens a `text(...)` or `tokens(...)` source; every id must be below `vocab`, and
    /// both parts must hold a window of `seq_len + 1` tokens.
    pub fn open(data: &Data, vocab: usize, seq_len: usize) -> Result<Corpus, String> {
        let (path, storage, split) = match data {
            Data::Text { path, tokenizer: Tokenizer::Bytes, split } => {
                (path, Storage::Mapped { map: map(path)?, width: 1 }, *split)
            }
            Data::Text { path, tokenizer: Tokenizer::HuggingFace(file), split } => (path, encode(path, file)?, *split),
            Data::Tokens { path, dtype, split } => {
                let width = if *dtype == TokenDtype::U16 { 2 } else { 4 };
                (path, Storage::Mapped { map: map(path)?, width }, *split)
            }
            _ => return Err("not a text or token file".into()),
        };
        if let Storage::Mapped { map, width } = &storage
            && map.len() % width != 0
        {
            return Err(format!("`{}`: {} bytes is not a whole number of {width}-byte ids", path.display(), map.len()));
        }
        let bytes_as_tokens = matches!(storage, Storage::Mapped { width: 1, .. });
        let mut corpus = Corpus { storage, split_at: 0 };
        let len = corpus.len();
        corpus.split_at = ((len as f64) * split) as usize;
        if bytes_as_tokens && vocab < 256 {
            return Err(format!("byte-level text needs a vocab of at least 256; the model's is {vocab}"));
        }
        if let Some(bad) = (0..len).map(|i| corpus.token(i)).find(|t| *t as usize >= vocab) {
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
