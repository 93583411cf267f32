//! `hybc eval` and `hybc generate`: a trained checkpoint read back — its model from the
//! `.hyb` given, or the `model.hyb` its run wrote beside it — and scored on the eval
//! block's tasks, or asked to continue a prompt one token at a time.

use std::fmt::Write as _;
use std::path::Path;

use hyb_compiler::ir::Model;
use hyb_runtime::Decoder;
use hyb_train::generate::{Codec, Sampling, generate as decode};

pub use hyb_train::model_file::{ModelFile, model_file};

/// Scores the checkpoint on the eval block's tasks (or its training task's own); prints
/// a table and writes the scores as JSON to `json` (default `<ckpt>/eval.json`).
pub fn eval(model: &Model, ckpt: &Path, json: Option<&Path>, target: hyb_driver::Target) -> Result<(), String> {
    let (scores, skipped) = hyb_train::eval::score_checkpoint(model, ckpt, target)?;
    for what in skipped {
        println!("note: evaluation of {what} is not supported yet; skipped");
    }
    println!("| task | result | loss | breakdown |\n|---|---|---|---|");
    let mut results = Vec::new();
    for score in &scores {
        println!("| {} | {} | {:.4} | {} |", score.name, score.headline(), score.loss, score.breakdown());
        let groups: serde_json::Map<String, serde_json::Value> = score
            .by_group
            .iter()
            .map(|(name, correct, total)| (name.clone(), serde_json::json!({"correct": correct, "total": total})))
            .collect();
        let figure = if score.perplexity { "perplexity" } else { "accuracy" };
        let value = if score.perplexity { score.perplexity() } else { score.accuracy() };
        let mut result = serde_json::json!({
            "task": score.name, figure: value, "loss": score.loss, "tokens": score.tokens,
            "correct": score.correct, "total": score.total, "by_group": groups,
        });
        if let Some(bpb) = score.bits_per_byte {
            result["bits_per_byte"] = bpb.into();
        }
        results.push(result);
    }
    let step = hyb_train::checkpoint::saved_step(ckpt);
    let report = serde_json::json!({"checkpoint": ckpt.display().to_string(), "step": step, "tasks": results});
    let path = json.map_or_else(|| ckpt.join("eval.json"), Path::to_path_buf);
    std::fs::write(&path, serde_json::to_string_pretty(&report).expect("JSON"))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    println!("scores: {}", path.display());
    Ok(())
}

/// What `hybc generate` was asked for.
pub struct Request<'a> {
    pub prompt: &'a str,
    pub tokens: usize,
    pub sampling: Sampling,
    /// Generation stops once the continuation contains one of these (it is printed).
    pub stop: &'a [String],
}

