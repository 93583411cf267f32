//! The GPU form of every kernel family: generated under [`Config::gpu`] (strided memref
//! arguments, special functions as inline PTX, a bare function), wrapped as the GPU
//! backend wraps it — a `gpu.func` per kernel that takes the leading-dim slice of each
//! argument at its block index (`memref.subview`, then `memref.cast` to the fully dynamic
//! strided type) and calls the body — and lowered with MLIR's NVVM pipeline to PTX,
//! which must call no libdevice function (`__nv_*`: nothing links libdevice). No GPU
//! and no CUDA toolkit needed: the PTX comes from LLVM's NVPTX backend.

use hyb_kernels::attention::AttentionSpec;
use hyb_kernels::emit::{Builder, Config, Scalar, Value};
use hyb_kernels::key::{KernelKey, generate, generate_with};
use hyb_kernels::pointwise::{self, Binary, Expr, MapSpec, Unary};
use hyb_kernels::scan::{Decay, ScanSpec, ScanUpdate};
use hyb_target::{Elem, Form};
use melior::Context;
use melior::dialect::DialectRegistry;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};

const GPU_PIPELINE: &str =
    "builtin.module(gpu-lower-to-nvvm-pipeline{cubin-format=isa cubin-chip=sm_90a cubin-features=+ptx80})";

/// One key of every family, and the variants that change which ops a kernel uses.
fn keys() -> Vec<KernelKey> {
    let mut keys = vec![KernelKey::Gather, KernelKey::Scatter];
    for gated in [false, true] {
        keys.push(KernelKey::RmsForward { eps: 1e-6, gated });
        keys.push(KernelKey::RmsBackward { eps: 1e-6, gated });
    }
    keys.extend([
        KernelKey::L2Forward { eps: 1e-6 },
        KernelKey::L2Backward { eps: 1e-6 },
        KernelKey::SumNormForward,
        KernelKey::SumNormBackward,
    ]);
    for bias in [false, true] {
        keys.extend([KernelKey::ConvForward { bias }, KernelKey::ConvBackward { bias }, KernelKey::ConvStep { bias }]);
    }
    keys.extend([
        KernelKey::FloorForward { layer: 2 },
        KernelKey::FloorBackward { layer: 2 },
        KernelKey::Rope { theta: 10000.0, inverse: false },
        KernelKey::Rope { theta: 10000.0, inverse: true },
        KernelKey::RopeAt { theta: 10000.0 },
    ]);
    for (update, decay, query) in [
        (ScanUpdate::Additive, Decay::None, true),
        (ScanUpdate::Additive, Decay::PerHead, false),
        (ScanUpdate::Delta, Decay::Scalar, true),
        (ScanUpdate::Delta, Decay::Vector, true),
    ] {
        let spec = ScanSpec { update, decay, q_per_state: 1, states_per_key: 1, scale: 0.125, query, dk: 16, dv: 16 };
        keys.extend([
            KernelKey::ScanTrain { spec, chunk: 16 },
            KernelKey::ScanBackward { spec, chunk: 16 },
            KernelKey::ScanStep { spec },
        ]);
    }
    for (group, window) in [(1, None), (2, Some(8))] {
        let spec = AttentionSpec { group, window, scale: 0.125, head_dim: 16 };
        keys.extend([
            KernelKey::AttentionForward { spec },
            KernelKey::AttentionBackward { spec },
            KernelKey::AttentionDecode { spec },
        ]);
    }
    // Every unary op of a fused chain, and the chain's backward.
    let unaries = [
        Unary::Neg,
        Unary::Exp,
        Unary::Log,
        Unary::Sigmoid,
        Unary::Silu,
        Unary::Softplus,
        Unary::LogSigmoid,
        Unary::Relu,
        Unary::Sqrt,
    ];
    let outputs = unaries
        .iter()
        .map(|op| {
            Expr::binary(
                Binary::Max,
                Expr::unary(*op, Expr::Input(0)),
                Expr::binary(Binary::Div, Expr::Input(1), Expr::Const(3.0)),
            )
        })
        .collect();
    let spec = MapSpec { inputs: 2, outputs };
    let backward = pointwise::backward(&spec);
    let flat = vec![false; backward.inputs];
    keys.push(KernelKey::Map { spec, broadcast: vec![false, true] });
    keys.push(KernelKey::Map { spec: backward, broadcast: flat });
    keys.extend([
        KernelKey::SumRows,
        KernelKey::Columns { src_col: 2, dst_col: 5, width: 7 },
        KernelKey::Clip,
        KernelKey::CrossEntropy,
        KernelKey::SumOfSquares,
        KernelKey::AdamW,
    ]);
    keys
}

