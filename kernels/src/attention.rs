//! Causal softmax attention, generated as MLIR: forward with an online softmax (keys
//! streamed, one running maximum and normaliser per query, so no `T × T` matrix is ever
//! stored) and the backward that recomputes the probabilities from the saved
//! log-sum-exp. Optional sliding window (query `t` sees keys `t − w < s ≤ t`, flash-attn's
//! `(w − 1, 0)`), grouped key/value heads (query head `h` reads kv head `h / group`).
//!
//! Lanes: under [`crate::emit::Parallel::Threads`] the training kernels run one lane per (query
//! row, head), the lane `gpu.block_id y · gpu.block_dim x + gpu.thread_id x` of its
//! point, lane `h · T + t` (a warp's lanes are neighbouring rows of one head, so each
//! key row a loop reads is read once for the warp). The forward's rows are independent. The backward's lane `(x, h)` computes
//! query row `x`'s `dq` and key row `x`'s `dk`, `dv` from head `h`'s queries (summed in
//! the lane, then added atomically: a kv head's group adds into it), so no two lanes
//! add into one element per key; the CPU's backward walks every pair once instead.
//!
//! Shapes: q `[B,T,H,D]`, k and v `[B,T,Hkv,D]`, o `[B,T,H,D]`, lse `[B,H,T]`.
//! RoPE is its own kernel ([`rope`]), applied to q and k before attention; its backward
//! is the inverse rotation, the same kernel with `inverse: true`.

mod lanes;

use crate::emit::{Builder, Cmp, Config, Scalar, Ty, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Query heads per key/value head (1 for multi-head attention).
    pub group: u64,
    pub window: Option<u64>,
    pub scale: f64,
    /// The head dim `D`: the GPU's lanes form keeps a lane's rows of it in registers,
    /// unrolled when generated; a call whose tensors have another traps there.
    pub head_dim: u64,
}

impl AttentionSpec {
    pub fn forward_arguments(&self) -> Vec<(&'static str, usize)> {
        vec![("q", 4), ("k", 4), ("v", 4), ("o", 4), ("lse", 3)]
    }

    /// The forward's tensors, the output gradient, then the gradients of q, k and v
    /// (k and v accumulate: zero them first).
    pub fn backward_arguments(&self) -> Vec<(&'static str, usize)> {
        vec![("q", 4), ("k", 4), ("v", 4), ("o", 4), ("lse", 3), ("dout", 4), ("dq", 4), ("dk", 4), ("dv", 4)]
    }
}

/// Opens the function: `args` are tensors of the storage type, except `pos`, the f32
/// position a decoding kernel reads.
fn header(e: &mut Builder, name: &str, args: &[(&str, usize)]) {
    let typed: Vec<(&str, Ty)> = args
        .iter()
        .map(|(arg, rank)| (*arg, if *arg == "pos" { Ty::memref(*rank, Scalar::F32) } else { e.tensor(*rank) }))
        .collect();
    e.begin_function_typed(name, &typed);
    // `%c2` and `%c3` at the top, for the dims along axes 2 and 3 and any later use.
    e.constant_index(2);
    e.constant_index(3);
}

/// The values the query loops define once: the scale, the head grouping, the query
/// tensor's sizes and the window.
struct Sizes {
    scale: Value,
    group: Value,
    batch: Value,
    time: Value,
    dim: Value,
    window: Option<Value>,
    /// The query heads and rows this call (or lane) walks.
    head_range: (Value, Value),
    row_range: (Value, Value),
}

/// The loops' indices for one query: batch, query head, kv head, the query's row `t`,
/// its position in the sequence (`t`, or `t + offset` when decoding) and the first key
/// position it sees.
#[derive(Clone)]
struct Query {
    b: Value,
    h: Value,
    hk: Value,
    t: Value,
    position: Value,
    first: Value,
}

