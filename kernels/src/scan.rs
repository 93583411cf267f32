//! The linear-attention family's token recurrence, generated as MLIR for one point of
//! the generic description. Per state head, with state `S ∈ R^{d_k×d_v}`:
//!
//! - additive: `S ← Diag(α) S + k vᵀ`;
//! - delta: `S' = Diag(α) S`, `u = β (v − S'ᵀ k)`, `S ← S' + k uᵀ` (decay first, then the
//!   delta read, as Gated DeltaNet does);
//! - readout for each query head reading this state: `o = scale · Sᵀ q`.
//!
//! `α = exp(g)` from log-decays: none (α = 1), one per state head fixed in time
//! (RetNet), one per state head per token (scalar gate), or one per key channel per token
//! (vector gate). The projections, feature maps, norms and gates' parameterisations run
//! before this kernel; it sees q, k, v, log-decays and β.
//!
//! Head grouping: state head `h` reads key head `h / states_per_key` (GVA) and is read by
//! `q_per_state` query heads `(h / states_per_key) · q_per_state + r`, whose outputs are
//! head `h · q_per_state + r` (GQA). Shapes: q `[B,T,Hq,dk]`, k `[B,T,Hk,dk]`,
//! v `[B,T,Hs,dv]`, o `[B,T,Ho,dv]`, state `[B,Hs,dk,dv]` (initial in, final out).
//!
//! Training: [`forward_train`] also saves the state before every `chunk`-th token
//! (`[B,Hs,⌈T/chunk⌉,dk,dv]`), and [`backward`] runs the reverse scan: per chunk, from
//! the last, it recomputes the chunk's states from its checkpoint into a scratch buffer,
//! then walks them backwards accumulating gradients. Memory is `T/chunk + chunk` states
//! per head instead of `T`. Gradients accumulate (`+=`) into zeroed buffers, since heads
//! shared under GQA/GVA receive from several states; the state gradient buffer holds
//! `∂L/∂S_T` on entry and `∂L/∂S_0` on exit.
//!
//! Lanes: the columns of a state (its value channels) evolve independently — every
//! sum over columns (`dq`, `dk`, `dβ`, `dg`) only feeds a gradient. Under
//! [`Parallel::Threads`] the kernel runs [`key_slices`] lanes per (state head, value
//! channel), the lane `gpu.block_id y · gpu.block_dim x + gpu.thread_id x` of its
//! point: neighbours in a warp share a column, each holding every `slices`-th key
//! channel of it in registers ([`lanes`], generated for the spec's `DK × DV`). Sums
//! over key channels (the delta rule's reads, the readout, `dv`) are taken per column
//! in a register and then over the column's lanes (`gpu.shuffle xor`); sums over
//! columns are summed over the warp's lanes of one key slice and added atomically.
//! [`Parallel::OneLane`] runs the lanes form lane by lane with one slice (the kernel
//! tests). The CPU's form walks every head and column in one call, fusing its passes
//! over the state row by row ([`rows`]); the GPU's blocks form is the generic code
//! below, one pass at a time, the state in memory.

pub mod chunked;
mod lanes;
mod rows;

use crate::emit::{Builder, Cmp, Config, Parallel, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanUpdate {
    Additive,
    Delta,
}

/// Where the log-decays `g = log α` come from, and their layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decay {
    /// α = 1: no decay input.
    None,
    /// `[Hs]`: one constant per state head (RetNet's fixed decays).
    PerHead,
    /// `[B,T,Hs]`: one per state head per token.
    Scalar,
    /// `[B,T,Hk,dk]`: one per key channel per token.
    Vector,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanSpec {
    pub update: ScanUpdate,
    pub decay: Decay,
    pub q_per_state: u64,
    pub states_per_key: u64,
    pub scale: f64,
    /// Whether the readout has a query (`o = scale · Sᵀq`) or reads the state itself
    /// (`o = scale · Σ_i S_i,:`, q ≡ 1). A vector state of width D (HGRN) is D state
    /// heads of 1 × 1 with no query and a per-head decay: this same kernel.
    pub query: bool,
    /// The state's key and value channels per state head (`DK × DV`). The CPU's form and
    /// the GPU's lanes form are generated for them (the lanes form unrolls each lane's
    /// slice of the state into registers, [`lanes`]); a call whose state has other dims
    /// traps. The GPU's blocks form reads them from the state.
    pub dk: u64,
    pub dv: u64,
}

impl ScanSpec {
    /// Arguments of [`forward`] in order, with their ranks.
    pub fn arguments(&self) -> Vec<(&'static str, usize)> {
        let mut args = self.inputs();
        args.push(("o", 4));
        args.push(("state", 4));
        args
    }
}

impl ScanSpec {
    fn decay_args(&self) -> Option<(&'static str, usize)> {
        match self.decay {
            Decay::None => None,
            Decay::PerHead => Some(("g", 1)),
            Decay::Scalar => Some(("g", 3)),
            Decay::Vector => Some(("g", 4)),
        }
    }

    fn inputs(&self) -> Vec<(&'static str, usize)> {
        let mut args = if self.query { vec![("q", 4)] } else { Vec::new() };
        args.extend([("k", 4), ("v", 4)]);
        args.extend(self.decay_args());
        if self.update == ScanUpdate::Delta {
            args.push(("beta", 3));
        }
        args
    }

    /// Arguments of [`forward_train`]: [`ScanSpec::arguments`] and the checkpoints.
    pub fn train_arguments(&self) -> Vec<(&'static str, usize)> {
        let mut args = self.arguments();
        args.push(("ckpt", 5));
        args
    }

    /// Arguments of [`backward`]: the inputs, checkpoints, `do`, the state gradient, the
    /// scratch of each chunk's recomputed states (`buf [B, HS, min(chunk, T) + 1, DK, DV]`,
    /// f32), then the gradients of q, k, v (and g, β when present).
    pub fn backward_arguments(&self) -> Vec<(&'static str, usize)> {
        let mut args = self.inputs();
        args.extend([("ckpt", 5), ("dout", 4), ("dstate", 4), ("buf", 5)]);
        if self.query {
            args.push(("dq", 4));
        }
        args.extend([("dk", 4), ("dv", 4)]);
        if let Some((_, rank)) = self.decay_args() {
            args.push(("dg", rank));
        }
        if self.update == ScanUpdate::Delta {
            args.push(("dbeta", 3));
        }
        args
    }
}

/// The state's `DK` and `DV`: the spec's as constants, with a trap where the call's
/// state has other dims — except in the GPU's blocks form (the reference, kept as
/// verified), which reads them from the state.
fn state_dims(e: &mut Builder, spec: &ScanSpec, state: &Value) -> (Value, Value) {
    if e.config().parallel == Parallel::Blocks {
        return (e.named("DK").dim(state, 2), e.named("DV").dim(state, 3));
    }
    let (dk, dv) = (e.named("DK").constant_index(spec.dk), e.named("DV").constant_index(spec.dv));
    let (dk_given, dv_given) = (e.dim(state, 2), e.dim(state, 3));
    let dk_differs = e.cmp(Cmp::Ne, &dk_given, &dk);
    let dv_differs = e.cmp(Cmp::Ne, &dv_given, &dv);
    let differs = e.or(&dk_differs, &dv_differs);
    e.trap_if(&differs);
    (dk, dv)
}

/// The values every scan kernel defines at its top: the readout's scale, the head
/// grouping, the sizes, and for the delta rule the scratch vectors of `DV`.
struct Scan<'s> {
    spec: &'s ScanSpec,
    scale: Value,
    states_per_key: Value,
    q_per_state: Value,
    batch: Value,
    time: Value,
    dk: Value,
    /// `u` of the delta rule (forward and backward), then the error `v − S'ᵀk` (backward).
    u: Option<Value>,
    /// `dSᵀk` (backward of the delta rule).
    du: Option<Value>,
    /// The state heads and value channels this call (or lane) walks, and its key
    /// channels: `first, first + step, …` below `DK`.
    heads: (Value, Value),
    columns: (Value, Value),
    keys: (Value, Value),
    slices: Option<Slices>,
    warps: Option<Warps>,
}

