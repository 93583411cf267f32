//! `hybc sweep --time-limit`: a sweep inside a wall-clock limit — a batch job's time
//! limit, a lent machine's lease — starts a run only where it can finish before the
//! limit, so no run is cut off half-trained (its checkpoints would be lost with the
//! machine); the runs left wait for the next call, which resumes the sweep. A run's
//! length is guessed from the finished runs' recorded wall times (`seconds` in
//! `result.json`), the runs most like it first: its own cell's, else those of the cells
//! that share the most of its lets (a RetNet 3:1 run goes by RetNet's other ratios and
//! the other mixers' 3:1 runs before the rest: on `gpu.hyb` RetNet 3:1 and 7:1 runs took
//! 566 s at eight at once, the GatedDeltaNet runs the guess then went by 447 s). Among
//! them, the longest of those timed with as many runs at once on the machine (`at_once`:
//! a GPU shared by four runs gives each a quarter of it, so times taken under `--jobs 4`
//! misjudge a call with `--jobs 2`); without such runs, the others' times scaled to this
//! sharing (a machine filled by its runs gives each its share: time in proportion to the
//! runs at once), a sixth more where more run at once than were timed (RetNet 3:1 took
//! 253 s at four, 566 s at eight: 2.24 times, not 2) and half as much again where fewer
//! (a lone run does not fill a GPU: one run of `gpu.hyb` alone took 73 s, 1.5 times its
//! share of eight at once, 49 s), though never longer than the time taken with more
//! beside it; last, times whose sharing was not recorded, as they are. Of the finished
//! runs, those recorded on the kind of device this sweep trains on
//! (`cuda (…)`, `cpu (…)`) are consulted alone where there are any: runs from before the
//! device was recorded came from older, often slower builds (on `gpu.hyb` four at once
//! took 306 – 354 s then, 198 – 217 s since), and the longest of them held a call's last
//! minutes back.
//! A run a signal stopped (a call's `timeout`, a batch job's limit) leaves
//! `stopped.json` ([`Stopped`]): how far it got and in what time, projected to its last
//! step, counts as a finished run would (eight RetNet runs stopped at step 1,953 of
//! 2,048 had left nothing to go by). With none finished or stopped there is nothing to
//! go by, and a run starts while the limit has not passed.
//! The limit is a moment, not a length, so the processes of `--jobs` share it
//! (`--deadline-at`, seconds since the Unix epoch).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sweep::Result;

/// A run's wall time as [`guess`] reads it: a finished run's (`result.json`), or a
/// stopped run's projected to its last step ([`Stopped::timed`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    pub lets: Vec<(String, String)>,
    pub seconds: f64,
    /// Runs at once on the machine while it trained (0: not recorded).
    pub at_once: u16,
    /// What it trained on (`cuda (NVIDIA H100 80GB HBM3)`; empty: not recorded).
    pub device: String,
}

impl From<&Result> for Timed {
    fn from(run: &Result) -> Timed {
        Timed { lets: run.lets.clone(), seconds: run.seconds, at_once: run.at_once, device: run.device.clone() }
    }
}

/// `stopped.json` in a run's directory: how far a run stopped by a signal got in this
/// call, and in what wall time (compile included).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stopped {
    pub lets: Vec<(String, String)>,
    pub seconds: f64,
    pub at_once: u16,
    pub device: String,
    /// The run's steps, the step this call began after (a resumed run's checkpoint) and
    /// the step it stopped after.
    pub steps: u64,
    pub from: u64,
    pub to: u64,
}

impl Stopped {
    /// The whole run's wall time at this call's pace; none where the call trained less
    /// than a tenth of the run (its compile and first evaluation would weigh too much).
    pub fn timed(&self) -> Option<Timed> {
        let done = self.to.saturating_sub(self.from);
        (done > 0 && done.saturating_mul(10) >= self.steps).then(|| Timed {
            lets: self.lets.clone(),
            seconds: self.seconds * self.steps as f64 / done as f64,
            at_once: self.at_once,
            device: self.device.clone(),
        })
    }

