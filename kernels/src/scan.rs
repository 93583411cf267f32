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

use crate::emit::{Emitter, T3, T4, T5, accumulate, f32_constant, memref_params, ty};

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

/// Index names of the loop nest around one token.
struct At {
    b: String,
    h: String,
    hk: String,
    t: String,
    /// `exp(g)` for decays that are one number per token (per head or scalar).
    scalar_alpha: Option<String>,
}

/// Where a state lives: `%state[b, h, i, j]` or a scratch slot `%buf[s, i, j]`.
type StateAt<'a> = &'a dyn Fn(&str, &str) -> String;

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

    /// Arguments of [`backward`]: the inputs, checkpoints, `do`, the state gradient, then
    /// the gradients of q, k, v (and g, β when present).
    pub fn backward_arguments(&self) -> Vec<(&'static str, usize)> {
        let mut args = self.inputs();
        args.extend([("ckpt", 5), ("dout", 4), ("dstate", 4)]);
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

fn prologue(e: &mut Emitter, spec: &ScanSpec, name: &str, args: &[(&str, usize)], state_arg: &str) {
    e.begin_function(name, &memref_params(args));
    e.line("%c2 = arith.constant 2 : index");
    e.line("%c3 = arith.constant 3 : index");
    e.line(&format!("%scale = {}", f32_constant(spec.scale)));
    e.line(&format!("%spk = arith.constant {} : index", spec.states_per_key));
    e.line(&format!("%qps = arith.constant {} : index", spec.q_per_state));
    e.line(&format!("%B = memref.dim %k, %c0 : {T4}"));
    e.line(&format!("%T = memref.dim %k, %c1 : {T4}"));
    e.line(&format!("%HS = memref.dim %{state_arg}, %c1 : {T4}"));
    e.line(&format!("%DK = memref.dim %{state_arg}, %c2 : {T4}"));
    e.line(&format!("%DV = memref.dim %{state_arg}, %c3 : {T4}"));
    if spec.update == ScanUpdate::Delta {
        e.line("%u = memref.alloca(%DV) : memref<?xf32>");
        e.line("%du = memref.alloca(%DV) : memref<?xf32>");
    }
}

/// Opens the loops over batch and state heads; returns (b, h, hk).
fn open_heads(e: &mut Emitter) -> (String, String, String) {
    let b = e.open_for("%c0", "%B");
    let h = e.open_for("%c0", "%HS");
    let hk = e.op(&format!("arith.divui {h}, %spk : index"));
    (b, h, hk)
}

/// `exp(g)` read once per token, for per-head and scalar decays.
fn scalar_alpha(e: &mut Emitter, spec: &ScanSpec, b: &str, h: &str, t: &str) -> Option<String> {
    let at = match spec.decay {
        Decay::PerHead => format!("%g[{h}] : {}", ty(1)),
        Decay::Scalar => format!("%g[{b}, {t}, {h}] : {T3}"),
        Decay::None | Decay::Vector => return None,
    };
    let g = e.op(&format!("memref.load {at}"));
    Some(e.op(&format!("math.exp {g} : f32")))
}

/// `α_i` for key channel `i`.
fn alpha(e: &mut Emitter, spec: &ScanSpec, at: &At, i: &str) -> Option<String> {
    match spec.decay {
        Decay::Vector => {
            let g = e.op(&format!("memref.load %g[{}, {}, {}, {i}] : {T4}", at.b, at.t, at.hk));
            Some(e.op(&format!("math.exp {g} : f32")))
        }
        _ => at.scalar_alpha.clone(),
    }
}

/// One token's state update from `src` into `dst` (which may be the same place):
/// `dst = Diag(α) src`, then the additive or delta write.
fn emit_update(e: &mut Emitter, spec: &ScanSpec, at: &At, src: StateAt, dst: StateAt, in_place: bool) {
    if !(in_place && spec.decay == Decay::None) {
        let i = e.open_for("%c0", "%DK");
        let a = alpha(e, spec, at, &i);
        let j = e.open_for("%c0", "%DV");
        let s = e.op(&format!("memref.load {}", src(&i, &j)));
        let decayed = match &a {
            Some(a) => e.op(&format!("arith.mulf {a}, {s} : f32")),
            None => s,
        };
        e.line(&format!("memref.store {decayed}, {}", dst(&i, &j)));
        e.close();
        e.close();
    }
    let (b, t, h, hk) = (&at.b, &at.t, &at.h, &at.hk);
    if spec.update == ScanUpdate::Delta {
        // u = β (v − S'ᵀ k), the read accumulated row by row (unit stride along j).
        let beta = e.op(&format!("memref.load %beta[{b}, {t}, {h}] : {T3}"));
        zero_vector(e, "%u");
        let i = e.open_for("%c0", "%DK");
        let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {T4}"));
        let j = e.open_for("%c0", "%DV");
        let s = e.op(&format!("memref.load {}", dst(&i, &j)));
        let sk = e.op(&format!("arith.mulf {s}, {k} : f32"));
        accumulate(e, &format!("%u[{j}] : memref<?xf32>"), &sk);
        e.close();
        e.close();
        let j = e.open_for("%c0", "%DV");
        let read = e.op(&format!("memref.load %u[{j}] : memref<?xf32>"));
        let v = e.op(&format!("memref.load %v[{b}, {t}, {h}, {j}] : {T4}"));
        let error = e.op(&format!("arith.subf {v}, {read} : f32"));
        let u = e.op(&format!("arith.mulf {beta}, {error} : f32"));
        e.line(&format!("memref.store {u}, %u[{j}] : memref<?xf32>"));
        e.close();
    }
    let i = e.open_for("%c0", "%DK");
    let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {T4}"));
    let j = e.open_for("%c0", "%DV");
    let s = e.op(&format!("memref.load {}", dst(&i, &j)));
    let w = match spec.update {
        ScanUpdate::Additive => e.op(&format!("memref.load %v[{b}, {t}, {h}, {j}] : {T4}")),
        ScanUpdate::Delta => e.op(&format!("memref.load %u[{j}] : memref<?xf32>")),
    };
    let kw = e.op(&format!("arith.mulf {k}, {w} : f32"));
    let next = e.op(&format!("arith.addf {s}, {kw} : f32"));
    e.line(&format!("memref.store {next}, {}", dst(&i, &j)));
    e.close();
    e.close();
}

/// The query heads reading state `h`: opens the loop over them; returns (qh, oh).
fn open_readers(e: &mut Emitter, at: &At) -> (String, String) {
    let r = e.open_for("%c0", "%qps");
    let q_base = e.op(&format!("arith.muli {}, %qps : index", at.hk));
    let qh = e.op(&format!("arith.addi {q_base}, {r} : index"));
    let o_base = e.op(&format!("arith.muli {}, %qps : index", at.h));
    let oh = e.op(&format!("arith.addi {o_base}, {r} : index"));
    (qh, oh)
}

/// `q[b, t, qh, i]`, or 1 when the readout has no query.
fn query(e: &mut Emitter, spec: &ScanSpec, at: &At, qh: &str, i: &str) -> String {
    if spec.query { e.op(&format!("memref.load %q[{}, {}, {qh}, {i}] : {T4}", at.b, at.t)) } else { "%one".to_string() }
}

/// `%name[j] = 0` for every j < DV.
fn zero_vector(e: &mut Emitter, name: &str) {
    let j = e.open_for("%c0", "%DV");
    e.line(&format!("memref.store %zero, {name}[{j}] : memref<?xf32>"));
    e.close();
}

/// `o = scale · Sᵀ q` for each query head reading the state, accumulated row by row of
/// the state (unit stride along j) in `%u`-free form: straight into `o`.
fn emit_readout(e: &mut Emitter, spec: &ScanSpec, at: &At, state: StateAt) {
    let (qh, oh) = open_readers(e, at);
    let out = |j: &str| format!("%o[{}, {}, {oh}, {j}] : {T4}", at.b, at.t);
    let j = e.open_for("%c0", "%DV");
    e.line(&format!("memref.store %zero, {}", out(&j)));
    e.close();
    let i = e.open_for("%c0", "%DK");
    let q = query(e, spec, at, &qh, &i);
    let scaled = e.op(&format!("arith.mulf %scale, {q} : f32"));
    let j = e.open_for("%c0", "%DV");
    let s = e.op(&format!("memref.load {}", state(&i, &j)));
    let sq = e.op(&format!("arith.mulf {s}, {scaled} : f32"));
    accumulate(e, &out(&j), &sq);
    e.close();
    e.close();
    e.close();
}

/// The forward token recurrence as an MLIR module with one function, `name`.
pub fn forward(spec: &ScanSpec, name: &str) -> String {
    forward_impl(spec, name, None)
}

/// The forward recurrence that also saves the state before every `chunk`-th token.
pub fn forward_train(spec: &ScanSpec, name: &str, chunk: u64) -> String {
    forward_impl(spec, name, Some(chunk.max(1)))
}

fn forward_impl(spec: &ScanSpec, name: &str, chunk: Option<u64>) -> String {
    let mut e = Emitter::default();
    let args = if chunk.is_some() { spec.train_arguments() } else { spec.arguments() };
    prologue(&mut e, spec, name, &args, "state");
    if let Some(chunk) = chunk {
        e.line(&format!("%chunk = arith.constant {chunk} : index"));
    }
    let (b, h, hk) = open_heads(&mut e);
    let t = e.open_for("%c0", "%T");
    if chunk.is_some() {
        // At a chunk start, save the state the chunk starts from.
        let rem = e.op(&format!("arith.remui {t}, %chunk : index"));
        let starts = e.op(&format!("arith.cmpi eq, {rem}, %c0 : index"));
        e.line(&format!("scf.if {starts} {{"));
        e.depth += 1;
        let c = e.op(&format!("arith.divui {t}, %chunk : index"));
        let i = e.open_for("%c0", "%DK");
        let j = e.open_for("%c0", "%DV");
        let s = e.op(&format!("memref.load %state[{b}, {h}, {i}, {j}] : {T4}"));
        e.line(&format!("memref.store {s}, %ckpt[{b}, {h}, {c}, {i}, {j}] : {T5}"));
        e.close();
        e.close();
        e.close();
    }
    let scalar = scalar_alpha(&mut e, spec, &b, &h, &t);
    let at = At { b: b.clone(), h: h.clone(), hk, t, scalar_alpha: scalar };
    let state = |i: &str, j: &str| format!("%state[{b}, {h}, {i}, {j}] : {T4}");
    emit_update(&mut e, spec, &at, &state, &state, true);
    emit_readout(&mut e, spec, &at, &state);
    e.close(); // t
    e.close(); // h
    e.close(); // b
    e.end_function()
}

/// The reverse scan: gradients of q, k, v, the log-decays and β, and of the initial
/// state, from the output gradient and the final-state gradient.
pub fn backward(spec: &ScanSpec, name: &str, chunk: u64) -> String {
    let mut e = Emitter::default();
    prologue(&mut e, spec, name, &spec.backward_arguments(), "dstate");
    e.line(&format!("%chunk = arith.constant {} : index", chunk.max(1)));
    e.line("%chunk1 = arith.addi %chunk, %c1 : index");
    e.line("%nchunks = arith.ceildivui %T, %chunk : index");
    e.line("%buf = memref.alloc(%chunk1, %DK, %DV) : memref<?x?x?xf32>");
    let (b, h, hk) = open_heads(&mut e);
    let ci = e.open_for("%c0", "%nchunks");
    let last = e.op("arith.subi %nchunks, %c1 : index");
    let c = e.op(&format!("arith.subi {last}, {ci} : index"));
    let start = e.op(&format!("arith.muli {c}, %chunk : index"));
    let left = e.op(&format!("arith.subi %T, {start} : index"));
    let len = e.op(&format!("arith.minui {left}, %chunk : index"));
    // The chunk's states: buf[0] from the checkpoint, buf[s + 1] after token start + s.
    {
        let i = e.open_for("%c0", "%DK");
        let j = e.open_for("%c0", "%DV");
        let s = e.op(&format!("memref.load %ckpt[{b}, {h}, {c}, {i}, {j}] : {T5}"));
        e.line(&format!("memref.store {s}, %buf[%c0, {i}, {j}] : {T3}"));
        e.close();
        e.close();
    }
    {
        let s = e.open_for("%c0", &len);
        let t = e.op(&format!("arith.addi {start}, {s} : index"));
        let s1 = e.op(&format!("arith.addi {s}, %c1 : index"));
        let scalar = scalar_alpha(&mut e, spec, &b, &h, &t);
        let at = At { b: b.clone(), h: h.clone(), hk: hk.clone(), t, scalar_alpha: scalar };
        let src = |i: &str, j: &str| format!("%buf[{s}, {i}, {j}] : {T3}");
        let dst = |i: &str, j: &str| format!("%buf[{s1}, {i}, {j}] : {T3}");
        emit_update(&mut e, spec, &at, &src, &dst, false);
        e.close();
    }
    // Backwards through the chunk.
    let si = e.open_for("%c0", &len);
    let len1 = e.op(&format!("arith.subi {len}, %c1 : index"));
    let s = e.op(&format!("arith.subi {len1}, {si} : index"));
    let s1 = e.op(&format!("arith.addi {s}, %c1 : index"));
    let t = e.op(&format!("arith.addi {start}, {s} : index"));
    let scalar = scalar_alpha(&mut e, spec, &b, &h, &t);
    let at = At { b: b.clone(), h: h.clone(), hk: hk.clone(), t: t.clone(), scalar_alpha: scalar };
    let ds = |i: &str, j: &str| format!("%dstate[{b}, {h}, {i}, {j}] : {T4}");
    let prev = |i: &str, j: &str| format!("%buf[{s}, {i}, {j}] : {T3}");
    let now = |i: &str, j: &str| format!("%buf[{s1}, {i}, {j}] : {T3}");
    // 1. Readout: dq += scale · S_t dO; dS += scale · q dOᵀ.
    {
        let (qh, oh) = open_readers(&mut e, &at);
        let i = e.open_for("%c0", "%DK");
        let q = query(&mut e, spec, &at, &qh, &i);
        let dot = e.fresh();
        let (j, acc) = e.open_sum("%DV", &dot);
        let st = e.op(&format!("memref.load {}", now(&i, &j)));
        let d_out = e.op(&format!("memref.load %dout[{b}, {t}, {oh}, {j}] : {T4}"));
        let sd = e.op(&format!("arith.mulf {st}, {d_out} : f32"));
        let qd = e.op(&format!("arith.mulf {q}, {d_out} : f32"));
        let scaled = e.op(&format!("arith.mulf %scale, {qd} : f32"));
        accumulate(&mut e, &ds(&i, &j), &scaled);
        let sum = e.op(&format!("arith.addf {acc}, {sd} : f32"));
        e.close_sum(&sum);
        if spec.query {
            let dq = e.op(&format!("arith.mulf %scale, {dot} : f32"));
            accumulate(&mut e, &format!("%dq[{b}, {t}, {qh}, {i}] : {T4}"), &dq);
        }
        e.close();
        e.close();
    }
    // The decayed previous state S' = Diag(α) S_{t-1}, read on the fly.
    let decayed = |e: &mut Emitter, i: &str, j: &str| -> String {
        let p = e.op(&format!("memref.load {}", prev(i, j)));
        match alpha(e, spec, &at, i) {
            Some(a) => e.op(&format!("arith.mulf {a}, {p} : f32")),
            None => p,
        }
    };
    // 2. The write.
    match spec.update {
        ScanUpdate::Additive => {
            let i = e.open_for("%c0", "%DK");
            let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {T4}"));
            let dk = e.fresh();
            let (j, acc) = e.open_sum("%DV", &dk);
            let d = e.op(&format!("memref.load {}", ds(&i, &j)));
            let v = e.op(&format!("memref.load %v[{b}, {t}, {h}, {j}] : {T4}"));
            let dv = e.op(&format!("arith.mulf {d}, {k} : f32"));
            accumulate(&mut e, &format!("%dv[{b}, {t}, {h}, {j}] : {T4}"), &dv);
            let dv_k = e.op(&format!("arith.mulf {d}, {v} : f32"));
            let sum = e.op(&format!("arith.addf {acc}, {dv_k} : f32"));
            e.close_sum(&sum);
            accumulate(&mut e, &format!("%dk[{b}, {t}, {hk}, {i}] : {T4}"), &dk);
            e.close();
        }
        ScanUpdate::Delta => {
            let beta = e.op(&format!("memref.load %beta[{b}, {t}, {h}] : {T3}"));
            // e_j = v_j − (S'ᵀk)_j into %u; du_j = (dSᵀk)_j into %du, both accumulated row
            // by row (unit stride along j).
            zero_vector(&mut e, "%u");
            zero_vector(&mut e, "%du");
            {
                let i = e.open_for("%c0", "%DK");
                let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {T4}"));
                let j = e.open_for("%c0", "%DV");
                let sp = decayed(&mut e, &i, &j);
                let spk = e.op(&format!("arith.mulf {sp}, {k} : f32"));
                accumulate(&mut e, &format!("%u[{j}] : memref<?xf32>"), &spk);
                let d = e.op(&format!("memref.load {}", ds(&i, &j)));
                let dk = e.op(&format!("arith.mulf {d}, {k} : f32"));
                accumulate(&mut e, &format!("%du[{j}] : memref<?xf32>"), &dk);
                e.close();
                e.close();
            }
            {
                let j = e.open_for("%c0", "%DV");
                let read = e.op(&format!("memref.load %u[{j}] : memref<?xf32>"));
                let v = e.op(&format!("memref.load %v[{b}, {t}, {h}, {j}] : {T4}"));
                let err = e.op(&format!("arith.subf {v}, {read} : f32"));
                e.line(&format!("memref.store {err}, %u[{j}] : memref<?xf32>"));
                let du = e.op(&format!("memref.load %du[{j}] : memref<?xf32>"));
                // dβ += du_j e_j; dv_j += β du_j.
                let de = e.op(&format!("arith.mulf {du}, {err} : f32"));
                accumulate(&mut e, &format!("%dbeta[{b}, {t}, {h}] : {T3}"), &de);
                let dv = e.op(&format!("arith.mulf {beta}, {du} : f32"));
                accumulate(&mut e, &format!("%dv[{b}, {t}, {h}, {j}] : {T4}"), &dv);
                e.close();
            }
            // dk_i += β Σ_j (dS_ij e_j − S'_ij du_j); then dS_ij −= β k_i du_j.
            let i = e.open_for("%c0", "%DK");
            let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {T4}"));
            let sum_name = e.fresh();
            let (j, acc) = e.open_sum("%DV", &sum_name);
            let d = e.op(&format!("memref.load {}", ds(&i, &j)));
            let err = e.op(&format!("memref.load %u[{j}] : memref<?xf32>"));
            let du = e.op(&format!("memref.load %du[{j}] : memref<?xf32>"));
            let sp = decayed(&mut e, &i, &j);
            let a1 = e.op(&format!("arith.mulf {d}, {err} : f32"));
            let a2 = e.op(&format!("arith.mulf {sp}, {du} : f32"));
            let diff = e.op(&format!("arith.subf {a1}, {a2} : f32"));
            let kdu = e.op(&format!("arith.mulf {k}, {du} : f32"));
            let bkdu = e.op(&format!("arith.mulf {beta}, {kdu} : f32"));
            let nd = e.op(&format!("arith.subf {d}, {bkdu} : f32"));
            e.line(&format!("memref.store {nd}, {}", ds(&i, &j)));
            let sum = e.op(&format!("arith.addf {acc}, {diff} : f32"));
            e.close_sum(&sum);
            let dk = e.op(&format!("arith.mulf {beta}, {sum_name} : f32"));
            accumulate(&mut e, &format!("%dk[{b}, {t}, {hk}, {i}] : {T4}"), &dk);
            e.close();
        }
    }
    // 3. The decay: dg += α Σ_j dS'_ij S_{t-1,ij}; dS_{t-1} = Diag(α) dS'.
    if spec.decay != Decay::None {
        let i = e.open_for("%c0", "%DK");
        let a = alpha(&mut e, spec, &at, &i).expect("a decay");
        let dot = e.fresh();
        let (j, acc) = e.open_sum("%DV", &dot);
        let d = e.op(&format!("memref.load {}", ds(&i, &j)));
        let p = e.op(&format!("memref.load {}", prev(&i, &j)));
        let dp = e.op(&format!("arith.mulf {d}, {p} : f32"));
        let nd = e.op(&format!("arith.mulf {a}, {d} : f32"));
        e.line(&format!("memref.store {nd}, {}", ds(&i, &j)));
        let sum = e.op(&format!("arith.addf {acc}, {dp} : f32"));
        e.close_sum(&sum);
        let dg = e.op(&format!("arith.mulf {a}, {dot} : f32"));
        let target = match spec.decay {
            Decay::PerHead => format!("%dg[{h}] : {}", ty(1)),
            Decay::Scalar => format!("%dg[{b}, {t}, {h}] : {T3}"),
            Decay::Vector => format!("%dg[{b}, {t}, {hk}, {i}] : {T4}"),
            Decay::None => unreachable!("checked above"),
        };
        accumulate(&mut e, &target, &dg);
        e.close();
    }
    e.close(); // si
    e.close(); // ci
    e.close(); // h
    e.close(); // b
    e.line("memref.dealloc %buf : memref<?x?x?xf32>");
    e.end_function()
}
