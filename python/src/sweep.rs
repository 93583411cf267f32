//! `hyb.sweep`: a `.hyb` file's sweep run as `hybc sweep FILE` runs it (the library's
//! `hybc::sweep`), its progress to a Python callable, its finished runs back as dicts.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hyb_compiler::ir::Model;
use hybc::sweep::{Console, Mode, Setup, finished_runs, out_dir};
use hybc::train::{Options, Outcome};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error;
use crate::jobs::message_dict;
use crate::model::compile_file;

/// The sweep's console in Python: each line and each run's messages to `callback`; the
/// first error it raises (or an interrupt) is kept and stops the sweep at the next step.
struct Callback<'py> {
    py: Python<'py>,
    callback: Option<Bound<'py, PyAny>>,
    raised: RefCell<Option<PyErr>>,
    stop: Arc<AtomicBool>,
}

impl<'py> Callback<'py> {
    /// Calls back with `dict()` unless an error is already kept; keeps the first error.
    fn call(&self, dict: impl FnOnce() -> PyResult<Bound<'py, PyDict>>) {
        if self.raised.borrow().is_some() {
            return;
        }
        let called = match &self.callback {
            Some(callback) => dict().and_then(|dict| callback.call1((dict,)).map(drop)),
            None => Ok(()),
        };
        if let Err(err) = called.and_then(|()| self.py.check_signals()) {
            *self.raised.borrow_mut() = Some(err);
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

impl Console for Callback<'_> {
    fn line(&self, text: &str) {
        self.call(|| {
            let dict = PyDict::new(self.py);
            dict.set_item("kind", "sweep")?;
            dict.set_item("text", text.trim_start_matches('\n'))?;
            Ok(dict)
        });
    }

    fn train(&self, file: &Path, model: &Model, options: &Options) -> Result<Outcome, String> {
        let outcome = hyb_train::job::train(file, model, &options.job(), &mut |message| {
            self.call(|| message_dict(self.py, &message));
        })?;
        Ok(Outcome::of_job(&outcome, options.interrupt.as_ref()))
    }
}

/// Runs the sweep of a `.hyb` file as `hybc sweep FILE` does, in this process (`hybc
/// sweep --jobs N` runs shards as processes of the command line): every run not done
/// before, then the report (`results.csv`, `results.md`, the charts) in `out` (default
/// `runs/<file stem>`). `report_only` writes the report of the runs done. `callback(dict)`
/// gets the sweep's lines (`kind: "sweep"`, `text`) and each run's messages as `train`'s
/// callback does; a callback that raises, or an interrupt, stops the run under way at
/// the next step with a checkpoint (running the sweep again continues it), then the
/// error is raised. `time_limit` (seconds, as `--time-limit`) starts no run that would
/// not finish within it, and leaves the report to a later call. Returns `{"out",
/// "stopped", "report" (results.md's text, if written), "runs" (each finished run's
/// result.json as a dict)}`.
#[pyfunction]
#[pyo3(signature = (file, out = None, target = None, sets = Vec::new(), report_only = false, time_limit = None, callback = None))]
#[allow(clippy::too_many_arguments)]
pub fn sweep<'py>(
    py: Python<'py>,
    file: PathBuf,
    out: Option<PathBuf>,
    target: Option<&str>,
    sets: Vec<String>,
    report_only: bool,
    time_limit: Option<f64>,
    callback: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let deadline = match time_limit {
        Some(seconds) if !(seconds.is_finite() && seconds >= 0.0) => {
            return Err(error(format!("time_limit = {seconds}: give the seconds a sweep may take, 0 or more")));
        }
        Some(seconds) => Some(hybc::deadline::Deadline::after(std::time::Duration::from_secs_f64(seconds))),
        None => None,
    };
    let model = compile_file(file.clone(), sets.clone())?;
    let target = crate::checked_target(target, &model)?;
    let config = model.ir().sweep.clone().ok_or_else(|| error(format!("`{}` has no sweep block", file.display())))?;
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt = hybc::interrupt::Interrupt::flag(stop.clone());
    let console = Callback { py, callback, raised: RefCell::new(None), stop };
    let interrupt = Some(&interrupt);
    let setup = Setup {
        file: &file,
        out: out.as_deref(),
        target,
        sets: &sets,
        interrupt,
        console: &console,
        deadline,
        at_once: 1,
        wave: None,
    };
    let mode = if report_only { Mode::Report } else { Mode::Train(None) };
    let stopped = hybc::sweep::sweep(&setup, model.ir(), mode);
    if let Some(err) = console.raised.take() {
        return Err(err);
    }
    let stopped = stopped.map_err(error)?;
    let dir = out_dir(&file, out.as_deref());
    let result = PyDict::new(py);
    result.set_item("out", &dir)?;
    result.set_item("stopped", stopped.is_some())?;
    result.set_item("report", std::fs::read_to_string(dir.join("results.md")).ok())?;
    let runs = serde_json::to_string(&finished_runs(&dir, &config)).map_err(|e| error(e.to_string()))?;
    result.set_item("runs", py.import("json")?.call_method1("loads", (runs,))?)?;
    Ok(result)
}
