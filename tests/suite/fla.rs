//! Parity with fla: parameter names, shapes and counts equal fla 0.6.0's for the same
//! configuration (oracle files in `tests/fla/params/`, made by
//! `tools/fla_oracle/fla_params.py` from fla itself), and exports that round-trip.

use std::collections::BTreeMap;

use hyb_compiler::ir::{MixerKind, Model};
use hyb_compiler::pipeline::check_text;
use hyb_compiler::{export, import};
use serde_json::Value;

use crate::{compile, example_files, relative, render, root};

type Shapes = BTreeMap<String, Vec<u64>>;

fn oracle(stem: &str) -> (Shapes, u64, u64) {
    let path = root().join(format!("tests/fla/params/{stem}.json"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("oracle file")).expect("JSON");
    let shapes = json["params"]
        .as_array()
        .expect("params list")
        .iter()
        .map(|entry| {
            let name = entry[0].as_str().expect("name").to_string();
            let shape = entry[1].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim")).collect();
            (name, shape)
        })
        .collect();
    (
        shapes,
        json["params_total"].as_u64().expect("total"),
        json["params_non_embedding"].as_u64().expect("non-embedding"),
    )
}

fn shapes(model: &Model) -> Shapes {
    model.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect()
}

fn assert_same_params(model: &Model, stem: &str, what: &str) {
    let (expected, total, non_embedding) = oracle(stem);
    let ours = shapes(model);
    let missing: Vec<_> = expected.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<_> = ours.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what} vs fla {stem}: missing {missing:?}, extra {extra:?}");
    for (name, shape) in &expected {
        assert_eq!(&ours[name], shape, "{what} vs fla {stem}: shape of {name}");
    }
    assert_eq!(model.params.len(), expected.len(), "{what}: duplicate names");
    assert_eq!(model.params_total(), total, "{what} vs fla {stem}: total");
    assert_eq!(model.params_non_embedding(), non_embedding, "{what} vs fla {stem}: non-embedding");
}

/// Every oracle config, imported into .hyb and checked, has fla's exact parameters.
#[test]
fn imported_fla_configs_have_flas_parameters() {
    let dir = root().join("tests/fla/configs");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("configs") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().expect("stem").to_string_lossy().to_string();
        let json = std::fs::read_to_string(&path).expect("config");
        let text = import::import_config(&json, &format!("{stem}.json")).unwrap_or_else(|e| panic!("{stem}: {}", e.0));
        let compilation = check_text(&format!("{stem}.hyb"), &text);
        let model = compilation.model().unwrap_or_else(|| panic!("{stem}:\n{text}\n{}", compilation.render()));
        assert_same_params(model, &stem, &format!("import of {stem}"));
        count += 1;
    }
    assert_eq!(count, 53);
}

/// The paper grid in `examples/paper` is exactly fla's 340M models.
#[test]
fn paper_examples_have_flas_parameters() {
    let dir = root().join("examples/paper");
    for family in ["hgrn", "hgrn2", "retnet", "gla", "deltanet", "gdn"] {
        for (example, oracle_suffix) in [("pure", ""), ("r24", "_r24"), ("r12", "_r12"), ("r6", "_r6"), ("r3", "_r3")] {
            let compilation = compile(&dir.join(format!("{family}_{example}.hyb")));
            let model = compilation.model().expect("paper example checks");
            assert_same_params(model, &format!("{family}_340m{oracle_suffix}"), &format!("{family}_{example}.hyb"));
        }
    }
    let compilation = compile(&dir.join("transformer.hyb"));
    assert_same_params(compilation.model().expect("checks"), "transformer_340m", "transformer.hyb");
}

