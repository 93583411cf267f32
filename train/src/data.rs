//! Synthetic tasks, generated on the fly from a seed: every sequence is a function of
//! (seed, step, index in the batch) alone, so a resumed run sees exactly the data an
//! uninterrupted one would, and the data position is the step number.
//!
//! - [`Mqar`]: multi-query associative recall as Zoology builds it: keys from the lower
//!   half of the vocabulary, values from the upper half, the key–value pairs first,
//!   then each key queried once at a gap drawn by a power law; the loss and accuracy
//!   only on the answers (the target at a query key is its value); the other positions
//!   filled with random tokens.
//! - [`ForgettingMqar`]: MQAR whose keys are partly re-assigned new values after the
//!   pairs; the latest value is the answer.
//! - [`Niah`]: needle in a haystack ([`crate::niah`]).
//! - [`Copy`]: a random first half over a small alphabet, then the same tokens again,
//!   next-token targets everywhere.
//!
//! A recall task states its chance ([`Task::chance`]): the accuracy of a guess that knows
//! the task's format but recalls nothing, the floor a sweep's "did not learn" is judged
//! against.

use hyb_runtime::rng::SplitMix64;

pub use crate::niah::Niah;

/// One step's sequences, `[batch, seq_len]` row-major; targets negative where there is
/// nothing to predict.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub tokens: Vec<i32>,
    pub targets: Vec<i32>,
    /// Each position's group ([`Task::groups`]; 0 when the task has none).
    pub groups: Vec<u8>,
    pub seq_len: usize,
}

impl Batch {
    pub fn inputs(&self) -> hyb_runtime::Batch<'_> {
        hyb_runtime::Batch { tokens: &self.tokens, targets: &self.targets }
    }
}

/// A task that makes sequences of one length.
pub trait Task {
    fn seq_len(&self) -> usize;
    /// One sequence's (tokens, targets).
    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>);

    /// The names of the groups a task sorts its answers into for a breakdown (a needle's
    /// depth); none by default.
    fn groups(&self) -> Vec<String> {
        Vec::new()
    }

    /// The accuracy of a guess that knows the task's format but not the answer (none
    /// for a task not scored by answer accuracy).
    fn chance(&self) -> Option<f64> {
        None
    }

    /// [`Task::sequence`] with each position's group.
    fn grouped_sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>, Vec<u8>) {
        let (tokens, targets) = self.sequence(rng);
        let groups = vec![0; tokens.len()];
        (tokens, targets, groups)
    }

    /// The batch of `step` (a pure function of the seed and the step).
    fn batch(&self, seed: u64, step: u64, size: usize) -> Batch {
        let mut batch = Batch { tokens: Vec::new(), targets: Vec::new(), groups: Vec::new(), seq_len: self.seq_len() };
        for index in 0..size {
            let mut rng = SplitMix64::new(mix(seed, step, index as u64));
            let (t, y, g) = self.grouped_sequence(&mut rng);
            batch.tokens.extend(t);
            batch.targets.extend(y);
            batch.groups.extend(g);
        }
        batch
    }
}

/// SplitMix64 of the three coordinates: independent streams per sequence.
fn mix(seed: u64, step: u64, index: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `count` distinct values from `range`, in random order.
pub(crate) fn distinct(rng: &mut SplitMix64, range: std::ops::Range<i32>, count: usize) -> Vec<i32> {
    let mut pool: Vec<i32> = range.collect();
    for i in 0..count {
        let j = rng.index(i..pool.len());
        pool.swap(i, j);
    }
    pool.truncate(count);
    pool
}

/// Multi-query associative recall (Zoology's `multiquery_ar`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mqar {
    pub vocab: usize,
    pub seq_len: usize,
    pub pairs: usize,
    /// The power law of the query gaps: weight of gap slot i ∝ a·(i+1)^(a−1).
    pub power_a: f64,
    /// Upper edges of the key–query distance bins the answers are grouped in
    /// ([`Task::groups`]); none: no groups.
    pub distance_bins: Vec<usize>,
}

impl Mqar {
    /// The task without a breakdown by distance.
    pub fn new(vocab: usize, seq_len: usize, pairs: usize, power_a: f64) -> Mqar {
        Mqar { vocab, seq_len, pairs, power_a, distance_bins: Vec::new() }
    }

    /// The bin of an answer `distance` tokens from its key to its query.
    fn bin(&self, distance: usize) -> u8 {
        self.distance_bins.iter().position(|edge| distance <= *edge).unwrap_or(self.distance_bins.len()) as u8
    }
}

/// `count` distinct query slots in `0..space`, drawn without replacement with the power
/// law `a·(i+1)^(a−1)` (small gaps likelier).
fn slots(rng: &mut SplitMix64, space: usize, count: usize, a: f64) -> Vec<usize> {
    let mut weights: Vec<f64> = (0..space).map(|i| a * ((i + 1) as f64).powf(a - 1.0)).collect();
    let mut slots = Vec::with_capacity(count);
    for _ in 0..count {
        let total: f64 = weights.iter().sum();
        let mut pick = rng.uniform(0.0, total);
        let slot = weights
            .iter()
            .position(|w| {
                pick -= w;
                pick < 0.0
            })
            .unwrap_or_else(|| weights.iter().rposition(|w| *w > 0.0).expect("a free slot"));
        weights[slot] = 0.0;
        slots.push(slot);
    }
    slots
}

