//! The CPU's form of a token's step (`Parallel::Parts`: one call walks every head): whole rows of
//! the state at a time, unit stride along the value channels so the inner loops
//! vectorise, with the passes over the state fused as far as each pass's inputs allow.
//! Forward, delta rule: the decay and the read `S'ᵀk` in one pass, the write and the
//! readout in a second (four passes before); additive: decay, write and readout in one
//! (three before). The reverse scan's recomputed states take the same update without
//! the readout. The reverse step of a token read by one query head: delta rule, the
//! readout's gradient with the two reads (`S'ᵀk`, `dSᵀk`), then the key gradients with
//! the decay's (four passes before); additive, all of it in one pass (three before).
//! Each fused pass does the same arithmetic, in the same order per element, as the
//! passes it replaces.

use super::{
    At, Decay, Place, Scan, ScanUpdate, TokenStates, delta_update_from_read, delta_value_gradients, key_terms, written,
};
use crate::emit::{Builder, Value};

/// Whether the readout can ride along the forward's last pass: one query head reads
/// the state (its output head then `h`, its query head `hk`), and `o` holds the
/// arithmetic's type (a narrower `o` is summed per column in a register instead).
pub(super) fn fuses_readout(e: &mut Builder, scan: &Scan) -> bool {
    scan.spec.q_per_state == 1 && e.arg("o").memref().0 == e.compute()
}

/// One token's update from `src` into `dst` (the same place when `in_place`):
/// `dst = Diag(α) src`, then the additive or delta write; with `readout` also
/// `o = scale · dstᵀ q` ([`fuses_readout`] must hold).
pub(super) fn update(e: &mut Builder, scan: &Scan, at: &At, [src, dst]: [&Place; 2], in_place: bool, readout: bool) {
    if readout {
        let o = e.arg("o");
        scan.for_values(e, |e, j| {
            let zero = e.zero();
            e.store(&zero, &o, &[&at.b, &at.t, &at.h, &j]);
        });
    }
    match scan.spec.update {
        ScanUpdate::Additive => write(e, scan, at, Some(src), dst, readout),
        ScanUpdate::Delta => {
            decay_and_read(e, scan, at, src, dst, in_place);
            write(e, scan, at, None, dst, readout);
        }
    }
}

/// `src[i, j]`, times `α_i` when there is a decay.
fn decayed(e: &mut Builder, alpha: &Option<Value>, src: &Place, i: &Value, j: &Value) -> Value {
    let s = src.load(e, i, j);
    match alpha {
        Some(a) => e.mul(a, &s),
        None => s,
    }
}

/// The delta rule's first pass: `dst = Diag(α) src` (nothing to store in place without
/// a decay) and `u = S'ᵀk` accumulated row by row; then `u = β (v − u)`.
fn decay_and_read(e: &mut Builder, scan: &Scan, at: &At, src: &Place, dst: &Place, in_place: bool) {
    let (k, beta) = (e.arg("k"), e.arg("beta"));
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    let u = scan.u();
    let beta = e.load(&beta, &[b, t, h]);
    scan.zero_vector(e, u);
    scan.for_keys(e, |e, i| {
        let alpha = scan.alpha(e, at, &i);
        let k = e.load(&k, &[b, t, hk, &i]);
        scan.for_values(e, |e, j| {
            let s = decayed(e, &alpha, src, &i, &j);
            if !(in_place && alpha.is_none()) {
                dst.store(e, &s, &i, &j);
            }
            let sk = e.mul(&s, &k);
            e.accumulate(u, &[&j], &sk);
        });
    });
    delta_update_from_read(e, scan, at, &beta);
}

/// `dst = S + k wᵀ` with `S = Diag(α) from` when `from` is given (the additive rule's
/// one pass), else `dst` itself (the delta rule's second), and `w = v` (additive) or
/// `u` (delta); with `readout`, `o += (scale · q_i) dst_i,:` row by row.
fn write(e: &mut Builder, scan: &Scan, at: &At, from: Option<&Place>, dst: &Place, readout: bool) {
    let k = e.arg("k");
    let o = readout.then(|| e.arg("o"));
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    scan.for_keys(e, |e, i| {
        let alpha = if from.is_some() { scan.alpha(e, at, &i) } else { None };
        let k = e.load(&k, &[b, t, hk, &i]);
        let query = o.as_ref().map(|o| {
            let q = scan.query(e, at, hk, &i);
            (o, e.mul(&scan.scale, &q))
        });
        scan.for_values(e, |e, j| {
            let s = decayed(e, &alpha, from.unwrap_or(dst), &i, &j);
            let next = written(e, scan, at, [&s, &k], &j);
            dst.store(e, &next, &i, &j);
            if let Some((o, query)) = &query {
                let sq = e.mul(&next, query);
                e.accumulate(o, &[b, t, h, &j], &sq);
            }
        });
    });
}

