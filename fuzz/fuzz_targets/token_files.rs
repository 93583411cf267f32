//! Arbitrary bytes → a `tokens(...)` file (`.npy`, Megatron `.bin` + `.idx`, raw u16 / u32).
//! The property is `readers::token_files` (`fuzz/readers.rs`), which the test suite replays.
#![no_main]

#[path = "../readers.rs"]
mod readers;

libfuzzer_sys::fuzz_target!(|data: &[u8]| readers::token_files(data));
