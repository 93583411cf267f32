//! The chunked reverse scan of the delta rule (DeltaNet; GatedDeltaNet with its decay a
//! head a token): LAYERS.md §11.3 – §11.4, with the triangular solves done by
//! substitution, a column a thread, rather than by forming `(I + M)⁻¹`.
//!
//! A checkpoint's chunk is walked in sub-chunks of at most [`SUB_CHUNK`] tokens, so that
//! every tile is small whatever the checkpoint interval: their start states are
//! recomputed first (the checkpoint into the scratch `buf`, slot 0, then each
//! sub-chunk's end into the next slot), then the sub-chunks are walked last first. For
//! one sub-chunk of `n` tokens from state `S₀`, `G` its inclusive cumulative log-decay,
//! `Γ_rs = e^{G_r − G_s}` and the state gradient `D` after it:
//!
//! - forward: `A_rs = k_r·k_s`, `M_rs = β_r Γ_rs A_rs` (`s < r`), `X = S₀ᵀk_r`,
//!   `(I + M) Δ = R` with `R_r = β_r (v_r − e^{G_r} X_r)` solved forward, column by
//!   column; `S_end = e^{G_last} S₀ + Σ_s e^{G_last − G_s} k_s Δ_sᵀ`;
//! - backward: `dΔ_s = Σ_{r≥s} scale Γ_rs (q_r·k_s) dO_r + e^{G_last − G_s} Dᵀk_s`,
//!   `(I + M)ᵀ dR = dΔ` solved backward, `dM_rs = −dR_r·Δ_s`, `dP_rs = scale Γ_rs dO_r·Δ_s`;
//!   then `dv = β dR`, `dq`, `dk`, `dβ` and the log-decays' gradient term by term (below),
//!   and `D ← e^{G_last} D + scale Σ_r e^{G_r} q_r dO_rᵀ − Σ_r β_r e^{G_r} k_r dR_rᵀ`.
//!
//! The block's value channels are a slice of every sum over them (`dM`, `dP`, `dq`,
//! `dk`, `dβ`, the decay's), each linear in them, so each block adds its part
//! atomically; `dv`, the scratch and the state gradient's columns are its own.

use super::scratch::{Sub, start_state, store_end_state, walk_sub_chunks};
use super::{Block, add_query_key_gradients, for_causal_pairs, for_grid, split, token};
use crate::emit::{Builder, Cmp, Scalar, Value};
use crate::scan::{Decay, ScanSpec};

/// The most tokens a sub-chunk takes: its score tiles are `SUB_CHUNK²`.
pub const SUB_CHUNK: u64 = 16;

/// The tiles of one sub-chunk, shared by its phases.
#[derive(Clone)]
pub(super) struct Tiles {
    /// `[SUB_CHUNK]`: the inclusive cumulative log-decay `G`, `e^G` and `e^{G_last − G}`
    /// (formed once a sub-chunk, so the phases over the state take no `exp`), then the
    /// log-decays' gradient.
    g: Value,
    grown: Value,
    to_end: Value,
    dg: Value,
    /// `[SUB_CHUNK, SUB_CHUNK]`: `k_r·k_s`, `M`, `q_r·k_s`, `dM`, `dP`.
    a: Value,
    m: Value,
    qk: Value,
    dm: Value,
    dp: Value,
    /// `[SUB_CHUNK, VB]`: `S₀ᵀk_r`, `Δ`, `dΔ` then `dR`, `S₀ᵀq_r`, `Dᵀk_r`.
    x: Value,
    delta: Value,
    dr: Value,
    y: Value,
    z: Value,
    /// `[VB]`: `Σ_i D_ij S₀_ij`.
    columns: Value,
}

impl Tiles {
    fn all(&self) -> [&Value; 15] {
        let Tiles { g, grown, to_end, dg, a, m, qk, dm, dp, x, delta, dr, y, z, columns } = self;
        [g, grown, to_end, dg, a, m, qk, dm, dp, x, delta, dr, y, z, columns]
    }
}

