//! The collective between threads of one process, over host vectors: it exists for the
//! tests of the bucketing and reduction logic (what a rank issues, in which order, and
//! that the sums come out right) and is not a transport for users. Sums are taken in
//! rank order, so every rank gets bitwise the same result.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Collective, Segment};
use crate::error::{Error, Result, ranks};

/// One rank's end of an in-process group.
pub struct Threads {
    rank: usize,
    world: usize,
    timeout: Duration,
    exchange: Arc<Exchange>,
}

/// A round at a time: every rank deposits its values, the last combines them, all read
/// the result, the last reader opens the next round.
struct Exchange {
    round: Mutex<Round>,
    changed: Condvar,
}

#[derive(Default)]
struct Round {
    number: u64,
    inputs: Vec<Option<(&'static str, Vec<f32>)>>,
    result: Option<std::result::Result<Arc<Vec<f32>>, String>>,
    /// Which ranks have taken the current result (all false until one is published).
    taken: Vec<bool>,
}

impl Threads {
    /// The `world` ranks of a group, each to be moved to its own thread; a rank waiting
    /// longer than `timeout` for the others fails naming them.
    pub fn group(world: usize, timeout: Duration) -> Vec<Threads> {
        let round = Round { inputs: vec![None; world], ..Round::default() };
        let exchange = Arc::new(Exchange { round: Mutex::new(round), changed: Condvar::new() });
        (0..world).map(|rank| Threads { rank, world, timeout, exchange: exchange.clone() }).collect()
    }

    /// Deposits `values` for operation `op`; returns `combine` of every rank's values.
    fn exchange(
        &self,
        op: &'static str,
        values: Vec<f32>,
        combine: impl Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Arc<Vec<f32>>> {
        let deadline = Instant::now() + self.timeout;
        let mut round = self.exchange.round.lock().unwrap();
        // The last round's result must have been taken by every rank before this one
        // deposits: a rank still waiting there is held up by the slowest reader.
        round = self.wait(round, deadline, op, |r| r.result.is_none())?;
        let number = round.number;
        round.inputs[self.rank] = Some((op, values));
        if round.inputs.iter().all(Option::is_some) {
            let inputs: Vec<(&str, Vec<f32>)> = round.inputs.iter().map(|i| i.clone().unwrap()).collect();
            round.result =
                Some(agree(&inputs).map(|()| Arc::new(combine(&inputs.into_iter().map(|i| i.1).collect::<Vec<_>>()))));
            round.taken = vec![false; self.world];
            self.exchange.changed.notify_all();
        }
        round = self.wait(round, deadline, op, |r| r.number == number && r.result.is_some())?;
        let result = round.result.clone().unwrap();
        round.taken[self.rank] = true;
        if round.taken.iter().all(|t| *t) {
            round.result = None;
            round.inputs.iter_mut().for_each(|i| *i = None);
            round.number += 1;
            self.exchange.changed.notify_all();
        }
        result.map_err(Error::Collective)
    }

    /// Waits until `ready`, or fails naming the ranks it waits for: while a result is
    /// out, those that have not taken it; else those that have not deposited.
    fn wait<'a>(
        &self,
        mut round: std::sync::MutexGuard<'a, Round>,
        deadline: Instant,
        op: &str,
        ready: impl Fn(&Round) -> bool,
    ) -> Result<std::sync::MutexGuard<'a, Round>> {
        while !ready(&round) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let out = round.result.is_some();
                let waited_for = |r: &usize| if out { !round.taken[*r] } else { round.inputs[*r].is_none() };
                let missing: Vec<usize> = (0..self.world).filter(waited_for).collect();
                let what = if out { "had not taken the last result" } else { "did not arrive" };
                return Err(Error::Collective(format!(
                    "rank {}: {op} timed out after {:.1} s: {} {what}",
                    self.rank,
                    self.timeout.as_secs_f64(),
                    ranks(&missing)
                )));
            }
            round = self.exchange.changed.wait_timeout(round, left).unwrap().0;
        }
        Ok(round)
    }
}

/// Every rank must call the same operation on as many values.
fn agree(inputs: &[(&str, Vec<f32>)]) -> std::result::Result<(), String> {
    let (op, len) = (inputs[0].0, inputs[0].1.len());
    match inputs.iter().position(|(o, v)| *o != op || v.len() != len) {
        None => Ok(()),
        Some(r) => Err(format!(
            "the ranks disagree: rank 0 called {op} on {len} values, rank {r} {} on {}",
            inputs[r].0,
            inputs[r].1.len()
        )),
    }
}

/// The element-wise sum of every rank's values, in rank order.
fn sum(all: &[Vec<f32>]) -> Vec<f32> {
    let mut total = all[0].clone();
    for other in &all[1..] {
        total.iter_mut().zip(other).for_each(|(t, v)| *t += v);
    }
    total
}

/// The segments' values, one after another.
fn gather(memory: &[Vec<f32>], segments: &[Segment]) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    for s in segments {
        values.extend_from_slice(view(memory, s)?);
    }
    Ok(values)
}

fn view<'a>(memory: &'a [Vec<f32>], s: &Segment) -> Result<&'a [f32]> {
    let buffer = memory.get(s.buffer).ok_or_else(|| Error::Collective(format!("no buffer {}", s.buffer)))?;
    let (start, end) = (s.offset / 4, (s.offset + s.bytes) / 4);
    buffer
        .get(start..end)
        .ok_or_else(|| Error::Collective(format!("{s:?} lies outside its buffer of {} bytes", buffer.len() * 4)))
}

fn scatter(memory: &mut [Vec<f32>], segments: &[Segment], values: &[f32]) {
    let mut at = 0;
    for s in segments {
        let n = s.elements();
        memory[s.buffer][s.offset / 4..s.offset / 4 + n].copy_from_slice(&values[at..at + n]);
        at += n;
    }
}

impl Collective for Threads {
    type Memory = [Vec<f32>];

    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, memory: &mut [Vec<f32>], bucket: &[Segment]) -> Result<()> {
        let summed = self.exchange("all_reduce_sum", gather(memory, bucket)?, sum)?;
        scatter(memory, bucket, &summed);
        Ok(())
    }

    fn all_reduce_weighted_sum(&mut self, memory: &mut [Vec<f32>], bucket: &[Segment], weight: f32) -> Result<()> {
        let mut values = gather(memory, bucket)?;
        values.iter_mut().for_each(|v| *v *= weight);
        let summed = self.exchange("all_reduce_weighted_sum", values, sum)?;
        scatter(memory, bucket, &summed);
        Ok(())
    }

    fn broadcast(&mut self, memory: &mut [Vec<f32>], segments: &[Segment], root: usize) -> Result<()> {
        if root >= self.world {
            return Err(Error::Collective(format!("broadcast from rank {root} in a world of {}", self.world)));
        }
        let values = self.exchange("broadcast", gather(memory, segments)?, |all| all[root].clone())?;
        scatter(memory, segments, &values);
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        self.exchange("barrier", Vec::new(), |_| Vec::new()).map(|_| ())
    }

    fn any(&mut self, flag: bool) -> Result<bool> {
        let summed = self.exchange("any", vec![f32::from(u8::from(flag))], sum)?;
        Ok(summed[0] > 0.0)
    }
}
