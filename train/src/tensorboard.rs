//! TensorBoard event files beside `metrics.jsonl`: every logged line as scalar events
//! under namespaced tags — a step's `train/loss`, `train/grad_norm`, `train/lr`,
//! `train/tokens_per_s`; an evaluation's `eval/<task>/<figure>` — so a training loss
//! and an evaluation loss never share a tag.
//!
//! The format, written by hand: records of `u64` length, its masked CRC-32C, the bytes
//! and their masked CRC-32C; each record an `Event` protocol buffer (wall time, step,
//! and a `Summary` of `(tag, simple_value)` pairs), the first one carrying the file
//! version `brain.Event:2`. The file mirrors `metrics.jsonl`: opened on a resume, it is
//! rewritten from the lines the log kept, so the two never disagree.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The event file of a run directory (one per run; TensorBoard reads every
/// `events.out.tfevents.*` in the directory).
pub fn path(out: &Path) -> PathBuf {
    out.join("events.out.tfevents.hyb")
}

/// An open event file.
pub struct Events {
    file: std::fs::File,
}

impl Events {
    /// Creates (or replaces) the run's event file with the events of `lines`, the
    /// metrics log's lines so far.
    pub fn create(out: &Path, lines: &[serde_json::Value]) -> std::io::Result<Events> {
        let mut file = std::fs::File::create(path(out))?;
        file.write_all(&record(&event(wall_time(), 0, Payload::Version)))?;
        let mut events = Events { file };
        for line in lines {
            events.write(line)?;
        }
        Ok(events)
    }

    /// Appends the scalars of one metrics line (the same JSON `metrics.jsonl` holds).
    pub fn write(&mut self, line: &serde_json::Value) -> std::io::Result<()> {
        let step = line["step"].as_u64().unwrap_or(0);
        let scalars = scalars(line);
        if scalars.is_empty() {
            return Ok(());
        }
        self.file.write_all(&record(&event(wall_time(), step, Payload::Scalars(&scalars))))?;
        self.file.flush()
    }
}

/// The (tag, value) pairs of a metrics line: its namespaced keys as they are
/// (`train/loss`, `eval/<task>/accuracy`); in a line written before the keys were
/// namespaced, `eval/<task>/<key>` for an evaluation's line and `train/<key>` for a
/// step's. Non-numeric fields are left out.
pub fn scalars(line: &serde_json::Value) -> Vec<(String, f32)> {
    let Some(fields) = line.as_object() else { return Vec::new() };
    let prefix = match line["eval"].as_str() {
        Some(task) => format!("eval/{task}/"),
        None => "train/".to_string(),
    };
    fields
        .iter()
        .filter(|(key, _)| *key != "step" && *key != "eval")
        .filter_map(|(key, value)| {
            let tag = if key.contains('/') { key.clone() } else { format!("{prefix}{key}") };
            Some((tag, value.as_f64()? as f32))
        })
        .collect()
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

enum Payload<'a> {
    Version,
    Scalars(&'a [(String, f32)]),
}

/// An `Event`: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
/// summary = 5 (`Summary { repeated Value value = 1 }`, `Value { tag = 1, simple_value = 2 (float) }`).
fn event(wall_time: f64, step: u64, payload: Payload) -> Vec<u8> {
    let mut out = vec![0x09];
    out.extend(wall_time.to_le_bytes());
    out.push(0x10);
    varint(&mut out, step);
    match payload {
        Payload::Version => length_delimited(&mut out, 0x1a, b"brain.Event:2"),
        Payload::Scalars(scalars) => {
            let mut summary = Vec::new();
            for (tag, value) in scalars {
                let mut entry = Vec::new();
                length_delimited(&mut entry, 0x0a, tag.as_bytes());
                entry.push(0x15);
                entry.extend(value.to_le_bytes());
                length_delimited(&mut summary, 0x0a, &entry);
            }
            length_delimited(&mut out, 0x2a, &summary);
        }
    }
    out
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn length_delimited(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A TFRecord: length, masked CRC of the length, data, masked CRC of the data.
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = length.to_vec();
    out.extend(masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend(masked_crc(data).to_le_bytes());
    out
}

/// TFRecord's masked CRC-32C.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}
