//! `hybc sweep FILE`: expands the file's `sweep` block into runs and trains them one
//! after another, cell by cell, each in `runs/<sweep>/<run>/`. A run with a
//! `result.json` is done and skipped; one with checkpoints resumes; so a killed sweep
//! continues where it stopped, and one cut short leaves whole cells.
//! At the end, the report ([`crate::tables`]): `results.csv`, `results.md` and the
//! `recall` chart.
//!
//! The protocol: a cell is a combination of the varied lets. With more than one
//! learning rate, each cell first trains every rate once on the search seed (one past
//! the last measured seed) and scores it on the held-out set — the first evaluation
//! task drawn from a stream of its own ([`hyb_train::protocol`]); the rate with the best
//! held-out score is the cell's, and its seeds (three unless the block says otherwise)
//! train at that rate and are scored on the test sets. The test score never chooses.
//! With `lr_refine = true` the search has a second step: once a cell's rates have
//! finished, it trains the geometric midpoints between the best and its neighbours
//! (half a step beyond the grid at an end, [`around`]) and chooses over all of them.
//! With `lr_extend = N`, while the best rate searched is the lowest (highest) of the
//! cell's rates and some rate learned, the search trains a grid step beyond it, up to
//! N rates ([`extension`]); the seeds wait for it.
//! A `tokens` budget sets every run's steps; a `stop` ends a run whose held-out score
//! has plateaued.
//!
//! For a cluster: `--list` prints the runs (a cell's seeds wait for its search),
//! `--shard i/n` trains every n-th (from the i-th, counting from 0: one array job each;
//! with a search, run the array twice: the searches, then the seeds), and `--report`
//! gathers whatever runs have finished into the tables without training. Inside a
//! wall-clock limit, `--time-limit` starts only the runs that can finish
//! ([`crate::deadline`]); the next call resumes with the rest.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hyb_compiler::ir::Model;
use hyb_compiler::ir::train::{SweepConfig, budget_steps};

use crate::train::{Options, Outcome, train};

mod jobs;
mod run;
mod search;

use run::{learned_at, train_run};

pub use jobs::{Jobs, jobs};
pub use search::{
    Extension, around, choose, choose_within, chosen_lr, extension, refinement, search_figure, search_scores,
    searched_rates, tie_tolerance,
};

/// What a run is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A run of a grid without a search.
    #[default]
    Grid,
    /// One learning rate of a cell's search, scored on the held-out set.
    Search,
    /// One seed of a cell at its chosen learning rate.
    Seed,
}

/// Which side of a cell's best rate a refining search run lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Below = 0,
    Above = 1,
}

/// One run of the grid.
#[derive(Clone, Debug)]
struct Run {
    /// (let name, value text) per axis.
    lets: Vec<(String, String)>,
    /// None for a seed whose cell's search has not finished, or a refining run whose
    /// cell's grid of rates has not (or no rate at all).
    lr: Option<f64>,
    seed: Option<u64>,
    phase: Phase,
    /// A search run of `lr_refine`, on this side of the cell's best rate.
    refine: Option<Side>,
    /// A search run of `lr_extend`: the k-th rate (from 1) past the end of the cell's
    /// searched rates that its best lies at.
    extend: Option<usize>,
}

impl Run {
    fn name(&self) -> String {
        let mut parts: Vec<String> = self.lets.iter().map(|(n, v)| format!("{n}={v}")).collect();
        match (self.lr, self.phase, self.refine, self.extend) {
            (Some(lr), ..) => parts.push(format!("lr={lr:e}")),
            (None, Phase::Seed, ..) => parts.push("lr=(chosen by the search)".into()),
            (None, _, Some(Side::Below), _) => parts.push("lr=(refined below the search's best)".into()),
            (None, _, Some(Side::Above), _) => parts.push("lr=(refined above the search's best)".into()),
            (None, _, None, Some(k)) => parts.push(format!("lr=(extension {k} past the search's best end)")),
            (None, _, None, None) => {}
        }
        parts.extend(self.seed.map(|s| format!("seed={s}")));
        if self.phase == Phase::Search {
            parts.push("search".into());
        }
        parts.join(",")
    }

    /// The (unwritten) file the run's text compiles as: beside the sweep file, which it
    /// imports.
    fn path(&self, file: &Path) -> PathBuf {
        file.with_file_name(format!(".sweep-{}.hyb", self.dir()))
    }

