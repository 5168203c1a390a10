//! `resp::commands` against a real `redis-server` 7.0.15: the command
//! table's `COMMAND INFO` and `COMMAND DOCS` entries, the errors (unknown
//! command and subcommand, arity, RESP2 subscribed mode, `SELECT`, `HELLO`,
//! `AUTH`, `NOAUTH`, client names), `COMMAND LIST` and its filters, the
//! `HELP` replies, `HELLO`'s map, `INFO`'s sections and `CLIENT INFO`'s
//! fields, in RESP2 and in RESP3 where the encoding differs.
//!
//! Each test starts its own `redis-server` (`support/redis_server.rs`;
//! without one the tests fail with how to install it) and fails if it is
//! not 7.0.15, the version ringcast answers as. Replies are compared byte
//! for byte, except where Redis's answer depends on its process or where
//! ringcast differs on purpose (module `resp::commands` lists where):
//!
//! - Redis orders subcommands (and `COMMAND`'s commands) by its hash
//!   table, whose seed is random per process, so entries are compared with
//!   their subcommands sorted by name, and only the subcommands both have
//!   (ringcast has fewer `CLIENT` and `COMMAND` subcommands, and 7.2's
//!   `CLIENT SETINFO`).
//! - `HELLO`'s `id` is the connection's.
//! - `INFO`'s values are the process's: sections are compared by title and
//!   by their keys (ours must be Redis's, in Redis's order, but for
//!   `ringcast_version` and `pubsub_clients`); the sections whose content
//!   is fixed (`Keyspace`, `Cluster`, `Modules`, ...) byte for byte.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use redis_server::RedisServer;
use ringcast_proto::resp::commands::{self, Command, COMMANDS};
use ringcast_proto::resp::{
    decode_reply, encode_command, parse, Decoded, Limits, Parsed, Protocol, ReplyRef,
};

/// The subcommands ringcast has and Redis 7.0.15 has not.
const RINGCAST_ONLY: &[&str] = &["client|setinfo"];

