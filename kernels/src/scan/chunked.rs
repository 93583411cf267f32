//! The chunked form of the reverse scan (LAYERS.md §11 in `../shared/design/`): a block
//! of threads per (batch point, state head, block of value channels) walks the chunks
//! last first, each chunk in phases that hand their results on through shared tiles.
//! Three recurrences have it ([`supports`]): the additive update with no decay or one
//! fixed a head (RetNet; below), with a decay a key channel a token (GLA, HGRN-2;
//! [`vector`]), and the delta rule with none or one a head a token (DeltaNet,
//! GatedDeltaNet; [`delta`]). This file holds what they share — the function, the
//! block's place, the state gradient's tile — and the first.
//!
//! One chunk of `n` tokens starting from the checkpoint `S₀` (`ckpt[b, h, c]`), with
//! `γ = exp(g)` (1 without a decay), `D` the gradient of the state after the chunk and
//! local token indices `r, s, m`:
//!
//! 1. scores: `P[r, s] = scale γ^{r−s} q_r·k_s` and `dP[r, s] = scale γ^{r−s} dO_r·v_s`
//!    for `s ≤ r` (the masked triangle is never read);
//! 2. `dv_s += Σ_{r≥s} P[r, s] dO_r + γ^{n−1−s} Dᵀk_s`;
//! 3. `dq_r += Σ_{s≤r} dP[r, s] k_s + scale γ^{r+1} S₀ dO_r` and
//!    `dk_r += Σ_{m≥r} dP[m, r] q_m + γ^{n−1−r} D v_r`;
//! 4. `D ← γⁿ D + scale Σ_r γ^{r+1} q_r dO_rᵀ`, the gradient of `S₀`.
//!
//! The decay's gradient is a reverse cumulative sum of `∂L/∂G_m = q_m·dq_m − k_m·dk_m`
//! over each chunk, the last token adding `⟨D, S_end⟩` (`S_end` the state after the
//! chunk: `γⁿ⟨D, S₀⟩ + Σ_s k_s·(γ^{n−1−s} D v_s)`); for a decay fixed in time the sum
//! over tokens is `Σ_m (m + 1) ∂L/∂G_m + n ⟨D, S_end⟩` a chunk. Every power of γ has an
//! exponent ≥ 0, so nothing overflows. The block's value channels are a slice of every
//! sum over them (`dq`, `dk`, the decay's), so those are added atomically; `dv` and the
//! state gradient's columns are the block's own.

pub mod delta;
mod scratch;
pub mod vector;

use super::{Decay, ScanSpec, ScanUpdate};
use crate::emit::{Builder, Cmp, ProcessSwitch, Scalar, Value};

/// The longest chunk the form's tiles hold (the checkpoint interval's largest).
pub const MAX_CHUNK: u64 = 64;

/// The partial sums a thread keeps for each long sum of a phase (over key or value
/// channels, or a sub-chunk's tokens), unless `HYB_CHUNKED_SPLIT` says otherwise
/// ([`split`]): one, a chain of adds each waiting on the one before. Four partial sums
/// ([`Builder::fold_sums`]: an iteration's loads independent of the other partials'
/// adds) were the default for a day and measured slower on an H100 (2026-12-06,
/// `bench/gpu/chunked_check.sh PART=split`, the study's 3:1 models): GatedDeltaNet's
/// step 4.6 % slower (its reverse scan 11 %: the delta rule's folds spill more), RetNet's
/// 0.6 % (within the runs' spread); docs/CHUNKED_SCAN.md, "Partial sums".
pub const SPLIT: u64 = 1;

/// The partial sums of the chunked form's long sums: [`SPLIT`], or the measurement
/// switch `HYB_CHUNKED_SPLIT=1|2|4`. Read once a process
/// ([`ProcessSwitch`]); codegen alone reads it.
pub fn split() -> u64 {
    SPLIT_SWITCH.value()
}

