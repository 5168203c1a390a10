"""Shared helpers for the redis-py scripts in this folder.

Each script checks one Redis client library's behaviour against a server that
speaks Redis's pub/sub (ringcast's RESP front, or a real redis-server while
developing). A script runs named steps; every step uses its own connections and
its own channel names (under a per-run prefix), so one failed step does not
hide the others. At the end it prints one line per failed step and
'N passed, N failed', and exits 1 if any step failed (2 on bad usage).
"""

import argparse
import gc
import logging
import os
import sys
import time
import traceback

# redis-py logs every RESP3 push it reads (at INFO, to stderr) unless this
# logger exists already: keep the output to the checks.
logging.getLogger("push_response").setLevel(logging.WARNING)

# Longest wait for any one reply or message; a hang fails instead of blocking.
TIMEOUT = 10.0
# How long "nothing more arrives" is watched for after the expected messages.
QUIET = 0.3


class Mismatch(Exception):
    """A check failed: what was expected and what was seen."""


def parse_args(description, extra=None):
    """ADDR (host:port) and --protocol 2|3, plus a script's own options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("addr", help="server address, HOST:PORT")
    p.add_argument("--protocol", type=int, choices=(2, 3), default=2)
    if extra:
        extra(p)
    a = p.parse_args()
    host, _, port = a.addr.rpartition(":")
    if not host or not port.isdigit():
        p.error(f"address {a.addr!r} is not HOST:PORT")
    a.host, a.port = host.strip("[]"), int(port)
    return a


def expect(what, expected, seen):
    """Fails with both values when `seen` differs from `expected`."""
    if seen != expected:
        raise Mismatch(f"{what}: expected {expected!r}, seen {seen!r}")


def expect_true(what, cond, detail=""):
    if not cond:
        raise Mismatch(f"{what}{': ' + detail if detail else ''}")


def payloads(n, tag):
    """n distinct payloads: empty, NUL, 0xff, CR LF, RESP-looking text, UTF-8, sizes 0..~5000."""
    special = [
        b"",
        b"\x00",
        b"\xff",
        b"\x00\xff\x00\xff",
        b"\r\n",
        b"*2\r\n$3\r\nfoo\r\n",
        "caf\u00e9 \u2713".encode(),
        bytes(range(256)),
    ]
    out = special[:n]
    for i in range(len(out), n):
        out.append(tag + b"#%d:" % i + bytes((i * 7 + j) % 256 for j in range(i * 23 % 5000)))
    return out


class Run:
    """Runs steps, keeps going after a failed one, summarises at the end."""

    def __init__(self, name, args, label=None):
        self.name = name
        self.label = label or f"{name} (protocol {args.protocol})"
        self.args = args
        self.passed = []
        self.failed = []
        # Channel names unique to this run (several runs may share a server).
        self.prefix = f"{name}.p{args.protocol}.{os.getpid()}.{int(time.time() * 1000) % 100000}."

    def ch(self, suffix):
        return self.prefix + suffix

    def step(self, title, fn, *fn_args):
        t0 = time.monotonic()
        try:
            fn(*fn_args)
        except Mismatch as e:
            self.failed.append((title, str(e)))
            print(f"FAIL {self.name} [{title}] {e}", flush=True)
        except Exception as e:  # noqa: BLE001 - every library error is a failure to report
            tb = traceback.format_exc(limit=-3)
            self.failed.append((title, f"{type(e).__name__}: {e}"))
            print(f"FAIL {self.name} [{title}] {type(e).__name__}: {e}\n{tb}", flush=True)
        else:
            self.passed.append(title)
            print(f"ok   {self.name} [{title}] ({time.monotonic() - t0:.2f} s)", flush=True)
            return
        # A failed step may leave connections (and their subscriptions) open
        # until collected: close them before the next step counts the
        # server's channels and patterns.
        gc.collect()

    def finish(self):
        summary = f"{self.label} against {self.args.addr}: "
        if self.failed:
            print(f"\n{summary}{len(self.failed)} step(s) failed:", flush=True)
            for title, why in self.failed:
                first = why.splitlines()[0] if why else ""
                if len(first) > 400:
                    first = first[:400] + "..."
                print(f"  - [{title}] {first}", flush=True)
        print(f"{summary}{len(self.passed)} passed, {len(self.failed)} failed", flush=True)
        sys.exit(1 if self.failed else 0)