/// A connection to the server, reading whole replies as their bytes.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(server: &RedisServer) -> Conn {
        Conn {
            stream: server.stream(),
            buf: Vec::new(),
        }
    }

    /// A connection that has switched to RESP3.
    fn resp3(server: &RedisServer) -> Conn {
        let mut c = Conn::new(server);
        let hello = c.call(&[b"HELLO", b"3"]);
        assert!(hello.starts_with(b"%7\r\n"), "{}", show(&hello));
        c
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        self.stream.write_all(&out).expect("write to redis-server");
    }

    /// The next reply, whole.
    fn read(&mut self) -> Vec<u8> {
        loop {
            match decode_reply(&self.buf, usize::MAX).expect("redis-server sent bad RESP") {
                Decoded::Frame { consumed, .. } => return self.buf.drain(..consumed).collect(),
                Decoded::Incomplete { .. } => {
                    let mut chunk = [0u8; 65536];
                    let n = self
                        .stream
                        .read(&mut chunk)
                        .expect("read from redis-server");
                    assert!(n > 0, "redis-server closed the connection");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.read()
    }
}

fn show(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 3000 {
        format!("{}... ({} bytes)", &text[..3000], bytes.len())
    } else {
        text
    }
}

#[track_caller]
fn same(what: &str, ours: &[u8], redis: &[u8]) {
    assert!(
        ours == redis,
        "{what}: ringcast and Redis differ\n  ringcast: {}\n  redis:    {}",
        show(ours),
        show(redis)
    );
}

fn reply(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out);
    out
}

/// Fails unless the server is the version ringcast answers as.
fn check_version(server: &RedisServer) {
    let mut c = Conn::new(server);
    let info = c.call(&[b"INFO", b"server"]);
    let text = String::from_utf8_lossy(&info);
    let version = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?");
    assert_eq!(
        version,
        commands::REDIS_VERSION,
        "these tests compare ringcast with Redis {}; {} is {version}: point \
         RINGCAST_REDIS_SERVER at a {0} redis-server",
        commands::REDIS_VERSION,
        RedisServer::binary().display()
    );
}

/// How ringcast answers a request that [`commands::resolve`] refuses.
fn rejected(args: &[&[u8]]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_command(args, &mut buf);
    let Ok(Parsed::Command { args: parsed, .. }) = parse(&buf, &Limits::default()) else {
        panic!("{args:?} does not parse");
    };
    let rejection = commands::resolve(&parsed)
        .map(|c| c.fullname)
        .expect_err("ringcast accepts it");
    reply(|o| rejection.encode(&parsed, o))
}

/// A reply as a tree: scalars as their bytes, aggregates as their type
/// byte and elements, so that subcommands can be sorted and filtered.
#[derive(Clone, Debug, PartialEq)]
enum Tree {
    Leaf(Vec<u8>),
    Agg(u8, Vec<Tree>),
}

impl Tree {
    fn of(bytes: &[u8]) -> Tree {
        match decode_reply(bytes, usize::MAX).unwrap() {
            Decoded::Frame { frame, consumed } => {
                assert_eq!(consumed, bytes.len(), "{}", show(bytes));
                Tree::from_ref(frame)
            }
            Decoded::Incomplete { .. } => panic!("incomplete: {}", show(bytes)),
        }
    }

    fn from_ref(r: ReplyRef<'_>) -> Tree {
        let agg = |kind, a: ringcast_proto::resp::Aggregate<'_>| {
            Tree::Agg(kind, a.iter().map(Tree::from_ref).collect())
        };
        match r {
            ReplyRef::Array(a) => agg(b'*', a),
            ReplyRef::Map(a) => agg(b'%', a),
            ReplyRef::Set(a) => agg(b'~', a),
            ReplyRef::Push(a) => agg(b'>', a),
            other => Tree::Leaf(reply(|o| {
                other
                    .as_reply()
                    .unwrap_or_else(|| panic!("unexpected element {other:?}"))
                    .encode(o)
            })),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Tree::Leaf(bytes) => out.extend_from_slice(bytes),
            Tree::Agg(kind, items) => {
                let n = if *kind == b'%' {
                    items.len() / 2
                } else {
                    items.len()
                };
                out.extend_from_slice(format!("{}{n}\r\n", *kind as char).as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        reply(|o| self.encode(o))
    }

    /// A bulk string's text.
    fn text(&self) -> Option<String> {
        let Tree::Leaf(bytes) = self else { return None };
        match decode_reply(bytes, usize::MAX).ok()?.frame()?.0 {
            ReplyRef::Bulk(b) | ReplyRef::SimpleString(b) => {
                Some(String::from_utf8_lossy(b).into_owned())
            }
            _ => None,
        }
    }

    fn items(&self) -> &[Tree] {
        match self {
            Tree::Agg(_, items) => items,
            Tree::Leaf(_) => panic!("not an aggregate: {}", show(&self.bytes())),
        }
    }
}

/// A `COMMAND INFO` entry with its subcommands sorted by name and limited
/// to `keep`.
fn normalize_info(entry: &Tree, keep: &BTreeSet<String>) -> Tree {
    let Tree::Agg(kind, items) = entry else {
        return entry.clone();
    };
    let mut items = items.clone();
    if let Some(Tree::Agg(b'*', subs)) = items.get_mut(9) {
        subs.retain(|s| keep.contains(&s.items()[0].text().unwrap()));
        subs.sort_by_key(|s| s.items()[0].text());
    }
    Tree::Agg(*kind, items)
}

/// A `COMMAND DOCS` value (a map, or a flat array in RESP2) with its
/// `subcommands` sorted by name and limited to `keep`.
fn normalize_docs(docs: &Tree, keep: &BTreeSet<String>) -> Tree {
    let Tree::Agg(kind, items) = docs else {
        return docs.clone();
    };
    let mut items = items.clone();
    for i in (0..items.len()).step_by(2) {
        if items[i].text().as_deref() != Some("subcommands") {
            continue;
        }
        let Tree::Agg(sub_kind, subs) = &items[i + 1] else {
            panic!("subcommands is not a map")
        };
        let mut pairs: Vec<(String, Tree)> = subs
            .chunks(2)
            .map(|p| (p[0].text().unwrap(), p[1].clone()))
            .filter(|(name, _)| keep.contains(name))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let flat = pairs
            .into_iter()
            .flat_map(|(name, d)| [Tree::Leaf(reply(|o| bulk(o, &name))), d])
            .collect();
        items[i + 1] = Tree::Agg(*sub_kind, flat);
    }
    Tree::Agg(*kind, items)
}

fn bulk(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(format!("${}\r\n{text}\r\n", text.len()).as_bytes());
}

/// Every command of the table and every subcommand, containers first.
fn all_commands() -> Vec<&'static Command> {
    COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands))
        .collect()
}

/// The subcommand names both Redis and ringcast have: ours, but 7.2's.
fn shared_names() -> BTreeSet<String> {
    all_commands()
        .iter()
        .map(|c| c.fullname.to_string())
        .filter(|n| !RINGCAST_ONLY.contains(&n.as_str()))
        .collect()
}

/// A request for `cmd` with `total` arguments, its name(s) included
/// (cut short when `total` is less than that), the rest `x`.
fn request(cmd: &Command, total: usize) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> = cmd
        .fullname
        .split('|')
        .map(|p| p.as_bytes().to_vec())
        .collect();
    args.truncate(total);
    while args.len() < total {
        args.push(b"x".to_vec());
    }
    args
}

