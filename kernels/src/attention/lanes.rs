//! The GPU's lanes form of attention's training kernels with a lane's rows in registers
//! ([`Parallel::Threads`](crate::emit::Parallel); `OneLane` runs it on the CPU for the
//! tests). The spec carries the head dim `D`, so a row is `D` SSA values, every walk
//! over the channels unrolled when generated: the forward's query row and output sum,
//! the backward's `dq` sum, and the key row's `k`, `v` and its `dk`, `dv` sums are carried
//! by their loops instead of living in the thread's frame (local memory). One lane per
//! query row of a head, a warp's lanes neighbouring rows; the arithmetic per channel is
//! that of the parent module's loops, in the same order.

use super::{AttentionSpec, Query, Sizes, for_queries, sizes};
use crate::emit::{Builder, Cmp, Value};

/// A lane's row of `D` values, one per channel.
type Row = Vec<Value>;

/// The channels `0 … D − 1` as index constants, with a trap where the call's tensors
/// have another head dim than the spec's.
fn channels(e: &mut Builder, spec: &AttentionSpec, sizes: &Sizes) -> Vec<Value> {
    let expected = e.constant_index(spec.head_dim);
    let differs = e.cmp(Cmp::Ne, &sizes.dim, &expected);
    e.trap_if(&differs);
    (0..spec.head_dim).map(|d| e.constant_index(d)).collect()
}

/// Row `[b, t, h]` of the argument `arg`.
fn load_row(e: &mut Builder, arg: &str, [b, t, h]: [&Value; 3], channels: &[Value]) -> Row {
    let memref = e.arg(arg);
    channels.iter().map(|d| e.load(&memref, &[b, t, h, d])).collect()
}

/// `Σ_d a_d · b_d`, summed from the first channel as the parent module's loops sum.
fn dot(e: &mut Builder, a: &[Value], b: &[Value]) -> Value {
    let mut total = e.zero();
    for (a, b) in a.iter().zip(b) {
        let term = e.mul(a, b);
        total = e.add(&total, &term);
    }
    total
}

/// `row · x + other`, per channel.
fn scaled_add(e: &mut Builder, row: &[Value], x: &Value, other: &[Value]) -> Row {
    row.iter()
        .zip(other)
        .map(|(r, o)| {
            let rx = e.mul(x, r);
            e.add(o, &rx)
        })
        .collect()
}

fn zeros(e: &Builder, count: usize) -> Row {
    vec![e.zero(); count]
}

/// The training forward: the online softmax over the keys of each query row, its
/// running maximum, normaliser and output sum carried by the loop.
pub(super) fn forward(e: &mut Builder, spec: &AttentionSpec) {
    let negative_infinity = e.named("neg_inf").constant(f64::NEG_INFINITY);
    let sizes = sizes(e, spec, true);
    let channels = channels(e, spec, &sizes);
    let c1 = e.c1();
    for_queries(e, &sizes, None, |e, query| {
        let Query { b, h, hk, t, first, .. } = &query;
        let q = load_row(e, "q", [b, t, h], &channels);
        let end = e.add(t, &c1);
        let zero = e.zero();
        let mut inits = vec![negative_infinity.clone(), zero];
        inits.extend(zeros(e, channels.len()));
        let init_refs: Vec<&Value> = inits.iter().collect();
        let results = e.fold(first, &end, &init_refs, |e, s, carried| {
            let (m_in, l_in, acc) = (&carried[0], &carried[1], &carried[2..]);
            let k = load_row(e, "k", [b, &s, hk], &channels);
            let raw = dot(e, &q, &k);
            let x = e.mul(&sizes.scale, &raw);
            let m_new = e.max(m_in, &x);
            let shift = e.sub(m_in, &m_new);
            let correction = e.exp(&shift);
            let centred = e.sub(&x, &m_new);
            let p = e.exp(&centred);
            let l_scaled = e.mul(l_in, &correction);
            let l_new = e.add(&l_scaled, &p);
            let v = load_row(e, "v", [b, &s, hk], &channels);
            let mut next = vec![m_new, l_new];
            for (a, value) in acc.iter().zip(&v) {
                let a_scaled = e.mul(a, &correction);
                let pv = e.mul(&p, value);
                next.push(e.add(&a_scaled, &pv));
            }
            next
        });
        let (m, l, acc) = (&results[0], &results[1], &results[2..]);
        let (o, lse) = (e.arg("o"), e.arg("lse"));
        for (d, a) in channels.iter().zip(acc) {
            let out = e.div(a, l);
            e.store(&out, &o, &[b, t, h, d]);
        }
        let log_l = e.log(l);
        let lse_value = e.add(m, &log_l);
        e.store(&lse_value, &lse, &[b, h, t]);
    });
}

/// What a query row's gradients read: its q and dO rows, its log-sum-exp and
/// `delta = dO · o`.
struct QueryRow {
    q: Row,
    dout: Row,
    lse: Value,
    delta: Value,
}