/// The keys to query and each one's answer.
struct Queries<'a> {
    keys: &'a [i32],
    answers: &'a [i32],
    power_a: f64,
}

/// After the first `context` tokens: each key queried once at a power-law gap (the
/// target at the query is its answer), everything else random tokens.
fn query_and_fill(
    rng: &mut SplitMix64,
    tokens: &mut [i32],
    targets: &mut [i32],
    context: usize,
    queries: Queries,
    vocab: i32,
) {
    let space = (tokens.len() - context) / 2;
    for (j, slot) in slots(rng, space, queries.keys.len(), queries.power_a).into_iter().enumerate() {
        let at = context + 2 * slot;
        tokens[at] = queries.keys[j];
        targets[at] = queries.answers[j];
    }
    for (position, token) in tokens.iter_mut().enumerate().skip(context) {
        if *token == 0 && targets[position] < 0 {
            *token = rng.int(0..vocab);
        }
    }
}

impl Task for Mqar {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Naming one of the context's `pairs` values, uniformly, without binding it to its
    /// key.
    fn chance(&self) -> Option<f64> {
        Some(1.0 / self.pairs as f64)
    }

    /// By key–query distance where bins are given: `distance 1–16`, …, `distance > 64`.
    fn groups(&self) -> Vec<String> {
        let mut low = 1;
        let mut names = Vec::new();
        for edge in &self.distance_bins {
            names.push(format!("distance {low}–{edge}"));
            low = edge + 1;
        }
        if let Some(last) = self.distance_bins.last() {
            names.push(format!("distance > {last}"));
        }
        names
    }

    /// Each answer's group: the bin of the distance from its key (at `2j`) to its query.
    fn grouped_sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>, Vec<u8>) {
        let (tokens, targets) = self.sequence(rng);
        let mut groups = vec![0; tokens.len()];
        if !self.distance_bins.is_empty() {
            let keys: Vec<i32> = (0..self.pairs).map(|j| tokens[2 * j]).collect();
            for (at, group) in groups.iter_mut().enumerate().filter(|(at, _)| targets[*at] >= 0) {
                let j = keys.iter().position(|k| *k == tokens[at]).expect("a query repeats a key");
                *group = self.bin(at - 2 * j);
            }
        }
        (tokens, targets, groups)
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let (vocab, length, pairs) = (self.vocab as i32, self.seq_len, self.pairs);
        let context = 2 * pairs;
        let keys = distinct(rng, 1..vocab / 2, pairs);
        let values = distinct(rng, vocab / 2..vocab, pairs);
        let mut tokens = vec![0; length];
        let mut targets = vec![-1; length];
        for (j, (key, value)) in keys.iter().zip(&values).enumerate() {
            tokens[2 * j] = *key;
            tokens[2 * j + 1] = *value;
        }
        let queries = Queries { keys: &keys, answers: &values, power_a: self.power_a };
        query_and_fill(rng, &mut tokens, &mut targets, context, queries, vocab);
        (tokens, targets)
    }
}

/// MQAR where `updates` of the keys are re-assigned a new value after the pairs (the
/// re-assignments follow the original pairs, in random order); every key is then queried
/// once, and the answer is its latest value.
#[derive(Clone, Debug, PartialEq)]
pub struct ForgettingMqar {
    pub vocab: usize,
    pub seq_len: usize,
    pub pairs: usize,
    pub updates: usize,
}

impl Task for ForgettingMqar {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Naming one of the `pairs` current values (each key's latest), uniformly, without
    /// binding it to its key.
    fn chance(&self) -> Option<f64> {
        Some(1.0 / self.pairs as f64)
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let (vocab, length, pairs, updates) = (self.vocab as i32, self.seq_len, self.pairs, self.updates);
        let keys = distinct(rng, 1..vocab / 2, pairs);
        // Original values, then the new ones: all distinct.
        let values = distinct(rng, vocab / 2..vocab, pairs + updates);
        let mut latest: Vec<i32> = values[..pairs].to_vec();
        let mut tokens = vec![0; length];
        let mut targets = vec![-1; length];
        for j in 0..pairs {
            tokens[2 * j] = keys[j];
            tokens[2 * j + 1] = values[j];
        }
        let updated = distinct(rng, 0..pairs as i32, updates);
        for (u, key_index) in updated.iter().enumerate() {
            let at = 2 * (pairs + u);
            tokens[at] = keys[*key_index as usize];
            tokens[at + 1] = values[pairs + u];
            latest[*key_index as usize] = values[pairs + u];
        }
        let context = 2 * (pairs + updates);
        let queries = Queries { keys: &keys, answers: &latest, power_a: 0.01 };
        query_and_fill(rng, &mut tokens, &mut targets, context, queries, vocab);
        (tokens, targets)
    }
}

/// The copy task over an alphabet of ids `1..=alphabet`.
#[derive(Clone, Debug, PartialEq)]
pub struct Copy {
    pub alphabet: usize,
    pub seq_len: usize,
}

impl Task for Copy {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let half = self.seq_len.div_ceil(2);
        let first: Vec<i32> = (0..half).map(|_| rng.int(1..self.alphabet as i32 + 1)).collect();
        let tokens: Vec<i32> = first.iter().chain(&first).take(self.seq_len).copied().collect();
        let targets = hyb_runtime::Batch::next_token_targets(&tokens, self.seq_len);
        (tokens, targets)
    }
}
