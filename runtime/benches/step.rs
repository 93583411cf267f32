//! The runtime's two figures (criterion):
//! - `compile`: a model to a runnable program — parse, check, graph, autodiff, buffer
//!   plan, kernel plan, MLIR generation and JIT compilation of every kernel — for the
//!   largest example and the tiny hybrid. Goal: under 1 s.
//! - `step`: one training step (forward, backward, clipping, AdamW) of the tiny 3:1 GDN
//!   hybrid (d_model 128, 4 layers) at batch 8 × 256 tokens, in tokens/s. PyTorch
//!   eager's figure for the same model comes from `bench/cpu/torch_step.py`; run both
//!   with `bench/cpu/compare.sh`.
//! - `decode`: one token of generation (every mixer's step, the KV cache read up to the
//!   position) for the same model at batch 1, halfway through a 512-token decoder.
//!
//! `cargo bench -p hyb-runtime --bench step`

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hyb_runtime::{AdamW, Batch, Trainer};

fn model(example: &str) -> hyb_compiler::ir::Model {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let compilation = hyb_compiler::pipeline::check_path(&root.join(example)).expect("readable");
    compilation.model().expect("checks").clone()
}

/// Front end to JIT-compiled kernels through the driver; memory is not allocated.
fn compile(path: &Path) -> usize {
    use hyb_runtime::device::Device;
    let compilation = hyb_compiler::pipeline::check_path(path).expect("readable");
    let model = compilation.model().expect("checks");
    let shape = hyb_driver::Shape::Train { batch: 8, seq_len: 256 };
    let build = hyb_driver::compile(model, hyb_driver::Target::Cpu, shape).expect("supported");
    hyb_runtime::cpu::Cpu::clear_cache();
    hyb_runtime::cpu::Cpu::new().load(&build.modules).expect("compiles");
    build.program.kernels.len()
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

    let (batch, seq_len) = (8, 256);
    let model = model("examples/tiny/mqar_gdn_3to1.hyb");
    let mut trainer = Trainer::new(&model, batch, seq_len).expect("compiles");
    trainer.init_params(0);
    let adamw = AdamW::of(&model);
    let tokens: Vec<i32> = (0..batch * seq_len).map(|i| ((i * 7919) % model.config.vocab as usize) as i32).collect();
    let targets = Batch::next_token_targets(&tokens, seq_len);
    let batch_inputs = Batch { tokens: &tokens, targets: &targets };
    let mut group = c.benchmark_group("step");
    group.sample_size(10);
    group.throughput(Throughput::Elements((batch * seq_len) as u64));
    group.bench_function("tiny gdn 3:1, d128, 4 layers, 8 × 256", |b| {
        b.iter(|| trainer.step(&batch_inputs, &adamw, adamw.lr).expect("runs"))
    });
    group.finish();

    let mut decoder = trainer.decoder(1, 512).expect("compiles");
    let mut group = c.benchmark_group("decode");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    group.bench_function("tiny gdn 3:1, d128, 4 layers, batch 1, from position 256", |b| {
        b.iter_custom(|iterations| {
            let mut timed = std::time::Duration::ZERO;
            for _ in 0..iterations {
                decoder.reset();
                for t in 0..256 {
                    decoder.step(&[t % 64]).expect("decodes");
                }
                let started = std::time::Instant::now();
                decoder.step(&[7]).expect("decodes");
                timed += started.elapsed();
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
