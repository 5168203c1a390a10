#!/usr/bin/env python3
# ws-interop.py: ringcast's WebSocket front against Python's `websockets`, an
# independent RFC 6455 implementation (Debian's python3-websockets, 10.4 or later).
#
# Usage:
#   /usr/bin/python3 scripts/ws-interop.py [--binary PATH]
#
#   --binary PATH  the ringcast binary to start (default target/release/ringcast,
#                  relative to the repository root)
#
# What it does (under a minute; exits 0 with a one-line summary, else nonzero
# with what went wrong and the daemon's log):
#   1. Picks two free loopback ports and starts `ringcast serve --cores 2` with
#      the native protocol on one and WebSocket on the other (again with new
#      ports if they were taken meanwhile); waits until the WebSocket port accepts.
#   2. A websockets client (subprotocol ringcast.v1) subscribes to a fresh topic;
#      a native-TCP publisher (plain sockets in this script) publishes 10,000
#      frames with distinct payloads of 16 B to 70 KB; the client must receive
#      all of them in one binary message each, byte-exact: the DATA frame's
#      len, kind, flags, topic and payload as rebuilt here, seq 1..10000 in
#      order, ts_ns a plausible CLOCK_REALTIME reading.
#   3. websockets publisher -> websockets subscriber: 200 PUBLISH messages,
#      some sent fragmented (RFC 6455 continuation frames), all delivered exact.
#   4. A WebSocket ping (websockets' ping()) is answered by a pong; a native
#      PING inside a binary message by a native PONG with the same bytes.
#   5. A text message gets close code 1003.
# The daemon is always stopped: SIGTERM, then SIGKILL after 5 s.
#
# Example:
#   cargo build --release && /usr/bin/python3 scripts/ws-interop.py

import argparse
import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import websockets

MESSAGES = 10_000
WS_MESSAGES = 200
SUBPROTOCOL = "ringcast.v1"
# Kinds (PROTOCOL.md).
PUBLISH, SUBSCRIBE, PING = 0x01, 0x02, 0x04
DATA, SUBACK, PONG, ERROR = 0x10, 0x12, 0x14, 0x1F
RECV_TIMEOUT = 15.0


class Failure(Exception):
    """A check failed; the message says which and how."""


def frame(kind, topic=b"", payload=b""):
    """A native client frame: len, kind, flags 0, topic_len, topic, payload."""
    body = struct.pack("<BBH", kind, 0, len(topic)) + topic + payload
    return struct.pack("<I", len(body)) + body


def parse_server(msg, what):
    """Splits one server frame (the whole message) into kind, fixed fields,
    topic and payload; checks len and flags."""
    if not isinstance(msg, bytes):
        raise Failure(f"{what}: expected a binary message, got {type(msg).__name__}")
    if len(msg) < 8:
        raise Failure(f"{what}: message of {len(msg)} bytes is shorter than a frame header")
    length, kind, flags, topic_len = struct.unpack_from("<IBBH", msg)
    if length != len(msg) - 4:
        raise Failure(f"{what}: len field {length}, but the message holds {len(msg) - 4} bytes after it")
    if flags != 0:
        raise Failure(f"{what}: flags {flags}, expected 0")
    fixed = {DATA: 16, SUBACK: 16, ERROR: 2}.get(kind, 0)
    fields = msg[8 : 8 + fixed]
    topic = msg[8 + fixed : 8 + fixed + topic_len]
    payload = msg[8 + fixed + topic_len :]
    return kind, fields, topic, payload