    /// Writes `stopped.json` into the run's directory `dir` (whole, then renamed), unless
    /// this stop says nothing of the run's length ([`Stopped::timed`]) and an earlier one
    /// there does.
    pub fn write(&self, dir: &Path) -> std::result::Result<(), String> {
        let path = dir.join(STOPPED);
        let earlier = std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str::<Stopped>(&text).ok());
        if self.timed().is_none() && earlier.is_some_and(|earlier| earlier.timed().is_some()) {
            return Ok(());
        }
        let partial = dir.join(format!("{STOPPED}.tmp"));
        let json = serde_json::to_string_pretty(self).expect("JSON");
        std::fs::write(&partial, json).map_err(|e| format!("cannot write `{}`: {e}", partial.display()))?;
        std::fs::rename(&partial, &path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    }
}

/// The file a stopped run leaves in its directory.
pub const STOPPED: &str = "stopped.json";

/// Of the run directories `dirs` (the sweep's), the stopped runs that have not finished
/// since, projected to their last step: each `stopped.json` without a `result.json`.
pub fn stopped_runs(dirs: impl IntoIterator<Item = std::path::PathBuf>) -> Vec<Timed> {
    let unfinished = dirs.into_iter().filter(|dir| !dir.join("result.json").exists());
    let records = unfinished.filter_map(|dir| std::fs::read_to_string(dir.join(STOPPED)).ok());
    records.filter_map(|text| serde_json::from_str::<Stopped>(&text).ok()?.timed()).collect()
}

/// The moment after which a sweep starts no run it could not finish.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deadline {
    /// Seconds since the Unix epoch.
    at: f64,
}

impl Deadline {
    /// `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline { at: now() + limit.as_secs_f64() }
    }

    /// At `at` seconds since the Unix epoch (what `--deadline-at` passes to shards).
    pub fn at(at: f64) -> Deadline {
        Deadline { at }
    }

    /// Seconds since the Unix epoch.
    pub fn epoch_seconds(self) -> f64 {
        self.at
    }

    /// Seconds left, negative once past.
    pub fn left(self) -> f64 {
        self.at - now()
    }

    /// Whether a run guessed to take `guess` seconds (unknown: none) can start now.
    pub fn allows(self, guess: Option<f64>) -> bool {
        self.left() >= guess.unwrap_or(0.0)
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// How long a run of the cell `lets`, trained with `at_once` runs on the machine, is
/// guessed to take: the longest recorded wall time among the finished runs most like it
/// (its cell's, else those sharing the most of its lets) — of those timed with `at_once`
/// runs at once if there are any, else of those whose sharing was recorded, scaled to
/// `at_once` (`scaled`), else of all; none without one. `device` is the kind of device
/// the run will train on (`cuda`, `cpu`): runs recorded on it are the only ones consulted
/// where there are any.
pub fn guess(lets: &[(String, String)], at_once: u16, device: &str, finished: &[Timed]) -> Option<f64> {
    let like = most_like(lets, Some(device), finished);
    let longest = |seconds: &mut dyn Iterator<Item = f64>| seconds.reduce(f64::max);
    longest(&mut like.iter().filter(|r| r.at_once == at_once).map(|r| r.seconds))
        .or_else(|| longest(&mut like.iter().filter(|r| r.at_once > 0 && at_once > 0).map(|r| scaled(r, at_once))))
        .or_else(|| longest(&mut like.iter().map(|r| r.seconds)))
}

/// The timed runs most like a run of the cell `lets`: those sharing the most of its
/// lets (its own cell's first), of those recorded on `device`'s kind (any device: of
/// those whose device was recorded) where there are any.
fn most_like<'a>(lets: &[(String, String)], device: Option<&str>, finished: &'a [Timed]) -> Vec<&'a Timed> {
    let timed: Vec<&Timed> = finished.iter().filter(|r| r.seconds > 0.0).collect();
    let described = device.map_or(String::new(), |device| format!("{device} ("));
    let recorded = |run: &Timed| !run.device.is_empty() && run.device.starts_with(&described);
    let here: Vec<&Timed> = timed.iter().copied().filter(|r| recorded(r)).collect();
    let timed = if here.is_empty() { timed } else { here };
    let likeness = |run: &Timed| lets.iter().filter(|pair| run.lets.contains(pair)).count();
    let Some(closest) = timed.iter().map(|r| likeness(r)).max() else { return Vec::new() };
    timed.into_iter().filter(|r| likeness(r) == closest).collect()
}

