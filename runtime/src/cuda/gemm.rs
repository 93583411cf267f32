//! `c[m, n] = a[m, k] · b[k, n]` (row-major, each operand with its strides) through
//! cuBLASLt: bf16 operands on the tensor cores with f32 accumulation and a bf16 or f32
//! product (an f32 parameter gradient from bf16 activations), or f32 throughout
//! (`CUBLAS_COMPUTE_32F`: no TF32 rounding). cuBLASLt is column-major: it computes
//! `cᵀ = bᵀ · aᵀ`, each operand an `N` or a `T` of what is stored.
//!
//! A GEMM's descriptors and algorithm depend only on its shape, strides, types and its
//! pointers' alignment (the arena places values 4-byte aligned; cuBLASLt's heuristic
//! assumes 256 unless told), so each distinct one is planned once and kept. The plan
//! is the fastest of the heuristic's first [`CANDIDATES`] algorithms (within the
//! workspace), each timed on the GEMM's own operands at its first call — its output is
//! written then anyway. The heuristic's first choice alone was up to 27× slower than
//! PyTorch at a linear layer's shape on the H200 (`x · Wᵀ`, 16384 × 128 × 128 in f32:
//! 1.2 ms against 45 µs). Work being recorded (a CUDA graph) cannot be timed: a GEMM
//! first met there takes the heuristic's first choice ([`crate::exec::replay`] runs a
//! range once before recording it, so it is not).

use std::collections::HashMap;
use std::ffi::c_void;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys::{
    self, cublasComputeType_t, cublasLtHandle_t, cublasLtMatmulAlgo_t, cublasLtMatmulDesc_t,
    cublasLtMatmulDescAttributes_t, cublasLtMatmulHeuristicResult_t, cublasLtMatmulPreferenceAttributes_t,
    cublasLtMatrixLayout_t, cudaDataType,
};
use cudarc::driver::result::event;
use hyb_target::Elem;

use super::Cuda;
use crate::device::Gemm;

/// The workspace cuBLASLt may use (NVIDIA suggests 32 MiB on Hopper).
pub(super) const WORKSPACE_BYTES: usize = 32 << 20;

/// What a GEMM's plan depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Shape {
    m: usize,
    k: usize,
    n: usize,
    a: ([isize; 2], Elem),
    b: ([isize; 2], Elem),
    c: Elem,
    /// The alignment in bytes of a's, b's and c's pointers (at most 256).
    align: [u32; 3],
}

/// The largest power of two up to 256 dividing `address`.
fn alignment(address: u64) -> u32 {
    1 << address.trailing_zeros().min(8)
}

/// How many of the heuristic's algorithms a plan times.
const CANDIDATES: usize = 8;

/// How many timed runs of each candidate (after one untimed).
const TIMED_RUNS: usize = 3;

/// A planned GEMM: its descriptors and algorithm.
#[derive(Clone, Copy)]
pub(super) struct Plan {
    desc: cublasLtMatmulDesc_t,
    layouts: [cublasLtMatrixLayout_t; 3],
    algo: cublasLtMatmulAlgo_t,
}

/// The plans made so far.
#[derive(Default)]
pub(super) struct Plans(HashMap<Shape, Plan>);

impl Drop for Plans {
    fn drop(&mut self) {
        for plan in self.0.values() {
            // SAFETY: descriptors this cache created and nothing else holds.
            unsafe {
                let _ = lt::destroy_matmul_desc(plan.desc);
                for layout in plan.layouts {
                    let _ = lt::destroy_matrix_layout(layout);
                }
            }
        }
    }
}

fn data_type(elem: Elem) -> cudaDataType {
    match elem {
        Elem::F32 => cudaDataType::CUDA_R_32F,
        Elem::Bf16 => cudaDataType::CUDA_R_16BF,
        Elem::I32 => panic!("a GEMM of integers"),
    }
}

