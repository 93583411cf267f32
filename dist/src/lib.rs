//! Placeholder; the crate doc is written at the end.
pub mod error;
pub mod launch;
pub mod slurm;

pub use error::{Error, Result};
pub use launch::{Launch, Master, Source};

/// Placeholder until the watchdog exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure;
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failure")
    }
}
pub mod bucket;
pub mod collective;
pub mod shard;
pub mod placement;
