//! Checkpoints: a directory per step, `step_000250/`, holding
//! - `model.safetensors` — the weights under fla's parameter names (f32);
//! - `optimizer.safetensors` — AdamW's moments (`exp_avg.NAME`, `exp_avg_sq.NAME`);
//! - `state.json` — the step, the data seed (the data position is the step: batches are
//!   a function of seed and step) and the model's parameter count. Loading checks every
//!   tensor's name and shape against the model.
//!
//! Written atomically: into `step_000250.tmp/`, every file synced, the directory renamed
//! into place, then the parent synced — a kill at any moment leaves either the previous
//! checkpoints or the new one complete, never half of one. [`latest`] ignores `.tmp`
//! leftovers. `keep_checkpoints = k` removes all but the newest k after each write
//! ([`prune`]). A write that fails (a full disk) removes its `.tmp` directory and leaves
//! the earlier checkpoints as they were, so the run can resume from the last of them.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hyb_runtime::{ParamSlot, Trainer};

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Error {}

fn io(what: &str, path: &Path) -> impl Fn(std::io::Error) -> Error {
    let context = format!("{what} `{}`", path.display());
    move |e| Error(format!("{context}: {e}"))
}

/// `tensors` (name, shape, values) as safetensors bytes: an 8-byte header length, the
/// JSON header (offsets into the data), padding to 8 bytes, the data, little-endian f32.
pub fn to_safetensors(tensors: &[(String, Vec<usize>, &[f32])]) -> Vec<u8> {
    to_safetensors_as(tensors, crate::weights::Stored::F32)
}

/// [`to_safetensors`] with the values stored as `stored` (BF16: rounded to nearest even).
pub fn to_safetensors_as(tensors: &[(String, Vec<usize>, &[f32])], stored: crate::weights::Stored) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0;
    for (name, shape, values) in tensors {
        let end = offset + stored.bytes() * values.len();
        let entry = serde_json::json!({"dtype": stored.name(), "shape": shape, "data_offsets": [offset, end]});
        header.insert(name.clone(), entry);
        offset = end;
    }
    let mut json = serde_json::to_vec(&header).expect("a JSON map");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    for (_, _, values) in tensors {
        stored.extend(&mut bytes, values);
    }
    bytes
}

/// The tensors of a safetensors file's bytes by name: (shape, values as f32).
pub fn from_safetensors(bytes: &[u8]) -> Result<Tensors, String> {
    crate::weights::parse(bytes)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = File::create(path).map_err(io("cannot create", path))?;
    file.write_all(bytes).map_err(io("cannot write", path))?;
    file.sync_all().map_err(io("cannot sync", path))
}

fn sync_dir(path: &Path) -> Result<(), Error> {
    File::open(path).and_then(|d| d.sync_all()).map_err(io("cannot sync", path))
}

pub fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step_{step:06}"))
}

/// `values` under the parameters' names with `prefix`.
fn named<'a>(
    slots: &[hyb_runtime::ParamSlot],
    prefix: &str,
    values: &'a [Vec<f32>],
) -> Vec<(String, Vec<usize>, &'a [f32])> {
    slots.iter().zip(values).map(|(p, v)| (format!("{prefix}{}", p.name), p.shape.clone(), v.as_slice())).collect()
}

/// Saves the trainer's parameters, moments and step under `root`; returns the directory.
/// On failure (a full disk) the half-written directory is removed and every earlier
/// checkpoint is left as it was.
pub fn save(root: &Path, trainer: &Trainer, seed: u64) -> Result<PathBuf, Error> {
    fs::create_dir_all(root).map_err(io("cannot create", root))?;
    let target = step_dir(root, trainer.step);
    let temporary = target.with_extension("tmp");
    if temporary.exists() {
        fs::remove_dir_all(&temporary).map_err(io("cannot clear", &temporary))?;
    }
    fs::create_dir(&temporary).map_err(io("cannot create", &temporary))?;
    if let Err(error) = write_files(&temporary, trainer, seed) {
        // Best effort: the space it took is what a full disk needs back.
        let _ = fs::remove_dir_all(&temporary);
        return Err(error);
    }
    if target.exists() {
        fs::remove_dir_all(&target).map_err(io("cannot replace", &target))?;
    }
    fs::rename(&temporary, &target).map_err(io("cannot move into place", &target))?;
    sync_dir(root)?;
    Ok(target)
}