/// Defines the values the query loops share.
fn sizes(e: &mut Builder, spec: &AttentionSpec, lanes: bool) -> Sizes {
    let q = e.arg("q");
    let scale = e.named("scale").constant(spec.scale);
    let group = e.named("group").constant_index(spec.group);
    let batch = e.named("B").dim(&q, 0);
    let time = e.named("T").dim(&q, 1);
    let heads = e.named("H").dim(&q, 2);
    let dim = e.named("D").dim(&q, 3);
    let window = spec.window.map(|window| e.named("window").constant_index(window));
    let (head_range, row_range) = lane_ranges(e, &heads, &time, lanes);
    Sizes { scale, group, batch, time, dim, window, head_range, row_range }
}

/// With `lanes` under `Parallel::Threads` (the training kernels' GPU form), this
/// thread's (row, head) as one-long ranges (empty past the last head); otherwise every
/// head and row. Returns (heads, rows). Neighbouring lanes are neighbouring rows of one
/// head, so a warp walking the keys reads each key's row once for all its lanes.
fn lane_ranges(e: &mut Builder, heads: &Value, time: &Value, lanes: bool) -> ((Value, Value), (Value, Value)) {
    let grid = e.lane_grid(heads, time, lanes);
    (grid.outer, grid.inner)
}

/// `body(query)` over batch, query heads and query rows; query row `t` sits at position
/// `t + offset` (no offset: at `t`).
fn for_queries(e: &mut Builder, sizes: &Sizes, offset: Option<&Value>, body: impl FnOnce(&mut Builder, Query)) {
    let (c0, c1) = (e.c0(), e.c1());
    e.for_(&c0, &sizes.batch, |e, b| {
        e.for_(&sizes.head_range.0, &sizes.head_range.1, |e, h| {
            let hk = e.divui(&h, &sizes.group);
            e.for_(&sizes.row_range.0, &sizes.row_range.1, |e, t| {
                let position = match offset {
                    Some(offset) => e.add(&t, offset),
                    None => t.clone(),
                };
                let first = match &sizes.window {
                    // max(0, position + 1 − w) without going below zero in unsigned arithmetic.
                    Some(window) => {
                        let end = e.add(&position, &c1);
                        let past = e.cmp(Cmp::Gt, &end, window);
                        let start = e.sub(&end, window);
                        e.select(&past, &start, &c0)
                    }
                    None => c0.clone(),
                };
                body(e, Query { b, h, hk, t, position, first });
            });
        });
    });
}

/// Where a lane reads one row (`D` values) of a `[B,T,H,D]` tensor: a copy in its frame
/// (a row it reads once per key), or the tensor at `[b, t, h]` (a row that changes with
/// the loop, read alike by every lane of a warp).
#[derive(Clone)]
enum Row {
    Frame(Value),
    Tensor(Value, [Value; 3]),
}

impl Row {
    /// Row `[b, t, h]` of the argument `arg`.
    fn of(e: &mut Builder, arg: &str, [b, t, h]: [&Value; 3]) -> Row {
        Row::Tensor(e.arg(arg), [b.clone(), t.clone(), h.clone()])
    }

    /// `frame` holding a copy of row `[b, t, h]` of `arg`.
    fn copied(e: &mut Builder, frame: &Value, arg: &str, at: [&Value; 3], dim: &Value) -> Row {
        let source = Row::of(e, arg, at);
        let c0 = e.c0();
        e.for_(&c0, dim, |e, d| {
            let x = source.load(e, &d);
            e.store(&x, frame, &[&d]);
        });
        Row::Frame(frame.clone())
    }

    fn load(&self, e: &mut Builder, d: &Value) -> Value {
        match self {
            Row::Frame(frame) => e.load(frame, &[d]),
            Row::Tensor(memref, [b, t, h]) => e.load(memref, &[b, t, h, d]),
        }
    }
}

/// `Σ_d a_d · b_d` over the head dim.
fn row_dot(e: &mut Builder, sizes: &Sizes, a: &Row, b: &Row) -> Value {
    e.dot(&sizes.dim, |e, d| (a.load(e, d), b.load(e, d)))
}

