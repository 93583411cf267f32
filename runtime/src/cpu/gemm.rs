//! GEMMs on the CPU: `matrixmultiply` (threaded), and products of at most
//! [`SMALL_M`] rows (a decoding step's) as dot products on the calling thread. bf16
//! operands are widened to f32 copies and a bf16 product rounded back to nearest (ties
//! to even), as the GPU's tensor cores accumulate bf16 products in f32.

use hyb_target::Elem;

use super::{Cpu, Ptr};
use crate::device::{Gemm, floats};

/// Products with this few rows (a decoding step's `1 × k · k × n`) are dot products on
/// the calling thread: matrixmultiply's packing and thread dispatch cost more than the
/// product (measured: 27 µs per 1 × 128 · 128 × 512 product, 81 % of a decoding step).
const SMALL_M: usize = 4;

pub(super) fn gemm(cpu: &mut Cpu, op: &Gemm) {
    let Gemm { m, k, n, a, b, c } = op;
    let (m, k, n) = (*m, *k, *n);
    assert!(a.0.len() >= m * k && b.0.len() >= k * n && c.len() == m * n, "GEMM operands fit");
    if [a.0.elem, b.0.elem, c.elem] != [Elem::F32; 3] {
        return widened_gemm(cpu, op);
    }
    let (pa, pb, pc) = (cpu.pointer(&a.0), cpu.pointer(&b.0), cpu.pointer(c));
    if m <= SMALL_M && a.1[1] == 1 && b.1[0] == 1 {
        // SAFETY: as for sgemm below; rows of a and columns of b are contiguous.
        unsafe { small_gemm(m, k, n, (pa, a.1[0]), (pb, b.1[1]), pc) };
        return;
    }
    // SAFETY: the operands are in bounds for these strides (asserted above).
    unsafe { sgemm(op, (pa.0.cast(), a.1), (pb.0.cast(), b.1), pc.0.cast()) };
}

/// `c[i, j] = a_i · b_j` for rows `a_i` (stride `a.1`) and columns `b_j` (stride `b.1`),
/// each `k` contiguous values.
///
/// # Safety
/// Every row and column lies in live memory, `c` holds `m × n` values apart from both.
unsafe fn small_gemm(m: usize, k: usize, n: usize, a: (Ptr, isize), b: (Ptr, isize), c: Ptr) {
    let (a_base, b_base, c_base) = (a.0.0.cast::<f32>(), b.0.0.cast::<f32>(), c.0.cast::<f32>());
    for i in 0..m {
        // SAFETY: the caller's bounds.
        let row = unsafe { std::slice::from_raw_parts(a_base.offset(i as isize * a.1), k) };
        for j in 0..n {
            let column = unsafe { std::slice::from_raw_parts(b_base.offset(j as isize * b.1), k) };
            unsafe { *c_base.add(i * n + j) = dot(row, column) };
        }
    }
}

/// A dot product in eight lanes (so it vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    let mut lanes = [0.0f32; 8];
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A GEMM with bf16 operands or product: the f32 GEMM on widened copies, the product
/// rounded back if it is bf16.
fn widened_gemm(cpu: &mut Cpu, op: &Gemm) {
    let a = floats(cpu.bytes_ref(&op.a.0), op.a.0.elem);
    let b = floats(cpu.bytes_ref(&op.b.0), op.b.0.elem);
    let mut c = vec![0.0f32; op.c.len()];
    // SAFETY: the copies hold each operand's elements at its strides (as the views did);
    // `c` is a dense m × n product apart from both.
    unsafe { sgemm(op, (a.as_ptr(), op.a.1), (b.as_ptr(), op.b.1), c.as_mut_ptr()) };
    let out: &mut [u8] = cpu.bytes(&op.c);
    match op.c.elem {
        Elem::F32 => out.copy_from_slice(crate::device::f32_bytes(&c)),
        _ => {
            for (pair, value) in out.chunks_exact_mut(2).zip(&c) {
                pair.copy_from_slice(&hyb_target::bf16_bits(*value).to_le_bytes());
            }
        }
    }
}

/// `c = a · b` by matrixmultiply (threaded), each operand with its (row, column) strides,
/// `c` dense.
///
/// # Safety
/// The operands hold `m × k` and `k × n` elements at their strides; `c` holds `m × n`.
unsafe fn sgemm(op: &Gemm, a: (*const f32, [isize; 2]), b: (*const f32, [isize; 2]), c: *mut f32) {
    let (m, k, n) = (op.m, op.k, op.n);
    // SAFETY: the caller's bounds.
    unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a.0, a.1[0], a.1[1], b.0, b.1[0], b.1[1], 0.0, c, n as isize, 1) };
}
