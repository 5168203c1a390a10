//! `ringcast serve`: build a [`Config`] from flags and environment, run the daemon.

use std::ffi::OsString;

use ringcast::Config;

use crate::args::{self, EnvLookup, Failure, Flag};

/// The flags of `serve`, one per [`Config`] field, with the defaults of `Config::default()`.
fn flags() -> Vec<Flag> {
    let d = Config::default();
    let flag = |name, value, env, default: String, help| Flag {
        name,
        value,
        env: Some(env),
        default,
        help,
    };
    let bytes = |n: usize| args::format_bytes(n as u64);
    vec![
        flag(
            "--listen",
            Some("ADDR"),
            "RINGCAST_LISTEN",
            d.listen.to_string(),
            "TCP address for the native protocol; port 0 picks a free port, a bare PORT means 127.0.0.1:PORT.",
        ),
        flag(
            "--cores",
            Some("N"),
            "RINGCAST_CORES",
            format!("{} (the online CPUs)", d.cores),
            "Number of reactor threads, one io_uring each.",
        ),
        flag(
            "--cpus",
            Some("LIST"),
            "RINGCAST_CPUS",
            "none (no pinning)".into(),
            "CPUs to pin reactors to, like 0,1 or 2-5: reactor i runs on the (i mod len)th.",
        ),
        flag(
            "--max-frame",
            Some("BYTES"),
            "RINGCAST_MAX_FRAME",
            bytes(d.max_frame as usize),
            "Largest accepted frame (its len field); a larger one is ERROR 2.",
        ),
        flag(
            "--max-backlog",
            Some("BYTES"),
            "RINGCAST_MAX_BACKLOG",
            bytes(d.max_backlog),
            "Bytes queued for one connection before it is cut off with ERROR 6 (slow consumer).",
        ),
        flag(
            "--max-subscriptions",
            Some("N"),
            "RINGCAST_MAX_SUBSCRIPTIONS",
            d.max_subscriptions.to_string(),
            "Subscriptions one connection may hold; past it SUBSCRIBE gets ERROR 7.",
        ),
        flag(
            "--max-connections",
            Some("N"),
            "RINGCAST_MAX_CONNECTIONS",
            d.max_connections.to_string(),
            "Connections served at once; past it new ones are closed at once.",
        ),
        flag(
            "--max-topics",
            Some("N"),
            "RINGCAST_MAX_TOPICS",
            d.max_topics.to_string(),
            "Topics with subscribers tracked at once; a SUBSCRIBE creating one more is ERROR 4 (topics are reclaimed when their last subscriber leaves).",
        ),
        flag(
            "--pool-size",
            Some("BYTES"),
            "RINGCAST_POOL_SIZE",
            bytes(d.pool_bytes),
            "Registered frame memory shared by all rings, split evenly between reactors.",
        ),
        flag(
            "--publish-token",
            Some("TOKEN"),
            "RINGCAST_PUBLISH_TOKEN",
            "none (anyone may publish)".into(),
            "PUBLISH needs a prior AUTH with this token (prefer the variable: flags show in `ps`).",
        ),
        flag(
            "--subscribe-token",
            Some("TOKEN"),
            "RINGCAST_SUBSCRIBE_TOKEN",
            "none (anyone may subscribe)".into(),
            "SUBSCRIBE needs a prior AUTH with this token (prefer the variable: flags show in `ps`).",
        ),
        flag(
            "--shutdown-timeout",
            Some("SECS"),
            "RINGCAST_SHUTDOWN_TIMEOUT",
            format!("{}s", d.shutdown_timeout.as_secs_f64()),
            "How long a graceful shutdown waits for owed frames to flush; decimals and a ms suffix are fine.",
        ),
        flag(
            "--busy-poll",
            None,
            "RINGCAST_BUSY_POLL",
            "off".into(),
            "Reactors spin instead of sleeping in the kernel when idle (for dedicated cores); the variable takes 1 or 0.",
        ),
        flag(
            "--ws-listen",
            Some("ADDR|off"),
            "RINGCAST_WS_LISTEN",
            d.ws_listen.map_or("off".into(), |a| a.to_string()),
            "WebSocket and HTTP address: /ws (subprotocol ringcast.v1), the live page at /, /healthz, /metrics; off disables it.",
        ),
        flag(
            "--allowed-origins",
            Some("LIST"),
            "RINGCAST_ALLOWED_ORIGINS",
            "any".into(),
            "Comma-separated Origins a browser may connect from (e.g. https://app.example.com); others get 403.",
        ),
        flag(
            "--ws-ping-interval",
            Some("SECS"),
            "RINGCAST_WS_PING_INTERVAL",
            format!("{}s", d.ws_ping_interval.as_secs_f64()),
            "A WebSocket peer silent this long is sent a ping.",
        ),
        flag(
            "--ws-idle-timeout",
            Some("SECS"),
            "RINGCAST_WS_IDLE_TIMEOUT",
            format!("{}s", d.ws_idle_timeout.as_secs_f64()),
            "A WebSocket peer silent this long (a pong counts) is closed with 1001.",
        ),
        flag(
            "--http-timeout",
            Some("SECS"),
            "RINGCAST_HTTP_TIMEOUT",
            format!("{}s", d.http_timeout.as_secs_f64()),
            "An HTTP request or WebSocket handshake must arrive whole within this, else 408 and close.",
        ),
        flag(
            "--frame-timeout",
            Some("SECS"),
            "RINGCAST_FRAME_TIMEOUT",
            format!("{}s", d.frame_timeout.as_secs_f64()),
            "A frame (or WebSocket message) a client has begun must arrive whole within this, else ERROR 9 and close.",
        ),
        flag(
            "--max-incomplete",
            Some("BYTES"),
            "RINGCAST_MAX_INCOMPLETE",
            bytes(d.max_incomplete),
            "Bytes of incomplete frames held for all connections together; past it the connection holding the most gets ERROR 9.",
        ),
        flag(
            "--http-reserve",
            Some("N"),
            "RINGCAST_HTTP_RESERVE",
            d.http_reserve.to_string(),
            "Plain HTTP connections (/metrics, /healthz, /) at once, apart from --max-connections so monitoring answers at that limit.",
        ),
        flag(
            "--close-linger",
            Some("SECS"),
            "RINGCAST_CLOSE_LINGER",
            format!("{}s", d.close_linger.as_secs_f64()),
            "How long a connection being closed with an ERROR may take to read it while it keeps reading (2 s without progress ends it sooner).",
        ),
    ]
}

