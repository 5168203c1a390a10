//! Redis command metadata and the replies that depend on nothing else: the
//! commands ringcast's Redis front serves, described as Redis 7.0.15
//! describes them, and the errors, `COMMAND`, `HELP`, `INFO`, `HELLO` and
//! `CLIENT` replies byte for byte as 7.0.15 sends them.
//!
//! ringcast answers as Redis 7.0.15 (`redis_version:7.0.15`, `HELLO`'s
//! `version`): clients pick their code paths by that number, so it is the
//! compatibility level, not ringcast's own version (which `INFO` reports as
//! `ringcast_version`).
//!
//! # Checking a command
//! Redis checks a request in this order (`processCommand`), and the front
//! must keep it, since each step's error hides the next ones:
//!
//! 1. the command exists: [`resolve`] ([`Rejection::UnknownCommand`],
//!    [`Rejection::UnknownSubcommand`]);
//! 2. its arity: [`resolve`] ([`Rejection::WrongArity`]);
//! 3. authentication, when the connection must authenticate: [`NOAUTH`],
//!    except for the commands flagged `no_auth` ([`Command::no_auth`]:
//!    `AUTH`, `HELLO`, `QUIT`, `RESET`);
//! 4. a RESP2 connection with subscriptions runs only the commands with
//!    [`Command::allowed_when_subscribed`]; others get
//!    [`subscribed_mode_error`]. RESP3 connections have no such limit.
//!
//! (Before all this Redis drops, without a reply, a connection whose
//! command is `POST` or `Host:`: an HTTP request, maybe a cross-protocol
//! attack. That is the front's to do.)
//!
//! Then the command runs and may fail in its own ways ([`select_db`],
//! [`hello_protover`], ...).
//!
//! # Where ringcast differs from Redis 7.0.15
//! - Only the commands of [`COMMANDS`] exist. Any other, Redis command or
//!   not, is an unknown command; any other subcommand of `CLIENT` or
//!   `COMMAND` (`CLIENT LIST`, `COMMAND GETKEYS`, ...) is an unknown
//!   subcommand. So `COMMAND`, `COMMAND COUNT`, `COMMAND LIST` and the
//!   `CLIENT` and `COMMAND` containers' entries list fewer commands.
//! - `CLIENT SETINFO` is Redis 7.2's (redis-py 5 and recent ioredis send it on
//!   connecting); 7.0.15 has no such subcommand.
//! - Redis lists commands and subcommands in the order of its hash tables,
//!   which changes with every `redis-server` process (the hash seed is
//!   random); ringcast lists them in [`COMMANDS`]'s order: top-level
//!   commands as that table has them (pub/sub, then connection, then
//!   server commands), each container's subcommands by name.
//! - `CLIENT HELP` and `COMMAND HELP` list only the subcommands ringcast has.
//! - `INFO` has fewer fields, and two that 7.0.15 lacks: `ringcast_version`
//!   and `pubsub_clients` (Redis 7.4's). `CLIENT INFO` ends with 7.2's
//!   `lib-name` and `lib-ver`.
//!
//! Everything here is checked against a real `redis-server` by
//! `tests/resp_commands_vs_redis.rs`.

use std::fmt::Write as _;

use super::parse::string2ll;
use super::{Args, Protocol, Reply};
use crate::glob;

/// The Redis version ringcast answers as (`INFO`'s `redis_version`,
/// `HELLO`'s `version`).
pub const REDIS_VERSION: &str = "7.0.15";

/// One command (or a container's subcommand) as Redis 7.0.15 describes it
/// in `COMMAND INFO` and `COMMAND DOCS`. Lists hold Redis's names, in the
/// order Redis writes them (the order of its flag tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Command {
    /// Lower case; a subcommand's is `container|sub` (`pubsub|numpat`), as
    /// in Redis's errors and `COMMAND` replies.
    pub fullname: &'static str,
    /// Redis's convention: n > 0 means exactly n arguments, name included;
    /// n < 0 at least -n. A subcommand counts the container's name too
    /// (`PUBSUB NUMPAT` is 2).
    pub arity: i32,
    /// `COMMAND INFO`'s flags (`pubsub`, `loading`, `stale`, `fast`, ...).
    pub flags: &'static [&'static str],
    /// `COMMAND INFO`'s first key, last key and step (the legacy key range:
    /// shard channels count as keys, with the `not_key` key-spec flag).
    pub first_key: i32,
    /// See [`Command::first_key`]; negative counts from the end.
    pub last_key: i32,
    /// See [`Command::first_key`].
    pub key_step: i32,
    /// ACL categories, without their `@`.
    pub acl_categories: &'static [&'static str],
    /// Command tips (`nondeterministic_output`, ...).
    pub tips: &'static [&'static str],
    /// Key specifications (Redis 7).
    pub key_specs: &'static [KeySpec],
    /// A container's subcommands, by name; empty for other commands.
    pub subcommands: &'static [Command],
    /// Whether a RESP2 connection with subscriptions may run it: Redis 7.0
    /// allows only (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PING, QUIT and RESET.
    pub allowed_when_subscribed: bool,
    /// What `COMMAND DOCS` says.
    pub docs: Docs,
}

/// A command's documentation, as `COMMAND DOCS` sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Docs {
    /// One line on what it does.
    pub summary: &'static str,
    /// The Redis version that added the command.
    pub since: &'static str,
    /// `pubsub`, `connection`, `server`, ...
    pub group: &'static str,
    /// Its time complexity, in words.
    pub complexity: &'static str,
    /// `deprecated`, `syscmd`; none of ringcast's commands has any.
    pub doc_flags: &'static [&'static str],
    /// The version that deprecated it, and what to use instead.
    pub deprecated_since: Option<&'static str>,
    pub replaced_by: Option<&'static str>,
    /// (version, change), oldest first.
    pub history: &'static [(&'static str, &'static str)],
    /// Its arguments after the name(s).
    pub arguments: &'static [Arg],
}

/// One argument in `COMMAND DOCS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgType,
    pub key_spec_index: Option<u32>,
    /// The literal word that introduces it (`AUTH`, `SETNAME`, `LIB-NAME`).
    pub token: Option<&'static str>,
    pub summary: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    /// `optional`, `multiple`, `multiple_token`.
    pub flags: &'static [&'static str],
    /// The parts of a [`ArgType::OneOf`] or [`ArgType::Block`].
    pub arguments: &'static [Arg],
}

/// An argument's type, as `COMMAND DOCS` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgType {
    String,
    Integer,
    Double,
    Key,
    Pattern,
    UnixTime,
    PureToken,
    /// One of its arguments.
    OneOf,
    /// All of its arguments, in order.
    Block,
}

impl ArgType {
    /// Redis's name: `string`, `unix-time`, `pure-token`, `oneof`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Key => "key",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::OneOf => "oneof",
            ArgType::Block => "block",
        }
    }
}

/// A key specification: where a command's keys (here: shard channels) are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub notes: Option<&'static str>,
    /// `RO`, `RW`, ..., `not_key`.
    pub flags: &'static [&'static str],
    pub begin_search: BeginSearch,
    pub find_keys: FindKeys,
}

/// Where the search for keys begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    Unknown,
    /// At argument `pos`.
    Index {
        pos: i32,
    },
    /// After `keyword`, searched from argument `startfrom`.
    Keyword {
        keyword: &'static str,
        startfrom: i32,
    },
}

/// Which arguments, from where the search began, are keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    Unknown,
    Range {
        lastkey: i32,
        keystep: i32,
        limit: i32,
    },
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        keystep: i32,
    },
}

impl Arg {
    const fn new(name: &'static str, kind: ArgType) -> Arg {
        Arg {
            name,
            kind,
            key_spec_index: None,
            token: None,
            summary: None,
            since: None,
            deprecated_since: None,
            flags: &[],
            arguments: &[],
        }
    }

    const fn token(self, token: &'static str) -> Arg {
        Arg {
            token: Some(token),
            ..self
        }
    }

    const fn since(self, since: &'static str) -> Arg {
        Arg {
            since: Some(since),
            ..self
        }
    }

    const fn flags(self, flags: &'static [&'static str]) -> Arg {
        Arg { flags, ..self }
    }

    const fn arguments(self, arguments: &'static [Arg]) -> Arg {
        Arg { arguments, ..self }
    }
}

impl Docs {
    const NONE: Docs = Docs {
        summary: "",
        since: "",
        group: "",
        complexity: "",
        doc_flags: &[],
        deprecated_since: None,
        replaced_by: None,
        history: &[],
        arguments: &[],
    };
}

impl Command {
    const NONE: Command = Command {
        fullname: "",
        arity: 0,
        flags: &[],
        first_key: 0,
        last_key: 0,
        key_step: 0,
        acl_categories: &[],
        tips: &[],
        key_specs: &[],
        subcommands: &[],
        allowed_when_subscribed: false,
        docs: Docs::NONE,
    };

