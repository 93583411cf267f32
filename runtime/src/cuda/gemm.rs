//! `c[m, n] = a[m, k] · b[k, n]` (row-major, each operand with its strides) through
//! cuBLAS, which is column-major: it computes `cᵀ = bᵀ · aᵀ`, each operand an `N` or a
//! `T` of what is stored.

use cudarc::cublas::result as blas;
use cudarc::cublas::sys::cublasOperation_t;

use super::Cuda;
use crate::device::Gemm;

/// How cuBLAS reads a row-major operand's transpose: as stored (`N`, leading dim its
/// row stride) when rows are contiguous, else transposed (`T`, leading dim its column
/// stride).
fn operand(strides: [isize; 2], rows: usize, columns: usize) -> (cublasOperation_t, i32) {
    if strides[1] == 1 || columns == 1 {
        (cublasOperation_t::CUBLAS_OP_N, strides[0].max(columns as isize) as i32)
    } else {
        assert_eq!(strides[0], 1, "a GEMM operand is row- or column-major");
        (cublasOperation_t::CUBLAS_OP_T, strides[1].max(rows as isize) as i32)
    }
}

pub(super) fn gemm(cuda: &mut Cuda, op: &Gemm) {
    let Gemm { m, k, n, a, b, c } = op;
    let (m, k, n) = (*m, *k, *n);
    let (op_a, lda) = operand(a.1, m, k);
    let (op_b, ldb) = operand(b.1, k, n);
    let (alpha, beta) = (1.0f32, 0.0f32);
    // SAFETY: the operands lie in live device memory (the program verifier checked
    // their sizes); alpha and beta are host scalars (cuBLAS's default pointer mode).
    unsafe {
        blas::sgemm(
            cuda.blas,
            op_b,
            op_a,
            n as i32,
            m as i32,
            k as i32,
            &alpha,
            cuda.address(&b.0) as *const f32,
            ldb,
            cuda.address(&a.0) as *const f32,
            lda,
            &beta,
            cuda.address(c) as *mut f32,
            n as i32,
        )
    }
    .expect("cuBLAS sgemm");
}
