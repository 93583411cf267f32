//! The chunked reverse scan of the additive update with a decay a key channel a token
//! (GLA, HGRN-2): LAYERS.md §11.1 with per-channel `G`. fla splits a chunk's score
//! matrix into sub-blocks so that `e^{−G}` never overflows (§11.2); a thread here forms
//! each score channel by channel with `e^{G_rc − G_sc}`, `s ≤ r`, whose exponent is
//! never positive, so a chunk needs no split — at the price of an `exp` a channel a pair.
//!
//! One chunk of `n` tokens from the checkpoint `S₀`, `G_r` its inclusive cumulative
//! log-decays (a key channel each), `D` the gradient of the state after it:
//!
//! 1. `G`; then `P_rs = scale Σ_c q_rc k_sc e^{G_rc − G_sc}` and `dP_rs = scale dO_r·v_s`
//!    (no decay: it is a key channel's) for `s ≤ r`;
//! 2. `dv_s += Σ_{r≥s} P_rs dO_r + Σ_c k_sc e^{G_last,c − G_sc} D_c,:`;
//! 3. a key channel `c` a thread, tokens last first: `dq_rc`, `dk_rc` (atomic: the other
//!    value blocks add theirs) and the log-decays' gradient
//!    `dg_tc += Σ_{r≥t} (q_rc dq_rc − k_rc dk_rc) + ⟨D, S_end⟩_c`, where the last term,
//!    the chunk's end state's explicit share, is `e^{G_last,c} D_c·S₀_c + Σ_s k_sc dk^D_sc`;
//! 4. `D_c ← e^{G_last,c} D_c + scale Σ_r e^{G_rc} q_rc dO_r`.

use super::{Block, Chunk, channel, chunk_at, split, token};
use crate::emit::{Builder, Cmp, Scalar, Value};

/// The longest chunk the per-channel form takes: its `G` tile is `chunk × DK`.
pub const MAX_VECTOR_CHUNK: u64 = 32;

/// The form's tiles: `G [chunk, DK]`, `P` and `dP [chunk, chunk]`.
#[derive(Clone)]
pub(super) struct Tiles {
    g: Value,
    p: Value,
    dp: Value,
}

/// The floats of shared memory the form's tiles take for a key width `dk` and a value
/// block `width`, the state gradient's tile included.
pub fn tile_floats(dk: u64, width: u64) -> u64 {
    dk * width + MAX_VECTOR_CHUNK * dk + 2 * MAX_VECTOR_CHUNK * MAX_VECTOR_CHUNK
}

/// The tiles, made at the top of the function.
pub(super) fn make_tiles(e: &mut Builder, dk: u64) -> Tiles {
    let chunk = MAX_VECTOR_CHUNK;
    Tiles {
        g: e.named("G").tile(Scalar::F32, &[chunk, dk]),
        p: e.named("P").tile(Scalar::F32, &[chunk, chunk]),
        dp: e.named("dP").tile(Scalar::F32, &[chunk, chunk]),
    }
}

/// The chunks, last first, for the block (its `D` tile loaded).
pub(super) fn backward(e: &mut Builder, block: &Block, tiles: &Tiles, [chunk, chunks, time]: [&Value; 3]) {
    let c0 = e.c0();
    e.for_(&c0, chunks, |e, back| {
        let chunk = chunk_at(e, chunks, &back, chunk, time);
        for tile in [&tiles.g, &tiles.p, &tiles.dp] {
            e.poison(tile);
        }
        cumulative_decays(e, block, tiles, &chunk);
        scores(e, block, tiles, &chunk);
        value_gradients(e, block, tiles, &chunk);
        key_channel_gradients(e, block, tiles, &chunk);
        carry_state_gradient(e, block, tiles, &chunk);
    });
}

/// `g[b, t0 + r, h, c]`.
fn log_decay(e: &mut Builder, block: &Block, chunk: &Chunk, r: &Value, c: &Value) -> Value {
    token(e, block, chunk, "g", r, c)
}

/// `e^{G_rc − G_sc}`.
fn decay_between(e: &mut Builder, tiles: &Tiles, r: &Value, s: &Value, c: &Value) -> Value {
    let (gr, gs) = (e.load(&tiles.g, &[r, c]), e.load(&tiles.g, &[s, c]));
    let apart = e.sub(&gr, &gs);
    e.exp(&apart)
}

