//! `hyb.Model`: a checked `.hyb` file (or text) — its report, IR and every stage
//! `hybc compile --emit` prints, its parameters — and the trainers built from it.

use std::path::{Path, PathBuf};

use hyb_compiler::pipeline::{self, Compilation, Emit, EmitOptions};
use hyb_driver::Stage;
use pyo3::prelude::*;

use crate::error;

/// A model compiled from a `.hyb` file or text, without errors (warnings are kept).
#[pyclass(module = "hyb", unsendable)]
pub struct Model {
    pub(crate) compilation: Compilation,
    pub(crate) path: PathBuf,
}

impl Model {
    /// The checked model: `compilation` had no errors.
    pub(crate) fn ir(&self) -> &hyb_compiler::ir::Model {
        self.compilation.model().expect("a Model is made only from a compilation without errors")
    }

    /// A model, or a `HybError` with the diagnostics rendered as `hybc` prints them.
    pub(crate) fn checked(compilation: Compilation, path: &Path) -> PyResult<Model> {
        if compilation.checked.has_errors() {
            let count = compilation.checked.diagnostics.iter().filter(|d| d.is_error()).count();
            let plural = if count == 1 { "" } else { "s" };
            let text = format!("{}error: {} has {count} error{plural}", compilation.render(), path.display());
            return Err(error(text));
        }
        Ok(Model { compilation, path: path.to_path_buf() })
    }

    /// A driver error as `hybc` prints it (a setting's diagnostic against the sources).
    pub(crate) fn driver_error(&self, error: hyb_driver::Error) -> PyErr {
        match error {
            hyb_driver::Error::Setting(diagnostic) => crate::error(self.compilation.sources.render(&[diagnostic])),
            error => crate::error(format!("{}: {error}", self.path.display())),
        }
    }
}

/// Compiles a `.hyb` file; `sets` are `FIELD=VALUE` texts over its train and eval blocks
/// (as `hybc --set`).
#[pyfunction]
#[pyo3(signature = (path, sets = Vec::new()))]
pub fn compile_file(path: PathBuf, sets: Vec<String>) -> PyResult<Model> {
    let compilation = pipeline::check_path_with(&path, &sets).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => error(format!("cannot read `{}`: {e}", path.display())),
        _ => error(format!("`{}`: {e}", path.display())),
    })?;
    Model::checked(compilation, &path)
}

/// Compiles `.hyb` text; it compiles as the file at `path` (imports and data paths are
/// relative to it), `<string>` by default.
#[pyfunction]
#[pyo3(signature = (text, path = None, sets = Vec::new()))]
pub fn compile_text(text: &str, path: Option<PathBuf>, sets: Vec<String>) -> PyResult<Model> {
    let path = path.unwrap_or_else(|| PathBuf::from("<string>"));
    Model::checked(pipeline::check_source(&path, text, &sets), &path)
}

/// A stage of `hybc compile --emit` by its command-line name.
fn stage(name: &str) -> PyResult<Result<Emit, Stage>> {
    Ok(match name {
        "ir" => Ok(Emit::Ir),
        "fla-config" => Ok(Emit::FlaConfig),
        "hf-layer-types" => Ok(Emit::HfLayerTypes),
        "megatron-pattern" => Ok(Emit::MegatronPattern),
        "graph" => Err(Stage::Graph),
        "grad" => Err(Stage::Grad),
        "kernels" => Err(Stage::Kernels),
        "plan" => Err(Stage::Plan),
        "program" => Err(Stage::Program),
        "mlir" => Err(Stage::Mlir),
        "ptx" => Err(Stage::Ptx),
        "passes" => Err(Stage::Passes),
        "report" => Err(Stage::Report),
        other => {
            return Err(error(format!(
                "unknown stage `{other}` (expected ir, graph, grad, kernels, plan, program, mlir, ptx, passes, report, fla-config, hf-layer-types or megatron-pattern)"
            )));
        }
    })
}

