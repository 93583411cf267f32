//! A sweep's report from its finished runs: `results.csv` (one row a run),
//! `results.md` (the protocol; per cell the chosen learning rate, state and KV bytes,
//! and every figure over its seeds as mean ± sd with the 95 % interval of the mean; the
//! learning-rate search's held-out scores; whether each cell learned
//! ([`crate::learned`]); mixers compared at matched state size ([`crate::matched`]); the
//! paper's claims checked ([`crate::claims`]); every run), the `recall` chart (the first evaluation's
//! figure per cell with its interval as an error bar) and, with a search, the `search`
//! chart (each cell's held-out figure against the learning rate).

use std::fmt::Write as _;
use std::path::Path;

use hyb_compiler::ir::train::SweepConfig;

use crate::claims::{self, Observation};
use crate::learned::Transition;
use crate::stats::mean_spread;
use crate::sweep::{Phase, Result, chosen_lr, is_perplexity};

/// Writes the three files into `out`; returns the markdown.
pub fn write(out: &Path, config: &SweepConfig, results: &[Result]) -> std::result::Result<String, String> {
    let write = |name: &str, text: &str| {
        std::fs::write(out.join(name), text).map_err(|e| format!("cannot write `{}`: {e}", out.join(name).display()))
    };
    let markdown = markdown(config, results);
    write("results.csv", &csv(config, results))?;
    write("results.md", &markdown)?;
    crate::plot::write_chart(out, "recall", &chart(config, results))?;
    if config.searches() {
        crate::plot::write_chart(out, "search", &search_chart(config, results))?;
    }
    Ok(markdown)
}

/// The measured runs (seeds and plain grid runs; not the search's).
fn measured(results: &[Result]) -> Vec<&Result> {
    results.iter().filter(|r| r.phase != Phase::Search).collect()
}

/// Measured runs grouped by cell (lets and learning rate), in order of first appearance.
fn cells(results: &[Result]) -> Vec<Vec<&Result>> {
    let mut cells: Vec<Vec<&Result>> = Vec::new();
    for r in measured(results) {
        match cells.iter_mut().find(|c| c[0].lets == r.lets && c[0].lr == r.lr) {
            Some(members) => members.push(r),
            None => cells.push(vec![r]),
        }
    }
    cells
}

/// The cells (lets) that have search runs, in order of first appearance.
fn searched_cells(results: &[Result]) -> Vec<&Vec<(String, String)>> {
    let mut cells: Vec<&Vec<(String, String)>> = Vec::new();
    for r in results.iter().filter(|r| r.phase == Phase::Search) {
        if !cells.contains(&&r.lets) {
            cells.push(&r.lets);
        }
    }
    cells
}

/// The evaluation sets' names (the test figures), from the first result.
fn figures(results: &[Result]) -> Vec<String> {
    results.first().map_or(Vec::new(), |r| r.accuracy.iter().map(|(n, _)| n.clone()).collect())
}

/// What the tables of measured runs say before any has finished (a sweep cut short
/// while its cells still search: each cell's seeds run once its search has).
const NOTHING_MEASURED: &str = "No measured run has finished yet: a cell's seeds run once its learning-rate search \
                                has, and the claims read the seeds alone (the search's runs below choose the rates).\n";

fn markdown(config: &SweepConfig, results: &[Result]) -> String {
    let mut text = String::from("## Protocol\n\n");
    text += &protocol(config, results);
    text += "\n## By cell, over its seeds\n\n";
    text += &by_cell(config, results);
    if results.iter().any(|r| !r.by_group.is_empty()) {
        text += "\n## By group of answers (accuracy over the cell's seeds)\n\n";
        text += &by_group(config, results);
    }
    text += "\n## At matched recurrent-state size\n\n";
    text += &crate::matched::markdown(results);
    if config.searches() {
        text += "\n## Learning-rate search (held-out score; the test sets play no part)\n\n";
        text += &search_table(config, results);
    }
    text += "\n## The paper's claims\n\n";
    text += &claims_sections(results);
    text += "\n## Runs\n\n";
    text += &runs_table(config, results);
    text
}

/// The paper's claims, and the update rule's hypothesis where the grid poses it, judged
/// on the measured runs.
fn claims_sections(results: &[Result]) -> String {
    if measured(results).is_empty() {
        return NOTHING_MEASURED.to_string();
    }
    let observations = observations(results);
    let mut text = claims::markdown("claim (arXiv 2507.06457)", &claims::evaluate(&observations));
    text += "\nEach claim is judged on the measured runs (each a seed at its cell's learning rate); intervals are \
             two-sided 95 %. \"Not tested\" means the grid lacks what the claim needs.\n";
    if let Some(finding) = claims::update_rule(&observations) {
        text += "\n## The update rule\n\n";
        text += &claims::markdown("hypothesis (overwriting: what forgetting-MQAR tests)", &[finding]);
        text += "\nDelta-rule mixers (DeltaNet, GatedDeltaNet) replace a key's old value; additive ones (HGRN, \
                 HGRN-2, GLA, RetNet) add the new beside it. Judged as the claims are.\n";
    }
    text
}

fn protocol(config: &SweepConfig, results: &[Result]) -> String {
    let mut lines = Vec::new();
    let axes: Vec<String> = config.axes.iter().map(|a| format!("{} ∈ {{{}}}", a.name, a.values.join(", "))).collect();
    lines.push(format!(
        "cells: {} ({})",
        config.cells(),
        if axes.is_empty() { "one".into() } else { axes.join(" × ") }
    ));
    if let Some(tokens) = config.tokens {
        let steps: Vec<u64> = results.iter().map(|r| r.steps).collect();
        let (low, high) = (steps.iter().min().copied().unwrap_or(0), steps.iter().max().copied().unwrap_or(0));
        let steps = if low == high { low.to_string() } else { format!("{low}–{high}") };
        lines.push(format!("budget: {tokens} tokens a run ({steps} steps)"));
    }
    let seeds = config.test_seeds();
    if config.searches() {
        let lrs: Vec<String> = config.lrs.iter().map(|lr| format!("{lr:e}")).collect();
        let search_seeds = config.search_seeds();
        let by = match search_seeds.as_slice() {
            [seed] => format!("the held-out score of one run each (seed {seed}, not a measured seed)"),
            seeds => {
                format!("the mean held-out score of {} runs each (seeds {seeds:?}, none a measured seed)", seeds.len())
            }
        };
        let ties = match config.lr_tie {
            0.0 => String::new(),
            tie => format!(
                "; rates within {tie} of the best (accuracy as a fraction; perplexity as a share of the best) \
                 tie with it, and the largest of them is taken"
            ),
        };
        let refined = match config.refine {
            false => "",
            true => {
                "; then refined: the geometric midpoints between that best and its neighbours (half a step \
                 beyond the grid where it is the lowest or highest rate), scored the same way, and the best \
                 of all the cell's rates taken"
            }
        };
        let extended = match config.extend {
            0 => String::new(),
            n => format!(
                "; then, while the best is the lowest (highest) rate searched and some rate learned, a grid step \
                 below (above) it, up to {n} rate(s)"
            ),
        };
        lines
            .push(format!("learning rate: per cell the best of [{}] by {by}{ties}{refined}{extended}", lrs.join(", ")));
    }
    match seeds.is_empty() {
        true => lines.push("seeds: the train block's".into()),
        false => lines.push(format!("seeds: {seeds:?} per cell, scored on the test sets")),
    }
    if let Some(plateau) = config.plateau {
        let stopped = results.iter().filter(|r| r.plateaued_at.is_some()).count();
        lines.push(format!(
            "stop: after {} evaluations without a held-out gain above {} ({stopped} of {} runs stopped early)",
            plateau.patience,
            plateau.min_delta,
            results.len()
        ));
    }
    lines.extend(devices(results));
    lines.extend(compute(results));
    lines.iter().map(|l| format!("- {l}\n")).collect()
}

