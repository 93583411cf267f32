//! The control plane's barrier: every rank tells rank 0 it arrived; rank 0 releases
//! them all once everyone has, or names the ranks that did not arrive in time.

use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::Group;
use crate::error::{Error, Result};
use crate::health::{Failure, seconds};
use crate::wire::Message;

impl Group {
    /// Returns once every rank has called it (the n-th call of each rank meets the n-th
    /// of the others), or fails naming the ranks that did not arrive within the
    /// configured time; a failure of any rank ends it too.
    pub fn barrier(&self) -> Result<()> {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.rank() == 0 { self.lead(epoch) } else { self.follow(epoch) }
    }

    fn lead(&self, epoch: u64) -> Result<()> {
        let mut arrived = vec![false; self.world];
        arrived[0] = true;
        let deadline = Instant::now() + self.shared.config.barrier;
        let all = |arrived: &[bool]| arrived.iter().all(|a| *a);
        if !all(&arrived) {
            let outcome = wait(self, deadline, |peer, message| {
                if message == (Message::Arrive { epoch }) {
                    arrived[peer] = true;
                }
                all(&arrived)
            });
            match outcome {
                Ok(()) => {}
                Err(WaitEnd::Failed(e)) => return Err(e),
                Err(WaitEnd::TimedOut) => {
                    let missing = (0..self.world).filter(|r| !arrived[*r]).collect();
                    let what = format!("did not reach barrier {epoch} within {}", seconds(self.shared.config.barrier));
                    self.shared.fail(Failure { ranks: missing, what });
                    return self.check();
                }
            }
        }
        for (peer, _) in &self.shared.writers {
            self.shared.send(*peer, &Message::Release { epoch });
        }
        Ok(())
    }

    fn follow(&self, epoch: u64) -> Result<()> {
        self.shared.send(0, &Message::Arrive { epoch });
        // Rank 0 names the missing ranks when its own wait ends; wait a little longer.
        let limit = self.shared.config.barrier + self.shared.config.dead_after;
        match wait(self, Instant::now() + limit, |_, message| message == (Message::Release { epoch })) {
            Ok(()) => Ok(()),
            Err(WaitEnd::Failed(e)) => Err(e),
            Err(WaitEnd::TimedOut) => {
                let what = format!("did not release barrier {epoch} within {}", seconds(limit));
                self.shared.fail(Failure { ranks: vec![0], what });
                Err(Error::Peer(self.failure().expect("just recorded")))
            }
        }
    }
}

/// Waits on `rx` until `done` says so, the group fails or `deadline` passes.
fn wait(
    group: &Group,
    deadline: Instant,
    mut done: impl FnMut(usize, Message) -> bool,
) -> std::result::Result<(), WaitEnd> {
    let rx = group.arrivals.lock().unwrap();
    loop {
        group.check().map_err(WaitEnd::Failed)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WaitEnd::TimedOut);
        }
        match rx.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok((peer, message)) => {
                if done(peer, message) {
                    // A failure recorded before the last message came in wins.
                    return group.check().map_err(WaitEnd::Failed);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(WaitEnd::TimedOut),
        }
    }
}

enum WaitEnd {
    Failed(Error),
    TimedOut,
}
