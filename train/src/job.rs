//! A training job as `hybc train` runs it, for every front end (the command line, the
//! Python package): the train block's settings with the caller's overrides, the run
//! directory (a fresh `runs/<stem>-N` beside an earlier run; `--resume`; fine-tuning
//! from other weights), the model's text kept in it, the compiled trainer, then the
//! loop ([`crate::run::train`]). What happens is reported as [`Message`]s; the front end
//! decides how to show them (a progress bar, lines, a notebook callback).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::LrSchedule;
use hyb_runtime::{AdamW, Trainer};

use crate::run::{Event, Settings};
use crate::tasks::{eval_sets, task};

/// The caller's overrides of the train block, and where the run goes.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub steps: Option<u64>,
    pub batch: Option<u64>,
    pub seq_len: Option<u64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    /// Time every kernel (the trainer's profile, in [`Outcome::trainer`]).
    pub profile: bool,
    /// The run directory [default: `runs/<file stem>`, or the first free `-N` after it].
    pub out: Option<PathBuf>,
    /// Continue from the run directory's latest checkpoint; start afresh if there is none
    /// (a run stopped before its first checkpoint).
    pub resume: bool,
    /// Start from these weights (a checkpoint or a published fla / Hugging Face
    /// directory) with a fresh optimizer: fine-tuning.
    pub init_from: Option<PathBuf>,
    /// Resume if the run directory has a checkpoint, else start (a sweep's runs).
    pub resume_if_any: bool,
    pub checkpoint_every: Option<u64>,
    /// The text the run directory keeps as `model.hyb` (for eval / generate) and the
    /// path it compiles as [default: the file's own].
    pub model_source: Option<(String, PathBuf)>,
    /// The `--set`s the model was checked with (kept with the run).
    pub sets: Vec<String>,
    /// Where the step runs.
    pub target: hyb_target::Target,
    /// Set from outside (a signal, a notebook's interrupt) to stop at the next step
    /// boundary with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// A sweep protocol's run: scored on a held-out set too, and perhaps stopped when
    /// that score plateaus.
    pub protocol: Option<Protocol>,
    /// This process as one rank of a data-parallel run (`hybc train --gpus N`'s
    /// children, or a launcher's processes): it joins the others, trains its share of
    /// each batch, and only rank 0 reports and writes. None: one device.
    pub launch: Option<hyb_dist::Launch>,
}

/// What a sweep's protocol asks of one run.
#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    /// Stop once the held-out score has plateaued.
    pub plateau: Option<hyb_compiler::ir::train::Plateau>,
}

/// The evaluation sets of a run: the model's, then, for a protocol's run, the held-out
/// set of its first (last, so the test sets keep their places; see
/// [`crate::protocol::held_out`]).
fn evaluation_sets(
    model: &Model,
    seq_len: usize,
    protocol: Option<&Protocol>,
) -> Result<(Vec<crate::eval::EvalSet>, Vec<String>), String> {
    let (mut evals, skipped) = eval_sets(model, seq_len)?;
    if protocol.is_some() {
        let (twin, _) = eval_sets(model, seq_len)?;
        let twin = twin.into_iter().next().ok_or("the protocol needs an evaluation set to choose on")?;
        let (test, held_out) = crate::protocol::held_out(evals.remove(0), twin);
        evals.insert(0, test);
        evals.push(held_out);
    }
    Ok((evals, skipped))
}

