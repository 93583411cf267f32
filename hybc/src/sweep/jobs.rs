//! `hybc sweep --jobs N`: a sweep as waves of child processes of this binary, each
//! wave dealing the runs that can train now and are not done over up to N shards
//! (`--runs` lists, cell by cell), each with its share of the cores or its GPU (under
//! MPS where shards share one); then the report. The runs themselves train in
//! each child as `hybc sweep --runs` does alone ([`super::sweep`]).

use std::path::Path;

use hyb_compiler::ir::train::SweepConfig;

use super::{
    Phase, Run, by_cell, directory, finished_search, grid, is_done, left_in_grid, overridden_sets, report_hint, resolve,
};

/// How `--jobs` runs a sweep's shards.
pub struct Jobs<'a> {
    /// Shards at once.
    pub count: u16,
    /// Whether shards that share a GPU run under MPS ([`crate::mps`]).
    pub mps: bool,
    /// The stop request: a signal to the sweep's process group (Ctrl-C, `timeout`,
    /// Slurm) stops each shard at a checkpoint; the sweep then starts no second wave.
    pub interrupt: Option<&'a crate::interrupt::Interrupt>,
    /// `--time-limit`: each process starts no run that would not finish before it, and
    /// no wave starts after it.
    pub deadline: Option<crate::deadline::Deadline>,
}

