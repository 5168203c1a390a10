//! The Redis front: RESP2 and RESP3 on the Redis port, answering the
//! pub/sub commands and what clients send around them (HELLO, AUTH,
//! CLIENT, SELECT, INFO, COMMAND, PING...) as Redis 7 does, byte for byte.
//! docs/REDIS.md lists every command and where ringcast differs.
//!
//! Channels are the topics every front shares: a PUBLISH here reaches
//! native and WebSocket subscribers, and theirs reach RESP subscribers.
//! Patterns (PSUBSCRIBE) and shard channels (SSUBSCRIBE) are namespaces of
//! their own, as in Redis.
//!
//! Commands are checked in Redis's order: unknown command, arity,
//! authentication, rights, the RESP2 subscribed-mode restriction. A protocol
//! error (what the parser refuses) is answered, then the connection closes.

use crate::core::{conn::Held, Core, Query, Wire};
use crate::front::native::ct_eq;
use crate::proto::MAX_TOPIC_LEN;
use crate::topic::{owner_of, Ns};
use ringcast_proto::resp::commands::{self, Command};
use ringcast_proto::resp::{Args, Limits, Parsed, Protocol, PubSubPush, Reply};
use std::borrow::Cow;
use std::sync::atomic::Ordering;

/// Longest pattern PSUBSCRIBE takes (a channel name is at most
/// [`MAX_TOPIC_LEN`], the native topic limit).
pub(crate) const MAX_PATTERN_LEN: usize = 1024;

/// What a publish right or a subscribe right needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Right {
    Publish,
    Subscribe,
}

impl Core {
    /// Handles whole commands from `data`; returns the bytes consumed.
    /// Stops at an incomplete command, a protocol error, a pause (a
    /// command waiting for another core is not consumed: it goes on from
    /// where it stopped once the connection resumes).
    pub(super) fn process_resp(&mut self, idx: u32, data: &[u8]) -> usize {
        let max_bulk = u64::from(self.shared.config.max_frame);
        let mut off = 0;
        let auth_required = self.auth_required();
        while off < data.len() {
            let Wire::Resp(r) = &mut self.conns[idx as usize].wire else {
                break;
            };
            let limits = Limits::REDIS
                .with_max_bulk_len(max_bulk)
                .with_unauthenticated(!r.authenticated && auth_required);
            match r.parser.parse(&data[off..], &limits) {
                Ok(Parsed::Command { args, consumed }) => {
                    self.frames_in += 1;
                    if !self.resp_command(idx, &args) {
                        // Paused within the command: not consumed.
                        if let Wire::Resp(r) = &mut self.conns[idx as usize].wire {
                            r.parser = Default::default();
                        }
                        break;
                    }
                    off += consumed;
                    if !self.conns[idx as usize].reads_requests() {
                        break;
                    }
                }
                Ok(Parsed::Skip { consumed }) => off += consumed,
                Ok(Parsed::Incomplete { .. }) => break,
                Err(e) => {
                    let ev = crate::log::Event::RespProtocolError;
                    self.log_conn(
                        idx,
                        ev,
                        format_args!("RESP request refused, connection closed: {e}"),
                    );
                    self.queue_bytes(idx, e.reply().as_bytes());
                    self.stats()
                        .resp_protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    self.drain(idx);
                    break;
                }
            }
        }
        off
    }

    /// Whether a RESP client must authenticate before anything (Redis's
    /// `requirepass`): when both tokens are set, nothing is open.
    fn auth_required(&self) -> bool {
        let c = &self.shared.config;
        c.publish_token.is_some() && c.subscribe_token.is_some()
    }

    /// The connection's protocol.
    pub(crate) fn resp_proto(&self, idx: u32) -> Protocol {
        match &self.conns[idx as usize].wire {
            Wire::Resp(r) => r.proto,
            _ => Protocol::Resp2,
        }
    }

