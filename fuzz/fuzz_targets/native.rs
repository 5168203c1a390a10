//! Fuzz target: see `ringcast_proto::fuzzing::native` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringcast_proto::fuzzing::native(data));
