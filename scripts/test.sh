#!/usr/bin/env bash
# test.sh: run every test ringcast has, installing what they need first.
#
# Usage: bash scripts/test.sh [--dry-run] [--no-install]
#   --no-install  do not apt-get install missing test tools (fail instead)
#   --dry-run     print what would run
#
# Runs:
#   cargo test --release         unit, property and loopback integration tests,
#                                including tests/browser.rs (headless Chromium
#                                loads the live page, subscribes, and shows a
#                                message published over native TCP), the Redis
#                                front against redis-server (byte for byte) and
#                                against redis-py, ioredis and redis-cli, and
#                                three nodes relaying through a real nats-server
#                                (one cut off from it by a network namespace:
#                                root and iproute2)
#   cargo test -p ringcast ...   the engine's core tests again in a debug build,
#                                where the frame pool counts every reference: an
#                                engine that stops with one outstanding fails
#   scripts/ws-interop.py        Python's `websockets` (an independent RFC 6455
#                                implementation) against the real daemon
#   scripts/chaos.sh 2           the fault suite, 2-second windows (about 60 s):
#                                a healthy subscriber beside each fault against
#                                the real daemon; fails on a lost or reordered
#                                frame, a dead daemon or leaked descriptors
#                                (docs/RELIABILITY.md)
#   scripts/miri.sh --optional   Miri over the frame pool, the mailbox and the
#                                in-memory core (about 4 minutes), when a nightly
#                                toolchain with miri is installed; skipped with a
#                                line otherwise (docs/RELIABILITY.md)
# `cargo test --release` also replays every fuzz corpus and regression input
# (fuzz/corpus, fuzz/regressions) through the fuzz targets' checks.
# Needs: cargo, and (installed from Debian when missing, as root) chromium,
# python3-websockets, redis-server, redis-tools, python3-venv, nodejs, npm,
# nats-server, iproute2 and openssl (certificates for the NATS TLS test);
# scripts/resp-clients-setup.sh puts redis-py in target/resp-clients/venv and
# ioredis in tests/clients/node/node_modules (pinned versions).
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0 install=1
for a in "$@"; do
    case "$a" in
        --dry-run) dry=1 ;;
        --no-install) install=0 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument $a (see --help)" >&2; exit 2 ;;
    esac
done

py=/usr/bin/python3
missing=()
command -v chromium >/dev/null 2>&1 || [ -n "${RINGCAST_CHROMIUM:-}" ] || missing+=(chromium)
{ [ -x "$py" ] && "$py" -c 'import websockets' 2>/dev/null; } || missing+=(python3 python3-websockets)
command -v redis-server >/dev/null 2>&1 || [ -n "${RINGCAST_REDIS_SERVER:-}" ] || missing+=(redis-server)
# Scale-out through NATS (crates/ringcast/tests/scaleout.rs)
command -v nats-server >/dev/null 2>&1 || [ -n "${RINGCAST_NATS_SERVER:-}" ] || missing+=(nats-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The Redis front against real Redis clients (crates/ringcast/tests/resp_clients.rs)
command -v redis-cli >/dev/null 2>&1 || [ -n "${RINGCAST_REDIS_CLI:-}" ] || missing+=(redis-tools)
"$py" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

run() {
    echo "+ $*" >&2
    [ "$dry" = 1 ] || "$@"
}

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$install" = 0 ]; then
        echo "test.sh: missing ${missing[*]}: install them (apt-get install ${missing[*]}) or drop --no-install" >&2
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh: missing ${missing[*]} and not root: run 'sudo apt-get install ${missing[*]}' first" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    run apt-get update -q
    run apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# redis-py (venv in target/resp-clients) and ioredis (tests/clients/node).
run bash scripts/resp-clients-setup.sh
run cargo test --release
# The frame leak check counts every frame reference in debug builds only:
# the engine's own tests once more, unoptimised, so a leak fails them.
run cargo test -p ringcast --lib --test roundtrip --test multicore_order --test slow_consumer \
    --test graceful_shutdown --test bad_input --test isolation_topics --test websocket \
    --test resp_front --test resp_clients
run cargo build --release --bin ringcast
run "$py" scripts/ws-interop.py --binary target/release/ringcast
run bash scripts/chaos.sh 2
run bash scripts/miri.sh --optional --skip-loom
