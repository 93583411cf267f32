//! The untyped emitter the generators were first written with: MLIR pasted as strings,
//! with `: f32` spelled by the caller and fast-math flags added by rewriting the op's
//! text (`relaxed`), `math.exp` turned into the polynomial by matching the op's text.
//! Its users: `embed` and `loss` (the [`Emitter`] with [`T3`], [`accumulate`] and
//! [`max_and_sum_exp`]) and `copy` (with [`f32_constant`]). New code uses
//! [`Builder`]; its polynomial `exp` is the one this emitter writes.

use std::fmt::Write;

use super::builder::Builder;
use super::types::{Config, Scalar, Ty, Value};

/// Writes MLIR with fresh SSA names and indentation.
#[derive(Default)]
pub struct Emitter {
    pub text: String,
    pub depth: usize,
    next: usize,
}

impl Emitter {
    pub fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%v{}", self.next)
    }

    pub fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{}{line}", "  ".repeat(self.depth));
    }

    /// `%x = op ...` with a fresh name; returns the name. Float adds, subtractions and
    /// products may be reassociated and contracted into FMAs (`relaxed`), and `math.exp`
    /// on an f32 is written as [`Emitter::exp`].
    pub fn op(&mut self, rhs: &str) -> String {
        if let Some(x) = rhs.strip_prefix("math.exp ").and_then(|r| r.strip_suffix(" : f32")) {
            return self.exp(x);
        }
        let name = self.fresh();
        self.line(&format!("{name} = {}", relaxed(rhs)));
        name
    }

    /// `exp(x)` by [`Builder::exp_polynomial`], written into this emitter's text.
    pub fn exp(&mut self, x: &str) -> String {
        let mut builder = Builder::continuing(Config::CPU, self.depth, self.next);
        let result = builder.exp_polynomial(&Value::new(x, Ty::Scalar(Scalar::F32)));
        self.text.push_str(&builder.text);
        self.next = builder.next;
        result.name().to_string()
    }

    pub fn open_for(&mut self, from: &str, to: &str) -> String {
        let index = self.fresh();
        self.line(&format!("scf.for {index} = {from} to {to} step %c1 {{"));
        self.depth += 1;
        index
    }

    /// A reduction loop: returns (induction variable, accumulator).
    pub fn open_sum(&mut self, to: &str, result: &str) -> (String, String) {
        self.open_fold(to, result, "%zero")
    }

    /// A fold over `[0, to)` starting from `init`: returns (induction variable, accumulator).
    pub fn open_fold(&mut self, to: &str, result: &str, init: &str) -> (String, String) {
        let index = self.fresh();
        let acc = self.fresh();
        self.line(&format!("{result} = scf.for {index} = %c0 to {to} step %c1 iter_args({acc} = {init}) -> (f32) {{"));
        self.depth += 1;
        (index, acc)
    }

    pub fn close_sum(&mut self, value: &str) {
        self.line(&format!("scf.yield {value} : f32"));
        self.close();
    }

    pub fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }
}

/// `arith.{add,sub,mul}f … : f32` with `fastmath<reassoc,contract>`: LLVM may then
/// vectorise reductions and fuse multiply-adds. No `nnan`/`ninf`: NaNs must propagate
/// and the folds for a maximum start at −∞.
fn relaxed(rhs: &str) -> std::borrow::Cow<'_, str> {
    let float_arith = ["arith.addf ", "arith.subf ", "arith.mulf "].iter().any(|op| rhs.starts_with(op));
    match rhs.strip_suffix(" : f32") {
        Some(head) if float_arith => format!("{head} fastmath<reassoc,contract> : f32").into(),
        _ => rhs.into(),
    }
}

pub const T3: &str = "memref<?x?x?xf32>";

/// The maximum of `load(i)` over `i ∈ [0, bound)` and `Σ exp(load(i) − max)`: the two
/// passes of a stable softmax or log-sum-exp. The maximum's fold starts at −∞.
pub fn max_and_sum_exp(e: &mut Emitter, bound: &str, load: &dyn Fn(&mut Emitter, &str) -> String) -> (String, String) {
    let neg_inf = e.op("arith.constant 0xFF800000 : f32");
    let max = e.fresh();
    let (i, acc) = e.open_fold(bound, &max, &neg_inf);
    let x = load(e, &i);
    let m = e.op(&format!("arith.maximumf {acc}, {x} : f32"));
    e.close_sum(&m);
    let sum = e.fresh();
    let (i, acc) = e.open_sum(bound, &sum);
    let x = load(e, &i);
    let shifted = e.op(&format!("arith.subf {x}, {max} : f32"));
    let p = e.op(&format!("math.exp {shifted} : f32"));
    let total = e.op(&format!("arith.addf {acc}, {p} : f32"));
    e.close_sum(&total);
    (max, sum)
}

/// `%target[...] += value`.
pub fn accumulate(e: &mut Emitter, target: &str, value: &str) {
    let old = e.op(&format!("memref.load {target}"));
    let new = e.op(&format!("arith.addf {old}, {value} : f32"));
    e.line(&format!("memref.store {new}, {target}"));
}

/// An f32 constant written as its bit pattern: exact, and valid MLIR.
pub fn f32_constant(value: f64) -> String {
    format!("arith.constant 0x{:08X} : f32 // {value}", (value as f32).to_bits())
}

impl Emitter {
    /// Opens `module { func.func @name(params) attributes {llvm.emit_c_interface} {` and
    /// defines the constants every kernel uses: `%c0`, `%c1`, `%zero`, `%one`.
    pub fn begin_function(&mut self, name: &str, params: &[String]) {
        self.line("module {");
        self.depth += 1;
        self.line(&format!("func.func @{name}({}) attributes {{llvm.emit_c_interface}} {{", params.join(", ")));
        self.depth += 1;
        self.line("%c0 = arith.constant 0 : index");
        self.line("%c1 = arith.constant 1 : index");
        self.line("%zero = arith.constant 0.0 : f32");
        self.line("%one = arith.constant 1.0 : f32");
    }

    /// Returns and closes what [`Emitter::begin_function`] opened; yields the text.
    pub fn end_function(mut self) -> String {
        self.line("return");
        self.close();
        self.close();
        self.text
    }
}
