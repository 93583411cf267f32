//! The report's comparison at matched recurrent-state size: recall differs between
//! mixers partly because their states differ in size (Zoology's point), so cells of two
//! linear mixers at the same share of attention whose recurrent states (the cost
//! report's state bytes: every layer's state and convolution cache) lie within
//! [`TOLERANCE`] of each other are compared directly — the difference of mean recall
//! over their seeds with Welch's 95 % interval. A pair with a cell that did not learn
//! ([`crate::learned`]) is listed without an estimate. When no two mixers match, the
//! section says so and how to size them.

use std::fmt::Write as _;

use crate::stats::difference;
use crate::sweep::{Phase, Result, is_perplexity};

/// States within this fraction of the larger count as matched.
pub const TOLERANCE: f64 = 0.10;

/// A cell as this comparison reads it.
struct Cell<'a> {
    lets: &'a [(String, String)],
    mixer: &'a str,
    share: f64,
    state: u64,
    recall: Vec<f64>,
}

/// Measured cells of a linear mixer with a recall figure, in order of appearance.
fn cells(results: &[Result]) -> Vec<Cell<'_>> {
    let mut cells: Vec<Cell> = Vec::new();
    let measured = results.iter().filter(|r| r.phase != Phase::Search && !r.mixer.is_empty() && r.mixer != "none");
    for r in measured {
        let Some((_, recall)) = r.accuracy.first().filter(|(name, _)| !is_perplexity(name)) else { continue };
        match cells.iter_mut().find(|c| c.lets == r.lets.as_slice()) {
            Some(cell) => cell.recall.push(*recall),
            None => cells.push(Cell {
                lets: &r.lets,
                mixer: &r.mixer,
                share: r.attention_share,
                state: r.state_bytes,
                recall: vec![*recall],
            }),
        }
    }
    cells
}

fn matched(a: u64, b: u64) -> bool {
    a.abs_diff(b) as f64 <= TOLERANCE * a.max(b) as f64
}

/// The section's markdown: a row per matched pair, or why there is none.
pub fn markdown(results: &[Result]) -> String {
    let cells = cells(results);
    let mut rows = String::new();
    for (i, a) in cells.iter().enumerate() {
        for b in cells.iter().skip(i + 1) {
            if a.mixer == b.mixer || a.share != b.share || !matched(a.state, b.state) {
                continue;
            }
            let learned = crate::learned::learned(a.lets, results) && crate::learned::learned(b.lets, results);
            let estimate = if learned {
                let d = difference(&a.recall, &b.recall);
                d.text(100.0, 1) + " points"
            } else {
                "no estimate: a cell did not learn".into()
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
    let header =
        "| attention | mixer a (state) | mixer b (state) | recall a − b (95 % interval) |\n|---|---|---|---|\n";
    format!(
        "Cells of two mixers at one share of attention whose recurrent states lie within {:.0} % of each other \
         (state and convolution cache, all layers).\n\n{header}{rows}",
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
}
