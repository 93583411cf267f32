//! Fused elementwise chains: any number of inputs and outputs of one length, each output
//! an expression over the inputs, computed in one loop (each shared subexpression once).
//! This is the kernel the fusion pass gives every chain of elementwise ops and gates
//! (activations, `logsigmoid / N`, `1 − e^g`, SwiGLU, residual adds, ...).
//!
//! [`Expr::derivative`] differentiates an expression symbolically, so the backward of a
//! fused chain is another fused chain: `d input_i = Σ_o d out_o · ∂ out_o / ∂ input_i`
//! ([`backward`]).

use std::collections::HashMap;

use crate::emit::{Emitter, f32_constant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    Neg,
    Exp,
    Log,
    Sigmoid,
    /// `x · σ(x)`
    Silu,
    /// `log(1 + eˣ)`, computed stably.
    Softplus,
    /// `−softplus(−x)`
    LogSigmoid,
    Relu,
    Sqrt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Input(usize),
    Const(f64),
    Unary(Unary, Box<Expr>),
    Binary(Binary, Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn unary(op: Unary, x: Expr) -> Expr {
        Expr::Unary(op, Box::new(x))
    }

    pub fn binary(op: Binary, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    /// The value at `inputs`, in f64 (the reference the kernels are tested against).
    pub fn eval(&self, inputs: &[f64]) -> f64 {
        match self {
            Expr::Input(i) => inputs[*i],
            Expr::Const(c) => *c,
            Expr::Unary(op, x) => {
                let x = x.eval(inputs);
                match op {
                    Unary::Neg => -x,
                    Unary::Exp => x.exp(),
                    Unary::Log => x.ln(),
                    Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                    Unary::Silu => x / (1.0 + (-x).exp()),
                    Unary::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
                    Unary::LogSigmoid => -((-x).max(0.0) + (-x.abs()).exp().ln_1p()),
                    Unary::Relu => x.max(0.0),
                    Unary::Sqrt => x.sqrt(),
                }
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(inputs), b.eval(inputs));
                match op {
                    Binary::Add => a + b,
                    Binary::Sub => a - b,
                    Binary::Mul => a * b,
                    Binary::Div => a / b,
                    Binary::Max => a.max(b),
                }
            }
        }
    }

    /// `∂ self / ∂ input_i`, as an expression.
    pub fn derivative(&self, i: usize) -> Expr {
        let sig = |x: &Expr| Expr::unary(Unary::Sigmoid, x.clone());
        match self {
            Expr::Input(j) => Expr::Const(if *j == i { 1.0 } else { 0.0 }),
            Expr::Const(_) => Expr::Const(0.0),
            Expr::Unary(op, x) => {
                let dx = x.derivative(i);
                let outer = match op {
                    Unary::Neg => Expr::Const(-1.0),
                    Unary::Exp => self.clone(),
                    Unary::Log => Expr::binary(Binary::Div, Expr::Const(1.0), (**x).clone()),
                    // σ' = σ(1 − σ)
                    Unary::Sigmoid => {
                        Expr::binary(Binary::Mul, sig(x), Expr::binary(Binary::Sub, Expr::Const(1.0), sig(x)))
                    }
                    // silu' = σ(x)(1 + x(1 − σ(x)))
                    Unary::Silu => Expr::binary(
                        Binary::Mul,
                        sig(x),
                        Expr::binary(
                            Binary::Add,
                            Expr::Const(1.0),
                            Expr::binary(
                                Binary::Mul,
                                (**x).clone(),
                                Expr::binary(Binary::Sub, Expr::Const(1.0), sig(x)),
                            ),
                        ),
                    ),
                    Unary::Softplus => sig(x),
                    // logsigmoid' = 1 − σ(x) = σ(−x)
                    Unary::LogSigmoid => Expr::binary(Binary::Sub, Expr::Const(1.0), sig(x)),
                    // relu' = [x > 0] = max(sign, 0), written as a step via max/div-free form
                    Unary::Relu => Expr::binary(
                        Binary::Div,
                        Expr::unary(Unary::Relu, (**x).clone()),
                        Expr::binary(Binary::Max, Expr::unary(Unary::Relu, (**x).clone()), Expr::Const(1e-30)),
                    ),
                    Unary::Sqrt => Expr::binary(Binary::Div, Expr::Const(0.5), self.clone()),
                };
                simplify_mul(outer, dx)
            }
            Expr::Binary(op, a, b) => {
                let (da, db) = (a.derivative(i), b.derivative(i));
                match op {
                    Binary::Add => simplify_add(da, db),
                    Binary::Sub => simplify_add(da, simplify_mul(Expr::Const(-1.0), db)),
                    Binary::Mul => simplify_add(simplify_mul(da, (**b).clone()), simplify_mul((**a).clone(), db)),
                    Binary::Div => {
                        // (a/b)' = a'/b − a b'/b²
                        let first = simplify_mul(da, Expr::binary(Binary::Div, Expr::Const(1.0), (**b).clone()));
                        let b2 = Expr::binary(Binary::Mul, (**b).clone(), (**b).clone());
                        let second = simplify_mul(db, Expr::binary(Binary::Div, (**a).clone(), b2));
                        simplify_add(first, simplify_mul(Expr::Const(-1.0), second))
                    }
                    // max' follows the larger side: [a ≥ b] a' + [a < b] b'
                    Binary::Max => {
                        let a_wins = step(Expr::binary(Binary::Sub, (**a).clone(), (**b).clone()));
                        let b_wins = Expr::binary(Binary::Sub, Expr::Const(1.0), a_wins.clone());
                        simplify_add(simplify_mul(a_wins, da), simplify_mul(b_wins, db))
                    }
                }
            }
        }
    }
}

/// `[x ≥ 0]` as an expression: 1 where x ≥ 0, else 0.
fn step(x: Expr) -> Expr {
    // relu(x) / max(relu(x), tiny) is 0 for x ≤ 0 and 1 for x > 0; the tie x = 0 goes to b.
    let positive = Expr::unary(Unary::Relu, x);
    Expr::binary(Binary::Div, positive.clone(), Expr::binary(Binary::Max, positive, Expr::Const(1e-30)))
}

fn simplify_mul(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Const(x), _) if *x == 0.0 => Expr::Const(0.0),
        (_, Expr::Const(y)) if *y == 0.0 => Expr::Const(0.0),
        (Expr::Const(x), _) if *x == 1.0 => b,
        (_, Expr::Const(y)) if *y == 1.0 => a,
        _ => Expr::binary(Binary::Mul, a, b),
    }
}