/// `scale · q_t · k_s`.
fn score(e: &mut Builder, sizes: &Sizes, q: &Row, k: &Row) -> Value {
    let dot = row_dot(e, sizes, q, k);
    e.mul(&sizes.scale, &dot)
}

/// The training forward: `o`, and the log-sum-exp of every query row for the backward.
pub fn forward(spec: &AttentionSpec, name: &str) -> String {
    forward_with(spec, name, &Config::CPU)
}

/// [`forward`] under any [`Config`].
pub fn forward_with(spec: &AttentionSpec, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    header(&mut e, name, &spec.forward_arguments());
    if config.parallel.has_lanes() {
        lanes::forward(&mut e, spec);
        return e.finish();
    }
    emit_forward(&mut e, spec, None, true);
    e.finish()
}

/// Decoding: the queries of the next `T` tokens (usually one) at positions `pos + t`,
/// with the keys and values of every earlier token in a cache. Args: q `[B,T,H,D]`, the
/// new k and v `[B,T,Hkv,D]`, the caches `[B,L,Hkv,D]` (L the longest sequence), `pos`
/// `[1]` (the first new token's position, as f32), o. Writes the new keys and values
/// into the caches at `pos`, then attends over positions `≤ pos + t`.
pub fn decode(spec: &AttentionSpec, name: &str) -> String {
    decode_with(spec, name, &Config::CPU)
}

/// [`decode`] under any [`Config`]; `pos` is f32 under every one.
pub fn decode_with(spec: &AttentionSpec, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    header(&mut e, name, &[("q", 4), ("k_new", 4), ("v_new", 4), ("k", 4), ("v", 4), ("pos", 1), ("o", 4)]);
    let offset = read_position(&mut e);
    append_to_cache(&mut e, &offset);
    emit_forward(&mut e, spec, Some(&offset), false);
    e.finish()
}

/// The position in the f32 buffer `pos`, as an index.
fn read_position(e: &mut Builder) -> Value {
    let (pos, c0) = (e.arg("pos"), e.c0());
    let position = e.load(&pos, &[&c0]);
    let position = e.fptosi(&position, Scalar::I64);
    e.index_cast(&position, Scalar::Index)
}

/// Writes `k_new` and `v_new` into the caches `k` and `v` at positions `offset + t`.
fn append_to_cache(e: &mut Builder, offset: &Value) {
    let (k_new, v_new, k, v) = (e.arg("k_new"), e.arg("v_new"), e.arg("k"), e.arg("v"));
    let batch = e.named("Bn").dim(&k_new, 0);
    let time = e.named("Tn").dim(&k_new, 1);
    let heads = e.named("Hn").dim(&k_new, 2);
    let dim = e.named("Dn").dim(&k_new, 3);
    let c0 = e.c0();
    e.for_(&c0, &batch, |e, b| {
        e.for_(&c0, &time, |e, t| {
            let s = e.add(&t, offset);
            e.for_(&c0, &heads, |e, h| {
                e.for_(&c0, &dim, |e, d| {
                    for (new, cache) in [(&k_new, &k), (&v_new, &v)] {
                        let x = e.load(new, &[&b, &t, &h, &d]);
                        e.store(&x, cache, &[&b, &s, &h, &d]);
                    }
                });
            });
        });
    });
}

