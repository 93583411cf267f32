//! Data parallelism on the runtime: one [`Rank`] per device, each training the compiled
//! step on its rows of the global batch, its gradients summed across the ranks in
//! buckets as the backward finishes them ([`hyb_dist::Reducer`]), so clipping and AdamW
//! see the single-device gradient and every rank takes the same update.
//!
//! The arithmetic is the single-device step's: rank `r` draws rows `r·B/W ..` of the
//! batch a single device would draw for the step ([`hyb_dist::shard::rows`]), its mean
//! loss and gradient weighted by its share of the batch's targets
//! ([`hyb_dist::shard::gradient_weight`]), so the weighted sums are the whole batch's
//! mean loss and gradient at any rank count.
//!
//! The step runs in ranges that end where a bucket becomes final, each range one
//! recording of the device (a CUDA graph); after each, the bucket's sum is issued
//! ([`Trainer::forward_backward_in_ranges`]). The collective acts on the device's memory:
//! [`OnGpu`] is NCCL on a GPU trainer's buffers in place, on a stream of its own, so
//! the backward goes on while a bucket is summed; [`OnDevice`] adapts a collective over
//! host vectors (the in-process one the tests use) by copying each bucket to the host
//! and back.

use hyb_dist::bucket::{Gradient, Location};
use hyb_dist::collective::nccl::{AbortHandle, DeviceBuffers, Nccl};
use hyb_dist::{Collective, Group, Reducer, Segment, shard};
use hyb_runtime::device::{Device, View, f32_bytes, read_f32};
use hyb_runtime::{AdamW, StepStats, Trainer};

use crate::data::Batch;

/// A collective over host vectors acting on a device's memory: each bucket read to the
/// host, reduced, written back.
pub struct OnDevice<C> {
    pub inner: C,
}

/// A segment of device memory as a view of f32.
fn view(segment: &Segment) -> View {
    View::floats(hyb_runtime::device::BufferId(segment.buffer), segment.offset, segment.elements())
}

/// A view of f32 on the device as a collective's segment.
fn segment(view: &View) -> Segment {
    Segment { buffer: view.buffer.0, offset: view.offset, bytes: view.bytes() }
}

impl<C: Collective<Memory = [Vec<f32>]>> OnDevice<C> {
    /// Runs `reduce` on the bucket's values copied to the host, and writes them back.
    fn through_host(
        &mut self,
        device: &mut (dyn Device + 'static),
        bucket: &[Segment],
        reduce: impl FnOnce(&mut C, &mut [Vec<f32>], &[Segment]) -> hyb_dist::Result<()>,
    ) -> hyb_dist::Result<()> {
        let mut host: Vec<Vec<f32>> = bucket.iter().map(|s| read_f32(device, &view(s))).collect();
        let local: Vec<Segment> =
            bucket.iter().enumerate().map(|(i, s)| Segment { buffer: i, offset: 0, bytes: s.bytes }).collect();
        reduce(&mut self.inner, &mut host, &local)?;
        for (segment, values) in bucket.iter().zip(&host) {
            device.write(&view(segment), f32_bytes(values));
        }
        Ok(())
    }
}

impl<C: Collective<Memory = [Vec<f32>]>> Collective for OnDevice<C> {
    type Memory = dyn Device;

    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn world(&self) -> usize {
        self.inner.world()
    }