/// `HYB_CHUNKED_SPLIT` checked (`hyb_driver::codegen` refuses a malformed one).
pub fn split_switch() -> Result<Option<u64>, String> {
    SPLIT_SWITCH.check()
}

static SPLIT_SWITCH: ProcessSwitch =
    ProcessSwitch::new("HYB_CHUNKED_SPLIT", SPLIT, |n| matches!(n, 1 | 2 | 4), "1, 2 or 4 partial sums");

/// Floats of shared memory a block may take: 48 KiB, CUDA's static limit.
const SHARED_FLOATS: u64 = 12_288;

/// The recurrences with a chunked form, each with its tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The additive update with no decay or one fixed a head (RetNet): this file.
    Fixed,
    /// The additive update with a decay a key channel a token (GLA, HGRN-2): [`vector`].
    Vector,
    /// The delta rule with no decay or one a head a token (DeltaNet, GatedDeltaNet):
    /// [`delta`].
    Delta,
}

impl Kind {
    /// The longest checkpoint interval the form takes.
    pub fn max_chunk(self) -> u64 {
        match self {
            Kind::Fixed | Kind::Delta | Kind::Vector => MAX_CHUNK,
        }
    }

    /// The floats of shared memory the form's tiles take for a key width `dk` and a
    /// value block `width`, the state gradient's `dk × width` included.
    pub fn tile_floats(self, dk: u64, width: u64) -> u64 {
        match self {
            Kind::Fixed => dk * width + 2 * MAX_CHUNK * MAX_CHUNK,
            Kind::Vector => vector::tile_floats(dk, width),
            Kind::Delta => delta::tile_floats(dk, width),
        }
    }
}

/// The chunked form a spec's recurrence would take, if any.
pub fn kind(spec: &ScanSpec) -> Option<Kind> {
    match (spec.update, spec.decay) {
        (ScanUpdate::Additive, Decay::None | Decay::PerHead) => Some(Kind::Fixed),
        (ScanUpdate::Additive, Decay::Vector) => Some(Kind::Vector),
        (ScanUpdate::Delta, Decay::None | Decay::Scalar) => Some(Kind::Delta),
        _ => None,
    }
}

/// Whether the chunked form has a reverse scan of `spec` at checkpoint interval
/// `chunk`: a recurrence of a [`Kind`] with a query and no grouped heads, a chunk of at
/// most the kind's [`Kind::max_chunk`], and tiles that fit 48 KiB with one value
/// channel a block (GLA's key width up to 310).
pub fn supports(spec: &ScanSpec, chunk: u64) -> bool {
    let Some(kind) = kind(spec) else { return false };
    spec.query
        && spec.q_per_state == 1
        && spec.states_per_key == 1
        && (1..=kind.max_chunk()).contains(&chunk)
        && spec.dk >= 1
        && kind.tile_floats(spec.dk, 1) <= SHARED_FLOATS
        && spec.dv >= 1
}

/// The value channels a block of `kind` takes of a state of `dk × dv`: the largest count
/// up to 64 (or up to `HYB_CHUNKED_VALUE_BLOCK`, [`value_block_cap`]) that divides `dv`
/// and keeps the kind's tiles in 48 KiB. Narrower blocks give a launch more of them (the
/// study's 64 × 2 heads make 128 blocks of 64 channels, about one a multiprocessor) at
/// the price of each recomputing the scores.
pub fn value_block(kind: Kind, dk: usize, dv: usize) -> usize {
    let cap = VALUE_BLOCK_CAP.value();
    let fits = (1..=cap).rev().find(|&w| kind.tile_floats(dk as u64, w) <= SHARED_FLOATS).unwrap_or(1);
    hyb_target::largest_divisor(dv, fits as usize)
}

