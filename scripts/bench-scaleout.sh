#!/usr/bin/env bash
# bench-scaleout.sh: three ringcast nodes relaying through NATS (docs/SCALING.md),
# driven by `ringcast bench --sub-ports`: subscribers spread over the nodes, the
# publisher on node 0.
#
# Usage:
#   scripts/bench-scaleout.sh [--quick] [--dry-run] [--no-build] [--no-reference]
#
#   --quick         small sizes (a smoke run of about a minute, numbers not comparable)
#   --dry-run       print what would run (build, servers, generator runs), run nothing
#   --no-build      use the binaries already in $CARGO_TARGET_DIR/release
#   --no-reference  skip (c), the one-node reference sweep
#
# What it starts (ports: the first free set of 7400/7410/7420 + k*1000 for the nodes,
# 4222 + k*100 for NATS):
#   nats-server -a 127.0.0.1 -p 4222
#   node i (0, 1, 2): ringcast serve --cores 1 --cpus $SERVER_CPU --listen 127.0.0.1:74i0
#       --ws-listen 127.0.0.1:74i1 --resp-listen off --nats nats://127.0.0.1:4222 --node-name nI
#   and waits until each node's /healthz says `relay: connected to NATS`.
#
# Pinning, on a 2-CPU machine: every server process (nats-server and the three
# nodes) runs on CPU $SERVER_CPU (default 1) through scripts/pin.sh, and the
# generator (`ringcast bench`, its subscriber processes included) on CPU $GEN_CPU
# (default 0): the server side gets one core in all, as the one node of
# scripts/bench-compare.sh does. With two CPUs there is no core per node, so this
# measures what the relay costs and adds (latency, CPU, throughput against one node
# on the same core), not the capacity three machines would have. PIN=0 runs
# everything unpinned (the kernel then spreads the nodes over both CPUs, beside the
# generator).
#
# Runs (the generator's --json object of each into the results directory):
#   (a) latency.json: the relay's added latency. 1 publisher on node 0 at 100 msg/s,
#       64 B, 300 subscribers spread over the 3 nodes (100 each) on one topic, 10 s
#       after 1 s of warm-up: p50/p99 per node, node 0 local, nodes 1 and 2 remote.
#   (b) sweep-RATE.json: throughput. 3 x 6,000 subscribers over 40 topics (18,000
#       connections: the generator holds them in 2 processes, 20,000 open files each),
#       publisher on node 0, 64 B, 5 s after 1 s of warm-up, at increasing total rates
#       ($SWEEP_RATES msg/s; each message reaches 450 subscribers) until delivery < 100%
#       or p99 > 100 ms, then halving the step between the last pass and the first
#       failure twice (rates rounded to 25 msg/s). The result: the highest total
#       deliveries/s with 100% delivery (no duplicates, reordering, gaps or
#       disconnects) and p99 <= 100 ms.
#   (c) ref-RATE.json: the same sweep with every subscriber on node 0 (one node, no
#       remote subscriber; the relay still publishes each message to NATS), for
#       comparison on the same core.
#   Then summary.md (tables) and summary.json (the figures above), in
#   bench-results/DATE-scaleout/ (--quick: DATE-scaleout-quick/); server logs beside them.
#   Server CPU: the generator measures node 0 over the measured phase (--server-pid);
#   the script adds every server process's CPU over each whole run (setup included)
#   from /proc/PID/stat, in cpu-NAME.txt and the summary.
#   Everything it started is stopped by PID on exit (trap EXIT).
#
# Environment: SERVER_CPU, GEN_CPU, PIN (1), DATE (today, UTC), OUT_DIR,
#   SWEEP_RATES ("50 100 150 200 250 300 400 500 600 800 1000 1200 1600"), SWEEP_SUBS
#   (per node, 6000), SWEEP_TOPICS (40), DUR (sweep seconds, 5), LAT_DUR (10),
#   P99_LIMIT_US (100000), CARGO_TARGET_DIR (where to build and find the binaries;
#   default target/), NATS_SERVER (the nats-server binary; default: on PATH, else
#   /usr/sbin/nats-server).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIN_SH="$ROOT/scripts/pin.sh"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RC="$TARGET_DIR/release/ringcast"
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
PIN=${PIN:-1}
DATE=${DATE:-$(date -u +%F)}