    /// A directory name: the run's name with anything unusual as `_`.
    fn dir(&self) -> String {
        dir_name(&self.name())
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

/// A run's directory name from its name: anything unusual as `_`.
fn dir_name(run: &str) -> String {
    run.chars().map(|c| if c.is_ascii_alphanumeric() || "=,.-+".contains(c) { c } else { '_' }).collect()
}

/// The sweep's directory: `out`, else `runs/<file stem>`.
fn directory(file: &Path, out: Option<&Path>) -> PathBuf {
    let stem = file.file_stem().map_or("sweep".into(), |s| s.to_string_lossy().into_owned());
    out.map_or_else(|| Path::new("runs").join(&stem), Path::to_path_buf)
}

fn file_name(file: &Path) -> String {
    file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Every combination of the varied lets, the first axis slowest.
fn cells(config: &SweepConfig) -> Vec<Vec<(String, String)>> {
    let mut cells = vec![Vec::new()];
    for axis in &config.axes {
        cells = cells
            .into_iter()
            .flat_map(|lets: Vec<(String, String)>| {
                axis.values.iter().map(move |v| {
                    let mut lets = lets.clone();
                    lets.push((axis.name.clone(), v.clone()));
                    lets
                })
            })
            .collect();
    }
    cells
}

/// `runs` (grid indices with their runs) in the order they are tried: cell by cell —
/// its search, its refinement, its extension, its seeds — so a sweep cut short (a time
/// limit, a kill, a call that ends) leaves whole cells behind rather than every cell's
/// search and no seeds. Within a cell the grid's order; the indices (`--list`, `--shard`) stay.
fn by_cell<R: std::borrow::Borrow<Run>>(config: &SweepConfig, runs: &mut [(usize, R)]) {
    let cells = cells(config);
    let cell = |run: &Run| cells.iter().position(|cell| *cell == run.lets);
    runs.sort_by_cached_key(|(index, run)| (cell(run.borrow()), *index));
}

/// The runs in order: with a search, every cell's search runs (then, with `lr_refine`,
/// every cell's refining runs; with `lr_extend`, every cell's extending runs), then
/// every cell's seeds; without, cell × rate × seed.
/// This order numbers them; they are tried cell by cell ([`by_cell`]).
fn grid(config: &SweepConfig) -> Vec<Run> {
    let seeds: Vec<Option<u64>> = match config.test_seeds() {
        seeds if seeds.is_empty() => vec![None],
        seeds => seeds.into_iter().map(Some).collect(),
    };
    let cells = cells(config);
    let run = |lets: &Vec<(String, String)>, lr, seed, phase| Run {
        lets: lets.clone(),
        lr,
        seed,
        phase,
        refine: None,
        extend: None,
    };
    if config.searches() {
        let search_seeds = config.search_seeds();
        let search = cells.iter().flat_map(|c| {
            let search_seeds = &search_seeds;
            config
                .lrs
                .iter()
                .flat_map(move |lr| search_seeds.iter().map(move |seed| run(c, Some(*lr), Some(*seed), Phase::Search)))
        });
        let sides: &[Side] = if config.refine { &[Side::Below, Side::Above] } else { &[] };
        let refining = cells.iter().flat_map(|c| {
            let search_seeds = &search_seeds;
            sides.iter().flat_map(move |side| {
                search_seeds
                    .iter()
                    .map(move |seed| Run { refine: Some(*side), ..run(c, None, Some(*seed), Phase::Search) })
            })
        });
        let extending = cells.iter().flat_map(|c| {
            let search_seeds = &search_seeds;
            (1..=config.extend).flat_map(move |k| {
                search_seeds.iter().map(move |seed| Run { extend: Some(k), ..run(c, None, Some(*seed), Phase::Search) })
            })
        });
        let measured = cells.iter().flat_map(|c| seeds.iter().map(move |seed| run(c, None, *seed, Phase::Seed)));
        return search.chain(refining).chain(extending).chain(measured).collect();
    }
    let lr = config.lrs.first().copied();
    cells.iter().flat_map(|c| seeds.iter().map(move |seed| run(c, lr, *seed, Phase::Grid))).collect()
}

/// What `hybc sweep` does with the grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Train the runs not done (those of one shard, or of a list), then write the tables
    /// (not for a shard or a list: their caller reports).
    Train(Option<Selection>),
    /// Print the runs (those of one shard), each with whether it is done; under a time
    /// limit, what a call would start with this many processes at once (`--jobs`, else 1).
    List(Option<Shard>, u16),
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

/// The runs one process of a sweep trains: an array job's shard, or the runs of the
/// grid by index (`--runs`, what `--jobs` hands each of its processes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    Shard(Shard),
    Runs(Vec<usize>),
}

impl Selection {
    fn holds(&self, run: usize) -> bool {
        match self {
            Selection::Shard(shard) => shard.holds(run),
            Selection::Runs(runs) => runs.contains(&run),
        }
    }
}

/// `--runs 3,7,11`: runs of the grid by the indices `--list` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunList(pub Vec<usize>);

impl std::str::FromStr for RunList {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<RunList, String> {
        let runs: Option<Vec<usize>> = text.split(',').map(|i| i.trim().parse().ok()).collect();
        let runs = runs.filter(|runs| !runs.is_empty());
        runs.map(RunList).ok_or_else(|| format!("`{text}` is not a list of run indices, e.g. 3,7,11"))
    }
}

/// One finished run's figures (`result.json`); fields after `accuracy` are absent from
/// results written before the protocol and read as their defaults.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Result {
    pub run: String,
    pub lets: Vec<(String, String)>,
    pub lr: f64,
    pub seed: u64,
    pub params: u64,
    pub state_bytes: u64,
    pub kv_cache_bytes: u64,
    pub final_loss: f32,
    /// (eval set, accuracy — or perplexity for a perplexity set) in the eval block's order.
    pub accuracy: Vec<(String, f64)>,
    #[serde(default)]
    pub phase: Phase,
    /// (held-out set, its figure) for a protocol's run.
    #[serde(default)]
    pub held_out: Option<(String, f64)>,
    /// The steps the run was given, and the step a plateau stopped it at.
    #[serde(default)]
    pub steps: u64,
    #[serde(default)]
    pub plateaued_at: Option<u64>,
    /// Tokens trained on (steps done × batch × seq_len × micro-batches).
    #[serde(default)]
    pub tokens: u64,
    /// The linear mixer (`gated_deltanet`, …; `none` for attention alone; empty in
    /// results written before it was recorded).
    #[serde(default)]
    pub mixer: String,
    /// Attention layers over all layers.
    #[serde(default)]
    pub attention_share: f64,
    /// The chance accuracy of the first evaluation's task (the held-out set's), for the
    /// "did not learn" verdict ([`crate::learned`]); none for perplexity.
    #[serde(default)]
    pub chance: Option<f64>,
    /// (test set, group, accuracy) for the sets whose answers fall in groups (MQAR's
    /// key–query distance bins, a needle's depth or distance), in order.
    #[serde(default)]
    pub by_group: Vec<(String, String, f64)>,
    /// How the linear mixers write their state: `delta` (the delta rule) or `additive`;
    /// empty for attention alone, a model mixing both, or results written before it was
    /// recorded.
    #[serde(default)]
    pub update: String,
    /// The wall time of the call that finished the run, compile to last evaluation (of a
    /// resumed run its last part; 0 in results written before it was recorded): what
    /// `--time-limit` guesses a run's length from.
    #[serde(default)]
    pub seconds: f64,
    /// How many runs trained at once on the machine while this one did (its `--jobs`
    /// wave's shards, this one included; 0 in results written before it was recorded):
    /// `seconds` holds for that much sharing.
    #[serde(default)]
    pub at_once: u16,
    /// The first evaluation at which the held-out score (without one, the first test
    /// score) reached the task's chance + 5 points ([`crate::learned::transition`]).
    #[serde(default)]
    pub learned_at: crate::learned::Transition,
    /// What the run trained on, as the runtime describes it (`cuda (NVIDIA H100 80GB
    /// HBM3)`; of a resumed run its last part's; empty in results written before it was
    /// recorded): a study pieced together over several machines says which ran what.
    #[serde(default)]
    pub device: String,
}

/// Higher is better: accuracy, or minus a perplexity.
pub fn goodness(name: &str, figure: f64) -> f64 {
    if is_perplexity(name) { -figure } else { figure }
}

pub fn is_perplexity(name: &str) -> bool {
    name.starts_with("perplexity(") || name.starts_with("held-out perplexity(")
}

/// Where `run` of the sweep in `out` writes its figures once finished.
fn result_path(out: &Path, run: &Run) -> PathBuf {
    out.join(run.dir()).join("result.json")
}

/// Whether `run` of the sweep in `out` is done (its `result.json` is written).
fn is_done(out: &Path, run: &Run) -> bool {
    result_path(out, run).is_file()
}

/// How many of the grid's runs have not finished: those that can start now, and the
/// seeds and refinements still waiting for their cell's search.
pub(crate) fn left_in_grid(out: &Path, config: &SweepConfig) -> usize {
    let search = finished_search(out, config);
    let left = |run: &Run| resolve(config, run, &search).is_none_or(|r| !is_done(out, &r));
    grid(config).iter().filter(|run| needed(config, run, &search) && left(run)).count()
}

/// A run's `result.json`, if it has finished.
fn read_result(out: &Path, run: &Run) -> Option<Result> {
    let text = std::fs::read_to_string(result_path(out, run)).ok()?;
    serde_json::from_str::<Result>(&text).ok()
}

/// The finished search runs of the sweep in `out`: the grid's rates, then those of the
/// refinement whose cells' grids have finished (a refined rate that is one of the grid's
/// read once).
fn finished_search(out: &Path, config: &SweepConfig) -> Vec<Result> {
    let runs = grid(config);
    let mut search: Vec<Result> = runs
        .iter()
        .filter(|r| r.phase == Phase::Search && r.refine.is_none() && r.extend.is_none())
        .filter_map(|r| read_result(out, r))
        .collect();
    // Each later step's rates are known once the steps before it have finished: the
    // refinement, then an extension's first rate, its second, …
    let later = (1..=config.extend).map(Some);
    let steps = std::iter::once((true, None)).chain(later.map(|k| (false, k)));
    for (refine, extend) in steps {
        let slots = runs.iter().filter(|r| r.refine.is_some() == refine && r.extend == extend);
        let resolved: Vec<Run> = slots.filter_map(|r| resolve(config, r, &search)).collect();
        for run in resolved {
            if !search.iter().any(|r| r.run == run.name()) {
                search.extend(read_result(out, &run));
            }
        }
    }
    search
}

/// Every finished run of the sweep in `out`, in grid order (seeds whose cell's rate
/// is chosen included).
pub fn finished_runs(out: &Path, config: &SweepConfig) -> Vec<Result> {
    finished_beside(out, config, &finished_search(out, config))
}

/// [`finished_runs`] from the finished searches already read: `search`, then every other
/// finished run.
fn finished_beside(out: &Path, config: &SweepConfig, search: &[Result]) -> Vec<Result> {
    let others = grid(config).into_iter().filter(|r| r.phase != Phase::Search);
    let resolved: Vec<Run> = others.filter_map(|r| resolve(config, &r, search)).collect();
    search.iter().cloned().chain(resolved.iter().filter_map(|r| read_result(out, r))).collect()
}

/// The run with its learning rate: a seed's is its cell's chosen rate, a refining
/// run's its side of the cell's refinement, an extending run's its rate of the cell's
/// extension (none before, or for an extension that will not need it: [`needed`]).
fn resolve(config: &SweepConfig, run: &Run, search: &[Result]) -> Option<Run> {
    let lr = match (run.phase, run.refine, run.extend) {
        (Phase::Seed, ..) => chosen_lr(config, &run.lets, search)?,
        (_, Some(side), _) => refinement(config, &run.lets, search)?[side as usize],
        (_, _, Some(k)) => *extension(config, &run.lets, search).rates.get(k - 1)?,
        _ => return Some(run.clone()),
    };
    Some(Run { lr: Some(lr), refine: None, extend: None, ..run.clone() })
}

/// Whether `run` may still train: false only for an extending run its cell's settled
/// extension stopped short of.
fn needed(config: &SweepConfig, run: &Run, search: &[Result]) -> bool {
    run.extend.is_none_or(|k| {
        let extension = extension(config, &run.lets, search);
        !extension.settled || extension.rates.len() >= k
    })
}

/// Where a sweep's progress goes: the terminal (`hybc sweep`), or a caller's (Python's
/// callback).
pub trait Console {
    /// A line of the sweep's own: which run, what waits, the report.
    fn line(&self, text: &str);
    /// Trains one run as `hybc train` does, showing its progress.
    fn train(&self, file: &Path, model: &Model, options: &Options) -> std::result::Result<Outcome, String>;
}

/// The command line's console: lines on standard output, each run with its progress bar.
pub struct Terminal;

impl Console for Terminal {
    fn line(&self, text: &str) {
        println!("{text}");
    }