fn refs(args: &[Vec<u8>]) -> Vec<&[u8]> {
    args.iter().map(Vec::as_slice).collect()
}

#[test]
fn command_info_and_docs_match_redis() {
    let server = RedisServer::start();
    check_version(&server);
    let keep = shared_names();
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut c = match proto {
            Protocol::Resp2 => Conn::new(&server),
            Protocol::Resp3 => Conn::resp3(&server),
        };
        for cmd in all_commands() {
            if RINGCAST_ONLY.contains(&cmd.fullname) {
                // Redis 7.0.15 has no such command: null, and no docs.
                let redis = c.call(&[b"COMMAND", b"INFO", cmd.fullname.as_bytes()]);
                same(
                    "COMMAND INFO of a 7.2 command",
                    &redis,
                    &reply(|o| commands::command_info([b"nosuch"], proto, o)),
                );
                continue;
            }
            let name = cmd.fullname.as_bytes();
            let what = format!("COMMAND INFO {} ({proto:?})", cmd.fullname);
            let redis = Tree::of(&c.call(&[b"COMMAND", b"INFO", name]));
            let ours_bytes = reply(|o| commands::command_info([name], proto, o));
            let ours = Tree::of(&ours_bytes);
            let [redis_entry] = redis.items() else {
                panic!("{what}: {redis:?}")
            };
            let [ours_entry] = ours.items() else {
                panic!("{what}: {ours:?}")
            };
            same(
                &what,
                &normalize_info(ours_entry, &keep).bytes(),
                &normalize_info(redis_entry, &keep).bytes(),
            );

            let what = format!("COMMAND DOCS {} ({proto:?})", cmd.fullname);
            let redis = Tree::of(&c.call(&[b"COMMAND", b"DOCS", name]));
            let ours = Tree::of(&reply(|o| commands::command_docs([name], proto, o)));
            let (redis, ours) = (redis.items(), ours.items());
            assert_eq!(redis.len(), 2, "{what}");
            assert_eq!(ours.len(), 2, "{what}");
            same(&what, &ours[0].bytes(), &redis[0].bytes());
            same(
                &what,
                &normalize_docs(&ours[1], &keep).bytes(),
                &normalize_docs(&redis[1], &keep).bytes(),
            );
        }

        // Several names at once, unknown ones and odd spellings among them.
        let names: &[&[u8]] = &[
            b"publish",
            b"nosuch",
            b"PING",
            b"PubSub|NumPat",
            b"pubsub|",
            b"|",
            b"",
            b"ping|x",
            b"pubsub|numpat|x",
            b"get",
        ];
        let mut args: Vec<&[u8]> = vec![b"COMMAND", b"INFO"];
        args.extend_from_slice(names);
        // GET is a Redis command ringcast does not have: leave its entry out.
        let redis = Tree::of(&c.call(&args));
        let ours = Tree::of(&reply(|o| commands::command_info(names, proto, o)));
        assert_eq!(redis.items().len(), names.len());
        for (i, name) in names.iter().enumerate() {
            if *name != b"get" {
                same(
                    &format!("COMMAND INFO ... {} ... ({proto:?})", name.escape_ascii()),
                    &ours.items()[i].bytes(),
                    &redis.items()[i].bytes(),
                );
            }
        }
        let names: &[&[u8]] = &[b"nosuch", b"ECHO", b"pubsub|help", b"", b"echo"];
        let mut args: Vec<&[u8]> = vec![b"COMMAND", b"DOCS"];
        args.extend_from_slice(names);
        same(
            &format!("COMMAND DOCS with unknown names ({proto:?})"),
            &reply(|o| commands::command_docs(names, proto, o)),
            &c.call(&args),
        );
    }
}