/// The protocol's line of what the runs cost: their wall time, and the share of their
/// machines it took (each run's time over the runs at once beside it); none before a
/// run was timed.
fn compute(results: &[Result]) -> Option<String> {
    let timed: Vec<&Result> = results.iter().filter(|r| r.seconds > 0.0).collect();
    if timed.is_empty() {
        return None;
    }
    let wall: f64 = timed.iter().map(|r| r.seconds).sum();
    let machine: f64 = timed.iter().map(|r| crate::deadline::share(r)).sum();
    let untimed = results.len() - timed.len();
    let untimed = if untimed > 0 { format!(" ({untimed} run(s) not timed)") } else { String::new() };
    Some(format!(
        "compute: {} timed run(s), {} of wall time, about {} of their machines (each run's time over the runs at \
         once beside it){untimed}",
        timed.len(),
        crate::deadline::hours(wall),
        crate::deadline::hours(machine)
    ))
}

/// The protocol's line of what the runs trained on: each device with its count of runs
/// (those written before the device was recorded as such); none for no runs.
fn devices(results: &[Result]) -> Option<String> {
    let devices = results.iter().map(|r| if r.device.is_empty() { "not recorded" } else { r.device.as_str() });
    let counts = crate::stats::tally(devices);
    let parts: Vec<String> = counts.iter().map(|(device, count)| format!("{device}: {count} run(s)")).collect();
    (!parts.is_empty()).then(|| format!("devices: {}", parts.join("; ")))
}

/// What a loss can be (at least 0), an accuracy (0 to 1), a perplexity (at least 1):
/// the interval of a mean is clipped to it ([`spread`]).
const LOSS: (f64, f64) = (0.0, f64::INFINITY);
const ACCURACY: (f64, f64) = (0.0, 1.0);
const PERPLEXITY: (f64, f64) = (1.0, f64::INFINITY);

/// `mean ± sd [low, high]` of `values` scaled, with `digits` decimals and `unit` after;
/// the interval clipped to `range`, what the figure can be (with three seeds Student's t
/// reaches past it: 66.6 ± 25.3 % would read [3.8, 129.3]). One value has no spread:
/// `mean unit (one seed)`, not an interval of width 0.
fn spread(values: &[f64], scale: f64, digits: usize, range: (f64, f64), unit: &str) -> String {
    let (mean, sd, half) = mean_spread(values);
    if values.len() < 2 {
        return format!("{:.digits$}{unit} (one seed)", mean * scale);
    }
    let (low, high) = ((mean - half).max(range.0) * scale, (mean + half).min(range.1) * scale);
    format!("{:.digits$} ± {:.digits$} [{low:.digits$}, {high:.digits$}]{unit}", mean * scale, sd * scale)
}

/// A figure's cell text: accuracy in percent, perplexity as is.
fn figure_spread(name: &str, values: &[f64]) -> String {
    if is_perplexity(name) { spread(values, 1.0, 2, PERPLEXITY, "") } else { spread(values, 100.0, 1, ACCURACY, " %") }
}

/// Per cell over its seeds, each test set's accuracy within each group of its answers
/// (MQAR's key–query distance bins, a needle's distance) as mean ± sd with the 95 %
/// interval: where a mixer's recall falls off.
fn by_group(config: &SweepConfig, results: &[Result]) -> String {
    let columns: Vec<(String, String)> = results
        .iter()
        .find(|r| !r.by_group.is_empty())
        .map_or(Vec::new(), |r| r.by_group.iter().map(|(set, group, _)| (set.clone(), group.clone())).collect());
    let mut header: Vec<String> = config.axes.iter().map(|a| a.name.clone()).collect();
    header.extend(["lr".into(), "seeds".into()]);
    header.extend(columns.iter().map(|(set, group)| format!("{set}: {group}")));
    let mut text = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for members in cells(results) {
        let mut row: Vec<String> = members[0].lets.iter().map(|(_, v)| v.clone()).collect();
        row.extend([format!("{:e}", members[0].lr), members.len().to_string()]);
        for (set, group) in &columns {
            let values: Vec<f64> = members
                .iter()
                .filter_map(|r| r.by_group.iter().find(|(s, g, _)| s == set && g == group).map(|(_, _, a)| *a))
                .collect();
            row.push(if values.is_empty() { "–".into() } else { spread(&values, 100.0, 1, ACCURACY, " %") });
        }
        text += &format!("| {} |\n", row.join(" | "));
    }
    text
}

