#!/usr/bin/env bash
# w0-sweep.sh: W0 (1 publisher -> 1 subscriber, 64 B) at several rates, ringcast's
# polling modes side by side, the peers at 1,000 msg/s, and the daemon's CPU when idle
# (issue 15, adaptive polling).
#
# Usage:
#   scripts/w0-sweep.sh [--spins "0 0.2ms fixed:0.3ms"] [--rates "10 100 1000 10000"] [--secs S]
#                       [--repeat N] [--no-peers] [--rt PRIO] [--dry-run]
#
#   --spins LIST   ringcast modes to run (default "0 0.2ms"): DURATION runs --idle-spin DURATION
#                  (adaptive polling; 0 parks at once), fixed:DURATION runs it with
#                  --idle-spin-fixed; busy polling (--busy-poll) is always run too
#   --repeat N     run every mode and peer N times, taking turns (default 1); the summary
#                  gives the median of each cell over the repeats
#   --rates LIST   messages per second (default "10 100 1000 10000")
#   --secs S       measured seconds per rate (default 5; at least 20 messages), after 1 s of warm-up
#   --no-peers     skip Redis, NATS and the tokio baseline (W0 at 1,000 msg/s each)
#   --rt PRIO      run every server and the generator under SCHED_FIFO at PRIO (pin.sh --rt),
#                  so threads of the host that share their CPUs (kernel workers, DAMON's
#                  kdamond, agents) cannot hold them for a time slice: the same for every
#                  server. --busy-poll is not run then (a spinning SCHED_FIFO thread would
#                  take its CPU from the kernel's own threads)
#   --dry-run      print what would run, run nothing
#
# Servers are started one at a time as scripts/bench-compare.sh starts them (server
# pinned to CPU $SERVER_CPU, default 1; generator to $GEN_CPU, default 0). For each
# ringcast mode: every rate, then the daemon's CPU over 10 s with nothing to do (its
# subscriber gone), from /proc/PID/stat. Prints one line per run:
#   SERVER MODE RATE p50_us p99_us p99.9_us server_cpu_%_of_a_core [polling_%]
# polling_% (ringcast only): of the daemon's loop turns that found input during the
# run, the share that found it awake (ringcast_input_turns_total{waited="polling"},
# read from /metrics on 127.0.0.1:$HTTP_PORT): inputs that cost no wake-up.
# and writes them to bench-results/DATE/w0-sweep.txt (the JSON of each run beside it).
#
# Environment: SERVER_CPU, GEN_CPU, HTTP_PORT (default 7409), DATE, OUT_DIR, CARGO_TARGET_DIR.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIN="$ROOT/scripts/pin.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RC="$TARGET_DIR/release/ringcast"
TOKIO="$TARGET_DIR/release/examples/tokio_baseline"
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
HTTP_PORT=${HTTP_PORT:-7409}
DATE=${DATE:-$(date -u +%F)}
OUT_DIR=${OUT_DIR:-$ROOT/bench-results/$DATE}

spins="0 0.2ms"; rates="10 100 1000 10000"; secs=5; peers=1; dry=0; repeat=1
PIN_RT=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --spins) spins=$2; shift 2 ;;
        --rates) rates=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --no-peers) peers=0; shift ;;
        --rt) [[ ${2:-} =~ ^[0-9]+$ && $2 -ge 1 && $2 -le 99 ]] || { echo "w0-sweep.sh: --rt takes a priority 1-99" >&2; exit 2; }
            PIN_RT=(--rt "$2"); shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "w0-sweep.sh: unknown flag $1" >&2; exit 2 ;;
    esac
done

log() { echo "[w0-sweep $(date -u +%T)] $*" >&2; }
# shellcheck source=lib/server.sh
source "$ROOT/scripts/lib/server.sh"

# OUT_DIR is this script's, not cargo's: passed on, it would change what cargo builds.
build=(env -u OUT_DIR cargo build --release -p ringcast -p ringcast-bench --bins --examples)
if [[ $dry -eq 1 ]]; then show "${build[@]}"; else
    "${build[@]}" -q || { echo "w0-sweep.sh: build failed" >&2; exit 1; }
    mkdir -p "$OUT_DIR"
fi

start() { # start NAME PORT CMD...
    local name=$1 port=$2; shift 2
    start_pinned "$name" "$SERVER_CPU" "$port" "$OUT_DIR/w0-server-$name.log" 0.5 "$@"
}

turns() { # turns: ringcast's input turns "polling timed parked" from /metrics, or nothing
    curl -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null | awk '
        /^ringcast_input_turns_total\{waited="polling"\}/ { p = $2 }
        /^ringcast_input_turns_total\{waited="timed"\}/ { t = $2 }
        /^ringcast_input_turns_total\{waited="parked"\}/ { k = $2 }
        END { if (p != "") print p, t, k }'
}

