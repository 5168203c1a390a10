//! The `ringcast-bench` command line (also `ringcast bench`), with clap.
//!
//! Every flag reads an environment variable when it is absent (a flag beats
//! its variable, which beats the default); a variable set to the empty
//! string counts as unset ([`forget_empty_env`]). Bad usage exits 2 with
//! clap's message, which names the flag; a run that could not be done exits 1.
//!
//! The hidden flags [`CHILD_FLAG`] and [`RUN_ID_FLAG`] are how a parent starts
//! its children ([`Params::child_args`]); a test here checks the round trip.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::builder::{BoolishValueParser, PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, CommandFactory, Parser};
use ringcast::values;
use ringcast_bench::{
    self as bench, Params, Proto, RxClock, Workload, CHILD_FLAG, PAYLOAD_HEADER, RUN_ID_FLAG,
};

const LONG_ABOUT: &str = "\
ringcast bench: load generator for broadcast servers (ringcast, Redis, NATS).

Workloads:
  steady  --subs N subscribers over --topics C (subscriber i on topic i mod C); one
          publisher sends --size-byte messages at --rate msg/s round-robin over the
          topics for --duration seconds (or --messages), after --warmup seconds.
  burst   --subs N subscribers on one topic; publish one message, wait until the last
          subscriber has it, record the time to last, pause --gap; --bursts times.

--patterns (resp only, either workload): every subscriber PSUBSCRIBEs one pattern,
bench.<run>.news.*, instead of SUBSCRIBing to a topic; the publisher PUBLISHes
round-robin to --topics channels bench.<run>.news.0, .1, ..., so each message reaches
all --subs subscribers as a pmessage push, and sequence numbers run over all channels.