/// The three files of a checkpoint, each synced, then the directory.
fn write_files(temporary: &Path, trainer: &Trainer, seed: u64) -> Result<(), Error> {
    let state = trainer.state();
    let (params, first, second) = (&state.params, &state.moment1, &state.moment2);
    let slots = &trainer.program.params;
    write_synced(&temporary.join("model.safetensors"), &to_safetensors(&named(slots, "", params)))?;
    let mut moments = named(slots, "exp_avg.", first);
    moments.extend(named(slots, "exp_avg_sq.", second));
    write_synced(&temporary.join("optimizer.safetensors"), &to_safetensors(&moments))?;
    let count: usize = params.iter().map(Vec::len).sum();
    let state =
        serde_json::json!({"step": trainer.step, "seed": seed, "data_position": trainer.step, "parameters": count});
    write_synced(&temporary.join("state.json"), serde_json::to_string_pretty(&state).expect("JSON").as_bytes())?;
    sync_dir(temporary)
}

/// The complete checkpoints under `root` (`.tmp` leftovers are none), with their steps.
fn complete(root: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.extension().is_none())
        .filter_map(|p| {
            let step: u64 = p.file_name()?.to_str()?.strip_prefix("step_")?.parse().ok()?;
            Some((step, p))
        })
        .collect()
}

/// The newest complete checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Option<PathBuf> {
    complete(root).into_iter().max_by_key(|(step, _)| *step).map(|(_, path)| path)
}

