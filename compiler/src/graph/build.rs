//! Model IR → graph IR: the forward pass of a training step, layer by layer.
//!
//! Every linear mixer is built by one function from its generic description — the
//! presets have no code here. Per block: `h += mixer(rmsnorm(h)); h += mlp(rmsnorm(h))`;
//! then the final norm, the LM head (the embedding when tied) and the loss.

use hyb_grammar::Span;

use super::*;
use crate::ir::{
    self, AttentionMixer, Beta, Combine, Gate, GateParam, LinearMixer, LowerBound, MixerKind, Model, OutputNorm,
    QkNorm, StateKind, Update,
};

pub fn build(model: &Model) -> Graph {
    let params: ParamShapes = model.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect();
    let mut b =
        Builder { graph: Graph::default(), params, eps: model.config.norm_eps, span: Span::default(), layer: None };
    let tokens = b.add(Op::Tokens, vec![]);
    let table = b.param("model.embeddings.weight");
    let mut h = b.add(Op::Embed, vec![table, tokens]);
    for (index, layer) in model.layers.iter().enumerate() {
        b.span = layer.span;
        b.layer = Some(index);
        let prefix = format!("model.layers.{index}.");
        let normed = b.rms(h, &format!("{prefix}attn_norm.weight"), 1);
        let mixed = b.mixer(&model.mixers[layer.mixer].kind, normed, &format!("{prefix}attn."), index);
        h = b.add(Op::Add, vec![h, mixed]);
        let normed = b.rms(h, &format!("{prefix}mlp_norm.weight"), 1);
        let gate = b.matmul(normed, &format!("{prefix}mlp.gate_proj.weight"));
        let up = b.matmul(normed, &format!("{prefix}mlp.up_proj.weight"));
        let act = b.add(Op::SwiGlu, vec![gate, up]);
        let down = b.matmul(act, &format!("{prefix}mlp.down_proj.weight"));
        h = b.add(Op::Add, vec![h, down]);
    }
    b.span = Span::default();
    b.layer = None;
    let normed = b.rms(h, "model.norm.weight", 1);
    let head = if model.config.tie_embeddings { "model.embeddings.weight" } else { "lm_head.weight" };
    let logits = b.matmul(normed, head);
    let targets = b.add(Op::Targets, vec![]);
    let loss = b.add(Op::CrossEntropy, vec![logits, targets]);
    b.graph.loss = Some(loss);
    b.graph
}

struct Builder {
    graph: Graph,
    params: ParamShapes,
    eps: f64,
    span: Span,
    layer: Option<usize>,
}

impl Builder {
    fn add(&mut self, op: Op, inputs: Vec<NodeId>) -> NodeId {
        self.graph.add(op, inputs, self.span, self.layer, &self.params)
    }

    fn param(&mut self, name: &str) -> NodeId {
        self.add(Op::Param(name.to_string()), vec![])
    }

    fn matmul(&mut self, x: NodeId, weight: &str) -> NodeId {
        let w = self.param(weight);
        self.add(Op::MatMul, vec![x, w])
    }

    fn rms(&mut self, x: NodeId, weight: &str, groups: u64) -> NodeId {
        let w = self.param(weight);
        self.add(Op::RmsNorm { eps: self.eps, groups }, vec![x, w])
    }

    fn act(&mut self, x: NodeId, act: ir::Act) -> NodeId {
        if act == ir::Act::Identity { x } else { self.add(Op::Act(act), vec![x]) }
    }

    fn mixer(&mut self, kind: &MixerKind, x: NodeId, prefix: &str, layer: usize) -> NodeId {
        match kind {
            MixerKind::Linear(linear) => {
                let heads = self.linear(linear, x, prefix, layer);
                self.matmul(heads, &format!("{prefix}o_proj.weight"))
            }
            MixerKind::Attention(attention) => {
                let heads = self.attention(attention, x, prefix);
                self.matmul(heads, &format!("{prefix}o_proj.weight"))
            }
            MixerKind::Routed(routed) => {
                let mut outputs = Vec::new();
                for branch in &routed.branches {
                    let branch_prefix = format!("{prefix}{}.", branch.name);
                    let out = match (&branch.kind, routed.combine) {
                        (MixerKind::Linear(linear), Combine::Concat) => self.linear(linear, x, &branch_prefix, layer),
                        (MixerKind::Attention(attention), Combine::Concat) => {
                            self.attention(attention, x, &branch_prefix)
                        }
                        (kind, Combine::Mean) => {
                            let out = self.mixer(kind, x, &branch_prefix, layer);
                            self.rms(out, &format!("{branch_prefix}combine_norm.weight"), 1)
                        }
                        (MixerKind::Routed(_), Combine::Concat) => unreachable!("sema rejects nested routing"),
                    };
                    outputs.push(out);
                }
                match routed.combine {
                    Combine::Concat => {
                        let all = self.add(Op::Concat, outputs);
                        self.matmul(all, &format!("{prefix}o_proj.weight"))
                    }
                    Combine::Mean => self.add(Op::Mean, outputs),
                }
            }
        }
    }

