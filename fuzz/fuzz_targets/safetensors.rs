//! Arbitrary bytes → a safetensors file as the checkpoint and weights readers read it.
//! The property is `readers::safetensors` (`fuzz/readers.rs`), which the test suite replays.
#![no_main]

#[path = "../readers.rs"]
mod readers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| readers::safetensors(data));
