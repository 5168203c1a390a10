//! Temporary command metadata until ringcast-proto's `resp::commands` lands.
#![allow(dead_code)]

use ringcast_proto::resp::{Args, Protocol, Reply};

pub struct Command {
    pub name: &'static str,
    pub arity: i32,
    pub no_auth: bool,
    pub allowed_subscribed: bool,
}

impl Command {
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i32;
        if self.arity >= 0 {
            n == self.arity
        } else {
            n >= -self.arity
        }
    }
}

const fn c(name: &'static str, arity: i32, no_auth: bool, sub: bool) -> Command {
    Command {
        name,
        arity,
        no_auth,
        allowed_subscribed: sub,
    }
}

static COMMANDS: &[Command] = &[
    c("subscribe", -2, false, true),
    c("unsubscribe", -1, false, true),
    c("psubscribe", -2, false, true),
    c("punsubscribe", -1, false, true),
    c("ssubscribe", -2, false, true),
    c("sunsubscribe", -1, false, true),
    c("publish", 3, false, false),
    c("spublish", 3, false, false),
    c("pubsub", -2, false, false),
    c("ping", -1, false, true),
    c("echo", 2, false, false),
    c("quit", -1, true, true),
    c("hello", -1, true, false),
    c("auth", -2, true, false),
    c("client", -2, false, false),
    c("select", 2, false, false),
    c("reset", 1, true, true),
    c("info", -1, false, false),
    c("command", -1, false, false),
];

pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Bytes up to the first NUL, as C's `%s` prints them.
pub fn c_string(b: &[u8]) -> Vec<u8> {
    b.split(|&x| x == 0).next().unwrap_or(&[]).to_vec()
}

pub fn unknown_command(args: &Args<'_>) -> Vec<u8> {
    let name = c_string(&args.name());
    let mut rest = Vec::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let a = c_string(&a);
        rest.push(b'\'');
        rest.extend_from_slice(&a[..a.len().min(room)]);
        rest.extend_from_slice(b"' ");
    }
    let mut out = b"ERR unknown command '".to_vec();
    out.extend_from_slice(&name[..name.len().min(128)]);
    out.extend_from_slice(b"', with args beginning with: ");
    out.extend_from_slice(&rest);
    out
}

pub fn wrong_arity(name: &str) -> Vec<u8> {
    format!("ERR wrong number of arguments for '{name}' command").into_bytes()
}

pub fn subscribed_context(name: &str) -> Vec<u8> {
    format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context").into_bytes()
}

pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.len() > 20 || s.starts_with('+') || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if s.starts_with("-0") {
        return None;
    }
    s.parse().ok()
}

pub struct InfoValues {
    pub ringcast_version: &'static str,
    pub process_id: u32,
    pub tcp_port: u16,
    pub uptime_seconds: u64,
    pub connected_clients: u64,
    pub total_connections_received: u64,
    pub total_commands_processed: u64,
    pub pubsub_channels: u64,
    pub pubsub_patterns: u64,
    pub pubsub_shardchannels: u64,
    pub executable: String,
    pub reactors: u32,
}

pub fn info(_sections: &[&[u8]], v: &InfoValues) -> String {
    format!(
        "# Server\r\nredis_version:7.0.15\r\nringcast_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n# Clients\r\nconnected_clients:{}\r\n\r\n# Persistence\r\nloading:0\r\n\r\n# Stats\r\ntotal_connections_received:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n",
        v.ringcast_version,
        v.process_id,
        v.tcp_port,
        v.uptime_seconds,
        v.connected_clients,
        v.total_connections_received,
        v.pubsub_channels,
        v.pubsub_patterns
    )
}

pub fn command(_args: &Args<'_>, _proto: Protocol, out: &mut Vec<u8>) {
    Reply::Array(0).encode(out);
}

pub fn pubsub_help(_proto: Protocol, out: &mut Vec<u8>) {
    Reply::Array(0).encode(out);
}

pub fn client_help(_proto: Protocol, out: &mut Vec<u8>) {
    Reply::Array(0).encode(out);
}

pub fn hello_reply(proto: Protocol, id: i64, out: &mut Vec<u8>) {
    proto.map(7).encode(out);
    for (k, v) in [(&b"server"[..], &b"redis"[..]), (b"version", b"7.0.15")] {
        Reply::Bulk(k).encode(out);
        Reply::Bulk(v).encode(out);
    }
    Reply::Bulk(b"proto").encode(out);
    Reply::Integer(proto.version()).encode(out);
    Reply::Bulk(b"id").encode(out);
    Reply::Integer(id).encode(out);
    Reply::Bulk(b"mode").encode(out);
    Reply::Bulk(b"standalone").encode(out);
    Reply::Bulk(b"role").encode(out);
    Reply::Bulk(b"master").encode(out);
    Reply::Bulk(b"modules").encode(out);
    Reply::Array(0).encode(out);
}
