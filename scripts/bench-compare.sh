#!/usr/bin/env bash
# bench-compare.sh: ringcast side by side with Redis, NATS and the tokio baseline (issue 3).
#
# Usage:
#   scripts/bench-compare.sh [--quick] [--only NAME] [--dry-run]
#
#   --quick      small sizes (a smoke run of a minute or two, numbers not comparable)
#   --only NAME  run only workload NAME (W0 W0bp W1 W2 W3 W4 W5 W6 floor W1r) and/or only
#                server NAME (ringcast ringcast-ws ringcast-resp redis nats tokio); repeatable:
#                workloads and servers each narrow their own kind
#                (--only W1 --only redis: W1 on Redis; --only W1: W1 on every server)
#   --dry-run    print what would run (installs, builds, servers, generator runs), run nothing
#
# What it does, on a 2-CPU host:
#   1. apt-get installs redis-server, nats-server and gnuplot-nox when missing;
#      builds `ringcast`, `ringcast-bench` (release) and, when the selection runs the
#      tokio baseline or the floor, the examples (in $CARGO_TARGET_DIR if set).
#   2. One server at a time, pinned to CPU $SERVER_CPU (default 1) by scripts/pin.sh:
#        ringcast  target/release/ringcast serve --cores 1 --cpus 1 --listen 127.0.0.1:7400
#        ringcast-ws  the same daemon, subscribers over WebSocket (127.0.0.1:7401/ws),
#                 publisher on native TCP: W1, W2, W3 only
#        ringcast-resp  the same daemon with --resp-listen 127.0.0.1:7403, subscribers and
#                 publisher on its Redis-compatible front (--proto resp): W1, W2, W3, W6 only
#        redis     redis-server on 127.0.0.1:6390 (no persistence)
#        nats      nats-server on 127.0.0.1:4223
#        tokio     target/release/examples/tokio_baseline --listen 127.0.0.1:7402 --threads 1
#      and the generator (`ringcast bench`, pinned to CPU $GEN_CPU, default 0, with
#      --server-pid) runs the workloads against it:
#        W0   1 sub, 64 B, 1,000 msg/s, 10,000 messages           (latency)
#        W1   burst: 10,000 subs, 1 topic, 64 B, 200 bursts        (time to last, CPU/delivery)
#        W2   10,000 subs, 1 topic, 64 B, 5, 20 and 100 msg/s, 5 s (fan-out; env W2_RATES="..." for others)
#        W3   19,000 subs over 40 topics, 64 B, 400 msg/s, 5 s     (many channels)
#        W4   100 subs, 1 topic, 256 KiB, 200 msg/s, 5 s           (large frames)
#        W6   10,000 subs each PSUBSCRIBE one pattern (news.*), 64 B, 20 msg/s round-robin
#             over 10 channels it matches, 5 s (pattern fan-out; RESP: ringcast-resp and redis only)
#      then ringcast-only extras:
#        W0bp W0 against `ringcast serve --busy-poll`
#        W5   W2 against `ringcast serve --cores 2 --cpus 0,1` (the generator SHARES CPU 0)
#        floor examples/raw_uring_floor (9,000 sockets, 200 rounds, fixed files as
#              ringcast uses them): the kernel's per-send floor
#      then W1r: W1 again, $W1_REPEATS times (default 3, 100 bursts each), the floor, ringcast,
#        redis and tokio taking turns in every repeat, so a drift of the
#        machine hits every server alike; the summary reports the medians and
#        the ratios the targets are about (W1_REPEATS=0 skips it). NATS is left
#        out of the repeats to keep the run under 15 minutes: its W1 CPU per
#        delivery is over twice Redis's in every run, so it is never the best peer.
#   3. Writes each result as bench-results/DATE/NAME.json (NAME = WORKLOAD-SERVER[-RATE]),
#      bench-results/DATE/summary.md (markdown table, also written into the results
#      block of docs/BENCHMARKS.md unless --quick), and PNGs in docs/img/:
#      bench-w0-latency.png, bench-w2-latency.png, bench-cpu-per-delivery.png
#      (--quick: bench-results/DATE-quick/ and its plots there, *-quick.png).
#   Every server it started is stopped by PID (trap EXIT).
#   summary.md and the plots cover every NAME.json in the directory, so after an
#   --only run they mix the new results with older ones of the same DATE.
#
# Environment: SERVER_CPU, GEN_CPU, DATE (default: today, UTC), OUT_DIR,
#   W2_RATES (default "5 20 100"), W1_REPEATS (default 3),
#   CARGO_TARGET_DIR (where to build and find the binaries; default target/).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIN="$ROOT/scripts/pin.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RC="$TARGET_DIR/release/ringcast"
TOKIO="$TARGET_DIR/release/examples/tokio_baseline"
FLOOR="$TARGET_DIR/release/examples/raw_uring_floor"
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
DATE=${DATE:-$(date -u +%F)}