/// The online-softmax forward over every query row (at `offset` + row); the log-sum-exp
/// is stored when `lse` (training keeps it for the backward).
fn emit_forward(e: &mut Builder, spec: &AttentionSpec, offset: Option<&Value>, lse: bool) {
    let (q, o) = (e.arg("q"), e.arg("o"));
    let negative_infinity = e.named("neg_inf").constant(f64::NEG_INFINITY);
    let head_dim = e.named("Dq").dim(&q, 3);
    let compute = e.compute();
    let acc = e.named("acc").alloca(compute, &[&head_dim]);
    let q_row = e.named("q_row").alloca(compute, &[&head_dim]);
    let sizes = sizes(e, spec, offset.is_none());
    let (c0, c1) = (e.c0(), e.c1());
    for_queries(e, &sizes, offset, |e, query| {
        e.for_(&c0, &sizes.dim, |e, d| {
            let zero = e.zero();
            e.store(&zero, &acc, &[&d]);
        });
        let q = Row::copied(e, &q_row, "q", [&query.b, &query.t, &query.h], &sizes.dim);
        let end = e.add(&query.position, &c1);
        let (m, l) = online_softmax(e, &sizes, &query, &q, &end, &acc, &negative_infinity);
        let Query { b, h, t, .. } = &query;
        e.for_(&c0, &sizes.dim, |e, d| {
            let a = e.load(&acc, &[&d]);
            let out = e.div(&a, &l);
            e.store(&out, &o, &[b, t, h, &d]);
        });
        if lse {
            let log_l = e.log(&l);
            let lse_value = e.add(&m, &log_l);
            let lse = e.arg("lse");
            e.store(&lse_value, &lse, &[b, h, t]);
        }
    });
}

/// The loop over keys `[first, end)` of one query: a running maximum m and normaliser l,
/// and `acc = Σ p v` rescaled whenever the maximum grows. Returns the final (m, l).
fn online_softmax(
    e: &mut Builder,
    sizes: &Sizes,
    query: &Query,
    q: &Row,
    end: &Value,
    acc: &Value,
    negative_infinity: &Value,
) -> (Value, Value) {
    let v = e.arg("v");
    let (c0, zero) = (e.c0(), e.zero());
    let results = e.fold(&query.first, end, &[negative_infinity, &zero], |e, s, carried| {
        let [m_in, l_in] = <[Value; 2]>::try_from(carried).expect("two carried values");
        let k = Row::of(e, "k", [&query.b, &s, &query.hk]);
        let x = score(e, sizes, q, &k);
        let m_new = e.max(&m_in, &x);
        let shift = e.sub(&m_in, &m_new);
        let correction = e.exp(&shift);
        let centred = e.sub(&x, &m_new);
        let p = e.exp(&centred);
        let l_scaled = e.mul(&l_in, &correction);
        let l_new = e.add(&l_scaled, &p);
        e.for_(&c0, &sizes.dim, |e, d| {
            let a = e.load(acc, &[&d]);
            let value = e.load(&v, &[&query.b, &s, &query.hk, &d]);
            let a_scaled = e.mul(&a, &correction);
            let pv = e.mul(&p, &value);
            let a_new = e.add(&a_scaled, &pv);
            e.store(&a_new, acc, &[&d]);
        });
        vec![m_new, l_new]
    });
    let [m, l] = <[Value; 2]>::try_from(results).expect("two results");
    (m, l)
}

/// `p = exp(score − lse)`; `dv += p dO`; `ds = p (dO·v − dO·o)`; `dq += scale ds k`;
/// `dk += scale ds q`.
pub fn backward(spec: &AttentionSpec, name: &str) -> String {
    backward_with(spec, name, &Config::CPU)
}

/// [`backward`] under any [`Config`].
pub fn backward_with(spec: &AttentionSpec, name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    header(&mut e, name, &spec.backward_arguments());
    if config.parallel.has_lanes() {
        lanes::backward(&mut e, spec);
        return e.finish();
    }
    let sizes = sizes(&mut e, spec, true);
    let [lse, dout, o] = ["lse", "dout", "o"].map(|arg| e.arg(arg));
    let c1 = e.c1();
    for_queries(&mut e, &sizes, None, |e, query| {
        let Query { b, h, t, first, .. } = &query;
        let end = e.add(t, &c1);
        let lse = e.load(&lse, &[b, h, t]);
        let delta = e.dot(&sizes.dim, |e, d| {
            let d_out = e.load(&dout, &[b, t, h, d]);
            (d_out, e.load(&o, &[b, t, h, d]))
        });
        e.for_(first, &end, |e, s| key_backward(e, &sizes, &query, &s, [&lse, &delta]));
    });
    e.finish()
}

