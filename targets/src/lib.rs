//! The target a model is compiled for, as a value the compiler consults (cranelift's
//! `isa`, not a fork of the code): which element types buffers may be stored in and
//! accumulated in, which forms each kernel family has, and the recurrence's checkpoint
//! interval — each fact defined here once.
//!
//! `hybc --target cpu` (the default) or `--target cuda` / `cuda:sm_90a` gives a
//! [`Target`]; the driver passes it to every stage after the grad IR. Nothing here
//! links MLIR, LLVM or CUDA: the crate is facts, not code generation.

use std::fmt;

/// Where a model's step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Target {
    /// The host CPU: kernels JIT-compiled through LLVM, split over threads.
    #[default]
    Cpu,
    /// An NVIDIA GPU of compute capability `sm`, kernels lowered to PTX.
    Cuda { sm: Sm },
}

/// An NVIDIA architecture, e.g. `sm_90a` (Hopper with its architecture-specific
/// instructions: `wgmma`, `setmaxnreg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sm {
    pub version: u32,
    /// The `a` suffix: architecture-specific features, PTX that runs on this
    /// architecture only.
    pub specific: bool,
}

/// Hopper (H100 / H200), the GPU the CUDA target is built for first.
pub const HOPPER: Sm = Sm { version: 90, specific: true };

impl fmt::Display for Sm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sm_{}{}", self.version, if self.specific { "a" } else { "" })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cpu => write!(f, "cpu"),
            Target::Cuda { sm } => write!(f, "cuda:{sm}"),
        }
    }
}

/// The element type of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    Bf16,
    I32,
}

impl Elem {
    pub fn bytes(self) -> u64 {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::Bf16 => 2,
        }
    }

    /// The name MLIR and the program text use.
    pub fn name(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::Bf16 => "bf16",
            Elem::I32 => "i32",
        }
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bf16 nearest to `value` (ties to even; a NaN stays a quiet NaN), as its bits: how
/// checkpoints, constants and the CPU's bf16 products round.
pub fn bf16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    if value.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The f32 a bf16 holds (exact: bf16 is f32's upper half).
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// The storage precision a train block asks for (`precision = f32 | bf16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    F32,
    /// bf16 activations and weight copies; f32 master weights, AdamW moments,
    /// reductions and loss.
    Bf16,
}

impl Precision {
    /// The element type activations are stored in.
    pub fn storage(self) -> Elem {
        match self {
            Precision::F32 => Elem::F32,
            Precision::Bf16 => Elem::Bf16,
        }
    }
}

/// How a kernel is written for a target: one generator per kernel family emits each
/// form of the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Scalar loops over the kernel's iteration space, which the CPU backend splits
    /// over threads (LLVM vectorises the innermost loop).
    Loops,
    /// One GPU thread block per point of the iteration space, one thread of it doing
    /// the point's work (a call that adds into a shared argument runs as one block):
    /// the first GPU form, kept as the simplest reference (`HYB_GPU_FORM=blocks`).
    Blocks,
    /// A GPU thread per point (128 to a block) and, for keys with lanes (the scan, the
    /// convolution, attention, the embedding: `KernelKey::lanes`), a thread per lane of
    /// a point; shared sums by atomic adds. Checked lane by lane on the CPU and kernel
    /// by kernel against the CPU on the H200 (`hybc verify`): the GPU's default.
    Lanes,
    /// One block of threads per (point, block row) working together on a chunk of
    /// tokens at a time through shared-memory tiles and barriers (LAYERS.md §11): the
    /// reverse scans of RetNet, GLA, HGRN-2, DeltaNet and GatedDeltaNet. Checked on the
    /// CPU with its phases run in both orders and against the CPU on an H100; RetNet's
    /// default on a GPU (measured faster), the others' under `HYB_GPU_FORM=chunked`.
    Chunked,
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::Loops => "loops",
            Form::Blocks => "blocks",
            Form::Lanes => "lanes",
            Form::Chunked => "chunked",
        })
    }
}

