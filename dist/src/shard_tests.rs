use super::*;

/// `hyb_train::data`'s stream per sequence: SplitMix64's finaliser of (seed, step,
/// index), copied here (this crate does not depend on the trainer).
fn mix(seed: u64, step: u64, index: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A sequence of 8 tokens as a task draws it from its own stream.
fn sequence(seed: u64, step: u64, index: usize) -> Vec<i32> {
    let mut state = mix(seed, step, index as u64);
    (0..8)
        .map(|_| {
            state = mix(state, 1, 0);
            (state % 1000) as i32
        })
        .collect()
}

/// The single-GPU batch, as `Task::batch` draws it: row `i` from (seed, step, i).
fn single(seed: u64, step: u64, global: usize) -> Vec<Vec<i32>> {
    (0..global).map(|i| sequence(seed, step, i)).collect()
}

#[test]
fn one_two_and_four_ranks_draw_the_single_gpu_batch() {
    for (seed, step) in [(1, 0), (1, 17), (42, 100_000)] {
        let whole = single(seed, step, 16);
        for world in [1, 2, 4] {
            let union: Vec<Vec<i32>> = (0..world)
                .flat_map(|rank| local_batch(16, rank, world, |i| sequence(seed, step, i)).unwrap())
                .collect();
            assert_eq!(union, whole, "seed {seed}, step {step}, {world} ranks");
        }
    }
}

#[test]
fn ranks_share_the_rows_without_overlap() {
    assert_eq!(rows(12, 0, 1).unwrap(), 0..12);
    assert_eq!(rows(12, 1, 4).unwrap(), 3..6);
    assert_eq!(rows(12, 3, 4).unwrap(), 9..12);
    let flat: Vec<i32> = (0..24).collect();
    assert_eq!(slice_rows(&flat, 2, rows(12, 1, 4).unwrap()), &[6, 7, 8, 9, 10, 11]);
}

#[test]
fn uneven_batches_are_refused_with_a_suggestion() {
    let message = rows(10, 0, 4).unwrap_err().to_string();
    assert_eq!(message, "a batch of 10 sequences does not split evenly over 4 GPUs: choose a multiple of 4 (8 or 12)");
    let message = rows(3, 0, 4).unwrap_err().to_string();
    assert!(message.ends_with("choose a multiple of 4 (4)"), "{message}");
    assert!(rows(8, 4, 4).is_err());
}

#[test]
fn weighted_rank_means_sum_to_the_global_mean() {
    // Per-row losses and target counts differ; each rank's loss is the mean over its
    // own targets, as the single-GPU loss is over all of them.
    let losses: Vec<f64> = (0..8).map(|i| 0.5 + i as f64 * 0.25).collect();
    let targets = [3usize, 0, 5, 1, 2, 2, 7, 4];
    let total: usize = targets.iter().sum();
    let global_mean = losses.iter().zip(&targets).map(|(l, t)| l * *t as f64).sum::<f64>() / total as f64;
    for world in [1, 2, 4] {
        let mut sum = 0.0;
        for rank in 0..world {
            let r = rows(8, rank, world).unwrap();
            let local: usize = targets[r.clone()].iter().sum();
            let mean = r.clone().map(|i| losses[i] * targets[i] as f64).sum::<f64>() / local.max(1) as f64;
            sum += gradient_weight(local, total) as f64 * mean;
        }
        assert!((sum - global_mean).abs() < 1e-6, "{world} ranks: {sum} vs {global_mean}");
    }
    assert_eq!(gradient_weight(0, 0), 0.0);
}
