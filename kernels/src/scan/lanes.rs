//! The GPU's form of the scan ([`Parallel::Threads`]; [`Parallel::OneLane`] runs the
//! same code lane by lane on the CPU for tests): one lane per (state head, value
//! channel `j`, key slice) keeps its slice of the state — the key channels
//! `slice, slice + count, …`, [`ScanSpec::dk`]` / count` of them — in registers from
//! the first token to the last. The walk over a slice is unrolled here, when the kernel
//! is generated, so each slot is an SSA value carried by the time loop: a token's loads
//! (its keys, queries and decays, the reverse scan's saved states) have no stores
//! between them and issue together, and the state goes to memory only at checkpoints
//! and at the end. The form it replaced kept the state in global memory and walked a
//! slice in a loop of dynamic length: every step waited on its own loads.
//!
//! The arithmetic is the generic form's (see the parent module), per slot in the same
//! order; sums over the key channels are a register sum then [`Scan::over_slices`], sums
//! over the value channels [`Scan::add_over_columns`] and [`Scan::add_over_head`].

use super::{At, Chunk, Chunks, Decay, Scan, ScanUpdate, key_terms};
use crate::emit::{Builder, Cmp, Value};

/// This lane's column and key channels, fixed for the whole call.
struct Lane {
    /// The value channel `j`.
    column: Value,
    /// The key channel of each slot `n`: `slice + n · count`.
    keys: Vec<Value>,
}

/// A lane's slice of one state (or of its gradient): one value per slot.
type Slots = Vec<Value>;

impl Lane {
    /// The column and the slots' key channels (the prologue has checked that the call's
    /// state is the `DK × DV` the kernel was generated for).
    fn define(e: &mut Builder, scan: &Scan) -> Lane {
        let count = super::lane_slices(e.config(), scan.spec);
        let keys = (0..scan.spec.dk / count)
            .map(|n| {
                let offset = e.constant_index(n * count);
                e.add(&scan.keys.0, &offset)
            })
            .collect();
        Lane { column: scan.columns.0.clone(), keys }
    }

    /// `memref[prefix, i_n, j]` for every slot: a lane's slice of a stored state.
    fn load_state(&self, e: &mut Builder, memref: &Value, prefix: &[&Value]) -> Slots {
        self.keys.iter().map(|i| e.load(memref, &with(prefix, &[i, &self.column]))).collect()
    }

    /// `memref[prefix, i_n, j] = slots[n]`.
    fn store_state(&self, e: &mut Builder, slots: &[Value], memref: &Value, prefix: &[&Value]) {
        for (i, value) in self.keys.iter().zip(slots) {
            e.store(value, memref, &with(prefix, &[i, &self.column]));
        }
    }

    /// `memref[prefix, i_n]` for every slot: a token's row of keys, queries or decays.
    fn load_row(&self, e: &mut Builder, memref: &Value, prefix: &[&Value]) -> Slots {
        self.keys.iter().map(|i| e.load(memref, &with(prefix, &[i]))).collect()
    }

    /// `α_n` per slot (`None` without a decay).
    fn alphas(&self, e: &mut Builder, scan: &Scan, at: &At) -> Vec<Option<Value>> {
        self.keys.iter().map(|i| scan.alpha(e, at, i)).collect()
    }

    /// The query head `qh`'s row reading this state: `q[b, t, qh, i_n]`, or ones.
    fn queries(&self, e: &mut Builder, scan: &Scan, at: &At, qh: &Value) -> Slots {
        self.keys.iter().map(|i| scan.query(e, at, qh, i)).collect()
    }
}

