//! Causal softmax attention, generated as MLIR: forward with an online softmax (keys
//! streamed, one running maximum and normaliser per query, so no `T × T` matrix is ever
//! stored) and the backward that recomputes the probabilities from the saved
//! log-sum-exp. Optional sliding window (query `t` sees keys `t − w < s ≤ t`, flash-attn's
//! `(w − 1, 0)`), grouped key/value heads (query head `h` reads kv head `h / group`).
//!
//! Shapes: q `[B,T,H,D]`, k and v `[B,T,Hkv,D]`, o `[B,T,H,D]`, lse `[B,H,T]`.
//! RoPE is its own kernel ([`rope`]), applied to q and k before attention; its backward
//! is the inverse rotation, the same kernel with `inverse: true`.

use crate::emit::{Emitter, T3, T4, accumulate, f32_constant, memref_params};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Query heads per key/value head (1 for multi-head attention).
    pub group: u64,
    pub window: Option<u64>,
    pub scale: f64,
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

fn header(e: &mut Emitter, name: &str, args: &[(&str, usize)]) {
    e.begin_function(name, &memref_params(args));
    e.line("%c2 = arith.constant 2 : index");
    e.line("%c3 = arith.constant 3 : index");
}

/// The loops' indices for one query: batch, query head, kv head, the query's row `t`,
/// its position in the sequence (`t`, or `t + offset` when decoding) and the first key
/// position it sees.
struct Query {
    b: String,
    h: String,
    hk: String,
    t: String,
    position: String,
    first: String,
}

/// Opens the loops over batch, query heads and query rows; query row `t` sits at
/// position `t + offset`.
fn open_queries(e: &mut Emitter, spec: &AttentionSpec, offset: &str) -> Query {
    e.line(&format!("%scale = {}", f32_constant(spec.scale)));
    e.line(&format!("%group = arith.constant {} : index", spec.group));
    e.line(&format!("%B = memref.dim %q, %c0 : {T4}"));
    e.line(&format!("%T = memref.dim %q, %c1 : {T4}"));
    e.line(&format!("%H = memref.dim %q, %c2 : {T4}"));
    e.line(&format!("%D = memref.dim %q, %c3 : {T4}"));
    if let Some(window) = spec.window {
        e.line(&format!("%window = arith.constant {window} : index"));
    }
    let b = e.open_for("%c0", "%B");
    let h = e.open_for("%c0", "%H");
    let hk = e.op(&format!("arith.divui {h}, %group : index"));
    let t = e.open_for("%c0", "%T");
    let position = if offset == "%c0" { t.clone() } else { e.op(&format!("arith.addi {t}, {offset} : index")) };
    let first = match spec.window {
        // max(0, position + 1 − w) without going below zero in unsigned arithmetic.
        Some(_) => {
            let end = e.op(&format!("arith.addi {position}, %c1 : index"));
            let past = e.op(&format!("arith.cmpi ugt, {end}, %window : index"));
            let start = e.op(&format!("arith.subi {end}, %window : index"));
            e.op(&format!("arith.select {past}, {start}, %c0 : index"))
        }
        None => "%c0".to_string(),
    };
    Query { b, h, hk, t, position, first }
}

/// `scale · q_t · k_s`.
fn score(e: &mut Emitter, b: &str, t: &str, h: &str, s: &str, hk: &str) -> String {
    let dot = e.dot("%D", |e, d| {
        let q = e.op(&format!("memref.load %q[{b}, {t}, {h}, {d}] : {T4}"));
        (q, e.op(&format!("memref.load %k[{b}, {s}, {hk}, {d}] : {T4}")))
    });
    e.op(&format!("arith.mulf %scale, {dot} : f32"))
}

pub fn forward(spec: &AttentionSpec, name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &spec.forward_arguments());
    emit_forward(&mut e, spec, "%c0", true);
    e.end_function()
}