/// The gradients through the score of query `query` and key `s`, given the query's
/// log-sum-exp and `delta = dO · o`.
fn key_backward(e: &mut Builder, sizes: &Sizes, query: &Query, s: &Value, [lse, delta]: [&Value; 2]) {
    let [q, k, dout, dq, dk, dv] = ["q", "k", "dout", "dq", "dk", "dv"].map(|arg| e.arg(arg));
    let Query { b, h, hk, t, .. } = query;
    let pair = Pair::of_tensors(e, [b, t, h], [b, s, hk]);
    let (p, ds_scaled) = probability_and_slope(e, sizes, &pair, [lse, delta]);
    let c0 = e.c0();
    e.for_(&c0, &sizes.dim, |e, d| {
        let d_out = e.load(&dout, &[b, t, h, &d]);
        let pd = e.mul(&p, &d_out);
        e.accumulate(&dv, &[b, s, hk, &d], &pd);
        let key = e.load(&k, &[b, s, hk, &d]);
        let dq_value = e.mul(&ds_scaled, &key);
        e.accumulate(&dq, &[b, t, h, &d], &dq_value);
        let query_value = e.load(&q, &[b, t, h, &d]);
        let dk_value = e.mul(&ds_scaled, &query_value);
        e.accumulate(&dk, &[b, s, hk, &d], &dk_value);
    });
}

/// The rows a (query, key) pair reads: the query's q and dO, the key's k and v.
struct Pair {
    q: Row,
    dout: Row,
    k: Row,
    v: Row,
}

impl Pair {
    /// Query row `[b, t, h]` and key row `[b, s, hk]`, read from the tensors.
    fn of_tensors(e: &mut Builder, query: [&Value; 3], key: [&Value; 3]) -> Pair {
        Pair {
            q: Row::of(e, "q", query),
            dout: Row::of(e, "dout", query),
            k: Row::of(e, "k", key),
            v: Row::of(e, "v", key),
        }
    }
}

/// For a (query, key) pair: `p = exp(score − lse)` and the scaled slope
/// `scale · p (dO·v_s − delta)`.
fn probability_and_slope(e: &mut Builder, sizes: &Sizes, pair: &Pair, [lse, delta]: [&Value; 2]) -> (Value, Value) {
    let x = score(e, sizes, &pair.q, &pair.k);
    let centred = e.sub(&x, lse);
    let p = e.exp(&centred);
    let dp = row_dot(e, sizes, &pair.dout, &pair.v);
    let diff = e.sub(&dp, delta);
    let ds = e.mul(&p, &diff);
    (p.clone(), e.mul(&sizes.scale, &ds))
}

/// Rotary embedding, rotate-half (GPT-NeoX) layout on the full head dim D:
/// `[x₁, x₂] → [x₁ cos − x₂ sin, x₂ cos + x₁ sin]` with angle `t · base^(−2i/D)` at
/// position t (from 0). `inverse` rotates back (the backward). Reads `x`, writes `y`,
/// both `[B,T,H,D]`.
pub fn rope(base: f64, name: &str, inverse: bool) -> String {
    rope_with(base, name, inverse, &Config::CPU)
}

/// [`rope`] under any [`Config`].
pub fn rope_with(base: f64, name: &str, inverse: bool, config: &Config) -> String {
    emit_rope(base, name, inverse, false, config)
}

/// RoPE for decoding: row t of `x` sits at position `pos + t`. Args: x, pos `[1]` (f32), y.
pub fn rope_at(base: f64, name: &str) -> String {
    rope_at_with(base, name, &Config::CPU)
}

/// [`rope_at`] under any [`Config`]; `pos` is f32 under every one.
pub fn rope_at_with(base: f64, name: &str, config: &Config) -> String {
    emit_rope(base, name, false, true, config)
}

