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
//! The collective acts on the device's memory. [`OnDevice`] adapts a collective over
//! host vectors (the in-process one the tests use) by copying each bucket to the host
//! and back; NCCL acts on a GPU's buffers in place (not wired to the runtime yet).

use hyb_dist::bucket::{Gradient, Location};
use hyb_dist::{Collective, Reducer, Segment, shard};
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
}

/// One rank of a data-parallel run: its collective and its step's gradient buckets.
pub struct Rank<C> {
    collective: OnDevice<C>,
    reducer: Reducer,
}

impl<C: Collective<Memory = [Vec<f32>]>> Rank<C> {
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
        Ok(Rank { collective: OnDevice { inner: collective }, reducer })
    }

    /// One step of the global `batch` (every rank passes the same one): this rank's
    /// rows forward and backward, the gradients summed as they become final, then
    /// clipping and AdamW at `lr`. Returns the whole batch's loss and gradient norm.
    pub fn step(&mut self, trainer: &mut Trainer, batch: &Batch, adamw: &AdamW, lr: f64) -> Result<StepStats, String> {
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
            reducer.after(instruction, collective, device).map_err(|e| format!("rank {rank}: {e}"))
        };
        let inputs = hyb_runtime::Batch { tokens, targets };
        let loss = trainer.forward_backward_then(&inputs, &mut after).map_err(|e| e.to_string())?;
        self.reducer.finish().map_err(|e| format!("rank {rank}: {e}"))?;
        let mut total = [vec![loss]];
        let whole = [Segment { buffer: 0, offset: 0, bytes: 4 }];
        self.collective.inner.all_reduce_weighted_sum(&mut total, &whole, weight).map_err(|e| e.to_string())?;
        let grad_norm = trainer.gradient_norm(adamw);
        trainer.apply_update(adamw, lr);
        Ok(StepStats { loss: total[0][0], grad_norm })
    }
}
