//! The model IR: what a checked `.hyb` file means, and the only input of later stages.
//!
//! A [`Model`] is
//! - a [`ModelConfig`] (vocabulary, width, MLP, norm, embedding tying);
//! - an arena of [`Mixer`]s: every mixer the schedule uses, each resolved to ONE generic
//!   description — [`LinearMixer`] for all linear-attention mixers, presets and
//!   compositions alike; [`AttentionMixer`] for softmax attention; [`RoutedMixer`] for a
//!   layer whose heads are split between mixers. Presets (`gla`, `gdn`, ...) exist only
//!   in sema; here a preset is its parts plus a label for reports;
//! - the expanded layer list: one [`Layer`] per block, in order, naming its mixer;
//! - every parameter ([`Param`]) with its exact fla name and shape, in a stable order
//!   (model-level first, then layer by layer, then the head); see [`params`];
//! - the checked `train` and `eval` settings ([`train`], checked by `crate::sema::train`), carried for the
//!   trainer.
//!
//! Semantics of a block (pre-norm, fla's): `h += mixer(rmsnorm(h)); h += mlp(rmsnorm(h))`.
//! A routed layer feeds the same normed input to every branch; `concat` concatenates
//! the branches' per-head outputs (after each branch's own output norm and gate) and
//! applies one shared output projection; `mean` gives each branch its own output
//! projection, RMS-normalises each branch output with a learned per-channel scale and
//! averages them.
//!
//! The text form ([`print`]) is stable and snapshot-tested; each linear mixer prints as
//! the `linear(...)` call that denotes it, which is itself valid `.hyb`.

pub mod params;
pub mod parse;
pub mod print;
pub mod train;
pub mod verify;

use crate::arena::{Arena, Handle};
use hyb_grammar::Span;

#[derive(Clone, Debug)]
pub struct Model {
    pub config: ModelConfig,
    pub mixers: Arena<Mixer>,
    pub layers: Vec<Layer>,
    pub params: Vec<Param>,
    pub train: Option<train::TrainConfig>,
    pub eval: Option<train::EvalConfig>,
    pub sweep: Option<train::SweepConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub vocab: u64,
    pub d_model: u64,
    pub mlp: Mlp,
    pub norm_eps: f64,
    pub tie_embeddings: bool,
    pub init_std: f64,
    pub max_position: u64,
}

/// SwiGLU MLP: `down(act(gate(x)) * up(x))`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub intermediate: u64,
    /// The ratio it was derived from, if any (fla's `hidden_ratio`).
    pub ratio: Option<f64>,
    /// True when `intermediate` was given explicitly (fla's `intermediate_size`).
    pub explicit: bool,
    pub act: Act,
}

#[derive(Clone, Debug)]
pub struct Layer {
    pub mixer: Handle<Mixer>,
    /// The schedule text that placed this layer.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Mixer {
    /// The name the schedule uses (`gdn`, `attn`, or an inline call's text).
    pub name: String,
    /// The preset it came from, for reports and exports; `None` for compositions.
    pub preset: Option<Preset>,
    pub kind: MixerKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MixerKind {
    Linear(LinearMixer),
    Attention(AttentionMixer),
    Routed(RoutedMixer),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    Hgrn,
    Hgrn2,
    RetNet,
    Gla,
    DeltaNet,
    GatedDeltaNet,
    Attention,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Hgrn,
        Preset::Hgrn2,
        Preset::RetNet,
        Preset::Gla,
        Preset::DeltaNet,
        Preset::GatedDeltaNet,
        Preset::Attention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Hgrn => "hgrn",
            Preset::Hgrn2 => "hgrn2",
            Preset::RetNet => "retnet",
            Preset::Gla => "gla",
            Preset::DeltaNet => "deltanet",
            Preset::GatedDeltaNet => "gated_deltanet",
            Preset::Attention => "attention",
        }
    }

    /// fla's `model_type` for a model built of this mixer.
    pub fn fla_model_type(self) -> &'static str {
        match self {
            Preset::Hgrn => "hgrn",
            Preset::Hgrn2 => "hgrn2",
            Preset::RetNet => "retnet",
            Preset::Gla => "gla",
            Preset::DeltaNet => "delta_net",
            Preset::GatedDeltaNet => "gated_deltanet",
            Preset::Attention => "transformer",
        }
    }
}

