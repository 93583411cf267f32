//! Compile time of a model to runnable kernels: parse, check, graph, autodiff, buffer
//! plan and kernel plan, then MLIR generation and JIT compilation (through LLVM) of
//! every distinct kernel — the generated ones (scan, attention, RoPE) and the fused
//! chains.
//! The goal is under a second for the largest example. Run:
//! `cargo bench -p hyb-lower --bench compile`.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

fn compile(path: &Path) -> usize {
    let compilation = hyb_compiler::pipeline::check_path(path).expect("readable");
    let model = compilation.model().expect("checks");
    let graph = hyb_compiler::graph::build::build(model);
    let grad = hyb_compiler::grad::differentiate(model, graph.clone());
    let _plan = hyb_compiler::plan::plan(&grad, 8, 256);
    let mut modules: Vec<String> = hyb_lower::kernels(&graph).into_iter().map(|k| k.mlir).collect();
    for step in hyb_lower::fuse::training_plan(&grad) {
        match step {
            hyb_lower::fuse::Step::Fused { spec, .. } => modules.push(hyb_kernels::pointwise::generate(&spec, "chain")),
            hyb_lower::fuse::Step::Broadcast { spec, broadcast, .. } => {
                modules.push(hyb_kernels::pointwise::generate_broadcast(&spec, &broadcast, "chain"))
            }
            _ => {}
        }
    }
    modules.sort();
    modules.dedup();
    for module in &modules {
        hyb_kernels::jit::compile(module).expect("compiles");
    }
    modules.len()
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for example in
        ["examples/paper/gdn_r3.hyb", "examples/routing/gdn_attn_heads.hyb", "examples/tiny/mqar_gdn_3to1.hyb"]
    {
        let path = root.join(example);
        let kernels = compile(&path);
        group.bench_function(format!("{example} ({kernels} kernels)"), |b| b.iter(|| compile(&path)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
