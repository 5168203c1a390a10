#!/usr/bin/env bash
# demo.sh: build ringcast, start the daemon, and show a subscriber receiving
# what a publisher sends; the daemon then keeps serving until Ctrl-C (which
# stops it gracefully).
#
# Usage: scripts/demo.sh [--dry-run] [--listen ADDR] [--no-wait]
#   --listen ADDR  where the daemon listens (default 127.0.0.1:7400)
#   --no-wait      stop the daemon after the demo instead of serving on
#   --dry-run      print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."

listen=127.0.0.1:7400 dry=0 wait=1
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen=$2; shift 2 ;;
        --no-wait) wait=0; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
bin=target/release/ringcast
if [ "$dry" = 1 ]; then
    cat <<TXT
cargo build --release
$bin serve --listen $listen &
$bin sub demo.ticks --addr $listen --count 5 &
$bin pub demo.ticks --addr $listen   (5 lines on stdin)
TXT
    exit 0
fi

cargo build --release --quiet
$bin serve --listen "$listen" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

host=${listen%:*} port=${listen##*:}
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
    kill -0 $server 2>/dev/null || { echo "demo.sh: the daemon exited (see its message above)" >&2; exit 1; }
    sleep 0.05
done

# The subscriber reports "subscribed" on stderr once its SUBACK arrived;
# publish only then, so it sees every message.
fifo=$(mktemp -u); mkfifo "$fifo"
$bin sub demo.ticks --addr "$listen" --count 5 2>"$fifo" &
sub=$!
read -r line <"$fifo"; echo "$line" >&2
for i in 1 2 3 4 5; do echo "tick $i at $(date +%T.%N)"; done | $bin pub demo.ticks --addr "$listen"
wait $sub
rm -f "$fifo"

if [ "$wait" = 1 ]; then
    echo "demo.sh: the daemon keeps serving on $listen: try '$bin sub TOPIC' and '$bin pub TOPIC MESSAGE' in other terminals; Ctrl-C stops it" >&2
    wait $server
fi
