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

use std::fmt::Write;

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
}

impl ScanSpec {
    /// The kernel's arguments in order, with their ranks.
    pub fn arguments(&self) -> Vec<(&'static str, usize)> {
        let mut args = vec![("q", 4), ("k", 4), ("v", 4)];
        match self.decay {
            Decay::None => {}
            Decay::PerHead => args.push(("g", 1)),
            Decay::Scalar => args.push(("g", 3)),
            Decay::Vector => args.push(("g", 4)),
        }
        if self.update == ScanUpdate::Delta {
            args.push(("beta", 3));
        }
        args.push(("o", 4));
        args.push(("state", 4));
        args
    }
}

/// Writes MLIR with fresh SSA names and indentation.
struct Emitter {
    text: String,
    depth: usize,
    next: usize,
}

impl Emitter {
    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%v{}", self.next)
    }

    fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{}{line}", "  ".repeat(self.depth));
    }

    /// `%x = op ...` with a fresh name; returns the name.
    fn op(&mut self, rhs: &str) -> String {
        let name = self.fresh();
        self.line(&format!("{name} = {rhs}"));
        name
    }

    fn open_for(&mut self, from: &str, to: &str) -> String {
        let index = self.fresh();
        self.line(&format!("scf.for {index} = {from} to {to} step %c1 {{"));
        self.depth += 1;
        index
    }

    /// A reduction loop: returns (induction variable, accumulator).
    fn open_sum(&mut self, to: &str, result: &str) -> (String, String) {
        let index = self.fresh();
        let acc = self.fresh();
        self.line(&format!("{result} = scf.for {index} = %c0 to {to} step %c1 iter_args({acc} = %zero) -> (f32) {{"));
        self.depth += 1;
        (index, acc)
    }

    fn close_sum(&mut self, value: &str) {
        self.line(&format!("scf.yield {value} : f32"));
        self.close();
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }
}

fn ty(rank: usize) -> String {
    format!("memref<{}f32>", "?x".repeat(rank))
}