/// `e^{G_rc}`.
fn growth(e: &mut Builder, tiles: &Tiles, r: &Value, c: &Value) -> Value {
    let g = e.load(&tiles.g, &[r, c]);
    e.exp(&g)
}

/// The chunk's last token, `n − 1`.
fn last(e: &mut Builder, chunk: &Chunk) -> Value {
    let c1 = e.c1();
    e.sub(&chunk.len, &c1)
}

/// Phase: `G_rc = Σ_{t≤r} g_tc`.
fn cumulative_decays(e: &mut Builder, block: &Block, tiles: &Tiles, chunk: &Chunk) {
    let items = e.mul(&chunk.len, &block.dk);
    e.for_threads(&items, |e, item| {
        let (r, c) = split(e, &item, &block.dk);
        let c1 = e.c1();
        let through = e.add(&r, &c1);
        let total = e.sum(&through, |e, t| log_decay(e, block, chunk, t, &c));
        e.store(&total, &tiles.g, &[&r, &c]);
    });
}

/// Phase: `P_rs` and `dP_rs` for `s ≤ r` (the masked triangle is never read).
fn scores(e: &mut Builder, block: &Block, tiles: &Tiles, chunk: &Chunk) {
    let items = e.mul(&chunk.len, &chunk.len);
    e.for_threads(&items, |e, item| {
        let (r, s) = split(e, &item, &chunk.len);
        let causal = e.cmp(Cmp::Le, &s, &r);
        e.if_(&causal, |e| {
            let qk = e.sum(&block.dk, |e, c| {
                let q = token(e, block, chunk, "q", &r, c);
                let k = token(e, block, chunk, "k", &s, c);
                let decay = decay_between(e, tiles, &r, &s, c);
                let qk = e.mul(&q, &k);
                e.mul(&qk, &decay)
            });
            let dov = e.sum(&block.width, |e, jj| {
                let j = channel(e, block, jj);
                let d_o = token(e, block, chunk, "dout", &r, &j);
                let v = token(e, block, chunk, "v", &s, &j);
                e.mul(&d_o, &v)
            });
            let score = e.mul(&block.scale, &qk);
            let d_score = e.mul(&block.scale, &dov);
            e.store(&score, &tiles.p, &[&r, &s]);
            e.store(&d_score, &tiles.dp, &[&r, &s]);
        });
    });
}

/// Phase: `dv_s += Σ_{r≥s} P_rs dO_r + Σ_c k_sc e^{G_last,c − G_sc} D_c,:`.
fn value_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, chunk: &Chunk) {
    let items = e.mul(&chunk.len, &block.width);
    e.for_threads(&items, |e, item| {
        let (s, jj) = split(e, &item, &block.width);
        let j = channel(e, block, &jj);
        let local = e.sum_over(&s, &chunk.len, |e, r| {
            let p = e.load(&tiles.p, &[r, &s]);
            let d_o = token(e, block, chunk, "dout", r, &j);
            e.mul(&p, &d_o)
        });
        let end = last(e, chunk);
        let carried = e.sum(&block.dk, |e, c| {
            let k = token(e, block, chunk, "k", &s, c);
            let decay = decay_between(e, tiles, &end, &s, c);
            let d = e.load(&block.ds, &[c, &jj]);
            let k = e.mul(&k, &decay);
            e.mul(&k, &d)
        });
        let total = e.add(&local, &carried);
        let (dv, t) = (e.arg("dv"), e.add(&chunk.start, &s));
        e.accumulate(&dv, &[&block.b, &t, &block.h, &j], &total);
    });
}

/// `e^{G_last,c − G_rc} Σ_j D_cj v_rj`: the share of `dk_rc` from the state after the
/// chunk.
fn carried_key_gradient(e: &mut Builder, block: &Block, tiles: &Tiles, chunk: &Chunk, r: &Value, c: &Value) -> Value {
    let read = e.sum(&block.width, |e, jj| {
        let j = channel(e, block, jj);
        let d = e.load(&block.ds, &[c, jj]);
        let v = token(e, block, chunk, "v", r, &j);
        e.mul(&d, &v)
    });
    let end = last(e, chunk);
    let decay = decay_between(e, tiles, &end, r, c);
    e.mul(&decay, &read)
}