/// The floats of shared memory the delta rule's tiles take for a key width `dk` and a
/// value block `width`, beside the state gradient's `dk × width`.
pub fn tile_floats(dk: u64, width: u64) -> u64 {
    dk * width + 5 * SUB_CHUNK * SUB_CHUNK + 5 * SUB_CHUNK * width + width + 4 * SUB_CHUNK
}

/// Writes the delta rule's chunked reverse scan for the block `block` (its `D` tile
/// loaded), over checkpoint chunks of `chunk` tokens (`chunks` of them, `time` in all).
pub(super) fn backward(e: &mut Builder, block: &Block, spec: &ScanSpec, sizes: [&Value; 3]) {
    let tiles = block.delta_tiles();
    let forward = |e: &mut Builder, sub: &Sub| {
        recompute(e, block, spec, tiles, sub);
        end_state_to_scratch(e, block, tiles, sub);
    };
    let backward = |e: &mut Builder, sub: &Sub| {
        recompute(e, block, spec, tiles, sub);
        sub_backward(e, block, spec, tiles, sub);
    };
    walk_sub_chunks(e, block, SUB_CHUNK, sizes, forward, backward);
}

/// The tiles, made at the top of the function.
pub(super) fn make_tiles(e: &mut Builder, width: u64) -> Tiles {
    let mut tile = |name: &str, dims: &[u64]| e.named(name).tile(Scalar::F32, dims);
    let square = [SUB_CHUNK, SUB_CHUNK];
    let rows = [SUB_CHUNK, width];
    Tiles {
        g: tile("G", &[SUB_CHUNK]),
        grown: tile("eG", &[SUB_CHUNK]),
        to_end: tile("eGend", &[SUB_CHUNK]),
        dg: tile("dG", &[SUB_CHUNK]),
        a: tile("KK", &square),
        m: tile("M", &square),
        qk: tile("QK", &square),
        dm: tile("dM", &square),
        dp: tile("dP", &square),
        x: tile("X", &rows),
        delta: tile("Delta", &rows),
        dr: tile("dR", &rows),
        y: tile("Y", &rows),
        z: tile("Z", &rows),
        columns: tile("DS0", &[width]),
    }
}

/// `β` of token `start + r`.
fn beta(e: &mut Builder, block: &Block, sub: &Sub, r: &Value) -> Value {
    let memref = e.arg("beta");
    let t = e.add(&sub.start, r);
    e.load(&memref, &[&block.b, &t, &block.h])
}

/// `e^{G_r}`, or 1 without a decay.
fn growth(e: &mut Builder, block: &Block, tiles: &Tiles, r: &Value) -> Value {
    if !block.decayed {
        return e.one();
    }
    e.load(&tiles.grown, &[r])
}

/// `e^{G_last − G_r}`, the decay from token `r` to the sub-chunk's last, or 1 without a
/// decay.
fn decay_to_end(e: &mut Builder, block: &Block, tiles: &Tiles, r: &Value) -> Value {
    if !block.decayed {
        return e.one();
    }
    e.load(&tiles.to_end, &[r])
}

/// `Γ_rs = e^{G_r − G_s}`, or 1 without a decay.
fn gamma(e: &mut Builder, block: &Block, tiles: &Tiles, r: &Value, s: &Value) -> Value {
    if !block.decayed {
        return e.one();
    }
    let (gr, gs) = (e.load(&tiles.g, &[r]), e.load(&tiles.g, &[s]));
    let apart = e.sub(&gr, &gs);
    e.exp(&apart)
}

/// The sub-chunk's last token, `n − 1`.
fn last(e: &mut Builder, sub: &Sub) -> Value {
    let c1 = e.c1();
    e.sub(&sub.len, &c1)
}

