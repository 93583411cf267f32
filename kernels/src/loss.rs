//! Fused cross-entropy: the mean loss over the positions that have a target, and its
//! gradient, in one pass. `targets[b, t]` is the token position t should predict, or
//! negative for none (the last position of a language-modelling sequence; every
//! non-answer position of a recall task). Per predicted row: `logsumexp` in f32 with the
//! maximum subtracted; `loss = lse − logit[target]`; `dlogits = (softmax − onehot) / count`;
//! rows without a target get a zero gradient. With no target at all the loss is 0.
//! Shapes: logits, dlogits `[B, T, V]`; targets `[B, T]` i32; loss `[1]`.

use crate::emit::{Emitter, T3, max_and_sum_exp};

const IDS: &str = "memref<?x?xi32>";

/// Args: logits, targets, loss, dlogits.
pub fn cross_entropy(name: &str) -> String {
    let mut e = Emitter::default();
    let params = format!("%logits: {T3}, %targets: {IDS}, %loss: memref<?xf32>, %dlogits: {T3}");
    e.begin_function(name, &[params]);
    e.line("%c2 = arith.constant 2 : index");
    e.line("%none = arith.constant 0 : i32");
    e.line(&format!("%B = memref.dim %logits, %c0 : {T3}"));
    e.line(&format!("%T = memref.dim %logits, %c1 : {T3}"));
    e.line(&format!("%V = memref.dim %logits, %c2 : {T3}"));
    // count = the positions with a target (at least 1, so no target means loss 0).
    let count = e.fresh();
    {
        let (b, acc) = e.open_fold("%B", &count, "%zero");
        let row_count = e.fresh();
        let (t, inner) = e.open_fold("%T", &row_count, &acc);
        let id = e.op(&format!("memref.load %targets[{b}, {t}] : {IDS}"));
        let valid = e.op(&format!("arith.cmpi sge, {id}, %none : i32"));
        let one = e.op(&format!("arith.uitofp {valid} : i1 to f32"));
        let next = e.op(&format!("arith.addf {inner}, {one} : f32"));
        e.close_sum(&next);
        e.close_sum(&row_count);
    }
    let count = e.op(&format!("arith.maximumf {count}, %one : f32"));
    e.line("memref.store %zero, %loss[%c0] : memref<?xf32>");
    let b = e.open_for("%c0", "%B");
    let t = e.open_for("%c0", "%T");
    let id = e.op(&format!("memref.load %targets[{b}, {t}] : {IDS}"));
    let valid = e.op(&format!("arith.cmpi sge, {id}, %none : i32"));
    e.line(&format!("scf.if {valid} {{"));
    e.depth += 1;
    let target = e.op(&format!("arith.index_cast {id} : i32 to index"));
    let (max, sum) = max_and_sum_exp(&mut e, "%V", &|e, v| e.op(&format!("memref.load %logits[{b}, {t}, {v}] : {T3}")));
    let log_sum = e.op(&format!("math.log {sum} : f32"));
    let lse = e.op(&format!("arith.addf {max}, {log_sum} : f32"));
    let picked = e.op(&format!("memref.load %logits[{b}, {t}, {target}] : {T3}"));
    let row_loss = e.op(&format!("arith.subf {lse}, {picked} : f32"));
    let mean_part = e.op(&format!("arith.divf {row_loss}, {count} : f32"));
    let old = e.op("memref.load %loss[%c0] : memref<?xf32>");
    let new = e.op(&format!("arith.addf {old}, {mean_part} : f32"));
    e.line(&format!("memref.store {new}, %loss[%c0] : memref<?xf32>"));
    let v = e.open_for("%c0", "%V");
    let x = e.op(&format!("memref.load %logits[{b}, {t}, {v}] : {T3}"));
    let centred = e.op(&format!("arith.subf {x}, {lse} : f32"));
    let softmax = e.op(&format!("math.exp {centred} : f32"));
    let is_target = e.op(&format!("arith.cmpi eq, {v}, {target} : index"));
    let one_hot = e.op(&format!("arith.uitofp {is_target} : i1 to f32"));
    let diff = e.op(&format!("arith.subf {softmax}, {one_hot} : f32"));
    let grad = e.op(&format!("arith.divf {diff}, {count} : f32"));
    e.line(&format!("memref.store {grad}, %dlogits[{b}, {t}, {v}] : {T3}"));
    e.close(); // v
    e.depth -= 1;
    e.line("} else {");
    e.depth += 1;
    let v = e.open_for("%c0", "%V");
    e.line(&format!("memref.store %zero, %dlogits[{b}, {t}, {v}] : {T3}"));
    e.close(); // v
    e.close(); // if
    e.close(); // t
    e.close(); // b
    e.end_function()
}