    /// A projected feature stream: `act(conv_act(conv(x @ W)))`.
    fn stream(
        &mut self,
        linear: &LinearMixer,
        x: NodeId,
        prefix: &str,
        proj: &str,
        stream: &str,
        act: ir::Act,
    ) -> NodeId {
        let mut y = self.matmul(x, &format!("{prefix}{proj}.weight"));
        if let Some(conv) = linear.conv {
            y = self.conv(y, conv, prefix, stream);
        }
        self.act(y, act)
    }

    /// `conv_act(conv(y))` with the stream's `{stream}_conv1d` weights.
    fn conv(&mut self, y: NodeId, conv: ir::Conv, prefix: &str, stream: &str) -> NodeId {
        let w = self.param(&format!("{prefix}{stream}_conv1d.weight"));
        let mut inputs = vec![y, w];
        if conv.bias {
            inputs.push(self.param(&format!("{prefix}{stream}_conv1d.bias")));
        }
        let y = self.add(Op::ShortConv { size: conv.size }, inputs);
        self.act(y, conv.act)
    }

    /// Everything of a linear mixer up to (not including) its output projection.
    fn linear(&mut self, linear: &LinearMixer, x: NodeId, prefix: &str, layer: usize) -> NodeId {
        let hgrn_names = linear.tie_key_to_gate || linear.state == StateKind::Vector;
        let query = linear.state == StateKind::Matrix;
        let mut q = query.then(|| self.stream(linear, x, prefix, "q_proj", "q", linear.qk_act));
        let value_name = if hgrn_names { "i" } else { "v" };
        let v = self.stream(linear, x, prefix, &format!("{value_name}_proj"), value_name, linear.v_act);
        let mut k = (!hgrn_names).then(|| self.stream(linear, x, prefix, "k_proj", "k", linear.qk_act));
        let g = self.gate(linear, x, prefix, layer);
        if linear.tie_key_to_gate {
            let g = g.expect("a tied key has a data-dependent gate");
            k = Some(self.add(Op::OneMinusExp, vec![g]));
        }
        let mut k = k.expect("a key, projected or tied");
        let norm: Option<fn(u64) -> Op> = match linear.qk_norm {
            QkNorm::None => None,
            QkNorm::L2 => Some(|groups| Op::L2Norm { groups }),
            QkNorm::Sum => Some(|groups| Op::SumNorm { groups }),
        };
        if let Some(norm) = norm {
            q = q.map(|q| self.add(norm(linear.heads), vec![q]));
            k = self.add(norm(linear.k_heads), vec![k]);
        }
        if let Some(theta) = linear.rope {
            q = q.map(|q| self.add(Op::Rope { heads: linear.heads, theta }, vec![q]));
            k = self.add(Op::Rope { heads: linear.k_heads, theta }, vec![k]);
        }
        let beta = match linear.update {
            Update::Delta { beta: Beta::Sigmoid, negative_eigenvalues } => {
                let logits = self.matmul(x, &format!("{prefix}b_proj.weight"));
                let beta = self.add(Op::Sigmoid, vec![logits]);
                // fla's allow_neg_eigval: β = 2σ(·), so I − βkkᵀ may have eigenvalue −1.
                Some(if negative_eigenvalues { self.add(Op::Add, vec![beta, beta]) } else { beta })
            }
            Update::Delta { beta: Beta::One, .. } | Update::Additive => None,
        };
        let out = self.scan(linear, q, k, v, g, beta);
        self.output(linear, x, out, prefix)
    }

    /// The log-decays, with HGRN's layer-wise floor, if the mixer decays.
    fn gate(&mut self, linear: &LinearMixer, x: NodeId, prefix: &str, layer: usize) -> Option<NodeId> {
        let mut g = match linear.gate {
            Gate::None => return None,
            Gate::Fixed => self.add(Op::FixedDecay { heads: linear.state_heads() }, vec![]),
            Gate::Vector(GateParam::LogSigmoid { normalizer, low_rank: Some(_) }) => {
                let down = self.matmul(x, &format!("{prefix}gk_proj.0.weight"));
                let up = self.matmul(down, &format!("{prefix}gk_proj.1.weight"));
                let bias = self.param(&format!("{prefix}gk_proj.1.bias"));
                let z = self.add(Op::Add, vec![up, bias]);
                self.add(Op::LogSigmoid { normalizer }, vec![z])
            }
            Gate::Vector(GateParam::LogSigmoid { normalizer, low_rank: None }) => {
                let f = self.stream(linear, x, prefix, "f_proj", "f", ir::Act::Identity);
                self.add(Op::LogSigmoid { normalizer }, vec![f])
            }
            Gate::Vector(GateParam::Mamba) => unreachable!("sema rejects vector(mamba)"),
            Gate::Scalar(param) => {
                let a = self.matmul(x, &format!("{prefix}a_proj.weight"));
                match param {
                    GateParam::Mamba => {
                        let a_log = self.param(&format!("{prefix}A_log"));
                        let dt_bias = self.param(&format!("{prefix}dt_bias"));
                        self.add(Op::Mamba, vec![a, a_log, dt_bias])
                    }
                    GateParam::LogSigmoid { normalizer, .. } => self.add(Op::LogSigmoid { normalizer }, vec![a]),
                }
            }
        };
        if let Some(min) = linear.clamp_min {
            g = self.add(Op::ClampMin { min }, vec![g]);
        }
        // HGRN: layer 0 is unbounded; later layers are floored by γ_layer.
        if linear.lower_bound == LowerBound::Layerwise && layer > 0 {
            let bounds = self.param("model.lower_bounds");
            let floor = self.add(Op::LayerFloor { layer }, vec![bounds]);
            g = self.add(Op::Bound, vec![g, floor]);
        }
        Some(g)
    }