quick=0; dry=0; build=1; reference=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --dry-run) dry=1; shift ;;
        --no-build) build=0; shift ;;
        --no-reference) reference=0; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-scaleout.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
done
OUT_DIR=${OUT_DIR:-$ROOT/bench-results/$DATE-scaleout}
[[ $quick -eq 1 ]] && OUT_DIR=${OUT_DIR%/}-quick

# ---- sizes ---------------------------------------------------------------------
if [[ $quick -eq 1 ]]; then
    LAT_SUBS=30;  LAT_DUR=${LAT_DUR:-2}; SWEEP_SUBS=${SWEEP_SUBS:-300}; DUR=${DUR:-2}; WARM=0.5
    read -r -a SWEEP_RATES <<<"${SWEEP_RATES:-200 800 3200}"
else
    LAT_SUBS=300; LAT_DUR=${LAT_DUR:-10}; SWEEP_SUBS=${SWEEP_SUBS:-6000}; DUR=${DUR:-5}; WARM=1
    read -r -a SWEEP_RATES <<<"${SWEEP_RATES:-50 100 150 200 250 300 400 500 600 800 1000 1200 1600}"
fi
SWEEP_TOPICS=${SWEEP_TOPICS:-40}
P99_LIMIT_US=${P99_LIMIT_US:-100000}
NODES=3

log() { echo "[bench-scaleout $(date -u +%T)] $*" >&2; }
show() { printf '%q ' "$@"; echo; }
die() { echo "bench-scaleout.sh: $*" >&2; exit 1; }

NATS_BIN=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[[ $dry -eq 1 || -x "$NATS_BIN" ]] || die "nats-server not found (Debian: apt-get install nats-server; or set NATS_SERVER)"
command -v python3 >/dev/null || [[ $dry -eq 1 ]] || die "python3 is needed for the summary"
command -v curl >/dev/null || [[ $dry -eq 1 ]] || die "curl is needed for /healthz"

# ---- build -----------------------------------------------------------------------
# --bins: `ringcast bench` execs the ringcast-bench binary beside ringcast.
# OUT_DIR is this script's, not cargo's: passed on, it would change what cargo builds.
build_cmd=(env -u OUT_DIR cargo build --release -p ringcast -p ringcast-bench --bins)
if [[ $build -eq 1 ]]; then
    if [[ $dry -eq 1 ]]; then show "${build_cmd[@]}"
    else log "building in $TARGET_DIR"; "${build_cmd[@]}" -q || die "build failed"; fi
fi
[[ $dry -eq 1 || -x "$RC" ]] || die "$RC is missing (build it, or drop --no-build)"

# ---- ports -----------------------------------------------------------------------
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
BASE=""
for k in 0 1 2 3 4 5 6 7 8 9; do
    b=$((7400 + k * 1000)); busy=0
    for i in $(seq 0 $((NODES - 1))); do
        in_use $((b + 10 * i)) && busy=1; in_use $((b + 10 * i + 1)) && busy=1
    done
    [[ $busy -eq 0 ]] && { BASE=$b; break; }
done
[[ -n "$BASE" ]] || die "no free set of node ports from 7400 to 16420"
NATS_PORT=""
for k in 0 1 2 3 4 5 6 7 8 9; do in_use $((4222 + k * 100)) || { NATS_PORT=$((4222 + k * 100)); break; }; done
[[ -n "$NATS_PORT" ]] || die "no free NATS port from 4222 to 5122"
PORTS=(); WS_PORTS=()
for i in $(seq 0 $((NODES - 1))); do PORTS+=($((BASE + 10 * i))); WS_PORTS+=($((BASE + 10 * i + 1))); done
SUB_PORTS=$(IFS=,; echo "${PORTS[*]}")

# ---- processes -------------------------------------------------------------------
PIDS=(); NAMES=()
stop_all() {
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        [[ "$pid" == DRY ]] && continue
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[$i]}
        [[ "$pid" == DRY ]] && continue
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS=(); NAMES=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

pinned() { # pinned CPU CMD...: the command, through pin.sh unless PIN=0
    if [[ "$PIN" == 1 ]]; then P=("$PIN_SH" "$1" -- "${@:2}"); else P=("${@:2}"); fi
}

