//! Kernel keys and codegen: a program names each kernel it calls by a [`KernelKey`] — the
//! generator's family and its specification, nothing about where it runs — and
//! [`generate`] turns a key, a [`Form`] and the storage element type into an MLIR module.
//!
//! One generator per family emits every form of its keys; a target adds forms, not
//! generators. A key without a form on a target is a [`NoForm`] error, reported before
//! anything runs.

use std::fmt;
use std::hash::{Hash, Hasher};

use hyb_target::{Elem, Form};

use crate::attention::{self, AttentionSpec};
use crate::emit::Config;
use crate::pointwise::{self, Expr, MapSpec};
use crate::scan::{self, ScanSpec};
use crate::{conv, copy, embed, floor, loss, norms, optim};

/// A kernel as the program names it. Equal keys are the same kernel; the key's text
/// ([`fmt::Display`]) is its identity (it hashes by it) and what `--emit program` prints.
#[derive(Clone, Debug)]
pub enum KernelKey {
    /// `out[b, t, :] = table[ids[b, t], :]`.
    Gather,
    /// The gather's backward: rows of `dy` added into the table's gradient.
    Scatter,
    RmsForward {
        eps: f64,
        gated: bool,
    },
    RmsBackward {
        eps: f64,
        gated: bool,
    },
    L2Forward {
        eps: f64,
    },
    L2Backward {
        eps: f64,
    },
    SumNormForward,
    SumNormBackward,
    ConvForward {
        bias: bool,
    },
    ConvBackward {
        bias: bool,
    },
    /// Decoding: the convolution over a window of inputs it shifts.
    ConvStep {
        bias: bool,
    },
    FloorForward {
        layer: u64,
    },
    FloorBackward {
        layer: u64,
    },
    /// Rotary embedding (its inverse is its backward).
    Rope {
        theta: f64,
        inverse: bool,
    },
    /// Decoding: RoPE at a position read from memory.
    RopeAt {
        theta: f64,
    },
    /// The recurrence's training forward, saving a state every `chunk` tokens.
    ScanTrain {
        spec: ScanSpec,
        chunk: u64,
    },
    /// The reverse scan, recomputing each chunk's states from its checkpoint.
    ScanBackward {
        spec: ScanSpec,
        chunk: u64,
    },
    /// Decoding: the recurrence over tokens on a state kept between calls.
    ScanStep {
        spec: ScanSpec,
    },
    AttentionForward {
        spec: AttentionSpec,
    },
    AttentionBackward {
        spec: AttentionSpec,
    },
    /// Decoding: one query against a key/value cache from a position.
    AttentionDecode {
        spec: AttentionSpec,
    },
    /// A fused elementwise chain; inputs flagged in `broadcast` are per channel.
    Map {
        spec: MapSpec,
        broadcast: Vec<bool>,
    },
    /// `out[W] += Σ_rows x[rows, W]`.
    SumRows,
    /// `dst[r, dst_col + j] = src[r, src_col + j]` for `j < width`.
    Columns {
        src_col: usize,
        dst_col: usize,
        width: usize,
    },
    /// The gradient norm from the summed squares, and the clipping factor.
    Clip,
    /// Next-token cross-entropy: loss and gradient in one pass.
    CrossEntropy,
    /// `out += Σ x²` (the global gradient norm).
    SumOfSquares,
    AdamW,
}

