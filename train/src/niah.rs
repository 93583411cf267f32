//! Needle in a haystack at token level, in RULER's variants, generated from a seed
//! (`niah(...)`, docs/LANGUAGE.md §12). Tokens: haystack fillers from `[1, V/4)`, keys
//! from `[V/4, V/2)`, values from `[V/2, V)`. A needle is a key followed by its `values`
//! values; the sequence ends with the queries: each queried key, then its values
//! teacher-forced, the target at the key and at each value but the last being the next
//! value.
//! - `single`: one needle, queried; `multikey`: `keys` needles, one queried;
//!   `multivalue`: one needle of `values` values; `multiquery`: `queries` needles, all
//!   queried.
//! - Haystack `repeat`: a random 16-token phrase over and over; `noise`: random fillers;
//!   `needles`: noise and distractor needles (keys never queried).
//! - Where the needles sit: at uniformly drawn depths, answers grouped by the depth of
//!   their needle (quarters of the haystack); or, with `distances`, the queried needle's
//!   key exactly `d` tokens before its query's key, `d` drawn from the list for each
//!   sequence, answers grouped by distance (the other needles anywhere else).

use hyb_compiler::ir::train::{Haystack, NiahVariant};
use hyb_runtime::rng::SplitMix64;

use crate::data::{Task, distinct};

#[derive(Clone, Debug, PartialEq)]
pub struct Niah {
    pub vocab: usize,
    pub seq_len: usize,
    pub variant: NiahVariant,
    pub haystack: Haystack,
    pub keys: usize,
    pub values: usize,
    pub queries: usize,
    /// Tokens from the queried needle's key to its query's key, one drawn per
    /// sequence; empty: needles at random depths.
    pub distances: Vec<usize>,
}

/// Where a needle goes: before haystack token `point`; at one point, lower `order`
/// first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Insertion {
    point: usize,
    order: u8,
    needle: usize,
}

impl Niah {
    fn needles(&self) -> usize {
        self.keys.max(self.queries)
    }

    fn queried(&self) -> usize {
        match self.variant {
            NiahVariant::MultiKey => 1.min(self.needles()),
            _ => self.queries.min(self.needles()),
        }
    }

    /// The haystack: the repeated phrase or noise, with distractor needles (of keys
    /// `keys[from..]`) over stretches of it.
    fn hay(&self, rng: &mut SplitMix64, length: usize, keys: &[i32], values: &[Vec<i32>], from: usize) -> Vec<i32> {
        let vocab = self.vocab as i32;
        let phrase: Vec<i32> = (0..16).map(|_| rng.int(1..vocab / 4)).collect();
        let mut hay: Vec<i32> = (0..length)
            .map(|i| if self.haystack == Haystack::Repeat { phrase[i % 16] } else { rng.int(1..vocab / 4) })
            .collect();
        for d in from..keys.len() {
            let group: Vec<i32> = std::iter::once(keys[d]).chain(values[d].iter().copied()).collect();
            if hay.len() > group.len() {
                let at = rng.index(0..hay.len() - group.len());
                hay[at..at + group.len()].copy_from_slice(&group);
            }
        }
        hay
    }

    /// Needles at uniformly drawn points of the haystack.
    fn random_points(&self, rng: &mut SplitMix64, hay_len: usize) -> Vec<Insertion> {
        (0..self.needles()).map(|needle| Insertion { point: rng.index(0..hay_len + 1), order: 0, needle }).collect()
    }

    /// Needle `asked` with its key at `position` of the sequence, the others anywhere
    /// else: `before` of them precede it (their points at or below its point, which is
    /// `position − before × needle length`), the rest follow.
    fn placed_points(&self, rng: &mut SplitMix64, hay_len: usize, asked: usize, position: usize) -> Vec<Insertion> {
        let size = 1 + self.values;
        let others: Vec<usize> = (0..self.needles()).filter(|n| *n != asked).collect();
        let fits = |before: &usize| position >= size * before && position - size * before <= hay_len;
        let choices: Vec<usize> = (0..=others.len()).filter(fits).collect();
        let before = choices[rng.index(0..choices.len())];
        let point = position - size * before;
        let mut points = vec![Insertion { point, order: 1, needle: asked }];
        for (i, needle) in others.into_iter().enumerate() {
            let (point, order) =
                if i < before { (rng.index(0..point + 1), 0) } else { (rng.index(point..hay_len + 1), 2) };
            points.push(Insertion { point, order, needle });
        }
        points
    }
}

impl Task for Niah {
    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>) {
        let (tokens, targets, _) = self.grouped_sequence(rng);
        (tokens, targets)
    }

    fn groups(&self) -> Vec<String> {
        if self.distances.is_empty() {
            ["depth 0–25%", "depth 25–50%", "depth 50–75%", "depth 75–100%"].map(String::from).to_vec()
        } else {
            self.distances.iter().map(|d| format!("distance {d}")).collect()
        }
    }

    /// A guess without memory of the context: one token of the value range, uniformly.
    /// (A single needle's values are the only value-range tokens of a `repeat` or
    /// `noise` context, so a model that carries them but binds nothing does better.)
    fn chance(&self) -> Option<f64> {
        Some(1.0 / (self.vocab - self.vocab / 2) as f64)
    }

    fn grouped_sequence(&self, rng: &mut SplitMix64) -> (Vec<i32>, Vec<i32>, Vec<u8>) {
        let vocab = self.vocab as i32;
        let (needles, queried) = (self.needles(), self.queried());
        let distractors = if self.haystack == Haystack::Needles { needles } else { 0 };
        let keys = distinct(rng, vocab / 4..vocab / 2, needles + distractors);
        let values: Vec<Vec<i32>> =
            (0..needles + distractors).map(|_| distinct(rng, vocab / 2..vocab, self.values)).collect();
        let query_len = queried * self.values;
        let hay_len = self.seq_len - query_len - needles * (1 + self.values);
        let hay = self.hay(rng, hay_len, &keys, &values, needles);
        let ask = |rng: &mut SplitMix64| -> Vec<usize> {
            distinct(rng, 0..needles as i32, queried).into_iter().map(|n| n as usize).collect()
        };
        // Without distances the stream is as it always was: the points, then the queries.
        let (mut points, group, asked) = match self.distances.as_slice() {
            [] => {
                let points = self.random_points(rng, hay_len);
                (points, None, ask(rng))
            }
            distances => {
                let asked = ask(rng);
                let index = rng.index(0..distances.len());
                let position = self.seq_len - query_len - distances[index];
                (self.placed_points(rng, hay_len, asked[0], position), Some(index as u8), asked)
            }
        };
        points.sort();
        let mut tokens = Vec::with_capacity(self.seq_len);
        let mut depth = vec![0u8; needles];
        let mut from = 0;
        for Insertion { point, needle, .. } in points {
            tokens.extend(&hay[from..point]);
            from = point;
            depth[needle] = group.unwrap_or(((4 * point) / (hay_len + 1)).min(3) as u8);
            tokens.push(keys[needle]);
            tokens.extend(&values[needle]);
        }
        tokens.extend(&hay[from..]);
        let mut targets = vec![-1; tokens.len()];
        let mut groups = vec![0u8; tokens.len()];
        for n in asked {
            let start = tokens.len();
            tokens.push(keys[n]);
            tokens.extend(&values[n][..self.values - 1]);
            for (i, value) in values[n].iter().enumerate() {
                targets.push(-1);
                groups.push(depth[n]);
                targets[start + i] = *value;
            }
        }
        (tokens, targets, groups)
    }
}
