//! `hybc`: the command line of the hyb compiler.
//!
//! Exit codes: 0 success; 1 a problem in the user's files (diagnostics, an export
//! that cannot express the model, a config that cannot be imported, unformatted files
//! under `fmt --check`, a `.hyb` file that is not UTF-8); 2 a usage error (bad flags,
//! unreadable paths); 130 / 143 `train` or `sweep` stopped by SIGINT / SIGTERM at a
//! checkpoint (see `interrupt.rs`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hybc::{interrupt, sweep, train};

mod cli;
mod export;
mod infer;
mod ranks;
mod target;
mod tokenize;
mod verify;

use clap::Parser;
use cli::{Cli, Command, EmitArg, ExportDtype, ExportFormat, Format, TokenDtypeArg};
use hyb_compiler::ir::train::TokenDtype;
use hyb_compiler::pipeline::{self, Compilation, Emit, EmitOptions};
use hyb_compiler::{fmt, import};
use hyb_driver::{Stage, Target};
use hyb_train::generate::Sampling;
use hyb_train::weights::Stored;

/// Sizes the CPU backend's thread pools before anything runs: rayon's, which the
/// kernels' launches split over, and matrixmultiply's, which the GEMMs use.
fn use_threads(threads: u16) -> Result<(), Failure> {
    // SAFETY: called first in `main`, before any other thread exists.
    unsafe { std::env::set_var("MATMUL_NUM_THREADS", threads.to_string()) };
    rayon::ThreadPoolBuilder::new()
        .num_threads(usize::from(threads))
        .build_global()
        .map_err(|e| Failure::Usage(format!("--threads {threads}: {e}")))
}

/// How a command failed: in the user's files (1) or in how it was called (2).
enum Failure {
    User,
    Usage(String),
    /// Stopped by SIGINT / SIGTERM at a checkpoint: 128 + the signal's number.
    Stopped(u8),
}

