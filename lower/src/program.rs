//! The step program: one training step — forward, backward, optimizer — as a flat list
//! of [`Instr`]s over concrete buffers, built from the grad IR, the fusion pass's kernel
//! plan and the buffer plan at one batch × sequence length; and the kernels it calls,
//! generated once each.
//!
//! Every value lives where the buffer plan put it in the arena (parameters and AdamW's
//! moments apart). A kernel's argument is an [`Arg`]: a store, an element offset and
//! the dims the kernel sees, and how a call split over its batch (or rows) shares it
//! ([`Share`]): the executor runs such a call in parallel over slices of the batch.
//!
//! This file holds the program's types and the builder's shared helpers; `forward.rs`
//! maps the forward's kernel plan, `backward.rs` the backward and the optimizer step.

use std::collections::HashMap;

use crate::fuse::Step;
use hyb_compiler::grad::{GradGraph, Value};
use hyb_compiler::graph::{Dim, Elem, Graph, NodeId, Op, TensorType};
use hyb_compiler::ir::{Act, Model};
use hyb_compiler::plan::{Pass, Plan};
use hyb_kernels::key::KernelKey;
use hyb_kernels::pointwise::{Expr, MapSpec};
use hyb_target::Target;

/// Where an argument's memory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The planned arena of intermediates.
    Arena,
    /// Parameter `i`, its first and second AdamW moments.
    Param(usize),
    Moment1(usize),
    Moment2(usize),
    /// Scratch space private to one instruction (scan states, broadcast gradients).
    Temp,
    /// Scalars the host sets or reads: [`LOSS`], [`SQUARES`], [`POSITION`], [`CLIP_MAX`],
    /// the AdamW scalars from [`ADAM`].
    Host,
    /// What decoding carries from one token to the next: each recurrence's state, each
    /// convolution's window of inputs, each attention layer's keys and values.
    Cache,
}

pub const LOSS: usize = 0;
pub const SQUARES: usize = 1;
/// Decoding: the position of the token being decoded (as f32; exact below 2²⁴).
pub const POSITION: usize = 2;
/// The clipping bound on the global gradient norm (+∞: none).
pub const CLIP_MAX: usize = 3;
pub const ADAM: usize = 8;
pub const HOST_LEN: usize = ADAM + 8;

/// A step's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Tokens,
    Targets,
}

/// One kernel argument: elements of `elem` from byte `offset` of a store, `dims` as the
/// kernel sees them (one flat dim when `flat`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub store: Store,
    /// In bytes, a multiple of the element size.
    pub offset: usize,
    pub elem: Elem,
    pub dims: Vec<usize>,
    pub flat: bool,
    pub share: Share,
}

/// How a call split over its batch (or rows) treats an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// Every part sees all of it; only read.
    Whole,
    /// Its leading dim is the batch (or rows): each part gets its slice.
    Split,
    /// The kernel accumulates into it: each part accumulates into a private zeroed
    /// copy, and the copies are added into it after the call.
    Sum,
}

impl Arg {
    /// `len` f32 host scalars from slot `slot` ([`LOSS`], [`SQUARES`], ...).
    pub fn host(slot: usize, len: usize) -> Arg {
        Arg { store: Store::Host, offset: slot * 4, elem: Elem::F32, dims: vec![len], flat: false, share: Share::Whole }
    }

