//! The training loop: batches from a task, the learning-rate schedule, one compiled step
//! each (forward, backward, clipping, AdamW), evaluation every N steps, checkpoints, and
//! a stop at the first NaN or infinity that names the step and the tensor.
//!
//! Stopping on request: when [`Settings::stop`] is set (the command line sets it on
//! SIGINT / SIGTERM), the loop finishes the step under way, writes a checkpoint at
//! that boundary unless one is there already, and returns with
//! [`Summary::stopped_at`]; `--resume` continues bit for bit from there.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hyb_compiler::ir::train::LrSchedule;
use hyb_runtime::{AdamW, Trainer};

use crate::data::Task;
use crate::eval::{EvalSet, Score, score};
use crate::schedule::learning_rate;

#[derive(Clone, Debug)]
pub struct Settings {
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub adamw: AdamW,
    pub schedule: LrSchedule,
    pub eval_every: Option<u64>,
    /// Micro-batches per step: their gradients are averaged before one update.
    pub grad_accum: u64,
    /// Where checkpoints (`checkpoints/step_N/`) and `metrics.jsonl` go; none: nowhere.
    pub out: Option<std::path::PathBuf>,
    /// Checkpoint every N steps (and always after the last).
    pub checkpoint_every: Option<u64>,
    /// Keep only the newest k checkpoints (see [`crate::checkpoint::prune`]); none: all.
    pub keep_checkpoints: Option<u64>,
    /// Set from outside (a signal handler) to stop at the next step boundary.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop once an evaluation set's score has plateaued (a sweep's held-out set).
    pub plateau: Option<crate::protocol::PlateauStop>,
}

/// What the loop reports as it goes.
pub enum Event<'a> {
    Step { step: u64, loss: f32, grad_norm: f32, lr: f64, tokens_per_s: f64 },
    Eval { step: u64, scores: &'a [Score] },
    Checkpoint { step: u64, path: &'a std::path::Path },
}

#[derive(Debug)]
pub enum Failure {
    Runtime(hyb_runtime::Error),
    /// The checkpoint of `step` was not written; `previous` is the last one that was.
    Checkpoint {
        step: u64,
        error: crate::checkpoint::Error,
        previous: Option<PathBuf>,
    },
    Log(String),
    /// A data-parallel rank's failure, or one of another rank that stopped this one.
    Parallel(String),
    /// A NaN or infinity: the step, the loss, and the first tensor (by layer) whose
    /// gradient was not finite, if any.
    NonFinite {
        step: u64,
        loss: f32,
        norm: f32,
        tensor: Option<String>,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Runtime(e) => write!(f, "{e}"),
            Failure::Checkpoint { step, error, previous: Some(previous) } => write!(
                f,
                "step {step}: the checkpoint was not written: {error}\n  note: the previous checkpoint `{}` is \
                 intact; `--resume` continues from it",
                previous.display()
            ),
            Failure::Checkpoint { step, error, previous: None } => write!(
                f,
                "step {step}: the checkpoint was not written: {error}\n  note: there is no earlier checkpoint; \
                 `--resume` starts the run again"
            ),
            Failure::Log(e) | Failure::Parallel(e) => write!(f, "{e}"),
            Failure::NonFinite { step, loss, tensor: Some(tensor), .. } => {
                write!(
                    f,
                    "step {step}: the gradient of `{tensor}` is not finite (loss {loss}); the step was not applied"
                )
            }
            Failure::NonFinite { step, loss, norm, tensor: None } if loss.is_finite() => {
                write!(f, "step {step}: the gradient norm overflowed to {norm} (loss {loss}); the step was not applied")
            }
            Failure::NonFinite { step, loss, tensor: None, .. } => {
                write!(f, "step {step}: the loss is {loss}; the step was not applied")
            }
        }
    }
}

impl std::error::Error for Failure {}

impl From<hyb_runtime::Error> for Failure {
    fn from(e: hyb_runtime::Error) -> Failure {
        Failure::Runtime(e)
    }
}

/// The last scores of every evaluation, and the last step's loss.
pub struct Summary {
    pub final_loss: f32,
    pub scores: Vec<Score>,
    pub seconds: f64,
    /// Where the loop stopped on request ([`Settings::stop`]), before the last step.
    pub stopped_at: Option<u64>,
    /// Where the loop stopped because the watched score plateaued ([`Settings::plateau`]).
    pub plateaued_at: Option<u64>,
}