fn main() -> ExitCode {
    // Piped into `head`, end quietly as other command-line tools do, not with a panic
    // on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(error) = hyb_driver::check_switches() {
        return exit(Err(Failure::Usage(error)));
    }
    if let Some(threads) = cli.threads
        && let Err(failure) = use_threads(threads)
    {
        return exit(Err(failure));
    }
    let result = match cli.command {
        Command::Check { files } => check(&files),
        Command::Compile { file, emit, format, context, target, megatron_linear, output } => {
            let options = CompileOptions { emit, format, context, target, megatron_linear };
            compile(&file, options, output.as_deref())
        }
        Command::Fmt { files, check, stdout } => format_files(&files, check, stdout),
        Command::Verify { file, target, batch, seq_len, tolerance, seed, sets } => {
            verify::verify(&file, target, &verify::Options { batch, seq_len, tolerance, seed, sets })
        }
        Command::Import { config, output } => import_config(&config, output.as_deref()),
        Command::Tokenize { inputs, tokenizer, output, field, eod, dtype } => {
            let dtype = dtype.map(|d| if d == TokenDtypeArg::U16 { TokenDtype::U16 } else { TokenDtype::U32 });
            let request = tokenize::Request {
                inputs: &inputs,
                tokenizer: tokenizer.as_deref(),
                output: &output,
                field: &field,
                eod,
                dtype,
            };
            tokenize_files(&request)
        }
        Command::Export { file, ckpt, format: ExportFormat::Fla, dtype, output } => {
            let stored = if dtype == ExportDtype::Bf16 { Stored::Bf16 } else { Stored::F32 };
            checkpoint_of(&ckpt).and_then(|ckpt| export_fla(&file, &ckpt, &output, stored))
        }
        // --jobs conflicts with --shard, --report and --runs (clap refuses them together;
        // with --list it plans rather than trains), and --at-once and --wave-marker need
        // --runs: none is set here.
        Command::Sweep {
            file,
            out,
            target,
            jobs: Some(jobs),
            no_mps,
            time_limit,
            deadline_at,
            sets,
            list: false,
            ..
        } if jobs > 1 => {
            let deadline = deadline_of(time_limit, deadline_at);
            install_interrupt().and_then(|interrupt| {
                let options = sweep::Jobs { count: jobs, mps: !no_mps, interrupt: Some(&interrupt), deadline };
                match sweep::jobs(&file, out.as_deref(), target, &sets, &options) {
                    Ok(None) => Ok(()),
                    Ok(Some(status)) => Err(Failure::Stopped(status)),
                    Err(message) => {
                        eprintln!("error: {message}");
                        Err(Failure::User)
                    }
                }
            })
        }
        Command::Sweep { no_mps: true, list: true, .. } => {
            Err(Failure::Usage("--no-mps concerns shards that train; --list trains nothing".into()))
        }
        Command::Sweep { no_mps: true, .. } => {
            Err(Failure::Usage("--no-mps concerns several shards on one GPU; with --jobs 1 none share one".into()))
        }
        Command::Sweep {
            file,
            out,
            target,
            list,
            shard,
            runs,
            report,
            jobs,
            time_limit,
            deadline_at,
            at_once,
            wave_marker,
            sets,
            ..
        } => {
            let deadline = deadline_of(time_limit, deadline_at);
            if list && jobs.is_some() && time_limit.is_none() {
                let usage = "--jobs with --list plans a call: give its --time-limit (what it would start)";
                return exit(Err(Failure::Usage(usage.into())));
            }
            if list && shard.is_some() && time_limit.is_some() {
                let usage = "--time-limit with --list plans a call of the whole sweep: leave out --shard";
                return exit(Err(Failure::Usage(usage.into())));
            }
            let mode = if list {
                sweep::Mode::List(shard, jobs.unwrap_or(1))
            } else if report {
                sweep::Mode::Report
            } else {
                let selection = runs.map(|r| sweep::Selection::Runs(r.0)).or(shard.map(sweep::Selection::Shard));
                sweep::Mode::Train(selection)
            };
            no_flag_and_set(&sets, &[("target", target.is_some())]).and_then(|()| {
                let sharing = Sharing { at_once, wave_marker: wave_marker.as_deref() };
                run_sweep(&file, out.as_deref(), target, &sets, mode, deadline, sharing)
            })
        }
        Command::Eval { file, ckpt, json, target, sets } => no_flag_and_set(&sets, &[("target", target.is_some())])
            .and_then(|()| hyb_train::model_file::refuse_unread_by_evaluation(&sets).map_err(Failure::Usage))
            .and_then(|()| checkpoint_of(&ckpt))
            .and_then(|ckpt| {
                with_checkpoint(file.as_deref(), &ckpt, target, &sets, |model, target| {
                    infer::eval(model, &ckpt, json.as_deref(), target)
                })
            }),
        Command::Generate {
            file,
            ckpt,
            prompt,
            prompts,
            batch,
            tokens,
            temperature,
            top_k,
            top_p,
            stop,
            seed,
            target,
        } => {
            let ckpt = match checkpoint_of(&ckpt) {
                Ok(ckpt) => ckpt,
                Err(usage) => return exit(Err(usage)),
            };
            let sampling = Sampling { temperature, top_k, top_p, seed };
            let prompt = prompt.unwrap_or_default();
            let request = infer::Request { prompt: &prompt, tokens, sampling, stop: &stop };
            with_checkpoint(file.as_deref(), &ckpt, target, &[], |model, target| match &prompts {
                Some(prompts) => infer::generate_file(model, &ckpt, prompts, batch, &request, target),
                None => infer::generate(model, &ckpt, &request, target),
            })
        }
        Command::Train {
            file,
            steps,
            batch,
            seq_len,
            lr,
            seed,
            profile,
            out,
            resume,
            init_from,
            target,
            checkpoint_every,
            gpus,
            sets,
        } => {
            let launch = match ranks::from_env() {
                Ok(launch) => launch,
                Err(usage) => return exit(Err(Failure::Usage(usage))),
            };
            if gpus.is_some() && launch.is_some() {
                let usage =
                    "--gpus starts the ranks itself; under torchrun or srun (RANK / SLURM_PROCID set) leave it out";
                return exit(Err(Failure::Usage(usage.into())));
            }
            let flags = [
                ("steps", steps.is_some()),
                ("batch", batch.is_some()),
                ("seq_len", seq_len.is_some()),
                ("optimizer", lr.is_some()),
                ("seed", seed.is_some()),
                ("target", target.is_some()),
                ("checkpoint_every", checkpoint_every.is_some()),
            ];
            if let Err(usage) = no_flag_and_set(&sets, &flags) {
                return exit(Err(usage));
            }
            let init_from = match init_from.as_deref().map(checkpoint_of).transpose() {
                Ok(init_from) => init_from,
                Err(usage) => return exit(Err(usage)),
            };
            let options = |target| train::Options {
                job: hyb_train::job::Options {
                    steps,
                    batch,
                    seq_len,
                    lr,
                    seed,
                    profile,
                    out,
                    resume,
                    init_from: init_from.clone(),
                    checkpoint_every,
                    sets: sets.clone(),
                    target,
                    launch: launch.clone(),
                    ..Default::default()
                },
                interrupt: None,
            };
            match gpus {
                Some(gpus) => train_on_gpus(&file, target, &sets, gpus, options),
                None => run_training(&file, target, &sets, options),
            }
        }
    };
    exit(result)
}

fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::User) => ExitCode::from(1),
        Err(Failure::Stopped(status)) => ExitCode::from(status),
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn load(path: &Path) -> Result<Compilation, Failure> {
    load_with(path, &[])
}

/// Loads and checks `path` with `--set` texts over its train and eval blocks.
fn load_with(path: &Path, sets: &[String]) -> Result<Compilation, Failure> {
    let compilation = pipeline::check_path_with(path, sets).map_err(|e| unreadable(path, &e))?;
    reported(path, compilation)
}

/// `--ckpt`: a checkpoint directory, or a run directory (one holding `checkpoints/`),
/// which means its latest complete checkpoint (said on stderr).
fn checkpoint_of(ckpt: &Path) -> Result<PathBuf, Failure> {
    let checkpoints = ckpt.join("checkpoints");
    if !checkpoints.is_dir() {
        return Ok(ckpt.to_path_buf());
    }
    let latest = hyb_train::checkpoint::latest(&checkpoints).ok_or_else(|| {
        Failure::Usage(format!("`{}` is a run directory without a complete checkpoint", ckpt.display()))
    })?;
    eprintln!("using {} (the run's latest checkpoint)", latest.display());
    Ok(latest)
}

/// A flag is a shorthand for a field (`--lr` for the optimizer's): giving both the flag
/// and a `--set` of that field is a usage error rather than a silent choice.
fn no_flag_and_set(sets: &[String], flags: &[(&str, bool)]) -> Result<(), Failure> {
    for set in sets {
        let name = hyb_train::model_file::set_field(set);
        let name = name.strip_prefix("train.").unwrap_or(name);
        if let Some((field, _)) = flags.iter().find(|(field, given)| *given && *field == name) {
            let flag = match *field {
                "optimizer" => "--lr".to_string(),
                field => format!("--{}", field.replace('_', "-")),
            };
            return Err(Failure::Usage(format!("`{flag}` and `--set {set}` both set `{field}`: give one of them")));
        }
    }
    Ok(())
}

/// A file that cannot be read: a usage error (no such file), or a problem in the
/// user's file when its bytes are not UTF-8 (said with what they look like).
fn unreadable(path: &Path, error: &std::io::Error) -> Failure {
    match hyb_compiler::encoding::NotUtf8::of(error) {
        Some(why) => {
            eprintln!("error: `{}`: {why}\n  help: {}", path.display(), why.help());
            Failure::User
        }
        None => Failure::Usage(format!("cannot read `{}`: {error}", path.display())),
    }
}

