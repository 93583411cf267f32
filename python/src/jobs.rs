//! What the command line does with a file or a checkpoint, from Python: `train` (the
//! library's job, `hyb_train::job`, reporting to a Python callable), `evaluate` (a
//! checkpoint's scores), `load` / `load_model` (a checkpoint, a run directory or a
//! published fla / Hugging Face directory), `generate` (text in, text out).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyb_train::generate::{Codec, Sampling};
use hyb_train::job::{self, Message};
use hyb_train::model_file::{ModelFile, checkpoint_of, model_file, sets_over};
use hyb_train::run::Event;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error;
use crate::model::{Model, compile_file, compile_text};
use crate::trainer::{Trainer, runtime_error, wrap};

/// How the next token is chosen, checked as the command line checks it.
pub fn sampling(temperature: f64, top_k: Option<usize>, top_p: Option<f64>, seed: u64) -> PyResult<Sampling> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(error(format!("temperature {temperature}: expected a number ≥ 0 (0 is greedy)")));
    }
    if let Some(p) = top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(error(format!("top_p {p}: expected a probability in (0, 1]")));
    }
    Ok(Sampling { temperature, top_k, top_p, seed })
}

/// The model of a checkpoint (see `hyb_train::model_file::model_file`) and the
/// checkpoint directory itself (a run directory's latest).
pub(crate) fn checkpoint_model(ckpt: &Path, file: Option<PathBuf>, sets: Vec<String>) -> PyResult<(Model, PathBuf)> {
    let (dir, _) = checkpoint_of(ckpt).map_err(error)?;
    let model = match model_file(file.as_deref(), &dir).map_err(error)? {
        ModelFile::Given(file) => compile_file(file, sets)?,
        ModelFile::Kept { text, compiled_as, sets: kept } => {
            compile_text(&text, Some(compiled_as), sets_over(&kept, &sets))?
        }
    };
    Ok((model, dir))
}

/// The model of a checkpoint, a run directory (its latest checkpoint) or a published
/// fla / Hugging Face directory: `file` if given, else the `model.hyb` its run kept, else
/// its `config.json` imported.
#[pyfunction]
#[pyo3(signature = (ckpt, file = None, sets = Vec::new()))]
pub fn load_model(ckpt: PathBuf, file: Option<PathBuf>, sets: Vec<String>) -> PyResult<Model> {
    Ok(checkpoint_model(&ckpt, file, sets)?.0)
}

/// A trainer of a checkpoint's model holding its weights: the forward alone
/// (`training=False`, evaluation and logits) or a trainer with a fresh optimizer.
#[pyfunction]
#[pyo3(signature = (ckpt, file = None, batch = 1, seq_len = None, target = None, training = false, sets = Vec::new()))]
#[allow(clippy::too_many_arguments)]
pub fn load(
    py: Python<'_>,
    ckpt: PathBuf,
    file: Option<PathBuf>,
    batch: usize,
    seq_len: Option<usize>,
    target: Option<&str>,
    training: bool,
    sets: Vec<String>,
) -> PyResult<Trainer> {
    if !training {
        hyb_train::model_file::refuse_unread_by_evaluation(&sets).map_err(error)?;
    }
    let (model, dir) = checkpoint_model(&ckpt, file, sets)?;
    let model = Bound::new(py, model)?;
    let shape = crate::trainer::Shape { batch, seq_len, training };
    let mut trainer = Trainer::build(&model, shape, target)?;
    hyb_train::checkpoint::load_weights_into(&dir, &mut trainer.inner).map_err(|e| error(e.to_string()))?;
    Ok(trainer)
}

/// A score as a dict: `task`, `accuracy` or `perplexity`, `loss`, `tokens` (scored),
/// `bits_per_byte` (where the text's bytes are known), `correct`, `total`, `by_group`
/// (`{group: {"correct", "total"}}`) — `eval.json`'s fields.
fn score_dict<'py>(py: Python<'py>, score: &hyb_train::eval::Score) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("task", &score.name)?;
    if score.perplexity {
        dict.set_item("perplexity", score.perplexity())?;
    } else {
        dict.set_item("accuracy", score.accuracy())?;
    }
    dict.set_item("loss", score.loss)?;
    dict.set_item("tokens", score.tokens)?;
    if let Some(bpb) = score.bits_per_byte {
        dict.set_item("bits_per_byte", bpb)?;
    }
    dict.set_item("correct", score.correct)?;
    dict.set_item("total", score.total)?;
    let groups = PyDict::new(py);
    for (name, correct, total) in &score.by_group {
        let group = PyDict::new(py);
        group.set_item("correct", correct)?;
        group.set_item("total", total)?;
        groups.set_item(name, group)?;
    }
    dict.set_item("by_group", groups)?;
    Ok(dict)
}

