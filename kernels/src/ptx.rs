//! MLIR to PTX: a `gpu.module` lowered by MLIR's `gpu-lower-to-nvvm-pipeline` through
//! LLVM's NVPTX backend, with no CUDA toolkit (the driver compiles PTX to machine code
//! when it loads a module). `--emit passes` prints the pipeline.

use melior::dialect::DialectRegistry;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};

use crate::jit::JitError;

/// The pass pipeline for an architecture (`sm_90a`).
pub fn pipeline(chip: &str) -> String {
    format!("builtin.module(gpu-lower-to-nvvm-pipeline{{cubin-format=isa cubin-chip={chip} cubin-features=+ptx80}})")
}

/// The PTX of the one `gpu.module` in `mlir`.
pub fn compile(mlir: &str, chip: &str) -> Result<String, JitError> {
    static PASSES: std::sync::Once = std::sync::Once::new();
    PASSES.call_once(register_all_passes);
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = melior::Context::new_with_registry(&registry, false);
    register_all_llvm_translations(&context);
    let mut module = Module::parse(&context, mlir)
        .ok_or_else(|| JitError::Parse(mlir.lines().take(8).collect::<Vec<_>>().join("\n")))?;
    let manager = PassManager::new(&context);
    parse_pass_pipeline(manager.as_operation_pass_manager(), &pipeline(chip))
        .map_err(|e| JitError::Pipeline(e.to_string()))?;
    manager.run(&mut module).map_err(|e| JitError::Pipeline(e.to_string()))?;
    let printed = module.as_operation().to_string();
    object(&printed).ok_or_else(|| JitError::Pipeline("no PTX object in the lowered module".into()))
}

/// The object string of the first `#gpu.object<#nvvm.target<...>, ..., "PTX">` in printed
/// MLIR, unescaped: the first string after the target attribute closes.
fn object(printed: &str) -> Option<String> {
    let at = printed.find("#gpu.object<")? + "#gpu.object<".len();
    let mut depth = 0usize;
    let mut target_end = at;
    for (offset, c) in printed[at..].char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    target_end = at + offset;
                    break;
                }
            }
            _ => {}
        }
    }
    let quote = target_end + printed[target_end..].find('"')? + 1;
    let bytes = printed.as_bytes();
    let mut out = Vec::new();
    let mut i = quote;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return String::from_utf8(out).ok(),
            b'\\' => {
                let hex = printed.get(i + 1..i + 3)?;
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(bytes[i + 1]);
                        i += 2;
                    }
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    None
}
