#!/usr/bin/env bash
# cpu-steal.sh: which threads ran on given CPUs while a command ran, and in how long runs.
# A benchmark pins its server and generator to CPUs; any other thread the kernel puts
# there (kernel workers, DAMON's kdamond, a host agent) holds the CPU for its run, and a
# server thread woken meanwhile waits for it. This shows who, how much and how long.
#
# Usage:
#   scripts/cpu-steal.sh [--cpus LIST] [--min-us N] [--keep FILE] -- CMD [ARGS...]
#
#   --cpus LIST   CPUs to watch, as taskset takes them (default 0,1)
#   --min-us N    count runs of at least N µs as long (default 500)
#   --keep FILE   also keep the raw trace in FILE
#
# Needs root and tracefs (mounted at /sys/kernel/tracing if it is not). Records the
# sched_switch events of the CPUs in a private tracefs instance (the global trace is not
# touched) on the monotonic clock while CMD runs, then prints per CPU and thread: the
# time it ran, its runs, the runs of at least --min-us and the longest, largest first.
# The idle task is not listed; threads started by CMD or after it (pid at least its own,
# new kernel workers too) are summed
# per name (pid "cmd"); other threads that ran under 0.1 ms with no long run are left out.
#
# Example: who shares the CPUs of W0 at 1,000 msg/s (server on 1, generator on 0):
#   scripts/cpu-steal.sh -- scripts/w0-sweep.sh --spins 0.2ms --rates 1000 --secs 10 --no-peers
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2; }

cpus="0,1"; min_us=500; keep=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cpus) cpus=${2:?}; shift 2 ;;
        --min-us) min_us=${2:?}; shift 2 ;;
        --keep) keep=${2:?}; shift 2 ;;
        --) shift; break ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
done
[[ $# -ge 1 ]] || usage
[[ "$cpus" =~ ^[0-9]+([-,][0-9]+)*$ ]] || { echo "cpu-steal.sh: bad CPU list: $cpus" >&2; exit 2; }
[[ "$min_us" =~ ^[0-9]+$ ]] || { echo "cpu-steal.sh: bad --min-us: $min_us" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "cpu-steal.sh: needs root (tracefs)" >&2; exit 1; }

T=/sys/kernel/tracing
if [[ ! -e $T/instances ]]; then
    mount -t tracefs nodev "$T" 2>/dev/null || { echo "cpu-steal.sh: cannot mount tracefs at $T" >&2; exit 1; }
fi
I="$T/instances/cpu-steal-$$"
mkdir "$I"
cleanup() { echo 0 >"$I/tracing_on" 2>/dev/null || true; rmdir "$I" 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The CPU list as a hex mask for tracing_cpumask.
mask=$(python3 - "$cpus" <<'PY'
import sys
m = 0
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    for c in range(int(a), int(b or a) + 1):
        m |= 1 << c
print(format(m, "x"))
PY
)
echo "$mask" >"$I/tracing_cpumask"
echo mono >"$I/trace_clock"
echo 16384 >"$I/buffer_size_kb"
echo 1 >"$I/events/sched/sched_switch/enable"
echo 1 >"$I/tracing_on"
set +e
"$@" &
cmd=$!
wait "$cmd"
rc=$?
set -e
echo 0 >"$I/tracing_on"
raw=$(mktemp)
cat "$I/trace" >"$raw"
[[ -n $keep ]] && cp "$raw" "$keep"
python3 - "$raw" "$min_us" "$cmd" <<'PY'
import re, sys, collections
raw, min_us, cmd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pat = re.compile(r"\[(\d+)\].*?\s([\d.]+): sched_switch: prev_comm=(.*?) prev_pid=(\d+) .*?next_comm=(.*?) next_pid=(\d+)")
since = {}
stat = collections.defaultdict(lambda: [0.0, 0, 0, 0.0])
first = last = None
lost = 0
for line in open(raw):
    if "LOST" in line:
        lost += 1
    m = pat.search(line)
    if not m:
        continue
    cpu, t, pcomm, ppid, ncomm, npid = m.groups()
    cpu, t, ppid, npid = int(cpu), float(t), int(ppid), int(npid)
    first = t if first is None else first
    last = t
    if cpu in since and since[cpu][1] == ppid:
        run = (t - since[cpu][0]) * 1e6
        s = stat[(cpu, pcomm, ppid)]
        s[0] += run; s[1] += 1; s[2] += run >= min_us; s[3] = max(s[3], run)
    since[cpu] = (t, npid)
if first is None:
    print("cpu-steal.sh: no sched_switch events recorded", file=sys.stderr)
    sys.exit(1)
print(f"# {last - first:.1f} s traced; runs of at least {min_us} us are long; the command's threads summed per name (pid 'cmd'); others under 0.1 ms without a long run left out"
      + (f"; {lost} buffer overruns" if lost else ""))
print(f"{'cpu':>3} {'thread':<20} {'pid':>7} {'ran_ms':>9} {'runs':>7} {'long':>5} {'longest_us':>10}")
# Other threads one by one (those that ran at least 0.1 ms or had a long run);
# the command's own, summed per name.
rows = collections.defaultdict(lambda: [0.0, 0, 0, 0.0])
for (cpu, comm, pid), v in stat.items():
    if pid == 0:
        continue
    key = (cpu, comm, "cmd" if pid >= cmd else str(pid))
    r = rows[key]
    r[0] += v[0]; r[1] += v[1]; r[2] += v[2]; r[3] = max(r[3], v[3])
for (cpu, comm, pid), (ran, runs, long_runs, longest) in sorted(rows.items(), key=lambda kv: (kv[0][0], -kv[1][0])):
    if pid != "cmd" and ran < 100 and long_runs == 0:
        continue
    print(f"{cpu:>3} {comm[:20]:<20} {pid:>7} {ran / 1e3:>9.1f} {runs:>7} {long_runs:>5} {longest:>10.0f}")
PY
rm -f "$raw"
exit "$rc"
