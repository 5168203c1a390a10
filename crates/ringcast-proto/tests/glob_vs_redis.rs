//! `glob::matches` against a real `redis-server`: thousands of random patterns
//! over an alphabet rich in metacharacters, and random subjects, must match
//! exactly what Redis matches.
//!
//! The test starts its own `redis-server` (Debian package `redis-server`;
//! `RINGCAST_REDIS_SERVER` names another binary) on a free port of 127.0.0.1,
//! without persistence (`support/redis_server.rs`), and speaks RESP to it
//! over a plain TCP stream. It asks
//! Redis in two ways, both running its `stringmatchlen`, case-sensitive:
//!
//! - `KEYS pattern` over a database holding every subject as a key;
//! - `PSUBSCRIBE` of every pattern, then `PUBLISH` to every subject as a
//!   channel: the `pmessage`s received and each publish's receiver count.
//!
//! Without redis-server the test fails, saying how to install it. The seed
//! is fixed; `RINGCAST_GLOB_SEED=<u64>` runs another.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use ringcast_proto::glob::matches;

#[path = "support/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;

/// Rounds of the `KEYS` test, each over fresh keys.
const KEYS_ROUNDS: usize = 100;
/// Random patterns per `KEYS` round.
const KEYS_PATTERNS: usize = 100;
/// Distinct subjects (keys) per round.
const SUBJECTS: usize = 300;
/// Rounds of the `PSUBSCRIBE` test, each on a fresh subscriber connection.
const PUBSUB_ROUNDS: usize = 20;
/// Distinct patterns per `PSUBSCRIBE` round.
const PUBSUB_PATTERNS: usize = 100;
/// The most mismatches printed.
const SHOW: usize = 20;

/// Pattern bytes: every metacharacter, a few letters, NUL, 0xff, the two
/// bytes of `é` (a range between them and ASCII depends on C's signed
/// `char`), and `_` and backquote, which lie between `]` and `a`.
const PATTERN_BYTES: &[u8] = b"abc*?[]^-\\\x00\xff\xc3\xa9_`";
/// Subject bytes: the same, and `z` (outside most ranges).
const SUBJECT_BYTES: &[u8] = b"abc*?[]^-\\\x00\xff\xc3\xa9_`z";

#[test]
fn keys_matches_like_redis() {
    let server = RedisServer::start();
    let mut redis = connect(&server);
    let mut rng = Rng::new(seed());
    let mut stats = Stats::default();
    let mut mismatches = Vec::new();

    // Round 0: fixed patterns around the odd cases and the nesting limit.
    let (patterns, subjects) = fixed_cases();
    keys_round(
        &mut redis,
        &patterns,
        &subjects,
        &mut stats,
        &mut mismatches,
    );
    for _ in 0..KEYS_ROUNDS {
        let patterns: Vec<Vec<u8>> = (0..KEYS_PATTERNS)
            .map(|_| random_pattern(&mut rng))
            .collect();
        let subjects = random_subjects(&mut rng, &patterns, SUBJECTS);
        keys_round(
            &mut redis,
            &patterns,
            &subjects,
            &mut stats,
            &mut mismatches,
        );
    }
    stats.report("KEYS", &mismatches);
}

#[test]
fn psubscribe_matches_like_redis() {
    let server = RedisServer::start();
    let mut publisher = connect(&server);
    let mut rng = Rng::new(seed() ^ 0x5053_5542);
    let mut stats = Stats::default();
    let mut mismatches = Vec::new();
    for round in 0..PUBSUB_ROUNDS {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut seen = HashSet::new();
        if round == 0 {
            // `*` matches every channel but the empty one (KEYS * skips
            // the matcher, so only this test sees it).
            for p in [&b"*"[..], b"**", b"?", b"[^]", b"[^", b""] {
                seen.insert(p.to_vec());
                patterns.push(p.to_vec());
            }
        }
        while patterns.len() < PUBSUB_PATTERNS {
            let p = random_pattern(&mut rng);
            if seen.insert(p.clone()) {
                patterns.push(p);
            }
        }
        let mut channels = random_subjects(&mut rng, &patterns, SUBJECTS);
        if !channels.iter().any(|c| c.is_empty()) {
            channels[0].clear();
        }
        pubsub_round(
            &server,
            &mut publisher,
            &patterns,
            &channels,
            &mut stats,
            &mut mismatches,
        );
    }
    stats.report("PSUBSCRIBE/PUBLISH", &mismatches);
}

