#!/usr/bin/env bash
# pin.sh: run a command on given CPUs (taskset), optionally SCHED_FIFO (chrt -f).
#
# Usage:
#   scripts/pin.sh [--dry-run] [--rt PRIO] CPULIST -- CMD [ARGS...]
#
#   CPULIST    CPUs as taskset -c takes them: 1, 0,1 or 2-5
#   --rt PRIO  also run under SCHED_FIFO at priority PRIO (1-99, needs root/CAP_SYS_NICE)
#   --dry-run  print the command that would run, run nothing
#
# The command replaces this script (exec), so `scripts/pin.sh 1 -- server & pid=$!`
# gives the server's own PID.
#
# Examples:
#   scripts/pin.sh 1 -- target/release/ringcast serve --cores 1 --cpus 1
#   scripts/pin.sh --rt 10 0 -- target/release/ringcast bench --port 7400
#   scripts/pin.sh --dry-run 0,1 -- redis-server --port 6390
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2; }

dry=0
rt=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry=1; shift ;;
        --rt) [[ $# -ge 2 ]] || usage; rt="$2"; shift 2 ;;
        -h|--help) usage ;;
        --) usage ;;
        *) break ;;
    esac
done
[[ $# -ge 3 ]] || usage
cpus="$1"; shift
[[ "$1" == "--" ]] || usage
shift
[[ "$cpus" =~ ^[0-9]+([-,][0-9]+)*$ ]] || { echo "pin.sh: bad CPU list: $cpus" >&2; exit 2; }
if [[ -n "$rt" && ! "$rt" =~ ^[0-9]+$ ]]; then echo "pin.sh: bad --rt priority: $rt" >&2; exit 2; fi

cmd=(taskset -c "$cpus")
[[ -n "$rt" ]] && cmd+=(chrt -f "$rt")
cmd+=("$@")

if [[ $dry -eq 1 ]]; then
    printf '%q ' "${cmd[@]}"; echo
    exit 0
fi
exec "${cmd[@]}"