#[test]
fn command_all_and_list_match_redis() {
    let server = RedisServer::start();
    check_version(&server);
    let keep = shared_names();
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut c = match proto {
            Protocol::Resp2 => Conn::new(&server),
            Protocol::Resp3 => Conn::resp3(&server),
        };
        // COMMAND, COMMAND INFO: Redis's entries of our commands, in any order.
        let ours = Tree::of(&reply(|o| commands::command_all(proto, o)));
        assert_eq!(ours.items().len(), COMMANDS.len());
        for args in [&[&b"COMMAND"[..]][..], &[b"COMMAND", b"INFO"]] {
            let redis = Tree::of(&c.call(args));
            for (cmd, entry) in COMMANDS.iter().zip(ours.items()) {
                let theirs = redis
                    .items()
                    .iter()
                    .find(|e| e.items()[0].text().as_deref() == Some(cmd.fullname))
                    .unwrap_or_else(|| panic!("{args:?}: Redis lacks {}", cmd.fullname));
                same(
                    &format!("{args:?}: {} ({proto:?})", cmd.fullname),
                    &normalize_info(entry, &keep).bytes(),
                    &normalize_info(theirs, &keep).bytes(),
                );
            }
        }
        // COMMAND DOCS without names.
        let redis = Tree::of(&c.call(&[b"COMMAND", b"DOCS"]));
        let none: [&[u8]; 0] = [];
        let ours = Tree::of(&reply(|o| commands::command_docs(none, proto, o)));
        assert_eq!(ours.items().len(), 2 * COMMANDS.len());
        for pair in ours.items().chunks(2) {
            let name = pair[0].text().unwrap();
            let at = redis
                .items()
                .chunks(2)
                .position(|p| p[0].text() == Some(name.clone()))
                .unwrap_or_else(|| panic!("COMMAND DOCS: Redis lacks {name}"));
            same(
                &format!("COMMAND DOCS: {name} ({proto:?})"),
                &normalize_docs(&pair[1], &keep).bytes(),
                &normalize_docs(&redis.items()[2 * at + 1], &keep).bytes(),
            );
        }
    }

    // COMMAND COUNT is ours; Redis counts its own.
    let mut c = Conn::new(&server);
    assert_eq!(
        reply(commands::command_count),
        format!(":{}\r\n", COMMANDS.len()).as_bytes()
    );
    assert!(c.call(&[b"COMMAND", b"COUNT"]).starts_with(b":"));

    // COMMAND LIST and its filters: Redis's names that ringcast has, as a set.
    let ours_all: BTreeSet<String> = all_commands().iter().map(|c| c.fullname.into()).collect();
    let list_cases: &[&[&[u8]]] = &[
        &[],
        &[b"FILTERBY", b"PATTERN", b"pub*"],
        &[b"filterby", b"pattern", b"PUBSUB|*"],
        &[b"filterby", b"pattern", b"*sub*"],
        &[b"filterby", b"pattern", b"c?ient|[g-s]*"],
        &[b"filterby", b"pattern", b"[a-c]*"],
        &[b"filterby", b"pattern", b"*|*"],
        &[b"filterby", b"pattern", b"nosuch"],
        &[b"filterby", b"aclcat", b"pubsub"],
        &[b"filterby", b"aclcat", b"FAST"],
        &[b"filterby", b"aclcat", b"slow"],
        &[b"filterby", b"aclcat", b"connection"],
        &[b"filterby", b"aclcat", b"admin"],
        &[b"filterby", b"aclcat", b"nosuch"],
        &[b"filterby", b"module", b"x"],
        &[b"filterby", b"x", b"x"],
        &[b"filterby", b"pattern"],
        &[b"x"],
        &[b"filterby", b"pattern", b"*", b"x"],
    ];
    for options in list_cases {
        let mut args: Vec<&[u8]> = vec![b"COMMAND", b"LIST"];
        args.extend_from_slice(options);
        let what = format!(
            "COMMAND LIST {:?}",
            String::from_utf8_lossy(&options.concat())
        );
        let redis = c.call(&args);
        let ours = reply(|o| commands::command_list(options.iter(), o));
        if redis.starts_with(b"-") {
            same(&what, &ours, &redis);
            continue;
        }
        let names = |bytes: &[u8]| -> BTreeSet<String> {
            Tree::of(bytes)
                .items()
                .iter()
                .map(|t| t.text().unwrap())
                .collect()
        };
        let redis: BTreeSet<String> = names(&redis)
            .into_iter()
            .filter(|n| ours_all.contains(n))
            .collect();
        let ours: BTreeSet<String> = names(&ours)
            .into_iter()
            .filter(|n| !RINGCAST_ONLY.contains(&n.as_str()))
            .collect();
        assert_eq!(ours, redis, "{what}");
    }
}