quick=0; dry=0; only=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --dry-run) dry=1; shift ;;
        --only) [[ $# -ge 2 ]] || { echo "--only needs a NAME" >&2; exit 2; }; only+=("$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-compare.sh: unknown flag $1" >&2; exit 2 ;;
    esac
done
OUT_DIR=${OUT_DIR:-$ROOT/bench-results/$DATE}
[[ $quick -eq 1 ]] && OUT_DIR=${OUT_DIR%/}-quick

# ---- sizes -------------------------------------------------------------------
if [[ $quick -eq 1 ]]; then
    W0_MSGS=1000;  W1_SUBS=1000;  W1_BURSTS=20;  W2_SUBS=1000; DUR=2
    W3_SUBS=1900;  W4_SUBS=10;    FLOOR_CONNS=1000; FLOOR_ROUNDS=20; WARM=0.5
    W1R_BURSTS=10; W1R_ROUNDS=10; W6_SUBS=1000
else
    W0_MSGS=10000; W1_SUBS=10000; W1_BURSTS=200; W2_SUBS=10000; DUR=5
    W3_SUBS=19000; W4_SUBS=100;   FLOOR_CONNS=9000; FLOOR_ROUNDS=200; WARM=1
    W1R_BURSTS=100; W1R_ROUNDS=100; W6_SUBS=10000
fi
W1_REPEATS=${W1_REPEATS:-3}
[[ "$W1_REPEATS" =~ ^[0-9]+$ ]] || { echo "W1_REPEATS must be a number, got '$W1_REPEATS'" >&2; exit 2; }
read -r -a W2_RATES <<<"${W2_RATES:-5 20 100}"   # env W2_RATES="..." overrides

log() { echo "[bench-compare $(date -u +%T)] $*" >&2; }
# shellcheck source=lib/server.sh
source "$ROOT/scripts/lib/server.sh"

selected() { # selected WORKLOAD SERVER: workload names and server names given
    # with --only each narrow their own kind (--only W0 --only redis: W0 on Redis).
    [[ ${#only[@]} -eq 0 ]] && return 0
    local o wl=0 wok=0 sv=0 sok=0
    for o in "${only[@]}"; do
        case "$o" in
            W*|floor) wl=1; [[ "$o" == "$1" ]] && wok=1 ;;
            *) sv=1; [[ "$o" == "$2" ]] && sok=1 ;;
        esac
    done
    [[ $wl -eq 0 || $wok -eq 1 ]] && [[ $sv -eq 0 || $sok -eq 1 ]]
}

# ---- install and build ---------------------------------------------------------
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v nats-server >/dev/null || need_pkgs+=(nats-server)
command -v gnuplot >/dev/null || need_pkgs+=(gnuplot-nox)
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
    if [[ $dry -eq 1 ]]; then
        echo "apt-get update"; echo "apt-get install -y ${need_pkgs[*]}"
    else
        log "installing ${need_pkgs[*]}"
        SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" \
            || { echo "bench-compare.sh: apt-get install failed" >&2; exit 1; }
    fi
fi
needs_examples() { # the tokio baseline or the raw io_uring floor is selected
    local w
    for w in W0 W1 W2 W3 W4 W1r; do selected "$w" tokio && return 0; done
    selected floor ringcast || { [[ $W1_REPEATS -gt 0 ]] && selected W1r ringcast; }
}
# --bins: `ringcast bench` execs the ringcast-bench binary beside ringcast.
# OUT_DIR is this script's, not cargo's: passed on, it would change what cargo builds.
build=(env -u OUT_DIR cargo build --release -p ringcast -p ringcast-bench --bins)
needs_examples && build+=(--examples)
if [[ $dry -eq 1 ]]; then
    show "${build[@]}"
else
    log "building"
    "${build[@]}" -q || { echo "bench-compare.sh: build failed" >&2; exit 1; }
    sync   # let the build's writeback finish before the first (latency) measurement
    mkdir -p "$OUT_DIR" "$ROOT/docs/img"
fi

# ---- server lifecycle ----------------------------------------------------------
server_cmd() { # server_cmd NAME -> sets CMD array and PORT
    case "$1" in
        ringcast)    PORT=7400; CMD=("$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:$PORT) ;;
        ringcast-ws) PORT=7400; CMD=("$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:$PORT --ws-listen 127.0.0.1:7401) ;;
        # PORT is the RESP front's: where the generator connects (and what start_server waits for).
        ringcast-resp) PORT=7403; CMD=("$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:7400 --resp-listen 127.0.0.1:$PORT) ;;
        ringcast-bp) PORT=7400; CMD=("$RC" serve --cores 1 --cpus "$SERVER_CPU" --listen 127.0.0.1:$PORT --busy-poll) ;;
        ringcast-2c) PORT=7400; CMD=("$RC" serve --cores 2 --cpus "$GEN_CPU,$SERVER_CPU" --listen 127.0.0.1:$PORT) ;;
        # maxclients: 19,000 subscribers + the publisher must fit (fds needed: maxclients + 32 < 20,000)
        redis)       PORT=6390; CMD=(redis-server --port $PORT --bind 127.0.0.1 --maxclients 19100 --save '' --appendonly no --daemonize no --loglevel warning) ;;
        nats)        PORT=4223; CMD=(nats-server -a 127.0.0.1 -p $PORT) ;;
        tokio)       PORT=7402; CMD=("$TOKIO" --listen 127.0.0.1:$PORT --threads 1) ;;
    esac
}

