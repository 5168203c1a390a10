#!/usr/bin/env node
// ioredis (RESP2 only: ioredis has no RESP3) against a Redis-compatible server.
//
// Usage: node ioredis_pubsub.js HOST:PORT [--publish-token T --subscribe-token T]
//
// Every connection runs ioredis's ready check (INFO at connect, which must
// answer without an error and without `loading:1`) and its CLIENT SETINFO
// calls; connections do not reconnect, so a refused ready check fails here.
// Steps (all run, failures listed at the end, exit 1 if any):
//   connect        ping(), echo() of binary bytes, client setname/getname
//                  (connectionName option and the command), publish to nobody is 0
//   subscribe      subscribe(a, b) resolves 2 once both are confirmed; 200
//                  messages (binary: NUL, 0xff, CR LF, UTF-8, up to 5 KB)
//                  alternating between them; each publish() answers 1;
//                  'message' (strings) and 'messageBuffer' (Buffers) events
//                  match exactly and in order; unsubscribe counts
//   psubscribe     psubscribe('news.*', 'h?llo') resolves 2; 'pmessage' and
//                  'pmessageBuffer' events; a channel matched by a subscribe and
//                  a pattern: publish answers 2, 'message' before 'pmessage'
//   subscriber_ping ping() while subscribed answers ['pong', ''] (RESP2 array)
//   pubsub         PUBSUB NUMSUB / CHANNELS / NUMPAT
//   utf8_channel   a channel with spaces and UTF-8
// With tokens the subscriber gets password=<subscribe token>, the publisher
// password=<publish token> (AUTH at connect), and a client without a password
// is refused PUBLISH (an error whose message starts with NOAUTH).
"use strict";

const Redis = require("ioredis");

const TIMEOUT_MS = 10000;

function parseArgs() {
  const args = process.argv.slice(2);
  const out = { addr: null, publishToken: null, subscribeToken: null };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--publish-token") out.publishToken = args[++i];
    else if (args[i] === "--subscribe-token") out.subscribeToken = args[++i];
    else if (!out.addr) out.addr = args[i];
    else usage(`unexpected argument ${args[i]}`);
  }
  if (!out.addr) usage("missing HOST:PORT");
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(out.addr);
  if (!m) usage(`address ${out.addr} is not HOST:PORT`);
  out.host = m[1];
  out.port = Number(m[2]);
  if ((out.publishToken === null) !== (out.subscribeToken === null)) usage("give both tokens or neither");
  return out;
}

function usage(why) {
  console.error(`ioredis_pubsub.js: ${why}\nusage: node ioredis_pubsub.js HOST:PORT [--publish-token T --subscribe-token T]`);
  process.exit(2);
}

class Mismatch extends Error {}

function show(v) {
  if (Buffer.isBuffer(v)) return `Buffer<${v.toString("hex")}>`;
  if (Array.isArray(v)) return `[${v.map(show).join(", ")}]`;
  return JSON.stringify(v);
}

function same(a, b) {
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  return a === b;
}

function expect(what, expected, seen) {
  if (!same(expected, seen)) throw new Mismatch(`${what}: expected ${show(expected)}, seen ${show(seen)}`);
}

function payloads(n, tag) {
  const special = [
    Buffer.alloc(0),
    Buffer.from([0]),
    Buffer.from([0xff]),
    Buffer.from([0, 0xff, 0, 0xff]),
    Buffer.from("\r\n"),
    Buffer.from("*2\r\n$3\r\nfoo\r\n"),
    Buffer.from("caf\u00e9 \u2713", "utf8"),
    Buffer.from([...Array(256).keys()]),
  ];
  const out = special.slice(0, n);
  for (let i = out.length; i < n; i++) {
    const body = Buffer.alloc((i * 23) % 5000);
    for (let j = 0; j < body.length; j++) body[j] = (i * 7 + j) % 256;
    out.push(Buffer.concat([Buffer.from(`${tag}#${i}:`), body]));
  }
  return out;
}

