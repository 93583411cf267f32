//! Language details: the design sketch checks as written, `×` and `x` are the same,
//! schedules expand as documented, and each mixer's printed `linear(...)` denotes it.

use hyb_compiler::ir::{self, MixerKind};
use hyb_compiler::pipeline::check_text;

use crate::{compile, example_files, relative, render, root};

#[test]
fn the_design_sketch_checks_with_either_times_sign() {
    let unicode = compile(&root().join("examples/sketch.hyb"));
    let ascii = compile(&root().join("examples/sketch_ascii.hyb"));
    let unicode_ir = ir::print::print_model(unicode.model().unwrap_or_else(|| panic!("{}", render(&unicode))));
    let ascii_ir = ir::print::print_model(ascii.model().unwrap_or_else(|| panic!("{}", render(&ascii))));
    assert_eq!(unicode_ir, ascii_ir);
    assert!(std::fs::read_to_string(root().join("examples/sketch_ascii.hyb")).expect("file").contains("gdn x 3"));
}

/// The sketch of the language design (shared/design/LANGUAGE.md), verbatim.
const DESIGN_SKETCH: &str = r#"// GatedDeltaNet hybrid, 3:1, 340M scale
model {
    vocab   = 32000
    d_model = 1024
    mlp     = swiglu(ratio: 4)
    layers  = (gdn × 3, attn) × 6
}

mixer gdn  = gated_deltanet(heads: 4, head_dim: 256)
mixer attn = attention(heads: 16, rope: 10000)

// a mixer composed from parts: delta rule with a per-channel gate
mixer kda = linear(heads: 8, head_dim: 128, update: delta,
                   gate: vector(logsigmoid, normalizer: 16), short_conv: 4, qk: l2norm)

// head-wise routing: 12 linear heads and 4 softmax heads in one layer
mixer duo = heads(gdn: 12, attn: 4, combine: concat)

train {
    data      = mqar(vocab: 8192, seq_len: 256, pairs: 16)
    seq_len   = 256
    batch     = 64
    steps     = 2000
    optimizer = adamw(lr: 1e-3, betas: (0.9, 0.95), weight_decay: 0.1, clip: 1.0)
    schedule  = cosine(warmup: 100, min_lr: 0.1)
}

eval {
    mqar(seq_len: 512, pairs: 64)
    perplexity(data: text("valid.txt"))
}
"#;

#[test]
fn the_design_sketch_checks_verbatim() {
    for text in [DESIGN_SKETCH.to_string(), DESIGN_SKETCH.replace('×', "x")] {
        let compilation = check_text("sketch.hyb", &text);
        assert!(compilation.checked.diagnostics.is_empty(), "{}", compilation.render());
        let model = compilation.model().expect("checks");
        assert_eq!(model.layers.len(), 24);
        assert_eq!(model.mixers.len(), 2, "kda and duo are declared, checked, and unused");
    }
}

fn layer_names(text: &str) -> Vec<String> {
    let compilation = check_text("schedule.hyb", text);
    let model = compilation.model().unwrap_or_else(|| panic!("{text}\n{}", compilation.render()));
    model.layers.iter().map(|l| model.mixers[l.mixer].name.clone()).collect()
}

fn schedule(layers: &str) -> Vec<String> {
    layer_names(&format!("let ratio = 3\nmodel {{\n    d_model = 64\n    layers = {layers}\n}}\n"))
}

#[test]
fn schedules_expand_as_documented() {
    assert_eq!(schedule("(gdn × 2, attn) × 2"), ["gdn", "gdn", "attn", "gdn", "gdn", "attn"]);
    assert_eq!(schedule("gdn x 2, attn * 1, ((gla))"), ["gdn", "gdn", "attn", "gla"]);
    let names = layer_names("mixer x3 = gla\nmodel {\n    d_model = 64\n    layers = gdn x2, attn×1, x3\n}\n");
    assert_eq!(names, ["gdn", "gdn", "attn", "x3"], "`x2` repeats; `x3` alone is a name");
    assert_eq!(schedule("gdn × 6 with attn every ratio"), ["gdn", "gdn", "attn", "gdn", "gdn", "attn"]);
    assert_eq!(schedule("gdn × 6 with attn every 3 offset 0"), ["attn", "gdn", "gdn", "attn", "gdn", "gdn"]);
    assert_eq!(schedule("gdn × 4 with attn at [0, 2], gla at [3]"), ["attn", "gdn", "attn", "gla"]);
    assert_eq!(schedule("gla(heads: 2) × 2").len(), 2);
}