/// A measurement switch: `HYB_CHUNKED_VALUE_BLOCK=N` (1 – 64) caps the value channels a
/// block of the chunked form takes. Unset, none; anything else is an error
/// (`hyb_driver::codegen` refuses it). Codegen and the launch both read it, once a
/// process ([`ProcessSwitch`]).
pub fn value_block_cap() -> Result<Option<u64>, String> {
    VALUE_BLOCK_CAP.check()
}

static VALUE_BLOCK_CAP: ProcessSwitch = ProcessSwitch::new(
    "HYB_CHUNKED_VALUE_BLOCK",
    64,
    |n| (1..=64).contains(&n),
    "a count of value channels from 1 to 64",
);

/// The blocks a (batch point, state head) takes: `dv` over [`value_block`].
pub fn value_blocks(kind: Kind, dk: usize, dv: usize) -> usize {
    dv / value_block(kind, dk, dv)
}

/// The values the phases share: sizes, the state gradient's tile, the block's head and
/// first value channel, and its form's tiles.
pub(super) struct Block {
    scale: Value,
    dk: Value,
    width: Value,
    /// The state gradient's tile `[DK, width]`: `D`, then `S₀`'s gradient.
    ds: Value,
    b: Value,
    h: Value,
    /// The block's first value channel.
    j0: Value,
    /// Whether the recurrence decays.
    decayed: bool,
    /// The additive form's head log-decay `g`, when it has one.
    g: Option<Value>,
    tiles: FormTiles,
}

/// The tiles of the block's form.
#[derive(Clone)]
enum FormTiles {
    /// The score tiles `[chunk, chunk]`: `P` and `dP`.
    Additive {
        p: Value,
        dp: Value,
    },
    Delta(Box<delta::Tiles>),
    Vector(vector::Tiles),
}

impl Block {
    /// The additive form's `P` and `dP` tiles.
    fn scores(&self) -> (&Value, &Value) {
        match &self.tiles {
            FormTiles::Additive { p, dp } => (p, dp),
            FormTiles::Delta(_) | FormTiles::Vector(_) => panic!("only a fixed decay has these scores"),
        }
    }

    /// The delta rule's tiles.
    fn delta_tiles(&self) -> &delta::Tiles {
        match &self.tiles {
            FormTiles::Delta(tiles) => tiles,
            _ => panic!("only the delta rule has these tiles"),
        }
    }

    /// The per-channel decay's tiles.
    fn vector_tiles(&self) -> &vector::Tiles {
        match &self.tiles {
            FormTiles::Vector(tiles) => tiles,
            _ => panic!("only a per-channel decay has these tiles"),
        }
    }
}

/// The chunk a phase works on: its checkpoint, first token and length.
struct Chunk {
    index: Value,
    start: Value,
    len: Value,
}

