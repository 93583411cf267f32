//! `cargo test` runs the Python package's tests: pytest over `python/tests/` against the
//! extension module this build made (cargo builds the crate's cdylib before its tests),
//! laid beside the package's Python files in a temporary directory on `PYTHONPATH`, with
//! the build's `hybc` for the tests that compare with the command line. It needs
//! `python3` with NumPy and pytest (`scripts/setup.sh` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`: this test binary lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// A directory holding the package `hyb`: its Python files and the extension module.
fn package(profile: &Path) -> PathBuf {
    // `cargo test` leaves the cdylib in `deps/` (beside this binary); `cargo build` also
    // copies it up.
    let name = format!("{}_hyb{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let library = [profile.join("deps").join(&name), profile.join(&name)]
        .into_iter()
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no extension module {name} in {} or its deps/", profile.display()));
    let root = std::env::temp_dir().join(format!("hyb-python-{}", std::process::id()));
    let package = root.join("hyb");
    std::fs::create_dir_all(&package).expect("a temporary directory");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("hyb");
    for entry in std::fs::read_dir(&sources).expect("python/hyb") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, package.join(path.file_name().expect("a name"))).expect("copy");
        }
    }
    // A link, not a copy: a debug build's module is some 300 MB.
    #[cfg(unix)]
    std::os::unix::fs::symlink(&library, package.join("_hyb.abi3.so")).expect("link the extension module");
    #[cfg(not(unix))]
    std::fs::copy(&library, package.join("_hyb.abi3.so")).expect("copy the extension module");
    root
}

#[test]
fn pytest() {
    let profile = profile_dir();
    let root = package(&profile);
    let mut command = Command::new("python3");
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    command.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"]).arg(tests);
    // Run from the package's directory: `python -m` puts the working directory first on
    // the path, and python/ itself holds `hyb` without its module.
    command.current_dir(&root).env("PYTHONPATH", &root);
    let hybc = profile.join("hybc");
    if hybc.is_file() {
        command.env("HYBC", hybc);
    }
    let output = command.output().expect("python3 runs (scripts/setup.sh installs NumPy and pytest)");
    let _ = std::fs::remove_dir_all(&root);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "pytest failed (is pytest installed? scripts/setup.sh):\n{stdout}{stderr}");
}