/// Whether a token's reverse step fuses: one query head reads the state (its query
/// head is then `hk`, its output head `h`).
pub(super) fn fuses_backward(scan: &Scan) -> bool {
    scan.spec.q_per_state == 1
}

/// One token of the reverse scan ([`fuses_backward`] must hold).
pub(super) fn token_backward(e: &mut Builder, scan: &Scan, at: &At, states: &TokenStates) {
    match scan.spec.update {
        ScanUpdate::Additive => additive_backward(e, scan, at, states),
        ScanUpdate::Delta => {
            let beta = e.arg("beta");
            let beta = e.load(&beta, &[&at.b, &at.t, &at.h]);
            readout_and_reads(e, scan, at, states);
            delta_value_gradients(e, scan, at, &beta);
            key_and_decay_gradients(e, scan, at, &beta, states);
        }
    }
}

/// The readout's gradient at `(i, j)`: `dS_ij += scale · q_i dO_j`, stored; gives the
/// new `dS_ij` and `S_t,ij dO_j` (a term of `dq_i`).
fn readout_gradient(
    e: &mut Builder,
    scan: &Scan,
    at: &At,
    states: &TokenStates,
    q: &Value,
    [i, j]: [&Value; 2],
) -> [Value; 2] {
    let dout = e.arg("dout");
    let st = states.now.load(e, i, j);
    let d_out = e.load(&dout, &[&at.b, &at.t, &at.h, j]);
    let sd = e.mul(&st, &d_out);
    let qd = e.mul(q, &d_out);
    let scaled = e.mul(&scan.scale, &qd);
    let old = states.ds.load(e, i, j);
    let d = e.add(&old, &scaled);
    states.ds.store(e, &d, i, j);
    [d, sd]
}

/// `dq_i += scale · Σ_j S_t,ij dO_j`, when the readout has a query.
fn add_dq(e: &mut Builder, scan: &Scan, at: &At, i: &Value, dot: &Value) {
    if !scan.spec.query {
        return;
    }
    let dq = e.arg("dq");
    let dq_value = e.mul(&scan.scale, dot);
    scan.add_over_columns(e, &dq, &[&at.b, &at.t, &at.hk, i], &dq_value);
}

/// `Σ_j body(j, carried)` over the row's value channels, each of `count` sums from 0.
fn row_sums(
    e: &mut Builder,
    scan: &Scan,
    count: usize,
    body: impl FnOnce(&mut Builder, &Value, &[Value]) -> Vec<Value>,
) -> Vec<Value> {
    let zero = e.zero();
    let inits = vec![&zero; count];
    let (from, to) = &scan.columns;
    e.fold(from, to, &inits, |e, j, carried| body(e, &j, &carried))
}

/// `body(i, α_i)` for every row `i` of the state; the body returns, where there is a
/// decay, the row's `Σ_j dS'_ij S_{t-1,ij}`, and `α_i` times it is the decay's
/// gradient: added per key channel (a vector gate), or summed over the rows in a
/// register and added once (one decay per head or per token).
fn rows_with_decay_gradient(
    e: &mut Builder,
    scan: &Scan,
    at: &At,
    body: impl FnOnce(&mut Builder, &Value, &Option<Value>) -> Option<Value>,
) {
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    let at_head: Vec<&Value> = match scan.spec.decay {
        Decay::None | Decay::Vector => {
            return scan.for_keys(e, |e, i| {
                let alpha = scan.alpha(e, at, &i);
                let dot = body(e, &i, &alpha);
                if let (Some(a), Some(dot)) = (&alpha, dot) {
                    let dg = e.arg("dg");
                    let dg_value = e.mul(a, &dot);
                    scan.add_over_columns(e, &dg, &[b, t, hk, &i], &dg_value);
                }
            });
        }
        Decay::PerHead => vec![h],
        Decay::Scalar => vec![b, t, h],
    };
    let zero = e.zero();
    let total = scan.fold_keys(e, &[&zero], |e, i, carried| {
        let alpha = scan.alpha(e, at, &i);
        let dot = body(e, &i, &alpha).expect("a decay's row sum");
        let dg_value = e.mul(alpha.as_ref().expect("a decay"), &dot);
        vec![e.add(&carried[0], &dg_value)]
    });
    let dg = e.arg("dg");
    scan.add_over_head(e, &dg, &at_head, &total[0]);
}

/// With a decay (`α_i`, the previous state's `S_{t-1,ij}` and the row's running sum of
/// the decay's gradient): `dS_{t-1,ij} = α_i dS'_ij` stored and the sum plus
/// `dS'_ij S_{t-1,ij}` pushed onto `next`; without, `dS'_ij` stored as it is.
fn decay_gradient(
    e: &mut Builder,
    states: &TokenStates,
    [i, j]: [&Value; 2],
    d: &Value,
    decay: Option<(&Value, &Value, &Value)>,
    next: &mut Vec<Value>,
) {
    let Some((a, p, carried)) = decay else { return states.ds.store(e, d, i, j) };
    let dp = e.mul(d, p);
    let nd = e.mul(a, d);
    states.ds.store(e, &nd, i, j);
    next.push(e.add(carried, &dp));
}