/// A GPU's lanes form: the lanes that share a column, each walking every `count`-th key
/// channel (neighbours in the warp), and whether this lane is the first of them.
struct Slices {
    count: Value,
    first: Value,
}

/// A GPU's lanes form: whether each warp's lanes share a head (`DV · slices mod 32 = 0`),
/// whether this lane is among its warp's first `slices` (one per key slice), and whether
/// it is its warp's first.
struct Warps {
    shared: Value,
    column_leader: Value,
    head_leader: Value,
}

/// How many lanes share a column in a GPU's lanes form for a state of `dk × dv`: the
/// largest of 8, 4, 2 that divides `dk` and makes a head's lanes (`dv` times it) whole
/// warps, else 1. The scan's lanes are `HS · DV ·` this; the lanes form is generated
/// for the spec's (`ScanSpec::dk`, `ScanSpec::dv`), the host launches for the state's.
pub fn key_slices(dk: usize, dv: usize) -> usize {
    [8, 4, 2].into_iter().find(|&s| dk.is_multiple_of(s) && (dv * s).is_multiple_of(32)).unwrap_or(1)
}

/// The lanes sharing a column in a form with lanes: [`key_slices`] on a GPU
/// ([`Parallel::Threads`]), one under [`Parallel::OneLane`].
fn lane_slices(config: &Config, spec: &ScanSpec) -> u64 {
    match config.parallel {
        Parallel::Threads => key_slices(spec.dk as usize, spec.dv as usize) as u64,
        _ => 1,
    }
}

/// This lane's state head, value channel and key channels, or all of them.
struct Range {
    heads: (Value, Value),
    columns: (Value, Value),
    keys: (Value, Value),
    slices: Option<Slices>,
    warps: Option<Warps>,
}

impl Range {
    /// Under [`Parallel::Threads`], this thread's (head, channel) as one-long ranges
    /// (empty past the last head) and its slice of the key channels; under
    /// [`Parallel::OneLane`] the same with one slice; otherwise every head, channel and
    /// key channel.
    fn define(e: &mut Builder, spec: &ScanSpec, state_heads: &Value, dv: &Value) -> Range {
        let (c0, c1) = (e.c0(), e.c1());
        if !e.config().parallel.has_lanes() {
            let grid = e.lane_grid(state_heads, dv, false);
            return Range { heads: grid.outer, columns: grid.inner, keys: (c0, c1), slices: None, warps: None };
        }
        let threads = e.config().parallel == Parallel::Threads;
        let slices = lane_slices(e.config(), spec);
        let count = e.constant_index(slices);
        let width = e.constant_index(spec.dv * slices);
        let grid = e.lane_grid(state_heads, &width, true);
        let lane = grid.lane.expect("a lane");
        let column = e.named("column").divui(&grid.inner.0, &count);
        let slice = e.named("slice").remui(&grid.inner.0, &count);
        let next = e.add(&column, &c1);
        let (heads, columns, keys) = (grid.outer, (column, next), (slice.clone(), count.clone()));
        if !threads {
            return Range { heads, columns, keys, slices: None, warps: None };
        }
        let first = e.named("first_slice").cmp(Cmp::Eq, &slice, &c0);
        let warp = e.constant_index(32);
        let rest = e.remui(&width, &warp);
        let shared = e.named("warp_shares_head").cmp(Cmp::Eq, &rest, &c0);
        let place = e.remui(&lane, &warp);
        let column_leader = e.named("column_leader").cmp(Cmp::Lt, &place, &count);
        let head_leader = e.named("warp_leader").cmp(Cmp::Eq, &place, &c0);
        let warps = Warps { shared, column_leader, head_leader };
        Range { heads, columns, keys, slices: Some(Slices { count, first }), warps: Some(warps) }
    }
}

