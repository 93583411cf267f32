//! The chunked reverse scan of the additive update with a decay a key channel a token
//! (GLA, HGRN-2): LAYERS.md §11.1 with per-channel `G`. fla splits a chunk's score
//! matrix into sub-blocks so that `e^{−G}` never overflows (§11.2); a thread here forms
//! each score channel by channel with `e^{G_rc − G_sc}`, `s ≤ r`, whose exponent is
//! never positive, so nothing needs a split — at the price of an `exp` a channel a pair.
//! The powers a token and channel takes against the sub-chunk's start and end,
//! `e^{G_rc}` and `e^{G_last,c − G_rc}`, are formed once into tiles beside `G`, so the
//! phases over the state (`dk × width` items, a term a token each) take none. A
//! checkpoint's chunk is walked in sub-chunks of at most [`sub_chunk`] tokens (their
//! start states recomputed into the scratch first, [`super::scratch`]), since those
//! three tiles take a sub-chunk × the key width.
//!
//! One sub-chunk of `n` tokens from the state `S₀`, `G_r` its inclusive cumulative
//! log-decays (a key channel each), `D` the gradient of the state after it:
//!
//! 1. `G`; then `P_rs = scale Σ_c q_rc k_sc e^{G_rc − G_sc}` and `dP_rs = scale dO_r·v_s`
//!    (no decay: it is a key channel's) for `s ≤ r`;
//! 2. `dv_s += Σ_{r≥s} P_rs dO_r + Σ_c k_sc e^{G_last,c − G_sc} D_c,:`;
//! 3. a key channel `c` a thread, tokens last first: `dq_rc`, `dk_rc` (atomic: the other
//!    value blocks add theirs) and the log-decays' gradient
//!    `dg_tc += Σ_{r≥t} (q_rc dq_rc − k_rc dk_rc) + ⟨D, S_end⟩_c`, where the last term,
//!    the sub-chunk's end state's explicit share, is `e^{G_last,c} D_c·S₀_c + Σ_s k_sc dk^D_sc`;
//! 4. `D_c ← e^{G_last,c} D_c + scale Σ_r e^{G_rc} q_rc dO_r`.

use super::scratch::{Sub, start_state, store_end_state, walk_sub_chunks};
use super::{Block, add_query_key_gradients, channel, for_causal_pairs, for_grid, output_value_dot, split, token};
use crate::emit::{Builder, Scalar, Value};

/// The most tokens a sub-chunk takes for a key width `dk`: 32, 16 or 8, the longest
/// whose tiles leave room for a value block of 16 channels in 48 KiB (32 up to a key
/// width of 91, 16 up to 184).
pub fn sub_chunk(dk: u64) -> u64 {
    [32, 16].into_iter().find(|&n| floats_at(n, dk, 16) <= super::SHARED_FLOATS).unwrap_or(8)
}

/// The form's tiles: `G`, `e^G` and `e^{G_last − G}` `[n, DK]`, `P` and `dP [n, n]`, for
/// sub-chunks of `n` tokens.
#[derive(Clone)]
pub(super) struct Tiles {
    sub_chunk: u64,
    g: Value,
    grown: Value,
    to_end: Value,
    p: Value,
    dp: Value,
}

/// The floats of shared memory the form's tiles take for a key width `dk` and a value
/// block `width`, the state gradient's tile included.
pub fn tile_floats(dk: u64, width: u64) -> u64 {
    floats_at(sub_chunk(dk), dk, width)
}

/// [`tile_floats`] at sub-chunks of `n` tokens.
fn floats_at(n: u64, dk: u64, width: u64) -> u64 {
    dk * width + 3 * n * dk + 2 * n * n
}

/// The tiles, made at the top of the function.
pub(super) fn make_tiles(e: &mut Builder, dk: u64) -> Tiles {
    let n = sub_chunk(dk);
    Tiles {
        sub_chunk: n,
        g: e.named("G").tile(Scalar::F32, &[n, dk]),
        grown: e.named("eG").tile(Scalar::F32, &[n, dk]),
        to_end: e.named("eGend").tile(Scalar::F32, &[n, dk]),
        p: e.named("P").tile(Scalar::F32, &[n, n]),
        dp: e.named("dP").tile(Scalar::F32, &[n, n]),
    }
}

/// The sub-chunks of every chunk, last first, for the block (its `D` tile loaded).
pub(super) fn backward(e: &mut Builder, block: &Block, tiles: &Tiles, sizes: [&Value; 3]) {
    let forward = |e: &mut Builder, sub: &Sub| {
        for tile in [&tiles.g, &tiles.grown, &tiles.to_end] {
            e.poison(tile);
        }
        cumulative_decays(e, block, tiles, sub);
        end_state_to_scratch(e, block, tiles, sub);
    };
    let backward = |e: &mut Builder, sub: &Sub| {
        for tile in [&tiles.g, &tiles.grown, &tiles.to_end, &tiles.p, &tiles.dp] {
            e.poison(tile);
        }
        cumulative_decays(e, block, tiles, sub);
        scores(e, block, tiles, sub);
        value_gradients(e, block, tiles, sub);
        key_channel_gradients(e, block, tiles, sub);
        carry_state_gradient(e, block, tiles, sub);
    };
    walk_sub_chunks(e, block, tiles.sub_chunk, sizes, forward, backward);
}