/// `ringcast serve --help`.
pub fn help() -> String {
    format!(
        "ringcast serve: run the broadcast daemon in the foreground until SIGINT or SIGTERM,\n\
         then shut down gracefully.\n\
         \n\
         Usage: ringcast serve [FLAGS]\n\
         \n\
         Flags (a flag beats its environment variable, which beats the default;\n\
         an empty variable counts as unset; BYTES takes K/KiB, M/MiB or G/GiB\n\
         suffixes, powers of 1024, e.g. 8MiB):\n\
         {}\n\
         Examples:\n  \
           ringcast serve\n  \
           ringcast serve --listen 0.0.0.0:7400 --cores 4 --cpus 2-5 --busy-poll\n  \
           RINGCAST_PUBLISH_TOKEN=s3cret ringcast serve --max-backlog 16MiB\n",
        args::render_flags(&flags())
    )
}

/// Builds the configuration from the command line and environment.
fn config(words: Vec<OsString>, env: EnvLookup<'_>) -> Result<Option<Config>, Failure> {
    let flags = flags();
    let p = args::parse("serve", &flags, false, words, env)?;
    if p.help {
        return Ok(None);
    }
    let mut c = Config::default();
    if let Some(v) = p.get("--listen", args::parse_addr)? {
        c.listen = v;
    }
    if let Some(v) = p.get("--cores", positive)? {
        c.cores = v;
    }
    if let Some(v) = p.get("--cpus", args::parse_cpus)? {
        c.cpus = v;
    }
    if let Some(v) = p.get("--max-frame", args::parse_byte_size_u32)? {
        c.max_frame = v;
    }
    if let Some(v) = p.get("--max-backlog", args::parse_byte_size_usize)? {
        c.max_backlog = v;
    }
    if let Some(v) = p.get("--max-subscriptions", args::parse_count_usize)? {
        c.max_subscriptions = v;
    }
    if let Some(v) = p.get("--max-connections", args::parse_count_usize)? {
        c.max_connections = v;
    }
    if let Some(v) = p.get("--max-topics", args::parse_count_usize)? {
        c.max_topics = v;
    }
    if let Some(v) = p.get("--pool-size", args::parse_byte_size_usize)? {
        c.pool_bytes = v;
    }
    if let Some(v) = p.bytes("--publish-token")? {
        c.publish_token = Some(v);
    }
    if let Some(v) = p.bytes("--subscribe-token")? {
        c.subscribe_token = Some(v);
    }
    if let Some(v) = p.get("--shutdown-timeout", args::parse_duration)? {
        c.shutdown_timeout = v;
    }
    c.busy_poll = p.switch("--busy-poll")?;
    if let Some(v) = p.get("--ws-listen", parse_ws_listen)? {
        c.ws_listen = v;
    }
    if let Some(v) = p.get("--allowed-origins", parse_origins)? {
        c.allowed_origins = v;
    }
    if let Some(v) = p.get("--ws-ping-interval", args::parse_duration)? {
        c.ws_ping_interval = v;
    }
    if let Some(v) = p.get("--ws-idle-timeout", args::parse_duration)? {
        c.ws_idle_timeout = v;
    }
    if let Some(v) = p.get("--http-timeout", args::parse_duration)? {
        c.http_timeout = v;
    }
    if let Some(v) = p.get("--frame-timeout", args::parse_duration)? {
        c.frame_timeout = v;
    }
    if let Some(v) = p.get("--max-incomplete", args::parse_byte_size_usize)? {
        c.max_incomplete = v;
    }
    if let Some(v) = p.get("--http-reserve", positive)? {
        c.http_reserve = v;
    }
    if let Some(v) = p.get("--close-linger", args::parse_duration)? {
        c.close_linger = v;
    }
    Ok(Some(c))
}

