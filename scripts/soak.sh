#!/usr/bin/env bash
# soak.sh: the soak (issue 14, part 4) against the real daemon.
#
# Usage: bash scripts/soak.sh [DURATION] [--csv FILE] [--dry-run]
#   DURATION   seconds, or with a unit: 600, 10m, 1h (default 1h)
#   --csv F    where the samples go (default bench-results/DATE/soak.csv)
#   --dry-run  print what would run, run nothing
#
# Starts `ringcast serve` on free ports (2 reactors), then from one process:
# 2,000 subscribers each holding up to 5 of 10,000 topic names, a publisher
# at 200 msg/s to random names, 50 reconnects/s (a random subscriber closes
# and connects again with 5 new topics) and 100 subscribe/unsubscribe per s,
# beside a healthy subscriber (200 msg/s on its own topic). Every 10 s: RSS
# (VmRSS), descriptors (/proc/PID/fd), ringcast_topics, ringcast_subscriptions
# and connections to the CSV. At the end: the least-squares slope of RSS
# (MiB/hour) and descriptors (per hour) after a warm-up (the first 10 %, at
# least 60 s), ringcast_topics against the topics still subscribed, and
# ringcast_topics after every subscriber closed (must be 0: reclaimed).
# Exit 1 when the daemon died, a topic was not reclaimed, or the healthy
# subscriber lost a frame or saw one out of order.
# Environment: CARGO_TARGET_DIR (default target/); SUBS, RATE, RECONNECTS,
#   CHURN, TOPICS override the figures above.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0 dur=1h csv=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry=1 ;;
        --csv) csv=$2; shift ;;
        *) dur=$1 ;;
    esac
    shift
done
case "$dur" in
    *h) secs=$(( ${dur%h} * 3600 )) ;;
    *m) secs=$(( ${dur%m} * 60 )) ;;
    *s) secs=${dur%s} ;;
    *) secs=$dur ;;
esac
date=$(date -u +%Y-%m-%d)
[ -n "$csv" ] || csv=bench-results/$date/soak.csv
target=${CARGO_TARGET_DIR:-target}

run() {
    echo "+ $*" >&2
    [ "$dry" = 1 ] || "$@"
}

run cargo build --release -q -p ringcast --bin ringcast -p ringcast-bench --bin ringcast-chaos
run mkdir -p "$(dirname "$csv")"
echo "soak.sh: $(date -u +%Y-%m-%dT%H:%MZ), $secs s, samples to $csv" >&2
run "$target/release/ringcast-chaos" --binary "$target/release/ringcast" soak --secs "$secs" \
    --subs "${SUBS:-2000}" --rate "${RATE:-200}" --reconnects "${RECONNECTS:-50}" \
    --churn "${CHURN:-100}" --topics "${TOPICS:-10000}" --csv "$csv"