/// Every subject as a key, then `KEYS` for every pattern, compared with `matches`.
fn keys_round(
    redis: &mut Resp,
    patterns: &[Vec<u8>],
    subjects: &[Vec<u8>],
    stats: &mut Stats,
    mismatches: &mut Vec<String>,
) {
    redis.expect_ok(&[b"FLUSHALL"]);
    for chunk in subjects.chunks(100) {
        for s in chunk {
            redis.send(&[b"SET", s, b"1"]);
        }
        for _ in chunk {
            redis.expect_simple("OK");
        }
    }
    for chunk in patterns.chunks(50) {
        for p in chunk {
            redis.send(&[b"KEYS", p]);
        }
        for p in chunk {
            let keys: HashSet<Vec<u8>> = match redis.read() {
                Reply::Array(items) => items
                    .into_iter()
                    .map(|r| match r {
                        Reply::Bulk(Some(k)) => k,
                        other => panic!("KEYS {}: unexpected item {other:?}", show(p)),
                    })
                    .collect(),
                other => panic!("KEYS {}: unexpected reply {other:?}", show(p)),
            };
            for s in subjects {
                // `KEYS *` lists every key without the matcher, the empty
                // one included, which `*` itself does not match.
                let ours = matches(p, s) || p.as_slice() == b"*";
                let theirs = keys.contains(s);
                stats.count(ours, theirs);
                if ours != theirs {
                    mismatches.push(mismatch(p, s, theirs, ours));
                }
            }
            stats.pattern(keys.len(), subjects.len());
        }
    }
}

/// A fresh connection subscribes to every pattern, every subject is
/// published to as a channel, and what arrived is compared with `matches`.
fn pubsub_round(
    server: &RedisServer,
    publisher: &mut Resp,
    patterns: &[Vec<u8>],
    channels: &[Vec<u8>],
    stats: &mut Stats,
    mismatches: &mut Vec<String>,
) {
    let mut sub = connect(server);
    let mut cmd: Vec<&[u8]> = vec![b"PSUBSCRIBE"];
    cmd.extend(patterns.iter().map(Vec::as_slice));
    sub.send(&cmd);
    for (i, p) in patterns.iter().enumerate() {
        match sub.read() {
            Reply::Array(a) if a.len() == 3 && a[1] == Reply::Bulk(Some(p.clone())) => {
                assert_eq!(a[2], Reply::Int(i as i64 + 1), "psubscribe count");
            }
            other => panic!("PSUBSCRIBE {}: unexpected reply {other:?}", show(p)),
        }
    }
    let index: HashMap<&[u8], usize> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_slice(), i))
        .collect();
    let mut counts = Vec::with_capacity(channels.len());
    for chunk in channels.chunks(100) {
        for c in chunk {
            publisher.send(&[b"PUBLISH", c, b"m"]);
        }
        for c in chunk {
            match publisher.read() {
                Reply::Int(n) => counts.push(n),
                other => panic!("PUBLISH {}: unexpected reply {other:?}", show(c)),
            }
        }
    }
    // Every pmessage is queued before PUBLISH answers; a PING after the
    // last answer comes back after them (as `pong` in subscribed mode).
    sub.send(&[b"PING"]);
    let mut got: HashSet<(usize, Vec<u8>)> = HashSet::new();
    loop {
        match sub.read() {
            Reply::Array(a) if a.first() == Some(&Reply::Bulk(Some(b"pong".to_vec()))) => break,
            Reply::Array(a) if a.len() == 4 && a[0] == Reply::Bulk(Some(b"pmessage".to_vec())) => {
                let (Reply::Bulk(Some(p)), Reply::Bulk(Some(c))) = (&a[1], &a[2]) else {
                    panic!("malformed pmessage {a:?}");
                };
                let i = *index
                    .get(p.as_slice())
                    .expect("pmessage for an unknown pattern");
                assert!(got.insert((i, c.clone())), "pmessage twice: {}", show(p));
            }
            other => panic!("subscriber: unexpected reply {other:?}"),
        }
    }
    let mut receivers = vec![0; channels.len()];
    for (i, p) in patterns.iter().enumerate() {
        let mut theirs_count = 0;
        for (c, receivers) in channels.iter().zip(&mut receivers) {
            let ours = matches(p, c);
            let theirs = got.contains(&(i, c.clone()));
            *receivers += i64::from(ours);
            theirs_count += usize::from(theirs);
            stats.count(ours, theirs);
            if ours != theirs {
                mismatches.push(mismatch(p, c, theirs, ours));
            }
        }
        stats.pattern(theirs_count, channels.len());
    }
    for ((c, &theirs), &ours) in channels.iter().zip(&counts).zip(&receivers) {
        if theirs != ours {
            mismatches.push(format!(
                "  PUBLISH {}: Redis counts {theirs} receivers, matches() {ours}",
                show(c)
            ));
        }
    }
}

