//! The "did not learn" verdict of a sweep's cells. A recall task states its chance
//! (`hyb_train::data::Task::chance`: MQAR and forgetting-MQAR 1/pairs — naming one of
//! the context's current values without binding it to its key; a needle task a uniform
//! guess over the value range). A cell **did not learn** when its best held-out score —
//! the highest over every run of the cell, its search's rates and its seeds — stays
//! below chance + [`MARGIN`]; without a held-out set (a grid with no search and no stop)
//! the best test score stands in, and the report says so. Perplexity cells and runs
//! written before chance was recorded are not judged. Whether such a cell measures its
//! mixer or only a failed run is not decided here: the report marks it, and a claim that
//! reads it keeps a verdict only where counting the cell and leaving it out agree
//! ([`crate::claims`]). So does a cell that learned in its search but in none of its
//! measured seeds ([`Floor::SearchOnly`]): its figures are floors too, whatever one
//! search run managed. When a run learned — the first evaluation at which its score
//! reached chance + [`MARGIN`] — is read from its `metrics.jsonl` ([`transition`]): on
//! a recall task learning comes as a sudden transition, and a grid at a fixed budget
//! records whether each model has made it yet, so the report shows when.

use crate::sweep::{Phase, Result, is_perplexity};

/// How far above chance (accuracy as a fraction: 5 percentage points) the best held-out
/// score must reach for a cell to count as having learned.
pub const MARGIN: f64 = 0.05;

/// When a run first reached chance + [`MARGIN`] at an evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// Not known: a perplexity task, no evaluation log, or a result written before it
    /// was recorded.
    #[default]
    Unrecorded,
    /// At no evaluation.
    Never,
    /// At this step's evaluation, the first to reach it.
    At(u64),
}

impl Transition {
    /// `300`, `—` (never) or `?` (unrecorded).
    pub fn text(self) -> String {
        match self {
            Transition::At(step) => step.to_string(),
            Transition::Never => "—".into(),
            Transition::Unrecorded => "?".into(),
        }
    }
}

/// The first evaluation in `metrics` (a run's `metrics.jsonl`) at which the accuracy on
/// the set `figure` (`held-out mqar(…)`, as the result names it) reached `chance` +
/// [`MARGIN`]; unrecorded when the log evaluates no such set.
pub fn transition(metrics: &str, figure: &str, chance: f64) -> Transition {
    let key = format!("eval/{figure}/accuracy");
    let evaluations = metrics.lines().filter_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        Some((value["step"].as_u64()?, value[key.as_str()].as_f64()?))
    });
    let mut seen = false;
    for (step, accuracy) in evaluations {
        if accuracy >= chance + MARGIN {
            return Transition::At(step);
        }
        seen = true;
    }
    if seen { Transition::Never } else { Transition::Unrecorded }
}

/// A judged cell: its best score, where it came from, and its task's chance.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub best: f64,
    pub chance: f64,
    /// The best is a held-out score (else a test score: the grid has no held-out set).
    pub held_out: bool,
    /// Of the cell's measured runs (its seeds), how many reach chance + [`MARGIN`] on
    /// the first test set, and how many there are: a cell that learned in some seeds
    /// and not others (a rate at the edge of its window) says so.
    pub seeds: (usize, usize),
}

impl Judgement {
    pub fn learned(&self) -> bool {
        self.best >= self.chance + MARGIN
    }

    /// `did not learn (best held-out 13.0 %, chance 12.5 %)` or `yes (…)`.
    pub fn text(&self) -> String {
        let source = if self.held_out { "held-out" } else { "test, no held-out set" };
        let figures = format!("best {source} {:.1} %, chance {:.1} %", 100.0 * self.best, 100.0 * self.chance);
        let (above, seeds) = self.seeds;
        match self.learned() {
            true if above < seeds => {
                format!("yes ({figures}), but only {above} of {seeds} seeds above chance + 5 points")
            }
            true => format!("yes ({figures})"),
            false => format!("**did not learn** ({figures})"),
        }
    }
}

/// The judgement of the cell `lets` from every finished run; none when its first
/// figure is a perplexity or its chance is unknown. Each run counts with its held-out
/// score, or — a measured run (not a search's) of a grid without a held-out set — its
/// test score; the best of them decides.
pub fn judge(lets: &[(String, String)], results: &[Result]) -> Option<Judgement> {
    let runs: Vec<&Result> = results.iter().filter(|r| r.lets == lets).collect();
    let chance = runs.iter().find_map(|r| r.chance)?;
    let test: Vec<f64> = runs.iter().filter_map(|r| measured_test(r)).collect();
    let seeds = (test.iter().filter(|figure| **figure >= chance + MARGIN).count(), test.len());
    let scores = runs.iter().filter_map(|r| match held_out(r) {
        Some(figure) => Some((figure, true)),
        None => measured_test(r).map(|figure| (figure, false)),
    });
    // The best score; of equal ones, a held-out one.
    let (best, held_out) =
        scores.reduce(|top, next| if top.0 > next.0 || (top.0 == next.0 && top.1) { top } else { next })?;
    Some(Judgement { best, chance, held_out, seeds })
}