/// Why a text is not a target.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl std::str::FromStr for Target {
    type Err = ParseError;

    /// `cpu`, `cuda` (Hopper, `sm_90a`) or `cuda:sm_NN[a]`.
    fn from_str(text: &str) -> Result<Target, ParseError> {
        let unknown = || ParseError(format!("unknown target `{text}` (expected `cpu`, `cuda` or `cuda:sm_90a`)"));
        match text {
            "cpu" => return Ok(Target::Cpu),
            "cuda" => return Ok(Target::Cuda { sm: HOPPER }),
            _ => {}
        }
        let arch = text.strip_prefix("cuda:").and_then(|rest| rest.strip_prefix("sm_")).ok_or_else(unknown)?;
        let (digits, specific) = match arch.strip_suffix('a') {
            Some(digits) => (digits, true),
            None => (arch, false),
        };
        let version: u32 = digits.parse().map_err(|_| unknown())?;
        if version < 80 {
            return Err(ParseError(format!("`{text}`: the CUDA target needs sm_80 or newer (bf16 tensor cores)")));
        }
        Ok(Target::Cuda { sm: Sm { version, specific } })
    }
}

impl Target {
    /// Tokens between the recurrent states a training forward saves for the backward,
    /// for sequences of `seq_len` tokens; the plan sizes the checkpoints by it and the
    /// scan kernels are generated for it (the reverse scan recomputes one interval's
    /// states at a time). The power of two at or above √T, within 8 … 64, on every
    /// target (`hybc verify` compares two targets' programs instruction by instruction),
    /// so that an interval's recomputed states stay near the core or in the GPU's L2
    /// (on the CPU at T = 64, 8 against 64: 0.5–11.5 % faster, runtime/benches/README.md).
    pub fn checkpoint_interval(self, seq_len: usize) -> u64 {
        ((seq_len as f64).sqrt().ceil() as u64).next_power_of_two().clamp(8, 64)
    }

    /// The storage types this target's kernels implement for activations: f32, and bf16
    /// with f32 master weights, parameter gradients, moments, states and reductions (on
    /// the CPU bf16 is storage only — every kernel and GEMM computes in f32 — so a bf16
    /// step there is the GPU's step, instruction for instruction).
    pub fn storage_elems(self) -> &'static [Elem] {
        &[Elem::F32, Elem::Bf16]
    }

    /// Reductions, the loss, master weights and AdamW's moments: always f32.
    pub fn accumulate_elem(self) -> Elem {
        Elem::F32
    }

    /// Whether `HYB_GPU_FORM`, when set, names a GPU form (`lanes`, `blocks` or
    /// `chunked`): a misspelt switch is refused rather than read as the default.
    pub fn check_form_switch() -> Result<(), ParseError> {
        match std::env::var("HYB_GPU_FORM").ok().as_deref() {
            None | Some("lanes" | "blocks" | "chunked") => Ok(()),
            Some(other) => Err(ParseError(format!(
                "HYB_GPU_FORM=`{other}` names no GPU form (expected `lanes`, `blocks` or `chunked`)"
            ))),
        }
    }

    /// The kernel forms this target runs, preferred first: on a GPU the lanes form (a
    /// key may prefer another, [`Target::form_for`]), the blocks form alone under
    /// `HYB_GPU_FORM=blocks`, the lanes form for every key under `HYB_GPU_FORM=lanes`,
    /// the chunked form where a key has one under `HYB_GPU_FORM=chunked`.
    pub fn forms(self) -> &'static [Form] {
        let asked = std::env::var("HYB_GPU_FORM").ok();
        match (self, asked.as_deref()) {
            (Target::Cpu, _) => &[Form::Loops],
            (Target::Cuda { .. }, Some("blocks")) => &[Form::Blocks],
            (Target::Cuda { .. }, Some("chunked")) => &[Form::Chunked, Form::Lanes, Form::Blocks],
            (Target::Cuda { .. }, _) => &[Form::Lanes, Form::Blocks],
        }
    }

    /// The form a key with `key_forms` runs in here: under `HYB_GPU_FORM` the first of
    /// [`Target::forms`] the key has; otherwise on a GPU the key's `preferred` form where
    /// it has one (a form measured faster for it: `KernelKey::preferred_gpu_form`), else
    /// that first form.
    pub fn form_for(self, key_forms: &[Form], preferred: Option<Form>) -> Option<Form> {
        let asked = std::env::var("HYB_GPU_FORM").is_ok();
        if let Some(form) = preferred.filter(|form| self.is_gpu() && !asked && key_forms.contains(form)) {
            return Some(form);
        }
        self.forms().iter().copied().find(|form| key_forms.contains(form))
    }

    pub fn is_gpu(self) -> bool {
        matches!(self, Target::Cuda { .. })
    }

    /// The row width an elementwise pass or a sum over a whole flat buffer of `len`
    /// elements is split by (AdamW, a gradient's sum of squares): one part of a call
    /// walks a row. The CPU's threads take long rows — the smallest width from 1024 to
    /// 8192 that divides `len`, else one row; a GPU's threads short ones — the largest
    /// width up to 16 that divides `len` (rows of 1024 left an H200 with a few threads
    /// per parameter walking a thousand elements each: 0.23 ms an AdamW call on 16K
    /// elements).
    pub fn flat_row_width(self, len: usize) -> usize {
        match self {
            Target::Cpu => (1024..=8192).find(|width| len.is_multiple_of(*width)).unwrap_or(len.max(1)),
            Target::Cuda { .. } => largest_divisor(len, 16),
        }
    }

    /// The row width a map over same-shaped values of `len` elements is split by (one
    /// part walks a row; a map that broadcasts an argument keeps the value's rows, which
    /// the broadcast follows): on the CPU the value's own rows (`natural`, its last
    /// dim), on a GPU the largest width up to 4 that divides `len`, so that a warp's
    /// lanes read neighbouring elements rather than rows hundreds of elements apart.
    /// (Rows of 4 were 1.21× faster than the value's rows for GatedDeltaNet's 3:1 step
    /// on an H100, `runtime/benches/README.md`.)
    pub fn map_row_width(self, len: usize, natural: usize) -> usize {
        match self {
            Target::Cpu => natural,
            Target::Cuda { .. } => largest_divisor(len, 4),
        }
    }
}