Every payload carries its send time (CLOCK_REALTIME) and a sequence number: latency
per delivery is receive time minus send time (HdrHistogram, 3 significant digits),
the receive time being the kernel's stamp on the segment (--rx-clock), so the
generator's own delays do not count; sequences give duplicates, reordering and
gaps. Delivery ratio must be 100%.
One single-threaded epoll loop per process; its CPU use is reported. Server CPU is
read from /proc (--server-pid, or the embedded engine's reactor threads).

Without --port, a ringcast engine starts in this process (--server-cores reactors),
so `ringcast bench` alone gives a result; the run drives the engine's front for
--proto (resp: its Redis-compatible RESP listener, for the subscribers and the
publisher). With --port it drives the server at --host:--port instead: a ringcast
daemon's --listen (or --resp-listen, with --proto resp), a redis-server, a nats-server.

--proto ringcast-ws drives ringcast's WebSocket front: each subscriber connects to
--ws-port (embedded: the engine's WebSocket listener), upgrades (GET /ws, subprotocol
ringcast.v1), subscribes in a masked binary message and reads one native frame per
server message; it answers the server's pings. The publisher stays on the native TCP
port (--port), the realistic mix, so only the fan-out transport differs from
--proto ringcast; sequence checks, latency and receive stamps are the same.

--sub-ports P1,P2,... (with --port; scale-out through NATS): subscriber i connects to
--host:P(i mod k), one port per node, while the publisher stays on --port; a port
equal to --port (ringcast-ws: the ports are WebSocket ports, and the one equal to
--ws-port) is the publisher's own node, *local*, the others *remote*. The report adds
latency and delivery per port, and each remote port's percentiles minus the local
port's: what the relay adds. Each subscriber checks its own node's seq, as without
--sub-ports; a GAP notice (frames from other nodes may be lost) is counted per port.

Prints a table, or with --json one JSON object. Exits 0 when a report was printed
(check its delivery ratio), 1 when the run could not be done, 2 on bad usage.

Every flag reads the environment variable named in its help when it is not given
(an empty variable counts as unset): a flag beats its variable, which beats the
default.";

const EXAMPLES: &str = "\
Examples:
  ringcast bench
  ringcast bench --port 7400 --workload burst --subs 5000 --bursts 50 --cpu 0 --server-pid 1234
  ringcast bench --port 7400 --ws-port 7401 --proto ringcast-ws --workload burst --subs 5000
  ringcast bench --port 6379 --proto resp --subs 10000 --topics 1 --rate 20 --json
  ringcast bench --proto resp --patterns --subs 1000 --topics 10 --rate 20
  ringcast bench --port 6380 --proto resp --patterns --subs 10000 --topics 10 --rate 20
  ringcast bench --port 4222 --proto nats --subs 19000 --topics 40 --rate 400
  ringcast bench --port 7400 --sub-ports 7400,7410,7420 --subs 300 --topics 1 --rate 100";

/// `ringcast bench [FLAGS]`: the flags, the hidden ones (for child processes) last.
#[derive(Parser, Debug)]
#[command(
    name = "ringcast-bench",
    bin_name = "ringcast bench",
    version,
    about = "ringcast bench: load generator for broadcast servers (ringcast, Redis, NATS).",
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    next_line_help = true,
    mut_args = |arg| arg.hide_env_values(true)
)]
pub struct Cli {
    /// What traffic to generate
    #[arg(
        long,
        value_name = "NAME",
        env = "RINGCAST_BENCH_WORKLOAD",
        default_value = defaults().workload.name(),
        value_parser = workload_parser()
    )]
    workload: Workload,

    /// Server protocol; nats needs --port (without it, resp drives the embedded
    /// engine's RESP front)
    #[arg(
        long,
        value_name = "NAME",
        env = "RINGCAST_BENCH_PROTO",
        default_value = defaults().proto.name(),
        value_parser = proto_parser()
    )]
    proto: Proto,

    /// Server host (with --port)
    #[arg(
        long,
        value_name = "HOST",
        env = "RINGCAST_BENCH_HOST",
        default_value = "127.0.0.1",
        requires = "port"
    )]
    host: String,

    /// Server port (ringcast-ws: the native port, for the publisher).
    /// Default: none, which starts a ringcast engine in this process on 127.0.0.1:0
    #[arg(
        long,
        value_name = "PORT",
        env = "RINGCAST_BENCH_PORT",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    port: Option<u16>,

    #[arg(
        long,
        value_name = "PORT",
        env = "RINGCAST_BENCH_WS_PORT",
        requires = "port",
        value_parser = clap::value_parser!(u16).range(1..),
        help = format!(
            "ringcast-ws with --port: the daemon's WebSocket port (its --ws-listen) on --host, \
             where the subscribers connect. Default: {} (embedded: the engine's own)",
            bench::DEFAULT_WS_PORT
        )
    )]
    ws_port: Option<u16>,

    /// Scale-out: spread the subscribers round-robin over these ports on --host
    /// (subscriber i on the (i mod k)th), one node each; the publisher stays on
    /// --port, and the report gives latency and delivery per port (ringcast-ws:
    /// WebSocket ports). Default: none (every subscriber on --port's node)
    #[arg(
        long = bench::SUB_PORTS_FLAG.trim_start_matches('-'),
        value_name = "P1,P2,...",
        env = "RINGCAST_BENCH_SUB_PORTS",
        requires = "port",
        value_parser = parse_ports
    )]
    sub_ports: Option<Ports>,

    /// Subscriber connections, one subscription each
    #[arg(
        long,
        value_name = "N",
        env = "RINGCAST_BENCH_SUBS",
        default_value_t = defaults().subs,
        value_parser = parse_count_usize
    )]
    subs: usize,

    #[arg(
        long,
        value_name = "C",
        env = "RINGCAST_BENCH_TOPICS",
        value_parser = parse_count_usize,
        help = format!(
            "Topics; subscriber i subscribes to topic i mod C (--patterns: the channels \
             published to, all matched by every subscriber's pattern). \
             Default: {} (steady), 1 (burst)",
            defaults().topics
        )
    )]
    topics: Option<usize>,

    /// resp: every subscriber PSUBSCRIBEs bench.<run>.news.* and the publisher
    /// PUBLISHes round-robin to --topics channels bench.<run>.news.<k>; deliveries
    /// are pmessage pushes. Default: off (the variable: 1 or 0, true or false, ...)
    #[arg(
        long = bench::PATTERNS_FLAG.trim_start_matches('-'),
        env = "RINGCAST_BENCH_PATTERNS",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    patterns: bool,

    /// Steady: messages per second in total, round-robin over the topics
    #[arg(
        long,
        value_name = "MSG/S",
        env = "RINGCAST_BENCH_RATE",
        default_value_t = defaults().rate,
        value_parser = parse_rate
    )]
    rate: f64,

    #[arg(
        long,
        value_name = "BYTES",
        env = "RINGCAST_BENCH_SIZE",
        default_value_t = defaults().size,
        value_parser = parse_byte_size_usize,
        help = format!(
            "Payload size (suffixes K/KiB, M/MiB, G/GiB), at least {PAYLOAD_HEADER}: the send time \
             and sequence number; the rest is filler"
        )
    )]
    size: usize,

    /// Steady: length of the measured phase (seconds: 5, 0.5, 2s or 250ms)
    #[arg(
        long,
        value_name = "SECS",
        env = "RINGCAST_BENCH_DURATION",
        default_value_t = Secs(defaults().duration),
        value_parser = parse_secs
    )]
    duration: Secs,

    /// Steady: measured messages to publish, instead of --duration.
    /// Default: none (--duration applies)
    #[arg(
        long,
        value_name = "M",
        env = "RINGCAST_BENCH_MESSAGES",
        value_parser = parse_count
    )]
    messages: Option<u64>,

    /// Steady: seconds of the same traffic before measuring, not recorded
    #[arg(
        long,
        value_name = "SECS",
        env = "RINGCAST_BENCH_WARMUP",
        default_value_t = Secs(defaults().warmup),
        value_parser = parse_secs
    )]
    warmup: Secs,

    #[arg(
        long,
        value_name = "M",
        env = "RINGCAST_BENCH_WARMUP_MESSAGES",
        value_parser = parse_count,
        help = format!(
            "Warm-up messages (steady) or bursts (burst), instead of --warmup. \
             Default: none (steady: --warmup applies; burst: {})",
            bench::DEFAULT_WARMUP_BURSTS
        )
    )]
    warmup_messages: Option<u64>,

    /// Hold the subscribers idle this long once every subscription is
    /// confirmed, before any traffic (for memory measurements:
    /// scripts/mem-per-sub.sh samples the server's RSS meanwhile)
    #[arg(
        long,
        value_name = "SECS",
        env = "RINGCAST_BENCH_HOLD",
        default_value_t = Secs(Duration::ZERO),
        value_parser = parse_secs
    )]
    hold: Secs,

    /// Burst: measured bursts
    #[arg(
        long,
        value_name = "K",
        env = "RINGCAST_BENCH_BURSTS",
        default_value_t = defaults().bursts,
        value_parser = parse_count
    )]
    bursts: u64,

    /// Burst: pause after each burst reached its last subscriber (0.05 or 50ms)
    #[arg(
        long,
        value_name = "SECS",
        env = "RINGCAST_BENCH_GAP",
        default_value_t = Secs(defaults().gap),
        value_parser = parse_secs
    )]
    gap: Secs,

    #[arg(
        long,
        value_name = "P",
        env = "RINGCAST_BENCH_PROCS",
        value_parser = parse_count_usize,
        help = format!(
            "Processes holding subscribers; past 1 the bench starts P children and only \
             publishes itself. Default: auto: 1 up to {} subscribers ({} embedded), \
             else one per {}",
            bench::SUBS_PER_PROC,
            bench::SUBS_PER_PROC_EMBEDDED,
            bench::SUBS_PER_PROC
        )
    )]
    procs: Option<usize>,

    #[arg(
        long,
        value_name = "K",
        env = "RINGCAST_BENCH_SOURCE_IPS",
        value_parser = parse_count_usize,
        help = format!(
            "Spread loopback connections over source addresses 127.0.0.1 to 127.0.0.K. \
             Default: auto: one per {} subscribers",
            bench::CONNS_PER_SOURCE_IP
        )
    )]
    source_ips: Option<usize>,

    /// Pin the generator: this process to the first CPU of the list (0,2,4-7),
    /// child k to the (k mod len)th. Default: none (no pinning)
    #[arg(
        long,
        value_name = "LIST",
        env = "RINGCAST_BENCH_CPU",
        value_parser = parse_cpus
    )]
    cpu: Option<CpuList>,

    /// Server process whose CPU (all threads, /proc/PID/stat) is measured over the
    /// measured phase. Default: none (the embedded engine is measured by its reactor threads)
    #[arg(
        long,
        value_name = "PID",
        env = "RINGCAST_BENCH_SERVER_PID",
        value_parser = parse_pid
    )]
    server_pid: Option<u32>,

    /// Embedded engine: reactor threads
    #[arg(
        long,
        value_name = "N",
        env = "RINGCAST_BENCH_SERVER_CORES",
        default_value_t = defaults().server_cores,
        value_parser = parse_count_usize
    )]
    server_cores: usize,

    /// Embedded engine: CPUs to pin its reactors to. Default: none (no pinning)
    #[arg(
        long,
        value_name = "LIST",
        env = "RINGCAST_BENCH_SERVER_CPUS",
        value_parser = parse_cpus
    )]
    server_cpus: Option<CpuList>,

    /// Limit for setting up (plus 0.5 ms per subscriber), for each burst, and for the
    /// final drain
    #[arg(
        long,
        value_name = "SECS",
        env = "RINGCAST_BENCH_TIMEOUT",
        default_value_t = Secs(defaults().timeout),
        value_parser = parse_secs
    )]
    timeout: Secs,

    /// Where a delivery's receive time comes from
    #[arg(
        long,
        value_name = "NAME",
        env = "RINGCAST_BENCH_RX_CLOCK",
        default_value = defaults().rx_clock.name(),
        value_parser = rx_clock_parser()
    )]
    rx_clock: RxClock,

    /// Print one JSON object instead of the table. Default: off
    /// (the variable: 1 or 0, true or false, yes or no, on or off)
    #[arg(
        long,
        env = "RINGCAST_BENCH_JSON",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    json: bool,

    /// A child process owning subscribers FIRST .. FIRST + COUNT.
    #[arg(
        long = CHILD_FLAG.trim_start_matches('-'),
        value_name = "FIRST:COUNT",
        hide = true,
        value_parser = parse_range
    )]
    child: Option<(usize, usize)>,

    /// The parent's topic prefix, shared with its children.
    #[arg(long = RUN_ID_FLAG.trim_start_matches('-'), value_name = "ID", hide = true)]
    run_id: Option<String>,
}

