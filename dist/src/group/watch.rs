//! The threads that watch a group: one reader per connection (heartbeats, aborts,
//! barrier messages; a closed or silent connection is a failure) and the ticker (this
//! rank's heartbeats and, on rank 0, the hang watch).

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Shared;
use crate::health::{Failure, Stall, seconds};
use crate::wire::{Message, timed_out};

pub(super) fn reader(
    shared: Arc<Shared>,
    peer: usize,
    stream: TcpStream,
    tx: Sender<(usize, Message)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || read_loop(&shared, peer, stream, &tx))
}

/// Reads one connection until it closes, recording what it says.
fn read_loop(shared: &Arc<Shared>, peer: usize, mut stream: TcpStream, tx: &Sender<(usize, Message)>) {
    loop {
        let message = match Message::read(&mut stream) {
            Ok(message) => message,
            Err(e) => return lost(shared, peer, &e),
        };
        match message {
            Message::Heartbeat { progress } => {
                if let Some(p) = shared.peers.lock().unwrap()[peer].as_mut() {
                    *p = progress;
                }
            }
            Message::Abort { ranks, what } => {
                let failure = Failure { ranks: ranks.iter().map(|r| *r as usize).collect(), what };
                shared.fail(failure);
            }
            Message::Bye => shared.peers.lock().unwrap()[peer] = None,
            message @ (Message::Arrive { .. } | Message::Release { .. }) => {
                let _ = tx.send((peer, message));
            }
            _ => {}
        }
    }
}

/// A connection that failed: a failure unless this group or the peer is finishing.
fn lost(shared: &Arc<Shared>, peer: usize, e: &std::io::Error) {
    if shared.closing() || shared.peers.lock().unwrap()[peer].is_none() {
        return;
    }
    let what = if timed_out(e) {
        format!(
            "stopped answering: nothing heard for {} (the process is stopped or stuck, its host is down, or the network is cut)",
            seconds(shared.config.dead_after)
        )
    } else {
        "stopped: its connection closed (the process exited or was killed)".to_string()
    };
    shared.fail(Failure { ranks: vec![peer], what });
}

/// The heartbeat and, on rank 0, the hang watch, until the group closes.
pub(super) fn tick(shared: Arc<Shared>) {
    let mut stall = Stall::new(Instant::now());
    while !shared.closing() {
        let beat = Message::Heartbeat { progress: shared.progress.load(Ordering::SeqCst) };
        for (peer, _) in &shared.writers {
            shared.send(*peer, &beat);
        }
        // One process has no one to stop: its hangs are its own to see.
        if let (0, Some(hang_after), true) = (shared.rank, shared.config.hang_after, !shared.writers.is_empty()) {
            let mut progress = shared.peers.lock().unwrap().clone();
            progress[0] = Some(shared.progress.load(Ordering::SeqCst));
            if let Some(failure) = stall.observe(&progress, Instant::now(), hang_after) {
                shared.fail(failure);
            }
        }
        sleep_unless_closing(&shared, shared.config.heartbeat_every);
    }
}

fn sleep_unless_closing(shared: &Shared, total: Duration) {
    let end = Instant::now() + total;
    while !shared.closing() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10).min(end.saturating_duration_since(Instant::now())));
    }
}
