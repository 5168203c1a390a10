//! `ringcast serve`: build a [`Config`] from flags and environment, run the daemon.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use ringcast::server::Outcome;
use ringcast::Config;

use crate::connect::{self, Token};
use crate::logging::{self, LogArgs};
use crate::Failure;
use ringcast::values::{self, format_bytes, format_duration};

/// `Config::default()`, made once: the defaults the flags take and help shows.
fn defaults() -> &'static Config {
    static DEFAULTS: OnceLock<Config> = OnceLock::new();
    DEFAULTS.get_or_init(Config::default)
}

/// A CPU list (its own name, so that clap takes it as one value, not many).
type Cpus = Vec<usize>;
/// A list of Origins, one value (see [`Cpus`]).
type Origins = Vec<String>;
/// An address or `off`, one value whose absence is `off`, not "not given".
type MaybeAddr = Option<SocketAddr>;

const LONG_ABOUT: &str = "\
Run the broadcast daemon in the foreground until SIGINT or SIGTERM, then shut
down gracefully: stop accepting, flush what each subscriber is owed (bounded
by --shutdown-timeout), send ERROR 8, and exit 0. The last log line says
whether every owed byte was flushed or how many connections were still owed
how many bytes when the timeout hit. A second SIGINT or SIGTERM during the
flush stops at once. Under systemd (Type=notify) readiness is sent once every
reactor runs.

Logs go to stderr (--log-format, --log-level): the effective configuration
at start, then the events an operator should see (slow consumers cut off,
refusals, limits hit, protocol errors rate-limited, relay state, shutdown);
nothing per message.

Every flag has an environment variable: a flag beats its variable, which beats
the default, and an empty variable counts as unset. BYTES takes B, K/KiB, M/MiB
or G/GiB (powers of 1024), e.g. 8MiB; SECS takes decimals and an s or ms
suffix, e.g. 2.5 or 500ms.";

const EXAMPLES: &str = "\
Examples:
  ringcast serve
  ringcast serve --listen 0.0.0.0:7400 --cores 4 --cpus 2-5 --busy-poll
  RINGCAST_PUBLISH_TOKEN=s3cret ringcast serve --max-backlog 16MiB
  ringcast serve --ws-listen off
  ringcast serve --log-format json --log-level warn,ringcast=info

Exit codes: 0 stopped after a graceful shutdown (even when its timeout hit:
the last log line says), 1 could not start or failed (the message says why),
2 bad usage, 130 or 143 a second SIGINT or SIGTERM stopped it at once.";