    /// The name a client sends: `publish`, or `numpat` for `pubsub|numpat`.
    pub fn name(&self) -> &'static str {
        match self.fullname.split_once('|') {
            Some((_, sub)) => sub,
            None => self.fullname,
        }
    }

    /// Whether an unauthenticated connection may run it (the `no_auth` flag).
    pub fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    /// Whether it has subcommands (`PUBSUB`, `CLIENT`, `COMMAND`).
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// Whether `argc` arguments (the name, and a subcommand's, included) fit
    /// its arity (Redis's `commandCheckArity`).
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity > 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Appends its `COMMAND INFO` entry (`addReplyCommandInfo`): an array of
    /// 10, subcommands included.
    pub fn encode_info(&self, proto: Protocol, out: &mut Vec<u8>) {
        Reply::Array(10).encode(out);
        bulk(out, self.fullname);
        Reply::Integer(self.arity.into()).encode(out);
        statuses(out, proto, self.flags);
        Reply::Integer(self.first_key.into()).encode(out);
        Reply::Integer(self.last_key.into()).encode(out);
        Reply::Integer(self.key_step.into()).encode(out);
        proto.set(self.acl_categories.len()).encode(out);
        for category in self.acl_categories {
            out.extend_from_slice(b"+@");
            out.extend_from_slice(category.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        proto.set(self.tips.len()).encode(out);
        for tip in self.tips {
            bulk(out, tip);
        }
        proto.set(self.key_specs.len()).encode(out);
        for spec in self.key_specs {
            spec.encode(proto, out);
        }
        if self.subcommands.is_empty() {
            proto.set(0).encode(out);
        } else {
            Reply::Array(self.subcommands.len()).encode(out);
            for sub in self.subcommands {
                sub.encode_info(proto, out);
            }
        }
    }

    /// Appends its `COMMAND DOCS` value (`addReplyCommandDocs`): a map,
    /// subcommands included (without the name, which is the map key).
    pub fn encode_docs(&self, proto: Protocol, out: &mut Vec<u8>) {
        let d = &self.docs;
        let pairs = 4
            + usize::from(!d.doc_flags.is_empty())
            + usize::from(d.deprecated_since.is_some())
            + usize::from(d.replaced_by.is_some())
            + usize::from(!d.history.is_empty())
            + usize::from(!d.arguments.is_empty())
            + usize::from(self.is_container());
        proto.map(pairs).encode(out);
        pair(out, "summary", d.summary);
        pair(out, "since", d.since);
        pair(out, "group", d.group);
        pair(out, "complexity", d.complexity);
        if !d.doc_flags.is_empty() {
            bulk(out, "doc_flags");
            statuses(out, proto, d.doc_flags);
        }
        if let Some(v) = d.deprecated_since {
            pair(out, "deprecated_since", v);
        }
        if let Some(v) = d.replaced_by {
            pair(out, "replaced_by", v);
        }
        if !d.history.is_empty() {
            bulk(out, "history");
            proto.set(d.history.len()).encode(out);
            for (version, change) in d.history {
                Reply::Array(2).encode(out);
                bulk(out, version);
                bulk(out, change);
            }
        }
        if !d.arguments.is_empty() {
            bulk(out, "arguments");
            encode_args(d.arguments, proto, out);
        }
        if self.is_container() {
            bulk(out, "subcommands");
            proto.map(self.subcommands.len()).encode(out);
            for sub in self.subcommands {
                bulk(out, sub.fullname);
                sub.encode_docs(proto, out);
            }
        }
    }
}

impl KeySpec {
    fn encode(&self, proto: Protocol, out: &mut Vec<u8>) {
        proto.map(3 + usize::from(self.notes.is_some())).encode(out);
        if let Some(notes) = self.notes {
            pair(out, "notes", notes);
        }
        bulk(out, "flags");
        statuses(out, proto, self.flags);
        bulk(out, "begin_search");
        proto.map(2).encode(out);
        match self.begin_search {
            BeginSearch::Unknown => {
                pair(out, "type", "unknown");
                bulk(out, "spec");
                proto.map(0).encode(out);
            }
            BeginSearch::Index { pos } => {
                pair(out, "type", "index");
                bulk(out, "spec");
                proto.map(1).encode(out);
                int_pair(out, "index", pos);
            }
            BeginSearch::Keyword { keyword, startfrom } => {
                pair(out, "type", "keyword");
                bulk(out, "spec");
                proto.map(2).encode(out);
                pair(out, "keyword", keyword);
                int_pair(out, "startfrom", startfrom);
            }
        }
        bulk(out, "find_keys");
        proto.map(2).encode(out);
        match self.find_keys {
            FindKeys::Unknown => {
                pair(out, "type", "unknown");
                bulk(out, "spec");
                proto.map(0).encode(out);
            }
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => {
                pair(out, "type", "range");
                bulk(out, "spec");
                proto.map(3).encode(out);
                int_pair(out, "lastkey", lastkey);
                int_pair(out, "keystep", keystep);
                int_pair(out, "limit", limit);
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                pair(out, "type", "keynum");
                bulk(out, "spec");
                proto.map(3).encode(out);
                int_pair(out, "keynumidx", keynumidx);
                int_pair(out, "firstkey", firstkey);
                int_pair(out, "keystep", keystep);
            }
        }
    }
}

/// `addReplyCommandArgList`.
fn encode_args(args: &[Arg], proto: Protocol, out: &mut Vec<u8>) {
    Reply::Array(args.len()).encode(out);
    for a in args {
        let nested = matches!(a.kind, ArgType::OneOf | ArgType::Block);
        let pairs = 2
            + usize::from(a.key_spec_index.is_some())
            + usize::from(a.token.is_some())
            + usize::from(a.summary.is_some())
            + usize::from(a.since.is_some())
            + usize::from(a.deprecated_since.is_some())
            + usize::from(!a.flags.is_empty())
            + usize::from(nested);
        proto.map(pairs).encode(out);
        pair(out, "name", a.name);
        pair(out, "type", a.kind.as_str());
        if let Some(i) = a.key_spec_index {
            bulk(out, "key_spec_index");
            Reply::Integer(i.into()).encode(out);
        }
        for (key, value) in [
            ("token", a.token),
            ("summary", a.summary),
            ("since", a.since),
            ("deprecated_since", a.deprecated_since),
        ] {
            if let Some(value) = value {
                pair(out, key, value);
            }
        }
        if !a.flags.is_empty() {
            bulk(out, "flags");
            statuses(out, proto, a.flags);
        }
        if nested {
            bulk(out, "arguments");
            encode_args(a.arguments, proto, out);
        }
    }
}

fn bulk(out: &mut Vec<u8>, text: &str) {
    Reply::Bulk(text.as_bytes()).encode(out);
}

fn pair(out: &mut Vec<u8>, key: &str, value: &str) {
    bulk(out, key);
    bulk(out, value);
}

fn int_pair(out: &mut Vec<u8>, key: &str, value: i32) {
    bulk(out, key);
    Reply::Integer(value.into()).encode(out);
}

/// A set of simple strings (`addReplyCommandFlags`).
fn statuses(out: &mut Vec<u8>, proto: Protocol, names: &[&str]) {
    proto.set(names.len()).encode(out);
    for name in names {
        Reply::SimpleString(name.as_bytes()).encode(out);
    }
}

/// The commands ringcast's Redis front serves, with Redis 7.0.15's metadata
/// (`CLIENT SETINFO`'s is Redis 7.2's). This order is the order of
/// `COMMAND`, `COMMAND INFO`, `COMMAND DOCS` and `COMMAND LIST`; a
/// container's subcommands are sorted by name.
pub static COMMANDS: &[Command] = &[
    Command {
        fullname: "subscribe",
        arity: -2,
        flags: &["pubsub", "noscript", "loading", "stale"],
        acl_categories: &["pubsub", "slow"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Listen for messages published to the given channels",
            since: "2.0.0",
            group: "pubsub",
            complexity: "O(N) where N is the number of channels to subscribe to.",
            arguments: &[
                Arg::new("channel", ArgType::String).flags(&["multiple"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "unsubscribe",
        arity: -1,
        flags: &["pubsub", "noscript", "loading", "stale"],
        acl_categories: &["pubsub", "slow"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Stop listening for messages posted to the given channels",
            since: "2.0.0",
            group: "pubsub",
            complexity: "O(N) where N is the number of clients already subscribed to a channel.",
            arguments: &[
                Arg::new("channel", ArgType::String).flags(&["optional", "multiple"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "psubscribe",
        arity: -2,
        flags: &["pubsub", "noscript", "loading", "stale"],
        acl_categories: &["pubsub", "slow"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Listen for messages published to channels matching the given patterns",
            since: "2.0.0",
            group: "pubsub",
            complexity: "O(N) where N is the number of patterns the client is already subscribed to.",
            arguments: &[
                Arg::new("pattern", ArgType::Block).flags(&["multiple"]).arguments(&[
                    Arg::new("pattern", ArgType::Pattern),
                ]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "punsubscribe",
        arity: -1,
        flags: &["pubsub", "noscript", "loading", "stale"],
        acl_categories: &["pubsub", "slow"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Stop listening for messages posted to channels matching the given patterns",
            since: "2.0.0",
            group: "pubsub",
            complexity: "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client).",
            arguments: &[
                Arg::new("pattern", ArgType::Pattern).flags(&["optional", "multiple"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "ssubscribe",
        arity: -2,
        flags: &["pubsub", "noscript", "loading", "stale"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["pubsub", "slow"],
        key_specs: &[KeySpec { notes: None, flags: &["not_key"], begin_search: BeginSearch::Index { pos: 1 }, find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Listen for messages published to the given shard channels",
            since: "7.0.0",
            group: "pubsub",
            complexity: "O(N) where N is the number of shard channels to subscribe to.",
            arguments: &[
                Arg::new("shardchannel", ArgType::String).flags(&["multiple"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "sunsubscribe",
        arity: -1,
        flags: &["pubsub", "noscript", "loading", "stale"],
        first_key: 1,
        last_key: -1,
        key_step: 1,
        acl_categories: &["pubsub", "slow"],
        key_specs: &[KeySpec { notes: None, flags: &["not_key"], begin_search: BeginSearch::Index { pos: 1 }, find_keys: FindKeys::Range { lastkey: -1, keystep: 1, limit: 0 } }],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Stop listening for messages posted to the given shard channels",
            since: "7.0.0",
            group: "pubsub",
            complexity: "O(N) where N is the number of clients already subscribed to a shard channel.",
            arguments: &[
                Arg::new("shardchannel", ArgType::String).flags(&["optional", "multiple"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "publish",
        arity: 3,
        flags: &["pubsub", "loading", "stale", "fast"],
        acl_categories: &["pubsub", "fast"],
        docs: Docs {
            summary: "Post a message to a channel",
            since: "2.0.0",
            group: "pubsub",
            complexity: "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
            arguments: &[
                Arg::new("channel", ArgType::String),
                Arg::new("message", ArgType::String),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "spublish",
        arity: 3,
        flags: &["pubsub", "loading", "stale", "fast"],
        first_key: 1,
        last_key: 1,
        key_step: 1,
        acl_categories: &["pubsub", "fast"],
        key_specs: &[KeySpec { notes: None, flags: &["not_key"], begin_search: BeginSearch::Index { pos: 1 }, find_keys: FindKeys::Range { lastkey: 0, keystep: 1, limit: 0 } }],
        docs: Docs {
            summary: "Post a message to a shard channel",
            since: "7.0.0",
            group: "pubsub",
            complexity: "O(N) where N is the number of clients subscribed to the receiving shard channel.",
            arguments: &[
                Arg::new("shardchannel", ArgType::String),
                Arg::new("message", ArgType::String),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "pubsub",
        arity: -2,
        flags: &[],
        acl_categories: &["slow"],
        docs: Docs {
            summary: "A container for Pub/Sub commands",
            since: "2.8.0",
            group: "pubsub",
            complexity: "Depends on subcommand.",
            ..Docs::NONE
        },
        subcommands: &[
            Command {
                fullname: "pubsub|channels",
                arity: -2,
                flags: &["pubsub", "loading", "stale"],
                acl_categories: &["pubsub", "slow"],
                docs: Docs {
                    summary: "List active channels",
                    since: "2.8.0",
                    group: "pubsub",
                    complexity: "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
                    arguments: &[
                        Arg::new("pattern", ArgType::Pattern).flags(&["optional"]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "pubsub|help",
                arity: 2,
                flags: &["loading", "stale"],
                acl_categories: &["slow"],
                docs: Docs {
                    summary: "Show helpful text about the different subcommands",
                    since: "6.2.0",
                    group: "pubsub",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "pubsub|numpat",
                arity: 2,
                flags: &["pubsub", "loading", "stale"],
                acl_categories: &["pubsub", "slow"],
                docs: Docs {
                    summary: "Get the count of unique patterns pattern subscriptions",
                    since: "2.8.0",
                    group: "pubsub",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "pubsub|numsub",
                arity: -2,
                flags: &["pubsub", "loading", "stale"],
                acl_categories: &["pubsub", "slow"],
                docs: Docs {
                    summary: "Get the count of subscribers for channels",
                    since: "2.8.0",
                    group: "pubsub",
                    complexity: "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
                    arguments: &[
                        Arg::new("channel", ArgType::String).flags(&["optional", "multiple"]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "pubsub|shardchannels",
                arity: -2,
                flags: &["pubsub", "loading", "stale"],
                acl_categories: &["pubsub", "slow"],
                docs: Docs {
                    summary: "List active shard channels",
                    since: "7.0.0",
                    group: "pubsub",
                    complexity: "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
                    arguments: &[
                        Arg::new("pattern", ArgType::Pattern).flags(&["optional"]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "pubsub|shardnumsub",
                arity: -2,
                flags: &["pubsub", "loading", "stale"],
                acl_categories: &["pubsub", "slow"],
                docs: Docs {
                    summary: "Get the count of subscribers for shard channels",
                    since: "7.0.0",
                    group: "pubsub",
                    complexity: "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
                    arguments: &[
                        Arg::new("shardchannel", ArgType::String).flags(&["optional", "multiple"]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
        ],
        ..Command::NONE
    },
    Command {
        fullname: "ping",
        arity: -1,
        flags: &["fast"],
        acl_categories: &["fast", "connection"],
        tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Ping the server",
            since: "1.0.0",
            group: "connection",
            complexity: "O(1)",
            arguments: &[
                Arg::new("message", ArgType::String).flags(&["optional"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "echo",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        acl_categories: &["fast", "connection"],
        docs: Docs {
            summary: "Echo the given string",
            since: "1.0.0",
            group: "connection",
            complexity: "O(1)",
            arguments: &[
                Arg::new("message", ArgType::String),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "hello",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        acl_categories: &["fast", "connection"],
        docs: Docs {
            summary: "Handshake with Redis",
            since: "6.0.0",
            group: "connection",
            complexity: "O(1)",
            history: &[("6.2.0", "`protover` made optional; when called without arguments the command reports the current connection's context.")],
            arguments: &[
                Arg::new("arguments", ArgType::Block).flags(&["optional"]).arguments(&[
                    Arg::new("protover", ArgType::Integer),
                    Arg::new("username_password", ArgType::Block).token("AUTH").flags(&["optional"]).arguments(&[
                        Arg::new("username", ArgType::String),
                        Arg::new("password", ArgType::String),
                    ]),
                    Arg::new("clientname", ArgType::String).token("SETNAME").flags(&["optional"]),
                ]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "auth",
        arity: -2,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        acl_categories: &["fast", "connection"],
        docs: Docs {
            summary: "Authenticate to the server",
            since: "1.0.0",
            group: "connection",
            complexity: "O(N) where N is the number of passwords defined for the user",
            history: &[("6.0.0", "Added ACL style (username and password).")],
            arguments: &[
                Arg::new("username", ArgType::String).since("6.0.0").flags(&["optional"]),
                Arg::new("password", ArgType::String),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "client",
        arity: -2,
        flags: &[],
        acl_categories: &["slow"],
        docs: Docs {
            summary: "A container for client connection commands",
            since: "2.4.0",
            group: "connection",
            complexity: "Depends on subcommand.",
            ..Docs::NONE
        },
        subcommands: &[
            Command {
                fullname: "client|getname",
                arity: 2,
                flags: &["noscript", "loading", "stale"],
                acl_categories: &["slow", "connection"],
                docs: Docs {
                    summary: "Get the current connection name",
                    since: "2.6.9",
                    group: "connection",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "client|help",
                arity: 2,
                flags: &["loading", "stale"],
                acl_categories: &["slow", "connection"],
                docs: Docs {
                    summary: "Show helpful text about the different subcommands",
                    since: "5.0.0",
                    group: "connection",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "client|id",
                arity: 2,
                flags: &["noscript", "loading", "stale"],
                acl_categories: &["slow", "connection"],
                docs: Docs {
                    summary: "Returns the client ID for the current connection",
                    since: "5.0.0",
                    group: "connection",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "client|info",
                arity: 2,
                flags: &["noscript", "loading", "stale"],
                acl_categories: &["slow", "connection"],
                tips: &["nondeterministic_output"],
                docs: Docs {
                    summary: "Returns information about the current client connection.",
                    since: "6.2.0",
                    group: "connection",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
                // Redis 7.2's CLIENT SETINFO (7.0.15 has none), described with
                // 7.2's metadata in 7.0.15's format (no `display_text`).
                Command {
                    fullname: "client|setinfo",
                    arity: 4,
                    flags: &["noscript", "loading", "stale"],
                    acl_categories: &["slow", "connection"],
                    tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
                    docs: Docs {
                        summary: "Sets information specific to the client or connection.",
                        since: "7.2.0",
                        group: "connection",
                        complexity: "O(1)",
                        arguments: &[
                            Arg::new("attr", ArgType::OneOf).arguments(&[
                                Arg::new("libname", ArgType::String).token("LIB-NAME"),
                                Arg::new("libver", ArgType::String).token("LIB-VER"),
                            ]),
                        ],
                        ..Docs::NONE
                    },
                    ..Command::NONE
                },
            Command {
                fullname: "client|setname",
                arity: 3,
                flags: &["noscript", "loading", "stale"],
                acl_categories: &["slow", "connection"],
                docs: Docs {
                    summary: "Set the current connection name",
                    since: "2.6.9",
                    group: "connection",
                    complexity: "O(1)",
                    arguments: &[
                        Arg::new("connection-name", ArgType::String),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
        ],
        ..Command::NONE
    },
    Command {
        fullname: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        acl_categories: &["fast", "connection"],
        docs: Docs {
            summary: "Change the selected database for the current connection",
            since: "1.0.0",
            group: "connection",
            complexity: "O(1)",
            arguments: &[
                Arg::new("index", ArgType::Integer),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "reset",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        acl_categories: &["fast", "connection"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Reset the connection",
            since: "6.2.0",
            group: "connection",
            complexity: "O(1)",
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "quit",
        arity: -1,
        flags: &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"],
        acl_categories: &["fast", "connection"],
        allowed_when_subscribed: true,
        docs: Docs {
            summary: "Close the connection",
            since: "1.0.0",
            group: "connection",
            complexity: "O(1)",
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "info",
        arity: -1,
        flags: &["loading", "stale"],
        acl_categories: &["slow", "dangerous"],
        tips: &["nondeterministic_output", "request_policy:all_shards", "response_policy:special"],
        docs: Docs {
            summary: "Get information and statistics about the server",
            since: "1.0.0",
            group: "server",
            complexity: "O(1)",
            history: &[("7.0.0", "Added support for taking multiple section arguments.")],
            arguments: &[
                Arg::new("section", ArgType::String).flags(&["optional", "multiple"]),
            ],
            ..Docs::NONE
        },
        ..Command::NONE
    },
    Command {
        fullname: "command",
        arity: -1,
        flags: &["loading", "stale"],
        acl_categories: &["slow", "connection"],
        tips: &["nondeterministic_output_order"],
        docs: Docs {
            summary: "Get array of Redis command details",
            since: "2.8.13",
            group: "server",
            complexity: "O(N) where N is the total number of Redis commands",
            ..Docs::NONE
        },
        subcommands: &[
            Command {
                fullname: "command|count",
                arity: 2,
                flags: &["loading", "stale"],
                acl_categories: &["slow", "connection"],
                docs: Docs {
                    summary: "Get total number of Redis commands",
                    since: "2.8.13",
                    group: "server",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "command|docs",
                arity: -2,
                flags: &["loading", "stale"],
                acl_categories: &["slow", "connection"],
                tips: &["nondeterministic_output_order"],
                docs: Docs {
                    summary: "Get array of specific Redis command documentation",
                    since: "7.0.0",
                    group: "server",
                    complexity: "O(N) where N is the number of commands to look up",
                    arguments: &[
                        Arg::new("command-name", ArgType::String).flags(&["optional", "multiple"]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "command|help",
                arity: 2,
                flags: &["loading", "stale"],
                acl_categories: &["slow", "connection"],
                docs: Docs {
                    summary: "Show helpful text about the different subcommands",
                    since: "5.0.0",
                    group: "server",
                    complexity: "O(1)",
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "command|info",
                arity: -2,
                flags: &["loading", "stale"],
                acl_categories: &["slow", "connection"],
                tips: &["nondeterministic_output_order"],
                docs: Docs {
                    summary: "Get array of specific Redis command details, or all when no argument is given.",
                    since: "2.8.13",
                    group: "server",
                    complexity: "O(N) where N is the number of commands to look up",
                    history: &[("7.0.0", "Allowed to be called with no argument to get info on all commands.")],
                    arguments: &[
                        Arg::new("command-name", ArgType::String).flags(&["optional", "multiple"]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
            Command {
                fullname: "command|list",
                arity: -2,
                flags: &["loading", "stale"],
                acl_categories: &["slow", "connection"],
                tips: &["nondeterministic_output_order"],
                docs: Docs {
                    summary: "Get an array of Redis command names",
                    since: "7.0.0",
                    group: "server",
                    complexity: "O(N) where N is the total number of Redis commands",
                    arguments: &[
                        Arg::new("filterby", ArgType::OneOf).token("FILTERBY").flags(&["optional"]).arguments(&[
                            Arg::new("module-name", ArgType::String).token("MODULE"),
                            Arg::new("category", ArgType::String).token("ACLCAT"),
                            Arg::new("pattern", ArgType::Pattern).token("PATTERN"),
                        ]),
                    ],
                    ..Docs::NONE
                },
                ..Command::NONE
            },
        ],
        ..Command::NONE
    },
];

/// The command `name` (ASCII case-insensitive), a container included, or
/// `None`: any other name, a Redis command ringcast does not serve included.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| c.fullname.as_bytes().eq_ignore_ascii_case(name))
}

/// The subcommand `sub` (ASCII case-insensitive) of `container`, or `None`
/// (always for a command without subcommands).
pub fn lookup_sub(container: &Command, sub: &[u8]) -> Option<&'static Command> {
    container
        .subcommands
        .iter()
        .find(|c| c.name().as_bytes().eq_ignore_ascii_case(sub))
}

/// The command `COMMAND INFO` and `COMMAND DOCS` find for a name (Redis's
/// `lookupCommandBySds`): a top-level command, or `container|sub` for a
/// subcommand (`pubsub|numpat`), case-insensitively. A second `|`, an
/// empty part or a subcommand of a command without any is `None`.
pub fn lookup_fullname(name: &[u8]) -> Option<&'static Command> {
    let mut parts = name.split(|&b| b == b'|');
    let first = parts.next()?;
    match (parts.next(), parts.next()) {
        (None, _) => lookup(first),
        (Some(sub), None) => lookup_sub(lookup(first)?, sub),
        (Some(_), Some(_)) => None,
    }
}

/// Why [`resolve`] refused a request; [`Rejection::encode`] writes Redis's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No such command (for ringcast: not in [`COMMANDS`]).
    UnknownCommand,
    /// The container exists but has no such subcommand.
    UnknownSubcommand(&'static Command),
    /// The command exists but not with this many arguments.
    WrongArity(&'static Command),
}

impl Rejection {
    /// Appends the error Redis replies to the request `args` for this reason.
    pub fn encode(&self, args: &Args<'_>, out: &mut Vec<u8>) {
        match *self {
            Rejection::UnknownCommand => {
                let mut args = args.iter();
                let name = args.next().unwrap_or_default();
                unknown_command(&name, args, out);
            }
            Rejection::UnknownSubcommand(container) => {
                unknown_subcommand(container, &args.get(1).unwrap_or_default(), out);
            }
            Rejection::WrongArity(cmd) => wrong_arity(cmd, out),
        }
    }
}

/// The command a request runs, as Redis's `processCommand` finds it: the
/// name looked up case-insensitively, then, for a container given at least
/// one more argument, the subcommand; then the arity checked. A container
/// alone (`PUBSUB`) is the container, whose arity then refuses it.
pub fn resolve(args: &Args<'_>) -> Result<&'static Command, Rejection> {
    let cmd = lookup(&args.name()).ok_or(Rejection::UnknownCommand)?;
    let cmd = if cmd.is_container() && args.len() > 1 {
        let sub = args.get(1).unwrap_or_default();
        lookup_sub(cmd, &sub).ok_or(Rejection::UnknownSubcommand(cmd))?
    } else {
        cmd
    };
    if cmd.arity_ok(args.len()) {
        Ok(cmd)
    } else {
        Err(Rejection::WrongArity(cmd))
    }
}

/// `-ERR syntax error` (Redis's `shared.syntaxerr`).
pub const SYNTAX_ERROR: &[u8] = b"-ERR syntax error\r\n";
/// A command other than `AUTH`, `HELLO`, `QUIT` or `RESET` before a
/// connection that must authenticate has done so.
pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
/// `AUTH` or `HELLO ... AUTH` with a wrong user name or password.
pub const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
/// `AUTH <password>` when the default user has no password.
pub const AUTH_WITHOUT_PASSWORD: &[u8] = b"-ERR AUTH <password> called without any password \
configured for the default user. Are you sure your configuration is correct?\r\n";
/// `HELLO` with a protocol version other than 2 or 3.
pub const NOPROTO: &[u8] = b"-NOPROTO unsupported protocol version\r\n";
/// `HELLO` with a protocol version that is not an integer.
pub const HELLO_PROTOVER_NOT_INTEGER: &[u8] =
    b"-ERR Protocol version is not an integer or out of range\r\n";
/// `HELLO` without `AUTH` on a connection that must authenticate.
pub const HELLO_NOAUTH: &[u8] = b"-NOAUTH HELLO must be called with the client already \
authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the \
client and select the RESP protocol version at the same time\r\n";
/// `SELECT` of an integer outside 0 to the number of databases - 1.
pub const DB_INDEX_OUT_OF_RANGE: &[u8] = b"-ERR DB index is out of range\r\n";
/// An integer argument that is not a canonical decimal integer of 64 bits
/// (`getLongLongFromObjectOrReply`).
pub const NOT_AN_INTEGER: &[u8] = b"-ERR value is not an integer or out of range\r\n";
/// An integer argument outside an `int` (`getIntFromObjectOrReply`).
pub const INT_OUT_OF_RANGE: &[u8] =
    b"-ERR value is out of range, value must between -2147483648 and 2147483647\r\n";
/// `CLIENT SETNAME` or `HELLO ... SETNAME` with a byte outside `!` to `~`.
pub const BAD_CLIENT_NAME: &[u8] =
    b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n";

/// What C's `%s` prints of an argument: its bytes up to the first NUL.
fn c_str(s: &[u8]) -> &[u8] {
    s.iter().position(|&b| b == 0).map_or(s, |nul| &s[..nul])
}

/// What C's `%.<max>s` prints.
fn c_str_max(s: &[u8], max: usize) -> &[u8] {
    let s = c_str(s);
    &s[..s.len().min(max)]
}

/// `-<text>\r\n` with every CR and LF of `text` made a space, as Redis's
/// `sdsmapchars(err, "\r\n", "  ", 2)` makes them (without trimming).
fn error_mapped(mut text: Vec<u8>, out: &mut Vec<u8>) {
    for b in &mut text {
        if matches!(*b, b'\r' | b'\n') {
            *b = b' ';
        }
    }
    Reply::Error(&text).encode(out);
}

/// `-<text>\r\n` as `addReplyErrorFormat` sends it: CR and LF trimmed from
/// both ends, those left made spaces.
fn error_formatted(text: &[u8], out: &mut Vec<u8>) {
    Reply::Error(&super::sanitize_error(text)).encode(out);
}

/// Appends `-ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `
/// as Redis 7.0.15 writes it (`commandCheckExistence`): the name is cut at
/// 128 bytes; arguments are listed while the list is under 128 bytes, each
/// cut to what is left of those 128 (so the list may end a few bytes past
/// 128); each is followed by a space, the last one too. Like C's `%s`, a
/// NUL ends the name or an argument. CR and LF become spaces (no trimming:
/// a name starting with a newline starts with a space).
pub fn unknown_command<I>(name: &[u8], args: I, out: &mut Vec<u8>)
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(c_str_max(name, 128));
    text.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for arg in args {
        if listed >= 128 {
            break;
        }
        let arg = c_str_max(arg.as_ref(), 128 - listed);
        text.push(b'\'');
        text.extend_from_slice(arg);
        text.extend_from_slice(b"' ");
        listed += arg.len() + 3;
    }
    error_mapped(text, out);
}

/// Appends `-ERR unknown subcommand '<sub>'. Try <CONTAINER> HELP.`: the
/// subcommand cut at 128 bytes (or a NUL), CR and LF made spaces.
pub fn unknown_subcommand(container: &Command, sub: &[u8], out: &mut Vec<u8>) {
    let mut text = b"ERR unknown subcommand '".to_vec();
    text.extend_from_slice(c_str_max(sub, 128));
    text.extend_from_slice(b"'. Try ");
    text.extend_from_slice(container.fullname.to_ascii_uppercase().as_bytes());
    text.extend_from_slice(b" HELP.");
    error_mapped(text, out);
}

/// Appends `-ERR wrong number of arguments for '<fullname>' command`
/// (`'pubsub|numpat'` for a subcommand).
pub fn wrong_arity(cmd: &Command, out: &mut Vec<u8>) {
    let text = format!(
        "ERR wrong number of arguments for '{}' command",
        cmd.fullname
    );
    Reply::Error(text.as_bytes()).encode(out);
}

/// Appends the error of a command that a RESP2 connection with
/// subscriptions may not run (one without [`Command::allowed_when_subscribed`]):
/// `-ERR Can't execute '<fullname>': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`.
pub fn subscribed_mode_error(cmd: &Command, out: &mut Vec<u8>) {
    let text = format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET \
         are allowed in this context",
        cmd.fullname
    );
    Reply::Error(text.as_bytes()).encode(out);
}

/// `SELECT`'s argument checked as Redis checks it: a canonical decimal
/// integer ([`NOT_AN_INTEGER`]) that fits a C `int` ([`INT_OUT_OF_RANGE`])
/// and is a database index below `databases` ([`DB_INDEX_OUT_OF_RANGE`];
/// Redis has 16 by default). `Err` holds the whole reply.
pub fn select_db(index: &[u8], databases: u32) -> Result<u32, &'static [u8]> {
    let index = string2ll(index).ok_or(NOT_AN_INTEGER)?;
    let index = i32::try_from(index).map_err(|_| INT_OUT_OF_RANGE)?;
    u32::try_from(index)
        .ok()
        .filter(|&i| i < databases)
        .ok_or(DB_INDEX_OUT_OF_RANGE)
}

/// `HELLO`'s protocol version: `2` or `3`, else [`HELLO_PROTOVER_NOT_INTEGER`]
/// or [`NOPROTO`] (the whole reply). Redis checks it before any option.
pub fn hello_protover(arg: &[u8]) -> Result<Protocol, &'static [u8]> {
    let version = string2ll(arg).ok_or(HELLO_PROTOVER_NOT_INTEGER)?;
    Protocol::from_version(version).ok_or(NOPROTO)
}

/// Appends `-ERR Syntax error in HELLO option '<option>'`: `HELLO`'s reply
/// to an option other than `AUTH <user> <pass>` or `SETNAME <name>` (or one
/// of them without its arguments). Redis reads the options in order and
/// applies each before reading the next, so an `AUTH` or `SETNAME` before
/// the bad option has taken effect.
pub fn hello_option_error(option: &[u8], out: &mut Vec<u8>) {
    let mut text = b"ERR Syntax error in HELLO option '".to_vec();
    text.extend_from_slice(c_str(option));
    text.push(b'\'');
    error_formatted(&text, out);
}

/// Checks a client name (`CLIENT SETNAME`, `HELLO ... SETNAME`): every byte
/// from `!` to `~`, so that `CLIENT LIST` lines split on spaces. An empty
/// name is valid and removes the name. `Err` is [`BAD_CLIENT_NAME`].
pub fn validate_client_name(name: &[u8]) -> Result<(), &'static [u8]> {
    if name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(())
    } else {
        Err(BAD_CLIENT_NAME)
    }
}

/// What `CLIENT SETINFO` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAttr {
    /// `LIB-NAME`: the client library's name (`CLIENT INFO`'s `lib-name`).
    LibName,
    /// `LIB-VER`: its version (`lib-ver`).
    LibVer,
}

/// Checks `CLIENT SETINFO <attr> <value>` as Redis 7.2 does (7.0.15 has no
/// such subcommand): `attr` is `LIB-NAME` or `LIB-VER`, any case, else
/// `-ERR Unrecognized option '<attr>'`; `value` has only bytes from `!` to
/// `~`, else `-ERR <attr> cannot contain spaces, newlines or special
/// characters.`. On success reply `+OK`; an empty value clears the
/// attribute. Like Redis 7.2, which compares C strings, a NUL ends `attr`
/// and `value` for these checks. `Err` holds the whole reply.
pub fn client_setinfo(attr: &[u8], value: &[u8]) -> Result<ClientAttr, Vec<u8>> {
    let name = c_str(attr);
    let which = if name.eq_ignore_ascii_case(b"lib-name") {
        ClientAttr::LibName
    } else if name.eq_ignore_ascii_case(b"lib-ver") {
        ClientAttr::LibVer
    } else {
        let mut out = Vec::new();
        let mut text = b"ERR Unrecognized option '".to_vec();
        text.extend_from_slice(name);
        text.push(b'\'');
        error_formatted(&text, &mut out);
        return Err(out);
    };
    if c_str(value).iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(which)
    } else {
        let mut out = Vec::new();
        let mut text = b"ERR ".to_vec();
        text.extend_from_slice(name);
        text.extend_from_slice(b" cannot contain spaces, newlines or special characters.");
        error_formatted(&text, &mut out);
        Err(out)
    }
}

/// Appends `COMMAND INFO`'s reply for `names` (the arguments after `INFO`):
/// an array of each name's entry, or a null for a name [`lookup_fullname`]
/// does not find; with no names, every command's entry ([`command_all`]).
pub fn command_info<I>(names: I, proto: Protocol, out: &mut Vec<u8>)
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let names: Vec<I::Item> = names.into_iter().collect();
    if names.is_empty() {
        return command_all(proto, out);
    }
    Reply::Array(names.len()).encode(out);
    for name in &names {
        match lookup_fullname(name.as_ref()) {
            Some(cmd) => cmd.encode_info(proto, out),
            None => proto.null().encode(out),
        }
    }
}

/// Appends `COMMAND`'s reply: every command's `COMMAND INFO` entry, in
/// [`COMMANDS`]'s order (Redis: in its hash table's order, and all of its
/// commands).
pub fn command_all(proto: Protocol, out: &mut Vec<u8>) {
    Reply::Array(COMMANDS.len()).encode(out);
    for cmd in COMMANDS {
        cmd.encode_info(proto, out);
    }
}

/// Appends `COMMAND DOCS`'s reply for `names` (the arguments after `DOCS`):
/// a map from each found command's full name to its docs; names
/// [`lookup_fullname`] does not find are left out. With no names, every
/// command, in [`COMMANDS`]'s order.
pub fn command_docs<I>(names: I, proto: Protocol, out: &mut Vec<u8>)
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let names: Vec<I::Item> = names.into_iter().collect();
    let found: Vec<&Command> = if names.is_empty() {
        COMMANDS.iter().collect()
    } else {
        names
            .iter()
            .filter_map(|n| lookup_fullname(n.as_ref()))
            .collect()
    };
    proto.map(found.len()).encode(out);
    for cmd in found {
        bulk(out, cmd.fullname);
        cmd.encode_docs(proto, out);
    }
}

/// Appends `COMMAND COUNT`'s reply: the number of top-level commands, as
/// Redis counts (so ringcast's is smaller than Redis's 240).
pub fn command_count(out: &mut Vec<u8>) {
    Reply::Integer(COMMANDS.len() as i64).encode(out);
}

/// Appends `COMMAND LIST`'s reply for `options` (the arguments after
/// `LIST`): the full names of every command, each container followed by its
/// subcommands, in [`COMMANDS`]'s order. `FILTERBY PATTERN <glob>` keeps the
/// names the pattern matches (case-insensitively, as Redis), `FILTERBY
/// ACLCAT <category>` the commands in that ACL category, `FILTERBY MODULE
/// <name>` none (ringcast has no modules). Other options: [`SYNTAX_ERROR`].
pub fn command_list<I>(options: I, out: &mut Vec<u8>)
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    enum Filter {
        None,
        Module,
        AclCat(Vec<u8>),
        Pattern(Vec<u8>),
    }
    let options: Vec<I::Item> = options.into_iter().collect();
    let filter = match options.as_slice() {
        [] => Filter::None,
        [by, kind, arg] if c_str(by.as_ref()).eq_ignore_ascii_case(b"filterby") => {
            let kind = c_str(kind.as_ref());
            if kind.eq_ignore_ascii_case(b"module") {
                Filter::Module
            } else if kind.eq_ignore_ascii_case(b"aclcat") {
                Filter::AclCat(c_str(arg.as_ref()).to_vec())
            } else if kind.eq_ignore_ascii_case(b"pattern") {
                // Redis matches without case; names are lower case, so a
                // lower-cased pattern matched with case is the same.
                Filter::Pattern(arg.as_ref().to_ascii_lowercase())
            } else {
                out.extend_from_slice(SYNTAX_ERROR);
                return;
            }
        }
        _ => {
            out.extend_from_slice(SYNTAX_ERROR);
            return;
        }
    };
    let keep = |cmd: &Command| match &filter {
        Filter::None => true,
        Filter::Module => false,
        Filter::AclCat(cat) => cmd
            .acl_categories
            .iter()
            .any(|c| c.as_bytes().eq_ignore_ascii_case(cat)),
        Filter::Pattern(p) => glob::matches(p, cmd.fullname.as_bytes()),
    };
    let names: Vec<&str> = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands))
        .filter(|c| keep(c))
        .map(|c| c.fullname)
        .collect();
    Reply::Array(names.len()).encode(out);
    for name in names {
        bulk(out, name);
    }
}

/// `addReplyHelp`: a heading, `lines`, then `HELP` and its line; an array of
/// simple strings in both protocols.
fn help(container: &str, lines: &[&str], out: &mut Vec<u8>) {
    Reply::Array(lines.len() + 3).encode(out);
    let heading = format!("{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
    Reply::SimpleString(heading.as_bytes()).encode(out);
    for line in lines.iter().chain(&["HELP", "    Prints this help."]) {
        Reply::SimpleString(line.as_bytes()).encode(out);
    }
}

/// Appends `COMMAND HELP`'s reply: Redis 7.0.15's text without
/// `GETKEYS` and `GETKEYSANDFLAGS`, which ringcast does not have.
pub fn command_help(out: &mut Vec<u8>) {
    help(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
        ],
        out,
    );
}

/// Appends `PUBSUB HELP`'s reply, Redis 7.0.15's exactly.
pub fn pubsub_help(out: &mut Vec<u8>) {
    help(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
        out,
    );
}

/// Appends `CLIENT HELP`'s reply: Redis 7.0.15's entries for the
/// subcommands ringcast has (the others left out), then `SETINFO`'s, from
/// Redis 7.2, where 7.2 puts it (after `SETNAME`).
pub fn client_help(out: &mut Vec<u8>) {
    help(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
        ],
        out,
    );
}

/// Appends `HELLO`'s reply for a connection that now speaks `proto`: the map
/// `server` "redis", `version` [`REDIS_VERSION`], `proto` 2 or 3, `id`
/// `client_id`, `mode` "standalone", `role` "master", `modules` an empty
/// array; a flat array of 14 in RESP2.
pub fn hello_reply(proto: Protocol, client_id: i64, out: &mut Vec<u8>) {
    proto.map(7).encode(out);
    pair(out, "server", "redis");
    pair(out, "version", REDIS_VERSION);
    bulk(out, "proto");
    Reply::Integer(proto.version()).encode(out);
    bulk(out, "id");
    Reply::Integer(client_id).encode(out);
    pair(out, "mode", "standalone");
    pair(out, "role", "master");
    bulk(out, "modules");
    Reply::Array(0).encode(out);
}

/// The values of one connection's `CLIENT INFO` line, which the daemon knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo<'a> {
    /// `CLIENT ID`.
    pub id: u64,
    /// The peer, `ip:port`.
    pub addr: &'a str,
    /// The local end, `ip:port`.
    pub laddr: &'a str,
    /// The socket's file descriptor.
    pub fd: i64,
    /// `CLIENT SETNAME`'s, empty for none.
    pub name: &'a str,
    /// Seconds since the connection was accepted.
    pub age: u64,
    /// Seconds since its last command.
    pub idle: u64,
    /// Whether it has subscriptions: flags `P`, else `N`.
    pub pubsub: bool,
    /// `SELECT`'s database.
    pub db: u32,
    /// Channel subscriptions.
    pub sub: u64,
    /// Pattern subscriptions.
    pub psub: u64,
    /// Shard channel subscriptions.
    pub ssub: u64,
    /// Bytes of request read and not yet parsed.
    pub qbuf: u64,
    /// Free bytes of the request buffer.
    pub qbuf_free: u64,
    /// Bytes of the arguments of the command being run.
    pub argv_mem: u64,
    /// The reply buffer's size, and its peak use.
    pub rbs: u64,
    pub rbp: u64,
    /// Bytes in the reply buffer, and the replies queued past it.
    pub obl: u64,
    pub oll: u64,
    /// Bytes queued past the reply buffer.
    pub omem: u64,
    /// All the memory the connection uses.
    pub tot_mem: u64,
    /// `r`, `w` or `rw`: what the connection waits for.
    pub events: &'a str,
    /// The full name of the last command (`client|info`).
    pub cmd: &'a str,
    /// The ACL user (`default`).
    pub user: &'a str,
    /// The connection's protocol.
    pub resp: Protocol,
    /// `CLIENT SETINFO LIB-NAME`'s and `LIB-VER`'s (Redis 7.2), empty for none.
    pub lib_name: &'a str,
    pub lib_ver: &'a str,
}

/// One connection's line of `CLIENT INFO` and `CLIENT LIST`, without its
/// newline: Redis 7.0.15's fields in its order (`multi` is always -1,
/// `multi-mem` 0 and `redir` -1: ringcast has no transactions and no
/// client-side caching), then Redis 7.2's `lib-name` and `lib-ver`.
pub fn client_info_line(c: &ClientInfo<'_>) -> String {
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} \
         ssub={} multi=-1 qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl={} \
         oll={} omem={} tot-mem={} events={} cmd={} user={} redir=-1 resp={} lib-name={} \
         lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        c.name,
        c.age,
        c.idle,
        if c.pubsub { "P" } else { "N" },
        c.db,
        c.sub,
        c.psub,
        c.ssub,
        c.qbuf,
        c.qbuf_free,
        c.argv_mem,
        c.rbs,
        c.rbp,
        c.obl,
        c.oll,
        c.omem,
        c.tot_mem,
        c.events,
        c.cmd,
        c.user,
        c.resp.version(),
        c.lib_name,
        c.lib_ver,
    )
}

/// Appends `CLIENT INFO`'s reply: the connection's line and a newline, a
/// bulk string in RESP2 and a verbatim `txt` string in RESP3.
pub fn encode_client_info(proto: Protocol, c: &ClientInfo<'_>, out: &mut Vec<u8>) {
    let mut text = client_info_line(c);
    text.push('\n');
    proto.verbatim(*b"txt", text.as_bytes()).encode(out);
}

/// The numbers and names `INFO` reports, filled in by the daemon; see
/// [`info`] for the fields that are constants.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InfoValues<'a> {
    /// `ringcast_version` (not in Redis).
    pub ringcast_version: &'a str,
    /// `os`: the kernel's name, release and machine, as `uname` gives them
    /// (`Linux 6.1.0 x86_64`).
    pub os: &'a str,
    /// `arch_bits`: 64 or 32.
    pub arch_bits: u32,
    /// `multiplexing_api`: how the daemon waits for its sockets.
    pub multiplexing_api: &'a str,
    pub process_id: u32,
    /// `run_id`: 40 random hex digits drawn at start.
    pub run_id: &'a str,
    pub tcp_port: u16,
    /// `server_time_usec`: now, in microseconds since the Unix epoch.
    pub server_time_usec: u64,
    /// `uptime_in_seconds`, and from it `uptime_in_days`.
    pub uptime_in_seconds: u64,
    /// `executable`: the daemon's absolute path.
    pub executable: &'a str,
    /// `config_file`: empty for none.
    pub config_file: &'a str,
    pub connected_clients: u64,
    pub maxclients: u64,
    /// `pubsub_clients` (Redis 7.4's; not in 7.0.15): connections with a subscription.
    pub pubsub_clients: u64,
    /// Bytes in use; `used_memory_human` is derived.
    pub used_memory: u64,
    /// Resident set size; `used_memory_rss_human` is derived.
    pub used_memory_rss: u64,
    /// Peak of `used_memory`; `used_memory_peak_human` is derived.
    pub used_memory_peak: u64,
    /// `mem_allocator` (`libc`, `jemalloc-5.3.0`).
    pub mem_allocator: &'a str,
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    /// Connections refused for `maxclients`.
    pub rejected_connections: u64,
    /// Channels with subscribers.
    pub pubsub_channels: u64,
    /// Patterns with subscribers.
    pub pubsub_patterns: u64,
    /// Shard channels with subscribers (Redis calls it `pubsubshard_channels`).
    pub pubsub_shardchannels: u64,
    pub total_error_replies: u64,
    /// System and user CPU time, in microseconds (`used_cpu_sys`, `used_cpu_user`).
    pub used_cpu_sys_usec: u64,
    pub used_cpu_user_usec: u64,
}

/// `INFO`'s sections, in the order Redis writes them, and the names that
/// select them (`module_list` and `modules` both select `Modules`).
const INFO_SECTIONS: [(&str, &[&str]); 13] = [
    ("Server", &["server"]),
    ("Clients", &["clients"]),
    ("Memory", &["memory"]),
    ("Persistence", &["persistence"]),
    ("Stats", &["stats"]),
    ("Replication", &["replication"]),
    ("CPU", &["cpu"]),
    ("Modules", &["module_list", "modules"]),
    ("Commandstats", &["commandstats"]),
    ("Errorstats", &["errorstats"]),
    ("Latencystats", &["latencystats"]),
    ("Cluster", &["cluster"]),
    ("Keyspace", &["keyspace"]),
];

/// The sections `INFO` and `INFO default` write: all but Commandstats and Latencystats.
const INFO_DEFAULT: u16 = 0x1fff & !(1 << 8) & !(1 << 10);
/// `INFO all` and `INFO everything`.
const INFO_ALL: u16 = 0x1fff;

/// `INFO`'s text for `sections` (the arguments after `INFO`), as Redis
/// 7.0.15 selects and writes it: no arguments or `default` is the default
/// sections, `all` and `everything` all of them, other names
/// (case-insensitive) their section; unknown names select nothing, so
/// `INFO nosuch` is empty. Sections come in Redis's order whatever the
/// arguments' order, each `# Name` and its `key:value` lines ending in
/// `\r\n`, with an empty line between sections. Send it with [`encode_info`].
///
/// ringcast writes fewer fields than Redis (only those it can fill or that
/// are constants for it: `loading:0`, which ioredis's ready check reads,
/// `role:master`, `cluster_enabled:0`, ...), plus `ringcast_version` and
/// `pubsub_clients`. Modules, Commandstats, Errorstats, Latencystats and
/// Keyspace are empty (no modules, no keys, no per-command statistics).
pub fn info<I>(sections: I, v: &InfoValues<'_>) -> String
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut selected = 0u16;
    let mut any = false;
    for name in sections {
        any = true;
        let name = c_str(name.as_ref());
        if name.eq_ignore_ascii_case(b"default") {
            selected |= INFO_DEFAULT;
        } else if name.eq_ignore_ascii_case(b"all") || name.eq_ignore_ascii_case(b"everything") {
            selected |= INFO_ALL;
        } else if let Some(i) = INFO_SECTIONS.iter().position(|(_, names)| {
            names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
        }) {
            selected |= 1 << i;
        }
    }
    if !any {
        selected = INFO_DEFAULT;
    }
    let mut s = String::new();
    for (i, (title, _)) in INFO_SECTIONS.iter().enumerate() {
        if selected & (1 << i) == 0 {
            continue;
        }
        if !s.is_empty() {
            s.push_str("\r\n");
        }
        s.push_str("# ");
        s.push_str(title);
        s.push_str("\r\n");
        info_section(i, v, &mut s);
    }
    s
}

/// Appends the `key:value\r\n` lines of section `i` of [`INFO_SECTIONS`].
fn info_section(i: usize, v: &InfoValues<'_>, s: &mut String) {
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        // Writing to a String cannot fail.
        let _ = write!(s, "{key}:{value}\r\n");
    };
    match INFO_SECTIONS[i].0 {
        "Server" => {
            line("redis_version", &REDIS_VERSION);
            line("ringcast_version", &v.ringcast_version);
            line("redis_git_sha1", &"00000000");
            line("redis_git_dirty", &0);
            line("redis_mode", &"standalone");
            line("os", &v.os);
            line("arch_bits", &v.arch_bits);
            line("multiplexing_api", &v.multiplexing_api);
            line("process_id", &v.process_id);
            line("process_supervised", &"no");
            line("run_id", &v.run_id);
            line("tcp_port", &v.tcp_port);
            line("server_time_usec", &v.server_time_usec);
            line("uptime_in_seconds", &v.uptime_in_seconds);
            line("uptime_in_days", &(v.uptime_in_seconds / 86400));
            line("executable", &v.executable);
            line("config_file", &v.config_file);
            line("io_threads_active", &0);
        }
        "Clients" => {
            line("connected_clients", &v.connected_clients);
            line("cluster_connections", &0);
            line("maxclients", &v.maxclients);
            line("blocked_clients", &0);
            line("tracking_clients", &0);
            line("pubsub_clients", &v.pubsub_clients);
            line("clients_in_timeout_table", &0);
        }
        "Memory" => {
            line("used_memory", &v.used_memory);
            line("used_memory_human", &bytes_to_human(v.used_memory));
            line("used_memory_rss", &v.used_memory_rss);
            line("used_memory_rss_human", &bytes_to_human(v.used_memory_rss));
            line("used_memory_peak", &v.used_memory_peak);
            line(
                "used_memory_peak_human",
                &bytes_to_human(v.used_memory_peak),
            );
            line("maxmemory", &0);
            line("maxmemory_human", &"0B");
            line("maxmemory_policy", &"noeviction");
            line("mem_allocator", &v.mem_allocator);
        }
        "Persistence" => {
            line("loading", &0);
            line("async_loading", &0);
            line("rdb_changes_since_last_save", &0);
            line("rdb_bgsave_in_progress", &0);
            line("rdb_last_bgsave_status", &"ok");
            line("aof_enabled", &0);
            line("aof_rewrite_in_progress", &0);
            line("aof_last_bgrewrite_status", &"ok");
            line("aof_last_write_status", &"ok");
        }
        "Stats" => {
            line("total_connections_received", &v.total_connections_received);
            line("total_commands_processed", &v.total_commands_processed);
            line("total_net_input_bytes", &v.total_net_input_bytes);
            line("total_net_output_bytes", &v.total_net_output_bytes);
            line("rejected_connections", &v.rejected_connections);
            line("expired_keys", &0);
            line("evicted_keys", &0);
            line("keyspace_hits", &0);
            line("keyspace_misses", &0);
            line("pubsub_channels", &v.pubsub_channels);
            line("pubsub_patterns", &v.pubsub_patterns);
            line("pubsubshard_channels", &v.pubsub_shardchannels);
            line("total_error_replies", &v.total_error_replies);
        }
        "Replication" => {
            line("role", &"master");
            line("connected_slaves", &0);
            line("master_failover_state", &"no-failover");
            line("master_repl_offset", &0);
            line("second_repl_offset", &-1);
            line("repl_backlog_active", &0);
        }
        "CPU" => {
            line("used_cpu_sys", &Micros(v.used_cpu_sys_usec));
            line("used_cpu_user", &Micros(v.used_cpu_user_usec));
            line("used_cpu_sys_children", &Micros(0));
            line("used_cpu_user_children", &Micros(0));
        }
        "Cluster" => line("cluster_enabled", &0),
        _ => {}
    }
}

/// Microseconds as Redis prints a `struct timeval`: `%ld.%06ld` seconds.
struct Micros(u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `12.00M`, ... up to `P`, with
/// C's `%.2f` rounding (half to even on the exact binary value, as Rust's).
fn bytes_to_human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut scale = 1024u64;
    for unit in UNITS {
        if n / 1024 < scale {
            return format!("{:.2}{unit}", n as f64 / scale as f64);
        }
        scale *= 1024;
    }
    format!("{n}B")
}

/// Appends `INFO`'s reply: `text` as a bulk string in RESP2, a verbatim
/// `txt` string in RESP3.
pub fn encode_info(proto: Protocol, text: &str, out: &mut Vec<u8>) {
    proto.verbatim(*b"txt", text.as_bytes()).encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{encode_command, parse, Limits, Parsed};
    use Protocol::{Resp2, Resp3};

    fn with_args<R>(args: &[&[u8]], f: impl FnOnce(&Args<'_>) -> R) -> R {
        let mut buf = Vec::new();
        encode_command(args, &mut buf);
        match parse(&buf, &Limits::default()).unwrap() {
            Parsed::Command { args, .. } => f(&args),
            other => panic!("{other:?}"),
        }
    }

    fn rejected(args: &[&[u8]]) -> Vec<u8> {
        with_args(args, |a| {
            let mut out = Vec::new();
            resolve(a)
                .expect_err("should be rejected")
                .encode(a, &mut out);
            out
        })
    }

    fn reply(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn the_table_is_consistent() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.fullname).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "duplicate names");
        for cmd in COMMANDS {
            assert!(!cmd.fullname.contains('|'), "{}", cmd.fullname);
            assert_eq!(cmd.fullname, cmd.fullname.to_ascii_lowercase());
            assert_ne!(cmd.arity, 0, "{}", cmd.fullname);
            assert!(!cmd.docs.summary.is_empty(), "{}", cmd.fullname);
            let mut previous = "";
            for sub in cmd.subcommands {
                let prefix = format!("{}|", cmd.fullname);
                assert!(sub.fullname.starts_with(&prefix), "{}", sub.fullname);
                assert!(sub.name() > previous, "{} not sorted", sub.fullname);
                previous = sub.name();
                assert!(sub.subcommands.is_empty());
                assert!(sub.arity >= 2 || sub.arity <= -2, "{}", sub.fullname);
                assert!(!sub.allowed_when_subscribed);
            }
        }
        let subscribed: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.allowed_when_subscribed)
            .map(|c| c.fullname)
            .collect();
        assert_eq!(
            subscribed,
            [
                "subscribe",
                "unsubscribe",
                "psubscribe",
                "punsubscribe",
                "ssubscribe",
                "sunsubscribe",
                "ping",
                "reset",
                "quit"
            ]
        );
        let no_auth: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.no_auth())
            .map(|c| c.fullname)
            .collect();
        assert_eq!(no_auth, ["hello", "auth", "reset", "quit"]);
    }

    #[test]
    fn lookups_ignore_case() {
        assert_eq!(lookup(b"PuBlIsH").unwrap().fullname, "publish");
        assert_eq!(lookup(b"get"), None);
        assert_eq!(lookup(b""), None);
        assert_eq!(lookup(b"publish\0"), None);
        let pubsub = lookup(b"pubsub").unwrap();
        assert!(pubsub.is_container());
        assert_eq!(
            lookup_sub(pubsub, b"NumPat").unwrap().fullname,
            "pubsub|numpat"
        );
        assert_eq!(lookup_sub(pubsub, b"pubsub|numpat"), None);
        assert_eq!(lookup_sub(lookup(b"ping").unwrap(), b"x"), None);
        let client = lookup(b"client").unwrap();
        assert_eq!(lookup_sub(client, b"setinfo").unwrap().arity, 4);
        assert_eq!(lookup_sub(client, b"list"), None);
        assert_eq!(
            lookup_fullname(b"PUBSUB|NUMPAT").unwrap().fullname,
            "pubsub|numpat"
        );
        assert_eq!(lookup_fullname(b"pubsub").unwrap().fullname, "pubsub");
        for bad in [
            &b""[..],
            b"|",
            b"pubsub|",
            b"|numpat",
            b"ping|x",
            b"pubsub|numpat|x",
            b"nosuch",
        ] {
            assert_eq!(lookup_fullname(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn arity_is_redis_convention() {
        let publish = lookup(b"publish").unwrap();
        assert!(!publish.arity_ok(2));
        assert!(publish.arity_ok(3));
        assert!(!publish.arity_ok(4));
        let subscribe = lookup(b"subscribe").unwrap();
        assert!(!subscribe.arity_ok(1));
        assert!(subscribe.arity_ok(2));
        assert!(subscribe.arity_ok(1000));
    }

    #[test]
    fn resolve_checks_like_process_command() {
        assert_eq!(
            with_args(&[b"publish", b"c", b"m"], |a| resolve(a).unwrap().fullname),
            "publish"
        );
        assert_eq!(
            with_args(&[b"PUBSUB", b"numsub"], |a| resolve(a).unwrap().fullname),
            "pubsub|numsub"
        );
        assert_eq!(
            rejected(&[b"publish", b"c"]),
            b"-ERR wrong number of arguments for 'publish' command\r\n"
        );
        assert_eq!(
            rejected(&[b"pubsub"]),
            b"-ERR wrong number of arguments for 'pubsub' command\r\n"
        );
        assert_eq!(
            rejected(&[b"pubsub", b"numpat", b"x"]),
            b"-ERR wrong number of arguments for 'pubsub|numpat' command\r\n"
        );
        assert_eq!(
            rejected(&[b"pubsub", b"nope", b"x"]),
            b"-ERR unknown subcommand 'nope'. Try PUBSUB HELP.\r\n"
        );
        assert_eq!(
            rejected(&[b"client", b"\nlist\r\n"]),
            b"-ERR unknown subcommand ' list  '. Try CLIENT HELP.\r\n"
        );
        assert_eq!(
            rejected(&[b"get", b"a", b"b"]),
            b"-ERR unknown command 'get', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            rejected(&[b"foo"]),
            b"-ERR unknown command 'foo', with args beginning with: \r\n"
        );
    }

    #[test]
    fn unknown_command_truncates_like_redis() {
        // Seen from redis-server 7.0.15.
        assert_eq!(
            reply(|o| unknown_command(b"\nfoo\r\n", [b"a\nb"], o)),
            b"-ERR unknown command ' foo  ', with args beginning with: 'a b' \r\n"
        );
        assert_eq!(
            reply(|o| unknown_command(b"fo\0o", [&b"a\0b"[..], b"c"], o)),
            b"-ERR unknown command 'fo', with args beginning with: 'a' 'c' \r\n"
        );
        let long = reply(|o| unknown_command(&[b'x'; 200], [[b'y'; 100], [b'z'; 100]], o));
        let want = format!(
            "-ERR unknown command '{}', with args beginning with: '{}' '{}' \r\n",
            "x".repeat(128),
            "y".repeat(100),
            "z".repeat(25)
        );
        assert_eq!(long, want.as_bytes());
        // 26 × "'ab' " is 130 bytes: the list stops once at 128 or more.
        let many = reply(|o| unknown_command(b"foo", std::iter::repeat(b"ab").take(60), o));
        let want = format!(
            "-ERR unknown command 'foo', with args beginning with: {}\r\n",
            "'ab' ".repeat(26)
        );
        assert_eq!(many, want.as_bytes());
    }

    #[test]
    fn fixed_errors() {
        let pubsub = lookup(b"pubsub").unwrap();
        let numpat = lookup_sub(pubsub, b"numpat").unwrap();
        assert_eq!(
            reply(|o| subscribed_mode_error(numpat, o)),
            &b"-ERR Can't execute 'pubsub|numpat': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / \
               PING / QUIT / RESET are allowed in this context\r\n"[..]
        );
        assert_eq!(select_db(b"0", 16), Ok(0));
        assert_eq!(select_db(b"15", 16), Ok(15));
        assert_eq!(select_db(b"16", 16), Err(DB_INDEX_OUT_OF_RANGE));
        assert_eq!(select_db(b"-1", 16), Err(DB_INDEX_OUT_OF_RANGE));
        assert_eq!(select_db(b"016", 16), Err(NOT_AN_INTEGER));
        assert_eq!(select_db(b"+1", 16), Err(NOT_AN_INTEGER));
        assert_eq!(select_db(b"99999999999", 16), Err(INT_OUT_OF_RANGE));
        assert_eq!(select_db(b"-2147483648", 16), Err(DB_INDEX_OUT_OF_RANGE));
        assert_eq!(hello_protover(b"3"), Ok(Resp3));
        assert_eq!(hello_protover(b"2"), Ok(Resp2));
        assert_eq!(hello_protover(b"4"), Err(NOPROTO));
        assert_eq!(hello_protover(b"x"), Err(HELLO_PROTOVER_NOT_INTEGER));
        assert_eq!(
            reply(|o| hello_option_error(b"setname\0x", o)),
            b"-ERR Syntax error in HELLO option 'setname'\r\n"
        );
        assert_eq!(
            reply(|o| hello_option_error(b"a\r\nb", o)),
            b"-ERR Syntax error in HELLO option 'a  b'\r\n"
        );
        assert_eq!(validate_client_name(b""), Ok(()));
        assert_eq!(validate_client_name(b"a-b!~"), Ok(()));
        for bad in [&b"a b"[..], b"a\nb", b"\xc3\xa9", b"a\0"] {
            assert_eq!(validate_client_name(bad), Err(BAD_CLIENT_NAME));
        }
        assert_eq!(
            client_setinfo(b"LIB-NAME", b"redis-py"),
            Ok(ClientAttr::LibName)
        );
        assert_eq!(client_setinfo(b"lib-ver", b"5.0.1"), Ok(ClientAttr::LibVer));
        assert_eq!(client_setinfo(b"lib-ver", b""), Ok(ClientAttr::LibVer));
        assert_eq!(
            client_setinfo(b"lib-x", b"1"),
            Err(b"-ERR Unrecognized option 'lib-x'\r\n".to_vec())
        );
        assert_eq!(
            client_setinfo(b"Lib-Name", b"a b"),
            Err(
                b"-ERR Lib-Name cannot contain spaces, newlines or special characters.\r\n"
                    .to_vec()
            )
        );
    }

    #[test]
    fn command_info_entries() {
        let publish = reply(|o| command_info([b"publish"], Resp2, o));
        assert_eq!(
            publish,
            &b"*1\r\n*10\r\n$7\r\npublish\r\n:3\r\n*4\r\n+pubsub\r\n+loading\r\n+stale\r\n\
               +fast\r\n:0\r\n:0\r\n:0\r\n*2\r\n+@pubsub\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n"[..]
        );
        let resp3 = reply(|o| command_info([b"publish"], Resp3, o));
        assert_eq!(
            resp3,
            &b"*1\r\n*10\r\n$7\r\npublish\r\n:3\r\n~4\r\n+pubsub\r\n+loading\r\n+stale\r\n\
               +fast\r\n:0\r\n:0\r\n:0\r\n~2\r\n+@pubsub\r\n+@fast\r\n~0\r\n~0\r\n~0\r\n"[..]
        );
        assert_eq!(
            reply(|o| command_info([b"nosuch"], Resp2, o)),
            b"*1\r\n$-1\r\n"
        );
        assert_eq!(
            reply(|o| command_info([b"nosuch"], Resp3, o)),
            b"*1\r\n_\r\n"
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(
            reply(|o| command_info(none, Resp2, o)),
            reply(|o| command_all(Resp2, o))
        );
        assert_eq!(
            reply(command_count),
            format!(":{}\r\n", COMMANDS.len()).as_bytes()
        );
    }

    #[test]
    fn command_docs_skip_unknown_names() {
        assert_eq!(reply(|o| command_docs([b"nosuch"], Resp2, o)), b"*0\r\n");
        assert_eq!(reply(|o| command_docs([b"nosuch"], Resp3, o)), b"%0\r\n");
        let reset = reply(|o| command_docs([&b"nosuch"[..], b"RESET"], Resp3, o));
        assert_eq!(
            reset,
            &b"%1\r\n$5\r\nreset\r\n%4\r\n$7\r\nsummary\r\n$20\r\nReset the connection\r\n\
               $5\r\nsince\r\n$5\r\n6.2.0\r\n$5\r\ngroup\r\n$10\r\nconnection\r\n\
               $10\r\ncomplexity\r\n$4\r\nO(1)\r\n"[..]
        );
    }

    #[test]
    fn command_list_filters() {
        let none: [&[u8]; 0] = [];
        let all = reply(|o| command_list(none, o));
        let total: usize = COMMANDS.iter().map(|c| 1 + c.subcommands.len()).sum();
        assert!(all.starts_with(format!("*{total}\r\n$9\r\nsubscribe\r\n").as_bytes()));
        assert_eq!(
            reply(|o| command_list([&b"FILTERBY"[..], b"pattern", b"PUBSUB|N*"], o)),
            b"*2\r\n$13\r\npubsub|numpat\r\n$13\r\npubsub|numsub\r\n"
        );
        let fast = reply(|o| command_list([&b"filterby"[..], b"aclcat", b"FAST"], o));
        assert_eq!(
            fast,
            reply(|o| command_list([&b"filterby"[..], b"ACLCAT", b"fast\0x"], o))
        );
        assert!(fast.starts_with(b"*"));
        assert!(fast.windows(11).any(|w| w == b"\r\npublish\r\n"));
        assert!(!fast.windows(13).any(|w| w == b"\r\nsubscribe\r\n"));
        assert_eq!(
            reply(|o| command_list([&b"filterby"[..], b"module", b"x"], o)),
            b"*0\r\n"
        );
        assert_eq!(
            reply(|o| command_list([&b"filterby"[..], b"x", b"x"], o)),
            SYNTAX_ERROR
        );
        assert_eq!(reply(|o| command_list([b"filterby"], o)), SYNTAX_ERROR);
    }

    #[test]
    fn help_replies() {
        let h = reply(pubsub_help);
        assert!(h.starts_with(
            b"*14\r\n+PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n"
        ));
        assert!(h.ends_with(b"+HELP\r\n+    Prints this help.\r\n"));
        assert!(reply(command_help).starts_with(b"*17\r\n+COMMAND "));
        assert!(reply(client_help).starts_with(b"*15\r\n+CLIENT "));
    }

    #[test]
    fn hello_map() {
        assert_eq!(
            reply(|o| hello_reply(Resp2, 35, o)),
            &b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
               $5\r\nproto\r\n:2\r\n$2\r\nid\r\n:35\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
               $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"[..]
        );
        assert!(reply(|o| hello_reply(Resp3, 1, o)).starts_with(b"%7\r\n$6\r\nserver\r\n"));
    }

    fn section_titles(text: &str) -> Vec<&str> {
        text.split("\r\n")
            .filter_map(|l| l.strip_prefix("# "))
            .collect()
    }

    #[test]
    fn info_selects_sections_like_redis() {
        let v = InfoValues {
            ringcast_version: "0.1.0",
            tcp_port: 6379,
            uptime_in_seconds: 3 * 86400 + 5,
            ..InfoValues::default()
        };
        let none: [&[u8]; 0] = [];
        let default = info(none, &v);
        assert_eq!(
            section_titles(&default),
            [
                "Server",
                "Clients",
                "Memory",
                "Persistence",
                "Stats",
                "Replication",
                "CPU",
                "Modules",
                "Errorstats",
                "Cluster",
                "Keyspace"
            ]
        );
        assert_eq!(info([b"DEFAULT"], &v), default);
        assert_eq!(section_titles(&info([b"all"], &v)).len(), 13);
        assert_eq!(info([b"everything"], &v), info([b"all"], &v));
        assert_eq!(info([b"nosuch"], &v), "");
        assert_eq!(
            section_titles(&info(
                [&b"keyspace"[..], b"Server", b"server", b"modules"],
                &v
            )),
            ["Server", "Modules", "Keyspace"]
        );
        let server = info([b"server"], &v);
        assert!(
            server.starts_with("# Server\r\nredis_version:7.0.15\r\nringcast_version:0.1.0\r\n")
        );
        assert!(server.contains("\r\ntcp_port:6379\r\n"));
        assert!(server.contains("\r\nuptime_in_days:3\r\n"));
        assert!(server.ends_with("io_threads_active:0\r\n"));
        assert!(!server.contains("\r\n\r\n"));
        let two = info([&b"cluster"[..], b"persistence"], &v);
        assert!(two.starts_with("# Persistence\r\nloading:0\r\n"));
        assert!(two.ends_with("\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n"));
        assert_eq!(info([b"keyspace"], &v), "# Keyspace\r\n");
        let cpu = info(
            [b"cpu"],
            &InfoValues {
                used_cpu_sys_usec: 1_000_042,
                ..v
            },
        );
        assert!(cpu.starts_with("# CPU\r\nused_cpu_sys:1.000042\r\nused_cpu_user:0.000000\r\n"));
    }

    #[test]
    fn info_reply_is_verbatim_in_resp3() {
        assert_eq!(
            reply(|o| encode_info(Resp2, "# Keyspace\r\n", o)),
            b"$12\r\n# Keyspace\r\n\r\n"
        );
        assert_eq!(
            reply(|o| encode_info(Resp3, "# Keyspace\r\n", o)),
            b"=16\r\ntxt:# Keyspace\r\n\r\n"
        );
        assert_eq!(reply(|o| encode_info(Resp2, "", o)), b"$0\r\n\r\n");
    }

    #[test]
    fn human_bytes_are_bytes_to_human() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1152), "1.12K"); // 1.125, half to even
        assert_eq!(bytes_to_human(1015744), "991.94K");
        assert_eq!(bytes_to_human(12300288), "11.73M");
        assert_eq!(bytes_to_human(25276510208), "23.54G");
        assert_eq!(bytes_to_human(1 << 40), "1.00T");
        assert_eq!(bytes_to_human(1 << 50), "1.00P");
        assert_eq!(bytes_to_human(1 << 60), "1152921504606846976B");
    }

    #[test]
    fn client_info_line_fields() {
        let c = ClientInfo {
            id: 7,
            addr: "127.0.0.1:5000",
            laddr: "127.0.0.1:6379",
            fd: 9,
            pubsub: true,
            sub: 1,
            events: "r",
            cmd: "client|info",
            user: "default",
            resp: Resp3,
            lib_name: "redis-py",
            ..ClientInfo::default()
        };
        let line = client_info_line(&c);
        assert!(line.starts_with("id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=9 name= "));
        assert!(line.contains(" flags=P db=0 sub=1 psub=0 ssub=0 multi=-1 "));
        assert!(line.ends_with(" resp=3 lib-name=redis-py lib-ver="));
        let mut out = Vec::new();
        encode_client_info(Resp2, &c, &mut out);
        assert_eq!(
            out,
            format!("${}\r\n{line}\n\r\n", line.len() + 1).as_bytes()
        );
    }
}