/// The phases recomputing a sub-chunk's forward: `G`, `A` and `M` (and `q_r·k_s` for
/// the backward), `X = S₀ᵀk`, then `Δ` by forward substitution, a column a thread.
fn recompute(e: &mut Builder, block: &Block, spec: &ScanSpec, tiles: &Tiles, sub: &Sub) {
    for tile in tiles.all() {
        e.poison(tile);
    }
    if spec.decay == Decay::Scalar {
        e.for_threads(&sub.len, |e, r| {
            let c1 = e.c1();
            let through = e.add(&r, &c1);
            let log_decay = |e: &mut Builder, s: &Value| {
                let g = e.arg("g");
                let t = e.add(&sub.start, s);
                e.load(&g, &[&block.b, &t, &block.h])
            };
            let total = e.sum(&through, log_decay);
            let after = e.sum_over(&through, &sub.len, log_decay);
            e.store(&total, &tiles.g, &[&r]);
            let grown = e.exp(&total);
            e.store(&grown, &tiles.grown, &[&r]);
            let to_end = e.exp(&after);
            e.store(&to_end, &tiles.to_end, &[&r]);
        });
    }
    for_causal_pairs(e, &sub.len, |e, r, s| {
        let (kk, qk) = dots(e, block, sub, &r, &s);
        let beta = beta(e, block, sub, &r);
        let gamma = gamma(e, block, tiles, &r, &s);
        let scaled = e.mul(&beta, &gamma);
        let m = e.mul(&scaled, &kk);
        e.store(&kk, &tiles.a, &[&r, &s]);
        e.store(&m, &tiles.m, &[&r, &s]);
        e.store(&qk, &tiles.qk, &[&r, &s]);
    });
    for_grid(e, &sub.len, &block.width, |e, r, jj| {
        let x = e.sum_split(&block.dk, split(), |e, i| {
            let s0 = start_state(e, block, sub, i, &jj);
            let k = token(e, block, &sub.start, "k", &r, i);
            e.mul(&s0, &k)
        });
        let j = e.add(&block.j0, &jj);
        let v = token(e, block, &sub.start, "v", &r, &j);
        let grown = growth(e, block, tiles, &r);
        let read = e.mul(&grown, &x);
        let error = e.sub(&v, &read);
        let beta = beta(e, block, sub, &r);
        let rhs = e.mul(&beta, &error);
        e.store(&x, &tiles.x, &[&r, &jj]);
        e.store(&rhs, &tiles.delta, &[&r, &jj]);
    });
    e.for_threads(&block.width, |e, jj| {
        let c0 = e.c0();
        e.for_(&c0, &sub.len, |e, r| {
            let earlier = e.sum(&r, |e, s| {
                let m = e.load(&tiles.m, &[&r, s]);
                let d = e.load(&tiles.delta, &[s, &jj]);
                e.mul(&m, &d)
            });
            let rhs = e.load(&tiles.delta, &[&r, &jj]);
            let solved = e.sub(&rhs, &earlier);
            e.store(&solved, &tiles.delta, &[&r, &jj]);
        });
    });
}

/// `(k_r·k_s, q_r·k_s)` over the key channels.
fn dots(e: &mut Builder, block: &Block, sub: &Sub, r: &Value, s: &Value) -> (Value, Value) {
    let c0 = e.c0();
    let sums = e.fold_sums(&c0, &block.dk, split(), 2, |e, i, carried| {
        let ks = token(e, block, &sub.start, "k", s, i);
        let kr = token(e, block, &sub.start, "k", r, i);
        let qr = token(e, block, &sub.start, "q", r, i);
        vec![e.fma(&kr, &ks, &carried[0]), e.fma(&qr, &ks, &carried[1])]
    });
    (sums[0].clone(), sums[1].clone())
}

/// The phase writing the sub-chunk's end state into the next scratch slot:
/// `e^{G_last} S₀ + Σ_s e^{G_last − G_s} k_s Δ_sᵀ`.
fn end_state_to_scratch(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &block.dk, &block.width, |e, i, jj| {
        let end = last(e, sub);
        let written = e.sum(&sub.len, |e, s| {
            let k = token(e, block, &sub.start, "k", s, &i);
            let d = e.load(&tiles.delta, &[s, &jj]);
            let decay = decay_to_end(e, block, tiles, s);
            let k = e.mul(&decay, &k);
            e.mul(&k, &d)
        });
        let s0 = start_state(e, block, sub, &i, &jj);
        let grown = growth(e, block, tiles, &end);
        let next = e.fma(&grown, &s0, &written);
        store_end_state(e, block, sub, &next, &i, &jj);
    });
}