/// Butterfly stages ([`Builder::warp_butterfly`]) at `offsets`, each kept where
/// `offset <predicate> slices`: the offsets at or above the slice count sum over a key
/// slice's lanes (`Ge`), those below it over a column's lanes (`Lt`).
fn stages_where(e: &mut Builder, offsets: &[i64], predicate: Cmp, slices: &Value) -> Vec<(i64, Option<Value>)> {
    offsets
        .iter()
        .map(|&offset| {
            let at = e.constant_index(offset as u64);
            (offset, Some(e.cmp(predicate, &at, slices)))
        })
        .collect()
}

/// The loop nest around one token: batch, state head, key head, time, and `exp(g)` for
/// decays that are one number per token (per head or scalar).
struct At {
    b: Value,
    h: Value,
    hk: Value,
    t: Value,
    scalar_alpha: Option<Value>,
}

/// Where a state lives: `%state[b, h, i, j]`, or a slot of the reverse scan's scratch
/// `%buf[b, h, s, i, j]`.
struct Place {
    memref: Value,
    prefix: Vec<Value>,
}

impl Place {
    fn new(memref: &Value, prefix: &[&Value]) -> Place {
        Place { memref: memref.clone(), prefix: prefix.iter().map(|v| (*v).clone()).collect() }
    }

    fn indices(&self, i: &Value, j: &Value) -> Vec<Value> {
        self.prefix.iter().cloned().chain([i.clone(), j.clone()]).collect()
    }

    fn load(&self, e: &mut Builder, i: &Value, j: &Value) -> Value {
        let indices = self.indices(i, j);
        e.load(&self.memref, &indices.iter().collect::<Vec<_>>())
    }

    fn store(&self, e: &mut Builder, value: &Value, i: &Value, j: &Value) {
        let indices = self.indices(i, j);
        e.store(value, &self.memref, &indices.iter().collect::<Vec<_>>());
    }

    fn accumulate(&self, e: &mut Builder, i: &Value, j: &Value, value: &Value) {
        let indices = self.indices(i, j);
        e.accumulate(&self.memref, &indices.iter().collect::<Vec<_>>(), value);
    }
}

impl<'s> Scan<'s> {
    /// Opens the function and defines the shared values; the sizes of the state come from
    /// the argument `state_arg` (`state`, or `dstate` in the backward).
    fn prologue(e: &mut Builder, spec: &'s ScanSpec, name: &str, args: &[(&str, usize)], state_arg: &str) -> Self {
        e.begin_function(name, args);
        // `%c2` and `%c3` at the top, for the dims along axes 2 and 3 and any later use.
        e.constant_index(2);
        e.constant_index(3);
        let (k, state) = (e.arg("k"), e.arg(state_arg));
        let scale = e.named("scale").constant(spec.scale);
        let states_per_key = e.named("spk").constant_index(spec.states_per_key);
        let q_per_state = e.named("qps").constant_index(spec.q_per_state);
        let batch = e.named("B").dim(&k, 0);
        let time = e.named("T").dim(&k, 1);
        let state_heads = e.named("HS").dim(&state, 1);
        let (dk, dv) = state_dims(e, spec, &state);
        let (u, du) = if spec.update == ScanUpdate::Delta && !e.config().parallel.has_lanes() {
            let compute = e.compute();
            (Some(e.named("u").alloca(compute, &[&dv])), Some(e.named("du").alloca(compute, &[&dv])))
        } else {
            (None, None)
        };
        let Range { heads, columns, keys, slices, warps } = Range::define(e, spec, &state_heads, &dv);
        Scan { spec, scale, states_per_key, q_per_state, batch, time, dk, u, du, heads, columns, keys, slices, warps }
    }

    /// `memref[indices] += value` into a gradient of one key channel, summed over the
    /// value channels: on a GPU whose warps each hold one head's lanes, summed over the
    /// warp's lanes of this key slice and added atomically by the first of them;
    /// otherwise added atomically by each lane (or, on the CPU, plainly).
    fn add_over_columns(&self, e: &mut Builder, memref: &Value, indices: &[&Value], value: &Value) {
        let (Some(warps), Some(slices)) = (&self.warps, &self.slices) else {
            return e.accumulate_shared(memref, indices, value);
        };
        e.if_else(
            &warps.shared,
            |e| {
                let stages = stages_where(e, &[16, 8, 4, 2, 1], Cmp::Ge, &slices.count);
                let total = e.warp_butterfly(value, &stages);
                e.if_(&warps.column_leader, |e| e.atomic_add(memref, indices, &total));
            },
            |e| e.accumulate_shared(memref, indices, value),
        );
    }

    /// `memref[indices] += value` into a gradient of the whole head (every lane's
    /// `value` counts): summed over the warp and added by its first lane where warps
    /// hold one head's lanes; otherwise as [`Scan::add_over_columns`].
    fn add_over_head(&self, e: &mut Builder, memref: &Value, indices: &[&Value], value: &Value) {
        let Some(warps) = &self.warps else {
            return e.accumulate_shared(memref, indices, value);
        };
        e.if_else(
            &warps.shared,
            |e| {
                let total = e.warp_sum(value);
                e.if_(&warps.head_leader, |e| e.atomic_add(memref, indices, &total));
            },
            |e| e.accumulate_shared(memref, indices, value),
        );
    }

    /// `x` summed over the lanes that share this lane's column (each holds the sum over
    /// its key slice); every one of them gets the same total. `x` itself elsewhere.
    fn over_slices(&self, e: &mut Builder, x: &Value) -> Value {
        let Some(slices) = &self.slices else { return x.clone() };
        let c1 = e.c1();
        let sliced = e.cmp(Cmp::Gt, &slices.count, &c1);
        let ty = x.scalar();
        e.if_else_value(
            &sliced,
            ty,
            |e| {
                let stages = stages_where(e, &[1, 2, 4], Cmp::Lt, &slices.count);
                e.warp_butterfly(x, &stages)
            },
            |_| x.clone(),
        )
    }