/// `prefix` then `rest`, as indices.
fn with<'v>(prefix: &[&'v Value], rest: &[&'v Value]) -> Vec<&'v Value> {
    prefix.iter().chain(rest).copied().collect()
}

/// References to a slice's values, for a fold's initial values.
fn refs(slots: &[Value]) -> Vec<&Value> {
    slots.iter().collect()
}

/// `α · x`, or `x` without a decay.
fn decay(e: &mut Builder, alpha: &Option<Value>, x: &Value) -> Value {
    match alpha {
        Some(a) => e.mul(a, x),
        None => x.clone(),
    }
}

/// `Σ_n a_n b_n` over this lane's slots, then over the lanes sharing its column.
fn column_dot(e: &mut Builder, scan: &Scan, a: &[Value], b: &[Value]) -> Value {
    let mut total = e.zero();
    for (a, b) in a.iter().zip(b) {
        let term = e.mul(a, b);
        total = e.add(&total, &term);
    }
    scan.over_slices(e, &total)
}

/// The forward recurrence; with `chunk`, the state before every `chunk`-th token saved
/// into `ckpt`.
pub(super) fn forward(e: &mut Builder, scan: &Scan, chunk: Option<&Value>) {
    let lane = Lane::define(e, scan);
    let state = e.arg("state");
    scan.for_heads(e, |e, b, h, hk| {
        let first = lane.load_state(e, &state, &[&b, &h]);
        let c0 = e.c0();
        let last = e.fold(&c0, &scan.time, &refs(&first), |e, t, slots| {
            if let Some(chunk) = chunk {
                save_checkpoint(e, &lane, chunk, &slots, [&b, &h, &t]);
            }
            let at = scan.at(e, &b, &h, &hk, t);
            let slots = update(e, scan, &lane, &at, &slots);
            readout(e, scan, &lane, &at, &slots);
            slots
        });
        lane.store_state(e, &last, &state, &[&b, &h]);
    });
}

/// At a chunk start (`t mod chunk = 0`), the state into `ckpt[b, h, t / chunk]`.
fn save_checkpoint(e: &mut Builder, lane: &Lane, chunk: &Value, slots: &[Value], [b, h, t]: [&Value; 3]) {
    let (ckpt, c0) = (e.arg("ckpt"), e.c0());
    let rem = e.remui(t, chunk);
    let starts = e.cmp(Cmp::Eq, &rem, &c0);
    e.if_(&starts, |e| {
        let c = e.divui(t, chunk);
        lane.store_state(e, slots, &ckpt, &[b, h, &c]);
    });
}

/// One token's update of the lane's slots: `S' = Diag(α) S`, then the additive write
/// `S = S' + k vᵀ` or the delta rule's `S = S' + k uᵀ`, `u = β (v − S'ᵀk)`.
fn update(e: &mut Builder, scan: &Scan, lane: &Lane, at: &At, slots: &[Value]) -> Slots {
    let (k, v) = (e.arg("k"), e.arg("v"));
    let keys = lane.load_row(e, &k, &[&at.b, &at.t, &at.hk]);
    let alphas = lane.alphas(e, scan, at);
    let decayed: Slots = slots.iter().zip(&alphas).map(|(s, a)| decay(e, a, s)).collect();
    let v = e.load(&v, &[&at.b, &at.t, &at.h, &lane.column]);
    let w = match scan.spec.update {
        ScanUpdate::Additive => v,
        ScanUpdate::Delta => {
            let beta = e.arg("beta");
            let beta = e.load(&beta, &[&at.b, &at.t, &at.h]);
            let read = column_dot(e, scan, &decayed, &keys);
            let error = e.sub(&v, &read);
            e.mul(&beta, &error)
        }
    };
    decayed
        .iter()
        .zip(&keys)
        .map(|(s, k)| {
            let kw = e.mul(k, &w);
            e.add(s, &kw)
        })
        .collect()
}

/// `o = scale · Sᵀ q` for each query head reading the state, stored by one lane of the
/// column.
fn readout(e: &mut Builder, scan: &Scan, lane: &Lane, at: &At, slots: &[Value]) {
    let o = e.arg("o");
    scan.for_readers(e, at, |e, qh, oh| {
        let queries = lane.queries(e, scan, at, &qh);
        let total = column_dot(e, scan, slots, &queries);
        let scaled = e.mul(&scan.scale, &total);
        scan.once_per_column(e, |e| e.store(&scaled, &o, &[&at.b, &at.t, &oh, &lane.column]));
    });
}

/// The reverse scan: per chunk, from the last, its states recomputed into `buf` from
/// the checkpoint, then its tokens from the last, the state's gradient carried in the
/// lane's slots from `dstate` (`∂L/∂S_T`) back into it (`∂L/∂S_0`).
pub(super) fn backward(e: &mut Builder, scan: &Scan, chunks: &Chunks) {
    let lane = Lane::define(e, scan);
    let dstate = e.arg("dstate");
    scan.for_heads(e, |e, b, h, hk| {
        let last = lane.load_state(e, &dstate, &[&b, &h]);
        let c0 = e.c0();
        let first = e.fold(&c0, &chunks.count, &refs(&last), |e, ci, grads| {
            let chunk = super::chunk_from_last(e, scan, chunks, &ci);
            recompute_chunk(e, scan, &lane, chunks, &chunk, [&b, &h, &hk]);
            e.fold(&c0, &chunk.len, &refs(&grads), |e, si, grads| {
                let c1 = e.c1();
                let len1 = e.sub(&chunk.len, &c1);
                let s = e.sub(&len1, &si);
                let s1 = e.add(&s, &c1);
                let t = e.add(&chunk.start, &s);
                let at = scan.at(e, &b, &h, &hk, t);
                let prev = lane.load_state(e, &chunks.buffer, &[&b, &h, &s]);
                let grads = readout_backward(e, scan, &lane, &at, [&chunks.buffer, &s1], grads);
                token_backward(e, scan, &lane, &at, &prev, grads)
            })
        });
        lane.store_state(e, &first, &dstate, &[&b, &h]);
    });
}

/// The chunk's states into `buf`: slot 0 from the checkpoint, slot `s + 1` the state
/// after token `start + s`.
fn recompute_chunk(e: &mut Builder, scan: &Scan, lane: &Lane, chunks: &Chunks, chunk: &Chunk, [b, h, hk]: [&Value; 3]) {
    let (ckpt, c0, c1) = (e.arg("ckpt"), e.c0(), e.c1());
    let start = lane.load_state(e, &ckpt, &[b, h, &chunk.index]);
    lane.store_state(e, &start, &chunks.buffer, &[b, h, &c0]);
    e.fold(&c0, &chunk.len, &refs(&start), |e, s, slots| {
        let t = e.add(&chunk.start, &s);
        let at = scan.at(e, b, h, hk, t);
        let slots = update(e, scan, lane, &at, &slots);
        let s1 = e.add(&s, &c1);
        lane.store_state(e, &slots, &chunks.buffer, &[b, h, &s1]);
        slots
    });
}

/// The readout's gradients: `dq_i += scale · Σ_j S_t,ij dO_j` (from the state after the
/// token, `buf[s + 1]`, read only when there is a query) and `dS += scale · q dOᵀ`.
fn readout_backward(
    e: &mut Builder,
    scan: &Scan,
    lane: &Lane,
    at: &At,
    [buffer, s1]: [&Value; 2],
    grads: Slots,
) -> Slots {
    let dout = e.arg("dout");
    let now = scan.spec.query.then(|| lane.load_state(e, buffer, &[&at.b, &at.h, s1]));
    let mut grads = grads;
    // The readers unrolled: `q_per_state` is the spec's.
    for r in 0..scan.spec.q_per_state {
        let r = e.constant_index(r);
        let (qh, oh) = scan.reader(e, at, &r);
        let d_out = e.load(&dout, &[&at.b, &at.t, &oh, &lane.column]);
        if let Some(now) = &now {
            let dq = e.arg("dq");
            for (i, s) in lane.keys.iter().zip(now) {
                let sd = e.mul(s, &d_out);
                let value = e.mul(&scan.scale, &sd);
                scan.add_over_columns(e, &dq, &[&at.b, &at.t, &qh, i], &value);
            }
        }
        let queries = lane.queries(e, scan, at, &qh);
        grads = grads
            .iter()
            .zip(&queries)
            .map(|(d, q)| {
                let qd = e.mul(q, &d_out);
                let scaled = e.mul(&scan.scale, &qd);
                e.add(d, &scaled)
            })
            .collect();
    }
    grads
}

/// The write's and the decay's gradients for one token, from the state before it
/// (`prev`) and the gradient reaching the state after its write (`grads`); returns the
/// gradient reaching the state before it.
fn token_backward(e: &mut Builder, scan: &Scan, lane: &Lane, at: &At, prev: &[Value], grads: Slots) -> Slots {
    let k = e.arg("k");
    let keys = lane.load_row(e, &k, &[&at.b, &at.t, &at.hk]);
    let alphas = lane.alphas(e, scan, at);
    let grads = match scan.spec.update {
        ScanUpdate::Additive => additive_write_backward(e, scan, lane, at, &keys, grads),
        ScanUpdate::Delta => {
            let decayed: Slots = prev.iter().zip(&alphas).map(|(p, a)| decay(e, a, p)).collect();
            delta_write_backward(e, scan, lane, at, [&keys, &decayed], grads)
        }
    };
    if scan.spec.decay == Decay::None {
        return grads;
    }
    decay_backward(e, scan, lane, at, prev, &alphas, grads)
}

/// `dv_j += Σ_i dS_ij k_i`, `dk_i += Σ_j dS_ij v_j`; `dS` passes through unchanged.
fn additive_write_backward(e: &mut Builder, scan: &Scan, lane: &Lane, at: &At, keys: &[Value], grads: Slots) -> Slots {
    let [v, dk, dv] = ["v", "dk", "dv"].map(|arg| e.arg(arg));
    let (b, t, h, hk, j) = (&at.b, &at.t, &at.h, &at.hk, &lane.column);
    let v = e.load(&v, &[b, t, h, j]);
    for (i, d) in lane.keys.iter().zip(&grads) {
        let value = e.mul(d, &v);
        scan.add_over_columns(e, &dk, &[b, t, hk, i], &value);
    }
    let dv_value = column_dot(e, scan, &grads, keys);
    scan.once_per_column(e, |e| e.accumulate(&dv, &[b, t, h, j], &dv_value));
    grads
}

/// The delta write's gradients: with `S'` the decayed previous state, the error
/// `e = v − S'ᵀk` and `du = dSᵀk`: `dβ += Σ_j du_j e_j`, `dv_j += β du_j`,
/// `dk_i += β Σ_j (dS_ij e_j − S'_ij du_j)`; returns `dS − β k duᵀ`, the gradient
/// reaching `S'`.
fn delta_write_backward(
    e: &mut Builder,
    scan: &Scan,
    lane: &Lane,
    at: &At,
    [keys, decayed]: [&[Value]; 2],
    grads: Slots,
) -> Slots {
    let [v, beta, dk, dv, dbeta] = ["v", "beta", "dk", "dv", "dbeta"].map(|arg| e.arg(arg));
    let (b, t, h, hk, j) = (&at.b, &at.t, &at.h, &at.hk, &lane.column);
    let beta = e.load(&beta, &[b, t, h]);
    let read = column_dot(e, scan, decayed, keys);
    let du = column_dot(e, scan, &grads, keys);
    let v = e.load(&v, &[b, t, h, j]);
    let err = e.sub(&v, &read);
    let de = e.mul(&du, &err);
    let de = scan.column_share(e, &de);
    scan.add_over_head(e, &dbeta, &[b, t, h], &de);
    let dv_value = e.mul(&beta, &du);
    scan.once_per_column(e, |e| e.accumulate(&dv, &[b, t, h, j], &dv_value));
    let mut next = Vec::with_capacity(grads.len());
    for (((i, d), sp), k) in lane.keys.iter().zip(&grads).zip(decayed).zip(keys) {
        let [diff, nd] = key_terms(e, [d, &err, &du, sp], [k, &beta]);
        let dk_value = e.mul(&beta, &diff);
        scan.add_over_columns(e, &dk, &[b, t, hk, i], &dk_value);
        next.push(nd);
    }
    next
}

/// The decay's gradients: `dg += α Σ_j dS'_ij S_{t-1,ij}` per key channel (a vector
/// gate) or summed over the head (one decay per head); returns `Diag(α) dS'`.
fn decay_backward(
    e: &mut Builder,
    scan: &Scan,
    lane: &Lane,
    at: &At,
    prev: &[Value],
    alphas: &[Option<Value>],
    grads: Slots,
) -> Slots {
    let dg = e.arg("dg");
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    let mut total = e.zero();
    for ((i, d), (p, a)) in lane.keys.iter().zip(&grads).zip(prev.iter().zip(alphas)) {
        let a = a.as_ref().expect("a decay");
        let dp = e.mul(d, p);
        let value = e.mul(a, &dp);
        match scan.spec.decay {
            Decay::Vector => scan.add_over_columns(e, &dg, &[b, t, hk, i], &value),
            _ => total = e.add(&total, &value),
        }
    }
    match scan.spec.decay {
        Decay::Vector => {}
        Decay::PerHead => scan.add_over_head(e, &dg, &[h], &total),
        Decay::Scalar => scan.add_over_head(e, &dg, &[b, t, h], &total),
        Decay::None => unreachable!("no decay, no gradient"),
    }
    grads.iter().zip(alphas).map(|(d, a)| decay(e, a, d)).collect()
}