/// The released 1.3B GatedDeltaNet checkpoint's count (LAYERS.md §0), from a .hyb file.
#[test]
fn gdn_1_3b_matches_the_released_checkpoint() {
    let text = "mixer gdn = gated_deltanet(heads: 8, head_dim: 256, expand_v: 1)\n\
                model {\n    vocab = 32000\n    d_model = 2048\n    layers = gdn × 24\n}\n";
    let compilation = check_text("gdn_1_3b.hyb", text);
    assert_eq!(compilation.model().expect("checks").params_total(), 1_466_343_808);
}

/// A config in the shape of the paper's released checkpoints (early-2025 fla keys)
/// imports; the checkpoint's unused `attn.D` is not a parameter of fla 0.6 or hyb.
#[test]
fn published_checkpoint_config_imports() {
    let json = std::fs::read_to_string(root().join("tests/fla/published/gdn_340m_hybrid_3_1.json")).expect("fixture");
    let text = import::import_config(&json, "config.json").unwrap_or_else(|e| panic!("{}", e.0));
    assert!(text.contains("gdn × 24 with attn every 3"), "{text}");
    let compilation = check_text("published.hyb", &text);
    let model = compilation.model().unwrap_or_else(|| panic!("{text}\n{}", compilation.render()));
    assert_same_params(model, "gdn_340m_r3", "published 3:1 config");
}

/// Exported fla configs import back to the same model; exports that cannot be
/// expressed are refused with a reason.
#[test]
fn fla_config_exports_round_trip_or_refuse() {
    let mut exported = 0;
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("example checks");
        match export::fla_config(model) {
            Ok(config) => {
                let text = import::import_config(&config.to_string(), "exported.json")
                    .unwrap_or_else(|e| panic!("{}: re-import failed: {}", relative(&file), e.0));
                let back = check_text("reimported.hyb", &text);
                let back_model =
                    back.model().unwrap_or_else(|| panic!("{}:\n{text}\n{}", relative(&file), render(&back)));
                assert_eq!(shapes(model), shapes(back_model), "{}: parameters after the round trip", relative(&file));
                let kinds =
                    |m: &Model| m.layers.iter().map(|l| m.mixers[l.mixer].kind.clone()).collect::<Vec<MixerKind>>();
                assert_eq!(kinds(model), kinds(back_model), "{}: mixers after the round trip", relative(&file));
                assert_eq!(
                    config,
                    export::fla_config(back_model).expect("re-exports"),
                    "{}: config after the round trip",
                    relative(&file)
                );
                exported += 1;
            }
            Err(error) => {
                let name = relative(&file);
                let expected_refusal = name.contains("routing")
                    || name.contains("compose")
                    || name.contains("sketch")
                    || error.message.contains("fla's attention has no convolution")
                    // RetNet with the others' short convolution: a layer fla does not have.
                    || name.ends_with("gpu_conv_retnet.hyb")
                    // HGRN-2 with its key untied, or with one of RetNet's parts: none either.
                    || name.ends_with("hgrn2_untied.hyb")
                    || name.ends_with("hgrn2_parts.hyb");
                assert!(expected_refusal, "{name} should export to fla but: {}", error.message);
                assert!(!error.help.is_empty());
            }
        }
    }
    assert!(exported >= 40, "only {exported} examples exported");
}

#[test]
fn refusals_say_why() {
    let compilation = compile(&root().join("examples/routing/gdn_attn_heads.hyb"));
    let model = compilation.model().expect("checks");
    let error = export::fla_config(model).expect_err("routing has no fla config");
    assert!(error.message.contains("routes heads"), "{}", error.message);
    let error = export::hf_layer_types(model).expect_err("routing has no layer types");
    assert!(error.message.contains("routes heads"), "{}", error.message);

    let compilation = compile(&root().join("examples/study/baseline_conv.hyb"));
    let error = export::fla_config(compilation.model().expect("checks")).expect_err("fla's attention has no conv");
    assert!(error.message.contains("fla's attention has no convolution"), "{}", error.message);

    let compilation = compile(&root().join("examples/compose/kda.hyb"));
    let error = export::fla_config(compilation.model().expect("checks"))
        .expect_err("no fla layer is a gated delta rule per channel");
    assert!(error.message.contains("has no fla layer"), "{}", error.message);

    let compilation = compile(&root().join("examples/paper/gdn_r3.hyb"));
    let model = compilation.model().expect("checks");
    let error = export::megatron_pattern(model, None).expect_err("Megatron has no GDN symbol");
    assert!(error.message.contains("no symbol"), "{}", error.message);
}