    /// Encodes RESP elements into one frame and queues it.
    pub(crate) fn resp_reply(&mut self, idx: u32, replies: &[Reply<'_>]) {
        let len = replies.iter().map(|r| r.encoded_len()).sum();
        self.queue_encoded(idx, len, |out| {
            let mut at = 0;
            for r in replies {
                at += r.encode_to_slice(&mut out[at..]);
            }
            debug_assert_eq!(at, out.len());
        });
    }

    /// Encodes a pub/sub push in the connection's protocol and queues it.
    pub(crate) fn resp_push(&mut self, idx: u32, push: &PubSubPush<'_>) {
        let proto = self.resp_proto(idx);
        self.queue_encoded(idx, push.encoded_len(proto), |out| {
            push.encode_to_slice(proto, out);
        });
    }

    /// An error reply of `text` (its code first: `ERR ...`), made one line.
    fn resp_error(&mut self, idx: u32, text: &[u8]) {
        let line = ringcast_proto::resp::sanitize_error(text);
        self.resp_reply(idx, &[Reply::Error(&line)]);
    }

    fn resp_ok(&mut self, idx: u32) {
        self.resp_reply(idx, &[Reply::SimpleString(b"OK")]);
    }

    fn resp(&self, idx: u32) -> &crate::core::RespConn {
        match &self.conns[idx as usize].wire {
            Wire::Resp(r) => r,
            _ => unreachable!("a RESP command on a connection of another front"),
        }
    }

    fn resp_mut(&mut self, idx: u32) -> &mut crate::core::RespConn {
        match &mut self.conns[idx as usize].wire {
            Wire::Resp(r) => r,
            _ => unreachable!("a RESP command on a connection of another front"),
        }
    }

    /// Acts on one command. Returns false when it paused part-way (a
    /// subscription waits for another core) and must be handled again,
    /// from the argument it stopped at, when the connection resumes.
    fn resp_command(&mut self, idx: u32, args: &Args<'_>) -> bool {
        let mut out = Vec::new();
        let cmd: &'static Command = match commands::resolve(args) {
            Ok(cmd) => cmd,
            Err(rejection) => {
                rejection.encode(args, &mut out);
                self.queue_bytes(idx, &out);
                return true;
            }
        };
        if self.auth_required() && !self.resp(idx).authenticated && !cmd.no_auth() {
            self.queue_bytes(idx, commands::NOAUTH);
            return true;
        }
        let right = match cmd.fullname {
            "publish" | "spublish" => Some(Right::Publish),
            "subscribe" | "psubscribe" | "ssubscribe" => Some(Right::Subscribe),
            _ => None,
        };
        if let Some(right) = right {
            if let Some(err) = self.resp_lacks(idx, right, cmd.fullname) {
                self.resp_error(idx, err.as_bytes());
                return true;
            }
        }
        let r = self.resp(idx);
        if r.proto == Protocol::Resp2 && r.subscribed() && !cmd.allowed_when_subscribed {
            commands::subscribed_mode_error(cmd, &mut out);
            self.queue_bytes(idx, &out);
            return true;
        }
        let proto = r.proto;
        let arg = |i: usize| args.get(i).unwrap_or(Cow::Borrowed(&[]));
        match cmd.fullname {
            "subscribe" => return self.resp_subscribe(idx, args, Ns::Channel),
            "ssubscribe" => return self.resp_subscribe(idx, args, Ns::Shard),
            "psubscribe" => return self.resp_subscribe(idx, args, Ns::Pattern),
            "unsubscribe" => self.resp_unsubscribe(idx, args, Ns::Channel),
            "sunsubscribe" => self.resp_unsubscribe(idx, args, Ns::Shard),
            "punsubscribe" => self.resp_unsubscribe(idx, args, Ns::Pattern),
            "publish" => self.resp_publish(idx, &arg(1), &arg(2), Ns::Channel),
            "spublish" => self.resp_publish(idx, &arg(1), &arg(2), Ns::Shard),
            "pubsub|channels" | "pubsub|shardchannels" if args.len() > 3 => {
                // Redis's addReplySubcommandSyntaxError.
                let sub = arg(1);
                let end = sub
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(sub.len())
                    .min(128);
                let msg = [
                    &b"ERR unknown subcommand or wrong number of arguments for '"[..],
                    &sub[..end],
                    b"'. Try PUBSUB HELP.",
                ]
                .concat();
                self.resp_error(idx, &msg);
            }
            "pubsub|channels" => {
                let pattern = args.get(2).map(|p| p.into_owned().into());
                self.query(
                    idx,
                    Query::Channels {
                        ns: Ns::Channel,
                        pattern,
                    },
                );
            }
            "pubsub|shardchannels" => {
                let pattern = args.get(2).map(|p| p.into_owned().into());
                self.query(
                    idx,
                    Query::Channels {
                        ns: Ns::Shard,
                        pattern,
                    },
                );
            }
            "pubsub|numsub" => self.resp_numsub(idx, args, Ns::Channel),
            "pubsub|shardnumsub" => self.resp_numsub(idx, args, Ns::Shard),
            "pubsub|numpat" => self.query(idx, Query::Patterns),
            "pubsub|help" => {
                commands::pubsub_help(&mut out);
                self.queue_bytes(idx, &out);
            }
            "ping" => self.resp_ping(idx, args),
            "echo" => self.resp_reply(idx, &[Reply::Bulk(&arg(1))]),
            "quit" => {
                self.resp_ok(idx);
                self.drain(idx);
            }
            "hello" => self.resp_hello(idx, args),
            "auth" => {
                let (user, pass) = if args.len() == 3 {
                    (Some(arg(1)), arg(2))
                } else {
                    (None, arg(1))
                };
                let reply = if args.len() > 3 {
                    commands::SYNTAX_ERROR
                } else if args.len() == 2
                    && self.shared.config.publish_token.is_none()
                    && self.shared.config.subscribe_token.is_none()
                {
                    commands::AUTH_WITHOUT_PASSWORD
                } else if self.resp_authenticate(idx, user.as_deref(), &pass) {
                    b"+OK\r\n"
                } else {
                    commands::WRONGPASS
                };
                self.queue_bytes(idx, reply);
            }
            "client|id" => {
                let id = self.resp(idx).id as i64;
                self.resp_reply(idx, &[Reply::Integer(id)]);
            }
            "client|getname" => match self.resp(idx).name.clone() {
                Some(n) => self.resp_reply(idx, &[Reply::Bulk(&n)]),
                None => self.resp_reply(idx, &[proto.null()]),
            },
            "client|setname" => {
                if self.resp_setname(idx, &arg(2)) {
                    self.resp_ok(idx);
                }
            }
            "client|setinfo" => match commands::client_setinfo(&arg(2), &arg(3)) {
                Ok(_) => self.resp_ok(idx),
                Err(e) => self.queue_bytes(idx, &e),
            },
            "client|info" => {
                let r = self.resp(idx);
                let name = r.name.as_deref().map(String::from_utf8_lossy);
                let info = commands::ClientInfo {
                    id: r.id,
                    fd: i64::from(self.conns[idx as usize].fd),
                    name: name.as_deref().unwrap_or(""),
                    pubsub: r.subscribed(),
                    sub: u64::from(r.channels),
                    psub: u64::from(r.patterns),
                    ssub: u64::from(r.shard_channels),
                    events: "r",
                    cmd: "client|info",
                    user: "default",
                    resp: r.proto,
                    ..Default::default()
                };
                commands::encode_client_info(proto, &info, &mut out);
                self.queue_bytes(idx, &out);
            }
            "client|help" => {
                commands::client_help(&mut out);
                self.queue_bytes(idx, &out);
            }
            "select" => match commands::select_db(&arg(1), 1) {
                Ok(_) => self.resp_ok(idx),
                Err(e) => self.queue_bytes(idx, e),
            },
            "reset" => self.resp_reset(idx),
            "info" => {
                let text = self.resp_info(args);
                commands::encode_info(proto, &text, &mut out);
                self.queue_bytes(idx, &out);
            }
            "command" => {
                commands::command_all(proto, &mut out);
                self.queue_bytes(idx, &out);
            }
            "command|count" => {
                commands::command_count(&mut out);
                self.queue_bytes(idx, &out);
            }
            "command|docs" => {
                commands::command_docs(args.iter().skip(2), proto, &mut out);
                self.queue_bytes(idx, &out);
            }
            "command|info" => {
                commands::command_info(args.iter().skip(2), proto, &mut out);
                self.queue_bytes(idx, &out);
            }
            "command|list" => {
                commands::command_list(args.iter().skip(2), &mut out);
                self.queue_bytes(idx, &out);
            }
            "command|help" => {
                commands::command_help(&mut out);
                self.queue_bytes(idx, &out);
            }
            other => {
                // In the table but not handled here: a bug of this file.
                debug_assert!(false, "command {other} not dispatched");
                commands::unknown_command(&args.name(), args.iter().skip(1), &mut out);
                self.queue_bytes(idx, &out);
            }
        }
        true
    }