fn scores_list<'py>(py: Python<'py>, scores: &[hyb_train::eval::Score]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, scores.iter().map(|s| score_dict(py, s)).collect::<PyResult<Vec<_>>>()?)
}

/// Scores a checkpoint on its model's eval tasks as `hybc eval` does; returns a list of
/// score dicts (see `eval.json`).
#[pyfunction]
#[pyo3(signature = (ckpt, file = None, target = None, sets = Vec::new()))]
pub fn evaluate<'py>(
    py: Python<'py>,
    ckpt: PathBuf,
    file: Option<PathBuf>,
    target: Option<&str>,
    sets: Vec<String>,
) -> PyResult<Bound<'py, PyList>> {
    hyb_train::model_file::refuse_unread_by_evaluation(&sets).map_err(error)?;
    let (model, dir) = checkpoint_model(&ckpt, file, sets)?;
    let target = crate::checked_target(target, &model)?;
    let (scores, _skipped) = hyb_train::eval::score_checkpoint(model.ir(), &dir, target).map_err(error)?;
    scores_list(py, &scores)
}

/// Continues `prompt` with a checkpoint as `hybc generate` does — text for a text model
/// (its tokenizer), token ids written as numbers for a recall model — and returns the
/// continuation's text; it ends once it holds a string of `stop`.
#[pyfunction]
#[pyo3(signature = (ckpt, prompt, max_new_tokens = 64, temperature = 0.0, top_k = None, top_p = None, seed = 0, stop = Vec::new(), file = None, target = None))]
#[allow(clippy::too_many_arguments)]
pub fn generate(
    ckpt: PathBuf,
    prompt: &str,
    max_new_tokens: usize,
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    seed: u64,
    stop: Vec<String>,
    file: Option<PathBuf>,
    target: Option<&str>,
) -> PyResult<String> {
    let sampling = sampling(temperature, top_k, top_p, seed)?;
    let (model, dir) = checkpoint_model(&ckpt, file, Vec::new())?;
    let target = crate::target(target, model.ir())?;
    let codec = Codec::of_checkpoint(model.ir(), &dir).map_err(error)?;
    let prompt = codec.encode(prompt).map_err(error)?;
    let mut decoder = hyb_runtime::Decoder::for_target(model.ir(), target, 1, prompt.len() + max_new_tokens)
        .map_err(|e| runtime_error(e, target))?;
    hyb_train::checkpoint::load_weights_into_decoder(&dir, &mut decoder).map_err(|e| error(e.to_string()))?;
    let mut new = Vec::new();
    let mut go_on = |token: i32| {
        new.push(token);
        let text = codec.decode(&new);
        !stop.iter().any(|s| text.contains(s.as_str()))
    };
    let tokens = hyb_train::generate::generate(&mut decoder, &prompt, max_new_tokens, &sampling, &mut go_on)
        .map_err(|e| runtime_error(e, target))?;
    Ok(codec.decode(&tokens))
}