/// The argument names and types of a bare `func.func @name(%a: T, ...) {` line.
fn arguments(function: &str) -> Vec<(String, String)> {
    let header = function.lines().next().expect("a function");
    let open = header.find('(').expect("an argument list");
    let close = header.rfind(") {").expect("the argument list's end");
    header[open + 1..close]
        .split(", %")
        .map(|arg| {
            let (name, ty) = arg.trim_start_matches('%').split_once(": ").expect("name: type");
            (name.to_string(), ty.to_string())
        })
        .collect()
}

/// The rank and element type of `memref<?x?xf32, strided<...>>`.
fn rank_and_elem(ty: &str) -> (usize, String) {
    let shape = ty.strip_prefix("memref<").expect("a memref").split(',').next().expect("a shape");
    let parts: Vec<&str> = shape.trim_end_matches('>').split('x').collect();
    (parts.len() - 1, parts[parts.len() - 1].to_string())
}

/// `gpu.func @kernel` over dense arguments: each argument's slice at the block index
/// along its leading dim, cast to the body's fully dynamic strided type, then the call.
fn wrapper(kernel: &str, body: &str, args: &[(String, String)]) -> String {
    let params: Vec<String> = args
        .iter()
        .map(|(name, ty)| {
            let (rank, elem) = rank_and_elem(ty);
            format!("%{name}: memref<{}{elem}>", "?x".repeat(rank))
        })
        .collect();
    let mut text = format!("    gpu.func @{kernel}({}) kernel {{\n", params.join(", "));
    text += "      %block = gpu.block_id x\n";
    let max_rank = args.iter().map(|(_, ty)| rank_and_elem(ty).0).max().unwrap_or(1);
    for axis in 1..max_rank {
        text += &format!("      %axis{axis} = arith.constant {axis} : index\n");
    }
    let mut operands = Vec::new();
    for (name, ty) in args {
        let (rank, elem) = rank_and_elem(ty);
        let dense = format!("memref<{}{elem}>", "?x".repeat(rank));
        let mut sizes = vec!["1".to_string()];
        for axis in 1..rank {
            text += &format!("      %{name}_d{axis} = memref.dim %{name}, %axis{axis} : {dense}\n");
            sizes.push(format!("%{name}_d{axis}"));
        }
        let offsets: Vec<&str> = std::iter::once("%block").chain(std::iter::repeat_n("0", rank - 1)).collect();
        let unit = vec!["1"; rank].join(", ");
        let strides: Vec<&str> = std::iter::repeat_n("?", rank - 1).chain(std::iter::once("1")).collect();
        let sliced = format!("memref<1x{}{elem}, strided<[{}], offset: ?>>", "?x".repeat(rank - 1), strides.join(", "));
        text += &format!(
            "      %{name}_s = memref.subview %{name}[{}] [{}] [{unit}] : {dense} to {sliced}\n",
            offsets.join(", "),
            sizes.join(", ")
        );
        text += &format!("      %{name}_v = memref.cast %{name}_s : {sliced} to {ty}\n");
        operands.push(format!("%{name}_v"));
    }
    let types: Vec<&str> = args.iter().map(|(_, ty)| ty.as_str()).collect();
    text += &format!("      func.call @{body}({}) : ({}) -> ()\n", operands.join(", "), types.join(", "));
    text += "      gpu.return\n    }\n";
    text
}

/// A `gpu.module` of the given bodies (bare functions) and their wrappers.
fn gpu_module(functions: &[(String, String)]) -> String {
    let mut text = String::from("module attributes {gpu.container_module} {\n");
    text += "  gpu.module @kernels [#nvvm.target<chip = \"sm_90a\", features = \"+ptx80\">] {\n";
    for (kernel, body_text) in functions {
        let body = format!("{kernel}_body");
        for line in body_text.lines() {
            text += &format!("    {line}\n");
        }
        text += &wrapper(kernel, &body, &arguments(body_text));
    }
    text += "  }\n}\n";
    text
}