    fn train(&self, file: &Path, model: &Model, options: &Options) -> std::result::Result<Outcome, String> {
        train(file, model, options)
    }
}

/// Where a sweep's runs go, what they inherit from the command line, where it reports.
pub struct Setup<'a> {
    pub file: &'a Path,
    pub out: Option<&'a Path>,
    pub target: hyb_driver::Target,
    pub sets: &'a [String],
    pub interrupt: Option<&'a crate::interrupt::Interrupt>,
    pub console: &'a dyn Console,
    /// `--time-limit`: start no run that would not finish before it.
    pub deadline: Option<crate::deadline::Deadline>,
    /// How many runs train at once on the machine, this process's included (1 alone,
    /// the wave's shards under `--jobs`).
    pub at_once: u16,
    /// Under `--jobs`: the folder where each of the wave's shards keeps a marker while it
    /// is at work, so a run counts the shards still at work when it starts ([`Setup::runs_at_once`]).
    pub wave: Option<&'a Path>,
}

impl Setup<'_> {
    /// How many runs train at once now, this one's included: the wave's shards still at
    /// work (a run a shard starts after the others have finished trains alone, and is
    /// timed and guessed so), at most `at_once`; `at_once` outside a wave.
    pub fn runs_at_once(&self) -> u16 {
        let Some(wave) = self.wave else { return self.at_once };
        let markers = std::fs::read_dir(wave).map_or(0, |entries| entries.filter_map(|e| e.ok()).count());
        u16::try_from(markers).unwrap_or(u16::MAX).clamp(1, self.at_once.max(1))
    }
}

