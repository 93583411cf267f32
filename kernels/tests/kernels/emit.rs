//! The typed emitter: types come from the values, the flags choose fast-math and `exp`,
//! and the element types are a parameter — a generator asked for bf16 storage with f32
//! arithmetic emits MLIR that the CPU pipeline lowers and runs (loads extend, stores
//! truncate).

use hyb_kernels::emit::{Builder, Cmp, Config, ElemTypes, ExpImpl, FastMath, Flags, MathImpl, Scalar};
use hyb_kernels::jit::{self, AsDescriptor, MemRef, RawDescriptor};
use hyb_kernels::pointwise::{self, Binary, Expr, MapSpec, Unary};
use hyb_kernels::scan::{self, Decay, ScanSpec, ScanUpdate};

/// `out[i] = max(x[i], 0) · scale` for `i < n`, and `count[0]` the number of positive x.
fn small_kernel(config: Config) -> String {
    let mut e = Builder::new(config);
    e.begin_function("k", &[("x", 1), ("out", 1), ("count", 1)]);
    let (x, out, count) = (e.arg("x"), e.arg("out"), e.arg("count"));
    let n = e.named("n").dim(&x, 0);
    let scale = e.named("scale").constant(0.5);
    let c0 = e.c0();
    let zero = e.zero();
    let positives = e.fold1(&c0, &n, &zero, |e, i, total| {
        let value = e.load(&x, &[&i]);
        let zero = e.zero();
        let relu = e.max(&value, &zero);
        let scaled = e.mul(&relu, &scale);
        e.store(&scaled, &out, &[&i]);
        let positive = e.cmp(Cmp::Gt, &value, &zero);
        let (one, zero) = (e.one(), e.zero());
        let step = e.select(&positive, &one, &zero);
        e.add(&total, &step)
    });
    e.store(&positives, &count, &[&c0]);
    e.finish()
}

