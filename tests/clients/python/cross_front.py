#!/usr/bin/env python3
"""redis-py on one side of ringcast's shared topic namespace, a native client on the other.

Usage:
  python cross_front.py HOST:PORT [--protocol 2|3] publish TOPIC N
      A native client is already subscribed to TOPIC (and nothing else is):
      PUBSUB NUMSUB TOPIC must answer 1, then N PUBLISHes of payload(i), each
      answering 1 (the native subscriber counts).
  python cross_front.py HOST:PORT [--protocol 2|3] subscribe TOPIC N
      SUBSCRIBE TOPIC, print 'SUBSCRIBED' once the confirmation arrived, then
      expect exactly payload(0..N) on TOPIC, in order, published natively.

payload(i) = b"xfront %d " % i + bytes([0, 255, i % 256]) + b"." * (i % 50)
(crates/ringcast/tests/resp_clients.rs builds the same bytes).
Exits 0 when everything matched, 1 with the first mismatch otherwise.
"""

import sys

import redis

from common import QUIET, TIMEOUT, Mismatch, Run, expect, parse_args


def payload(i):
    return b"xfront %d " % i + bytes([0, 255, i % 256]) + b"." * (i % 50)


def options(p):
    p.add_argument("mode", choices=("publish", "subscribe"))
    p.add_argument("topic")
    p.add_argument("n", type=int)


def client(a):
    return redis.Redis(host=a.host, port=a.port, protocol=a.protocol, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


def publish(a):
    r = client(a)
    topic = a.topic.encode()
    expect("PUBSUB NUMSUB of a topic with one native subscriber", [(topic, 1)], r.pubsub_numsub(a.topic))
    expect("PUBSUB CHANNELS lists the natively subscribed topic", [topic], r.pubsub_channels(a.topic))
    for i in range(a.n):
        expect(f"PUBLISH #{i} answer (one native subscriber)", 1, r.publish(a.topic, payload(i)))
    r.close()


def subscribe(a):
    p = client(a).pubsub()
    p.subscribe(a.topic)
    topic = a.topic.encode()
    expect("SUBSCRIBE confirmation", {"type": "subscribe", "pattern": None, "channel": topic, "data": 1}, p.get_message(timeout=TIMEOUT))
    print("SUBSCRIBED", flush=True)
    for i in range(a.n):
        m = p.get_message(timeout=TIMEOUT)
        if m is None:
            raise Mismatch(f"message #{i}: nothing arrived within {TIMEOUT} s")
        expect(f"message #{i}", {"type": "message", "pattern": None, "channel": topic, "data": payload(i)}, m)
    expect("nothing after the last message", None, p.get_message(timeout=QUIET))
    p.close()


def main():
    a = parse_args(__doc__.splitlines()[1], options)
    run = Run("cross_front", a)
    run.step(f"{a.mode} {a.topic} x{a.n}", publish if a.mode == "publish" else subscribe, a)
    run.finish()


if __name__ == "__main__":
    sys.exit(main())