/// `--jobs n`: the sweep in waves of up to `n` processes of this binary at once, each
/// with an equal share of the cores (`--threads`: a wave of fewer shards, when fewer
/// runs are ready or a time limit fits fewer, gives each more) and its output in
/// `<out>/shard-<i>.log`. Each
/// wave deals the runs that can train now and are not done (`to_run`) round robin
/// over the processes (`--runs`), so a sweep resumed after a kill or after array jobs
/// is shared evenly; with a learning-rate search a second wave trains what the first
/// left waiting (the seeds, or with `lr_refine` the refinement and then a third wave
/// the seeds; with `lr_extend` a wave per rate an extension adds); then the report of
/// every finished run. `Ok(Some(status))` when a signal stopped it.
pub fn jobs(
    file: &Path,
    out: Option<&Path>,
    target: Option<hyb_driver::Target>,
    sets: &[String],
    options: &Jobs,
) -> std::result::Result<Option<u8>, String> {
    let jobs = options.count;
    let compilation =
        hyb_compiler::pipeline::check_path_with(file, sets).map_err(|e| format!("cannot read the sweep: {e}"))?;
    let Some(model) = compilation.model() else {
        return Err(format!("`{}` does not check:\n{}", file.display(), compilation.render()));
    };
    let config = model.sweep.clone().ok_or_else(|| format!("`{}` has no sweep block", file.display()))?;
    overridden_sets(&config, sets)?;
    let on_gpu = crate::chosen_target(target, model).is_gpu();
    if !options.mps && !on_gpu {
        return Err("--no-mps concerns shards on a GPU; this sweep trains on the CPU".into());
    }
    let devices = if on_gpu { Some(gpus_for(jobs)?) } else { None };
    // Settings checked: only now is anything written.
    let out = directory(file, out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create `{}`: {e}", out.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / usize::from(jobs)).max(1);
    let binary = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut common: Vec<String> = vec!["sweep".into(), file.display().to_string(), "--out".into()];
    common.push(out.display().to_string());
    common.extend(target.map(|t| ["--target".to_string(), t.to_string()]).into_iter().flatten());
    common.extend(sets.iter().flat_map(|set| ["--set".to_string(), set.clone()]));
    if let Some(deadline) = options.deadline {
        common.extend(["--deadline-at".to_string(), format!("{:.3}", deadline.epoch_seconds())]);
    }
    println!("sweep {}: {jobs} jobs of {threads} thread(s) each into {}", file.display(), out.display());
    let sharing = crate::mps::for_shards(devices.as_deref().unwrap_or_default(), options.mps);
    if let Some(line) = sharing.describe() {
        println!("{line}");
    }
    let stopped = || options.interrupt.and_then(|i| i.received());
    let mut dealt: Vec<usize> = Vec::new();
    // A wave per step of the protocol that waits on the one before: the grid (or the
    // search), the refinement, each rate of an extension, the seeds.
    let waves = 2 + usize::from(config.refine) + config.extend;
    for n in 1..=waves {
        let wave = ordinal(n);
        let pending = to_run(&out, &config);
        if pending.is_empty() {
            break;
        }
        let indices: Vec<usize> = pending.iter().map(|(index, _)| *index).collect();
        if options.deadline.is_some_and(|deadline| !deadline.allows(None)) {
            return Ok(time_limit_reached(file, &out, &config, indices.len()));
        }
        if indices == dealt {
            return Err(format!("runs {indices:?} did not finish in the wave before: see the shards' logs"));
        }
        println!("{wave} wave: {}", describe_wave(&pending));
        let shards_now = options.deadline.map_or(usize::from(jobs), |deadline| {
            wave_size(&pending, &out, &config, usize::from(jobs), deadline.left(), on_gpu)
        });
        let lists = deal(&indices, shards_now);
        // A wave of fewer shards splits the cores among them.
        let wave_threads = (cores / lists.len().max(1)).max(1);
        if lists.len() < usize::from(jobs) {
            println!("{} shard(s) of {wave_threads} thread(s) each", lists.len());
        }
        let wave_args = [common.clone(), vec!["--threads".into(), wave_threads.to_string()]];
        let finished = shards(&binary, &wave_args.concat(), &out, &lists, n > 1, devices.as_deref(), &sharing);
        if let Some((signal, status)) = stopped() {
            println!("stopped by {signal}: each shard at a checkpoint; running the sweep again continues it");
            return Ok(Some(status));
        }
        finished?;
        // Runs a shard left for want of time: the next call trains them.
        let left = to_run(&out, &config);
        if options.deadline.is_some() && left.iter().any(|(index, _)| indices.contains(index)) {
            return Ok(time_limit_reached(file, &out, &config, left.len()));
        }
        dealt = indices;
    }
    drop(sharing);
    let status = std::process::Command::new(&binary)
        .args(["sweep", &file.display().to_string(), "--out", &out.display().to_string(), "--report"])
        .args(target.map(|t| ["--target".to_string(), t.to_string()]).into_iter().flatten())
        .args(sets.iter().flat_map(|set| ["--set", set.as_str()]))
        .status()
        .map_err(|e| format!("cannot run the report: {e}"))?;
    if status.success() { Ok(None) } else { Err("the report failed".into()) }
}

/// "first", "second", … for wave `n` (from 1).
fn ordinal(n: usize) -> String {
    const NAMES: [&str; 12] = [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
        "twelfth",
    ];
    NAMES.get(n.wrapping_sub(1)).map_or_else(|| format!("{n}th"), |name| name.to_string())
}

/// What `--jobs` says when its time limit leaves runs for the next call (no report: it
/// waits for a call that trains them, `--report` gathers what finished): the runs that
/// can start then (`ready`) and, where more wait for their cells' searches, all left.
fn time_limit_reached(file: &Path, out: &Path, config: &SweepConfig, ready: usize) -> Option<u8> {
    let left = left_in_grid(out, config);
    if left > ready {
        println!(
            "time limit: {ready} run(s) ready for the next call of the sweep, {left} left in all (seeds wait for \
             their cell's search)"
        );
    } else {
        println!("time limit: {ready} run(s) left for the next call of the sweep");
    }
    println!("{}", report_hint(file));
    None
}

/// The runs that can train now and are not done, with their grid indices, in the order
/// they are tried ([`by_cell`]): a seed whose cell's rate is chosen, a refining run
/// whose cell's grid has finished, any other run.
pub(super) fn to_run(out: &Path, config: &SweepConfig) -> Vec<(usize, Run)> {
    let search = finished_search(out, config);
    let mut pending: Vec<(usize, Run)> = grid(config)
        .into_iter()
        .enumerate()
        .filter(|(_, run)| resolve(config, run, &search).is_some_and(|r| !is_done(out, &r)))
        .collect();
    by_cell(config, &mut pending);
    pending
}

/// What a wave trains, from its runs as the grid lists them.
fn describe_wave(pending: &[(usize, Run)]) -> String {
    let all = |test: fn(&Run) -> bool| pending.iter().all(|(_, run)| test(run));
    let what = if all(|run| run.phase == Phase::Seed) {
        "the seeds at each cell's chosen learning rate"
    } else if all(|run| run.refine.is_some()) {
        "each cell's search refined around its best rate"
    } else if all(|run| run.extend.is_some()) {
        "each cell's search extended past the end its best rate lies at"
    } else if all(|run| run.phase == Phase::Search && run.refine.is_none() && run.extend.is_none()) {
        "each cell's learning-rate search"
    } else {
        "the runs that can train"
    };
    format!("{} run(s), {what}", pending.len())
}

/// How many shards a wave under a time limit starts ([`wave_plan`]): fewer than `jobs`
/// where that lets more of its runs finish in the `left` seconds.
fn wave_size(pending: &[(usize, Run)], out: &Path, config: &SweepConfig, jobs: usize, left: f64, gpu: bool) -> usize {
    let Some((shards, started)) = wave_plan(pending, out, config, jobs, left, gpu) else { return jobs };
    if shards < jobs.min(pending.len()) {
        println!(
            "time limit: {shards} shard(s) at once rather than {jobs}, so that {} run(s) can finish in the {left:.0} s \
             left",
            started.len()
        );
    }
    shards
}

/// The wave of `pending` runs a time limit of `left` seconds allows with up to `jobs`
/// shards ([`crate::deadline::shards_that_fit`], the finished and stopped runs of `out`
/// to go by): how many shards, and the runs that would start (places in `pending`),
/// each with its guessed length at that many at once; none with nothing to go by.
pub(super) fn wave_plan(
    pending: &[(usize, Run)],
    out: &Path,
    config: &SweepConfig,
    jobs: usize,
    left: f64,
    gpu: bool,
) -> Option<(usize, Vec<(usize, f64)>)> {
    let finished = super::Finished::read(out, config, true).timed;
    let device = if gpu { "cuda" } else { "cpu" };
    let guess = |lets: &[(String, String)], at_once| crate::deadline::guess(lets, at_once, device, &finished);
    let lets: Vec<&[(String, String)]> = pending.iter().map(|(_, run)| run.lets.as_slice()).collect();
    let (shards, started) = crate::deadline::shards_that_fit(&lets, jobs.max(1), left, guess)?;
    let at_once = u16::try_from(shards).unwrap_or(u16::MAX);
    Some((shards, started.into_iter().map(|place| (place, guess(lets[place], at_once).unwrap_or_default())).collect()))
}

/// `runs` dealt round robin into at most `jobs` non-empty lists.
fn deal(runs: &[usize], jobs: usize) -> Vec<Vec<usize>> {
    let count = jobs.min(runs.len());
    let mut lists = vec![Vec::new(); count];
    for (i, run) in runs.iter().enumerate() {
        lists[i % count].push(*run);
    }
    lists
}

/// Each shard's GPU on a GPU target: round robin over the GPUs this process sees
/// (`CUDA_VISIBLE_DEVICES`, else every GPU the driver finds), one per child.
fn gpus_for(jobs: u16) -> std::result::Result<Vec<String>, String> {
    let listed = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let count = if listed.is_some() { 0 } else { hyb_runtime::cuda::device_count() };
    let visible = hyb_dist::placement::visible_gpus(listed.as_deref(), count);
    let placed = hyb_dist::placement::place(usize::from(jobs), &visible).map_err(|e| e.to_string())?;
    println!("shards on GPUs {}", placed.join(", "));
    Ok(placed)
}

/// One wave: a child process per list of runs (`--runs`), each logging to
/// `shard-<i>.log` (a later wave appends to the first's log), each on its own GPU of
/// `devices` if given, in `sharing`'s environment. Each has a marker in
/// `<out>/.wave-<this process>/` while it is at work (`--wave-marker`, removed as it
/// ends), so a run a shard starts after others have ended counts, times and guesses the
/// runs really at once (a folder per sweep process: two sweeps into one folder keep
/// their own counts).
fn shards(
    binary: &Path,
    common: &[String],
    out: &Path,
    lists: &[Vec<usize>],
    append: bool,
    devices: Option<&[String]>,
    sharing: &crate::mps::Sharing,
) -> std::result::Result<(), String> {
    let jobs = lists.len();
    let wave = out.join(format!(".wave-{}", std::process::id()));
    // A killed wave's markers would count shards that are gone.
    let _ = std::fs::remove_dir_all(&wave);
    std::fs::create_dir_all(&wave).map_err(|e| format!("cannot create `{}`: {e}", wave.display()))?;
    let markers: Vec<std::path::PathBuf> = (0..jobs).map(|index| wave.join(format!("shard-{index}"))).collect();
    for marker in &markers {
        std::fs::write(marker, "").map_err(|e| format!("cannot create `{}`: {e}", marker.display()))?;
    }
    let mut children = Vec::new();
    for (index, runs) in lists.iter().enumerate() {
        let log_path = out.join(format!("shard-{index}.log"));
        let log = std::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(&log_path);
        let log = log.map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
        let errors = log.try_clone().map_err(|e| e.to_string())?;
        let mut args = common.to_vec();
        let runs: Vec<String> = runs.iter().map(usize::to_string).collect();
        args.extend(["--runs".to_string(), runs.join(","), "--at-once".to_string(), jobs.to_string()]);
        args.extend(["--wave-marker".to_string(), markers[index].display().to_string()]);
        let mut command = std::process::Command::new(binary);
        if let Some(devices) = devices {
            command.env("CUDA_VISIBLE_DEVICES", &devices[index]);
        }
        command.envs(sharing.environment());
        let child = command.args(&args).stdout(log).stderr(errors).spawn();
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
    let _ = std::fs::remove_dir_all(&wave);
    if !failed.is_empty() {
        let mps = if matches!(sharing, crate::mps::Sharing::Started(_)) {
            " (they ran under the sweep's MPS daemon: if they could not reach the GPU, --no-mps runs them without it)"
        } else {
            ""
        };
        return Err(format!("shard(s) {failed:?} failed: see their logs; running the sweep again continues it{mps}"));
    }
    Ok(())
}
