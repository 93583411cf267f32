//! The ranks of a run after the rendezvous: a star of TCP connections around rank 0
//! that carries heartbeats, barriers and aborts (never gradients), and the watchdog
//! that turns a dead or hung rank into the same error on every rank.
//!
//! - **Death.** A rank's connection closing without a goodbye (the process exited or was
//!   killed) or silent for `dead_after` (stopped, host down, network cut) is a failure,
//!   seen at once by rank 0 (for any rank) or by the others (for rank 0).
//! - **Hang.** Each rank reports its progress (steps finished) in its heartbeats, which
//!   a thread beside the main loop sends; rank 0 names the ranks whose progress stays
//!   behind for `hang_after` ([`crate::health::Stall`]).
//! - **Stopping.** Rank 0 relays every failure to the others (`Abort`); each rank runs
//!   its failure hooks (NCCL's abort, so a collective waiting for a dead peer returns),
//!   and [`Group::check`] returns the failure at the loop's next step boundary. A rank
//!   whose main thread does not get there (stuck in a collective or a kernel) is ended
//!   after `exit_after` with the failure on stderr and exit code [`EXIT_PEER_FAILED`].

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::health::Failure;
use crate::wire::Message;

/// The exit code of a rank the watchdog ends because another failed.
pub const EXIT_PEER_FAILED: i32 = 3;

/// The control plane's timeouts.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long the rendezvous waits for every rank (and a rank for rank 0).
    pub rendezvous: Duration,
    /// How often each rank says it is alive.
    pub heartbeat_every: Duration,
    /// A rank silent this long is dead.
    pub dead_after: Duration,
    /// The slowest rank's progress unchanged this long is a hang (from the rendezvous
    /// on, so it must exceed the first step with its compilation); `None`: not watched.
    pub hang_after: Option<Duration>,
    /// How long a barrier waits for every rank.
    pub barrier: Duration,
    /// After a failure, end this process if it has not dropped its [`Group`] by then;
    /// `None` leaves it to the caller (threads in tests).
    pub exit_after: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rendezvous: Duration::from_secs(300),
            heartbeat_every: Duration::from_secs(1),
            dead_after: Duration::from_secs(30),
            hang_after: Some(Duration::from_secs(900)),
            barrier: Duration::from_secs(600),
            exit_after: Some(Duration::from_secs(30)),
        }
    }
}

type Hook = Box<dyn Fn(&Failure) + Send>;

/// What the threads of a group share.
struct Shared {
    rank: usize,
    config: Config,
    failure: Mutex<Option<Failure>>,
    hooks: Mutex<Vec<Hook>>,
    closing: AtomicBool,
    progress: AtomicU64,
    /// Per rank: its last reported progress, `None` once it said goodbye.
    peers: Mutex<Vec<Option<u64>>>,
    /// Writers to the connected ranks (rank 0: all others; the others: rank 0).
    writers: Vec<(usize, Mutex<TcpStream>)>,
}

/// This process's place among the ranks once the rendezvous is done.
pub struct Group {
    shared: Arc<Shared>,
    world: usize,
    epoch: AtomicU64,
    arrivals: Mutex<Receiver<(usize, Message)>>,
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn send(&self, to: usize, message: &Message) {
        if let Some((_, writer)) = self.writers.iter().find(|(r, _)| *r == to) {
            // A failed write shows as the reader's closed connection or silence.
            let _ = message.write(&mut *writer.lock().unwrap());
        }
    }

