//! The learning-rate search's rules, as pure functions of a sweep block and the runs
//! finished so far: which rate a cell takes ([`choose`], near-ties with `lr_tie`,
//! several search seeds by their mean), the rates `lr_refine` adds around the best
//! ([`around`], [`refinement`]) and those `lr_extend` adds past an end ([`extension`]).
//! Nothing here reads files or trains: [`super`] resolves the grid's runs with them, and
//! the report ([`crate::tables`]) tabulates the search with them.

use hyb_compiler::ir::train::SweepConfig;

use super::{Phase, Result, goodness, is_perplexity};

/// The selection rule: the rate with the highest held-out score (the first on a tie);
/// the test score is not an input.
pub fn choose(search: &[(f64, f64)]) -> Option<f64> {
    search
        .iter()
        .fold(None, |best: Option<(f64, f64)>, &(lr, score)| match best {
            Some((_, top)) if top >= score => best,
            _ => Some((lr, score)),
        })
        .map(|(lr, _)| lr)
}

/// [`choose`] with near-ties: the largest rate scoring within `tolerance(best score)`
/// of the best (the best itself with none).
pub fn choose_within(search: &[(f64, f64)], tolerance: impl FnOnce(f64) -> f64) -> Option<f64> {
    let best = choose(search)?;
    let top = search.iter().find(|(lr, _)| *lr == best).map(|(_, score)| *score)?;
    let floor = top - tolerance(top);
    let tied = search.iter().filter(|(_, score)| *score >= floor).map(|(lr, _)| *lr);
    Some(tied.fold(best, f64::max))
}

/// How far below the best held-out score a rate still ties with it under `lr_tie`: the
/// setting itself for accuracy, that share of the best perplexity for perplexity.
pub fn tie_tolerance(config: &SweepConfig, held_out: &str, best_goodness: f64) -> f64 {
    if is_perplexity(held_out) { config.lr_tie * best_goodness.abs() } else { config.lr_tie }
}

/// A cell's held-out set and figure at rate `lr`: the mean over its search runs there
/// (one per search seed); none until each has finished.
pub fn search_figure(
    config: &SweepConfig,
    lets: &[(String, String)],
    lr: f64,
    finished: &[Result],
) -> Option<(String, f64)> {
    let figures: Vec<&(String, f64)> = config
        .search_seeds()
        .iter()
        .map(|seed| {
            let run =
                finished.iter().find(|r| r.phase == Phase::Search && r.lets == lets && r.lr == lr && r.seed == *seed);
            run.and_then(|r| r.held_out.as_ref())
        })
        .collect::<Option<_>>()?;
    let mean = figures.iter().map(|(_, figure)| figure).sum::<f64>() / figures.len() as f64;
    Some((figures[0].0.clone(), mean))
}

/// A cell's (rate, held-out score) at each of `rates`; none until every search run
/// there has finished.
fn scores_at(
    config: &SweepConfig,
    lets: &[(String, String)],
    rates: &[f64],
    finished: &[Result],
) -> Option<Vec<(f64, f64)>> {
    rates
        .iter()
        .map(|lr| search_figure(config, lets, *lr, finished).map(|(name, figure)| (*lr, goodness(&name, figure))))
        .collect()
}

/// The rate a cell takes from `scores`: the best by held-out score, or with `lr_tie`
/// the largest of the rates tied with it.
fn pick(config: &SweepConfig, lets: &[(String, String)], scores: &[(f64, f64)], finished: &[Result]) -> Option<f64> {
    let best = choose(scores)?;
    if config.lr_tie == 0.0 {
        return Some(best);
    }
    let (held_out, _) = search_figure(config, lets, best, finished)?;
    choose_within(scores, |top| tie_tolerance(config, &held_out, top))
}

