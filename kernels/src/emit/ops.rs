//! Arithmetic and math on typed values. The op and its type come from the operands:
//! `add` on floats is `arith.addf`, on integers and indices `arith.addi`. Fast-math flags
//! and the way `exp` is computed come from the builder's [`Flags`](super::Flags).
//! Integer division, remainders, minima and comparisons of indices are unsigned; of
//! `i32` and `i64`, signed; float comparisons are ordered (false on NaN).

use super::builder::Builder;
use super::types::{ExpImpl, FastMath, MathImpl, Scalar, Ty, Value};

/// A comparison's predicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn predicate(self, ty: Scalar) -> &'static str {
        match ty {
            Scalar::F32 | Scalar::Bf16 => match self {
                Cmp::Eq => "oeq",
                Cmp::Ne => "one",
                Cmp::Lt => "olt",
                Cmp::Le => "ole",
                Cmp::Gt => "ogt",
                Cmp::Ge => "oge",
            },
            Scalar::Index | Scalar::I1 => match self {
                Cmp::Eq => "eq",
                Cmp::Ne => "ne",
                Cmp::Lt => "ult",
                Cmp::Le => "ule",
                Cmp::Gt => "ugt",
                Cmp::Ge => "uge",
            },
            Scalar::I32 | Scalar::I64 => match self {
                Cmp::Eq => "eq",
                Cmp::Ne => "ne",
                Cmp::Lt => "slt",
                Cmp::Le => "sle",
                Cmp::Gt => "sgt",
                Cmp::Ge => "sge",
            },
        }
    }
}

