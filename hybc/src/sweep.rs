//! `hybc sweep FILE`: expands the file's `sweep` block into runs — every combination of
//! the varied lets, learning rates and seeds — and trains them one after another, each
//! in `runs/<sweep>/<run>/`. A run with a `result.json` is done and skipped; one with
//! checkpoints resumes; so a killed sweep continues where it stopped. At the end:
//! `results.csv`, `results.md` (the best learning rate per combination marked) and
//! `recall.svg` and `.png` (accuracy against the last varied let, one line per value of
//! the first).
//!
//! For a cluster: `--list` prints the runs, `--shard i/n` trains every n-th (from the
//! i-th, counting from 0: one array job each), and `--report` gathers whatever runs
//! have finished into the tables without training.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::SweepConfig;

use crate::train::{Options, train};

/// One run of the grid.
struct Run {
    /// (let name, value text) per axis.
    lets: Vec<(String, String)>,
    lr: Option<f64>,
    seed: Option<u64>,
}

impl Run {
    fn name(&self) -> String {
        let mut parts: Vec<String> = self.lets.iter().map(|(n, v)| format!("{n}={v}")).collect();
        parts.extend(self.lr.map(|lr| format!("lr={lr:e}")));
        parts.extend(self.seed.map(|s| format!("seed={s}")));
        parts.join(",")
    }

    /// The (unwritten) file the run's text compiles as: beside the sweep file, which it
    /// imports.
    fn path(&self, file: &Path) -> PathBuf {
        file.with_file_name(format!(".sweep-{}.hyb", self.dir()))
    }

    /// A directory name: the run's name with anything unusual as `_`.
    fn dir(&self) -> String {
        self.name().chars().map(|c| if c.is_ascii_alphanumeric() || "=,.-+".contains(c) { c } else { '_' }).collect()
    }

    /// The text compiled for this run: the sweep file imported, its lets overridden.
    fn source(&self, file: &Path) -> String {
        let mut text = format!("import \"{}\"\n", file_name(file));
        for (let_name, value) in &self.lets {
            let _ = writeln!(text, "let {let_name} = {value}");
        }
        text
    }
}

/// The sweep's directory: `out`, else `runs/<file stem>`.
fn directory(file: &Path, out: Option<&Path>) -> PathBuf {
    let stem = file.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
    out.map_or_else(|| Path::new("runs").join(&stem), Path::to_path_buf)
}

fn file_name(file: &Path) -> String {
    file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn grid(config: &SweepConfig) -> Vec<Run> {
    let mut runs = vec![Run { lets: Vec::new(), lr: None, seed: None }];
    for axis in &config.axes {
        runs = runs
            .into_iter()
            .flat_map(|run| {
                axis.values.iter().map(move |v| {
                    let mut lets = run.lets.clone();
                    lets.push((axis.name.clone(), v.clone()));
                    Run { lets, lr: run.lr, seed: run.seed }
                })
            })
            .collect();
    }
    let lrs: Vec<Option<f64>> =
        if config.lrs.is_empty() { vec![None] } else { config.lrs.iter().map(|l| Some(*l)).collect() };
    let seeds: Vec<Option<u64>> =
        if config.seeds.is_empty() { vec![None] } else { config.seeds.iter().map(|s| Some(*s)).collect() };
    let mut expanded = Vec::new();
    for run in runs {
        for lr in &lrs {
            for seed in &seeds {
                expanded.push(Run { lets: run.lets.clone(), lr: *lr, seed: *seed });
            }
        }
    }
    expanded
}

/// What `hybc sweep` does with the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Train the runs not done (those of one shard), then write the tables.
    Train(Option<Shard>),
    /// Print the runs, each with whether it is done.
    List,
    /// Write the tables from the finished runs.
    Report,
}

/// Every `count`-th run of the grid from the `index`-th (`i/n` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Shard, String> {
        let parsed = text.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Shard { index, count }),
            _ => Err(format!("`{text}` is not a shard: write i/n with 0 ≤ i < n, e.g. 0/4")),
        }
    }
}