/// The two rates `lr_refine` adds around `best`, one of the grid's `lrs`: the geometric
/// midpoints between it and its neighbours below and above, or, where it is the lowest
/// (highest) rate, half a step beyond it, the step being the one to its neighbour; each
/// to three significant digits, as a grid's rates are written (so a refinement of half
/// decades lands on the quarter decades a hand-refined grid uses).
pub fn around(lrs: &[f64], best: f64) -> [f64; 2] {
    let mut sorted = lrs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let at = sorted.iter().position(|lr| *lr == best).unwrap_or(0);
    let neighbour = |offset: isize| at.checked_add_signed(offset).and_then(|i| sorted.get(i)).copied();
    let midpoint = |other: f64| (best * other).sqrt();
    // Half a step beyond an end: the mirror image of the midpoint towards the inside.
    let beyond = |inside: Option<f64>| inside.map_or(best, |inside| best * best / midpoint(inside));
    let below = neighbour(-1).map_or_else(|| beyond(neighbour(1)), midpoint);
    let above = neighbour(1).map_or_else(|| beyond(neighbour(-1)), midpoint);
    [below, above].map(hyb_compiler::sema::sweep::round3)
}

/// The rates `lr_refine` adds to a cell, once its grid's rates have finished: [`around`]
/// the best of them (by the same rule that chooses, `lr_tie` included); none before, or
/// without `lr_refine`.
pub fn refinement(config: &SweepConfig, lets: &[(String, String)], finished: &[Result]) -> Option<[f64; 2]> {
    if !config.refine {
        return None;
    }
    let coarse = scores_at(config, lets, &config.lrs, finished)?;
    Some(around(&config.lrs, pick(config, lets, &coarse, finished)?))
}

/// Every rate a cell's search trains: the grid's, with `lr_refine` its refinement and
/// with `lr_extend` its extension (in ascending order, so the first of an exact tie is
/// the lowest); none until the refinement is known and the extension settled.
pub fn searched_rates(config: &SweepConfig, lets: &[(String, String)], finished: &[Result]) -> Option<Vec<f64>> {
    let mut rates = refined_rates(config, lets, finished)?;
    if config.extend > 0 {
        let extension = extension(config, lets, finished);
        if !extension.settled {
            return None;
        }
        rates.extend(extension.rates);
        ascending(&mut rates);
    }
    Some(rates)
}

/// The grid's rates and, with `lr_refine`, its refinement, in ascending order; none
/// until the refinement is known.
fn refined_rates(config: &SweepConfig, lets: &[(String, String)], finished: &[Result]) -> Option<Vec<f64>> {
    let mut rates = config.lrs.clone();
    if config.refine {
        rates.extend(refinement(config, lets, finished)?);
    }
    ascending(&mut rates);
    Some(rates)
}

fn ascending(rates: &mut Vec<f64>) {
    rates.sort_by(f64::total_cmp);
    rates.dedup();
}

/// What `lr_extend` adds to a cell so far: the rates past an end, in the order they
/// were added, and whether it is settled (no rate more will be added).
#[derive(Clone, Debug, PartialEq)]
pub struct Extension {
    pub rates: Vec<f64>,
    pub settled: bool,
}

/// A cell's extension: once its grid and refinement have finished, while the rate the
/// cell would take is the lowest (highest) of those searched and the cell's search has
/// learned (an edge among rates that all stayed at chance says nothing of where the
/// window lies), one grid step below (above) it — the grid's step at that end — up to
/// `lr_extend` rates; each waits for the rates before it to finish.
pub fn extension(config: &SweepConfig, lets: &[(String, String)], finished: &[Result]) -> Extension {
    let mut added = Vec::new();
    let waiting = |rates| Extension { rates, settled: false };
    let Some(mut rates) = refined_rates(config, lets, finished) else { return waiting(added) };
    // Judged on the search alone: a seed that learns later must not reopen a settled
    // search (and take its cell's rate back from the seeds). Only asked where the best
    // lies at an end.
    let learned = || crate::learned::judge_search(lets, finished).is_none_or(|j| j.learned());
    while added.len() < config.extend {
        let Some(scores) = scores_at(config, lets, &rates, finished) else { return waiting(added) };
        let next = pick(config, lets, &scores, finished).and_then(|best| beyond(&config.lrs, &rates, best));
        let Some(next) = next.filter(|_| learned()) else { break };
        added.push(next);
        rates.push(next);
        ascending(&mut rates);
    }
    Extension { rates: added, settled: true }
}

