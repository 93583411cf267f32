//! Arbitrary bytes → a JSON Lines document file.
//! The property is `readers::jsonl` (`fuzz/readers.rs`), which the test suite replays.
#![no_main]

#[path = "../readers.rs"]
mod readers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| readers::jsonl(data));