/// Per cell over its seeds: the final loss and every test figure as mean ± sd with the
/// 95 % interval of the mean (Student's t).
/// Before any measured run has finished, says so ([`NOTHING_MEASURED`]).
fn by_cell(config: &SweepConfig, results: &[Result]) -> String {
    if measured(results).is_empty() {
        return NOTHING_MEASURED.to_string();
    }
    let figures = figures(results);
    let mut header: Vec<String> = config.axes.iter().map(|a| a.name.clone()).collect();
    header.extend(["lr", "seeds", "params", "state", "KV cache", "steps"].map(String::from));
    header.push("final loss (mean ± sd, 95 % interval)".into());
    header.extend(figures.iter().map(|name| format!("{name} (mean ± sd, 95 % interval)")));
    header.push("learned".into());
    // When each seed learned, where any run recorded it (not for perplexity).
    let timed = results.iter().any(|r| r.learned_at != Transition::Unrecorded);
    if timed {
        header.push("learned at step (each seed)".into());
    }
    let mut text = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for members in cells(results) {
        let first = members[0];
        let mut row: Vec<String> = first.lets.iter().map(|(_, v)| v.clone()).collect();
        let chosen = if config.searches() { " (chosen)" } else { "" };
        row.extend([format!("{:e}{chosen}", first.lr), members.len().to_string(), first.params.to_string()]);
        row.push(hyb_compiler::report::bytes(first.state_bytes));
        row.push(hyb_compiler::report::bytes(first.kv_cache_bytes));
        row.push(steps(&members));
        row.push(spread(&members.iter().map(|r| r.final_loss as f64).collect::<Vec<_>>(), 1.0, 4, LOSS, ""));
        for (index, name) in figures.iter().enumerate() {
            let values: Vec<f64> = members.iter().filter_map(|r| r.accuracy.get(index).map(|(_, a)| *a)).collect();
            row.push(figure_spread(name, &values));
        }
        row.push(crate::learned::judge(&first.lets, results).map_or("—".into(), |j| j.text()));
        if timed {
            row.push(members.iter().map(|r| r.learned_at.text()).collect::<Vec<_>>().join(", "));
        }
        let _ = writeln!(text, "| {} |", row.join(" | "));
    }
    let when = if timed { TIMING_NOTE } else { "" };
    text + CLIPPED_NOTE + when + &unlearned_note(results)
}

/// Below the per-cell table: the intervals' limits.
const CLIPPED_NOTE: &str = "\nIntervals are Student's t over the seeds, clipped to what a figure can be (an accuracy \
     0 – 100 %, a loss at least 0, a perplexity at least 1); with three seeds they are wide.\n";

/// Below the per-cell table, when it has the column: what "learned at step" reads.
const TIMING_NOTE: &str = "\n\"Learned at step\": for each seed, the first evaluation at which its held-out score \
     (without a held-out set, its first test score) reached the task's chance + 5 points; — for a seed that never \
     did, ? where it was not recorded (to the evaluation interval: `eval_every` steps). On a recall task learning \
     comes as a sudden transition, so a grid at a fixed budget records whether each model has made it yet: this \
     column shows how close to the budget the cells that learned came, a hint of which cells a longer run might \
     turn.\n";

/// Below the per-cell table: how "did not learn" is judged, when a cell did not, and
/// what becomes of a cell whose search alone learned.
fn unlearned_note(results: &[Result]) -> String {
    use crate::learned::Floor;
    let floors: Vec<Floor> = cells(results).iter().filter_map(|c| crate::learned::floor(&c[0].lets, results)).collect();
    let count = |kind: Floor| floors.iter().filter(|f| **f == kind).count();
    let (unlearned, search_only) = (count(Floor::DidNotLearn), count(Floor::SearchOnly));
    let mut note = String::new();
    if unlearned > 0 {
        note += &format!(
            "\n{unlearned} cell(s) did not learn: the best held-out score of every run of the cell (search and seeds) \
             stayed below the task's chance + {:.0} points (MQAR and forgetting-MQAR: chance 1/pairs, naming one of \
             the context's values without binding it to its key; a needle: a uniform guess over the value range). \
             Their figures may be the floor of a failed run rather than the mixer's recall, and a cell at chance to \
             its last step may still learn in a longer run (a recall task's transition can come late and suddenly).",
            100.0 * crate::learned::MARGIN
        );
    }
    if search_only > 0 {
        note += &format!(
            "\n{search_only} cell(s) learned in their search alone: none of their seeds rose above chance + {:.0} \
             points, so their figures are floors too, and one search run's transition says little of how often the \
             rate's runs learn (`search_seeds = k` chooses by k runs a rate).",
            100.0 * crate::learned::MARGIN
        );
    }
    if !note.is_empty() {
        note += " A claim that reads such cells is judged with and without them and keeps a verdict only where both \
                 agree.\n";
    }
    note
}

/// The steps of a cell's runs: the budget, and where plateaus stopped runs.
fn steps(members: &[&Result]) -> String {
    let budget = members[0].steps;
    let stops: Vec<String> = members.iter().filter_map(|r| r.plateaued_at.map(|s| s.to_string())).collect();
    match (budget, stops.is_empty()) {
        (0, _) => "—".into(),
        (_, true) => budget.to_string(),
        (_, false) => format!("{budget} (plateau at {})", stops.join(", ")),
    }
}

/// Per cell: each rate's held-out figure (with `lr_refine`, the refinement's two rates
/// and their figures, below and above the grid's best) and the rate chosen.
fn search_table(config: &SweepConfig, results: &[Result]) -> String {
    let mut header: Vec<String> = config.axes.iter().map(|a| a.name.clone()).collect();
    let held_out = results.iter().find_map(|r| r.held_out.as_ref().map(|(n, _)| n.clone())).unwrap_or_default();
    header.extend(config.lrs.iter().map(|lr| format!("lr {lr:e}")));
    if config.refine {
        header.extend(["refined below", "refined above"].map(String::from));
    }
    if config.extend > 0 {
        header.push("extended".into());
    }
    header.extend(["chosen", "note"].map(String::from));
    let mut text = format!("Figures: {held_out}.\n\n| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for lets in searched_cells(results) {
        let mut row: Vec<String> = lets.iter().map(|(_, v)| v.clone()).collect();
        let figure_at = |lr: f64| {
            let figure = crate::sweep::search_figure(config, lets, lr, results);
            figure.map_or("—".into(), |(name, figure)| figure_text(&name, figure))
        };
        row.extend(config.lrs.iter().map(|lr| figure_at(*lr)));
        if config.refine {
            match crate::sweep::refinement(config, lets, results) {
                Some(rates) => row.extend(rates.map(|lr| format!("{lr:e}: {}", figure_at(lr)))),
                None => row.extend(["(after the grid)".to_string(), "(after the grid)".to_string()]),
            }
        }
        if config.extend > 0 {
            row.push(extension_text(config, lets, results, figure_at));
        }
        row.push(chosen_lr(config, lets, results).map_or("(search unfinished)".into(), |lr| format!("{lr:e}")));
        row.push(search_note(config, lets, results));
        let _ = writeln!(text, "| {} |", row.join(" | "));
    }
    text
}