fn defaults() -> Params {
    Params::default()
}

/// What the command line asks for: the parameters, for a child its
/// subscriber range, and whether to print JSON.
#[derive(Debug)]
pub struct Invocation {
    pub params: Params,
    pub child: Option<(usize, usize)>,
    pub json: bool,
}

/// Why `ringcast bench` stops early.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or a bad value: clap's message, exit code 2.
    Usage(clap::Error),
    /// The run could not be done: `ringcast bench: MESSAGE`, exit code 1.
    Failed(String),
}

/// A usage error in clap's format (message, usage line, pointer to --help).
fn usage(kind: ErrorKind, message: impl fmt::Display) -> clap::Error {
    Cli::command().error(kind, message)
}

/// Removes this command's environment variables that are set to the empty
/// string, so that they count as unset (clap would hand `""` to the value
/// parser). Call it first in `main`, before any thread exists.
pub fn forget_empty_env() {
    for arg in Cli::command().get_arguments() {
        if let Some(var) = arg.get_env() {
            if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
                std::env::remove_var(var);
            }
        }
    }
}

/// Parses a command line (`words[0]` is the program). A bad value that came
/// from an environment variable gets a tip naming the variable.
pub fn parse<I, T>(words: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let words: Vec<OsString> = words.into_iter().map(Into::into).collect();
    Cli::try_parse_from(&words)
        .map_err(|e| blame_env(e, &words))?
        .into_invocation()
}