impl KernelKey {
    /// A short name: the generator and the kernel's part, for function names and profiles.
    pub fn label(&self) -> &'static str {
        match self {
            KernelKey::Gather => "gather",
            KernelKey::Scatter => "scatter",
            KernelKey::RmsForward { gated: false, .. } => "rms",
            KernelKey::RmsForward { gated: true, .. } => "rms_gated",
            KernelKey::RmsBackward { gated: false, .. } => "rms_bwd",
            KernelKey::RmsBackward { gated: true, .. } => "rms_gated_bwd",
            KernelKey::L2Forward { .. } => "l2",
            KernelKey::L2Backward { .. } => "l2_bwd",
            KernelKey::SumNormForward => "sum_norm",
            KernelKey::SumNormBackward => "sum_norm_bwd",
            KernelKey::ConvForward { .. } => "conv",
            KernelKey::ConvBackward { .. } => "conv_bwd",
            KernelKey::ConvStep { .. } => "conv_step",
            KernelKey::FloorForward { .. } => "floor",
            KernelKey::FloorBackward { .. } => "floor_bwd",
            KernelKey::Rope { inverse: false, .. } => "rope",
            KernelKey::Rope { inverse: true, .. } => "rope_inv",
            KernelKey::RopeAt { .. } => "rope_at",
            KernelKey::ScanTrain { .. } => "scan_fwd",
            KernelKey::ScanBackward { .. } => "scan_bwd",
            KernelKey::ScanStep { .. } => "scan_step",
            KernelKey::AttentionForward { .. } => "attention_fwd",
            KernelKey::AttentionBackward { .. } => "attention_bwd",
            KernelKey::AttentionDecode { .. } => "attention_decode",
            KernelKey::Map { .. } => "map",
            KernelKey::SumRows => "sum_rows",
            KernelKey::Columns { .. } => "columns",
            KernelKey::Clip => "clip",
            KernelKey::CrossEntropy => "cross_entropy",
            KernelKey::SumOfSquares => "sum_of_squares",
            KernelKey::AdamW => "adamw",
        }
    }

    /// The arguments a call of this kernel with `count` arguments writes, each with
    /// whether it also reads what was there ([`Access::Update`]: accumulators, states
    /// carried from call to call, AdamW's tensors); every other argument is only read.
    pub fn outputs(&self, count: usize) -> Vec<(usize, Access)> {
        use Access::{Update, Write};
        let last = |n: usize| (count - n..count).map(|i| (i, Write)).collect();
        match self {
            KernelKey::Gather => vec![(2, Write)],
            KernelKey::Scatter => vec![(3, Update)],
            KernelKey::RmsForward { .. }
            | KernelKey::ConvForward { .. }
            | KernelKey::L2Forward { .. }
            | KernelKey::SumNormForward
            | KernelKey::FloorForward { .. }
            | KernelKey::Rope { .. }
            | KernelKey::RopeAt { .. } => last(1),
            KernelKey::L2Backward { .. } | KernelKey::SumNormBackward | KernelKey::FloorBackward { .. } => last(1),
            KernelKey::RmsBackward { gated: false, .. } => vec![(3, Write), (4, Update)],
            KernelKey::RmsBackward { gated: true, .. } => vec![(4, Write), (5, Write), (6, Update)],
            KernelKey::ConvBackward { .. } => {
                let mut outputs = vec![(3, Write)];
                outputs.extend((4..count).map(|i| (i, Update)));
                outputs
            }
            KernelKey::ConvStep { .. } => vec![(count - 2, Update), (count - 1, Write)],
            KernelKey::ScanTrain { .. } => vec![(count - 3, Write), (count - 2, Update), (count - 1, Write)],
            KernelKey::ScanStep { .. } => vec![(count - 2, Write), (count - 1, Update)],
            KernelKey::ScanBackward { spec, .. } => {
                // The state gradient, the scratch of recomputed states, the gradients.
                let dstate = scan_input_count(spec) + 2;
                let mut outputs = vec![(dstate, Update), (dstate + 1, Write)];
                outputs.extend((dstate + 2..count).map(|i| (i, Update)));
                outputs
            }
            KernelKey::AttentionForward { .. } => vec![(3, Write), (4, Write)],
            KernelKey::AttentionBackward { .. } => vec![(6, Update), (7, Update), (8, Update)],
            KernelKey::AttentionDecode { .. } => vec![(3, Update), (4, Update), (6, Write)],
            KernelKey::Map { spec, .. } => last(spec.outputs.len()),
            KernelKey::SumRows | KernelKey::SumOfSquares => vec![(1, Update)],
            KernelKey::Columns { .. } => vec![(1, Write)],
            KernelKey::Clip => vec![(0, Update), (2, Write)],
            KernelKey::CrossEntropy => vec![(3, Update), (4, Write)],
            KernelKey::AdamW => vec![(0, Update), (2, Update), (3, Update)],
        }
    }

    /// The arguments that hold token ids (i32); every other argument holds floats.
    pub fn id_arguments(&self) -> &'static [usize] {
        match self {
            KernelKey::Gather | KernelKey::Scatter => &[1],
            KernelKey::CrossEntropy => &[1, 2],
            _ => &[],
        }
    }

    /// A kernel whose GPU form divides a point's work over lanes (see [`crate::gpu`]):
    /// the argument and axes whose dims multiply to the lanes — the scan's state, one
    /// lane per (state head, value channel); attention's queries, one per (row, head);
    /// the convolution's channels; the embedding's columns; a warp for a norm's rows
    /// ([`crate::norms::ROW_LANES`], as [`crate::gpu::Slices::Warp`]).
    pub fn lanes(&self, count: usize) -> Option<(usize, &'static [usize])> {
        let state = match self {
            KernelKey::ScanTrain { .. } => count - 2,
            KernelKey::ScanStep { .. } => count - 1,
            KernelKey::ScanBackward { spec, .. } => scan_input_count(spec) + 2,
            // q `[B,T,H,D]`: a lane per (query row, head); RoPE's x alike.
            KernelKey::AttentionForward { .. }
            | KernelKey::AttentionBackward { .. }
            | KernelKey::Rope { .. }
            | KernelKey::RopeAt { .. } => return Some((0, &[1, 2])),
            // table `[V,D]`: a lane per column.
            KernelKey::Gather | KernelKey::Scatter => return Some((0, &[1])),
            // x `[B,T,C]`: a lane per channel.
            KernelKey::ConvForward { .. } | KernelKey::ConvBackward { .. } | KernelKey::ConvStep { .. } => {
                return Some((0, &[2]));
            }
            // x `[R,W]`, a point per row: a warp per row (its lanes are the slices).
            KernelKey::RmsForward { .. }
            | KernelKey::RmsBackward { .. }
            | KernelKey::L2Forward { .. }
            | KernelKey::L2Backward { .. } => {
                return Some((0, &[]));
            }
            _ => return None,
        };
        Some((state, &[1, 3]))
    }

    /// How a GPU's lanes of this key divide a lane's work further: the scan's over key
    /// channels ([`crate::scan::key_slices`] lanes per state column), the training
    /// convolution's over chunks of tokens ([`crate::conv::time_chunks`]), a norm's row
    /// over a warp's lanes.
    pub fn lane_slices(&self) -> crate::gpu::Slices {
        use crate::gpu::Slices;
        match self {
            KernelKey::ScanTrain { .. } | KernelKey::ScanStep { .. } | KernelKey::ScanBackward { .. } => {
                Slices::KeyChannels
            }
            KernelKey::ConvForward { .. } | KernelKey::ConvBackward { .. } => Slices::TimeChunks,
            KernelKey::RmsForward { .. }
            | KernelKey::RmsBackward { .. }
            | KernelKey::L2Forward { .. }
            | KernelKey::L2Backward { .. } => Slices::Warp,
            _ => Slices::One,
        }
    }

    /// The most rows of its split arguments a GPU point of this key's lanes form walks
    /// (a divisor of the call's rows is taken, [`crate::gpu::points`]): RMSNorm's
    /// backward gives a warp [`crate::norms::ROWS_PER_WARP`] rows, summing the weight's
    /// gradient over them before its atomic adds (one per row and column took 2.1 ms
    /// over 16K rows on the H200); every other key one.
    pub fn rows_per_point(&self) -> usize {
        match self {
            KernelKey::RmsBackward { .. } => crate::norms::ROWS_PER_WARP,
            _ => 1,
        }
    }

    /// The registers a thread a GPU kernel of this key may take (`nvvm.maxnreg`), where
    /// bounding them pays: the reverse scan's lanes take 255 unbounded (8 warps a
    /// multiprocessor); at 128, with what spills, GatedDeltaNet's 3:1 step ran 1.13×
    /// faster on an H100 and at 168 1.06× slower (`runtime/benches/README.md`).
    /// The chunked form ([`Form::Chunked`]) sets no bound: its threads hold a few
    /// values each, and its launch bound ([`crate::gpu::Bounds`]) tells ptxas the block.
    pub fn max_registers(&self, form: Form) -> Option<u32> {
        (form != Form::Chunked && matches!(self, KernelKey::ScanBackward { .. })).then_some(128)
    }

    /// The form a GPU runs this key in unless `HYB_GPU_FORM` says otherwise, where it is
    /// not the lanes form: the chunked reverse scan of RetNet's recurrence (a fixed decay
    /// a head), 1.30× the lanes form's step on the GPU study's RetNet 3:1 model on an
    /// H100 (566K against 434K tokens/s; `runtime/benches/README.md`). The chunked forms
    /// of the other recurrences were slower there (0.79 – 0.89×) and stay opt-in.
    pub fn preferred_gpu_form(&self) -> Option<Form> {
        match self {
            KernelKey::ScanBackward { spec, chunk }
                if scan::chunked::kind(spec) == Some(scan::chunked::Kind::Fixed)
                    && scan::chunked::supports(spec, *chunk) =>
            {
                Some(Form::Chunked)
            }
            _ => None,
        }
    }

    /// The argument the kernel uses as working memory alone, whose contents after the
    /// call mean nothing: the reverse scan's `buf`, which each form fills its own way
    /// (the loops and lanes forms with a chunk's recomputed states, the chunked form
    /// with sub-chunk start states or not at all). Comparisons of two devices skip it.
    pub fn scratch_argument(&self) -> Option<usize> {
        match self {
            KernelKey::ScanBackward { spec, .. } => Some(scan_input_count(spec) + 3),
            _ => None,
        }
    }

    /// The forms this key's generator emits: every key its loops, blocks and lanes; the
    /// reverse scan of the specs [`scan::chunked::supports`] its chunked form too.
    pub fn forms(&self) -> &'static [Form] {
        match self {
            KernelKey::ScanBackward { spec, chunk } if scan::chunked::supports(spec, *chunk) => {
                &[Form::Loops, Form::Blocks, Form::Lanes, Form::Chunked]
            }
            _ => &[Form::Loops, Form::Blocks, Form::Lanes],
        }
    }
}