    /// `body` run by one of the lanes that share a column (they all hold its sums).
    fn once_per_column(&self, e: &mut Builder, body: impl FnOnce(&mut Builder)) {
        match &self.slices {
            Some(slices) => e.if_(&slices.first, body),
            None => body(e),
        }
    }

    /// `x` in the first lane of a column, 0 in the others: a column's term of a sum
    /// over the head.
    fn column_share(&self, e: &mut Builder, x: &Value) -> Value {
        match &self.slices {
            Some(slices) => {
                let zero = e.zero();
                e.select(&slices.first, x, &zero)
            }
            None => x.clone(),
        }
    }

    /// Whether this is the CPU's form, whose token steps fuse their passes over the
    /// state ([`rows`]); a GPU's blocks form keeps the passes one by one.
    fn fused_rows(&self, e: &Builder) -> bool {
        e.config().parallel == Parallel::Parts
    }

    /// `Σ_j body(j)` over this call's value channels.
    fn sum_values(&self, e: &mut Builder, body: impl FnOnce(&mut Builder, &Value) -> Value) -> Value {
        let (from, to) = &self.columns;
        e.sum_over(from, to, body)
    }

    fn u(&self) -> &Value {
        self.u.as_ref().expect("the delta rule's scratch")
    }

    fn du(&self) -> &Value {
        self.du.as_ref().expect("the delta rule's scratch")
    }

    /// `body(b, h, hk)` for each batch and state head; `hk` is the key head it reads.
    fn for_heads(&self, e: &mut Builder, body: impl FnOnce(&mut Builder, Value, Value, Value)) {
        let c0 = e.c0();
        e.for_(&c0, &self.batch, |e, b| {
            e.for_(&self.heads.0, &self.heads.1, |e, h| {
                let hk = e.divui(&h, &self.states_per_key);
                body(e, b, h, hk);
            });
        });
    }

    /// `body(i, j)` over the state's entries, rows outside.
    fn for_state(&self, e: &mut Builder, body: impl Fn(&mut Builder, &Value, &Value)) {
        let (from, to) = &self.columns;
        self.for_keys(e, |e, i| e.for_(from, to, |e, j| body(e, &i, &j)));
    }

    /// `body(i)` over this call's key channels.
    fn for_keys(&self, e: &mut Builder, body: impl FnOnce(&mut Builder, Value)) {
        e.for_step(&self.keys.0, &self.dk, &self.keys.1, body);
    }

    /// `body(i, carried)` over this call's key channels, carrying values.
    fn fold_keys(
        &self,
        e: &mut Builder,
        inits: &[&Value],
        body: impl FnOnce(&mut Builder, Value, Vec<Value>) -> Vec<Value>,
    ) -> Vec<Value> {
        e.fold_step(&self.keys.0, &self.dk, &self.keys.1, inits, body)
    }

    /// `body(j)` over the value channels.
    fn for_values(&self, e: &mut Builder, body: impl FnOnce(&mut Builder, Value)) {
        let (from, to) = &self.columns;
        e.for_(from, to, body);
    }

    /// The token at `t` of head `(b, h, hk)`, with its per-token decay read.
    fn at(&self, e: &mut Builder, b: &Value, h: &Value, hk: &Value, t: Value) -> At {
        let scalar_alpha = match self.spec.decay {
            Decay::PerHead | Decay::Scalar => {
                let g = e.arg("g");
                let indices: Vec<&Value> = if self.spec.decay == Decay::PerHead { vec![h] } else { vec![b, &t, h] };
                let g = e.load(&g, &indices);
                Some(e.exp(&g))
            }
            Decay::None | Decay::Vector => None,
        };
        At { b: b.clone(), h: h.clone(), hk: hk.clone(), t, scalar_alpha }
    }

    /// `α_i` for key channel `i`, or `None` without a decay.
    fn alpha(&self, e: &mut Builder, at: &At, i: &Value) -> Option<Value> {
        match self.spec.decay {
            Decay::Vector => {
                let g = e.arg("g");
                let g = e.load(&g, &[&at.b, &at.t, &at.hk, i]);
                Some(e.exp(&g))
            }
            _ => at.scalar_alpha.clone(),
        }
    }

    /// `%vector[j] = 0` for every j < DV.
    fn zero_vector(&self, e: &mut Builder, vector: &Value) {
        self.for_values(e, |e, j| {
            let zero = e.zero();
            e.store(&zero, vector, &[&j]);
        });
    }

    /// `q[b, t, qh, i]`, or 1 when the readout has no query.
    fn query(&self, e: &mut Builder, at: &At, qh: &Value, i: &Value) -> Value {
        if self.spec.query {
            let q = e.arg("q");
            e.load(&q, &[&at.b, &at.t, qh, i])
        } else {
            e.one()
        }
    }

    /// `body(qh, oh)` for each query head reading the state: its query head and output head.
    fn for_readers(&self, e: &mut Builder, at: &At, body: impl FnOnce(&mut Builder, Value, Value)) {
        let c0 = e.c0();
        e.for_(&c0, &self.q_per_state, |e, r| {
            let (qh, oh) = self.reader(e, at, &r);
            body(e, qh, oh);
        });
    }

    /// The `r`-th query head reading the state and its output head.
    fn reader(&self, e: &mut Builder, at: &At, r: &Value) -> (Value, Value) {
        let q_base = e.mul(&at.hk, &self.q_per_state);
        let qh = e.add(&q_base, r);
        let o_base = e.mul(&at.h, &self.q_per_state);
        let oh = e.add(&o_base, r);
        (qh, oh)
    }
}

/// One token's state update from `src` into `dst` (which may be the same place):
/// `dst = Diag(α) src`, then the additive or delta write.
fn emit_update(e: &mut Builder, scan: &Scan, at: &At, src: &Place, dst: &Place, in_place: bool) {
    if scan.fused_rows(e) {
        return rows::update(e, scan, at, [src, dst], in_place, false);
    }
    if !(in_place && scan.spec.decay == Decay::None) {
        decay_state(e, scan, at, src, dst);
    }
    if scan.spec.update == ScanUpdate::Delta {
        delta_write(e, scan, at, dst);
    }
    write_state(e, scan, at, dst);
}

