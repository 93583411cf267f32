//! Sub-chunks for the forms whose tiles hold fewer tokens than a checkpoint's chunk (the
//! delta rule's, a per-channel decay's): a checkpoint's chunk is walked in sub-chunks
//! whose start states are recomputed first into the reverse scan's scratch `buf`
//! (`[B, HS, chunk + 1, DK, DV]`; slot 0 the checkpoint, slot `k + 1` the end of
//! sub-chunk `k`), then the sub-chunks are walked last first. A block writes only its
//! value channels of its head's slots.

use super::{Block, ceil_div, for_grid};
use crate::emit::{Builder, Parallel, Value};

/// A sub-chunk: its first token, its length, and the scratch slot of its start state.
pub(super) struct Sub {
    pub(super) start: Value,
    pub(super) len: Value,
    pub(super) slot: Value,
}

/// For each checkpoint chunk, last first: the checkpoint into slot 0, then for each
/// sub-chunk of `sub_chunk` tokens but the last `forward` (which must leave the
/// sub-chunk's end state in the next slot), then for each sub-chunk, last first,
/// `backward`.
pub(super) fn walk_sub_chunks(
    e: &mut Builder,
    block: &Block,
    sub_chunk: u64,
    [chunk, chunks, time]: [&Value; 3],
    forward: impl FnOnce(&mut Builder, &Sub),
    backward: impl FnOnce(&mut Builder, &Sub),
) {
    let sub_chunk = e.constant_index(sub_chunk);
    let c0 = e.c0();
    e.for_(&c0, chunks, |e, back| {
        let c1 = e.c1();
        let last = e.sub(chunks, &c1);
        let index = e.named("chunk_index").sub(&last, &back);
        let start = e.named("chunk_start").mul(&index, chunk);
        let left = e.sub(time, &start);
        let len = e.named("chunk_len").min(&left, chunk);
        let subs = ceil_div(e, &len, &sub_chunk);
        poison_scratch(e, block);
        checkpoint_to_scratch(e, block, &index);
        let c0 = e.c0();
        let forward_subs = e.sub(&subs, &c1);
        e.for_(&c0, &forward_subs, |e, k| {
            let sub = sub_at(e, &start, &len, &sub_chunk, &k);
            forward(e, &sub);
        });
        e.for_(&c0, &subs, |e, back| {
            let k = e.sub(&forward_subs, &back);
            let sub = sub_at(e, &start, &len, &sub_chunk, &k);
            backward(e, &sub);
        });
    });
}

/// Sub-chunk `k` of a chunk of `len` tokens from `start`.
fn sub_at(e: &mut Builder, start: &Value, len: &Value, sub_chunk: &Value, k: &Value) -> Sub {
    let offset = e.mul(k, sub_chunk);
    let first = e.named("sub_start").add(start, &offset);
    let left = e.sub(len, &offset);
    let sub_len = e.named("sub_len").min(&left, sub_chunk);
    Sub { start: first, len: sub_len, slot: k.clone() }
}

/// The sub-chunk's start state at `[i, j]` (`j` of the block), from the scratch.
pub(super) fn start_state(e: &mut Builder, block: &Block, sub: &Sub, i: &Value, jj: &Value) -> Value {
    let buf = e.arg("buf");
    let j = e.add(&block.j0, jj);
    e.load(&buf, &[&block.b, &block.h, &sub.slot, i, &j])
}

/// Stores `value` as the next sub-chunk's start state at `[i, j]` (`j` of the block).
pub(super) fn store_end_state(e: &mut Builder, block: &Block, sub: &Sub, value: &Value, i: &Value, jj: &Value) {
    let (buf, c1) = (e.arg("buf"), e.c1());
    let slot = e.add(&sub.slot, &c1);
    let j = e.add(&block.j0, jj);
    e.store(value, &buf, &[&block.b, &block.h, &slot, i, &j]);
}

/// On the CPU ([`Parallel::Phases`]), NaN into the block's columns of every scratch
/// slot: a start state read before a phase wrote it poisons the result.
fn poison_scratch(e: &mut Builder, block: &Block) {
    if !matches!(e.config().parallel, Parallel::Phases { .. }) {
        return;
    }
    let (buf, c0) = (e.arg("buf"), e.c0());
    let slots = e.dim(&buf, 2);
    let nan = e.constant(f64::NAN);
    e.for_(&c0, &slots, |e, slot| {
        let c0 = e.c0();
        e.for_(&c0, &block.dk, |e, i| {
            let c0 = e.c0();
            e.for_(&c0, &block.width, |e, jj| {
                let j = e.add(&block.j0, &jj);
                e.store(&nan, &buf, &[&block.b, &block.h, &slot, &i, &j]);
            });
        });
    });
}

/// The phase copying the checkpoint `ckpt[b, h, index]` into scratch slot 0.
fn checkpoint_to_scratch(e: &mut Builder, block: &Block, index: &Value) {
    for_grid(e, &block.dk, &block.width, |e, i, jj| {
        let j = e.add(&block.j0, &jj);
        let (ckpt, buf, c0) = (e.arg("ckpt"), e.arg("buf"), e.c0());
        let s = e.load(&ckpt, &[&block.b, &block.h, index, &i, &j]);
        e.store(&s, &buf, &[&block.b, &block.h, &c0, &i, &j]);
    });
}