/// The flags of `serve`: one per [`Config`] field, each with a `RINGCAST_*`
/// variable and the default of `Config::default()`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Run the broadcast daemon in the foreground.",
    long_about = LONG_ABOUT,
    after_help = EXAMPLES
)]
pub struct ServeArgs {
    /// TCP address for the native protocol; port 0 picks a free port, a bare
    /// PORT means 127.0.0.1:PORT.
    #[arg(long, env = "RINGCAST_LISTEN", value_name = "ADDR",
          value_parser = values::addr, default_value_t = defaults().listen)]
    listen: SocketAddr,

    /// Number of reactor threads, one io_uring each; the default is the
    /// number of online CPUs.
    #[arg(long, env = "RINGCAST_CORES", value_name = "N",
          value_parser = values::positive, default_value_t = defaults().cores)]
    cores: usize,

    /// CPUs to pin reactors to, like 0,1 or 2-5: reactor i runs on the
    /// (i mod len)th; none: no pinning.
    #[arg(long, env = "RINGCAST_CPUS", value_name = "LIST",
          value_parser = values::cpus, default_value = "none")]
    cpus: Cpus,

    /// Largest accepted frame (its len field); a larger one is ERROR 2.
    #[arg(long, env = "RINGCAST_MAX_FRAME", value_name = "BYTES",
          value_parser = values::byte_size_u32,
          default_value = format_bytes(defaults().max_frame.into()))]
    max_frame: u32,

    /// Bytes queued for one connection before it is cut off with ERROR 6
    /// (slow consumer).
    #[arg(long, env = "RINGCAST_MAX_BACKLOG", value_name = "BYTES",
          value_parser = values::byte_size_usize,
          default_value = format_bytes(defaults().max_backlog as u64))]
    max_backlog: usize,

    /// Subscriptions one connection may hold; past it SUBSCRIBE gets ERROR 7.
    #[arg(long, env = "RINGCAST_MAX_SUBSCRIPTIONS", value_name = "N",
          value_parser = values::count_usize, default_value_t = defaults().max_subscriptions)]
    max_subscriptions: usize,

    /// Connections served at once; past it new ones are closed at once (the
    /// open-file limit may cap it).
    #[arg(long, env = "RINGCAST_MAX_CONNECTIONS", value_name = "N",
          value_parser = values::count_usize, default_value_t = defaults().max_connections)]
    max_connections: usize,

    /// Topics with subscribers tracked at once; a SUBSCRIBE creating one more
    /// is ERROR 4 (topics are reclaimed when their last subscriber leaves).
    #[arg(long, env = "RINGCAST_MAX_TOPICS", value_name = "N",
          value_parser = values::count_usize, default_value_t = defaults().max_topics)]
    max_topics: usize,

    /// Registered frame memory shared by all rings, split evenly between reactors.
    #[arg(long, env = "RINGCAST_POOL_SIZE", value_name = "BYTES",
          value_parser = values::byte_size_usize,
          default_value = format_bytes(defaults().pool_bytes as u64))]
    pool_size: usize,

    /// PUBLISH needs a prior AUTH with this token; by default anyone may
    /// publish. Prefer the variable: flags show in `ps`.
    #[arg(long, env = "RINGCAST_PUBLISH_TOKEN", value_name = "TOKEN",
          value_parser = connect::token())]
    publish_token: Option<Token>,

    /// SUBSCRIBE needs a prior AUTH with this token; by default anyone may
    /// subscribe. Prefer the variable: flags show in `ps`.
    #[arg(long, env = "RINGCAST_SUBSCRIBE_TOKEN", value_name = "TOKEN",
          value_parser = connect::token())]
    subscribe_token: Option<Token>,

    /// How long a graceful shutdown waits for owed frames to flush.
    #[arg(long, env = "RINGCAST_SHUTDOWN_TIMEOUT", value_name = "SECS",
          value_parser = values::duration,
          default_value = format_duration(defaults().shutdown_timeout))]
    shutdown_timeout: Duration,

    /// Reactors spin instead of sleeping in the kernel when idle (for
    /// dedicated cores); off by default, and the variable takes 1 or 0.
    #[arg(long, env = "RINGCAST_BUSY_POLL", value_parser = values::boolean)]
    busy_poll: bool,

    /// Adaptive polling: the most a reactor polls before each predicted
    /// input (and after it, while the input is late). It learns a steady
    /// stream's schedule, sleeps until shortly before the next input, then
    /// polls, so the stream pays no wake-up; an idle daemon still sleeps.
    /// 0 sleeps at once (500us as 0.5ms)
    #[arg(long, env = "RINGCAST_IDLE_SPIN", value_name = "DURATION",
          value_parser = values::duration,
          default_value = format_duration(defaults().idle_spin))]
    idle_spin: Duration,

    /// With --idle-spin: poll that long after every input instead of
    /// predicting the next one (for comparison); off by default, and the
    /// variable takes 1 or 0.
    #[arg(long, env = "RINGCAST_IDLE_SPIN_FIXED", value_parser = values::boolean)]
    idle_spin_fixed: bool,

    /// WebSocket and HTTP address: /ws (subprotocol ringcast.v1), the live
    /// page at /, /healthz, /metrics; off disables it.
    #[arg(long, env = "RINGCAST_WS_LISTEN", value_name = "ADDR|off",
          value_parser = values::addr_or_off,
          default_value = defaults().ws_listen.map_or("off".into(), |a| a.to_string()))]
    ws_listen: MaybeAddr,

    /// Redis-compatible pub/sub address (RESP2 and RESP3: redis-cli,
    /// redis-py, ioredis...), sharing topics with the other fronts; off
    /// disables it.
    #[arg(long, env = "RINGCAST_RESP_LISTEN", value_name = "ADDR|off",
          value_parser = values::addr_or_off,
          default_value = defaults().resp_listen.map_or("off".into(), |a| a.to_string()))]
    resp_listen: MaybeAddr,

    /// Comma-separated Origins a browser may connect from (e.g.
    /// https://app.example.com), others get 403; any: no check.
    #[arg(long, env = "RINGCAST_ALLOWED_ORIGINS", value_name = "LIST",
          value_parser = values::origins, default_value = "any")]
    allowed_origins: Origins,

    /// A WebSocket peer silent this long is sent a ping.
    #[arg(long, env = "RINGCAST_WS_PING_INTERVAL", value_name = "SECS",
          value_parser = values::duration,
          default_value = format_duration(defaults().ws_ping_interval))]
    ws_ping_interval: Duration,

    /// A WebSocket peer silent this long (a pong counts) is closed with 1001.
    #[arg(long, env = "RINGCAST_WS_IDLE_TIMEOUT", value_name = "SECS",
          value_parser = values::duration,
          default_value = format_duration(defaults().ws_idle_timeout))]
    ws_idle_timeout: Duration,

    /// An HTTP request or WebSocket handshake must arrive whole within this,
    /// else 408 and close.
    #[arg(long, env = "RINGCAST_HTTP_TIMEOUT", value_name = "SECS",
          value_parser = values::duration,
          default_value = format_duration(defaults().http_timeout))]
    http_timeout: Duration,

    /// A frame (or WebSocket message) a client has begun must arrive whole
    /// within this, else ERROR 9 and close.
    #[arg(long, env = "RINGCAST_FRAME_TIMEOUT", value_name = "SECS",
          value_parser = values::duration,
          default_value = format_duration(defaults().frame_timeout))]
    frame_timeout: Duration,

    /// Bytes of incomplete frames held for all connections together; past it
    /// the connection holding the most gets ERROR 9.
    #[arg(long, env = "RINGCAST_MAX_INCOMPLETE", value_name = "BYTES",
          value_parser = values::byte_size_usize,
          default_value = format_bytes(defaults().max_incomplete as u64))]
    max_incomplete: usize,

    /// Plain HTTP connections (/metrics, /healthz, /) at once, apart from
    /// --max-connections so monitoring answers at that limit.
    #[arg(long, env = "RINGCAST_HTTP_RESERVE", value_name = "N",
          value_parser = values::positive, default_value_t = defaults().http_reserve)]
    http_reserve: usize,

    /// How long a connection being closed with an ERROR may take to read it
    /// while it keeps reading (2 s without progress ends it sooner).
    #[arg(long, env = "RINGCAST_CLOSE_LINGER", value_name = "SECS",
          value_parser = values::duration,
          default_value = format_duration(defaults().close_linger))]
    close_linger: Duration,

    /// NATS servers to relay through, comma-separated (nats://host:port);
    /// nodes started with the same servers and prefix share their topics
    /// (default: none, a single node).
    #[arg(
        long,
        env = "RINGCAST_NATS",
        value_name = "URL[,URL...]",
        value_delimiter = ','
    )]
    nats: Vec<String>,

    /// NATS credentials file (.creds: JWT and NKey seed; default: none).
    #[arg(long, env = "RINGCAST_NATS_CREDS", value_name = "FILE")]
    nats_creds: Option<std::path::PathBuf>,

    /// NATS user, with --nats-password (default: none).
    #[arg(
        long,
        env = "RINGCAST_NATS_USER",
        value_name = "USER",
        requires = "nats_password"
    )]
    nats_user: Option<String>,

    /// NATS password, with --nats-user (default: none).
    #[arg(
        long,
        env = "RINGCAST_NATS_PASSWORD",
        value_name = "PASSWORD",
        requires = "nats_user"
    )]
    nats_password: Option<String>,

    /// NATS authentication token (default: none).
    #[arg(long, env = "RINGCAST_NATS_TOKEN", value_name = "TOKEN")]
    nats_token: Option<String>,

    /// TLS to NATS: a CA certificate (PEM) to trust besides the system's
    /// roots; makes TLS required (default: TLS only if a server asks for it).
    #[arg(long, env = "RINGCAST_NATS_TLS_CA", value_name = "FILE")]
    nats_tls_ca: Option<std::path::PathBuf>,

    /// TLS to NATS: this node's client certificate (PEM), with --nats-tls-key,
    /// for servers that verify clients; makes TLS required (default: none).
    #[arg(
        long,
        env = "RINGCAST_NATS_TLS_CERT",
        value_name = "FILE",
        requires = "nats_tls_key"
    )]
    nats_tls_cert: Option<std::path::PathBuf>,

    /// TLS to NATS: the client certificate's private key (PEM), with
    /// --nats-tls-cert (default: none).
    #[arg(
        long,
        env = "RINGCAST_NATS_TLS_KEY",
        value_name = "FILE",
        requires = "nats_tls_cert"
    )]
    nats_tls_key: Option<std::path::PathBuf>,

    /// This node's name in relayed messages (default: HOSTNAME:PORT of --listen).
    #[arg(long, env = "RINGCAST_NODE_NAME", value_name = "NAME")]
    node_name: Option<String>,

    /// First token of every NATS subject ringcast uses.
    #[arg(long, env = "RINGCAST_NATS_PREFIX", value_name = "TOKEN",
          default_value = defaults().nats_prefix.clone())]
    nats_prefix: String,

    /// Messages waiting between a reactor and the NATS relay, per reactor and
    /// direction; past it they are dropped, counted and reported as a GAP.
    #[arg(long, env = "RINGCAST_RELAY_QUEUE", value_name = "N",
          value_parser = values::positive, default_value_t = defaults().relay_queue)]
    relay_queue: usize,

    /// Share the listen ports with a ringcast already serving them, for an
    /// upgrade without downtime: start the new version with --takeover,
    /// then SIGTERM the old one (it stops accepting at once, then drains);
    /// without it a port in use is an error. Off by default; the variable
    /// takes 1 or 0.
    #[arg(long, env = "RINGCAST_TAKEOVER", value_parser = values::boolean)]
    takeover: bool,

    #[command(flatten)]
    log: LogArgs,
}

