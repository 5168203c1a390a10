#!/usr/bin/env python3
"""redis-cli (Debian's redis-tools) against a Redis-compatible server: its stdout, byte for byte.

Usage: python redis_cli.py HOST:PORT [--redis-cli PATH] [--publish-token T --subscribe-token T]

Only the standard library: redis-cli runs as a subprocess and what it prints
is compared with what redis-cli 7 prints against redis-server 7. Its stdout is
a pipe here, so it prints in its raw format (one element per line, no
quoting) unless given --no-raw (the format a person sees on a terminal).

Steps (all run, failures listed at the end, exit 1 if any):
  ping            `redis-cli PING`, `-3 PING`, `PING msg`, `ECHO` with spaces
  subscribe       `redis-cli SUBSCRIBE a b` in the background; once both
                  confirmations are printed, 50 PUBLISHes through one
                  `redis-cli` reading commands on stdin (quotes, \\x00 and \\xff
                  escapes) and one `redis-cli PUBLISH b 'hello world'`; each
                  PUBLISH prints 1; the subscriber prints every message, in order
  subscribe_resp3 the same with `redis-cli -3` (RESP3 pushes)
  no_raw          `--no-raw SUBSCRIBE` and `-3 --no-raw SUBSCRIBE`: the terminal
                  format ("Reading messages...", 1) "message", escaped bytes)
  psubscribe      `PSUBSCRIBE news.*` in raw and --no-raw format
  pubsub          `PUBSUB NUMSUB`, `PUBSUB CHANNELS`, `PUBSUB NUMPAT` output
With tokens, the publishing redis-cli runs with `-a <publish token>` and the
subscribing one with `-a <subscribe token>` (plus --no-auth-warning).
"""

import os
import select
import subprocess
import time

from common import TIMEOUT, Mismatch, Run, expect, parse_args


def options(p):
    p.add_argument("--redis-cli", default=os.environ.get("RINGCAST_REDIS_CLI", "redis-cli"))
    p.add_argument("--publish-token")
    p.add_argument("--subscribe-token")