/// Adds "tip: the value came from VAR" to a bad-value error when the flag
/// was not on the command line but its environment variable is set.
fn blame_env(mut error: clap::Error, words: &[OsString]) -> clap::Error {
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return error;
    }
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let long = shown
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_owned();
    let on_command_line = words.iter().skip(1).any(|w| {
        let w = w.to_string_lossy();
        w == long || w.starts_with(&format!("{long}="))
    });
    let cmd = Cli::command();
    let var = cmd
        .get_arguments()
        .find(|a| {
            a.get_long()
                .is_some_and(|l| long.strip_prefix("--") == Some(l))
        })
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned());
    if let (false, Some(var)) = (on_command_line, var) {
        if let Some(value) = std::env::var_os(&var) {
            error.insert(
                ContextKind::Suggested,
                ContextValue::StyledStrs(vec![format!(
                    "the value came from the environment: {var}={}",
                    value.to_string_lossy()
                )
                .into()]),
            );
        }
    }
    error
}

impl Cli {
    /// The checks between flags that clap does not make, and the parameters.
    fn into_invocation(self) -> Result<Invocation, clap::Error> {
        let d = Params::default();
        let target = match self.port {
            Some(port) => Some(resolve(&self.host, port)?),
            None => None,
        };
        if self.ws_port.is_some() && !self.proto.is_websocket() {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                "--ws-port is for --proto ringcast-ws (the subscribers' WebSocket port)",
            ));
        }
        if self.patterns && self.proto != Proto::Resp {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                format!(
                    "--patterns is for --proto resp (PSUBSCRIBE), not --proto {}",
                    self.proto.name()
                ),
            ));
        }
        let default_topics = match self.workload {
            Workload::Steady => d.topics,
            Workload::Burst => 1,
        };
        let params = Params {
            workload: self.workload,
            proto: self.proto,
            target,
            ws_port: self.ws_port.unwrap_or(d.ws_port),
            sub_ports: self.sub_ports.map(|p| p.0).unwrap_or_default(),
            subs: self.subs,
            topics: self.topics.unwrap_or(default_topics),
            patterns: self.patterns,
            rate: self.rate,
            size: self.size,
            duration: self.duration.0,
            messages: self.messages,
            warmup: self.warmup.0,
            warmup_messages: self.warmup_messages,
            hold: self.hold.0,
            bursts: self.bursts,
            gap: self.gap.0,
            procs: self.procs,
            cpus: self.cpu.map(|c| c.0).unwrap_or_default(),
            server_pid: self.server_pid,
            server_cores: self.server_cores,
            server_cpus: self.server_cpus.map(|c| c.0).unwrap_or_default(),
            source_ips: self.source_ips,
            timeout: self.timeout.0,
            rx_clock: self.rx_clock,
            run_id: self.run_id,
        };
        Ok(Invocation {
            params,
            child: self.child,
            json: self.json,
        })
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, clap::Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            usage(
                ErrorKind::ValueValidation,
                format!("--host: cannot resolve {host:?}"),
            )
        })
}