/// The backward phases of one sub-chunk (its forward recomputed in the tiles).
fn sub_backward(e: &mut Builder, block: &Block, spec: &ScanSpec, tiles: &Tiles, sub: &Sub) {
    reads_of_the_states(e, block, tiles, sub);
    delta_gradient(e, block, tiles, sub);
    solve_backward(e, block, tiles, sub);
    pair_gradients(e, block, tiles, sub);
    query_key_gradients(e, block, tiles, sub);
    row_gradients(e, block, spec, tiles, sub);
    if spec.decay == Decay::Scalar {
        decay_gradients(e, block, tiles, sub);
    }
    carry_state_gradient(e, block, tiles, sub);
}

/// Phase: `Y_r = S₀ᵀq_r` and `Z_r = Dᵀk_r`, over the block's columns.
fn reads_of_the_states(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &sub.len, &block.width, |e, r, jj| {
        let c0 = e.c0();
        let sums = e.fold_sums(&c0, &block.dk, split(), 2, |e, i, carried| {
            let s0 = start_state(e, block, sub, i, &jj);
            let q = token(e, block, &sub.start, "q", &r, i);
            let d = e.load(&block.ds, &[i, &jj]);
            let k = token(e, block, &sub.start, "k", &r, i);
            vec![e.fma(&s0, &q, &carried[0]), e.fma(&d, &k, &carried[1])]
        });
        e.store(&sums[0], &tiles.y, &[&r, &jj]);
        e.store(&sums[1], &tiles.z, &[&r, &jj]);
    });
}

/// Phase: `dΔ_s = Σ_{r≥s} scale Γ_rs (q_r·k_s) dO_r + e^{G_last − G_s} Z_s`, into `dR`.
fn delta_gradient(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &sub.len, &block.width, |e, s, jj| {
        let j = e.add(&block.j0, &jj);
        let local = e.sum_over(&s, &sub.len, |e, r| {
            let qk = e.load(&tiles.qk, &[r, &s]);
            let gamma = gamma(e, block, tiles, r, &s);
            let d_o = token(e, block, &sub.start, "dout", r, &j);
            let weight = e.mul(&gamma, &qk);
            e.mul(&weight, &d_o)
        });
        let decay = decay_to_end(e, block, tiles, &s);
        let z = e.load(&tiles.z, &[&s, &jj]);
        let carried = e.mul(&decay, &z);
        let total = e.fma(&block.scale, &local, &carried);
        e.store(&total, &tiles.dr, &[&s, &jj]);
    });
}

/// Phase, a column a thread: `(I + M)ᵀ dR = dΔ` by backward substitution in place,
/// then `dv_r += β_r dR_r`; and the column's `Σ_i D_ij S₀_ij`.
fn solve_backward(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    e.for_threads(&block.width, |e, jj| {
        let (c0, c1) = (e.c0(), e.c1());
        let j = e.add(&block.j0, &jj);
        e.for_(&c0, &sub.len, |e, back| {
            let end = last(e, sub);
            let r = e.sub(&end, &back);
            let after = e.add(&r, &c1);
            let later = e.sum_over(&after, &sub.len, |e, m| {
                let mm = e.load(&tiles.m, &[m, &r]);
                let d = e.load(&tiles.dr, &[m, &jj]);
                e.mul(&mm, &d)
            });
            let rhs = e.load(&tiles.dr, &[&r, &jj]);
            let solved = e.sub(&rhs, &later);
            e.store(&solved, &tiles.dr, &[&r, &jj]);
            let beta = beta(e, block, sub, &r);
            let dv = e.mul(&beta, &solved);
            let (dv_arg, t) = (e.arg("dv"), e.add(&sub.start, &r));
            e.accumulate(&dv_arg, &[&block.b, &t, &block.h, &j], &dv);
        });
        let inner = e.sum_split(&block.dk, split(), |e, i| {
            let d = e.load(&block.ds, &[i, &jj]);
            let s0 = start_state(e, block, sub, i, &jj);
            e.mul(&d, &s0)
        });
        e.store(&inner, &tiles.columns, &[&jj]);
    });
}