class Steps:
    def __init__(self, run):
        self.run = run
        self.a = run.args
        self.procs = []

    def base(self, token, *flags):
        cmd = [self.a.redis_cli, "-h", self.a.host, "-p", str(self.a.port), *flags]
        if token:
            cmd += ["-a", token, "--no-auth-warning"]
        return cmd

    def cli(self, *args, flags=(), token=None, stdin=None):
        """Runs redis-cli to completion; returns its stdout (bytes), failing on stderr or exit status."""
        if token is None:
            token = self.a.publish_token
        cmd = self.base(token, *flags) + list(args)
        r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT)
        if r.returncode != 0 or r.stderr:
            raise Mismatch(f"{' '.join(cmd)} exited {r.returncode}: stdout {r.stdout!r} stderr {r.stderr!r}")
        return r.stdout

    def subscriber(self, *args, flags=()):
        cmd = self.base(self.a.subscribe_token, *flags) + list(args)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def read_exactly(self, p, expected, what):
        """Reads the subscriber's stdout until it holds len(expected) bytes; they must be `expected`."""
        got = b""
        end = time.monotonic() + TIMEOUT
        while len(got) < len(expected):
            left = end - time.monotonic()
            if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                raise Mismatch(f"{what}: after {TIMEOUT} s expected {expected!r}, seen only {got!r}")
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                raise Mismatch(f"{what}: redis-cli ended (exit {p.wait()}); expected {expected!r}, seen {got!r}")
            got += chunk
            if not expected.startswith(got[: len(expected)]):
                break
        expect(what, expected, got)

    def quiet(self, p, what):
        if select.select([p.stdout], [], [], 0.3)[0]:
            expect(f"{what}: nothing more", b"", os.read(p.stdout.fileno(), 65536))

    def stop(self, p):
        p.kill()
        p.wait()
        p.stdout.close()
        self.procs.remove(p)

    def close(self):
        for p in list(self.procs):
            self.stop(p)

    # -- steps ------------------------------------------------------------
    def ping(self):
        expect("redis-cli PING", b"PONG\n", self.cli("PING"))
        expect("redis-cli -3 PING", b"PONG\n", self.cli("PING", flags=["-3"]))
        expect("redis-cli PING 'hi there'", b"hi there\n", self.cli("PING", "hi there"))
        expect("redis-cli ECHO 'a b  c'", b"a b  c\n", self.cli("ECHO", "a b  c"))
        expect("redis-cli --no-raw ECHO 'a b'", b'"a b"\n', self.cli("ECHO", "a b", flags=["--no-raw"]))

    def _subscribe(self, flags):
        a, b = self.run.ch("cli.a"), self.run.ch("cli.b")
        p = self.subscriber("SUBSCRIBE", a, b, flags=flags)
        self.read_exactly(p, f"subscribe\n{a}\n1\nsubscribe\n{b}\n2\n".encode(), "SUBSCRIBE confirmations")
        cmds, expected = [], b""
        for i in range(50):
            if i % 10 == 3:
                cmds.append(f'PUBLISH {a} "bin\\x00\\xff #{i}"')
                expected += f"message\n{a}\n".encode() + b"bin\x00\xff #%d\n" % i
            elif i % 10 == 7:
                cmds.append(f"PUBLISH {a} 'quoted \"text\" #{i}'")
                expected += f'message\n{a}\nquoted "text" #{i}\n'.encode()
            else:
                cmds.append(f"PUBLISH {a} msg-{i}")
                expected += f"message\n{a}\nmsg-{i}\n".encode()
        out = self.cli(stdin=("\n".join(cmds) + "\n").encode(), flags=flags)
        expect("50 PUBLISH answers from redis-cli reading stdin", b"1\n" * 50, out)
        expect("redis-cli PUBLISH b 'hello world'", b"1\n", self.cli("PUBLISH", b, "hello world", flags=flags))
        expected += f"message\n{b}\nhello world\n".encode()
        self.read_exactly(p, expected, "what the subscribing redis-cli printed")
        self.quiet(p, "subscriber")
        self.stop(p)

    def subscribe(self):
        self._subscribe([])

    def subscribe_resp3(self):
        self._subscribe(["-3"])

    def no_raw(self):
        for flags in (["--no-raw"], ["-3", "--no-raw"]):
            ch = self.run.ch("cli.noraw")
            p = self.subscriber("SUBSCRIBE", ch, flags=flags)
            self.read_exactly(
                p,
                f'Reading messages... (press Ctrl-C to quit)\n1) "subscribe"\n2) "{ch}"\n3) (integer) 1\n'.encode(),
                f"redis-cli {' '.join(flags)} SUBSCRIBE confirmation",
            )
            cmds = f'PUBLISH {ch} "hello world"\nPUBLISH {ch} "a\\x00b\\xff\\n"\nPUBLISH {ch} ""\n'
            expect("three PUBLISH answers", b"(integer) 1\n" * 3, self.cli(stdin=cmds.encode(), flags=flags))
            self.read_exactly(
                p,
                (
                    f'1) "message"\n2) "{ch}"\n3) "hello world"\n'
                    f'1) "message"\n2) "{ch}"\n3) "a\\x00b\\xff\\n"\n'
                    f'1) "message"\n2) "{ch}"\n3) ""\n'
                ).encode(),
                f"what `redis-cli {' '.join(flags)} SUBSCRIBE` printed",
            )
            self.stop(p)

    def psubscribe(self):
        pat = self.run.prefix + "news.*"
        ch = self.run.ch("news.sport")
        p = self.subscriber("PSUBSCRIBE", pat)
        self.read_exactly(p, f"psubscribe\n{pat}\n1\n".encode(), "PSUBSCRIBE confirmation")
        expect("PUBLISH to a matching channel", b"1\n", self.cli("PUBLISH", ch, "goal"))
        expect("PUBLISH to another", b"0\n", self.cli("PUBLISH", self.run.ch("weather"), "rain"))
        self.read_exactly(p, f"pmessage\n{pat}\n{ch}\ngoal\n".encode(), "what `redis-cli PSUBSCRIBE` printed")
        self.quiet(p, "psubscriber")
        self.stop(p)
        p = self.subscriber("PSUBSCRIBE", pat, flags=["--no-raw"])
        self.read_exactly(
            p,
            f'Reading messages... (press Ctrl-C to quit)\n1) "psubscribe"\n2) "{pat}"\n3) (integer) 1\n'.encode(),
            "--no-raw PSUBSCRIBE confirmation",
        )
        expect("PUBLISH", b"1\n", self.cli("PUBLISH", ch, "goal 2"))
        self.read_exactly(p, f'1) "pmessage"\n2) "{pat}"\n3) "{ch}"\n4) "goal 2"\n'.encode(), "what `redis-cli --no-raw PSUBSCRIBE` printed")
        self.stop(p)

    def pubsub(self):
        ch = self.run.ch("cli.intro")
        numpat0 = int(self.cli("PUBSUB", "NUMPAT"))
        p = self.subscriber("SUBSCRIBE", ch)
        self.read_exactly(p, f"subscribe\n{ch}\n1\n".encode(), "SUBSCRIBE confirmation")
        expect("redis-cli PUBSUB NUMSUB", f"{ch}\n1\n{ch}.none\n0\n".encode(), self.cli("PUBSUB", "NUMSUB", ch, ch + ".none"))
        expect("redis-cli --no-raw PUBSUB NUMSUB", f'1) "{ch}"\n2) (integer) 1\n'.encode(), self.cli("PUBSUB", "NUMSUB", ch, flags=["--no-raw"]))
        expect("redis-cli PUBSUB CHANNELS", f"{ch}\n".encode(), self.cli("PUBSUB", "CHANNELS", self.run.prefix + "*"))
        expect("redis-cli --no-raw PUBSUB CHANNELS (none)", b"(empty array)\n", self.cli("PUBSUB", "CHANNELS", self.run.prefix + "nothing*", flags=["--no-raw"]))
        expect("redis-cli PUBSUB NUMPAT", f"{numpat0}\n".encode(), self.cli("PUBSUB", "NUMPAT"))
        expect("redis-cli --no-raw PUBSUB NUMPAT", f"(integer) {numpat0}\n".encode(), self.cli("PUBSUB", "NUMPAT", flags=["--no-raw"]))
        self.stop(p)


def main():
    a = parse_args(__doc__.splitlines()[1], options)
    if (a.publish_token is None) != (a.subscribe_token is None):
        raise SystemExit("redis_cli.py: give both --publish-token and --subscribe-token, or neither")
    run = Run("redis_cli", a, label=f"redis-cli ({a.redis_cli})")
    s = Steps(run)
    try:
        for name in ["ping", "subscribe", "subscribe_resp3", "no_raw", "psubscribe", "pubsub"]:
            run.step(name, getattr(s, name))
            s.close()
    finally:
        s.close()
    run.finish()


if __name__ == "__main__":
    main()