/// Writes the reverse scan's chunked form into `e`, an opened function of
/// [`ScanSpec::backward_arguments`] whose sizes are defined: the state heads `heads`,
/// tokens `time`, batch `batch`, the state's `dk` (constant).
pub(super) fn backward(e: &mut Builder, spec: &ScanSpec, chunk: u64, sizes: [&Value; 4]) {
    assert!(supports(spec, chunk), "no chunked reverse scan of {spec:?} at chunk {chunk}");
    let [batch, time, heads, dk] = sizes;
    let kind = kind(spec).expect("a supported spec has a kind");
    let columns = value_block(kind, spec.dk as usize, spec.dv as usize) as u64;
    let ds = e.named("dS").tile(Scalar::F32, &[spec.dk, columns]);
    let tiles = match spec.update {
        ScanUpdate::Additive if spec.decay == Decay::Vector => FormTiles::Vector(vector::make_tiles(e, spec.dk)),
        ScanUpdate::Additive => {
            let p = e.named("P").tile(Scalar::F32, &[chunk, chunk]);
            let dp = e.named("dP").tile(Scalar::F32, &[chunk, chunk]);
            FormTiles::Additive { p, dp }
        }
        ScanUpdate::Delta => FormTiles::Delta(Box::new(delta::make_tiles(e, columns))),
    };
    let scale = e.named("scale").constant(spec.scale);
    let width = e.named("VB").constant_index(columns);
    let blocks_per_head = e.named("NVB").constant_index(spec.dv / columns);
    let chunk = e.named("C").constant_index(chunk);
    let chunks = ceil_div(e, time, &chunk);
    let rows = e.mul(heads, &blocks_per_head);
    let (first_row, end_row) = e.block_rows(&rows);
    let c0 = e.c0();
    e.for_(&c0, batch, |e, b| {
        e.for_(&first_row, &end_row, |e, row| {
            let h = e.named("head").divui(&row, &blocks_per_head);
            let part = e.remui(&row, &blocks_per_head);
            let j0 = e.named("j0").mul(&part, &width);
            let g = (spec.decay == Decay::PerHead).then(|| {
                let g = e.arg("g");
                e.load(&g, &[&h])
            });
            let (scale, dk, width, ds, tiles) = (scale.clone(), dk.clone(), width.clone(), ds.clone(), tiles.clone());
            let decayed = spec.decay != Decay::None;
            let block = Block { scale, dk, width, ds, b, h, j0, decayed, g, tiles };
            e.poison(&block.ds);
            state_gradient_in(e, &block);
            let sizes = [&chunk, &chunks, time];
            match (spec.update, spec.decay) {
                (ScanUpdate::Delta, _) => delta::backward(e, &block, spec, sizes),
                (ScanUpdate::Additive, Decay::Vector) => vector::backward(e, &block, block.vector_tiles(), sizes),
                (ScanUpdate::Additive, _) => additive_backward(e, &block, spec, sizes),
            }
            state_gradient_out(e, &block);
        });
    });
}

/// The additive recurrence's chunks, last first, for the block (its `D` tile loaded),
/// then its share of the head's log-decay gradient.
fn additive_backward(e: &mut Builder, block: &Block, spec: &ScanSpec, [chunk, chunks, time]: [&Value; 3]) {
    let (c0, zero) = (e.c0(), e.zero());
    let dg = e.fold1(&c0, chunks, &zero, |e, back, dg| {
        let chunk = chunk_at(e, chunks, &back, chunk, time);
        let (p, dp) = block.scores();
        e.poison(p);
        e.poison(dp);
        scores(e, block, &chunk);
        value_gradients(e, block, &chunk);
        let term = query_key_gradients(e, block, &chunk);
        let carried = carry_state_gradient(e, block, &chunk);
        let dg = e.add(&dg, &term);
        e.add(&dg, &carried)
    });
    if spec.decay == Decay::PerHead {
        let dg_arg = e.arg("dg");
        e.accumulate_shared(&dg_arg, &[&block.h], &dg);
    }
}

/// `⌈a / b⌉`.
fn ceil_div(e: &mut Builder, a: &Value, b: &Value) -> Value {
    let c1 = e.c1();
    let up = e.add(a, b);
    let up = e.sub(&up, &c1);
    e.divui(&up, b)
}

/// The chunk `back` from the last: checkpoint `count − 1 − back`, and its tokens.
fn chunk_at(e: &mut Builder, count: &Value, back: &Value, chunk: &Value, time: &Value) -> Chunk {
    let c1 = e.c1();
    let last = e.sub(count, &c1);
    let index = e.named("chunk_index").sub(&last, back);
    let start = e.named("chunk_start").mul(&index, chunk);
    let left = e.sub(time, &start);
    let len = e.named("chunk_len").min(&left, chunk);
    Chunk { index, start, len }
}

/// An index as an f32.
fn float(e: &mut Builder, x: &Value) -> Value {
    let wide = e.index_cast(x, Scalar::I64);
    e.uitofp(&wide, Scalar::F32)
}

/// `γ^steps = exp(steps · g)`, or 1 without a decay.
fn decay_power(e: &mut Builder, block: &Block, steps: &Value) -> Value {
    let Some(g) = &block.g else { return e.one() };
    let steps = float(e, steps);
    let exponent = e.mul(&steps, g);
    e.exp(&exponent)
}