/// The float, unsigned or signed form of an op, as the type asks: indices and booleans
/// are unsigned, `i32` and `i64` signed.
fn by_kind(ty: Scalar, [float, unsigned, signed]: [&'static str; 3]) -> &'static str {
    match ty {
        Scalar::F32 | Scalar::Bf16 => float,
        Scalar::Index | Scalar::I1 => unsigned,
        Scalar::I32 | Scalar::I64 => signed,
    }
}

impl Builder {
    /// The fast-math attribute float adds, subtractions and products carry, with its
    /// leading space.
    fn fastmath(&self) -> &'static str {
        match self.config.flags.fastmath {
            FastMath::Strict => "",
            FastMath::ReassocContract => " fastmath<reassoc,contract>",
        }
    }

    /// The type two operands share; operands of two types are a generator bug.
    fn common(a: &Value, b: &Value) -> Scalar {
        assert_eq!(a.ty(), b.ty(), "{a} and {b} have different types");
        a.scalar()
    }

    /// `op a, b` with the given fast-math attribute.
    fn binary(&mut self, op: &str, a: &Value, b: &Value, flags: &str) -> Value {
        let ty = Builder::common(a, b);
        self.define_scalar(&format!("arith.{op} {a}, {b}{flags} : {}", ty.mlir()), ty)
    }

    /// `op a, b`: the float op (with the fast-math flags) or the integer one.
    fn arith(&mut self, float_op: &str, int_op: &str, a: &Value, b: &Value) -> Value {
        if Builder::common(a, b).is_float() {
            let flags = self.fastmath();
            self.binary(float_op, a, b, flags)
        } else {
            self.binary(int_op, a, b, "")
        }
    }

    pub fn add(&mut self, a: &Value, b: &Value) -> Value {
        self.arith("addf", "addi", a, b)
    }

    pub fn sub(&mut self, a: &Value, b: &Value) -> Value {
        self.arith("subf", "subi", a, b)
    }

    pub fn mul(&mut self, a: &Value, b: &Value) -> Value {
        self.arith("mulf", "muli", a, b)
    }

    /// Float division.
    pub fn div(&mut self, a: &Value, b: &Value) -> Value {
        assert!(Builder::common(a, b).is_float(), "div is for floats; use divui for indices");
        self.binary("divf", a, b, "")
    }

    /// Unsigned integer division, rounding down.
    pub fn divui(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("divui", a, b, "")
    }

    /// Unsigned integer division, rounding up.
    pub fn ceildivui(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("ceildivui", a, b, "")
    }

    /// The unsigned remainder.
    pub fn remui(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("remui", a, b, "")
    }

    /// The larger; for floats NaN if either is (`arith.maximumf`).
    pub fn max(&mut self, a: &Value, b: &Value) -> Value {
        let op = by_kind(Builder::common(a, b), ["maximumf", "maxui", "maxsi"]);
        self.binary(op, a, b, "")
    }

    /// The smaller; for floats NaN if either is (`arith.minimumf`).
    pub fn min(&mut self, a: &Value, b: &Value) -> Value {
        let op = by_kind(Builder::common(a, b), ["minimumf", "minui", "minsi"]);
        self.binary(op, a, b, "")
    }

    /// Both booleans (or the bits of both integers).
    pub fn and(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("andi", a, b, "")
    }

    /// Either boolean (or the bits of either integer).
    pub fn or(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("ori", a, b, "")
    }

    /// `a << b`.
    pub fn shl(&mut self, a: &Value, b: &Value) -> Value {
        self.binary("shli", a, b, "")
    }

    pub fn cmp(&mut self, predicate: Cmp, a: &Value, b: &Value) -> Value {
        let ty = Builder::common(a, b);
        let op = if ty.is_float() { "cmpf" } else { "cmpi" };
        let rhs = format!("arith.{op} {}, {a}, {b} : {}", predicate.predicate(ty), ty.mlir());
        self.define_scalar(&rhs, Scalar::I1)
    }

    /// `condition ? a : b`.
    pub fn select(&mut self, condition: &Value, a: &Value, b: &Value) -> Value {
        assert_eq!(condition.ty(), Ty::Scalar(Scalar::I1), "{condition} is not a boolean");
        let ty = Builder::common(a, b);
        self.define_scalar(&format!("arith.select {condition}, {a}, {b} : {}", ty.mlir()), ty)
    }

    pub fn neg(&mut self, x: &Value) -> Value {
        let ty = x.scalar();
        self.define_scalar(&format!("arith.negf {x} : {}", ty.mlir()), ty)
    }

    /// `a · b + c`, rounded once.
    pub fn fma(&mut self, a: &Value, b: &Value, c: &Value) -> Value {
        let ty = Builder::common(a, b);
        Builder::common(b, c);
        if self.config.flags.math == MathImpl::Ptx {
            return self.inline_ptx("fma.rn.f32", &[a, b, c]);
        }
        self.define_scalar(&format!("math.fma {a}, {b}, {c} : {}", ty.mlir()), ty)
    }

    /// A one-operand op of the math dialect.
    fn math(&mut self, op: &str, x: &Value) -> Value {
        let ty = x.scalar();
        assert!(ty.is_float(), "math.{op} of {x}, not a float");
        self.define_scalar(&format!("math.{op} {x} : {}", ty.mlir()), ty)
    }

    /// A special function: `math.{op}`, or under [`MathImpl::Ptx`] the PTX instruction
    /// `ptx` (an f32 instruction with one operand).
    fn special(&mut self, op: &str, ptx: &str, x: &Value) -> Value {
        match self.config.flags.math {
            MathImpl::Cpu => self.math(op, x),
            MathImpl::Ptx => self.inline_ptx(ptx, &[x]),
        }
    }

    /// `instruction $0, $1, ...;` as NVVM inline PTX on f32 operands, giving an f32:
    /// operands of another float type are extended to f32 and the result truncated back.
    /// A name given by [`Builder::named`] goes to the result.
    pub fn inline_ptx(&mut self, instruction: &str, operands: &[&Value]) -> Value {
        let ty = operands[0].scalar();
        assert!(ty.is_float(), "inline PTX `{instruction}` of {}, not a float", operands[0]);
        let name = self.pending_name.take();
        let widened: Vec<Value> = operands
            .iter()
            .map(|x| {
                assert_eq!(x.scalar(), ty, "inline PTX `{instruction}`: operands of two types");
                if ty == Scalar::F32 { (*x).clone() } else { self.extf(x, Scalar::F32) }
            })
            .collect();
        let places: Vec<String> = (0..=operands.len()).map(|i| format!("${i}")).collect();
        let names: Vec<&str> = widened.iter().map(|x| x.name()).collect();
        let types = vec!["f32"; operands.len()].join(", ");
        let rhs = format!(
            "nvvm.inline_ptx \"{instruction} {};\" ro({} : {types}) -> f32",
            places.join(", "),
            names.join(", ")
        );
        if ty == Scalar::F32 {
            self.pending_name = name;
            return self.define_scalar(&rhs, Scalar::F32);
        }
        let result = self.define_scalar(&rhs, Scalar::F32);
        self.pending_name = name;
        self.truncf(&result, ty)
    }

    /// The natural logarithm (under [`MathImpl::Ptx`]: `lg2.approx(x) · ln 2`).
    pub fn log(&mut self, x: &Value) -> Value {
        if self.config.flags.math == MathImpl::Cpu {
            return self.math("log", x);
        }
        let name = self.pending_name.take();
        let log2 = self.inline_ptx("lg2.approx.ftz.f32", &[x]);
        let ln2 = self.constant_f(std::f64::consts::LN_2, x.scalar());
        self.pending_name = name;
        self.mul(&log2, &ln2)
    }

    /// `log(1 + x)`, accurate for small x. Under [`MathImpl::Ptx`] (where `lg2.approx`
    /// is accurate in absolute, not relative, terms near 1): for `|x| < 0.4` the series
    /// `2 atanh(s) = 2 (s + s³/3 + … + s¹¹/11)` of `s = x / (2 + x)` (truncated below
    /// 5e−9 relative), else `log(1 + x)`.
    pub fn log1p(&mut self, x: &Value) -> Value {
        if self.config.flags.math == MathImpl::Cpu {
            return self.math("log1p", x);
        }
        let name = self.pending_name.take();
        let ty = x.scalar();
        let magnitude = self.abs(x);
        let bound = self.constant_f(0.4, ty);
        let small = self.cmp(Cmp::Lt, &magnitude, &bound);
        let two = self.constant_f(2.0, ty);
        let denominator = self.add(&two, x);
        let s = self.div(x, &denominator);
        let s2 = self.mul(&s, &s);
        let q = self.horner(&s2, &[1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0]);
        let q = self.mul(&q, &s2);
        let twice = self.add(&s, &s);
        let correction = self.mul(&twice, &q);
        let series = self.add(&twice, &correction);
        let one = self.constant_f(1.0, ty);
        let u = self.add(&one, x);
        let log_u = self.log(&u);
        self.pending_name = name;
        self.select(&small, &series, &log_u)
    }

    /// `c₀ yⁿ⁻¹ + c₁ yⁿ⁻² + … + cₙ₋₁` by Horner's rule.
    fn horner(&mut self, y: &Value, coefficients: &[f64]) -> Value {
        let ty = y.scalar();
        let mut p = self.constant_f(coefficients[0], ty);
        for coefficient in &coefficients[1..] {
            let product = self.mul(&p, y);
            let next = self.constant_f(*coefficient, ty);
            p = self.add(&product, &next);
        }
        p
    }

    /// The square root (under [`MathImpl::Ptx`]: `sqrt.rn`, correctly rounded).
    pub fn sqrt(&mut self, x: &Value) -> Value {
        self.special("sqrt", "sqrt.rn.f32", x)
    }

    /// `1 / sqrt(x)`.
    pub fn rsqrt(&mut self, x: &Value) -> Value {
        self.special("rsqrt", "rsqrt.approx.ftz.f32", x)
    }

    /// The hyperbolic tangent. Under [`MathImpl::Ptx`]: for `|x| < 0.3` its Taylor
    /// series to `x¹¹`, else `(e²ˣ − 1) / (e²ˣ + 1)` with x clamped to `[−9, 9]` (where
    /// tanh is ±1 in f32).
    pub fn tanh(&mut self, x: &Value) -> Value {
        if self.config.flags.math == MathImpl::Cpu {
            return self.math("tanh", x);
        }
        let name = self.pending_name.take();
        let ty = x.scalar();
        let magnitude = self.abs(x);
        let bound = self.constant_f(0.3, ty);
        let small = self.cmp(Cmp::Lt, &magnitude, &bound);
        let x2 = self.mul(x, x);
        let coefficients = [-1382.0 / 155925.0, 62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0];
        let p = self.horner(&x2, &coefficients);
        let x3 = self.mul(x, &x2);
        let tail = self.mul(&x3, &p);
        let series = self.add(x, &tail);
        let (low, high) = (self.constant_f(-9.0, ty), self.constant_f(9.0, ty));
        let above = self.max(x, &low);
        let clamped = self.min(&above, &high);
        let twice = self.add(&clamped, &clamped);
        let e2x = self.exp(&twice);
        let one = self.constant_f(1.0, ty);
        let numerator = self.sub(&e2x, &one);
        let denominator = self.add(&e2x, &one);
        let ratio = self.div(&numerator, &denominator);
        self.pending_name = name;
        self.select(&small, &series, &ratio)
    }

    pub fn abs(&mut self, x: &Value) -> Value {
        self.special("absf", "abs.f32", x)
    }

    /// Rounding toward −∞ (under [`MathImpl::Ptx`]: `cvt.rmi`).
    pub fn floor(&mut self, x: &Value) -> Value {
        self.special("floor", "cvt.rmi.f32.f32", x)
    }

    /// The sine. Under [`MathImpl::Ptx`]: `sin.approx` of the angle reduced to
    /// `[−π, π]` ([`Builder::reduce_angle`]), within ~1e−6 of the sine of the f32 angle
    /// at any angle a rotary embedding uses (`sin.approx` alone loses ~|x|·2⁻²⁴).
    pub fn sin(&mut self, x: &Value) -> Value {
        self.periodic("sin", x)
    }

    /// The cosine, as [`Builder::sin`].
    pub fn cos(&mut self, x: &Value) -> Value {
        self.periodic("cos", x)
    }

    fn periodic(&mut self, op: &str, x: &Value) -> Value {
        if self.config.flags.math == MathImpl::Cpu {
            return self.math(op, x);
        }
        let name = self.pending_name.take();
        let reduced = self.reduce_angle(x);
        self.pending_name = name;
        self.inline_ptx(&format!("{op}.approx.ftz.f32"), &[&reduced])
    }

    /// `x − 2πk` with `k = rint(x / 2π)`: 2π in two f32 parts, each product subtracted
    /// by a fused multiply-add (Cody and Waite), so the reduction adds ~2 ulp of π.
    /// ±∞ and NaN give NaN.
    fn reduce_angle(&mut self, x: &Value) -> Value {
        let ty = x.scalar();
        let tau = std::f64::consts::TAU;
        let tau_hi = tau as f32 as f64;
        let inverse = self.constant_f(1.0 / tau, ty);
        let turns = self.mul(x, &inverse);
        let k = self.inline_ptx("cvt.rni.f32.f32", &[&turns]);
        let minus_k = self.neg(&k);
        let hi = self.constant_f(tau_hi, ty);
        let lo = self.constant_f(tau - tau_hi, ty);
        let partial = self.fma(&minus_k, &hi, x);
        self.fma(&minus_k, &lo, &partial)
    }

    /// `eˣ`, as [`Flags::exp`](super::Flags::exp) chooses: the polynomial of
    /// [`Builder::exp_polynomial`] for f32; else `math.exp`, or under [`MathImpl::Ptx`]
    /// `ex2.approx(x · log₂e)` (NaN stays NaN, −∞ gives 0, +∞ gives +∞).
    pub fn exp(&mut self, x: &Value) -> Value {
        let polynomial = self.config.flags.exp == ExpImpl::Polynomial;
        if polynomial && x.scalar() == Scalar::F32 && self.compute() == Scalar::F32 {
            return self.exp_polynomial(x);
        }
        if self.config.flags.math == MathImpl::Cpu {
            return self.math("exp", x);
        }
        let name = self.pending_name.take();
        let log2e = self.constant_f(std::f64::consts::LOG2_E, x.scalar());
        let scaled = self.mul(x, &log2e);
        self.pending_name = name;
        self.inline_ptx("ex2.approx.ftz.f32", &[&scaled])
    }

    /// `exp(x)` in arithmetic LLVM can vectorise (libm's `expf` is a scalar call):
    /// `2^n · p(r)` with `n = ⌊x log₂e + ½⌋`, `r = x − n ln 2` (ln 2 split in two for
    /// exactness) and Cephes' degree-6 polynomial, within 2 ulp of `expf` on the clamped
    /// range `[−87.3, 88.3]` (below it the result is the smallest normal, ~1e−38, where
    /// `exp` underflows to 0). NaN propagates through the clamps. f32 only.
    pub fn exp_polynomial(&mut self, x: &Value) -> Value {
        self.assert_unnamed("exp");
        assert_eq!(x.scalar(), Scalar::F32, "the polynomial exp is for f32");
        let f32_constant = |e: &mut Builder, value: f64| e.constant_f(value, Scalar::F32);
        let low = f32_constant(self, -87.3);
        let high = f32_constant(self, 88.3);
        let clamped_low = self.max(x, &low);
        let x = self.min(&clamped_low, &high);
        let log2e = f32_constant(self, std::f64::consts::LOG2_E);
        let half = f32_constant(self, 0.5);
        let scaled = self.mul(&x, &log2e);
        let shifted = self.add(&scaled, &half);
        let n = self.floor(&shifted);
        let ln2_hi = f32_constant(self, 0.693359375);
        let ln2_lo = f32_constant(self, -2.12194440e-4);
        let hi = self.mul(&n, &ln2_hi);
        let r0 = self.sub(&x, &hi);
        let lo = self.mul(&n, &ln2_lo);
        let r = self.sub(&r0, &lo);
        let coefficients =
            [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
        let mut p = f32_constant(self, coefficients[0]);
        for coefficient in &coefficients[1..] {
            let product = self.mul(&p, &r);
            let next = f32_constant(self, *coefficient);
            p = self.add(&product, &next);
        }
        let r2 = self.mul(&r, &r);
        let quadratic = self.mul(&p, &r2);
        let linear = self.add(&quadratic, &r);
        let one = self.one();
        let poly = self.add(&linear, &one);
        // 2^n from the exponent bits.
        let n_int = self.fptosi(&n, Scalar::I32);
        let bias = self.constant_int(127, Scalar::I32);
        let biased = self.add(&n_int, &bias);
        let shift = self.constant_int(23, Scalar::I32);
        let bits = self.shl(&biased, &shift);
        let power = self.bitcast(&bits, Scalar::F32);
        self.mul(&poly, &power)
    }
}
