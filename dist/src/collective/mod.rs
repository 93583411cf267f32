//! The collective operations a data-parallel step needs, as a trait over the memory
//! they act on: [`Nccl`](nccl::Nccl) over the GPU's buffers (the transport of real runs)
//! and [`Threads`](threads::Threads) over host vectors between threads of one process
//! (only for the tests of the bucketing and reduction logic: not a transport for
//! users). [`Reducer`] issues a step's gradient buckets as the backward makes them final.

pub mod nccl;
pub mod threads;

use crate::bucket::{self, Bucket, Gradient, Location, Schedule};
use crate::error::{Error, Result};

/// Bytes of one buffer a collective acts on, as f32 elements (offset and size
/// multiples of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub buffer: usize,
    pub offset: usize,
    pub bytes: usize,
}

impl Segment {
    /// Its f32 elements.
    pub fn elements(&self) -> usize {
        self.bytes / 4
    }
}

/// What every rank calls in the same order. Operations are issued in order; on a GPU
/// they complete on the communicator's stream, visible to work issued there after them.
pub trait Collective {
    /// The buffers segments index: device buffers, or host vectors for the threads.
    type Memory: ?Sized;

    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// Sums each segment over the ranks in place (f32): one bucket, issued together.
    fn all_reduce_sum(&mut self, memory: &mut Self::Memory, bucket: &[Segment]) -> Result<()>;
    /// Sums `weight` × each rank's values over the ranks, in place: gradients of mean
    /// losses, each rank's weighted by its share of the batch's targets
    /// ([`crate::shard::gradient_weight`]), sum to the single-GPU gradient.
    fn all_reduce_weighted_sum(&mut self, memory: &mut Self::Memory, bucket: &[Segment], weight: f32) -> Result<()>;
    /// Copies rank `root`'s segments to every rank (the initial weights).
    fn broadcast(&mut self, memory: &mut Self::Memory, segments: &[Segment], root: usize) -> Result<()>;
    /// Returns once every rank has called it and everything issued before has completed.
    fn barrier(&mut self) -> Result<()>;
    /// Orders the work issued on the device from now on after the operations issued so
    /// far (they may run beside the compute, on a stream of their own: NCCL's).
    fn join(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether any rank passed `true`: the ranks agree to stop at a step boundary when
    /// one of them was asked to.
    fn any(&mut self, flag: bool) -> Result<bool>;
}

/// A step's gradient reduction: the buckets, their segments, and which are due after
/// each instruction of the step program.
#[derive(Clone, Debug)]
pub struct Reducer {
    buckets: Vec<Bucket>,
    segments: Vec<Vec<Segment>>,
    schedule: Schedule,
    issued: usize,
    weight: f32,
}

impl Reducer {
    /// Buckets of about `cap_bytes` over `gradients`, each gradient where `locate` says.
    pub fn new(gradients: &[Gradient], cap_bytes: usize, locate: impl Fn(usize) -> Location) -> Result<Reducer> {
        let buckets = bucket::buckets(gradients, cap_bytes)?;
        let segments = buckets.iter().map(|b| b.segments(gradients, &locate)).collect::<Result<_>>()?;
        let schedule = Schedule::new(&buckets);
        Ok(Reducer { buckets, segments, schedule, issued: 0, weight: 1.0 })
    }

    /// This rank's weight in the sums of this step (1 by default: a plain sum).
    pub fn set_weight(&mut self, weight: f32) {
        self.weight = weight;
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Call after instruction `instruction` of the step has been issued: issues the
    /// all-reduce of every bucket whose gradients are now final.
    pub fn after<C: Collective + ?Sized>(
        &mut self,
        instruction: usize,
        c: &mut C,
        memory: &mut C::Memory,
    ) -> Result<()> {
        for b in self.schedule.due(instruction) {
            if b != self.issued {
                return Err(Error::Invalid(format!("bucket {b} is due before bucket {} was issued", self.issued)));
            }
            if self.weight == 1.0 {
                c.all_reduce_sum(memory, &self.segments[b])?;
            } else {
                c.all_reduce_weighted_sum(memory, &self.segments[b], self.weight)?;
            }
            self.issued += 1;
        }
        Ok(())
    }

    /// Call at the end of the backward: every bucket must have been issued (else the
    /// ranks would use gradients not summed); ready for the next step.
    pub fn finish(&mut self) -> Result<()> {
        let issued = std::mem::take(&mut self.issued);
        if issued != self.buckets.len() {
            return Err(Error::Invalid(format!(
                "{} of {} gradient buckets were not reduced: the step ended before instruction {}",
                self.buckets.len() - issued,
                self.buckets.len(),
                self.buckets[issued].final_after
            )));
        }
        Ok(())
    }
}
