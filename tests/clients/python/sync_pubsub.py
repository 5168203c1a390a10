#!/usr/bin/env python3
"""redis-py's synchronous client and PubSub against a Redis-compatible server.

Usage: python sync_pubsub.py HOST:PORT [--protocol 2|3]

Steps (each on its own connections and channels; all run, failures listed at
the end, exit 1 if any):
  commands        PING, ECHO (binary), PING <msg>, CLIENT SETNAME/GETNAME (also
                  via client_name=), PUBLISH to nobody is 0, PUBSUB on nothing
  get_message     SUBSCRIBE two channels, 200 binary messages (NUL, 0xff, CR LF,
                  up to 5 KB) alternating between them, exact and in order; each
                  PUBLISH answers 1; UNSUBSCRIBE one, then all, with their counts
  listen          listen(): confirmation, 200 messages, unsubscribe, generator ends
  utf8_channel    a channel and a pattern with spaces and UTF-8 (decode_responses)
  patterns        PSUBSCRIBE with callbacks dispatched by get_message(), glob
                  patterns (*, ?, [ab]), a channel matched by both a SUBSCRIBE and
                  a PSUBSCRIBE (PUBLISH answers 2, message before pmessage),
                  PUNSUBSCRIBE one and all
  run_in_thread   a pattern callback driven by run_in_thread(), 200 messages
  health_check    health_check_interval=1 in subscribed mode: redis-py's PINGs and
                  their replies (RESP2: the ["pong", msg] array) are swallowed;
                  PING with and without a message in subscribed mode; an idle
                  publisher's health-check PING outside subscribed mode
  introspection   PUBLISH counts with 2 subscribers + 1 pattern, PUBSUB CHANNELS,
                  NUMSUB, NUMPAT before, during and after
  large           four 256 KiB binary messages
  sharded         SSUBSCRIBE / SPUBLISH / get_sharded_message / PUBSUB SHARDCHANNELS,
                  SHARDNUMSUB / SUNSUBSCRIBE
  sharded_apart   sharded and plain channels of one name do not mix (as in Redis)
"""

import threading
import time

import redis

from common import QUIET, TIMEOUT, Mismatch, Run, expect, expect_true, parse_args, payloads


def msg(kind, channel, data, pattern=None):
    return {"type": kind, "pattern": pattern, "channel": channel, "data": data}


def text(v):
    """redis-py's RESP2 callbacks decode some replies that its RESP3 ones leave as bytes."""
    return v.decode() if isinstance(v, bytes) else v


def b(s):
    return s.encode() if isinstance(s, str) else s