/// The PTX of a module lowered by [`GPU_PIPELINE`]: the `gpu.binary`'s assembly, with
/// its `\XX` escapes undone.
fn lower_to_ptx(mlir: &str) -> Result<String, String> {
    static PASSES: std::sync::Once = std::sync::Once::new();
    PASSES.call_once(register_all_passes);
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new_with_registry(&registry, false);
    register_all_llvm_translations(&context);
    let mut module = Module::parse(&context, mlir).ok_or("the module does not parse")?;
    let manager = PassManager::new(&context);
    parse_pass_pipeline(manager.as_operation_pass_manager(), GPU_PIPELINE).map_err(|e| e.to_string())?;
    manager.run(&mut module).map_err(|e| e.to_string())?;
    let lowered = module.as_operation().to_string();
    let start = lowered.find("assembly = \"").ok_or("no assembly in the gpu.binary")? + "assembly = \"".len();
    let escaped = &lowered[start..];
    let end = escaped.find("\"").ok_or("the assembly does not end")?;
    Ok(unescape(&escaped[..end]))
}

/// MLIR's string escapes (`\0A`, `\09`, `\22`, `\5C`) undone.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = text.get(i + 1..i + 3).filter(|_| bytes[i] == b'\\');
        if let Some(byte) = escape.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("PTX is text")
}

/// Lowers the kernels of `keys` under `config` in one module and checks the PTX; on a
/// failure, lowers each alone to name the kernel.
fn check(keys: &[KernelKey], config: &Config) -> String {
    let functions: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let kernel = format!("k{i}_{}", key.label());
            let body = generate_with(key, config, &format!("{kernel}_body"));
            (kernel, body)
        })
        .collect();
    for ((_, body), key) in functions.iter().zip(keys) {
        assert!(body.starts_with("func.func @"), "{key}: not a bare function:\n{body}");
        assert!(!body.contains("math."), "{key}: a math op under Config::gpu:\n{body}");
    }
    let mlir = gpu_module(&functions);
    let ptx = match lower_to_ptx(&mlir) {
        Ok(ptx) => ptx,
        Err(error) => {
            for ((kernel, body), key) in functions.iter().zip(keys) {
                let single = gpu_module(&[(kernel.clone(), body.clone())]);
                if let Err(error) = lower_to_ptx(&single) {
                    panic!("{key} does not lower: {error}\n{single}");
                }
            }
            panic!("the module does not lower: {error}\n{mlir}");
        }
    };
    assert!(ptx.contains(".target sm_90a"), "{ptx}");
    for (kernel, _) in &functions {
        assert!(ptx.contains(&format!(".entry {kernel}(")), "no entry {kernel} in\n{ptx}");
    }
    if let Some(at) = ptx.find("__nv_") {
        let line = ptx[at..].lines().next().unwrap_or_default();
        panic!("the PTX calls libdevice ({line}):\n{ptx}");
    }
    ptx
}

#[test]
fn every_family_lowers_to_ptx_without_libdevice() {
    let ptx = check(&keys(), &Config::gpu(Scalar::F32));
    // The special functions are the PTX instructions themselves.
    for instruction in [
        "ex2.approx.ftz.f32",
        "lg2.approx.ftz.f32",
        "rsqrt.approx.ftz.f32",
        "sqrt.rn.f32",
        "sin.approx.ftz.f32",
        "cos.approx.ftz.f32",
        "abs.f32",
    ] {
        assert!(ptx.contains(instruction), "no {instruction} in the PTX");
    }
    if let Ok(path) = std::env::var("HYB_PTX_OUT") {
        std::fs::write(path, &ptx).expect("writes the PTX");
    }
}

/// `generate_with` under [`Config::CPU`] is `generate`'s module, for every family.
#[test]
fn generate_with_the_cpu_config_is_generate() {
    for (i, key) in keys().iter().enumerate() {
        let name = format!("k{i}");
        let module = generate(key, Form::Loops, &[], &name).expect("a loops form with f32 storage");
        assert_eq!(generate_with(key, &Config::CPU, &name), module, "{key}");
    }
}

#[test]
fn bf16_storage_lowers_to_ptx_too() {
    let x = |i| Expr::Input(i);
    let chain = MapSpec {
        inputs: 2,
        outputs: vec![Expr::binary(Binary::Mul, Expr::unary(Unary::Silu, x(0)), Expr::unary(Unary::Softplus, x(1)))],
    };
    let keys = [
        KernelKey::Map { spec: chain, broadcast: vec![false, true] },
        KernelKey::RmsForward { eps: 1e-6, gated: true },
        KernelKey::CrossEntropy,
        KernelKey::AttentionForward { spec: AttentionSpec { group: 1, window: None, scale: 0.125, head_dim: 16 } },
    ];
    check(&keys, &Config::gpu(Scalar::Bf16));
}

