//! Reverse-mode differentiation of the forward graph: one VJP rule per op, and the
//! residency each rule implies.
//!
//! Residency (what the backward reads from the forward pass):
//! - **Save**: `linear.matmul` (its input x, for the weight gradient), norms and the
//!   short convolution (their input), `mix.attention` (q, k, v and its output with the
//!   log-sum-exp), `mix.scan` (its inputs and the state checkpoints its training forward
//!   writes every 64 tokens — never every state), `loss.cross_entropy` (the logits).
//! - **Recompute**: elementwise ops and gates (`act.*`, `gate.*`, `ew.*`, `mlp.swiglu`)
//!   read their input and recompute their value inside the VJP; `pos.rope` reads
//!   nothing (its VJP is the inverse rotation); routing reads nothing.
//!
//! After the backward: `opt.grad_norm` over every parameter gradient (for clipping),
//! then one `opt.adamw` per parameter. Weight decay applies to every parameter, as
//! flame's AdamW does (it ignores fla's `_no_weight_decay` marks; LAYERS.md §12).

use std::collections::HashMap;

use super::*;
use crate::graph::{Node, Op};

struct Differ {
    backward: Vec<BwdNode>,
    span: Span,
    layer: Option<usize>,
    origin: Option<NodeId>,
}

impl Differ {
    fn emit(&mut self, op: BwdOp, inputs: Vec<Value>, outputs: Vec<TensorType>) -> usize {
        self.backward.push(BwdNode { op, inputs, outputs, span: self.span, layer: self.layer, origin: self.origin });
        self.backward.len() - 1
    }

    fn one(&mut self, op: BwdOp, inputs: Vec<Value>, output: TensorType) -> Value {
        Value::Bwd(self.emit(op, inputs, vec![output]), 0)
    }

    /// A VJP node of forward op `name` with one output per differentiable input.
    fn vjp(&mut self, name: &str, inputs: Vec<Value>, outputs: Vec<TensorType>) -> Vec<Value> {
        let count = outputs.len();
        let node = self.emit(BwdOp::Vjp { op: name.to_string(), outputs: count }, inputs, outputs);
        (0..count).map(|i| Value::Bwd(node, i)).collect()
    }

    /// Adds a contribution to a gradient, summing with what is there.
    fn accumulate<K: std::hash::Hash + Eq>(
        &mut self,
        grads: &mut HashMap<K, Value>,
        key: K,
        value: Value,
        ty: &TensorType,
    ) {
        let total = match grads.remove(&key) {
            Some(previous) => self.one(BwdOp::Add, vec![previous, value], ty.clone()),
            None => value,
        };
        grads.insert(key, total);
    }
}