/// Phase: `dM_rs = −dR_r·Δ_s` (`s < r`) and `dP_rs = scale Γ_rs dO_r·Δ_s` (`s ≤ r`).
fn pair_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_causal_pairs(e, &sub.len, |e, r, s| {
        let c0 = e.c0();
        let sums = e.fold_sums(&c0, &block.width, split(), 2, |e, jj, carried| {
            let d = e.load(&tiles.delta, &[&s, jj]);
            let dr = e.load(&tiles.dr, &[&r, jj]);
            let j = e.add(&block.j0, jj);
            let d_o = token(e, block, &sub.start, "dout", &r, &j);
            vec![e.fma(&dr, &d, &carried[0]), e.fma(&d_o, &d, &carried[1])]
        });
        let dm = e.neg(&sums[0]);
        let gamma = gamma(e, block, tiles, &r, &s);
        let factor = e.mul(&block.scale, &gamma);
        let dp = e.mul(&factor, &sums[1]);
        e.store(&dm, &tiles.dm, &[&r, &s]);
        e.store(&dp, &tiles.dp, &[&r, &s]);
    });
}

/// Phase: `dq_r` and `dk_r` a (token, key channel) an item, added atomically.
fn query_key_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &sub.len, &block.dk, |e, r, i| {
        let c1 = e.c1();
        let through = e.add(&r, &c1);
        // Σ_j S₀_ij dO_rj, Σ_j D_ij Δ_rj, Σ_j S₀_ij dR_rj.
        let c0 = e.c0();
        let reads = e.fold_sums(&c0, &block.width, split(), 3, |e, jj, carried| {
            let s0 = start_state(e, block, sub, &i, jj);
            let j = e.add(&block.j0, jj);
            let d_o = token(e, block, &sub.start, "dout", &r, &j);
            let d = e.load(&block.ds, &[&i, jj]);
            let delta = e.load(&tiles.delta, &[&r, jj]);
            let dr = e.load(&tiles.dr, &[&r, jj]);
            vec![e.fma(&s0, &d_o, &carried[0]), e.fma(&d, &delta, &carried[1]), e.fma(&s0, &dr, &carried[2])]
        });
        let grown = growth(e, block, tiles, &r);
        let inter = e.mul(&grown, &reads[0]);
        let intra = e.sum(&through, |e, s| {
            let dp = e.load(&tiles.dp, &[&r, s]);
            let k = token(e, block, &sub.start, "k", s, &i);
            e.mul(&dp, &k)
        });
        let dq = e.fma(&block.scale, &inter, &intra);
        let by_output = e.sum_over(&r, &sub.len, |e, m| {
            let dp = e.load(&tiles.dp, &[m, &r]);
            let q = token(e, block, &sub.start, "q", m, &i);
            e.mul(&dp, &q)
        });
        let to_end = decay_to_end(e, block, tiles, &r);
        let by_state = e.mul(&to_end, &reads[1]);
        let beta_r = beta(e, block, sub, &r);
        let read_weight = e.mul(&beta_r, &grown);
        let by_read = e.mul(&read_weight, &reads[2]);
        let earlier = e.sum(&r, |e, s| {
            let dm = e.load(&tiles.dm, &[&r, s]);
            let gamma = gamma(e, block, tiles, &r, s);
            let k = token(e, block, &sub.start, "k", s, &i);
            let w = e.mul(&dm, &gamma);
            e.mul(&w, &k)
        });
        let earlier = e.mul(&beta_r, &earlier);
        let later = e.sum_over(&through, &sub.len, |e, m| {
            let dm = e.load(&tiles.dm, &[m, &r]);
            let gamma = gamma(e, block, tiles, m, &r);
            let beta_m = beta(e, block, sub, m);
            let k = token(e, block, &sub.start, "k", m, &i);
            let w = e.mul(&dm, &gamma);
            let w = e.mul(&w, &beta_m);
            e.mul(&w, &k)
        });
        let dk = e.add(&by_output, &by_state);
        let dk = e.sub(&dk, &by_read);
        let dk = e.add(&dk, &earlier);
        let dk = e.add(&dk, &later);
        add_query_key_gradients(e, block, &sub.start, [&r, &i], [&dq, &dk]);
    });
}

