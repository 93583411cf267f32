//! End-to-end tests of the front end, one binary: examples (IR and report snapshots),
//! bad files (diagnostic snapshots), parity with fla's parameters, export round trips,
//! formatting, and language details.

mod bad;
mod examples;
mod fla;
mod fmt;
mod language;

use std::path::{Path, PathBuf};

use hyb_compiler::pipeline::{self, Compilation};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

/// Loads and checks a file, with paths in diagnostics relative to the workspace root.
pub fn compile(path: &Path) -> Compilation {
    pipeline::check_path(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// Renders diagnostics with workspace-relative paths, for snapshots.
pub fn render(compilation: &Compilation) -> String {
    let prefix = format!("{}/", root().display());
    compilation.render().replace(&prefix, "")
}

/// Every example that is a model (library files without a model block excluded).
pub fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect(&root().join("examples"), &mut files);
    files.retain(|f| std::fs::read_to_string(f).is_ok_and(|text| text.contains("model {") || text.contains("import ")));
    files.retain(|f| !f.ends_with("lib/mixers.hyb"));
    files.sort();
    files
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "hyb") {
            out.push(path);
        }
    }
}

/// A snapshot name from a path: `examples/paper/gdn_r3.hyb` → `paper__gdn_r3`.
pub fn snapshot_name(path: &Path, base: &Path) -> String {
    let relative = path.strip_prefix(base).unwrap_or(path).with_extension("");
    relative.display().to_string().replace('/', "__")
}

pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(root().join("tests/suite/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings
}