/// The gradient contributions of one forward node: (input, gradient) pairs.
fn rule(d: &mut Differ, graph: &Graph, id: NodeId, node: &Node, dy: Value) -> Vec<(NodeId, Value)> {
    let ty = |input: usize| graph.nodes[node.inputs[input]].ty.clone();
    let fwd = |input: usize| Value::Fwd(node.inputs[input]);
    let input_types = || node.inputs.iter().map(|i| graph.nodes[*i].ty.clone()).collect::<Vec<_>>();
    let all_inputs = |d: &mut Differ, name: &str, extra: Vec<Value>| -> Vec<(NodeId, Value)> {
        let mut inputs = vec![dy];
        inputs.extend(node.inputs.iter().map(|i| Value::Fwd(*i)));
        inputs.extend(extra);
        let grads = d.vjp(name, inputs, input_types());
        node.inputs.iter().copied().zip(grads).collect()
    };
    match &node.op {
        Op::Tokens | Op::Targets | Op::Param(_) | Op::FixedDecay { .. } => Vec::new(),
        Op::Embed => {
            let table = d.one(BwdOp::EmbedScatter, vec![dy, fwd(1)], ty(0));
            vec![(node.inputs[0], table)]
        }
        Op::MatMul => {
            let dx = d.one(BwdOp::MatMulDx, vec![dy, fwd(1)], ty(0));
            let dw = d.one(BwdOp::MatMulDw, vec![dy, fwd(0)], ty(1));
            vec![(node.inputs[0], dx), (node.inputs[1], dw)]
        }
        Op::Add => {
            let db = if ty(0) == ty(1) { dy } else { d.one(BwdOp::SumLeading, vec![dy], ty(1)) };
            vec![(node.inputs[0], dy), (node.inputs[1], db)]
        }
        Op::Mul => {
            let da = d.one(BwdOp::Mul, vec![dy, fwd(1)], ty(0));
            let db = d.one(BwdOp::Mul, vec![dy, fwd(0)], ty(1));
            vec![(node.inputs[0], da), (node.inputs[1], db)]
        }
        Op::Act(act) => vec![(node.inputs[0], d.one(BwdOp::Act(*act), vec![dy, fwd(0)], ty(0)))],
        // σ' = σ(1 − σ): the VJP reads the output.
        Op::Sigmoid => {
            let dx = d.vjp("sigmoid", vec![dy, Value::Fwd(id)], vec![ty(0)]);
            vec![(node.inputs[0], dx[0])]
        }
        Op::OneMinusExp => all_inputs(d, "one_minus_exp", vec![]),
        Op::LogSigmoid { .. } => all_inputs(d, "logsigmoid", vec![]),
        Op::ClampMin { .. } => all_inputs(d, "clamp_min", vec![]),
        Op::Mamba => all_inputs(d, "mamba", vec![]),
        Op::LayerFloor { .. } => all_inputs(d, "layer_floor", vec![]),
        Op::Bound => all_inputs(d, "bound", vec![]),
        Op::RmsNorm { .. } => all_inputs(d, "rms", vec![]),
        Op::RmsNormGated { .. } => all_inputs(d, "rms_gated", vec![]),
        Op::L2Norm { .. } => all_inputs(d, "l2", vec![]),
        Op::SumNorm { .. } => all_inputs(d, "sum_norm", vec![]),
        Op::ShortConv { .. } => all_inputs(d, "conv", vec![]),
        Op::SwiGlu => all_inputs(d, "swiglu", vec![]),
        // The inverse rotation reads nothing of the forward pass.
        Op::Rope { .. } => {
            let dx = d.vjp("rope", vec![dy], vec![ty(0)]);
            vec![(node.inputs[0], dx[0])]
        }
        // The reverse scan reads the inputs and the checkpoints of the scan's forward.
        Op::Scan(_) => all_inputs(d, "scan", vec![Value::Fwd(id)]),
        // Recomputing the probabilities needs the output and its log-sum-exp.
        Op::Attention { .. } => all_inputs(d, "attention", vec![Value::Fwd(id)]),
        Op::Concat => {
            let mut offset = 0;
            let mut out = Vec::new();
            for (index, input) in node.inputs.iter().enumerate() {
                let width = ty(index).width().expect("concatenated widths are fixed");
                out.push((*input, d.one(BwdOp::Slice { offset, width }, vec![dy], ty(index))));
                offset += width;
            }
            out
        }
        Op::Mean => {
            let factor = 1.0 / node.inputs.len() as f64;
            node.inputs
                .iter()
                .map(|input| (*input, d.one(BwdOp::Scale { factor }, vec![dy], graph.nodes[*input].ty.clone())))
                .collect()
        }
        Op::CrossEntropy => {
            let dlogits = d.vjp("cross_entropy", vec![dy, fwd(0), fwd(1)], vec![ty(0)]);
            vec![(node.inputs[0], dlogits[0])]
        }
    }
}