    /// The elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn bytes(&self) -> usize {
        self.len() * self.elem.bytes() as usize
    }

    /// The byte just past the argument.
    pub fn end(&self) -> usize {
        self.offset + self.bytes()
    }

    /// Where what an op keeps after its output begins: the output's end, 4-byte aligned
    /// as the buffer plan sizes it.
    pub fn after(&self) -> usize {
        self.offset + self.bytes().next_multiple_of(4)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same memory seen as `dims`.
    pub fn view(&self, dims: Vec<usize>) -> Arg {
        assert_eq!(dims.iter().product::<usize>(), self.len(), "a view keeps the element count");
        Arg { dims, ..self.clone() }
    }

    /// The whole buffer as one flat dim split over rows of the target's width
    /// ([`Target::flat_row_width`]): an elementwise pass or a sum over all of it, in parallel.
    pub fn in_rows(&self, target: Target) -> Arg {
        let width = target.flat_row_width(self.len());
        Arg { dims: vec![self.len() / width, width], flat: true, share: Share::Split, ..self.clone() }
    }

    /// One flat dim, split over rows of `width`.
    pub fn rows(&self, width: usize) -> Arg {
        Arg { dims: vec![self.len() / width, width], flat: true, share: Share::Split, ..self.clone() }
    }

    pub fn whole(&self) -> Arg {
        Arg { share: Share::Whole, ..self.clone() }
    }

    pub fn batched(&self) -> Arg {
        Arg { share: Share::Split, ..self.clone() }
    }

    /// Accumulated into by every part of a split call.
    pub fn summed(&self) -> Arg {
        Arg { share: Share::Sum, ..self.clone() }
    }

    pub fn is_split(&self) -> bool {
        self.share == Share::Split
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Instr {
    /// Kernel `kernel` of the program's [`KernelSet`]; its iteration space is the
    /// leading dim of its `Split` arguments (one point otherwise).
    Call {
        kernel: usize,
        args: Vec<Arg>,
    },
    /// `c[m, n] = a[m, k] · b[k, n]`, each operand with its (row, column) strides.
    Gemm {
        m: usize,
        k: usize,
        n: usize,
        a: (Arg, [isize; 2]),
        b: (Arg, [isize; 2]),
        c: Arg,
    },
    Zero(Arg),
    Fill(Arg, Vec<f32>),
    /// The step's token ids or targets, copied from the host as i32.
    Input(Input, Arg),
    /// AdamW on parameter `param` with its gradient.
    AdamW {
        kernel: usize,
        param: usize,
        grad: Arg,
    },
}

impl Instr {
    /// Whether `self` and `other` do the same work, a flat buffer split in rows of one
    /// width in one and of another in the other ([`Target::flat_row_width`]): two
    /// targets' programs of one model differ only there, so one runs in lockstep
    /// beside the other.
    pub fn alike(&self, other: &Instr) -> bool {
        fn rows_merged(arg: &Arg) -> Arg {
            let merged = arg.flat && arg.share == Share::Split;
            if merged { Arg { dims: vec![arg.len()], ..arg.clone() } } else { arg.clone() }
        }
        match (self, other) {
            (Instr::Call { kernel, args }, Instr::Call { kernel: k, args: a }) => {
                kernel == k
                    && args.len() == a.len()
                    && args.iter().zip(a).all(|(x, y)| rows_merged(x) == rows_merged(y))
            }
            (Instr::AdamW { kernel, param, grad }, Instr::AdamW { kernel: k, param: p, grad: g }) => {
                kernel == k && param == p && rows_merged(grad) == rows_merged(g)
            }
            _ => self == other,
        }
    }
}

/// A call's iteration space: the leading dim of its `Split` arguments — the batch, or
/// rows — over which its points are independent (1 if none is split). The CPU backend
/// splits it over threads; a GPU form maps it to blocks.
pub fn iteration_space(instr: &Instr) -> usize {
    match instr {
        Instr::Call { args, .. } => args.iter().find(|a| a.is_split()).map_or(1, |a| a.dims[0]),
        _ => 1,
    }
}

/// The kernels a program calls, each (key, signature) once, in order of first use. A
/// kernel's signature is the element type of each argument it is called with: the same
/// key called on bf16 activations and on f32 ones is two kernels.
#[derive(Default, Clone)]
pub struct KernelSet {
    pub keys: Vec<KernelKey>,
    /// Each kernel's argument element types; empty until its first call, and for a
    /// kernel only ever run on f32 (AdamW).
    pub signatures: Vec<Vec<Elem>>,
    first: HashMap<KernelKey, usize>,
    typed: HashMap<(KernelKey, Vec<Elem>), usize>,
}

impl KernelSet {
    /// A kernel of `key`, its signature to be fixed by its first call ([`KernelSet::typed`]).
    pub fn get(&mut self, key: KernelKey) -> usize {
        if let Some(&index) = self.first.get(&key) {
            return index;
        }
        self.keys.push(key.clone());
        self.signatures.push(Vec::new());
        self.first.insert(key, self.keys.len() - 1);
        self.keys.len() - 1
    }

    /// The kernel of `index`'s key called with `signature`: `index` itself if its
    /// signature is that (or not yet fixed), else the key's kernel of that signature,
    /// added on first use.
    pub fn typed(&mut self, index: usize, signature: Vec<Elem>) -> usize {
        if self.signatures[index].is_empty() {
            self.signatures[index] = signature.clone();
            self.typed.insert((self.keys[index].clone(), signature), index);
            return index;
        }
        if self.signatures[index] == signature {
            return index;
        }
        let key = (self.keys[index].clone(), signature);
        if let Some(&found) = self.typed.get(&key) {
            return found;
        }
        self.keys.push(key.0.clone());
        self.signatures.push(key.1.clone());
        self.typed.insert(key, self.keys.len() - 1);
        self.keys.len() - 1
    }

    /// Whether kernel `index` stores any argument as bf16.
    pub fn mixed(&self, index: usize) -> bool {
        self.signatures[index].contains(&Elem::Bf16)
    }

    /// The name of kernel `index`'s function: `k3_scan_bwd`.
    pub fn name(&self, index: usize) -> String {
        format!("k{index}_{}", self.keys[index].label())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct ParamSlot {
    pub name: String,
    pub shape: Vec<usize>,
}

impl ParamSlot {
    /// Every parameter of `model`, in its order.
    pub fn of(model: &Model) -> Vec<ParamSlot> {
        model
            .params
            .iter()
            .map(|p| ParamSlot { name: p.name.clone(), shape: p.shape.iter().map(|d| *d as usize).collect() })
            .collect()
    }
}

#[derive(Clone)]
pub struct Program {
    pub instrs: Vec<Instr>,
    /// Where the backward's instructions begin (the forward alone is `..forward_end`).
    pub forward_end: usize,
    /// Where the optimizer's instructions begin: the gradient norm and clipping factor,
    /// then (from `update_start`) the parameter updates.
    pub optimizer_start: usize,
    pub update_start: usize,
    pub kernels: KernelSet,
    /// The stores' sizes in bytes.
    pub arena_bytes: usize,
    pub temp_bytes: usize,
    pub params: Vec<ParamSlot>,
    /// Each parameter's gradient (valid after the backward, before the optimizer).
    pub grads: Vec<Arg>,
    pub batch: usize,
    pub seq_len: usize,
    pub vocab: usize,
    /// The logits `[batch, seq_len, vocab]` (valid after the forward).
    pub logits: Arg,
    /// Decoding programs: the bytes of [`Store::Cache`] and the longest sequence it holds.
    pub cache_bytes: usize,
    pub max_len: Option<usize>,
    /// What the program was built for (the checkpoint interval is the target's).
    pub target: Target,
}

impl Program {
    /// Whether the program has a backward and an optimizer step (not an evaluator's).
    pub fn trains(&self) -> bool {
        self.update_start < self.instrs.len()
    }

    /// The bytes of every store the program runs on: the arena, the per-instruction
    /// scratch, the host scalars, the decoding cache, the parameters and, when it
    /// trains, AdamW's two moments (parameters and moments are f32). A device adds only
    /// its staging of constants and token ids.
    pub fn store_bytes(&self) -> usize {
        let params: usize = self.params.iter().map(|p| 4 * p.shape.iter().product::<usize>()).sum();
        let moments = if self.trains() { 2 * params } else { 0 };
        self.arena_bytes + self.temp_bytes + HOST_LEN * 4 + self.cache_bytes + params + moments
    }
}

#[derive(Debug)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no kernel runs this model yet: {}", self.0)
    }
}

/// Builds the program's instructions.
pub(crate) struct Builder<'g> {
    pub grad: &'g GradGraph,
    pub graph: &'g Graph,
    pub offsets: HashMap<Value, usize>,
    pub params: HashMap<String, usize>,
    pub batch: usize,
    pub seq_len: usize,
    pub instrs: Vec<Instr>,
    pub kernels: KernelSet,
    /// Scratch bytes in use by the current instruction, and the most any needed.
    pub temp_used: usize,
    pub temp_len: usize,
    /// Decoding one token per call, for sequences up to this length (`seq_len` is 1):
    /// the forward keeps its state in [`Store::Cache`], of `cache_len` bytes so far.
    pub decode: Option<usize>,
    pub cache_len: usize,
    pub target: Target,
}

/// The eps of `norm.l2` (fla's `l2norm`).
pub const L2_EPS: f64 = 1e-6;

impl<'g> Builder<'g> {
    pub fn dims(&self, ty: &TensorType) -> Vec<usize> {
        ty.shape
            .iter()
            .map(|d| match d {
                Dim::Batch => self.batch,
                Dim::Time => self.seq_len,
                Dim::Fixed(n) => *n as usize,
            })
            .collect()
    }

    pub fn type_of(&self, value: Value) -> TensorType {
        match value {
            Value::Fwd(id) => self.graph.nodes[id].ty.clone(),
            Value::Bwd(node, output) => self.grad.backward[node].outputs[output].clone(),
        }
    }

    /// A value where the plan (or the parameter store) keeps it, at its own dims.
    pub fn at(&self, value: Value) -> Arg {
        let dims = self.dims(&self.type_of(value));
        let batched = matches!(self.type_of(value).shape.first(), Some(Dim::Batch));
        if let Value::Fwd(id) = value
            && let Op::Param(name) = &self.graph.nodes[id].op
        {
            let store = Store::Param(self.params[name]);
            return Arg { store, offset: 0, elem: Elem::F32, dims, flat: false, share: Share::Whole };
        }
        let offset = *self.offsets.get(&value).unwrap_or_else(|| panic!("{value:?} has no planned buffer"));
        let share = if batched { Share::Split } else { Share::Whole };
        let elem = self.type_of(value).elem;
        Arg { store: Store::Arena, offset, elem, dims, flat: false, share }
    }

    pub fn fwd(&self, id: NodeId) -> Arg {
        self.at(Value::Fwd(id))
    }

    /// Scratch for the current instruction.
    pub fn temp(&mut self, dims: Vec<usize>, share: Share) -> Arg {
        self.temp_of(Elem::F32, dims, share)
    }

    /// Scratch of `elem` for the current instruction.
    pub fn temp_of(&mut self, elem: Elem, dims: Vec<usize>, share: Share) -> Arg {
        let offset = self.temp_used;
        self.temp_used += (dims.iter().product::<usize>() * elem.bytes() as usize).next_multiple_of(64);
        self.temp_len = self.temp_len.max(self.temp_used);
        Arg { store: Store::Temp, offset, elem, dims, flat: false, share }
    }

    /// Decoding state of `dims`, split over the batch, kept from token to token.
    pub fn cache(&mut self, dims: Vec<usize>) -> Arg {
        let offset = self.cache_len;
        self.cache_len += dims.iter().product::<usize>() * 4;
        Arg { store: Store::Cache, offset, elem: Elem::F32, dims, flat: false, share: Share::Split }
    }

    /// The position of the token being decoded.
    pub fn position(&self) -> Arg {
        Arg::host(POSITION, 1)
    }

    pub fn push(&mut self, instr: Instr) {
        self.instrs.push(instr);
    }

    /// A kernel call; scratch taken since the last call is released after it.
    pub fn call(&mut self, func: usize, args: Vec<Arg>) {
        let split: Vec<usize> = args.iter().filter(|a| a.is_split()).map(|a| a.dims[0]).collect();
        let args =
            if split.windows(2).all(|w| w[0] == w[1]) { args } else { args.into_iter().map(|a| a.whole()).collect() };
        let kernel = self.kernels.typed(func, args.iter().map(|a| a.elem).collect());
        self.instrs.push(Instr::Call { kernel, args });
        self.temp_used = 0;
    }

    /// `dst[r, dst_col + j] = src[r, src_col + j]` for `j < width` (concat and its slices).
    pub fn columns(&mut self, src: Arg, dst: Arg, src_col: usize, dst_col: usize, width: usize) {
        let kernel = self.kernels.get(KernelKey::Columns { src_col, dst_col, width });
        self.call(kernel, vec![src.batched(), dst.batched()]);
    }

    /// `x[..., in] · w[out, in]ᵀ` into `y`.
    pub fn gemm_xwt(&mut self, x: Arg, w: Arg, y: Arg) {
        let (out, inner) = (w.dims[0], w.dims[1]);
        let m = x.len() / inner;
        self.gemm(m, inner, out, (x, [inner as isize, 1]), (w, [1, inner as isize]), y);
    }

    /// `c[m, n] = a[m, k] · b[k, n]`. Its operands are of one type: bf16 if either
    /// operand or the product is stored as bf16 (an f32 operand — a parameter, an
    /// accumulated gradient — is first copied to bf16 scratch), else f32; the product is
    /// written in its own type (an f32 parameter gradient from bf16 operands).
    pub fn gemm(&mut self, m: usize, k: usize, n: usize, a: (Arg, [isize; 2]), b: (Arg, [isize; 2]), c: Arg) {
        let mixed = [a.0.elem, b.0.elem, c.elem].contains(&Elem::Bf16);
        let elem = if mixed { Elem::Bf16 } else { Elem::F32 };
        let copies: Vec<Option<Arg>> = [&a.0, &b.0]
            .iter()
            .map(|operand| (operand.elem != elem).then(|| self.temp_of(elem, operand.dims.clone(), Share::Whole)))
            .collect();
        let identity = MapSpec { inputs: 1, outputs: vec![Expr::Input(0)] };
        let mut operands = [a, b];
        for (operand, copy) in operands.iter_mut().zip(copies) {
            if let Some(copy) = copy {
                self.map(&identity, std::slice::from_ref(&operand.0), std::slice::from_ref(&copy), &[false]);
                operand.0 = copy;
            }
        }
        let [a, b] = operands;
        self.push(Instr::Gemm { m, k, n, a, b, c });
    }

    /// Map over same-shaped flat values: `inputs` and `outputs` seen as rows of the
    /// target's width ([`Target::map_row_width`]; a broadcast argument is one row).
    pub fn map(&mut self, spec: &MapSpec, inputs: &[Arg], outputs: &[Arg], broadcast: &[bool]) {
        let natural = *outputs[0].dims.last().unwrap_or(&1);
        let width =
            if broadcast.contains(&true) { natural } else { self.target.map_row_width(outputs[0].len(), natural) };
        let func = self.kernels.get(KernelKey::Map { spec: spec.clone(), broadcast: broadcast.to_vec() });
        let mut args: Vec<Arg> = inputs
            .iter()
            .zip(broadcast)
            .map(|(a, b)| if *b { Arg { flat: true, ..a.whole() } } else { a.rows(width) })
            .collect();
        args.extend(outputs.iter().map(|o| o.rows(width)));
        self.call(func, args);
    }

    /// q?, k, v, g?, β? of a scan node, at the kernel's ranks.
    pub fn scan_inputs(&self, node: &hyb_compiler::graph::Node) -> Vec<Arg> {
        let Op::Scan(attrs) = &node.op else { unreachable!("a scan node") };
        let views = self.scan_views(attrs);
        let mut shapes = Vec::new();
        if attrs.query {
            shapes.push(views.q.clone());
        }
        shapes.extend([views.k.clone(), views.v.clone()]);
        shapes.extend(views.g.clone());
        if attrs.beta {
            shapes.push(views.beta.clone());
        }
        node.inputs
            .iter()
            .zip(shapes)
            .map(|(i, dims)| {
                let arg = self.fwd(*i);
                let share = arg.share;
                Arg { share, ..arg.view(dims) }
            })
            .collect()
    }

    pub fn scan_views(&self, attrs: &hyb_compiler::graph::ScanAttrs) -> ScanViews {
        ScanViews::new(attrs, self.batch, self.seq_len, self.target.checkpoint_interval(self.seq_len))
    }

    /// The state checkpoints, stored after the scan's output.
    pub fn checkpoints(&self, id: NodeId, views: &ScanViews) -> Arg {
        let out = self.fwd(id);
        Arg { offset: out.after(), elem: Elem::F32, dims: views.checkpoints.clone(), ..out.batched() }
    }

    /// The log-sum-exp `[B, H, T]`, stored after attention's output.
    pub fn log_sum_exp(&self, id: NodeId, heads: u64) -> Arg {
        let out = self.fwd(id);
        let dims = vec![self.batch, heads as usize, self.seq_len];
        Arg { offset: out.after(), elem: Elem::F32, dims, ..out.batched() }
    }

    pub fn attention_inputs(
        &self,
        node: &hyb_compiler::graph::Node,
        heads: u64,
        kv_heads: u64,
        head_dim: u64,
    ) -> (Arg, Arg, Arg) {
        let view = |i: usize, h: u64| {
            self.fwd(node.inputs[i]).view(vec![self.batch, self.seq_len, h as usize, head_dim as usize]).batched()
        };
        (view(0, heads), view(1, kv_heads), view(2, kv_heads))
    }
}

/// `[rows, width]` of a norm's input, `groups` per row of the tensor.
pub fn rows_of(arg: &Arg, groups: u64) -> Arg {
    let width = arg.dims.last().expect("a width") / groups as usize;
    Arg { dims: vec![arg.len() / width, width], flat: false, share: Share::Split, ..arg.clone() }
}

/// `[B, T, H, D]` of a `[B, T, H·D]` value.
pub fn heads_view(arg: &Arg, heads: u64) -> Arg {
    let width = *arg.dims.last().expect("a width");
    let heads = heads as usize;
    arg.view(vec![arg.dims[0], arg.dims[1], heads, width / heads]).batched()
}

/// The gated norm's kernel gates with SiLU (every mixer's output gate is SiLU).
pub fn silu_gate(act: Act) -> Result<(), Unsupported> {
    match act {
        Act::Silu => Ok(()),
        other => Err(Unsupported(format!("a gated output norm with `{}` (only silu has a kernel)", other.name()))),
    }
}

/// The dims the scan kernel sees for each of its tensors.
pub struct ScanViews {
    pub q: Vec<usize>,
    pub k: Vec<usize>,
    pub v: Vec<usize>,
    pub g: Option<Vec<usize>>,
    pub beta: Vec<usize>,
    pub o: Vec<usize>,
    pub state: Vec<usize>,
    pub checkpoints: Vec<usize>,
}

impl ScanViews {
    pub fn new(a: &hyb_compiler::graph::ScanAttrs, batch: usize, seq_len: usize, chunk: u64) -> ScanViews {
        let (b, t) = (batch, seq_len);
        let hs = a.state_heads as usize;
        let hk = hs / a.states_per_key as usize;
        let (dk, dv) = (a.head_k_dim as usize, a.head_v_dim as usize);
        let q_heads = hk * a.q_per_state as usize;
        let chunks = seq_len.div_ceil(chunk as usize);
        use hyb_compiler::graph::ScanDecay;
        ScanViews {
            q: vec![b, t, q_heads, dk],
            k: vec![b, t, hk, dk],
            v: vec![b, t, hs, dv],
            g: match a.decay {
                ScanDecay::None => None,
                ScanDecay::PerHead => Some(vec![hs]),
                ScanDecay::Scalar => Some(vec![b, t, hs]),
                ScanDecay::Vector => Some(vec![b, t, hk, dk]),
            },
            beta: vec![b, t, hs],
            o: vec![b, t, hs * a.q_per_state as usize, dv],
            state: vec![b, hs, dk, dv],
            checkpoints: vec![b, hs, chunks, dk, dv],
        }
    }
}

/// What a program computes: a training step at `batch × seq_len`, or the forward of
/// one token per sequence for decoding sequences of up to `max_len` tokens (each call
/// reads the position from [`POSITION`] and carries every mixer's state in
/// [`Store::Cache`], zero before the first token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Train {
        batch: usize,
        seq_len: usize,
    },
    /// The training step's forward alone, with its loss and logits: evaluation, with
    /// no gradients, no optimizer state and memory planned for the forward only.
    Eval {
        batch: usize,
        seq_len: usize,
    },
    Decode {
        batch: usize,
        max_len: usize,
    },
}