/// The largest count up to `bound` (at least 1) that divides `len`: a row width, or a
/// group of rows, with nothing left over.
pub fn largest_divisor(len: usize, bound: usize) -> usize {
    (1..=bound.max(1)).rev().find(|width| len.is_multiple_of(*width)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        for text in ["cpu", "cuda:sm_90a", "cuda:sm_80", "cuda:sm_100a"] {
            let target: Target = text.parse().expect(text);
            assert_eq!(target.to_string(), text);
        }
        assert_eq!("cuda".parse::<Target>(), Ok(Target::Cuda { sm: HOPPER }));
        for bad in ["gpu", "cuda:90", "cuda:sm_7x", "cuda:sm_75"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn flat_rows_are_long_on_the_cpu_and_short_on_a_gpu() {
        let gpu = Target::Cuda { sm: HOPPER };
        for (len, cpu_width, gpu_width) in [
            (32768, 1024, 16),
            (16384 * 3, 1024, 16),
            (128, 128, 16),
            (1, 1, 1),
            (0, 1024, 16),
            (6, 6, 6),
            (7 * 13, 91, 13),
        ] {
            assert_eq!(Target::Cpu.flat_row_width(len), cpu_width, "cpu, {len}");
            assert_eq!(gpu.flat_row_width(len), gpu_width, "gpu, {len}");
        }
    }

    /// A map keeps the value's rows on the CPU; on a GPU its rows are at most 4 wide
    /// (what divides the length), so neighbouring lanes read neighbouring elements.
    #[test]
    fn map_rows_are_the_values_on_the_cpu_and_short_on_a_gpu() {
        let gpu = Target::Cuda { sm: HOPPER };
        for (len, natural, gpu_width) in [(16384 * 512, 512, 4), (64 * 70 * 3, 3, 4), (3 * 7, 7, 3), (7 * 13, 13, 1)] {
            assert_eq!(Target::Cpu.map_row_width(len, natural), natural, "cpu, {len}");
            assert_eq!(gpu.map_row_width(len, natural), gpu_width, "gpu, {len}");
        }
    }
}