impl Shard {
    fn holds(self, run: usize) -> bool {
        run % self.count == self.index
    }
}

/// One finished run's figures.
#[derive(serde::Serialize, serde::Deserialize)]
struct Result {
    run: String,
    lets: Vec<(String, String)>,
    lr: f64,
    seed: u64,
    params: u64,
    state_bytes: u64,
    kv_cache_bytes: u64,
    final_loss: f32,
    /// (eval set, accuracy) in the eval block's order.
    accuracy: Vec<(String, f64)>,
}

/// Trains every run of the sweep not done before; `Ok(Some(status))` when a signal
/// stopped it (the run under way keeps a checkpoint, and running the sweep again
/// continues it).
pub fn sweep(
    file: &Path,
    root: &Model,
    out: Option<&Path>,
    target: hyb_driver::Target,
    sets: &[String],
    interrupt: Option<&crate::interrupt::Interrupt>,
    mode: Mode,
) -> std::result::Result<Option<u8>, String> {
    let config = root.sweep.as_ref().ok_or_else(|| format!("`{}` has no sweep block", file.display()))?;
    let out = directory(file, out);
    let runs = grid(config);
    let finished = |run: &Run| {
        let done = out.join(run.dir()).join("result.json");
        std::fs::read_to_string(&done).ok().and_then(|t| serde_json::from_str::<Result>(&t).ok())
    };
    let shard = match mode {
        Mode::List => {
            for (index, run) in runs.iter().enumerate() {
                let state = if finished(run).is_some() { "done" } else { "to run" };
                println!("{index}\t{state}\t{}", run.name());
            }
            return Ok(None);
        }
        Mode::Report => return report(&out, config, &runs.iter().filter_map(finished).collect::<Vec<_>>(), runs.len()),
        Mode::Train(shard) => shard,
    };
    println!("sweep {}: {} runs into {}", file.display(), runs.len(), out.display());
    let mut results = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        if shard.is_some_and(|shard| !shard.holds(index)) {
            continue;
        }
        let dir = out.join(run.dir());
        let done = dir.join("result.json");
        if let Some(result) = finished(run) {
            println!("[{}/{}] {}: done before", index + 1, runs.len(), run.name());
            results.push(result);
            continue;
        }
        println!("\n[{}/{}] {}", index + 1, runs.len(), run.name());
        let model = compile_run(file, run, sets)?;
        let options = Options {
            steps: None,
            batch: None,
            seq_len: None,
            lr: run.lr,
            seed: run.seed,
            profile: false,
            out: Some(dir.clone()),
            resume: false,
            init_from: None,
            resume_if_any: true,
            checkpoint_every: None,
            model_source: Some((run.source(file), run.path(file))),
            sets: sets.to_vec(),
            target,
            interrupt: interrupt.cloned(),
        };
        let outcome = train(file, &model, &options)?;
        if let Some(status) = outcome.stopped {
            println!("sweep stopped; running it again continues from here");
            return Ok(Some(status));
        }
        let report = hyb_driver::report(&model, None, target).map_err(|e| e.to_string())?;
        let result = Result {
            run: run.name(),
            lets: run.lets.clone(),
            lr: run.lr.unwrap_or_else(|| hyb_runtime::AdamW::of(&model).lr),
            seed: run.seed.unwrap_or_else(|| model.train.as_ref().map_or(0, |t| t.seed)),
            params: report.params_total,
            state_bytes: report.state_bytes,
            kv_cache_bytes: report.kv_cache_bytes,
            final_loss: outcome.final_loss,
            accuracy: outcome
                .scores
                .iter()
                .map(|s| (s.name.clone(), if s.perplexity { s.perplexity() } else { s.accuracy() }))
                .collect(),
        };
        let json = serde_json::to_string_pretty(&result).expect("JSON");
        std::fs::write(&done, json).map_err(|e| format!("cannot write `{}`: {e}", done.display()))?;
        results.push(result);
    }
    if let Some(shard) = shard {
        let (index, count) = (shard.index, shard.count);
        println!("shard {index}/{count} done; `hybc sweep {} --report` gathers the finished runs", file.display());
        return Ok(None);
    }
    report(&out, config, &results, runs.len())
}

