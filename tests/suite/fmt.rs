//! `hybc fmt` is idempotent, keeps comments, and changes no meaning.

use hyb_compiler::fmt::format_source;
use hyb_compiler::ir;
use hyb_compiler::pipeline::check_text;

use crate::{compile, example_files, relative, root};

fn all_hyb_files() -> Vec<std::path::PathBuf> {
    let mut files = example_files();
    files.push(root().join("examples/paper/lib/mixers.hyb"));
    files.push(root().join("examples/tiny/lib/mixers.hyb"));
    files
}

#[test]
fn every_example_is_formatted_and_formatting_is_idempotent() {
    for file in all_hyb_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let once = format_source(&text).unwrap_or_else(|_| panic!("{} does not parse", relative(&file)));
        let twice = format_source(&once).expect("formatted text parses");
        assert_eq!(once, twice, "{}: formatting is not idempotent", relative(&file));
        if !file.ends_with("sketch_ascii.hyb") {
            assert_eq!(text, once, "{}: not in canonical form (run `hybc fmt`)", relative(&file));
        }
        let comments = |t: &str| t.lines().filter(|l| l.contains("//")).count();
        assert_eq!(comments(&text), comments(&once), "{}: comments lost", relative(&file));
    }
}

#[test]
fn formatting_keeps_meaning() {
    for file in example_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        if text.contains("import ") {
            continue; // imports resolve on disk; covered by the idempotence test
        }
        let before = compile(&file);
        let messy: String = text.replace("    ", "\t  ").replace(" = ", "=").replace(", ", " ,");
        let formatted = format_source(&messy).expect("messy text parses");
        let after = check_text("formatted.hyb", &formatted);
        assert_eq!(
            ir::print::print_model(before.model().expect("checks")),
            ir::print::print_model(after.model().expect("formatted checks")),
            "{}",
            relative(&file)
        );
    }
}

#[test]
fn comments_stay_beside_their_code() {
    let messy = "// header\n\n\nlet   a=3 // three\n// about the mixer\nmixer gla=gla( heads:a ,\n  // inside the call\n  expand_v: 1)\nmodel{\n// width\nd_model=128 // narrow\nlayers=gla x 2\n  // last words in the block\n}\n// the end\n";
    let formatted = format_source(messy).expect("parses");
    let expected = "// header\n\nlet a = 3 // three\n// about the mixer\n// inside the call\nmixer gla = gla(heads: a, expand_v: 1)\n\nmodel {\n    // width\n    d_model = 128 // narrow\n    layers  = gla × 2\n    // last words in the block\n}\n// the end\n";
    assert_eq!(formatted, expected);
    assert_eq!(format_source(&formatted).expect("parses"), formatted);
}

#[test]
fn long_calls_break_one_argument_per_line() {
    let text = "mixer kda = linear(heads: 8, head_dim: 64, update: delta, gate: vector(logsigmoid, normalizer: 16, low_rank: 16), short_conv: 4)\n";
    let formatted = format_source(text).expect("parses");
    assert!(formatted.contains("linear(\n    heads: 8,\n"), "{formatted}");
    assert!(formatted.lines().all(|line| line.chars().count() <= hyb_compiler::fmt::WIDTH), "{formatted}");
    assert_eq!(format_source(&formatted).expect("parses"), formatted);
}

/// The fuzzer's findings stay fixed: `.hyb` reproducers check, and a model that checks
/// prints, reports and exports, without panicking, and format idempotently; config
/// reproducers either import to text that checks, or are refused with a reason.
#[test]
fn fuzz_regressions_stay_fixed() {
    let dir = root().join("fuzz/regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().to_string();
        // The readers' reproducers (binary files) are replayed by hyb-train's tests.
        if !name.starts_with("parse_check-") && !name.starts_with("import_config-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        if name.ends_with(".hyb") {
            // What the fuzz target reads off a model that checks (its exports among them).
            let compilation = check_text("regression.hyb", &text);
            let _ = compilation.render();
            if let Some(model) = compilation.model() {
                use hyb_compiler::{export, ir, report};
                let _ = ir::print::print_model(model);
                let cost = report::report(model, 4096);
                let _ = (report::to_text(&cost), report::to_json(&cost));
                let _ = (export::fla_config(model), export::hf_layer_types(model));
                let _ = export::megatron_pattern(model, Some('M'));
            }
            if let Ok(once) = format_source(&text) {
                assert_eq!(format_source(&once).expect("parses"), once, "{name}: fmt is not idempotent");
            }
        } else {
            match hyb_compiler::import::import_config(&text, "regression.json") {
                Ok(imported) => {
                    assert!(!check_text("imported.hyb", &imported).checked.has_errors(), "{name}: {imported}")
                }
                Err(error) => assert!(!error.0.contains("internal"), "{name}: {}", error.0),
            }
        }
        count += 1;
    }
    assert!(count >= 10, "only {count} regressions");
}
