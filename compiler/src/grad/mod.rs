//! The grad IR: the backward pass of a training step, appended to the forward graph by
//! reverse-mode differentiation at the IR level ([`differentiate`]), and the optimizer
//! step after it (global-norm clipping and AdamW, one update per parameter).
//!
//! A backward node is one [`BwdOp`] over values of the forward graph and of earlier
//! backward nodes; it has one or more outputs (a VJP that yields the gradients of several
//! inputs at once, like the recurrence's, is one node with one output per gradient).
//! Every backward node keeps the span and layer of the forward op it came from.
//! [`rules`] holds one VJP per forward op and its residency: which forward values the
//! backward reads (saved) and which it recomputes.

pub mod rules;

use std::fmt::Write;

use hyb_grammar::Span;

use crate::graph::{Graph, NodeId, TensorType};
use crate::ir::{Act, Model};

/// A value: a forward node's output or output `index` of a backward node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Fwd(NodeId),
    Bwd(usize, usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum BwdOp {
    /// `grad.seed`: ∂loss/∂loss = 1.
    Seed,
    /// `grad.add(a, b)`: two contributions to one gradient.
    Add,
    /// `grad.matmul_dx(dy, w)` = dy · w; `grad.matmul_dw(dy, x)` = Σ_{B,T} dyᵀ x.
    MatMulDx,
    MatMulDw,
    /// `grad.sum_leading(dy)`: a broadcast bias's gradient.
    SumLeading,
    /// `grad.mul(dy, other)`.
    Mul,
    /// The VJP of forward op `op` (its name): inputs are dy and the saved forward values;
    /// outputs are the gradients of the op's differentiable inputs, in order.
    Vjp {
        op: String,
        outputs: usize,
    },
    /// `grad.act(dy, x)`.
    Act(Act),
    /// `grad.slice(dy) {offset, width}`: one part of a concatenation.
    Slice {
        offset: u64,
        width: u64,
    },
    /// `grad.scale(dy) {factor}`.
    Scale {
        factor: f64,
    },
    /// `grad.embed_scatter(dy, tokens)`: scatter-add into the table's rows.
    EmbedScatter,
    /// `opt.grad_norm(grads...)`: the global L2 norm of every gradient.
    GradNorm,
    /// `opt.adamw(param, grad, norm)`: updates the parameter and its two moments in place.
    AdamW {
        decay: bool,
    },
}

impl BwdOp {
    pub fn name(&self) -> String {
        match self {
            BwdOp::Seed => "grad.seed".into(),
            BwdOp::Add => "grad.add".into(),
            BwdOp::MatMulDx => "grad.matmul_dx".into(),
            BwdOp::MatMulDw => "grad.matmul_dw".into(),
            BwdOp::SumLeading => "grad.sum_leading".into(),
            BwdOp::Mul => "grad.mul".into(),
            BwdOp::Vjp { op, .. } => format!("grad.{op}"),
            BwdOp::Act(act) => format!("grad.act.{}", act.name()),
            BwdOp::Slice { offset, width } => format!("grad.slice {{offset: {offset}, width: {width}}}"),
            BwdOp::Scale { factor } => format!("grad.scale {{factor: {factor}}}"),
            BwdOp::EmbedScatter => "grad.embed_scatter".into(),
            BwdOp::GradNorm => "opt.grad_norm".into(),
            BwdOp::AdamW { decay } => format!("opt.adamw {{weight_decay: {decay}}}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct BwdNode {
    pub op: BwdOp,
    pub inputs: Vec<Value>,
    /// One type per output (none for an optimizer update, which writes in place).
    pub outputs: Vec<TensorType>,
    pub span: Span,
    pub layer: Option<usize>,
    /// The forward node whose VJP this is (`None` for the seed and the optimizer).
    pub origin: Option<NodeId>,
}

/// The forward graph, its backward and the optimizer step.
pub struct GradGraph {
    pub forward: Graph,
    pub backward: Vec<BwdNode>,
    /// Each parameter's final gradient, by the parameter's name.
    pub param_grads: Vec<(String, Value)>,
    /// Forward values the backward reads (stored between the passes).
    pub saved: Vec<NodeId>,
}

pub fn differentiate(model: &Model, forward: Graph) -> GradGraph {
    rules::differentiate(model, forward)
}

fn value(v: &Value) -> String {
    match v {
        Value::Fwd(id) => format!("%{}", id.index()),
        Value::Bwd(node, 0) => format!("%g{node}"),
        Value::Bwd(node, output) => format!("%g{node}.{output}"),
    }
}

fn type_text(ty: &TensorType) -> String {
    let dims: Vec<String> = ty
        .shape
        .iter()
        .map(|d| match d {
            crate::graph::Dim::Batch => "B".to_string(),
            crate::graph::Dim::Time => "T".to_string(),
            crate::graph::Dim::Fixed(n) => n.to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// `--emit grad`: the saved forward values, then the backward and optimizer nodes.
pub fn print(grad: &GradGraph) -> String {
    let mut out = String::new();
    let saved: Vec<String> = grad.saved.iter().map(|id| format!("%{}", id.index())).collect();
    let _ = writeln!(out, "saved {}", saved.join(", "));
    let mut section = None;
    for (index, node) in grad.backward.iter().enumerate() {
        if section != Some(node.layer) {
            section = Some(node.layer);
            match node.layer {
                Some(layer) => {
                    let _ = writeln!(out, "layer{layer}:");
                }
                None => {
                    let _ = writeln!(out, "model:");
                }
            }
        }
        let inputs: Vec<String> = node.inputs.iter().map(value).collect();
        let types: Vec<String> = node.outputs.iter().map(type_text).collect();
        let ty = if types.is_empty() { String::new() } else { format!(" : {}", types.join(", ")) };
        let _ = writeln!(out, "  %g{index} = {}({}){ty}", node.op.name(), inputs.join(", "));
    }
    out
}
