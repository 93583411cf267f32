//! Fused elementwise chains: any number of inputs and outputs of one length, each output
//! an expression over the inputs, computed in one loop (each shared subexpression once).
//! This is the kernel the fusion pass gives every chain of elementwise ops and gates
//! (activations, `logsigmoid / N`, `1 − e^g`, SwiGLU, residual adds, ...).
//!
//! [`Expr::derivative`] differentiates an expression symbolically, so the backward of a
//! fused chain is another fused chain: `d input_i = Σ_o d out_o · ∂ out_o / ∂ input_i`
//! ([`backward`]).

use std::collections::HashMap;

use crate::emit::{Builder, Config, Value};

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
    e: &'e mut Builder,
    /// The input memrefs.
    inputs: Vec<Value>,
    /// The element index each input is read at (its own for a broadcast input).
    indices: Vec<Value>,
    memo: HashMap<String, Value>,
}

impl Lower<'_> {
    fn value(&mut self, expr: &Expr) -> Value {
        let key = format!("{expr:?}");
        if let Some(value) = self.memo.get(&key) {
            return value.clone();
        }
        let value = match expr {
            Expr::Input(i) => self.e.load(&self.inputs[*i], &[&self.indices[*i]]),
            Expr::Const(c) => self.e.constant(*c),
            Expr::Unary(op, x) => {
                let x = self.value(x);
                self.unary(*op, &x)
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.value(a), self.value(b));
                match op {
                    Binary::Add => self.e.add(&a, &b),
                    Binary::Sub => self.e.sub(&a, &b),
                    Binary::Mul => self.e.mul(&a, &b),
                    Binary::Div => self.e.div(&a, &b),
                    Binary::Max => self.e.max(&a, &b),
                }
            }
        };
        self.memo.insert(key, value.clone());
        value
    }

    fn unary(&mut self, op: Unary, x: &Value) -> Value {
        let e = &mut *self.e;
        match op {
            Unary::Neg => e.neg(x),
            Unary::Exp => e.exp(x),
            Unary::Log => e.log(x),
            Unary::Sqrt => e.sqrt(x),
            Unary::Relu => {
                let zero = e.zero();
                e.max(x, &zero)
            }
            // σ(x) = 1 / (1 + e^−x); silu(x) = x / (1 + e^−x).
            Unary::Sigmoid | Unary::Silu => {
                let neg = e.neg(x);
                let exp = e.exp(&neg);
                let one = e.one();
                let den = e.add(&one, &exp);
                let numerator = if op == Unary::Silu { x.clone() } else { one };
                e.div(&numerator, &den)
            }
            // softplus(x) = max(x, 0) + log1p(exp(−|x|)); logsigmoid(x) = −softplus(−x).
            Unary::Softplus | Unary::LogSigmoid => {
                let arg = if op == Unary::LogSigmoid { e.neg(x) } else { x.clone() };
                let zero = e.zero();
                let positive = e.max(&arg, &zero);
                let abs = e.abs(&arg);
                let neg_abs = e.neg(&abs);
                let exp = e.exp(&neg_abs);
                let log1p = e.log1p(&exp);
                let softplus = e.add(&positive, &log1p);
                if op == Unary::LogSigmoid { e.neg(&softplus) } else { softplus }
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
    generate_with(spec, broadcast, name, &Config::CPU)
}

/// [`generate_broadcast`] under any [`Config`]: the same as [`generate_with`].
pub fn generate_broadcast_with(spec: &MapSpec, broadcast: &[bool], name: &str, config: &Config) -> String {
    generate_with(spec, broadcast, name, config)
}

/// [`generate_broadcast`] (and so [`generate`], with no input broadcast) under any
/// [`Config`]: the inputs and outputs are memrefs of its storage type, the expression is
/// computed in its compute type.
pub fn generate_with(spec: &MapSpec, broadcast: &[bool], name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    let input_names: Vec<String> = (0..spec.inputs).map(|i| format!("in{i}")).collect();
    let output_names: Vec<String> = (0..spec.outputs.len()).map(|o| format!("out{o}")).collect();
    let args: Vec<(&str, usize)> = input_names.iter().chain(&output_names).map(|arg| (arg.as_str(), 1)).collect();
    e.begin_function(name, &args);
    let inputs: Vec<Value> = input_names.iter().map(|arg| e.arg(arg)).collect();
    let outputs: Vec<Value> = output_names.iter().map(|arg| e.arg(arg)).collect();
    // The length comes from a full-length input, or the first output if there is none.
    let full = inputs.iter().zip(broadcast).find(|(_, b)| !**b).map_or(&outputs[0], |(input, _)| input);
    let n = e.named("n").dim(full, 0);
    let widths: Vec<Option<Value>> =
        (0..spec.inputs).map(|i| broadcast[i].then(|| e.named(&format!("w{i}")).dim(&inputs[i], 0))).collect();
    let c0 = e.c0();
    e.for_(&c0, &n, |e, index| {
        let indices = widths.iter().map(|width| width.as_ref().map_or(index.clone(), |w| e.remui(&index, w))).collect();
        let mut lower = Lower { e, inputs, indices, memo: HashMap::new() };
        let values: Vec<Value> = spec.outputs.iter().map(|out| lower.value(out)).collect();
        for (value, output) in values.iter().zip(&outputs) {
            e.store(value, output, &[&index]);
        }
    });
    e.finish()
}

/// `out[k mod W] += in[k]`: the gradient of a broadcast input. Args: in `[N]`, out `[W]`.
pub fn sum_rows(name: &str) -> String {
    sum_rows_with(name, &Config::CPU)
}

/// [`sum_rows`] under any [`Config`].
pub fn sum_rows_with(name: &str, config: &Config) -> String {
    let mut e = Builder::new(*config);
    e.begin_function(name, &[("in", 1), ("out", 1)]);
    let (input, output) = (e.arg("in"), e.arg("out"));
    let n = e.named("n").dim(&input, 0);
    let w = e.named("w").dim(&output, 0);
    let c0 = e.c0();
    e.for_(&c0, &n, |e, k| {
        let column = e.remui(&k, &w);
        let value = e.load(&input, &[&k]);
        e.accumulate_shared(&output, &[&column], &value);
    });
    e.finish()
}
