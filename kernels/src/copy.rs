//! Moving values on the device instead of the host: the column copy of concatenation
//! and its slices' backward, and the clipping factor from the summed squares.

use crate::emit::{Emitter, f32_constant};

/// `dst[r, dst_col + j] = src[r, src_col + j]` for `j < width`. Args: src `[R, Ws]`,
/// dst `[R, Wd]`.
pub fn columns(src_col: usize, dst_col: usize, width: usize, name: &str) -> String {
    let mut e = Emitter::default();
    let matrix = "memref<?x?xf32>";
    e.begin_function(name, &[format!("%src: {matrix}, %dst: {matrix}")]);
    e.line(&format!("%rows = memref.dim %src, %c0 : {matrix}"));
    e.line(&format!("%width = arith.constant {width} : index"));
    e.line(&format!("%src_col = arith.constant {src_col} : index"));
    e.line(&format!("%dst_col = arith.constant {dst_col} : index"));
    let r = e.open_for("%c0", "%rows");
    let j = e.open_for("%c0", "%width");
    let from = e.op(&format!("arith.addi %src_col, {j} : index"));
    let to = e.op(&format!("arith.addi %dst_col, {j} : index"));
    let value = e.op(&format!("memref.load %src[{r}, {from}] : {matrix}"));
    e.line(&format!("memref.store {value}, %dst[{r}, {to}] : {matrix}"));
    e.close();
    e.close();
    e.end_function()
}

/// The global gradient norm and the clipping factor: `norm = sqrt(squares)` (written
/// over `squares`), `factor = min(max / (norm + 1e-6), 1)` (1 when `max` is +∞).
/// Args: squares `[1]`, max `[1]`, factor `[1]`.
pub fn clip(name: &str) -> String {
    let mut e = Emitter::default();
    let scalar = "memref<?xf32>";
    e.begin_function(name, &[format!("%squares: {scalar}, %max: {scalar}, %factor: {scalar}")]);
    let squares = e.op(&format!("memref.load %squares[%c0] : {scalar}"));
    let max = e.op(&format!("memref.load %max[%c0] : {scalar}"));
    let norm = e.op(&format!("math.sqrt {squares} : f32"));
    let tiny = e.op(&f32_constant(1e-6));
    let denominator = e.op(&format!("arith.addf {norm}, {tiny} : f32"));
    let ratio = e.op(&format!("arith.divf {max}, {denominator} : f32"));
    let factor = e.op(&format!("arith.minimumf {ratio}, %one : f32"));
    e.line(&format!("memref.store {norm}, %squares[%c0] : {scalar}"));
    e.line(&format!("memref.store {factor}, %factor[%c0] : {scalar}"));
    e.end_function()
}
