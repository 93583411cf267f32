//! The step program's forward instructions: one mapping per step of the fusion pass's
//! kernel plan — GEMMs, fused and broadcast pointwise chains, and each op with a kernel
//! of its own (embedding, norms, convolution, the layer floor, RoPE, the recurrence,
//! attention, routing, the loss).

use hyb_compiler::grad::{BwdOp, Value};
use hyb_compiler::graph::{NodeId, Op};
use hyb_kernels::key::KernelKey;
use hyb_kernels::pointwise::{Binary, Expr, MapSpec};

use crate::fuse::Step;
use crate::program::{Arg, Builder, Input, Instr, L2_EPS, LOSS, Share, Unsupported};
use crate::program::{heads_view, rows_of, silu_gate};

impl Builder<'_> {
    /// The forward's instructions from the kernel plan.
    pub fn forward(&mut self, steps: &[Step]) -> Result<(), Unsupported> {
        for step in steps {
            match step {
                Step::Host(id) => self.host(*id),
                Step::Gemm(id) => {
                    let node = &self.graph.nodes[*id];
                    let (x, w) = (self.fwd(node.inputs[0]), self.fwd(node.inputs[1]));
                    self.gemm_xwt(x, w, self.fwd(*id));
                }
                Step::Fused { inputs, outputs, spec, .. } => {
                    let inputs: Vec<Arg> = inputs.iter().map(|i| self.fwd(*i)).collect();
                    let outputs: Vec<Arg> = outputs.iter().map(|o| self.fwd(*o)).collect();
                    self.map(spec, &inputs, &outputs, &vec![false; inputs.len()]);
                }
                Step::Broadcast { node, spec, broadcast } => {
                    let inputs: Vec<Arg> = self.graph.nodes[*node].inputs.iter().map(|i| self.fwd(*i)).collect();
                    self.map(spec, &inputs, &[self.fwd(*node)], broadcast);
                }
                Step::Kernel(id) => self.kernel(*id)?,
            }
        }
        Ok(())
    }

    fn host(&mut self, id: NodeId) {
        match &self.graph.nodes[id].op {
            Op::Tokens => {
                let tokens = self.fwd(id);
                self.push(Instr::Input(Input::Tokens, tokens));
            }
            Op::Targets if self.decode.is_some() => {}
            Op::Targets => {
                let targets = self.fwd(id);
                self.push(Instr::Input(Input::Targets, targets));
            }
            // RetNet: log(1 − 2^(−5−h)).
            Op::FixedDecay { heads } => {
                let values = (0..*heads).map(|h| (1.0 - 2f64.powi(-5 - h as i32)).ln() as f32).collect();
                let decays = self.fwd(id);
                self.push(Instr::Fill(decays, values));
            }
            _ => {}
        }
    }

    fn kernel(&mut self, id: NodeId) -> Result<(), Unsupported> {
        let node = self.graph.nodes[id].clone();
        let input = |b: &Self, i: usize| b.fwd(node.inputs[i]);
        let out = self.fwd(id);
        match &node.op {
            Op::Embed => {
                let func = self.kernels.get(KernelKey::Gather);
                self.call(func, vec![input(self, 0), input(self, 1), out]);
            }
            Op::RmsNorm { eps, groups } => {
                let func = self.kernels.get(KernelKey::RmsForward { eps: *eps, gated: false });
                let x = rows_of(&input(self, 0), *groups);
                let y = out.view(x.dims.clone()).batched();
                self.call(func, vec![x, input(self, 1), y]);
            }
            Op::RmsNormGated { eps, groups, act } => {
                silu_gate(*act)?;
                let func = self.kernels.get(KernelKey::RmsForward { eps: *eps, gated: true });
                let x = rows_of(&input(self, 0), *groups);
                let z = input(self, 1).view(x.dims.clone()).batched();
                let y = out.view(x.dims.clone()).batched();
                self.call(func, vec![x, z, input(self, 2), y]);
            }
            Op::L2Norm { groups } => {
                let func = self.kernels.get(KernelKey::L2Forward { eps: L2_EPS });
                let x = rows_of(&input(self, 0), *groups);
                let y = out.view(x.dims.clone()).batched();
                self.call(func, vec![x, y]);
            }
            Op::SumNorm { groups } => {
                let func = self.kernels.get(KernelKey::SumNormForward);
                let x = rows_of(&input(self, 0), *groups);
                let y = out.view(x.dims.clone()).batched();
                self.call(func, vec![x, y]);
            }
            Op::ShortConv { size } if self.decode.is_some() => {
                let bias = node.inputs.len() == 3;
                let func = self.kernels.get(KernelKey::ConvStep { bias });
                let mut args: Vec<Arg> = (0..node.inputs.len()).map(|i| input(self, i)).collect();
                let channels = *out.dims.last().expect("a width");
                args.push(self.cache(vec![self.batch, *size as usize, channels]));
                args.push(out);
                self.call(func, args);
            }
            Op::ShortConv { .. } => {
                let bias = node.inputs.len() == 3;
                let func = self.kernels.get(KernelKey::ConvForward { bias });
                let mut args: Vec<Arg> = (0..node.inputs.len()).map(|i| input(self, i)).collect();
                args.push(out);
                self.call(func, args);
            }
            Op::LayerFloor { layer } => {
                let func = self.kernels.get(KernelKey::FloorForward { layer: *layer as u64 });
                self.call(func, vec![input(self, 0), out]);
            }
            Op::Rope { heads, theta } if self.decode.is_some() => {
                let func = self.kernels.get(KernelKey::RopeAt { theta: *theta });
                let x = heads_view(&input(self, 0), *heads);
                let y = out.view(x.dims.clone()).batched();
                let position = self.position();
                self.call(func, vec![x, position, y]);
            }
            Op::Rope { heads, theta } => {
                let func = self.kernels.get(KernelKey::Rope { theta: *theta, inverse: false });
                let x = heads_view(&input(self, 0), *heads);
                let y = out.view(x.dims.clone()).batched();
                self.call(func, vec![x, y]);
            }
            Op::Scan(attrs) if self.decode.is_some() => {
                let spec = crate::scan_spec(attrs);
                let func = self.kernels.get(KernelKey::ScanStep { spec });
                let mut args = self.scan_inputs(&node);
                let views = self.scan_views(attrs);
                args.push(out.view(views.o.clone()).batched());
                args.push(self.cache(views.state.clone()));
                self.call(func, args);
            }
            Op::Scan(attrs) => {
                let spec = crate::scan_spec(attrs);
                let chunk = self.target.checkpoint_interval(self.seq_len);
                let func = self.kernels.get(KernelKey::ScanTrain { spec, chunk });
                let mut args = self.scan_inputs(&node);
                let views = self.scan_views(attrs);
                args.push(out.view(views.o.clone()).batched());
                let state = self.temp(views.state.clone(), Share::Split);
                self.push(Instr::Zero(state.clone()));
                args.push(state);
                args.push(self.checkpoints(id, &views));
                self.call(func, args);
            }
            Op::Attention { heads, kv_heads, head_dim, window, scale } if let Some(max_len) = self.decode => {
                let spec = crate::attention_spec(*heads, *kv_heads, *head_dim, *window, *scale);
                let func = self.kernels.get(KernelKey::AttentionDecode { spec });
                let (q, k, v) = self.attention_inputs(&node, *heads, *kv_heads, *head_dim);
                let o = out.view(q.dims.clone()).batched();
                let cache_dims = vec![self.batch, max_len, *kv_heads as usize, *head_dim as usize];
                let (k_cache, v_cache) = (self.cache(cache_dims.clone()), self.cache(cache_dims));
                let position = self.position();
                self.call(func, vec![q, k, v, k_cache, v_cache, position, o]);
            }
            Op::Attention { heads, kv_heads, head_dim, window, scale } => {
                let spec = crate::attention_spec(*heads, *kv_heads, *head_dim, *window, *scale);
                let func = self.kernels.get(KernelKey::AttentionForward { spec });
                let (q, k, v) = self.attention_inputs(&node, *heads, *kv_heads, *head_dim);
                let o = out.view(q.dims.clone()).batched();
                let lse = self.log_sum_exp(id, *heads);
                self.call(func, vec![q, k, v, o, lse]);
            }
            Op::Concat => {
                let total = *out.dims.last().expect("a width");
                let rows = out.len() / total;
                let mut column = 0;
                for i in 0..node.inputs.len() {
                    let src = input(self, i);
                    let width = *src.dims.last().expect("a width");
                    let dst = out.view(vec![rows, total]);
                    self.columns(src.view(vec![rows, width]), dst, 0, column, width);
                    column += width;
                }
            }
            Op::Mean => {
                let n = node.inputs.len();
                let sum = (1..n).fold(Expr::Input(0), |acc, i| Expr::binary(Binary::Add, acc, Expr::Input(i)));
                let spec =
                    MapSpec { inputs: n, outputs: vec![Expr::binary(Binary::Mul, sum, Expr::Const(1.0 / n as f64))] };
                let inputs: Vec<Arg> = (0..n).map(|i| input(self, i)).collect();
                self.map(&spec, &inputs, &[out], &vec![false; n]);
            }
            // Decoding reads the logits; there is nothing to predict against.
            Op::CrossEntropy if self.decode.is_some() => {}
            Op::CrossEntropy => {
                // Loss and gradient in one pass: the gradient goes straight to the buffer
                // of the loss's VJP, which is then the identity (the loss is the root).
                let func = self.kernels.get(KernelKey::CrossEntropy);
                let dlogits = self.cross_entropy_gradient(id)?;
                let loss = Arg::host(LOSS, 1);
                self.push(Instr::Zero(loss.clone()));
                let (logits, targets) = (input(self, 0), input(self, 1));
                // A point per position: [B·T, 1, V].
                let rows = targets.len();
                let vocab = logits.len() / rows;
                let args = vec![
                    logits.view(vec![rows, 1, vocab]).batched(),
                    targets.view(vec![rows, 1]).batched(),
                    targets.whole(),
                    loss.summed(),
                    dlogits.view(vec![rows, 1, vocab]).batched(),
                ];
                self.call(func, args);
            }
            other => unreachable!("{} has no kernel step", other.name()),
        }
        Ok(())
    }

    /// The gradient buffer of the cross-entropy's VJP.
    fn cross_entropy_gradient(&self, id: NodeId) -> Result<Arg, Unsupported> {
        let (index, node) = self
            .grad
            .backward
            .iter()
            .enumerate()
            .find(|(_, n)| n.origin == Some(id) && matches!(&n.op, BwdOp::Vjp { op, .. } if op == "cross_entropy"))
            .expect("the loss has a VJP");
        let seeded = matches!(node.inputs[0], Value::Bwd(seed, 0) if self.grad.backward[seed].op == BwdOp::Seed);
        if !seeded {
            return Err(Unsupported("a cross-entropy that is not the loss itself".into()));
        }
        Ok(self.at(Value::Bwd(index, 0)))
    }
}