/// The additive rule's reverse step in one pass: per row, the readout's gradient, then
/// `dv_j += dS_ij k_i`, `dk_i += Σ_j dS_ij v_j`, then the decay's.
fn additive_backward(e: &mut Builder, scan: &Scan, at: &At, states: &TokenStates) {
    let [k, v, dk, dv] = ["k", "v", "dk", "dv"].map(|arg| e.arg(arg));
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    let count = if scan.spec.decay == Decay::None { 2 } else { 3 };
    rows_with_decay_gradient(e, scan, at, |e, i, alpha| {
        let q = scan.query(e, at, hk, i);
        let k = e.load(&k, &[b, t, hk, i]);
        let sums = row_sums(e, scan, count, |e, j, carried| {
            let [d, sd] = readout_gradient(e, scan, at, states, &q, [i, j]);
            let v = e.load(&v, &[b, t, h, j]);
            let dv_value = e.mul(&d, &k);
            e.accumulate(&dv, &[b, t, h, j], &dv_value);
            let dk_term = e.mul(&d, &v);
            let mut next = vec![e.add(&carried[0], &sd), e.add(&carried[1], &dk_term)];
            let p = alpha.is_some().then(|| states.prev.load(e, i, j));
            let decay = alpha.as_ref().zip(p.as_ref()).map(|(a, p)| (a, p, &carried[2]));
            decay_gradient(e, states, [i, j], &d, decay, &mut next);
            next
        });
        add_dq(e, scan, at, i, &sums[0]);
        scan.add_over_columns(e, &dk, &[b, t, hk, i], &sums[1]);
        sums.get(2).cloned()
    });
}

/// The delta rule's first reverse pass: per row, the readout's gradient, and the two
/// reads `u = S'ᵀk`, `du = dSᵀk` accumulated row by row.
fn readout_and_reads(e: &mut Builder, scan: &Scan, at: &At, states: &TokenStates) {
    let k = e.arg("k");
    let (b, t, hk) = (&at.b, &at.t, &at.hk);
    let (u, du) = (scan.u(), scan.du());
    scan.zero_vector(e, u);
    scan.zero_vector(e, du);
    scan.for_keys(e, |e, i| {
        let alpha = scan.alpha(e, at, &i);
        let q = scan.query(e, at, hk, &i);
        let k = e.load(&k, &[b, t, hk, &i]);
        let sums = row_sums(e, scan, 1, |e, j, carried| {
            let [d, sd] = readout_gradient(e, scan, at, states, &q, [&i, j]);
            let sp = decayed(e, &alpha, &states.prev, &i, j);
            let spk = e.mul(&sp, &k);
            e.accumulate(u, &[j], &spk);
            let dk = e.mul(&d, &k);
            e.accumulate(du, &[j], &dk);
            vec![e.add(&carried[0], &sd)]
        });
        add_dq(e, scan, at, &i, &sums[0]);
    });
}

/// The delta rule's second reverse pass: per row, `dk_i += β Σ_j (dS_ij e_j − S'_ij
/// du_j)` and `dS'_ij = dS_ij − β k_i du_j`, then the decay's gradient from `dS'`.
fn key_and_decay_gradients(e: &mut Builder, scan: &Scan, at: &At, beta: &Value, states: &TokenStates) {
    let [k, dk] = ["k", "dk"].map(|arg| e.arg(arg));
    let (b, t, hk) = (&at.b, &at.t, &at.hk);
    let (u, du) = (scan.u(), scan.du());
    let count = if scan.spec.decay == Decay::None { 1 } else { 2 };
    rows_with_decay_gradient(e, scan, at, |e, i, alpha| {
        let k = e.load(&k, &[b, t, hk, i]);
        let sums = row_sums(e, scan, count, |e, j, carried| {
            let d = states.ds.load(e, i, j);
            let err = e.load(u, &[j]);
            let du = e.load(du, &[j]);
            let p = states.prev.load(e, i, j);
            let sp = match alpha {
                Some(a) => e.mul(a, &p),
                None => p.clone(),
            };
            let [diff, nd] = key_terms(e, [&d, &err, &du, &sp], [&k, beta]);
            let mut next = vec![e.add(&carried[0], &diff)];
            let decay = alpha.as_ref().map(|a| (a, &p, &carried[1]));
            decay_gradient(e, states, [i, j], &nd, decay, &mut next);
            next
        });
        let dk_value = e.mul(beta, &sums[0]);
        scan.add_over_columns(e, &dk, &[b, t, hk, i], &dk_value);
        sums.get(1).cloned()
    });
}
