//! The Python module `hyb._hyb`, which the package `hyb` (`python/hyb/`) re-exports:
//! hyb's library crates seen from Python.
//!
//! - [`model`]: a `.hyb` file or text compiled — its report, IR and every `--emit`
//!   stage; the parameters' names and shapes.
//! - [`trainer`]: a model's compiled step on a target — steps on NumPy token ids, the
//!   logits, parameters by fla name as NumPy arrays, generation, checkpoints.
//! - [`jobs`]: what the command line does with a file or a checkpoint — `train` (with a
//!   progress callback), `evaluate`, `load`, `generate` — through the same library
//!   functions (`hyb_train::job`, `hyb_train::model_file`, `hyb_train::eval`).
//! - [`sweep`]: `sweep` — a file's sweep as `hybc sweep` runs it (the `hybc` library),
//!   its progress to a callback, its finished runs and report back.
//! - [`tokenizer`]: text ↔ ids as a model was trained (for generation and lm-eval).
//!
//! Every failure is a `hyb.HybError` whose message is the text `hybc` would print: a
//! file's diagnostics rendered as rustc renders its errors, or the runtime's message.
//!
//! **Architecture Invariant:** no logic of its own beyond converting values: what the
//! command line and Python share lives in the library crates, so both do the same.

use pyo3::prelude::*;

mod arrays;
mod jobs;
mod model;
mod sweep;
mod tokenizer;
mod trainer;

pyo3::create_exception!(
    hyb,
    HybError,
    pyo3::exceptions::PyException,
    "A hyb error: the message is the diagnostic text hybc prints."
);

/// A `HybError` with `message`.
pub(crate) fn error(message: impl Into<String>) -> PyErr {
    HybError::new_err(message.into())
}

/// `cpu`, `cuda`, `cuda:sm_90a`; none: the model's train block's target, else the CPU.
pub(crate) fn target(text: Option<&str>, model: &hyb_compiler::ir::Model) -> PyResult<hyb_driver::Target> {
    match text {
        Some(text) => text.parse().map_err(|e| error(format!("target `{text}`: {e}"))),
        None => Ok(model.train.as_ref().and_then(|train| train.target).unwrap_or(hyb_driver::Target::Cpu)),
    }
}

/// The target a job of `model` runs on (see [`target`]), refused with the located
/// diagnostic where the model asks for what that target cannot do.
pub(crate) fn checked_target(text: Option<&str>, model: &model::Model) -> PyResult<hyb_driver::Target> {
    let target = target(text, model.ir())?;
    hyb_driver::check(model.ir(), target).map_err(|d| error(model.compilation.sources.render(&[d])))?;
    Ok(target)
}

#[pymodule]
fn _hyb(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("HybError", module.py().get_type::<HybError>())?;
    module.add_class::<model::Model>()?;
    module.add_class::<trainer::Trainer>()?;
    module.add_class::<tokenizer::Tokenizer>()?;
    module.add_function(wrap_pyfunction!(tokenizer::tokenizer, module)?)?;
    module.add_function(wrap_pyfunction!(model::compile_file, module)?)?;
    module.add_function(wrap_pyfunction!(model::compile_text, module)?)?;
    module.add_function(wrap_pyfunction!(jobs::train, module)?)?;
    module.add_function(wrap_pyfunction!(jobs::evaluate, module)?)?;
    module.add_function(wrap_pyfunction!(jobs::load, module)?)?;
    module.add_function(wrap_pyfunction!(jobs::load_model, module)?)?;
    module.add_function(wrap_pyfunction!(jobs::generate, module)?)?;
    module.add_function(wrap_pyfunction!(sweep::sweep, module)?)?;
    Ok(())
}