/// Runs steps `trainer.step + 1 ..= settings.steps`.
pub fn train(
    trainer: &mut Trainer,
    task: &dyn Task,
    evals: &[EvalSet],
    settings: &Settings,
    on: &mut dyn FnMut(Event),
) -> Result<Summary, Failure> {
    train_ranked(trainer, task, evals, settings, None, on)
}

/// [`train`] as one rank of a data-parallel run, where `rank` is given: each step's
/// batch is the single device's, the rank trains its rows of it
/// ([`crate::parallel::Parallel`]); every rank evaluates (the same parameters, so the
/// same scores and plateau decisions — the others would wait for rank 0 anyway), rank 0
/// alone writes `metrics.jsonl` and the checkpoints, and the ranks stop together when
/// any of them is asked to.
pub fn train_ranked(
    trainer: &mut Trainer,
    task: &dyn Task,
    evals: &[EvalSet],
    settings: &Settings,
    mut rank: Option<&mut dyn crate::parallel::Parallel>,
    on: &mut dyn FnMut(Event),
) -> Result<Summary, Failure> {
    if rank.is_some() && settings.grad_accum > 1 {
        return Err(Failure::Parallel(format!(
            "grad_accum = {} with several GPUs is not supported yet: each GPU's share of the batch is its micro-batch; \
             raise the batch instead",
            settings.grad_accum
        )));
    }
    let writes = rank.as_ref().is_none_or(|r| r.rank() == 0);
    let settings = &Settings { out: settings.out.clone().filter(|_| writes), ..settings.clone() };
    let started = Instant::now();
    let mut evaluators: Vec<Trainer> =
        evals.iter().map(|set| trainer.evaluation(set.batch, set.task.seq_len())).collect::<Result<_, _>>()?;
    let mut scores = Vec::new();
    let mut log = settings.out.as_deref().map(|out| Metrics::open(out, trainer.step)).transpose()?;
    // A run resumed at its last step has nothing to train: its last logged loss stands.
    let mut final_loss = log.as_ref().and_then(|l| l.last_loss).unwrap_or(f32::NAN);
    let resumed_complete = trainer.step >= settings.steps;
    // The step of the newest checkpoint on disk (a resumed run starts at one).
    let mut saved_at = trainer.step;
    let stop_requested = || settings.stop.as_ref().is_some_and(|stop| stop.load(Ordering::SeqCst));
    let (mut plateau, mut plateaued_at) = (crate::protocol::Plateau::default(), None);
    while trainer.step < settings.steps {
        // A step's time runs from the end of the previous one: device work issued then
        // and still running (the update) counts where it is waited for, in this step.
        let clock = Instant::now();
        let stop = match rank.as_deref_mut() {
            Some(rank) => rank.any(stop_requested()).map_err(Failure::Parallel)?,
            None => stop_requested(),
        };
        if stop {
            if trainer.step > saved_at {
                save_checkpoint(trainer, settings, on)?;
            }
            let seconds = started.elapsed().as_secs_f64();
            return Ok(Summary { final_loss, scores, seconds, stopped_at: Some(trainer.step), plateaued_at: None });
        }
        let step = trainer.step + 1;
        let lr = learning_rate(&settings.schedule, settings.adamw.lr, step, settings.steps);
        let (loss, grad_norm, tokens) = match rank.as_deref_mut() {
            Some(rank) => {
                let batch = task.batch(settings.seed, step, settings.batch);
                let stats = rank.forward_backward_norm(trainer, &batch, &settings.adamw).map_err(Failure::Parallel)?;
                (stats.loss, stats.grad_norm, batch.tokens.len())
            }
            None => accumulate(trainer, task, settings, step)?,
        };
        // The norm sums every gradient's squares, so it is finite exactly when they all
        // are (short of overflow): only then is there no need to look for the culprit.
        if !loss.is_finite() || !grad_norm.is_finite() {
            let tensor = trainer.first_non_finite_grad();
            return Err(Failure::NonFinite { step, loss, norm: grad_norm, tensor });
        }
        trainer.apply_update(&settings.adamw, lr);
        final_loss = loss;
        let tokens_per_s = tokens as f64 / clock.elapsed().as_secs_f64();
        on(Event::Step { step, loss, grad_norm, lr, tokens_per_s });
        if let Some(log) = &mut log {
            log.write(serde_json::json!({
                "step": step, "train/loss": loss, "train/grad_norm": grad_norm, "train/lr": lr,
                "train/tokens_per_s": tokens_per_s,
            }))?;
        }
        let due = settings.eval_every.is_some_and(|every| step.is_multiple_of(every)) || step == settings.steps;
        if due && !evals.is_empty() {
            scores = evaluate(trainer, &mut evaluators, evals)?;
            on(Event::Eval { step, scores: &scores });
            if let Some(log) = &mut log {
                for s in &scores {
                    log.write(eval_line(step, s))?;
                }
            }
        }
        let stopping = due && plateaued(&mut plateau, settings, &scores) && step < settings.steps;
        let checkpoint_due =
            settings.checkpoint_every.is_some_and(|every| step.is_multiple_of(every)) || step == settings.steps;
        if (checkpoint_due || stopping) && settings.out.is_some() {
            save_checkpoint(trainer, settings, on)?;
            saved_at = step;
        }
        if stopping {
            plateaued_at = Some(step);
            break;
        }
    }
    if resumed_complete && !evals.is_empty() {
        scores = evaluate(trainer, &mut evaluators, evals)?;
    }
    Ok(Summary { final_loss, scores, seconds: started.elapsed().as_secs_f64(), stopped_at: None, plateaued_at })
}