/// Prints a compilation's diagnostics; fails on an error.
fn reported(path: &Path, compilation: Compilation) -> Result<Compilation, Failure> {
    if !compilation.checked.diagnostics.is_empty() {
        let text = if std::io::stderr().is_terminal() {
            compilation.sources.render_colored(&compilation.checked.diagnostics)
        } else {
            compilation.render()
        };
        eprint!("{text}");
    }
    if compilation.checked.has_errors() {
        let count = compilation.checked.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("error: {} has {count} error{}", path.display(), if count == 1 { "" } else { "s" });
        return Err(Failure::User);
    }
    Ok(compilation)
}

fn check(files: &[PathBuf]) -> Result<(), Failure> {
    let mut failed = false;
    for file in files {
        match load(file) {
            Ok(compilation) => {
                let model = compilation.model().expect("no errors means a model");
                println!("ok: {} ({} layers, {} parameters)", file.display(), model.layers.len(), model.params_total());
            }
            Err(Failure::User) => failed = true,
            Err(usage) => return Err(usage),
        }
    }
    if failed { Err(Failure::User) } else { Ok(()) }
}

/// `hybc compile`'s settings.
struct CompileOptions {
    emit: EmitArg,
    format: Format,
    context: Option<u64>,
    target: Option<Target>,
    megatron_linear: Option<char>,
}

fn compile(file: &Path, options: CompileOptions, output: Option<&Path>) -> Result<(), Failure> {
    let compilation = load(file)?;
    let model = compilation.model().expect("no errors means a model");
    let stage = match options.emit {
        EmitArg::Ir => Ok(Emit::Ir),
        EmitArg::FlaConfig => Ok(Emit::FlaConfig),
        EmitArg::HfLayerTypes => Ok(Emit::HfLayerTypes),
        EmitArg::MegatronPattern => Ok(Emit::MegatronPattern),
        EmitArg::Graph => Err(Stage::Graph),
        EmitArg::Grad => Err(Stage::Grad),
        EmitArg::Kernels => Err(Stage::Kernels),
        EmitArg::Plan => Err(Stage::Plan),
        EmitArg::Program => Err(Stage::Program),
        EmitArg::Mlir => Err(Stage::Mlir),
        EmitArg::Ptx => Err(Stage::Ptx),
        EmitArg::Passes => Err(Stage::Passes),
        EmitArg::Report => Err(Stage::Report),
    };
    let json = options.format == Format::Json;
    let text = match stage {
        Ok(stage) => {
            let model_options = EmitOptions { json, megatron_linear: options.megatron_linear };
            pipeline::emit(model, stage, model_options).map_err(|error| {
                eprintln!("error: {}\n  help: {}", error.message, error.help);
                Failure::User
            })?
        }
        Err(stage) => {
            let target = target::chosen(options.target, model);
            let driver_options = hyb_driver::EmitOptions { target, context: options.context, json };
            hyb_driver::emit(model, stage, driver_options).map_err(|error| {
                match error {
                    hyb_driver::Error::Setting(diagnostic) => eprint!("{}", compilation.sources.render(&[diagnostic])),
                    error => eprintln!("error: {}: {error}", file.display()),
                }
                Failure::User
            })?
        }
    };
    write_output(output, &text)
}

