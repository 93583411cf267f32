//! Several GPUs for hyb: everything about data-parallel training that is not a kernel,
//! written and tested without GPUs — the launch (torchrun's and Slurm's variables), the
//! `--gpus N` spawner, the TCP rendezvous that hands out NCCL's id, the watchdog that
//! turns a dead or hung rank into the same clear error on every rank, gradient buckets
//! in the order the backward finishes them, each rank's share of the batch, GPU
//! placement for sweeps, and the collective (NCCL through cudarc, loaded at run time,
//! plus an in-process implementation for tests only).
//!
//! A data-parallel run, in the order the trainer calls it:
//!
//! 1. [`Launch::from_env`]; `device = placement::device_for_rank(local_rank, visible)`.
//! 2. [`rendezvous()`] with [`collective::nccl::unique_id`] as the id maker, then
//!    [`collective::nccl::Nccl::new`] with the id on the rank's GPU and
//!    `group.on_failure(move |_| abort.abort())` with its [`collective::nccl::AbortHandle`].
//! 3. The initial weights broadcast from rank 0 ([`Collective::broadcast`]).
//! 4. Once: the gradients as [`bucket::Gradient`]s, each final after the last backward
//!    instruction writing it ([`bucket::last_writes`]), into a [`Reducer`]. Each step:
//!    the rank's rows ([`shard::rows`]); its weight, the share of the batch's targets
//!    ([`shard::gradient_weight`], [`Reducer::set_weight`]); after every instruction of
//!    the backward [`Reducer::after`] (it issues the buckets that became final);
//!    [`Reducer::finish`]; clipping and AdamW on the summed gradients as on one GPU;
//!    [`Group::set_progress`] once the rank's own work is done, [`Group::check`].
//! 5. Checkpoints written by rank 0 alone, between two [`Group::barrier`]s.
//!
//! `hyb_train::parallel` makes these calls for the training loop; the README (below)
//! has the launch commands and what has run: one rank on an H200, no run of several
//! GPUs yet.
//!
#![doc = include_str!("../README.md")]

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
pub mod spawn;
pub mod wire;

pub use collective::{Collective, Reducer, Segment};
pub use error::{Error, Result};
pub use group::{Config, EXIT_PEER_FAILED, Group};
pub use health::Failure;
pub use launch::{Launch, Master, Source};
pub use rendezvous::rendezvous;