impl fmt::Display for KernelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = self.label();
        match self {
            KernelKey::Gather
            | KernelKey::Scatter
            | KernelKey::SumNormForward
            | KernelKey::SumNormBackward
            | KernelKey::SumRows
            | KernelKey::Clip
            | KernelKey::CrossEntropy
            | KernelKey::SumOfSquares
            | KernelKey::AdamW => write!(f, "{label}"),
            KernelKey::RmsForward { eps, .. } | KernelKey::RmsBackward { eps, .. } => write!(f, "{label}(eps={eps})"),
            KernelKey::L2Forward { eps } | KernelKey::L2Backward { eps } => write!(f, "{label}(eps={eps})"),
            KernelKey::ConvForward { bias } | KernelKey::ConvBackward { bias } | KernelKey::ConvStep { bias } => {
                write!(f, "{label}(bias={bias})")
            }
            KernelKey::FloorForward { layer } | KernelKey::FloorBackward { layer } => {
                write!(f, "{label}(layer={layer})")
            }
            KernelKey::Rope { theta, .. } | KernelKey::RopeAt { theta } => write!(f, "{label}(theta={theta})"),
            KernelKey::ScanTrain { spec, chunk } | KernelKey::ScanBackward { spec, chunk } => {
                write!(f, "{label}({}, chunk={chunk})", scan_text(spec))
            }
            KernelKey::ScanStep { spec } => write!(f, "{label}({})", scan_text(spec)),
            KernelKey::AttentionForward { spec }
            | KernelKey::AttentionBackward { spec }
            | KernelKey::AttentionDecode { spec } => {
                let window = spec.window.map_or("none".to_string(), |w| w.to_string());
                write!(
                    f,
                    "{label}(group={}, window={window}, scale={}, head_dim={})",
                    spec.group, spec.scale, spec.head_dim
                )
            }
            KernelKey::Columns { src_col, dst_col, width } => {
                write!(f, "{label}(src_col={src_col}, dst_col={dst_col}, width={width})")
            }
            KernelKey::Map { spec, broadcast } => {
                let outputs: Vec<String> = spec.outputs.iter().map(expr_text).collect();
                let flags: String = broadcast.iter().map(|b| if *b { 'b' } else { '.' }).collect();
                write!(f, "{label}(inputs={}, broadcast={flags}, [{}])", spec.inputs, outputs.join(", "))
            }
        }
    }
}