/// Phase, a token an item: `dβ_r` (added atomically) and, with a decay, `∂L/∂G_r` into
/// the `dG` tile.
fn row_gradients(e: &mut Builder, block: &Block, spec: &ScanSpec, tiles: &Tiles, sub: &Sub) {
    e.for_threads(&sub.len, |e, r| {
        let grown = growth(e, block, tiles, &r);
        // Σ_j dR_rj v_rj, Σ_j dR_rj X_rj, Σ_j Y_rj dO_rj, Σ_j Z_rj Δ_rj.
        let c0 = e.c0();
        let sums = e.fold_sums(&c0, &block.width, split(), 4, |e, jj, carried| {
            let j = e.add(&block.j0, jj);
            let dr = e.load(&tiles.dr, &[&r, jj]);
            let v = token(e, block, &sub.start, "v", &r, &j);
            let x = e.load(&tiles.x, &[&r, jj]);
            let y = e.load(&tiles.y, &[&r, jj]);
            let d_o = token(e, block, &sub.start, "dout", &r, &j);
            let z = e.load(&tiles.z, &[&r, jj]);
            let delta = e.load(&tiles.delta, &[&r, jj]);
            vec![
                e.fma(&dr, &v, &carried[0]),
                e.fma(&dr, &x, &carried[1]),
                e.fma(&y, &d_o, &carried[2]),
                e.fma(&z, &delta, &carried[3]),
            ]
        });
        let read = e.mul(&grown, &sums[1]);
        let by_rhs = e.sub(&sums[0], &read);
        let by_pairs = e.sum(&r, |e, s| {
            let dm = e.load(&tiles.dm, &[&r, s]);
            let a = e.load(&tiles.a, &[&r, s]);
            let gamma = gamma(e, block, tiles, &r, s);
            let w = e.mul(&dm, &a);
            e.mul(&w, &gamma)
        });
        let dbeta = e.add(&by_rhs, &by_pairs);
        let (dbeta_arg, t) = (e.arg("dbeta"), e.add(&sub.start, &r));
        e.accumulate_shared(&dbeta_arg, &[&block.b, &t, &block.h], &dbeta);
        if spec.decay != Decay::Scalar {
            return;
        }
        let beta_r = beta(e, block, sub, &r);
        let read_term = e.mul(&beta_r, &read);
        let output_term = e.mul(&grown, &sums[2]);
        let output_term = e.mul(&block.scale, &output_term);
        let pair_terms = pair_decay_terms(e, tiles, sub, &r);
        let end = last(e, sub);
        let to_end = decay_to_end(e, block, tiles, &r);
        let state_term = e.mul(&to_end, &sums[3]);
        let total = e.sub(&output_term, &read_term);
        let total = e.add(&total, &pair_terms);
        let total = e.sub(&total, &state_term);
        let is_last = e.cmp(Cmp::Eq, &r, &end);
        let explicit = e.if_else_value(&is_last, Scalar::F32, |e| end_state_inner(e, block, tiles, sub), |e| e.zero());
        let total = e.add(&total, &explicit);
        e.store(&total, &tiles.dg, &[&r]);
    });
}