#[test]
fn errors_match_redis() {
    let server = RedisServer::start();
    check_version(&server);
    let mut c = Conn::new(&server);

    // Wrong arity: one argument short and one too many, every command.
    for cmd in all_commands() {
        if RINGCAST_ONLY.contains(&cmd.fullname) {
            continue;
        }
        let arity = cmd.arity.unsigned_abs() as usize;
        let mut totals = vec![arity - 1];
        if cmd.arity > 0 {
            totals.push(arity + 1);
        }
        // Fewer arguments than the names of a subcommand is its container
        // alone, which the container's own entry covers.
        let names = cmd.fullname.split('|').count();
        for total in totals.into_iter().filter(|&n| n >= names) {
            let args = request(cmd, total);
            let args = refs(&args);
            same(
                &format!("arity of {args:?}"),
                &rejected(&args),
                &c.call(&args),
            );
        }
    }

    // Unknown commands, with names and arguments Redis must quote.
    let long_name = vec![b'n'; 300];
    let long_arg = vec![b'a'; 200];
    let many: Vec<Vec<u8>> = (0..80).map(|i| format!("arg{i}").into_bytes()).collect();
    let mut many_args: Vec<&[u8]> = vec![b"nosuch"];
    many_args.extend(many.iter().map(Vec::as_slice));
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"foo"],
        vec![b"FOO", b"a", b"b"],
        vec![&long_name],
        vec![&long_name, &long_arg, &long_arg],
        vec![b"foo", &long_arg[..127], b"bc", b"d"],
        vec![b"foo", &long_arg[..125], b"bc", b"d"],
        vec![b"foo", &long_arg[..126], b"", b"d"],
        many_args.clone(),
        vec![b"foo", b"with space", b"it's", b"\"quoted\""],
        vec![b"\nfoo\r\n", b"a\nb", b"\r\n"],
        vec![b"foo\r\nbar", b"\r"],
        vec![b"fo\0o", b"a\0b", b"\0", b"c"],
        vec![b"\xff\xfe", b"\xc3\xa9", b"\x01\x7f"],
        vec![b"", b""],
        vec![b"-ERR", b"x"],
        vec![b"pubsub|numpat"],
        vec![b"PUBLISHX", b"c", b"m"],
    ];
    for args in &cases {
        same(
            &format!("unknown command {:?}", show(&args.concat())),
            &rejected(args),
            &c.call(args),
        );
    }

    // Unknown subcommands.
    let long_sub = vec![b's'; 300];
    for container in [&b"PUBSUB"[..], b"pubsub", b"Command", b"client"] {
        for sub in [
            &b"nope"[..],
            b"\nnope\r\n",
            &long_sub,
            b"a\0b",
            b"",
            b"numpat|x",
            b"HELP ",
        ] {
            let args = [container, sub, b"x"];
            same(
                &format!("unknown subcommand {}", show(&args.concat())),
                &rejected(&args),
                &c.call(&args),
            );
            let args = [container, sub];
            same(
                &format!("unknown subcommand {}", show(&args.concat())),
                &rejected(&args),
                &c.call(&args),
            );
        }
    }

    // SELECT (16 databases, Redis's default).
    for index in [
        &b"x"[..],
        b"",
        b"016",
        b"+1",
        b" 1",
        b"1.0",
        b"-0",
        b"16",
        b"-1",
        b"2147483647",
        b"2147483648",
        b"-2147483649",
        b"99999999999999999999",
        b"9223372036854775807",
        b"9223372036854775808",
    ] {
        let ours = commands::select_db(index, 16).expect_err("accepted");
        same(
            &format!("SELECT {}", show(index)),
            ours,
            &c.call(&[b"SELECT", index]),
        );
    }
    for index in [&b"0"[..], b"15"] {
        assert!(commands::select_db(index, 16).is_ok());
        same("SELECT", b"+OK\r\n", &c.call(&[b"SELECT", index]));
    }

    // HELLO's errors (each leaves the connection in RESP2).
    for version in [&b"4"[..], b"1", b"0", b"-3", b"x", b"3.0", b"03", b""] {
        let ours = commands::hello_protover(version).expect_err("accepted");
        same(
            &format!("HELLO {}", show(version)),
            ours,
            &c.call(&[b"HELLO", version]),
        );
    }
    for option in [
        &b"foo"[..],
        b"SETNAME",
        b"setname\0x",
        b"a\r\nb",
        b"\r\nx\r\n",
        b"AUTH",
    ] {
        same(
            &format!("HELLO 3 {}", show(option)),
            &reply(|o| commands::hello_option_error(option, o)),
            &c.call(&[b"HELLO", b"3", option]),
        );
    }
    same(
        "HELLO 2 AUTH x",
        &reply(|o| commands::hello_option_error(b"AUTH", o)),
        &c.call(&[b"HELLO", b"2", b"AUTH", b"x"]),
    );

    // Client names.
    for name in [
        &b"a b"[..],
        b"a\nb",
        b"\xc3\xa9",
        b"a\0b",
        b"\x7f",
        b"tab\t",
    ] {
        let ours = commands::validate_client_name(name).expect_err("accepted");
        same(
            &format!("CLIENT SETNAME {}", show(name)),
            ours,
            &c.call(&[b"CLIENT", b"SETNAME", name]),
        );
        same(
            &format!("HELLO 3 SETNAME {}", show(name)),
            ours,
            &c.call(&[b"HELLO", b"3", b"SETNAME", name]),
        );
    }
    for name in [&b"ok-name_1!~"[..], b""] {
        assert!(commands::validate_client_name(name).is_ok());
        same(
            "CLIENT SETNAME",
            b"+OK\r\n",
            &c.call(&[b"CLIENT", b"SETNAME", name]),
        );
    }

    // AUTH without a password set.
    same(
        "AUTH x",
        commands::AUTH_WITHOUT_PASSWORD,
        &c.call(&[b"AUTH", b"x"]),
    );
    same(
        "AUTH u p",
        commands::WRONGPASS,
        &c.call(&[b"AUTH", b"u", b"p"]),
    );
    same(
        "AUTH a b c",
        commands::SYNTAX_ERROR,
        &c.call(&[b"AUTH", b"a", b"b", b"c"]),
    );
    same(
        "HELLO 3 AUTH u p",
        commands::WRONGPASS,
        &c.call(&[b"HELLO", b"3", b"AUTH", b"u", b"p"]),
    );
}

