#!/usr/bin/env python3
"""redis-py's asyncio client (redis.asyncio) and its PubSub against a Redis-compatible server.

Usage: python async_pubsub.py HOST:PORT [--protocol 2|3]

Steps (each on its own connections and channels; all run, failures listed at
the end, exit 1 if any):
  commands        PING, ECHO (binary), CLIENT SETNAME/GETNAME, PUBLISH to nobody
  get_message     SUBSCRIBE two channels; a publisher task sends 200 binary
                  messages while the subscriber reads them with get_message(timeout=)
                  (exact, in order; each PUBLISH answers 1); UNSUBSCRIBE with counts
  listen          `async for` over listen(): confirmation, 200 messages, UNSUBSCRIBE
  callbacks       PSUBSCRIBE/SUBSCRIBE with a coroutine and a plain callback driven
                  by PubSub.run() in a task; PUBLISH answers 2 for a channel both
                  match, the message callback runs before the pattern one
  health_check    health_check_interval=1 in subscribed mode: the PINGs redis-py
                  sends and their replies are swallowed; PING in subscribed mode
  introspection   PUBLISH counts, PUBSUB CHANNELS / NUMSUB / NUMPAT
  utf8_channel    a channel with spaces and UTF-8 (decode_responses=True)
Not here: sharded pub/sub (redis.asyncio's PubSub has no ssubscribe in redis-py
5.x; sync_pubsub.py covers it).
"""

import asyncio
import time

import redis.asyncio as aredis

from common import QUIET, TIMEOUT, Mismatch, Run, expect, expect_true, parse_args, payloads


def msg(kind, channel, data, pattern=None):
    return {"type": kind, "pattern": pattern, "channel": channel, "data": data}


def b(s):
    return s.encode() if isinstance(s, str) else s


def text(v):
    return v.decode() if isinstance(v, bytes) else v