    /// PUBSUB (SHARD)NUMSUB [name...].
    fn resp_numsub(&mut self, idx: u32, args: &Args<'_>, ns: Ns) {
        let names: Vec<Box<[u8]>> = args.iter().skip(2).map(|a| a.into_owned().into()).collect();
        if names.is_empty() {
            self.resp_reply(idx, &[Reply::Array(0)]);
        } else {
            self.query(idx, Query::NumSub { ns, names });
        }
    }

    /// The error for a command that needs `right` the connection lacks.
    fn resp_lacks(&self, idx: u32, right: Right, name: &str) -> Option<String> {
        let cfg = &self.shared.config;
        let c = &self.conns[idx as usize];
        let (needed, granted) = match right {
            Right::Publish => (cfg.publish_token.is_some(), c.auth_pub),
            Right::Subscribe => (cfg.subscribe_token.is_some(), c.auth_sub),
        };
        if !needed || granted {
            return None;
        }
        if !self.resp(idx).authenticated {
            return Some("NOAUTH Authentication required.".into());
        }
        Some(format!(
            "NOPERM this user has no permissions to run the '{name}' command"
        ))
    }

    /// AUTH with a token (user `default`, or none): grants the rights of
    /// each token it equals. Without tokens every password is good for
    /// `default`, as for Redis's password-less default user. False: wrong
    /// user or password.
    fn resp_authenticate(&mut self, idx: u32, user: Option<&[u8]>, pass: &[u8]) -> bool {
        if user.is_some_and(|u| u != b"default") {
            return false;
        }
        let cfg = &self.shared.config;
        let open = cfg.publish_token.is_none() && cfg.subscribe_token.is_none();
        let pub_ok = cfg.publish_token.as_deref().is_some_and(|t| ct_eq(t, pass));
        let sub_ok = cfg
            .subscribe_token
            .as_deref()
            .is_some_and(|t| ct_eq(t, pass));
        if !open && !pub_ok && !sub_ok {
            return false;
        }
        let c = &mut self.conns[idx as usize];
        c.auth_pub |= pub_ok;
        c.auth_sub |= sub_ok;
        if let Wire::Resp(r) = &mut c.wire {
            r.authenticated = true;
        }
        true
    }

