#!/usr/bin/env bash
# demo.sh: build ringcast, start the daemon, and show a subscriber receiving
# what a publisher sends; the daemon then keeps serving (and publishing one
# tick a second on demo.ticks, which the live page at http://WS_ADDR/ shows
# in a browser) until Ctrl-C, which stops it gracefully.
#
# Usage: scripts/demo.sh [--dry-run] [--listen ADDR] [--ws-listen ADDR] [--no-wait]
#   --listen ADDR     native TCP address (default 127.0.0.1:7400)
#   --ws-listen ADDR  WebSocket/HTTP address (default 127.0.0.1:7401)
#   --no-wait         stop the daemon after the demo instead of serving on
#   --dry-run         print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."

listen=127.0.0.1:7400 ws=127.0.0.1:7401 dry=0 wait=1
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen=$2; shift 2 ;;
        --ws-listen) ws=$2; shift 2 ;;
        --no-wait) wait=0; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
bin=target/release/ringcast
if [ "$dry" = 1 ]; then
    cat <<TXT
cargo build --release
$bin serve --listen $listen --ws-listen $ws &
$bin sub demo.ticks --addr $listen --count 5 &
$bin pub demo.ticks --addr $listen   (5 lines on stdin)
TXT
    exit 0
fi

cargo build --release --quiet
$bin serve --listen "$listen" --ws-listen "$ws" &
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
    # One tick a second on demo.ticks, for the live page.
    (i=6; while kill -0 $server 2>/dev/null; do echo "tick $i at $(date +%T)"; i=$((i + 1)); sleep 1; done \
        | $bin pub demo.ticks --addr "$listen" 2>/dev/null) &
    ticker=$!
    trap 'kill $ticker 2>/dev/null; kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
    cat >&2 <<TXT
demo.sh: the daemon keeps serving (Ctrl-C stops it):
  open http://$ws/?topic=demo.ticks in a browser: it subscribes over WebSocket and shows a tick a second
  $bin sub TOPIC / $bin pub TOPIC MESSAGE in other terminals (native TCP on $listen)
  curl http://$ws/metrics   (Prometheus counters)   curl http://$ws/healthz
TXT
    wait $server
fi