/// Whether the watched set's latest score ends the run (see [`crate::protocol::Plateau`]).
fn plateaued(plateau: &mut crate::protocol::Plateau, settings: &Settings, scores: &[Score]) -> bool {
    let Some(rule) = &settings.plateau else { return false };
    scores.get(rule.set).is_some_and(|score| plateau.plateaued(rule, crate::protocol::higher_is_better(score)))
}

/// The `metrics.jsonl` line of one evaluation: `eval/<task>/<figure>` keys — the loss,
/// and perplexity (and bits per byte where known) or accuracy (the answers counted, and
/// `accuracy/<group>` per group).
pub fn eval_line(step: u64, score: &Score) -> serde_json::Value {
    let key = |figure: &str| format!("eval/{}/{figure}", score.name);
    let mut line = serde_json::Map::new();
    line.insert("step".into(), step.into());
    line.insert(key("loss"), score.loss.into());
    if score.perplexity {
        line.insert(key("perplexity"), score.perplexity().into());
        if let Some(bpb) = score.bits_per_byte {
            line.insert(key("bits_per_byte"), bpb.into());
        }
    } else {
        line.insert(key("accuracy"), score.accuracy().into());
        line.insert(key("answers"), score.total.into());
        for (group, correct, total) in &score.by_group {
            line.insert(key(&format!("accuracy/{group}")), (*correct as f64 / (*total).max(1) as f64).into());
        }
    }
    serde_json::Value::Object(line)
}

/// The training loss of a `metrics.jsonl` line, if it is a step's: `train/loss`, or in
/// a log written before the keys were namespaced, `loss` on a line without `eval`.
pub fn train_loss(line: &serde_json::Value) -> Option<f64> {
    line["train/loss"].as_f64().or_else(|| if line.get("eval").is_none() { line["loss"].as_f64() } else { None })
}

/// A checkpoint of the trainer's step under the run directory, if there is one.
fn save_checkpoint(trainer: &Trainer, settings: &Settings, on: &mut dyn FnMut(Event)) -> Result<(), Failure> {
    let Some(out) = &settings.out else { return Ok(()) };
    let root = out.join("checkpoints");
    match crate::checkpoint::save(&root, trainer, settings.seed) {
        Ok(path) => {
            on(Event::Checkpoint { step: trainer.step, path: &path });
            match settings.keep_checkpoints {
                Some(keep) => crate::checkpoint::prune(&root, &path, keep).map_err(|error| {
                    Failure::Log(format!("step {}: checkpoint `{}` written, but {error}", trainer.step, path.display()))
                }),
                None => Ok(()),
            }
        }
        Err(error) => {
            Err(Failure::Checkpoint { step: trainer.step, error, previous: crate::checkpoint::latest(&root) })
        }
    }
}