/// Patterns and subjects around the odd cases: empty, lone metacharacters,
/// unclosed classes, `-` at a class's edges, escapes, high-byte ranges, and
/// the 1000-deep `*` limit.
fn fixed_cases() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut patterns: Vec<Vec<u8>> = [
        &b""[..],
        b"*",
        b"**",
        b"?",
        b"[",
        b"[^",
        b"[]",
        b"[^]",
        b"[]a]",
        b"[\\]]",
        b"[a-]",
        b"[a-]x",
        b"[ab-]",
        b"[-a]",
        b"[z-a]",
        b"[a-\\]",
        b"[a-\\]]",
        b"[\\a-c]",
        b"[\\",
        b"[a\\",
        b"\\",
        b"a\\",
        b"\\*",
        b"\\?",
        b"[\\^]",
        b"[^\\]]",
        b"[a-\xe9]",
        b"[\x80-\xff]",
        b"[\xff-\x01]",
        b"[\0]",
        b"[^\0]",
        b"a\0*",
        b"*a",
        b"a*b?c",
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect();
    for k in [999, 1000, 1001, 1002] {
        for tail in [&b"b"[..], b"", b"?", b"*b"] {
            patterns.push([b"a*".repeat(k), tail.to_vec()].concat());
        }
        patterns.push(b"*?".repeat(k));
    }
    let mut subjects: Vec<Vec<u8>> = Vec::new();
    for b in 0..=255u8 {
        subjects.push(vec![b]);
    }
    for s in [
        &b""[..],
        b"]a]",
        b"_x",
        b"ax",
        b"a\\",
        b"a\0b",
        b"abbbxc",
        b"aaa",
        b"aab",
    ] {
        subjects.push(s.to_vec());
    }
    for n in [998, 999, 1000, 1001, 1002, 1003, 1005] {
        subjects.push(b"a".repeat(n));
        subjects.push([b"a".repeat(n), b"b".to_vec()].concat());
    }
    (patterns, subjects)
}

/// A random pattern: mostly short, sometimes up to 24 bytes.
fn random_pattern(rng: &mut Rng) -> Vec<u8> {
    let max = if rng.below(8) == 0 { 25 } else { 11 };
    let len = rng.below(max);
    (0..len)
        .map(|_| PATTERN_BYTES[rng.below(PATTERN_BYTES.len())])
        .collect()
}

/// `n` distinct subjects: a third random bytes, the rest made from the
/// round's patterns, roughly as they read, then sometimes altered by a
/// byte, so that many pairs match and many nearly match.
fn random_subjects(rng: &mut Rng, patterns: &[Vec<u8>], n: usize) -> Vec<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut s = if rng.below(3) == 0 {
            let len = rng.below(9);
            (0..len).map(|_| random_byte(rng)).collect()
        } else {
            let pattern = &patterns[rng.below(patterns.len())];
            instance(rng, pattern)
        };
        if !s.is_empty() && rng.below(4) == 0 {
            let at = rng.below(s.len());
            match rng.below(3) {
                0 => s[at] = random_byte(rng),
                1 => s.insert(at, random_byte(rng)),
                _ => drop(s.remove(at)),
            }
        }
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// A subject that a naive reading of `pattern` would match: `*` becomes 0
/// to 3 random bytes, `?` one, `\x` is `x`, a class one of the bytes
/// between its brackets (or a random byte), anything else itself.
fn instance(rng: &mut Rng, pattern: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' => {
                for _ in 0..rng.below(4) {
                    s.push(random_byte(rng));
                }
            }
            b'?' => s.push(random_byte(rng)),
            b'\\' if i + 1 < pattern.len() => {
                i += 1;
                s.push(pattern[i]);
            }
            b'[' => {
                let close = pattern[i + 1..]
                    .iter()
                    .position(|&b| b == b']')
                    .map_or(pattern.len() - 1, |k| i + 1 + k);
                let inside = &pattern[(i + 1).min(close)..close];
                if !inside.is_empty() && rng.below(4) != 0 {
                    s.push(inside[rng.below(inside.len())]);
                } else {
                    s.push(random_byte(rng));
                }
                i = close;
            }
            b => s.push(b),
        }
        i += 1;
    }
    s
}

