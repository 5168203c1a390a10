#!/usr/bin/env bash
# chaos.sh: the fault suite (issue 14, part 3) against the real daemon.
#
# Usage: bash scripts/chaos.sh [SECONDS_PER_CASE] [CASE...] [--dry-run]
#   SECONDS_PER_CASE  length of each window: before, during and after the
#                     fault (default 10; CI runs 2: about 60 s in all)
#   CASE              flood resets never-read big-frames garbage slowloris
#                     sigterm (default: all)
#   --dry-run         print what would run, run nothing
#
# Builds `ringcast` and `ringcast-chaos` (release), then for each case starts
# `ringcast serve` on free ports (native, HTTP/WebSocket, Redis; 2 reactors;
# flood under prlimit --nofile 1024), three healthy subscribers (native,
# WebSocket, Redis; 200 msg/s each on a topic of their own, one publisher),
# and measures each one's delivery, order and latency (from each frame's
# ts_ns; over Redis from the payload) before, during and after the fault, the
# daemon's liveness and its descriptors (/proc/PID/fd) back to the baseline.
# Prints a Markdown table (docs/RELIABILITY.md). Exit 1 when a case breaks a
# promise: a healthy frame lost or out of order, the daemon died, descriptors
# leaked, or the case's own check (shedding at the descriptor limit without
# spinning, cut-offs, heap frames, handshake timeouts, exit 0 on SIGTERM).
# Needs prlimit (util-linux). Environment: CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0 args=()
for a in "$@"; do
    case "$a" in
        --dry-run) dry=1 ;;
        *) args+=("$a") ;;
    esac
done
secs=10
if [ ${#args[@]} -gt 0 ] && [[ "${args[0]}" =~ ^[0-9.]+$ ]]; then
    secs=${args[0]}
    args=("${args[@]:1}")
fi
target=${CARGO_TARGET_DIR:-target}

run() {
    echo "+ $*" >&2
    [ "$dry" = 1 ] || "$@"
}

run cargo build --release -q -p ringcast --bin ringcast -p ringcast-bench --bin ringcast-chaos
echo "chaos.sh: $(date -u +%Y-%m-%dT%H:%MZ), $secs s per window, $(nproc) CPUs" >&2
run "$target/release/ringcast-chaos" --binary "$target/release/ringcast" faults --secs "$secs" "${args[@]}"