/// A phase over the grid `rows × cols`: `body(row, column)` an item.
fn for_grid(e: &mut Builder, rows: &Value, cols: &Value, body: impl FnOnce(&mut Builder, Value, Value)) {
    let items = e.mul(rows, cols);
    e.for_threads(&items, |e, item| {
        let (row, col) = (e.divui(&item, cols), e.remui(&item, cols));
        body(e, row, col)
    });
}

/// A phase over the grid `rows × cols` whose items each give a term: this thread's sum.
fn sum_grid(
    e: &mut Builder,
    rows: &Value,
    cols: &Value,
    body: impl FnOnce(&mut Builder, Value, Value) -> Value,
) -> Value {
    let items = e.mul(rows, cols);
    e.sum_threads(&items, |e, item| {
        let (row, col) = (e.divui(item, cols), e.remui(item, cols));
        body(e, row, col)
    })
}

/// A phase over the pairs `s ≤ r < len` of a chunk's tokens: `body(r, s)` (the masked
/// triangle's items do nothing).
fn for_causal_pairs(e: &mut Builder, len: &Value, body: impl FnOnce(&mut Builder, Value, Value)) {
    for_grid(e, len, len, |e, r, s| {
        let causal = e.cmp(Cmp::Le, &s, &r);
        e.if_(&causal, |e| body(e, r, s));
    });
}

/// `dq[b, start + r, h, i] += dq`, `dk[…] += dk`, atomically (other blocks add theirs).
fn add_query_key_gradients(e: &mut Builder, block: &Block, start: &Value, [r, i]: [&Value; 2], [dq, dk]: [&Value; 2]) {
    let t = e.add(start, r);
    let (dq_arg, dk_arg) = (e.arg("dq"), e.arg("dk"));
    e.accumulate_shared(&dq_arg, &[&block.b, &t, &block.h, i], dq);
    e.accumulate_shared(&dk_arg, &[&block.b, &t, &block.h, i], dk);
}

/// Token `start + r`'s element `[b, start + r, h, i]` of a `[B, T, H, *]` argument.
fn token(e: &mut Builder, block: &Block, start: &Value, arg: &str, r: &Value, i: &Value) -> Value {
    let memref = e.arg(arg);
    let t = e.add(start, r);
    e.load(&memref, &[&block.b, &t, &block.h, i])
}

/// Value channel `jj` of the block, as an index into the whole state.
fn channel(e: &mut Builder, block: &Block, jj: &Value) -> Value {
    e.add(&block.j0, jj)
}

/// The phase `D ← dstate[b, h, :, block's channels]`.
fn state_gradient_in(e: &mut Builder, block: &Block) {
    for_grid(e, &block.dk, &block.width, |e, i, jj| {
        let j = channel(e, block, &jj);
        let dstate = e.arg("dstate");
        let d = e.load(&dstate, &[&block.b, &block.h, &i, &j]);
        e.store(&d, &block.ds, &[&i, &jj]);
    });
}

/// The phase `dstate[b, h, :, block's channels] ← D`, the gradient of the initial state.
fn state_gradient_out(e: &mut Builder, block: &Block) {
    for_grid(e, &block.dk, &block.width, |e, i, jj| {
        let j = channel(e, block, &jj);
        let d = e.load(&block.ds, &[&i, &jj]);
        let dstate = e.arg("dstate");
        e.store(&d, &dstate, &[&block.b, &block.h, &i, &j]);
    });
}