def payload_for(i):
    """Message i's payload: distinct, 16 B to 70 KB, crossing the WebSocket
    header sizes (125/126 and 65535/65536 bytes of message)."""
    head = b"m%06d|" % i
    if i % 1000 == 999:
        size = 70_000
    elif i % 100 == 50:
        size = 65_536 - 8 - 16 - 20  # close to the 16-bit length boundary
    else:
        size = 16 + (i * 37) % 400
    filler = bytes((i + j) & 0xFF for j in range(min(size, 256)))
    body = (filler * (size // 256 + 1))[: size - len(head)]
    return head + body


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Daemon:
    """`ringcast serve` on two free ports; stop() always ends it."""

    def __init__(self, binary):
        self.binary = binary
        self.proc = None
        self.log = tempfile.TemporaryFile()

    def start(self):
        for attempt in (1, 2):
            self.native_port, self.ws_port = free_ports(2)
            self.log.seek(0)
            self.log.truncate()
            self.proc = subprocess.Popen(
                [
                    self.binary, "serve", "--cores", "2",
                    "--listen", f"127.0.0.1:{self.native_port}",
                    "--ws-listen", f"127.0.0.1:{self.ws_port}",
                    # Not the default 6380, which another daemon may hold.
                    "--resp-listen", "off",
                ],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.ws_port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.05)
            code = self.proc.poll()
            if code is None:
                raise Failure(f"the daemon's WebSocket port {self.ws_port} did not accept within 10 s")
            if attempt == 1 and "in use" in self.log_text().lower():
                continue  # a port was taken between choosing and binding
            raise Failure(f"the daemon exited with status {code} at startup")

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def connect(d):
    ws = await asyncio.wait_for(
        websockets.connect(
            f"ws://127.0.0.1:{d.ws_port}/ws",
            subprotocols=[SUBPROTOCOL],
            max_size=2**21,
            max_queue=None,  # the reader keeps up; never push back on the server
        ),
        10,
    )
    if ws.subprotocol != SUBPROTOCOL:
        raise Failure(f"the server chose subprotocol {ws.subprotocol!r}, expected {SUBPROTOCOL}")
    return ws


async def recv(ws, what):
    try:
        return await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure(f"{what}: nothing received within {RECV_TIMEOUT:.0f} s") from None
    except websockets.ConnectionClosed as e:
        raise Failure(f"{what}: the connection closed: {e}") from None


async def subscribe(ws, topic, what):
    await ws.send(frame(SUBSCRIBE, topic))
    kind, fields, got_topic, _ = parse_server(await recv(ws, what), what)
    if kind != SUBACK or got_topic != topic:
        raise Failure(f"{what}: expected SUBACK for {topic!r}, got kind {kind:#x} topic {got_topic!r}")
    next_seq, _epoch = struct.unpack("<QQ", fields)
    if next_seq != 1:
        raise Failure(f"{what}: SUBACK next_seq {next_seq} on a fresh topic, expected 1")


def check_data(msg, topic, seq, payload, t0, what):
    """One DATA message against the frame rebuilt here: every byte but
    seq and ts_ns compared exactly (len, kind, flags, topic_len, topic,
    payload), then seq and ts_ns checked."""
    kind, fields, _, body = parse_server(msg, what)
    if kind != DATA:
        detail = ""
        if kind == ERROR:
            code = struct.unpack_from("<H", fields)[0]
            detail = f" (ERROR {code}: {body.decode('utf-8', 'replace')})"
        raise Failure(f"{what}: expected DATA, got kind {kind:#x}{detail}")
    head = struct.pack("<IBBH", 4 + 16 + len(topic) + len(payload), DATA, 0, len(topic))
    tail = topic + payload
    if len(msg) != 24 + len(tail) or msg[:8] != head or msg[24:] != tail:
        expected = head + bytes(16) + tail
        first = next(
            (k for k in range(min(len(msg), len(expected))) if not 8 <= k < 24 and msg[k] != expected[k]),
            min(len(msg), len(expected)),
        )
        raise Failure(
            f"{what}: frame differs from the one published ({len(msg)} bytes, expected"
            f" {len(expected)}; first difference at byte {first})"
        )
    got_seq, ts = struct.unpack("<QQ", fields)
    if got_seq != seq:
        raise Failure(f"{what}: seq {got_seq}, expected {seq}")
    now = time.time_ns()
    if not t0 - 60 * 10**9 <= ts <= now + 60 * 10**9:
        raise Failure(f"{what}: ts_ns {ts} is not near the wall clock ({now})")


def publish_native(port, topic, count):
    """Publishes payload_for(0 .. count-1) over native TCP, then proves they
    were all read by the server with a PING/PONG."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        batch = []
        for i in range(count):
            batch.append(frame(PUBLISH, topic, payload_for(i)))
            if len(batch) == 500:
                s.sendall(b"".join(batch))
                batch.clear()
        s.sendall(b"".join(batch) + frame(PING, b"", b"done"))
        want = frame(PONG, b"", b"done")
        got = b""
        while len(got) < len(want):
            chunk = s.recv(len(want) - len(got))
            if not chunk:
                raise Failure("native publisher: the server closed the connection")
            got += chunk
        if got != want:
            raise Failure(f"native publisher: expected PONG 'done', got {got!r}")


async def native_to_websocket(d, run):
    topic = f"interop.{run}.native".encode()
    sub = await connect(d)
    try:
        await subscribe(sub, topic, "websockets subscriber")
        t0 = time.time_ns()
        publisher = asyncio.get_running_loop().run_in_executor(None, publish_native, d.native_port, topic, MESSAGES)
        for i in range(MESSAGES):
            msg = await recv(sub, f"native->websockets message {i + 1} of {MESSAGES}")
            check_data(msg, topic, i + 1, payload_for(i), t0, f"native->websockets message {i + 1}")
        await asyncio.wait_for(publisher, RECV_TIMEOUT)
    finally:
        await sub.close()


async def websocket_to_websocket(d, run):
    topic = f"interop.{run}.ws".encode()
    sub = await connect(d)
    pub = await connect(d)
    try:
        await subscribe(sub, topic, "websockets subscriber (ws->ws)")
        t0 = time.time_ns()
        payloads = [b"ws%04d|" % i + bytes(range(i % 200)) * (1 + i % 3) for i in range(WS_MESSAGES)]
        for i, p in enumerate(payloads):
            msg = frame(PUBLISH, topic, p)
            if i % 10 == 3:
                # Fragmented: three continuation-linked frames, cut mid-header too.
                await pub.send([msg[:3], msg[3:11], msg[11:]])
            else:
                await pub.send(msg)
        for i, p in enumerate(payloads):
            msg = await recv(sub, f"websockets->websockets message {i + 1} of {WS_MESSAGES}")
            check_data(msg, topic, i + 1, p, t0, f"websockets->websockets message {i + 1}")
    finally:
        await pub.close()
        await sub.close()


async def pings(d):
    ws = await connect(d)
    try:
        waiter = await ws.ping(b"interop")
        try:
            await asyncio.wait_for(waiter, 5)
        except asyncio.TimeoutError:
            raise Failure("WebSocket ping: no pong within 5 s") from None
        await ws.send(frame(PING, b"", b"native ping"))
        kind, _, _, payload = parse_server(await recv(ws, "native PING"), "native PING")
        if kind != PONG or payload != b"native ping":
            raise Failure(f"native PING: expected PONG 'native ping', got kind {kind:#x} {payload!r}")
    finally:
        await ws.close()


async def text_is_refused(d):
    ws = await connect(d)
    await ws.send("hello")
    try:
        msg = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
        raise Failure(f"text message: the server answered {msg!r} instead of closing")
    except websockets.ConnectionClosed:
        pass
    except asyncio.TimeoutError:
        raise Failure(f"text message: the connection was not closed within {RECV_TIMEOUT:.0f} s") from None
    if ws.close_code != 1003:
        raise Failure(f"text message: close code {ws.close_code} ({ws.close_reason!r}), expected 1003")


async def checks(d):
    run = f"{os.getpid()}.{time.monotonic_ns() % 10**9}"
    await native_to_websocket(d, run)
    await websocket_to_websocket(d, run)
    await pings(d)
    await text_is_refused(d)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="ringcast's WebSocket front against Python's websockets")
    ap.add_argument("--binary", default=os.path.join(root, "target", "release", "ringcast"),
                    help="ringcast binary (default target/release/ringcast)")
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        print(f"ws-interop: {args.binary} is not an executable (cargo build --release first?)", file=sys.stderr)
        return 2
    started = time.monotonic()
    d = Daemon(args.binary)
    try:
        d.start()
        asyncio.run(asyncio.wait_for(checks(d), 50))
    except (Failure, asyncio.TimeoutError, OSError, websockets.WebSocketException) as e:
        if isinstance(e, asyncio.TimeoutError):
            e = "the checks did not finish within 50 s"
        print(f"ws-interop: FAILED: {e}", file=sys.stderr)
        d.stop()
        log = d.log_text().strip()
        if log:
            print("ws-interop: the daemon's output:\n" + log[-4000:], file=sys.stderr)
        return 1
    finally:
        d.stop()
    print(
        f"ws-interop: ok: websockets {websockets.__version__} against {os.path.relpath(args.binary)}:"
        f" {MESSAGES} native-published frames byte-exact in order, {WS_MESSAGES} websockets-published"
        f" (some fragmented), ping/pong, text -> 1003 in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
