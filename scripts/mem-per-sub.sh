#!/usr/bin/env bash
# mem-per-sub.sh: the daemon's memory per subscriber, ringcast and its peers (issue 15).
#
# Usage:
#   scripts/mem-per-sub.sh [--subs N] [--topics C] [--load] [--only SERVER]... [--dry-run]
#
#   --subs N       idle subscribers, one connection and one subscription each (default 10000)
#   --topics C     subscriber i subscribes to topic i mod C (default 40)
#   --load         also W3 under load: 19,000 subscribers over 40 topics, 64 B at 400 msg/s
#                  for 10 s (two generator processes, 127.0.0.x source addresses)
#   --only SERVER  ringcast, ringcast-ws, redis, nats or tokio; repeatable (default: all)
#   --dry-run      print what would run, run nothing
#
# For each server, started alone and pinned to CPU $SERVER_CPU (default 1) by
# scripts/pin.sh exactly as scripts/bench-compare.sh starts it, the generator
# (`ringcast bench`, pinned to CPU $GEN_CPU, default 0) connects N subscribers and
# holds them idle (`--hold`) once every subscription is confirmed. The server's
# RSS (VmRSS of /proc/PID/status, all threads) is read after start-up and again
# 3 s into the idle hold; the line printed is
#   SERVER  subs  rss_start_kib  rss_idle_kib  bytes_per_sub
# with bytes_per_sub = (rss_idle - rss_start) / N (the publisher's one
# connection is included and ignored). With --load, the W3 line gives the RSS
# after set-up and the highest RSS sampled every 0.5 s while the traffic runs:
#   SERVER  W3  rss_start_kib  rss_ready_kib  rss_peak_kib  peak_bytes_per_sub
# Results also go to bench-results/DATE/mem-per-sub.txt (DATE: today, UTC).
#
# Environment: SERVER_CPU, GEN_CPU, DATE, OUT_DIR, CARGO_TARGET_DIR (where the
#   binaries are built and found; default target/).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIN="$ROOT/scripts/pin.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RC="$TARGET_DIR/release/ringcast"
TOKIO="$TARGET_DIR/release/examples/tokio_baseline"
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
DATE=${DATE:-$(date -u +%F)}
OUT_DIR=${OUT_DIR:-$ROOT/bench-results/$DATE}

subs=10000; topics=40; load=0; dry=0; only=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --subs) subs=$2; shift 2 ;;
        --topics) topics=$2; shift 2 ;;
        --load) load=1; shift ;;
        --only) only+=("$2"); shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "mem-per-sub.sh: unknown flag $1" >&2; exit 2 ;;
    esac
done
[[ "$subs" =~ ^[0-9]+$ && "$topics" =~ ^[0-9]+$ ]] || { echo "--subs and --topics take numbers" >&2; exit 2; }
[[ ${#only[@]} -eq 0 ]] && only=(ringcast ringcast-ws redis nats tokio)

log() { echo "[mem-per-sub $(date -u +%T)] $*" >&2; }
show() { printf '%q ' "$@"; echo; }

# OUT_DIR is this script's, not cargo's: passed on, it would change what cargo builds.
build=(env -u OUT_DIR cargo build --release -p ringcast -p ringcast-bench --bins --examples)
if [[ $dry -eq 1 ]]; then
    show "${build[@]}"
else
    log "building"
    "${build[@]}" -q || { echo "mem-per-sub.sh: build failed" >&2; exit 1; }
    mkdir -p "$OUT_DIR"
fi

SRV_PID=""; GEN_PID=""
stop_pid() { # stop_pid PID
    local p=$1
    [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null || return 0
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}
cleanup() { stop_pid "$GEN_PID"; GEN_PID=""; stop_pid "$SRV_PID"; SRV_PID=""; }
trap cleanup EXIT
trap 'exit 130' INT TERM

server_cmd() { # server_cmd NAME -> CMD, PORT, PROTO, EXTRA (as bench-compare.sh)
    EXTRA=()
    case "$1" in
        ringcast)    PORT=7400; PROTO=ringcast; CMD=("$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:$PORT) ;;
        ringcast-ws) PORT=7400; PROTO=ringcast-ws; EXTRA=(--ws-port 7401)
                     CMD=("$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:$PORT --ws-listen 127.0.0.1:7401) ;;
        redis)       PORT=6390; PROTO=resp; CMD=(redis-server --port $PORT --bind 127.0.0.1 --maxclients 19100 --save '' --appendonly no --daemonize no --loglevel warning) ;;
        nats)        PORT=4223; PROTO=nats; CMD=(nats-server -a 127.0.0.1 -p $PORT) ;;
        tokio)       PORT=7402; PROTO=ringcast; CMD=("$TOKIO" --listen 127.0.0.1:$PORT --threads 1) ;;
        *) echo "mem-per-sub.sh: unknown server $1" >&2; exit 2 ;;
    esac
}

