//! The fusion pass: the graph's elementwise ops grouped into fused chains, and the
//! kernel plan — one step per kernel launch, in graph order.
//!
//! Rule (one, applied everywhere): walking the graph backwards, an elementwise node
//! starts a chain; a producer joins the chain if it is elementwise, of the same type as
//! the chain's output (no broadcasting inside a chain), and every one of its users is
//! already in the chain. A chain becomes one [`pointwise`](hyb_kernels::pointwise)
//! kernel whose expression is the composition of its ops. Elementwise ops that
//! broadcast an operand (a bias, the Mamba gate's per-head parameters, HGRN's floor)
//! stay single steps: one pointwise kernel each, reading that operand per channel.

use std::collections::{HashMap, HashSet};

use hyb_compiler::grad::GradGraph;
use hyb_compiler::graph::{Graph, NodeId, Op};
use hyb_compiler::ir::Act;
use hyb_kernels::pointwise::{Binary, Expr, MapSpec, Unary};

/// One kernel launch of a training step's forward pass.
#[derive(Clone, Debug)]
pub enum Step {
    /// A fused elementwise chain: its graph nodes (the chain's result last), its inputs,
    /// the nodes it writes (the members the backward reads, then the result) — one
    /// expression of `spec` per written node.
    Fused { nodes: Vec<NodeId>, inputs: Vec<NodeId>, outputs: Vec<NodeId>, spec: MapSpec },
    /// A library GEMM.
    Gemm(NodeId),
    /// A generated kernel of its own (scan, attention, RoPE, norm, conv, embedding, loss).
    Kernel(NodeId),
    /// An elementwise op with a broadcast operand (a bias, the Mamba gate's per-head
    /// parameters, HGRN's floor): one pointwise kernel reading those operands per channel.
    Broadcast { node: NodeId, spec: MapSpec, broadcast: Vec<bool> },
    /// Nothing to launch: inputs, parameters, constants.
    Host(NodeId),
}

/// Whether `op` can sit inside a chain (elementwise, no broadcast operand).
fn chainable(graph: &Graph, id: NodeId) -> bool {
    let node = &graph.nodes[id];
    let same_types = node.inputs.iter().all(|i| graph.nodes[*i].ty.shape == node.ty.shape);
    node.op.is_elementwise() && same_types
}

/// An elementwise op as an expression over its inputs (broadcast operands included: the
/// kernel reads those per channel).
pub fn expression(op: &Op, args: Vec<Expr>) -> Expr {
    let mut args = args.into_iter();
    let mut next = || args.next().expect("the op's inputs");
    match op {
        Op::Add => Expr::binary(Binary::Add, next(), next()),
        Op::Mul => Expr::binary(Binary::Mul, next(), next()),
        Op::OneMinusExp => Expr::binary(Binary::Sub, Expr::Const(1.0), Expr::unary(Unary::Exp, next())),
        Op::Sigmoid => Expr::unary(Unary::Sigmoid, next()),
        Op::Act(Act::Silu) => Expr::unary(Unary::Silu, next()),
        Op::Act(Act::Relu) => Expr::unary(Unary::Relu, next()),
        Op::Act(Act::Identity) => next(),
        // elu(x) + 1 = relu(x) + exp(−relu(−x))
        Op::Act(Act::EluP1) => {
            let x = next();
            let negative_part = Expr::unary(Unary::Neg, Expr::unary(Unary::Relu, Expr::unary(Unary::Neg, x.clone())));
            Expr::binary(Binary::Add, Expr::unary(Unary::Relu, x), Expr::unary(Unary::Exp, negative_part))
        }
        Op::LogSigmoid { normalizer } => {
            Expr::binary(Binary::Div, Expr::unary(Unary::LogSigmoid, next()), Expr::Const(*normalizer))
        }
        Op::ClampMin { min } => Expr::binary(Binary::Max, next(), Expr::Const(*min)),
        Op::SwiGlu => Expr::binary(Binary::Mul, Expr::unary(Unary::Silu, next()), next()),
        // −exp(A_log) · softplus(a + dt_bias)
        Op::Mamba => {
            let (a, a_log, dt_bias) = (next(), next(), next());
            Expr::binary(
                Binary::Mul,
                Expr::unary(Unary::Neg, Expr::unary(Unary::Exp, a_log)),
                Expr::unary(Unary::Softplus, Expr::binary(Binary::Add, a, dt_bias)),
            )
        }
        // log(γ + (1 − γ) e^g)
        Op::Bound => {
            let (g, floor) = (next(), next());
            let open = Expr::binary(Binary::Sub, Expr::Const(1.0), floor.clone());
            Expr::unary(
                Unary::Log,
                Expr::binary(Binary::Add, floor, Expr::binary(Binary::Mul, open, Expr::unary(Unary::Exp, g))),
            )
        }
        other => unreachable!("{} is not elementwise", other.name()),
    }
}

/// The kernel plan of a training step's forward pass: chains also write the values the
/// backward reads.
pub fn training_plan(grad: &GradGraph) -> Vec<Step> {
    plan(&grad.forward, &grad.saved.iter().copied().collect())
}