impl Shape {
    pub fn batch(self) -> usize {
        match self {
            Shape::Train { batch, .. } | Shape::Eval { batch, .. } | Shape::Decode { batch, .. } => batch,
        }
    }

    /// Tokens per sequence in one call.
    pub fn seq_len(self) -> usize {
        match self {
            Shape::Train { seq_len, .. } | Shape::Eval { seq_len, .. } => seq_len,
            Shape::Decode { .. } => 1,
        }
    }
}

/// The step program of a model from its grad IR, the fusion pass's kernel plan and the
/// buffer plan [`scheduled_plan`] made of them at the same shape.
pub fn build(
    model: &Model,
    grad: &GradGraph,
    steps: &[Step],
    plan: &Plan,
    shape: Shape,
    target: Target,
) -> Result<Program, Unsupported> {
    let (batch, seq_len) = (shape.batch(), shape.seq_len());
    let decode = match shape {
        Shape::Train { .. } | Shape::Eval { .. } => None,
        Shape::Decode { max_len, .. } => Some(max_len),
    };
    let training = matches!(shape, Shape::Train { .. });
    assert_eq!((plan.batch, plan.seq_len), (batch as u64, seq_len as u64), "the plan is at the program's shape");
    let offsets = plan.buffers.iter().map(|b| (b.value, b.offset as usize)).collect();
    let params = ParamSlot::of(model);
    let mut builder = Builder {
        grad,
        graph: &grad.forward,
        offsets,
        params: params.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect(),
        batch,
        seq_len,
        instrs: Vec::new(),
        kernels: KernelSet::default(),
        temp_used: 0,
        temp_len: 0,
        decode,
        cache_len: 0,
        target,
    };
    builder.forward(steps)?;
    let forward_end = builder.instrs.len();
    let (optimizer_start, update_start, grads) = if !training {
        (forward_end, forward_end, Vec::new())
    } else {
        let (start, updates) = builder.backward()?;
        (start, updates, params.iter().map(|p| builder.param_grad(&p.name)).collect())
    };
    let loss = grad.forward.loss.expect("a loss");
    let logits = builder.fwd(grad.forward.nodes[loss].inputs[0]);
    Ok(Program {
        instrs: builder.instrs,
        forward_end,
        optimizer_start,
        update_start,
        kernels: builder.kernels,
        arena_bytes: plan.arena_bytes as usize,
        temp_bytes: builder.temp_len,
        params,
        grads,
        batch,
        seq_len,
        vocab: model.config.vocab as usize,
        logits,
        cache_bytes: builder.cache_len,
        max_len: decode,
        target,
    })
}

