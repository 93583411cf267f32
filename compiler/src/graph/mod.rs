//! The graph IR: the forward pass of one training step as tensor ops, built from the
//! model IR ([`build::build`]); the stage after it differentiates it.
//!
//! A [`Graph`] is an arena of [`Node`]s in topological order (every input precedes its
//! user). A node is one op of the closed [`Op`] enum, its inputs, and its type: a shape
//! of symbolic batch and time dims and fixed dims ([`Dim`]), and an element type. Ops are
//! namespaced by family (`linear.matmul`, `norm.rms`, `gate.mamba`, `mix.scan`, ...);
//! [`infer`] is the one shape rule per op, used by the builder and re-checked by
//! [`verify`]. Every node keeps the span of the `.hyb` text its layer came from.
//!
//! Semantics of the less obvious ops:
//! - `linear.matmul(x, w)`: `x[..., in] · wᵀ` with `w` stored `[out, in]` (PyTorch's).
//! - `norm.rms{groups}` / `norm.rms_gated{groups}`: RMSNorm over each of `groups` equal
//!   slices of the last dim (per head), with one weight of the slice's width;
//!   the gated form multiplies by `act(z)` after the weight.
//! - `gate.*` produce natural-log decays `g ≤ 0`; `gate.bound(g, γ)` is HGRN's
//!   `log(γ + (1 − γ) e^g)`; `gate.layer_floor{layer}` is γ_l from `model.lower_bounds`.
//! - `ew.one_minus_exp(g)` is the tied key `1 − e^g`.
//! - `mix.scan` is the linear-attention recurrence of `hyb_kernels::scan` (inputs q?,
//!   k, v, g?, β?), `mix.attention` causal softmax attention.
//! - `loss.cross_entropy(logits, targets)`: the mean over positions with a target
//!   (`targets[b, t] ≥ 0`); for language modelling the targets are the tokens shifted
//!   by one (the last position has none), for a recall task only the answers.

pub mod build;
pub mod print;
pub mod verify;

use hyb_grammar::Span;

use crate::arena::{Arena, Handle};
use crate::ir::Act;

pub type NodeId = Handle<Node>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Batch,
    Time,
    Fixed(u64),
}

/// Element types (f32, bf16, i32): the target crate's, one type for every stage.
pub use hyb_target::Elem;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    pub shape: Vec<Dim>,
    pub elem: Elem,
}

impl TensorType {
    pub fn f32(shape: Vec<Dim>) -> TensorType {
        TensorType { shape, elem: Elem::F32 }
    }

