//! Arbitrary bytes → `import_config` (fla / HF `config.json` → `.hyb`); whatever it
//! accepts must check without errors.
#![no_main]

use hyb_compiler::{import, pipeline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else { return };
    let Ok(hyb) = import::import_config(json, "fuzz.json") else { return };
    let compilation = pipeline::check_text("fuzz.hyb", &hyb);
    if let Some(first) = compilation.checked.diagnostics.iter().find(|d| d.is_error()) {
        // The first line names the error, so crashes can be grouped by it.
        panic!(
            "imported text does not check: {}\n--- config ---\n{json}\n--- imported ---\n{hyb}\n--- diagnostics ---\n{}",
            first.message,
            compilation.render()
        );
    }
    if let Some(model) = compilation.model() {
        let _ = hyb_compiler::export::fla_config(model);
        let _ = hyb_compiler::export::hf_layer_types(model);
    }
});
