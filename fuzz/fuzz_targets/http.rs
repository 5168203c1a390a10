//! Fuzz target: see `ringcast_proto::fuzzing::http` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_proto::fuzzing::http(data));
