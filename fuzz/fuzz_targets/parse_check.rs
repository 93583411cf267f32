//! Arbitrary bytes → `check_text` → every stage read off the model, plus `hybc fmt`.
//!
//! Invariants checked beyond "does not panic, hang or run out of memory":
//! * `format_source` is idempotent and its output parses;
//! * formatting does not change the meaning: when the input checks to a model, the
//!   formatted text checks to a model with the same IR text.
#![no_main]

use hyb_compiler::{export, fmt, ir, pipeline, report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    let compilation = pipeline::check_text("fuzz.hyb", text);
    let ir_text = compilation.model().map(|model| {
        let ir_text = ir::print::print_model(model);
        let cost = report::report(model, 4096);
        let _ = report::to_text(&cost);
        let _ = report::to_json(&cost);
        let _ = export::fla_config(model);
        let _ = export::hf_layer_types(model);
        let _ = export::megatron_pattern(model, Some('M'));
        ir_text
    });
    let _ = compilation.render();

    if let Ok(formatted) = fmt::format_source(text) {
        let again = match fmt::format_source(&formatted) {
            Ok(again) => again,
            Err(errors) => panic!(
                "formatted text does not parse: {errors:?}\n--- input ---\n{text}\n--- formatted ---\n{formatted}"
            ),
        };
        assert!(
            again == formatted,
            "fmt is not idempotent\n--- input ---\n{text}\n--- formatted ---\n{formatted}\n--- formatted twice ---\n{again}"
        );
        if let Some(ir_text) = ir_text {
            let reformatted = pipeline::check_text("fuzz.hyb", &formatted);
            match reformatted.model() {
                Some(model) => assert!(
                    ir::print::print_model(model) == ir_text,
                    "fmt changed the model\n--- input ---\n{text}\n--- formatted ---\n{formatted}"
                ),
                None => panic!(
                    "formatted text no longer checks: {}\n--- input ---\n{text}\n--- formatted ---\n{formatted}\n--- diagnostics ---\n{}",
                    reformatted.checked.diagnostics.iter().find(|d| d.is_error()).map_or("", |d| d.message.as_str()),
                    reformatted.render()
                ),
            }
        }
    }
});