    /// (P|S)SUBSCRIBE name...: each name confirmed by a push with the
    /// connection's count, in order.
    fn resp_subscribe(&mut self, idx: u32, args: &Args<'_>, ns: Ns) -> bool {
        let start = (self.resp(idx).resume_arg as usize).max(1);
        self.resp_mut(idx).resume_arg = 0;
        for (i, name) in args.iter().enumerate().skip(start) {
            let max = if ns == Ns::Pattern {
                MAX_PATTERN_LEN
            } else {
                MAX_TOPIC_LEN
            };
            if name.len() > max {
                let what = if ns == Ns::Pattern {
                    "pattern"
                } else {
                    "channel name"
                };
                let msg = format!(
                    "ERR {what} of {} bytes is longer than ringcast's limit of {max} bytes",
                    name.len()
                );
                self.resp_error(idx, msg.as_bytes());
                continue;
            }
            if !self.subscribe(idx, ns, &name) {
                // The rest, if any, once this one is confirmed: the command
                // is handled again from there (consumed when it was the last).
                let last = i + 1 == args.len();
                self.resp_mut(idx).resume_arg = if last { 0 } else { (i + 1) as u32 };
                return last;
            }
            if !self.conns[idx as usize].is_live() {
                break;
            }
        }
        true
    }