/// The judgement of the cell's search alone, its measured seeds left out: what the
/// search's own choices (its extension, its note) go by, so that a seed that learns
/// later neither reopens a settled search nor reads as the search's window.
pub fn judge_search(lets: &[(String, String)], results: &[Result]) -> Option<Judgement> {
    let search: Vec<Result> = results.iter().filter(|r| r.phase == Phase::Search).cloned().collect();
    judge(lets, &search)
}

/// A run's held-out accuracy (not a perplexity).
fn held_out(run: &Result) -> Option<f64> {
    run.held_out.as_ref().filter(|(name, _)| !is_perplexity(name)).map(|(_, figure)| *figure)
}

/// A measured run's (not a search's) first test accuracy.
fn measured_test(run: &Result) -> Option<f64> {
    let (name, figure) = run.accuracy.first().filter(|_| run.phase != Phase::Search)?;
    (!is_perplexity(name)).then_some(*figure)
}

/// Whether the cell `lets` learned: false only for a cell judged not to have.
pub fn learned(lets: &[(String, String)], results: &[Result]) -> bool {
    judge(lets, results).is_none_or(|j| j.learned())
}

/// Why a cell's measured figures may be the floor of failed runs rather than its
/// mixer's recall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// No run of the cell, search or seed, reached chance + [`MARGIN`].
    DidNotLearn,
    /// Its search did, none of its measured seeds (on the first test set).
    SearchOnly,
}