/// Under a time limit, how many shards of up to `jobs` a wave of `runs` (each's lets, in
/// the order they are dealt round robin) starts so that the most runs finish in the
/// `left` seconds, and which runs those are (their places in `runs`): each shard tries
/// its runs in turn and starts those whose guessed length at that many at once still
/// fits; ties go to more shards. A plan, not a promise: the shards decide as they go,
/// counting the shards still at work and the runs finished since. None where a run has
/// nothing to go by (no finished run): every shard then. Eight RetNet 3:1 runs guessed
/// at 590 s do not fit 540 s; seven at 516 s do.
pub fn shards_that_fit(
    runs: &[&[(String, String)]],
    jobs: usize,
    left: f64,
    guess: impl Fn(&[(String, String)], u16) -> Option<f64>,
) -> Option<(usize, Vec<usize>)> {
    let mut best = (0, Vec::new());
    for shards in 1..=jobs.min(runs.len()) {
        let at_once = u16::try_from(shards).unwrap_or(u16::MAX);
        let mut started = Vec::new();
        for shard in 0..shards {
            let mut spent = 0.0;
            for place in (shard..runs.len()).step_by(shards) {
                let length = guess(runs[place], at_once)?;
                if spent + length <= left {
                    spent += length;
                    started.push(place);
                }
            }
        }
        if started.len() >= best.1.len() {
            started.sort_unstable();
            best = (shards, started);
        }
    }
    Some(best)
}

/// A run's wall time as it would be with `at_once` runs on the machine: in proportion
/// to the runs at once, a sixth more where more run than shared it when timed, half as
/// much again where fewer (but never more than it took with more beside it).
fn scaled(run: &Timed, at_once: u16) -> f64 {
    let in_proportion = run.share() * f64::from(at_once);
    match at_once.cmp(&run.at_once) {
        // Never longer than with more beside it: 566 s at eight is not 743 s at seven.
        std::cmp::Ordering::Less => (in_proportion * 1.5).min(run.seconds),
        std::cmp::Ordering::Equal => run.seconds,
        std::cmp::Ordering::Greater => in_proportion * 7.0 / 6.0,
    }
}

/// A run's share of its machine's time: its wall time over the runs that trained at
/// once beside it (four runs of 200 s at once take 50 s of the machine each; a run
/// whose sharing was not recorded counts as alone).
pub fn share(run: &Result) -> f64 {
    share_of(run.seconds, run.at_once)
}

impl Timed {
    fn share(&self) -> f64 {
        share_of(self.seconds, self.at_once)
    }
}

fn share_of(seconds: f64, at_once: u16) -> f64 {
    seconds / f64::from(at_once.max(1))
}

/// The machine's time a run of the cell `lets` takes, from the finished runs most like
/// it (as [`guess`] picks them, on any recorded device): the median of their [`share`]s;
/// none before a run was timed. RetNet 3:1's runs of `gpu.hyb` take 63 – 70 s of the
/// GPU, GatedDeltaNet's about 50; its first 30 runs, from slower builds and with their
/// sharing unrecorded, are left out once later ones record their device.
pub fn pace(lets: &[(String, String)], finished: &[Timed]) -> Option<f64> {
    let mut shares: Vec<f64> = most_like(lets, None, finished).into_iter().map(Timed::share).collect();
    shares.sort_by(f64::total_cmp);
    let n = shares.len();
    (n > 0).then(|| if n % 2 == 1 { shares[n / 2] } else { (shares[n / 2 - 1] + shares[n / 2]) / 2.0 })
}

/// `45 min`, `1.7 h`.
pub fn hours(seconds: f64) -> String {
    if seconds < 5400.0 { format!("{:.0} min", seconds / 60.0) } else { format!("{:.1} h", seconds / 3600.0) }
}