/// The kernel plan of a graph; a chain also writes the members in `keep` (the values
/// the backward reads).
pub fn plan(graph: &Graph, keep: &HashSet<NodeId>) -> Vec<Step> {
    let mut users: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    for (id, node) in graph.nodes.iter() {
        for input in &node.inputs {
            users.entry(*input).or_default().push(id);
        }
    }
    let mut chain_of: HashMap<NodeId, usize> = HashMap::new();
    let mut chains: Vec<Vec<NodeId>> = Vec::new();
    let order: Vec<NodeId> = graph.nodes.iter().map(|(id, _)| id).collect();
    for &root in order.iter().rev() {
        if chain_of.contains_key(&root) || !chainable(graph, root) {
            continue;
        }
        let index = chains.len();
        let mut members: HashSet<NodeId> = HashSet::from([root]);
        let mut frontier = vec![root];
        while let Some(node) = frontier.pop() {
            for input in &graph.nodes[node].inputs {
                let joins = !members.contains(input)
                    && !chain_of.contains_key(input)
                    && chainable(graph, *input)
                    && graph.nodes[*input].ty.shape == graph.nodes[root].ty.shape
                    && users.get(input).is_some_and(|u| u.iter().all(|user| members.contains(user)));
                if joins {
                    members.insert(*input);
                    frontier.push(*input);
                }
            }
        }
        let mut nodes: Vec<NodeId> = members.into_iter().collect();
        nodes.sort_by_key(|id| id.index());
        for node in &nodes {
            chain_of.insert(*node, index);
        }
        chains.push(nodes);
    }
    let mut steps = Vec::new();
    let mut emitted = HashSet::new();
    for &id in &order {
        if let Some(&index) = chain_of.get(&id) {
            // A chain is emitted where its output (its last node) stands.
            if *chains[index].last().expect("non-empty") == id && emitted.insert(index) {
                steps.push(fused_step(graph, &chains[index], keep));
            }
            continue;
        }
        let node = &graph.nodes[id];
        steps.push(match node.op {
            Op::Tokens | Op::Targets | Op::Param(_) | Op::FixedDecay { .. } => Step::Host(id),
            Op::MatMul => Step::Gemm(id),
            _ if node.op.is_elementwise() => broadcast_step(graph, id),
            _ => Step::Kernel(id),
        });
    }
    steps
}

fn fused_step(graph: &Graph, nodes: &[NodeId], keep: &HashSet<NodeId>) -> Step {
    let members: HashSet<NodeId> = nodes.iter().copied().collect();
    let mut inputs: Vec<NodeId> = Vec::new();
    let mut exprs: HashMap<NodeId, Expr> = HashMap::new();
    for &node in nodes {
        let args = graph.nodes[node]
            .inputs
            .iter()
            .map(|input| {
                if members.contains(input) {
                    exprs[input].clone()
                } else {
                    let position = inputs.iter().position(|i| i == input).unwrap_or_else(|| {
                        inputs.push(*input);
                        inputs.len() - 1
                    });
                    Expr::Input(position)
                }
            })
            .collect();
        exprs.insert(node, expression(&graph.nodes[node].op, args));
    }
    let result = *nodes.last().expect("non-empty");
    let mut outputs: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != result && keep.contains(n)).collect();
    outputs.push(result);
    let spec = MapSpec { inputs: inputs.len(), outputs: outputs.iter().map(|n| exprs[n].clone()).collect() };
    Step::Fused { nodes: nodes.to_vec(), inputs, outputs, spec }
}

/// A single elementwise op whose operands of another type are read per channel.
fn broadcast_step(graph: &Graph, id: NodeId) -> Step {
    let node = &graph.nodes[id];
    let broadcast: Vec<bool> = node.inputs.iter().map(|i| graph.nodes[*i].ty.shape != node.ty.shape).collect();
    let expr = expression(&node.op, (0..node.inputs.len()).map(Expr::Input).collect());
    Step::Broadcast { node: id, spec: MapSpec { inputs: node.inputs.len(), outputs: vec![expr] }, broadcast }
}

/// `--emit kernels`: one line per launch.
pub fn print(graph: &Graph, steps: &[Step]) -> String {
    let name = |id: &NodeId| format!("%{}", id.index());
    let mut out = String::new();
    for step in steps {
        let line = match step {
            Step::Host(_) => continue,
            Step::Gemm(id) => format!("gemm {} = {}", name(id), graph.nodes[*id].op.name()),
            Step::Kernel(id) => format!("kernel {} = {}", name(id), graph.nodes[*id].op.name()),
            Step::Broadcast { node, .. } => format!("broadcast {} = {}", name(node), graph.nodes[*node].op.name()),
            Step::Fused { nodes, inputs, outputs, .. } => {
                let ops: Vec<String> = nodes.iter().map(|n| graph.nodes[*n].op.name()).collect();
                let args: Vec<String> = inputs.iter().map(name).collect();
                let written: Vec<String> = outputs.iter().map(name).collect();
                format!("fused {} = [{}]({})", written.join(", "), ops.join(", "), args.join(", "))
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}