pub fn differentiate(model: &Model, forward: Graph) -> GradGraph {
    let mut d = Differ { backward: Vec::new(), span: Span::default(), layer: None, origin: None };
    let loss = forward.loss.expect("the forward graph has a loss");
    let mut grads: HashMap<NodeId, Value> = HashMap::new();
    let seed = d.one(BwdOp::Seed, vec![], forward.nodes[loss].ty.clone());
    grads.insert(loss, seed);
    let mut param_grads: HashMap<String, Value> = HashMap::new();
    let order: Vec<NodeId> = forward.nodes.iter().map(|(id, _)| id).collect();
    for id in order.into_iter().rev() {
        let Some(dy) = grads.remove(&id) else { continue };
        let node = &forward.nodes[id];
        d.span = node.span;
        d.layer = node.layer;
        d.origin = Some(id);
        if let Op::Param(name) = &node.op {
            d.accumulate(&mut param_grads, name.clone(), dy, &node.ty);
            continue;
        }
        for (input, gradient) in rule(&mut d, &forward, id, node, dy) {
            let input_ty = forward.nodes[input].ty.clone();
            if matches!(forward.nodes[input].op, Op::Tokens | Op::Targets | Op::FixedDecay { .. }) {
                continue;
            }
            d.accumulate(&mut grads, input, gradient, &input_ty);
        }
    }
    // The optimizer step: global norm for clipping, then AdamW per parameter.
    d.span = Span::default();
    d.layer = None;
    d.origin = None;
    let ordered: Vec<(String, Value)> =
        model.params.iter().filter_map(|p| param_grads.get(&p.name).map(|g| (p.name.clone(), *g))).collect();
    let norm = d.one(BwdOp::GradNorm, ordered.iter().map(|(_, g)| *g).collect(), TensorType::f32(Vec::new()));
    for (name, gradient) in &ordered {
        let param = forward
            .nodes
            .iter()
            .find(|(_, n)| matches!(&n.op, Op::Param(p) if p == name))
            .map(|(id, _)| id)
            .expect("a gradient comes from a parameter node");
        d.emit(BwdOp::AdamW { decay: true }, vec![Value::Fwd(param), *gradient, norm], Vec::new());
    }
    let mut saved: Vec<NodeId> = d
        .backward
        .iter()
        .flat_map(|n| n.inputs.iter())
        .filter_map(|v| match v {
            Value::Fwd(id) if !matches!(forward.nodes[*id].op, Op::Param(_) | Op::Tokens | Op::Targets) => Some(*id),
            _ => None,
        })
        .collect();
    saved.sort_by_key(|id| id.index());
    saved.dedup();
    GradGraph { forward, backward: d.backward, param_grads: ordered, saved }
}

/// The grad IR's verifier: every parameter has one gradient of its own shape; every
/// backward input is defined before it is used; every VJP yields one gradient per
/// differentiated input.
pub fn verify(grad: &GradGraph, model: &Model) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let type_of = |v: &Value| -> Option<TensorType> {
        match v {
            Value::Fwd(id) => Some(grad.forward.nodes[*id].ty.clone()),
            Value::Bwd(node, output) => grad.backward.get(*node).and_then(|n| n.outputs.get(*output).cloned()),
        }
    };
    for (index, node) in grad.backward.iter().enumerate() {
        for input in &node.inputs {
            if let Value::Bwd(source, output) = input
                && (*source >= index || grad.backward[*source].outputs.len() <= *output)
            {
                errors.push(format!("%g{index}: input %g{source}.{output} is not defined before it"));
            }
        }
        if let BwdOp::Vjp { outputs, .. } = node.op
            && outputs != node.outputs.len()
        {
            errors.push(format!("%g{index}: {outputs} gradients declared, {} typed", node.outputs.len()));
        }
    }
    for param in &model.params {
        match grad.param_grads.iter().find(|(name, _)| *name == param.name) {
            None => errors.push(format!("{} has no gradient", param.name)),
            Some((_, value)) => {
                let expected: Vec<crate::graph::Dim> =
                    param.shape.iter().map(|n| crate::graph::Dim::Fixed(*n)).collect();
                if type_of(value).map(|t| t.shape) != Some(expected) {
                    errors.push(format!("{}: its gradient has the wrong shape", param.name));
                }
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
