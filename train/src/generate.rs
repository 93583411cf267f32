//! Generation: a prompt fed token by token through the runtime's [`Decoder`] (each
//! mixer's recurrent state, attention's KV cache), then new tokens chosen greedily or
//! sampled with a temperature and top-k; and the prompt's text ↔ ids ([`Codec`]) for the
//! model's training data: bytes, a Hugging Face tokenizer, or plain ids for recall tasks.

use hyb_compiler::ir::train::{Data, Tokenizer};
use hyb_runtime::rng::SplitMix64;
use hyb_runtime::{Decoder, Error};

/// How the next token is chosen: greedily at temperature 0, else sampled from the
/// softmax of `logits / temperature` over the `top_k` most likely tokens (all: none),
/// then over the fewest of those whose probabilities sum to `top_p` (nucleus sampling).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Sampling {
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_k: None, top_p: None, seed: 0 };
}

/// The token of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0;
    for (i, value) in logits.iter().enumerate() {
        if *value > logits[best] {
            best = i;
        }
    }
    best as i32
}

/// The next token from one row of logits.
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> i32 {
    if sampling.temperature <= 0.0 || sampling.top_k == Some(1) {
        return argmax(logits);
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]));
    order.truncate(sampling.top_k.unwrap_or(logits.len()).max(1));
    let top = logits[order[0]] as f64;
    let mut weights: Vec<f64> =
        order.iter().map(|i| ((logits[*i] as f64 - top) / sampling.temperature).exp()).collect();
    if let Some(p) = sampling.top_p {
        // The most likely tokens until their share reaches p (at least one).
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        let keep = weights.iter().take_while(|w| {
            let inside = running < p * total;
            running += *w;
            inside
        });
        let keep = keep.count().max(1);
        weights.truncate(keep);
        order.truncate(keep);
    }
    let mut draw = rng.unit() * weights.iter().sum::<f64>();
    for (token, weight) in order.iter().zip(&weights) {
        if draw < *weight {
            return *token as i32;
        }
        draw -= weight;
    }
    order[0] as i32
}

/// Feeds `prompt` (one sequence, a decoder of batch 1), then decodes up to
/// `new_tokens` more, calling `on_token` with each as it is chosen (it returns whether
/// to go on: a stop string); returns the new tokens.
pub fn generate(
    decoder: &mut Decoder,
    prompt: &[i32],
    new_tokens: usize,
    sampling: &Sampling,
    on_token: &mut dyn FnMut(i32) -> bool,
) -> Result<Vec<i32>, Error> {
    if prompt.is_empty() {
        return Err(Error::Input("the prompt is empty: generation needs at least one token".into()));
    }
    let mut rows = [Row::new(prompt, sampling.seed, new_tokens)];
    decode_group(decoder, &mut rows, new_tokens, sampling, &mut |new| on_token(new[new.len() - 1]))?;
    let [row] = rows;
    Ok(row.new)
}

/// Several prompts decoded together, `decoder.batch()` at a time: row `i` of a step
/// feeds prompt `i`'s next token while it has one and its last chosen token after, so
/// prompts of different lengths share every step, each row at its own position of its
/// own sequence (the rows never mix). Row `i` samples from its own stream (`seed + i`:
/// one prompt samples as [`generate`] does) and ends after `new_tokens` or once `done`
/// says so of its new tokens. Returns each prompt's new tokens, in order.
pub fn generate_batch(
    decoder: &mut Decoder,
    prompts: &[Vec<i32>],
    new_tokens: usize,
    sampling: &Sampling,
    done: &dyn Fn(&[i32]) -> bool,
) -> Result<Vec<Vec<i32>>, Error> {
    if let Some(index) = prompts.iter().position(|p| p.is_empty()) {
        return Err(Error::Input(format!("prompt {} is empty: generation needs at least one token", index + 1)));
    }
    let rows = decoder.batch();
    let mut out = Vec::with_capacity(prompts.len());
    for (group, chunk) in prompts.chunks(rows).enumerate() {
        // A last group shorter than the decoder's batch repeats its first prompt.
        let padded: Vec<&Vec<i32>> = (0..rows).map(|r| chunk.get(r).unwrap_or(&chunk[0])).collect();
        let seeds = (0..rows).map(|r| sampling.seed.wrapping_add((group * rows + r) as u64));
        let mut lanes: Vec<Row> = padded.iter().zip(seeds).map(|(p, seed)| Row::new(p, seed, new_tokens)).collect();
        decode_group(decoder, &mut lanes, new_tokens, sampling, &mut |new| !done(new))?;
        out.extend(lanes.into_iter().take(chunk.len()).map(|row| row.new));
    }
    Ok(out)
}

/// One row of a batched decode: its prompt, new tokens, sampling stream and whether it
/// has ended.
struct Row<'p> {
    prompt: &'p [i32],
    new: Vec<i32>,
    rng: SplitMix64,
    ended: bool,
}