/// How cuBLASLt reads a row-major operand of `rows × columns` as a column-major matrix:
/// as stored (not transposed; `columns × rows` with its row stride as leading dim) when
/// rows are contiguous, else transposed (`rows × columns`, its column stride the
/// leading dim). Gives (transposed, stored rows, stored columns, leading dim).
fn operand(strides: [isize; 2], rows: usize, columns: usize) -> (bool, u64, u64, i64) {
    if strides[1] == 1 || columns == 1 {
        (false, columns as u64, rows as u64, strides[0].max(columns as isize) as i64)
    } else {
        assert_eq!(strides[0], 1, "a GEMM operand is row- or column-major");
        (true, rows as u64, columns as u64, strides[1].max(rows as isize) as i64)
    }
}

fn check<T>(what: &str, result: Result<T, cudarc::cublaslt::result::CublasError>) -> T {
    result.unwrap_or_else(|e| panic!("cuBLASLt {what}: {e:?}"))
}

/// The plan of `shape` (`D = B_ᵀ-or-not · A_ᵀ-or-not` in cuBLASLt's terms) with the
/// heuristic's first algorithm, and its first [`CANDIDATES`] algorithms, best first.
fn plan(handle: cublasLtHandle_t, shape: &Shape) -> (Plan, Vec<cublasLtMatmulAlgo_t>) {
    let Shape { m, k, n, a, b, c, align } = *shape;
    let (transpose_b, b_rows, b_cols, ldb) = operand(b.0, k, n);
    let (transpose_a, a_rows, a_cols, lda) = operand(a.0, m, k);
    let desc =
        check("descriptor", lt::create_matmul_desc(cublasComputeType_t::CUBLAS_COMPUTE_32F, data_type(Elem::F32)));
    for (attribute, transposed) in [
        (cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA, transpose_b),
        (cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB, transpose_a),
    ] {
        let flag = i32::from(transposed);
        // SAFETY: a live descriptor; the attribute is an i32 (cublasOperation_t).
        let set = unsafe { lt::set_matmul_desc_attribute(desc, attribute, (&flag as *const i32).cast(), 4) };
        check("transpose", set);
    }
    let layouts = [
        check("layout", lt::create_matrix_layout(data_type(b.1), b_rows, b_cols, ldb)),
        check("layout", lt::create_matrix_layout(data_type(a.1), a_rows, a_cols, lda)),
        check("layout", lt::create_matrix_layout(data_type(c), n as u64, m as u64, n as i64)),
    ];
    let preference = check("preference", lt::create_matmul_pref());
    let workspace = WORKSPACE_BYTES as u64;
    // SAFETY: live descriptors; the attribute is a u64.
    let heuristic = unsafe {
        check(
            "workspace preference",
            lt::set_matmul_pref_attribute(
                preference,
                cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast(),
                8,
            ),
        );
        // cuBLASLt's A is our b, its B our a; C and D are our c.
        use cublasLtMatmulPreferenceAttributes_t as P;
        for (attribute, bytes) in [
            (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align[1]),
            (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align[0]),
            (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align[2]),
            (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align[2]),
        ] {
            let set = lt::set_matmul_pref_attribute(preference, attribute, (&bytes as *const u32).cast(), 4);
            check("alignment preference", set);
        }
        let mut results: [cublasLtMatmulHeuristicResult_t; CANDIDATES] = std::mem::zeroed();
        let mut count = 0;
        let found = sys::cublasLtMatmulAlgoGetHeuristic(
            handle,
            desc,
            layouts[0],
            layouts[1],
            layouts[2],
            layouts[2],
            preference,
            CANDIDATES as i32,
            results.as_mut_ptr(),
            &mut count,
        );
        let _ = lt::destroy_matmul_pref(preference);
        if found != sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS || count == 0 {
            panic!("cuBLASLt has no algorithm for {shape:?}: {found:?}");
        }
        results[..count as usize]
            .iter()
            .filter(|result| result.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS)
            .map(|result| result.algo)
            .collect::<Vec<_>>()
    };
    assert!(!heuristic.is_empty(), "cuBLASLt has no algorithm for {shape:?}");
    (Plan { desc, layouts, algo: heuristic[0] }, heuristic)
}