/// Phase 1: `P[r, s]` and `dP[r, s]` for `s ≤ r < n`.
fn scores(e: &mut Builder, block: &Block, chunk: &Chunk) {
    for_causal_pairs(e, &chunk.len, |e, r, s| {
        let qk = e.sum_split(&block.dk, split(), |e, i| {
            let q = token(e, block, &chunk.start, "q", &r, i);
            let k = token(e, block, &chunk.start, "k", &s, i);
            e.mul(&q, &k)
        });
        let dov = output_value_dot(e, block, &chunk.start, &r, &s);
        let apart = e.sub(&r, &s);
        let decay = decay_power(e, block, &apart);
        let factor = e.mul(&block.scale, &decay);
        let score = e.mul(&factor, &qk);
        let d_score = e.mul(&factor, &dov);
        let (p, dp) = block.scores();
        e.store(&score, p, &[&r, &s]);
        e.store(&d_score, dp, &[&r, &s]);
    });
}

/// `dO_r·v_s` over the block's value channels, tokens counted from `start`.
fn output_value_dot(e: &mut Builder, block: &Block, start: &Value, r: &Value, s: &Value) -> Value {
    e.sum_split(&block.width, split(), |e, jj| {
        let j = channel(e, block, jj);
        let d_o = token(e, block, start, "dout", r, &j);
        let v = token(e, block, start, "v", s, &j);
        e.mul(&d_o, &v)
    })
}

/// `γ^{n−1−x}`: the decay from token `x` to the chunk's last.
fn decay_to_end(e: &mut Builder, block: &Block, chunk: &Chunk, x: &Value) -> Value {
    let c1 = e.c1();
    let last = e.sub(&chunk.len, &c1);
    let steps = e.sub(&last, x);
    decay_power(e, block, &steps)
}

/// Phase 2: `dv_s += Σ_{r≥s} P[r, s] dO_r + γ^{n−1−s} Dᵀk_s` over the block's channels.
fn value_gradients(e: &mut Builder, block: &Block, chunk: &Chunk) {
    for_grid(e, &chunk.len, &block.width, |e, s, jj| {
        let j = channel(e, block, &jj);
        let local = e.sum_over(&s, &chunk.len, |e, r| {
            let p = e.load(block.scores().0, &[r, &s]);
            let d_o = token(e, block, &chunk.start, "dout", r, &j);
            e.mul(&p, &d_o)
        });
        let carried = e.sum_split(&block.dk, split(), |e, i| {
            let k = token(e, block, &chunk.start, "k", &s, i);
            let d = e.load(&block.ds, &[i, &jj]);
            e.mul(&k, &d)
        });
        let decay = decay_to_end(e, block, chunk, &s);
        let carried = e.mul(&decay, &carried);
        let total = e.add(&local, &carried);
        let (dv, t) = (e.arg("dv"), e.add(&chunk.start, &s));
        e.accumulate(&dv, &[&block.b, &t, &block.h, &j], &total);
    });
}

