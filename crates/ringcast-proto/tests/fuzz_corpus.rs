//! Replays every committed fuzz input through the fuzz targets' own checks
//! (`ringcast_proto::fuzzing`), on the stable toolchain: the corpora in
//! `fuzz/corpus/<target>/` and the inputs that once failed, in
//! `fuzz/regressions/<target>/`. A target that fails here fails the same way
//! under `cargo fuzz run <target> <file>`.
//!
//! The engine's target (`topics`) is replayed by
//! `crates/ringcast/tests/fuzz_corpus.rs`.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

/// A fuzz target's check.
type Check = fn(&[u8]);

/// The targets whose checks live in this crate.
const TARGETS: &[(&str, Check)] = &[
    ("native", ringcast_proto::fuzzing::native),
    ("ws_frame", ringcast_proto::fuzzing::ws_frame),
    ("ws_handshake", ringcast_proto::fuzzing::ws_handshake),
    ("http", ringcast_proto::fuzzing::http),
    ("resp", ringcast_proto::fuzzing::resp),
    ("glob", ringcast_proto::fuzzing::glob),
];

/// Targets replayed elsewhere.
const ELSEWHERE: &[&str] = &["topics"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: Check) -> usize {
    let mut n = 0;
    for sub in ["corpus", "regressions"] {
        for file in files(&fuzz_dir().join(sub).join(target)) {
            let data = fs::read(&file).unwrap();
            if panic::catch_unwind(|| check(&data)).is_err() {
                panic!(
                    "{} fails the `{target}` fuzz target's checks (reproduce with \
                     `cargo +nightly fuzz run {target} {}` in fuzz/)",
                    file.display(),
                    file.display()
                );
            }
            n += 1;
        }
    }
    n
}

#[test]
fn every_corpus_and_regression_input_passes() {
    for (target, check) in TARGETS {
        let n = replay(target, *check);
        assert!(
            n > 0,
            "no corpus for fuzz target {target} under fuzz/corpus/{target}"
        );
        eprintln!("{target}: {n} inputs");
    }
}

#[test]
fn every_corpus_has_a_replay() {
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(fuzz_dir().join(dir)) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name) || ELSEWHERE.contains(&name.as_str()),
                "fuzz/{dir}/{name}: no replay test knows this target; add it to TARGETS here \
                 or to crates/ringcast/tests/fuzz_corpus.rs"
            );
        }
    }
}