start_server() { # start_server NAME
    server_cmd "$1"
    if [[ $dry -eq 1 ]]; then show "$PIN" "$SERVER_CPU" -- "${CMD[@]}" '&'; SRV_PID=DRY; return 0; fi
    "$PIN" "$SERVER_CPU" -- "${CMD[@]}" >"$OUT_DIR/mem-server-$1.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then sleep 1; return 0; fi
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "server $1 did not come up (see $OUT_DIR/mem-server-$1.log)"; stop_pid "$SRV_PID"; SRV_PID=""; return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

wait_for() { # wait_for FILE PATTERN SECS: until FILE has PATTERN (the generator's progress line)
    local t=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        kill -0 "$GEN_PID" 2>/dev/null || return 1
        sleep 0.2; t=$((t+1)); [[ $t -gt $(( $3 * 5 )) ]] && return 1
    done
    return 0
}

idle() { # idle NAME: RSS per idle subscriber
    local s=$1
    start_server "$s" || return 0
    local gen=("$PIN" "$GEN_CPU" -- "$RC" bench --proto "$PROTO" --port "$PORT" "${EXTRA[@]}" --cpu "$GEN_CPU"
        --workload steady --subs "$subs" --topics "$topics" --size 64 --rate 10 --messages 1 --warmup 0 --hold 6)
    if [[ $dry -eq 1 ]]; then show "${gen[@]}" '&'; echo "# RSS at start, 3 s into the hold"; SRV_PID=""; return 0; fi
    local r0; r0=$(rss_kib "$SRV_PID")
    local glog="$OUT_DIR/mem-idle-$s.log"
    "${gen[@]}" >"$OUT_DIR/mem-idle-$s.json" 2>"$glog" &
    GEN_PID=$!
    if ! wait_for "$glog" "holding" 120; then
        log "$s: the generator did not reach the hold: $(tail -n 2 "$glog" | tr '\n' ' ')"
        cleanup; return 0
    fi
    sleep 3
    local r1; r1=$(rss_kib "$SRV_PID")
    wait "$GEN_PID" 2>/dev/null; GEN_PID=""
    cleanup
    local line
    line=$(awk -v s="$s" -v n="$subs" -v a="$r0" -v b="$r1" \
        'BEGIN { printf "%-12s %6d %10d %10d %8.0f\n", s, n, a, b, (b - a) * 1024 / n }')
    echo "$line" | tee -a "$OUT_DIR/mem-per-sub.txt"
}

loaded() { # loaded NAME: RSS during W3 (19,000 subscribers, 40 topics, 400 msg/s)
    local s=$1 n=19000
    start_server "$s" || return 0
    local gen=("$PIN" "$GEN_CPU" -- "$RC" bench --proto "$PROTO" --port "$PORT" "${EXTRA[@]}" --cpu "$GEN_CPU"
        --server-pid "$SRV_PID" --json --workload steady --subs $n --topics 40 --size 64 --rate 400
        --duration 10 --warmup 1 --timeout 120)
    if [[ $dry -eq 1 ]]; then show "${gen[@]}" '&'; echo "# RSS at start, after set-up, peak every 0.5 s"; SRV_PID=""; return 0; fi
    local r0; r0=$(rss_kib "$SRV_PID")
    local glog="$OUT_DIR/mem-w3-$s.log"
    "${gen[@]}" >"$OUT_DIR/mem-w3-$s.json" 2>"$glog" &
    GEN_PID=$!
    if ! wait_for "$glog" "subscribers ready" 240; then
        log "$s: W3 set-up failed: $(tail -n 2 "$glog" | tr '\n' ' ')"
        cleanup; return 0
    fi
    local r1 peak r; r1=$(rss_kib "$SRV_PID"); peak=$r1
    while kill -0 "$GEN_PID" 2>/dev/null; do
        r=$(rss_kib "$SRV_PID"); [[ $r -gt $peak ]] && peak=$r
        sleep 0.5
    done
    wait "$GEN_PID" 2>/dev/null; GEN_PID=""
    cleanup
    local line
    line=$(awk -v s="$s" -v n="$n" -v a="$r0" -v b="$r1" -v c="$peak" \
        'BEGIN { printf "%-12s W3 %10d %10d %10d %8.0f\n", s, a, b, c, (c - a) * 1024 / n }')
    echo "$line" | tee -a "$OUT_DIR/mem-per-sub.txt"
}

[[ $dry -eq 1 ]] || echo "# $(date -u '+%F %T') UTC, $(git -C "$ROOT" rev-parse --short HEAD), subs=$subs topics=$topics" >>"$OUT_DIR/mem-per-sub.txt"
printf '%-12s %6s %10s %10s %8s\n' server subs start_kib idle_kib B/sub
for s in "${only[@]}"; do idle "$s"; done
if [[ $load -eq 1 ]]; then
    printf '%-12s %2s %10s %10s %10s %8s\n' server wl start_kib ready_kib peak_kib B/sub
    for s in "${only[@]}"; do loaded "$s"; done
fi