/// Feeds the prompt through the checkpoint's decoder and prints the continuation as it
/// is chosen (text for a text model; ids for a recall model). The end-of-document
/// token, where the model's text has one, ends it (unprinted).
pub fn generate(model: &Model, ckpt: &Path, request: &Request, target: hyb_driver::Target) -> Result<(), String> {
    let codec = Codec::of_checkpoint(model, ckpt)?;
    let prompt = encoded(&codec, model, request.prompt)?;
    let mut decoder = loaded_decoder(model, ckpt, target, 1, prompt.len() + request.tokens)?;
    let end = codec.end_of_document().map(|id| id as i32);
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut emitted = codec.decode(&prompt);
    let _ = write!(out, "{emitted}");
    let started = std::time::Instant::now();
    let mut sequence = prompt.clone();
    let mut continuation = String::new();
    let tokens = decode(&mut decoder, &prompt, request.tokens, &request.sampling, &mut |token| {
        if Some(token) == end {
            return false;
        }
        if matches!(codec, Codec::Ids) {
            let _ = write!(out, " {token}");
            let _ = write!(continuation, " {token}");
        } else {
            // The whole text decoded each time, so spacing between tokens and characters
            // of several bytes come out as the tokenizer writes them, once whole.
            sequence.push(token);
            let text = codec.decode(&sequence);
            if let Some(new) = text.strip_prefix(emitted.as_str()).filter(|n| !n.ends_with('\u{FFFD}')) {
                let _ = write!(out, "{new}");
                continuation.push_str(new);
                emitted = text;
            }
        }
        let _ = out.flush();
        !request.stop.iter().any(|stop| continuation.contains(stop.as_str()))
    })
    .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = writeln!(out);
    eprintln!(
        "{} prompt + {} new tokens in {seconds:.2} s ({:.0} tokens/s)",
        prompt.len(),
        tokens.len(),
        (prompt.len() + tokens.len()) as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// A prompt's ids, each checked against the model's vocabulary.
fn encoded(codec: &Codec, model: &Model, prompt: &str) -> Result<Vec<i32>, String> {
    let ids = codec.encode(prompt)?;
    let vocab = model.config.vocab as i32;
    if let Some(bad) = ids.iter().find(|t| !(0..vocab).contains(*t)) {
        return Err(format!("the prompt's token {bad} is outside the model's vocabulary [0, {vocab})"));
    }
    Ok(ids)
}

/// A decoder of `batch` sequences up to `max_len` tokens with the checkpoint's weights.
fn loaded_decoder(
    model: &Model,
    ckpt: &Path,
    target: hyb_driver::Target,
    batch: usize,
    max_len: usize,
) -> Result<Decoder, String> {
    let mut decoder = Decoder::for_target(model, target, batch, max_len).map_err(|e| e.to_string())?;
    hyb_train::checkpoint::load_weights_into_decoder(ckpt, &mut decoder).map_err(|e| e.to_string())?;
    Ok(decoder)
}

/// `hybc generate --prompts FILE`: every prompt of the file (one per line, empty lines
/// skipped) continued, `batch` decoded at once, each as a JSON line on stdout in the
/// file's order: `{"prompt", "completion", "new_tokens"}`. A continuation ends at
/// `tokens`, the end-of-document token (left out) or a stop text (kept).
pub fn generate_file(
    model: &Model,
    ckpt: &Path,
    file: &Path,
    batch: usize,
    request: &Request,
    target: hyb_driver::Target,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read prompts `{}`: {e}", file.display()))?;
    let prompts: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    if prompts.is_empty() {
        return Err(format!("`{}` holds no prompt (one per line)", file.display()));
    }
    let codec = Codec::of_checkpoint(model, ckpt)?;
    let ids = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| encoded(&codec, model, p).map_err(|e| format!("{}:{}: {e}", file.display(), i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
    let rows = batch.clamp(1, prompts.len());
    let mut decoder = loaded_decoder(model, ckpt, target, rows, longest + request.tokens)?;
    let end = codec.end_of_document().map(|id| id as i32);
    let text_of = |tokens: &[i32]| match codec {
        Codec::Ids => tokens.iter().map(|t| format!(" {t}")).collect::<String>(),
        _ => codec.decode(tokens),
    };
    let done = |new: &[i32]| {
        new.last() == end.as_ref() || {
            let text = text_of(new);
            request.stop.iter().any(|stop| text.contains(stop.as_str()))
        }
    };
    let started = std::time::Instant::now();
    let outputs = hyb_train::generate::generate_batch(&mut decoder, &ids, request.tokens, &request.sampling, &done)
        .map_err(|e| e.to_string())?;
    let mut new_total = 0;
    for (prompt, new) in prompts.iter().zip(&outputs) {
        let kept = if new.last() == end.as_ref() { &new[..new.len() - 1] } else { &new[..] };
        new_total += new.len();
        let line = serde_json::json!({"prompt": prompt, "completion": text_of(kept), "new_tokens": kept.len()});
        println!("{line}");
    }
    eprintln!(
        "{} prompts, {new_total} new tokens in {:.2} s, {rows} at a time",
        prompts.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