start() { # start NAME CPU CMD...: in the background, log in OUT_DIR/NAME.log
    local name=$1; shift
    pinned "$@"
    if [[ $dry -eq 1 ]]; then show "${P[@]}" '&'; PIDS+=(DRY); NAMES+=("$name"); return 0; fi
    "${P[@]}" >"$OUT_DIR/$name.log" 2>&1 &
    PIDS+=($!); NAMES+=("$name")
    log "started $name pid $! ($(show "${P[@]}"))"
}

wait_port() { # wait_port PORT PID NAME
    local _
    for _ in $(seq 1 100); do
        in_use "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    die "$3 did not come up on port $1 (see $OUT_DIR/$3.log)"
}

NODE_PIDS=()
start_servers() {
    start nats "$SERVER_CPU" "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT"
    [[ $dry -eq 1 ]] || wait_port "$NATS_PORT" "${PIDS[-1]}" nats
    local i
    for i in $(seq 0 $((NODES - 1))); do
        start "node$i" "$SERVER_CPU" "$RC" serve --cores 1 --cpus "$SERVER_CPU" \
            --listen "127.0.0.1:${PORTS[$i]}" --ws-listen "127.0.0.1:${WS_PORTS[$i]}" --resp-listen off \
            --nats "nats://127.0.0.1:$NATS_PORT" --node-name "n$i"
        NODE_PIDS+=("${PIDS[-1]}")
    done
    [[ $dry -eq 1 ]] && { for i in $(seq 0 $((NODES - 1))); do echo "curl -s http://127.0.0.1:${WS_PORTS[$i]}/healthz   # until: relay: connected to NATS"; done; return 0; }
    for i in $(seq 0 $((NODES - 1))); do
        wait_port "${PORTS[$i]}" "${NODE_PIDS[$i]}" "node$i"
        local ok=0 body=""
        for _ in $(seq 1 200); do
            body=$(curl -s --max-time 1 "http://127.0.0.1:${WS_PORTS[$i]}/healthz")
            [[ "$body" == *"relay: connected to NATS"* ]] && { ok=1; break; }
            kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || break
            sleep 0.1
        done
        [[ $ok -eq 1 ]] || die "node$i's relay did not connect to NATS within 20 s; /healthz: $body"
        log "node$i serves: $(echo "$body" | tr '\n' ' ')"
    done
}

cpu_ticks() { # cpu_ticks PID: utime + stime, in clock ticks (fields 14, 15 after the comm)
    local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }; set -- $s; echo $(( ${12} + ${13} ))
}
HZ=$(getconf CLK_TCK)

node0_pid() { if [[ $dry -eq 1 ]]; then echo '$NODE0_PID'; else echo "${NODE_PIDS[0]}"; fi; }

RUNS=0; FAILS=0
bench() { # bench NAME SUB_PORTS ARGS...: one generator run into NAME.json
    local name=$1 ports=$2; shift 2
    pinned "$GEN_CPU" "$RC" bench --port "${PORTS[0]}" --sub-ports "$ports" --cpu "$GEN_CPU" \
        --server-pid "$(node0_pid)" --json "$@"
    if [[ $dry -eq 1 ]]; then show "${P[@]}" '>' "$OUT_DIR/$name.json"; return 0; fi
    log "run $name: --sub-ports $ports $*"
    RUNS=$((RUNS + 1))
    local i before=() after=()
    for i in "${!PIDS[@]}"; do before+=("$(cpu_ticks "${PIDS[$i]}")"); done
    if ! timeout 300 "${P[@]}" >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.log" || [[ ! -s "$OUT_DIR/$name.json" ]]; then
        FAILS=$((FAILS + 1)); log "run $name failed: $(tail -n 2 "$OUT_DIR/$name.log" | tr '\n' ' ')"
        [[ -s "$OUT_DIR/$name.json" ]] || rm -f "$OUT_DIR/$name.json"
    fi
    for i in "${!PIDS[@]}"; do after+=("$(cpu_ticks "${PIDS[$i]}")"); done
    : >"$OUT_DIR/cpu-$name.txt"
    for i in "${!PIDS[@]}"; do
        echo "${NAMES[$i]} $(awk -v a="${before[$i]}" -v b="${after[$i]}" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" >>"$OUT_DIR/cpu-$name.txt"
    done
    for i in "${!NODE_PIDS[@]}"; do
        kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || die "node$i exited during $name (see $OUT_DIR/node$i.log)"
    done
}