/// Forward and backward over the step's micro-batches (micro-batch `m` of step `s` is
/// data batch `(s − 1) · grad_accum + m + 1`), leaving their mean gradient for the
/// update; returns the mean loss, the gradient norm and the tokens seen. One
/// micro-batch is one unit of device work and one wait ([`Trainer::forward_backward_norm`]).
fn accumulate(
    trainer: &mut Trainer,
    task: &dyn Task,
    settings: &Settings,
    step: u64,
) -> Result<(f32, f32, usize), Failure> {
    let micro = settings.grad_accum.max(1);
    if micro == 1 {
        let batch = task.batch(settings.seed, step, settings.batch);
        let stats = trainer.forward_backward_norm(&batch.inputs(), &settings.adamw)?;
        return Ok((stats.loss, stats.grad_norm, batch.tokens.len()));
    }
    let mut loss = 0.0;
    let mut total: Option<Vec<Vec<f32>>> = None;
    let mut tokens = 0;
    for m in 0..micro {
        let batch = task.batch(settings.seed, (step - 1) * micro + m + 1, settings.batch);
        tokens += batch.tokens.len();
        loss += trainer.forward_backward(&batch.inputs())? / micro as f32;
        let grads = trainer.grads();
        match &mut total {
            None => total = Some(grads),
            Some(sum) => sum.iter_mut().zip(&grads).for_each(|(s, g)| s.iter_mut().zip(g).for_each(|(a, b)| *a += b)),
        }
    }
    let mut sum = total.expect("at least one micro-batch");
    sum.iter_mut().flatten().for_each(|g| *g /= micro as f32);
    trainer.set_grads(&sum)?;
    Ok((loss, trainer.gradient_norm(&settings.adamw), tokens))
}

fn evaluate(trainer: &Trainer, evaluators: &mut [Trainer], evals: &[EvalSet]) -> Result<Vec<Score>, Failure> {
    let mut scores = Vec::new();
    for (evaluator, set) in evaluators.iter_mut().zip(evals) {
        evaluator.copy_params_from(trainer);
        scores.push(score(evaluator, set)?);
    }
    Ok(scores)
}

/// `metrics.jsonl`: one JSON object per step (`train/loss`, `train/grad_norm`,
/// `train/lr`, `train/tokens_per_s`) and per evaluation ([`eval_line`]), every key but
/// `step` namespaced so a training loss and an evaluation loss never share one, as in
/// the TensorBoard tags. Opening it for a run
/// that resumes at step `s` drops the lines of later steps (a killed run may have
/// logged past its last checkpoint), so the log reads as one uninterrupted run.
struct Metrics {
    file: std::fs::File,
    /// The same lines as TensorBoard events.
    events: crate::tensorboard::Events,
    /// The loss of the last step logged before the resume.
    last_loss: Option<f32>,
}

impl Metrics {
    fn open(out: &std::path::Path, resumed_at: u64) -> Result<Metrics, Failure> {
        let fail = |e: std::io::Error| Failure::Log(format!("`{}`: {e}", out.join("metrics.jsonl").display()));
        std::fs::create_dir_all(out).map_err(fail)?;
        let path = out.join("metrics.jsonl");
        let kept: String = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                let step = serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["step"].as_u64());
                step.is_some_and(|s| s <= resumed_at)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let lines: Vec<serde_json::Value> = kept.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
        let last_loss = lines.iter().rev().find_map(train_loss).map(|l| l as f32);
        std::fs::write(&path, kept).map_err(fail)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(fail)?;
        let events_path = crate::tensorboard::path(out);
        let events = crate::tensorboard::Events::create(out, &lines)
            .map_err(|e| Failure::Log(format!("`{}`: {e}", events_path.display())))?;
        Ok(Metrics { file, events, last_loss })
    }

    fn write(&mut self, line: serde_json::Value) -> Result<(), Failure> {
        use std::io::Write;
        writeln!(self.file, "{line}").map_err(|e| Failure::Log(format!("metrics.jsonl: {e}")))?;
        self.events.write(&line).map_err(|e| Failure::Log(format!("TensorBoard events: {e}")))
    }
}