impl QueryRow {
    fn load(e: &mut Builder, [b, t, h]: [&Value; 3], channels: &[Value]) -> QueryRow {
        let lse = e.arg("lse");
        let lse = e.load(&lse, &[b, h, t]);
        let dout = load_row(e, "dout", [b, t, h], channels);
        let o = load_row(e, "o", [b, t, h], channels);
        let delta = dot(e, &dout, &o);
        let q = load_row(e, "q", [b, t, h], channels);
        QueryRow { q, dout, lse, delta }
    }

    /// Against key row (k, v): `p = exp(score − lse)` and `scale · p (dO·v − delta)`;
    /// with `seen` false, none of it (`p = 0`).
    fn slope(&self, e: &mut Builder, sizes: &Sizes, [k, v]: [&[Value]; 2], seen: Option<&Value>) -> (Value, Value) {
        let raw = dot(e, &self.q, k);
        let x = e.mul(&sizes.scale, &raw);
        let centred = e.sub(&x, &self.lse);
        let centred = match seen {
            Some(seen) => {
                let never = e.constant(f64::NEG_INFINITY);
                e.select(seen, &centred, &never)
            }
            None => centred,
        };
        let p = e.exp(&centred);
        let dp = dot(e, &self.dout, v);
        let diff = e.sub(&dp, &self.delta);
        let ds = e.mul(&p, &diff);
        let scaled = e.mul(&sizes.scale, &ds);
        (p, scaled)
    }
}

/// The backward: lane `(x, h)` sums `dq` of query row `x` over its keys, then head `h`'s
/// share of `dk`, `dv` of key row `x` over the queries that see it.
pub(super) fn backward(e: &mut Builder, spec: &AttentionSpec) {
    let sizes = sizes(e, spec, true);
    let channels = channels(e, spec, &sizes);
    let c1 = e.c1();
    for_queries(e, &sizes, None, |e, query| {
        let Query { b, h, hk, t, first, .. } = &query;
        let row = QueryRow::load(e, [b, t, h], &channels);
        let end = e.add(t, &c1);
        let start = zeros(e, channels.len());
        let start_refs: Vec<&Value> = start.iter().collect();
        let dq_sum = e.fold(first, &end, &start_refs, |e, s, dq| {
            let k = load_row(e, "k", [b, &s, hk], &channels);
            let v = load_row(e, "v", [b, &s, hk], &channels);
            let (_, ds) = row.slope(e, &sizes, [&k, &v], None);
            scaled_add(e, &k, &ds, &dq)
        });
        let dq = e.arg("dq");
        for (d, value) in channels.iter().zip(&dq_sum) {
            e.accumulate(&dq, &[b, t, h, d], value);
        }
        key_row_backward(e, &sizes, &query, &channels);
    });
}

/// Key row `s = query.t`: `dv_s += Σ_t p dO_t`, `dk_s += Σ_t ds q_t` over the queries of
/// head `query.h` that see it, walked from the first row of `s`'s warp so that every
/// lane of the warp reads the same query row at each step (rows before `s` or past the
/// window count nothing), then added into dk and dv.
fn key_row_backward(e: &mut Builder, sizes: &Sizes, query: &Query, channels: &[Value]) {
    let Query { b, h, hk, t: s, .. } = query;
    let k = load_row(e, "k", [b, s, hk], channels);
    let v = load_row(e, "v", [b, s, hk], channels);
    let warp = e.constant_index(32);
    let place = e.remui(s, &warp);
    let from = e.sub(s, &place);
    let (last, upto) = match &sizes.window {
        Some(window) => {
            let reach = e.add(s, window);
            let last = e.min(&reach, &sizes.time);
            let c31 = e.constant_index(31);
            let warp_end = e.add(&from, &c31);
            let warp_reach = e.add(&warp_end, window);
            (last, e.min(&warp_reach, &sizes.time))
        }
        None => (sizes.time.clone(), sizes.time.clone()),
    };
    let start = zeros(e, 2 * channels.len());
    let start_refs: Vec<&Value> = start.iter().collect();
    let sums = e.fold(&from, &upto, &start_refs, |e, t, sums| {
        let seen = e.cmp(Cmp::Ge, &t, s);
        let before_last = e.cmp(Cmp::Lt, &t, &last);
        let sees = e.and(&seen, &before_last);
        let row = QueryRow::load(e, [b, &t, h], channels);
        let (p, ds) = row.slope(e, sizes, [&k, &v], Some(&sees));
        let (dk_sum, dv_sum) = sums.split_at(channels.len());
        let mut next = scaled_add(e, &row.q, &ds, dk_sum);
        next.extend(scaled_add(e, &row.dout, &p, dv_sum));
        next
    });
    let (dk_sum, dv_sum) = sums.split_at(channels.len());
    let [dk, dv] = ["dk", "dv"].map(|arg| e.arg(arg));
    for ((d, dk_value), dv_value) in channels.iter().zip(dk_sum).zip(dv_sum) {
        e.accumulate_shared(&dk, &[b, s, hk, d], dk_value);
        e.accumulate_shared(&dv, &[b, s, hk, d], dv_value);
    }
}