verdict() { # verdict NAME: prints pass or fail (why) for a sweep run
    python3 - "$OUT_DIR/$1.json" "$P99_LIMIT_US" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"fail (no report: {e})"); sys.exit()
d = r["deliveries"]; p99 = r["latency_us"]["p99"]; lim = float(sys.argv[2])
why = []
if d["ratio"] < 1: why.append(f"delivery {d['ratio']*100:.4f}%")
for k in ("duplicates", "reordered", "gaps", "disconnects"):
    if d[k]: why.append(f"{d[k]} {k}")
if r.get("aborted"): why.append("aborted: " + r["aborted"])
if p99 > lim: why.append(f"p99 {p99/1000:.1f} ms")
print("pass" if not why else "fail (" + "; ".join(why) + ")")
PY
}

sweep() { # sweep PREFIX SUB_PORTS SUBS: rates up until one fails, then two halvings
    local prefix=$1 ports=$2 subs=$3 r v best="" fail=""
    local args=(--workload steady --subs "$subs" --topics "$SWEEP_TOPICS" --size 64 --duration "$DUR" --warmup "$WARM")
    for r in "${SWEEP_RATES[@]}"; do
        bench "$prefix-$r" "$ports" "${args[@]}" --rate "$r"
        [[ $dry -eq 1 ]] && continue
        v=$(verdict "$prefix-$r"); log "$prefix-$r: $v"
        if [[ "$v" == pass ]]; then best=$r; else fail=$r; break; fi
    done
    [[ $dry -eq 1 ]] && { echo "# ... until a rate fails (delivery < 100% or p99 > $P99_LIMIT_US us), then twice the rate halfway between the last pass and the first failure"; return 0; }
    local step
    for step in 1 2; do
        [[ -n "$best" && -n "$fail" ]] || break
        r=$(( (best + fail) / 2 / 25 * 25 ))
        [[ $r -gt $best && $r -lt $fail ]] || break
        bench "$prefix-$r" "$ports" "${args[@]}" --rate "$r"
        v=$(verdict "$prefix-$r"); log "$prefix-$r: $v"
        if [[ "$v" == pass ]]; then best=$r; else fail=$r; fi
    done
}

# ---- runs ------------------------------------------------------------------------
[[ $dry -eq 1 ]] || mkdir -p "$OUT_DIR"
T0=$(date +%s)
[[ $dry -eq 1 ]] || {
    log "results in $OUT_DIR; nodes on ${PORTS[*]} (WebSocket/HTTP +1), NATS on $NATS_PORT; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    git -C "$ROOT" rev-parse HEAD >"$OUT_DIR/build.txt" 2>/dev/null
    git -C "$ROOT" status --short -- crates >>"$OUT_DIR/build.txt" 2>/dev/null
    echo "diff sha1 (crates/ringcast, uncommitted): $(git -C "$ROOT" diff HEAD -- crates/ringcast 2>/dev/null | sha1sum | cut -c1-12)" >>"$OUT_DIR/build.txt"
    echo "binary: $RC, modified $(date -u -r "$RC" +%FT%TZ)" >>"$OUT_DIR/build.txt"
}
start_servers
bench latency "$SUB_PORTS" --workload steady --subs "$LAT_SUBS" --topics 1 --size 64 --rate 100 \
    --duration "$LAT_DUR" --warmup "$WARM"
sweep sweep "$SUB_PORTS" $((NODES * SWEEP_SUBS))
[[ $reference -eq 1 ]] && sweep ref "${PORTS[0]}" $((NODES * SWEEP_SUBS))
stop_all
[[ $dry -eq 1 ]] && { echo "python3 (summary) > $OUT_DIR/summary.md $OUT_DIR/summary.json"; exit 0; }
log "$RUNS runs ($FAILS failed) in $(( $(date +%s) - T0 )) s"