/// Decoding: the queries of the next `T` tokens (usually one) at positions `pos + t`,
/// with the keys and values of every earlier token in a cache. Args: q `[B,T,H,D]`, the
/// new k and v `[B,T,Hkv,D]`, the caches `[B,L,Hkv,D]` (L the longest sequence), `pos`
/// `[1]` (the first new token's position, as f32), o. Writes the new keys and values
/// into the caches at `pos`, then attends over positions `≤ pos + t`.
pub fn decode(spec: &AttentionSpec, name: &str) -> String {
    let mut e = Emitter::default();
    let args = [("q", 4), ("k_new", 4), ("v_new", 4), ("k", 4), ("v", 4), ("pos", 1), ("o", 4)];
    header(&mut e, name, &args);
    let position = e.op("memref.load %pos[%c0] : memref<?xf32>");
    let position = e.op(&format!("arith.fptosi {position} : f32 to i64"));
    let offset = e.op(&format!("arith.index_cast {position} : i64 to index"));
    {
        e.line(&format!("%Bn = memref.dim %k_new, %c0 : {T4}"));
        e.line(&format!("%Tn = memref.dim %k_new, %c1 : {T4}"));
        e.line(&format!("%Hn = memref.dim %k_new, %c2 : {T4}"));
        e.line(&format!("%Dn = memref.dim %k_new, %c3 : {T4}"));
        let b = e.open_for("%c0", "%Bn");
        let t = e.open_for("%c0", "%Tn");
        let s = e.op(&format!("arith.addi {t}, {offset} : index"));
        let h = e.open_for("%c0", "%Hn");
        let d = e.open_for("%c0", "%Dn");
        for which in ["k", "v"] {
            let x = e.op(&format!("memref.load %{which}_new[{b}, {t}, {h}, {d}] : {T4}"));
            e.line(&format!("memref.store {x}, %{which}[{b}, {s}, {h}, {d}] : {T4}"));
        }
        for _ in 0..4 {
            e.close();
        }
    }
    emit_forward(&mut e, spec, &offset, false);
    e.end_function()
}

/// The online-softmax forward over every query row (at `offset` + row); the log-sum-exp
/// is stored when `lse` (training keeps it for the backward).
fn emit_forward(e: &mut Emitter, spec: &AttentionSpec, offset: &str, lse: bool) {
    e.line("%neg_inf = arith.constant 0xFF800000 : f32");
    e.line(&format!("%Dq = memref.dim %q, %c3 : {T4}"));
    e.line("%acc = memref.alloca(%Dq) : memref<?xf32>");
    let Query { b, h, hk, t, position, first } = open_queries(e, spec, offset);
    {
        let d = e.open_for("%c0", "%D");
        e.line(&format!("memref.store %zero, %acc[{d}] : memref<?xf32>"));
        e.close();
    }
    let end = e.op(&format!("arith.addi {position}, %c1 : index"));
    // Online softmax over keys: running maximum m and normaliser l.
    let (m, l) = (e.fresh(), e.fresh());
    let s = e.fresh();
    let (m_in, l_in) = (e.fresh(), e.fresh());
    e.line(&format!(
        "{m}, {l} = scf.for {s} = {first} to {end} step %c1 iter_args({m_in} = %neg_inf, {l_in} = %zero) -> (f32, f32) {{"
    ));
    e.depth += 1;
    let x = score(e, &b, &t, &h, &s, &hk);
    let m_new = e.op(&format!("arith.maximumf {m_in}, {x} : f32"));
    let shift = e.op(&format!("arith.subf {m_in}, {m_new} : f32"));
    let correction = e.op(&format!("math.exp {shift} : f32"));
    let centred = e.op(&format!("arith.subf {x}, {m_new} : f32"));
    let p = e.op(&format!("math.exp {centred} : f32"));
    let l_scaled = e.op(&format!("arith.mulf {l_in}, {correction} : f32"));
    let l_new = e.op(&format!("arith.addf {l_scaled}, {p} : f32"));
    {
        let d = e.open_for("%c0", "%D");
        let a = e.op(&format!("memref.load %acc[{d}] : memref<?xf32>"));
        let v = e.op(&format!("memref.load %v[{b}, {s}, {hk}, {d}] : {T4}"));
        let a_scaled = e.op(&format!("arith.mulf {a}, {correction} : f32"));
        let pv = e.op(&format!("arith.mulf {p}, {v} : f32"));
        let a_new = e.op(&format!("arith.addf {a_scaled}, {pv} : f32"));
        e.line(&format!("memref.store {a_new}, %acc[{d}] : memref<?xf32>"));
        e.close();
    }
    e.line(&format!("scf.yield {m_new}, {l_new} : f32, f32"));
    e.close();
    {
        let d = e.open_for("%c0", "%D");
        let a = e.op(&format!("memref.load %acc[{d}] : memref<?xf32>"));
        let o = e.op(&format!("arith.divf {a}, {l} : f32"));
        e.line(&format!("memref.store {o}, %o[{b}, {t}, {h}, {d}] : {T4}"));
        e.close();
    }
    if lse {
        let log_l = e.op(&format!("math.log {l} : f32"));
        let lse = e.op(&format!("arith.addf {m}, {log_l} : f32"));
        e.line(&format!("memref.store {lse}, %lse[{b}, {h}, {t}] : {T3}"));
    }
    e.close(); // t
    e.close(); // h
    e.close(); // b
}

