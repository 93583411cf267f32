//! Which CPU GEMM the runtime calls: `gemm` (faer's kernels) against `matrixmultiply`,
//! on the shapes a training step of the tiny models multiplies (f32, row-major,
//! `[tokens, in] · [out, in]ᵀ` and the weight gradient `[tokens, out]ᵀ · [tokens, in]`),
//! and one square shape. Run: `cargo bench -p hyb-runtime --bench gemm --features compare-gemm`.

use criterion::{Criterion, criterion_group, criterion_main};

/// C[m, n] = A[m, k] · B, with B given as `[n, k]` (a PyTorch weight) read transposed.
fn with_gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize, threads: usize) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None },
        );
    }
}

fn with_matrixmultiply(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn bench(c: &mut Criterion) {
    // (m, k, n): tokens × width → projections of d=128 / d=1024 models, and a square.
    let shapes = [(4096, 128, 512), (4096, 512, 128), (2048, 1024, 1024), (1024, 1024, 1024)];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) / 13.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 11) as f32) / 11.0).collect();
        let mut out = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        group.throughput(criterion::Throughput::Elements(flops as u64));
        group.bench_function(format!("gemm/{m}x{k}x{n}/threads{threads}"), |bench| {
            bench.iter(|| with_gemm(&a, &b, &mut out, m, k, n, threads))
        });
        group.bench_function(format!("matrixmultiply/{m}x{k}x{n}"), |bench| {
            bench.iter(|| with_matrixmultiply(&a, &b, &mut out, m, k, n))
        });
        // Both must agree before either figure means anything.
        let mut reference = vec![0.0f32; m * n];
        with_matrixmultiply(&a, &b, &mut reference, m, k, n);
        with_gemm(&a, &b, &mut out, m, k, n, threads);
        let worst = out.iter().zip(&reference).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "gemm and matrixmultiply disagree by {worst}");
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