    /// (P|S)UNSUBSCRIBE [name...]: each name (every subscription of the
    /// namespace when none is given) confirmed by a push, even one the
    /// connection did not hold; with none at all, one push with a null.
    fn resp_unsubscribe(&mut self, idx: u32, args: &Args<'_>, ns: Ns) {
        let names: Vec<Box<[u8]>> = if args.len() > 1 {
            args.iter().skip(1).map(|a| a.into_owned().into()).collect()
        } else {
            self.subscribed_names(idx, ns)
        };
        if names.is_empty() {
            let count = self.resp_count(idx, ns);
            let push = match ns {
                Ns::Channel => PubSubPush::Unsubscribe {
                    channel: None,
                    count,
                },
                Ns::Pattern => PubSubPush::PUnsubscribe {
                    pattern: None,
                    count,
                },
                Ns::Shard => PubSubPush::SUnsubscribe {
                    channel: None,
                    count,
                },
            };
            self.resp_push(idx, &push);
            return;
        }
        for name in &names {
            self.unsubscribe(idx, ns, name);
            let count = self.resp_count(idx, ns);
            let push = match ns {
                Ns::Channel => PubSubPush::Unsubscribe {
                    channel: Some(name),
                    count,
                },
                Ns::Pattern => PubSubPush::PUnsubscribe {
                    pattern: Some(name),
                    count,
                },
                Ns::Shard => PubSubPush::SUnsubscribe {
                    channel: Some(name),
                    count,
                },
            };
            self.resp_push(idx, &push);
        }
        // Subscriptions left to a teardown queue are not the client's.
        self.maybe_finish(idx);
    }

    /// The count Redis puts in a (un)subscribe push of namespace `ns`.
    fn resp_count(&self, idx: u32, ns: Ns) -> usize {
        let r = self.resp(idx);
        match ns {
            Ns::Shard => r.shard_channels as usize,
            _ => (r.channels + r.patterns) as usize,
        }
    }

    /// (S)PUBLISH channel message: the receiver count now when this core
    /// owns the channel, else once its owner tells (replies keep their order).
    fn resp_publish(&mut self, idx: u32, channel: &[u8], payload: &[u8], ns: Ns) {
        if channel.len() > MAX_TOPIC_LEN {
            let msg = format!(
                "ERR channel name of {} bytes is longer than ringcast's limit of {MAX_TOPIC_LEN} bytes",
                channel.len()
            );
            self.resp_error(idx, msg.as_bytes());
            return;
        }
        let max = self.shared.config.max_frame as usize;
        // As a native PUBLISH frame's `len` (kind, flags, topic_len, topic, payload).
        let frame = 4 + channel.len() + payload.len();
        if frame > max {
            let msg = format!(
                "ERR message too large: {} bytes with its channel name, over ringcast's --max-frame of {max} bytes",
                frame
            );
            self.resp_error(idx, msg.as_bytes());
            return;
        }
        match self.publish(idx, ns, channel, payload, true) {
            Some(n) => self.resp_reply(idx, &[Reply::Integer(n as i64)]),
            None => {
                let owner = owner_of(channel, self.cores) as u16;
                self.resp_mut(idx).held.push_back(Held::Count { owner });
            }
        }
    }

    fn resp_ping(&mut self, idx: u32, args: &Args<'_>) {
        if args.len() > 2 {
            // PING's arity is -1, but it takes at most one message.
            let mut out = Vec::new();
            let ping = commands::lookup(b"ping").expect("in the table");
            commands::wrong_arity(ping, &mut out);
            self.queue_bytes(idx, &out);
            return;
        }
        let r = self.resp(idx);
        let msg = args.get(1);
        if r.proto == Protocol::Resp2 && r.subscribed() {
            let m = msg.unwrap_or(Cow::Borrowed(&[]));
            self.resp_reply(
                idx,
                &[Reply::Array(2), Reply::Bulk(b"pong"), Reply::Bulk(&m)],
            );
        } else {
            match msg {
                Some(m) => self.resp_reply(idx, &[Reply::Bulk(&m)]),
                None => self.resp_reply(idx, &[Reply::SimpleString(b"PONG")]),
            }
        }
    }

