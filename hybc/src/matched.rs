//! The report's comparison at matched recurrent-state size: recall differs between
//! mixers partly because their states differ in size (Zoology's point), so cells of two
//! linear mixers at the same share of attention whose recurrent states (the cost
//! report's state bytes: every layer's state and convolution cache) lie within
//! [`TOLERANCE`] of each other are compared directly — the difference of their mean
//! first test figure (recall, or a language-modelling grid's perplexity) over their
//! seeds with Welch's 95 % interval. A pair with a cell whose seeds stayed at chance
//! ([`crate::learned::floor`]) is listed without an estimate. When no two mixers match, the
//! section says so and how to size them.

use std::fmt::Write as _;

use crate::stats::{accuracy_difference, difference};
use crate::sweep::{Phase, Result, is_perplexity};

/// States within this fraction of the larger count as matched.
pub const TOLERANCE: f64 = 0.10;

/// A cell as this comparison reads it.
struct Cell<'a> {
    lets: &'a [(String, String)],
    mixer: &'a str,
    share: f64,
    state: u64,
    /// The first test figure of each seed: recall, or perplexity.
    figures: Vec<f64>,
}

/// Measured cells of a linear mixer, in order of appearance, and whether their first
/// test figure is a perplexity (else recall).
fn cells(results: &[Result]) -> (Vec<Cell<'_>>, bool) {
    let mut cells: Vec<Cell> = Vec::new();
    let mut perplexity = false;
    let measured = results.iter().filter(|r| r.phase != Phase::Search && !r.mixer.is_empty() && r.mixer != "none");
    for r in measured {
        let Some((name, figure)) = r.accuracy.first() else { continue };
        perplexity = is_perplexity(name);
        match cells.iter_mut().find(|c| c.lets == r.lets.as_slice()) {
            Some(cell) => cell.figures.push(*figure),
            None => cells.push(Cell {
                lets: &r.lets,
                mixer: &r.mixer,
                share: r.attention_share,
                state: r.state_bytes,
                figures: vec![*figure],
            }),
        }
    }
    (cells, perplexity)
}

fn matched(a: u64, b: u64) -> bool {
    a.abs_diff(b) as f64 <= TOLERANCE * a.max(b) as f64
}

/// The section's markdown: a row per matched pair, or why there is none.
pub fn markdown(results: &[Result]) -> String {
    let (cells, perplexity) = cells(results);
    let mut rows = String::new();
    for (i, a) in cells.iter().enumerate() {
        for b in cells.iter().skip(i + 1) {
            if a.mixer == b.mixer || a.share != b.share || !matched(a.state, b.state) {
                continue;
            }
            let floor = |lets| crate::learned::floor(lets, results).is_some();
            let estimate = if floor(a.lets) || floor(b.lets) {
                "no estimate: a cell's seeds stayed at chance".into()
            } else if perplexity {
                difference(&a.figures, &b.figures).text(1.0, 2)
            } else {
                accuracy_difference(&a.figures, &b.figures).text(100.0, 1) + " points"
            };
            let _ = writeln!(
                rows,
                "| {:.0} % | {} ({}) | {} ({}) | {estimate} |",
                100.0 * a.share,
                a.mixer,
                hyb_compiler::report::bytes(a.state),
                b.mixer,
                hyb_compiler::report::bytes(b.state),
            );
        }
    }
    if rows.is_empty() {
        return format!(
            "No two linear mixers of this grid have recurrent states within {:.0} % of each other at one share of \
             attention. To compare at matched state, size the mixers so their states agree (the state column above; \
             `hybc compile FILE` shows it per layer): e.g. head dims or `expand_v`.\n",
            100.0 * TOLERANCE
        );
    }
    let figure = if perplexity { "perplexity a − b (lower is better)" } else { "recall a − b" };
    let header =
        format!("| attention | mixer a (state) | mixer b (state) | {figure} (95 % interval) |\n|---|---|---|---|\n");
    let cut = if perplexity { "" } else { " An interval is cut at ±100 points, what a difference of recalls can be." };
    format!(
        "Cells of two mixers at one share of attention whose recurrent states lie within {:.0} % of each other \
         (state and convolution cache, all layers).{cut}\n\n{header}{rows}",
        100.0 * TOLERANCE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mixer: &str, share: f64, state: u64, recall: f64) -> Result {
        let mut r = crate::learned::tests::run(mixer, Phase::Seed, Some(0.9), recall);
        r.lets.push(("attn_every".into(), share.to_string()));
        r.attention_share = share;
        r.state_bytes = state;
        r
    }

    /// gdn and hgrn2 share a ratio and lie within 10 % (45 056 and 43 008 bytes): one
    /// row with Welch's difference; retnet (twice the state) and a pair at different
    /// ratios are not compared.
    #[test]
    fn only_matched_states_at_one_ratio_are_compared() {
        let mut results = Vec::new();
        for noise in [-0.01, 0.0, 0.01] {
            results.push(run("gdn", 0.25, 45_056, 0.8 + noise));
            results.push(run("hgrn2", 0.25, 43_008, 0.6 + noise));
            results.push(run("retnet", 0.25, 90_112, 0.3 + noise));
            results.push(run("gla", 0.5, 45_056, 0.5 + noise));
        }
        let text = markdown(&results);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| 25 %")).collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert!(rows[0].contains("gdn") && rows[0].contains("hgrn2") && rows[0].contains("+20.0 ["), "{text}");
        assert!(!text.contains("retnet") && !text.contains("gla"), "{text}");
        let unmatched: Vec<Result> = results.into_iter().filter(|r| r.mixer != "hgrn2").collect();
        assert!(markdown(&unmatched).starts_with("No two linear mixers"));
    }

    /// A language-modelling grid compares its matched cells' perplexity (it said no two
    /// states matched, reading recall only).
    #[test]
    fn a_perplexity_grid_compares_perplexity_at_matched_state() {
        let mut results = Vec::new();
        for noise in [-0.02, 0.0, 0.02] {
            for (mixer, perplexity) in [("gdn", 5.5), ("deltanet", 7.2)] {
                let mut r = run(mixer, 0.25, 29_184, 0.0);
                r.accuracy = vec![("perplexity(tiny.txt)".into(), perplexity + noise)];
                results.push(r);
            }
        }
        let text = markdown(&results);
        assert!(text.contains("perplexity a − b (lower is better)"), "{text}");
        let row = text.lines().find(|l| l.starts_with("| 25 %")).expect("a row");
        assert!(row.contains("gdn") && row.contains("deltanet") && row.contains("| -1.70 ["), "{text}");
    }
}