/// Phase 3: `dq_r` and `dk_r` for each token and key channel, added atomically (other
/// blocks hold the other value channels); returns this thread's share of the decay's
/// gradient, `Σ (r + 1)(q·dq − k·dk) + n k·(γ^{n−1−r} D v_r)` over its items.
fn query_key_gradients(e: &mut Builder, block: &Block, chunk: &Chunk) -> Value {
    sum_grid(e, &chunk.len, &block.dk, |e, r, i| {
        let c1 = e.c1();
        let through = e.add(&r, &c1);
        let local_q = e.sum(&through, |e, s| {
            let dp = e.load(block.scores().1, &[&r, s]);
            let k = token(e, block, &chunk.start, "k", s, &i);
            e.mul(&dp, &k)
        });
        let from_state = e.sum_split(&block.width, split(), |e, jj| {
            let j = channel(e, block, jj);
            let ckpt = e.arg("ckpt");
            let s0 = e.load(&ckpt, &[&block.b, &block.h, &chunk.index, &i, &j]);
            let d_o = token(e, block, &chunk.start, "dout", &r, &j);
            e.mul(&s0, &d_o)
        });
        let decay = decay_power(e, block, &through);
        let factor = e.mul(&block.scale, &decay);
        let dq = e.fma(&factor, &from_state, &local_q);
        let local_k = e.sum_over(&r, &chunk.len, |e, m| {
            let dp = e.load(block.scores().1, &[m, &r]);
            let q = token(e, block, &chunk.start, "q", m, &i);
            e.mul(&dp, &q)
        });
        let carried = e.sum_split(&block.width, split(), |e, jj| {
            let j = channel(e, block, jj);
            let d = e.load(&block.ds, &[&i, jj]);
            let v = token(e, block, &chunk.start, "v", &r, &j);
            e.mul(&d, &v)
        });
        let decay = decay_to_end(e, block, chunk, &r);
        let carried = e.mul(&decay, &carried);
        let dk = e.add(&local_k, &carried);
        add_query_key_gradients(e, block, &chunk.start, [&r, &i], [&dq, &dk]);
        if block.g.is_none() {
            return e.zero();
        }
        let (q, k) = (token(e, block, &chunk.start, "q", &r, &i), token(e, block, &chunk.start, "k", &r, &i));
        let q_dq = e.mul(&q, &dq);
        let k_dk = e.mul(&k, &dk);
        let by_token = e.sub(&q_dq, &k_dk);
        let weight = float(e, &through);
        let by_token = e.mul(&weight, &by_token);
        let to_end = e.mul(&k, &carried);
        let n = float(e, &chunk.len);
        e.fma(&n, &to_end, &by_token)
    })
}

/// `Σ_r γ^{r+1} q_r[i] dO_r[j]` over the chunk, `gamma` being `γ`: the power carried
/// from term to term (one multiply), not an `exp` a term — the phase's `dk × width × n`
/// of them had cost more than all its multiply-adds.
fn weighted_query_output_sum(
    e: &mut Builder,
    block: &Block,
    chunk: &Chunk,
    gamma: &Value,
    [i, j]: [&Value; 2],
) -> Value {
    let (c0, zero) = (e.c0(), e.zero());
    let sums = e.fold(&c0, &chunk.len, &[&zero, gamma], |e, r, carried| {
        let [sum, power] = [&carried[0], &carried[1]];
        let q = token(e, block, &chunk.start, "q", &r, i);
        let d_o = token(e, block, &chunk.start, "dout", &r, j);
        let q = e.mul(power, &q);
        let sum = e.fma(&q, &d_o, sum);
        let power = if block.g.is_some() { e.mul(power, gamma) } else { power.clone() };
        vec![sum, power]
    });
    sums[0].clone()
}

/// Phase 4: `D ← γⁿ D + scale Σ_r γ^{r+1} q_r dO_rᵀ`, the gradient of the chunk's
/// checkpoint; returns this thread's share of the decay's gradient, `n γⁿ ⟨D, S₀⟩` over
/// its items.
fn carry_state_gradient(e: &mut Builder, block: &Block, chunk: &Chunk) -> Value {
    // The chunk's γ and γⁿ, the same for every item: two exps a thread, not an item.
    let c1 = e.c1();
    let gamma = decay_power(e, block, &c1);
    let whole = decay_power(e, block, &chunk.len);
    sum_grid(e, &block.dk, &block.width, |e, i, jj| {
        let j = channel(e, block, &jj);
        let local = weighted_query_output_sum(e, block, chunk, &gamma, [&i, &j]);
        let d = e.load(&block.ds, &[&i, &jj]);
        let decayed = e.mul(&whole, &d);
        let next = e.fma(&block.scale, &local, &decayed);
        e.store(&next, &block.ds, &[&i, &jj]);
        if block.g.is_none() {
            return e.zero();
        }
        let ckpt = e.arg("ckpt");
        let s0 = e.load(&ckpt, &[&block.b, &block.h, &chunk.index, &i, &j]);
        let n = float(e, &chunk.len);
        let inner = e.mul(&decayed, &s0);
        e.mul(&n, &inner)
    })
}