#[test]
fn lets_bind_late_and_importers_override() {
    // `ratio` is used before it is defined.
    let names = layer_names(
        "model {\n    d_model = 64\n    layers = base\n}\nlet base = gdn × 4 with attn every ratio\nlet ratio = 2\n",
    );
    assert_eq!(names, ["gdn", "attn", "gdn", "attn"]);
    // The paper grid: gla_r6.hyb sets `linear` and `ratio` for the shared base.
    let compilation = compile(&root().join("examples/paper/gla_r6.hyb"));
    let model = compilation.model().expect("checks");
    let attention: Vec<usize> = (0..24).filter(|i| model.mixer_of(*i).kind.is_attention()).collect();
    assert_eq!(attention, [5, 11, 17, 23]);
    assert_eq!(model.mixer_of(0).name, "gla");
}

/// Each linear mixer prints as a `linear(...)` call; checking that call gives back the
/// identical description (the IR text is valid .hyb).
#[test]
fn printed_linear_mixers_denote_themselves() {
    let mut checked = 0;
    for file in example_files() {
        let compilation = compile(&file);
        let model = compilation.model().expect("example checks");
        for (_, mixer) in model.mixers.iter() {
            let MixerKind::Linear(linear) = &mixer.kind else {
                continue;
            };
            let text = format!(
                "mixer m = {}\nmodel {{\n    d_model = {}\n    layers = m\n}}\n",
                ir::print::linear_text(linear, 0),
                model.config.d_model
            );
            let back = check_text("printed.hyb", &text);
            let back_model = back.model().unwrap_or_else(|| panic!("{}: {text}\n{}", relative(&file), back.render()));
            assert_eq!(&back_model.mixer_of(0).kind, &mixer.kind, "{}: {}", relative(&file), mixer.name);
            checked += 1;
        }
    }
    assert!(checked >= 40);
}

#[test]
fn presets_are_flas_config_defaults() {
    // gla(heads: 4) in a model of width 1024 is fla's GLAConfig(num_heads=4, hidden_size=1024).
    let text = "model {\n    d_model = 1024\n    layers = gla(heads: 4) × 24\n}\n";
    let compilation = check_text("gla.hyb", text);
    assert_eq!(compilation.model().expect("checks").params_total(), 374_475_776);
    // hgrn2 with only `heads` derives expand_ratio = d / heads, as fla does without expand_ratio.
    let text = "model {\n    d_model = 1024\n    layers = hgrn2(heads: 8) × 24\n}\n";
    assert_eq!(check_text("hgrn2.hyb", text).model().expect("checks").params_total(), 373_916_672);
}

#[test]
fn warnings_do_not_stop_a_model() {
    let text = "mixer gdn = gated_deltanet(heads: 2, head_dim: 32)\nmodel {\n    vocab = 512\n    d_model = 64\n    layers = gdn × 2\n}\neval {\n    mqar(seq_len: 128, pairs: 8)\n}\n";
    let compilation = check_text("warn.hyb", text);
    assert!(compilation.model().is_some());
    assert_eq!(compilation.checked.diagnostics.len(), 1);
    assert!(compilation.render().contains("warning: this eval measures recall"));
}

#[test]
fn importers_settle_clashes_and_diamonds_are_no_clash() {
    let settled = compile(&root().join("tests/imports/settled.hyb"));
    let model = settled.model().unwrap_or_else(|| panic!("{}", render(&settled)));
    let attention: Vec<usize> = (0..8).filter(|i| model.mixer_of(*i).kind.is_attention()).collect();
    assert_eq!(attention, [3, 7], "the importer's ratio 4 wins");
    let diamond = compile(&root().join("tests/imports/diamond.hyb"));
    let model = diamond.model().unwrap_or_else(|| panic!("{}", render(&diamond)));
    assert!(model.mixer_of(1).kind.is_attention());
}

#[test]
fn none_and_data_paths_resolve_like_other_values() {
    let text = "let w = none\nmodel {\n    d_model = 64\n    layers = attention(heads: 2, window: w) × 2\n}\n";
    let compilation = check_text("none.hyb", text);
    assert!(compilation.model().is_some(), "{}", compilation.render());
    let compilation = compile(&root().join("examples/tiny/text_gla.hyb"));
    let train = compilation.model().expect("checks").train.clone().expect("train block");
    let hyb_compiler::ir::train::Data::Text { path, .. } = train.data else { panic!("text data") };
    assert_eq!(path, root().join("examples/tiny/data/tiny.txt"), "relative to the .hyb file");
}