impl ServeArgs {
    /// The configuration. Both sides are written out whole, with no `..`:
    /// a new [`Config`] field does not compile until it has a flag here.
    fn into_config(self) -> Config {
        let ServeArgs {
            listen,
            cores,
            cpus,
            max_frame,
            max_backlog,
            max_subscriptions,
            max_connections,
            max_topics,
            pool_size,
            publish_token,
            subscribe_token,
            shutdown_timeout,
            busy_poll,
            idle_spin,
            idle_spin_fixed,
            ws_listen,
            resp_listen,
            allowed_origins,
            ws_ping_interval,
            ws_idle_timeout,
            http_timeout,
            frame_timeout,
            max_incomplete,
            http_reserve,
            close_linger,
            nats,
            nats_creds,
            nats_user,
            nats_password,
            nats_token,
            nats_tls_ca,
            nats_tls_cert,
            nats_tls_key,
            node_name,
            nats_prefix,
            relay_queue,
            takeover,
            log: _,
        } = self;
        Config {
            listen,
            cores,
            cpus,
            max_frame,
            max_backlog,
            max_subscriptions,
            max_connections,
            max_topics,
            pool_bytes: pool_size,
            publish_token,
            subscribe_token,
            shutdown_timeout,
            busy_poll,
            idle_spin,
            idle_spin_fixed,
            ws_listen,
            resp_listen,
            allowed_origins,
            ws_ping_interval,
            ws_idle_timeout,
            http_timeout,
            frame_timeout,
            max_incomplete,
            http_reserve,
            close_linger,
            nats,
            nats_creds,
            nats_user,
            nats_password,
            nats_token,
            nats_tls_ca,
            nats_tls_cert,
            nats_tls_key,
            node_name,
            nats_prefix,
            relay_queue,
            takeover,
        }
    }
}

