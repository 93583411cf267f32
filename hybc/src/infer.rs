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
        results.push(serde_json::json!({
            "task": score.name, figure: value, "loss": score.loss,
            "correct": score.correct, "total": score.total, "by_group": groups,
        }));
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
/// is chosen (text for a text model; ids for a recall model).
pub fn generate(model: &Model, ckpt: &Path, request: &Request, target: hyb_driver::Target) -> Result<(), String> {
    let codec = Codec::of_checkpoint(model, ckpt)?;
    let prompt = codec.encode(request.prompt)?;
    let vocab = model.config.vocab as i32;
    if let Some(bad) = prompt.iter().find(|t| !(0..vocab).contains(*t)) {
        return Err(format!("the prompt's token {bad} is outside the model's vocabulary [0, {vocab})"));
    }
    let mut decoder =
        Decoder::for_target(model, target, 1, prompt.len() + request.tokens).map_err(|e| e.to_string())?;
    let weights = hyb_train::checkpoint::load_weights(ckpt, decoder.params()).map_err(|e| e.to_string())?;
    decoder.set_params(weights).map_err(|e| e.to_string())?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut emitted = codec.decode(&prompt);
    let _ = write!(out, "{emitted}");
    let started = std::time::Instant::now();
    let mut sequence = prompt.clone();
    let mut continuation = String::new();
    let tokens = decode(&mut decoder, &prompt, request.tokens, &request.sampling, &mut |token| {
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
