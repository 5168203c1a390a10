#!/usr/bin/env bash
# spin-check.sh: W1, W2 (20 msg/s) and W3 against ringcast with `--idle-spin 0` and with
# adaptive polling, taking turns, to check that adaptive polling costs the fan-out
# workloads nothing (issue 15: CPU per delivery and p99 within 3%, same run).
#
# Usage:
#   scripts/spin-check.sh [--spin DURATION] [--repeat N] [--dry-run]
#
#   --spin D     the --idle-spin value compared with 0 (default 0.2ms)
#   --repeat N   rounds (default 3); in each, both modes run every workload, in turn
#   --dry-run    print what would run, run nothing
#
# Servers and generator are pinned as scripts/bench-compare.sh pins them (server on CPU
# $SERVER_CPU, default 1; generator on $GEN_CPU, default 0). Workloads as there, shorter:
#   W1  burst, 10,000 subs, 64 B, 100 bursts (5 warm-up)
#   W2  10,000 subs, 1 topic, 64 B, 20 msg/s, 5 s (1 s warm-up)
#   W3  19,000 subs over 40 topics, 64 B, 400 msg/s, 5 s (1 s warm-up)
# Prints one line per run and then the medians per mode and workload:
#   WORKLOAD MODE cpu_us_per_delivery p50 p99 (ms; W1: time to last)
# into bench-results/DATE/spin-check.txt (the JSON of each run beside it).
#
# Environment: SERVER_CPU, GEN_CPU, DATE, OUT_DIR, CARGO_TARGET_DIR.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIN="$ROOT/scripts/pin.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RC="$TARGET_DIR/release/ringcast"
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
DATE=${DATE:-$(date -u +%F)}
OUT_DIR=${OUT_DIR:-$ROOT/bench-results/$DATE}

spin=0.2ms; repeat=3; dry=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --spin) spin=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "spin-check.sh: unknown flag $1" >&2; exit 2 ;;
    esac
done

log() { echo "[spin-check $(date -u +%T)] $*" >&2; }
# shellcheck source=lib/server.sh
source "$ROOT/scripts/lib/server.sh"

# OUT_DIR is this script's, not cargo's: passed on, it would change what cargo builds.
build=(env -u OUT_DIR cargo build --release -p ringcast -p ringcast-bench --bins)
if [[ $dry -eq 1 ]]; then show "${build[@]}"; else
    "${build[@]}" -q || { echo "spin-check.sh: build failed" >&2; exit 1; }
    mkdir -p "$OUT_DIR"
fi

start() { # start MODE
    start_pinned "ringcast --idle-spin $1" "$SERVER_CPU" 7400 "$OUT_DIR/spin-check-server-$1.log" 0.5 \
        "$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:7400 --idle-spin "$1"
}

run() { # run WORKLOAD MODE ROUND ARGS...
    local w=$1 mode=$2 round=$3; shift 3
    local out="$OUT_DIR/spin-check-$w-$mode-r$round.json"
    local cmd=("$PIN" "$GEN_CPU" -- "$RC" bench --proto ringcast --port 7400 --cpu "$GEN_CPU"
        --server-pid "$SRV_PID" --json "$@")
    if [[ $dry -eq 1 ]]; then show "${cmd[@]}" '>' "$out"; return 0; fi
    timeout 600 "${cmd[@]}" >"$out" 2>"${out%.json}.log" || { log "$w $mode failed"; return 0; }
    python3 - "$out" "$w" "$mode" <<'PY' | tee -a "$OUT_DIR/spin-check.txt"
import json, sys
d = json.load(open(sys.argv[1]))
l = d.get("time_to_last_us") if sys.argv[2] == "W1" else d["latency_us"]
print(f"{sys.argv[2]:<4} {sys.argv[3]:<8} {d['server_cpu_us_per_delivery']:>8.2f} "
      f"{l['p50'] / 1000:>9.1f} {l['p99'] / 1000:>9.1f}")
PY
}

[[ $dry -eq 1 ]] || echo "# $(date -u '+%F %T') UTC, $(git -C "$ROOT" rev-parse --short HEAD), spin=$spin, repeat=$repeat, load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT_DIR/spin-check.txt"
first=$(( $( { [[ -f "$OUT_DIR/spin-check.txt" ]] && wc -l <"$OUT_DIR/spin-check.txt"; } || echo 0) + 1 ))
for round in $(seq 1 "$repeat"); do
    for mode in 0 "$spin"; do
        start "$mode" || continue
        run W1 "$mode" "$round" --workload burst --subs 10000 --size 64 --bursts 100
        run W2 "$mode" "$round" --workload steady --subs 10000 --topics 1 --size 64 --rate 20 --duration 5 --warmup 1
        run W3 "$mode" "$round" --workload steady --subs 19000 --topics 40 --size 64 --rate 400 --duration 5 --warmup 1
        stop_server
    done
    [[ $dry -eq 1 ]] || log "round $round done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
[[ $dry -eq 1 ]] && exit 0
echo "# medians (cpu µs/delivery, p50 ms, p99 ms), load at the end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT_DIR/spin-check.txt"
tail -n +"$first" "$OUT_DIR/spin-check.txt" | python3 -c '
import sys, statistics as st
cells = {}
for line in sys.stdin:
    f = line.split()
    if len(f) == 5 and not line.startswith("#"):
        cells.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:]])
for (w, m), rows in sorted(cells.items()):
    med = [st.median(c) for c in zip(*rows)]
    print(f"{w:<4} {m:<8} {med[0]:>8.2f} {med[1]:>9.1f} {med[2]:>9.1f}  (n={len(rows)})")
' | tee -a "$OUT_DIR/spin-check.txt"
