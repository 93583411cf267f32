//! `hybc train`: compiles a model's training step and trains it on the CPU with the
//! `train` block's settings (overridable on the command line): a line per `log_every`
//! steps, evaluation lines, a summary table at the end.

use std::path::Path;
use std::time::Instant;

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::LrSchedule;
use hyb_runtime::{AdamW, Trainer};
use hyb_train::run::{Event, Settings, train as run};
pub use hyb_train::tasks::eval_sets;
use hyb_train::tasks::task;

/// Command-line overrides of the train block.
pub struct Options {
    pub steps: Option<u64>,
    pub batch: Option<u64>,
    pub seq_len: Option<u64>,
    pub lr: Option<f64>,
    pub seed: Option<u64>,
    /// Print the time per kernel at the end.
    pub profile: bool,
    /// The run directory [default: `runs/<file stem>`].
    pub out: Option<std::path::PathBuf>,
    /// Continue from the run directory's latest checkpoint; start afresh if there is none
    /// (a run stopped before its first checkpoint).
    pub resume: bool,
    /// Start from these weights (a checkpoint or a published fla / Hugging Face
    /// directory) with a fresh optimizer: fine-tuning.
    pub init_from: Option<std::path::PathBuf>,
    /// Resume if the run directory has a checkpoint, else start (a sweep's runs).
    pub resume_if_any: bool,
    pub checkpoint_every: Option<u64>,
    /// The text the run directory keeps as `model.hyb` (for `hybc eval` / `generate`)
    /// and the path it compiles as [default: the file's own].
    pub model_source: Option<(String, std::path::PathBuf)>,
    /// The command line's `--set`s the model was checked with (kept with the run).
    pub sets: Vec<String>,
    /// Where the step runs.
    pub target: hyb_driver::Target,
    /// SIGINT / SIGTERM handling: the run stops at a step boundary with a checkpoint.
    pub interrupt: Option<crate::interrupt::Interrupt>,
    /// A sweep protocol's run: scored on a held-out set too, and perhaps stopped when
    /// that score plateaus.
    pub protocol: Option<Protocol>,
}

/// What a sweep's protocol asks of one run.
#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    /// Stop once the held-out score has plateaued.
    pub plateau: Option<hyb_compiler::ir::train::Plateau>,
}

/// The evaluation sets of a run: the model's, then, for a protocol's run, the held-out
/// set of its first (last, so the test sets keep their places; see
/// [`hyb_train::protocol::held_out`]).
fn evaluation_sets(
    model: &Model,
    seq_len: usize,
    protocol: Option<&Protocol>,
) -> Result<(Vec<hyb_train::eval::EvalSet>, Vec<String>), String> {
    let (mut evals, skipped) = eval_sets(model, seq_len)?;
    if protocol.is_some() {
        let (twin, _) = eval_sets(model, seq_len)?;
        let twin = twin.into_iter().next().ok_or("the protocol needs an evaluation set to choose on")?;
        let (test, held_out) = hyb_train::protocol::held_out(evals.remove(0), twin);
        evals.insert(0, test);
        evals.push(held_out);
    }
    Ok((evals, skipped))
}

/// `runs/<file stem>`; a new run (not `--resume`) whose directory already holds
/// checkpoints goes to the first free `runs/<file stem>-N`, so running a command twice
/// never collides with the first run — and says so.
fn default_run_dir(path: &Path, resume: bool) -> std::path::PathBuf {
    let stem = path.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
    let base = Path::new("runs").join(&stem);
    let taken = |dir: &Path| hyb_train::checkpoint::latest(&dir.join("checkpoints")).is_some();
    if resume || !taken(&base) {
        return base;
    }
    let free =
        (2..).map(|n| Path::new("runs").join(format!("{stem}-{n}"))).find(|dir| !taken(dir)).expect("a free name");
    println!("writing to {} ({} holds an earlier run; --resume continues that one)", free.display(), base.display());
    free
}

