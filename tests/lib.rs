//! Test data lives beside this crate: `bad/`, `fla/`; the suite is `suite/`.