run() { # run SERVER MODE RATE PROTO PORT
    local s=$1 mode=$2 rate=$3 proto=$4 port=$5
    local before=""; [[ $s == ringcast && $dry -eq 0 ]] && before=$(turns)
    local n=$(( rate * secs )); [[ $n -lt 20 ]] && n=20
    local warm=$rate; [[ $warm -lt 5 ]] && warm=5
    local out="$OUT_DIR/w0-$s-$mode-$rate-r$rep.json"
    local cmd=("$PIN" ${PIN_RT[@]+"${PIN_RT[@]}"} "$GEN_CPU" -- "$RC" bench --proto "$proto" --port "$port" --cpu "$GEN_CPU"
        --server-pid "$SRV_PID" --json --workload steady --subs 1 --topics 1 --size 64
        --rate "$rate" --messages "$n" --warmup-messages "$warm")
    if [[ $dry -eq 1 ]]; then show "${cmd[@]}" '>' "$out"; return 0; fi
    timeout 300 "${cmd[@]}" >"$out" 2>"${out%.json}.log" || { log "$s $mode $rate failed"; return 0; }
    local after=""; [[ -n $before ]] && after=$(turns)
    python3 - "$out" "$s" "$mode" "$rate" "$before" "$after" <<'PY' | tee -a "$OUT_DIR/w0-sweep.txt"
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency_us"]
cpu = 100.0 * d["server_cpu_s"] / d["publish_s"] if d.get("publish_s") else float("nan")
caught = ""
if sys.argv[5] and sys.argv[6]:
    delta = [float(b) - float(a) for a, b in zip(sys.argv[5].split(), sys.argv[6].split())]
    if sum(delta) > 0:
        caught = f" {100.0 * delta[0] / sum(delta):>6.1f}%"
print(f"{sys.argv[2]:<8} {sys.argv[3]:<12} {sys.argv[4]:>6} {l['p50']:>9.1f} {l['p99']:>9.1f} "
      f"{l['p999']:>9.1f} {cpu:>6.1f}%{caught}")
PY
    tail -n 1 "$OUT_DIR/w0-sweep.txt" >>"$OUT_DIR/w0-sweep-cur.txt"
}

idle_cpu() { # idle_cpu SERVER MODE: the daemon's CPU over 10 s with nothing to do
    if [[ $dry -eq 1 ]]; then echo "# then /proc/\$PID/stat utime+stime over 10 s, idle"; return 0; fi
    local a b hz; hz=$(getconf CLK_TCK)
    a=$(awk '{print $14 + $15}' "/proc/$SRV_PID/stat"); sleep 10
    b=$(awk '{print $14 + $15}' "/proc/$SRV_PID/stat")
    awk -v s="$1" -v m="$2" -v a="$a" -v b="$b" -v hz="$hz" \
        'BEGIN { printf "%-8s %-12s %6s %9s %9s %9s %6.1f%%\n", s, m, "idle", "-", "-", "-", 100 * (b - a) / hz / 10 }' \
        | tee -a "$OUT_DIR/w0-sweep.txt"
    tail -n 1 "$OUT_DIR/w0-sweep.txt" >>"$OUT_DIR/w0-sweep-cur.txt"
}

[[ $dry -eq 1 ]] || echo "# $(date -u '+%F %T') UTC, $(git -C "$ROOT" rev-parse --short HEAD), secs=$secs, repeat=$repeat, ${PIN_RT[*]:-no --rt}, load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT_DIR/w0-sweep.txt"
[[ $dry -eq 1 ]] || : >"$OUT_DIR/w0-sweep-cur.txt"
printf '%-8s %-12s %6s %9s %9s %9s %7s %7s\n' server mode msg/s p50_us p99_us p99.9_us cpu polling
modes="$spins busy-poll"; [[ ${#PIN_RT[@]} -gt 0 ]] && modes=$spins
for rep in $(seq 1 "$repeat"); do
    for mode in $modes; do
        case $mode in
            busy-poll) flags=(--busy-poll) ;;
            fixed:*) flags=(--idle-spin "${mode#fixed:}" --idle-spin-fixed) ;;
            *) flags=(--idle-spin "$mode") ;;
        esac
        start "ringcast-$mode" 7400 "$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:7400 \
            --ws-listen "127.0.0.1:$HTTP_PORT" "${flags[@]}" || continue
        for r in $rates; do run ringcast "$mode" "$r" ringcast 7400; done
        idle_cpu ringcast "$mode"
        stop_server
    done
    if [[ $peers -eq 1 ]]; then
        start redis 6390 redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning \
            && { run redis - 1000 resp 6390; stop_server; }
        start nats 4223 nats-server -a 127.0.0.1 -p 4223 && { run nats - 1000 nats 4223; stop_server; }
        start tokio 7402 "$TOKIO" --listen 127.0.0.1:7402 --threads 1 && { run tokio - 1000 ringcast 7402; stop_server; }
    fi
    [[ $dry -eq 1 ]] || log "repeat $rep done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
[[ $dry -eq 1 ]] && exit 0
echo "# medians over $repeat repeat(s), load at the end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT_DIR/w0-sweep.txt"
python3 - "$OUT_DIR/w0-sweep-cur.txt" <<'PY' | tee -a "$OUT_DIR/w0-sweep.txt"
import sys, statistics as st
cells = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 7: continue
    cells.setdefault((f[0], f[1], f[2]), []).append(f[3:8])
for (s, m, r), rows in cells.items():
    cols = [[float(x.rstrip('%')) if x != '-' else float('nan') for x in col] for col in zip(*rows)]
    med = [st.median(c) for c in cols]
    caught = f" {med[4]:>6.1f}%" if len(med) > 4 else ""
    print(f"{s:<8} {m:<12} {r:>6} {med[0]:>9.1f} {med[1]:>9.1f} {med[2]:>9.1f} {med[3]:>6.1f}%{caught}  (n={len(rows)})")
PY
