#!/usr/bin/env bash
# demo.sh: build ringcast, start the daemon, and show a subscriber receiving
# what a publisher sends; the daemon then keeps serving (and publishing one
# tick a second on demo.ticks, which the live page at http://WS_ADDR/ shows
# in a browser) until Ctrl-C, which stops it gracefully.
#
# With redis-cli installed (Debian: redis-tools), it also shows a Redis
# client on the Redis front: redis-cli SUBSCRIBE receives what redis-cli
# PUBLISH and the native publisher send.
#
# Usage: scripts/demo.sh [--dry-run] [--listen ADDR] [--ws-listen ADDR] [--resp-listen ADDR] [--no-wait]
#   --listen ADDR       native TCP address (default 127.0.0.1:7400)
#   --ws-listen ADDR    WebSocket/HTTP address (default 127.0.0.1:7401)
#   --resp-listen ADDR  Redis (RESP) address (default 127.0.0.1:6380)
#   --no-wait           stop the daemon after the demo instead of serving on
#   --dry-run           print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."

listen=127.0.0.1:7400 ws=127.0.0.1:7401 resp=127.0.0.1:6380 dry=0 wait=1
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen=$2; shift 2 ;;
        --ws-listen) ws=$2; shift 2 ;;
        --resp-listen) resp=$2; shift 2 ;;
        --no-wait) wait=0; shift ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
bin=target/release/ringcast
if [ "$dry" = 1 ]; then
    cat <<TXT
cargo build --release
$bin serve --listen $listen --ws-listen $ws --resp-listen $resp &
$bin sub demo.ticks --addr $listen --count 5 &
$bin pub demo.ticks --addr $listen   (5 lines on stdin)
redis-cli -h ${resp%:*} -p ${resp##*:} SUBSCRIBE demo.redis &
redis-cli -h ${resp%:*} -p ${resp##*:} PUBLISH demo.redis "hello from redis-cli"
echo "hello from the native protocol" | $bin pub demo.redis --addr $listen
TXT
    exit 0
fi

cargo build --release --quiet
$bin serve --listen "$listen" --ws-listen "$ws" --resp-listen "$resp" &
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

# The Redis front: redis-cli subscribes; redis-cli and the native client publish.
rhost=${resp%:*} rport=${resp##*:}
if command -v redis-cli >/dev/null 2>&1; then
    out=$(mktemp)
    redis-cli -h "$rhost" -p "$rport" SUBSCRIBE demo.redis >"$out" &
    rsub=$!
    # Publish once the subscription is confirmed (its count appears).
    for _ in $(seq 1 100); do [ "$(wc -l <"$out")" -ge 3 ] && break; sleep 0.05; done
    echo "+ redis-cli -p $rport PUBLISH demo.redis \"hello from redis-cli\"   (receivers:)" >&2
    redis-cli -h "$rhost" -p "$rport" PUBLISH demo.redis "hello from redis-cli" >&2
    echo "hello from the native protocol" | $bin pub demo.redis --addr "$listen" 2>/dev/null
    for _ in $(seq 1 100); do [ "$(wc -l <"$out")" -ge 9 ] && break; sleep 0.05; done
    kill $rsub 2>/dev/null; wait $rsub 2>/dev/null || true
    echo "+ redis-cli -p $rport SUBSCRIBE demo.redis printed:" >&2
    sed 's/^/    /' "$out" >&2
    rm -f "$out"
else
    echo "demo.sh: redis-cli not found (apt-get install redis-tools) to see the Redis front on $resp" >&2
fi

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
  redis-cli -p $rport SUBSCRIBE demo.ticks / redis-cli -p $rport PUBLISH demo.ticks hi   (Redis front on $resp)
  curl http://$ws/metrics   (Prometheus counters)   curl http://$ws/healthz
TXT
    wait $server
fi