/// `Σ_{s<r} dM_rs M_rs − Σ_{m>r} dM_mr M_mr + Σ_{s≤r} dP_rs QK_rs − Σ_{m≥r} dP_mr QK_mr`:
/// the pairs' terms of `∂L/∂G_r`.
fn pair_decay_terms(e: &mut Builder, tiles: &Tiles, sub: &Sub, r: &Value) -> Value {
    let c1 = e.c1();
    let (through, after) = (e.add(r, &c1), e.add(r, &c1));
    let as_row = e.sum(&through, |e, s| {
        let (dp, qk) = (e.load(&tiles.dp, &[r, s]), e.load(&tiles.qk, &[r, s]));
        let output = e.mul(&dp, &qk);
        let strictly = e.cmp(Cmp::Lt, s, r);
        let (dm, m) = (e.load(&tiles.dm, &[r, s]), e.load(&tiles.m, &[r, s]));
        let pair = e.mul(&dm, &m);
        let zero = e.zero();
        let pair = e.select(&strictly, &pair, &zero);
        e.add(&output, &pair)
    });
    let as_column = e.sum_over(r, &sub.len, |e, m| {
        let (dp, qk) = (e.load(&tiles.dp, &[m, r]), e.load(&tiles.qk, &[m, r]));
        let output = e.mul(&dp, &qk);
        let strictly = e.cmp(Cmp::Ge, m, &after);
        let (dm, mm) = (e.load(&tiles.dm, &[m, r]), e.load(&tiles.m, &[m, r]));
        let pair = e.mul(&dm, &mm);
        let zero = e.zero();
        let pair = e.select(&strictly, &pair, &zero);
        e.add(&output, &pair)
    });
    e.sub(&as_row, &as_column)
}

/// `⟨D, S_end⟩ = e^{G_last} Σ_j (Σ_i D_ij S₀_ij) + Σ_s e^{G_last − G_s} Z_s·Δ_s`: the
/// last token's explicit term of `∂L/∂G`.
fn end_state_inner(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) -> Value {
    let end = last(e, sub);
    let kept = e.sum(&block.width, |e, jj| e.load(&tiles.columns, &[jj]));
    let grown = growth(e, block, tiles, &end);
    let kept = e.mul(&grown, &kept);
    let written = e.sum(&sub.len, |e, s| {
        let zd = e.sum_split(&block.width, split(), |e, jj| {
            let z = e.load(&tiles.z, &[s, jj]);
            let d = e.load(&tiles.delta, &[s, jj]);
            e.mul(&z, &d)
        });
        let decay = decay_to_end(e, block, tiles, s);
        e.mul(&decay, &zd)
    });
    e.add(&kept, &written)
}

/// Phase: the log-decays' gradient `dg_t += Σ_{r≥t} ∂L/∂G_r` (a reverse cumulative sum
/// over the sub-chunk), added atomically.
fn decay_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    e.for_threads(&sub.len, |e, t| {
        let total = e.sum_over(&t, &sub.len, |e, r| e.load(&tiles.dg, &[r]));
        let (dg, at) = (e.arg("dg"), e.add(&sub.start, &t));
        e.accumulate_shared(&dg, &[&block.b, &at, &block.h], &total);
    });
}

/// Phase: `D ← e^{G_last} D + scale Σ_r e^{G_r} q_r dO_rᵀ − Σ_r β_r e^{G_r} k_r dR_rᵀ`.
fn carry_state_gradient(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &block.dk, &block.width, |e, i, jj| {
        let j = e.add(&block.j0, &jj);
        let c0 = e.c0();
        let sums = e.fold_sums(&c0, &sub.len, split(), 2, |e, r, carried| {
            let grown = growth(e, block, tiles, r);
            let q = token(e, block, &sub.start, "q", r, &i);
            let d_o = token(e, block, &sub.start, "dout", r, &j);
            let k = token(e, block, &sub.start, "k", r, &i);
            let dr = e.load(&tiles.dr, &[r, &jj]);
            let beta = beta(e, block, sub, r);
            let q = e.mul(&grown, &q);
            let k = e.mul(&grown, &k);
            let k = e.mul(&beta, &k);
            vec![e.fma(&q, &d_o, &carried[0]), e.fma(&k, &dr, &carried[1])]
        });
        let d = e.load(&block.ds, &[&i, &jj]);
        let end = last(e, sub);
        let grown = growth(e, block, tiles, &end);
        let kept = e.mul(&grown, &d);
        let next = e.fma(&block.scale, &sums[0], &kept);
        let next = e.sub(&next, &sums[1]);
        e.store(&next, &block.ds, &[&i, &jj]);
    });
}
