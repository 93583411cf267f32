//! Training and evaluation on the runtime: the data a step eats ([`data`]: synthetic
//! recall tasks generated from a seed, [`niah`] among them; [`text`]: text and token files split by document;
//! [`documents`]: the documents of text, JSON Lines and Parquet files; [`tokenize`]:
//! documents to a Megatron `.bin` + `.idx`), the learning-rate schedule ([`schedule`]),
//! the loop ([`run`]: steps, evaluation, checkpoints, NaN stops, `metrics.jsonl`), the
//! tasks a model's train and eval blocks describe ([`tasks`]), evaluation ([`eval`]:
//! answer accuracy, perplexity and bits per byte), a sweep's held-out set and plateau
//! stop ([`protocol`]) and checkpoints ([`checkpoint`]: safetensors, atomic, resumable);
//! the jobs of the front ends — `hybc` and the Python package — as library functions: a
//! training run with the command line's overrides ([`job`]), the model of a checkpoint
//! ([`model_file`]), a checkpoint's scores ([`eval::score_checkpoint`]). The front ends
//! show what they report.
//!
//! **Architecture Invariant:** nothing here compiles or executes kernels; it feeds the
//! runtime's `Trainer` and reads what it returns.

pub mod checkpoint;
pub mod data;
pub mod documents;
pub mod eval;
pub mod generate;
pub mod job;
pub mod model_file;
pub mod niah;
pub mod parallel;
pub mod protocol;
pub mod run;
pub mod schedule;
pub mod tasks;
pub mod tensorboard;
pub mod text;
pub mod thrift_check;
pub mod token_files;
pub mod tokenize;
pub mod weights;