/// A duration as a number and a unit: `90s`, `9m`, `1.5h`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: write a number and s, m or h (`540s`, `9m`, `2h`)");
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    if !number.is_finite() || number < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(number * scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::tests::run;
    use crate::sweep::Phase;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("540s"), Ok(Duration::from_secs(540)));
        assert_eq!(parse_duration("9m"), Ok(Duration::from_secs(540)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["540", "9 parsecs", "-3m", "m", "inf s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn guess_cpu(lets: &[(String, String)], at_once: u16, finished: &[Result]) -> Option<f64> {
        guess(lets, at_once, "cpu", &timed(finished))
    }

    fn timed(finished: &[Result]) -> Vec<Timed> {
        finished.iter().map(Timed::from).collect()
    }

    /// Runs recorded on the sweep's kind of device are consulted alone where there are
    /// any: `gpu.hyb`'s older four-at-once runs (354 s, device not recorded) no longer
    /// hold back a call that the newer ones (217 s) fit.
    #[test]
    fn runs_on_this_kind_of_device_come_first() {
        let run = |seconds, device: &str| Result {
            seconds,
            at_once: 4,
            device: device.into(),
            ..run("gdn", Phase::Search, None, 0.5)
        };
        let finished = [run(354.0, ""), run(217.0, "cuda (NVIDIA H100 80GB HBM3)"), run(900.0, "cpu (2 threads)")];
        let lets = vec![("linear".to_string(), "gla".to_string())];
        assert_eq!(guess(&lets, 4, "cuda", &timed(&finished)), Some(217.0));
        assert_eq!(guess(&lets, 4, "cpu", &timed(&finished)), Some(900.0));
        assert_eq!(guess(&lets, 4, "cuda", &timed(&finished[..1])), Some(354.0), "none recorded: all of them");
    }

    /// The longest finished run of the cell, else of any; none before any finished.
    #[test]
    fn a_run_is_guessed_from_its_cells_longest() {
        let timed = |lets: &str, seconds: f64| Result { seconds, ..run(lets, Phase::Seed, None, 0.5) };
        let finished = [timed("gdn", 100.0), timed("gdn", 140.0), timed("hgrn", 60.0), timed("gla", 0.0)];
        let lets = |value: &str| vec![("linear".to_string(), value.to_string())];
        assert_eq!(guess_cpu(&lets("gdn"), 1, &finished), Some(140.0));
        assert_eq!(guess_cpu(&lets("hgrn"), 1, &finished), Some(60.0));
        // Unrecorded (0 s: written before times were kept) counts as unknown.
        assert_eq!(guess_cpu(&lets("gla"), 1, &finished), Some(140.0));
        assert_eq!(guess_cpu(&lets("retnet"), 1, &[]), None);
    }

    /// Times taken with as many runs at once come first: four runs sharing a GPU each
    /// took 350 s, two at once 180 s, and a call with two at once goes by the 180 s.
    #[test]
    fn a_run_is_guessed_from_runs_that_shared_the_machine_alike() {
        let timed =
            |lets: &str, at_once: u16, seconds: f64| Result { seconds, at_once, ..run(lets, Phase::Search, None, 0.5) };
        let finished = [timed("hgrn", 4, 350.0), timed("gdn", 4, 360.0), timed("hgrn", 2, 180.0)];
        let lets = |value: &str| vec![("linear".to_string(), value.to_string())];
        assert_eq!(guess_cpu(&lets("hgrn"), 2, &finished), Some(180.0));
        // Its cell has none timed alike: its own runs scaled, half as much again for fewer.
        assert_eq!(guess_cpu(&lets("gdn"), 2, &finished), Some(360.0 / 2.0 * 1.5));
        // None timed alike: the others scaled to the sharing, half as much again for fewer.
        assert_eq!(guess_cpu(&lets("gdn"), 1, &finished), Some(360.0 / 4.0 * 1.5));
        assert_eq!(guess_cpu(&lets("hgrn"), 1, &finished), Some(180.0 / 2.0 * 1.5), "the longer of 350/4 and 180/2");
        assert_eq!(
            guess_cpu(&lets("hgrn"), 8, &finished),
            Some(840.0),
            "in proportion, a sixth more for more: the longer of 350 · 2 and 180 · 4, · 7/6"
        );
        assert_eq!(guess_cpu(&lets("gla"), 1, &finished), Some(135.0), "no run of its cell: the longest of any");
        // Times whose sharing was not recorded are taken as they are, last.
        let unrecorded = [timed("gdn", 0, 300.0)];
        assert_eq!(guess_cpu(&lets("gdn"), 2, &unrecorded), Some(300.0));
    }

    /// The runs most like it come first: its cell's, scaled to the sharing, before other
    /// cells' timed alike (`gpu.hyb`'s RetNet 3:1 runs took 566 s at eight at once, its
    /// GatedDeltaNet runs 447 s); without its cell's, the cells sharing the most lets.
    #[test]
    fn a_run_is_guessed_from_the_runs_most_like_it() {
        let lets = |linear: &str, every: &str| {
            vec![("linear".to_string(), linear.to_string()), ("attn_every".to_string(), every.to_string())]
        };
        let timed = |linear: &str, every: &str, at_once: u16, seconds: f64| Result {
            seconds,
            at_once,
            lets: lets(linear, every),
            ..run(linear, Phase::Search, None, 0.5)
        };
        let finished = [timed("retnet", "4", 4, 253.0), timed("gdn", "4", 8, 447.0), timed("retnet", "2", 8, 395.0)];
        let retnet_3_1 = guess_cpu(&lets("retnet", "4"), 8, &finished).unwrap();
        assert!((retnet_3_1 - 253.0 * 2.0 * 7.0 / 6.0).abs() < 1e-9, "{retnet_3_1}");
        assert_eq!(guess_cpu(&lets("retnet", "8"), 8, &finished), Some(395.0), "RetNet's other ratios, alike first");
        assert_eq!(guess_cpu(&lets("gla", "4"), 8, &finished), Some(447.0), "the 3:1 runs, alike first");
        assert_eq!(guess_cpu(&lets("gla", "8"), 8, &finished), Some(447.0), "nothing in common: all, alike first");
    }

    /// A stopped run counts at its pace projected to its last step, once it trained a
    /// tenth of it; and only until its run finishes.
    #[test]
    fn a_stopped_run_counts_at_its_pace() {
        let lets = vec![("linear".to_string(), "retnet".to_string())];
        let stopped = |from, to| Stopped {
            lets: lets.clone(),
            seconds: 540.0,
            at_once: 8,
            device: "cuda (NVIDIA H100 80GB HBM3)".into(),
            steps: 2048,
            from,
            to,
        };
        let projected = stopped(0, 1953).timed().expect("most of it trained");
        assert!((projected.seconds - 540.0 * 2048.0 / 1953.0).abs() < 1e-9, "{projected:?}");
        assert_eq!(stopped(1024, 2048).timed().map(|t| t.seconds), Some(1080.0), "a resumed run's part");
        assert_eq!(stopped(0, 100).timed(), None, "under a tenth: compile and evaluation weigh too much");
        assert_eq!(guess(&lets, 8, "cuda", &[projected]).map(f64::round), Some(566.0));
        let dir = std::env::temp_dir().join(format!("hyb-stopped-{}", std::process::id()));
        let run = dir.join("linear=retnet");
        std::fs::create_dir_all(&run).expect("writable");
        stopped(0, 1953).write(&run).expect("written");
        assert_eq!(stopped_runs([run.clone()]).len(), 1);
        assert!(stopped_runs([dir.join("linear=gdn")]).is_empty(), "only the directories asked for");
        stopped(1953, 1953).write(&run).expect("kept");
        assert_eq!(
            stopped_runs([run.clone()]).first().map(|t| t.seconds.round()),
            Some(566.0),
            "a stop at once keeps the pace"
        );
        std::fs::write(run.join("result.json"), "{}").expect("writable");
        assert!(stopped_runs([run.clone()]).is_empty(), "finished since");
        std::fs::remove_dir_all(&dir).expect("removable");
    }

    /// A guess never falls as more runs share the machine: a time taken at eight at once
    /// caps the guess at fewer.
    #[test]
    fn a_guess_grows_with_the_runs_at_once() {
        let lets = vec![("linear".to_string(), "retnet".to_string())];
        let at_eight = Timed { lets: lets.clone(), seconds: 566.0, at_once: 8, device: String::new() };
        let guesses: Vec<f64> =
            (1..=12).map(|k| guess(&lets, k, "cpu", std::slice::from_ref(&at_eight)).unwrap()).collect();
        assert!(guesses.windows(2).all(|pair| pair[0] <= pair[1]), "{guesses:?}");
        assert_eq!(guesses[6], 566.0, "seven at once: at most its time at eight");
        assert!((guesses[3] - 566.0 / 8.0 * 4.0 * 1.5).abs() < 1e-9, "four: half as much again as its share");
    }

    /// A wave under a time limit starts as many shards as let the most runs finish.
    #[test]
    fn a_wave_starts_the_shards_whose_runs_fit() {
        let cell = vec![("linear".to_string(), "retnet".to_string())];
        let runs = vec![cell.as_slice(); 10];
        // 70 s of the machine a run, whatever the sharing (a run alone: 70 s).
        let even = |_: &[(String, String)], at_once: u16| Some(70.0 * f64::from(at_once));
        let fit =
            |jobs, left| shards_that_fit(&runs, jobs, left, even).map(|(shards, started)| (shards, started.len()));
        assert_eq!(fit(8, 540.0), Some((7, 7)), "eight at 560 s miss 540 s");
        assert_eq!(fit(8, 600.0), Some((8, 8)));
        assert_eq!(fit(4, 600.0), Some((4, 8)), "two runs a shard");
        assert_eq!(shards_that_fit(&runs, 4, 600.0, even).map(|(_, started)| started), Some((0..8).collect()));
        assert_eq!(fit(8, 60.0), Some((8, 0)), "none fits: every shard says why");
        assert_eq!(shards_that_fit(&runs, 8, 540.0, |_, _| None), None, "nothing to go by");
        // A shard skips a run that does not fit and tries its next.
        let (long, short) = (vec![("linear".to_string(), "gdn".to_string())], cell.clone());
        let mixed = [long.as_slice(), short.as_slice()];
        let by_cell = |lets: &[(String, String)], _: u16| Some(if lets == long.as_slice() { 500.0 } else { 100.0 });
        assert_eq!(shards_that_fit(&mixed, 1, 300.0, by_cell), Some((1, vec![1])));
    }

    /// The pace of a sweep: each run's time over the runs beside it, the median; none
    /// before a run was timed.
    #[test]
    fn the_pace_is_the_median_share_of_the_machine() {
        let gdn = vec![("linear".to_string(), "gdn".to_string())];
        let retnet = vec![("linear".to_string(), "retnet".to_string())];
        let timed = |lets: &[(String, String)], seconds, at_once| Timed {
            lets: lets.to_vec(),
            seconds,
            at_once,
            device: String::new(),
        };
        let finished = [timed(&gdn, 400.0, 8), timed(&gdn, 200.0, 4), timed(&gdn, 73.0, 1), timed(&gdn, 0.0, 8)];
        assert_eq!(pace(&gdn, &finished), Some(50.0));
        assert_eq!(pace(&retnet, &finished), Some(50.0), "no run of its like: all of them");
        let with_retnet = [&finished[..], &[timed(&retnet, 560.0, 8)]].concat();
        assert_eq!(pace(&retnet, &with_retnet), Some(70.0), "its own cell's runs");
        assert_eq!(pace(&gdn, &[timed(&gdn, 90.0, 0), timed(&gdn, 30.0, 1)]), Some(60.0), "unrecorded: alone");
        assert_eq!(pace(&gdn, &[timed(&gdn, 0.0, 4)]), None);
        // Runs whose device was recorded come first: an older run of the cell, timed
        // before devices and sharing were, gives way to recorded runs of other cells.
        let on = |run: Timed| Timed { device: "cuda (NVIDIA H100 80GB HBM3)".into(), ..run };
        let mixed = [timed(&retnet, 354.0, 0), on(timed(&gdn, 400.0, 8))];
        assert_eq!(pace(&retnet, &mixed), Some(50.0));
        assert_eq!((hours(2700.0), hours(6120.0)), ("45 min".to_string(), "1.7 h".to_string()));
    }

    #[test]
    fn a_deadline_allows_what_fits() {
        let deadline = Deadline::after(Duration::from_secs(100));
        assert!(deadline.allows(Some(90.0)) && deadline.allows(None));
        assert!(!deadline.allows(Some(120.0)));
        let past = Deadline::at(deadline.epoch_seconds() - 200.0);
        assert!(!past.allows(None) && past.left() < 0.0);
    }
}