/// `--jobs n`: the sweep as `n` shards at once, each a process of this binary with
/// `1/n` of the cores (`--threads`), its output in `<out>/shard-<i>.log`; then the
/// report of every finished run.
pub fn jobs(
    file: &Path,
    out: Option<&Path>,
    target: Option<hyb_driver::Target>,
    sets: &[String],
    jobs: u16,
) -> std::result::Result<(), String> {
    let out = directory(file, out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create `{}`: {e}", out.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / usize::from(jobs)).max(1);
    let binary = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut common: Vec<String> = vec!["sweep".into(), file.display().to_string(), "--out".into()];
    common.extend([out.display().to_string(), "--threads".into(), threads.to_string()]);
    common.extend(target.map(|t| ["--target".to_string(), t.to_string()]).into_iter().flatten());
    common.extend(sets.iter().flat_map(|set| ["--set".to_string(), set.clone()]));
    println!("sweep {}: {jobs} jobs of {threads} thread(s) each into {}", file.display(), out.display());
    let mut children = Vec::new();
    for index in 0..jobs {
        let log_path = out.join(format!("shard-{index}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
        let errors = log.try_clone().map_err(|e| e.to_string())?;
        let mut args = common.clone();
        args.extend(["--shard".to_string(), format!("{index}/{jobs}")]);
        let child = std::process::Command::new(&binary).args(&args).stdout(log).stderr(errors).spawn();
        children.push((index, log_path, child.map_err(|e| format!("cannot start shard {index}: {e}"))?));
    }
    let mut failed = Vec::new();
    for (index, log, mut child) in children {
        let status = child.wait().map_err(|e| format!("shard {index}: {e}"))?;
        println!("shard {index}/{jobs}: {status} ({})", log.display());
        if !status.success() {
            failed.push(index);
        }
    }
    if !failed.is_empty() {
        return Err(format!("shard(s) {failed:?} failed: see their logs; running the sweep again continues it"));
    }
    let status = std::process::Command::new(&binary)
        .args(["sweep", &file.display().to_string(), "--out", &out.display().to_string(), "--report"])
        .args(target.map(|t| ["--target".to_string(), t.to_string()]).into_iter().flatten())
        .args(sets.iter().flat_map(|set| ["--set", set.as_str()]))
        .status()
        .map_err(|e| format!("cannot run the report: {e}"))?;
    if status.success() { Ok(()) } else { Err("the report failed".into()) }
}

/// Writes the tables of the finished `results` (of `total` runs) and prints them.
fn report(
    out: &Path,
    config: &SweepConfig,
    results: &[Result],
    total: usize,
) -> std::result::Result<Option<u8>, String> {
    if results.is_empty() {
        return Err(format!("no run of the sweep has finished in `{}`", out.display()));
    }
    write_tables(out, config, results)?;
    println!("\n{}", markdown(config, results));
    if results.len() < total {
        println!("{} of {total} runs finished; the tables hold those", results.len());
    }
    println!("wrote {0}/results.csv, {0}/results.md, {0}/recall.svg, {0}/recall.png", out.display());
    Ok(None)
}

/// The run's text checked, with the command line's `--set`s over it.
fn compile_run(file: &Path, run: &Run, sets: &[String]) -> std::result::Result<Model, String> {
    let compilation = hyb_compiler::pipeline::check_source(&run.path(file), &run.source(file), sets);
    match compilation.model() {
        Some(model) => Ok(model.clone()),
        None => Err(format!("run {} does not check:\n{}", run.name(), compilation.render())),
    }
}

/// Runs that share every let (all but the learning rate and seed): the best learning
/// rate of each group by its mean first accuracy over seeds.
fn best_lrs(results: &[Result]) -> Vec<(Vec<(String, String)>, f64)> {
    let mut groups: Vec<(Vec<(String, String)>, Vec<&Result>)> = Vec::new();
    for r in results {
        match groups.iter_mut().find(|(lets, _)| *lets == r.lets) {
            Some((_, members)) => members.push(r),
            None => groups.push((r.lets.clone(), vec![r])),
        }
    }
    // Higher is better: accuracy, or minus the perplexity or the final loss.
    let score = |r: &Result| match r.accuracy.first() {
        Some((name, ppl)) if name.starts_with("perplexity(") => -ppl,
        Some((_, accuracy)) => *accuracy,
        None => -(r.final_loss as f64),
    };
    groups
        .into_iter()
        .map(|(lets, members)| {
            let mut lrs: Vec<f64> = members.iter().map(|r| r.lr).collect();
            lrs.dedup();
            let mean = |lr: f64| {
                let of_lr: Vec<f64> = members.iter().filter(|r| r.lr == lr).map(|r| score(r)).collect();
                of_lr.iter().sum::<f64>() / of_lr.len() as f64
            };
            let best = lrs
                .into_iter()
                .fold(f64::NAN, |best, lr| if best.is_nan() || mean(lr) > mean(best) { lr } else { best });
            (lets, best)
        })
        .collect()
}

fn markdown(config: &SweepConfig, results: &[Result]) -> String {
    let best = best_lrs(results);
    let evals: Vec<String> =
        results.first().map_or(Vec::new(), |r| r.accuracy.iter().map(|(n, _)| n.clone()).collect());
    let mut header: Vec<String> = config.axes.iter().map(|a| a.name.clone()).collect();
    header.extend(["lr", "seed", "params", "state", "KV cache", "final loss"].map(String::from));
    header.extend(evals.iter().map(|e| format!("{e} acc.")));
    let mut text = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for r in results {
        let is_best = best.iter().any(|(lets, lr)| *lets == r.lets && *lr == r.lr) && !config.lrs.is_empty();
        let mut row: Vec<String> = r.lets.iter().map(|(_, v)| v.clone()).collect();
        row.push(format!("{:e}{}", r.lr, if is_best { " (best)" } else { "" }));
        row.push(r.seed.to_string());
        row.push(r.params.to_string());
        row.push(hyb_compiler::report::bytes(r.state_bytes));
        row.push(hyb_compiler::report::bytes(r.kv_cache_bytes));
        row.push(format!("{:.4}", r.final_loss));
        row.extend(r.accuracy.iter().map(|(_, a)| format!("{:.1}%", 100.0 * a)));
        let _ = writeln!(text, "| {} |", row.join(" | "));
    }
    if config.seeds.len() > 1 {
        text.push_str("\nBy cell, over its seeds:\n\n");
        text.push_str(&by_cell(config, results));
    }
    text
}

/// Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom (then 1.96).
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// The mean, the sample standard deviation and the half-width of the 95 % interval of
/// the mean (Student's t) of `values`; the spread is 0 for one value.
pub fn mean_spread(values: &[f64]) -> (f64, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0, 0.0);
    }
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let t = T95.get(values.len() - 2).copied().unwrap_or(1.96);
    (mean, sd, t * sd / n.sqrt())
}

/// Per cell (every let and the learning rate) over its seeds: the first eval's figure
/// and the final loss as mean ± standard deviation with the 95 % interval of the mean.
fn by_cell(config: &SweepConfig, results: &[Result]) -> String {
    let mut cells: Vec<(&[(String, String)], f64, Vec<&Result>)> = Vec::new();
    for r in results {
        match cells.iter_mut().find(|(lets, lr, _)| *lets == &r.lets[..] && *lr == r.lr) {
            Some((_, _, members)) => members.push(r),
            None => cells.push((&r.lets, r.lr, vec![r])),
        }
    }
    let figure = results.first().and_then(|r| r.accuracy.first()).map(|(name, _)| name.clone());
    let mut header: Vec<String> = config.axes.iter().map(|a| a.name.clone()).collect();
    header.extend(["lr", "seeds", "final loss (mean ± sd, 95 % interval)"].map(String::from));
    header.extend(figure.iter().map(|name| format!("{name} (mean ± sd, 95 % interval)")));
    let mut text = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    let cell = |values: &[f64], scale: f64, digits: usize| {
        let (mean, sd, half) = mean_spread(values);
        let (low, high) = ((mean - half) * scale, (mean + half) * scale);
        format!("{:.digits$} ± {:.digits$} [{low:.digits$}, {high:.digits$}]", mean * scale, sd * scale)
    };
    for (lets, lr, members) in cells {
        let mut row: Vec<String> = lets.iter().map(|(_, v)| v.clone()).collect();
        row.extend([format!("{lr:e}"), members.len().to_string()]);
        row.push(cell(&members.iter().map(|r| r.final_loss as f64).collect::<Vec<_>>(), 1.0, 4));
        if let Some(name) = &figure {
            let values: Vec<f64> = members.iter().filter_map(|r| r.accuracy.first().map(|(_, a)| *a)).collect();
            let perplexity = name.starts_with("perplexity(");
            row.push(if perplexity { cell(&values, 1.0, 2) } else { cell(&values, 100.0, 1) + " %" });
        }
        let _ = writeln!(text, "| {} |", row.join(" | "));
    }
    text
}

fn csv(config: &SweepConfig, results: &[Result]) -> String {
    let evals: Vec<String> =
        results.first().map_or(Vec::new(), |r| r.accuracy.iter().map(|(n, _)| n.clone()).collect());
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut header: Vec<String> = config.axes.iter().map(|a| quote(&a.name)).collect();
    header.extend(["lr", "seed", "params", "state_bytes", "kv_cache_bytes", "final_loss"].map(String::from));
    header.extend(evals.iter().map(|e| quote(&format!("{e} accuracy"))));
    let mut text = header.join(",") + "\n";
    for r in results {
        let mut row: Vec<String> = r.lets.iter().map(|(_, v)| quote(v)).collect();
        row.extend([r.lr.to_string(), r.seed.to_string(), r.params.to_string()]);
        row.extend([r.state_bytes.to_string(), r.kv_cache_bytes.to_string(), r.final_loss.to_string()]);
        row.extend(r.accuracy.iter().map(|(_, a)| a.to_string()));
        text += &(row.join(",") + "\n");
    }
    text
}

fn write_tables(out: &Path, config: &SweepConfig, results: &[Result]) -> std::result::Result<(), String> {
    let write = |name: &str, text: String| {
        std::fs::write(out.join(name), text).map_err(|e| format!("cannot write `{}`: {e}", out.join(name).display()))
    };
    write("results.csv", csv(config, results))?;
    write("results.md", markdown(config, results))?;
    crate::plot::write_chart(out, "recall", &crate::plot::recall_svg(config, results_points(config, results)))?;
    Ok(())
}

/// (series, x label, y) points: the first eval's accuracy at the best learning rate
/// (mean over seeds) against the last axis, one series per value of the first axis.
fn results_points(config: &SweepConfig, results: &[Result]) -> Vec<(String, String, f64)> {
    let best = best_lrs(results);
    let mut points = Vec::new();
    for (lets, lr) in best {
        let runs: Vec<&Result> = results.iter().filter(|r| r.lets == lets && r.lr == lr).collect();
        let accuracy =
            runs.iter().map(|r| r.accuracy.first().map_or(0.0, |(_, a)| *a)).sum::<f64>() / runs.len() as f64;
        let series = if config.axes.len() > 1 { lets.first().map(|(_, v)| v.clone()) } else { None };
        let x = lets.last().map_or_else(|| "run".to_string(), |(_, v)| v.clone());
        points.push((series.unwrap_or_else(|| "accuracy".into()), x, accuracy));
    }
    points
}
