//! The CPU's form of a token's step (no lanes: one call walks every head): whole rows of
//! the state at a time, unit stride along the value channels so the inner loops
//! vectorise, with the passes over the state fused as far as each pass's inputs allow.
//! Forward, delta rule: the decay and the read `S'ᵀk` in one pass, the write and the
//! readout in a second (four passes before); additive: decay, write and readout in one
//! (three before). The reverse scan's recomputed states take the same update without
//! the readout.

use super::{At, Place, Scan, ScanUpdate};
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
    let (k, v, beta) = (e.arg("k"), e.arg("v"), e.arg("beta"));
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
    scan.for_values(e, |e, j| {
        let read = e.load(u, &[&j]);
        let v = e.load(&v, &[b, t, h, &j]);
        let error = e.sub(&v, &read);
        let update = e.mul(&beta, &error);
        e.store(&update, u, &[&j]);
    });
}

/// `dst = S + k wᵀ` with `S = Diag(α) from` when `from` is given (the additive rule's
/// one pass), else `dst` itself (the delta rule's second), and `w = v` (additive) or
/// `u` (delta); with `readout`, `o += (scale · q_i) dst_i,:` row by row.
fn write(e: &mut Builder, scan: &Scan, at: &At, from: Option<&Place>, dst: &Place, readout: bool) {
    let (k, v) = (e.arg("k"), e.arg("v"));
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
            let w = match scan.spec.update {
                ScanUpdate::Additive => e.load(&v, &[b, t, h, &j]),
                ScanUpdate::Delta => e.load(scan.u(), &[&j]),
            };
            let kw = e.mul(&k, &w);
            let next = e.add(&s, &kw);
            dst.store(e, &next, &i, &j);
            if let Some((o, query)) = &query {
                let sq = e.mul(&next, query);
                e.accumulate(o, &[b, t, h, &j], &sq);
            }
        });
    });
}