/// The values RoPE defines once: `ln base`, the rotation's sign, the sizes, `D / 2` and
/// D as a float.
struct Rotation {
    log_base: Value,
    sign: Value,
    batch: Value,
    time: Value,
    heads: Value,
    half: Value,
    dim_f: Value,
}

fn rotation(e: &mut Builder, base: f64, inverse: bool) -> Rotation {
    let x = e.arg("x");
    let log_base = e.named("log_base").constant(base.ln());
    let sign = e.named("sign").constant(if inverse { -1.0 } else { 1.0 });
    let batch = e.named("B").dim(&x, 0);
    let time = e.named("T").dim(&x, 1);
    let heads = e.named("H").dim(&x, 2);
    let dim = e.named("D").dim(&x, 3);
    let c2 = e.constant_index(2);
    let half = e.named("half").divui(&dim, &c2);
    let dim_i = e.named("d_i").index_cast(&dim, Scalar::I64);
    let compute = e.compute();
    let dim_f = e.named("d_f").sitofp(&dim_i, compute);
    Rotation { log_base, sign, batch, time, heads, half, dim_f }
}

impl Rotation {
    /// `cos` and `sign · sin` of the angle `position · base^(−2i/D)` of pair `i`.
    fn cos_sin(&self, e: &mut Builder, position: &Value, i: &Value) -> (Value, Value) {
        let compute = e.compute();
        // frequency = base^(−2i/D) = exp(−2i/D · ln base)
        let i_i = e.index_cast(i, Scalar::I64);
        let i_f = e.sitofp(&i_i, compute);
        let two_i = e.add(&i_f, &i_f);
        let ratio = e.div(&two_i, &self.dim_f);
        let exponent = e.mul(&ratio, &self.log_base);
        let negated = e.neg(&exponent);
        let frequency = e.exp(&negated);
        let angle = e.mul(position, &frequency);
        let cos = e.cos(&angle);
        let sin_raw = e.sin(&angle);
        let sin = e.mul(&self.sign, &sin_raw);
        (cos, sin)
    }
}

fn emit_rope(base: f64, name: &str, inverse: bool, offset: bool, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let position_offset = if offset {
        header(&mut e, name, &[("x", 4), ("pos", 1), ("y", 4)]);
        let (pos, c0) = (e.arg("pos"), e.c0());
        Some(e.named("pos_f").load(&pos, &[&c0]))
    } else {
        header(&mut e, name, &[("x", 4), ("y", 4)]);
        None
    };
    let rotation = rotation(&mut e, base, inverse);
    let (x, y, c0) = (e.arg("x"), e.arg("y"), e.c0());
    let compute = e.compute();
    // Under lanes, a lane per (row, head) of x (`KernelKey::lanes`).
    let grid = e.lane_grid(&rotation.time, &rotation.heads, true);
    e.for_(&c0, &rotation.batch, |e, b| {
        e.for_(&grid.outer.0, &grid.outer.1, |e, t| {
            let t_i = e.index_cast(&t, Scalar::I64);
            let row = e.sitofp(&t_i, compute);
            let position = match &position_offset {
                Some(offset) => e.add(&row, offset),
                None => row,
            };
            e.for_(&grid.inner.0, &grid.inner.1, |e, h| {
                e.for_(&c0, &rotation.half, |e, i| {
                    let (cos, sin) = rotation.cos_sin(e, &position, &i);
                    let i2 = e.add(&i, &rotation.half);
                    let x1 = e.load(&x, &[&b, &t, &h, &i]);
                    let x2 = e.load(&x, &[&b, &t, &h, &i2]);
                    let x1c = e.mul(&x1, &cos);
                    let x2s = e.mul(&x2, &sin);
                    let y1 = e.sub(&x1c, &x2s);
                    let x2c = e.mul(&x2, &cos);
                    let x1s = e.mul(&x1, &sin);
                    let y2 = e.add(&x2c, &x1s);
                    e.store(&y1, &y, &[&b, &t, &h, &i]);
                    e.store(&y2, &y, &[&b, &t, &h, &i2]);
                });
            });
        });
    });
    e.finish()
}