/// Phase, a key channel a thread: the end state's explicit term of the channel's
/// log-decay gradient, then tokens last first: `dq_rc`, `dk_rc` and `dg_rc`, added
/// atomically.
fn key_channel_gradients(e: &mut Builder, block: &Block, tiles: &Tiles, chunk: &Chunk) {
    e.for_threads(&block.dk, |e, c| {
        let end = last(e, chunk);
        let kept = e.sum(&block.width, |e, jj| {
            let j = channel(e, block, jj);
            let d = e.load(&block.ds, &[&c, jj]);
            let ckpt = e.arg("ckpt");
            let s0 = e.load(&ckpt, &[&block.b, &block.h, &chunk.index, &c, &j]);
            e.mul(&d, &s0)
        });
        let grown = growth(e, tiles, &end, &c);
        let kept = e.mul(&grown, &kept);
        let written = e.sum(&chunk.len, |e, s| {
            let k = token(e, block, chunk, "k", s, &c);
            let carried = carried_key_gradient(e, block, tiles, chunk, s, &c);
            e.mul(&k, &carried)
        });
        let explicit = e.add(&kept, &written);
        let (c0, zero) = (e.c0(), e.zero());
        e.fold1(&c0, &chunk.len, &zero, |e, back, running| {
            let r = e.sub(&end, &back);
            let (dq, dk) = token_gradients(e, block, tiles, chunk, &r, &c);
            let t = e.add(&chunk.start, &r);
            let (dq_arg, dk_arg, dg_arg) = (e.arg("dq"), e.arg("dk"), e.arg("dg"));
            e.accumulate_shared(&dq_arg, &[&block.b, &t, &block.h, &c], &dq);
            e.accumulate_shared(&dk_arg, &[&block.b, &t, &block.h, &c], &dk);
            let q = token(e, block, chunk, "q", &r, &c);
            let k = token(e, block, chunk, "k", &r, &c);
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
fn token_gradients(
    e: &mut Builder,
    block: &Block,
    tiles: &Tiles,
    chunk: &Chunk,
    r: &Value,
    c: &Value,
) -> (Value, Value) {
    let from_state = e.sum(&block.width, |e, jj| {
        let j = channel(e, block, jj);
        let ckpt = e.arg("ckpt");
        let s0 = e.load(&ckpt, &[&block.b, &block.h, &chunk.index, c, &j]);
        let d_o = token(e, block, chunk, "dout", r, &j);
        e.mul(&s0, &d_o)
    });
    let grown = growth(e, tiles, r, c);
    let inter = e.mul(&grown, &from_state);
    let c1 = e.c1();
    let through = e.add(r, &c1);
    let intra = e.sum(&through, |e, s| {
        let dp = e.load(&tiles.dp, &[r, s]);
        let k = token(e, block, chunk, "k", s, c);
        let decay = decay_between(e, tiles, r, s, c);
        let w = e.mul(&dp, &decay);
        e.mul(&w, &k)
    });
    let dq = e.fma(&block.scale, &inter, &intra);
    let by_output = e.sum_over(r, &chunk.len, |e, m| {
        let dp = e.load(&tiles.dp, &[m, r]);
        let q = token(e, block, chunk, "q", m, c);
        let decay = decay_between(e, tiles, m, r, c);
        let w = e.mul(&dp, &decay);
        e.mul(&w, &q)
    });
    let carried = carried_key_gradient(e, block, tiles, chunk, r, c);
    (dq, e.add(&by_output, &carried))
}

/// Phase: `D_cj ← e^{G_last,c} D_cj + scale Σ_r e^{G_rc} q_rc dO_rj`.
fn carry_state_gradient(e: &mut Builder, block: &Block, tiles: &Tiles, chunk: &Chunk) {
    let items = e.mul(&block.dk, &block.width);
    e.for_threads(&items, |e, item| {
        let (c, jj) = split(e, &item, &block.width);
        let j = channel(e, block, &jj);
        let local = e.sum(&chunk.len, |e, r| {
            let q = token(e, block, chunk, "q", r, &c);
            let d_o = token(e, block, chunk, "dout", r, &j);
            let grown = growth(e, tiles, r, &c);
            let q = e.mul(&grown, &q);
            e.mul(&q, &d_o)
        });
        let d = e.load(&block.ds, &[&c, &jj]);
        let end = last(e, chunk);
        let grown = growth(e, tiles, &end, &c);
        let kept = e.mul(&grown, &d);
        let next = e.fma(&block.scale, &local, &kept);
        e.store(&next, &block.ds, &[&c, &jj]);
    });
}
