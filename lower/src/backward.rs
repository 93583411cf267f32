//! The step program's backward and optimizer instructions: one mapping per grad-IR op.
//!
//! Elementwise VJPs are pointwise kernels whose expression is the symbolic derivative of
//! the forward op's ([`hyb_kernels::pointwise::backward`]); a broadcast operand's
//! gradient is computed per element into scratch and summed over rows. Kernels that
//! accumulate (`+=`) get their outputs zeroed first.

use crate::fuse::expression;
use hyb_compiler::grad::{BwdNode, BwdOp, Value};
use hyb_compiler::graph::{NodeId, Op};
use hyb_kernels::key::KernelKey;
use hyb_kernels::pointwise::{self, Binary, Expr, MapSpec};

use crate::program::{ADAM, Arg, Builder, CLIP_MAX, Instr, L2_EPS, SQUARES, Share, Unsupported, heads_view, rows_of};

impl Builder<'_> {
    /// Appends the backward and the optimizer; returns where the optimizer begins (the
    /// gradient norm) and where its updates begin (after the clipping factor is set).
    pub fn backward(&mut self) -> Result<(usize, usize), Unsupported> {
        let mut optimizer_start = None;
        let mut update_start = None;
        for index in 0..self.grad.backward.len() {
            let node = self.grad.backward[index].clone();
            let norm = matches!(node.op, BwdOp::GradNorm);
            if norm {
                optimizer_start = Some(self.instrs.len());
            }
            self.backward_node(index, &node)?;
            if norm {
                update_start = Some(self.instrs.len());
            }
        }
        let end = self.instrs.len();
        Ok((optimizer_start.unwrap_or(end), update_start.unwrap_or(end)))
    }

    /// The final gradient of a parameter.
    pub fn param_grad(&self, name: &str) -> Arg {
        let (_, value) = self.grad.param_grads.iter().find(|(n, _)| n == name).expect("every parameter has a gradient");
        self.at(*value)
    }

    fn backward_node(&mut self, index: usize, node: &BwdNode) -> Result<(), Unsupported> {
        let input = |b: &Self, i: usize| b.at(node.inputs[i]);
        let output = |b: &Self, i: usize| b.at(Value::Bwd(index, i));
        match &node.op {
            BwdOp::Seed => self.push(Instr::Fill(output(self, 0), vec![1.0])),
            BwdOp::Add => {
                let spec =
                    MapSpec { inputs: 2, outputs: vec![Expr::binary(Binary::Add, Expr::Input(0), Expr::Input(1))] };
                self.map(&spec, &[input(self, 0), input(self, 1)], &[output(self, 0)], &[false, false]);
            }
            BwdOp::Mul => {
                let (dy, other, out) = (input(self, 0), input(self, 1), output(self, 0));
                if dy.dims != other.dims || out.dims != dy.dims {
                    return Err(Unsupported("a gradient product of a broadcast operand".into()));
                }
                let spec =
                    MapSpec { inputs: 2, outputs: vec![Expr::binary(Binary::Mul, Expr::Input(0), Expr::Input(1))] };
                self.map(&spec, &[dy, other], &[out], &[false, false]);
            }
            BwdOp::Scale { factor } => {
                let spec = MapSpec {
                    inputs: 1,
                    outputs: vec![Expr::binary(Binary::Mul, Expr::Input(0), Expr::Const(*factor))],
                };
                self.map(&spec, &[input(self, 0)], &[output(self, 0)], &[false]);
            }
            BwdOp::MatMulDx => {
                // dx[m, in] = dy[m, out] · w[out, in]
                let (dy, w, dx) = (input(self, 0), input(self, 1), output(self, 0));
                let (out, inner) = (w.dims[0], w.dims[1]);
                let m = dy.len() / out;
                let a = (dy, [out as isize, 1]);
                let b = (w, [inner as isize, 1]);
                self.gemm(m, out, inner, a, b, dx);
            }
            BwdOp::MatMulDw => {
                // dw[out, in] = dy[m, out]ᵀ · x[m, in]
                let (dy, x, dw) = (input(self, 0), input(self, 1), output(self, 0));
                let (out, inner) = (dw.dims[0], dw.dims[1]);
                let m = dy.len() / out;
                let a = (dy, [1, out as isize]);
                let b = (x, [inner as isize, 1]);
                self.gemm(out, m, inner, a, b, dw);
            }
            BwdOp::SumLeading => {
                let (dy, db) = (input(self, 0), output(self, 0));
                self.sum_rows(dy, db);
            }
            BwdOp::Act(act) => {
                let forward = MapSpec { inputs: 1, outputs: vec![expression(&Op::Act(*act), vec![Expr::Input(0)])] };
                let spec = pointwise::backward(&forward);
                self.map(&spec, &[input(self, 1), input(self, 0)], &[output(self, 0)], &[false, false]);
            }
            BwdOp::Slice { offset, width } => {
                let (dy, out) = (input(self, 0), output(self, 0));
                let total = *dy.dims.last().expect("a width");
                let rows = dy.len() / total;
                let (width, offset) = (*width as usize, *offset as usize);
                let src = dy.view(vec![rows, total]);
                self.columns(src, out.view(vec![rows, width]), offset, 0, width);
            }
            BwdOp::EmbedScatter => {
                let (dy, tokens, dtable) = (input(self, 0), input(self, 1), output(self, 0));
                let func = self.kernels.get(KernelKey::Scatter);
                self.push(Instr::Zero(dtable.clone()));
                let (tokens, dy) = (tokens.batched(), dy.batched());
                self.call(func, vec![dtable.whole(), tokens, dy, dtable.summed()]);
            }
            BwdOp::Vjp { op, .. } => self.vjp(index, node, op)?,
            BwdOp::GradNorm => {
                let func = self.kernels.get(KernelKey::SumOfSquares);
                let squares = Arg::host(SQUARES, 1);
                self.push(Instr::Zero(squares.clone()));
                for i in 0..node.inputs.len() {
                    self.call(func, vec![input(self, i).in_rows(self.target), squares.summed()]);
                }
                let clip = self.kernels.get(KernelKey::Clip);
                let factor = Arg::host(ADAM + 7, 1);
                self.call(clip, vec![squares, Arg::host(CLIP_MAX, 1), factor]);
            }
            BwdOp::AdamW { .. } => {
                let Value::Fwd(param) = node.inputs[0] else { unreachable!("AdamW updates a parameter") };
                let Op::Param(name) = &self.graph.nodes[param].op else { unreachable!("AdamW updates a parameter") };
                let param = self.params[name];
                let kernel = self.kernels.get(KernelKey::AdamW);
                let g = input(self, 1);
                self.push(Instr::AdamW { kernel, param, grad: g.in_rows(self.target) });
            }
        }
        Ok(())
    }

    /// `out[W] = Σ_rows dy[rows, W]`.
    fn sum_rows(&mut self, dy: Arg, out: Arg) {
        let func = self.kernels.get(KernelKey::SumRows);
        self.push(Instr::Zero(out.clone()));
        let width = out.len();
        let out = Arg { dims: vec![width], flat: true, ..out.summed() };
        self.call(func, vec![dy.rows(width), out]);
    }

    fn vjp(&mut self, index: usize, node: &BwdNode, name: &str) -> Result<(), Unsupported> {
        let origin = node.origin.expect("a VJP comes from a forward node");
        let forward = self.graph.nodes[origin].clone();
        let input = |b: &Self, i: usize| b.at(node.inputs[i]);
        let outputs: Vec<Arg> = (0..node.outputs.len()).map(|i| self.at(Value::Bwd(index, i))).collect();
        match &forward.op {
            Op::Sigmoid => {
                // dx = dy · y (1 − y), from the saved output y.
                let y = Expr::Input(0);
                let slope = Expr::binary(Binary::Mul, y.clone(), Expr::binary(Binary::Sub, Expr::Const(1.0), y));
                let spec = MapSpec { inputs: 2, outputs: vec![Expr::binary(Binary::Mul, Expr::Input(1), slope)] };
                self.map(&spec, &[input(self, 1), input(self, 0)], &outputs, &[false, false]);
            }
            op if op.is_elementwise() => self.elementwise_vjp(origin, node, &outputs),
            Op::RmsNorm { eps, .. } | Op::RmsNormGated { eps, .. } => {
                let gated = matches!(forward.op, Op::RmsNormGated { .. });
                if let Op::RmsNormGated { act, .. } = forward.op {
                    crate::program::silu_gate(act)?;
                }
                let groups = match forward.op {
                    Op::RmsNorm { groups, .. } | Op::RmsNormGated { groups, .. } => groups,
                    _ => unreachable!(),
                };
                let func = self.kernels.get(KernelKey::RmsBackward { eps: *eps, gated });
                let x = rows_of(&input(self, 1), groups);
                let shape = x.dims.clone();
                let rows = |a: Arg| Arg { share: Share::Split, ..a.view(shape.clone()) };
                let dw = outputs.last().expect("dw").clone();
                self.push(Instr::Zero(dw.clone()));
                let mut args = vec![x];
                if gated {
                    args.push(rows(input(self, 2)));
                }
                args.push(input(self, if gated { 3 } else { 2 }));
                args.push(rows(input(self, 0)));
                args.push(rows(outputs[0].clone()));
                if gated {
                    args.push(rows(outputs[1].clone()));
                }
                args.push(dw.summed());
                self.call(func, args);
            }
            Op::L2Norm { groups } | Op::SumNorm { groups } => {
                let func = match forward.op {
                    Op::L2Norm { .. } => self.kernels.get(KernelKey::L2Backward { eps: L2_EPS }),
                    _ => self.kernels.get(KernelKey::SumNormBackward),
                };
                let x = rows_of(&input(self, 1), *groups);
                let shape = x.dims.clone();
                let rows = |a: Arg| Arg { share: Share::Split, ..a.view(shape.clone()) };
                self.call(func, vec![x, rows(input(self, 0)), rows(outputs[0].clone())]);
            }
            Op::ShortConv { .. } => {
                let bias = forward.inputs.len() == 3;
                let func = self.kernels.get(KernelKey::ConvBackward { bias });
                for grad in &outputs[1..] {
                    self.push(Instr::Zero(grad.clone()));
                }
                let mut args = vec![input(self, 1).batched(), input(self, 2), input(self, 0).batched()];
                args.push(outputs[0].batched());
                args.extend(outputs[1..].iter().map(Arg::summed));
                self.call(func, args);
            }
            Op::LayerFloor { layer } => {
                let func = self.kernels.get(KernelKey::FloorBackward { layer: *layer as u64 });
                self.call(func, vec![input(self, 1), input(self, 0), outputs[0].clone()]);
            }
            Op::Rope { heads, theta } => {
                let func = self.kernels.get(KernelKey::Rope { theta: *theta, inverse: true });
                let dy = heads_view(&input(self, 0), *heads);
                let dx = outputs[0].view(dy.dims.clone()).batched();
                self.call(func, vec![dy, dx]);
            }
            Op::Scan(attrs) => self.scan_vjp(origin, node, &outputs, attrs),
            Op::Attention { heads, kv_heads, head_dim, window, scale } => {
                let spec = crate::attention_spec(*heads, *kv_heads, *head_dim, *window, *scale);
                let func = self.kernels.get(KernelKey::AttentionBackward { spec });
                let (q, k, v) = self.attention_inputs(&forward, *heads, *kv_heads, *head_dim);
                let o = self.fwd(origin).view(q.dims.clone()).batched();
                let lse = self.log_sum_exp(origin, *heads);
                let dout = input(self, 0).view(q.dims.clone()).batched();
                let grads = [q.dims.clone(), k.dims.clone(), v.dims.clone()];
                let grads: Vec<Arg> = outputs.iter().zip(grads).map(|(g, dims)| g.view(dims).batched()).collect();
                for grad in &grads {
                    self.push(Instr::Zero(grad.clone()));
                }
                let mut args = vec![q, k, v, o, lse, dout];
                args.extend(grads);
                self.call(func, args);
            }
            // The forward's fused kernel wrote the gradient (see `Builder::kernel`).
            Op::CrossEntropy => {}
            other => unreachable!("no VJP mapping for {} ({name})", other.name()),
        }
        Ok(())
    }

    /// An elementwise op's VJP: its derivative as a pointwise kernel over the forward
    /// inputs and dy; gradients of broadcast operands go through scratch and a row sum.
    fn elementwise_vjp(&mut self, origin: NodeId, node: &BwdNode, outputs: &[Arg]) {
        let forward = self.graph.nodes[origin].clone();
        let n = forward.inputs.len();
        let spec = pointwise::backward(&MapSpec {
            inputs: n,
            outputs: vec![expression(&forward.op, (0..n).map(Expr::Input).collect())],
        });
        let broadcast: Vec<bool> =
            forward.inputs.iter().map(|i| self.graph.nodes[*i].ty.shape != forward.ty.shape).collect();
        let mut inputs: Vec<Arg> = (1..=n).map(|i| self.at(node.inputs[i])).collect();
        inputs.push(self.at(node.inputs[0]));
        let full_dims = self.dims(&forward.ty);
        let mut written = Vec::new();
        let mut reductions = Vec::new();
        for (i, out) in outputs.iter().enumerate() {
            if broadcast[i] {
                let scratch = self.temp(full_dims.clone(), Share::Split);
                reductions.push((scratch.clone(), out.clone()));
                written.push(scratch);
            } else {
                written.push(out.clone());
            }
        }
        let mut flags = broadcast.clone();
        flags.push(false);
        // The scratch must outlive the map: reduce before the next call releases it.
        let temp_used = self.temp_used;
        self.map(&spec, &inputs, &written, &flags);
        self.temp_used = temp_used;
        for (scratch, out) in reductions {
            self.sum_rows(scratch, out);
        }
        self.temp_used = 0;
    }

    fn scan_vjp(&mut self, origin: NodeId, node: &BwdNode, outputs: &[Arg], attrs: &hyb_compiler::graph::ScanAttrs) {
        let forward = self.graph.nodes[origin].clone();
        let spec = crate::scan_spec(attrs);
        let chunk = self.target.checkpoint_interval(self.seq_len);
        let func = self.kernels.get(KernelKey::ScanBackward { spec, chunk });
        let views = self.scan_views(attrs);
        let inputs = self.scan_inputs(&forward);
        // Fixed per-head decays are shared by the batch: their gradient sums over it.
        let grads: Vec<Arg> = outputs
            .iter()
            .zip(&inputs)
            .map(|(g, i)| Arg { share: if i.is_split() { Share::Split } else { Share::Sum }, ..g.view(i.dims.clone()) })
            .collect();
        let mut args = inputs;
        args.push(self.checkpoints(origin, &views));
        args.push(self.at(node.inputs[0]).view(views.o.clone()).batched());
        let dstate = self.temp(views.state.clone(), Share::Split);
        self.push(Instr::Zero(dstate.clone()));
        args.push(dstate);
        // Each chunk's recomputed states: one more than its tokens (at most `chunk`, or
        // the sequence when shorter) per batch element and head.
        let mut states = views.state.clone();
        states.insert(2, (chunk as usize).min(self.seq_len) + 1);
        args.push(self.temp(states, Share::Split));
        for grad in &grads {
            self.push(Instr::Zero(grad.clone()));
        }
        args.extend(grads);
        self.call(func, args);
    }
}
