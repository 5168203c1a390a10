#!/usr/bin/env bash
# resp-clients-setup.sh: installs the Redis client libraries that
# crates/ringcast/tests/resp_clients.rs runs against ringcast's RESP front.
#
# Usage: bash scripts/resp-clients-setup.sh
#
#   target/resp-clients/venv        a Python venv (python3 -m venv, Debian's
#                                   python3-venv) with redis-py as pinned in
#                                   tests/clients/python/requirements.txt
#   tests/clients/node/node_modules ioredis as pinned in
#                                   tests/clients/node/package-lock.json (npm ci)
#
# Idempotent: each part is redone only when its pins changed since it was
# installed (a stamp holds a copy of the pin file), so a second run takes well
# under a second. Needs /usr/bin/python3 with venv (or RINGCAST_SETUP_PYTHON),
# node and npm, and the PyPI and npm registries. redis-cli (redis-tools) is
# used as installed, not here.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${RINGCAST_SETUP_PYTHON:-/usr/bin/python3}
venv=target/resp-clients/venv
req=tests/clients/python/requirements.txt
node_dir=tests/clients/node

# redis-py in a venv.
stamp=$venv/.ringcast-requirements
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$stamp" 2>/dev/null \
    && "$venv/bin/python" -c 'import redis' 2>/dev/null; then
    echo "resp-clients-setup: $venv up to date" >&2
else
    # Debian's python3 has venv but not ensurepip (which venv needs for pip)
    # without python3-venv.
    if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "resp-clients-setup: $py cannot create a venv with pip (apt-get install python3-venv)" >&2
        exit 1
    fi
    echo "+ $py -m venv $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv"
    echo "+ $venv/bin/pip install -r $req" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
    "$venv/bin/python" -c 'import redis; print("resp-clients-setup: redis-py", redis.__version__)' >&2
    cp "$req" "$stamp"
fi

# ioredis in node_modules.
stamp=$node_dir/node_modules/.ringcast-package-lock
if [ -d "$node_dir/node_modules/ioredis" ] && cmp -s "$node_dir/package-lock.json" "$stamp" 2>/dev/null; then
    echo "resp-clients-setup: $node_dir/node_modules up to date" >&2
else
    for tool in node npm; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "resp-clients-setup: $tool not found (apt-get install nodejs npm)" >&2
            exit 1
        }
    done
    echo "+ (cd $node_dir && npm ci)" >&2
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$node_dir/package-lock.json" "$stamp"
fi