class Steps:
    def __init__(self, run):
        self.run = run
        self.a = run.args

    def client(self, **kw):
        kw.setdefault("socket_timeout", TIMEOUT)
        kw.setdefault("socket_connect_timeout", TIMEOUT)
        return redis.Redis(host=self.a.host, port=self.a.port, protocol=self.a.protocol, **kw)

    def next(self, p, what):
        m = p.get_message(timeout=TIMEOUT)
        if m is None:
            raise Mismatch(f"{what}: nothing arrived within {TIMEOUT} s")
        return m

    def quiet(self, p, what):
        m = p.get_message(timeout=QUIET)
        expect(f"{what}: nothing more", None, m)

    # -- steps ------------------------------------------------------------
    def commands(self):
        r = self.client()
        expect("PING", True, r.ping())
        for data in [b"a\x00b\xff\r\nc", b"", "h\u00e9llo \u2713".encode()]:
            expect(f"ECHO {data!r}", data, r.echo(data))
        raw = self.client()
        raw.set_response_callback("PING", lambda x, **_: x)
        expect("PING with a message", b"hi there", raw.execute_command("PING", "hi there"))
        expect("CLIENT SETNAME", True, r.client_setname("ringcast-py"))
        expect("CLIENT GETNAME", "ringcast-py", text(r.client_getname()))
        named = self.client(client_name="py-named")
        expect("CLIENT GETNAME after client_name=", "py-named", text(named.client_getname()))
        fresh = self.client()
        expect("CLIENT GETNAME on an unnamed connection", None, fresh.client_getname())
        ch = self.run.ch("nobody")
        expect("PUBLISH to a channel nobody subscribes to", 0, r.publish(ch, b"x"))
        expect("PUBSUB NUMSUB of that channel", [(b(ch), 0)], r.pubsub_numsub(ch))
        expect("PUBSUB CHANNELS under this run's prefix", [], r.pubsub_channels(self.run.prefix + "*"))
        for c in (r, raw, named, fresh):
            c.close()

    def get_message(self):
        c1, c2 = self.run.ch("gm.one"), self.run.ch("gm.two")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.subscribe(c1, c2)
        expect("first confirmation", msg("subscribe", b(c1), 1), self.next(p, "SUBSCRIBE confirmation"))
        expect("second confirmation", msg("subscribe", b(c2), 2), self.next(p, "SUBSCRIBE confirmation"))
        expect("PUBSUB NUMSUB", [(b(c1), 1), (b(c2), 1)], pub.pubsub_numsub(c1, c2))
        data = payloads(200, b"gm")
        chans = [c1 if i % 2 == 0 else c2 for i in range(200)]
        for i, (c, d) in enumerate(zip(chans, data)):
            expect(f"PUBLISH #{i} answer", 1, pub.publish(c, d))
        for i, (c, d) in enumerate(zip(chans, data)):
            expect(f"message #{i}", msg("message", b(c), d), self.next(p, f"message #{i}"))
        self.quiet(p, "after 200 messages")
        p.unsubscribe(c1)
        expect("UNSUBSCRIBE one", msg("unsubscribe", b(c1), 1), self.next(p, "UNSUBSCRIBE confirmation"))
        expect("PUBLISH to the unsubscribed channel", 0, pub.publish(c1, b"gone"))
        expect("PUBLISH to the other", 1, pub.publish(c2, b"still"))
        expect("message after UNSUBSCRIBE", msg("message", b(c2), b"still"), self.next(p, "message"))
        p.unsubscribe()
        expect("UNSUBSCRIBE all", msg("unsubscribe", b(c2), 0), self.next(p, "UNSUBSCRIBE confirmation"))
        expect("subscribed after UNSUBSCRIBE all", False, p.subscribed)
        expect("PUBSUB NUMSUB after", [(b(c1), 0), (b(c2), 0)], pub.pubsub_numsub(c1, c2))
        p.close()
        pub.close()

    def listen(self):
        ch = self.run.ch("listen")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.subscribe(ch)
        it = p.listen()
        expect("confirmation from listen()", msg("subscribe", b(ch), 1), next(it))
        data = payloads(200, b"listen")
        for i, d in enumerate(data):
            expect(f"PUBLISH #{i} answer", 1, pub.publish(ch, d))
        for i, d in enumerate(data):
            expect(f"message #{i} from listen()", msg("message", b(ch), d), next(it))
        p.unsubscribe()
        expect("UNSUBSCRIBE from listen()", msg("unsubscribe", b(ch), 0), next(it))
        expect("listen() ends once unsubscribed", "ended", next(it, "ended"))
        p.close()
        pub.close()

    def utf8_channel(self):
        ch = self.run.prefix + "news flash \u2014 \u00fcn\u00efc\u00f8d\u00e9 \u2713 \u9891\u9053"
        pat = self.run.prefix + "news flash \u2014 *"
        sub, pub = self.client(decode_responses=True), self.client(decode_responses=True)
        p = sub.pubsub()
        p.subscribe(ch)
        expect("SUBSCRIBE confirmation", msg("subscribe", ch, 1), self.next(p, "SUBSCRIBE confirmation"))
        p.psubscribe(pat)
        expect("PSUBSCRIBE confirmation", msg("psubscribe", pat, 2), self.next(p, "PSUBSCRIBE confirmation"))
        text = "h\u00e9llo w\u00f6rld \u2713"
        expect("PUBLISH answer", 2, pub.publish(ch, text))
        expect("message", msg("message", ch, text), self.next(p, "message"))
        expect("pmessage", msg("pmessage", ch, text, pat), self.next(p, "pmessage"))
        expect("PUBSUB CHANNELS", [ch], pub.pubsub_channels(self.run.prefix + "news*"))
        expect("PUBSUB NUMSUB", [(ch, 1)], pub.pubsub_numsub(ch))
        p.unsubscribe(ch)
        expect("UNSUBSCRIBE", msg("unsubscribe", ch, 1), self.next(p, "UNSUBSCRIBE confirmation"))
        p.punsubscribe(pat)
        expect("PUNSUBSCRIBE", msg("punsubscribe", pat, 0), self.next(p, "PUNSUBSCRIBE confirmation"))
        p.close()
        pub.close()

    def patterns(self):
        pre = self.run.prefix
        news, hello, xz = pre + "news.*", pre + "h?llo", pre + "x[ab]z"
        direct = pre + "news.direct"
        events = []
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.psubscribe(**{news: lambda m: events.append(("news handler", m))})
        expect("PSUBSCRIBE news.*", msg("psubscribe", b(news), 1), self.next(p, "confirmation"))
        p.psubscribe(hello, xz)
        expect("PSUBSCRIBE h?llo", msg("psubscribe", b(hello), 2), self.next(p, "confirmation"))
        expect("PSUBSCRIBE x[ab]z", msg("psubscribe", b(xz), 3), self.next(p, "confirmation"))
        p.subscribe(**{direct: lambda m: events.append(("direct handler", m))})
        expect("SUBSCRIBE news.direct", msg("subscribe", b(direct), 4), self.next(p, "confirmation"))
        pubs = [
            ("news.sport", 1),
            ("news.a.b", 1),
            ("news", 0),
            ("hello", 1),
            ("hallo", 1),
            ("hllo", 0),
            ("xaz", 1),
            ("xcz", 0),
            ("news.direct", 2),
        ]
        for i, (c, n) in enumerate(pubs):
            expect(f"PUBLISH to {c} answer", n, pub.publish(pre + c, b"m%d" % i))
        expected = [
            ("news handler", msg("pmessage", b(pre + "news.sport"), b"m0", b(news))),
            ("news handler", msg("pmessage", b(pre + "news.a.b"), b"m1", b(news))),
            ("returned", msg("pmessage", b(pre + "hello"), b"m3", b(hello))),
            ("returned", msg("pmessage", b(pre + "hallo"), b"m4", b(hello))),
            ("returned", msg("pmessage", b(pre + "xaz"), b"m6", b(xz))),
            ("direct handler", msg("message", b(direct), b"m8")),
            ("news handler", msg("pmessage", b(direct), b"m8", b(news))),
        ]
        # One get_message() reads one push: a callback's gets None back.
        for _ in expected:
            m = p.get_message(timeout=TIMEOUT)
            if m is not None:
                events.append(("returned", m))
        expect("messages and callbacks, in order", expected, events)
        self.quiet(p, "after the pattern messages")
        p.punsubscribe(news)
        expect("PUNSUBSCRIBE news.*", msg("punsubscribe", b(news), 3), self.next(p, "confirmation"))
        expect("PUBLISH to news.sport after PUNSUBSCRIBE", 0, pub.publish(pre + "news.sport", b"x"))
        p.punsubscribe()
        got = [self.next(p, "PUNSUBSCRIBE (all) confirmation") for _ in range(2)]
        expect("PUNSUBSCRIBE (all) patterns", {b(hello), b(xz)}, {m["channel"] for m in got})
        expect("PUNSUBSCRIBE (all) counts", [("punsubscribe", 2), ("punsubscribe", 1)], [(m["type"], m["data"]) for m in got])
        p.unsubscribe()
        expect("UNSUBSCRIBE (all)", msg("unsubscribe", b(direct), 0), self.next(p, "confirmation"))
        p.close()
        pub.close()

    def run_in_thread(self):
        pat = self.run.prefix + "rt.*"
        n = 200
        got, errors, done = [], [], threading.Event()

        def handler(m):
            got.append(m)
            if len(got) == n:
                done.set()

        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.psubscribe(**{pat: handler})
        expect("PSUBSCRIBE confirmation", msg("psubscribe", b(pat), 1), self.next(p, "confirmation"))
        t = p.run_in_thread(sleep_time=0.05, daemon=True, exception_handler=lambda e, *_: (errors.append(e), done.set()))
        try:
            data = payloads(n, b"rt")
            chans = [self.run.prefix + "rt.%d" % (i % 3) for i in range(n)]
            for i, (c, d) in enumerate(zip(chans, data)):
                expect(f"PUBLISH #{i} answer", 1, pub.publish(c, d))
            done.wait(TIMEOUT)
        finally:
            t.stop()
            t.join(TIMEOUT)
        expect("errors in the worker thread", [], [repr(e) for e in errors])
        expect_true("worker thread stopped", not t.is_alive())
        expect("message count", n, len(got))
        for i, (c, d, m) in enumerate(zip(chans, data, got)):
            expect(f"message #{i}", msg("pmessage", b(c), d, b(pat)), m)
        pub.close()

    def health_check(self):
        ch = self.run.ch("hc")
        sub = self.client(health_check_interval=1)
        pub = self.client(health_check_interval=1)
        p = sub.pubsub()
        p.subscribe(ch)
        expect("SUBSCRIBE confirmation", msg("subscribe", b(ch), 1), self.next(p, "confirmation"))
        conn = p.connection
        sent = []
        orig = conn.send_command

        def counting(*args, **kw):
            if args[:2] == ("PING", p.HEALTH_CHECK_MESSAGE):
                sent.append(time.monotonic())
            return orig(*args, **kw)

        conn.send_command = counting
        # Idle in subscribed mode until redis-py has sent two health-check PINGs
        # (one a second); their replies must be recognised and swallowed.
        end = time.monotonic() + 3 * 1.5
        while len(sent) < 2 and time.monotonic() < end:
            expect("get_message while only health checks flow", None, p.get_message(timeout=0.5))
        expect_true("redis-py sent health-check PINGs", len(sent) >= 2, f"{len(sent)} sent")
        # The publisher was idle for over a second too: its next command is
        # preceded by a health-check PING answered +PONG (not subscribed).
        expect("PUBLISH answer after health checks", 1, pub.publish(ch, b"after health checks"))
        m = self.next(p, "message after health checks")
        expect("message after health checks", msg("message", b(ch), b"after health checks"), m)
        conn.health_check_interval = 0
        self.quiet(p, "after the last health check")
        expect("health-check replies still owed", 0, p.health_check_response_counter)
        p.ping()
        expect("PING in subscribed mode", msg("pong", None, b""), self.next(p, "PONG"))
        p.ping("hc \x00 payload")
        expect("PING <msg> in subscribed mode", msg("pong", None, b"hc \x00 payload"), self.next(p, "PONG"))
        p.unsubscribe()
        expect("UNSUBSCRIBE", msg("unsubscribe", b(ch), 0), self.next(p, "confirmation"))
        p.close()
        pub.close()

    def introspection(self):
        ch = self.run.ch("intro.x")
        pat = self.run.prefix + "intro.*"
        none = self.run.ch("intro.none")
        pub = self.client()
        numpat0 = pub.pubsub_numpat()
        subs = [self.client().pubsub() for _ in range(3)]
        for p in subs[:2]:
            p.subscribe(ch)
            expect("SUBSCRIBE confirmation", msg("subscribe", b(ch), 1), self.next(p, "confirmation"))
        subs[2].psubscribe(pat)
        expect("PSUBSCRIBE confirmation", msg("psubscribe", b(pat), 1), self.next(subs[2], "confirmation"))
        expect("PUBLISH answer (2 subscribers + 1 pattern)", 3, pub.publish(ch, b"three"))
        for p in subs[:2]:
            expect("message", msg("message", b(ch), b"three"), self.next(p, "message"))
        expect("pmessage", msg("pmessage", b(ch), b"three", b(pat)), self.next(subs[2], "pmessage"))
        expect("PUBSUB CHANNELS <prefix>*", [b(ch)], pub.pubsub_channels(self.run.prefix + "*"))
        expect_true("PUBSUB CHANNELS (all) lists the channel", b(ch) in pub.pubsub_channels(), repr(pub.pubsub_channels()))
        expect("PUBSUB NUMSUB", [(b(ch), 2), (b(none), 0)], pub.pubsub_numsub(ch, none))
        expect("PUBSUB NUMSUB without channels", [], pub.pubsub_numsub())
        expect("PUBSUB NUMPAT", numpat0 + 1, pub.pubsub_numpat())
        for p in subs[:2]:
            p.unsubscribe()
            self.next(p, "UNSUBSCRIBE confirmation")
        subs[2].punsubscribe()
        self.next(subs[2], "PUNSUBSCRIBE confirmation")
        expect("PUBSUB NUMSUB after UNSUBSCRIBE", [(b(ch), 0)], pub.pubsub_numsub(ch))
        expect("PUBSUB CHANNELS after UNSUBSCRIBE", [], pub.pubsub_channels(self.run.prefix + "*"))
        expect("PUBSUB NUMPAT after PUNSUBSCRIBE", numpat0, pub.pubsub_numpat())
        expect("PUBLISH answer after all left", 0, pub.publish(ch, b"none"))
        for p in subs:
            p.close()
        pub.close()

    def large(self):
        ch = self.run.ch("large")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.subscribe(ch)
        self.next(p, "confirmation")
        data = [bytes((i * 31 + j * 7) % 256 for j in range(256 * 1024)) for i in range(4)]
        for d in data:
            expect("PUBLISH answer", 1, pub.publish(ch, d))
        for i, d in enumerate(data):
            m = self.next(p, f"large message #{i}")
            expect(f"large message #{i} channel/type", ("message", b(ch)), (m["type"], m["channel"]))
            expect_true(f"large message #{i} payload ({len(d)} bytes) unchanged", m["data"] == d, f"got {len(m['data'])} bytes")
        p.close()
        pub.close()

    def sharded(self):
        ch = self.run.ch("shard")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.ssubscribe(ch)
        expect("SSUBSCRIBE confirmation", msg("ssubscribe", b(ch), 1), self.next(p, "confirmation"))
        expect("PUBSUB SHARDNUMSUB", [(b(ch), 1)], pub.pubsub_shardnumsub(ch))
        expect("PUBSUB SHARDCHANNELS", [b(ch)], pub.pubsub_shardchannels(self.run.prefix + "*"))
        data = payloads(20, b"shard")
        for i, d in enumerate(data):
            expect(f"SPUBLISH #{i} answer", 1, pub.spublish(ch, d))
        for i, d in enumerate(data):
            m = p.get_sharded_message(timeout=TIMEOUT)
            expect(f"smessage #{i}", msg("smessage", b(ch), d), m)
        p.sunsubscribe(ch)
        expect("SUNSUBSCRIBE confirmation", msg("sunsubscribe", b(ch), 0), self.next(p, "confirmation"))
        expect("PUBSUB SHARDNUMSUB after", [(b(ch), 0)], pub.pubsub_shardnumsub(ch))
        p.close()
        pub.close()

    def sharded_apart(self):
        ch = self.run.ch("apart")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        p.ssubscribe(ch)
        self.next(p, "SSUBSCRIBE confirmation")
        expect("PUBLISH to a channel with only a shard subscriber", 0, pub.publish(ch, b"plain"))
        expect("SPUBLISH answer", 1, pub.spublish(ch, b"sharded"))
        expect("what the shard subscriber gets", msg("smessage", b(ch), b"sharded"), self.next(p, "smessage"))
        self.quiet(p, "the plain PUBLISH is not delivered to SSUBSCRIBE")
        p.close()
        pub.close()


def main():
    a = parse_args(__doc__.splitlines()[1])
    run = Run("sync_pubsub", a)
    s = Steps(run)
    for name in [
        "commands",
        "get_message",
        "listen",
        "utf8_channel",
        "patterns",
        "run_in_thread",
        "health_check",
        "introspection",
        "large",
        "sharded",
        "sharded_apart",
    ]:
        run.step(name, getattr(s, name))
    run.finish()


if __name__ == "__main__":
    main()