/// `p = exp(score − lse)`; `dv += p dO`; `ds = p (dO·v − dO·o)`; `dq += scale ds k`;
/// `dk += scale ds q`.
pub fn backward(spec: &AttentionSpec, name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &spec.backward_arguments());
    let Query { b, h, hk, t, first, .. } = open_queries(&mut e, spec, "%c0");
    let end = e.op(&format!("arith.addi {t}, %c1 : index"));
    let lse = e.op(&format!("memref.load %lse[{b}, {h}, {t}] : {T3}"));
    let delta = e.dot("%D", |e, d| {
        let d_out = e.op(&format!("memref.load %dout[{b}, {t}, {h}, {d}] : {T4}"));
        (d_out, e.op(&format!("memref.load %o[{b}, {t}, {h}, {d}] : {T4}")))
    });
    let s = e.open_for(&first, &end);
    let x = score(&mut e, &b, &t, &h, &s, &hk);
    let centred = e.op(&format!("arith.subf {x}, {lse} : f32"));
    let p = e.op(&format!("math.exp {centred} : f32"));
    let dp = e.dot("%D", |e, d| {
        let d_out = e.op(&format!("memref.load %dout[{b}, {t}, {h}, {d}] : {T4}"));
        (d_out, e.op(&format!("memref.load %v[{b}, {s}, {hk}, {d}] : {T4}")))
    });
    let diff = e.op(&format!("arith.subf {dp}, {delta} : f32"));
    let ds = e.op(&format!("arith.mulf {p}, {diff} : f32"));
    let ds_scaled = e.op(&format!("arith.mulf %scale, {ds} : f32"));
    let d = e.open_for("%c0", "%D");
    let d_out = e.op(&format!("memref.load %dout[{b}, {t}, {h}, {d}] : {T4}"));
    let pd = e.op(&format!("arith.mulf {p}, {d_out} : f32"));
    accumulate(&mut e, &format!("%dv[{b}, {s}, {hk}, {d}] : {T4}"), &pd);
    let k = e.op(&format!("memref.load %k[{b}, {s}, {hk}, {d}] : {T4}"));
    let dq = e.op(&format!("arith.mulf {ds_scaled}, {k} : f32"));
    accumulate(&mut e, &format!("%dq[{b}, {t}, {h}, {d}] : {T4}"), &dq);
    let q = e.op(&format!("memref.load %q[{b}, {t}, {h}, {d}] : {T4}"));
    let dk = e.op(&format!("arith.mulf {ds_scaled}, {q} : f32"));
    accumulate(&mut e, &format!("%dk[{b}, {s}, {hk}, {d}] : {T4}"), &dk);
    e.close(); // d
    e.close(); // s
    e.close(); // t
    e.close(); // h
    e.close(); // b
    e.end_function()
}

/// Rotary embedding, rotate-half (GPT-NeoX) layout on the full head dim D:
/// `[x₁, x₂] → [x₁ cos − x₂ sin, x₂ cos + x₁ sin]` with angle `t · base^(−2i/D)` at
/// position t (from 0). `inverse` rotates back (the backward). Reads `x`, writes `y`,
/// both `[B,T,H,D]`.
pub fn rope(base: f64, name: &str, inverse: bool) -> String {
    emit_rope(base, name, inverse, false)
}

