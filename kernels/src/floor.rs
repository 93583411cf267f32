//! HGRN's layer-wise lower bound: from the trainable `lower_bounds` `[L, W]`, the floor
//! of layer `l` is `γ_l = cumsum(softmax(lower_bounds, axis 0))[l] − softmax[0]`, i.e.
//! `Σ_{1 ≤ i ≤ l} p_i` with `p = softmax` over the layer axis per channel (layer 0 has no
//! floor). Its backward: `∂γ_l/∂b_j = p_j ([1 ≤ j ≤ l] − γ_l)`.
//! Shapes: bounds `[L, W]`, floor and its gradient `[W]`, the bounds' gradient `[L, W]`
//! (overwritten).

use crate::emit::{Emitter, max_and_sum_exp, memref_params};

const BOUNDS: &str = "memref<?x?xf32>";

/// Per channel `c`: the column's maximum and `Σ_i exp(b_i − max)`; returns (max, sum).
fn softmax_terms(e: &mut Emitter, c: &str) -> (String, String) {
    max_and_sum_exp(e, "%L", &|e, i| e.op(&format!("memref.load %bounds[{i}, {c}] : {BOUNDS}")))
}

fn exp_shifted(e: &mut Emitter, i: &str, c: &str, max: &str) -> String {
    let b = e.op(&format!("memref.load %bounds[{i}, {c}] : {BOUNDS}"));
    let shifted = e.op(&format!("arith.subf {b}, {max} : f32"));
    e.op(&format!("math.exp {shifted} : f32"))
}

/// `γ_l` of channel `c`: `Σ_{i=1..l} p_i`.
fn floor_of(e: &mut Emitter, c: &str, layer: u64) -> (String, String, String) {
    let (max, sum) = softmax_terms(e, c);
    let upper = e.op(&format!("arith.constant {} : index", layer + 1));
    let partial = e.fresh();
    e.line(&format!("{partial} = scf.for %i = %c1 to {upper} step %c1 iter_args(%acc = %zero) -> (f32) {{"));
    e.depth += 1;
    let p = exp_shifted(e, "%i", c, &max);
    let total = e.op(&format!("arith.addf %acc, {p} : f32"));
    e.close_sum(&total);
    let gamma = e.op(&format!("arith.divf {partial}, {sum} : f32"));
    (max, sum, gamma)
}

fn header(e: &mut Emitter, name: &str, args: &[(&str, usize)]) {
    e.begin_function(name, &memref_params(args));
    e.line(&format!("%L = memref.dim %bounds, %c0 : {BOUNDS}"));
    e.line(&format!("%W = memref.dim %bounds, %c1 : {BOUNDS}"));
}

/// The floor of `layer` (≥ 1). Args: bounds, floor.
pub fn forward(layer: u64, name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &[("bounds", 2), ("floor", 1)]);
    let c = e.open_for("%c0", "%W");
    let (_, _, gamma) = floor_of(&mut e, &c, layer);
    e.line(&format!("memref.store {gamma}, %floor[{c}] : memref<?xf32>"));
    e.close();
    e.end_function()
}

/// Args: bounds, dfloor, dbounds.
pub fn backward(layer: u64, name: &str) -> String {
    let mut e = Emitter::default();
    header(&mut e, name, &[("bounds", 2), ("dfloor", 1), ("dbounds", 2)]);
    e.line(&format!("%layer = arith.constant {layer} : index"));
    let c = e.open_for("%c0", "%W");
    let (max, sum, gamma) = floor_of(&mut e, &c, layer);
    let dy = e.op(&format!("memref.load %dfloor[{c}] : memref<?xf32>"));
    let j = e.open_for("%c0", "%L");
    let exp = exp_shifted(&mut e, &j, &c, &max);
    let p = e.op(&format!("arith.divf {exp}, {sum} : f32"));
    let above = e.op(&format!("arith.cmpi uge, {j}, %c1 : index"));
    let below = e.op(&format!("arith.cmpi ule, {j}, %layer : index"));
    let inside = e.op(&format!("arith.andi {above}, {below} : i1"));
    let indicator = e.op(&format!("arith.select {inside}, %one, %zero : f32"));
    let open = e.op(&format!("arith.subf {indicator}, {gamma} : f32"));
    let slope = e.op(&format!("arith.mulf {p}, {open} : f32"));
    let grad = e.op(&format!("arith.mulf {dy}, {slope} : f32"));
    e.line(&format!("memref.store {grad}, %dbounds[{j}, {c}] : {BOUNDS}"));
    e.close();
    e.close();
    e.end_function()
}
