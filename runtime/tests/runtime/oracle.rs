//! The independent oracle: the whole model written plainly in burn (NdArray backend,
//! f64, reverse-mode Autodiff), read off the model IR — not off the graph IR the
//! compiler builds — with every mixer as its token-by-token recurrence (LAYERS.md):
//! a matrix state per head updated additively or by the delta rule, a vector state
//! (HGRN) updated elementwise, attention as a full masked softmax.

use std::collections::HashMap;

use burn::backend::ndarray::NdArrayDevice;
use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Bool, Tensor, TensorData, activation};
use hyb_compiler::ir::{
    Act, AttentionMixer, Beta, Combine, Gate, GateParam, LinearMixer, LowerBound, MixerKind, Model, OutputNorm, QkNorm,
    StateKind, Update,
};

type A = Autodiff<NdArray<f64>>;
type T1 = Tensor<A, 1>;
type T3 = Tensor<A, 3>;
type T4 = Tensor<A, 4>;

pub struct Oracle<'m> {
    model: &'m Model,
    leaves: HashMap<String, T1>,
    device: NdArrayDevice,
}

impl<'m> Oracle<'m> {
    pub fn new(model: &'m Model, values: &HashMap<String, Vec<f64>>) -> Oracle<'m> {
        let device = NdArrayDevice::Cpu;
        let leaves = model
            .params
            .iter()
            .map(|p| {
                let data = TensorData::new(values[&p.name].clone(), [values[&p.name].len()]);
                (p.name.clone(), Tensor::<A, 1>::from_data(data, &device).require_grad())
            })
            .collect();
        Oracle { model, leaves, device }
    }

    /// The loss and the gradient of every parameter.
    pub fn loss_and_grads(&self, tokens: &[i32], batch: usize, seq_len: usize) -> (f64, HashMap<String, Vec<f64>>) {
        let loss = self.loss(tokens, batch, seq_len);
        let value = loss.to_data().to_vec::<f64>().expect("f64")[0];
        let grads = loss.backward();
        let by_name = self
            .leaves
            .iter()
            .map(|(name, leaf)| {
                let grad = leaf.grad(&grads).map(|g| g.into_data().to_vec::<f64>().expect("f64"));
                (name.clone(), grad.unwrap_or_else(|| vec![0.0; leaf.dims()[0]]))
            })
            .collect();
        (value, by_name)
    }

    fn p1(&self, name: &str) -> T1 {
        self.leaves.get(name).unwrap_or_else(|| panic!("no parameter {name}")).clone()
    }

    fn p2(&self, name: &str) -> Tensor<A, 2> {
        let shape = &self.model.params.iter().find(|p| p.name == name).expect("a parameter").shape;
        self.p1(name).reshape([shape[0] as usize, shape[1..].iter().product::<u64>() as usize])
    }

    fn constant<const D: usize>(&self, values: Vec<f64>, shape: [usize; D]) -> Tensor<A, D> {
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    /// The next-token loss: position t predicts token t + 1, the last position nothing.
    pub fn loss(&self, tokens: &[i32], batch: usize, seq_len: usize) -> T1 {
        let config = &self.model.config;
        let vocab = config.vocab as usize;
        let d = config.d_model as usize;
        let ids = Tensor::<A, 1, burn::tensor::Int>::from_data(
            TensorData::new(tokens.iter().map(|t| *t as i64).collect::<Vec<_>>(), [tokens.len()]),
            &self.device,
        );
        let mut h: T3 = self.p2("model.embeddings.weight").select(0, ids).reshape([batch, seq_len, d]);
        for (index, layer) in self.model.layers.iter().enumerate() {
            let prefix = format!("model.layers.{index}.");
            let normed = self.rms(h.clone(), &format!("{prefix}attn_norm.weight"), 1);
            let kind = &self.model.mixers[layer.mixer].kind;
            h = h + self.mixer(kind, normed, &format!("{prefix}attn."), index);
            let normed = self.rms(h.clone(), &format!("{prefix}mlp_norm.weight"), 1);
            let gate = linear(normed.clone(), self.p2(&format!("{prefix}mlp.gate_proj.weight")));
            let up = linear(normed, self.p2(&format!("{prefix}mlp.up_proj.weight")));
            h = h + linear(silu(gate) * up, self.p2(&format!("{prefix}mlp.down_proj.weight")));
        }
        let normed = self.rms(h, "model.norm.weight", 1);
        let head = if config.tie_embeddings { "model.embeddings.weight" } else { "lm_head.weight" };
        let logits = linear(normed, self.p2(head));
        let targets = hyb_runtime::Batch::next_token_targets(tokens, seq_len);
        self.cross_entropy(logits, &targets, batch, seq_len, vocab)
    }

    /// Mean cross-entropy over the positions with a target (`targets[b, t] ≥ 0`).
    fn cross_entropy(&self, logits: T3, targets: &[i32], batch: usize, seq_len: usize, vocab: usize) -> T1 {
        let mut onehot = vec![0.0; batch * seq_len * vocab];
        let mut count = 0;
        for (row, target) in targets.iter().enumerate() {
            if *target >= 0 {
                onehot[row * vocab + *target as usize] = 1.0;
                count += 1;
            }
        }
        let onehot = self.constant(onehot, [batch, seq_len, vocab]);
        let has_target = onehot.clone().sum_dim(2);
        let max = logits.clone().max_dim(2).detach();
        let lse = (logits.clone() - max.clone()).exp().sum_dim(2).log() + max;
        let picked = (logits * onehot).sum_dim(2);
        ((lse - picked) * has_target).sum().reshape([1]) / count.max(1) as f64
    }

    fn rms(&self, x: T3, weight: &str, groups: usize) -> T3 {
        rms_norm(x, self.p1(weight), groups, self.model.config.norm_eps)
    }

    fn mixer(&self, kind: &MixerKind, x: T3, prefix: &str, layer: usize) -> T3 {
        match kind {
            MixerKind::Linear(m) => {
                let heads = self.linear_mixer(m, x, prefix, layer);
                linear(heads, self.p2(&format!("{prefix}o_proj.weight")))
            }
            MixerKind::Attention(a) => {
                let heads = self.attention(a, x, prefix);
                linear(heads, self.p2(&format!("{prefix}o_proj.weight")))
            }
            MixerKind::Routed(routed) => {
                let mut outputs = Vec::new();
                for branch in &routed.branches {
                    let p = format!("{prefix}{}.", branch.name);
                    outputs.push(match (&branch.kind, routed.combine) {
                        (MixerKind::Linear(m), Combine::Concat) => self.linear_mixer(m, x.clone(), &p, layer),
                        (MixerKind::Attention(a), Combine::Concat) => self.attention(a, x.clone(), &p),
                        (kind, Combine::Mean) => {
                            let out = self.mixer(kind, x.clone(), &p, layer);
                            self.rms(out, &format!("{p}combine_norm.weight"), 1)
                        }
                        (MixerKind::Routed(_), Combine::Concat) => unreachable!(),
                    });
                }
                match routed.combine {
                    Combine::Concat => linear(Tensor::cat(outputs, 2), self.p2(&format!("{prefix}o_proj.weight"))),
                    Combine::Mean => {
                        let n = outputs.len() as f64;
                        outputs.into_iter().reduce(|a, b| a + b).expect("branches") / n
                    }
                }
            }
        }
    }

    /// `act(conv_act(conv(x · Wᵀ)))`.
    fn stream(&self, m: &LinearMixer, x: T3, prefix: &str, proj: &str, name: &str, act: Act) -> T3 {
        let mut y = linear(x, self.p2(&format!("{prefix}{proj}.weight")));
        if let Some(conv) = m.conv {
            let bias = conv.bias.then(|| self.p1(&format!("{prefix}{name}_conv1d.bias")));
            y = apply(causal_conv(y, self.p2(&format!("{prefix}{name}_conv1d.weight")), bias), conv.act);
        }
        apply(y, act)
    }

    /// Log-decays `[B, T, width]` of a data-dependent gate (with clamp and floor).
    fn gate(&self, m: &LinearMixer, x: T3, prefix: &str, layer: usize) -> Option<T3> {
        let mut g = match m.gate {
            Gate::None | Gate::Fixed => return None,
            Gate::Vector(GateParam::LogSigmoid { normalizer, low_rank: Some(_) }) => {
                let down = linear(x, self.p2(&format!("{prefix}gk_proj.0.weight")));
                let up = linear(down, self.p2(&format!("{prefix}gk_proj.1.weight")));
                let bias = self.p1(&format!("{prefix}gk_proj.1.bias"));
                let width = bias.dims()[0];
                log_sigmoid(up + bias.reshape([1, 1, width])) / normalizer
            }
            Gate::Vector(GateParam::LogSigmoid { normalizer, low_rank: None }) => {
                log_sigmoid(self.stream(m, x, prefix, "f_proj", "f", Act::Identity)) / normalizer
            }
            Gate::Vector(GateParam::Mamba) => unreachable!(),
            Gate::Scalar(GateParam::LogSigmoid { normalizer, .. }) => {
                log_sigmoid(linear(x, self.p2(&format!("{prefix}a_proj.weight")))) / normalizer
            }
            Gate::Scalar(GateParam::Mamba) => {
                let a = linear(x, self.p2(&format!("{prefix}a_proj.weight")));
                let heads = a.dims()[2];
                let a_log = self.p1(&format!("{prefix}A_log")).reshape([1, 1, heads]);
                let dt_bias = self.p1(&format!("{prefix}dt_bias")).reshape([1, 1, heads]);
                -(a_log.exp()) * softplus(a + dt_bias)
            }
        };
        if let Some(min) = m.clamp_min {
            g = g.clamp_min(min);
        }
        if m.lower_bound == LowerBound::Layerwise && layer > 0 {
            // γ_l = cumsum(softmax(lower_bounds, 0))[l] − softmax[0] = Σ_{1≤i≤l} p_i
            let bounds = self.p2("model.lower_bounds");
            let width = bounds.dims()[1];
            let p = activation::softmax(bounds, 0);
            let gamma = p.narrow(0, 1, layer).sum_dim(0).reshape([1, 1, width]);
            g = (gamma.clone() + (-gamma + 1.0) * g.exp()).log();
        }
        Some(g)
    }

    fn linear_mixer(&self, m: &LinearMixer, x: T3, prefix: &str, layer: usize) -> T3 {
        let [batch, seq_len, _] = x.dims();
        let hgrn_names = m.tie_key_to_gate || m.state == StateKind::Vector;
        let mut q = (m.state == StateKind::Matrix).then(|| self.stream(m, x.clone(), prefix, "q_proj", "q", m.qk_act));
        let (v_proj, v_name) = if hgrn_names { ("i_proj", "i") } else { ("v_proj", "v") };
        let v = self.stream(m, x.clone(), prefix, v_proj, v_name, m.v_act);
        let g = self.gate(m, x.clone(), prefix, layer);
        let mut k = if m.tie_key_to_gate {
            -(g.clone().expect("a tied key has a gate").exp()) + 1.0
        } else {
            self.stream(m, x.clone(), prefix, "k_proj", "k", m.qk_act)
        };
        let (heads, k_heads) = (m.heads as usize, m.k_heads as usize);
        let norm = |t: T3, groups: usize| match m.qk_norm {
            QkNorm::None => t,
            QkNorm::L2 => grouped(t, groups, |r| r.clone() / ((r.clone() * r).sum_dim(3) + 1e-6).sqrt()),
            QkNorm::Sum => grouped(t, groups, |r| r.clone() / r.sum_dim(3)),
        };
        q = q.map(|q| norm(q, heads));
        k = norm(k, k_heads);
        if let Some(theta) = m.rope {
            q = q.map(|q| self.rope(q, heads, theta));
            k = self.rope(k, k_heads, theta);
        }
        let beta = match m.update {
            Update::Delta { beta: Beta::Sigmoid, negative_eigenvalues } => {
                let b = sigmoid(linear(x.clone(), self.p2(&format!("{prefix}b_proj.weight"))));
                Some(if negative_eigenvalues { b * 2.0 } else { b })
            }
            Update::Delta { beta: Beta::One, .. } => None,
            Update::Additive => None,
        };
        let out = match m.state {
            StateKind::Vector => vector_recurrence(k, v, g.expect("HGRN has a gate"), m.scale),
            StateKind::Matrix => self.matrix_recurrence(m, q, k, v, g, beta, batch, seq_len),
        };
        self.output(m, x, out, prefix)
    }

    /// `S_t = α_t ⊙ S_{t−1} + k vᵀ` or the delta rule; `o_t = scale · S_tᵀ q_t`.
    #[allow(clippy::too_many_arguments)]
    fn matrix_recurrence(
        &self,
        m: &LinearMixer,
        q: Option<T3>,
        k: T3,
        v: T3,
        g: Option<T3>,
        beta: Option<T3>,
        batch: usize,
        seq_len: usize,
    ) -> T3 {
        let hs = m.state_heads() as usize;
        let hk = m.k_heads as usize;
        let per_key = hs / hk;
        let q_per_state = (m.heads / m.k_heads).max(1) as usize;
        let (dk, dv) = (m.head_k_dim as usize, m.head_v_dim as usize);
        let at = |t: &T3, s: usize, heads: usize, width: usize| -> T3 {
            t.clone().narrow(1, s, 1).reshape([batch, heads, width])
        };
        // Per state head h: its key head is h / per_key.
        let to_states =
            |t: T3, width: usize| -> T3 { t.unsqueeze_dim::<4>(2).repeat_dim(2, per_key).reshape([batch, hs, width]) };
        let fixed: Option<T4> = (m.gate == Gate::Fixed).then(|| {
            let decays = (0..hs).map(|h| 1.0 - 2f64.powi(-5 - h as i32)).collect();
            self.constant(decays, [1, hs, 1, 1])
        });
        let mut state: T4 = Tensor::zeros([batch, hs, dk, dv], &self.device);
        let mut outputs = Vec::new();
        for s in 0..seq_len {
            let k_t = to_states(at(&k, s, hk, dk), dk).reshape([batch, hs, dk, 1]);
            let v_t = at(&v, s, hs, dv).reshape([batch, hs, 1, dv]);
            let alpha: Option<T4> = match (&g, m.gate) {
                (Some(g), Gate::Scalar(_)) => Some(at(g, s, hs, 1).exp().reshape([batch, hs, 1, 1])),
                (Some(g), Gate::Vector(_)) => Some(to_states(at(g, s, hk, dk), dk).exp().reshape([batch, hs, dk, 1])),
                _ => fixed.clone(),
            };
            let decayed = match alpha {
                Some(alpha) => state * alpha,
                None => state,
            };
            state = match m.update {
                Update::Additive => decayed + k_t.clone() * v_t,
                Update::Delta { .. } => {
                    // u = β (v − S'ᵀ k)
                    let read = (decayed.clone() * k_t.clone()).sum_dim(2); // [B, Hs, 1, dv]
                    let mut u = v_t - read;
                    if let Some(beta) = &beta {
                        u = u * at(beta, s, hs, 1).reshape([batch, hs, 1, 1]);
                    }
                    decayed + k_t * u
                }
            };
            // Query heads (h / per_key) · q_per_state + r read state h into head h · q_per_state + r.
            let q_t = q.as_ref().expect("a matrix state has a query");
            let q_t = at(q_t, s, hk * q_per_state, dk)
                .reshape([batch, hk, 1, q_per_state, dk])
                .repeat_dim(2, per_key)
                .reshape([batch, hs, q_per_state, dk]);
            let o = q_t.matmul(state.clone()) * m.scale; // [B, Hs, q_per_state, dv]
            outputs.push(o.reshape([batch, 1, hs * q_per_state * dv]));
        }
        Tensor::cat(outputs, 1)
    }

    fn output(&self, m: &LinearMixer, x: T3, out: T3, prefix: &str) -> T3 {
        let groups = match m.output_norm {
            OutputNorm::None => {
                return match m.output_gate {
                    Some(act) => out * apply(linear(x, self.p2(&format!("{prefix}g_proj.weight"))), act),
                    None => out,
                };
            }
            OutputNorm::PerHead => m.out_heads() as usize,
            OutputNorm::Full => 1,
        };
        let name = hyb_compiler::ir::params::output_norm_name(m);
        let normed = self.rms(out, &format!("{prefix}{name}.weight"), groups);
        match m.output_gate {
            Some(act) => normed * apply(linear(x, self.p2(&format!("{prefix}g_proj.weight"))), act),
            None => normed,
        }
    }

    fn attention(&self, a: &AttentionMixer, x: T3, prefix: &str) -> T3 {
        let [batch, seq_len, _] = x.dims();
        let (heads, kv_heads, dim) = (a.heads as usize, a.kv_heads as usize, a.head_dim as usize);
        let project = |name: &str, h: usize| {
            let mut y = linear(x.clone(), self.p2(&format!("{prefix}{name}_proj.weight")));
            if a.qkv_bias {
                y = y + self.p1(&format!("{prefix}{name}_proj.bias")).reshape([1, 1, h * dim]);
            }
            if let Some(conv) = a.conv {
                let bias = conv.bias.then(|| self.p1(&format!("{prefix}{name}_conv1d.bias")));
                y = apply(causal_conv(y, self.p2(&format!("{prefix}{name}_conv1d.weight")), bias), conv.act);
            }
            if a.qk_norm && name != "v" {
                y = self.rms(y, &format!("{prefix}{name}_norm.weight"), h);
            }
            if name != "v" {
                y = self.rope(y, h, a.rope_theta);
            }
            y.reshape([batch, seq_len, h, dim]).swap_dims(1, 2)
        };
        let group = heads / kv_heads;
        let expand = |t: T4| t.unsqueeze_dim::<5>(2).repeat_dim(2, group).reshape([batch, heads, seq_len, dim]);
        let q = project("q", heads);
        let k = expand(project("k", kv_heads));
        let v = expand(project("v", kv_heads));
        let scores = q.matmul(k.swap_dims(2, 3)) * (dim as f64).powf(-0.5);
        let mut masked = vec![false; seq_len * seq_len];
        for t in 0..seq_len {
            for s in 0..seq_len {
                let outside = a.window.is_some_and(|w| s + (w as usize) <= t);
                masked[t * seq_len + s] = s > t || outside;
            }
        }
        let mask = Tensor::<A, 2, Bool>::from_data(TensorData::new(masked, [seq_len, seq_len]), &self.device)
            .reshape([1, 1, seq_len, seq_len])
            .expand([batch, heads, seq_len, seq_len]);
        let p = activation::softmax(scores.mask_fill(mask, -1e30), 3);
        p.matmul(v).swap_dims(1, 2).reshape([batch, seq_len, heads * dim])
    }

    /// Rotate-half RoPE per head: angle `t · θ^(−2i/D)`.
    fn rope(&self, x: T3, heads: usize, theta: f64) -> T3 {
        let [batch, seq_len, width] = x.dims();
        let dim = width / heads;
        let half = dim / 2;
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for t in 0..seq_len {
            for i in 0..half {
                let angle = t as f64 * theta.powf(-2.0 * i as f64 / dim as f64);
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = self.constant(cos, [1, seq_len, 1, half]);
        let sin = self.constant(sin, [1, seq_len, 1, half]);
        let x = x.reshape([batch, seq_len, heads, dim]);
        let (x1, x2) = (x.clone().narrow(3, 0, half), x.narrow(3, half, half));
        let y1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
        let y2 = x2 * cos + x1 * sin;
        Tensor::cat(vec![y1, y2], 3).reshape([batch, seq_len, width])
    }
}

/// HGRN: `h_t = α_t ⊙ h_{t−1} + k_t ⊙ v_t` per channel, `o_t = scale · h_t`.
fn vector_recurrence(k: T3, v: T3, g: T3, scale: f64) -> T3 {
    let [batch, seq_len, width] = v.dims();
    let mut state: Tensor<A, 3> = Tensor::zeros([batch, 1, width], &v.device());
    let mut outputs = Vec::new();
    for s in 0..seq_len {
        let at = |t: &T3| t.clone().narrow(1, s, 1);
        state = state * at(&g).exp() + at(&k) * at(&v);
        outputs.push(state.clone() * scale);
    }
    Tensor::cat(outputs, 1)
}

/// `x[..., in] · w[out, in]ᵀ`.
fn linear(x: T3, w: Tensor<A, 2>) -> T3 {
    let [batch, seq_len, inner] = x.dims();
    let out = w.dims()[0];
    x.reshape([batch * seq_len, inner]).matmul(w.transpose()).reshape([batch, seq_len, out])
}

/// Applies `f` to `[B, T, groups, width / groups]`.
fn grouped(x: T3, groups: usize, f: impl Fn(T4) -> T4) -> T3 {
    let [batch, seq_len, width] = x.dims();
    f(x.reshape([batch, seq_len, groups, width / groups])).reshape([batch, seq_len, width])
}

fn rms_norm(x: T3, w: T1, groups: usize, eps: f64) -> T3 {
    let width = w.dims()[0];
    grouped(x, groups, |r| {
        let inverse = ((r.clone() * r.clone()).mean_dim(3) + eps).sqrt().recip();
        r * inverse * w.clone().reshape([1, 1, 1, width])
    })
}

/// Depthwise causal convolution, the last tap on the current token:
/// `y[t] = Σ_j w[:, j] ⊙ x[t − (K − 1) + j]`, each shifted copy of x made by a constant
/// shift matrix (burn's autodiff of a padded `cat` + `narrow` gave wrong gradients).
fn causal_conv(x: T3, w: Tensor<A, 2>, bias: Option<T1>) -> T3 {
    let [batch, seq_len, channels] = x.dims();
    let size = w.dims()[1];
    let columns = x.clone().swap_dims(1, 2).reshape([batch * channels, seq_len]);
    let mut y: T3 = Tensor::zeros([batch, seq_len, channels], &x.device());
    for j in 0..size {
        let delay = size - 1 - j;
        // shift[s, t] = 1 where s = t − delay.
        let mut shift = vec![0.0; seq_len * seq_len];
        for t in delay..seq_len {
            shift[(t - delay) * seq_len + t] = 1.0;
        }
        let shift = Tensor::<A, 2>::from_data(TensorData::new(shift, [seq_len, seq_len]), &x.device());
        let shifted = columns.clone().matmul(shift).reshape([batch, channels, seq_len]).swap_dims(1, 2);
        y = y + shifted * w.clone().narrow(1, j, 1).reshape([1, 1, channels]);
    }
    match bias {
        Some(b) => y + b.reshape([1, 1, channels]),
        None => y,
    }
}

fn sigmoid(x: T3) -> T3 {
    (-x).exp().add_scalar(1.0).recip()
}

fn silu(x: T3) -> T3 {
    x.clone() * sigmoid(x)
}

/// `max(x, 0) + log(1 + exp(−|x|))`.
fn softplus(x: T3) -> T3 {
    x.clone().clamp_min(0.0) + (-x.abs()).exp().add_scalar(1.0).log()
}

fn log_sigmoid(x: T3) -> T3 {
    -softplus(-x)
}

fn apply(x: T3, act: Act) -> T3 {
    match act {
        Act::Identity => x,
        Act::Silu => silu(x),
        Act::Relu => x.clamp_min(0.0),
        // elu(x) + 1: x + 1 above zero, exp(x) below.
        Act::EluP1 => x.clone().clamp_min(0.0) + x.clamp_max(0.0).exp(),
    }
}