fn run_small_kernel(text: &str, x: &[f32]) -> (Vec<f32>, f32) {
    let compiled = jit::compile(text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let mut input = MemRef::new([x.len()], x.to_vec());
    let mut out = MemRef::zeros([x.len()]);
    let mut count = MemRef::zeros([1]);
    // SAFETY: x and out hold n elements, count one.
    unsafe { compiled.call("k", &mut [&mut input as &mut dyn AsDescriptor, &mut out, &mut count]) }.expect("runs");
    (out.data, count.data[0])
}

#[test]
fn ops_take_their_types_from_their_values() {
    let text = small_kernel(Config::CPU);
    for line in [
        "func.func @k(%x: memref<?xf32>, %out: memref<?xf32>, %count: memref<?xf32>)",
        "%n = memref.dim %x, %c0 : memref<?xf32>",
        "%scale = arith.constant 0x3F000000 : f32 // 0.5",
        "= scf.for %v2 = %c0 to %n step %c1 iter_args(%v3 = %zero) -> (f32) {",
        "memref.load %x[%v2] : memref<?xf32>",
        "arith.maximumf %v4, %zero : f32",
        "arith.mulf %v5, %scale fastmath<reassoc,contract> : f32",
        "memref.store %v6, %out[%v2] : memref<?xf32>",
        "arith.cmpf ogt, %v4, %zero : f32",
        "arith.select %v7, %one, %zero : f32",
        "scf.yield %v9 : f32",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    let (out, count) = run_small_kernel(&text, &[-1.0, 2.0, 0.0, 3.0]);
    assert_eq!(out, [0.0, 1.0, 0.0, 1.5]);
    assert_eq!(count, 2.0);
}

#[test]
fn flags_choose_fastmath_and_exp() {
    let strict = Config {
        flags: Flags { fastmath: FastMath::Strict, exp: ExpImpl::MathDialect, math: MathImpl::Cpu },
        ..Config::CPU
    };
    let text = small_kernel(strict);
    assert!(!text.contains("fastmath"), "{text}");
    let spec = MapSpec { inputs: 1, outputs: vec![Expr::unary(Unary::Silu, Expr::Input(0))] };
    let polynomial = pointwise::generate_with(&spec, &[false], "map", &Config::CPU);
    let math = pointwise::generate_with(&spec, &[false], "map", &strict);
    assert!(!polynomial.contains("math.exp") && polynomial.contains("math.floor"), "{polynomial}");
    assert!(math.contains("math.exp %v3 : f32") && !math.contains("fastmath"), "{math}");
    // Both compute silu; the polynomial is within a few ulp of libm's expf.
    let x: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 4.0).collect();
    let run = |text: &str| {
        let compiled = jit::compile(text).unwrap_or_else(|error| panic!("{error}\n{text}"));
        let mut input = MemRef::new([x.len()], x.clone());
        let mut out = MemRef::zeros([x.len()]);
        // SAFETY: both buffers hold x.len() elements.
        unsafe { compiled.call("map", &mut [&mut input as &mut dyn AsDescriptor, &mut out]) }.expect("runs");
        out.data
    };
    for ((a, b), x) in run(&polynomial).iter().zip(run(&math)).zip(&x) {
        let want = *x as f64 / (1.0 + (-*x as f64).exp());
        assert!((*a as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "polynomial silu({x}) = {a}, want {want}");
        assert!((b as f64 - want).abs() <= 1e-6 * want.abs().max(1.0), "math.exp silu({x}) = {b}, want {want}");
    }
}

const BF16: Config = Config { types: ElemTypes::BF16_STORAGE, ..Config::CPU };

fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// A fused chain with bf16 inputs and outputs: each load extends to f32, the arithmetic
/// is f32, each store truncates; the result is the f32 result rounded to bf16.
#[test]
fn bf16_storage_chain_lowers_and_runs() {
    let x = |i| Expr::Input(i);
    let spec = MapSpec {
        inputs: 2,
        outputs: vec![Expr::binary(
            Binary::Mul,
            Expr::unary(Unary::Silu, x(0)),
            Expr::binary(Binary::Add, x(1), Expr::Const(0.25)),
        )],
    };
    let text = pointwise::generate_with(&spec, &[false, true], "map", &BF16);
    for line in [
        "%in0: memref<?xbf16>",
        "%out0: memref<?xbf16>",
        ": memref<?xbf16>\n",
        "arith.extf",
        "arith.truncf",
        "arith.constant 0x3E800000 : f32 // 0.25",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    let compiled = jit::compile(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let (rows, width) = (5, 4);
    let a: Vec<u16> = (0..rows * width).map(|i| to_bf16((i as f32 - 9.0) / 3.0)).collect();
    let b: Vec<u16> = (0..width).map(|i| to_bf16(i as f32 * 0.75 - 1.0)).collect();
    let mut out = vec![0u16; rows * width];
    let mut descriptors = [
        RawDescriptor::new(a.as_ptr() as *mut u16, &[a.len()]),
        RawDescriptor::new(b.as_ptr() as *mut u16, &[b.len()]),
        RawDescriptor::new(out.as_mut_ptr(), &[out.len()]),
    ];
    let mut pointers: Vec<*mut ()> = descriptors.iter_mut().map(|d| d.as_ptr()).collect();
    let entry = compiled.entry("map").expect("the function");
    // SAFETY: the descriptors describe the three live buffers; the kernel writes only out.
    unsafe { entry.call(&mut pointers) };
    for (k, got) in out.iter().enumerate() {
        let (a, b) = (from_bf16(a[k]) as f64, from_bf16(b[k % width]) as f64);
        let want = a / (1.0 + (-a).exp()) * (b + 0.25);
        let got = from_bf16(*got) as f64;
        assert!((got - want).abs() <= 1e-2 * want.abs().max(1e-2), "out[{k}] = {got}, want {want}");
    }
}

/// The scan with bf16 tensors and f32 scratch lowers on the CPU too.
#[test]
fn bf16_storage_scan_lowers() {
    let spec = ScanSpec {
        update: ScanUpdate::Delta,
        decay: Decay::Vector,
        q_per_state: 2,
        states_per_key: 1,
        scale: 0.5,
        query: true,
        dk: 8,
        dv: 8,
    };
    let text = scan::forward_with(&spec, "scan", &BF16);
    assert!(text.contains("%state: memref<?x?x?x?xbf16>") && text.contains("%u = memref.alloca(%DV) : memref<?xf32>"));
    assert!(!text.contains("xf32>, %"), "every argument is bf16:\n{text}");
    jit::compile(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
}

/// A generator's f32 text is the same under `Config::CPU` whether asked through the
/// configurable entry point or the plain one.
#[test]
fn the_plain_generators_use_the_cpu_config() {
    let spec = MapSpec { inputs: 1, outputs: vec![Expr::unary(Unary::Exp, Expr::Input(0))] };
    assert_eq!(pointwise::generate(&spec, "m"), pointwise::generate_with(&spec, &[false], "m", &Config::CPU));
    let spec = ScanSpec {
        update: ScanUpdate::Additive,
        decay: Decay::Scalar,
        q_per_state: 1,
        states_per_key: 1,
        scale: 1.0,
        query: true,
        dk: 8,
        dv: 8,
    };
    assert_eq!(scan::forward(&spec, "s"), scan::forward_with(&spec, "s", &Config::CPU));
}

/// `out = [Σ x[i], Σ i·x[i]]` over `i ∈ [from, n)` by [`Builder::fold_sums`] in `ways`
/// partial sums.
fn split_sums_kernel(ways: u64, from: u64) -> String {
    let mut e = Builder::new(Config::CPU);
    e.begin_function("k", &[("x", 1), ("out", 1)]);
    let (x, out) = (e.arg("x"), e.arg("out"));
    let n = e.named("n").dim(&x, 0);
    let start = e.constant_index(from);
    let sums = e.fold_sums(&start, &n, ways, 2, |e, i, carried| {
        let value = e.load(&x, &[i]);
        let wide = e.index_cast(i, Scalar::I64);
        let position = e.sitofp(&wide, Scalar::F32);
        let weighted = e.mul(&position, &value);
        vec![e.add(&carried[0], &value), e.add(&carried[1], &weighted)]
    });
    let c0 = e.c0();
    let c1 = e.c1();
    e.store(&sums[0], &out, &[&c0]);
    e.store(&sums[1], &out, &[&c1]);
    e.finish()
}

/// Split sums give the plain sums (whole numbers, so exactly) for every count of terms
/// around the group size — none, fewer than a group, whole groups, a remainder — and a
/// start past 0; the poisoned output is overwritten.
#[test]
fn split_sums_add_every_term_once() {
    for ways in [1, 2, 3, 4] {
        for from in [0, 1] {
            let text = split_sums_kernel(ways, from);
            let compiled = jit::compile(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
            for n in from as usize..11 {
                let x: Vec<f32> = (0..n).map(|i| (3 * i + 1) as f32).collect();
                let from = from as usize;
                let expected = [x[from..].iter().sum::<f32>(), (from..n).map(|i| i as f32 * x[i]).sum::<f32>()];
                let mut input = MemRef::new([n], x.clone());
                let mut out = MemRef::new([2], vec![f32::NAN; 2]);
                // SAFETY: x holds n elements, out two.
                unsafe { compiled.call("k", &mut [&mut input as &mut dyn AsDescriptor, &mut out]) }.expect("runs");
                assert_eq!(out.data, expected, "{ways} ways from {from} over {n} terms");
            }
        }
    }
}
