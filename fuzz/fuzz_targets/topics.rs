//! Fuzz target: the per-core topic and subscription state machine of 2 to
//! 4 cores in memory, driven by arbitrary operation sequences; see
//! `ringcast::fuzzing::topics` (crates/ringcast/src/core/tests.rs) for what
//! it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast::fuzzing::topics(data));