/// What the job reports as it goes.
pub enum Message<'a> {
    /// A line of information (a skipped evaluation, the run directory chosen, a resume).
    Note(String),
    /// The step is compiled and the loop starts.
    Started(&'a Started),
    /// The loop's steps, evaluations and checkpoints.
    Event(Event<'a>),
}

/// The job as it starts.
pub struct Started {
    pub compile_seconds: f64,
    pub device: String,
    pub kernels: usize,
    pub arena_bytes: usize,
    pub steps: u64,
    pub batch: usize,
    pub seq_len: usize,
    /// The step the loop starts after (a resumed run's).
    pub resumed_at: u64,
    pub out: PathBuf,
}

/// What a finished (or stopped) job reports.
pub struct Outcome {
    pub final_loss: f32,
    pub scores: Vec<crate::eval::Score>,
    /// Stopped on request after this step, before the last.
    pub stopped_at: Option<u64>,
    /// Where a protocol's plateau stop ended the run before its last step.
    pub plateaued_at: Option<u64>,
    pub seconds: f64,
    pub started: Started,
    /// The trained model (its profile, when asked for).
    pub trainer: Trainer,
}

/// `runs/<file stem>`; a new run (not resumed) whose directory already holds checkpoints
/// goes to the first free `runs/<file stem>-N`, so running a command twice never
/// collides with the first run — and says so.
pub fn default_run_dir(path: &Path, resume: bool, on: &mut dyn FnMut(Message)) -> PathBuf {
    let stem = path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
    let base = Path::new("runs").join(&stem);
    let taken = |dir: &Path| crate::checkpoint::latest(&dir.join("checkpoints")).is_some();
    if resume || !taken(&base) {
        return base;
    }
    let free =
        (2..).map(|n| Path::new("runs").join(format!("{stem}-{n}"))).find(|dir| !taken(dir)).expect("a free name");
    on(Message::Note(format!(
        "writing to {} ({} holds an earlier run; --resume continues that one)",
        free.display(),
        base.display()
    )));
    free
}

/// The run keeps the model's text and `--set`s (see [`crate::model_file::keep_model`]).
fn keep_model_source(path: &Path, out: &Path, options: &Options) -> Result<(), String> {
    match &options.model_source {
        Some((text, compiled_as)) => crate::model_file::keep_model(out, text, compiled_as, &options.sets),
        None => {
            let text = hyb_compiler::encoding::read_source(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            crate::model_file::keep_model(out, &text, path, &options.sets)
        }
    }
}

/// The loop's settings: the train block's, with the caller's overrides; a protocol's
/// plateau stop watches the last of `eval_count` sets (its held-out set).
fn settings(model: &Model, options: &Options, out: PathBuf, eval_count: usize) -> Settings {
    let block = model.train.as_ref();
    let mut adamw = AdamW::of(model);
    if let Some(lr) = options.lr {
        adamw.lr = lr;
    }
    Settings {
        steps: options.steps.or(block.map(|t| t.steps)).unwrap_or(100),
        batch: options.batch.or(block.map(|t| t.batch)).unwrap_or(8) as usize,
        seed: options.seed.or(block.map(|t| t.seed)).unwrap_or(0),
        adamw,
        schedule: block.map_or(LrSchedule::Constant { warmup: 0 }, |t| t.schedule.clone()),
        eval_every: block.and_then(|t| t.eval_every),
        grad_accum: block.map_or(1, |t| t.grad_accum),
        out: Some(out),
        checkpoint_every: options.checkpoint_every.or(block.and_then(|t| t.checkpoint_every)),
        keep_checkpoints: block.and_then(|t| t.keep_checkpoints),
        stop: options.stop.clone(),
        plateau: options.protocol.and_then(|p| p.plateau).map(|rule| crate::protocol::PlateauStop {
            set: eval_count - 1,
            patience: rule.patience,
            min_delta: rule.min_delta,
        }),
    }
}

/// Resumes from the run's latest checkpoint, or starts from `init_from`'s weights (a
/// fresh optimizer), or from the initialised weights; may change the data seed.
fn starting_point(
    trainer: &mut Trainer,
    settings: &mut Settings,
    options: &Options,
    on: &mut dyn FnMut(Message),
) -> Result<(), String> {
    let checkpoints = settings.out.as_ref().expect("a run directory").join("checkpoints");
    match crate::checkpoint::latest(&checkpoints) {
        Some(latest) if options.resume || options.resume_if_any => {
            settings.seed = crate::checkpoint::load(&latest, trainer).map_err(|e| e.to_string())?;
            on(Message::Note(format!("resumed from {} (step {})", latest.display(), trainer.step)));
        }
        Some(_) => {
            return Err(format!(
                "`{}` already holds checkpoints: pass --resume to continue that run, or --out for a new one",
                checkpoints.display()
            ));
        }
        // Killed before its first checkpoint (or never started): nothing to continue.
        None if options.resume => on(Message::Note(format!(
            "--resume: no checkpoint in `{}` yet; starting the run from step 0",
            checkpoints.display()
        ))),
        None => {
            if let Some(from) = &options.init_from {
                crate::checkpoint::load_weights_into(from, trainer).map_err(|e| format!("--init-from: {e}"))?;
                on(Message::Note(format!("initialised from {} (a fresh optimizer)", from.display())));
            }
        }
    }
    Ok(())
}

/// Trains `model` (checked from `path`) as `hybc train` does.
pub fn train(path: &Path, model: &Model, options: &Options, on: &mut dyn FnMut(Message)) -> Result<Outcome, String> {
    // A data-parallel run reports through rank 0 alone.
    let reports = options.launch.as_ref().is_none_or(|launch| launch.rank == 0);
    let on: &mut dyn FnMut(Message) = if reports { on } else { &mut |_| {} };
    let task = task(model, options.seq_len)?;
    if model.train.is_none() {
        on(Message::Note(format!(
            "{} has no train block: training a synthetic copy task ({}-token sequences); a train block (or --set data=...) chooses the data",
            path.display(),
            task.seq_len()
        )));
    }
    let (evals, skipped) = evaluation_sets(model, task.seq_len(), options.protocol.as_ref())?;
    for what in skipped {
        on(Message::Note(format!("note: evaluation of {what} is not supported yet; skipped")));
    }
    let mut out = PathBuf::new();
    if reports {
        out = options.out.clone().unwrap_or_else(|| default_run_dir(path, options.resume, on));
    }
    let joined =
        options.launch.as_ref().map(|launch| crate::parallel::join(launch, options.target, &out)).transpose()?;
    if let Some(joined) = &joined {
        out = joined.out.clone();
    }
    let mut settings = settings(model, options, out.clone(), evals.len());
    if reports {
        keep_model_source(path, &out, options)?;
    }
    let clock = Instant::now();
    // Each rank's trainer runs its rows of the batch.
    let (rank, world) = options.launch.as_ref().map_or((0, 1), |launch| (launch.rank, launch.world));
    let rows = hyb_dist::shard::rows(settings.batch, rank, world).map_err(|e| e.to_string())?;
    let mut trainer =
        Trainer::for_target(model, options.target, rows.len(), task.seq_len()).map_err(|e| e.to_string())?;
    trainer.init_params(settings.seed);
    starting_point(&mut trainer, &mut settings, options, on)?;
    let mut parallel = joined.map(|joined| crate::parallel::start(&mut trainer, joined)).transpose()?;
    if let Some(parallel) = &parallel {
        let (buckets, cap) = parallel.buckets();
        let (world, cap) = (crate::parallel::Parallel::world(parallel), cap as f64 / f64::from(1 << 20));
        on(Message::Note(format!(
            "data parallel over {world} GPUs: the gradients in {buckets} buckets of about {cap:.2} MiB"
        )));
    }
    if options.profile {
        trainer.profile = Some(Default::default());
    }
    let started = Started {
        compile_seconds: clock.elapsed().as_secs_f64(),
        device: match &options.launch {
            Some(launch) => format!("{} × {} (data parallel over NCCL)", trainer.device(), launch.world),
            None => trainer.device(),
        },
        kernels: trainer.program.kernels.len(),
        arena_bytes: trainer.program.arena_bytes,
        steps: settings.steps,
        batch: settings.batch,
        seq_len: task.seq_len(),
        resumed_at: trainer.step,
        out,
    };
    on(Message::Started(&started));
    let ranked = parallel.as_mut().map(|p| p as &mut dyn crate::parallel::Parallel);
    let summary = crate::run::train_ranked(&mut trainer, task.as_ref(), &evals, &settings, ranked, &mut |event| {
        on(Message::Event(event))
    })
    .map_err(|e| {
        // The other ranks stop with this rank's reason, not a closed connection.
        let message = e.to_string();
        if let Some(parallel) = &parallel {
            crate::parallel::Parallel::fail(parallel, &format!("failed: {message}"));
        }
        message
    })?;
    Ok(Outcome {
        final_loss: summary.final_loss,
        scores: summary.scores,
        stopped_at: summary.stopped_at,
        plateaued_at: summary.plateaued_at,
        seconds: summary.seconds,
        started,
        trainer,
    })
}
