//! Which GPU each process uses. `hybc sweep --target cuda`: independent runs placed
//! round robin over the visible GPUs, each child process given one GPU through
//! `CUDA_VISIBLE_DEVICES` ([`place`]). A rank of a data-parallel run: the device ordinal
//! its local rank selects among those it sees ([`device_for_rank`]).
//!
//! `CUDA_VISIBLE_DEVICES` holds indices, `GPU-…` UUIDs or `MIG-…` ids, comma-separated;
//! a child inherits the parent's entry (with `2,3` visible, the first child gets `2`).

use crate::error::{Error, Result};

/// The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` entries: the variable's
/// entries where it is set (empty: none), else `0 .. device_count`.
pub fn visible_gpus(cuda_visible_devices: Option<&str>, device_count: usize) -> Vec<String> {
    match cuda_visible_devices {
        Some(list) => list.split(',').map(str::trim).take_while(|e| !e.is_empty()).map(String::from).collect(),
        None => (0..device_count).map(|i| i.to_string()).collect(),
    }
}

/// Per job (a sweep's shard, in order) the `CUDA_VISIBLE_DEVICES` its process gets:
/// job `j` on GPU `j mod G`, so up to G jobs run on distinct GPUs and more share them
/// evenly.
pub fn place(jobs: usize, gpus: &[String]) -> Result<Vec<String>> {
    if gpus.is_empty() {
        return Err(Error::Invalid(
            "no GPU is visible (CUDA_VISIBLE_DEVICES is empty or the driver finds none): a sweep on cuda needs one"
                .into(),
        ));
    }
    Ok((0..jobs).map(|j| gpus[j % gpus.len()].clone()).collect())
}

/// The jobs a sweep on `gpus` GPUs runs at once when `--jobs` is not given: one per GPU.
pub fn default_jobs(gpus: usize) -> usize {
    gpus.max(1)
}

/// The device ordinal (as the CUDA driver counts the visible GPUs) that local rank
/// `local_rank` uses when this process sees `visible` GPUs: its local rank, or the one
/// GPU when the launcher bound each task to its own (`srun --gpus-per-task=1`).
pub fn device_for_rank(local_rank: usize, visible: usize) -> Result<usize> {
    match visible {
        0 => Err(Error::Launch(format!("local rank {local_rank} sees no GPU (CUDA_VISIBLE_DEVICES or the driver)"))),
        1 => Ok(0),
        n if local_rank < n => Ok(local_rank),
        n => Err(Error::Launch(format!(
            "local rank {local_rank} needs GPU {local_rank}, but this process sees {n} GPUs: start at most {n} ranks per host, or give each its own GPU"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn visible_gpus_read_the_variable_or_count() {
        assert_eq!(visible_gpus(None, 3), strings(&["0", "1", "2"]));
        assert_eq!(visible_gpus(Some("2,3"), 8), strings(&["2", "3"]));
        assert_eq!(visible_gpus(Some(" GPU-ab12 , MIG-cd34"), 8), strings(&["GPU-ab12", "MIG-cd34"]));
        assert_eq!(visible_gpus(Some(""), 8), Vec::<String>::new());
        // CUDA stops at the first empty entry.
        assert_eq!(visible_gpus(Some("1,,2"), 8), strings(&["1"]));
    }

    #[test]
    fn jobs_go_round_robin_over_the_parents_gpus() {
        let gpus = strings(&["2", "3", "5"]);
        assert_eq!(place(7, &gpus).unwrap(), strings(&["2", "3", "5", "2", "3", "5", "2"]));
        assert_eq!(place(2, &gpus).unwrap(), strings(&["2", "3"]));
        assert_eq!(place(0, &gpus).unwrap(), Vec::<String>::new());
        let message = place(2, &[]).unwrap_err().to_string();
        assert!(message.starts_with("no GPU is visible"), "{message}");
        assert_eq!(default_jobs(4), 4);
        assert_eq!(default_jobs(0), 1);
    }

    #[test]
    fn ranks_pick_their_gpu() {
        assert_eq!(device_for_rank(3, 8).unwrap(), 3);
        assert_eq!(device_for_rank(3, 1).unwrap(), 0);
        let message = device_for_rank(4, 4).unwrap_err().to_string();
        assert!(message.contains("needs GPU 4, but this process sees 4 GPUs"), "{message}");
        assert!(device_for_rank(0, 0).is_err());
    }
}