/// Phase: the sub-chunk's end state into the next scratch slot,
/// `S_next,cj = e^{G_last,c} S₀_cj + Σ_s k_sc e^{G_last,c − G_sc} v_sj`.
fn end_state_to_scratch(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &block.dk, &block.width, |e, c, jj| {
        let (j, end) = (channel(e, block, &jj), last(e, sub));
        let written = e.sum(&sub.len, |e, s| {
            let k = token(e, block, &sub.start, "k", s, &c);
            let v = token(e, block, &sub.start, "v", s, &j);
            let decay = e.load(&tiles.to_end, &[s, &c]);
            let k = e.mul(&decay, &k);
            e.mul(&k, &v)
        });
        let s0 = start_state(e, block, sub, &c, &jj);
        let grown = growth(e, tiles, &end, &c);
        let next = e.fma(&grown, &s0, &written);
        store_end_state(e, block, sub, &next, &c, &jj);
    });
}

/// `g[b, t0 + r, h, c]`.
fn log_decay(e: &mut Builder, block: &Block, sub: &Sub, r: &Value, c: &Value) -> Value {
    token(e, block, &sub.start, "g", r, c)
}

/// `e^{G_rc − G_sc}`.
fn decay_between(e: &mut Builder, tiles: &Tiles, r: &Value, s: &Value, c: &Value) -> Value {
    let (gr, gs) = (e.load(&tiles.g, &[r, c]), e.load(&tiles.g, &[s, c]));
    let apart = e.sub(&gr, &gs);
    e.exp(&apart)
}

/// `e^{G_rc}`, from its tile.
fn growth(e: &mut Builder, tiles: &Tiles, r: &Value, c: &Value) -> Value {
    e.load(&tiles.grown, &[r, c])
}

/// The sub-chunk's last token, `n − 1`.
fn last(e: &mut Builder, sub: &Sub) -> Value {
    let c1 = e.c1();
    e.sub(&sub.len, &c1)
}

/// Phase: `G_rc = Σ_{t≤r} g_tc`, `e^{G_rc}` and `e^{G_last,c − G_rc}` (both exponents
/// ≤ 0: nothing overflows).
fn cumulative_decays(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &sub.len, &block.dk, |e, r, c| {
        let c1 = e.c1();
        let through = e.add(&r, &c1);
        let total = e.sum(&through, |e, t| log_decay(e, block, sub, t, &c));
        let after = e.sum_over(&through, &sub.len, |e, t| log_decay(e, block, sub, t, &c));
        e.store(&total, &tiles.g, &[&r, &c]);
        let grown = e.exp(&total);
        e.store(&grown, &tiles.grown, &[&r, &c]);
        let to_end = e.exp(&after);
        e.store(&to_end, &tiles.to_end, &[&r, &c]);
    });
}

/// Phase: `P_rs` and `dP_rs` for `s ≤ r` (the masked triangle is never read).
fn scores(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_causal_pairs(e, &sub.len, |e, r, s| {
        let qk = e.sum_split(&block.dk, split(), |e, c| {
            let q = token(e, block, &sub.start, "q", &r, c);
            let k = token(e, block, &sub.start, "k", &s, c);
            let decay = decay_between(e, tiles, &r, &s, c);
            let qk = e.mul(&q, &k);
            e.mul(&qk, &decay)
        });
        let dov = output_value_dot(e, block, &sub.start, &r, &s);
        let score = e.mul(&block.scale, &qk);
        let d_score = e.mul(&block.scale, &dov);
        e.store(&score, &tiles.p, &[&r, &s]);
        e.store(&d_score, &tiles.dp, &[&r, &s]);
    });
}

/// Phase: `dv_s += Σ_{r≥s} P_rs dO_r + Σ_c k_sc e^{G_last,c − G_sc} D_c,:`.
fn value_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &sub.len, &block.width, |e, s, jj| {
        let j = channel(e, block, &jj);
        let local = e.sum_over(&s, &sub.len, |e, r| {
            let p = e.load(&tiles.p, &[r, &s]);
            let d_o = token(e, block, &sub.start, "dout", r, &j);
            e.mul(&p, &d_o)
        });
        let carried = e.sum_split(&block.dk, split(), |e, c| {
            let k = token(e, block, &sub.start, "k", &s, c);
            let decay = e.load(&tiles.to_end, &[&s, c]);
            let d = e.load(&block.ds, &[c, &jj]);
            let k = e.mul(&k, &decay);
            e.mul(&k, &d)
        });
        let total = e.add(&local, &carried);
        let (dv, t) = (e.arg("dv"), e.add(&sub.start, &s));
        e.accumulate(&dv, &[&block.b, &t, &block.h, &j], &total);
    });
}