start_server() { # start_server NAME
    server_cmd "$1"
    local pincpus=$SERVER_CPU
    [[ "$1" == ringcast-2c ]] && pincpus="$GEN_CPU,$SERVER_CPU"
    start_pinned "server $1" "$pincpus" "$PORT" "$OUT_DIR/server-$1.log" 0.3 "${CMD[@]}" || return 1
    [[ $dry -eq 1 ]] || log "started $1 pid $SRV_PID port $PORT"
}

proto_of() { case "$1" in redis|ringcast-resp) echo resp ;; nats) echo nats ;; ringcast-ws) echo ringcast-ws ;; *) echo ringcast ;; esac; }
extra_of() { [[ "$1" == ringcast-ws ]] && echo --ws-port 7401; return 0; }

RUNS=0; FAILS=0
bench() { # bench NAME SERVER ARGS... : one generator run into NAME.json
    local name=$1 srv=$2; shift 2
    local extra; read -r -a extra <<<"$(extra_of "$srv")"
    local cmd=("$PIN" "$GEN_CPU" -- "$RC" bench --proto "$(proto_of "$srv")" --port "$PORT" "${extra[@]}" --cpu "$GEN_CPU" --server-pid "$SRV_PID" --json "$@")
    if [[ $dry -eq 1 ]]; then show "${cmd[@]}" '>' "$OUT_DIR/$name.json"; return 0; fi
    log "run $name: $*"
    RUNS=$((RUNS+1))
    if ! timeout 240 "${cmd[@]}" >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.log" || [[ ! -s "$OUT_DIR/$name.json" ]]; then
        FAILS=$((FAILS+1)); log "run $name failed: $(tail -n 2 "$OUT_DIR/$name.log" | tr '\n' ' ')"
        [[ -s "$OUT_DIR/$name.json" ]] || rm -f "$OUT_DIR/$name.json"
    fi
}