impl<'p> Row<'p> {
    /// A row that will choose up to `new_tokens` (none: it has ended before it starts).
    fn new(prompt: &'p [i32], seed: u64, new_tokens: usize) -> Row<'p> {
        Row { prompt, new: Vec::with_capacity(new_tokens), rng: SplitMix64::new(seed), ended: new_tokens == 0 }
    }

    /// The token this row feeds at `position`.
    fn feed(&self, position: usize) -> i32 {
        self.prompt.get(position).or(self.new.last()).copied().unwrap_or(self.prompt[0])
    }
}

/// Decodes `rows` together, one token per row a step; `go_on` sees a row's new tokens
/// after each choice and says whether that row continues.
fn decode_group(
    decoder: &mut Decoder,
    rows: &mut [Row],
    new_tokens: usize,
    sampling: &Sampling,
    go_on: &mut dyn FnMut(&[i32]) -> bool,
) -> Result<(), Error> {
    let longest = rows.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let needed = longest + new_tokens.saturating_sub(1);
    if needed > decoder.max_len() {
        return Err(Error::Input(format!("{needed} tokens do not fit a decoder of {}", decoder.max_len())));
    }
    decoder.reset();
    let vocab = decoder.vocab();
    for position in 0..needed {
        let tokens: Vec<i32> = rows.iter().map(|r| r.feed(position)).collect();
        let logits = decoder.step(&tokens)?;
        for (row, logits) in rows.iter_mut().zip(logits.chunks(vocab)) {
            if row.ended || position + 1 < row.prompt.len() {
                continue;
            }
            let next = choose(logits, sampling, &mut row.rng);
            row.new.push(next);
            row.ended = !go_on(&row.new) || row.new.len() >= new_tokens;
        }
        if rows.iter().all(|r| r.ended) {
            break;
        }
    }
    Ok(())
}

/// The names tokenizers give their end-of-document (end-of-sequence) token, in the
/// order they are looked for: GPT-2's and Qwen's, Llama 2's and Mistral's, Llama 3's,
/// Gemma's.
pub const EOD_NAMES: &[&str] = &["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"];

/// Text ↔ token ids as the model was trained.
pub enum Codec {
    /// Byte-level text: ids 0–255.
    Bytes,
    HuggingFace(Box<tokenizers::Tokenizer>),
    /// No text (recall tasks): ids written as numbers, `3 17 42` or `3,17,42`.
    Ids,
}

impl Codec {
    /// The codec of a model's training data (ids without text data).
    pub fn of(data: Option<&Data>) -> Result<Codec, String> {
        match data {
            Some(Data::Text { tokenizer: Tokenizer::Bytes, .. }) => Ok(Codec::Bytes),
            Some(Data::Text { tokenizer: Tokenizer::HuggingFace(file), .. }) => Codec::from_file(file),
            _ => Ok(Codec::Ids),
        }
    }

    /// The codec of a checkpoint of `model`: its training data's, or, for a model
    /// without text data, the `tokenizer.json` a published directory carries.
    pub fn of_checkpoint(model: &hyb_compiler::ir::Model, ckpt: &std::path::Path) -> Result<Codec, String> {
        match Codec::of(model.train.as_ref().map(|t| &t.data))? {
            Codec::Ids if ckpt.join("tokenizer.json").is_file() => Codec::from_file(&ckpt.join("tokenizer.json")),
            codec => Ok(codec),
        }
    }

    /// A Hugging Face `tokenizer.json`.
    pub fn from_file(file: &std::path::Path) -> Result<Codec, String> {
        tokenizers::Tokenizer::from_file(file)
            .map(|t| Codec::HuggingFace(Box::new(t)))
            .map_err(|e| format!("cannot load the tokenizer `{}`: {e}", file.display()))
    }

    /// The end-of-document token: 256 after the bytes; a tokenizer's own, the first of
    /// [`EOD_NAMES`] it holds; none for plain ids.
    pub fn end_of_document(&self) -> Option<u32> {
        match self {
            Codec::Bytes => Some(256),
            Codec::HuggingFace(model) => EOD_NAMES.iter().find_map(|name| model.token_to_id(name)),
            Codec::Ids => None,
        }
    }

    /// Ids the codec can produce (end-of-document included): 257 for bytes.
    pub fn vocab_size(&self) -> usize {
        match self {
            Codec::Bytes => 257,
            Codec::HuggingFace(model) => model.get_vocab_size(true),
            Codec::Ids => usize::MAX,
        }
    }

    pub fn encode(&self, text: &str) -> Result<Vec<i32>, String> {
        match self {
            Codec::Bytes => Ok(text.bytes().map(i32::from).collect()),
            Codec::HuggingFace(model) => model
                .encode(text, false)
                .map(|e| e.get_ids().iter().map(|id| *id as i32).collect())
                .map_err(|e| format!("cannot tokenize the prompt: {e}")),
            Codec::Ids => text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<i32>().map_err(|_| format!("`{s}` is not a token id (this model reads ids: `3 17 42`)"))
                })
                .collect(),
        }
    }

    pub fn decode(&self, ids: &[i32]) -> String {
        match self {
            // Ids past the bytes (the end-of-document token) are not text.
            Codec::Bytes => {
                let bytes: Vec<u8> = ids.iter().filter_map(|id| u8::try_from(*id).ok()).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Codec::HuggingFace(model) => {
                model.decode(&ids.iter().map(|id| *id as u32).collect::<Vec<_>>(), false).unwrap_or_default()
            }
            Codec::Ids => ids.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(" "),
        }
    }
}