/// `dst = Diag(α) src`.
fn decay_state(e: &mut Builder, scan: &Scan, at: &At, src: &Place, dst: &Place) {
    scan.for_keys(e, |e, i| {
        let a = scan.alpha(e, at, &i);
        scan.for_values(e, |e, j| {
            let s = src.load(e, &i, &j);
            let decayed = match &a {
                Some(a) => e.mul(a, &s),
                None => s,
            };
            dst.store(e, &decayed, &i, &j);
        });
    });
}

/// `u = β (v − S'ᵀ k)` into `%u`, the read accumulated row by row (unit stride along j).
fn delta_write(e: &mut Builder, scan: &Scan, at: &At, state: &Place) {
    let (k, beta) = (e.arg("k"), e.arg("beta"));
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    let u = scan.u();
    let beta = e.load(&beta, &[b, t, h]);
    scan.zero_vector(e, u);
    scan.for_keys(e, |e, i| {
        let k = e.load(&k, &[b, t, hk, &i]);
        scan.for_values(e, |e, j| {
            let s = state.load(e, &i, &j);
            let sk = e.mul(&s, &k);
            e.accumulate(u, &[&j], &sk);
        });
    });
    delta_update_from_read(e, scan, at, &beta);
}

/// `u = β (v − u)` over the value channels, `%u` holding the read `S'ᵀk`.
fn delta_update_from_read(e: &mut Builder, scan: &Scan, at: &At, beta: &Value) {
    let (v, u) = (e.arg("v"), scan.u());
    scan.for_values(e, |e, j| {
        let read = e.load(u, &[&j]);
        let v = e.load(&v, &[&at.b, &at.t, &at.h, &j]);
        let error = e.sub(&v, &read);
        let update = e.mul(beta, &error);
        e.store(&update, u, &[&j]);
    });
}

/// `S += k wᵀ` with `w = v` (additive) or `w = u` (delta).
fn write_state(e: &mut Builder, scan: &Scan, at: &At, state: &Place) {
    let k = e.arg("k");
    let (b, t, hk) = (&at.b, &at.t, &at.hk);
    scan.for_keys(e, |e, i| {
        let k = e.load(&k, &[b, t, hk, &i]);
        scan.for_values(e, |e, j| {
            let s = state.load(e, &i, &j);
            let next = written(e, scan, at, [&s, &k], &j);
            state.store(e, &next, &i, &j);
        });
    });
}

/// The written state's entry `s + k_i w_j` (`w = v` additive, `u` delta).
fn written(e: &mut Builder, scan: &Scan, at: &At, [s, k]: [&Value; 2], j: &Value) -> Value {
    let w = match scan.spec.update {
        ScanUpdate::Additive => {
            let v = e.arg("v");
            e.load(&v, &[&at.b, &at.t, &at.h, j])
        }
        ScanUpdate::Delta => e.load(scan.u(), &[j]),
    };
    let kw = e.mul(k, &w);
    e.add(s, &kw)
}

/// `o = scale · Sᵀ q` for each query head reading the state, accumulated row by row of
/// the state (unit stride along j) straight into `o` — or, when `o` is stored in a
/// narrower type than the arithmetic (bf16), summed in a register per column and stored
/// once (partial sums rounded to bf16 would cancel into noise).
fn emit_readout(e: &mut Builder, scan: &Scan, at: &At, state: &Place) {
    let o = e.arg("o");
    if o.memref().0 != e.compute() {
        return emit_readout_by_column(e, scan, at, state, &o);
    }
    scan.for_readers(e, at, |e, qh, oh| {
        scan.for_values(e, |e, j| {
            let zero = e.zero();
            e.store(&zero, &o, &[&at.b, &at.t, &oh, &j]);
        });
        scan.for_keys(e, |e, i| {
            let q = scan.query(e, at, &qh, &i);
            let scaled = e.mul(&scan.scale, &q);
            scan.for_values(e, |e, j| {
                let s = state.load(e, &i, &j);
                let sq = e.mul(&s, &scaled);
                e.accumulate(&o, &[&at.b, &at.t, &oh, &j], &sq);
            });
        });
    });
}

/// [`emit_readout`] for an `o` stored narrower than the arithmetic: per column `j`,
/// `o[j] = scale · Σ_i S[i, j] q[i]` in a register.
fn emit_readout_by_column(e: &mut Builder, scan: &Scan, at: &At, state: &Place, o: &Value) {
    scan.for_readers(e, at, |e, qh, oh| {
        scan.for_values(e, |e, j| {
            let total = e.sum(&scan.dk, |e, i| {
                let q = scan.query(e, at, &qh, i);
                let s = state.load(e, i, &j);
                e.mul(&s, &q)
            });
            let scaled = e.mul(&scan.scale, &total);
            e.store(&scaled, o, &[&at.b, &at.t, &oh, &j]);
        });
    });
}

/// The forward token recurrence as an MLIR module with one function, `name`.
pub fn forward(spec: &ScanSpec, name: &str) -> String {
    forward_with(spec, name, &Config::CPU)
}

/// [`forward`] under any [`Config`]: q, k, v, the decays, β, o and the state are memrefs
/// of its storage type; the recurrence is computed in its compute type.
pub fn forward_with(spec: &ScanSpec, name: &str, config: &Config) -> String {
    forward_impl(spec, name, None, config)
}

/// The forward recurrence that also saves the state before every `chunk`-th token.
pub fn forward_train(spec: &ScanSpec, name: &str, chunk: u64) -> String {
    forward_train_with(spec, name, chunk, &Config::CPU)
}

