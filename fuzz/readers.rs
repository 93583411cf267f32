//! The properties the reader fuzz targets check, one function per target, shared by the
//! targets (`fuzz_targets/<target>.rs`) and the test that replays `regressions/` and
//! `seeds/` (`train/tests/train.rs`, `reader_fuzz_inputs_stay_fixed`). Each panics when
//! its property fails.
#![allow(dead_code)]

use hyb_compiler::ir::train::TokenDtype;
use hyb_train::checkpoint::{from_safetensors, to_safetensors};
use hyb_train::documents::json_lines_from;
use hyb_train::documents::parquet_from;
use hyb_train::text::{first_outside_vocab, token_layout};
use hyb_train::token_files;

/// Arbitrary bytes → a safetensors file as the checkpoint and weights readers read it
/// (`checkpoint::from_safetensors`, i.e. `weights::parse`: the header, every tensor's
/// dtype and data converted to f32). Must not panic, hang or allocate more than the
/// input holds; whatever it accepts has as many values as its shape says, and writing it
/// back with the checkpoint writer and reading that gives the same tensors, bit for bit.
pub fn safetensors(data: &[u8]) {
    let Ok(tensors) = from_safetensors(data) else { return };
    let mut named: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
    for (name, (shape, values)) in &tensors {
        let count = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
        assert_eq!(count, Some(values.len()), "`{name}`: shape {shape:?} but {} values", values.len());
        assert!(values.len() * 2 <= data.len(), "`{name}`: {} values from {} bytes", values.len(), data.len());
        named.push((name.clone(), shape.clone(), values.as_slice()));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let again = from_safetensors(&to_safetensors(&named)).expect("the checkpoint writer's own file reads back");
    assert_eq!(again.len(), tensors.len());
    for (name, (shape, values)) in &tensors {
        let (shape2, values2) = &again[name];
        assert_eq!(shape, shape2, "`{name}`");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(values), bits(values2), "`{name}`");
    }
}

/// Arbitrary bytes → a `tokens(...)` file as `Corpus::open` lays it out
/// (`text::token_layout`: a NumPy `.npy` array, a Megatron `.bin` with its `.idx`, or raw
/// little-endian u16 / u32 ids) and checks its ids against the vocabulary
/// (`text::first_outside_vocab`).
///
/// The first byte picks the case: bit 0 a Megatron pair (then a little-endian u16, the
/// `.idx`'s length; the `.idx`, then the `.bin`), bit 1 the `.npy` extension, bit 2 the
/// dtype u32 (else u16); bits 3–7 the vocabulary (2^(4 + (byte >> 3) % 16)). Must not
/// panic or hang; an accepted layout covers the file with whole ids, its documents start
/// at 0, never decrease and stay within the ids, and an id check that passes means every
/// id is in `0..vocab`.
pub fn token_files(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let dtype = if mode & 4 != 0 { TokenDtype::U32 } else { TokenDtype::U16 };
    let vocab = 1usize << (4 + (mode >> 3) % 16);
    let (bytes, index) = if mode & 1 != 0 {
        let Some((len, rest)) = rest.split_first_chunk::<2>() else { return };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        (&rest[len..], Some(&rest[..len]))
    } else {
        (rest, None)
    };
    let Ok(layout) = token_layout(bytes, index, mode & 2 != 0, dtype) else { return };
    let width = layout.elem.width;
    assert!([1, 2, 4, 8].contains(&width), "{layout:?}");
    assert!(layout.offset <= bytes.len(), "{layout:?}: offset past the {} bytes", bytes.len());
    assert_eq!((bytes.len() - layout.offset) % width, 0, "{layout:?}: not whole ids");
    let ids = (bytes.len() - layout.offset) / width;
    assert_eq!(layout.documents.first(), Some(&0), "{layout:?}");
    assert!(layout.documents.windows(2).all(|w| w[0] <= w[1]), "{layout:?}: documents out of order");
    assert!(layout.documents.iter().all(|d| *d <= ids), "{layout:?}: a document past the {ids} ids");
    if index.is_none() && bytes.starts_with(token_files::NPY_MAGIC) {
        let npy = token_files::npy(bytes).expect("accepted above");
        assert_eq!(npy.offset + npy.len * npy.elem.width, bytes.len());
    }
    let bad = first_outside_vocab(bytes, layout.elem, layout.offset, vocab);
    let all = bytes[layout.offset..].chunks_exact(width).map(|id| layout.elem.read(id));
    match bad {
        None => assert!(all.clone().all(|id| (0..vocab as i128).contains(&id))),
        Some(id) => assert!(id < 0 || id >= vocab as i128),
    }
}

/// Arbitrary bytes → a JSON Lines document file (`documents::json_lines_from`, the reader
/// behind `text("….jsonl")` and `hybc tokenize`), field `text`. Must not panic or hang;
/// when it succeeds, it has handed over as many documents as it counts, and their text
/// is no longer than the file.
pub fn jsonl(data: &[u8]) {
    let (mut documents, mut bytes) = (0usize, 0usize);
    let mut each = |text: &str| {
        documents += 1;
        bytes += text.len();
        Ok(())
    };
    if let Ok(count) = json_lines_from(data, "fuzz.jsonl", "text", &mut each) {
        assert_eq!(count, documents);
        assert!(bytes <= data.len(), "{bytes} bytes of text from a {}-byte file", data.len());
    }
}

/// Arbitrary bytes → a Parquet document file (`documents::parquet_from`, the reader
/// behind `text("….parquet")` and `hybc tokenize`), column `text`, read from memory.
/// Must not panic, hang or exhaust memory; when it succeeds, it has handed over as many
/// documents as it counts.
///
/// `parquet_from` turns the `parquet` crate's own panics on malformed files into errors
/// (`catch_unwind`); libfuzzer-sys's panic hook would abort on them even so, so panics
/// raised inside third-party crates (`parquet`, and `bytes` called by it) pass its hook
/// by. Every other panic still aborts, and so does one that escapes `parquet_from`.
pub fn parquet(data: &[u8]) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let fuzzer = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|at| at.file().contains("/.cargo/registry/")) {
                fuzzer(info)
            }
        }))
    });
    let mut documents = 0usize;
    let mut each = |_: &str| {
        documents += 1;
        Ok(())
    };
    if let Ok(count) = parquet_from(bytes::Bytes::copy_from_slice(data), "fuzz.parquet", "text", &mut each) {
        assert_eq!(count, documents);
    }
}