fn simplify_add(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Const(x), _) if *x == 0.0 => b,
        (_, Expr::Const(y)) if *y == 0.0 => a,
        _ => Expr::binary(Binary::Add, a, b),
    }
}

/// A fused chain: `inputs` flat inputs of one length, one expression per output.
#[derive(Clone, Debug, PartialEq)]
pub struct MapSpec {
    pub inputs: usize,
    pub outputs: Vec<Expr>,
}

/// The backward chain: inputs are the forward inputs then one gradient per output;
/// outputs are the gradients of the forward inputs.
pub fn backward(spec: &MapSpec) -> MapSpec {
    let outputs = (0..spec.inputs)
        .map(|i| {
            spec.outputs.iter().enumerate().fold(Expr::Const(0.0), |total, (o, out)| {
                let d_out = Expr::Input(spec.inputs + o);
                simplify_add(total, simplify_mul(d_out, out.derivative(i)))
            })
        })
        .collect();
    MapSpec { inputs: spec.inputs + spec.outputs.len(), outputs }
}

/// Emits each subexpression once per element.
struct Lower<'e> {
    e: &'e mut Emitter,
    /// The element index each input is read at (its own for a broadcast input).
    indices: Vec<String>,
    memo: HashMap<String, String>,
}

impl Lower<'_> {
    fn value(&mut self, expr: &Expr) -> String {
        let key = format!("{expr:?}");
        if let Some(name) = self.memo.get(&key) {
            return name.clone();
        }
        let name = match expr {
            Expr::Input(i) => self.e.op(&format!("memref.load %in{i}[{}] : memref<?xf32>", self.indices[*i])),
            Expr::Const(c) => self.e.op(&f32_constant(*c)),
            Expr::Unary(op, x) => {
                let x = self.value(x);
                self.unary(*op, &x)
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.value(a), self.value(b));
                let name = match op {
                    Binary::Add => "arith.addf",
                    Binary::Sub => "arith.subf",
                    Binary::Mul => "arith.mulf",
                    Binary::Div => "arith.divf",
                    Binary::Max => "arith.maximumf",
                };
                self.e.op(&format!("{name} {a}, {b} : f32"))
            }
        };
        self.memo.insert(key, name.clone());
        name
    }

    fn unary(&mut self, op: Unary, x: &str) -> String {
        let e = &mut *self.e;
        match op {
            Unary::Neg => e.op(&format!("arith.negf {x} : f32")),
            Unary::Exp => e.op(&format!("math.exp {x} : f32")),
            Unary::Log => e.op(&format!("math.log {x} : f32")),
            Unary::Sqrt => e.op(&format!("math.sqrt {x} : f32")),
            Unary::Relu => e.op(&format!("arith.maximumf {x}, %zero : f32")),
            Unary::Sigmoid | Unary::Silu => {
                let neg = e.op(&format!("arith.negf {x} : f32"));
                let exp = e.op(&format!("math.exp {neg} : f32"));
                let den = e.op(&format!("arith.addf %one, {exp} : f32"));
                let numerator = if op == Unary::Silu { x.to_string() } else { "%one".to_string() };
                e.op(&format!("arith.divf {numerator}, {den} : f32"))
            }
            // softplus(x) = max(x, 0) + log1p(exp(−|x|)); logsigmoid(x) = −softplus(−x).
            Unary::Softplus | Unary::LogSigmoid => {
                let arg = if op == Unary::LogSigmoid { e.op(&format!("arith.negf {x} : f32")) } else { x.to_string() };
                let positive = e.op(&format!("arith.maximumf {arg}, %zero : f32"));
                let abs = e.op(&format!("math.absf {arg} : f32"));
                let neg_abs = e.op(&format!("arith.negf {abs} : f32"));
                let exp = e.op(&format!("math.exp {neg_abs} : f32"));
                let log1p = e.op(&format!("math.log1p {exp} : f32"));
                let softplus = e.op(&format!("arith.addf {positive}, {log1p} : f32"));
                if op == Unary::LogSigmoid { e.op(&format!("arith.negf {softplus} : f32")) } else { softplus }
            }
        }
    }
}