# ---- summary ---------------------------------------------------------------------
python3 - "$OUT_DIR" "$quick" "$P99_LIMIT_US" "$PIN" "$SERVER_CPU" "$GEN_CPU" <<'PY'
import glob, json, os, re, sys
out, quick, lim, pin, scpu, gcpu = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), sys.argv[4] == "1", sys.argv[5], sys.argv[6]
def load(name):
    try: return json.load(open(os.path.join(out, name + ".json")))
    except Exception: return None
def cpu(name):
    try:
        return {l.split()[0]: float(l.split()[1]) for l in open(os.path.join(out, f"cpu-{name}.txt")) if l.strip()}
    except Exception: return {}
def us(v):
    if v is None: return "–"
    return f"{v/1000:,.1f} ms" if abs(v) >= 10000 else (f"{v/1000:,.2f} ms" if abs(v) >= 1000 else f"{v:,.0f} µs")
def sus(v): return ("+" if v >= 0 else "−") + us(abs(v))
def ok(r):
    if not r: return False
    d = r["deliveries"]
    return (d["ratio"] >= 1 and not any(d[k] for k in ("duplicates", "reordered", "gaps", "disconnects"))
            and not r.get("aborted") and r["latency_us"]["p99"] <= lim)
L = [f"# Scale-out through NATS: 3 nodes{' (QUICK smoke run: small sizes, not comparable)' if quick else ''}", ""]
build = open(os.path.join(out, "build.txt")).read().split("\n") if os.path.exists(os.path.join(out, "build.txt")) else []
any_r = load("latency") or next((load(os.path.basename(f)[:-5]) for f in sorted(glob.glob(os.path.join(out, "sweep-*.json")))), None)
if any_r:
    m = any_r["machine"]
    dirty = [x for x in build[1:] if re.match(r"^[ MADRCU?!]{2} ", x)]
    binary = next((x for x in build if x.startswith("binary: ")), "")
    L.append(f"- Date {any_r['date']}; Linux {m['kernel']}, {m['cpus']} CPUs ({m['cpu_model']}); commit {build[0][:12] if build else '?'}"
             + (f" with uncommitted changes in {len(dirty)} files under crates/" if dirty else "") + (f"; {binary}" if binary else ""))