/// A message of the job as the dict the callback receives (`kind`: `note`, `start`,
/// `step`, `eval`, `checkpoint`).
pub(crate) fn message_dict<'py>(py: Python<'py>, message: &Message) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    match message {
        Message::Note(text) => {
            dict.set_item("kind", "note")?;
            dict.set_item("text", text)?;
        }
        Message::Started(started) => {
            dict.set_item("kind", "start")?;
            dict.set_item("steps", started.steps)?;
            dict.set_item("step", started.resumed_at)?;
            dict.set_item("batch", started.batch)?;
            dict.set_item("seq_len", started.seq_len)?;
            dict.set_item("device", &started.device)?;
            dict.set_item("kernels", started.kernels)?;
            dict.set_item("compile_seconds", started.compile_seconds)?;
            dict.set_item("out", &started.out)?;
        }
        Message::Event(Event::Step { step, loss, grad_norm, lr, tokens_per_s }) => {
            dict.set_item("kind", "step")?;
            dict.set_item("step", step)?;
            dict.set_item("loss", loss)?;
            dict.set_item("grad_norm", grad_norm)?;
            dict.set_item("lr", lr)?;
            dict.set_item("tokens_per_s", tokens_per_s)?;
        }
        Message::Event(Event::Eval { step, scores }) => {
            dict.set_item("kind", "eval")?;
            dict.set_item("step", step)?;
            dict.set_item("scores", scores_list(py, scores)?)?;
        }
        Message::Event(Event::Checkpoint { step, path }) => {
            dict.set_item("kind", "checkpoint")?;
            dict.set_item("step", step)?;
            dict.set_item("path", path)?;
        }
    }
    Ok(dict)
}

/// Trains a `.hyb` file as `hybc train FILE` does (the same flags as keywords; `sets`
/// as `--set`), calling `callback(dict)` with every message (see `message_dict`). A
/// callback that raises, or Ctrl-C / a notebook's interrupt, stops the run at the next
/// step boundary with a checkpoint, then the error is raised. Started by torchrun or
/// srun (`RANK` / `SLURM_PROCID` set), the process is one rank of a data-parallel run on
/// GPUs, as `hybc train` is there (only rank 0 calls back and writes). Returns
/// `{"final_loss", "scores", "stopped_at", "seconds", "out", "trainer"}`.
#[pyfunction]
#[pyo3(signature = (file, steps = None, batch = None, seq_len = None, lr = None, seed = None, out = None, resume = false, init_from = None, checkpoint_every = None, sets = Vec::new(), target = None, callback = None))]
#[allow(clippy::too_many_arguments)]
pub fn train<'py>(
    py: Python<'py>,
    file: PathBuf,
    steps: Option<u64>,
    batch: Option<u64>,
    seq_len: Option<u64>,
    lr: Option<f64>,
    seed: Option<u64>,
    out: Option<PathBuf>,
    resume: bool,
    init_from: Option<PathBuf>,
    checkpoint_every: Option<u64>,
    sets: Vec<String>,
    target: Option<&str>,
    callback: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let model = compile_file(file.clone(), sets.clone())?;
    let target = crate::checked_target(target, &model)?;
    let init_from = init_from.map(|path| checkpoint_of(&path).map(|(dir, _)| dir)).transpose().map_err(error)?;
    let stop = Arc::new(AtomicBool::new(false));
    let launch = hyb_dist::Launch::from_env().map_err(|e| error(e.to_string()))?;
    let launch = (launch.source != hyb_dist::Source::Single).then_some(launch);
    let options = job::Options {
        launch,
        steps,
        batch,
        seq_len,
        lr,
        seed,
        out,
        resume,
        init_from,
        checkpoint_every,
        sets,
        target,
        stop: Some(stop.clone()),
        ..job::Options::default()
    };
    let mut raised: Option<PyErr> = None;
    let outcome = job::train(&file, model.ir(), &options, &mut |message| {
        if raised.is_some() {
            return;
        }
        let called = match &callback {
            Some(callback) => message_dict(py, &message).and_then(|dict| callback.call1((dict,)).map(drop)),
            None => Ok(()),
        };
        if let Err(err) = called.and_then(|()| py.check_signals()) {
            raised = Some(err);
            stop.store(true, Ordering::SeqCst);
        }
    });
    if let Some(err) = raised {
        return Err(err);
    }
    let outcome = outcome.map_err(error)?;
    let result = PyDict::new(py);
    result.set_item("final_loss", outcome.final_loss)?;
    result.set_item("scores", scores_list(py, &outcome.scores)?)?;
    result.set_item("stopped_at", outcome.stopped_at)?;
    result.set_item("seconds", outcome.seconds)?;
    result.set_item("out", &outcome.started.out)?;
    let model = Py::new(py, model)?;
    result.set_item("trainer", wrap(model, outcome.trainer, py))?;
    Ok(result)
}
