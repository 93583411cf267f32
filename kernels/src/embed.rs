//! Token embedding: `y[b, t] = table[tokens[b, t]]`, and its backward, a scatter-add of
//! `dy` into the table's rows (accumulating: zero the table gradient first).
//! Shapes: table `[V, d]`, tokens `[B, T]` i32, y `[B, T, d]`.

use crate::emit::{Emitter, T3, accumulate};

fn header(e: &mut Emitter, name: &str, params: &str) {
    e.begin_function(name, &[params.to_string()]);
    e.line("%B = memref.dim %tokens, %c0 : memref<?x?xi32>");
    e.line("%T = memref.dim %tokens, %c1 : memref<?x?xi32>");
    e.line("%D = memref.dim %table, %c1 : memref<?x?xf32>");
}

/// Opens the loops over tokens and the width; returns (b, t, row, d).
fn open_tokens(e: &mut Emitter) -> (String, String, String, String) {
    let b = e.open_for("%c0", "%B");
    let t = e.open_for("%c0", "%T");
    let id = e.op(&format!("memref.load %tokens[{b}, {t}] : memref<?x?xi32>"));
    let row = e.op(&format!("arith.index_cast {id} : i32 to index"));
    let d = e.open_for("%c0", "%D");
    (b, t, row, d)
}

/// Args: table, tokens, y.
pub fn gather(name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &format!("%table: memref<?x?xf32>, %tokens: memref<?x?xi32>, %y: {T3}"));
    let (b, t, row, d) = open_tokens(&mut e);
    let value = e.op(&format!("memref.load %table[{row}, {d}] : memref<?x?xf32>"));
    e.line(&format!("memref.store {value}, %y[{b}, {t}, {d}] : {T3}"));
    e.close();
    e.close();
    e.close();
    e.end_function()
}

/// Args: table (for its shape), tokens, dy, dtable.
pub fn scatter(name: &str) -> String {
    let mut e = Emitter::default();
    header(
        &mut e,
        name,
        &format!("%table: memref<?x?xf32>, %tokens: memref<?x?xi32>, %dy: {T3}, %dtable: memref<?x?xf32>"),
    );
    let (b, t, row, d) = open_tokens(&mut e);
    let dy = e.op(&format!("memref.load %dy[{b}, {t}, {d}] : {T3}"));
    accumulate(&mut e, &format!("%dtable[{row}, {d}] : memref<?x?xf32>"), &dy);
    e.close();
    e.close();
    e.close();
    e.end_function()
}