class Steps:
    def __init__(self, run):
        self.run = run
        self.a = run.args

    def client(self, **kw):
        kw.setdefault("socket_timeout", TIMEOUT)
        kw.setdefault("socket_connect_timeout", TIMEOUT)
        return aredis.Redis(host=self.a.host, port=self.a.port, protocol=self.a.protocol, **kw)

    async def next(self, p, what):
        m = await p.get_message(timeout=TIMEOUT)
        if m is None:
            raise Mismatch(f"{what}: nothing arrived within {TIMEOUT} s")
        return m

    async def quiet(self, p, what):
        expect(f"{what}: nothing more", None, await p.get_message(timeout=QUIET))

    async def commands(self):
        r = self.client()
        expect("PING", True, await r.ping())
        for data in [b"a\x00b\xff\r\nc", b"", "h\u00e9llo \u2713".encode()]:
            expect(f"ECHO {data!r}", data, await r.echo(data))
        expect("CLIENT SETNAME", True, await r.client_setname("ringcast-aio"))
        expect("CLIENT GETNAME", "ringcast-aio", text(await r.client_getname()))
        ch = self.run.ch("nobody")
        expect("PUBLISH to nobody", 0, await r.publish(ch, b"x"))
        await r.aclose()

    async def get_message(self):
        c1, c2 = self.run.ch("gm.one"), self.run.ch("gm.two")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        await p.subscribe(c1, c2)
        expect("first confirmation", msg("subscribe", b(c1), 1), await self.next(p, "confirmation"))
        expect("second confirmation", msg("subscribe", b(c2), 2), await self.next(p, "confirmation"))
        data = payloads(200, b"agm")
        chans = [c1 if i % 2 == 0 else c2 for i in range(200)]

        async def publisher():
            return [await pub.publish(c, d) for c, d in zip(chans, data)]

        async def reader():
            return [await self.next(p, f"message #{i}") for i in range(200)]

        answers, got = await asyncio.gather(publisher(), reader())
        expect("PUBLISH answers", [1] * 200, answers)
        for i, (c, d, m) in enumerate(zip(chans, data, got)):
            expect(f"message #{i}", msg("message", b(c), d), m)
        await self.quiet(p, "after 200 messages")
        await p.unsubscribe(c1)
        expect("UNSUBSCRIBE one", msg("unsubscribe", b(c1), 1), await self.next(p, "confirmation"))
        await p.unsubscribe()
        expect("UNSUBSCRIBE all", msg("unsubscribe", b(c2), 0), await self.next(p, "confirmation"))
        await p.aclose()
        await sub.aclose()
        await pub.aclose()

    async def listen(self):
        ch = self.run.ch("listen")
        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        await p.subscribe(ch)
        data = payloads(200, b"alisten")
        got = []
        async with asyncio.timeout(TIMEOUT * 2):
            async for m in p.listen():
                got.append(m)
                if len(got) == 1:
                    expect("confirmation from listen()", msg("subscribe", b(ch), 1), m)
                    for i, d in enumerate(data):
                        expect(f"PUBLISH #{i} answer", 1, await pub.publish(ch, d))
                elif len(got) == 201:
                    await p.unsubscribe()
                elif len(got) == 202:
                    expect("UNSUBSCRIBE from listen()", msg("unsubscribe", b(ch), 0), m)
        expect("items from listen() before it ended", 202, len(got))
        for i, (d, m) in enumerate(zip(data, got[1:201])):
            expect(f"message #{i}", msg("message", b(ch), d), m)
        await p.aclose()
        await sub.aclose()
        await pub.aclose()

    async def callbacks(self):
        pre = self.run.prefix
        pat, direct = pre + "cb.*", pre + "cb.direct"
        n = 100
        events = []
        done = asyncio.Event()

        async def on_pattern(m):
            events.append(("pattern", m))
            if len(events) == n + 2:
                done.set()

        def on_direct(m):
            events.append(("direct", m))
            if len(events) == n + 2:
                done.set()

        sub, pub = self.client(), self.client()
        p = sub.pubsub()
        await p.psubscribe(**{pat: on_pattern})
        expect("PSUBSCRIBE confirmation", msg("psubscribe", b(pat), 1), await self.next(p, "confirmation"))
        await p.subscribe(**{direct: on_direct})
        expect("SUBSCRIBE confirmation", msg("subscribe", b(direct), 2), await self.next(p, "confirmation"))
        errors = []
        task = asyncio.create_task(p.run(exception_handler=lambda e, _: errors.append(e), poll_timeout=0.2))
        try:
            data = payloads(n, b"acb")
            chans = [pre + "cb.%d" % (i % 4) for i in range(n)]
            for i, (c, d) in enumerate(zip(chans, data)):
                expect(f"PUBLISH #{i} answer", 1, await pub.publish(c, d))
            expect("PUBLISH to a channel matched twice", 2, await pub.publish(direct, b"both"))
            try:
                await asyncio.wait_for(done.wait(), TIMEOUT)
            except TimeoutError:
                pass
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        expect("errors in PubSub.run()", [], [repr(e) for e in errors])
        expected = [("pattern", msg("pmessage", b(c), d, b(pat))) for c, d in zip(chans, data)]
        expected += [("direct", msg("message", b(direct), b"both")), ("pattern", msg("pmessage", b(direct), b"both", b(pat)))]
        expect("callback count", len(expected), len(events))
        for i, (e, g) in enumerate(zip(expected, events)):
            expect(f"callback #{i}", e, g)
        await p.aclose()
        await sub.aclose()
        await pub.aclose()

    async def health_check(self):
        ch = self.run.ch("hc")
        sub, pub = self.client(health_check_interval=1), self.client(health_check_interval=1)
        p = sub.pubsub()
        await p.subscribe(ch)
        expect("SUBSCRIBE confirmation", msg("subscribe", b(ch), 1), await self.next(p, "confirmation"))
        conn = p.connection
        sent = []
        orig = conn.send_command

        async def counting(*args, **kw):
            if args[:2] == ("PING", p.HEALTH_CHECK_MESSAGE):
                sent.append(time.monotonic())
            return await orig(*args, **kw)

        conn.send_command = counting
        end = time.monotonic() + 4.5
        while len(sent) < 2 and time.monotonic() < end:
            expect("get_message while only health checks flow", None, await p.get_message(timeout=0.5))
        expect_true("redis-py sent health-check PINGs", len(sent) >= 2, f"{len(sent)} sent")
        expect("PUBLISH answer after health checks", 1, await pub.publish(ch, b"after health checks"))
        expect("message after health checks", msg("message", b(ch), b"after health checks"), await self.next(p, "message"))
        conn.health_check_interval = 0
        await self.quiet(p, "after the last health check")
        await p.ping("hc payload")
        expect("PING <msg> in subscribed mode", msg("pong", None, b"hc payload"), await self.next(p, "PONG"))
        await p.unsubscribe()
        expect("UNSUBSCRIBE", msg("unsubscribe", b(ch), 0), await self.next(p, "confirmation"))
        await p.aclose()
        await sub.aclose()
        await pub.aclose()

    async def introspection(self):
        ch, pat = self.run.ch("intro.x"), self.run.prefix + "intro.*"
        pub = self.client()
        numpat0 = await pub.pubsub_numpat()
        clients = [self.client() for _ in range(3)]
        subs = [c.pubsub() for c in clients]
        for p in subs[:2]:
            await p.subscribe(ch)
            await self.next(p, "SUBSCRIBE confirmation")
        await subs[2].psubscribe(pat)
        await self.next(subs[2], "PSUBSCRIBE confirmation")
        expect("PUBLISH answer (2 subscribers + 1 pattern)", 3, await pub.publish(ch, b"three"))
        expect("PUBSUB CHANNELS", [b(ch)], await pub.pubsub_channels(self.run.prefix + "*"))
        expect("PUBSUB NUMSUB", [(b(ch), 2)], await pub.pubsub_numsub(ch))
        expect("PUBSUB NUMPAT", numpat0 + 1, await pub.pubsub_numpat())
        for p in subs[:2]:
            expect("message", msg("message", b(ch), b"three"), await self.next(p, "message"))
            await p.unsubscribe()
            await self.next(p, "UNSUBSCRIBE confirmation")
        expect("pmessage", msg("pmessage", b(ch), b"three", b(pat)), await self.next(subs[2], "pmessage"))
        await subs[2].punsubscribe()
        await self.next(subs[2], "PUNSUBSCRIBE confirmation")
        expect("PUBSUB NUMSUB after", [(b(ch), 0)], await pub.pubsub_numsub(ch))
        expect("PUBSUB NUMPAT after", numpat0, await pub.pubsub_numpat())
        for p, c in zip(subs, clients):
            await p.aclose()
            await c.aclose()
        await pub.aclose()

    async def utf8_channel(self):
        ch = self.run.prefix + "caf\u00e9 \u00fcber \u2713 \u9891\u9053"
        sub, pub = self.client(decode_responses=True), self.client(decode_responses=True)
        p = sub.pubsub()
        await p.subscribe(ch)
        expect("SUBSCRIBE confirmation", msg("subscribe", ch, 1), await self.next(p, "confirmation"))
        expect("PUBLISH answer", 1, await pub.publish(ch, "gr\u00fc\u00df dich"))
        expect("message", msg("message", ch, "gr\u00fc\u00df dich"), await self.next(p, "message"))
        expect("PUBSUB NUMSUB", [(ch, 1)], await pub.pubsub_numsub(ch))
        await p.aclose()
        await sub.aclose()
        await pub.aclose()


def main():
    a = parse_args(__doc__.splitlines()[1])
    run = Run("async_pubsub", a)
    s = Steps(run)
    for name in ["commands", "get_message", "listen", "callbacks", "health_check", "introspection", "utf8_channel"]:
        run.step(name, lambda n=name: asyncio.run(asyncio.wait_for(getattr(s, n)(), 4 * TIMEOUT)))
    run.finish()


if __name__ == "__main__":
    main()
