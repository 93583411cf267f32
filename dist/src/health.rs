//! What a failure is and how a hang is recognised, apart from the threads that watch
//! (see [`crate::group`]): pure functions of what the watchdog observed, so they are
//! tested without sockets or clocks.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::ranks;

/// Some ranks failed: died, stopped answering, stopped making progress, or missed a
/// barrier. Every rank of the run reports the same failure, naming the same ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub ranks: Vec<usize>,
    /// What happened to them, after their names: `stopped: its connection closed …`.
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", ranks(&self.ranks), self.what)
    }
}

/// Seconds as the messages print them: `2.5 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Recognises a hang from the ranks' progress counters (the steps each has finished,
/// which every rank reports in its heartbeats): the slowest counter not moving for
/// `hang_after`. The ranks at that counter are the culprits when others are ahead
/// (they wait for them in a collective); when all are level, every rank is named.
#[derive(Clone, Debug)]
pub struct Stall {
    slowest: u64,
    since: Instant,
}

impl Stall {
    pub fn new(now: Instant) -> Stall {
        Stall { slowest: 0, since: now }
    }

    /// Observes the counters (`None`: a rank that finished cleanly) at `now`.
    pub fn observe(&mut self, progress: &[Option<u64>], now: Instant, hang_after: Duration) -> Option<Failure> {
        let running: Vec<(usize, u64)> = progress.iter().enumerate().filter_map(|(r, p)| p.map(|p| (r, p))).collect();
        let slowest = running.iter().map(|(_, p)| *p).min()?;
        if slowest != self.slowest {
            self.slowest = slowest;
            self.since = now;
            return None;
        }
        let still = now.duration_since(self.since);
        if still < hang_after {
            return None;
        }
        let behind: Vec<usize> = running.iter().filter(|(_, p)| *p == slowest).map(|(r, _)| *r).collect();
        let fastest = running.iter().map(|(_, p)| *p).max().unwrap_or(slowest);
        let what = if fastest == slowest {
            format!(
                "made no progress for {} (all at step {slowest}): a step or a collective is stuck, or one step takes longer than the hang timeout",
                seconds(still)
            )
        } else {
            format!("made no progress for {} (at step {slowest}; others reached {fastest}): it hangs", seconds(still))
        };
        Some(Failure { ranks: behind, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_their_ranks() {
        let failure = Failure { ranks: vec![2, 5], what: "stopped".into() };
        assert_eq!(failure.to_string(), "ranks 2 and 5 stopped");
    }

    #[test]
    fn a_rank_left_behind_is_named_once_the_timeout_passes() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let limit = Duration::from_secs(10);
        let mut stall = Stall::new(t0);
        assert_eq!(stall.observe(&[Some(1), Some(1), Some(1)], at(1), limit), None);
        assert_eq!(stall.observe(&[Some(2), Some(1), Some(2)], at(5), limit), None);
        assert_eq!(stall.observe(&[Some(2), Some(1), Some(2)], at(10), limit), None);
        let failure = stall.observe(&[Some(2), Some(1), Some(2)], at(11), limit).expect("a hang");
        assert_eq!(failure.ranks, [1]);
        assert_eq!(failure.to_string(), "rank 1 made no progress for 10.0 s (at step 1; others reached 2): it hangs");
    }

    #[test]
    fn progress_resets_the_clock_and_finished_ranks_are_ignored() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let limit = Duration::from_secs(10);
        let mut stall = Stall::new(t0);
        assert_eq!(stall.observe(&[Some(0), Some(0)], at(9), limit), None);
        assert_eq!(stall.observe(&[Some(1), Some(1)], at(15), limit), None);
        assert_eq!(stall.observe(&[Some(1), Some(1)], at(24), limit), None);
        let failure = stall.observe(&[Some(1), Some(1), None], at(26), limit).expect("a hang");
        assert_eq!(failure.ranks, [0, 1]);
        assert!(failure.what.starts_with("made no progress for 11.0 s (all at step 1)"), "{}", failure.what);
        assert_eq!(stall.observe(&[None, None], at(100), limit), None);
    }
}