/// An expression as nested calls: `mul(x0, silu(x1))`.
fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::Input(i) => format!("x{i}"),
        Expr::Const(c) => format!("{c}"),
        Expr::Unary(op, x) => format!("{}({})", format!("{op:?}").to_lowercase(), expr_text(x)),
        Expr::Binary(op, a, b) => format!("{}({}, {})", format!("{op:?}").to_lowercase(), expr_text(a), expr_text(b)),
    }
}

fn scan_text(spec: &ScanSpec) -> String {
    format!(
        "update={:?}, decay={:?}, q_per_state={}, states_per_key={}, scale={}, query={}, state={}x{}",
        spec.update, spec.decay, spec.q_per_state, spec.states_per_key, spec.scale, spec.query, spec.dk, spec.dv
    )
    .to_lowercase()
}

impl PartialEq for KernelKey {
    fn eq(&self, other: &KernelKey) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for KernelKey {}

impl Hash for KernelKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.to_string().hash(state);
    }
}

/// How a kernel treats an argument it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Overwritten without being read.
    Write,
    /// Read, then written (accumulated into, or carried state).
    Update,
}

/// q?, k, v, g?, β?: the scan's inputs before its other arguments.
fn scan_input_count(spec: &ScanSpec) -> usize {
    let decay = spec.decay != crate::scan::Decay::None;
    let delta = spec.update == crate::scan::ScanUpdate::Delta;
    usize::from(spec.query) + 2 + usize::from(decay) + usize::from(delta)
}

