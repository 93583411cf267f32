//! Parse + check throughput, and the two stages read off every model.
//!
//! * `check/example/<file>`: `check_path` (read from disk, parse, imports, sema) on the
//!   largest `.hyb` under `examples/`, picked by size when the bench starts. If there
//!   is none yet, a 24-layer file written to a temporary directory stands in for it.
//! * `check/synthetic_1024_listed`: `check_text` on a 1024-layer schedule spelled out
//!   name by name (the parser's worst realistic case).
//! * `check/synthetic_1024_compact`: the same layer count as `(...) × 128`.
//! * `print_model/*`, `report/*`: `ir::print::print_model` and `report::report` on those
//!   models.
//!
//! Run: `cargo bench -p hyb-compiler --bench check`; figures are in `benches/README.md`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use hyb_compiler::ir::Model;
use hyb_compiler::pipeline::{Compilation, check_path, check_text};
use hyb_compiler::{ir, report};

const MIXERS: &str = "\
mixer gdn  = gated_deltanet(heads: 4, head_dim: 64, short_conv: 4)
mixer gla  = gla(heads: 4)
mixer attn = attention(heads: 8, kv_heads: 2, rope: 10000)
mixer swa  = attention(heads: 8, window: 512)
";

/// Layer `i` of the synthetic schedule: a period-8 pattern of four mixers.
fn synthetic_layer(i: usize) -> &'static str {
    match i % 8 {
        7 => "attn",
        3 => "swa",
        i if i % 2 == 1 => "gla",
        _ => "gdn",
    }
}

fn synthetic_listed(layers: usize) -> String {
    let names: Vec<&str> = (0..layers).map(synthetic_layer).collect();
    format!(
        "// synthetic: {layers} layers spelled out\n{MIXERS}\nmodel {{\n    vocab   = 32000\n    d_model = 512\n    layers  = {}\n}}\n",
        names.join(", ")
    )
}

fn synthetic_compact(layers: usize) -> String {
    let period: Vec<&str> = (0..8).map(synthetic_layer).collect();
    format!(
        "// synthetic: {layers} layers as a repeated period\n{MIXERS}\nmodel {{\n    vocab   = 32000\n    d_model = 512\n    layers  = ({}) × {}\n}}\n",
        period.join(", "),
        layers / 8
    )
}

fn hyb_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            hyb_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hyb") {
            out.push(path);
        }
    }
}

/// The largest `.hyb` under `examples/`, or a 24-layer stand-in written to a temporary
/// directory when there is none.
fn largest_example() -> (PathBuf, bool) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    hyb_files(&examples, &mut files);
    let largest = files.into_iter().filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p))).max();
    match largest {
        Some((_, path)) => (path, false),
        None => {
            let dir = std::env::temp_dir().join(format!("hyb-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temporary directory");
            let path = dir.join("standin_24.hyb");
            let text = format!(
                "// stand-in: examples/ has no .hyb files yet\n{MIXERS}\nmodel {{\n    vocab   = 32000\n    d_model = 1024\n    layers  = gdn × 24 with attn every 4\n}}\n"
            );
            std::fs::write(&path, text).expect("write the stand-in example");
            (path, true)
        }
    }
}

fn expect_model<'c>(what: &str, compilation: &'c Compilation) -> &'c Model {
    match compilation.model() {
        Some(model) => model,
        None => panic!("{what} does not check:\n{}", compilation.render()),
    }
}

fn benches(c: &mut Criterion) {
    let (example, standin) = largest_example();
    let example_name = example.file_name().unwrap().to_string_lossy().into_owned();
    let example_size = std::fs::metadata(&example).map(|m| m.len()).unwrap_or(0);
    let listed = synthetic_listed(1024);
    let compact = synthetic_compact(1024);

    let example_check = check_path(&example).expect("read the example");
    let example_model = expect_model(&example_name, &example_check);
    let listed_check = check_text("synthetic_1024_listed.hyb", &listed);
    let listed_model = expect_model("synthetic_1024_listed", &listed_check);
    let compact_check = check_text("synthetic_1024_compact.hyb", &compact);
    let compact_model = expect_model("synthetic_1024_compact", &compact_check);
    assert_eq!(listed_model.layers.len(), 1024);
    assert_eq!(compact_model.layers.len(), 1024);
    eprintln!(
        "example: {} ({} bytes, {} layers{}); synthetic listed: {} bytes; compact: {} bytes",
        example.display(),
        example_size,
        example_model.layers.len(),
        if standin { ", stand-in: no examples yet" } else { "" },
        listed.len(),
        compact.len()
    );

    let mut group = c.benchmark_group("check");
    group.bench_function(format!("example/{example_name}"), |b| {
        b.iter(|| check_path(black_box(&example)).expect("read the example"))
    });
    group.bench_function("synthetic_1024_listed", |b| {
        b.iter(|| check_text(black_box("synthetic_1024_listed.hyb"), black_box(&listed)))
    });
    group.bench_function("synthetic_1024_compact", |b| {
        b.iter(|| check_text(black_box("synthetic_1024_compact.hyb"), black_box(&compact)))
    });
    group.finish();

    let models: [(&str, &Model); 2] =
        [(&format!("example/{example_name}"), example_model), ("synthetic_1024", listed_model)];
    let mut group = c.benchmark_group("print_model");
    for (name, model) in models {
        group.bench_function(name, |b| b.iter(|| ir::print::print_model(black_box(model))));
    }
    group.finish();
    let mut group = c.benchmark_group("report");
    for (name, model) in models {
        group.bench_function(name, |b| b.iter(|| report::report(black_box(model), black_box(4096))));
    }
    group.finish();

    if standin {
        let _ = std::fs::remove_dir_all(example.parent().unwrap());
    }
}

criterion_group!(check, benches);
criterion_main!(check);
