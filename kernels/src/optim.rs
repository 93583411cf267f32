//! The optimizer step's kernels: the sum of squares of a gradient (the host adds them
//! over parameters for the global norm that clipping needs), and AdamW with decoupled
//! weight decay, as PyTorch's `AdamW` computes it:
//! `p ← p · (1 − lr · wd)`; `m ← β₁ m + (1 − β₁) g`; `v ← β₂ v + (1 − β₂) g²`;
//! `p ← p − lr · (m / (1 − β₁ᵗ)) / (sqrt(v / (1 − β₂ᵗ)) + ε)`, with `g` the gradient
//! times the clipping factor. The step's scalars arrive in a small buffer, so one
//! compiled kernel serves every step: `[lr, β₁, β₂, ε, wd, 1 − β₁ᵗ, 1 − β₂ᵗ, clip]`.

use crate::emit::{Emitter, memref_params};

/// Args: g `[n]`, out `[1]` (accumulates Σ g²).
pub fn sum_of_squares(name: &str) -> String {
    let mut e = Emitter::default();
    e.begin_function(name, &["%g: memref<?xf32>, %out: memref<?xf32>".to_string()]);
    e.line("%n = memref.dim %g, %c0 : memref<?xf32>");
    let total = e.dot("%n", |e, i| {
        let g = e.op(&format!("memref.load %g[{i}] : memref<?xf32>"));
        (g.clone(), g)
    });
    let old = e.op("memref.load %out[%c0] : memref<?xf32>");
    let new = e.op(&format!("arith.addf {old}, {total} : f32"));
    e.line(&format!("memref.store {new}, %out[%c0] : memref<?xf32>"));
    e.end_function()
}

/// Args: p, g, m, v (all `[n]`), scalars `[8]`. Updates p, m, v in place.
pub fn adamw(name: &str) -> String {
    let mut e = Emitter::default();
    e.begin_function(name, &memref_params(&[("p", 1), ("g", 1), ("m", 1), ("v", 1), ("s", 1)]));
    let names = ["lr", "b1", "b2", "eps", "wd", "bc1", "bc2", "clip"];
    for (index, scalar) in names.iter().enumerate() {
        e.line(&format!("%i{index} = arith.constant {index} : index"));
        e.line(&format!("%{scalar} = memref.load %s[%i{index}] : memref<?xf32>"));
    }
    e.line("%n = memref.dim %p, %c0 : memref<?xf32>");
    e.line("%lr_wd = arith.mulf %lr, %wd : f32");
    e.line("%shrink = arith.subf %one, %lr_wd : f32");
    e.line("%one_b1 = arith.subf %one, %b1 : f32");
    e.line("%one_b2 = arith.subf %one, %b2 : f32");
    let i = e.open_for("%c0", "%n");
    let raw = e.op(&format!("memref.load %g[{i}] : memref<?xf32>"));
    let g = e.op(&format!("arith.mulf {raw}, %clip : f32"));
    let m = e.op(&format!("memref.load %m[{i}] : memref<?xf32>"));
    let v = e.op(&format!("memref.load %v[{i}] : memref<?xf32>"));
    let m_keep = e.op(&format!("arith.mulf %b1, {m} : f32"));
    let m_add = e.op(&format!("arith.mulf %one_b1, {g} : f32"));
    let m_new = e.op(&format!("arith.addf {m_keep}, {m_add} : f32"));
    let g2 = e.op(&format!("arith.mulf {g}, {g} : f32"));
    let v_keep = e.op(&format!("arith.mulf %b2, {v} : f32"));
    let v_add = e.op(&format!("arith.mulf %one_b2, {g2} : f32"));
    let v_new = e.op(&format!("arith.addf {v_keep}, {v_add} : f32"));
    e.line(&format!("memref.store {m_new}, %m[{i}] : memref<?xf32>"));
    e.line(&format!("memref.store {v_new}, %v[{i}] : memref<?xf32>"));
    let m_hat = e.op(&format!("arith.divf {m_new}, %bc1 : f32"));
    let v_hat = e.op(&format!("arith.divf {v_new}, %bc2 : f32"));
    let root = e.op(&format!("math.sqrt {v_hat} : f32"));
    let den = e.op(&format!("arith.addf {root}, %eps : f32"));
    let step = e.op(&format!("arith.divf {m_hat}, {den} : f32"));
    let lr_step = e.op(&format!("arith.mulf %lr, {step} : f32"));
    let p = e.op(&format!("memref.load %p[{i}] : memref<?xf32>"));
    let decayed = e.op(&format!("arith.mulf {p}, %shrink : f32"));
    let p_new = e.op(&format!("arith.subf {decayed}, {lr_step} : f32"));
    e.line(&format!("memref.store {p_new}, %p[{i}] : memref<?xf32>"));
    e.close();
    e.end_function()
}