#[test]
fn auth_errors_match_redis() {
    // Set the password once running (the helper's readiness PING would
    // otherwise get -NOAUTH): connections opened after it must authenticate.
    let server = RedisServer::start();
    check_version(&server);
    same(
        "CONFIG SET requirepass",
        b"+OK\r\n",
        &Conn::new(&server).call(&[b"CONFIG", b"SET", b"requirepass", b"secret"]),
    );
    let mut c = Conn::new(&server);
    // Existence and arity come before authentication.
    for args in [
        &[&b"foo"[..], b"x"][..],
        &[b"publish", b"c"],
        &[b"pubsub", b"nope"],
    ] {
        same(
            &format!("{args:?} unauthenticated"),
            &rejected(args),
            &c.call(args),
        );
    }
    for cmd in all_commands() {
        if cmd.no_auth() || cmd.is_container() || RINGCAST_ONLY.contains(&cmd.fullname) {
            continue;
        }
        let args = request(cmd, cmd.arity.unsigned_abs() as usize);
        same(
            &format!("{} unauthenticated", cmd.fullname),
            commands::NOAUTH,
            &c.call(&refs(&args)),
        );
    }
    same(
        "HELLO 3 unauthenticated",
        commands::HELLO_NOAUTH,
        &c.call(&[b"HELLO", b"3"]),
    );
    same(
        "HELLO unauthenticated",
        commands::HELLO_NOAUTH,
        &c.call(&[b"HELLO"]),
    );
    same(
        "HELLO 3 AUTH default wrong",
        commands::WRONGPASS,
        &c.call(&[b"HELLO", b"3", b"AUTH", b"default", b"wrong"]),
    );
    same(
        "AUTH wrong",
        commands::WRONGPASS,
        &c.call(&[b"AUTH", b"wrong"]),
    );
    same("AUTH secret", b"+OK\r\n", &c.call(&[b"AUTH", b"secret"]));
}