L.append("- Pinning: " + (f"nats-server and the 3 nodes on CPU {scpu}, the generator on CPU {gcpu} (scripts/pin.sh)" if pin else "none (PIN=0)"))
L.append("- Nodes: `ringcast serve --cores 1` each, relaying through one nats-server; publisher on node 0 (local), subscribers round-robin over the nodes (`ringcast bench --sub-ports`)")
L.append("")
summary = {"quick": quick, "p99_limit_us": lim}
r = load("latency")
if r:
    p = r["params"]
    L.append(f"## (a) Added latency: {p['subs']} subscribers, 1 topic, {p['rate']} msg/s, {p['size']} B, {p['duration_s']} s")
    L.append("")
    L.append("| node (port) | subs | delivered | p50 | p90 | p99 | p99.9 | max | p50 − local | p99 − local |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for q in r.get("ports") or []:
        d, l, m = q["deliveries"], q["latency_us"], q.get("minus_local_us")
        L.append(f"| {'local' if q['local'] else 'remote'} ({q['port']}) | {q['subs']} | {d['received']:,}/{d['expected']:,} ({d['ratio']*100:.2f}%) | {us(l['p50'])} | {us(l['p90'])} | {us(l['p99'])} | {us(l['p999'])} | {us(l['max'])} | {sus(m['p50']) if m else '–'} | {sus(m['p99']) if m else '–'} |")
        rows.append({"port": q["port"], "local": q["local"], "p50_us": l["p50"], "p99_us": l["p99"], "ratio": d["ratio"],
                     "minus_local_p50_us": m["p50"] if m else None, "minus_local_p99_us": m["p99"] if m else None})
    l = r["latency_us"]
    L.append(f"| all | {p['subs']} | {r['deliveries']['received']:,}/{r['deliveries']['expected']:,} | {us(l['p50'])} | {us(l['p90'])} | {us(l['p99'])} | {us(l['p999'])} | {us(l['max'])} | | |")
    L.append("")
    L.append(f"Clean: {'yes' if r['clean'] else 'no: ' + str(r.get('first_error') or r.get('aborted'))}; GAP notices {r['deliveries']['gap_notices']}.")
    L.append("")
    summary["latency"] = {"ports": rows, "clean": r["clean"], "p50_us": l["p50"], "p99_us": l["p99"]}
def sweep_table(prefix, title):
    runs = []
    for f in glob.glob(os.path.join(out, f"{prefix}-*.json")):
        m = re.fullmatch(prefix + r"-(\d+)", os.path.basename(f)[:-5])
        if m: runs.append((int(m.group(1)), load(os.path.basename(f)[:-5])))
    runs = sorted((k, v) for k, v in runs if v)
    if not runs: return None
    p = runs[0][1]["params"]
    L.append(f"## {title}: {p['subs']:,} subscribers over {p['topics']} topics, 64 B, {p['duration_s']} s per rate")
    L.append("")
    L.append("| rate msg/s | deliveries/s | delivered | p50 | p99 | p99.9 | p99 per port | node 0 CPU (measured) | server CPU s (whole run) | generator busiest | verdict |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    best = None
    for rate, r in runs:
        d, l = r["deliveries"], r["latency_us"]
        per = " / ".join(f"{q['port']}{'*' if q['local'] else ''} {us(q['latency_us']['p99'])}" for q in (r.get("ports") or []))
        c = cpu(f"{prefix}-{rate}")
        srv = ", ".join(f"{k} {v:.1f}" for k, v in c.items())
        n0 = r.get("server_cpu_s")
        n0s = f"{n0:.2f} s ({n0 / r['wall_s'] * 100:.0f}%)" if n0 is not None and r["wall_s"] else "–"
        good = ok(r)
        why = "pass" if good else "fail: " + "; ".join(x for x in [
            f"delivery {d['ratio']*100:.4f}%" if d["ratio"] < 1 else "",
            ", ".join(f"{d[k]} {k}" for k in ("duplicates", "reordered", "gaps", "disconnects") if d[k]),
            f"p99 > {us(lim)}" if l["p99"] > lim else "",
            f"aborted ({r['aborted']})" if r.get("aborted") else ""] if x)
        if d.get("gap_notices"): why += f"; {d['gap_notices']} GAP notices"
        L.append(f"| {rate:,} | {d['per_second']:,.0f} | {d['ratio']*100:.4f}% | {us(l['p50'])} | {us(l['p99'])} | {us(l['p999'])} | {per or '–'} | {n0s} | {srv} | {r['generator_busiest_core']*100:.0f}% | {why} |")
        if good and (best is None or d["per_second"] > best[1]["deliveries"]["per_second"]):
            best = (rate, r)
    L.append("")
    if best:
        rate, r = best
        L.append(f"Highest with 100% delivery and p99 ≤ {us(lim)}: **{r['deliveries']['per_second']:,.0f} deliveries/s** at {rate:,} msg/s (p99 {us(r['latency_us']['p99'])}).")
    else:
        L.append(f"No rate run met 100% delivery and p99 ≤ {us(lim)}.")
    L.append("")
    return {"runs": [{"rate": k, "deliveries_per_s": v["deliveries"]["per_second"], "ratio": v["deliveries"]["ratio"],
                      "p50_us": v["latency_us"]["p50"], "p99_us": v["latency_us"]["p99"], "pass": ok(v),
                      "ports_p99_us": {str(q["port"]): q["latency_us"]["p99"] for q in (v.get("ports") or [])}} for k, v in runs],
            "best": {"rate": best[0], "deliveries_per_s": best[1]["deliveries"]["per_second"], "p99_us": best[1]["latency_us"]["p99"]} if best else None}
s = sweep_table("sweep", "(b) Throughput, subscribers on 3 nodes")
if s: summary["sweep"] = s
s = sweep_table("ref", "(c) Reference: every subscriber on node 0")
if s: summary["reference"] = s
L.append("Per-port p99: `*` marks the local node (the publisher's). Server CPU (whole run) is each process's CPU from /proc over the whole generator run, setup included.")
open(os.path.join(out, "summary.md"), "w").write("\n".join(L) + "\n")
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print("\n".join(L))
PY
