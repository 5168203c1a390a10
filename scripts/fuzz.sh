#!/usr/bin/env bash
# fuzz.sh: run every fuzz target (cargo-fuzz, libFuzzer) in turn, one at a time.
#
# Usage: bash scripts/fuzz.sh [SECONDS] [--runs N] [--cmin] [--dry-run] [TARGET...]
#   SECONDS    time per target (default 60); a target stops at SECONDS or N runs
#   --runs N   stop a target after N executions (default: no limit)
#   --cmin     afterwards, minimize each target's corpus in place (cargo fuzz cmin)
#   --dry-run  print what would run
#   TARGET     only these (default: every target in fuzz/Cargo.toml)
#
# Needs the nightly toolchain (`cargo +nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). The targets are built without a sanitizer
# (ringcast-proto has no unsafe code; the engine's unsafe is checked by
# scripts/miri.sh) but with debug assertions on, so the engine's
# debug_assert! invariants and its frame reference count are checked too.
# One process per target (the machine is shared): no -fork,
# no -jobs. New inputs go to fuzz/corpus/<target>/ (commit them after --cmin);
# a failing input is written to fuzz/artifacts/<target>/ and the script stops
# with its path: copy it to fuzz/regressions/<target>/ with the fix, and
# `cargo test` replays it from then on (crates/ringcast-proto/tests/fuzz_corpus.rs).
# Each run's libFuzzer log is kept in fuzz/logs/<target>.log; its last lines
# give executions (`Done N runs`), coverage (`cov:` edges, `ft:` features).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../fuzz"

secs=60 runs= cmin=0 dry=0 targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift ;;
        --cmin) cmin=1 ;;
        --dry-run) dry=1 ;;
        -h|--help) sed -n '2,22p' "$self"; exit 0 ;;
        [0-9]*) secs="$1" ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^ringcast-fuzz$')
fi

run() {
    echo "+ $*" >&2
    [ "$dry" = 1 ] || "$@"
}

if [ "$dry" = 0 ]; then
    rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
    cargo +nightly fuzz --version >/dev/null 2>&1 || { echo "fuzz.sh: needs cargo-fuzz (cargo install cargo-fuzz)" >&2; exit 1; }
fi
mkdir -p logs
for t in "${targets[@]}"; do
    san=(-s none)
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s${runs:+, at most $runs runs}" >&2
    cmd=(cargo +nightly fuzz run "${san[@]}" -a "$t" "corpus/$t" --
        -max_total_time="$secs" ${runs:+-runs="$runs"} -print_final_stats=1
        -artifact_prefix="artifacts/$t/")
    if [ "$dry" = 1 ]; then
        echo "+ ${cmd[*]}" >&2
    else
        "${cmd[@]}" 2> >(tee "logs/$t.log" | grep -E 'DONE|Done|pulse|NEW_FUNC' >&2 || true)
    fi
    [ "$dry" = 1 ] || tail -n 15 "logs/$t.log" | grep -E 'DONE|^Done|stat::' >&2 || true
    if [ "$cmin" = 1 ]; then
        run cargo +nightly fuzz cmin "${san[@]}" -a "$t" "corpus/$t"
    fi
done
