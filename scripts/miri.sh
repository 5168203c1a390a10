#!/usr/bin/env bash
# miri.sh: check the engine's unsafe code that runs without the kernel under
# Miri, and the mailbox's wake-up protocol under loom.
#
# Usage: bash scripts/miri.sh [--optional] [--dry-run] [--skip-loom] [--skip-miri]
#   --optional   skip Miri with a printed line (exit 0) when the nightly
#                toolchain or its miri component is missing (CI's mode)
#   --skip-loom, --skip-miri   run only one half
#   --dry-run    print what would run
#
# Miri (nightly: rustup +nightly component add miri) runs, interpreted, with
# every access checked for undefined behaviour (out of bounds, use after
# free, uninitialised reads, data races, Stacked Borrows aliasing):
#   mailbox::   the SPSC queue's slots (UnsafeCell, MaybeUninit), two threads
#   pool::      the frame pool: raw slices into the mmap'd region, reference
#               counts, heap fallback, views into the headroom, frees from
#               another thread
#   core::tests::  the in-memory multi-core engine (2 and 4 cores, fewer
#               schedules under Miri): frames encoded into pool memory
#               (core/mod.rs, core/pubsub.rs), send queues and their iovecs
#               (core/conn.rs), read back by the test
# Not under Miri: what needs io_uring or sockets (reactor/, server/, sys.rs's
# syscalls, front/web.rs's WebSocket frames are reached only through the
# reactor), which the loopback tests run natively.
#
# loom (stable) explores tests/loom_mailbox.rs, a model of the parked flag
# and MSG_RING wake-up (see that file for which lines it mirrors).
set -euo pipefail
cd "$(dirname "$0")/.."

optional=0 dry=0 loom=1 miri=1
for a in "$@"; do
    case "$a" in
        --optional) optional=1 ;;
        --dry-run) dry=1 ;;
        --skip-loom) loom=0 ;;
        --skip-miri) miri=0 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "miri.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
    esac
done

run() {
    echo "+ $*" >&2
    [ "$dry" = 1 ] || "$@"
}

target="${CARGO_TARGET_DIR:-target}"
if [ "$miri" = 1 ]; then
    if ! rustup toolchain list 2>/dev/null | grep -q '^nightly' \
        || ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
        if [ "$optional" = 1 ]; then
            echo "miri.sh: no nightly toolchain with miri here: Miri skipped (rustup toolchain install nightly --component miri)"
            miri=0
        else
            echo "miri.sh: needs nightly with miri: rustup toolchain install nightly --component miri" >&2
            exit 1
        fi
    fi
fi
if [ "$miri" = 1 ]; then
    start=$(date +%s)
    run cargo +nightly miri test -p ringcast --lib -- mailbox:: pool:: core::tests::
    echo "miri.sh: Miri took $(( $(date +%s) - start )) s" >&2
fi
if [ "$loom" = 1 ]; then
    start=$(date +%s)
    # Its own target directory: --cfg changes every crate's build.
    run env CARGO_TARGET_DIR="$target/loom" RUSTFLAGS="--cfg ringcast_loom" \
        cargo test --release -p ringcast --test loom_mailbox
    echo "miri.sh: loom took $(( $(date +%s) - start )) s" >&2
fi
