//! The buffer plan: every intermediate of one training step (forward, backward,
//! optimizer) placed in one arena by liveness, at a concrete batch × sequence length.
//!
//! The schedule is the forward nodes in order, then the backward nodes in order. A value
//! lives from the step that makes it to the last step that reads it; values the backward
//! reads (the grad IR's `saved`) therefore live across the boundary. Parameters and the
//! AdamW moments are resident outside the arena. The recurrence also keeps its state
//! checkpoints (one state every `Target::checkpoint_interval` tokens) and attention its log-sum-exp, both with its
//! output. Offsets are assigned first-fit in order of definition, 64-byte aligned; the
//! arena's size is the planned peak.

use std::fmt::Write;

use crate::grad::{BwdOp, GradGraph, Value};
use crate::graph::{Dim, NodeId, Op, TensorType};
use hyb_target::Target;

const ALIGN: u64 = 64;

#[derive(Clone, Debug)]
pub struct Buffer {
    pub value: Value,
    pub bytes: u64,
    pub offset: u64,
    /// Steps `[first, last]` of the schedule during which it is live.
    pub first: usize,
    pub last: usize,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub batch: u64,
    pub seq_len: u64,
    pub buffers: Vec<Buffer>,
    pub arena_bytes: u64,
    pub param_bytes: u64,
    /// AdamW's two moments.
    pub optimizer_bytes: u64,
}

impl Plan {
    pub fn peak_bytes(&self) -> u64 {
        self.arena_bytes + self.param_bytes + self.optimizer_bytes
    }
}

/// A value's bytes, rounded up to a multiple of 4 so that every buffer (and what an op
/// keeps after its output: f32 checkpoints, log-sum-exps) starts 4-byte aligned when
/// values are stored as bf16.
fn bytes(ty: &TensorType, batch: u64, seq_len: u64) -> u64 {
    let elements: u64 = ty
        .shape
        .iter()
        .map(|d| match d {
            Dim::Batch => batch,
            Dim::Time => seq_len,
            Dim::Fixed(n) => *n,
        })
        .product();
    (elements * ty.elem.bytes()).next_multiple_of(4)
}

/// Extra bytes an op keeps with its output for the backward.
fn auxiliary(op: &Op, batch: u64, seq_len: u64, target: Target) -> u64 {
    match op {
        Op::Scan(a) => {
            let checkpoints = seq_len.div_ceil(target.checkpoint_interval(seq_len as usize));
            batch * a.state_heads * checkpoints * a.head_k_dim * a.head_v_dim * 4
        }
        Op::Attention { heads, .. } => batch * heads * seq_len * 4,
        _ => 0,
    }
}

pub fn plan(grad: &GradGraph, batch: u64, seq_len: u64, target: Target) -> Plan {
    plan_scheduled(grad, batch, seq_len, target, &|id| id.index(), Pass::Training)
}

/// What a plan holds memory for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The forward, the backward and AdamW's moments.
    Training,
    /// The forward alone (evaluation, generation): no backward buffers, no moments, and
    /// no forward value kept alive for a backward. The loss's gradient is still a buffer
    /// (the fused cross-entropy writes it), live only at the loss.
    Forward,
}

