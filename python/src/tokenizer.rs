//! `hyb.Tokenizer`: text ↔ token ids as a model was trained (`hyb_train::generate::Codec`):
//! bytes, a Hugging Face `tokenizer.json`, or plain ids for a recall model.

use std::path::PathBuf;

use hyb_train::generate::Codec;
use pyo3::prelude::*;

use crate::error;

/// The text ↔ ids of a model or a checkpoint.
#[pyclass(module = "hyb", unsendable)]
pub struct Tokenizer {
    codec: Codec,
}

#[pymethods]
impl Tokenizer {
    /// `bytes`, `huggingface` or `ids`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.codec {
            Codec::Bytes => "bytes",
            Codec::HuggingFace(_) => "huggingface",
            Codec::Ids => "ids",
        }
    }

    fn encode(&self, text: &str) -> PyResult<Vec<i32>> {
        self.codec.encode(text).map_err(error)
    }

    fn decode(&self, ids: Vec<i32>) -> String {
        self.codec.decode(&ids)
    }

    fn __repr__(&self) -> String {
        format!("hyb.Tokenizer({})", self.kind())
    }
}

/// The tokenizer of a checkpoint (a run directory's latest, a published directory with
/// its `tokenizer.json`): its model's training data's, as `hybc generate` reads prompts.
#[pyfunction]
#[pyo3(signature = (ckpt, file = None))]
pub fn tokenizer(ckpt: PathBuf, file: Option<PathBuf>) -> PyResult<Tokenizer> {
    let (model, dir) = crate::jobs::checkpoint_model(&ckpt, file, Vec::new())?;
    Ok(Tokenizer { codec: Codec::of_checkpoint(model.ir(), &dir).map_err(error)? })
}

/// The tokenizer of a model's training data (bytes for text without a tokenizer file).
pub fn of_model(model: &crate::model::Model) -> PyResult<Tokenizer> {
    let data = model.ir().train.as_ref().map(|t| &t.data);
    Ok(Tokenizer { codec: Codec::of(data).map_err(error)? })
}