/// Trains every run of the sweep not done before (or lists them, or reports on those
/// done, as `mode` says); `Ok(Some(status))` when a signal stopped it (the run under way
/// keeps a checkpoint, and running the sweep again continues it).
pub fn sweep(setup: &Setup, root: &Model, mode: Mode) -> std::result::Result<Option<u8>, String> {
    run_grid(setup, root, mode)
}

/// The directory a sweep of `file` writes into: `out`, else `runs/<file stem>`.
pub fn out_dir(file: &Path, out: Option<&Path>) -> PathBuf {
    directory(file, out)
}

fn run_grid(setup: &Setup, root: &Model, mode: Mode) -> std::result::Result<Option<u8>, String> {
    let (file, console) = (setup.file, setup.console);
    let config = root.sweep.as_ref().ok_or_else(|| format!("`{}` has no sweep block", file.display()))?;
    overridden_sets(config, setup.sets)?;
    let out = directory(file, setup.out);
    let runs = grid(config);
    let selection = match mode {
        Mode::List(shard, jobs) => {
            list(console, &out, config, &runs, shard);
            if let Some(deadline) = setup.deadline {
                plan(console, &out, config, deadline.left(), usize::from(jobs), setup.target.is_gpu());
            }
            return Ok(None);
        }
        Mode::Report => return report(console, &out, config, runs.len()),
        Mode::Train(selection) => selection,
    };
    if let Some(Selection::Runs(listed)) = &selection
        && let Some(past) = listed.iter().find(|index| **index >= runs.len())
    {
        return Err(format!("the grid has runs 0 to {}; there is no run {past}", runs.len() - 1));
    }
    console.line(&format!("sweep {}: {} runs into {}", file.display(), runs.len(), out.display()));
    if let (Some(tokens), Some(train)) = (config.tokens, root.train.as_ref()) {
        let steps = budget_steps(tokens, train);
        console.line(&format!(
            "budget: {tokens} tokens a run = {steps} steps of {} × {} tokens",
            train.batch, train.seq_len
        ));
    }
    let (mut waiting, mut deferred) = (0, 0);
    // What has finished changes only when a run trains: read it then, not per run.
    let mut finished = Finished::read(&out, config, setup.deadline.is_some());
    let mut order: Vec<(usize, &Run)> = runs.iter().enumerate().collect();
    by_cell(config, &mut order);
    for (index, run) in order {
        if selection.as_ref().is_some_and(|selection| !selection.holds(index)) {
            continue;
        }
        if !needed(config, run, &finished.search) {
            let why = "not needed: its cell's best rate lies inside the rates searched";
            console.line(&format!("[{}/{}] {}: {why}", index + 1, runs.len(), run.name()));
            continue;
        }
        let Some(run) = resolve(config, run, &finished.search) else {
            console.line(&format!(
                "[{}/{}] {}: waits for its cell's learning-rate search",
                index + 1,
                runs.len(),
                run.name()
            ));
            waiting += 1;
            continue;
        };
        if is_done(&out, &run) {
            console.line(&format!("[{}/{}] {}: done before", index + 1, runs.len(), run.name()));
            continue;
        }
        if let Some(deadline) = setup.deadline {
            let device = if setup.target.is_gpu() { "cuda" } else { "cpu" };
            let guess = crate::deadline::guess(&run.lets, setup.runs_at_once(), device, &finished.timed);
            if !deadline.allows(guess) {
                let why = guess.map_or("the time limit has passed".to_string(), |guess| {
                    format!(
                        "{:.0} s left of the time limit, a run like it is guessed at {guess:.0} s",
                        deadline.left().max(0.0)
                    )
                });
                console.line(&format!("[{}/{}] {}: not started ({why})", index + 1, runs.len(), run.name()));
                deferred += 1;
                continue;
            }
        }
        console.line(&format!("\n[{}/{}] {}", index + 1, runs.len(), run.name()));
        if let Some(status) = train_run(setup, config, &run, &out.join(run.dir()))? {
            console.line("sweep stopped; running it again continues from here");
            return Ok(Some(status));
        }
        finished = Finished::read(&out, config, setup.deadline.is_some());
    }
    if waiting > 0 {
        console.line(&format!(
            "{waiting} run(s) wait for their cell's learning-rate search: run the sweep again once it is done"
        ));
    }
    if deferred > 0 {
        console.line(&format!(
            "{deferred} run(s) not started within the time limit: run the sweep again to train them; {}",
            report_hint(file)
        ));
        return Ok(None);
    }
    if let Some(selection) = selection {
        let which = match selection {
            Selection::Shard(shard) => format!("shard {}/{}", shard.index, shard.count),
            Selection::Runs(runs) => format!("runs {runs:?}"),
        };
        console.line(&format!("{which} done; {}", report_hint(file)));
        return Ok(None);
    }
    report(console, &out, config, runs.len())
}

/// The finished runs a sweep's loop consults: the searches (a seed's rate) and, under a
/// time limit, every run (a run's guessed length).
struct Finished {
    search: Vec<Result>,
    /// The finished runs' wall times and the stopped runs' projected ones.
    timed: Vec<crate::deadline::Timed>,
}

impl Finished {
    fn read(out: &Path, config: &SweepConfig, all: bool) -> Finished {
        let search = finished_search(out, config);
        let timed = if all {
            let runs = finished_beside(out, config, &search);
            let dirs =
                grid(config).into_iter().filter_map(|run| resolve(config, &run, &search)).map(|r| out.join(r.dir()));
            runs.iter().map(crate::deadline::Timed::from).chain(crate::deadline::stopped_runs(dirs)).collect()
        } else {
            Vec::new()
        };
        Finished { search, timed }
    }
}

/// A `--set` of a field the sweep sets for every run would be ignored: refused.
fn overridden_sets(config: &SweepConfig, sets: &[String]) -> std::result::Result<(), String> {
    let sweep_sets = |field: &str| match field {
        "steps" => config.tokens.map(|tokens| format!("`tokens = {tokens}`")),
        "seed" => (!config.test_seeds().is_empty()).then(|| "`seeds`".to_string()),
        _ => None,
    };
    for set in sets {
        let field = set.split_once('=').map_or(set.as_str(), |(name, _)| name.trim());
        if let Some(setting) = sweep_sets(field.trim_start_matches("train.")) {
            return Err(format!("`--set {set}` would be ignored: the sweep's {setting} sets it for every run"));
        }
    }
    Ok(())
}

