//! The model of a checkpoint, for every front end: the `.hyb` given, or the `model.hyb`
//! its run kept beside it (with the `--set`s it was trained with), or a published fla /
//! Hugging Face directory's `config.json` imported; the run directory keeps them
//! ([`keep_model`]); a run directory stands for its latest complete checkpoint
//! ([`checkpoint_of`]).

use std::path::{Path, PathBuf};

/// Where a checkpoint's model comes from.
pub enum ModelFile {
    /// The `.hyb` named by the caller.
    Given(PathBuf),
    /// The text its run kept as `model.hyb`, compiled as the file it was (so its data
    /// paths and imports resolve as they did in training), with the run's `--set`s.
    Kept { text: String, compiled_as: PathBuf, sets: Vec<String> },
}

/// A checkpoint directory as given, or a run directory (one holding `checkpoints/`):
/// its latest complete checkpoint, and whether it was one (for the caller to say so).
pub fn checkpoint_of(ckpt: &Path) -> Result<(PathBuf, bool), String> {
    let checkpoints = ckpt.join("checkpoints");
    if !checkpoints.is_dir() {
        return Ok((ckpt.to_path_buf(), false));
    }
    let latest = crate::checkpoint::latest(&checkpoints)
        .ok_or_else(|| format!("`{}` is a run directory without a complete checkpoint", ckpt.display()))?;
    Ok((latest, true))
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

/// Train-block fields a score or a logit never reads, with why: a `--set` of one on an
/// evaluation would be accepted and ignored.
const NOT_READ_BY_EVALUATION: [(&str, &str); 9] = [
    (
        "precision",
        "evaluation runs in f32 on the master weights; `precision` is how a training step stores activations",
    ),
    ("steps", "it sets the length of training"),
    ("grad_accum", "it sets how training accumulates gradients"),
    ("optimizer", "it sets how training updates the weights"),
    ("schedule", "it sets training's learning rate"),
    ("eval_every", "it sets when training evaluates"),
    ("checkpoint_every", "it sets when training saves"),
    ("keep_checkpoints", "it sets which checkpoints training keeps"),
    ("log_every", "it sets when training logs"),
];

/// Refuses a `--set` an evaluation (scores, logits) would ignore, naming why.
pub fn refuse_unread_by_evaluation(sets: &[String]) -> Result<(), String> {
    for set in sets {
        let field = set_field(set);
        let field = field.strip_prefix("train.").unwrap_or(field);
        if let Some((_, why)) = NOT_READ_BY_EVALUATION.iter().find(|(name, _)| *name == field) {
            return Err(format!("`--set {set}` would be ignored: an evaluation does not read `{field}` ({why})"));
        }
    }
    Ok(())
}

/// The field a `--set FIELD=VALUE` names, as written (`train.` kept).
pub fn set_field(set: &str) -> &str {
    set.split('=').next().unwrap_or("").trim()
}

/// The `--set`s a run kept, less those of a field `sets` sets again, then `sets`.
pub fn sets_over(kept: &[String], sets: &[String]) -> Vec<String> {
    let given: Vec<&str> = sets.iter().map(|set| set_field(set)).collect();
    kept.iter().filter(|set| !given.contains(&set_field(set))).chain(sets).cloned().collect()
}
