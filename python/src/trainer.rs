//! `hyb.Trainer`: a model's compiled step on a target (the runtime's `Trainer`) —
//! training steps and the forward on NumPy token ids, the logits, parameters by fla
//! name as float32 arrays, generation, checkpoints.

use std::path::PathBuf;

use hyb_runtime::{AdamW, Batch};
use numpy::PyArrayDyn;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{f32_array, f32_values, token_ids};
use crate::error;
use crate::model::Model;

/// What a trainer is compiled for.
pub struct Shape {
    pub batch: usize,
    /// None: the train block's, else 128.
    pub seq_len: Option<usize>,
    /// False: the forward alone (an evaluator).
    pub training: bool,
}

/// A model's compiled step on a device, its parameters and (when training) AdamW's state.
#[pyclass(module = "hyb", unsendable)]
pub struct Trainer {
    pub(crate) inner: hyb_runtime::Trainer,
    model: Py<Model>,
    /// The train block's optimizer (a step's `lr` overrides its learning rate).
    adamw: AdamW,
}

/// A runtime error as a `HybError`; on a GPU target, with whether a GPU is here at all.
pub fn runtime_error(error: hyb_runtime::Error, target: hyb_driver::Target) -> PyErr {
    match error {
        hyb_runtime::Error::Input(message) => crate::error(message),
        error if target.is_gpu() => {
            crate::error(format!("cannot run on {target}: {error}\n  note: {}", hyb_runtime::gpu_presence()))
        }
        error => crate::error(error.to_string()),
    }
}

impl Trainer {
    /// Compiles `model` at `shape` for `target` (parameters zero until set).
    pub fn build(model: &Bound<'_, Model>, shape: Shape, target: Option<&str>) -> PyResult<Trainer> {
        let borrowed = model.borrow();
        let ir = borrowed.ir();
        let target = crate::target(target, ir)?;
        hyb_driver::check(ir, target).map_err(|d| error(borrowed.compilation.sources.render(&[d])))?;
        let seq_len = shape.seq_len.unwrap_or_else(|| ir.train.as_ref().map_or(128, |t| t.seq_len as usize));
        let built = if shape.training {
            hyb_runtime::Trainer::for_target(ir, target, shape.batch, seq_len)
        } else {
            hyb_runtime::Trainer::evaluator(ir, target, shape.batch, seq_len)
        };
        let inner = built.map_err(|e| runtime_error(e, target))?;
        Ok(Trainer { inner, model: model.clone().unbind(), adamw: AdamW::of(ir) })
    }

    fn fail(&self, error: hyb_runtime::Error) -> PyErr {
        runtime_error(error, self.inner.target())
    }

    /// Token ids of `batch × seq_len` and their targets (given, else the next token;
    /// none after the last).
    fn batch(&self, tokens: &Bound<'_, PyAny>, targets: Option<&Bound<'_, PyAny>>) -> PyResult<(Vec<i32>, Vec<i32>)> {
        let expected = vec![self.inner.program.batch, self.inner.program.seq_len];
        let (tokens, shape) = token_ids(tokens, 2, "tokens")?;
        if shape != expected {
            return Err(error(format!(
                "tokens: this trainer takes batch × seq_len = {expected:?}, got {shape:?} (`trainer.resized(batch, seq_len)` makes one for another shape)"
            )));
        }
        let targets = match targets {
            Some(targets) => {
                let (targets, shape) = token_ids(targets, 2, "targets")?;
                if shape != expected {
                    return Err(error(format!("targets: expected {expected:?} like the tokens, got {shape:?}")));
                }
                targets
            }
            None => Batch::next_token_targets(&tokens, self.inner.program.seq_len),
        };
        Ok((tokens, targets))
    }

    fn shape_of(&self, name: &str) -> PyResult<Vec<usize>> {
        let slot = self.inner.program.params.iter().find(|p| p.name == name);
        slot.map(|p| p.shape.clone()).ok_or_else(|| error(format!("no parameter `{name}`")))
    }
}

