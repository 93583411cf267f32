//! `hybc eval` and `hybc generate`: a trained checkpoint read back — its model from the
//! `.hyb` given, or the `model.hyb` its run wrote beside it — and scored on the eval
//! block's tasks, or asked to continue a prompt one token at a time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hyb_compiler::ir::Model;
use hyb_runtime::{Decoder, Trainer};
use hyb_train::generate::{Codec, Sampling, generate as decode};

/// Where a checkpoint's model comes from.
pub enum ModelFile {
    /// The `.hyb` named on the command line.
    Given(PathBuf),
    /// The text its run kept as `model.hyb`, compiled as the file it was (so its data
    /// paths and imports resolve as they did in training), with the run's `--set`s.
    Kept { text: String, compiled_as: PathBuf, sets: Vec<String> },
}

/// The model of a checkpoint: `file` if given, else the `model.hyb` (and `model.json`)
/// its run wrote — in the checkpoint's directory or in the run directory above it.
pub fn model_file(file: Option<&Path>, ckpt: &Path) -> Result<ModelFile, String> {
    if let Some(file) = file {
        return Ok(ModelFile::Given(file.to_path_buf()));
    }
    let dirs = [ckpt.to_path_buf(), ckpt.join(".."), ckpt.join("../..")];
    let Some(dir) = dirs.iter().find(|dir| dir.join("model.hyb").is_file()) else {
        return published_model(ckpt);
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    };
    let text = read("model.hyb")?;
    let origin: serde_json::Value =
        serde_json::from_str(&read("model.json")?).map_err(|e| format!("model.json: {e}"))?;
    let compiled_as = origin["compiled_as"].as_str().map_or_else(|| dir.join("model.hyb"), PathBuf::from);
    let sets = origin["sets"]
        .as_array()
        .map_or_else(Vec::new, |sets| sets.iter().filter_map(|s| s.as_str().map(String::from)).collect());
    Ok(ModelFile::Kept { text, compiled_as, sets })
}

/// The model of a published fla / Hugging Face directory: its `config.json` imported
/// (as `hybc import` does).
fn published_model(dir: &Path) -> Result<ModelFile, String> {
    let config = dir.join("config.json");
    let Ok(json) = std::fs::read_to_string(&config) else {
        return Err(format!(
            "no model.hyb beside `{}` or in its run directory, and no config.json in it: name the model's .hyb file (`hybc eval FILE --ckpt DIR`, `hybc generate FILE --ckpt DIR ...`)",
            dir.display()
        ));
    };
    let text = hyb_compiler::import::import_config(&json, &config.display().to_string())
        .map_err(|e| format!("cannot import `{}`: {}", config.display(), e.0))?;
    eprintln!("note: the model is `{}`, imported", config.display());
    Ok(ModelFile::Kept { text, compiled_as: dir.join("model.hyb"), sets: Vec::new() })
}

/// Writes the model's source into the run directory as `model.hyb`, and in `model.json`
/// the path it was compiled as and the `--set`s it was trained with, so the run's
/// checkpoints can be evaluated and decoded without naming the file (and after it
/// changes).
pub fn keep_model(out: &Path, text: &str, compiled_as: &Path, sets: &[String]) -> Result<(), String> {
    let absolute = std::path::absolute(compiled_as).unwrap_or_else(|_| compiled_as.to_path_buf());
    let origin = serde_json::json!({"compiled_as": absolute.display().to_string(), "sets": sets});
    std::fs::create_dir_all(out)
        .and_then(|()| std::fs::write(out.join("model.hyb"), text))
        .and_then(|()| std::fs::write(out.join("model.json"), serde_json::to_string_pretty(&origin).expect("JSON")))
        .map_err(|e| format!("cannot write the model into `{}`: {e}", out.display()))
}

/// An evaluator of `model` at `batch × seq_len` (the forward alone: no gradients or
/// optimizer state) holding the checkpoint's parameters. (Only the weights are read: a
/// checkpoint without optimizer state evaluates too.)
fn restore(
    model: &Model,
    ckpt: &Path,
    target: hyb_driver::Target,
    batch: usize,
    seq_len: usize,
) -> Result<Trainer, String> {
    let mut trainer = Trainer::evaluator(model, target, batch, seq_len).map_err(|e| e.to_string())?;
    hyb_train::checkpoint::load_weights_into(ckpt, &mut trainer).map_err(|e| e.to_string())?;
    Ok(trainer)
}

/// Scores the checkpoint on the eval block's tasks (or its training task's own); prints
/// a table and writes the scores as JSON to `json` (default `<ckpt>/eval.json`).
pub fn eval(model: &Model, ckpt: &Path, json: Option<&Path>, target: hyb_driver::Target) -> Result<(), String> {
    let seq_len = model.train.as_ref().map_or(128, |t| t.seq_len) as usize;
    let (sets, skipped) = crate::train::eval_sets(model, seq_len)?;
    for what in skipped {
        println!("note: evaluation of {what} is not supported yet; skipped");
    }
    if sets.is_empty() {
        return Err(
            "nothing to evaluate: add an eval block (`eval { mqar(pairs: 16) }`) or a train block's data".into()
        );
    }
    let base = restore(model, ckpt, target, 1, sets[0].task.seq_len())?;
    println!("| task | result | loss | breakdown |\n|---|---|---|---|");
    let mut results = Vec::new();
    for set in &sets {
        let mut evaluator = base.resized(set.batch, set.task.seq_len()).map_err(|e| e.to_string())?;
        let score = hyb_train::eval::score(&mut evaluator, set).map_err(|e| e.to_string())?;
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
/// is chosen (text for a text model; ids for a recall model).
pub fn generate(model: &Model, ckpt: &Path, request: &Request, target: hyb_driver::Target) -> Result<(), String> {
    let codec = match Codec::of(model.train.as_ref().map(|t| &t.data))? {
        // A published directory carries its tokenizer.
        Codec::Ids if ckpt.join("tokenizer.json").is_file() => Codec::from_file(&ckpt.join("tokenizer.json"))?,
        codec => codec,
    };
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