/// A mixed-precision signature types each argument as the program stores it: the gated
/// norm's activations bf16, its weight f32, on the GPU (to PTX with bf16 conversions)
/// and on the CPU.
#[test]
fn a_mixed_signature_types_each_argument() {
    let key = KernelKey::RmsForward { eps: 1e-6, gated: true };
    let signature = [Elem::Bf16, Elem::Bf16, Elem::F32, Elem::Bf16];
    let module = hyb_kernels::gpu::generate(&key, "k0", "sm_90a", &signature, Form::Lanes).expect("a GPU form");
    let params = hyb_kernels::gpu::params(&module, "k0_body").expect("the body's arguments");
    let elems: Vec<&str> = params.iter().map(|p| p.elem.as_str()).collect();
    assert_eq!(elems, ["bf16", "bf16", "f32", "bf16"]);
    let ptx = hyb_kernels::ptx::compile(&module, "sm_90a").expect("lowers to PTX");
    assert!(ptx.contains("cvt.rn.bf16.f32") || ptx.contains("cvt.rn.bf16x2.f32"), "stores round to bf16:\n{ptx}");
    let cpu = generate(&key, Form::Loops, &signature, "k0").expect("the CPU's form stores bf16 too");
    let head = "func.func @k0(%x: memref<?x?xbf16>, %z: memref<?x?xbf16>, %w: memref<?xf32>, %y: memref<?x?xbf16>)";
    assert!(cpu.contains(head) && cpu.contains("arith.truncf"), "{cpu}");
}

/// The special functions under [`Config::gpu`], one output each: `out[0, j] = f(x[0, j])`.
const PROBED: [&str; 12] =
    ["exp", "exp_poly", "log", "log1p", "sqrt", "rsqrt", "tanh", "abs", "floor", "sin", "cos", "fma"];

fn math_probe(config: &Config) -> String {
    let mut e = Builder::new(*config);
    let mut args = vec![("x", 2)];
    args.extend(PROBED.iter().map(|name| (*name, 2)));
    e.begin_function("probe_body", &args);
    let x = e.arg("x");
    let outputs: Vec<Value> = PROBED.iter().map(|name| e.arg(name)).collect();
    let n = e.named("n").dim(&x, 1);
    let c0 = e.c0();
    e.for_(&c0, &n, |e, j| {
        let v = e.load(&x, &[&c0, &j]);
        let results = [
            e.exp(&v),
            e.exp_polynomial(&v),
            e.log(&v),
            e.log1p(&v),
            e.sqrt(&v),
            e.rsqrt(&v),
            e.tanh(&v),
            e.abs(&v),
            e.floor(&v),
            e.sin(&v),
            e.cos(&v),
            e.fma(&v, &v, &v),
        ];
        for (result, output) in results.iter().zip(&outputs) {
            e.store(result, output, &[&c0, &j]);
        }
    });
    e.finish()
}

/// Every special function of the emitter lowers to its PTX instruction, with no
/// libdevice call. (`HYB_PTX_PROBE=path` writes the PTX, whose kernel `probe` a GPU can
/// run against references: see the report of the change that added it.)
#[test]
fn special_functions_lower_to_ptx_instructions() {
    let body = math_probe(&Config::gpu(Scalar::F32));
    assert!(!body.contains("math."), "{body}");
    let mlir = gpu_module(&[("probe".to_string(), body)]);
    let ptx = lower_to_ptx(&mlir).unwrap_or_else(|error| panic!("{error}\n{mlir}"));
    assert!(!ptx.contains("__nv_"), "{ptx}");
    for instruction in [
        "ex2.approx.ftz.f32",
        "lg2.approx.ftz.f32",
        "sqrt.rn.f32",
        "rsqrt.approx.ftz.f32",
        "abs.f32",
        "cvt.rmi.f32.f32",
        "sin.approx.ftz.f32",
        "cos.approx.ftz.f32",
        "fma.rn.f32",
        "cvt.rni.f32.f32",
    ] {
        assert!(ptx.contains(instruction), "no {instruction} in\n{ptx}");
    }
    if let Ok(path) = std::env::var("HYB_PTX_PROBE") {
        std::fs::write(path, &ptx).expect("writes the PTX");
    }
}