w2_args=(--workload steady --subs "$W2_SUBS" --topics 1 --size 64 --duration "$DUR" --warmup "$WARM")
# The WebSocket rows cover the fan-out workloads (W1-W3), the RESP-front rows those
# and W6; W6 (PSUBSCRIBE) runs on the RESP servers only.
wants() {
    selected "$1" "$2" || return 1
    case "$2" in
        ringcast-ws)   [[ "$1" =~ ^W[123]$ ]] ;;
        ringcast-resp) [[ "$1" =~ ^W[1236]$ ]] ;;
        redis)         true ;;
        *)             [[ "$1" != W6 ]] ;;
    esac
}
run_server_workloads() { # run_server_workloads SERVER
    local s=$1 any=0 w
    for w in W0 W1 W2 W3 W4 W6; do wants "$w" "$s" && any=1; done
    [[ $any -eq 1 ]] || return 0
    start_server "$s" || { FAILS=$((FAILS+1)); return 0; }
    wants W0 "$s" && bench "W0-$s" "$s" --workload steady --subs 1 --topics 1 --size 64 --rate 1000 --messages "$W0_MSGS" --warmup "$WARM"
    wants W1 "$s" && bench "W1-$s" "$s" --workload burst --subs "$W1_SUBS" --size 64 --bursts "$W1_BURSTS"
    if wants W2 "$s"; then
        local r; for r in "${W2_RATES[@]}"; do bench "W2-$s-$r" "$s" "${w2_args[@]}" --rate "$r"; done
    fi
    wants W3 "$s" && bench "W3-$s" "$s" --workload steady --subs "$W3_SUBS" --topics 40 --size 64 --rate 400 --duration "$DUR" --warmup "$WARM"
    wants W4 "$s" && bench "W4-$s" "$s" --workload steady --subs "$W4_SUBS" --topics 1 --size 262144 --rate 200 --duration "$DUR" --warmup "$WARM"
    wants W6 "$s" && bench "W6-$s" "$s" --workload steady --patterns --subs "$W6_SUBS" --topics 10 --size 64 --rate 20 --duration "$DUR" --warmup "$WARM"
    stop_server
}

T0=$(date +%s)
for s in ringcast ringcast-ws ringcast-resp redis nats tokio; do run_server_workloads "$s"; done

if selected W0bp ringcast; then
    start_server ringcast-bp && {
        bench "W0bp-ringcast" ringcast-bp --workload steady --subs 1 --topics 1 --size 64 --rate 1000 --messages "$W0_MSGS" --warmup "$WARM"
        stop_server; }
fi
if selected W5 ringcast; then
    start_server ringcast-2c && {
        for r in "${W2_RATES[@]}"; do bench "W5-ringcast-$r" ringcast-2c "${w2_args[@]}" --rate "$r"; done
        stop_server; }
fi
run_floor() { # run_floor NAME ROUNDS
    local fcmd=("$FLOOR" --conns "$FLOOR_CONNS" --rounds "$2" --fixed-files --cpu "$SERVER_CPU" --reader-cpu "$GEN_CPU" --json)
    if [[ $dry -eq 1 ]]; then show "${fcmd[@]}" '>' "$OUT_DIR/$1.json"; return 0; fi
    log "run $1"; RUNS=$((RUNS+1))
    if ! timeout 240 "${fcmd[@]}" >"$OUT_DIR/$1.json" 2>"$OUT_DIR/$1.log" || [[ ! -s "$OUT_DIR/$1.json" ]]; then
        FAILS=$((FAILS+1)); log "$1 failed"; rm -f "$OUT_DIR/$1.json"
    fi
}
selected floor ringcast && run_floor floor "$FLOOR_ROUNDS"
if [[ $W1_REPEATS -gt 0 ]]; then
    for k in $(seq 1 "$W1_REPEATS"); do
        selected W1r ringcast && run_floor "floor-r$k" "$W1R_ROUNDS"
        for s in ringcast redis tokio; do
            selected W1r "$s" || continue
            start_server "$s" || { FAILS=$((FAILS+1)); continue; }
            bench "W1r$k-$s" "$s" --workload burst --subs "$W1_SUBS" --size 64 --bursts "$W1R_BURSTS"
            stop_server
        done
    done
fi
[[ $dry -eq 1 ]] && { echo "python3 (summary) > $OUT_DIR/summary.md"; echo "gnuplot scripts/plot.gnuplot -> docs/img/*.png"; exit 0; }

