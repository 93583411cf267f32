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

/// One tap of the filter at output position `t`, channel `c`.
struct Tap {
    /// The tap's index j.
    j: String,
    /// The input position it reads, `t + j − (W − 1)`.
    source: String,
    x: String,
    w: String,
}

/// Opens the loop over taps and the `scf.if` that skips those before the sequence
/// starts, and loads the tap's input and weight. Close with [`close_tap`].
fn open_tap(e: &mut Emitter, b: &str, t: &str, c: &str) -> Tap {
    let j = e.open_for("%c0", "%W");
    let sum = e.op(&format!("arith.addi {t}, {j} : index"));
    let valid = e.op(&format!("arith.cmpi uge, {sum}, %W1 : index"));
    e.line(&format!("scf.if {valid} {{"));
    e.depth += 1;
    let source = e.op(&format!("arith.subi {sum}, %W1 : index"));
    let x = e.op(&format!("memref.load %x[{b}, {source}, {c}] : {T3}"));
    let w = e.op(&format!("memref.load %w[{c}, %c0, {j}] : {T3}"));
    Tap { j, source, x, w }
}

fn close_tap(e: &mut Emitter) {
    e.close(); // if
    e.close(); // j
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
    let tap = open_tap(&mut e, &b, &t, &c);
    let xw = e.op(&format!("arith.mulf {}, {} : f32", tap.x, tap.w));
    accumulate(&mut e, &format!("%y[{b}, {t}, {c}] : {T3}"), &xw);
    close_tap(&mut e);
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
    let tap = open_tap(&mut e, &b, &t, &c);
    let dw = e.op(&format!("arith.mulf {dy}, {} : f32", tap.x));
    accumulate(&mut e, &format!("%dw[{c}, %c0, {}] : {T3}", tap.j), &dw);
    let dx = e.op(&format!("arith.mulf {dy}, {} : f32", tap.w));
    accumulate(&mut e, &format!("%dx[{b}, {}, {c}] : {T3}", tap.source), &dx);
    close_tap(&mut e);
    e.close(); // c
    e.close(); // t
    e.close(); // b
    e.end_function()
}

/// One token per sequence, for decoding. Args: x `[B, 1, C]`, w, [bias], window, y.
/// `window` `[B, W, C]` holds the last W inputs (zero before the sequence starts): the
/// kernel shifts it by one, appends x, and writes `y = Σ_j w[c, j] · window[j, c]`.
pub fn step(bias: bool, name: &str) -> String {
    let mut e = Emitter::default();
    let mut args = vec![("x", 3), ("w", 3)];
    if bias {
        args.push(("bias", 1));
    }
    args.extend([("window", 3), ("y", 3)]);
    header(&mut e, name, &args);
    let b = e.open_for("%c0", "%B");
    let c = e.open_for("%c0", "%C");
    {
        let j = e.open_for("%c0", "%W1");
        let next = e.op(&format!("arith.addi {j}, %c1 : index"));
        let kept = e.op(&format!("memref.load %window[{b}, {next}, {c}] : {T3}"));
        e.line(&format!("memref.store {kept}, %window[{b}, {j}, {c}] : {T3}"));
        e.close();
    }
    let x = e.op(&format!("memref.load %x[{b}, %c0, {c}] : {T3}"));
    e.line(&format!("memref.store {x}, %window[{b}, %W1, {c}] : {T3}"));
    let sum = e.dot("%W", |e, j| {
        let w = e.op(&format!("memref.load %w[{c}, %c0, {j}] : {T3}"));
        (w, e.op(&format!("memref.load %window[{b}, {j}, {c}] : {T3}")))
    });
    let y = if bias {
        let bias = e.op(&format!("memref.load %bias[{c}] : memref<?xf32>"));
        e.op(&format!("arith.addf {bias}, {sum} : f32"))
    } else {
        sum
    };
    e.line(&format!("memref.store {y}, %y[{b}, %c0, {c}] : {T3}"));
    e.close(); // c
    e.close(); // b
    e.end_function()
}