/// The rate past `best` where it is the lowest (highest) of `rates`: a step of the grid
/// `lrs` at that end beyond it ([`step_from`]); none where `best` lies inside.
fn beyond(lrs: &[f64], rates: &[f64], best: f64) -> Option<f64> {
    let mut grid = lrs.to_vec();
    ascending(&mut grid);
    let (low, high) = (rates.first()?, rates.last()?);
    match grid.as_slice() {
        [first, second, ..] if best == *low => Some(step_from(best, first / second)),
        [.., below, last] if best == *high => Some(step_from(best, last / below)),
        _ => None,
    }
}

/// `best` times `ratio`, to three significant digits — in decades, where the step is a
/// whole fraction of one (1/k: a `log_grid`'s, or a list in quarter decades) and `best`
/// lies on that decade's grid, both to the three digits rates are written to: the rate
/// such a grid lists there. So 1.78e-3 a quarter decade up is 3.16e-3, the rate
/// `log_grid` and other grids name, not 1.78 × 1.78 = 3.17e-3, and an extension's run
/// is named as the same run of another grid.
fn step_from(best: f64, ratio: f64) -> f64 {
    // Three significant digits are within 0.22 % of the value: 0.0022 of a decade.
    const DIGITS: f64 = 0.0025;
    let (at, step) = (best.log10(), ratio.log10());
    let snapped = (1..=12).map(|k| k as f64).find(|k| (step.abs() * k - 1.0).abs() < 2.0 * DIGITS * k);
    let next = match snapped {
        Some(k) if (at * k - (at * k).round()).abs() < DIGITS * k => {
            10f64.powf((at * k).round() / k + step.signum() / k)
        }
        _ => best * ratio,
    };
    hyb_compiler::sema::sweep::round3(next)
}

/// A cell's (rate, held-out score) from its finished search runs, the refinement's
/// included; none until every run of the search has finished.
pub fn search_scores(config: &SweepConfig, lets: &[(String, String)], finished: &[Result]) -> Option<Vec<(f64, f64)>> {
    scores_at(config, lets, &searched_rates(config, lets, finished)?, finished)
}

/// The cell's chosen rate, once its search has finished (its refinement included): the
/// best by held-out score, or with `lr_tie` the largest of the rates tied with it.
pub fn chosen_lr(config: &SweepConfig, lets: &[(String, String)], finished: &[Result]) -> Option<f64> {
    pick(config, lets, &search_scores(config, lets, finished)?, finished)
}

#[cfg(test)]
mod tests {
    use super::step_from;

    /// A step of a grid in whole fractions of a decade lands on that grid, whatever the
    /// rounding of the rates it was read from; another step multiplies.
    #[test]
    fn a_step_past_an_end_lands_on_the_decade_grid() {
        assert_eq!(step_from(1.78e-3, 1.78e-3 / 1e-3), 3.16e-3, "a quarter decade up, not 3.17e-3");
        assert_eq!(step_from(1e-3, 1e-3 / 1.78e-3), 5.62e-4);
        assert_eq!(step_from(5.62e-3, 5.62e-3 / 3.16e-3), 1e-2);
        assert_eq!(step_from(3.16e-4, 3.16e-4 / 1e-3), 1e-4, "half a decade down");
        assert_eq!(step_from(1e-2, 1e-2 / 3.16e-3), 3.16e-2);
        assert_eq!(step_from(1e-3, 10.0), 1e-2, "a whole decade");
        assert_eq!(step_from(3e-3, 3.0), 9e-3, "a step of 3 is no fraction of a decade");
        assert_eq!(step_from(1.5e-3, 1.78), 2.67e-3, "off the grid: the ratio, rounded");
    }
}
