//! The command line's surface: `hybc`'s subcommands, their flags and help texts (clap
//! derives), parsed in `main` and dispatched there.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use hyb_driver::Target;
use hybc::sweep;

#[derive(Parser)]
#[command(name = "hybc", version, about = "The hyb compiler for hybrid linear-attention language models")]
#[command(long_about = "The hyb compiler for hybrid linear-attention language models.\n\n\
A .hyb file describes a model (its layer schedule and token mixers) and optionally how to train and evaluate it. \
See docs/LANGUAGE.md for the language.")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Threads of the CPU backend (kernels and GEMMs) [default: one per core].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check .hyb files and report every error with its place in the file.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Compile a .hyb file and print one stage: the model IR, the cost report or an export.
    Compile {
        file: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value_t = EmitArg::Report)]
        emit: EmitArg,
        /// Text for people or JSON for programs (the report; the IR's layers and parameters).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Context length for KV-cache bytes and attention FLOPs
        /// [default: the train block's seq_len, else 4096].
        #[arg(long)]
        context: Option<u64>,
        /// The target of the plan, program, kernels and report: `cpu`, `cuda` (sm_90a) or
        /// `cuda:sm_NN[a]` [default: the train block's `target`, else cpu].
        #[arg(long)]
        target: Option<Target>,
        /// Megatron symbol to write for linear-attention layers (Megatron has none of its own).
        #[arg(long, value_name = "CHAR")]
        megatron_linear: Option<char>,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run one training step's forward and backward on the target and on the CPU in
    /// lockstep, and list every kernel whose outputs disagree (each checked on the CPU's inputs).
    Verify {
        file: PathBuf,
        /// The target to check against the CPU [default: the train block's `target`, else cpu].
        #[arg(long)]
        target: Option<Target>,
        #[arg(long, default_value_t = 2)]
        batch: usize,
        /// Past the scan's checkpoint interval (64) and no multiple of it, by default.
        #[arg(long, default_value_t = 70)]
        seq_len: usize,
        /// Largest disagreement allowed, relative to each output's largest value
        /// [default: 1e-3, or 1e-2 for a model that stores bf16].
        #[arg(long)]
        tolerance: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Any field of the train block, as for `train` (`--set precision=f32`).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Rewrite .hyb files in canonical form (comments are kept).
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Do not write; exit with 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
        /// Print the formatted text instead of writing the file.
        #[arg(long, conflicts_with = "check")]
        stdout: bool,
    },
    /// Compile the training step and run it on the CPU or an NVIDIA GPU (`--target`), printing the loss of every step.
    Train {
        file: PathBuf,
        /// Steps to run [default: the train block's steps, else 100].
        #[arg(long)]
        steps: Option<u64>,
        /// Sequences per step [default: the train block's batch, else 8].
        #[arg(long)]
        batch: Option<u64>,
        /// Tokens per sequence [default: the train block's seq_len, else 128].
        #[arg(long)]
        seq_len: Option<u64>,
        /// Learning rate [default: the train block's lr, else 3e-4].
        #[arg(long)]
        lr: Option<f64>,
        #[arg(long)]
        seed: Option<u64>,
        /// Time every kernel and print where the step's time goes.
        #[arg(long)]
        profile: bool,
        /// The run directory: checkpoints and metrics.jsonl [default: runs/<file stem>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from the run directory's latest checkpoint (a run stopped before its
        /// first checkpoint starts afresh).
        #[arg(long)]
        resume: bool,
        /// Start from the weights of a checkpoint, a run directory's latest, or a published
        /// fla / Hugging Face directory, with a fresh optimizer (fine-tuning).
        #[arg(long, value_name = "DIR", conflicts_with = "resume")]
        init_from: Option<PathBuf>,
        /// Where the step runs: `cpu`, or `cuda` / `cuda:sm_NN[a]`
        /// [default: the train block's `target`, else cpu].
        #[arg(long)]
        target: Option<Target>,
        /// Write a checkpoint every N steps [default: the train block's checkpoint_every;
        /// always after the last step].
        #[arg(long)]
        checkpoint_every: Option<u64>,
        /// Train on N GPUs of this host, data parallel over NCCL: N ranks, each on its
        /// share of every batch (the batch a multiple of N), rank 0 writing the run.
        /// Under torchrun or srun leave it out: each process they start is a rank.
        #[arg(long, value_name = "N")]
        gpus: Option<usize>,
        /// Set a field of the train or eval block, checked as if written in the file:
        /// `--set steps=100`, `--set 'optimizer=adamw(lr: 1e-3)'`, `--set eval.batch=4`
        /// (repeatable; a flag such as --steps and a --set of its field together is an error).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Score a checkpoint on the eval block's tasks: a table, and JSON in the checkpoint
    /// (accuracy by length, pairs or needle depth; perplexity on text).
    Eval {
        /// The model [default: the model.hyb its run wrote beside the checkpoint].
        file: Option<PathBuf>,
        /// The checkpoint directory (`runs/<name>/checkpoints/step_N`), or a run directory
        /// (`runs/<name>`: its latest complete checkpoint).
        #[arg(long)]
        ckpt: PathBuf,
        /// Where to write the scores [default: <ckpt>/eval.json].
        #[arg(long)]
        json: Option<PathBuf>,
        /// Where the model runs: `cpu`, or `cuda` / `cuda:sm_NN[a]`
        /// [default: the train block's `target`, else cpu].
        #[arg(long)]
        target: Option<Target>,
        /// Set a field of the train or eval block, checked as if written in the file:
        /// `--set steps=100`, `--set 'optimizer=adamw(lr: 1e-3)'`, `--set eval.batch=4`
        /// (repeatable; a flag such as --steps and a --set of its field together is an error).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Continue a prompt with a checkpoint, one token at a time (each mixer's recurrent
    /// state, attention's KV cache): text for a text model, token ids for a recall model.
    Generate {
        /// The model [default: the model.hyb its run wrote beside the checkpoint].
        file: Option<PathBuf>,
        /// A checkpoint directory, or a run directory (its latest complete checkpoint).
        #[arg(long)]
        ckpt: PathBuf,
        /// Text, or token ids (`"3 17 42"`) for a model trained on a recall task.
        #[arg(long, required_unless_present = "prompts", conflicts_with = "prompts")]
        prompt: Option<String>,
        /// A file of prompts, one per line: each continued, written as a JSON line
        /// (`prompt`, `completion`, `new_tokens`) in the file's order.
        #[arg(long)]
        prompts: Option<PathBuf>,
        /// Prompts of `--prompts` decoded at once.
        #[arg(long, default_value_t = 8, requires = "prompts")]
        batch: usize,
        /// New tokens to generate, at most.
        #[arg(long, alias = "max-new-tokens", default_value_t = 64)]
        tokens: usize,
        /// 0 is greedy; above, sampled from softmax(logits / temperature).
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        /// Sample among the k most likely tokens only.
        #[arg(long)]
        top_k: Option<usize>,
        /// Sample among the fewest most likely tokens whose probabilities sum to p (0 < p ≤ 1).
        #[arg(long, value_parser = top_p)]
        top_p: Option<f64>,
        /// Stop once the continuation contains this text (repeatable; it is printed).
        #[arg(long)]
        stop: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where the model runs: `cpu`, or `cuda` / `cuda:sm_NN[a]`
        /// [default: the train block's `target`, else cpu].
        #[arg(long)]
        target: Option<Target>,
    },
    /// Train every run of the file's sweep block, one after another (resumable), then
    /// write results.csv, results.md and recall.svg.
    Sweep {
        file: PathBuf,
        /// The sweep's directory [default: runs/<file stem>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where every run trains: `cpu`, or `cuda` / `cuda:sm_NN[a]`
        /// [default: the train block's `target`, else cpu].
        #[arg(long)]
        target: Option<Target>,
        /// Print the runs (index, state, name) and stop; with --shard, that shard's. A last
        /// line, starting with `#`, counts them and says how long those left may take;
        /// with --time-limit (and --jobs), `#` lines then say what a call of that length
        /// would start now in its first wave, each run's guessed length, and how many at
        /// once.
        #[arg(long, conflicts_with = "report")]
        list: bool,
        /// Train only every n-th run from the i-th (`i/n`, 0 ≤ i < n): one job of an array.
        #[arg(long, value_name = "i/n", conflicts_with = "report")]
        shard: Option<sweep::Shard>,
        /// Train only these runs of the grid, by the indices --list prints (what --jobs
        /// hands each of its processes).
        #[arg(long, value_name = "i,j,…", hide = true, conflicts_with_all = ["list", "shard", "report"])]
        runs: Option<sweep::RunList>,
        /// Write the tables from the runs finished so far, training nothing.
        #[arg(long)]
        report: bool,
        /// Train N runs at once, the cores split between them: waves of N processes of
        /// this binary, each dealt an equal share of the runs that can train and are not
        /// done (logs in the sweep's `shard-i.log`), then the report. On a GPU target each
        /// process gets a GPU of those visible, round robin (`CUDA_VISIBLE_DEVICES`). With
        /// --list and --time-limit: plan such a call's first wave, training nothing.
        #[arg(long, value_name = "N", conflicts_with_all = ["shard", "report", "runs"],
              value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// With --jobs on a GPU target: let shards that share a GPU take turns on it
        /// instead of running together under NVIDIA's MPS (which the sweep otherwise starts
        /// for them, or uses when CUDA_MPS_PIPE_DIRECTORY names a running one).
        #[arg(long, requires = "jobs")]
        no_mps: bool,
        /// Start no run that would not finish within this wall time from now (`540s`,
        /// `9m`, `2h`: a batch job's limit, a lent machine's lease), a run's length
        /// guessed from the longest finished run most like it (its cell's, else the cells
        /// sharing most of its lets), first among those that trained with as many runs at
        /// once; under --jobs a wave starts fewer shards where more of its runs then
        /// finish. The runs left wait for the next call, which resumes the sweep.
        #[arg(long, value_name = "DURATION", value_parser = hybc::deadline::parse_duration,
              conflicts_with = "report")]
        time_limit: Option<std::time::Duration>,
        /// --time-limit as a moment (seconds since the Unix epoch): what --jobs hands its
        /// processes, so they share one limit.
        #[arg(long, value_name = "SECONDS", hide = true, conflicts_with = "time_limit")]
        deadline_at: Option<f64>,
        /// How many runs train at once on the machine, this process's included: what
        /// --jobs hands its processes, recorded with each run's wall time.
        #[arg(long, value_name = "N", hide = true, requires = "runs", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..))]
        at_once: u16,
        /// This process's marker among its --jobs wave's (one file a shard, in one
        /// folder, removed when the shard ends): a run counts the shards still at work.
        #[arg(long, value_name = "FILE", hide = true, requires = "runs")]
        wave_marker: Option<PathBuf>,
        /// Set a field of the train or eval block, checked as if written in the file:
        /// `--set steps=100`, `--set 'optimizer=adamw(lr: 1e-3)'`, `--set eval.batch=4`
        /// (repeatable; a flag such as --steps and a --set of its field together is an error).
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        sets: Vec<String>,
    },
    /// Write a checkpoint in another format: `fla` gives a directory with config.json and
    /// model.safetensors that fla's AutoModelForCausalLM loads.
    Export {
        file: PathBuf,
        /// The checkpoint directory (`runs/<name>/checkpoints/step_N`), or a run directory
        /// (`runs/<name>`: its latest complete checkpoint).
        #[arg(long)]
        ckpt: PathBuf,
        #[arg(long, value_enum, default_value_t = ExportFormat::Fla)]
        format: ExportFormat,
        /// The weights' type in the file: f32 (as trained) or bf16 (rounded to nearest).
        #[arg(long, value_enum, default_value_t = ExportDtype::F32)]
        dtype: ExportDtype,
        /// The directory to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Tokenize text files into a Megatron-style dataset (OUT.bin + OUT.idx) for
    /// `tokens("OUT.bin")`: a .txt is one document, a .jsonl / .parquet one per line or
    /// row; each document ends with the end-of-document token.
    Tokenize {
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        /// A Hugging Face tokenizer.json [default: bytes, ids 0–255, end of document 256].
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// The output: OUT.bin and OUT.idx.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// The JSON Lines field / Parquet column holding each document's text.
        #[arg(long, default_value = "text")]
        field: String,
        /// The end-of-document id [default: the tokenizer's <|endoftext|>, </s>, … ; 256 for bytes].
        #[arg(long, value_name = "ID")]
        eod: Option<u32>,
        /// The ids' type in the .bin [default: u16 when the vocabulary fits, else i32].
        #[arg(long, value_enum)]
        dtype: Option<TokenDtypeArg>,
    },
    /// Turn an fla / Hugging Face config.json into a .hyb file.
    Import {
        config: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum EmitArg {
    /// The model IR: mixers as their generic description, every parameter.
    Ir,
    /// The graph IR: the forward pass of a training step as tensor ops.
    Graph,
    /// The backward pass (IR-level autodiff) and the optimizer step.
    Grad,
    /// The kernel plan: one line per launch, elementwise chains fused.
    Kernels,
    /// Every intermediate of a training step placed in one arena by liveness.
    Plan,
    /// The step program: instructions over typed buffers, each kernel by its key.
    Program,
    /// The MLIR module of every kernel of the program, for the target.
    Mlir,
    /// The PTX of every kernel (`--target cuda`).
    Ptx,
    /// The MLIR pass pipelines that lower the kernels for the target.
    Passes,
    /// Layers, parameters, FLOPs, state and KV-cache bytes.
    Report,
    /// fla's config.json.
    FlaConfig,
    /// Hugging Face `layer_types`.
    HfLayerTypes,
    /// Megatron-LM's hybrid_override_pattern.
    MegatronPattern,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// fla / Hugging Face: config.json + model.safetensors.
    Fla,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TokenDtypeArg {
    U16,
    /// 32-bit ids (written as Megatron's int32).
    U32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportDtype {
    F32,
    Bf16,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// `--top-p`: a probability in (0, 1].
pub(crate) fn top_p(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 1.0 => Ok(p),
        _ => Err(format!("`{text}` is not a probability in (0, 1]")),
    }
}