/// `keep_checkpoints = k`: removes the complete checkpoints under `root` older than the
/// newest `keep` — never `written` (the one just written), never a `.tmp` directory.
pub fn prune(root: &Path, written: &Path, keep: u64) -> Result<(), Error> {
    let mut all = complete(root);
    all.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    for (_, path) in all.into_iter().skip(keep.max(1) as usize) {
        if path != written {
            fs::remove_dir_all(&path).map_err(io("cannot remove the old checkpoint", &path))?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io("cannot read", path))?;
    Ok(bytes)
}

/// Loads a checkpoint directory into `trainer` (same model); returns its data seed.
pub fn load(dir: &Path, trainer: &mut Trainer) -> Result<u64, Error> {
    let state: serde_json::Value = serde_json::from_slice(&read(&dir.join("state.json"))?)
        .map_err(|e| Error(format!("`{}`: {e}", dir.join("state.json").display())))?;
    let (Some(step), Some(seed)) = (state["step"].as_u64(), state["seed"].as_u64()) else {
        return Err(Error(format!("`{}` lacks the step or the seed", dir.join("state.json").display())));
    };
    let slots = trainer.program.params.clone();
    let params = load_weights(dir, &slots)?;
    let optimizer_path = dir.join("optimizer.safetensors");
    let moments = tensors(&optimizer_path)?;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for slot in &slots {
        first.push(take(&moments, &format!("exp_avg.{}", slot.name), &slot.shape, &optimizer_path)?);
        second.push(take(&moments, &format!("exp_avg_sq.{}", slot.name), &slot.shape, &optimizer_path)?);
    }
    let state = hyb_runtime::State { params, moment1: first, moment2: second };
    trainer.restore(state, step).map_err(|e| Error(e.to_string()))?;
    Ok(seed)
}

/// The step a checkpoint directory was saved at, from its `state.json` (if readable).
pub fn saved_step(dir: &Path) -> Option<u64> {
    let state: serde_json::Value = serde_json::from_slice(&read(&dir.join("state.json")).ok()?).ok()?;
    state["step"].as_u64()
}

/// [`load_weights`] into `trainer`'s parameters (its optimizer state untouched), one
/// tensor in host memory at a time.
pub fn load_weights_into(dir: &Path, trainer: &mut Trainer) -> Result<(), Error> {
    let slots = trainer.program.params.clone();
    for_each_weight(dir, &slots, &mut |index, values| {
        trainer.set_param(&slots[index].name, &values).map_err(|e| Error(e.to_string()))
    })
}

/// [`load_weights`] into a decoder's parameters, one tensor in host memory at a time.
pub fn load_weights_into_decoder(dir: &Path, decoder: &mut hyb_runtime::Decoder) -> Result<(), Error> {
    let slots = decoder.params().to_vec();
    for_each_weight(dir, &slots, &mut |index, values| {
        decoder.set_param(index, &values).map_err(|e| Error(e.to_string()))
    })
}

/// The weights of a checkpoint directory — ours, or a published fla / Hugging Face one
/// (`model.safetensors` or a sharded index; F32, BF16 or F16) — in `slots`' order, each
/// checked for its name and shape (the optimizer's state is not read: evaluation and
/// generation). A tensor the model does not have is an error, except the `attn.D` the
/// paper's checkpoints carry and fla no longer has, which is dropped with a notice.
pub fn load_weights(dir: &Path, slots: &[ParamSlot]) -> Result<Vec<Vec<f32>>, Error> {
    let mut weights = Vec::with_capacity(slots.len());
    for_each_weight(dir, slots, &mut |_, values| {
        weights.push(values);
        Ok(())
    })?;
    Ok(weights)
}

/// [`load_weights`] handing each tensor to `each(slot index, values)` as it is read,
/// after every name and shape has been checked against the file's header (so nothing
/// is handed over from a checkpoint that does not fit).
pub fn for_each_weight(
    dir: &Path,
    slots: &[ParamSlot],
    each: &mut dyn FnMut(usize, Vec<f32>) -> Result<(), Error>,
) -> Result<(), Error> {
    let weights = crate::weights::Weights::open(dir).map_err(Error)?;
    let known: std::collections::HashSet<&str> = slots.iter().map(|slot| slot.name.as_str()).collect();
    let (dropped, extra): (Vec<&str>, Vec<&str>) =
        weights.names().into_iter().filter(|name| !known.contains(name)).partition(|name| name.ends_with(".attn.D"));
    if !extra.is_empty() {
        return Err(Error(format!(
            "{} holds {} tensor(s) the model does not have, e.g. `{}`: not a checkpoint of this model",
            weights.source(),
            extra.len(),
            extra[0]
        )));
    }
    if !dropped.is_empty() {
        eprintln!("note: dropped {} `attn.D` tensor(s) that fla's layers no longer have", dropped.len());
    }
    for slot in slots {
        if !weights.contains(&slot.name) {
            return Err(Error(format!("{} has no `{}`", weights.source(), slot.name)));
        }
        let shape = weights.shape(&slot.name).map_err(Error)?;
        if shape != slot.shape {
            let (name, want) = (&slot.name, &slot.shape);
            return Err(Error(format!("{}: `{name}` is {shape:?}, the model's is {want:?}", weights.source())));
        }
    }
    for (index, slot) in slots.iter().enumerate() {
        each(index, weights.read(&slot.name).map_err(Error)?.values)?;
    }
    Ok(())
}

use crate::weights::Tensors;

fn tensors(path: &Path) -> Result<Tensors, Error> {
    let weights = crate::weights::Weights::open(path).map_err(Error)?;
    let mut tensors = Tensors::new();
    for name in weights.names() {
        let tensor = weights.read(name).map_err(Error)?;
        tensors.insert(name.to_string(), (tensor.shape, tensor.values));
    }
    Ok(tensors)
}

/// Tensor `name` of `tensors` (read from `file`), which must have `shape`.
fn take(tensors: &Tensors, name: &str, shape: &[usize], file: &Path) -> Result<Vec<f32>, Error> {
    match tensors.get(name) {
        Some((s, values)) if s == shape => Ok(values.clone()),
        Some((s, _)) => Err(Error(format!("`{}`: `{name}` is {s:?}, the model's is {shape:?}", file.display()))),
        None => Err(Error(format!("`{}` has no `{name}`", file.display()))),
    }
}
