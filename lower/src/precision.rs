//! Mixed precision: which values of a training step are stored as bf16 (`precision =
//! bf16`), decided on the grad IR before the buffer plan sizes them.
//!
//! Stored as bf16: the forward's activations and the backward's activation gradients.
//! Kept f32 (the accumulation type):
//! - parameters (the master weights; a GEMM reads a bf16 copy, made where it is used),
//!   their gradients and every contribution summed into one, and AdamW's moments;
//! - the loss and its seed, and every value without a batch dim (per-channel values
//!   such as RetNet's fixed decays, and their gradients: sums over rows) — small, and
//!   some summed into;
//! - the recurrence's decay input (log-decays summed over many tokens: bf16's eight
//!   bits would drift), its states and checkpoints, attention's log-sum-exp;
//! - the gradients the recurrence's, attention's and the short convolution's backward
//!   kernels accumulate into (shared keys and values add from several heads, a
//!   convolution's input from several taps; adds into bf16 would round at each step),
//!   and a broadcast operand's gradient (a sum over what it was broadcast along).
//!
//! Every kernel reads and writes its arguments in the types chosen here (its signature)
//! and computes in f32; the program verifier checks that each byte is read as the type
//! it was written and that nothing accumulates into bf16.

use std::collections::HashSet;

use hyb_compiler::grad::{BwdOp, GradGraph, Value};
use hyb_compiler::graph::{Dim, Elem, Op, ScanDecay, TensorType};

/// Stores `grad`'s activations and activation gradients as `storage` (a no-op for f32).
pub fn store(grad: &mut GradGraph, storage: Elem) {
    if storage == Elem::F32 {
        return;
    }
    let keep = kept_f32(grad);
    let stored = |ty: &mut TensorType, value: Value| {
        if ty.elem == Elem::F32 && ty.shape.first() == Some(&Dim::Batch) && !keep.contains(&value) {
            ty.elem = storage;
        }
    };
    for (id, node) in grad.forward.nodes.iter_mut() {
        if !matches!(node.op, Op::Param(_)) {
            stored(&mut node.ty, Value::Fwd(id));
        }
    }
    for (index, node) in grad.backward.iter_mut().enumerate() {
        for (output, ty) in node.outputs.iter_mut().enumerate() {
            stored(ty, Value::Bwd(index, output));
        }
    }
}

/// The values that stay f32 beyond parameters, the loss and host-filled values.
fn kept_f32(grad: &GradGraph) -> HashSet<Value> {
    let mut keep: HashSet<Value> = grad.param_grads.iter().map(|(_, value)| *value).collect();
    // Every contribution to a parameter's gradient: through the adds that sum them.
    for (index, node) in grad.backward.iter().enumerate().rev() {
        if node.op == BwdOp::Add && keep.contains(&Value::Bwd(index, 0)) {
            keep.extend(node.inputs.iter().copied());
        }
    }
    for (index, node) in grad.backward.iter().enumerate() {
        let accumulated = match &node.op {
            BwdOp::Seed | BwdOp::SumLeading | BwdOp::EmbedScatter | BwdOp::GradNorm | BwdOp::AdamW { .. } => true,
            BwdOp::Vjp { .. } => node.origin.is_some_and(|id| {
                matches!(grad.forward.nodes[id].op, Op::Scan(_) | Op::Attention { .. } | Op::ShortConv { .. })
            }),
            _ => false,
        };
        if accumulated {
            keep.extend((0..node.outputs.len()).map(|output| Value::Bwd(index, output)));
        }
        // A broadcast operand's gradient: summed over what it was broadcast along.
        if let (BwdOp::Vjp { .. }, Some(origin)) = (&node.op, node.origin)
            && grad.forward.nodes[origin].op.is_elementwise()
        {
            let shape = &grad.forward.nodes[origin].ty.shape;
            let broadcast = node.outputs.iter().enumerate().filter(|(_, ty)| ty.shape != *shape);
            keep.extend(broadcast.map(|(output, _)| Value::Bwd(index, output)));
        }
    }
    for (_, node) in grad.forward.nodes.iter() {
        if let Op::Scan(attrs) = &node.op
            && attrs.decay != ScanDecay::None
        {
            let decay = usize::from(attrs.query) + 2;
            keep.insert(Value::Fwd(node.inputs[decay]));
        }
    }
    keep
}