#[test]
fn subscribed_mode_matches_redis() {
    let server = RedisServer::start();
    check_version(&server);
    let subscribed = |server: &RedisServer| {
        let mut c = Conn::new(server);
        let confirmation = c.call(&[b"SUBSCRIBE", b"keep"]);
        assert!(confirmation.starts_with(b"*3\r\n$9\r\nsubscribe\r\n"));
        c
    };
    let mut c = subscribed(&server);
    for cmd in all_commands() {
        if cmd.allowed_when_subscribed
            || cmd.is_container()
            || RINGCAST_ONLY.contains(&cmd.fullname)
        {
            continue;
        }
        let args = request(cmd, cmd.arity.unsigned_abs() as usize);
        let args = refs(&args);
        same(
            &format!("{args:?} when subscribed"),
            &reply(|o| commands::subscribed_mode_error(cmd, o)),
            &c.call(&args),
        );
    }
    // Existence and arity are checked first.
    for args in [
        &[&b"nosuch"[..], b"x"][..],
        &[b"select"],
        &[b"pubsub", b"nope"],
    ] {
        same(
            &format!("{args:?} when subscribed"),
            &rejected(args),
            &c.call(args),
        );
    }
    // The allowed ones run (each on a connection of its own, as some end it).
    let allowed: &[&[&[u8]]] = &[
        &[b"SUBSCRIBE", b"other"],
        &[b"UNSUBSCRIBE", b"other"],
        &[b"PSUBSCRIBE", b"p*"],
        &[b"PUNSUBSCRIBE", b"p*"],
        &[b"SSUBSCRIBE", b"s"],
        &[b"SUNSUBSCRIBE", b"s"],
        &[b"PING"],
        &[b"RESET"],
        &[b"QUIT"],
    ];
    for args in allowed {
        let cmd = commands::lookup(args[0]).unwrap();
        assert!(cmd.allowed_when_subscribed, "{}", cmd.fullname);
        let mut c = subscribed(&server);
        let answer = c.call(args);
        assert!(!answer.starts_with(b"-"), "{args:?}: {}", show(&answer));
    }
    let allowed_names: BTreeSet<&str> = COMMANDS
        .iter()
        .filter(|c| c.allowed_when_subscribed)
        .map(|c| c.fullname)
        .collect();
    let tried: BTreeSet<String> = allowed
        .iter()
        .map(|a| String::from_utf8_lossy(a[0]).to_lowercase())
        .collect();
    assert_eq!(
        allowed_names,
        tried.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
}

/// A help reply's entries: each line without indentation with the
/// indented lines after it.
fn help_blocks(bytes: &[u8]) -> (String, Vec<Vec<String>>) {
    let tree = Tree::of(bytes);
    let mut lines = tree.items().iter().map(|t| t.text().unwrap());
    let heading = lines.next().unwrap();
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for line in lines {
        match blocks.last_mut() {
            Some(block) if line.starts_with(' ') => block.push(line),
            _ => blocks.push(vec![line]),
        }
    }
    (heading, blocks)
}

#[test]
fn help_and_hello_match_redis() {
    let server = RedisServer::start();
    check_version(&server);
    let mut c = Conn::new(&server);
    let mut c3 = Conn::resp3(&server);
    same(
        "PUBSUB HELP",
        &reply(commands::pubsub_help),
        &c.call(&[b"PUBSUB", b"HELP"]),
    );
    same(
        "pubsub help (RESP3)",
        &reply(commands::pubsub_help),
        &c3.call(&[b"pubsub", b"help"]),
    );
    // COMMAND HELP and CLIENT HELP: Redis's entries for our subcommands.
    for (args, ours, extra) in [
        (
            [&b"COMMAND"[..], b"HELP"],
            reply(commands::command_help),
            None,
        ),
        (
            [&b"client"[..], b"help"],
            reply(commands::client_help),
            Some("SETINFO"),
        ),
    ] {
        let container = commands::lookup(args[0]).unwrap();
        let (heading, blocks) = help_blocks(&c.call(&args));
        let (our_heading, our_blocks) = help_blocks(&ours);
        assert_eq!(our_heading, heading);
        let word = |b: &Vec<String>| b[0].split(' ').next().unwrap().to_ascii_lowercase();
        let expected: Vec<Vec<String>> = blocks
            .into_iter()
            .filter(|b| {
                b[0].starts_with('(')
                    || commands::lookup_sub(container, word(b).as_bytes()).is_some()
            })
            .collect();
        let ours_shared: Vec<Vec<String>> = our_blocks
            .into_iter()
            .filter(|b| Some(b[0].split(' ').next().unwrap()) != extra)
            .collect();
        assert_eq!(ours_shared, expected, "{args:?}");
    }

    // HELLO: the same map but the connection's id.
    for proto in [Protocol::Resp2, Protocol::Resp3] {
        let mut c = Conn::new(&server);
        let redis = c.call(&[b"HELLO", proto.version().to_string().as_bytes()]);
        let tree = Tree::of(&redis);
        let id_at = tree
            .items()
            .iter()
            .position(|t| t.text().as_deref() == Some("id"))
            .expect("HELLO has an id");
        let Some(ReplyRef::Integer(id)) = decode_reply(&tree.items()[id_at + 1].bytes(), 64)
            .unwrap()
            .frame()
            .map(|f| f.0)
        else {
            panic!("HELLO's id is not an integer")
        };
        same(
            &format!("HELLO {}", proto.version()),
            &reply(|o| commands::hello_reply(proto, id, o)),
            &redis,
        );
        // HELLO without a version reports the connection's protocol.
        same(
            &format!("HELLO after HELLO {}", proto.version()),
            &reply(|o| commands::hello_reply(proto, id, o)),
            &c.call(&[b"HELLO"]),
        );
    }
}

/// An `INFO` text's sections: title and keys, in order.
fn info_sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.split("\r\n") {
        if let Some(title) = line.strip_prefix("# ") {
            sections.push((title.to_string(), Vec::new()));
        } else if let Some((key, _)) = line.split_once(':') {
            sections
                .last_mut()
                .expect("a line before any section")
                .1
                .push(key.into());
        }
    }
    sections
}