    /// The last dim's size, if fixed.
    pub fn width(&self) -> Option<u64> {
        match self.shape.last() {
            Some(Dim::Fixed(n)) => Some(*n),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: TensorType,
    pub span: Span,
    /// The layer whose computation this is; `None` for the embedding, head and loss.
    pub layer: Option<usize>,
}

/// The recurrence's attributes (see `hyb_kernels::scan::ScanSpec`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanAttrs {
    pub delta: bool,
    pub decay: ScanDecay,
    pub query: bool,
    pub beta: bool,
    pub state_heads: u64,
    pub q_per_state: u64,
    pub states_per_key: u64,
    pub head_k_dim: u64,
    pub head_v_dim: u64,
    pub scale: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanDecay {
    None,
    PerHead,
    Scalar,
    Vector,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `input.tokens`: `[B, T]` token ids.
    Tokens,
    /// `input.targets`: `[B, T]` the token each position predicts; negative for none.
    Targets,
    /// `param NAME`: a trainable tensor of the model IR.
    Param(String),
    /// `embed.gather(table, tokens)`.
    Embed,
    /// `linear.matmul(x, w)`.
    MatMul,
    /// `ew.add(a, b)`, with `b` broadcast over leading dims (biases).
    Add,
    /// `ew.mul(a, b)`.
    Mul,
    /// `ew.one_minus_exp(g)`.
    OneMinusExp,
    /// `act.NAME(x)`.
    Act(Act),
    /// `act.sigmoid(x)`.
    Sigmoid,
    /// `norm.rms(x, w)`.
    RmsNorm { eps: f64, groups: u64 },
    /// `norm.rms_gated(x, z, w)`: `rms(x) · w · act(z)`.
    RmsNormGated { eps: f64, groups: u64, act: Act },
    /// `norm.l2(x)` per group.
    L2Norm { groups: u64 },
    /// `norm.sum(x)` per group (divide by the sum).
    SumNorm { groups: u64 },
    /// `conv.causal(x, w[, bias])`: depthwise, last tap on the current token.
    ShortConv { size: u64 },
    /// `gate.logsigmoid(z)`: `logsigmoid(z) / normalizer`.
    LogSigmoid { normalizer: f64 },
    /// `gate.mamba(a, A_log, dt_bias)`: `−exp(A_log) · softplus(a + dt_bias)`.
    Mamba,
    /// `gate.clamp_min(g)`.
    ClampMin { min: f64 },
    /// `gate.layer_floor(lower_bounds)`: γ of one layer.
    LayerFloor { layer: usize },
    /// `gate.bound(g, γ)`.
    Bound,
    /// `gate.fixed`: RetNet's `log(1 − 2^(−5−h))` per head.
    FixedDecay { heads: u64 },
    /// `pos.rope(x)`.
    Rope { heads: u64, theta: f64 },
    /// `mix.scan(q?, k, v, g?, β?)`.
    Scan(ScanAttrs),
    /// `mix.attention(q, k, v)`.
    Attention { heads: u64, kv_heads: u64, head_dim: u64, window: Option<u64>, scale: f64 },
    /// `route.concat(xs...)` along the last dim.
    Concat,
    /// `route.mean(xs...)`.
    Mean,
    /// `mlp.swiglu(gate, up)`: `silu(gate) · up`.
    SwiGlu,
    /// `loss.cross_entropy(logits, targets)`: a scalar.
    CrossEntropy,
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Tokens => "input.tokens".into(),
            Op::Targets => "input.targets".into(),
            Op::Param(name) => format!("param {name}"),
            Op::Embed => "embed.gather".into(),
            Op::MatMul => "linear.matmul".into(),
            Op::Add => "ew.add".into(),
            Op::Mul => "ew.mul".into(),
            Op::OneMinusExp => "ew.one_minus_exp".into(),
            Op::Act(act) => format!("act.{}", act.name()),
            Op::Sigmoid => "act.sigmoid".into(),
            Op::RmsNorm { .. } => "norm.rms".into(),
            Op::RmsNormGated { .. } => "norm.rms_gated".into(),
            Op::L2Norm { .. } => "norm.l2".into(),
            Op::SumNorm { .. } => "norm.sum".into(),
            Op::ShortConv { .. } => "conv.causal".into(),
            Op::LogSigmoid { .. } => "gate.logsigmoid".into(),
            Op::Mamba => "gate.mamba".into(),
            Op::ClampMin { .. } => "gate.clamp_min".into(),
            Op::LayerFloor { .. } => "gate.layer_floor".into(),
            Op::Bound => "gate.bound".into(),
            Op::FixedDecay { .. } => "gate.fixed".into(),
            Op::Rope { .. } => "pos.rope".into(),
            Op::Scan(_) => "mix.scan".into(),
            Op::Attention { .. } => "mix.attention".into(),
            Op::Concat => "route.concat".into(),
            Op::Mean => "route.mean".into(),
            Op::SwiGlu => "mlp.swiglu".into(),
            Op::CrossEntropy => "loss.cross_entropy".into(),
        }
    }