/// RoPE for decoding: row t of `x` sits at position `pos + t`. Args: x, pos `[1]` (f32), y.
pub fn rope_at(base: f64, name: &str) -> String {
    emit_rope(base, name, false, true)
}

fn emit_rope(base: f64, name: &str, inverse: bool, offset: bool) -> String {
    let mut e = Emitter::default();
    if offset {
        header(&mut e, name, &[("x", 4), ("pos", 1), ("y", 4)]);
        e.line("%pos_f = memref.load %pos[%c0] : memref<?xf32>");
    } else {
        header(&mut e, name, &[("x", 4), ("y", 4)]);
    }
    e.line(&format!("%log_base = {}", f32_constant(base.ln())));
    e.line(&format!("%sign = {}", f32_constant(if inverse { -1.0 } else { 1.0 })));
    e.line(&format!("%B = memref.dim %x, %c0 : {T4}"));
    e.line(&format!("%T = memref.dim %x, %c1 : {T4}"));
    e.line(&format!("%H = memref.dim %x, %c2 : {T4}"));
    e.line(&format!("%D = memref.dim %x, %c3 : {T4}"));
    e.line("%half = arith.divui %D, %c2 : index");
    e.line("%d_i = arith.index_cast %D : index to i64");
    e.line("%d_f = arith.sitofp %d_i : i64 to f32");
    let b = e.open_for("%c0", "%B");
    let t = e.open_for("%c0", "%T");
    let t_i = e.op(&format!("arith.index_cast {t} : index to i64"));
    let row = e.op(&format!("arith.sitofp {t_i} : i64 to f32"));
    let t_f = if offset { e.op(&format!("arith.addf {row}, %pos_f : f32")) } else { row };
    let h = e.open_for("%c0", "%H");
    let i = e.open_for("%c0", "%half");
    // frequency = base^(−2i/D) = exp(−2i/D · ln base)
    let i_i = e.op(&format!("arith.index_cast {i} : index to i64"));
    let i_f = e.op(&format!("arith.sitofp {i_i} : i64 to f32"));
    let two_i = e.op(&format!("arith.addf {i_f}, {i_f} : f32"));
    let ratio = e.op(&format!("arith.divf {two_i}, %d_f : f32"));
    let exponent = e.op(&format!("arith.mulf {ratio}, %log_base : f32"));
    let negated = e.op(&format!("arith.negf {exponent} : f32"));
    let frequency = e.op(&format!("math.exp {negated} : f32"));
    let angle = e.op(&format!("arith.mulf {t_f}, {frequency} : f32"));
    let cos = e.op(&format!("math.cos {angle} : f32"));
    let sin_raw = e.op(&format!("math.sin {angle} : f32"));
    let sin = e.op(&format!("arith.mulf %sign, {sin_raw} : f32"));
    let i2 = e.op(&format!("arith.addi {i}, %half : index"));
    let x1 = e.op(&format!("memref.load %x[{b}, {t}, {h}, {i}] : {T4}"));
    let x2 = e.op(&format!("memref.load %x[{b}, {t}, {h}, {i2}] : {T4}"));
    let x1c = e.op(&format!("arith.mulf {x1}, {cos} : f32"));
    let x2s = e.op(&format!("arith.mulf {x2}, {sin} : f32"));
    let y1 = e.op(&format!("arith.subf {x1c}, {x2s} : f32"));
    let x2c = e.op(&format!("arith.mulf {x2}, {cos} : f32"));
    let x1s = e.op(&format!("arith.mulf {x1}, {sin} : f32"));
    let y2 = e.op(&format!("arith.addf {x2c}, {x1s} : f32"));
    e.line(&format!("memref.store {y1}, %y[{b}, {t}, {h}, {i}] : {T4}"));
    e.line(&format!("memref.store {y2}, %y[{b}, {t}, {h}, {i2}] : {T4}"));
    e.close();
    e.close();
    e.close();
    e.close();
    e.end_function()
}