/// `off` or an address.
fn parse_ws_listen(s: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    args::parse_addr(s).map(Some)
}

/// A comma-separated list of origins, each `scheme://host[:port]`.
fn parse_origins(s: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    for o in &list {
        let ok = (o.starts_with("http://") || o.starts_with("https://"))
            && !o.ends_with('/')
            && !o.contains(char::is_whitespace);
        if !ok {
            return Err(format!(
                "expected origins like https://app.example.com (scheme and host, no path or trailing slash), got {o:?}"
            ));
        }
    }
    if list.is_empty() {
        return Err("expected at least one origin".into());
    }
    Ok(list)
}

/// A count of at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match args::parse_count_usize(s)? {
        0 => Err(format!("expected a number of at least 1, got {s:?}")),
        n => Ok(n),
    }
}

/// `ringcast serve [FLAGS]`.
pub fn run(words: Vec<OsString>) -> Result<(), Failure> {
    let Some(config) = config(words, &args::process_env)? else {
        print!("{}", help());
        return Ok(());
    };
    ringcast::server::run_daemon(config).map_err(|e| Failure::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn config_of(words: &[&str], env: &[(&str, &str)]) -> Result<Config, Failure> {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let lookup = |k: &str| env.get(k).map(OsString::from);
        let words = words.iter().map(OsString::from).collect();
        config(words, &lookup).map(|c| c.expect("no --help given"))
    }

    #[test]
    fn every_field_has_a_flag_and_a_variable() {
        let c = config_of(
            &[
                "--listen=0.0.0.0:7500",
                "--cores",
                "3",
                "--cpus",
                "0,2-3",
                "--max-frame",
                "2MiB",
                "--max-backlog",
                "16M",
                "--max-subscriptions",
                "10",
                "--max-connections",
                "20",
                "--max-topics",
                "30",
                "--pool-size",
                "1GiB",
                "--publish-token",
                "p",
                "--subscribe-token",
                "s",
                "--shutdown-timeout",
                "0.25",
                "--busy-poll",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:7500");
        assert_eq!((c.cores, c.cpus.as_slice()), (3, &[0, 2, 3][..]));
        assert_eq!((c.max_frame, c.max_backlog), (2 << 20, 16 << 20));
        assert_eq!(
            (c.max_subscriptions, c.max_connections, c.max_topics),
            (10, 20, 30)
        );
        assert_eq!(c.pool_bytes, 1 << 30);
        assert_eq!(c.publish_token.as_deref(), Some(&b"p"[..]));
        assert_eq!(c.subscribe_token.as_deref(), Some(&b"s"[..]));
        assert_eq!(c.shutdown_timeout, Duration::from_millis(250));
        assert!(c.busy_poll);

        let env = [
            ("RINGCAST_LISTEN", "127.0.0.1:0"),
            ("RINGCAST_CORES", "2"),
            ("RINGCAST_CPUS", "1"),
            ("RINGCAST_MAX_FRAME", "64K"),
            ("RINGCAST_MAX_BACKLOG", "1MiB"),
            ("RINGCAST_MAX_SUBSCRIPTIONS", "1"),
            ("RINGCAST_MAX_CONNECTIONS", "2"),
            ("RINGCAST_MAX_TOPICS", "3"),
            ("RINGCAST_POOL_SIZE", "8MiB"),
            ("RINGCAST_PUBLISH_TOKEN", "pe"),
            ("RINGCAST_SUBSCRIBE_TOKEN", "se"),
            ("RINGCAST_SHUTDOWN_TIMEOUT", "1"),
            ("RINGCAST_BUSY_POLL", "1"),
        ];
        let c = config_of(&[], &env).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!((c.cores, c.cpus.as_slice()), (2, &[1][..]));
        assert_eq!((c.max_frame, c.max_backlog), (64 << 10, 1 << 20));
        assert_eq!(
            (c.max_subscriptions, c.max_connections, c.max_topics),
            (1, 2, 3)
        );
        assert_eq!(c.pool_bytes, 8 << 20);
        assert_eq!(c.publish_token.as_deref(), Some(&b"pe"[..]));
        assert_eq!(c.subscribe_token.as_deref(), Some(&b"se"[..]));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(1));
        assert!(c.busy_poll);

        // Flags beat the environment.
        let c = config_of(&["--cores", "5"], &env).unwrap();
        assert_eq!(c.cores, 5);
    }

    #[test]
    fn defaults_and_errors() {
        let c = config_of(&[], &[]).unwrap();
        let d = Config::default();
        assert_eq!(
            (c.listen, c.max_frame, c.pool_bytes, c.busy_poll),
            (d.listen, d.max_frame, d.pool_bytes, false)
        );
        assert_eq!(
            config_of(&["--max-frame", "x"], &[]).unwrap_err(),
            Failure::Usage("--max-frame: expected a byte size like 1MiB, got \"x\"".into())
        );
        assert_eq!(
            config_of(&["--cores", "0"], &[]).unwrap_err().exit_code(),
            2
        );
        assert!(config_of(&[], &[("RINGCAST_BUSY_POLL", "maybe")]).is_err());
        assert!(config_of(&["--publish-token", ""], &[]).is_err());
        // An empty variable is unset.
        assert_eq!(
            config_of(&[], &[("RINGCAST_PUBLISH_TOKEN", "")])
                .unwrap()
                .publish_token,
            None
        );
    }

    #[test]
    fn help_lists_every_flag_with_its_variable() {
        let text = help();
        for f in flags() {
            assert!(text.contains(f.name), "{}", f.name);
            assert!(text.contains(f.env.unwrap()), "{}", f.name);
        }
    }

    #[test]
    fn websocket_flags_and_variables() {
        let c = config_of(
            &[
                "--ws-listen",
                "0.0.0.0:8401",
                "--allowed-origins",
                "https://a.example, http://b.example:8080",
                "--ws-ping-interval",
                "5",
                "--ws-idle-timeout",
                "15s",
                "--http-timeout",
                "500ms",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.ws_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:8401")
        );
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "http://b.example:8080"]
        );
        assert_eq!(c.ws_ping_interval, Duration::from_secs(5));
        assert_eq!(c.ws_idle_timeout, Duration::from_secs(15));
        assert_eq!(c.http_timeout, Duration::from_millis(500));

        let off = config_of(&[], &[("RINGCAST_WS_LISTEN", "off")]).unwrap();
        assert_eq!(off.ws_listen, None);
        assert_eq!(
            config_of(&[], &[]).unwrap().ws_listen,
            Config::default().ws_listen
        );
        for bad in [
            "example.com",
            "https://a.example/",
            "https://a.example/path x",
            "",
        ] {
            assert!(
                config_of(&["--allowed-origins", bad], &[]).is_err(),
                "accepted origins {bad:?}"
            );
        }
        assert!(config_of(&["--ws-listen", "nowhere"], &[]).is_err());
    }

    #[test]
    fn isolation_limits_have_flags_and_variables() {
        let c = config_of(
            &[
                "--frame-timeout",
                "2.5",
                "--max-incomplete",
                "64MiB",
                "--http-reserve",
                "8",
                "--close-linger",
                "3s",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.frame_timeout, Duration::from_millis(2500));
        assert_eq!(c.max_incomplete, 64 << 20);
        assert_eq!(c.http_reserve, 8);
        assert_eq!(c.close_linger, Duration::from_secs(3));
        let env = [
            ("RINGCAST_FRAME_TIMEOUT", "500ms"),
            ("RINGCAST_MAX_INCOMPLETE", "1MiB"),
            ("RINGCAST_HTTP_RESERVE", "2"),
            ("RINGCAST_CLOSE_LINGER", "1"),
        ];
        let c = config_of(&[], &env).unwrap();
        assert_eq!(c.frame_timeout, Duration::from_millis(500));
        assert_eq!(c.max_incomplete, 1 << 20);
        assert_eq!(c.http_reserve, 2);
        assert_eq!(c.close_linger, Duration::from_secs(1));
        let d = config_of(&[], &[]).unwrap();
        let want = Config::default();
        assert_eq!(
            (
                d.frame_timeout,
                d.max_incomplete,
                d.http_reserve,
                d.close_linger
            ),
            (
                want.frame_timeout,
                want.max_incomplete,
                want.http_reserve,
                want.close_linger
            )
        );
        assert!(config_of(&["--http-reserve", "0"], &[]).is_err());
    }
}
