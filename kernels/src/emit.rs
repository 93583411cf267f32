//! Writing MLIR text: fresh SSA names, indentation, loops and reductions — the few
//! shapes every kernel generator is made of.

use std::fmt::Write;

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
    /// products may be reassociated and contracted into FMAs ([`relaxed`]).
    pub fn op(&mut self, rhs: &str) -> String {
        if let Some(x) = rhs.strip_prefix("math.exp ").and_then(|r| r.strip_suffix(" : f32")) {
            return self.exp(x);
        }
        let name = self.fresh();
        self.line(&format!("{name} = {}", relaxed(rhs)));
        name
    }

    /// `exp(x)` in arithmetic LLVM can vectorise (libm's `expf` is a scalar call):
    /// `2^n · p(r)` with `n = ⌊x log₂e + ½⌋`, `r = x − n ln 2` (ln 2 split in two for
    /// exactness) and Cephes' degree-6 polynomial, within 2 ulp of `expf` on the clamped
    /// range `[−87.3, 88.3]` (below it the result is the smallest normal, ~1e−38, where
    /// `exp` underflows to 0). NaN propagates through the clamps.
    pub fn exp(&mut self, x: &str) -> String {
        let c = |e: &mut Emitter, v: f64| e.op(&f32_constant(v));
        let low = c(self, -87.3);
        let high = c(self, 88.3);
        let clamped_low = self.op(&format!("arith.maximumf {x}, {low} : f32"));
        let x = self.op(&format!("arith.minimumf {clamped_low}, {high} : f32"));
        let log2e = c(self, std::f64::consts::LOG2_E);
        let half = c(self, 0.5);
        let scaled = self.op(&format!("arith.mulf {x}, {log2e} : f32"));
        let shifted = self.op(&format!("arith.addf {scaled}, {half} : f32"));
        let n = self.op(&format!("math.floor {shifted} : f32"));
        let ln2_hi = c(self, 0.693359375);
        let ln2_lo = c(self, -2.12194440e-4);
        let hi = self.op(&format!("arith.mulf {n}, {ln2_hi} : f32"));
        let r0 = self.op(&format!("arith.subf {x}, {hi} : f32"));
        let lo = self.op(&format!("arith.mulf {n}, {ln2_lo} : f32"));
        let r = self.op(&format!("arith.subf {r0}, {lo} : f32"));
        let coefficients =
            [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
        let mut p = c(self, coefficients[0]);
        for coefficient in &coefficients[1..] {
            let product = self.op(&format!("arith.mulf {p}, {r} : f32"));
            let next = c(self, *coefficient);
            p = self.op(&format!("arith.addf {product}, {next} : f32"));
        }
        let r2 = self.op(&format!("arith.mulf {r}, {r} : f32"));
        let quadratic = self.op(&format!("arith.mulf {p}, {r2} : f32"));
        let linear = self.op(&format!("arith.addf {quadratic}, {r} : f32"));
        let poly = self.op(&format!("arith.addf {linear}, %one : f32"));
        // 2^n from the exponent bits.
        let n_int = self.op(&format!("arith.fptosi {n} : f32 to i32"));
        let bias = self.op("arith.constant 127 : i32");
        let biased = self.op(&format!("arith.addi {n_int}, {bias} : i32"));
        let shift = self.op("arith.constant 23 : i32");
        let bits = self.op(&format!("arith.shli {biased}, {shift} : i32"));
        let power = self.op(&format!("arith.bitcast {bits} : i32 to f32"));
        self.op(&format!("arith.mulf {poly}, {power} : f32"))
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

    /// `Σ over index in [0, bound) of a(index) · b(index)`, the factors emitted by
    /// `factors`; returns the sum's name.
    pub fn dot(&mut self, bound: &str, factors: impl FnOnce(&mut Emitter, &str) -> (String, String)) -> String {
        let result = self.fresh();
        let (index, acc) = self.open_sum(bound, &result);
        let (a, b) = factors(self, &index);
        let product = self.op(&format!("arith.mulf {a}, {b} : f32"));
        let sum = self.op(&format!("arith.addf {acc}, {product} : f32"));
        self.close_sum(&sum);
        result
    }

    pub fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }
}

/// `arith.{add,sub,mul}f … : f32` with `fastmath<reassoc,contract>`: LLVM may then
/// vectorise reductions and fuse multiply-adds. No `nnan`/`ninf`: NaNs must propagate
/// and the folds for a maximum start at −∞.
pub fn relaxed(rhs: &str) -> std::borrow::Cow<'_, str> {
    let float_arith = ["arith.addf ", "arith.subf ", "arith.mulf "].iter().any(|op| rhs.starts_with(op));
    match rhs.strip_suffix(" : f32") {
        Some(head) if float_arith => format!("{head} fastmath<reassoc,contract> : f32").into(),
        _ => rhs.into(),
    }
}

pub fn ty(rank: usize) -> String {
    format!("memref<{}f32>", "?x".repeat(rank))
}

pub const T3: &str = "memref<?x?x?xf32>";
pub const T4: &str = "memref<?x?x?x?xf32>";
pub const T5: &str = "memref<?x?x?x?x?xf32>";

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

/// Function parameters `%name: memref<?x…xf32>` for `(name, rank)` pairs.
pub fn memref_params(args: &[(&str, usize)]) -> Vec<String> {
    args.iter().map(|(arg, rank)| format!("%{arg}: {}", ty(*rank))).collect()
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