    fn scan(
        &mut self,
        linear: &LinearMixer,
        q: Option<NodeId>,
        k: NodeId,
        v: NodeId,
        g: Option<NodeId>,
        beta: Option<NodeId>,
    ) -> NodeId {
        // A vector state of width D is D one-by-one states read without a query.
        let vector = linear.state == StateKind::Vector;
        let (state_heads, head_k_dim, head_v_dim) = if vector {
            (linear.head_k_dim, 1, 1)
        } else {
            (linear.state_heads(), linear.head_k_dim, linear.head_v_dim)
        };
        let decay = match linear.gate {
            Gate::None => ScanDecay::None,
            Gate::Fixed => ScanDecay::PerHead,
            Gate::Scalar(_) => ScanDecay::Scalar,
            Gate::Vector(_) if vector => ScanDecay::Scalar,
            Gate::Vector(_) => ScanDecay::Vector,
        };
        let attrs = ScanAttrs {
            delta: matches!(linear.update, Update::Delta { .. }),
            decay,
            query: q.is_some(),
            beta: beta.is_some(),
            state_heads,
            q_per_state: (linear.heads / linear.k_heads).max(1),
            states_per_key: (linear.v_heads / linear.k_heads).max(1),
            head_k_dim,
            head_v_dim,
            scale: linear.scale,
        };
        let inputs = q.into_iter().chain([k, v]).chain(g).chain(beta).collect();
        self.add(Op::Scan(attrs), inputs)
    }

    /// The output norm and gate of a linear mixer.
    fn output(&mut self, linear: &LinearMixer, x: NodeId, out: NodeId, prefix: &str) -> NodeId {
        let groups = match linear.output_norm {
            OutputNorm::None => {
                return match linear.output_gate {
                    Some(act) => {
                        let z = self.matmul(x, &format!("{prefix}g_proj.weight"));
                        let gate = self.act(z, act);
                        self.add(Op::Mul, vec![out, gate])
                    }
                    None => out,
                };
            }
            OutputNorm::PerHead => linear.out_heads(),
            OutputNorm::Full => 1,
        };
        let norm_name = crate::ir::params::output_norm_name(linear);
        match linear.output_gate {
            Some(act) => {
                let z = self.matmul(x, &format!("{prefix}g_proj.weight"));
                let w = self.param(&format!("{prefix}{norm_name}.weight"));
                self.add(Op::RmsNormGated { eps: self.eps, groups, act }, vec![out, z, w])
            }
            None => self.rms(out, &format!("{prefix}{norm_name}.weight"), groups),
        }
    }

    fn attention(&mut self, attention: &AttentionMixer, x: NodeId, prefix: &str) -> NodeId {
        let mut qkv = Vec::new();
        for (name, heads) in [("q", attention.heads), ("k", attention.kv_heads), ("v", attention.kv_heads)] {
            let mut y = self.matmul(x, &format!("{prefix}{name}_proj.weight"));
            if attention.qkv_bias {
                let bias = self.param(&format!("{prefix}{name}_proj.bias"));
                y = self.add(Op::Add, vec![y, bias]);
            }
            if let Some(conv) = attention.conv {
                y = self.conv(y, conv, prefix, name);
            }
            if attention.qk_norm && name != "v" {
                y = self.rms(y, &format!("{prefix}{name}_norm.weight"), heads);
            }
            if name != "v" {
                y = self.add(Op::Rope { heads, theta: attention.rope_theta }, vec![y]);
            }
            qkv.push(y);
        }
        let scale = (attention.head_dim as f64).powf(-0.5);
        let op = Op::Attention {
            heads: attention.heads,
            kv_heads: attention.kv_heads,
            head_dim: attention.head_dim,
            window: attention.window,
            scale,
        };
        self.add(op, qkv)
    }
}