/// `text(...)` takes the field of a JSON Lines or Parquet file's documents and an
/// end-of-document id; a field on a plain text file is an error at the argument.
#[test]
fn document_sources_take_a_field_and_an_end_of_document_id() {
    use hyb_compiler::ir::train::Data;
    let source = |data: &str| {
        format!(
            "model {{\n    vocab = 300\n    d_model = 64\n    layers = gla × 2\n}}\ntrain {{\n    data = {data}\n    seq_len = 64\n}}\n"
        )
    };
    let compilation = check_text("docs.hyb", &source("text(\"docs.jsonl\", field: \"body\", eod: 0)"));
    let model = compilation.model().unwrap_or_else(|| panic!("{}", compilation.render()));
    let Data::Text { field, eod, .. } = &model.train.as_ref().expect("a train block").data else { panic!("text") };
    assert_eq!((field.as_str(), *eod), ("body", Some(0)));
    let compilation = check_text("docs.hyb", &source("text(\"docs.parquet\")"));
    let model = compilation.model().unwrap_or_else(|| panic!("{}", compilation.render()));
    let Data::Text { field, eod, .. } = &model.train.as_ref().expect("a train block").data else { panic!("text") };
    assert_eq!((field.as_str(), *eod), ("text", None), "the defaults");
    let plain = check_text("plain.hyb", &source("text(\"corpus.txt\", field: \"body\")"));
    assert!(plain.model().is_none());
    let rendered = plain.render();
    assert!(rendered.contains("`field` names the text of a JSON Lines or Parquet file's documents"), "{rendered}");
    assert!(rendered.contains("plain.hyb:7:31"), "at the argument: {rendered}");
    let eod = check_text("eod.hyb", &source("text(\"corpus.txt\", eod: 0)")).render();
    assert!(eod.contains("`eod` ends each of a JSON Lines or Parquet file's documents"), "{eod}");
}

/// Recall is evaluated on batches of a seed of its own; a training run of that seed
/// would train on them, so the seed is refused.
#[test]
fn the_evaluation_seed_is_not_a_training_seed() {
    let source = |seed: u64| {
        format!(
            "model {{\n    vocab = 300\n    d_model = 64\n    layers = gla × 2\n}}\ntrain {{\n    data = mqar(seq_len: 64)\n    seed = {seed}\n}}\n"
        )
    };
    assert!(check_text("seed.hyb", &source(hyb_compiler::ir::train::EVAL_SEED - 1)).model().is_some());
    let refused = check_text("seed.hyb", &source(hyb_compiler::ir::train::EVAL_SEED));
    assert!(refused.model().is_none());
    assert!(refused.render().contains("seed 3886112493 is the seed of the evaluation batches"), "{}", refused.render());
    let sweep = format!("{}sweep {{\n    seeds = [1, 3886112493]\n}}\n", source(1));
    let refused = check_text("sweep.hyb", &sweep);
    assert!(refused.render().contains("seed 3886112493 is the seed of the evaluation batches"), "{}", refused.render());
}

/// Mixers of an imported library are checked where used: the 340M library's hgrn2
/// (expand_ratio 128) does not stop a 64-wide model that does not use it.
#[test]
fn library_mixers_are_checked_where_used() {
    let dir = root().join("examples");
    let mut loader = hyb_compiler::source::MemoryLoader::default();
    let library = std::fs::read_to_string(dir.join("paper/lib/mixers.hyb")).expect("library");
    loader.files.insert(dir.join("paper/lib/mixers.hyb"), library);
    let check = |layers: &str| {
        let text = format!("import \"paper/lib/mixers.hyb\"\nmodel {{\n    d_model = 64\n    layers = {layers}\n}}\n");
        let path = dir.join("small.hyb");
        let mut files = hyb_compiler::source::MemoryLoader::default();
        files.files.clone_from(&loader.files);
        files.files.insert(path.clone(), text);
        let mut sources = hyb_compiler::source::SourceMap::new(Box::new(files));
        let root_file = sources.load(&path).expect("in memory");
        let checked = hyb_compiler::sema::check(&mut sources, root_file);
        (checked.model.is_some(), sources.render(&checked.diagnostics))
    };
    let (ok, text) = check("(gla × 2, gdn)");
    assert!(ok, "{text}");
    let (ok, text) = check("(gla × 2, hgrn2)");
    assert!(!ok && text.contains("`expand_ratio` must be at most 64"), "{text}");
}