/// The fastest of `candidates` for `plan`'s GEMM on pointers `(a, b, c)`: each run once,
/// then timed over [`TIMED_RUNS`] runs between two events on the stream. A candidate
/// that fails to run is passed over.
fn fastest(
    cuda: &Cuda,
    plan: &Plan,
    candidates: &[cublasLtMatmulAlgo_t],
    pointers: (u64, u64, u64),
) -> cublasLtMatmulAlgo_t {
    let flags = cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT;
    let (start, end) = (event::create(flags).expect("a CUDA event"), event::create(flags).expect("a CUDA event"));
    let mut best = (f32::INFINITY, candidates[0]);
    for algo in candidates {
        let trial = Plan { algo: *algo, ..*plan };
        if run(cuda, &trial, pointers).is_err() {
            continue;
        }
        // SAFETY: events of this context, recorded on our stream, which is not capturing.
        let elapsed = unsafe {
            event::record(start, cuda.stream).expect("event record");
            let runs_ok = (0..TIMED_RUNS).all(|_| run(cuda, &trial, pointers).is_ok());
            event::record(end, cuda.stream).expect("event record");
            event::synchronize(end).expect("event synchronize");
            if runs_ok { event::elapsed(start, end).expect("elapsed time") } else { f32::INFINITY }
        };
        if elapsed < best.0 {
            best = (elapsed, *algo);
        }
    }
    // SAFETY: events created above, no longer used.
    unsafe {
        let _ = event::destroy(start);
        let _ = event::destroy(end);
    }
    best.1
}

pub(super) fn gemm(cuda: &mut Cuda, op: &Gemm) {
    let Gemm { m, k, n, a, b, c } = op;
    let (pa, pb, pc) = (cuda.address(&a.0), cuda.address(&b.0), cuda.address(c));
    let align = [alignment(pa), alignment(pb), alignment(pc)];
    let shape = Shape { m: *m, k: *k, n: *n, a: (a.1, a.0.elem), b: (b.1, b.0.elem), c: c.elem, align };
    if !cuda.gemm_plans.0.contains_key(&shape) {
        let (mut chosen, candidates) = plan(cuda.blas_lt, &shape);
        if !cuda.capturing && candidates.len() > 1 {
            chosen.algo = fastest(cuda, &chosen, &candidates, (pa, pb, pc));
        }
        cuda.gemm_plans.0.insert(shape, chosen);
    }
    check("matmul", run(cuda, &cuda.gemm_plans.0[&shape], (pa, pb, pc)));
}

/// Issues `plan`'s GEMM on pointers `(a, b, c)`: `c = a · b`.
fn run(cuda: &Cuda, plan: &Plan, (a, b, c): (u64, u64, u64)) -> Result<(), cudarc::cublaslt::result::CublasError> {
    let (alpha, beta) = (1.0f32, 0.0f32);
    // SAFETY: the operands lie in live device memory (the program verifier checked their
    // sizes and types); alpha and beta are host f32 (the descriptor's scale type); the
    // workspace is ours, of the size the plan was chosen for.
    unsafe {
        lt::matmul(
            cuda.blas_lt,
            plan.desc,
            (&alpha as *const f32).cast(),
            (&beta as *const f32).cast(),
            b as *const c_void,
            plan.layouts[0],
            a as *const c_void,
            plan.layouts[1],
            c as *const c_void,
            plan.layouts[2],
            c as *mut c_void,
            plan.layouts[2],
            &plan.algo,
            cuda.workspace as *mut c_void,
            WORKSPACE_BYTES,
            cuda.stream.cast(),
        )
    }
}