    fn fail(self: &Arc<Self>, failure: Failure) {
        // The hooks' lock first, as `Group::on_failure` takes it: each hook runs once.
        let hooks = self.hooks.lock().unwrap();
        {
            let mut slot = self.failure.lock().unwrap();
            if slot.is_some() || self.closing.load(Ordering::SeqCst) {
                return;
            }
            // Rank 0 tells the others before its own loop can see the failure (and
            // close the connections): under the lock `check` takes.
            if self.rank == 0 {
                let ranks = failure.ranks.iter().map(|r| *r as u32).collect();
                let abort = Message::Abort { ranks, what: failure.what.clone() };
                // The culprits too: a hung rank is alive, and stops on its own watchdog.
                for (peer, _) in &self.writers {
                    self.send(*peer, &abort);
                }
            }
            *slot = Some(failure.clone());
        }
        for hook in hooks.iter() {
            hook(&failure);
        }
        drop(hooks);
        if let Some(grace) = self.config.exit_after {
            let shared = self.clone();
            std::thread::spawn(move || {
                std::thread::sleep(grace);
                if !shared.closing.load(Ordering::SeqCst) {
                    eprintln!("hyb-dist: rank {}: {failure}; stopping this rank", shared.rank);
                    std::process::exit(EXIT_PEER_FAILED);
                }
            });
        }
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

impl Group {
    /// The group of rank `rank` of `world` over the rendezvous' connections (rank 0:
    /// one per other rank; the others: one to rank 0), each `(peer rank, stream)`.
    pub(crate) fn start(rank: usize, world: usize, config: Config, streams: Vec<(usize, TcpStream)>) -> Result<Group> {
        let io =
            |e: std::io::Error| Error::Rendezvous(format!("rank {rank}: a connection failed as the run started: {e}"));
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for (peer, stream) in streams {
            stream.set_read_timeout(Some(config.dead_after)).map_err(io)?;
            stream.set_write_timeout(Some(config.dead_after)).map_err(io)?;
            let _ = stream.set_nodelay(true);
            readers.push((peer, stream.try_clone().map_err(io)?));
            writers.push((peer, Mutex::new(stream)));
        }
        let shared = Arc::new(Shared {
            rank,
            config,
            failure: Mutex::new(None),
            hooks: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            progress: AtomicU64::new(0),
            peers: Mutex::new(vec![Some(0); world]),
            writers,
        });
        let (tx, rx) = mpsc::channel();
        let mut threads: Vec<JoinHandle<()>> =
            readers.into_iter().map(|(peer, stream)| watch::reader(shared.clone(), peer, stream, tx.clone())).collect();
        let ticker = shared.clone();
        threads.push(std::thread::spawn(move || watch::tick(ticker)));
        Ok(Group { shared, world, epoch: AtomicU64::new(0), arrivals: Mutex::new(rx), threads })
    }

    pub fn rank(&self) -> usize {
        self.shared.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// The failure seen so far, if any.
    pub fn failure(&self) -> Option<Failure> {
        self.shared.failure.lock().unwrap().clone()
    }

    /// `Err` once any rank has failed: call at every step boundary.
    pub fn check(&self) -> Result<()> {
        self.failure().map_or(Ok(()), |f| Err(Error::Peer(f)))
    }

    /// Reports this rank's progress for hang detection: a counter that only grows, the
    /// steps whose own work this rank has finished (set it before waiting for the
    /// others, so a rank that hangs stays behind them). A long phase without steps (an
    /// evaluation, a checkpoint) must move it too, or `hang_after` must exceed it.
    pub fn set_progress(&self, steps: u64) {
        self.shared.progress.store(steps, Ordering::SeqCst);
    }

    /// Runs `hook` on the failure, once, from the thread that sees it (at once if one
    /// was already seen): the place to abort a communicator that may be waiting.
    pub fn on_failure(&self, hook: impl Fn(&Failure) + Send + 'static) {
        let mut hooks = self.shared.hooks.lock().unwrap();
        if let Some(failure) = self.failure() {
            hook(&failure);
        }
        hooks.push(Box::new(hook));
    }

    /// Reports a failure this rank found itself (an NCCL error, a non-finite loss):
    /// every rank stops with it.
    pub fn fail(&self, what: impl Into<String>) {
        self.shared.fail(Failure { ranks: vec![self.rank()], what: what.into() });
        if self.rank() != 0 {
            let failure = self.failure().expect("just recorded");
            let abort = Message::Abort { ranks: failure.ranks.iter().map(|r| *r as u32).collect(), what: failure.what };
            self.shared.send(0, &abort);
        }
    }
}

mod barrier;
mod watch;

impl Drop for Group {
    /// Says goodbye (so no rank takes this one's end for a failure), closes the
    /// connections and joins the threads.
    fn drop(&mut self) {
        let failed = self.failure().is_some();
        self.shared.closing.store(true, Ordering::SeqCst);
        for (peer, writer) in &self.shared.writers {
            if !failed {
                self.shared.send(*peer, &Message::Bye);
            }
            let _ = writer.lock().unwrap().shutdown(Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
