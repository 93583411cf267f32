//! Gradient buckets: the parameters' gradients grouped, in the order the backward pass
//! makes them final (the reverse of the forward), into buckets of about a given size,
//! so each bucket's all-reduce can be issued as soon as the instruction that finishes
//! its last gradient has run, while the rest of the backward goes on.
//!
//! A gradient is at least a bucket of its own: one larger than the size is never split.
//! [`Bucket::segments`] gives the memory a bucket's all-reduce covers, adjacent
//! gradients merged; [`Schedule`] says which buckets are due after each instruction.

use std::ops::Range;

use crate::collective::Segment;
use crate::error::{Error, Result};

/// One parameter's gradient as the step program produces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gradient {
    /// The parameter's index in the program.
    pub param: usize,
    /// Its size in bytes (f32: a multiple of 4).
    pub bytes: usize,
    /// The index of the instruction after which the gradient is final.
    pub final_after: usize,
}

/// Where a gradient lies: a buffer of the device and a byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub buffer: usize,
    pub offset: usize,
}

/// Gradients reduced together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Indices into the gradients given to [`buckets`], in the order they become final.
    pub gradients: Vec<usize>,
    pub bytes: usize,
    /// The instruction after which every gradient of the bucket is final.
    pub final_after: usize,
}

/// The gradients in buckets of at most `cap_bytes` each (a larger gradient alone), in
/// the order they become final: by `final_after`, ties by the later parameter first.
pub fn buckets(gradients: &[Gradient], cap_bytes: usize) -> Result<Vec<Bucket>> {
    check(gradients, cap_bytes)?;
    let mut order: Vec<usize> = (0..gradients.len()).collect();
    order.sort_by_key(|&i| (gradients[i].final_after, std::cmp::Reverse(gradients[i].param)));
    let mut buckets: Vec<Bucket> = Vec::new();
    for i in order {
        let g = gradients[i];
        match buckets.last_mut() {
            Some(last) if last.bytes + g.bytes <= cap_bytes => {
                last.gradients.push(i);
                last.bytes += g.bytes;
                last.final_after = last.final_after.max(g.final_after);
            }
            _ => buckets.push(Bucket { gradients: vec![i], bytes: g.bytes, final_after: g.final_after }),
        }
    }
    Ok(buckets)
}

/// About `mib` MiB, as a bucket cap in bytes.
pub fn mib(mib: f64) -> usize {
    (mib * (1 << 20) as f64).round() as usize
}

fn check(gradients: &[Gradient], cap_bytes: usize) -> Result<()> {
    if cap_bytes == 0 {
        return Err(Error::Invalid("a bucket size of 0 bytes: give at least one f32 (4 bytes)".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for g in gradients {
        if g.bytes == 0 || !g.bytes.is_multiple_of(4) {
            return Err(Error::Invalid(format!(
                "the gradient of parameter {} has {} bytes: an f32 gradient has a positive multiple of 4",
                g.param, g.bytes
            )));
        }
        if !seen.insert(g.param) {
            return Err(Error::Invalid(format!("parameter {} has two gradients", g.param)));
        }
    }
    Ok(())
}

impl Bucket {
    /// The memory this bucket's all-reduce covers: each gradient's bytes, adjacent ones
    /// merged, by buffer and offset. Gradients that overlap are an error (their bytes
    /// would be summed twice).
    pub fn segments(&self, gradients: &[Gradient], locate: impl Fn(usize) -> Location) -> Result<Vec<Segment>> {
        let mut spans: Vec<(Location, usize, usize)> = self
            .gradients
            .iter()
            .map(|&i| (locate(gradients[i].param), gradients[i].bytes, gradients[i].param))
            .collect();
        spans.sort_by_key(|(at, _, _)| (at.buffer, at.offset));
        let mut segments: Vec<Segment> = Vec::new();
        let mut last_param = usize::MAX;
        for (at, bytes, param) in spans {
            if !at.offset.is_multiple_of(4) {
                return Err(Error::Invalid(format!(
                    "the gradient of parameter {param} lies at byte {}, not a multiple of 4",
                    at.offset
                )));
            }
            match segments.last_mut() {
                Some(s) if s.buffer == at.buffer && at.offset < s.offset + s.bytes => {
                    return Err(Error::Invalid(format!(
                        "the gradients of parameters {last_param} and {param} overlap in buffer {}",
                        at.buffer
                    )));
                }
                Some(s) if s.buffer == at.buffer && at.offset == s.offset + s.bytes => s.bytes += bytes,
                _ => segments.push(Segment { buffer: at.buffer, offset: at.offset, bytes }),
            }
            last_param = param;
        }
        Ok(segments)
    }
}

/// The instruction after which each gradient is final: the last of `writes` (per
/// instruction of the backward, the memory it may write) that touches any of its
/// bytes; `None` for a gradient no instruction writes.
pub fn last_writes(writes: &[Vec<Segment>], gradients: &[Segment]) -> Vec<Option<usize>> {
    let overlap = |a: &Segment, b: &Segment| {
        a.buffer == b.buffer && a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes
    };
    gradients.iter().map(|g| writes.iter().rposition(|written| written.iter().any(|w| overlap(w, g)))).collect()
}

/// Which buckets are due after each instruction: bucket `b` once instruction
/// `final_after(b)` has run. Buckets come due in their order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    final_after: Vec<usize>,
}

impl Schedule {
    pub fn new(buckets: &[Bucket]) -> Schedule {
        let final_after: Vec<usize> = buckets.iter().map(|b| b.final_after).collect();
        debug_assert!(final_after.windows(2).all(|w| w[0] <= w[1]), "buckets in the order they become final");
        Schedule { final_after }
    }

    /// The buckets to issue right after instruction `instruction` has run.
    pub fn due(&self, instruction: usize) -> Range<usize> {
        let start = self.final_after.partition_point(|&f| f < instruction);
        let end = self.final_after.partition_point(|&f| f <= instruction);
        start..end
    }
}

#[cfg(test)]
#[path = "bucket_tests.rs"]
mod tests;