/// [`forward_train`] under any [`Config`].
pub fn forward_train_with(spec: &ScanSpec, name: &str, chunk: u64, config: &Config) -> String {
    forward_impl(spec, name, Some(chunk.max(1)), config)
}

fn forward_impl(spec: &ScanSpec, name: &str, chunk: Option<u64>, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let args = if chunk.is_some() { spec.train_arguments() } else { spec.arguments() };
    let scan = Scan::prologue(&mut e, spec, name, &args, "state");
    let chunk = chunk.map(|chunk| e.named("chunk").constant_index(chunk));
    if e.config().parallel.has_lanes() {
        lanes::forward(&mut e, &scan, chunk.as_ref());
        return e.finish();
    }
    let state = e.arg("state");
    let fused_readout = scan.fused_rows(&e) && rows::fuses_readout(&mut e, &scan);
    scan.for_heads(&mut e, |e, b, h, hk| {
        let c0 = e.c0();
        e.for_(&c0, &scan.time, |e, t| {
            if let Some(chunk) = &chunk {
                save_checkpoint(e, &scan, chunk, [&b, &h, &t]);
            }
            let at = scan.at(e, &b, &h, &hk, t);
            let place = Place::new(&state, &[&b, &h]);
            if fused_readout {
                return rows::update(e, &scan, &at, [&place, &place], true, true);
            }
            emit_update(e, &scan, &at, &place, &place, true);
            emit_readout(e, &scan, &at, &place);
        });
    });
    e.finish()
}

/// At a chunk start (`t mod chunk = 0`), saves the state the chunk starts from into
/// `ckpt[b, h, t / chunk]`.
fn save_checkpoint(e: &mut Builder, scan: &Scan, chunk: &Value, [b, h, t]: [&Value; 3]) {
    let (state, ckpt, c0) = (e.arg("state"), e.arg("ckpt"), e.c0());
    let rem = e.remui(t, chunk);
    let starts = e.cmp(Cmp::Eq, &rem, &c0);
    e.if_(&starts, |e| {
        let c = e.divui(t, chunk);
        scan.for_state(e, |e, i, j| {
            let s = e.load(&state, &[b, h, i, j]);
            e.store(&s, &ckpt, &[b, h, &c, i, j]);
        });
    });
}

/// [`backward_with`] in the chunked form ([`chunked`]): the function, its sizes, then
/// the form's phases.
fn chunked_backward(spec: &ScanSpec, name: &str, chunk: u64, config: &Config) -> String {
    let mut e = Builder::new(*config);
    e.begin_function(name, &spec.backward_arguments());
    let (k, dstate) = (e.arg("k"), e.arg("dstate"));
    let batch = e.named("B").dim(&k, 0);
    let time = e.named("T").dim(&k, 1);
    let heads = e.named("HS").dim(&dstate, 1);
    let (dk, _) = state_dims(&mut e, spec, &dstate);
    chunked::backward(&mut e, spec, chunk.max(1), [&batch, &time, &heads, &dk]);
    e.finish()
}

/// The chunking of the reverse scan: the chunk length, their count, and the scratch
/// buffer of `chunk + 1` states.
struct Chunks {
    chunk: Value,
    count: Value,
    buffer: Value,
}

/// The chunk the reverse scan is in: its checkpoint index `c`, its first token and its
/// length (the last chunk may be short).
struct Chunk {
    index: Value,
    start: Value,
    len: Value,
}

/// The reverse scan: gradients of q, k, v, the log-decays and β, and of the initial
/// state, from the output gradient and the final-state gradient.
pub fn backward(spec: &ScanSpec, name: &str, chunk: u64) -> String {
    backward_with(spec, name, chunk, &Config::CPU)
}

/// [`backward`] under any [`Config`]. Its scratch of `chunk + 1` states per head is the
/// argument `buf`, laid out so that a GPU's lanes (one per value column) read and write
/// neighbouring elements.
pub fn backward_with(spec: &ScanSpec, name: &str, chunk: u64, config: &Config) -> String {
    if config.parallel.is_block() {
        return chunked_backward(spec, name, chunk, config);
    }
    let mut e = Builder::new(*config);
    let scan = Scan::prologue(&mut e, spec, name, &spec.backward_arguments(), "dstate");
    let chunks = define_chunks(&mut e, &scan, chunk.max(1));
    if e.config().parallel.has_lanes() {
        lanes::backward(&mut e, &scan, &chunks);
        return e.finish();
    }
    scan.for_heads(&mut e, |e, b, h, hk| {
        for_chunks_last_first(e, &scan, &chunks, |e, chunk| {
            recompute_chunk_states(e, &scan, &chunks, &chunk, [&b, &h, &hk]);
            for_tokens_last_first(e, &scan, &chunk, [&b, &h, &hk], |e, at, s, s1| {
                let dstate = e.arg("dstate");
                let states = TokenStates {
                    prev: Place::new(&chunks.buffer, &[&b, &h, s]),
                    now: Place::new(&chunks.buffer, &[&b, &h, s1]),
                    ds: Place::new(&dstate, &[&b, &h]),
                };
                if scan.fused_rows(e) && rows::fuses_backward(&scan) {
                    return rows::token_backward(e, &scan, at, &states);
                }
                token_backward(e, &scan, at, &states);
            });
        });
    });
    e.finish()
}

/// Defines the reverse scan's chunking: `%chunk`, `%nchunks`, and its scratch `%buf`
/// (`chunk + 1` states per batch element and head).
fn define_chunks(e: &mut Builder, scan: &Scan, chunk: u64) -> Chunks {
    let chunk = e.named("chunk").constant_index(chunk);
    let count = e.named("nchunks").ceildivui(&scan.time, &chunk);
    Chunks { chunk, count, buffer: e.arg("buf") }
}

/// `body(chunk)` for each chunk, from the last.
fn for_chunks_last_first(e: &mut Builder, scan: &Scan, chunks: &Chunks, body: impl FnOnce(&mut Builder, Chunk)) {
    let c0 = e.c0();
    e.for_(&c0, &chunks.count, |e, ci| {
        let chunk = chunk_from_last(e, scan, chunks, &ci);
        body(e, chunk);
    });
}