/// The buffer plan with each fused chain's nodes computed where the chain runs (so a
/// chain's inputs stay live until then): the plan the program runs.
pub fn scheduled_plan(grad: &GradGraph, steps: &[Step], shape: Shape, target: Target) -> Plan {
    let mut run_at: HashMap<NodeId, usize> = HashMap::new();
    for step in steps {
        if let Step::Fused { nodes, .. } = step {
            let at = nodes.last().expect("non-empty").index();
            run_at.extend(nodes.iter().map(|n| (*n, at)));
        }
    }
    let (batch, seq_len) = (shape.batch() as u64, shape.seq_len() as u64);
    let pass = if matches!(shape, Shape::Train { .. }) { Pass::Training } else { Pass::Forward };
    hyb_compiler::plan::plan_scheduled(
        grad,
        batch,
        seq_len,
        target,
        &|id| run_at.get(&id).copied().unwrap_or(id.index()),
        pass,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_alike_up_to_the_rows_of_flat_buffers() {
        let flat = Arg {
            store: Store::Arena,
            offset: 64,
            elem: Elem::F32,
            dims: vec![32768],
            flat: true,
            share: Share::Whole,
        };
        let (cpu, gpu) = (flat.in_rows(Target::Cpu), flat.in_rows(Target::Cuda { sm: hyb_target::HOPPER }));
        assert_eq!((cpu.dims.clone(), gpu.dims.clone()), (vec![32, 1024], vec![2048, 16]));
        let adamw = |grad: &Arg| Instr::AdamW { kernel: 3, param: 1, grad: grad.clone() };
        assert!(adamw(&cpu).alike(&adamw(&gpu)));
        assert_ne!(adamw(&cpu), adamw(&gpu));
        let elsewhere = Arg { offset: 128, ..gpu.clone() };
        assert!(!adamw(&cpu).alike(&adamw(&elsewhere)), "another buffer");
        let call = |arg: &Arg| Instr::Call { kernel: 0, args: vec![arg.clone(), Arg::host(4, 1).summed()] };
        assert!(call(&cpu).alike(&call(&gpu)));
        let reshaped = Arg { dims: vec![64, 512], flat: false, share: Share::Split, ..flat.clone() };
        assert!(
            !call(&reshaped).alike(&call(&Arg { dims: vec![128, 256], ..reshaped.clone() })),
            "a batch split is the work itself"
        );
        assert!(!call(&cpu).alike(&adamw(&cpu)));
    }
}
