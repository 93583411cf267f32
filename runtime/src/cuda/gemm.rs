//! `c[m, n] = a[m, k] · b[k, n]` (row-major, each operand with its strides) through
//! cuBLASLt: bf16 operands on the tensor cores with f32 accumulation and a bf16 or f32
//! product (an f32 parameter gradient from bf16 activations), or f32 throughout
//! (`CUBLAS_COMPUTE_32F`: no TF32 rounding). cuBLASLt is column-major: it computes
//! `cᵀ = bᵀ · aᵀ`, each operand an `N` or a `T` of what is stored.
//!
//! A GEMM's descriptors and algorithm depend only on its shape, strides, types and its
//! pointers' alignment (the arena places values 4-byte aligned; cuBLASLt's heuristic
//! assumes 256 unless told), so each distinct one is planned once (the heuristic's first
//! choice, within the workspace) and kept.

use std::collections::HashMap;
use std::ffi::c_void;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys::{
    cublasComputeType_t, cublasLtHandle_t, cublasLtMatmulAlgo_t, cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t,
    cublasLtMatmulPreferenceAttributes_t, cublasLtMatrixLayout_t, cudaDataType,
};
use hyb_target::Elem;

use super::Cuda;
use crate::device::{Gemm, alignment};

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

/// A planned GEMM: its descriptors and algorithm.
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

/// The plan of `shape`: `D = B_ᵀ-or-not · A_ᵀ-or-not` in cuBLASLt's terms.
fn plan(handle: cublasLtHandle_t, shape: &Shape) -> Plan {
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
        let found =
            lt::get_matmul_algo_heuristic(handle, desc, layouts[0], layouts[1], layouts[2], layouts[2], preference);
        let _ = lt::destroy_matmul_pref(preference);
        found.unwrap_or_else(|e| panic!("cuBLASLt has no algorithm for {shape:?}: {e:?}"))
    };
    Plan { desc, layouts, algo: heuristic.algo }
}

pub(super) fn gemm(cuda: &mut Cuda, op: &Gemm) {
    let Gemm { m, k, n, a, b, c } = op;
    let (pa, pb, pc) = (cuda.address(&a.0), cuda.address(&b.0), cuda.address(c));
    let align = [alignment(pa), alignment(pb), alignment(pc)];
    let shape = Shape { m: *m, k: *k, n: *n, a: (a.1, a.0.elem), b: (b.1, b.0.elem), c: c.elem, align };
    let handle = cuda.blas_lt;
    if let std::collections::hash_map::Entry::Vacant(slot) = cuda.gemm_plans.0.entry(shape) {
        slot.insert(plan(handle, &shape));
    }
    let (alpha, beta) = (1.0f32, 0.0f32);
    let (a, b, c) = (pa, pb, pc);
    let plan = &cuda.gemm_plans.0[&shape];
    // SAFETY: the operands lie in live device memory (the program verifier checked their
    // sizes and types); alpha and beta are host f32 (the descriptor's scale type); the
    // workspace is ours, of the size the plan was chosen for.
    let done = unsafe {
        lt::matmul(
            handle,
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
    };
    check("matmul", done);
}