/// The `ci`-th chunk counted from the last.
fn chunk_from_last(e: &mut Builder, scan: &Scan, chunks: &Chunks, ci: &Value) -> Chunk {
    let c1 = e.c1();
    let last = e.sub(&chunks.count, &c1);
    let index = e.sub(&last, ci);
    let start = e.mul(&index, &chunks.chunk);
    let left = e.sub(&scan.time, &start);
    let len = e.min(&left, &chunks.chunk);
    Chunk { index, start, len }
}

/// The chunk's states into the buffer: `buf[0]` from the checkpoint, `buf[s + 1]` the
/// state after token `start + s`.
fn recompute_chunk_states(e: &mut Builder, scan: &Scan, chunks: &Chunks, chunk: &Chunk, [b, h, hk]: [&Value; 3]) {
    let (ckpt, c0, c1) = (e.arg("ckpt"), e.c0(), e.c1());
    let first = Place::new(&chunks.buffer, &[b, h, &c0]);
    scan.for_state(e, |e, i, j| {
        let s = e.load(&ckpt, &[b, h, &chunk.index, i, j]);
        first.store(e, &s, i, j);
    });
    e.for_(&c0, &chunk.len, |e, s| {
        let t = e.add(&chunk.start, &s);
        let s1 = e.add(&s, &c1);
        let at = scan.at(e, b, h, hk, t);
        let src = Place::new(&chunks.buffer, &[b, h, &s]);
        let dst = Place::new(&chunks.buffer, &[b, h, &s1]);
        emit_update(e, scan, &at, &src, &dst, false);
    });
}

/// `body(at, s, s + 1)` for each token of the chunk, from the last: `s` is the token's
/// slot in the chunk, so `buf[s]` is the state before it and `buf[s + 1]` after it.
fn for_tokens_last_first(
    e: &mut Builder,
    scan: &Scan,
    chunk: &Chunk,
    [b, h, hk]: [&Value; 3],
    body: impl FnOnce(&mut Builder, &At, &Value, &Value),
) {
    let (c0, c1) = (e.c0(), e.c1());
    e.for_(&c0, &chunk.len, |e, si| {
        let len1 = e.sub(&chunk.len, &c1);
        let s = e.sub(&len1, &si);
        let s1 = e.add(&s, &c1);
        let t = e.add(&chunk.start, &s);
        let at = scan.at(e, b, h, hk, t);
        body(e, &at, &s, &s1);
    });
}

/// The states around one token of the reverse scan: before it (`buf[s]`), after it
/// (`buf[s + 1]`), and the gradient reaching the state after it (`dstate[b, h]`, which
/// leaves holding the gradient of the state before it).
struct TokenStates {
    prev: Place,
    now: Place,
    ds: Place,
}

/// One token of the reverse scan, in the reverse order of its forward: the readout, the
/// write, then the decay.
fn token_backward(e: &mut Builder, scan: &Scan, at: &At, states: &TokenStates) {
    let TokenStates { prev, now, ds } = states;
    readout_backward(e, scan, at, now, ds);
    match scan.spec.update {
        ScanUpdate::Additive => additive_write_backward(e, scan, at, ds),
        ScanUpdate::Delta => delta_write_backward(e, scan, at, prev, ds),
    }
    if scan.spec.decay != Decay::None {
        decay_backward(e, scan, at, prev, ds);
    }
}

/// The readout's gradients: `dq += scale · S_t dO`; `dS += scale · q dOᵀ`.
fn readout_backward(e: &mut Builder, scan: &Scan, at: &At, now: &Place, ds: &Place) {
    let dout = e.arg("dout");
    let dq = scan.spec.query.then(|| e.arg("dq"));
    scan.for_readers(e, at, |e, qh, oh| {
        scan.for_keys(e, |e, i| {
            let q = scan.query(e, at, &qh, &i);
            let dot = scan.sum_values(e, |e, j| {
                let st = now.load(e, &i, j);
                let d_out = e.load(&dout, &[&at.b, &at.t, &oh, j]);
                let sd = e.mul(&st, &d_out);
                let qd = e.mul(&q, &d_out);
                let scaled = e.mul(&scan.scale, &qd);
                ds.accumulate(e, &i, j, &scaled);
                sd
            });
            if let Some(dq) = &dq {
                let dq_value = e.mul(&scan.scale, &dot);
                scan.add_over_columns(e, dq, &[&at.b, &at.t, &qh, &i], &dq_value);
            }
        });
    });
}

/// The additive write's gradients: `dv_j += Σ_i dS_ij k_i`, `dk_i += Σ_j dS_ij v_j`.
fn additive_write_backward(e: &mut Builder, scan: &Scan, at: &At, ds: &Place) {
    let [k, v, dk, dv] = ["k", "v", "dk", "dv"].map(|arg| e.arg(arg));
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    scan.for_keys(e, |e, i| {
        let k = e.load(&k, &[b, t, hk, &i]);
        let dk_value = scan.sum_values(e, |e, j| {
            let d = ds.load(e, &i, j);
            let v = e.load(&v, &[b, t, h, j]);
            let dv_value = e.mul(&d, &k);
            e.accumulate(&dv, &[b, t, h, j], &dv_value);
            e.mul(&d, &v)
        });
        scan.add_over_columns(e, &dk, &[b, t, hk, &i], &dk_value);
    });
}

/// The decayed previous state `S' = Diag(α) S_{t-1}` at `(i, j)`, read on the fly.
fn decayed(e: &mut Builder, scan: &Scan, at: &At, prev: &Place, i: &Value, j: &Value) -> Value {
    let p = prev.load(e, i, j);
    match scan.alpha(e, at, i) {
        Some(a) => e.mul(&a, &p),
        None => p,
    }
}