#[test]
fn layer_type_and_pattern_exports() {
    let compilation = compile(&root().join("examples/paper/gdn_r6.hyb"));
    let model = compilation.model().expect("checks");
    let types = export::hf_layer_types(model).expect("exports");
    let types: Vec<&str> =
        types["layer_types"].as_array().expect("list").iter().map(|t| t.as_str().expect("str")).collect();
    let attention: Vec<usize> =
        types.iter().enumerate().filter(|(_, t)| **t == "full_attention").map(|(i, _)| i).collect();
    assert_eq!(attention, [5, 11, 17, 23]);
    assert_eq!(types.iter().filter(|t| **t == "linear_attention").count(), 20);
    let pattern = export::megatron_pattern(model, Some('M')).expect("exports with a symbol");
    assert_eq!(pattern, "M-M-M-M-M-*-".repeat(4));

    let config = export::fla_config(model).expect("exports");
    assert_eq!(config["model_type"], "gated_deltanet");
    assert_eq!(config["attn"]["layers"], serde_json::json!([5, 11, 17, 23]));
    assert_eq!(config["attn"]["num_heads"], 16);
    assert_eq!(config["num_heads"], 4);
    assert_eq!(config["head_dim"], 256);
    assert_eq!(config["expand_v"], 1.0);
}

#[test]
fn import_refuses_what_hyb_cannot_model() {
    let bad = [
        (r#"{"model_type": "mamba2", "hidden_size": 64}"#, "`model_type` must be one of"),
        (r#"{"model_type": "gla", "hidden_size": 64, "num_hidden_layers": 2, "hidden_act": "gelu"}"#, "hidden_act"),
        (r#"{"model_type": "gla", "hidden_size": 64, "num_hidden_layers": 2, "mystery": 1}"#, "mystery"),
        (
            r#"{"model_type": "gla", "hidden_size": 64, "num_hidden_layers": 2, "attn": {"layers": [5], "num_heads": 4}}"#,
            "layer 5",
        ),
        ("[1, 2]", "JSON object"),
    ];
    for (json, expected) in bad {
        let error = import::import_config(json, "bad.json").expect_err(json);
        assert!(error.0.contains(expected), "{json}: {}", error.0);
    }
}

/// A Hugging Face config that places attention with `layer_types` (and gives its heads
/// at the top level) imports to the same model as fla's `attn` dict.
#[test]
fn hf_layer_types_round_trip() {
    let compilation = compile(&root().join("examples/paper/gdn_r6.hyb"));
    let model = compilation.model().expect("checks");
    let mut config = export::fla_config(model).expect("exports");
    let object = config.as_object_mut().expect("object");
    object.remove("attn");
    object.insert("layer_types".into(), export::hf_layer_types(model).expect("exports")["layer_types"].clone());
    object.insert("num_attention_heads".into(), serde_json::json!(16));
    let text = import::import_config(&config.to_string(), "hf.json").unwrap_or_else(|e| panic!("{}", e.0));
    assert!(text.contains("gdn × 24 with attn every 6"), "{text}");
    let back = check_text("hf.hyb", &text);
    assert_same_params(back.model().expect("checks"), "gdn_340m_r6", "HF layer_types import");

    config.as_object_mut().expect("object").remove("num_attention_heads");
    let error = import::import_config(&config.to_string(), "hf.json").expect_err("no head count");
    assert!(error.0.contains("num_attention_heads"), "{}", error.0);
}