/// The generated function of `key` for the GPU form, named `name`: strided memref
/// arguments of the element types of `signature` (one per argument; bf16 where the
/// program stores bf16), f32 arithmetic and PTX math, without a module around it.
pub fn generate_gpu_body(key: &KernelKey, name: &str, form: Form, signature: &[Elem]) -> Option<String> {
    let parallel = match form {
        Form::Blocks => crate::emit::Parallel::Blocks,
        Form::Lanes => crate::emit::Parallel::Threads,
        Form::Chunked => crate::emit::Parallel::Block,
        Form::Loops => return None,
    };
    let config =
        crate::emit::Config::gpu_form(crate::emit::Scalar::F32, parallel).with_bf16_args(bf16_positions(signature));
    Some(generate_with(key, &config, name))
}

/// The arguments of a signature stored as bf16.
pub fn bf16_positions(signature: &[Elem]) -> impl Iterator<Item = usize> + '_ {
    signature.iter().enumerate().filter(|(_, elem)| **elem == Elem::Bf16).map(|(i, _)| i)
}

/// The storage a signature asks for beyond f32 (for [`NoForm`]): bf16 if any argument is.
pub fn storage_of(signature: &[Elem]) -> Elem {
    if signature.contains(&Elem::Bf16) { Elem::Bf16 } else { Elem::F32 }
}

/// A key with no generator for the asked form or element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoForm {
    pub key: String,
    pub form: Form,
    pub storage: Elem,
}

impl fmt::Display for NoForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel `{}` has no {} form with {} storage", self.key, self.form, self.storage)
    }
}

/// The MLIR module of `key` in `form` for the CPU's JIT, its arguments of the element
/// types of `signature` (bf16 where the program stores bf16, computed in f32), its one
/// public function named `name`.
pub fn generate(key: &KernelKey, form: Form, signature: &[Elem], name: &str) -> Result<String, NoForm> {
    if !key.forms().contains(&form) || form != Form::Loops {
        return Err(NoForm { key: key.to_string(), form, storage: storage_of(signature) });
    }
    if signature.contains(&Elem::Bf16) {
        return Ok(generate_with(key, &Config::CPU.with_bf16_args(bf16_positions(signature)), name));
    }
    Ok(match key {
        KernelKey::Gather => embed::gather(name),
        KernelKey::Scatter => embed::scatter(name),
        KernelKey::RmsForward { eps, gated } => norms::rms_forward(*eps, *gated, name),
        KernelKey::RmsBackward { eps, gated } => norms::rms_backward(*eps, *gated, name),
        KernelKey::L2Forward { eps } => norms::l2_forward(*eps, name),
        KernelKey::L2Backward { eps } => norms::l2_backward(*eps, name),
        KernelKey::SumNormForward => norms::sum_forward(name),
        KernelKey::SumNormBackward => norms::sum_backward(name),
        KernelKey::ConvForward { bias } => conv::forward(*bias, name),
        KernelKey::ConvBackward { bias } => conv::backward(*bias, name),
        KernelKey::ConvStep { bias } => conv::step(*bias, name),
        KernelKey::FloorForward { layer } => floor::forward(*layer, name),
        KernelKey::FloorBackward { layer } => floor::backward(*layer, name),
        KernelKey::Rope { theta, inverse } => attention::rope(*theta, name, *inverse),
        KernelKey::RopeAt { theta } => attention::rope_at(*theta, name),
        KernelKey::ScanTrain { spec, chunk } => scan::forward_train(spec, name, *chunk),
        KernelKey::ScanBackward { spec, chunk } => scan::backward(spec, name, *chunk),
        KernelKey::ScanStep { spec } => scan::forward(spec, name),
        KernelKey::AttentionForward { spec } => attention::forward(spec, name),
        KernelKey::AttentionBackward { spec } => attention::backward(spec, name),
        KernelKey::AttentionDecode { spec } => attention::decode(spec, name),
        KernelKey::Map { spec, broadcast } => pointwise::generate_broadcast(spec, broadcast, name),
        KernelKey::SumRows => pointwise::sum_rows(name),
        KernelKey::Columns { src_col, dst_col, width } => copy::columns(*src_col, *dst_col, *width, name),
        KernelKey::Clip => copy::clip(name),
        KernelKey::CrossEntropy => loss::cross_entropy(name),
        KernelKey::SumOfSquares => optim::sum_of_squares(name),
        KernelKey::AdamW => optim::adamw(name),
    })
}

