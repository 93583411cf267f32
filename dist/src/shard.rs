//! Each rank's share of a step's global batch, a pure function of (rank, world): rows
//! `rank · B/W .. (rank + 1) · B/W` of the batch a single GPU would draw for the same
//! (seed, step). hyb's data tasks draw every row from (seed, step, row index) alone
//! (`hyb_train::data::Task::batch`), so drawing a rank's rows by their global index
//! gives, over the ranks, exactly the single-GPU batch: a run is reproducible and
//! resumable at any GPU count, and the step number stays the data position.
//!
//! The loss of a step is the mean over the batch's targets, so rank `r`'s gradient
//! enters the sum weighted by its share of the targets ([`gradient_weight`]): then the
//! all-reduced sum is the single-GPU gradient whatever the targets per row.

use std::ops::Range;

use crate::error::{Error, Result};

/// The rows of a global batch of `global` sequences that `rank` of `world` trains on.
pub fn rows(global: usize, rank: usize, world: usize) -> Result<Range<usize>> {
    if world == 0 || rank >= world {
        return Err(Error::Invalid(format!("rank {rank} of a world of {world}")));
    }
    if !global.is_multiple_of(world) || global == 0 {
        let below = (global / world).max(1) * world;
        let above = (global / world + 1) * world;
        let suggestion =
            if below == above || global < world { format!("{above}") } else { format!("{below} or {above}") };
        return Err(Error::Invalid(format!(
            "a batch of {global} sequences does not split evenly over {world} GPUs: choose a multiple of {world} ({suggestion})"
        )));
    }
    let per = global / world;
    Ok(rank * per..(rank + 1) * per)
}

/// This rank's batch: `draw(row)` for each of its rows, by the row's global index
/// (never a local index, which would draw other data at another world size).
pub fn local_batch<T>(global: usize, rank: usize, world: usize, draw: impl FnMut(usize) -> T) -> Result<Vec<T>> {
    Ok(rows(global, rank, world)?.map(draw).collect())
}

/// Rows `rows` of a row-major batch whose rows hold `row_len` values each (a batch the
/// caller drew whole, e.g. a task that reads its windows in order).
pub fn slice_rows<T>(flat: &[T], row_len: usize, rows: Range<usize>) -> &[T] {
    &flat[rows.start * row_len..rows.end * row_len]
}

/// The factor a rank's mean-loss gradient takes before the sum over ranks: its targets
/// over the batch's. With equal target counts, `1 / world`.
pub fn gradient_weight(local_targets: usize, global_targets: usize) -> f32 {
    if global_targets == 0 { 0.0 } else { (local_targets as f64 / global_targets as f64) as f32 }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
