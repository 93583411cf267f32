//! `hybc export --format fla`: a checkpoint as a directory fla's and Hugging Face's
//! `AutoModelForCausalLM.from_pretrained` load — `config.json` (fla's config with
//! `architectures` and `torch_dtype`), `model.safetensors` in f32 or bf16 under fla's
//! names, and the tokenizer the model was trained with (`tokenizer.json`), if any.

use std::path::Path;

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::{Data, Tokenizer};
use hyb_compiler::pipeline::{self, Emit, EmitOptions};
use hyb_train::weights::Stored;

/// fla's model class for a `model_type`.
fn architecture(model_type: &str) -> Option<&'static str> {
    Some(match model_type {
        "gated_deltanet" => "GatedDeltaNetForCausalLM",
        "delta_net" => "DeltaNetForCausalLM",
        "gla" => "GLAForCausalLM",
        "hgrn" => "HGRNForCausalLM",
        "hgrn2" => "HGRN2ForCausalLM",
        "retnet" => "RetNetForCausalLM",
        "transformer" => "TransformerForCausalLM",
        _ => return None,
    })
}

/// fla's config.json for `model`, stored as `stored`.
fn config(model: &Model, stored: Stored) -> Result<String, String> {
    let text = pipeline::emit(model, Emit::FlaConfig, EmitOptions::default())
        .map_err(|error| format!("{}\n  help: {}", error.message, error.help))?;
    let mut config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).expect("the fla config is a JSON object");
    let model_type = config["model_type"].as_str().unwrap_or_default().to_string();
    if let Some(class) = architecture(&model_type) {
        config.insert("architectures".into(), serde_json::json!([class]));
    }
    config.insert("torch_dtype".into(), serde_json::json!(stored.torch_dtype()));
    Ok(serde_json::to_string_pretty(&config).expect("JSON") + "\n")
}

/// Writes `checkpoint`'s weights of `model` (compiled from `file`) into `output` as an
/// fla directory; returns what it wrote, for the one-line summary.
pub fn fla(file: &Path, model: &Model, checkpoint: &Path, output: &Path, stored: Stored) -> Result<String, String> {
    let config = config(model, stored)?;
    let slots = hyb_runtime::ParamSlot::of(model);
    let weights = hyb_train::checkpoint::load_weights(checkpoint, &slots)
        .map_err(|e| format!("{e}: not a checkpoint of this model"))?;
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        slots.iter().zip(&weights).map(|(slot, values)| (slot.name.clone(), slot.shape.clone(), &values[..])).collect();
    let bytes = hyb_train::checkpoint::to_safetensors_as(&tensors, stored);
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(output.join(name), bytes).map_err(|e| format!("cannot write into `{}`: {e}", output.display()))
    };
    std::fs::create_dir_all(output).map_err(|e| format!("cannot create `{}`: {e}", output.display()))?;
    write("config.json", config.as_bytes())?;
    write("model.safetensors", &bytes)?;
    let mut wrote = format!("config.json, model.safetensors ({} tensors, {})", slots.len(), stored.name());
    if let Some(Data::Text { tokenizer: Tokenizer::HuggingFace(path), .. }) = model.train.as_ref().map(|t| &t.data) {
        let path = file.parent().unwrap_or(Path::new(".")).join(path);
        let tokenizer = std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        write("tokenizer.json", &tokenizer)?;
        wrote.push_str(", tokenizer.json");
    }
    Ok(wrote)
}