/// Runs what the command line asked for.
pub fn run(invocation: Invocation) -> Result<(), Failure> {
    let Invocation {
        params,
        child,
        json,
    } = invocation;
    let to_failure = |e: bench::BenchError| match e {
        bench::BenchError::Invalid(m) => Failure::Usage(usage(ErrorKind::ValueValidation, m)),
        bench::BenchError::Failed(m) => Failure::Failed(m),
    };
    if let Some((first, count)) = child {
        return bench::run_child(&params, first, count).map_err(to_failure);
    }
    let report = bench::run(&params).map_err(to_failure)?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if !report.is_clean() {
        eprintln!(
            "ringcast bench: the run was not clean (delivery ratio {:.6}, {} disconnects{})",
            report.deliveries.ratio(),
            report.deliveries.disconnects,
            report
                .aborted
                .as_deref()
                .map_or(String::new(), |a| format!("; {a}"))
        );
    }
    Ok(())
}

// ---- values -------------------------------------------------------------------

fn workload_parser() -> impl TypedValueParser<Value = Workload> {
    PossibleValuesParser::new([
        PossibleValue::new(Workload::Steady.name()).help("a paced publisher, many topics"),
        PossibleValue::new(Workload::Burst.name()).help("one message to all, timed to the last"),
    ])
    .map(|s| Workload::from_name(&s).expect("a possible value"))
}

fn proto_parser() -> impl TypedValueParser<Value = Proto> {
    PossibleValuesParser::new([
        PossibleValue::new(Proto::Ringcast.name()).help("ringcast's native protocol over TCP"),
        PossibleValue::new(Proto::RingcastWs.name())
            .help("WebSocket subscribers (--ws-port), native-TCP publisher"),
        PossibleValue::new(Proto::Resp.name())
            .alias("redis")
            .help("Redis pub/sub (RESP2)"),
        PossibleValue::new(Proto::Nats.name()).help("the NATS text protocol"),
    ])
    .map(|s| Proto::from_name(&s).expect("a possible value"))
}

fn rx_clock_parser() -> impl TypedValueParser<Value = RxClock> {
    PossibleValuesParser::new([
        PossibleValue::new(RxClock::Kernel.name())
            .help("the segment's SO_TIMESTAMPNS stamp: excludes the generator's own queueing"),
        PossibleValue::new(RxClock::User.name()).help("the clock read after the read returns"),
    ])
    .map(|s| RxClock::from_name(&s).expect("a possible value"))
}

/// A duration given in seconds; shown as help shows defaults (`5`, `10ms`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if self.0 < Duration::from_secs(1) && self.0 == Duration::from_millis(ms as u64) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}", self.0.as_secs_f64())
        }
    }
}

/// Seconds as a decimal (`5`, `0.5`), optionally suffixed `s` or `ms`.
fn parse_secs(s: &str) -> Result<Secs, String> {
    let expected = || "expected seconds like 5, 0.5 or 250ms".to_string();
    let s = s.trim();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| expected())?;
    Duration::try_from_secs_f64(value * scale)
        .map(Secs)
        .map_err(|_| expected())
}

/// Ports separated by commas (`7400,7410,7420`), each at most once.
#[derive(Clone, Debug, PartialEq)]
struct Ports(Vec<u16>);

fn parse_ports(s: &str) -> Result<Ports, String> {
    let mut ports = Vec::new();
    for word in s.split(',') {
        let port = word
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("expected ports like 7400,7410,7420, got {word:?}"))?;
        if ports.contains(&port) {
            return Err(format!(
                "port {port} is listed twice: each port is one node in the report"
            ));
        }
        ports.push(port);
    }
    Ok(Ports(ports))
}