fn random_byte(rng: &mut Rng) -> u8 {
    SUBJECT_BYTES[rng.below(SUBJECT_BYTES.len())]
}

#[derive(Default)]
struct Stats {
    pairs: u64,
    matched: u64,
    patterns: u64,
    /// Patterns that matched some subjects and not others.
    patterns_split: u64,
}

impl Stats {
    fn count(&mut self, ours: bool, theirs: bool) {
        self.pairs += 1;
        self.matched += u64::from(ours && theirs);
    }

    /// One pattern tried on every subject, `matched` of them matching.
    fn pattern(&mut self, matched: usize, subjects: usize) {
        self.patterns += 1;
        self.patterns_split += u64::from(matched > 0 && matched < subjects);
    }

    /// Fails on any mismatch; otherwise checks that the test meant something.
    fn report(&self, how: &str, mismatches: &[String]) {
        eprintln!(
            "glob vs redis ({how}): {} patterns ({} matching some subjects but not all), \
             {} pattern/subject pairs, {} matching (seed {})",
            self.patterns,
            self.patterns_split,
            self.pairs,
            self.matched,
            seed()
        );
        assert!(
            mismatches.is_empty(),
            "{} of {} pairs differ from Redis ({how}, seed {}); the first ones:\n{}",
            mismatches.len(),
            self.pairs,
            seed(),
            mismatches[..mismatches.len().min(SHOW)].join("\n")
        );
        // Most patterns must tell subjects apart, or the test says little.
        assert!(
            self.patterns_split * 2 > self.patterns,
            "only {} of {} patterns match some subjects but not all: the generator \
             no longer tests much",
            self.patterns_split,
            self.patterns
        );
    }
}

fn mismatch(pattern: &[u8], subject: &[u8], redis: bool, ours: bool) -> String {
    format!(
        "  pattern {} subject {}: Redis says {redis}, matches() says {ours}",
        show(pattern),
        show(subject),
    )
}

/// Bytes as an escaped string literal, shortened when long.
fn show(bytes: &[u8]) -> String {
    if bytes.len() > 80 {
        format!(
            "b\"{}\"...({} bytes)...b\"{}\"",
            bytes[..40].escape_ascii(),
            bytes.len(),
            bytes[bytes.len() - 20..].escape_ascii()
        )
    } else {
        format!("b\"{}\"", bytes.escape_ascii())
    }
}

fn seed() -> u64 {
    match std::env::var("RINGCAST_GLOB_SEED") {
        Ok(s) => s.parse().expect("RINGCAST_GLOB_SEED: not a u64"),
        Err(_) => 0x676c_6f62_7265_6469,
    }
}

/// SplitMix64: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for small `n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A connection to `server`.
fn connect(server: &RedisServer) -> Resp {
    Resp::new(server.stream())
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
    NilArray,
}

/// The smallest RESP2 client: commands as arrays of bulk strings out,
/// replies parsed in.
struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Resp {
    fn new(stream: TcpStream) -> Self {
        let writer = stream.try_clone().unwrap();
        Resp {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write to redis-server");
    }

    fn read(&mut self) -> Reply {
        self.try_read().expect("read from redis-server")
    }

    fn expect_simple(&mut self, want: &str) {
        match self.read() {
            Reply::Simple(s) if s == want => {}
            other => panic!("expected +{want}, got {other:?}"),
        }
    }

    fn expect_ok(&mut self, args: &[&[u8]]) {
        self.send(args);
        self.expect_simple("OK");
    }

    fn try_read(&mut self) -> std::io::Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_first().ok_or_else(|| bad("empty line"))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        let number = || -> std::io::Result<i64> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("bad number"))
        };
        Ok(match kind {
            b'+' => Reply::Simple(text()),
            b'-' => Reply::Error(text()),
            b':' => Reply::Int(number()?),
            b'$' => match number()? {
                -1 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    if !data.ends_with(b"\r\n") {
                        return Err(bad("bulk string not ended by CRLF"));
                    }
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            b'*' => match number()? {
                -1 => Reply::NilArray,
                n => Reply::Array((0..n).map(|_| self.try_read()).collect::<Result<_, _>>()?),
            },
            _ => return Err(bad("unknown reply type")),
        })
    }

    /// One line without its CRLF.
    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(bad("line not ended by CRLF"));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}