/// A cell's extension as its search table shows it: each rate added with its figure,
/// "none" where the best lay inside, "(after the search)" before anything is known.
fn extension_text(
    config: &SweepConfig,
    lets: &[(String, String)],
    results: &[Result],
    figure_at: impl Fn(f64) -> String,
) -> String {
    let extension = crate::sweep::extension(config, lets, results);
    let rates: Vec<String> = extension.rates.iter().map(|lr| format!("{lr:e}: {}", figure_at(*lr))).collect();
    match (rates.is_empty(), extension.settled) {
        (true, true) => "none".into(),
        (true, false) => "(after the search)".into(),
        (false, _) => rates.join(", "),
    }
}

/// What a cell's search leaves uncertain: every rate scoring the same (none learned,
/// the choice is the first rate, or with `lr_tie` the largest), a rate taken over the
/// best as the largest of a near-tie, or the best at an end of the grid (the window may
/// lie beyond it: widen the grid); a choice that rests on a transition the budget
/// barely caught, or on a score barely past the line of having learned.
fn search_note(config: &SweepConfig, lets: &[(String, String)], results: &[Result]) -> String {
    let late = chosen_learned_last(config, lets, results).map(|step| {
        format!("the chosen rate's search learned only at its last evaluation (step {step}): a longer budget may choose otherwise")
    });
    let notes = [
        Some(window_note(config, lets, results)).filter(|n| !n.is_empty()),
        late,
        barely_learned(config, lets, results),
    ];
    notes.into_iter().flatten().collect::<Vec<_>>().join("; ")
}

/// Points above the line of having learned (chance + [`crate::learned::MARGIN`]) within
/// which a chosen rate's held-out score is flagged: `families.hyb`'s DeltaNet 3:1 took
/// 3.16e-3 on one search run at 18.2 % (the line 17.5 %) in one build, 1e-3 in another,
/// and its seeds learned at the one and not the other.
const BARELY: f64 = 0.02;

/// The note for a chosen rate whose held-out accuracy lies at or above chance + 5 points
/// by less than [`BARELY`]: the rate was chosen on a transition one search run (or k,
/// with `search_seeds`) barely made.
fn barely_learned(config: &SweepConfig, lets: &[(String, String)], results: &[Result]) -> Option<String> {
    let chosen = chosen_lr(config, lets, results)?;
    let (name, score) = crate::sweep::search_figure(config, lets, chosen, results)?;
    let chance = results.iter().filter(|r| r.lets == lets).find_map(|r| r.chance)?;
    let line = chance + crate::learned::MARGIN;
    if is_perplexity(&name) || score < line || score >= line + BARELY {
        return None;
    }
    let runs = match config.search_seeds().len() {
        1 => "one search run".to_string(),
        k => format!("the mean of {k} search runs"),
    };
    Some(format!(
        "the choice rests on {runs} at {:.1} %, within {:.0} points of chance + 5 ({:.1} %): another run may choose otherwise (`search_seeds`)",
        100.0 * score,
        100.0 * BARELY,
        100.0 * line
    ))
}

/// The step at which the chosen rate's search runs learned, when every one of them did
/// so only at its last evaluation (the run's final step): the window's choice then
/// rests on a transition the budget barely caught.
fn chosen_learned_last(config: &SweepConfig, lets: &[(String, String)], results: &[Result]) -> Option<u64> {
    let chosen = chosen_lr(config, lets, results)?;
    let runs: Vec<&Result> =
        results.iter().filter(|r| r.phase == Phase::Search && r.lets == lets && r.lr == chosen).collect();
    let last = |r: &&Result| match r.learned_at {
        Transition::At(step) => (step >= r.plateaued_at.unwrap_or(r.steps)).then_some(step),
        _ => None,
    };
    let steps: Vec<u64> = runs.iter().map(last).collect::<Option<_>>()?;
    steps.into_iter().max()
}

/// What the search's scores say of its window: no rate learned, a tie, a best rate at
/// an edge.
fn window_note(config: &SweepConfig, lets: &[(String, String)], results: &[Result]) -> String {
    let Some(scores) = crate::sweep::search_scores(config, lets, results) else { return String::new() };
    // The search's own scores decide its note, as they decide its extension: a seed
    // that learned after it does not make an edge among rates at chance a window.
    if crate::learned::judge_search(lets, results).is_some_and(|j| !j.learned()) {
        let seeds = crate::learned::judge(lets, results).is_some_and(|j| j.learned());
        let later = if seeds { " (a measured seed learned after it)" } else { "" };
        return format!("no rate learned: every held-out score near chance{later}");
    }
    let argmax = crate::sweep::choose(&scores);
    let chosen = chosen_lr(config, lets, results);
    if scores.iter().all(|(_, score)| *score == scores[0].1) {
        let taken = if config.lr_tie > 0.0 { "the largest" } else { "the first" };
        return format!("all rates scored the same: {taken} is taken");
    }
    let low = scores.iter().map(|(lr, _)| *lr).fold(f64::INFINITY, f64::min);
    let high = scores.iter().map(|(lr, _)| *lr).fold(f64::NEG_INFINITY, f64::max);
    if let (Some(argmax), Some(lr)) = (argmax, chosen)
        && argmax != lr
    {
        let edge = if lr == high { "; at the grid's highest rate: widen it upwards" } else { "" };
        return format!("within lr_tie of the best, {argmax:e}: the largest of the tie is taken{edge}");
    }
    let best = scores.iter().map(|(_, score)| *score).fold(f64::NEG_INFINITY, f64::max);
    let tied: Vec<String> = scores
        .iter()
        .filter(|(lr, score)| *score == best && Some(*lr) != chosen)
        .map(|(lr, _)| format!("{lr:e}"))
        .collect();
    if !tied.is_empty() && config.lr_tie == 0.0 {
        return format!("tied with {} (the first of a tie is taken)", tied.join(", "));
    }
    let edge = |side: &str, way: &str| match crate::sweep::extension(config, lets, results).rates.len() {
        0 => format!("best at the grid's {side} rate: widen it {way}"),
        n => format!("best at the {side} rate searched, {n} step(s) past the grid: widen it {way} or raise lr_extend"),
    };
    match chosen {
        Some(lr) if lr == low => edge("lowest", "downwards"),
        Some(lr) if lr == high => edge("highest", "upwards"),
        _ => String::new(),
    }
}

fn figure_text(name: &str, figure: f64) -> String {
    if is_perplexity(name) { format!("{figure:.3}") } else { format!("{:.1}%", 100.0 * figure) }
}