/// A CPU list: numbers and inclusive ranges separated by commas (`0,2,4-7`).
#[derive(Clone, Debug, PartialEq)]
struct CpuList(Vec<usize>);

/// The empty string is the empty list.
fn parse_cpus(s: &str) -> Result<CpuList, String> {
    values::cpus(s).map(CpuList)
}

fn parse_count(s: &str) -> Result<u64, String> {
    values::count(s)
}

fn parse_count_usize(s: &str) -> Result<usize, String> {
    values::count_usize(s)
}

fn parse_byte_size_usize(s: &str) -> Result<usize, String> {
    values::byte_size_usize(s)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| "expected messages per second like 1000 or 0.5".to_string())?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err("expected a rate above 0".into())
    }
}

fn parse_pid(s: &str) -> Result<u32, String> {
    parse_count(s)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| "expected a process id".into())
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let bad = || "expected FIRST:COUNT".to_string();
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        parse_count_usize(a).map_err(|_| bad())?,
        parse_count_usize(b).map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(w: &[&str]) -> Result<Invocation, clap::Error> {
        super::parse(std::iter::once("ringcast-bench").chain(w.iter().copied()))
    }

    fn parse_args(args: Vec<OsString>) -> Invocation {
        super::parse(std::iter::once(OsString::from("ringcast-bench")).chain(args)).unwrap()
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_flags_is_the_embedded_default() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.params, Params::default());
        assert_eq!((c.child, c.json), (None, false));
        let b = parse(&["--workload", "burst"]).unwrap().params;
        assert_eq!((b.workload, b.topics), (Workload::Burst, 1));
    }

    #[test]
    fn a_childs_command_line_parses_back_to_its_parameters() {
        let parent = Params {
            workload: Workload::Burst,
            proto: Proto::Nats,
            target: Some(SocketAddr::from(([127, 0, 0, 1], 4222))),
            subs: 40_000,
            topics: 1,
            size: 256,
            rx_clock: RxClock::User,
            timeout: Duration::from_millis(12_500),
            source_ips: Some(2),
            run_id: Some("abc123".into()),
            ..Params::default()
        };
        let args = parent.child_args(20_000, 20_000, Some(1));
        assert_eq!(args[0], CHILD_FLAG);
        let Invocation { params: child, .. } = parse_args(args.clone());
        assert_eq!(parse_args(args).child, Some((20_000, 20_000)));
        for (name, same) in [
            ("workload", child.workload == parent.workload),
            ("proto", child.proto == parent.proto),
            ("target", child.target == parent.target),
            ("subs", child.subs == parent.subs),
            ("topics", child.topics == parent.topics),
            ("size", child.size == parent.size),
            ("timeout", child.timeout == parent.timeout),
            ("source_ips", child.source_ips == parent.source_ips),
            ("run_id", child.run_id == parent.run_id),
            ("rx_clock", child.rx_clock == parent.rx_clock),
        ] {
            assert!(same, "{name} differs");
        }
        assert_eq!(child.cpus, [1]);
    }

    #[test]
    fn a_pattern_childs_command_line_keeps_its_patterns() {
        let parent = Params {
            proto: Proto::Resp,
            patterns: true,
            target: Some(SocketAddr::from(([127, 0, 0, 1], 6380))),
            subs: 20_000,
            topics: 40,
            run_id: Some("abc".into()),
            ..Params::default()
        };
        let c = parse_args(parent.child_args(0, 10_000, None)).params;
        assert!(c.patterns);
        assert_eq!(
            (c.proto, c.topics, c.target),
            (Proto::Resp, 40, parent.target)
        );
        assert_eq!(c.subscriptions(), 1);
        let plain = Params {
            patterns: false,
            ..parent
        };
        assert!(
            !parse_args(plain.child_args(0, 10_000, None))
                .params
                .patterns
        );
    }

    #[test]
    fn resp_without_a_port_and_patterns() {
        // resp needs no --port: the embedded engine's RESP front is the target.
        let r = parse(&["--proto", "resp"]).unwrap().params;
        assert_eq!((r.proto, r.target, r.patterns), (Proto::Resp, None, false));
        r.validate().unwrap();
        // --patterns: one pattern over --topics channels, more channels than
        // subscribers allowed; burst too (one channel).
        let p = parse(&[
            "--proto",
            "resp",
            "--patterns",
            "--subs",
            "5",
            "--topics",
            "40",
        ])
        .unwrap()
        .params;
        assert!(p.patterns);
        assert_eq!((p.subs, p.topics, p.subscriptions()), (5, 40, 1));
        p.validate().unwrap();
        let b = parse(&["--proto=redis", "--patterns", "--workload", "burst"])
            .unwrap()
            .params;
        assert_eq!(
            (b.workload, b.topics, b.patterns),
            (Workload::Burst, 1, true)
        );
        b.validate().unwrap();
        let e = parse(&[
            "--proto",
            "resp",
            "--patterns",
            "--port",
            "6379",
            "--subs",
            "10",
            "--topics",
            "20",
        ])
        .unwrap()
        .params;
        assert_eq!(e.target, Some(SocketAddr::from(([127, 0, 0, 1], 6379))));
        e.validate().unwrap();
        // Other protocols have no PSUBSCRIBE: bad usage, naming the flag.
        for proto in ["ringcast", "ringcast-ws", "nats"] {
            let e = parse(&["--proto", proto, "--port", "7400", "--patterns"]).unwrap_err();
            assert_eq!(
                (e.kind(), e.exit_code()),
                (ErrorKind::ArgumentConflict, 2),
                "{proto}"
            );
            let text = e.to_string();
            assert!(
                text.contains("--patterns") && text.contains("--proto resp"),
                "{text}"
            );
        }
        let e = parse(&["--patterns"]).unwrap_err();
        assert!(e.to_string().contains("not --proto ringcast"), "{e}");
        usage_error(&["--proto", "resp", "--patterns=maybe"], "--patterns");
    }

    /// Bad usage: exit code 2, and the message names the flag.
    fn usage_error(w: &[&str], flag: &str) {
        let e = parse(w).expect_err("bad usage");
        assert_eq!(e.exit_code(), 2, "{w:?}");
        let text = e.to_string();
        assert!(text.contains(flag), "{w:?}: {text}");
    }

    #[test]
    fn a_websocket_childs_command_line_keeps_both_ports() {
        let parent = Params {
            proto: Proto::RingcastWs,
            target: Some(SocketAddr::from(([127, 0, 0, 1], 17400))),
            ws_port: 17401,
            subs: 20_000,
            run_id: Some("abc".into()),
            ..Params::default()
        };
        let c = parse_args(parent.child_args(10_000, 10_000, None));
        assert_eq!(c.child, Some((10_000, 10_000)));
        assert_eq!(c.params.proto, Proto::RingcastWs);
        assert_eq!(c.params.target, parent.target);
        assert_eq!(c.params.subscriber_addr(), parent.subscriber_addr());
    }

    #[test]
    fn sub_ports_parse_and_reach_the_children() {
        let c = parse(&[
            "--port",
            "7400",
            "--sub-ports",
            "7400, 7410,7420",
            "--subs",
            "30000",
            "--topics",
            "40",
        ])
        .unwrap()
        .params;
        assert_eq!(c.sub_ports, [7400, 7410, 7420]);
        c.validate().unwrap();
        let child = parse_args(c.child_args(15_000, 15_000, Some(0))).params;
        assert_eq!(child.sub_ports, c.sub_ports);
        assert_eq!(child.subscriber_addrs(), c.subscriber_addrs());
        assert_eq!(
            parse(&["--port", "1"]).unwrap().params.sub_ports,
            [] as [u16; 0]
        );
        let ws = parse(&[
            "--proto",
            "ringcast-ws",
            "--port",
            "7400",
            "--ws-port",
            "7411",
            "--sub-ports",
            "7401,7411",
        ])
        .unwrap()
        .params;
        let back = parse_args(ws.child_args(0, 1, None)).params;
        assert_eq!((back.ws_port, back.local_sub_port()), (7411, Some(7411)));
        assert_eq!(back.sub_ports, [7401, 7411]);
        usage_error(&["--sub-ports", "7400"], "--port");
        usage_error(&["--port", "1", "--sub-ports", "1,1"], "twice");
        usage_error(&["--port", "1", "--sub-ports", ""], "--sub-ports");
        assert_eq!(parse_ports("1,65535"), Ok(Ports(vec![1, 65535])));
        assert!(parse_ports("1,0").is_err());
    }

    #[test]
    fn flags_and_errors() {
        let c = parse(&[
            "--port", "6379", "--proto", "resp", "--subs", "10_000", "--topics", "40", "--rate",
            "0.5", "--size", "1KiB", "--gap", "50ms", "--cpu", "0", "--json",
        ])
        .unwrap();
        let p = &c.params;
        assert_eq!(p.target, Some(SocketAddr::from(([127, 0, 0, 1], 6379))));
        assert_eq!((p.subs, p.topics, p.size), (10_000, 40, 1024));
        assert_eq!(p.rate, 0.5);
        assert_eq!(p.gap, Duration::from_millis(50));
        assert_eq!(p.cpus, [0]);
        assert!(c.json);
        assert_eq!(parse(&["--proto=redis"]).unwrap().params.proto, Proto::Resp);

        let usage = usage_error;
        usage(&["--workload", "flood"], "--workload");
        usage(&["--proto", "mqtt"], "--proto");
        usage(&["--rate", "0"], "--rate");
        usage(&["--port", "0"], "--port");
        usage(&["--subs", "lots"], "--subs");
        usage(&["--size", "1MB"], "--size");
        usage(&["--duration", "soon"], "--duration");
        usage(&["--json=maybe"], "--json");
        usage(&["--host", "127.0.0.1"], "--port");
        usage(&["--child", "12"], "--child");
        usage(&["--nope"], "--nope");
        usage(&["--port", "1", "--ws-port", "2"], "--ws-port");
        usage(&["--proto", "ringcast-ws", "--ws-port", "2"], "--port");

        let w = parse(&[
            "--port",
            "17400",
            "--ws-port",
            "17401",
            "--proto",
            "ringcast-ws",
        ])
        .unwrap()
        .params;
        assert_eq!((w.proto, w.ws_port), (Proto::RingcastWs, 17401));
        let w = parse(&["--proto", "ringcast-ws"]).unwrap().params;
        assert_eq!((w.target, w.ws_port), (None, bench::DEFAULT_WS_PORT));

        let help = parse(&["--help"]).unwrap_err();
        assert_eq!((help.kind(), help.exit_code()), (ErrorKind::DisplayHelp, 0));
    }

    /// Every visible flag shows its environment variable and its default,
    /// as clap's `[default: …]` or in its help sentence; hidden ones do not show.
    #[test]
    fn help_lists_every_visible_flag_with_its_variable_and_default() {
        // Whatever the wrapping: words separated by single spaces.
        let flat = |text: clap::builder::StyledStr| {
            text.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut cmd = Cli::command();
        let long = flat(cmd.render_long_help());
        let short = flat(cmd.render_help());
        for arg in cmd.get_arguments() {
            let Some(name) = arg.get_long() else { continue };
            let flag = format!("--{name}");
            if matches!(name, "help" | "version") {
                continue;
            }
            if arg.is_hide_set() {
                assert!(!long.contains(&flag), "hidden {flag} shows");
                continue;
            }
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("{flag} has no variable"));
            let env = format!("[env: {}]", env.to_string_lossy());
            for text in [&long, &short] {
                assert!(text.contains(&flag), "{flag} missing");
                assert!(text.contains(&env), "{flag}: {env} missing");
            }
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                !arg.get_default_values().is_empty() || help.contains("Default: "),
                "{flag} does not say its default: {help}"
            );
        }
        assert!(long.contains("ringcast bench") && long.contains("Examples:"));
        assert!(long.contains("[default: 10ms]"), "{long}");
    }

    #[test]
    fn values() {
        assert_eq!(parse_cpus("0,2,4-6"), Ok(CpuList(vec![0, 2, 4, 5, 6])));
        assert_eq!(parse_cpus(""), Ok(CpuList(vec![])));
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("a").is_err());
        assert_eq!(parse_secs("2.5"), Ok(Secs(Duration::from_millis(2500))));
        assert_eq!(parse_secs("250ms"), Ok(Secs(Duration::from_millis(250))));
        assert_eq!(parse_secs("3s"), Ok(Secs(Duration::from_secs(3))));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert_eq!(parse_count("100_000"), Ok(100_000));
        assert!(parse_count("").is_err());
        assert!(parse_count("_1").is_err());
        assert_eq!(parse_range("3:4"), Ok((3, 4)));
        assert!(parse_range("3").is_err());
        // Defaults show as they are typed, and parse back.
        for d in [
            Duration::from_secs(5),
            Duration::from_millis(10),
            Duration::from_millis(12_500),
        ] {
            let shown = Secs(d).to_string();
            assert_eq!(parse_secs(&shown), Ok(Secs(d)), "{shown}");
        }
        assert_eq!(Secs(Duration::from_millis(10)).to_string(), "10ms");
        assert_eq!(Secs(Duration::from_secs(30)).to_string(), "30");
    }
}