#[test]
fn info_and_client_info_match_redis() {
    let server = RedisServer::start();
    let mut c = Conn::new(&server);
    let mut c3 = Conn::resp3(&server);
    let v = commands::InfoValues {
        ringcast_version: "0.1.0",
        os: "Linux 6.1.0 x86_64",
        arch_bits: 64,
        tcp_port: server.port(),
        ..Default::default()
    };
    // Sections whose content is fixed, before an error fills Errorstats
    // (Commandstats and Latencystats fill as soon as commands run).
    for section in [
        &b"keyspace"[..],
        b"cluster",
        b"modules",
        b"MODULE_LIST",
        b"errorstats",
        b"nosuch",
        b"Keyspace\0x",
    ] {
        let text = commands::info([section], &v);
        for (conn, proto) in [(&mut c, Protocol::Resp2), (&mut c3, Protocol::Resp3)] {
            same(
                &format!("INFO {} ({proto:?})", show(section)),
                &reply(|o| commands::encode_info(proto, &text, o)),
                &conn.call(&[b"INFO", section]),
            );
        }
    }
    check_version(&server);
    let cases: &[&[&[u8]]] = &[
        &[],
        &[b"default"],
        &[b"all"],
        &[b"everything"],
        &[b"server"],
        &[b"SERVER", b"clients"],
        &[b"server", b"server"],
        &[b"keyspace", b"server", b"nosuch"],
        &[b"memory"],
        &[b"persistence"],
        &[b"stats"],
        &[b"replication"],
        &[b"cpu"],
        &[b"default", b"commandstats"],
        &[b"all", b"server"],
    ];
    for sections in cases {
        let what = format!("INFO {:?}", String::from_utf8_lossy(&sections.join(&b' ')));
        let mut args: Vec<&[u8]> = vec![b"INFO"];
        args.extend_from_slice(sections);
        let redis = Tree::of(&c.call(&args)).text().unwrap();
        let ours = commands::info(sections.iter(), &v);
        let redis_sections = info_sections(&redis);
        let our_sections = info_sections(&ours);
        let titles =
            |s: &[(String, Vec<String>)]| s.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>();
        assert_eq!(titles(&our_sections), titles(&redis_sections), "{what}");
        for ((title, ours), (_, theirs)) in our_sections.iter().zip(&redis_sections) {
            // Ours are Redis's, in Redis's order, but for our two additions.
            let mut theirs = theirs.iter();
            for key in ours {
                if key == "ringcast_version" || key == "pubsub_clients" {
                    continue;
                }
                assert!(
                    theirs.any(|k| k == key),
                    "{what}: # {title}: {key} is not a Redis key, or out of Redis's order"
                );
            }
        }
        // The same layout: sections separated by one empty line, every line ended.
        assert_eq!(ours.ends_with("\r\n"), redis.ends_with("\r\n"), "{what}");
        assert_eq!(
            ours.matches("\r\n\r\n").count(),
            redis.matches("\r\n\r\n").count(),
            "{what}"
        );
        assert!(ours.contains("\r\nloading:0\r\n") == redis.contains("\r\nloading:0\r\n"));
    }

    // CLIENT INFO: Redis's fields, in its order, then 7.2's lib-name and lib-ver.
    for (conn, proto) in [(&mut c, Protocol::Resp2), (&mut c3, Protocol::Resp3)] {
        let redis = conn.call(&[b"CLIENT", b"INFO"]);
        let info = commands::ClientInfo {
            resp: proto,
            ..Default::default()
        };
        let ours = reply(|o| commands::encode_client_info(proto, &info, o));
        // The same framing: bulk or verbatim text, ending in a newline.
        let text_of = |bytes: &[u8]| -> String {
            match decode_reply(bytes, usize::MAX).unwrap().frame().unwrap().0 {
                ReplyRef::Bulk(t) => String::from_utf8(t.to_vec()).unwrap(),
                ReplyRef::Verbatim { format, text } => {
                    assert_eq!(&format, b"txt");
                    String::from_utf8(text.to_vec()).unwrap()
                }
                other => panic!("CLIENT INFO: {other:?}"),
            }
        };
        assert_eq!(redis[0], ours[0], "CLIENT INFO ({proto:?})");
        let (redis, ours) = (text_of(&redis), text_of(&ours));
        assert!(redis.ends_with('\n') && ours.ends_with('\n'));
        let keys = |line: &str| -> Vec<String> {
            line.trim_end()
                .split(' ')
                .map(|f| f.split_once('=').unwrap().0.to_string())
                .collect()
        };
        let mut expected = keys(&redis);
        expected.extend(["lib-name".to_string(), "lib-ver".to_string()]);
        assert_eq!(keys(&ours), expected, "CLIENT INFO ({proto:?})");
        let resp = format!(" resp={}", proto.version());
        assert!(redis.trim_end().ends_with(&resp), "{redis}");
        assert!(ours.contains(&format!("{resp} ")), "{ours}");
    }
}