/// The chain as an MLIR module: `@name(%in0..., %out0...)`, all `memref<?xf32>`.
pub fn generate(spec: &MapSpec, name: &str) -> String {
    generate_broadcast(spec, &vec![false; spec.inputs], name)
}

/// Like [`generate`], with some inputs broadcast: a broadcast input of length W is read
/// at `k mod W` (a per-channel bias or a per-head parameter against `[rows, W]`
/// values). Its backward is the per-element gradient of [`backward`] summed over rows
/// by [`sum_rows`].
pub fn generate_broadcast(spec: &MapSpec, broadcast: &[bool], name: &str) -> String {
    let mut e = Emitter::default();
    let mut params: Vec<String> = (0..spec.inputs).map(|i| format!("%in{i}: memref<?xf32>")).collect();
    params.extend((0..spec.outputs.len()).map(|o| format!("%out{o}: memref<?xf32>")));
    e.begin_function(name, &params);
    let full = (0..spec.inputs).find(|i| !broadcast[*i]).map_or("%out0".to_string(), |i| format!("%in{i}"));
    e.line(&format!("%n = memref.dim {full}, %c0 : memref<?xf32>"));
    for (i, _) in broadcast.iter().enumerate().filter(|(_, b)| **b) {
        e.line(&format!("%w{i} = memref.dim %in{i}, %c0 : memref<?xf32>"));
    }
    let index = e.open_for("%c0", "%n");
    let indices: Vec<String> = (0..spec.inputs)
        .map(|i| if broadcast[i] { e.op(&format!("arith.remui {index}, %w{i} : index")) } else { index.clone() })
        .collect();
    let mut lower = Lower { e: &mut e, indices, memo: HashMap::new() };
    let values: Vec<String> = spec.outputs.iter().map(|out| lower.value(out)).collect();
    for (o, value) in values.iter().enumerate() {
        e.line(&format!("memref.store {value}, %out{o}[{index}] : memref<?xf32>"));
    }
    e.close();
    e.end_function()
}

/// `out[k mod W] += in[k]`: the gradient of a broadcast input. Args: in `[N]`, out `[W]`.
pub fn sum_rows(name: &str) -> String {
    let mut e = Emitter::default();
    e.begin_function(name, &["%in: memref<?xf32>".to_string(), "%out: memref<?xf32>".to_string()]);
    e.line("%n = memref.dim %in, %c0 : memref<?xf32>");
    e.line("%w = memref.dim %out, %c0 : memref<?xf32>");
    let k = e.open_for("%c0", "%n");
    let column = e.op(&format!("arith.remui {k}, %w : index"));
    let value = e.op(&format!("memref.load %in[{k}] : memref<?xf32>"));
    crate::emit::accumulate(&mut e, &format!("%out[{column}] : memref<?xf32>"), &value);
    e.close();
    e.end_function()
}
