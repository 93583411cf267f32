//! The short causal depthwise convolution: `y[t, c] = Σ_j w[c, j] · x[t − (W − 1) + j, c]`
//! (+ bias), zero history, the last tap on the current token (fla's `ShortConvolution`),
//! and its backward (`dx`, and `dw`, `db` accumulated over batch and time).
//! Shapes: x, y `[B, T, C]`; w `[C, 1, W]`; bias `[C]`.

use crate::emit::{Emitter, T3, accumulate, memref_params};

fn header(e: &mut Emitter, name: &str, args: &[(&str, usize)]) {
    e.begin_function(name, &memref_params(args));
    e.line("%c2 = arith.constant 2 : index");
    e.line(&format!("%B = memref.dim %x, %c0 : {T3}"));
    e.line(&format!("%T = memref.dim %x, %c1 : {T3}"));
    e.line(&format!("%C = memref.dim %x, %c2 : {T3}"));
    e.line(&format!("%W = memref.dim %w, %c2 : {T3}"));
    e.line("%W1 = arith.subi %W, %c1 : index");
}

/// Opens `scf.if` on `a + b ≥ W − 1` and returns the source position `a + b − (W − 1)`.
fn open_in_range(e: &mut Emitter, a: &str, b: &str) -> String {
    let sum = e.op(&format!("arith.addi {a}, {b} : index"));
    let valid = e.op(&format!("arith.cmpi uge, {sum}, %W1 : index"));
    e.line(&format!("scf.if {valid} {{"));
    e.depth += 1;
    e.op(&format!("arith.subi {sum}, %W1 : index"))
}

/// Args: x, w, [bias], y.
pub fn forward(bias: bool, name: &str) -> String {
    let mut e = Emitter::default();
    let mut args = vec![("x", 3), ("w", 3)];
    if bias {
        args.push(("bias", 1));
    }
    args.push(("y", 3));
    header(&mut e, name, &args);
    let b = e.open_for("%c0", "%B");
    let t = e.open_for("%c0", "%T");
    let c = e.open_for("%c0", "%C");
    let start = if bias { e.op(&format!("memref.load %bias[{c}] : memref<?xf32>")) } else { "%zero".to_string() };
    e.line(&format!("memref.store {start}, %y[{b}, {t}, {c}] : {T3}"));
    let j = e.open_for("%c0", "%W");
    let source = open_in_range(&mut e, &t, &j);
    let x = e.op(&format!("memref.load %x[{b}, {source}, {c}] : {T3}"));
    let w = e.op(&format!("memref.load %w[{c}, %c0, {j}] : {T3}"));
    let xw = e.op(&format!("arith.mulf {x}, {w} : f32"));
    accumulate(&mut e, &format!("%y[{b}, {t}, {c}] : {T3}"), &xw);
    e.close(); // if
    e.close(); // j
    e.close(); // c
    e.close(); // t
    e.close(); // b
    e.end_function()
}

/// Args: x, w, dy, dx, dw, [dbias]. `dx` is overwritten; `dw`, `dbias` accumulate.
pub fn backward(bias: bool, name: &str) -> String {
    let mut e = Emitter::default();
    let mut args = vec![("x", 3), ("w", 3), ("dy", 3), ("dx", 3), ("dw", 3)];
    if bias {
        args.push(("dbias", 1));
    }
    header(&mut e, name, &args);
    let b = e.open_for("%c0", "%B");
    let t = e.open_for("%c0", "%T");
    let c = e.open_for("%c0", "%C");
    e.line(&format!("memref.store %zero, %dx[{b}, {t}, {c}] : {T3}"));
    e.close();
    e.close();
    let t = e.open_for("%c0", "%T");
    let c = e.open_for("%c0", "%C");
    let dy = e.op(&format!("memref.load %dy[{b}, {t}, {c}] : {T3}"));
    if bias {
        accumulate(&mut e, &format!("%dbias[{c}] : memref<?xf32>"), &dy);
    }
    let j = e.open_for("%c0", "%W");
    let source = open_in_range(&mut e, &t, &j);
    let x = e.op(&format!("memref.load %x[{b}, {source}, {c}] : {T3}"));
    let w = e.op(&format!("memref.load %w[{c}, %c0, {j}] : {T3}"));
    let dw = e.op(&format!("arith.mulf {dy}, {x} : f32"));
    accumulate(&mut e, &format!("%dw[{c}, %c0, {j}] : {T3}"), &dw);
    let dx = e.op(&format!("arith.mulf {dy}, {w} : f32"));
    accumulate(&mut e, &format!("%dx[{b}, {source}, {c}] : {T3}"), &dx);
    e.close(); // if
    e.close(); // j
    e.close(); // c
    e.close(); // t
    e.close(); // b
    e.end_function()
}