fn write_output(output: Option<&Path>, text: &str) -> Result<(), Failure> {
    match output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| Failure::Usage(format!("cannot write `{}`: {e}", path.display())))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn format_files(files: &[PathBuf], check_only: bool, to_stdout: bool) -> Result<(), Failure> {
    let mut unformatted = false;
    for file in files {
        let text = match hyb_compiler::encoding::read_source(file) {
            Ok(text) => text,
            Err(error) => match unreadable(file, &error) {
                Failure::User => {
                    unformatted = true;
                    continue;
                }
                usage => return Err(usage),
            },
        };
        let formatted = match fmt::format_source(&text) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                let mut sources = hyb_compiler::source::SourceMap::fs();
                sources.add(file.clone(), text);
                eprint!("{}", sources.render(&diagnostics));
                unformatted = true;
                continue;
            }
        };
        if to_stdout {
            print!("{formatted}");
        } else if formatted != text {
            if check_only {
                println!("not formatted: {}", file.display());
                unformatted = true;
            } else {
                std::fs::write(file, formatted)
                    .map_err(|e| Failure::Usage(format!("cannot write `{}`: {e}", file.display())))?;
                println!("formatted: {}", file.display());
            }
        }
    }
    if unformatted { Err(Failure::User) } else { Ok(()) }
}

/// What a training command does first: the signal handlers installed, `file` checked
/// with `sets`, its target chosen (the flag, else the train block's).
fn prepare_training(
    file: &Path,
    target: Option<Target>,
    sets: &[String],
) -> Result<(interrupt::Interrupt, Compilation, Target), Failure> {
    let interrupt = install_interrupt()?;
    let compilation = load_with(file, sets)?;
    let model = compilation.model().expect("no errors means a model");
    let target = target::chosen(target, model);
    Ok((interrupt, compilation, target))
}

/// Trains `file` on the chosen target with the options made for it.
fn run_training(
    file: &Path,
    target: Option<Target>,
    sets: &[String],
    options: impl FnOnce(Target) -> train::Options,
) -> Result<(), Failure> {
    let (interrupt, compilation, target) = prepare_training(file, target, sets)?;
    let model = compilation.model().expect("no errors means a model");
    target::preflight(file, &compilation, target)?;
    let options = train::Options { interrupt: Some(interrupt), ..options(target) };
    let outcome = train::train(file, model, &options).map_err(|message| {
        eprintln!("error: {message}");
        Failure::User
    })?;
    outcome.stopped.map_or(Ok(()), |status| Err(Failure::Stopped(status)))
}

/// `hybc train --gpus N`: the model checked and its target a GPU, the run directory
/// chosen here, then N ranks of this command ([`ranks::spawn`]).
fn train_on_gpus(
    file: &Path,
    target: Option<Target>,
    sets: &[String],
    gpus: usize,
    options: impl FnOnce(Target) -> train::Options,
) -> Result<(), Failure> {
    let (interrupt, compilation, target) = prepare_training(file, target, sets)?;
    if !matches!(target, Target::Cuda { .. }) {
        return Err(Failure::Usage(format!(
            "--gpus {gpus} trains on GPUs, over NCCL: add --target cuda (the target is {target})"
        )));
    }
    target::preflight(file, &compilation, target)?;
    let job = options(target).job;
    let out = match &job.out {
        Some(out) => out.clone(),
        None => hyb_train::job::default_run_dir(file, job.resume, &mut |message| {
            if let hyb_train::job::Message::Note(line) = message {
                println!("{line}");
            }
        }),
    };
    ranks::spawn(gpus, &out, || interrupt.received().map(|(_, status)| status))
}

/// Runs `command` on the model of a checkpoint (see [`infer::model_file`]).
fn with_checkpoint(
    file: Option<&Path>,
    ckpt: &Path,
    target: Option<Target>,
    sets: &[String],
    command: impl FnOnce(&hyb_compiler::ir::Model, Target) -> Result<(), String>,
) -> Result<(), Failure> {
    let (compilation, path) = match infer::model_file(file, ckpt).map_err(Failure::Usage)? {
        infer::ModelFile::Given(file) => (load_with(&file, sets)?, file),
        infer::ModelFile::Kept { text, compiled_as, sets: kept } => {
            let sets = hyb_train::model_file::sets_over(&kept, sets);
            (reported(&compiled_as, pipeline::check_source(&compiled_as, &text, &sets))?, compiled_as)
        }
    };
    let model = compilation.model().expect("no errors means a model");
    let target = target::chosen(target, model);
    target::preflight(&path, &compilation, target)?;
    command(model, target).map_err(|message| {
        eprintln!("error: {message}");
        Failure::User
    })
}