/// `--list`: each run with its state (`index<TAB>state<TAB>run`), then a summary line
/// starting with `#` (a comment to the scripts that read the list): how many runs are
/// in each state and how long those left may take ([`crate::deadline::pace`]).
fn list(console: &dyn Console, out: &Path, config: &SweepConfig, runs: &[Run], shard: Option<Shard>) {
    let search = finished_search(out, config);
    let (mut states, mut left_runs) = (Vec::new(), Vec::new());
    for (index, run) in runs.iter().enumerate() {
        if shard.is_some_and(|shard| !shard.holds(index)) {
            continue;
        }
        let (state, run) = match resolve(config, run, &search) {
            None if !needed(config, run, &search) => ("not needed", run.clone()),
            None => ("waits for its search", run.clone()),
            Some(run) if is_done(out, &run) => ("done", run),
            Some(run) => ("to run", run),
        };
        states.push(state);
        if matches!(state, "to run" | "waits for its search") {
            left_runs.push(run.lets.clone());
        }
        console.line(&format!("{index}\t{state}\t{}", run.name()));
    }
    let counts = crate::stats::tally(states);
    let count = |state: &str| counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
    let left = count("to run") + count("waits for its search");
    let mut summary = format!(
        "# {} done, {} to run, {} waiting for their search",
        count("done"),
        count("to run"),
        count("waits for its search")
    );
    if count("not needed") > 0 {
        summary += &format!(", {} not needed", count("not needed"));
    }
    let timed: Vec<crate::deadline::Timed> =
        finished_beside(out, config, &search).iter().map(crate::deadline::Timed::from).collect();
    let paces: Option<Vec<f64>> = left_runs.iter().map(|lets| crate::deadline::pace(lets, &timed)).collect();
    if let Some(seconds) = paces.map(|paces| paces.iter().sum::<f64>()).filter(|_| left > 0) {
        // Waiting extension slots may turn out not needed.
        let up_to = if config.extend > 0 && count("waits for its search") > 0 { "up to " } else { "" };
        summary += &format!(
            "; {up_to}{left} left: about {} at the finished runs' pace ({:.0} s of their machine a run on \
             average: for each run, the median of each like run's time over the runs at once beside it)",
            crate::deadline::hours(seconds),
            seconds / left as f64
        );
    }
    console.line(&summary);
}

/// `--list --time-limit`: what a call of `left` seconds would start now, in its first
/// wave, with up to `jobs` processes at once, as `--jobs` plans it
/// ([`crate::deadline::shards_that_fit`]), each run with its guessed length.
fn plan(console: &dyn Console, out: &Path, config: &SweepConfig, left: f64, jobs: usize, gpu: bool) {
    let pending = jobs::to_run(out, config);
    if pending.is_empty() {
        console.line("# nothing is ready to run");
        return;
    }
    let Some((shards, started)) = jobs::wave_plan(&pending, out, config, jobs, left, gpu) else {
        console.line(&format!(
            "# within {left:.0} s: nothing to go by (no run finished or stopped), so all {} ready run(s) may start",
            pending.len()
        ));
        return;
    };
    console.line(&format!(
        "# within {left:.0} s, {shards} at once (of up to {jobs}): {} of the {} ready run(s) would start",
        started.len(),
        pending.len()
    ));
    let search = finished_search(out, config);
    for (place, seconds) in started {
        let (index, run) = &pending[place];
        let name = resolve(config, run, &search).map_or_else(|| run.name(), |run| run.name());
        console.line(&format!("#   {index}\t{name}\tguessed {seconds:.0} s"));
    }
}

/// `results` with `learned_at` read from each run's `metrics.jsonl` where their
/// `result.json` did not record it (written before it was) and the log is kept.
fn with_transitions(out: &Path, mut results: Vec<Result>) -> Vec<Result> {
    let unrecorded = results.iter_mut().filter(|r| r.learned_at == crate::learned::Transition::Unrecorded);
    for result in unrecorded {
        let figure = result.held_out.as_ref().or(result.accuracy.first());
        result.learned_at = learned_at(&out.join(dir_name(&result.run)), figure, result.chance);
    }
    results
}

/// How a partial sweep's finished runs are reported.
fn report_hint(file: &Path) -> String {
    format!("`hybc sweep {} --report` gathers the finished runs", file.display())
}