#[pymethods]
impl Trainer {
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.program.batch
    }

    #[getter]
    fn seq_len(&self) -> usize {
        self.inner.program.seq_len
    }

    #[getter]
    fn vocab(&self) -> usize {
        self.inner.program.vocab
    }

    /// Optimizer steps taken.
    #[getter]
    fn steps_taken(&self) -> u64 {
        self.inner.step
    }

    /// Whether it trains (False: an evaluator, the forward alone).
    #[getter]
    fn training(&self) -> bool {
        self.inner.trains()
    }

    #[getter]
    fn target(&self) -> String {
        self.inner.target().to_string()
    }

    /// The device, in words (`cpu (2 threads)`).
    #[getter]
    fn device(&self) -> String {
        self.inner.device()
    }

    #[getter]
    fn model(&self, py: Python<'_>) -> Py<Model> {
        self.model.clone_ref(py)
    }

    /// The learning rate a step uses unless given one (the train block's).
    #[getter]
    fn lr(&self) -> f64 {
        self.adamw.lr
    }

    fn param_names(&self) -> Vec<String> {
        self.inner.param_names().map(String::from).collect()
    }

    /// Every parameter's shape by fla name.
    fn param_shapes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let shapes = PyDict::new(py);
        for slot in &self.inner.program.params {
            shapes.set_item(&slot.name, pyo3::types::PyTuple::new(py, &slot.shape)?)?;
        }
        Ok(shapes)
    }

    /// A copy of parameter `name` (float32, its shape).
    fn param<'py>(&mut self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let shape = self.shape_of(name)?;
        let values = self.inner.param(name).map_err(|e| self.fail(e))?;
        f32_array(py, values, &shape)
    }

    /// A copy of every parameter by fla name.
    fn params<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let all = PyDict::new(py);
        let values = self.inner.params();
        for (slot, values) in self.inner.program.params.iter().zip(values) {
            all.set_item(&slot.name, f32_array(py, values, &slot.shape)?)?;
        }
        Ok(all)
    }

    /// Sets parameter `name` from an array of its shape (converted to float32).
    fn set_param(&mut self, name: &str, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let shape = self.shape_of(name)?;
        let values = f32_values(values, &shape, name)?;
        self.inner.set_param(name, &values).map_err(|e| self.fail(e))
    }

    /// Initialises every parameter as the model states, from `seed`.
    fn init_params(&mut self, seed: u64) {
        self.inner.init_params(seed);
    }

    /// The forward pass; returns the mean loss over the positions with a target
    /// (`targets`: ids, negative for none; default: each position's next token).
    #[pyo3(signature = (tokens, targets = None))]
    fn forward(&mut self, tokens: &Bound<'_, PyAny>, targets: Option<&Bound<'_, PyAny>>) -> PyResult<f32> {
        let (tokens, targets) = self.batch(tokens, targets)?;
        self.inner.forward(&Batch { tokens: &tokens, targets: &targets }).map_err(|e| self.fail(e))
    }

    /// The logits of `tokens` (`[batch, seq_len]`): float32 `[batch, seq_len, vocab]`.
    fn logits<'py>(&mut self, py: Python<'py>, tokens: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        self.forward(tokens, None)?;
        let program = &self.inner.program;
        let shape = [program.batch, program.seq_len, program.vocab];
        f32_array(py, self.inner.logits(), &shape)
    }

    /// One training step (forward, backward, clipping, AdamW at `lr`, default the train
    /// block's); returns `{"loss", "grad_norm", "step"}`.
    #[pyo3(signature = (tokens, targets = None, lr = None))]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        tokens: &Bound<'_, PyAny>,
        targets: Option<&Bound<'_, PyAny>>,
        lr: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (tokens, targets) = self.batch(tokens, targets)?;
        let lr = lr.unwrap_or(self.adamw.lr);
        let batch = Batch { tokens: &tokens, targets: &targets };
        let stats = self.inner.step(&batch, &self.adamw, lr).map_err(|e| self.fail(e))?;
        let out = PyDict::new(py);
        out.set_item("loss", stats.loss)?;
        out.set_item("grad_norm", stats.grad_norm)?;
        out.set_item("step", self.inner.step)?;
        Ok(out)
    }

    /// The gradient of parameter `name` from the last step.
    fn grad<'py>(&mut self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let shape = self.shape_of(name)?;
        let values = self.inner.grad(name).map_err(|e| self.fail(e))?;
        f32_array(py, values, &shape)
    }

    /// The same model at another `batch × seq_len`, with a copy of the parameters.
    fn resized(&self, py: Python<'_>, batch: usize, seq_len: usize) -> PyResult<Trainer> {
        let inner = self.inner.resized(batch, seq_len).map_err(|e| self.fail(e))?;
        Ok(Trainer { inner, model: self.model.clone_ref(py), adamw: self.adamw.clone() })
    }

    /// Continues one prompt of token ids, each new token chosen greedily
    /// (`temperature=0`) or sampled (`temperature`, `top_k`, `top_p`, `seed`), stopping
    /// early after a token of `stop_ids`; returns the new ids.
    #[pyo3(signature = (prompt, max_new_tokens = 64, temperature = 0.0, top_k = None, top_p = None, seed = 0, stop_ids = Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        prompt: &Bound<'_, PyAny>,
        max_new_tokens: usize,
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
        seed: u64,
        stop_ids: Vec<i32>,
    ) -> PyResult<Vec<i32>> {
        let (prompt, _) = token_ids(prompt, 1, "prompt")?;
        let sampling = crate::jobs::sampling(temperature, top_k, top_p, seed)?;
        let mut decoder = self.inner.decoder(1, prompt.len() + max_new_tokens).map_err(|e| self.fail(e))?;
        let mut go_on = |token: i32| !stop_ids.contains(&token);
        hyb_train::generate::generate(&mut decoder, &prompt, max_new_tokens, &sampling, &mut go_on)
            .map_err(|e| self.fail(e))
    }

    /// Loads the weights of a checkpoint, a run directory's latest, or a published fla /
    /// Hugging Face directory (the optimizer's state is left as it is).
    fn load_weights(&mut self, path: PathBuf) -> PyResult<()> {
        let (dir, _) = hyb_train::model_file::checkpoint_of(&path).map_err(error)?;
        hyb_train::checkpoint::load_weights_into(&dir, &mut self.inner).map_err(|e| error(e.to_string()))
    }

    /// Restores a checkpoint of this model entirely: weights, AdamW's moments and the
    /// step (as `hybc train --resume`); returns its data seed.
    fn load_checkpoint(&mut self, path: PathBuf) -> PyResult<u64> {
        let (dir, _) = hyb_train::model_file::checkpoint_of(&path).map_err(error)?;
        hyb_train::checkpoint::load(&dir, &mut self.inner).map_err(|e| error(e.to_string()))
    }

    /// Writes a checkpoint (`root/step_N/`, atomically) as training does; returns its
    /// directory.
    #[pyo3(signature = (root, seed = 0))]
    fn save_checkpoint(&self, root: PathBuf, seed: u64) -> PyResult<PathBuf> {
        hyb_train::checkpoint::save(&root, &self.inner, seed).map_err(|e| error(e.to_string()))
    }

    fn __repr__(&self) -> String {
        let program = &self.inner.program;
        let kind = if self.inner.trains() { "Trainer" } else { "Trainer (forward only)" };
        format!(
            "hyb.{kind}(batch {} × seq_len {}, {}, step {})",
            program.batch,
            program.seq_len,
            self.inner.device(),
            self.inner.step
        )
    }
}

/// A trainer of a Python `Model` with `inner` (built by the jobs).
pub fn wrap(model: Py<Model>, inner: hyb_runtime::Trainer, py: Python<'_>) -> Trainer {
    let adamw = AdamW::of(model.borrow(py).ir());
    Trainer { inner, model, adamw }
}
