//! `hybc sweep FILE`: expands the file's `sweep` block into runs — every combination of
//! the varied lets, learning rates and seeds — and trains them one after another, each
//! in `runs/<sweep>/<run>/`. A run with a `result.json` is done and skipped; one with
//! checkpoints resumes; so a killed sweep continues where it stopped. At the end:
//! `results.csv`, `results.md` (the best learning rate per combination marked) and
//! `recall.svg` and `.png` (accuracy against the last varied let, one line per value of
//! the first).

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
) -> std::result::Result<Option<u8>, String> {
    let config = root.sweep.as_ref().ok_or_else(|| format!("`{}` has no sweep block", file.display()))?;
    let stem = file.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
    let out = out.map_or_else(|| Path::new("runs").join(&stem), Path::to_path_buf);
    let runs = grid(config);
    println!("sweep {}: {} runs into {}", file.display(), runs.len(), out.display());
    let mut results = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        let dir = out.join(run.dir());
        let done = dir.join("result.json");
        if let Some(result) = std::fs::read_to_string(&done).ok().and_then(|t| serde_json::from_str::<Result>(&t).ok())
        {
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
    write_tables(&out, config, &results)?;
    println!("\n{}", markdown(config, &results));
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
