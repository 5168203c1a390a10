#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*).

Usage: python3 fuzz/seeds.py   (from the repository root; idempotent)

Seeds are small, valid inputs of each kind, so that libFuzzer starts from
the inside of each format; the first byte of each input is the target's
parameter byte (see ringcast_proto::fuzzing).
"""
import base64, hashlib, os, struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def frame(kind, topic=b"", fixed=b"", payload=b""):
    body = bytes([kind, 0]) + struct.pack("<H", len(topic)) + fixed + topic + payload
    return struct.pack("<I", len(body)) + body


# native: byte 0 bit 0 = server direction, bit 1 = max_frame 64.
client = [
    frame(1, b"news", payload=b"hello"),
    frame(2, b"news/sport"),
    frame(3, b"news/sport"),
    frame(4, payload=b"ping"),
    frame(5, payload=b"secret-token"),
]
server = [
    frame(0x10, b"news", struct.pack("<QQ", 7, 1_700_000_000_000_000_000), b"hello"),
    frame(0x12, b"news", struct.pack("<QQ", 8, 3)),
    frame(0x13, b"news"),
    frame(0x14, payload=b"ping"),
    frame(0x15),
    frame(0x16, b"news", payload=b"relay reconnected"),
    frame(0x1F, b"", struct.pack("<H", 8), b"bye"),
    frame(0x1F, b"secret", struct.pack("<H", 7), b"not allowed"),
]
for i, f in enumerate(client):
    put("native", f"client-{i}", b"\x00" + f)
put("native", "client-all", b"\x00" + b"".join(client))
put("native", "client-small-max", b"\x02" + b"".join(client))
for i, f in enumerate(server):
    put("native", f"server-{i}", b"\x01" + f)
put("native", "server-all", b"\x01" + b"".join(server))
put("native", "bad-len", b"\x00" + struct.pack("<I", 2) + b"\x01\x00\x00\x00")
put("native", "bad-topic", b"\x00" + frame(2, b"a\x00b"))


# ws_frame: byte 0 bit 0 = client role, bits 1-2 = message limit.
def ws(op, payload, fin=True, mask=b"\x11\x22\x33\x44"):
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        h += mask
    return h + payload


msgs = [
    ws(2, client[0]),
    ws(2, b"x" * 200),
    ws(2, b"part1", fin=False) + ws(9, b"p") + ws(0, b"part2"),
    ws(9, b"ping"),
    ws(10, b"pong"),
    ws(8, struct.pack(">H", 1000) + b"bye"),
    ws(8, b""),
    ws(1, b"text"),
]
for i, m in enumerate(msgs):
    put("ws_frame", f"server-{i}", b"\x06" + m)
put("ws_frame", "server-all", b"\x06" + b"".join(msgs))
put("ws_frame", "server-small", b"\x00" + b"".join(msgs))
put("ws_frame", "client-all", b"\x07" + b"".join(ws(2, p, mask=b"") for p in [b"a", b"b" * 300]) + ws(8, b"\x03\xe8", mask=b""))

key = b"dGhlIHNhbXBsZSBub25jZQ=="
upgrade = (b"GET /ws HTTP/1.1\r\nHost: localhost:7401\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ringcast.v1\r\n"
           b"Origin: https://example.com\r\n\r\n")
accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: ringcast.v1\r\n\r\n")
put("ws_handshake", "upgrade", b"\x00" + upgrade)
put("ws_handshake", "upgrade-origin", b"\x01" + upgrade)
put("ws_handshake", "upgrade-other-origin", b"\x01" + upgrade.replace(b"example.com", b"evil.test"))
put("ws_handshake", "no-key", b"\x00" + upgrade.replace(b"Sec-WebSocket-Key", b"X-Key"))
put("ws_handshake", "response", b"\x00" + response)
put("ws_handshake", "response-frames", b"\x00" + response + ws(2, b"x", mask=b""))
put("ws_handshake", "response-403", b"\x00HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

heads = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "metrics": b"GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nUser-Agent: curl/8\r\n\r\n",
    "head10": b"HEAD /healthz HTTP/1.0\r\n\r\n",
    "absolute": b"GET http://h:1/p?q HTTP/1.1\r\nHost: h:1\r\n\r\n",
    "options": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "body": b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    "http2": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "fold": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "upgrade": upgrade,
}
for name, h in heads.items():
    put("http", name, b"\x02" + h)
put("http", "small-max", b"\x00" + heads["metrics"])

# resp: byte 0 bits 0-1 = limits, bit 2 = small bulk limit for replies.
reqs = {
    "subscribe": b"*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n",
    "publish": b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
    "psubscribe": b"*3\r\n$10\r\nPSUBSCRIBE\r\n$3\r\nn*s\r\n$5\r\n[a-z]\r\n",
    "inline": b"PING hello\r\nSUBSCRIBE \"a b\" 'c'\r\n",
    "hello3": b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
    "empty": b"*0\r\n\r\n*-1\r\n",
    "pipeline": b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n",
    "bad-dollar": b"*1\r\n:4\r\nPING\r\n",
    "quotes": b"SET \"a\\x41\\n\" b\r\n",
}
for name, r in reqs.items():
    put("resp", name, b"\x00" + r)
put("resp", "unauth", b"\x01" + reqs["publish"])
replies = {
    "simple": b"+OK\r\n-ERR no\r\n:42\r\n$5\r\nhello\r\n$-1\r\n",
    "message": b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
    "push3": b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
    "resp3": b"%1\r\n+a\r\n~2\r\n,1.5\r\n#t\r\n|1\r\n+k\r\n+v\r\n:1\r\n=8\r\ntxt:abcd\r\n(123\r\n_\r\n!3\r\nERR\r\n",
}
for name, r in replies.items():
    put("resp", "reply-" + name, b"\x04" + r)

# glob: byte 0 = pattern length.
globs = [
    (b"news.*", b"news.sport"), (b"h?llo", b"hello"), (b"h[ae]llo", b"hallo"),
    (b"h[^e]llo", b"hallo"), (b"h[a-b]llo", b"hbllo"), (b"a\\*b", b"a*b"),
    (b"*a*b*c*", b"xaybzc"), (b"[]a]", b"]a"), (b"[a-\\]", b"\\"), (b"*", b""),
    (b"[\\]]", b"]"), (b"[z-a", b"q"), (b"a\\", b"a\\"), (b"*" * 20 + b"x", b"y" * 30),
]
for i, (p, s) in enumerate(globs):
    put("glob", str(i), bytes([len(p)]) + p + s)

# topics: byte 0 = cores (2 + b % 3), byte 1 = clients (2 + b % 8), then one
# schedule choice per byte (see crates/ringcast/src/core/tests.rs): random
# choices of a few lengths, reproducible.
import random
rng = random.Random(14)
for i in range(12):
    n = rng.choice([40, 120, 400, 1200])
    put("topics", str(i), bytes([i % 3, i % 8]) + bytes(rng.randrange(256) for _ in range(n)))
