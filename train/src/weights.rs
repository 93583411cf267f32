//! Reading weights: a safetensors file, or a directory holding `model.safetensors` or a
//! sharded `model.safetensors.index.json` (Hugging Face's layout), memory-mapped so no
//! whole file is copied; each tensor converted to f32 from F32, BF16 or F16 as it is
//! read. Every error names the file and the tensor: a dtype that is not a float of those
//! three, a header that is not safetensors, data that does not fit the file (truncated),
//! a shard the index names that is missing.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

/// The tensors of one or more safetensors files, by name.
pub struct Weights {
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name → where it lies (each file's header is parsed once, when opened).
    index: HashMap<String, Entry>,
}

/// A tensor's place: its file, dtype, shape and the bytes of its data in the mapping.
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    data: std::ops::Range<usize>,
}

/// How values are stored in a file this crate writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    F32,
    /// bfloat16, rounded to nearest even (a NaN stays a NaN).
    Bf16,
}

impl Stored {
    /// The safetensors dtype.
    pub fn name(self) -> &'static str {
        match self {
            Stored::F32 => "F32",
            Stored::Bf16 => "BF16",
        }
    }

    /// Hugging Face's `torch_dtype` for it.
    pub fn torch_dtype(self) -> &'static str {
        match self {
            Stored::F32 => "float32",
            Stored::Bf16 => "bfloat16",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Stored::F32 => 4,
            Stored::Bf16 => 2,
        }
    }

    /// Appends `values` to `out`, little-endian, in this type.
    pub fn extend(self, out: &mut Vec<u8>, values: &[f32]) {
        match self {
            Stored::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
            Stored::Bf16 => out.extend(values.iter().flat_map(|v| bf16_bits(*v).to_le_bytes())),
        }
    }
}

/// The bfloat16 nearest to `value` (ties to even), as its bits.
pub use hyb_target::bf16_bits;

/// One tensor read as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    /// Its dtype in the file (`F32`, `BF16`, `F16`).
    pub dtype: String,
}

impl Weights {
    /// A safetensors file, or a directory with `model.safetensors` or a sharded index.
    pub fn open(path: &Path) -> Result<Weights, String> {
        if path.is_file() {
            return Weights::from_files(vec![path.to_path_buf()]);
        }
        let index = path.join("model.safetensors.index.json");
        if index.is_file() {
            return Weights::from_files(shards(&index)?);
        }
        let single = path.join("model.safetensors");
        if single.is_file() {
            return Weights::from_files(vec![single]);
        }
        Err(format!("`{}` holds neither model.safetensors nor model.safetensors.index.json", path.display()))
    }

    fn from_files(paths: Vec<PathBuf>) -> Result<Weights, String> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for path in paths {
            let file = File::open(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            // SAFETY: the mapping is only read; a file changed underneath while it is
            // mapped is the caller's risk, as with any memory-mapped reader.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot map `{}`: {e}", path.display()))?;
            let tensors = SafeTensors::deserialize(&map).map_err(|e| format!("`{}`: {e}", path.display()))?;
            for (name, view) in tensors.tensors() {
                // The data's bytes as offsets into the mapping (the view borrows it).
                let start = view.data().as_ptr() as usize - map.as_ptr() as usize;
                let data = start..start + view.data().len();
                let entry = Entry { file: files.len(), dtype: view.dtype(), shape: view.shape().to_vec(), data };
                if let Some(other) = index.insert(name.clone(), entry) {
                    let first: &(PathBuf, Mmap) = &files[other.file];
                    return Err(format!("`{name}` is in both `{}` and `{}`", first.0.display(), path.display()));
                }
            }
            files.push((path, map));
        }
        Ok(Weights { files, index })
    }

    /// Where the tensors come from: the file, or the first shard and how many there are.
    pub fn source(&self) -> String {
        match &self.files[..] {
            [(path, _)] => format!("`{}`", path.display()),
            [(path, _), rest @ ..] => format!("`{}` and {} more shard(s)", path.display(), rest.len()),
            [] => "no file".into(),
        }
    }

    /// The names of every tensor, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.index.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn entry(&self, name: &str) -> Result<&Entry, String> {
        self.index.get(name).ok_or_else(|| format!("no tensor `{name}`"))
    }

    /// Tensor `name`'s shape, from its file's header.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, String> {
        Ok(self.entry(name)?.shape.clone())
    }

    /// Tensor `name` as f32.
    pub fn read(&self, name: &str) -> Result<Tensor, String> {
        let entry = self.entry(name)?;
        let (path, map) = &self.files[entry.file];
        let values = to_f32(entry.dtype, &map[entry.data.clone()]).ok_or_else(|| {
            format!("`{}`: `{name}` is {:?}; F32, BF16 and F16 are read", path.display(), entry.dtype)
        })?;
        Ok(Tensor { shape: entry.shape.clone(), values, dtype: format!("{:?}", entry.dtype) })
    }
}

/// Tensors by name: each one's shape and values as f32.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Every tensor of a safetensors file's bytes, by name: (shape, values as f32).
pub fn parse(bytes: &[u8]) -> Result<Tensors, String> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for (name, view) in tensors.tensors() {
        let values = to_f32(view.dtype(), view.data())
            .ok_or_else(|| format!("`{name}` is {:?}; F32, BF16 and F16 are read", view.dtype()))?;
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// The shard files a `model.safetensors.index.json` names (its `weight_map`'s values),
/// each once, beside the index.
fn shards(index: &Path) -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string(index).map_err(|e| format!("cannot read `{}`: {e}", index.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("`{}` is not JSON: {e}", index.display()))?;
    let map = json["weight_map"].as_object().ok_or_else(|| format!("`{}` has no weight_map", index.display()))?;
    let mut files: Vec<&str> = map.values().filter_map(serde_json::Value::as_str).collect();
    files.sort_unstable();
    files.dedup();
    let dir = index.parent().unwrap_or(Path::new("."));
    let paths: Vec<PathBuf> = files.iter().map(|file| dir.join(file)).collect();
    if let Some(missing) = paths.iter().find(|path| !path.is_file()) {
        return Err(format!("`{}` names the shard `{}`, which is missing", index.display(), missing.display()));
    }
    Ok(paths)
}

/// Little-endian `data` of `dtype` as f32, or `None` for a dtype that is not a float
/// of the three read.
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let halves =
        |convert: fn(u16) -> f32| data.chunks_exact(2).map(|c| convert(u16::from_le_bytes([c[0], c[1]]))).collect();
    match dtype {
        Dtype::F32 => Some(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Dtype::BF16 => Some(halves(hyb_target::bf16_value)),
        Dtype::F16 => Some(halves(|bits| half::f16::from_bits(bits).to_f32())),
        _ => None,
    }
}