/// `--set name=value` (hybc train / eval / sweep): a train or eval field laid over the
/// file's, checked as the file's own, every mistake located in the `--set` text.
#[test]
fn settings_override_fields_and_are_checked_like_the_file() {
    let file = "mixer attn = attention(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = attn\n}\n\
                train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n steps = 50\n}\n\
                eval {\n mqar(seq_len: 32, pairs: 4)\n}\n";
    let check = |text: &str, sets: &[&str]| {
        let (mut sources, root_file) = hyb_compiler::source::SourceMap::single("set.hyb", text);
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let checked = hyb_compiler::sema::check_with(&mut sources, root_file, &sets);
        (checked.model, sources.render(&checked.diagnostics))
    };
    let (model, text) = check(file, &["steps=7", "optimizer=adamw(lr: 2e-3)", "batch=3", "eval.batch=5"]);
    let model = model.unwrap_or_else(|| panic!("{text}"));
    let train = model.train.as_ref().expect("a train block");
    assert_eq!((train.steps, train.batch, train.optimizer.lr), (7, 3, 2e-3));
    assert_eq!(model.eval.as_ref().expect("an eval block").batch, 5);
    assert_eq!(train.keep_checkpoints, None, "every checkpoint is kept by default");
    let (model, text) = check(
        file,
        &["optimizer=adamw(lr: -1)", "stpes=3", "steps=1 2", "model.vocab=8", "seed=1", "seed=2", "keep_checkpoints=0"],
    );
    assert!(model.is_none());
    for expected in [
        "<--set>:1:21",
        "`lr` must be at least",
        "unknown train or eval field `stpes`",
        "did you mean `steps`?",
        "expected the end of the setting",
        "`--set` cannot change the `model` block",
        "`seed` is set twice",
        "`keep_checkpoints` must be at least 1",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    // No train block: made from the settings only with its data.
    let bare = "mixer attn = attention(heads: 2)\nmodel {\n vocab = 64\n d_model = 32\n layers = attn\n}\n";
    let (model, text) = check(bare, &["steps=2"]);
    assert!(model.is_none() && text.contains("has no train block for `--set steps` to change"), "{text}");
    let (model, text) = check(bare, &["steps=2", "data=mqar(vocab: 64, seq_len: 32, pairs: 4)"]);
    assert_eq!(model.unwrap_or_else(|| panic!("{text}")).train.expect("made by --set").steps, 2);
}

/// The sweep protocol's settings as sema reads them: a log grid of learning rates (to
/// three digits), three seeds by default with a search and the search seed past them,
/// the budget in tokens as steps, the plateau stop; the run count per cell.
#[test]
fn the_sweep_protocol_reads_as_written() {
    let text = "mixer gla = gla(heads: 2)\nmixer attn = attention(heads: 2)\nlet linear = gla\n\
                model {\n vocab = 64\n d_model = 32\n layers = linear × 2\n}\n\
                train {\n data = mqar(vocab: 64, seq_len: 32, pairs: 4)\n batch = 4\n grad_accum = 2\n eval_every = 5\n}\n\
                sweep {\n linear = [gla, attn]\n lr = log_grid(from: 1e-3, to: 1e-1, points: 3)\n tokens = 2e4\n\
                stop = plateau(min_delta: 0.01)\n}\n";
    let compilation = check_text("protocol.hyb", text);
    let model = compilation.model().unwrap_or_else(|| panic!("{}", render(&compilation)));
    let sweep = model.sweep.as_ref().expect("a sweep");
    assert_eq!(sweep.lrs, vec![1e-3, 1e-2, 1e-1]);
    assert_eq!((sweep.test_seeds(), sweep.search_seeds()), (vec![0, 1, 2], vec![3]));
    assert_eq!(sweep.plateau, Some(ir::train::Plateau { patience: 3, min_delta: 0.01 }));
    let train = model.train.as_ref().expect("a train block");
    // 20 000 tokens at 4 × 32 × 2 = 256 a step: 78.125, rounded up.
    assert_eq!((sweep.tokens, ir::train::budget_steps(20_000, train)), (Some(20_000), 79));
    assert_eq!(sweep.len(), 2 * (3 + 3), "two cells, each three rates and three seeds");
    let twice = check_text("twice.hyb", &text.replace(" tokens = 2e4\n", " tokens = 2e4\n search_seeds = 2\n"));
    let twice = twice.model().and_then(|m| m.sweep.clone()).unwrap_or_else(|| panic!("{}", render(&twice)));
    assert_eq!(twice.search_seeds(), vec![3, 4]);
    assert_eq!(twice.len(), 2 * (3 * 2 + 3), "two cells, each three rates on two search seeds and three seeds");
    let plain = check_text("plain.hyb", &text.replace(" lr = log_grid(from: 1e-3, to: 1e-1, points: 3)\n", ""));
    let plain = plain.model().and_then(|m| m.sweep.clone()).expect("checks");
    assert!(plain.test_seeds().is_empty() && !plain.searches() && plain.held_out(), "the plateau reads held-out");
    assert_eq!(plain.len(), 2);
}