# ---- summary table and plots ---------------------------------------------------
IMG_DIR="$ROOT/docs/img"; [[ $quick -eq 1 ]] && IMG_DIR="$OUT_DIR"   # smoke-run plots stay out of docs/
python3 - "$OUT_DIR" "$IMG_DIR" "$quick" <<'PY'
import json, os, sys, glob
out, img, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
res = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    try:
        res[os.path.basename(f)[:-5]] = json.load(open(f))
    except Exception as e:
        print(f"skip {f}: {e}", file=sys.stderr)

def us(v):
    if v is None: return "–"
    return f"{v/1000:,.1f} ms" if v >= 10000 else f"{v:,.0f} µs"

desc = {"W0": "W0 1→1, 1,000 msg/s", "W0bp": "W0 1→1, --busy-poll", "W1": "W1 burst",
        "W2": "W2 fan-out", "W3": "W3 40 topics, 400 msg/s", "W4": "W4 256 KiB, 200 msg/s",
        "W5": "W5 W2 on 2 reactors (gen. shares CPU 0)", "W6": "W6 PSUBSCRIBE news.*, 10 channels"}
order = ["W0", "W0bp", "W1", "W2", "W3", "W4", "W5", "W6"]
servers = ["ringcast", "ringcast-ws", "ringcast-resp", "redis", "nats", "tokio"]
rows = []
for name, r in res.items():
    if name.startswith("floor") or name.startswith("W1r"): continue
    parts = name.split("-")
    rate = parts.pop() if len(parts) > 2 and parts[-1].isdigit() else ""
    w, s = parts[0], "-".join(parts[1:])
    rows.append((order.index(w) if w in order else 99, w, servers.index(s) if s in servers else 9, int(rate or 0), name, s, r))
