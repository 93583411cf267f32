//! What must stay out of a step's profile: generating a batch of synthetic data and
//! writing a checkpoint, against the step they accompany (criterion).
//!
//! `cargo bench -p hyb-train --bench io`

use criterion::{Criterion, criterion_group, criterion_main};
use hyb_runtime::Trainer;
use hyb_train::data::{Mqar, Task};

fn model() -> hyb_compiler::ir::Model {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let compilation =
        hyb_compiler::pipeline::check_path(&root.join("examples/tiny/mqar_gdn_3to1.hyb")).expect("readable");
    compilation.model().expect("checks").clone()
}

fn bench(c: &mut Criterion) {
    let task = Mqar::new(512, 128, 16, 0.01);
    let mut group = c.benchmark_group("io");
    group.sample_size(20);
    group.bench_function("mqar batch 32 × 128 (16 pairs)", |b| b.iter(|| task.batch(0, 7, 32)));
    let model = model();
    let mut trainer = Trainer::new(&model, 32, 128).expect("compiles");
    trainer.init_params(0);
    let dir = std::env::temp_dir().join(format!("hyb-io-bench-{}", std::process::id()));
    group.bench_function("checkpoint of the tiny GDN 3:1 (1.24M parameters + moments)", |b| {
        b.iter(|| hyb_train::checkpoint::save(&dir, &trainer, 0).expect("writes"))
    });
    let batch = task.batch(0, 1, 32);
    let adamw = hyb_runtime::AdamW::of(&model);
    group.bench_function("the step they accompany (32 × 128)", |b| {
        b.iter(|| trainer.step(&batch.inputs(), &adamw, adamw.lr).expect("runs"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
