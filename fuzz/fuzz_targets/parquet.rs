//! Arbitrary bytes → a Parquet document file, read from memory.
//! The property is `readers::parquet` (`fuzz/readers.rs`), which the test suite replays.
#![no_main]

#[path = "../readers.rs"]
mod readers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| readers::parquet(data));
