//! SIGINT and SIGTERM during `hybc train` / `hybc sweep`: the first asks the training
//! loop to stop at the next step boundary (it writes a checkpoint there, and the command
//! exits with 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM); a second,
//! [`DUPLICATE`] or more after the first, ends the process at once with that status,
//! whatever it is doing (checkpoints are written atomically, so the last complete one
//! stays). Signals closer together are one request delivered twice: GNU `timeout`
//! signals the command and then its process group, so the command receives its SIGTERM
//! twice within microseconds (or once, when the two coalesce) — which used to end a run
//! cut by `timeout` without its checkpoint, or not, by chance.
//!
//! Other commands keep the default disposition: a signal ends them at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Signals within this time of the first are the same request.
pub const DUPLICATE: Duration = Duration::from_millis(200);

/// What a signal does, given when the first one came (nanoseconds on the monotonic
/// clock; none yet) and when this one came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask the loop to stop at the next step boundary (the first request).
    Request,
    /// The first request again, delivered twice: nothing more.
    Duplicate,
    /// A second request: end the process now.
    Exit,
}

pub fn action(first_ns: Option<u64>, now_ns: u64) -> Action {
    match first_ns {
        None => Action::Request,
        Some(first) if now_ns.saturating_sub(first) < DUPLICATE.as_nanos() as u64 => Action::Duplicate,
        Some(_) => Action::Exit,
    }
}

/// The monotonic clock in nanoseconds, at least 1 (0 means "no signal yet");
/// `clock_gettime` is async-signal-safe.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64).max(1)
}

/// The stop request the handlers set, and which signal set it.
#[derive(Clone)]
pub struct Interrupt {
    /// Handed to the training loop (`hyb_train::run::Settings::stop`).
    pub requested: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers for this process.
    pub fn install() -> std::io::Result<Interrupt> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let interrupt =
            Interrupt { requested: Arc::new(AtomicBool::new(false)), signal: Arc::new(AtomicUsize::new(0)) };
        let first = Arc::new(AtomicU64::new(0));
        for signal in [SIGINT, SIGTERM] {
            let (requested, received, first) = (interrupt.requested.clone(), interrupt.signal.clone(), first.clone());
            let handler = move || {
                let now = monotonic_ns();
                let seen = first.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst).err();
                match action(seen, now) {
                    Action::Request => {
                        received.store(signal as usize, Ordering::SeqCst);
                        requested.store(true, Ordering::SeqCst);
                    }
                    Action::Duplicate => {}
                    Action::Exit => signal_hook::low_level::exit(128 + signal),
                }
            };
            // SAFETY: the handler only reads the clock, uses atomics and calls `_exit`,
            // all async-signal-safe.
            unsafe { signal_hook::low_level::register(signal, handler) }?;
        }
        Ok(interrupt)
    }

    /// A stop request without signal handlers, set by its caller (Python's interrupt
    /// or a callback that raised): it reads as SIGINT's.
    pub fn flag(requested: Arc<AtomicBool>) -> Interrupt {
        Interrupt { requested, signal: Arc::new(AtomicUsize::new(0)) }
    }

    /// The signal that asked to stop, as its name and the exit status it calls for.
    pub fn received(&self) -> Option<(&'static str, u8)> {
        if !self.requested.load(Ordering::SeqCst) {
            return None;
        }
        match self.signal.load(Ordering::SeqCst) as i32 {
            signal_hook::consts::SIGTERM => Some(("SIGTERM", 143)),
            _ => Some(("SIGINT", 130)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_twice_within_the_window_is_one_request() {
        let ms = 1_000_000;
        assert_eq!(action(None, 5), Action::Request);
        assert_eq!(action(Some(5), 5), Action::Duplicate);
        assert_eq!(action(Some(5), 5 + 199 * ms), Action::Duplicate);
        assert_eq!(action(Some(5), 5 + 200 * ms), Action::Exit);
        // A clock read before the first's (another thread's handler) is no exit.
        assert_eq!(action(Some(5 * ms), ms), Action::Duplicate);
    }
}