/// An fla directory from the model and the checkpoint (see [`export::fla`]).
fn export_fla(file: &Path, checkpoint: &Path, output: &Path, stored: Stored) -> Result<(), Failure> {
    let compilation = load(file)?;
    let model = compilation.model().expect("no errors means a model");
    let wrote = export::fla(file, model, checkpoint, output, stored).map_err(|message| {
        eprintln!("error: {message}");
        Failure::User
    })?;
    println!("wrote {}: {wrote}", output.display());
    Ok(())
}

/// How a sweep's process shares its machine: `--at-once`, and under `--jobs` its marker
/// among the wave's (`--wave-marker`).
struct Sharing<'a> {
    at_once: u16,
    wave_marker: Option<&'a Path>,
}

fn run_sweep(
    file: &Path,
    out: Option<&Path>,
    target: Option<Target>,
    sets: &[String],
    mode: sweep::Mode,
    deadline: Option<hybc::deadline::Deadline>,
    sharing: Sharing,
) -> Result<(), Failure> {
    // The shard's marker goes when it ends, however it ends (`--jobs`' next wave clears
    // the folder of any a killed shard left).
    struct Marker<'a>(Option<&'a Path>);
    impl Drop for Marker<'_> {
        fn drop(&mut self) {
            if let Some(marker) = self.0 {
                let _ = std::fs::remove_file(marker);
            }
        }
    }
    let _marker = Marker(sharing.wave_marker);
    let interrupt = install_interrupt()?;
    let compilation = load_with(file, sets)?;
    let model = compilation.model().expect("no errors means a model");
    let target = target::chosen(target, model);
    // Listing and reporting run nothing: a GPU study is planned and reported anywhere.
    if matches!(mode, sweep::Mode::Train(_)) {
        target::preflight(file, &compilation, target)?;
    }
    let console = &sweep::Terminal;
    let (at_once, wave) = (sharing.at_once, sharing.wave_marker.and_then(Path::parent));
    let setup = sweep::Setup { file, out, target, sets, interrupt: Some(&interrupt), console, deadline, at_once, wave };
    let stopped = sweep::sweep(&setup, model, mode).map_err(|message| {
        eprintln!("error: {message}");
        Failure::User
    })?;
    stopped.map_or(Ok(()), |status| Err(Failure::Stopped(status)))
}

/// The sweep's time limit, from `--time-limit` (from now) or `--deadline-at` (a moment).
fn deadline_of(limit: Option<std::time::Duration>, at: Option<f64>) -> Option<hybc::deadline::Deadline> {
    limit.map(hybc::deadline::Deadline::after).or(at.map(hybc::deadline::Deadline::at))
}

fn install_interrupt() -> Result<interrupt::Interrupt, Failure> {
    interrupt::Interrupt::install().map_err(|e| Failure::Usage(format!("cannot handle SIGINT / SIGTERM: {e}")))
}

fn tokenize_files(request: &tokenize::Request) -> Result<(), Failure> {
    if let Some(missing) = request.inputs.iter().find(|path| !path.is_file()) {
        return Err(Failure::Usage(format!("`{}` is not a file", missing.display())));
    }
    tokenize::run(request).map_err(|message| {
        eprintln!("error: {message}");
        Failure::User
    })
}

fn import_config(config: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let json = std::fs::read_to_string(config)
        .map_err(|e| Failure::Usage(format!("cannot read `{}`: {e}", config.display())))?;
    let name = config.file_name().map_or_else(|| config.display().to_string(), |n| n.to_string_lossy().into_owned());
    match import::import_config(&json, &name) {
        Ok(text) => write_output(output, &text),
        Err(error) => {
            eprintln!("error: cannot import `{}`: {}", config.display(), error.0);
            Err(Failure::User)
        }
    }
}