/// The forward token recurrence as an MLIR module with one function, `name`.
pub fn forward(spec: &ScanSpec, name: &str) -> String {
    let mut e = Emitter { text: String::new(), depth: 0, next: 0 };
    let params: Vec<String> = spec.arguments().iter().map(|(arg, rank)| format!("%{arg}: {}", ty(*rank))).collect();
    e.line("module {");
    e.depth += 1;
    e.line(&format!("func.func @{name}({}) attributes {{llvm.emit_c_interface}} {{", params.join(", ")));
    e.depth += 1;
    for (i, c) in ["%c0", "%c1", "%c2", "%c3"].iter().enumerate() {
        e.line(&format!("{c} = arith.constant {i} : index"));
    }
    e.line("%zero = arith.constant 0.0 : f32");
    // f32 constants are written as their bit pattern: exact, and valid MLIR.
    e.line(&format!("%scale = arith.constant 0x{:08X} : f32 // {}", (spec.scale as f32).to_bits(), spec.scale));
    e.line(&format!("%spk = arith.constant {} : index", spec.states_per_key));
    e.line(&format!("%qps = arith.constant {} : index", spec.q_per_state));
    let (t4, t3) = (ty(4), ty(3));
    e.line(&format!("%B = memref.dim %q, %c0 : {t4}"));
    e.line(&format!("%T = memref.dim %q, %c1 : {t4}"));
    e.line(&format!("%HS = memref.dim %state, %c1 : {t4}"));
    e.line(&format!("%DK = memref.dim %state, %c2 : {t4}"));
    e.line(&format!("%DV = memref.dim %state, %c3 : {t4}"));
    if spec.update == ScanUpdate::Delta {
        e.line("%u = memref.alloca(%DV) : memref<?xf32>");
    }
    let b = e.open_for("%c0", "%B");
    let h = e.open_for("%c0", "%HS");
    let hk = e.op(&format!("arith.divui {h}, %spk : index"));
    let t = e.open_for("%c0", "%T");
    let state = |i: &str, j: &str| format!("%state[{b}, {h}, {i}, {j}] : {t4}");
    // Scalar decays are read once per token.
    let scalar_alpha = match spec.decay {
        Decay::PerHead => Some(format!("%g[{h}] : {}", ty(1))),
        Decay::Scalar => Some(format!("%g[{b}, {t}, {h}] : {t3}")),
        Decay::None | Decay::Vector => None,
    }
    .map(|at| {
        let g = e.op(&format!("memref.load {at}"));
        e.op(&format!("math.exp {g} : f32"))
    });
    let alpha_of = |e: &mut Emitter, i: &str| -> Option<String> {
        match spec.decay {
            Decay::Vector => {
                let g = e.op(&format!("memref.load %g[{b}, {t}, {hk}, {i}] : {t4}"));
                Some(e.op(&format!("math.exp {g} : f32")))
            }
            _ => scalar_alpha.clone(),
        }
    };
    match spec.update {
        ScanUpdate::Additive => {
            let i = e.open_for("%c0", "%DK");
            let alpha = alpha_of(&mut e, &i);
            let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {t4}"));
            let j = e.open_for("%c0", "%DV");
            let s = e.op(&format!("memref.load {}", state(&i, &j)));
            let decayed = match &alpha {
                Some(a) => e.op(&format!("arith.mulf {a}, {s} : f32")),
                None => s,
            };
            let v = e.op(&format!("memref.load %v[{b}, {t}, {h}, {j}] : {t4}"));
            let kv = e.op(&format!("arith.mulf {k}, {v} : f32"));
            let next = e.op(&format!("arith.addf {decayed}, {kv} : f32"));
            e.line(&format!("memref.store {next}, {}", state(&i, &j)));
            e.close();
            e.close();
        }
        ScanUpdate::Delta => {
            if spec.decay != Decay::None {
                let i = e.open_for("%c0", "%DK");
                let alpha = alpha_of(&mut e, &i).expect("a decay");
                let j = e.open_for("%c0", "%DV");
                let s = e.op(&format!("memref.load {}", state(&i, &j)));
                let decayed = e.op(&format!("arith.mulf {alpha}, {s} : f32"));
                e.line(&format!("memref.store {decayed}, {}", state(&i, &j)));
                e.close();
                e.close();
            }
            let beta = e.op(&format!("memref.load %beta[{b}, {t}, {h}] : {t3}"));
            let j = e.open_for("%c0", "%DV");
            let read = e.fresh();
            let (i, acc) = e.open_sum("%DK", &read);
            let s = e.op(&format!("memref.load {}", state(&i, &j)));
            let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {t4}"));
            let sk = e.op(&format!("arith.mulf {s}, {k} : f32"));
            let sum = e.op(&format!("arith.addf {acc}, {sk} : f32"));
            e.close_sum(&sum);
            let v = e.op(&format!("memref.load %v[{b}, {t}, {h}, {j}] : {t4}"));
            let error = e.op(&format!("arith.subf {v}, {read} : f32"));
            let u = e.op(&format!("arith.mulf {beta}, {error} : f32"));
            e.line(&format!("memref.store {u}, %u[{j}] : memref<?xf32>"));
            e.close();
            let i = e.open_for("%c0", "%DK");
            let k = e.op(&format!("memref.load %k[{b}, {t}, {hk}, {i}] : {t4}"));
            let j = e.open_for("%c0", "%DV");
            let s = e.op(&format!("memref.load {}", state(&i, &j)));
            let u = e.op(&format!("memref.load %u[{j}] : memref<?xf32>"));
            let ku = e.op(&format!("arith.mulf {k}, {u} : f32"));
            let next = e.op(&format!("arith.addf {s}, {ku} : f32"));
            e.line(&format!("memref.store {next}, {}", state(&i, &j)));
            e.close();
            e.close();
        }
    }
    // Readout for every query head that reads this state.
    let r = e.open_for("%c0", "%qps");
    let q_base = e.op(&format!("arith.muli {hk}, %qps : index"));
    let qh = e.op(&format!("arith.addi {q_base}, {r} : index"));
    let o_base = e.op(&format!("arith.muli {h}, %qps : index"));
    let oh = e.op(&format!("arith.addi {o_base}, {r} : index"));
    let j = e.open_for("%c0", "%DV");
    let dot = e.fresh();
    let (i, acc) = e.open_sum("%DK", &dot);
    let s = e.op(&format!("memref.load {}", state(&i, &j)));
    let q = e.op(&format!("memref.load %q[{b}, {t}, {qh}, {i}] : {t4}"));
    let sq = e.op(&format!("arith.mulf {s}, {q} : f32"));
    let sum = e.op(&format!("arith.addf {acc}, {sq} : f32"));
    e.close_sum(&sum);
    let out = e.op(&format!("arith.mulf %scale, {dot} : f32"));
    e.line(&format!("memref.store {out}, %o[{b}, {t}, {oh}, {j}] : {t4}"));
    e.close();
    e.close();
    e.close(); // t
    e.close(); // h
    e.close(); // b
    e.line("return");
    e.close(); // func
    e.close(); // module
    e.text
}