    fn all_reduce_sum(&mut self, device: &mut (dyn Device + 'static), bucket: &[Segment]) -> hyb_dist::Result<()> {
        self.through_host(device, bucket, |c, host, local| c.all_reduce_sum(host, local))
    }

    fn all_reduce_weighted_sum(
        &mut self,
        device: &mut (dyn Device + 'static),
        bucket: &[Segment],
        weight: f32,
    ) -> hyb_dist::Result<()> {
        self.through_host(device, bucket, |c, host, local| c.all_reduce_weighted_sum(host, local, weight))
    }

    fn broadcast(
        &mut self,
        device: &mut (dyn Device + 'static),
        segments: &[Segment],
        root: usize,
    ) -> hyb_dist::Result<()> {
        self.through_host(device, segments, |c, host, local| c.broadcast(host, local, root))
    }

    fn barrier(&mut self) -> hyb_dist::Result<()> {
        self.inner.barrier()
    }

    fn join(&mut self) -> hyb_dist::Result<()> {
        self.inner.join()
    }

    fn any(&mut self, flag: bool) -> hyb_dist::Result<bool> {
        self.inner.any(flag)
    }
}

/// NCCL on a GPU trainer's buffers, in place: the device handed to each call is the
/// trainer's, whose buffers this holds by address.
pub struct OnGpu {
    nccl: Nccl,
    buffers: DeviceBuffers,
}

impl OnGpu {
    /// Rank `rank` of `world` joins the communicator of rank 0's `id` on `trainer`'s
    /// GPU (its context current on this thread, as the trainer's creation left it).
    pub fn new(trainer: &Trainer, id: &[u8], rank: usize, world: usize) -> Result<OnGpu, String> {
        let raw = trainer.raw_memory().ok_or_else(|| {
            format!("NCCL sums gradients on GPUs: train on --target cuda (this trainer runs on {})", trainer.device())
        })?;
        // SAFETY: the trainer's live buffers; it allocates nothing more and outlives the
        // collective in the training loop (both live for the run).
        let buffers = unsafe { DeviceBuffers::new(raw.buffers) };
        let nccl = Nccl::new(id, rank, world, raw.stream).map_err(|e| e.to_string())?;
        Ok(OnGpu { nccl, buffers })
    }

    /// What the watchdog calls when a rank fails.
    pub fn abort_handle(&self) -> AbortHandle {
        self.nccl.abort_handle()
    }
}

impl Collective for OnGpu {
    type Memory = dyn Device;

    fn rank(&self) -> usize {
        self.nccl.rank()
    }

    fn world(&self) -> usize {
        self.nccl.world()
    }

    fn all_reduce_sum(&mut self, _: &mut (dyn Device + 'static), bucket: &[Segment]) -> hyb_dist::Result<()> {
        self.nccl.all_reduce_sum(&mut self.buffers, bucket)
    }

    fn all_reduce_weighted_sum(
        &mut self,
        _: &mut (dyn Device + 'static),
        bucket: &[Segment],
        weight: f32,
    ) -> hyb_dist::Result<()> {
        self.nccl.all_reduce_weighted_sum(&mut self.buffers, bucket, weight)
    }

    fn broadcast(&mut self, _: &mut (dyn Device + 'static), segments: &[Segment], root: usize) -> hyb_dist::Result<()> {
        self.nccl.broadcast(&mut self.buffers, segments, root)
    }

    fn barrier(&mut self) -> hyb_dist::Result<()> {
        self.nccl.barrier()
    }

    fn join(&mut self) -> hyb_dist::Result<()> {
        self.nccl.join()
    }

    fn any(&mut self, flag: bool) -> hyb_dist::Result<bool> {
        self.nccl.any(flag)
    }
}

/// What the training loop asks of a data-parallel rank ([`crate::run::train_ranked`]).
pub trait Parallel {
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// This rank's rows of the global `batch` forward and backward, the gradients summed
    /// over the ranks, then their norm: the whole batch's loss and norm, the same on
    /// every rank; [`Trainer::apply_update`] completes the step.
    fn forward_backward_norm(
        &mut self,
        trainer: &mut Trainer,
        batch: &Batch,
        adamw: &AdamW,
    ) -> Result<StepStats, String>;
    /// Whether any rank asks to stop (each passes its own wish).
    fn any(&mut self, stop: bool) -> Result<bool, String>;
    /// Rank 0's parameters and optimizer state on every rank.
    fn broadcast_state(&mut self, trainer: &mut Trainer) -> Result<(), String>;
    /// Tells the other ranks that this one failed, and why: they stop with it.
    fn fail(&self, what: &str);
}

/// One rank of a data-parallel run: its collective, its step's gradient buckets and
/// where the step's ranges end, and (between processes) its group's watchdog.
pub struct Rank<C> {
    collective: C,
    reducer: Reducer,
    /// The instructions after which a bucket is due, in order.
    stops: Vec<usize>,
    /// The bucket size asked for.
    bucket_bytes: usize,
    group: Option<Group>,
}

impl<C: Collective<Memory = dyn Device>> Rank<C> {
    /// The rank of `collective` training `trainer`'s step, its gradients in buckets of
    /// about `bucket_bytes`.
    pub fn new(trainer: &Trainer, collective: C, bucket_bytes: usize) -> Result<Rank<C>, String> {
        let places = trainer.gradient_places();
        let gradients: Vec<Gradient> = places
            .iter()
            .map(|p| Gradient { param: p.param, bytes: p.view.bytes(), final_after: p.final_after })
            .collect();
        let locate = |param: usize| Location { buffer: places[param].view.buffer.0, offset: places[param].view.offset };
        let reducer = Reducer::new(&gradients, bucket_bytes, locate).map_err(|e| e.to_string())?;
        let mut stops: Vec<usize> = reducer.buckets().iter().map(|b| b.final_after).collect();
        stops.dedup();
        Ok(Rank { collective, reducer, stops, bucket_bytes, group: None })
    }

    /// The group whose watchdog this rank reports its progress to and checks each step.
    pub fn with_group(self, group: Group) -> Rank<C> {
        Rank { group: Some(group), ..self }
    }

    /// How many buckets a step sums, and the size each was made up to.
    pub fn buckets(&self) -> (usize, usize) {
        (self.reducer.buckets().len(), self.bucket_bytes)
    }

    /// One whole step of the global `batch` (every rank passes the same one): this
    /// rank's rows forward and backward, the gradients summed as they become final,
    /// then clipping and AdamW at `lr`. Returns the whole batch's loss and gradient norm.
    pub fn step(&mut self, trainer: &mut Trainer, batch: &Batch, adamw: &AdamW, lr: f64) -> Result<StepStats, String> {
        let stats = Parallel::forward_backward_norm(self, trainer, batch, adamw)?;
        trainer.apply_update(adamw, lr);
        Ok(stats)
    }

    fn failed(&self, e: impl std::fmt::Display) -> String {
        let what = format!("rank {}: {e}", self.collective.rank());
        match &self.group {
            // The watchdog's failure names the first rank that failed: it wins.
            Some(group) => group.failure().map_or(what, |f| f.to_string()),
            None => what,
        }
    }
}

impl<C: Collective<Memory = dyn Device>> Parallel for Rank<C> {
    fn rank(&self) -> usize {
        self.collective.rank()
    }

    fn world(&self) -> usize {
        self.collective.world()
    }

    fn forward_backward_norm(
        &mut self,
        trainer: &mut Trainer,
        batch: &Batch,
        adamw: &AdamW,
    ) -> Result<StepStats, String> {
        if let Some(group) = &self.group {
            group.check().map_err(|e| e.to_string())?;
        }
        let (rank, world) = (self.collective.rank(), self.collective.world());
        let rows_of = batch.tokens.len() / batch.seq_len;
        let rows = shard::rows(rows_of, rank, world).map_err(|e| e.to_string())?;
        let tokens = shard::slice_rows(&batch.tokens, batch.seq_len, rows.clone());
        let targets = shard::slice_rows(&batch.targets, batch.seq_len, rows);
        let counted = |t: &[i32]| t.iter().filter(|t| **t >= 0).count();
        let weight = shard::gradient_weight(counted(targets), counted(&batch.targets));
        self.reducer.set_weight(weight);
        let (reducer, collective) = (&mut self.reducer, &mut self.collective);
        let mut after = |instruction: usize, device: &mut (dyn Device + 'static)| {
            reducer.after(instruction, collective, device).map_err(|e| e.to_string())
        };
        let inputs = hyb_runtime::Batch { tokens, targets };
        let ran = trainer.forward_backward_in_ranges(&inputs, &self.stops, &mut after);
        ran.map_err(|e| self.failed(e))?;
        self.reducer.finish().map_err(|e| self.failed(e))?;
        let loss = [segment(&trainer.loss_place())];
        let summed = self.collective.all_reduce_weighted_sum(trainer.device_mut(), &loss, weight);
        summed.and_then(|()| self.collective.join()).map_err(|e| self.failed(e))?;
        let stats = trainer.norm_and_loss(adamw);
        if let Some(group) = &self.group {
            group.set_progress(trainer.step + 1);
        }
        Ok(stats)
    }

    fn any(&mut self, stop: bool) -> Result<bool, String> {
        self.collective.any(stop).map_err(|e| self.failed(e))
    }

    fn broadcast_state(&mut self, trainer: &mut Trainer) -> Result<(), String> {
        let segments: Vec<Segment> = trainer.state_places().iter().map(segment).collect();
        let sent = self.collective.broadcast(trainer.device_mut(), &segments, 0);
        sent.and_then(|()| self.collective.barrier()).map_err(|e| self.failed(e))
    }

    fn fail(&self, what: &str) {
        if let Some(group) = &self.group
            && group.failure().is_none()
        {
            group.fail(what);
        }
    }
}

/// Gradient buckets of 25 MiB, as PyTorch's DDP makes them: large enough for NCCL's
/// bandwidth, small enough that the first is summed while most of the backward remains.
pub const BUCKET_BYTES: usize = 25 << 20;

/// The bucket size: `HYB_BUCKET_MIB` where set (as DDP's `bucket_cap_mb`; a bucket
/// holds at least one gradient), else [`BUCKET_BYTES`].
pub fn bucket_bytes() -> Result<usize, String> {
    match std::env::var("HYB_BUCKET_MIB") {
        Err(_) => Ok(BUCKET_BYTES),
        Ok(text) => match text.parse::<f64>() {
            Ok(mib) if mib > 0.0 && mib.is_finite() => Ok(hyb_dist::bucket::mib(mib).max(4)),
            _ => Err(format!("HYB_BUCKET_MIB={text}: a positive number of MiB")),
        },
    }
}

/// A process that has found the others of its run: the group, NCCL's id and the run
/// directory (rank 0's).
pub struct Joined {
    pub group: Group,
    id: Vec<u8>,
    pub out: std::path::PathBuf,
}

/// Joins the run `launch` describes from a GPU process: selects the rank's GPU among
/// those it sees, then the rendezvous, in which rank 0 hands out NCCL's id and its run
/// directory `out` (the others' `out` is not read).
pub fn join(launch: &hyb_dist::Launch, target: hyb_target::Target, out: &std::path::Path) -> Result<Joined, String> {
    if !matches!(target, hyb_target::Target::Cuda { .. }) {
        return Err(format!(
            "{}: data-parallel training runs on GPUs, over NCCL: train on --target cuda (the target is {target})",
            launch.describe()
        ));
    }
    let visible = hyb_runtime::cuda::device_count();
    let ordinal = hyb_dist::placement::device_for_rank(launch.local_rank, visible).map_err(|e| e.to_string())?;
    hyb_runtime::cuda::select(ordinal);
    let config = hyb_dist::Config::default();
    let path = out.to_str().ok_or_else(|| format!("the run directory `{}` is not UTF-8", out.display()))?;
    let make_id = || {
        let mut id = hyb_dist::collective::nccl::unique_id()?;
        id.extend_from_slice(path.as_bytes());
        Ok(id)
    };
    let (group, payload) = hyb_dist::rendezvous(launch, &config, make_id).map_err(|e| e.to_string())?;
    let (id, path) = payload.split_at(hyb_dist::collective::nccl::ID_BYTES.min(payload.len()));
    let out = String::from_utf8(path.to_vec()).map_err(|_| "rank 0 sent a run directory that is not UTF-8")?;
    Ok(Joined { group, id: id.to_vec(), out: out.into() })
}

/// The rank of a joined process training `trainer` (on its GPU): NCCL's communicator
/// on the trainer's buffers, aborted when the group sees a rank fail; rank 0's state
/// copied to every rank.
pub fn start(trainer: &mut Trainer, joined: Joined) -> Result<Rank<OnGpu>, String> {
    let (rank, world) = (joined.group.rank(), joined.group.world());
    let collective = OnGpu::new(trainer, &joined.id, rank, world).map_err(|e| format!("rank {rank}: {e}"))?;
    let abort = collective.abort_handle();
    joined.group.on_failure(move |_| abort.abort());
    let mut parallel = Rank::new(trainer, collective, bucket_bytes()?)?.with_group(joined.group);
    parallel.broadcast_state(trainer)?;
    Ok(parallel)
}