/// Every run: its phase, rate, seed, steps, loss, held-out and test figures.
fn runs_table(config: &SweepConfig, results: &[Result]) -> String {
    let figures = figures(results);
    let mut header: Vec<String> = config.axes.iter().map(|a| a.name.clone()).collect();
    header.extend(["phase", "lr", "seed", "steps", "final loss", "held-out"].map(String::from));
    header.extend(figures.iter().cloned());
    let mut text = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for r in results {
        let mut row: Vec<String> = r.lets.iter().map(|(_, v)| v.clone()).collect();
        row.extend([format!("{:?}", r.phase).to_lowercase(), format!("{:e}", r.lr), r.seed.to_string()]);
        row.push(r.plateaued_at.map_or(r.steps.to_string(), |s| format!("{s} of {}", r.steps)));
        row.push(format!("{:.4}", r.final_loss));
        row.push(r.held_out.as_ref().map_or("—".into(), |(name, figure)| figure_text(name, *figure)));
        row.extend(r.accuracy.iter().map(|(name, figure)| figure_text(name, *figure)));
        let _ = writeln!(text, "| {} |", row.join(" | "));
    }
    text
}

/// What the claims read off each measured run (runs from before the mixer was recorded
/// are left out).
pub(crate) fn observations(results: &[Result]) -> Vec<Observation> {
    measured(results)
        .into_iter()
        .filter(|r| !r.mixer.is_empty())
        .map(|r| Observation {
            mixer: r.mixer.clone(),
            share: r.attention_share,
            recall: r.accuracy.iter().find(|(name, _)| !is_perplexity(name)).map(|(_, a)| *a),
            lm_loss: r.accuracy.iter().find(|(name, _)| is_perplexity(name)).map(|(_, p)| p.ln()),
            floor: crate::learned::floor(&r.lets, results),
            update: if r.update.is_empty() { family_update(&r.mixer).into() } else { r.update.clone() },
        })
        .collect()
}

/// The update rule of one of fla's families by its preset's name (`retnet` also the
/// study files' spelled-out RetNet), for results written before the rule was recorded;
/// empty for any other name.
fn family_update(mixer: &str) -> &'static str {
    match mixer {
        "gated_deltanet" | "deltanet" => "delta",
        "hgrn" | "hgrn2" | "gla" | "retnet" => "additive",
        _ => "",
    }
}

fn csv(config: &SweepConfig, results: &[Result]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut header: Vec<String> = config.axes.iter().map(|a| quote(&a.name)).collect();
    header.extend(
        ["lr", "seed", "phase", "params", "state_bytes", "kv_cache_bytes", "mixer", "attention_share"]
            .map(String::from),
    );
    header.extend(
        ["steps", "plateaued_at", "tokens", "final_loss", "held_out", "chance", "learned_at", "device"]
            .map(String::from),
    );
    header.extend(figures(results).iter().map(|e| quote(&format!("{e} accuracy"))));
    let mut text = header.join(",") + "\n";
    for r in results {
        let mut row: Vec<String> = r.lets.iter().map(|(_, v)| quote(v)).collect();
        row.extend([r.lr.to_string(), r.seed.to_string(), format!("{:?}", r.phase).to_lowercase()]);
        row.extend([r.params.to_string(), r.state_bytes.to_string(), r.kv_cache_bytes.to_string()]);
        row.extend([quote(&r.mixer), r.attention_share.to_string(), r.steps.to_string()]);
        row.push(r.plateaued_at.map_or(String::new(), |s| s.to_string()));
        row.extend([r.tokens.to_string(), r.final_loss.to_string()]);
        row.push(r.held_out.as_ref().map_or(String::new(), |(_, figure)| figure.to_string()));
        row.push(r.chance.map_or(String::new(), |c| c.to_string()));
        row.push(match r.learned_at {
            Transition::At(step) => step.to_string(),
            Transition::Never => "never".into(),
            Transition::Unrecorded => String::new(),
        });
        row.push(quote(&r.device));
        row.extend(r.accuracy.iter().map(|(_, a)| a.to_string()));
        text += &(row.join(",") + "\n");
    }
    text
}

/// The first test figure per cell (mean over seeds, 95 % interval as an error bar)
/// against the last axis, one line per value of the first.
fn chart(config: &SweepConfig, results: &[Result]) -> String {
    let name = figures(results).into_iter().next().unwrap_or_default();
    let accuracy = !is_perplexity(&name);
    let points = cells(results)
        .into_iter()
        .map(|members| {
            let values: Vec<f64> = members.iter().map(|r| r.accuracy.first().map_or(0.0, |(_, a)| *a)).collect();
            let (mean, _, half) = mean_spread(&values);
            let lets = &members[0].lets;
            let series = if config.axes.len() > 1 { lets.first().map(|(_, v)| v.clone()) } else { None };
            crate::plot::Point {
                series: series.unwrap_or_else(|| "mean over seeds".into()),
                x: lets.last().map_or_else(|| "run".to_string(), |(_, v)| v.clone()),
                mean,
                interval: (values.len() > 1).then_some((mean - half, mean + half)),
            }
        })
        .collect();
    let x_label = config.axes.last().map_or("run".into(), |a| a.name.clone());
    let y_label = if accuracy { format!("{name} accuracy") } else { name };
    crate::plot::sweep_svg(&x_label, &y_label, accuracy, chance(results), points)
}

/// Each cell's held-out figure against the learning rate, one line per cell: where each
/// model's window lies and whether the grid holds it.
fn search_chart(config: &SweepConfig, results: &[Result]) -> String {
    let mut search = results.iter().filter(|r| r.phase == Phase::Search);
    let name = search.find_map(|r| r.held_out.as_ref().map(|(n, _)| n.clone())).unwrap_or_default();
    let cells = searched_cells(results);
    let mut lrs = config.lrs.clone();
    lrs.extend(cells.iter().filter_map(|lets| crate::sweep::refinement(config, lets, results)).flatten());
    lrs.extend(cells.iter().flat_map(|lets| crate::sweep::extension(config, lets, results).rates));
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    let mut points = Vec::new();
    // Cell by cell, so the legend lists the cells in the grid's order (the chart puts the
    // rates in ascending order).
    for lets in &cells {
        for lr in &lrs {
            let Some((_, figure)) = crate::sweep::search_figure(config, lets, *lr, results) else { continue };
            let cell: Vec<&str> = lets.iter().map(|(_, v)| v.as_str()).collect();
            let series = if cell.is_empty() { "held-out".into() } else { cell.join(", ") };
            points.push(crate::plot::Point { series, x: format!("{lr:e}"), mean: figure, interval: None });
        }
    }
    let accuracy = !is_perplexity(&name);
    let y_label = if accuracy { format!("{name} accuracy") } else { name };
    crate::plot::sweep_svg("learning rate", &y_label, accuracy, chance(results), points)
}