/// `text` or `json`.
fn is_json(format: &str) -> PyResult<bool> {
    match format {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(error(format!("unknown format `{other}` (expected `text` or `json`)"))),
    }
}

#[pymethods]
impl Model {
    /// The text `hybc compile FILE --emit STAGE` prints (`format="json"` for the report
    /// and the IR); `context` and `target` as its flags.
    #[pyo3(signature = (stage, format = "text", context = None, target = None, megatron_linear = None))]
    fn emit(
        &self,
        stage: &str,
        format: &str,
        context: Option<u64>,
        target: Option<&str>,
        megatron_linear: Option<char>,
    ) -> PyResult<String> {
        let json = is_json(format)?;
        match self::stage(stage)? {
            Ok(stage) => pipeline::emit(self.ir(), stage, EmitOptions { json, megatron_linear })
                .map_err(|e| error(format!("{}\n  help: {}", e.message, e.help))),
            Err(stage) => {
                let target = crate::target(target, self.ir())?;
                let options = hyb_driver::EmitOptions { target, context, json };
                hyb_driver::emit(self.ir(), stage, options).map_err(|e| self.driver_error(e))
            }
        }
    }

    /// The cost report (`hybc compile --emit report`).
    #[pyo3(signature = (format = "text", context = None, target = None))]
    fn report(&self, format: &str, context: Option<u64>, target: Option<&str>) -> PyResult<String> {
        self.emit("report", format, context, target, None)
    }

    /// The model IR (`hybc compile --emit ir`).
    #[pyo3(signature = (format = "text"))]
    fn ir_text(&self, format: &str) -> PyResult<String> {
        self.emit("ir", format, None, None, None)
    }

    /// The warnings of the compilation, rendered (empty without any).
    #[getter]
    fn warnings(&self) -> String {
        self.compilation.render()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn vocab(&self) -> u64 {
        self.ir().config.vocab
    }

    #[getter]
    fn d_model(&self) -> u64 {
        self.ir().config.d_model
    }

    #[getter]
    fn n_layers(&self) -> usize {
        self.ir().layers.len()
    }

    #[getter]
    fn n_params(&self) -> u64 {
        self.ir().params_total()
    }

    /// The train block's sequence length, if it has one.
    #[getter]
    fn seq_len(&self) -> Option<u64> {
        self.ir().train.as_ref().map(|t| t.seq_len)
    }

    /// Every parameter as (fla name, shape), in the model's order.
    fn params(&self) -> Vec<(String, Vec<u64>)> {
        self.ir().params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect()
    }

    /// A trainer of this model at `batch × seq_len` (seq_len: the train block's, else
    /// 128) on `target`, its parameters initialised from `seed` (the train block's,
    /// else 0); `training=False` compiles the forward alone (no gradients, no optimizer
    /// state: evaluation).
    #[pyo3(signature = (batch = 1, seq_len = None, target = None, seed = None, training = true))]
    fn trainer(
        slf: &Bound<'_, Model>,
        batch: usize,
        seq_len: Option<usize>,
        target: Option<&str>,
        seed: Option<u64>,
        training: bool,
    ) -> PyResult<crate::trainer::Trainer> {
        let shape = crate::trainer::Shape { batch, seq_len, training };
        let mut trainer = crate::trainer::Trainer::build(slf, shape, target)?;
        let seed = seed.or(slf.borrow().ir().train.as_ref().map(|t| t.seed)).unwrap_or(0);
        trainer.inner.init_params(seed);
        Ok(trainer)
    }

    /// Text ↔ ids as the model's training data has them (bytes, a tokenizer file, ids).
    fn tokenizer(&self) -> PyResult<crate::tokenizer::Tokenizer> {
        crate::tokenizer::of_model(self)
    }

    fn __repr__(&self) -> String {
        let model = self.ir();
        format!(
            "hyb.Model('{}': {} layers, d_model {}, vocab {}, {} parameters)",
            self.path.display(),
            model.layers.len(),
            model.config.d_model,
            model.config.vocab,
            model.params_total()
        )
    }
}