/// The cell's floor, if its measured figures lie at one; none for a cell some seed of
/// which learned, or one not judged.
pub fn floor(lets: &[(String, String)], results: &[Result]) -> Option<Floor> {
    let judged = judge(lets, results)?;
    let (above, seeds) = judged.seeds;
    if !judged.learned() {
        Some(Floor::DidNotLearn)
    } else if seeds > 0 && above == 0 {
        Some(Floor::SearchOnly)
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn run(lets: &str, phase: Phase, held_out: Option<f64>, test: f64) -> Result {
        Result {
            run: String::new(),
            lets: vec![("linear".into(), lets.into())],
            lr: 1e-3,
            seed: 0,
            params: 0,
            state_bytes: 0,
            kv_cache_bytes: 0,
            final_loss: 0.0,
            accuracy: vec![("mqar(seq_len: 64, pairs: 8)".into(), test)],
            phase,
            held_out: held_out.map(|h| ("held-out mqar(seq_len: 64, pairs: 8)".into(), h)),
            steps: 1,
            plateaued_at: None,
            tokens: 0,
            mixer: lets.into(),
            attention_share: 0.25,
            chance: Some(0.125),
            by_group: Vec::new(),
            update: String::new(),
            seconds: 0.0,
            at_once: 0,
            learned_at: Transition::Unrecorded,
            device: String::new(),
        }
    }

    fn lets(value: &str) -> Vec<(String, String)> {
        vec![("linear".into(), value.into())]
    }

    /// The best held-out score over the cell's search and seeds decides, against
    /// chance + 5 points: 17.4 % with chance 12.5 % did not learn, 17.6 % did; the test
    /// score plays no part while there is a held-out one.
    #[test]
    fn the_best_held_out_score_against_chance() {
        let results = [
            run("retnet", Phase::Search, Some(0.13), 0.9),
            run("retnet", Phase::Search, Some(0.174), 0.9),
            run("retnet", Phase::Seed, Some(0.10), 0.95),
            run("gdn", Phase::Search, Some(0.12), 0.1),
            run("gdn", Phase::Seed, Some(0.176), 0.1),
        ];
        let retnet = judge(&lets("retnet"), &results).expect("judged");
        assert_eq!((retnet.best, retnet.held_out, retnet.learned()), (0.174, true, false));
        assert!(retnet.text().starts_with("**did not learn** (best held-out 17.4 %, chance 12.5 %)"));
        assert!(learned(&lets("gdn"), &results));
        assert!(!learned(&lets("retnet"), &results));
    }

    /// A cell that learned in some seeds and not in others says how many: its figure is
    /// then the rate's unreliability as much as the mixer's recall.
    #[test]
    fn a_cell_that_learned_in_some_seeds_says_how_many() {
        let results = [
            run("gdn", Phase::Search, Some(0.999), 0.999),
            run("gdn", Phase::Seed, Some(0.18), 0.18),
            run("gdn", Phase::Seed, Some(1.0), 1.0),
            run("gdn", Phase::Seed, Some(0.125), 0.125),
            run("rwkv", Phase::Seed, Some(1.0), 0.99),
        ];
        let mixed = judge(&lets("gdn"), &results).expect("judged");
        assert_eq!(mixed.seeds, (2, 3), "18 % is above chance + 5 points, 12.5 % is not");
        assert!(mixed.text().ends_with("but only 2 of 3 seeds above chance + 5 points"), "{}", mixed.text());
        let whole = judge(&lets("rwkv"), &results).expect("judged");
        assert_eq!(whole.text(), "yes (best held-out 100.0 %, chance 12.5 %)");
        assert_eq!((floor(&lets("gdn"), &results), floor(&lets("rwkv"), &results)), (None, None));
    }

    /// A cell whose search learned and whose seeds all stayed at chance lies at a floor
    /// as a cell that did not learn does (GPU study, HGRN-2 1:1: 55.9 % held out in its
    /// search, 1.0, 2.6 and 0.9 % in its seeds); with no seed finished yet, not.
    #[test]
    fn a_cell_whose_seeds_all_failed_lies_at_a_floor() {
        let mut results = vec![
            run("hgrn2", Phase::Search, Some(0.559), 0.56),
            run("hgrn2", Phase::Seed, Some(0.03), 0.01),
            run("retnet", Phase::Search, Some(0.03), 0.03),
            run("gla", Phase::Search, Some(0.9), 0.9),
        ];
        assert_eq!(floor(&lets("hgrn2"), &results), Some(Floor::SearchOnly));
        assert!(learned(&lets("hgrn2"), &results), "it did learn, in its search");
        assert_eq!(floor(&lets("retnet"), &results), Some(Floor::DidNotLearn));
        assert_eq!(floor(&lets("gla"), &results), None, "no seed yet");
        results.push(run("hgrn2", Phase::Seed, Some(0.7), 0.7));
        assert_eq!(floor(&lets("hgrn2"), &results), None, "one seed learned");
    }

    /// A run without a held-out set counts with its test score beside the runs that have
    /// one (seeds copied into a grid from another): a seed at 81 % on test makes the
    /// cell learned though its search's held-out scores stayed at chance.
    #[test]
    fn each_run_counts_with_its_held_out_score_else_its_test_score() {
        let results = [
            run("gdn", Phase::Search, Some(0.11), 0.95),
            run("gdn", Phase::Seed, None, 0.81),
            run("gdn", Phase::Seed, Some(0.12), 0.13),
        ];
        let judged = judge(&lets("gdn"), &results).expect("judged");
        assert_eq!((judged.best, judged.held_out, judged.learned()), (0.81, false, true));
        assert_eq!(judged.seeds, (1, 2));
        assert!(judged.text().contains("best test, no held-out set 81.0 %"), "{}", judged.text());
        // The search's test score (95 %) never counts.
        let search_only = [run("gla", Phase::Search, None, 0.95), run("gla", Phase::Seed, Some(0.12), 0.9)];
        assert_eq!(judge(&lets("gla"), &search_only).map(|j| (j.best, j.held_out)), Some((0.12, true)));
    }

    /// Without any held-out figure the best test score of the measured runs stands in,
    /// said so; perplexity and unknown chance are not judged (and count as learned).
    #[test]
    fn fallbacks_and_cells_not_judged() {
        let grid = [run("gla", Phase::Grid, None, 0.11), run("gla", Phase::Grid, None, 0.16)];
        let judged = judge(&lets("gla"), &grid).expect("judged");
        assert_eq!((judged.best, judged.held_out, judged.learned()), (0.16, false, false));
        assert!(judged.text().contains("test, no held-out set"));
        let mut old = run("gla", Phase::Grid, None, 0.01);
        old.chance = None;
        assert_eq!(judge(&lets("gla"), &[old.clone()]), None);
        assert!(learned(&lets("gla"), &[old]));
        let mut text = run("gla", Phase::Seed, None, 20.0);
        text.accuracy[0].0 = "perplexity(tiny.txt)".into();
        text.chance = Some(0.5);
        assert_eq!(judge(&lets("gla"), &[text]), None);
    }

    /// The first evaluation at chance + 5 points or above, on the named set only; a log
    /// without that set is unrecorded, one that never reaches it says so.
    #[test]
    fn a_run_learned_at_its_first_evaluation_above_chance() {
        let log = |figures: &[(u64, f64)]| {
            let lines: Vec<String> = figures
                .iter()
                .map(|(step, a)| {
                    format!("{{\"step\":{step},\"eval/held-out mqar/accuracy\":{a},\"eval/mqar/accuracy\":0.9}}")
                })
                .collect();
            format!("{{\"step\":1,\"train/loss\":4.1}}\n{}\n", lines.join("\n"))
        };
        let learning = log(&[(200, 0.13), (400, 0.174), (600, 0.176), (800, 0.95)]);
        assert_eq!(transition(&learning, "held-out mqar", 0.125), Transition::At(600));
        assert_eq!(transition(&learning, "mqar", 0.125), Transition::At(200));
        assert_eq!(transition(&log(&[(200, 0.13), (400, 0.12)]), "held-out mqar", 0.125), Transition::Never);
        assert_eq!(transition(&learning, "held-out niah", 0.125), Transition::Unrecorded);
        assert_eq!(transition("", "held-out mqar", 0.125), Transition::Unrecorded);
        let text: Vec<String> =
            [Transition::At(600), Transition::Never, Transition::Unrecorded].map(Transition::text).into();
        assert_eq!(text, ["600", "—", "?"]);
    }
}