/// The plan when forward node `id` runs at step `run_at(id)` rather than at its own
/// index — a fused chain runs where its last node stands, so the chain's inputs must
/// stay live until then.
pub fn plan_scheduled(
    grad: &GradGraph,
    batch: u64,
    seq_len: u64,
    target: Target,
    run_at: &dyn Fn(NodeId) -> usize,
    pass: Pass,
) -> Plan {
    let forward_steps = grad.forward.nodes.len();
    let training = pass == Pass::Training;
    let step_of = |v: &Value| match v {
        Value::Fwd(id) => run_at(*id),
        Value::Bwd(node, _) => forward_steps + node,
    };
    // Last use of every value.
    let mut last_use: std::collections::HashMap<Value, usize> = std::collections::HashMap::new();
    for (id, node) in grad.forward.nodes.iter() {
        for input in &node.inputs {
            let user = run_at(id);
            let entry = last_use.entry(Value::Fwd(*input)).or_insert(user);
            *entry = (*entry).max(user);
        }
    }
    for (index, node) in grad.backward.iter().enumerate().filter(|_| training) {
        for input in &node.inputs {
            last_use.insert(*input, forward_steps + index);
        }
    }
    let mut buffers = Vec::new();
    for (id, node) in grad.forward.nodes.iter() {
        if matches!(node.op, Op::Param(_)) {
            continue;
        }
        let value = Value::Fwd(id);
        // The forward kernels write what a backward would need (the scan's checkpoints,
        // attention's log-sum-exp) in either pass.
        let size = bytes(&node.ty, batch, seq_len) + auxiliary(&node.op, batch, seq_len, target);
        let first = run_at(id);
        let last = last_use.get(&value).copied().unwrap_or(first).max(first);
        buffers.push(Buffer { value, bytes: size, offset: 0, first, last });
    }
    let loss_step = grad.forward.loss.map(run_at);
    for (index, node) in grad.backward.iter().enumerate() {
        let loss_gradient = matches!(&node.op, BwdOp::Vjp { op, .. } if op == "cross_entropy");
        if !training && !loss_gradient {
            continue;
        }
        for (output, ty) in node.outputs.iter().enumerate() {
            let value = Value::Bwd(index, output);
            let (first, last) = match (training, loss_step) {
                (false, Some(at)) => (at, at),
                _ => {
                    let step = step_of(&value);
                    (step, last_use.get(&value).copied().unwrap_or(step))
                }
            };
            buffers.push(Buffer { value, bytes: bytes(ty, batch, seq_len), offset: 0, first, last });
        }
    }
    let arena_bytes = assign_offsets(&mut buffers);
    let param_bytes: u64 = grad
        .forward
        .nodes
        .values()
        .filter_map(|n| match &n.op {
            Op::Param(name) => Some((name, bytes(&n.ty, batch, seq_len))),
            _ => None,
        })
        .collect::<std::collections::HashMap<_, _>>()
        .values()
        .sum();
    let optimizer_bytes = if training { 2 * param_bytes } else { 0 };
    Plan { batch, seq_len, buffers, arena_bytes, param_bytes, optimizer_bytes }
}

/// First-fit: each buffer, in order of definition, at the lowest aligned offset that
/// overlaps no buffer live at the same time. Returns the arena's size.
fn assign_offsets(buffers: &mut [Buffer]) -> u64 {
    let mut placed: Vec<(u64, u64, usize, usize)> = Vec::new(); // (offset, end, first, last)
    let mut size = 0;
    for buffer in buffers.iter_mut() {
        let mut live: Vec<(u64, u64)> = placed
            .iter()
            .filter(|(_, _, first, last)| *first <= buffer.last && buffer.first <= *last)
            .map(|(offset, end, _, _)| (*offset, *end))
            .collect();
        live.sort_unstable();
        let mut offset = 0;
        for (start, end) in live {
            if offset + buffer.bytes <= start {
                break;
            }
            offset = offset.max(end.div_ceil(ALIGN) * ALIGN);
        }
        buffer.offset = offset;
        let end = offset + buffer.bytes;
        size = size.max(end);
        placed.push((offset, end, buffer.first, buffer.last));
    }
    size
}

/// `--emit plan`: a summary, then every buffer with its offset, size and live range.
/// Checks the plan: no two buffers live at the same time share bytes, and each lies
/// inside the arena. Every violation, as text.
pub fn verify(plan: &Plan) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut by_offset: Vec<&Buffer> = plan.buffers.iter().collect();
    by_offset.sort_by_key(|b| b.offset);
    for (index, a) in by_offset.iter().enumerate() {
        if a.offset + a.bytes > plan.arena_bytes {
            errors.push(format!("{:?} ends past the arena ({} bytes)", a.value, plan.arena_bytes));
        }
        // Only buffers starting before `a` ends can overlap it.
        for b in by_offset[index + 1..].iter().take_while(|b| b.offset < a.offset + a.bytes) {
            if a.first <= b.last && b.first <= a.last && a.bytes > 0 && b.bytes > 0 {
                errors.push(format!("{:?} and {:?} are live together and share bytes", a.value, b.value));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

pub fn print(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan batch={} seq_len={} arena={} params={} adamw_moments={} peak={}",
        plan.batch,
        plan.seq_len,
        plan.arena_bytes,
        plan.param_bytes,
        plan.optimizer_bytes,
        plan.peak_bytes()
    );
    for buffer in &plan.buffers {
        let name = match buffer.value {
            Value::Fwd(id) => format!("%{}", id.index()),
            Value::Bwd(node, 0) => format!("%g{node}"),
            Value::Bwd(node, output) => format!("%g{node}.{output}"),
        };
        let _ = writeln!(
            out,
            "  {name} offset={} bytes={} live=[{}, {}]",
            buffer.offset, buffer.bytes, buffer.first, buffer.last
        );
    }
    out
}