/// Writes the report of the finished runs (of `total`) and shows it.
fn report(
    console: &dyn Console,
    out: &Path,
    config: &SweepConfig,
    total: usize,
) -> std::result::Result<Option<u8>, String> {
    let results = with_transitions(out, finished_runs(out, config));
    if results.is_empty() {
        return Err(format!("no run of the sweep has finished in `{}`", out.display()));
    }
    let markdown = crate::tables::write(out, config, &results)?;
    console.line(&format!("\n{markdown}"));
    if results.len() < total {
        console.line(&format!("{} of {total} runs finished; the tables hold those", results.len()));
    }
    let search = if config.searches() { ", search.svg, search.png" } else { "" };
    console
        .line(&format!("wrote {0}/results.csv, {0}/results.md, {0}/recall.svg, {0}/recall.png{search}", out.display()));
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(lrs: &[f64]) -> SweepConfig {
        SweepConfig {
            axes: Vec::new(),
            lrs: lrs.to_vec(),
            seeds: Vec::new(),
            search_runs: 1,
            lr_tie: 0.0,
            refine: false,
            extend: 0,
            tokens: None,
            plateau: None,
        }
    }

    fn search_result(lr: f64, held_out: f64, test: f64) -> Result {
        Result {
            run: String::new(),
            lets: Vec::new(),
            lr,
            seed: 3,
            params: 0,
            state_bytes: 0,
            kv_cache_bytes: 0,
            final_loss: 0.0,
            accuracy: vec![("mqar(seq_len: 64, pairs: 8)".into(), test)],
            phase: Phase::Search,
            held_out: Some(("held-out mqar(seq_len: 64, pairs: 8)".into(), held_out)),
            steps: 1,
            plateaued_at: None,
            tokens: 0,
            mixer: String::new(),
            attention_share: 0.0,
            chance: None,
            by_group: Vec::new(),
            update: String::new(),
            seconds: 0.0,
            at_once: 0,
            learned_at: crate::learned::Transition::Unrecorded,
            device: String::new(),
        }
    }

    /// The highest held-out score wins, the first of a tie; a perplexity is lower-better.
    #[test]
    fn the_held_out_score_alone_chooses() {
        assert_eq!(choose(&[(1e-3, 0.5), (3e-3, 0.7), (1e-2, 0.7)]), Some(3e-3));
        assert_eq!(choose(&[]), None);
        let config = config(&[1e-3, 1e-2]);
        // The test score would take 1e-2 (0.9 against 0.1); the held-out takes 1e-3.
        let results = [search_result(1e-3, 0.6, 0.1), search_result(1e-2, 0.4, 0.9)];
        assert_eq!(chosen_lr(&config, &[], &results), Some(1e-3));
        assert_eq!(chosen_lr(&config, &[], &results[..1]), None, "a rate still running: no choice yet");
        let mut perplexity = [search_result(1e-3, 30.0, 0.0), search_result(1e-2, 20.0, 0.0)];
        for r in &mut perplexity {
            r.held_out.as_mut().expect("held-out").0 = "held-out perplexity(tiny.txt)".into();
        }
        assert_eq!(chosen_lr(&config, &[], &perplexity), Some(1e-2));
    }

    /// `lr_tie`: the largest rate within the tie of the best (for accuracy in its own
    /// units, for perplexity that share of the best); outside it, the best as before.
    #[test]
    fn a_near_tie_takes_the_largest_rate() {
        // distance_gdn.hyb's search: 99.9 % at 3.16e-4 (3 of 6 seeds learned there later),
        // 99.4 % at 1e-3 (6 of 6 at that rate).
        let searched =
            [search_result(1e-4, 0.259, 0.0), search_result(3.16e-4, 0.999, 0.0), search_result(1e-3, 0.994, 0.0)];
        let plain = config(&[1e-4, 3.16e-4, 1e-3]);
        assert_eq!(chosen_lr(&plain, &[], &searched), Some(3.16e-4), "no lr_tie: the best");
        let tied = SweepConfig { lr_tie: 0.01, ..plain.clone() };
        assert_eq!(chosen_lr(&tied, &[], &searched), Some(1e-3));
        let narrow = SweepConfig { lr_tie: 0.001, ..plain.clone() };
        assert_eq!(chosen_lr(&narrow, &[], &searched), Some(3.16e-4), "0.5 points apart is no tie at 0.1");
        assert_eq!(choose_within(&[(1e-3, 0.5), (3e-3, 0.9), (1e-2, 0.2)], |_| 0.5), Some(3e-3));
        assert_eq!(choose_within(&[(1e-3, 0.5), (3e-3, 0.9), (1e-2, 0.2)], |_| 0.75), Some(1e-2));
        assert_eq!(choose_within(&[], |_| 0.1), None);
        let mut perplexity =
            [search_result(1e-3, 20.0, 0.0), search_result(1e-2, 20.5, 0.0), search_result(1e-1, 25.0, 0.0)];
        for r in &mut perplexity {
            r.held_out.as_mut().expect("held-out").0 = "held-out perplexity(tiny.txt)".into();
        }
        let config = SweepConfig { lr_tie: 0.05, ..config(&[1e-3, 1e-2, 1e-1]) };
        assert_eq!(chosen_lr(&config, &[], &perplexity), Some(1e-2), "20.5 is within 5 % of 20, 25 is not");
    }

    /// `search_seeds = 2`: each rate runs on two search seeds and the mean of their
    /// held-out scores chooses — a rate that learns in both beats one that learned best
    /// once; no choice until both runs of every rate have finished.
    #[test]
    fn several_search_seeds_choose_by_their_mean() {
        let config = SweepConfig { search_runs: 2, ..config(&[1e-3, 1e-2]) };
        assert_eq!(config.search_seeds(), vec![3, 4]);
        let names: Vec<String> = grid(&config).iter().map(Run::name).collect();
        assert_eq!(
            names[..4],
            ["lr=1e-3,seed=3,search", "lr=1e-3,seed=4,search", "lr=1e-2,seed=3,search", "lr=1e-2,seed=4,search"]
        );
        assert_eq!(names.len(), config.len());
        assert_eq!(config.len(), 2 * 2 + 3);
        let on = |seed, lr, held_out| Result { seed, ..search_result(lr, held_out, 0.0) };
        // 1e-2 has the best single run (1.0) but fails once; 1e-3 learns in both.
        let results = [on(3, 1e-3, 0.9), on(4, 1e-3, 0.9), on(3, 1e-2, 1.0), on(4, 1e-2, 0.1)];
        assert_eq!(chosen_lr(&config, &[], &results), Some(1e-3));
        let figure = search_figure(&config, &[], 1e-2, &results).expect("both finished");
        assert!((figure.1 - 0.55).abs() < 1e-12, "{figure:?}");
        assert_eq!(chosen_lr(&config, &[], &results[..3]), None, "a search run still running");
    }

    /// `around`: the geometric midpoints with the best's neighbours, half a step beyond
    /// an end, to three digits — half decades refine to the quarter decades written by
    /// hand in the study's grids.
    #[test]
    fn the_refinement_halves_the_step_around_the_best() {
        let lrs = [3.16e-4, 1e-3, 3.16e-3, 1e-2];
        assert_eq!(around(&lrs, 1e-3), [5.62e-4, 1.78e-3]);
        assert_eq!(around(&lrs, 3.16e-3), [1.78e-3, 5.62e-3]);
        assert_eq!(around(&lrs, 3.16e-4), [1.78e-4, 5.62e-4], "the lowest: half a step below");
        assert_eq!(around(&lrs, 1e-2), [5.62e-3, 1.78e-2], "the highest: half a step above");
        assert_eq!(around(&[1e-2, 1e-3], 1e-3), [3.16e-4, 3.16e-3], "two rates written in any order");
        assert_eq!(around(&[1e-3, 1e-1], 1e-3), [1e-4, 1e-2]);
    }

    /// `lr_refine`: the refining runs follow every cell's grid and wait for it; each takes
    /// its side of the best grid rate; the seeds wait for the refinement and take the best
    /// of all five rates — here a refined one the grid missed.
    #[test]
    fn the_refinement_waits_for_the_grid_and_can_win() {
        let plain = config(&[1e-3, 3.16e-3, 1e-2]);
        let config = SweepConfig { refine: true, ..plain.clone() };
        let runs = grid(&config);
        assert_eq!(runs.len(), config.len());
        assert_eq!(config.len(), 3 + 2 + 3);
        assert_eq!(runs[3].name(), "lr=(refined below the search's best),seed=3,search");
        assert_eq!(runs[4].name(), "lr=(refined above the search's best),seed=3,search");
        let grid_done =
            [search_result(1e-3, 0.3, 0.0), search_result(3.16e-3, 0.7, 0.0), search_result(1e-2, 0.5, 0.0)];
        assert_eq!(resolve(&config, &runs[3], &grid_done[..2]).map(|r| r.name()), None, "the grid is unfinished");
        let below = resolve(&config, &runs[3], &grid_done).expect("the grid is done");
        assert_eq!(below.name(), "lr=1.78e-3,seed=3,search");
        assert_eq!(resolve(&config, &runs[4], &grid_done).expect("done").lr, Some(5.62e-3));
        assert_eq!(chosen_lr(&config, &[], &grid_done), None, "the seeds wait for the refinement");
        assert_eq!(resolve(&config, &runs[5], &grid_done).map(|r| r.name()), None);
        let mut all = grid_done.to_vec();
        all.extend([search_result(1.78e-3, 0.9, 0.0), search_result(5.62e-3, 0.6, 0.0)]);
        assert_eq!(search_scores(&config, &[], &all).map(|s| s.len()), Some(5));
        assert_eq!(chosen_lr(&config, &[], &all), Some(1.78e-3));
        let seed = resolve(&config, &runs[5], &all).expect("chosen");
        assert_eq!(seed.name(), "lr=1.78e-3,seed=0");
        assert_eq!(chosen_lr(&plain, &[], &all), Some(3.16e-3), "without lr_refine the refined runs are not read");
        // With `lr_tie` the refinement centres on the rate the tie takes (1e-2 is within
        // 0.25 of 3.16e-3's 0.7).
        let tied = SweepConfig { lr_tie: 0.25, ..config.clone() };
        assert_eq!(refinement(&tied, &[], &grid_done), Some([5.62e-3, 1.78e-2]));
    }

    /// `lr_extend = 2`: the extending runs wait for the grid; where its best is the
    /// lowest rate a grid step below follows, and another below that while the best
    /// stays at the end; the seeds wait for the extension to settle. Where the best lies
    /// inside, or nothing learned, the slots are not needed and count as nothing left.
    #[test]
    fn the_extension_follows_the_best_past_an_end() {
        let plain = config(&[1e-3, 3.16e-3, 1e-2]);
        let config = SweepConfig { extend: 2, ..plain.clone() };
        let runs = grid(&config);
        assert_eq!(runs.len(), config.len());
        assert_eq!(config.len(), 3 + 2 + 3);
        assert_eq!(runs[3].name(), "lr=(extension 1 past the search's best end),seed=3,search");
        let grid_done =
            [search_result(1e-3, 0.7, 0.0), search_result(3.16e-3, 0.5, 0.0), search_result(1e-2, 0.1, 0.0)];
        assert_eq!(resolve(&config, &runs[3], &grid_done[..2]).map(|r| r.name()), None, "the grid is unfinished");
        assert!(needed(&config, &runs[3], &grid_done[..2]));
        let first = resolve(&config, &runs[3], &grid_done).expect("the best is the lowest");
        assert_eq!(first.name(), "lr=3.16e-4,seed=3,search");
        assert_eq!(resolve(&config, &runs[4], &grid_done).map(|r| r.name()), None, "waits for the first");
        assert_eq!(chosen_lr(&config, &[], &grid_done), None, "the seeds wait for the extension");
        // 3.16e-4 scores best again: a second step below; then it has reached its limit.
        let mut further = grid_done.to_vec();
        further.push(search_result(3.16e-4, 0.8, 0.0));
        assert_eq!(resolve(&config, &runs[4], &further).expect("a second step").lr, Some(1e-4));
        further.push(search_result(1e-4, 0.6, 0.0));
        assert_eq!(extension(&config, &[], &further), Extension { rates: vec![3.16e-4, 1e-4], settled: true });
        assert_eq!(chosen_lr(&config, &[], &further), Some(3.16e-4));
        assert_eq!(search_scores(&config, &[], &further).map(|s| s.len()), Some(5));
        // 3.16e-4 worse than 1e-3: the best lies inside, the second slot is not needed.
        let mut inside = grid_done.to_vec();
        inside.push(search_result(3.16e-4, 0.2, 0.0));
        assert!(!needed(&config, &runs[4], &inside));
        assert_eq!(chosen_lr(&config, &[], &inside), Some(1e-3));
        let dir = std::env::temp_dir().join(format!("hyb_extension_{}", std::process::id()));
        assert_eq!(left_in_grid(&dir, &config), config.len(), "nothing finished in an empty folder");
        // A best at the top goes up by the grid's step there; an inside best adds nothing.
        let high = [search_result(1e-3, 0.1, 0.0), search_result(3.16e-3, 0.5, 0.0), search_result(1e-2, 0.7, 0.0)];
        assert_eq!(extension(&config, &[], &high).rates, vec![3.16e-2]);
        let middle = [search_result(1e-3, 0.1, 0.0), search_result(3.16e-3, 0.7, 0.0), search_result(1e-2, 0.5, 0.0)];
        assert_eq!(extension(&config, &[], &middle), Extension { rates: Vec::new(), settled: true });
        // Every rate at chance: an edge of nothing, no extension.
        let chance = grid_done.clone().map(|r| Result { chance: Some(0.7), ..r });
        assert_eq!(extension(&config, &[], &chance), Extension { rates: Vec::new(), settled: true });
        // ... and a seed that learns afterwards does not reopen the settled search.
        let seed = Result { phase: Phase::Seed, seed: 0, chance: Some(0.7), ..search_result(1e-3, 0.0, 0.95) };
        let with_seed: Vec<Result> = chance.iter().cloned().chain([seed]).collect();
        assert_eq!(extension(&config, &[], &with_seed), Extension { rates: Vec::new(), settled: true });
        assert_eq!(chosen_lr(&config, &[], &with_seed), Some(1e-3));
        assert_eq!(chosen_lr(&plain, &[], &further), Some(1e-3), "without lr_extend the extended runs are not read");
    }

    /// A run under `--jobs` counts the wave's shards still at work (their markers), at
    /// least itself and at most the wave; outside a wave, what it was told.
    #[test]
    fn a_run_counts_the_shards_still_at_work() {
        let wave = std::env::temp_dir().join(format!("hyb_wave_{}", std::process::id()));
        std::fs::create_dir_all(&wave).expect("a temp folder");
        let setup = |wave| Setup {
            file: Path::new("study.hyb"),
            out: None,
            target: hyb_driver::Target::default(),
            sets: &[],
            interrupt: None,
            console: &Terminal,
            deadline: None,
            at_once: 8,
            wave,
        };
        assert_eq!(setup(Some(&wave)).runs_at_once(), 1, "no marker left: itself");
        for shard in 0..3 {
            std::fs::write(wave.join(format!("shard-{shard}")), "").expect("a marker");
        }
        assert_eq!(setup(Some(&wave)).runs_at_once(), 3);
        for shard in 3..10 {
            std::fs::write(wave.join(format!("shard-{shard}")), "").expect("a marker");
        }
        assert_eq!(setup(Some(&wave)).runs_at_once(), 8, "at most the wave");
        assert_eq!(setup(None).runs_at_once(), 8);
        std::fs::remove_dir_all(&wave).expect("removable");
    }

    /// With a search: every cell's rates first (on the search seed), then its seeds
    /// waiting for the choice; without: cell × seed at the one rate.
    #[test]
    fn the_grid_searches_then_seeds() {
        let mut searching = config(&[1e-3, 1e-2]);
        searching
            .axes
            .push(hyb_compiler::ir::train::Axis { name: "linear".into(), values: vec!["gdn".into(), "gla".into()] });
        let runs = grid(&searching);
        let names: Vec<String> = runs.iter().map(Run::name).collect();
        assert_eq!(names.len(), searching.len());
        assert_eq!(names[0], "linear=gdn,lr=1e-3,seed=3,search");
        assert_eq!(names[3], "linear=gla,lr=1e-2,seed=3,search");
        assert_eq!(names[4], "linear=gdn,lr=(chosen by the search),seed=0");
        assert_eq!(names.len(), 2 * (2 + 3));
        let plain = config(&[]);
        let names: Vec<String> = grid(&plain).iter().map(Run::name).collect();
        assert_eq!(names, vec![String::new()], "one run at the train block's rate and seed");
    }

    /// Runs are tried cell by cell — gdn's search and seeds before gla's — under the
    /// grid's indices, searches before seeds within a cell.
    #[test]
    fn runs_are_tried_cell_by_cell() {
        let mut searching = SweepConfig { seeds: vec![0, 1], ..config(&[1e-3, 1e-2]) };
        searching
            .axes
            .push(hyb_compiler::ir::train::Axis { name: "linear".into(), values: vec!["gdn".into(), "gla".into()] });
        let mut order: Vec<(usize, Run)> = grid(&searching).into_iter().enumerate().collect();
        by_cell(&searching, &mut order);
        let indices: Vec<usize> = order.iter().map(|(index, _)| *index).collect();
        assert_eq!(indices, [0, 1, 4, 5, 2, 3, 6, 7]);
        let phases: Vec<Phase> = order.iter().map(|(_, run)| run.phase).collect();
        use Phase::{Search, Seed};
        assert_eq!(phases, [Search, Search, Seed, Seed, Search, Search, Seed, Seed]);
        assert!(order[..4].iter().all(|(_, run)| run.lets[0].1 == "gdn"));
    }

    /// Runs left in a grid count the seeds still waiting for their cell's search.
    #[test]
    fn the_runs_left_count_seeds_that_wait() {
        let mut searching = SweepConfig { seeds: vec![0, 1, 2], ..config(&[1e-3, 1e-2]) };
        searching
            .axes
            .push(hyb_compiler::ir::train::Axis { name: "linear".into(), values: vec!["gdn".into(), "gla".into()] });
        let out = std::env::temp_dir().join(format!("hyb-left-{}", std::process::id()));
        assert_eq!(left_in_grid(&out, &searching), 10, "nothing finished: 2 cells × (2 rates + 3 seeds)");
        for (lr, held_out) in [(1e-3, 0.9), (1e-2, 0.2)] {
            let run = Run { lr: Some(lr), ..grid(&searching)[if lr == 1e-3 { 0 } else { 1 }].clone() };
            let lets = vec![("linear".to_string(), "gdn".to_string())];
            let result = Result { run: run.name(), lets, ..search_result(lr, held_out, held_out) };
            std::fs::create_dir_all(out.join(run.dir())).expect("a scratch directory");
            std::fs::write(result_path(&out, &run), serde_json::to_string(&result).expect("json")).expect("writable");
        }
        assert_eq!(left_in_grid(&out, &searching), 8, "gdn's search done: its seeds and gla's runs left");
        let _ = std::fs::remove_dir_all(&out);
    }

    /// A result written before `learned_at` was recorded gets it from its run's log at
    /// report time; one whose log is gone stays unrecorded; a recorded one is kept.
    #[test]
    fn old_results_learn_their_transition_from_the_log() {
        use crate::learned::Transition;
        let out = std::env::temp_dir().join(format!("hyb-transitions-{}", std::process::id()));
        let named = |run: &str, learned_at| Result { run: run.into(), learned_at, ..search_result(1e-3, 0.9, 0.9) };
        let logged = named("linear=gdn,lr=1e-3,seed=3,search", Transition::Unrecorded);
        let dir = out.join(dir_name(&logged.run));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let line = |step: u64, a: f64| {
            format!("{{\"step\":{step},\"eval/held-out mqar(seq_len: 64, pairs: 8)/accuracy\":{a}}}")
        };
        std::fs::write(dir.join("metrics.jsonl"), [line(100, 0.1), line(200, 0.9)].join("\n")).expect("writable");
        let chanced = |r: Result| Result { chance: Some(0.125), ..r };
        let results = vec![
            chanced(logged),
            chanced(named("linear=gla,lr=1e-3,seed=3,search", Transition::Unrecorded)),
            chanced(named("linear=gdn,lr=1e-2,seed=3,search", Transition::At(700))),
        ];
        let read: Vec<Transition> = with_transitions(&out, results).iter().map(|r| r.learned_at).collect();
        assert_eq!(read, [Transition::At(200), Transition::Unrecorded, Transition::At(700)]);
        let _ = std::fs::remove_dir_all(&out);
    }
}
