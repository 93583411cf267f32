//! `hybc train`: compiles a model's training step and trains it with the `train`
//! block's settings (overridable on the command line) — the job is the library's
//! ([`hyb_train::job`]); here it shows: a progress bar or a line per `log_every` steps,
//! evaluation lines, the plots and a summary table at the end.

use std::path::Path;

use hyb_compiler::ir::Model;
pub use hyb_train::job::Protocol;
use hyb_train::job::{self, Message};
use hyb_train::run::Event;

/// The library job's options, and the signals that stop it.
pub struct Options {
    /// Command-line overrides of the train block, the run directory, the target, a
    /// sweep protocol's settings (its `stop` flag comes from `interrupt`).
    pub job: job::Options,
    /// SIGINT / SIGTERM handling: the run stops at a step boundary with a checkpoint.
    pub interrupt: Option<crate::interrupt::Interrupt>,
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
    /// The step this call began after (a resumed run's checkpoint; 0 for a fresh run) and,
    /// stopped by a signal, the step it stopped after.
    pub resumed_at: u64,
    pub stopped_at: Option<u64>,
    /// What it trained on, as the runtime describes it (`cuda (NVIDIA H100 80GB HBM3)`,
    /// `cpu (2 threads)`).
    pub device: String,
}

impl Outcome {
    /// What a job that ended reports: stopped on request (the exit status the signal
    /// calls for, SIGINT's where none was received: a caller's stop) or finished.
    pub fn of_job(outcome: &job::Outcome, interrupt: Option<&crate::interrupt::Interrupt>) -> Outcome {
        let steps = outcome.started.steps;
        if outcome.stopped_at.is_some() {
            let status = interrupt.and_then(|i| i.received()).map_or(130, |(_, status)| status);
            return Outcome {
                final_loss: outcome.final_loss,
                scores: Vec::new(),
                stopped: Some(status),
                steps,
                plateaued_at: None,
                resumed_at: outcome.started.resumed_at,
                stopped_at: outcome.stopped_at,
                device: outcome.started.device.clone(),
            };
        }
        let (final_loss, scores, plateaued_at) = (outcome.final_loss, outcome.scores.clone(), outcome.plateaued_at);
        let (resumed_at, device) = (outcome.started.resumed_at, outcome.started.device.clone());
        Outcome { final_loss, scores, stopped: None, steps, plateaued_at, resumed_at, stopped_at: None, device }
    }
}

impl Options {
    /// The library's job options, the interrupt as its stop flag.
    pub fn job(&self) -> job::Options {
        job::Options { stop: self.interrupt.as_ref().map(|interrupt| interrupt.requested.clone()), ..self.job.clone() }
    }
}

/// Trains as [`job::train`] does, with a progress bar (or lines), the plots and a
/// summary table.
pub fn train(path: &Path, model: &Model, options: &Options) -> Result<Outcome, String> {
    let log_every = model.train.as_ref().map_or(1, |t| t.log_every);
    let mut progress: Option<Progress> = None;
    let mut steps = 0;
    let outcome = job::train(path, model, &options.job(), &mut |message| match message {
        Message::Note(line) => println!("{line}"),
        Message::Started(started) => {
            println!(
                "compiled {} in {:.2} s for {}: {} kernels, arena {:.1} MiB; {} steps of batch {} × {} tokens into {}",
                path.display(),
                started.compile_seconds,
                started.device,
                started.kernels,
                started.arena_bytes as f64 / (1 << 20) as f64,
                started.steps,
                started.batch,
                started.seq_len,
                started.out.display(),
            );
            steps = started.steps;
            progress = Some(Progress::new(started.steps, started.resumed_at));
        }
        Message::Event(event) => {
            let progress = progress.as_ref().expect("the job starts before its first event");
            show(progress, &event, log_every, steps);
        }
    });
    if let Some(progress) = &progress {
        progress.finish();
    }
    let outcome = outcome?;
    if let Some(step) = outcome.stopped_at {
        let signal = options.interrupt.as_ref().and_then(|i| i.received()).map_or("a signal", |(signal, _)| signal);
        println!("stopped by {signal} after step {step}; `--resume` continues the run from there");
        return Ok(Outcome::of_job(&outcome, options.interrupt.as_ref()));
    }
    let started = &outcome.started;
    if let Some(step) = outcome.plateaued_at {
        println!("stopped at step {step} of {}: the held-out score had plateaued", started.steps);
    } else if started.resumed_at >= started.steps {
        println!("the run was complete at step {}; its last loss {:.4}", started.resumed_at, outcome.final_loss);
    } else {
        println!("trained {} steps in {:.1} s; final loss {:.4}", started.steps, outcome.seconds, outcome.final_loss);
    }
    let out = &started.out;
    if let Ok(metrics) = std::fs::read_to_string(out.join("metrics.jsonl")) {
        let mut written = Vec::new();
        for (name, svg) in crate::plot::run_svgs(&metrics) {
            written.extend(crate::plot::write_chart(out, name, &svg)?);
        }
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        println!("plots: {}", names.join(", "));
    }
    if !outcome.scores.is_empty() {
        println!("\n| task | result | loss |\n|---|---|---|");
        for score in &outcome.scores {
            println!("| {} | {} | {:.4} |", score.name, score.headline(), score.loss);
        }
    }
    if let Some(memory) = outcome.trainer.memory_report() {
        println!("\ndevice memory in use, by stage:\n{memory}");
    }
    if let Some(profile) = &outcome.trainer.profile {
        println!("\ntime per kernel:\n{}", profile.table());
    }
    Ok(Outcome::of_job(&outcome, options.interrupt.as_ref()))
}

/// One event of the loop on the bar, or as a line.
fn show(progress: &Progress, event: &Event, log_every: u64, steps: u64) {
    match event {
        Event::Step { step, loss, grad_norm, lr, tokens_per_s } => {
            let (step, loss, tokens_per_s) = (*step, *loss, *tokens_per_s);
            let line = format!(
                "step {step:>5}  loss {loss:.4}  grad_norm {grad_norm:.3}  lr {lr:.2e}  {tokens_per_s:.0} tokens/s"
            );
            progress.step(step, &format!("loss {loss:.4}  lr {lr:.1e}  {:.1}k tokens/s", tokens_per_s / 1e3));
            // Beside a bar, a line every twentieth of the run at most.
            let every = if progress.bar.is_some() { log_every.max(steps / 20).max(1) } else { log_every };
            if step % every == 0 || step == steps {
                progress.line(&line);
            }
        }
        Event::Checkpoint { step, path } => progress.line(&format!("checkpoint {step:>5}  {}", path.display())),
        Event::Eval { step, scores } => {
            for score in *scores {
                progress.line(&format!("eval {step:>5}  {}  {}  loss {:.4}", score.name, score.headline(), score.loss));
                if !score.by_group.is_empty() {
                    progress.line(&format!("                {}", score.breakdown()));
                }
            }
        }
    }
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