    /// Whether the op is elementwise (the fusion pass merges chains of these).
    pub fn is_elementwise(&self) -> bool {
        match self {
            Op::Add | Op::Mul | Op::OneMinusExp | Op::Act(_) | Op::Sigmoid | Op::LogSigmoid { .. } | Op::Mamba => true,
            Op::ClampMin { .. } | Op::Bound | Op::SwiGlu => true,
            Op::Tokens | Op::Targets | Op::Param(_) | Op::Embed | Op::MatMul => false,
            Op::RmsNorm { .. } | Op::RmsNormGated { .. } => false,
            Op::L2Norm { .. } | Op::SumNorm { .. } | Op::ShortConv { .. } | Op::LayerFloor { .. } => false,
            Op::FixedDecay { .. } | Op::Rope { .. } | Op::Scan(_) | Op::Attention { .. } => false,
            Op::Concat | Op::Mean | Op::CrossEntropy => false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Arena<Node>,
    /// The scalar loss.
    pub loss: Option<NodeId>,
}

impl Graph {
    /// Appends a node, its type given by [`infer`]; an inference failure is a builder bug.
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        span: Span,
        layer: Option<usize>,
        params: &ParamShapes,
    ) -> NodeId {
        let types: Vec<&TensorType> = inputs.iter().map(|i| &self.nodes[*i].ty).collect();
        let ty = infer(&op, &types, params).unwrap_or_else(|e| panic!("graph builder bug at {}: {e}", op.name()));
        self.nodes.alloc(Node { op, inputs, ty, span, layer })
    }
}

/// Parameter shapes by name, for typing `param` nodes.
pub type ParamShapes = std::collections::HashMap<String, Vec<u64>>;

fn fixed(shape: &[u64]) -> Vec<Dim> {
    shape.iter().map(|n| Dim::Fixed(*n)).collect()
}

/// `[B, T, n]`.
pub fn btn(n: u64) -> TensorType {
    TensorType::f32(vec![Dim::Batch, Dim::Time, Dim::Fixed(n)])
}

/// The shape rule of every op.
pub fn infer(op: &Op, inputs: &[&TensorType], params: &ParamShapes) -> Result<TensorType, String> {
    let arity =
        |n: usize| if inputs.len() == n { Ok(()) } else { Err(format!("takes {n} inputs, got {}", inputs.len())) };
    let width = |i: usize| inputs[i].width().ok_or_else(|| "the last dim is not fixed".to_string());
    let same = |a: usize, b: usize| {
        if inputs[a] == inputs[b] {
            Ok(())
        } else {
            Err(format!("input types differ: {:?} vs {:?}", inputs[a], inputs[b]))
        }
    };
    let divides = |groups: u64, n: u64| {
        if groups > 0 && n.is_multiple_of(groups) { Ok(()) } else { Err(format!("{groups} groups do not divide {n}")) }
    };
    match op {
        Op::Tokens | Op::Targets => {
            arity(0)?;
            Ok(TensorType { shape: vec![Dim::Batch, Dim::Time], elem: Elem::I32 })
        }
        Op::Param(name) => {
            arity(0)?;
            let shape = params.get(name).ok_or_else(|| format!("no parameter `{name}`"))?;
            Ok(TensorType::f32(fixed(shape)))
        }
        Op::Embed => {
            arity(2)?;
            let table = &inputs[0].shape;
            if inputs[1].elem != Elem::I32 || table.len() != 2 {
                return Err("embed takes a [V, d] table and token ids".into());
            }
            Ok(btn(width(0)?))
        }
        Op::MatMul => {
            arity(2)?;
            let [Dim::Fixed(out), Dim::Fixed(inner)] = inputs[1].shape[..] else {
                return Err("the weight must be [out, in]".into());
            };
            if width(0)? != inner {
                return Err(format!("x has width {}, the weight takes {inner}", width(0)?));
            }
            let mut shape = inputs[0].shape.clone();
            *shape.last_mut().expect("a width") = Dim::Fixed(out);
            Ok(TensorType::f32(shape))
        }
        Op::Add | Op::Mul => {
            arity(2)?;
            if inputs[0] != inputs[1] && !(inputs[1].shape.len() == 1 && width(0)? == width(1)?) {
                return Err(format!("cannot combine {:?} and {:?}", inputs[0].shape, inputs[1].shape));
            }
            Ok(inputs[0].clone())
        }
        Op::OneMinusExp | Op::Act(_) | Op::Sigmoid | Op::LogSigmoid { .. } | Op::ClampMin { .. } => {
            arity(1)?;
            Ok(inputs[0].clone())
        }
        Op::L2Norm { groups } | Op::SumNorm { groups } => {
            arity(1)?;
            divides(*groups, width(0)?)?;
            Ok(inputs[0].clone())
        }
        Op::RmsNorm { groups, .. } => {
            arity(2)?;
            divides(*groups, width(0)?)?;
            if width(1)? * groups != width(0)? {
                return Err(format!("weight of width {} for {} groups of {}", width(1)?, groups, width(0)? / groups));
            }
            Ok(inputs[0].clone())
        }
        Op::RmsNormGated { groups, .. } => {
            arity(3)?;
            same(0, 1)?;
            divides(*groups, width(0)?)?;
            if width(2)? * groups != width(0)? {
                return Err("gated norm weight does not fit the groups".into());
            }
            Ok(inputs[0].clone())
        }
        Op::ShortConv { size } => {
            if inputs.len() != 2 && inputs.len() != 3 {
                return Err("conv takes x, weight and an optional bias".into());
            }
            if inputs[1].shape != fixed(&[width(0)?, 1, *size]) {
                return Err(format!(
                    "conv weight {:?} does not fit width {} and size {size}",
                    inputs[1].shape,
                    width(0)?
                ));
            }
            Ok(inputs[0].clone())
        }
        Op::Mamba => {
            arity(3)?;
            if width(1)? != width(0)? || width(2)? != width(0)? {
                return Err("A_log and dt_bias must have one value per head".into());
            }
            Ok(inputs[0].clone())
        }
        Op::LayerFloor { .. } => {
            arity(1)?;
            Ok(TensorType::f32(vec![Dim::Fixed(width(0)?)]))
        }
        Op::Bound => {
            arity(2)?;
            if inputs[1].shape.len() != 1 || width(1)? != width(0)? {
                return Err("the floor must have the gate's width".into());
            }
            Ok(inputs[0].clone())
        }
        Op::FixedDecay { heads } => {
            arity(0)?;
            Ok(TensorType::f32(vec![Dim::Fixed(*heads)]))
        }
        Op::Rope { heads, .. } => {
            arity(1)?;
            divides(*heads, width(0)?)?;
            if (width(0)? / heads) % 2 != 0 {
                return Err("RoPE needs an even head dim".into());
            }
            Ok(inputs[0].clone())
        }
        Op::Scan(attrs) => scan_type(attrs, inputs),
        Op::Attention { heads, kv_heads, head_dim, .. } => {
            arity(3)?;
            if width(0)? != heads * head_dim || width(1)? != kv_heads * head_dim || width(2)? != kv_heads * head_dim {
                return Err("q, k, v widths do not match the heads".into());
            }
            Ok(inputs[0].clone())
        }
        Op::Concat => {
            if inputs.is_empty() {
                return Err("concat of nothing".into());
            }
            let mut total = 0;
            for index in 0..inputs.len() {
                total += width(index)?;
            }
            Ok(btn(total))
        }
        Op::Mean => {
            if inputs.is_empty() {
                return Err("mean of nothing".into());
            }
            for index in 1..inputs.len() {
                same(0, index)?;
            }
            Ok(inputs[0].clone())
        }
        Op::SwiGlu => {
            arity(2)?;
            same(0, 1)?;
            Ok(inputs[0].clone())
        }
        Op::CrossEntropy => {
            arity(2)?;
            if inputs[1].elem != Elem::I32 {
                return Err("cross-entropy targets are token ids".into());
            }
            Ok(TensorType::f32(Vec::new()))
        }
    }
}

fn scan_type(attrs: &ScanAttrs, inputs: &[&TensorType]) -> Result<TensorType, String> {
    let expected = usize::from(attrs.query) + 2 + usize::from(attrs.decay != ScanDecay::None) + usize::from(attrs.beta);
    if inputs.len() != expected {
        return Err(format!("scan takes {expected} inputs, got {}", inputs.len()));
    }
    let key_heads = attrs.state_heads / attrs.states_per_key;
    let mut next = 0;
    let mut take = || {
        next += 1;
        inputs[next - 1]
    };
    if attrs.query {
        let q = take();
        if q.width() != Some(key_heads * attrs.q_per_state * attrs.head_k_dim) {
            return Err("q width does not match the heads".into());
        }
    }
    let k = take();
    let v = take();
    if k.width() != Some(key_heads * attrs.head_k_dim) || v.width() != Some(attrs.state_heads * attrs.head_v_dim) {
        return Err("k or v width does not match the heads".into());
    }
    Ok(btn(attrs.state_heads * attrs.q_per_state * attrs.head_v_dim))
}