/// `ringcast serve [OPTIONS]`.
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    logging::init(&args.log).map_err(Failure::Failed)?;
    match ringcast::server::run_daemon(args.into_config()) {
        Ok(Outcome::Stopped(_)) => Ok(()),
        Ok(forced @ Outcome::Interrupted(_)) => Err(Failure::Exit(forced.exit_code())),
        Err(e) => {
            // Through the logger, so that a log shipper reading JSON gets it
            // as one of its lines; exit 1 without printing it twice.
            tracing::error!(target: "ringcast", event = "failed", "{e}");
            Err(Failure::Exit(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{help_of, with_env};
    use crate::{parse, Command};

    /// The configuration `ringcast serve WORDS` makes with exactly `env` as
    /// its RINGCAST_* environment.
    fn config_of(words: &[&str], env: &[(&str, &str)]) -> Result<Config, Failure> {
        let argv = ["ringcast", "serve"].iter().chain(words);
        match with_env(env, || parse(argv.map(Into::into).collect()))?.command {
            Command::Serve(args) => Ok(args.into_config()),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn usage_message(words: &[&str], env: &[(&str, &str)]) -> String {
        match config_of(words, env) {
            Err(Failure::Usage(e)) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                e.to_string()
            }
            other => panic!("expected a usage error for {words:?} {env:?}, got {other:?}"),
        }
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
        let c = config_of(&["--cores", "5", "--cpus", "none"], &env).unwrap();
        assert_eq!((c.cores, c.cpus.as_slice()), (5, &[][..]));
        assert!(
            !config_of(&[], &[("RINGCAST_BUSY_POLL", "off")])
                .unwrap()
                .busy_poll
        );
        // --idle-spin: 200 µs by default; a flag or its variable.
        assert_eq!(
            config_of(&[], &[]).unwrap().idle_spin,
            Duration::from_micros(200)
        );
        assert_eq!(
            config_of(&["--idle-spin", "0"], &[]).unwrap().idle_spin,
            Duration::ZERO
        );
        assert_eq!(
            config_of(&["--idle-spin", "0.2ms"], &[]).unwrap().idle_spin,
            Duration::from_micros(200)
        );
        assert_eq!(
            config_of(&[], &[("RINGCAST_IDLE_SPIN", "1ms")])
                .unwrap()
                .idle_spin,
            Duration::from_millis(1)
        );
        // --idle-spin-fixed: off by default (adaptive polling).
        assert!(!config_of(&[], &[]).unwrap().idle_spin_fixed);
        assert!(
            config_of(&["--idle-spin", "1ms", "--idle-spin-fixed"], &[])
                .unwrap()
                .idle_spin_fixed
        );
    }

    #[test]
    fn every_flag_has_its_variable_and_shows_its_default() {
        let cmd = crate::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        let help = help_of(&["serve", "--help"]);
        let mut flags = 0;
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            flags += 1;
            let var = format!("RINGCAST_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|v| v.to_str()),
                Some(var.as_str()),
                "--{long} reads {var}"
            );
            assert!(help.contains(&format!("--{long}")), "help shows --{long}");
            assert!(help.contains(&format!("[env: {var}]")), "help shows {var}");
            let about = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                !arg.get_default_values().is_empty() || about.contains("default"),
                "--{long} shows its default: {about}"
            );
        }
        // Config fields: `into_config` does not compile when Config gains one
        // without a flag; this checks that every flag has its variable.
        assert!(flags >= 22, "{flags} flags");
        assert!(help.contains("[default: 8MiB]"), "{help}");
        assert!(help.contains("[default: 5s]"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:7401]"), "{help}");
        assert!(help.contains("Examples:"), "{help}");
    }

    #[test]
    fn defaults_and_errors() {
        // No flag and no variable: exactly `Config::default()`, every field
        // (the defaults went through help's text and back).
        let d = Config::default();
        assert_eq!(
            format!("{:?}", config_of(&[], &[]).unwrap()),
            format!("{d:?}")
        );

        let msg = usage_message(&["--max-frame", "x"], &[]);
        assert!(
            msg.contains("'--max-frame <BYTES>'") && msg.contains("expected a byte size like 8MiB"),
            "{msg}"
        );
        // A bad variable names the flag and the variable.
        let msg = usage_message(&[], &[("RINGCAST_MAX_FRAME", "lots")]);
        assert!(
            msg.contains("'--max-frame <BYTES>'") && msg.contains("RINGCAST_MAX_FRAME"),
            "{msg}"
        );
        usage_message(&["--cores", "0"], &[]);
        usage_message(&[], &[("RINGCAST_BUSY_POLL", "maybe")]);
        usage_message(&["--publish-token", ""], &[]);
        usage_message(&["--busy-poll=1"], &[]);
        let msg = usage_message(&["--max-backlog"], &[]);
        assert!(msg.contains("--max-backlog"), "{msg}");
        // An empty variable is unset.
        let c = config_of(
            &[],
            &[("RINGCAST_PUBLISH_TOKEN", ""), ("RINGCAST_MAX_FRAME", "")],
        )
        .unwrap();
        assert_eq!((c.publish_token, c.max_frame), (None, d.max_frame));
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
            config_of(&["--ws-listen", "off"], &[]).unwrap().ws_listen,
            None
        );
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
            usage_message(&["--allowed-origins", bad], &[]);
        }
        usage_message(&["--ws-listen", "nowhere"], &[]);
    }

    #[test]
    fn log_flags_takeover_and_exit_codes_are_documented_and_parsed() {
        let help = help_of(&["serve", "--help"]);
        for want in [
            "Exit codes:",
            "130 or 143",
            "--log-format",
            "--log-level",
            "--takeover",
        ] {
            assert!(help.contains(want), "{want} in {help}");
        }
        let args = |words: &[&str], env: &[(&str, &str)]| {
            let argv = ["ringcast", "serve"].iter().chain(words);
            match with_env(env, || parse(argv.map(Into::into).collect())) {
                Ok(crate::Cli {
                    command: Command::Serve(args),
                }) => args,
                other => panic!("{other:?}"),
            }
        };
        let a = args(&[], &[]);
        assert_eq!(a.log.log_format, logging::LogFormat::Text);
        assert_eq!(a.log.log_level, None);
        assert!(!a.takeover);
        let a = args(
            &["--log-format", "json", "--takeover"],
            &[("RINGCAST_LOG_LEVEL", "warn,ringcast=debug")],
        );
        assert_eq!(a.log.log_format, logging::LogFormat::Json);
        assert_eq!(a.log.log_level.as_deref(), Some("warn,ringcast=debug"));
        assert!(a.takeover && a.into_config().takeover);
        let a = args(
            &[],
            &[("RINGCAST_LOG_FORMAT", "json"), ("RINGCAST_TAKEOVER", "1")],
        );
        assert_eq!(a.log.log_format, logging::LogFormat::Json);
        assert!(a.takeover);
        usage_message(&["--log-format", "xml"], &[]);
        usage_message(&["--log-level", "ringcast=loud"], &[]);
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
        usage_message(&["--http-reserve", "0"], &[]);
    }
}
