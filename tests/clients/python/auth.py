#!/usr/bin/env python3
"""redis-py's password= (AUTH, or HELLO 3 AUTH with protocol 3) against a server with tokens.

Usage: python auth.py HOST:PORT --publish-token TOKEN --subscribe-token TOKEN [--protocol 2|3]

Against ringcast both tokens are its publish_token and subscribe_token (the
same or different; an empty --subscribe-token '' means the server has only a
publish token, so subscribing needs no password); against a redis-server with
`requirepass X`, pass X twice.

Steps (each on its own connections; all run, failures listed at the end):
  wrong_password  password= a wrong token: redis-py raises AuthenticationError
  with_tokens     subscriber with password=<subscribe token> SUBSCRIBEs, a
                  publisher with password=<publish token> PUBLISHes (answer 1),
                  the message arrives exact; also username="default" (AUTH
                  default TOKEN) and the asyncio client
  no_password     without a password PUBLISH raises AuthenticationError (NOAUTH)
                  and SUBSCRIBE's reply does too; nothing is delivered. With an
                  empty subscribe token, SUBSCRIBE without a password works
                  instead (RESP3 too: HELLO 3 without AUTH is accepted)
  rights_apart    only when the tokens differ: the publish token does not grant
                  SUBSCRIBE and the subscribe token does not grant PUBLISH
                  (AuthenticationError or NoPermissionError)
"""

import asyncio

import redis
import redis.asyncio as aredis

from common import QUIET, TIMEOUT, Mismatch, Run, expect, expect_true, parse_args


def msg(kind, channel, data, pattern=None):
    return {"type": kind, "pattern": pattern, "channel": channel, "data": data}


def b(s):
    return s.encode() if isinstance(s, str) else s


def options(p):
    p.add_argument("--publish-token", required=True)
    p.add_argument("--subscribe-token", required=True)


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

    def sub_password(self):
        """The subscriber's password= (None when subscribing is open)."""
        return self.a.subscribe_token or None

    def subscribed(self, ch, **kw):
        p = self.client(**kw).pubsub()
        p.subscribe(ch)
        expect("SUBSCRIBE confirmation", msg("subscribe", b(ch), 1), self.next(p, "confirmation"))
        return p

    def refused(self, what, fn, classes=(redis.AuthenticationError,)):
        try:
            got = fn()
        except classes as e:
            print(f"     {what}: {type(e).__name__}: {e}", flush=True)
            return
        except redis.RedisError as e:
            raise Mismatch(f"{what}: expected {' or '.join(c.__name__ for c in classes)}, got {type(e).__name__}: {e}")
        raise Mismatch(f"{what}: expected {' or '.join(c.__name__ for c in classes)}, got the answer {got!r}")

    def wrong_password(self):
        bad = "wrong-" + self.a.publish_token
        self.refused("PING with a wrong password", lambda: self.client(password=bad).ping())
        self.refused("PUBLISH with a wrong password", lambda: self.client(password=bad).publish(self.run.ch("w"), b"x"))

    def with_tokens(self):
        ch = self.run.ch("auth")
        p = self.subscribed(ch, password=self.sub_password())
        pub = self.client(password=self.a.publish_token)
        expect("PUBLISH answer", 1, pub.publish(ch, b"authorised \x00\xff"))
        expect("message", msg("message", b(ch), b"authorised \x00\xff"), self.next(p, "message"))
        named = self.client(username="default", password=self.a.publish_token)
        expect("PUBLISH answer (username default)", 1, named.publish(ch, b"as default"))
        expect("message", msg("message", b(ch), b"as default"), self.next(p, "message"))

        async def via_asyncio():
            r = aredis.Redis(host=self.a.host, port=self.a.port, protocol=self.a.protocol, password=self.a.publish_token, socket_timeout=TIMEOUT)
            n = await r.publish(ch, b"from asyncio")
            await r.aclose()
            return n

        expect("PUBLISH answer (asyncio)", 1, asyncio.run(via_asyncio()))
        expect("message", msg("message", b(ch), b"from asyncio"), self.next(p, "message"))
        expect("PING after AUTH", True, pub.ping())
        p.close()
        pub.close()
        named.close()

    def no_password(self):
        ch = self.run.ch("noauth")
        p = self.subscribed(ch, password=self.sub_password())
        self.refused("PUBLISH without a password", lambda: self.client().publish(ch, b"forged"))
        expect("a refused PUBLISH delivers nothing", None, p.get_message(timeout=QUIET))

        def subscribe():
            q = self.client().pubsub()
            q.subscribe(self.run.ch("noauth.sub"))
            return q.get_message(timeout=TIMEOUT)

        if self.a.subscribe_token:
            self.refused("SUBSCRIBE without a password", subscribe)
        else:
            expect("SUBSCRIBE without a password (subscribing is open)", msg("subscribe", b(self.run.ch("noauth.sub")), 1), subscribe())
        p.close()

    def rights_apart(self):
        if self.a.publish_token == self.a.subscribe_token or not self.a.subscribe_token:
            print("     (one token for both rights, or open subscribing: nothing to check)", flush=True)
            return
        either = (redis.AuthenticationError, redis.exceptions.NoPermissionError)
        ch = self.run.ch("apart")

        def subscribe_with_publish_token():
            q = self.client(password=self.a.publish_token).pubsub()
            q.subscribe(ch)
            return q.get_message(timeout=TIMEOUT)

        self.refused("SUBSCRIBE with the publish token", subscribe_with_publish_token, either)
        p = self.subscribed(ch, password=self.sub_password())
        self.refused("PUBLISH with the subscribe token", lambda: self.client(password=self.a.subscribe_token).publish(ch, b"forged"), either)
        expect_true("nothing delivered", p.get_message(timeout=QUIET) is None)
        p.close()


def main():
    a = parse_args(__doc__.splitlines()[1], options)
    run = Run("auth", a)
    s = Steps(run)
    for name in ["wrong_password", "with_tokens", "no_password", "rights_apart"]:
        run.step(name, getattr(s, name))
    run.finish()


if __name__ == "__main__":
    main()
