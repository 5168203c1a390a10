#!/usr/bin/env bash
# tune-host.sh: sysctls a broadcast host (ringcast, or the benchmark peers) wants.
# Prints each setting with its current and proposed value; changes nothing
# unless --apply is given (then `sysctl -w`, needs root; not persisted across reboots).
#
# Usage:
#   scripts/tune-host.sh [--dry-run]   # default: print current vs proposed
#   scripts/tune-host.sh --apply       # apply the proposed values
#
# Also check the open-file limit (`ulimit -n`): each subscriber is one fd, and
# one process cannot hold more than that limit (fs.nr_open caps what it may be raised to).
set -euo pipefail

apply=0
for a in "$@"; do
    case "$a" in
        --apply) apply=1 ;;
        --dry-run) apply=0 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "tune-host.sh: unknown flag $a" >&2; exit 2 ;;
    esac
done

# key|proposed|why
settings=(
    "net.core.somaxconn|65535|accept backlog: thousands of subscribers connect at once"
    "net.ipv4.tcp_wmem|4096 65536 16777216|send buffers: a fan-out burst queues one frame per socket"
    "net.ipv4.tcp_rmem|4096 131072 33554432|receive buffers for publishers and large frames"
    "net.ipv4.ip_local_port_range|1024 65535|ephemeral ports for many loopback/bench connections"
    "fs.nr_open|1048576|ceiling for per-process open files (one fd per subscriber)"
    "net.core.busy_poll|50|us to busy-poll the device on poll/select (dedicated cores)"
    "net.core.busy_read|50|us to busy-poll the device on blocking reads (dedicated cores)"
)

printf '%-30s %-24s %-24s %s\n' "sysctl" "current" "proposed" "why"
rc=0
for s in "${settings[@]}"; do
    IFS='|' read -r key want why <<<"$s"
    cur=$(sysctl -n "$key" 2>/dev/null | tr -s '\t ' ' ' || true)
    [[ -n "$cur" ]] || cur="(unavailable)"
    printf '%-30s %-24s %-24s %s\n' "$key" "$cur" "$want" "$why"
    if [[ $apply -eq 1 && "$cur" != "(unavailable)" && "$cur" != "$want" ]]; then
        if ! sysctl -q -w "$key=$want"; then
            echo "tune-host.sh: could not set $key" >&2; rc=1
        fi
    fi
done
echo "ulimit -n (this shell): $(ulimit -n)"
if [[ $apply -eq 0 ]]; then
    echo "(dry run: nothing changed; pass --apply to set the proposed values)"
fi
exit $rc