// Events recorded by listeners, in arrival order; `wait(n)` resolves once n
// have arrived, or fails after TIMEOUT_MS saying how many did.
class Log extends Array {
  push(...items) {
    const n = super.push(...items);
    for (const w of this.waiters || []) if (this.length >= w.n) w.done();
    return n;
  }
  wait(n, what) {
    if (this.length >= n) return Promise.resolve(this.slice(0, n));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Mismatch(`${what}: ${this.length} of ${n} arrived within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      this.waiters = this.waiters || [];
      this.waiters.push({
        n,
        done: () => {
          clearTimeout(t);
          this.waiters = this.waiters.filter((w) => w.n !== n);
          resolve(this.slice(0, n));
        },
      });
    });
  }
}

function withTimeout(promise, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Mismatch(`${what}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

class Steps {
  constructor(a) {
    this.a = a;
    this.prefix = `ioredis.${process.pid}.${Date.now() % 100000}.`;
    this.clients = [];
  }

  ch(s) {
    return this.prefix + s;
  }

  // A connected client that has passed ioredis's ready check (INFO).
  async client(role, opts = {}) {
    const password = role === "sub" ? this.a.subscribeToken : role === "pub" ? this.a.publishToken : null;
    const c = new Redis({
      host: this.a.host,
      port: this.a.port,
      lazyConnect: true,
      enableReadyCheck: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      reconnectOnError: () => false,
      connectTimeout: TIMEOUT_MS,
      commandTimeout: TIMEOUT_MS,
      enableOfflineQueue: false,
      ...(password ? { password } : {}),
      ...opts,
    });
    const errors = [];
    c.on("error", (e) => errors.push(e));
    this.clients.push(c);
    try {
      await withTimeout(c.connect(), "connect + ready check");
    } catch (e) {
      const why = errors.length ? errors.map((x) => x.message).join("; ") : e.message;
      throw new Mismatch(`${role} connection did not become ready (ioredis's ready check runs INFO): ${why}`);
    }
    expect("status after connect", "ready", c.status);
    return c;
  }

  closeAll() {
    for (const c of this.clients) c.disconnect();
    this.clients = [];
  }

  async connect() {
    const r = await this.client("pub");
    expect("PING", "PONG", await r.ping());
    const bin = Buffer.from([0x61, 0, 0x62, 0xff, 0x0d, 0x0a]);
    expect("ECHO (buffer)", bin, await r.echoBuffer(bin));
    expect("CLIENT SETNAME", "OK", await r.client("SETNAME", "ioredis-test"));
    expect("CLIENT GETNAME", "ioredis-test", await r.client("GETNAME"));
    const named = await this.client("pub", { connectionName: "ioredis-named" });
    expect("CLIENT GETNAME after connectionName", "ioredis-named", await named.client("GETNAME"));
    expect("PUBLISH to nobody", 0, await r.publish(this.ch("nobody"), "x"));
    const info = await r.info();
    expect("INFO is a string", "string", typeof info);
  }

  async subscribe() {
    const a = this.ch("sub.a"),
      b = this.ch("sub.b");
    const sub = await this.client("sub");
    const pub = await this.client("pub");
    const strings = new Log(),
      buffers = new Log();
    sub.on("message", (ch, m) => strings.push([ch, m]));
    sub.on("messageBuffer", (ch, m) => buffers.push([ch, m]));
    expect("subscribe(a, b) resolves with the count", 2, await sub.subscribe(a, b));
    const data = payloads(200, "io");
    const chans = data.map((_, i) => (i % 2 === 0 ? a : b));
    const answers = [];
    for (let i = 0; i < data.length; i++) answers.push(await pub.publish(chans[i], data[i]));
    expect("publish() answers", Array(200).fill(1), answers);
    await buffers.wait(200, "'messageBuffer' events");
    await strings.wait(200, "'message' events");
    for (let i = 0; i < 200; i++) {
      expect(`'messageBuffer' #${i} channel`, Buffer.from(chans[i]), buffers[i][0]);
      expect(`'messageBuffer' #${i} payload`, data[i], buffers[i][1]);
      expect(`'message' #${i}`, [chans[i], data[i].toString()], strings[i]);
    }
    expect("unsubscribe(a) resolves with the count", 1, await sub.unsubscribe(a));
    expect("publish to a after unsubscribe", 0, await pub.publish(a, "gone"));
    expect("unsubscribe() resolves with the count", 0, await sub.unsubscribe());
    expect("no more events", 200, buffers.length);
  }

  async psubscribe() {
    const pre = this.prefix;
    const news = pre + "news.*",
      hello = pre + "h?llo",
      direct = pre + "news.direct";
    const sub = await this.client("sub");
    const pub = await this.client("pub");
    const events = new Log();
    sub.on("pmessage", (p, ch, m) => events.push(["pmessage", p, ch, m]));
    sub.on("pmessageBuffer", (p, ch, m) => events.push(["pmessageBuffer", p, ch.toString("latin1"), m.toString("latin1")]));
    sub.on("message", (ch, m) => events.push(["message", ch, m]));
    expect("psubscribe(news.*, h?llo) resolves with the count", 2, await sub.psubscribe(news, hello));
    expect("subscribe(news.direct) resolves with the count", 3, await sub.subscribe(direct));
    const pubs = [
      ["news.sport", 1],
      ["news.a.b", 1],
      ["news", 0],
      ["hello", 1],
      ["hllo", 0],
      ["news.direct", 2],
    ];
    for (let i = 0; i < pubs.length; i++) {
      expect(`publish to ${pubs[i][0]}`, pubs[i][1], await pub.publish(pre + pubs[i][0], `m${i}`));
    }
    const expected = [
      ["pmessage", news, pre + "news.sport", "m0"],
      ["pmessageBuffer", news, pre + "news.sport", "m0"],
      ["pmessage", news, pre + "news.a.b", "m1"],
      ["pmessageBuffer", news, pre + "news.a.b", "m1"],
      ["pmessage", hello, pre + "hello", "m3"],
      ["pmessageBuffer", hello, pre + "hello", "m3"],
      ["message", direct, "m5"],
      ["pmessage", news, direct, "m5"],
      ["pmessageBuffer", news, direct, "m5"],
    ];
    const got = await events.wait(expected.length, "pattern events");
    for (let i = 0; i < expected.length; i++) expect(`event #${i}`, expected[i], got[i]);
    expect("punsubscribe(news.*) resolves with the count", 2, await sub.punsubscribe(news));
    // (ioredis resolves an argument-less (p)unsubscribe only once the count is
    // 0, so the last pattern is named.)
    expect("punsubscribe(h?llo) resolves with the count", 1, await sub.punsubscribe(hello));
    expect("unsubscribe() resolves with the count", 0, await sub.unsubscribe());
    expect("no more events", expected.length, events.length);
  }

  async subscriber_ping() {
    const sub = await this.client("sub");
    expect("subscribe", 1, await sub.subscribe(this.ch("ping")));
    expect("PING while subscribed", ["pong", ""], await sub.ping());
    expect("PING msg while subscribed", ["pong", "hi"], await sub.ping("hi"));
    expect("unsubscribe", 0, await sub.unsubscribe());
    expect("PING after unsubscribing", "PONG", await sub.ping());
  }

  async pubsub() {
    const ch = this.ch("intro");
    const pub = await this.client("pub");
    const numpat0 = await pub.pubsub("NUMPAT");
    const s1 = await this.client("sub"),
      s2 = await this.client("sub"),
      s3 = await this.client("sub");
    await s1.subscribe(ch);
    await s2.subscribe(ch);
    await s3.psubscribe(this.prefix + "intro*");
    expect("PUBSUB NUMSUB", [ch, 2, ch + ".none", 0], await pub.pubsub("NUMSUB", ch, ch + ".none"));
    expect("PUBSUB CHANNELS", [ch], await pub.pubsub("CHANNELS", this.prefix + "*"));
    expect("PUBSUB NUMPAT", numpat0 + 1, await pub.pubsub("NUMPAT"));
    expect("publish() answer (2 subscribers + 1 pattern)", 3, await pub.publish(ch, "x"));
    await s1.unsubscribe();
    await s2.unsubscribe();
    await s3.punsubscribe();
    expect("PUBSUB NUMSUB after", [ch, 0], await pub.pubsub("NUMSUB", ch));
    expect("PUBSUB NUMPAT after", numpat0, await pub.pubsub("NUMPAT"));
  }

  async utf8_channel() {
    const ch = this.prefix + "news flash \u2014 \u00fcn\u00efc\u00f8d\u00e9 \u2713";
    const sub = await this.client("sub");
    const pub = await this.client("pub");
    const got = new Log();
    sub.on("message", (c, m) => got.push([c, m]));
    expect("subscribe", 1, await sub.subscribe(ch));
    expect("publish", 1, await pub.publish(ch, "gr\u00fc\u00df dich \u2713"));
    expect("message", [ch, "gr\u00fc\u00df dich \u2713"], (await got.wait(1, "message"))[0]);
  }

  async no_password() {
    if (this.a.publishToken === null) {
      console.log("     (no tokens: nothing to check)");
      return;
    }
    // No ready check: a server may refuse INFO before AUTH (Redis does).
    const r = await this.client("none", { enableReadyCheck: false });
    try {
      const n = await r.publish(this.ch("forged"), "x");
      throw new Mismatch(`PUBLISH without a password answered ${n}, expected an error`);
    } catch (e) {
      if (e instanceof Mismatch) throw e;
      console.log(`     PUBLISH without a password: ${e.message}`);
      if (!/^NOAUTH/.test(e.message)) throw new Mismatch(`PUBLISH without a password: expected a NOAUTH error, got ${e.message}`);
    }
  }
}

async function main() {
  const a = parseArgs();
  const s = new Steps(a);
  const passed = [],
    failed = [];
  const steps = ["connect", "subscribe", "psubscribe", "subscriber_ping", "pubsub", "utf8_channel", "no_password"];
  for (const name of steps) {
    const t0 = Date.now();
    try {
      await s[name]();
      passed.push(name);
      console.log(`ok   ioredis [${name}] (${((Date.now() - t0) / 1000).toFixed(2)} s)`);
    } catch (e) {
      const why = e instanceof Mismatch ? e.message : `${e.name}: ${e.message}\n${e.stack}`;
      failed.push([name, why.split("\n")[0]]);
      console.log(`FAIL ioredis [${name}] ${why}`);
    } finally {
      s.closeAll();
    }
  }
  const summary = `ioredis ${require("ioredis/package.json").version} (RESP2) against ${a.addr}: `;
  if (failed.length) {
    console.log(`\n${summary}${failed.length} step(s) failed:`);
    for (const [name, why] of failed) console.log(`  - [${name}] ${why.slice(0, 400)}`);
  }
  console.log(`${summary}${passed.length} passed, ${failed.length} failed`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((e) => {
  console.log(`ioredis_pubsub.js: ${e.stack}`);
  process.exitCode = 1;
});
