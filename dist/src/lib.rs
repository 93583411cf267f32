//! Placeholder; the crate doc is written at the end.
pub mod bucket;
pub mod collective;
pub mod error;
pub mod group;
pub mod health;
pub mod launch;
pub mod placement;
pub mod rendezvous;
pub mod shard;
pub mod slurm;
pub mod wire;

pub use error::{Error, Result};
pub use group::{Config, EXIT_PEER_FAILED, Group};
pub use health::Failure;
pub use launch::{Launch, Master, Source};
pub use rendezvous::rendezvous;
pub mod spawn;
pub use collective::{Collective, Reducer, Segment};