/// The function of `key`'s generator under `config`, named `name`: what [`generate`]
/// dispatches to, with the element types, flags, argument layout and wrapping the
/// configuration says. With [`Config::CPU`] it is [`generate`]'s module for `Form::Loops`
/// and f32 storage; with [`Config::gpu`] a bare `func.func @name` (strided memref
/// arguments, inline PTX for the special functions) for a GPU wrapper to call.
pub fn generate_with(key: &KernelKey, config: &Config, name: &str) -> String {
    match key {
        KernelKey::Gather => embed::gather_with(name, config),
        KernelKey::Scatter => embed::scatter_with(name, config),
        KernelKey::RmsForward { eps, gated } => norms::rms_forward_with(*eps, *gated, name, config),
        KernelKey::RmsBackward { eps, gated } => norms::rms_backward_with(*eps, *gated, name, config),
        KernelKey::L2Forward { eps } => norms::l2_forward_with(*eps, name, config),
        KernelKey::L2Backward { eps } => norms::l2_backward_with(*eps, name, config),
        KernelKey::SumNormForward => norms::sum_forward_with(name, config),
        KernelKey::SumNormBackward => norms::sum_backward_with(name, config),
        KernelKey::ConvForward { bias } => conv::forward_with(*bias, name, config),
        KernelKey::ConvBackward { bias } => conv::backward_with(*bias, name, config),
        KernelKey::ConvStep { bias } => conv::step_with(*bias, name, config),
        KernelKey::FloorForward { layer } => floor::forward_with(*layer, name, config),
        KernelKey::FloorBackward { layer } => floor::backward_with(*layer, name, config),
        KernelKey::Rope { theta, inverse } => attention::rope_with(*theta, name, *inverse, config),
        KernelKey::RopeAt { theta } => attention::rope_at_with(*theta, name, config),
        KernelKey::ScanTrain { spec, chunk } => scan::forward_train_with(spec, name, *chunk, config),
        KernelKey::ScanBackward { spec, chunk } => scan::backward_with(spec, name, *chunk, config),
        KernelKey::ScanStep { spec } => scan::forward_with(spec, name, config),
        KernelKey::AttentionForward { spec } => attention::forward_with(spec, name, config),
        KernelKey::AttentionBackward { spec } => attention::backward_with(spec, name, config),
        KernelKey::AttentionDecode { spec } => attention::decode_with(spec, name, config),
        KernelKey::Map { spec, broadcast } => pointwise::generate_with(spec, broadcast, name, config),
        KernelKey::SumRows => pointwise::sum_rows_with(name, config),
        KernelKey::Columns { src_col, dst_col, width } => copy::columns_with(*src_col, *dst_col, *width, name, config),
        KernelKey::Clip => copy::clip_with(name, config),
        KernelKey::CrossEntropy => loss::cross_entropy_with(name, config),
        KernelKey::SumOfSquares => optim::sum_of_squares_with(name, config),
        KernelKey::AdamW => optim::adamw_with(name, config),
    }
}