/// `e^{G_last,c − G_rc} Σ_j D_cj v_rj`: the share of `dk_rc` from the state after the
/// chunk.
fn carried_key_gradient(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub, r: &Value, c: &Value) -> Value {
    let read = e.sum_split(&block.width, split(), |e, jj| {
        let j = channel(e, block, jj);
        let d = e.load(&block.ds, &[c, jj]);
        let v = token(e, block, &sub.start, "v", r, &j);
        e.mul(&d, &v)
    });
    let decay = e.load(&tiles.to_end, &[r, c]);
    e.mul(&decay, &read)
}

/// Phase, a key channel a thread: the end state's explicit term of the channel's
/// log-decay gradient, then tokens last first: `dq_rc`, `dk_rc` and `dg_rc`, added
/// atomically.
fn key_channel_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    e.for_threads(&block.dk, |e, c| {
        let end = last(e, sub);
        let kept = e.sum_split(&block.width, split(), |e, jj| {
            let d = e.load(&block.ds, &[&c, jj]);
            let s0 = start_state(e, block, sub, &c, jj);
            e.mul(&d, &s0)
        });
        let grown = growth(e, tiles, &end, &c);
        let kept = e.mul(&grown, &kept);
        let written = e.sum(&sub.len, |e, s| {
            let k = token(e, block, &sub.start, "k", s, &c);
            let carried = carried_key_gradient(e, block, tiles, sub, s, &c);
            e.mul(&k, &carried)
        });
        let explicit = e.add(&kept, &written);
        let (c0, zero) = (e.c0(), e.zero());
        e.fold1(&c0, &sub.len, &zero, |e, back, running| {
            let r = e.sub(&end, &back);
            let (dq, dk) = token_gradients(e, block, tiles, sub, &r, &c);
            add_query_key_gradients(e, block, &sub.start, [&r, &c], [&dq, &dk]);
            let (t, dg_arg) = (e.add(&sub.start, &r), e.arg("dg"));
            let q = token(e, block, &sub.start, "q", &r, &c);
            let k = token(e, block, &sub.start, "k", &r, &c);
            let q_dq = e.mul(&q, &dq);
            let k_dk = e.mul(&k, &dk);
            let here = e.sub(&q_dq, &k_dk);
            let running = e.add(&running, &here);
            let dg = e.add(&running, &explicit);
            e.accumulate_shared(&dg_arg, &[&block.b, &t, &block.h, &c], &dg);
            running
        });
    });
}

/// `(dq_rc, dk_rc)` over the block's value channels.
fn token_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub, r: &Value, c: &Value) -> (Value, Value) {
    let from_state = e.sum_split(&block.width, split(), |e, jj| {
        let j = channel(e, block, jj);
        let s0 = start_state(e, block, sub, c, jj);
        let d_o = token(e, block, &sub.start, "dout", r, &j);
        e.mul(&s0, &d_o)
    });
    let grown = growth(e, tiles, r, c);
    let inter = e.mul(&grown, &from_state);
    let c1 = e.c1();
    let through = e.add(r, &c1);
    let intra = e.sum(&through, |e, s| {
        let dp = e.load(&tiles.dp, &[r, s]);
        let k = token(e, block, &sub.start, "k", s, c);
        let decay = decay_between(e, tiles, r, s, c);
        let w = e.mul(&dp, &decay);
        e.mul(&w, &k)
    });
    let dq = e.fma(&block.scale, &inter, &intra);
    let by_output = e.sum_over(r, &sub.len, |e, m| {
        let dp = e.load(&tiles.dp, &[m, r]);
        let q = token(e, block, &sub.start, "q", m, c);
        let decay = decay_between(e, tiles, m, r, c);
        let w = e.mul(&dp, &decay);
        e.mul(&w, &q)
    });
    let carried = carried_key_gradient(e, block, tiles, sub, r, c);
    (dq, e.add(&by_output, &carried))
}

/// Phase: `D_cj ← e^{G_last,c} D_cj + scale Σ_r e^{G_rc} q_rc dO_rj`.
fn carry_state_gradient(e: &mut Builder, block: &Block, tiles: &Tiles, sub: &Sub) {
    for_grid(e, &block.dk, &block.width, |e, c, jj| {
        let j = channel(e, block, &jj);
        let local = e.sum(&sub.len, |e, r| {
            let q = token(e, block, &sub.start, "q", r, &c);
            let d_o = token(e, block, &sub.start, "dout", r, &j);
            let grown = growth(e, tiles, r, &c);
            let q = e.mul(&grown, &q);
            e.mul(&q, &d_o)
        });
        let d = e.load(&block.ds, &[&c, &jj]);
        let end = last(e, sub);
        let grown = growth(e, tiles, &end, &c);
        let kept = e.mul(&grown, &d);
        let next = e.fma(&block.scale, &local, &kept);
        e.store(&next, &block.ds, &[&c, &jj]);
    });
}