/// The generic linear-attention mixer. Features: `q = qk_act(conv_act(conv(W_q x)))`,
/// likewise k, and `v = v_act(conv_act(conv(W_v x)))` (without a convolution, just the
/// activation of the projection), so each activation is applied once: GDN's and
/// DeltaNet's SiLU is `qk_act`/`v_act` with an identity `conv_act`; GLA's convolution
/// carries its own SiLU before the feature map. Per head, with state `S` (matrix
/// `d_k × d_v`, or a vector of width `d_k` when `state` is [`StateKind::Vector`]):
///
/// `S_t = α_t ⊙ S_{t-1} + k_t v_tᵀ` (additive) or
/// `S_t = α_t S_{t-1} + β_t k_t (v_t − (α_t S_{t-1})ᵀ k_t)ᵀ` (delta), and
/// `o_t = scale · S_tᵀ q_t`, then output norm and gate, then the output projection.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearMixer {
    pub state: StateKind,
    pub update: Update,
    pub gate: Gate,
    pub lower_bound: LowerBound,
    /// HGRN-2's key `k = 1 − α` (and HGRN's input gate `1 − λ`): no key projection.
    pub tie_key_to_gate: bool,
    /// Query heads.
    pub heads: u64,
    /// Key heads: `heads`, or fewer when keys and values are shared by groups of query
    /// heads (fla's `num_kv_heads`, GQA; then `v_heads == k_heads`).
    pub k_heads: u64,
    /// Value heads: `heads`, fewer under GQA, or more (GDN's `num_v_heads`, GVA).
    pub v_heads: u64,
    pub head_k_dim: u64,
    pub head_v_dim: u64,
    pub conv: Option<Conv>,
    /// Feature map applied to q and k.
    pub qk_act: Act,
    /// Activation of the value (HGRN's `silu(i)`, DeltaNet's `silu(v)`).
    pub v_act: Act,
    pub qk_norm: QkNorm,
    /// RoPE base on q and k (RetNet), if any.
    pub rope: Option<f64>,
    pub output_gate: Option<Act>,
    pub output_norm: OutputNorm,
    /// Lower clamp on the log gate (GLA's `clamp_min`).
    pub clamp_min: Option<f64>,
    pub scale: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    Vector,
    Matrix,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    Additive,
    Delta { beta: Beta, negative_eigenvalues: bool },
}

/// The delta rule's write strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beta {
    /// `β = σ(W_b x)` per value head.
    Sigmoid,
    /// `β = 1`.
    One,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    None,
    /// RetNet's per-head constant decay `γ_h = 1 − 2^(−5−h)`.
    Fixed,
    /// Data-dependent, one value per head per token.
    Scalar(GateParam),
    /// Data-dependent, one value per key channel per token.
    Vector(GateParam),
}

impl Gate {
    pub fn param(self) -> Option<GateParam> {
        match self {
            Gate::Scalar(param) | Gate::Vector(param) => Some(param),
            Gate::None | Gate::Fixed => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GateParam {
    /// `log α = logsigmoid(z) / normalizer`, `z` from a full or low-rank projection.
    LogSigmoid { normalizer: f64, low_rank: Option<u64> },
    /// Mamba-2: `log α = −exp(A_log) · softplus(W_a x + dt_bias)`.
    Mamba,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowerBound {
    None,
    /// HGRN's forget-gate floor `γ_l`, rising with depth (`model.lower_bounds`).
    Layerwise,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    pub size: u64,
    pub bias: bool,
    pub act: Act,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Silu,
    Relu,
    /// `elu(x) + 1`
    EluP1,
}

impl Act {
    pub fn name(self) -> &'static str {
        match self {
            Act::Identity => "identity",
            Act::Silu => "silu",
            Act::Relu => "relu",
            Act::EluP1 => "elu",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNorm {
    None,
    L2,
    Sum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputNorm {
    None,
    /// RMSNorm per head over `head_v_dim`, one weight shared by all heads.
    PerHead,
    /// RMSNorm over the whole value width.
    Full,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttentionMixer {
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub qkv_bias: bool,
    pub qk_norm: bool,
    pub window: Option<u64>,
    pub rope_theta: f64,
    /// A causal depthwise convolution on each of q, k and v after its projection (and
    /// bias), before the norm and RoPE — not in fla's attention; none by default.
    pub conv: Option<Conv>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoutedMixer {
    pub branches: Vec<Branch>,
    pub combine: Combine,
    pub head_dim: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Branch {
    pub name: String,
    pub preset: Option<Preset>,
    pub kind: MixerKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    Concat,
    Mean,
}

/// One trainable tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// fla's name, e.g. `model.layers.3.attn.q_proj.weight`.
    pub name: String,
    pub shape: Vec<u64>,
    pub init: Init,
    /// fla marks `A_log` and `dt_bias` `_no_weight_decay`.
    pub no_weight_decay: bool,
    /// The layer it belongs to; `None` for embeddings, final norm, head, lower bounds.
    pub layer: Option<usize>,
}

impl Param {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal {
        std: f64,
    },
    Ones,
    Zeros,
    /// `A_log = log U(0, 16)` per head.
    MambaALog,
    /// `dt_bias = softplus⁻¹(exp U(ln 1e-3, ln 1e-1))`, floored at 1e-4.
    MambaDtBias,
}

impl Model {
    pub fn mixer_of(&self, layer: usize) -> &Mixer {
        &self.mixers[self.layers[layer].mixer]
    }

    pub fn params_total(&self) -> u64 {
        self.params.iter().map(Param::numel).sum()
    }

    /// Parameters minus the token embedding and the (untied) LM head, as fla counts it.
    pub fn params_non_embedding(&self) -> u64 {
        let embedding: u64 = self
            .params
            .iter()
            .filter(|p| p.name == "model.embeddings.weight" || p.name == "lm_head.weight")
            .map(Param::numel)
            .sum();
        self.params_total() - embedding
    }
}

impl LinearMixer {
    /// Heads of the output (and of the output gate): one per query head, or one per
    /// value head when values have more heads than queries.
    pub fn out_heads(&self) -> u64 {
        self.heads.max(self.v_heads)
    }

    /// Recurrent states kept per sequence: one per key/value head pair.
    pub fn state_heads(&self) -> u64 {
        self.k_heads.max(self.v_heads)
    }

    pub fn out_width(&self) -> u64 {
        self.out_heads() * self.head_v_dim
    }
}

impl MixerKind {
    pub fn is_attention(&self) -> bool {
        matches!(self, MixerKind::Attention(_))
    }
}

pub type MixerHandle = Handle<Mixer>;