    /// HELLO [protover [AUTH user pass] [SETNAME name]].
    fn resp_hello(&mut self, idx: u32, args: &Args<'_>) {
        let all: Vec<Cow<'_, [u8]>> = args.iter().collect();
        let mut proto = None;
        if all.len() >= 2 {
            match commands::hello_protover(&all[1]) {
                Ok(p) => proto = Some(p),
                Err(e) => {
                    self.queue_bytes(idx, e);
                    return;
                }
            }
        }
        // Options are applied in order, as Redis does (an AUTH or SETNAME
        // before a bad option stays done).
        let mut j = 2;
        while j < all.len() {
            let more = all.len() - 1 - j;
            let opt = &all[j];
            if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
                if !self.resp_authenticate(idx, Some(&all[j + 1]), &all[j + 2]) {
                    self.queue_bytes(idx, commands::WRONGPASS);
                    return;
                }
                j += 3;
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
                if !self.resp_setname(idx, &all[j + 1]) {
                    return;
                }
                j += 2;
            } else {
                let mut out = Vec::new();
                commands::hello_option_error(opt, &mut out);
                self.queue_bytes(idx, &out);
                return;
            }
        }
        if self.auth_required() && !self.resp(idx).authenticated {
            self.queue_bytes(idx, commands::HELLO_NOAUTH);
            return;
        }
        if let Some(p) = proto {
            self.resp_mut(idx).proto = p;
        }
        let r = self.resp(idx);
        let mut out = Vec::new();
        commands::hello_reply(r.proto, r.id as i64, &mut out);
        self.queue_bytes(idx, &out);
    }

    /// CLIENT SETNAME's check and effect; false when it replied an error.
    fn resp_setname(&mut self, idx: u32, name: &[u8]) -> bool {
        if let Err(e) = commands::validate_client_name(name) {
            self.queue_bytes(idx, e);
            return false;
        }
        self.resp_mut(idx).name = (!name.is_empty()).then(|| name.into());
        true
    }

    /// RESET: back to a fresh connection (no subscriptions, RESP2, no
    /// name, not authenticated), without unsubscribe pushes.
    fn resp_reset(&mut self, idx: u32) {
        for ns in [Ns::Channel, Ns::Pattern, Ns::Shard] {
            for name in self.subscribed_names(idx, ns) {
                self.unsubscribe(idx, ns, &name);
            }
        }
        let tokens = self.shared.config.publish_token.is_some()
            || self.shared.config.subscribe_token.is_some();
        let c = &mut self.conns[idx as usize];
        if tokens {
            c.auth_pub = false;
            c.auth_sub = false;
        }
        if let Wire::Resp(r) = &mut c.wire {
            r.proto = Protocol::Resp2;
            r.name = None;
            r.authenticated = false;
        }
        self.resp_reply(idx, &[Reply::SimpleString(b"RESET")]);
    }

    /// INFO's text, from the engine's counters.
    fn resp_info(&self, args: &Args<'_>) -> String {
        let s = &self.shared;
        let sum = |f: fn(&crate::stats::CoreStats) -> u64| s.stats.iter().map(f).sum::<u64>();
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let now = (self.realtime)();
        let values = commands::InfoValues {
            ringcast_version: env!("CARGO_PKG_VERSION"),
            os: std::env::consts::OS,
            arch_bits: usize::BITS,
            multiplexing_api: "io_uring",
            process_id: std::process::id(),
            tcp_port: s.config.resp_listen.map_or(0, |a| a.port()),
            server_time_usec: now / 1000,
            uptime_in_seconds: now.saturating_sub(s.epoch) / 1_000_000_000,
            executable: &exe,
            connected_clients: s.connections.load(Ordering::Relaxed) as u64,
            maxclients: s.config.max_connections as u64,
            total_connections_received: sum(|c| c.accepted.load(Ordering::Relaxed)),
            total_net_output_bytes: sum(|c| {
                c.bytes_out.iter().map(|b| b.load(Ordering::Relaxed)).sum()
            }),
            rejected_connections: sum(|c| c.refused.load(Ordering::Relaxed)),
            pubsub_channels: s.topics.load(Ordering::Relaxed) as u64,
            pubsub_patterns: self.patterns.ids.len() as u64,
            mem_allocator: "libc",
            ..Default::default()
        };
        commands::info(args.iter().skip(1), &values)
    }
}