/// The recall task's chance, where every run that records one agrees on it.
fn chance(results: &[Result]) -> Option<f64> {
    let mut chances = results.iter().filter_map(|r| r.chance);
    let first = chances.next()?;
    chances.all(|c| c == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use hyb_compiler::ir::train::{Axis, SweepConfig};

    use crate::sweep::{Phase, Result};

    /// A protocol over `axes` with rates `lrs` and `seeds`, nothing else set.
    fn protocol(axes: Vec<Axis>, lrs: Vec<f64>, seeds: Vec<u64>) -> SweepConfig {
        SweepConfig {
            search_runs: 1,
            lr_tie: 0.0,
            refine: false,
            extend: 0,
            axes,
            lrs,
            seeds,
            tokens: None,
            plateau: None,
        }
    }

    /// One cell, `linear = gdn`, searched over `lrs` with seed 0.
    fn gdn_protocol(lrs: Vec<f64>) -> SweepConfig {
        protocol(vec![Axis { name: "linear".into(), values: vec!["gdn".into()] }], lrs, vec![0])
    }

    /// A finished search run of the `gdn` cell at `lr`, its held-out and test scores both `held_out`.
    fn gdn_search(config: &SweepConfig, lr: f64, held_out: f64) -> Result {
        let mut r = crate::learned::tests::run("gdn", Phase::Search, Some(held_out), held_out);
        (r.lr, r.seed) = (lr, config.search_seeds()[0]);
        r
    }

    /// Three seeds per cell; RetNet's best held-out score is 14 % against MQAR's chance
    /// of 12.5 % (8 pairs): the report marks its cells, and the claims that read them
    /// are judged with and without them.
    #[test]
    fn the_report_marks_cells_that_did_not_learn() {
        let axis = |name: &str, values: &[&str]| Axis {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let config = protocol(
            vec![axis("linear", &["gdn", "retnet"]), axis("attn_every", &["2", "4"])],
            Vec::new(),
            vec![0, 1, 2],
        );
        let mut results: Vec<Result> = Vec::new();
        for (mixer, level) in [("gdn", 0.8), ("retnet", 0.12)] {
            for (every, share) in [("2", 0.5), ("4", 0.25)] {
                for (seed, noise) in [(0, -0.01), (1, 0.0), (2, 0.01)] {
                    let mut r = crate::learned::tests::run(mixer, Phase::Seed, Some(level + 0.02), level + noise);
                    r.lets.push(("attn_every".into(), every.into()));
                    r.attention_share = share;
                    r.seed = seed;
                    results.push(r);
                }
            }
        }
        let text = super::markdown(&config, &results);
        assert_eq!(text.matches("**did not learn** (best held-out 14.0 %, chance 12.5 %)").count(), 2, "{text}");
        assert_eq!(text.matches("| yes (best held-out 82.0 %, chance 12.5 %) |").count(), 2, "{text}");
        assert!(text.contains("2 cell(s) did not learn"), "{text}");
        // Flat recall: inconclusive with and without RetNet's cells, which it names;
        // RetNet's gain needs RetNet's cells, so it gets no verdict.
        let line = |claim: &str| text.lines().find(|l| l.starts_with(&format!("| {claim}"))).expect("a claim row");
        let rises = line("Recall rises with the share of attention.");
        assert!(
            rises.contains("| **inconclusive** |") && rises.contains("the same verdict with and without"),
            "{rises}"
        );
        assert!(rises.contains("retnet at 50 % attention, retnet at 25 % attention"), "{rises}");
        let retnet = line("In hybrids, RetNet gains least from attention.");
        assert!(retnet.contains("| **no verdict: depends on cells whose seeds stayed at chance** |"), "{retnet}");
        assert!(!text.contains("## By group of answers"), "no groups, no section");
    }

    /// A chosen rate whose search run learned only at its last evaluation is flagged
    /// (beside any other note); one that learned earlier, or a run with no record, not.
    #[test]
    fn a_choice_caught_at_the_last_evaluation_is_flagged() {
        use crate::learned::Transition;
        let config = gdn_protocol(vec![3.16e-4, 1e-3, 3.16e-3]);
        let lets = vec![("linear".to_string(), "gdn".to_string())];
        let timed =
            |lr: f64, held_out: f64, learned_at| Result { steps: 800, learned_at, ..gdn_search(&config, lr, held_out) };
        let late = [
            timed(3.16e-4, 0.2, Transition::Never),
            timed(1e-3, 0.9, Transition::At(800)),
            timed(3.16e-3, 0.1, Transition::Never),
        ];
        let flag = "the chosen rate's search learned only at its last evaluation (step 800): a longer budget may choose otherwise";
        assert_eq!(super::search_note(&config, &lets, &late), flag);
        let early = [late[0].clone(), timed(1e-3, 0.9, Transition::At(400)), late[2].clone()];
        assert_eq!(super::search_note(&config, &lets, &early), "");
        let unknown = [late[0].clone(), timed(1e-3, 0.9, Transition::Unrecorded), late[2].clone()];
        assert_eq!(super::search_note(&config, &lets, &unknown), "");
        let at_edge = [late[0].clone(), early[1].clone(), timed(3.16e-3, 0.95, Transition::At(800))];
        assert_eq!(
            super::search_note(&config, &lets, &at_edge),
            format!("best at the grid's highest rate: widen it upwards; {flag}")
        );
    }

    /// A chosen rate whose held-out score lies within 2 points past chance + 5 is
    /// flagged; one further past, or a cell that did not learn, not.
    #[test]
    fn a_choice_barely_past_the_line_is_flagged() {
        let config = gdn_protocol(vec![1e-3, 3.16e-3]);
        let lets = vec![("linear".to_string(), "gdn".to_string())];
        let search = |lr: f64, held_out: f64| gdn_search(&config, lr, held_out);
        let barely = [search(1e-3, 0.127), search(3.16e-3, 0.182)];
        assert_eq!(
            super::search_note(&config, &lets, &barely),
            "best at the grid's highest rate: widen it upwards; the choice rests on one search run at 18.2 %, \
             within 2 points of chance + 5 (17.5 %): another run may choose otherwise (`search_seeds`)"
        );
        let clear = [search(1e-3, 0.127), search(3.16e-3, 0.96)];
        assert!(!super::search_note(&config, &lets, &clear).contains("the choice rests on"));
        let none = [search(1e-3, 0.127), search(3.16e-3, 0.15)];
        assert_eq!(super::search_note(&config, &lets, &none), "no rate learned: every held-out score near chance");
    }

    /// A search whose rates all stayed at chance says so even when a measured seed at
    /// its chosen rate learned after it (as `gpu.hyb`'s GLA 3:1 did), rather than asking
    /// to widen a window it never found; the extension goes by the search alone too.
    #[test]
    fn a_seed_that_learns_after_a_search_at_chance_does_not_make_a_window() {
        let config = SweepConfig { extend: 2, ..gdn_protocol(vec![1e-3, 3.16e-3]) };
        let lets = vec![("linear".to_string(), "gdn".to_string())];
        let mut runs = vec![gdn_search(&config, 1e-3, 0.14), gdn_search(&config, 3.16e-3, 0.13)];
        let mut seed = crate::learned::tests::run("gdn", Phase::Seed, None, 0.6);
        seed.lr = 1e-3;
        runs.push(seed);
        assert_eq!(
            super::search_note(&config, &lets, &runs),
            "no rate learned: every held-out score near chance (a measured seed learned after it)"
        );
        assert_eq!(crate::sweep::extension(&config, &lets, &runs).rates, Vec::<f64>::new());
        // The same search with its lowest rate above the line extends a step below it.
        runs[0] = gdn_search(&config, 1e-3, 0.5);
        assert_eq!(crate::sweep::extension(&config, &lets, &runs).rates, vec![3.16e-4]);
    }

    /// A search whose best score is shared names the rates it ties with, rather than
    /// sending the window past an edge the tie does not show to be best.
    #[test]
    fn a_tied_search_says_so() {
        let config = gdn_protocol(vec![3.16e-4, 1e-3, 3.16e-3]);
        let search = |lr: f64, held_out: f64| gdn_search(&config, lr, held_out);
        let lets = vec![("linear".to_string(), "gdn".to_string())];
        let tied = [search(3.16e-4, 1.0), search(1e-3, 1.0), search(3.16e-3, 0.1)];
        assert_eq!(super::search_note(&config, &lets, &tied), "tied with 1e-3 (the first of a tie is taken)");
        let edge = [search(3.16e-4, 1.0), search(1e-3, 0.9), search(3.16e-3, 0.1)];
        assert_eq!(super::search_note(&config, &lets, &edge), "best at the grid's lowest rate: widen it downwards");
        // With `lr_tie`, 1e-3 within 0.1 of the best takes over (the chosen column and
        // the protocol line say so), 3.16e-3 does not.
        let ties = SweepConfig { lr_tie: 0.1, ..config.clone() };
        assert_eq!(
            super::search_note(&ties, &lets, &edge),
            "within lr_tie of the best, 3.16e-4: the largest of the tie is taken"
        );
        let text = super::markdown(&ties, &edge);
        assert!(text.contains("rates within 0.1 of the best"), "{text}");
        assert!(text.contains("| gdn | 100.0% | 90.0% | 10.0% | 1e-3 |"), "{text}");
        assert_eq!(
            super::search_note(&ties, &lets, &tied),
            "within lr_tie of the best, 3.16e-4: the largest of the tie is taken",
            "an exact tie too goes to its largest rate"
        );
    }

    /// The protocol says what the runs trained on, each device with its count of runs,
    /// and counts those written before the device was recorded; the CSV has it per run.
    #[test]
    fn the_report_says_which_device_ran_what() {
        let config = gdn_protocol(vec![1e-3, 1e-2]);
        let mut results: Vec<Result> = [1e-3, 1e-2, 3e-2].iter().map(|lr| gdn_search(&config, *lr, 0.5)).collect();
        results[0].device = "cuda (NVIDIA H100 80GB HBM3)".into();
        results[1].device = "cuda (NVIDIA H100 80GB HBM3)".into();
        let text = super::markdown(&config, &results);
        assert!(text.contains("- devices: cuda (NVIDIA H100 80GB HBM3): 2 run(s); not recorded: 1 run(s)\n"), "{text}");
        let csv = super::csv(&config, &results);
        assert!(csv.lines().next().expect("a header").contains(",learned_at,device,"), "{csv}");
        assert!(csv.contains(",\"cuda (NVIDIA H100 80GB HBM3)\","), "{csv}");
        assert_eq!(super::devices(&[]), None);
        assert_eq!(super::compute(&results), None, "no run timed");
        results[0].seconds = 2400.0;
        results[0].at_once = 8;
        results[1].seconds = 3000.0;
        results[1].at_once = 4;
        assert_eq!(
            super::compute(&results).as_deref(),
            Some(
                "compute: 2 timed run(s), 1.5 h of wall time, about 18 min of their machines (each run's time over \
                 the runs at once beside it) (1 run(s) not timed)"
            )
        );
    }

    /// Three seeds far apart: Student's t reaches past 100 % and below a loss of 0; the
    /// interval stops at what the figure can be, the mean and sd stay as they are.
    #[test]
    fn intervals_stop_at_what_a_figure_can_be() {
        let seeds = [0.775, 0.845, 0.377];
        assert_eq!(super::spread(&seeds, 100.0, 1, super::ACCURACY, " %"), "66.6 ± 25.2 [3.9, 100.0] %");
        let losses = [0.8456, 0.5067, 3.1052];
        assert_eq!(super::spread(&losses, 1.0, 4, super::LOSS, ""), "1.4858 ± 1.4126 [0.0000, 4.9952]");
        let close = [0.92, 0.93, 0.94];
        assert_eq!(
            super::spread(&close, 100.0, 1, super::ACCURACY, " %"),
            "93.0 ± 1.0 [90.5, 95.5] %",
            "inside: as is"
        );
        assert_eq!(super::spread(&[0.5], 100.0, 1, super::ACCURACY, " %"), "50.0 % (one seed)", "no interval of one");
    }

    /// A sweep cut short while its cells search: the tables of measured runs and the
    /// claims say that nothing is measured yet, not that the grid lacks a recall task.
    #[test]
    fn a_report_of_searches_alone_says_nothing_is_measured_yet() {
        let config = gdn_protocol(vec![3.16e-4, 1e-3]);
        let searches = [gdn_search(&config, 3.16e-4, 0.4), gdn_search(&config, 1e-3, 0.9)];
        let text = super::markdown(&config, &searches);
        assert_eq!(text.matches(super::NOTHING_MEASURED).count(), 2, "{text}");
        assert!(!text.contains("not tested by this grid"), "{text}");
        assert!(text.contains("| gdn | 40.0% | 90.0% | 1e-3 |"), "the search table stays: {text}");
    }

    /// `lr_refine`: the search table gains the refinement's two rates and figures per
    /// cell, the protocol line says how they are placed, the chart's axis holds every
    /// rate tried in order, and the edge note reads the refined window: the grid's lowest
    /// rate best is no edge once half a step below it has scored worse.
    #[test]
    fn a_refined_search_shows_its_rates() {
        let config = SweepConfig { refine: true, ..gdn_protocol(vec![1e-3, 3.16e-3, 1e-2]) };
        let search = |lr: f64, held_out: f64| gdn_search(&config, lr, held_out);
        let lets = vec![("linear".to_string(), "gdn".to_string())];
        let grid = [search(1e-3, 0.8), search(3.16e-3, 0.5), search(1e-2, 0.1)];
        let text = super::markdown(&config, &grid[..2]);
        assert!(
            text.contains("| gdn | 80.0% | 50.0% | — | (after the grid) | (after the grid) | (search unfinished) |"),
            "{text}"
        );
        let text = super::markdown(&config, &grid);
        assert!(
            text.contains("| gdn | 80.0% | 50.0% | 10.0% | 5.63e-4: — | 1.78e-3: — | (search unfinished) |"),
            "{text}"
        );
        let mut all = grid.to_vec();
        all.extend([search(5.63e-4, 0.6), search(1.78e-3, 0.9)]);
        let text = super::markdown(&config, &all);
        assert!(
            text.contains(
                "| linear | lr 1e-3 | lr 3.16e-3 | lr 1e-2 | refined below | refined above | chosen | note |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| gdn | 80.0% | 50.0% | 10.0% | 5.63e-4: 60.0% | 1.78e-3: 90.0% | 1.78e-3 |  |"),
            "{text}"
        );
        assert!(text.contains("then refined: the geometric midpoints between that best and its neighbours"), "{text}");
        let chart = super::search_chart(&config, &all);
        let ticks: Vec<usize> = ["5.63e-4", "1e-3", "1.78e-3", "3.16e-3", "1e-2"]
            .iter()
            .map(|lr| chart.find(&format!(">{lr}<")).unwrap_or_else(|| panic!("{lr} on the axis: {chart}")))
            .collect();
        assert!(ticks.windows(2).all(|w| w[0] < w[1]), "the rates in order: {ticks:?}");
        let low =
            [search(1e-3, 0.8), search(3.16e-3, 0.5), search(1e-2, 0.1), search(5.63e-4, 0.9), search(1.78e-3, 0.7)];
        assert_eq!(super::search_note(&config, &lets, &low), "best at the grid's lowest rate: widen it downwards");
        let inside =
            [search(1e-3, 0.8), search(3.16e-3, 0.5), search(1e-2, 0.1), search(5.63e-4, 0.7), search(1.78e-3, 0.7)];
        assert_eq!(super::search_note(&config, &lets, &inside), "", "1e-3 lies inside the refined window");
    }

    /// The update-rule section: present where hybrids of both rules were measured, the
    /// rule read from the result (a mixer of the user's own name, recorded `delta`) or,
    /// for results written before it was, from fla's family names; absent otherwise.
    #[test]
    fn the_report_compares_update_rules_where_both_were_run() {
        let config = protocol(
            vec![Axis { name: "linear".into(), values: vec!["mine".into(), "retnet".into()] }],
            Vec::new(),
            vec![0, 1, 2],
        );
        let runs = |mixer: &str, update: &str, recall: f64| -> Vec<Result> {
            (0..3)
                .map(|seed| {
                    let mut r = crate::learned::tests::run(mixer, Phase::Seed, None, recall + 0.01 * seed as f64);
                    (r.seed, r.update) = (seed, update.to_string());
                    r
                })
                .collect()
        };
        let results = [runs("mine", "delta", 0.9), runs("retnet", "", 0.5)].concat();
        let text = super::markdown(&config, &results);
        let section = text.split("## The update rule").nth(1).expect("the section");
        assert!(section.contains("| In hybrids, the delta rule recalls more than additive updates. | **supported** |"));
        assert!(section.contains("mine − retnet +40.0 ["), "{section}");
        let unknown = [runs("mine", "", 0.9), runs("retnet", "", 0.5)].concat();
        assert!(!super::markdown(&config, &unknown).contains("## The update rule"), "one rule known: no question");
    }

    /// Runs whose answers fall in groups (MQAR's distance bins) get a section: per cell,
    /// each group's accuracy over the seeds, a dash where a cell's runs lack the group.
    #[test]
    fn the_report_tables_accuracy_by_group() {
        let config = protocol(
            vec![Axis { name: "linear".into(), values: vec!["gdn".into(), "retnet".into()] }],
            Vec::new(),
            vec![0, 1],
        );
        let set = "mqar(seq_len: 64, pairs: 8)".to_string();
        let mut results = Vec::new();
        for (mixer, near, far) in [("gdn", [0.9, 0.8], [0.7, 0.5]), ("retnet", [0.6, 0.4], [0.1, 0.1])] {
            for seed in 0..2 {
                let mut r = crate::learned::tests::run(mixer, Phase::Seed, None, 0.5);
                r.seed = seed;
                r.by_group = vec![
                    (set.clone(), "distance 1–16".into(), near[seed as usize]),
                    (set.clone(), "distance > 16".into(), far[seed as usize]),
                ];
                results.push(r);
            }
        }
        results[3].by_group.pop();
        let text = super::markdown(&config, &results);
        let section = text.split("## By group of answers").nth(1).expect("the section");
        let table: Vec<&str> = section.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            table[0],
            "| linear | lr | seeds | mqar(seq_len: 64, pairs: 8): distance 1–16 | mqar(seq_len: 64, pairs: 8): distance > 16 |"
        );
        assert!(
            table[2].starts_with("| gdn | 1e-3 | 2 | 85.0 ± 7.1 [21.5, 100.0] % | 60.0 ± 14.1 [0.0, 100.0] % |"),
            "{}",
            table[2]
        );
        assert!(table[3].starts_with("| retnet | 1e-3 | 2 | 50.0 ± 14.1 "), "{}", table[3]);
        assert!(table[3].ends_with("| 10.0 % (one seed) |"), "one seed lacks the group: {}", table[3]);
    }
}