/// The run keeps the model's text and `--set`s (see [`crate::infer::keep_model`]).
fn keep_model_source(path: &Path, out: &Path, options: &Options) -> Result<(), String> {
    match &options.model_source {
        Some((text, compiled_as)) => crate::infer::keep_model(out, text, compiled_as, &options.sets),
        None => {
            let text = hyb_compiler::encoding::read_source(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            crate::infer::keep_model(out, &text, path, &options.sets)
        }
    }
}

/// The weights of a checkpoint or a published fla / Hugging Face directory as the
/// run's starting point (a fresh optimizer: fine-tuning).
fn init_from(trainer: &mut Trainer, from: &Path) -> Result<(), String> {
    hyb_train::checkpoint::load_weights_into(from, trainer).map_err(|e| format!("--init-from: {e}"))?;
    println!("initialised from {} (a fresh optimizer)", from.display());
    Ok(())
}

/// What a finished run reports.
pub struct Outcome {
    pub final_loss: f32,
    pub scores: Vec<hyb_train::eval::Score>,
    /// Stopped by a signal before the last step: the exit status it calls for.
    pub stopped: Option<u8>,
    /// The steps the run was to train, and where a plateau stopped it before them.
    pub steps: u64,
    pub plateaued_at: Option<u64>,
}

pub fn train(path: &Path, model: &Model, options: &Options) -> Result<Outcome, String> {
    let block = model.train.as_ref();
    let task = task(model, options.seq_len)?;
    if block.is_none() {
        println!(
            "{} has no train block: training a synthetic copy task ({}-token sequences); a train block (or --set data=...) chooses the data",
            path.display(),
            task.seq_len()
        );
    }
    let (evals, skipped) = evaluation_sets(model, task.seq_len(), options.protocol.as_ref())?;
    for what in skipped {
        println!("note: evaluation of {what} is not supported yet; skipped");
    }
    let mut adamw = AdamW::of(model);
    if let Some(lr) = options.lr {
        adamw.lr = lr;
    }
    let settings = Settings {
        steps: options.steps.or(block.map(|t| t.steps)).unwrap_or(100),
        batch: options.batch.or(block.map(|t| t.batch)).unwrap_or(8) as usize,
        seed: options.seed.or(block.map(|t| t.seed)).unwrap_or(0),
        adamw,
        schedule: block.map_or(LrSchedule::Constant { warmup: 0 }, |t| t.schedule.clone()),
        eval_every: block.and_then(|t| t.eval_every),
        grad_accum: block.map_or(1, |t| t.grad_accum),
        out: Some(options.out.clone().unwrap_or_else(|| default_run_dir(path, options.resume))),
        checkpoint_every: options.checkpoint_every.or(block.and_then(|t| t.checkpoint_every)),
        keep_checkpoints: block.and_then(|t| t.keep_checkpoints),
        stop: options.interrupt.as_ref().map(|interrupt| interrupt.requested.clone()),
        plateau: options.protocol.and_then(|p| p.plateau).map(|rule| hyb_train::protocol::PlateauStop {
            set: evals.len() - 1,
            patience: rule.patience,
            min_delta: rule.min_delta,
        }),
    };
    let log_every = block.map_or(1, |t| t.log_every);
    keep_model_source(path, settings.out.as_ref().expect("a run directory"), options)?;
    let started = Instant::now();
    let mut trainer =
        Trainer::for_target(model, options.target, settings.batch, task.seq_len()).map_err(|e| e.to_string())?;
    trainer.init_params(settings.seed);
    let mut settings = settings;
    let checkpoints = settings.out.as_ref().expect("a run directory").join("checkpoints");
    match hyb_train::checkpoint::latest(&checkpoints) {
        Some(latest) if options.resume || options.resume_if_any => {
            settings.seed = hyb_train::checkpoint::load(&latest, &mut trainer).map_err(|e| e.to_string())?;
            println!("resumed from {} (step {})", latest.display(), trainer.step);
        }
        Some(_) => {
            return Err(format!(
                "`{}` already holds checkpoints: pass --resume to continue that run, or --out for a new one",
                checkpoints.display()
            ));
        }
        // Killed before its first checkpoint (or never started): nothing to continue.
        None if options.resume => {
            println!("--resume: no checkpoint in `{}` yet; starting the run from step 0", checkpoints.display())
        }
        None => {
            if let Some(from) = &options.init_from {
                init_from(&mut trainer, from)?;
            }
        }
    }
    if options.profile {
        trainer.profile = Some(Default::default());
    }
    let resumed_at = trainer.step;
    println!(
        "compiled {} in {:.2} s for {}: {} kernels, arena {:.1} MiB; {} steps of batch {} × {} tokens into {}",
        path.display(),
        started.elapsed().as_secs_f64(),
        trainer.device(),
        trainer.program.kernels.len(),
        trainer.program.arena_bytes as f64 / (1 << 20) as f64,
        settings.steps,
        settings.batch,
        task.seq_len(),
        settings.out.as_ref().expect("a run directory").display(),
    );
    let progress = Progress::new(settings.steps, trainer.step);
    let summary = run(&mut trainer, task.as_ref(), &evals, &settings, &mut |event| match event {
        Event::Step { step, loss, grad_norm, lr, tokens_per_s } => {
            let line = format!(
                "step {step:>5}  loss {loss:.4}  grad_norm {grad_norm:.3}  lr {lr:.2e}  {tokens_per_s:.0} tokens/s"
            );
            progress.step(step, &format!("loss {loss:.4}  lr {lr:.1e}  {:.1}k tokens/s", tokens_per_s / 1e3));
            // Beside a bar, a line every twentieth of the run at most.
            let every = if progress.bar.is_some() { log_every.max(settings.steps / 20).max(1) } else { log_every };
            if step % every == 0 || step == settings.steps {
                progress.line(&line);
            }
        }
        Event::Checkpoint { step, path } => progress.line(&format!("checkpoint {step:>5}  {}", path.display())),
        Event::Eval { step, scores } => {
            for score in scores {
                progress.line(&format!("eval {step:>5}  {}  {}  loss {:.4}", score.name, score.headline(), score.loss));
                if !score.by_group.is_empty() {
                    progress.line(&format!("                {}", score.breakdown()));
                }
            }
        }
    });
    progress.finish();
    let summary = summary.map_err(|e| e.to_string())?;
    if let Some(step) = summary.stopped_at {
        let (signal, status) = options.interrupt.as_ref().and_then(|i| i.received()).unwrap_or(("a signal", 130));
        println!("stopped by {signal} after step {step}; `--resume` continues the run from there");
        let (steps, plateaued_at) = (settings.steps, None);
        return Ok(Outcome {
            final_loss: summary.final_loss,
            scores: Vec::new(),
            stopped: Some(status),
            steps,
            plateaued_at,
        });
    }
    if let Some(step) = summary.plateaued_at {
        println!("stopped at step {step} of {}: the held-out score had plateaued", settings.steps);
    } else if resumed_at >= settings.steps {
        println!("the run was complete at step {resumed_at}; its last loss {:.4}", summary.final_loss);
    } else {
        println!("trained {} steps in {:.1} s; final loss {:.4}", settings.steps, summary.seconds, summary.final_loss);
    }
    let out = settings.out.as_ref().expect("a run directory");
    if let Ok(metrics) = std::fs::read_to_string(out.join("metrics.jsonl")) {
        let mut written = Vec::new();
        for (name, svg) in crate::plot::run_svgs(&metrics) {
            written.extend(crate::plot::write_chart(out, name, &svg)?);
        }
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        println!("plots: {}", names.join(", "));
    }
    if !summary.scores.is_empty() {
        println!("\n| task | result | loss |\n|---|---|---|");
        for score in &summary.scores {
            println!("| {} | {} | {:.4} |", score.name, score.headline(), score.loss);
        }
    }
    if let Some(profile) = &trainer.profile {
        println!("\ntime per kernel:\n{}", profile.table());
    }
    let (steps, plateaued_at) = (settings.steps, summary.plateaued_at);
    Ok(Outcome { final_loss: summary.final_loss, scores: summary.scores, stopped: None, steps, plateaued_at })
}

/// A progress bar with loss, tokens/s and ETA on a terminal; plain lines otherwise (a
/// log file or a pipe gets no bar).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(steps: u64, done: u64) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(steps);
            let style =
                indicatif::ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} steps  {msg}  eta {eta}")
                    .expect("a valid template");
            bar.set_style(style);
            bar.set_position(done);
            bar
        });
        Progress { bar }
    }

    fn step(&self, step: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(message.to_string());
        }
    }

    /// A line above the bar (or on its own without one).
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