/// The delta write's gradients, in three passes over the state: its reads, then the
/// gradients of v and β, then those of k and the state.
fn delta_write_backward(e: &mut Builder, scan: &Scan, at: &At, prev: &Place, ds: &Place) {
    let beta = e.arg("beta");
    let beta = e.load(&beta, &[&at.b, &at.t, &at.h]);
    delta_reads(e, scan, at, prev, ds);
    delta_value_gradients(e, scan, at, &beta);
    delta_key_gradients(e, scan, at, &beta, prev, ds);
}

/// The delta write's two reads: `S'ᵀk` into `%u` and `dSᵀk` into `%du`, both
/// accumulated row by row (unit stride along j).
fn delta_reads(e: &mut Builder, scan: &Scan, at: &At, prev: &Place, ds: &Place) {
    let k = e.arg("k");
    let (u, du) = (scan.u(), scan.du());
    scan.zero_vector(e, u);
    scan.zero_vector(e, du);
    scan.for_keys(e, |e, i| {
        let k = e.load(&k, &[&at.b, &at.t, &at.hk, &i]);
        scan.for_values(e, |e, j| {
            let sp = decayed(e, scan, at, prev, &i, &j);
            let spk = e.mul(&sp, &k);
            e.accumulate(u, &[&j], &spk);
            let d = ds.load(e, &i, &j);
            let dk = e.mul(&d, &k);
            e.accumulate(du, &[&j], &dk);
        });
    });
}

/// The error `e = v − S'ᵀk` (kept in `%u`), and the gradients it gives:
/// `dβ += Σ_j du_j e_j`, `dv_j += β du_j`.
fn delta_value_gradients(e: &mut Builder, scan: &Scan, at: &At, beta: &Value) {
    let [v, dv, dbeta] = ["v", "dv", "dbeta"].map(|arg| e.arg(arg));
    let (b, t, h) = (&at.b, &at.t, &at.h);
    let (u, du) = (scan.u(), scan.du());
    scan.for_values(e, |e, j| {
        let read = e.load(u, &[&j]);
        let v = e.load(&v, &[b, t, h, &j]);
        let err = e.sub(&v, &read);
        e.store(&err, u, &[&j]);
        let du = e.load(du, &[&j]);
        let de = e.mul(&du, &err);
        let de = scan.column_share(e, &de);
        scan.add_over_head(e, &dbeta, &[b, t, h], &de);
        let dv_value = e.mul(beta, &du);
        scan.once_per_column(e, |e| e.accumulate(&dv, &[b, t, h, &j], &dv_value));
    });
}

/// `dk_i += β Σ_j (dS_ij e_j − S'_ij du_j)`; then `dS_ij −= β k_i du_j`, the gradient
/// reaching `S'`.
fn delta_key_gradients(e: &mut Builder, scan: &Scan, at: &At, beta: &Value, prev: &Place, ds: &Place) {
    let [k, dk] = ["k", "dk"].map(|arg| e.arg(arg));
    let (b, t, hk) = (&at.b, &at.t, &at.hk);
    let (u, du) = (scan.u(), scan.du());
    scan.for_keys(e, |e, i| {
        let k = e.load(&k, &[b, t, hk, &i]);
        let sum = scan.sum_values(e, |e, j| {
            let d = ds.load(e, &i, j);
            let err = e.load(u, &[j]);
            let du = e.load(du, &[j]);
            let sp = decayed(e, scan, at, prev, &i, j);
            let [diff, nd] = key_terms(e, [&d, &err, &du, &sp], [&k, beta]);
            ds.store(e, &nd, &i, j);
            diff
        });
        let dk_value = e.mul(beta, &sum);
        scan.add_over_columns(e, &dk, &[b, t, hk, &i], &dk_value);
    });
}

/// At `(i, j)` of the delta write's reverse, from `dS_ij`, `e_j`, `du_j`, `S'_ij` and
/// `k_i`, `β`: the term `dS_ij e_j − S'_ij du_j` of `dk_i`, and `dS_ij − β k_i du_j`.
fn key_terms(e: &mut Builder, [d, err, du, sp]: [&Value; 4], [k, beta]: [&Value; 2]) -> [Value; 2] {
    let a1 = e.mul(d, err);
    let a2 = e.mul(sp, du);
    let diff = e.sub(&a1, &a2);
    let kdu = e.mul(k, du);
    let bkdu = e.mul(beta, &kdu);
    [diff, e.sub(d, &bkdu)]
}

/// The decay's gradients: `dg += α Σ_j dS'_ij S_{t-1,ij}` per key channel (a vector
/// gate), or that summed over the key channels in a register and added once (one
/// decay per head: every lane of the head adds into the one element);
/// `dS_{t-1} = Diag(α) dS'`.
fn decay_backward(e: &mut Builder, scan: &Scan, at: &At, prev: &Place, ds: &Place) {
    let dg = e.arg("dg");
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    let channel_gradient = |e: &mut Builder, i: &Value| {
        let a = scan.alpha(e, at, i).expect("a decay");
        let dot = scan.sum_values(e, |e, j| {
            let d = ds.load(e, i, j);
            let p = prev.load(e, i, j);
            let dp = e.mul(&d, &p);
            let nd = e.mul(&a, &d);
            ds.store(e, &nd, i, j);
            dp
        });
        e.mul(&a, &dot)
    };
    let at_head: Vec<&Value> = match scan.spec.decay {
        Decay::Vector => {
            return scan.for_keys(e, |e, i| {
                let dg_value = channel_gradient(e, &i);
                scan.add_over_columns(e, &dg, &[b, t, hk, &i], &dg_value);
            });
        }
        Decay::PerHead => vec![h],
        Decay::Scalar => vec![b, t, h],
        Decay::None => unreachable!("no decay, no gradient"),
    };
    let zero = e.zero();
    let total = scan.fold_keys(e, &[&zero], |e, i, carried| {
        let dg_value = channel_gradient(e, &i);
        vec![e.add(&carried[0], &dg_value)]
    });
    scan.add_over_head(e, &dg, &at_head, &total[0]);
}
