//! The `hybc` library: what the command line (`src/main.rs`) and the Python package
//! share — a sweep run as `hybc sweep` runs it ([`sweep`]: its grid, runs and report, with
//! [`tables`], [`claims`], [`learned`], [`matched`], [`stats`] and [`plot`]), training
//! with a progress display ([`train`]) and the signals that stop both ([`interrupt`]);
//! [`mps`] lets a sweep's shards share a GPU at once.
//! Where a sweep's words go is a [`sweep::Console`]: the terminal, or a caller's.

pub mod claims;
pub mod deadline;
pub mod interrupt;
pub mod learned;
pub mod matched;
pub mod mps;
pub mod plot;
pub mod stats;
pub mod sweep;
pub mod tables;
pub mod train;

use hyb_compiler::ir::Model;
use hyb_driver::Target;

/// The target a command runs on: `--target`, else the train block's `target`, else the CPU.
pub fn chosen_target(flag: Option<Target>, model: &Model) -> Target {
    flag.or_else(|| model.train.as_ref().and_then(|train| train.target)).unwrap_or(Target::Cpu)
}
