//! SIGINT and SIGTERM during `hybc train` / `hybc sweep`: the first asks the training
//! loop to stop at the next step boundary (it writes a checkpoint there, and the command
//! exits with 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM); a second
//! ends the process at once with that status, whatever it is doing (checkpoints are
//! written atomically, so the last complete one stays).
//!
//! Other commands keep the default disposition: a signal ends them at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
        for signal in [SIGINT, SIGTERM] {
            // In order: a signal that finds the request already set exits; else it
            // records itself (first) and sets the request.
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, interrupt.requested.clone())?;
            signal_hook::flag::register_usize(signal, interrupt.signal.clone(), signal as usize)?;
            signal_hook::flag::register(signal, interrupt.requested.clone())?;
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