rows.sort()
L = []
L.append(f"Results in `{out}`{' (QUICK smoke run: small sizes, not comparable)' if quick else ''}.\n")
L.append("| workload | server | subs × topics | rate | p50 | p99 | p99.9 | max | time-to-last p50 / p99 | server CPU µs/delivery | delivery ratio | clean |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
for _, w, _, rate, name, s, r in rows:
    p = r.get("params", {}); lat = r.get("latency_us") or {}; ttl = r.get("time_to_last_us")
    d = r.get("deliveries", {})
    ratio = d.get("ratio")
    cpu = r.get("server_cpu_us_per_delivery")
    subs = f"{p.get('subs'):,} × {p.get('topics')}"
    if p.get("patterns"):   # one pattern each, matching every channel
        subs = f"{p.get('subs'):,} × 1 pattern ({p.get('topics')} channels)"
    rr = f"{p.get('bursts')} bursts" if p.get("workload") == "burst" else f"{p.get('rate')} msg/s × {p.get('size'):,} B"
    ttls = f"{us(ttl.get('p50'))} / {us(ttl.get('p99'))}" if ttl else "–"
    cpus = f"{cpu:.2f}" if cpu is not None else "–"
    rats = f"{ratio*100:.3f}%" if ratio is not None else "–"
    cln = "yes" if r.get("clean") else "no: " + str(r.get("first_error") or r.get("aborted"))
    L.append(f"| {desc.get(w, w)} | {s} | {subs} | {rr} | {us(lat.get('p50'))} | {us(lat.get('p99'))} | {us(lat.get('p999'))} | {us(lat.get('max'))} | {ttls} | {cpus} | {rats} | {cln} |")
if "floor" in res:
    f = res["floor"]
    L.append("")
    L.append(f"Raw io_uring floor (examples/raw_uring_floor{' --fixed-files' if f.get('fixed_files') else ''}): {f['conns']:,} sockets × {f['rounds']} rounds of {f['size']} B: "
             f"sender CPU {f['sender_cpu_us_per_send']:.2f} µs/send, round wall p50 {f['round_wall_ms_p50']:.2f} ms / p99 {f['round_wall_ms_p99']:.2f} ms, "
             f"{f['failed_sends']} failed sends, {f['bytes_received']:,}/{f['bytes_expected']:,} bytes received.")
# W2: the highest rate each server sustains (100% delivery and p99 <= 50 ms).
w2 = {}
for name, r in res.items():
    parts = name.split("-")
    if parts[0] == "W2" and parts[-1].isdigit():
        w2.setdefault("-".join(parts[1:-1]), []).append((int(parts[-1]), r))
if w2:
    L.append("")
    L.append("W2, highest rate sustained with 100% delivery and p99 ≤ 50 ms (rates run: "
             + ", ".join(str(x) for x in sorted({rt for v in w2.values() for rt, _ in v})) + " msg/s):")
    L.append("")
    for s in [x for x in servers if x in w2]:
        runs = sorted(w2[s], key=lambda t: t[0])
        full = [rt for rt, r in runs if (r.get("deliveries") or {}).get("ratio") == 1.0]
        ok = [rt for rt, r in runs if rt in full and (r.get("latency_us") or {}).get("p99", 1e18) <= 50000]
        low = min(runs, key=lambda t: (t[1].get("latency_us") or {}).get("p99", 1e18))
        L.append(f"- {s}: {str(max(ok)) + ' msg/s' if ok else 'none'}"
                 f" (100% delivery up to {max(full) if full else '–'} msg/s; lowest p99 {us((low[1].get('latency_us') or {}).get('p99'))} at {low[0]} msg/s)")

# W1 repeated: medians over alternating runs, and the ratios the targets use.
import re, statistics
rep = {}
for name, r in res.items():
    m = re.fullmatch(r"W1r(\d+)-(.+)", name)
    if m and r.get("server_cpu_us_per_delivery") is not None and r.get("time_to_last_us"):
        rep.setdefault(m.group(2), []).append((int(m.group(1)), r))
floors = sorted((int(n[7:]), r["sender_cpu_us_per_send"]) for n, r in res.items() if re.fullmatch(r"floor-r\d+", n))
if rep:
    med = lambda xs: statistics.median(xs)
    L.append("")
    k = max(len(v) for v in rep.values())
    L.append(f"W1 repeated: {k} alternating runs of {next(iter(rep.values()))[0][1]['params'].get('bursts')} bursts to "
             f"{next(iter(rep.values()))[0][1]['params'].get('subs'):,} subscribers (the floor and each server take turns in every repeat); medians, then every run:")
    L.append("")
    L.append("| server | server CPU µs/delivery | time-to-last p50 | time-to-last p99 | runs: CPU µs/delivery (TTL p99) |")
    L.append("|---|---|---|---|---|")
    stat = {}
    for s in [x for x in servers if x in rep]:
        runs = sorted(rep[s], key=lambda t: t[0])
        cpu = med([r["server_cpu_us_per_delivery"] for _, r in runs])
        t50 = med([r["time_to_last_us"]["p50"] for _, r in runs])
        t99 = med([r["time_to_last_us"]["p99"] for _, r in runs])
        stat[s] = (cpu, t50, t99)
        each = ", ".join(f"{r['server_cpu_us_per_delivery']:.2f} ({us(r['time_to_last_us']['p99'])})" for _, r in runs)
        L.append(f"| {s} | {cpu:.2f} | {us(t50)} | {us(t99)} | {each} |")
    if floors:
        fm = med([v for _, v in floors])
        L.append(f"| raw io_uring floor (fixed files) | {fm:.2f} | – | – | {', '.join(f'{v:.2f}' for _, v in floors)} |")
    L.append("")
    peers = {s: v for s, v in stat.items() if s in ("redis", "nats", "tokio")}
    if "ringcast" in stat:
        rc = stat["ringcast"]
        if floors:
            L.append(f"- ringcast CPU/delivery ÷ floor (medians): {rc[0] / fm:.2f}× (target ≤ 1.15×)")
        if peers:
            bc = min(peers, key=lambda s: peers[s][0]); bt = min(peers, key=lambda s: peers[s][2])
            L.append(f"- ringcast CPU/delivery ÷ best peer ({bc}): {rc[0] / peers[bc][0]:.2f}× (target ≤ 0.9×)")
            L.append(f"- ringcast time-to-last p99 ÷ best peer ({bt}): {rc[2] / peers[bt][2]:.2f}× (target ≤ 0.9×)")
open(os.path.join(out, "summary.md"), "w").write("\n".join(L) + "\n")
# A full run rewrites the results block of docs/BENCHMARKS.md (the prose
# around it, which reads the figures against the targets, is by hand).
doc = os.path.join(os.path.dirname(os.path.abspath(img)), "BENCHMARKS.md")
begin, end = "<!-- bench-compare:table:begin", "<!-- bench-compare:table:end -->"
if not quick and os.path.exists(doc):
    text = open(doc).read()
    i, j = text.find(begin), text.find(end)
    if 0 <= i < j:
        head = text[i:text.index("\n", i) + 1]
        body = "\n".join(L[1:])   # the table, the floor line, the W1 repeats
        text = text[:i] + head + body + "\n" + text[j:]
        open(doc, "w").write(text)
        print(f"updated the results table in {doc}", file=sys.stderr)
print("\n".join(L))

# plot data
def lat_table(fname, keys):
    cols = [(lab, res[k]) for lab, k in keys if k in res and res[k].get("latency_us")]
    if not cols: return None
    path = os.path.join(out, fname)
    with open(path, "w") as fh:
        fh.write("pct " + " ".join(lab for lab, _ in cols) + "\n")
        for pk, pl in [("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")]:
            fh.write(pl + " " + " ".join(f"{max(r['latency_us'][pk], 1):.1f}" for _, r in cols) + "\n")
    return path
plots = []
p = lat_table("plot-w0.dat", [("ringcast", "W0-ringcast"), ("ringcast--busy-poll", "W0bp-ringcast"), ("redis", "W0-redis"), ("nats", "W0-nats"), ("tokio", "W0-tokio")])
if p: plots.append((p, "bench-w0-latency.png", "W0: 1 publisher -> 1 subscriber, 64 B, 1,000 msg/s (latency percentiles)", "lat"))
p = lat_table("plot-w2.dat", [(f"{s}@{r}", f"W2-{s}-{r}") for r in (20, 100) for s in servers] + [(f"ringcast-2reactors@{r}", f"W5-ringcast-{r}") for r in (20, 100)])
if p: plots.append((p, "bench-w2-latency.png", "W2: 10,000 subscribers, 1 topic, 64 B at 20 and 100 msg/s (latency percentiles)", "lat"))
cpu_rows = [(w, [res.get(f"{w}-{s}", {}).get("server_cpu_us_per_delivery") for s in servers]) for w in ("W1", "W3")]
if any(v is not None for _, vs in cpu_rows for v in vs):
    path = os.path.join(out, "plot-cpu.dat")
    with open(path, "w") as fh:
        fh.write("workload " + " ".join(servers) + (" raw-io_uring-floor" if "floor" in res else "") + "\n")
        for w, vs in cpu_rows:
            fl = f" {res['floor']['sender_cpu_us_per_send']:.3f}" if ("floor" in res and w == "W1") else (" NaN" if "floor" in res else "")
            fh.write(w + " " + " ".join("NaN" if v is None else f"{v:.3f}" for v in vs) + fl + "\n")
    plots.append((path, "bench-cpu-per-delivery.png", "Server CPU per delivery: W1 burst (10,000 subs) and W3 (19,000 subs x 40 topics)", "cpu"))
with open(os.path.join(out, "plots.txt"), "w") as fh:
    for d, png, t, k in plots:
        if quick: png = png.replace(".png", "-quick.png")
        fh.write(f"{d}\t{os.path.join(img, png)}\t{t}\t{k}\n")
PY
while IFS=$'\t' read -r dat png ttl kind; do
    ncol=$(head -n 1 "$dat" | wc -w)
    dashes=$(head -n 1 "$dat" | tr ' ' '\n' | tail -n +2 | sed -e 's/.*@100$/2/' -e 's/^[^2].*$/1/' | tr '\n' ' ')  # @100 series dashed
    gnuplot -e "in='$dat'; out='$png'; ttl='$ttl'; kind='$kind'; ncol=$ncol; dashes='$dashes'" "$ROOT/scripts/plot.gnuplot" && log "plot $png"
done <"$OUT_DIR/plots.txt"
log "done: $RUNS runs, $FAILS failed, $(( $(date +%s) - T0 )) s; summary in $OUT_DIR/summary.md"
