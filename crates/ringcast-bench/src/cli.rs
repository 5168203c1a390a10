//! `ringcast bench`: the load generator's command line (the generator itself
//! is `ringcast::bench`).
//!
//! Workloads:
//! - steady: N subscribers over C topics (subscriber i on topic i mod C); one
//!   publisher sends S-byte messages at R msg/s round-robin over the topics
//!   for D seconds or M messages, after an unrecorded warm-up.
//! - burst: N subscribers on one topic; publish one message, wait until the
//!   last subscriber has it, record the time to last and every delivery's
//!   latency, pause, repeat K times (after 5 unrecorded warm-up bursts).
//!
//! Without --port it starts a ringcast engine in-process on 127.0.0.1:0.
//!
//! --proto ringcast-ws: subscribers over WebSocket (--ws-port, or the
//! embedded engine's WebSocket listener), the publisher over native TCP.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use ringcast_bench::{self as bench, Params, Proto, RxClock, Workload, CHILD_FLAG, RUN_ID_FLAG};

use crate::args::{self, Failure, Flag};

/// The flags, the hidden ones (for child processes) last.
fn flags() -> Vec<Flag> {
    let d = Params::default();
    let flag = |name, value, env, default: String, help| Flag {
        name,
        value,
        env: Some(env),
        default,
        help,
    };
    vec![
        flag(
            "--workload",
            Some("NAME"),
            "RINGCAST_BENCH_WORKLOAD",
            d.workload.name().into(),
            "steady (paced publisher, many topics) or burst (one message to all, timed to the last).",
        ),
        flag(
            "--proto",
            Some("NAME"),
            "RINGCAST_BENCH_PROTO",
            d.proto.name().into(),
            "Server protocol: ringcast, ringcast-ws (WebSocket subscribers, native-TCP publisher), resp (Redis pub/sub) or nats; resp and nats need --port.",
        ),
        flag(
            "--host",
            Some("HOST"),
            "RINGCAST_BENCH_HOST",
            "127.0.0.1".into(),
            "Server host (with --port).",
        ),
        flag(
            "--port",
            Some("PORT"),
            "RINGCAST_BENCH_PORT",
            "none: start a ringcast engine in this process".into(),
            "Server port (ringcast-ws: the native port, for the publisher). Without it the bench runs an embedded engine on 127.0.0.1:0.",
        ),
        flag(
            "--ws-port",
            Some("PORT"),
            "RINGCAST_BENCH_WS_PORT",
            format!(
                "{} (embedded: the engine's own)",
                bench::DEFAULT_WS_PORT
            ),
            "ringcast-ws with --port: the daemon's WebSocket port (--ws-listen) on --host, where subscribers connect.",
        ),
        flag(
            "--subs",
            Some("N"),
            "RINGCAST_BENCH_SUBS",
            d.subs.to_string(),
            "Subscriber connections, one subscription each.",
        ),
        flag(
            "--topics",
            Some("C"),
            "RINGCAST_BENCH_TOPICS",
            format!("{} (steady), 1 (burst)", d.topics),
            "Topics; subscriber i subscribes to topic i mod C (burst: 1).",
        ),
        flag(
            "--rate",
            Some("MSG/S"),
            "RINGCAST_BENCH_RATE",
            format!("{}", d.rate),
            "Steady: messages per second in total, round-robin over the topics.",
        ),
        flag(
            "--size",
            Some("BYTES"),
            "RINGCAST_BENCH_SIZE",
            d.size.to_string(),
            "Payload size, at least 16 (send time and sequence number; the rest is filler).",
        ),
        flag(
            "--duration",
            Some("SECS"),
            "RINGCAST_BENCH_DURATION",
            format!("{}", d.duration.as_secs_f64()),
            "Steady: length of the measured phase.",
        ),
        flag(
            "--messages",
            Some("M"),
            "RINGCAST_BENCH_MESSAGES",
            "none (use --duration)".into(),
            "Steady: measured messages to publish, instead of --duration.",
        ),
        flag(
            "--warmup",
            Some("SECS"),
            "RINGCAST_BENCH_WARMUP",
            format!("{}", d.warmup.as_secs_f64()),
            "Steady: seconds of the same traffic before measuring, not recorded.",
        ),
        flag(
            "--warmup-messages",
            Some("M"),
            "RINGCAST_BENCH_WARMUP_MESSAGES",
            format!(
                "none (steady: use --warmup; burst: {})",
                bench::DEFAULT_WARMUP_BURSTS
            ),
            "Warm-up messages (steady) or bursts (burst), instead of --warmup.",
        ),
        flag(
            "--bursts",
            Some("K"),
            "RINGCAST_BENCH_BURSTS",
            d.bursts.to_string(),
            "Burst: measured bursts.",
        ),
        flag(
            "--gap",
            Some("SECS"),
            "RINGCAST_BENCH_GAP",
            format!("{}ms", d.gap.as_millis()),
            "Burst: pause after each burst reached its last subscriber (e.g. 0.05 or 50ms).",
        ),
        flag(
            "--procs",
            Some("P"),
            "RINGCAST_BENCH_PROCS",
            format!(
                "auto: 1 up to {} subscribers ({} embedded), else one per {}",
                bench::SUBS_PER_PROC,
                bench::SUBS_PER_PROC_EMBEDDED,
                bench::SUBS_PER_PROC
            ),
            "Processes holding subscribers; past 1 the bench starts P children and only publishes itself.",
        ),
        flag(
            "--source-ips",
            Some("K"),
            "RINGCAST_BENCH_SOURCE_IPS",
            format!("auto: one per {} subscribers", bench::CONNS_PER_SOURCE_IP),
            "Spread loopback connections over source addresses 127.0.0.1 to 127.0.0.K.",
        ),
        flag(
            "--cpu",
            Some("LIST"),
            "RINGCAST_BENCH_CPU",
            "none (no pinning)".into(),
            "Pin the generator: this process to the first CPU, child k to the (k mod len)th.",
        ),
        flag(
            "--server-pid",
            Some("PID"),
            "RINGCAST_BENCH_SERVER_PID",
            "none".into(),
            "Server process whose CPU (all threads, /proc/PID/stat) is measured over the measured phase.",
        ),
        flag(
            "--server-cores",
            Some("N"),
            "RINGCAST_BENCH_SERVER_CORES",
            d.server_cores.to_string(),
            "Embedded engine: reactor threads.",
        ),
        flag(
            "--server-cpus",
            Some("LIST"),
            "RINGCAST_BENCH_SERVER_CPUS",
            "none (no pinning)".into(),
            "Embedded engine: CPUs to pin its reactors to.",
        ),
        flag(
            "--timeout",
            Some("SECS"),
            "RINGCAST_BENCH_TIMEOUT",
            format!("{}", d.timeout.as_secs_f64()),
            "Limit for setting up (plus 0.5 ms per subscriber), for each burst, and for the final drain.",
        ),
        flag(
            "--rx-clock",
            Some("NAME"),
            "RINGCAST_BENCH_RX_CLOCK",
            d.rx_clock.name().into(),
            "Receive time: kernel (the segment's SO_TIMESTAMPNS stamp, excludes the generator's own queueing) or user (clock after read).",
        ),
        Flag {
            name: "--json",
            value: None,
            env: Some("RINGCAST_BENCH_JSON"),
            default: "off (a table)".into(),
            help: "Print one JSON object instead of the table.",
        },
        // Hidden: how the parent starts its children.
        Flag {
            name: CHILD_FLAG,
            value: Some("FIRST:COUNT"),
            env: None,
            default: String::new(),
            help: "",
        },
        Flag {
            name: RUN_ID_FLAG,
            value: Some("ID"),
            env: None,
            default: String::new(),
            help: "",
        },
    ]
}

/// `ringcast bench --help`.
pub fn help() -> String {
    let visible: Vec<Flag> = flags().into_iter().filter(|f| !f.help.is_empty()).collect();
    format!(
        "ringcast bench: load generator for broadcast servers (ringcast, Redis, NATS).\n\
         \n\
         Usage: ringcast bench [FLAGS]\n\
         \n\
         Workloads:\n  \
           steady  --subs N subscribers over --topics C (subscriber i on topic i mod C); one\n          \
                   publisher sends --size-byte messages at --rate msg/s round-robin over the\n          \
                   topics for --duration seconds (or --messages), after --warmup seconds.\n  \
           burst   --subs N subscribers on one topic; publish one message, wait until the last\n          \
                   subscriber has it, record the time to last, pause --gap; --bursts times.\n\
         \n\
         Every payload carries its send time (CLOCK_REALTIME) and a sequence number: latency\n\
         per delivery is receive time minus send time (HdrHistogram, 3 significant digits),\n\
         the receive time being the kernel's stamp on the segment (--rx-clock), so the\n\
         generator's own delays do not count; sequences give duplicates, reordering and\n\
         gaps. Delivery ratio must be 100%.\n\
         One single-threaded epoll loop per process; its CPU use is reported. Server CPU is\n\
         read from /proc (--server-pid, or the embedded engine's reactor threads).\n\
         \n\
         Without --port, a ringcast engine starts in this process (--server-cores reactors),\n\
         so `ringcast bench` alone gives a result.\n\
         \n\
         --proto ringcast-ws drives ringcast's WebSocket front: each subscriber connects to\n\
         --ws-port (embedded: the engine's WebSocket listener), upgrades (GET /ws, subprotocol\n\
         ringcast.v1), subscribes in a masked binary message and reads one native frame per\n\
         server message; it answers the server's pings. The publisher stays on the native TCP\n\
         port (--port), the realistic mix, so only the fan-out transport differs from\n\
         --proto ringcast; sequence checks, latency and receive stamps are the same.\n\
         \n\
         Prints a table, or with --json one JSON object. Exits 0 when a report was printed\n\
         (check its delivery ratio), 1 when the run could not be done, 2 on bad usage.\n\
         \n\
         Flags (a flag beats its environment variable, which beats the default):\n\
         {}\n\
         Examples:\n  \
           ringcast bench\n  \
           ringcast bench --port 7400 --workload burst --subs 5000 --bursts 50 --cpu 0 --server-pid 1234\n  \
           ringcast bench --port 7400 --ws-port 7401 --proto ringcast-ws --workload burst --subs 5000\n  \
           ringcast bench --port 6379 --proto resp --subs 10000 --topics 1 --rate 20 --json\n  \
           ringcast bench --port 4222 --proto nats --subs 19000 --topics 40 --rate 400\n",
        args::render_flags(&visible)
    )
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .replace('_', "")
        .parse()
        .map_err(|_| format!("expected messages per second like 1000 or 0.5, got {s:?}"))?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(format!("expected a rate above 0, got {s:?}"))
    }
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected FIRST:COUNT, got {s:?}");
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((
        args::parse_count_usize(a).map_err(|_| bad())?,
        args::parse_count_usize(b).map_err(|_| bad())?,
    ))
}

fn parse_port(s: &str) -> Result<u16, String> {
    args::parse_count(s)
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("expected a port 1 to 65535, got {s:?}"))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Failure::Usage(format!("--host: cannot resolve {host:?}")))
}

/// The parameters and, for a child, its subscriber range.
type Parsed = (Params, Option<(usize, usize)>, bool);

fn params_from(words: Vec<OsString>, env: args::EnvLookup<'_>) -> Result<Option<Parsed>, Failure> {
    let flags = flags();
    let p = args::parse("bench", &flags, false, words, env)?;
    if p.help {
        return Ok(None);
    }
    let d = Params::default();
    let workload = match p.get("--workload", |s| {
        Workload::from_name(s).ok_or_else(|| format!("expected steady or burst, got {s:?}"))
    })? {
        Some(w) => w,
        None => d.workload,
    };
    let proto = p
        .get("--proto", |s| {
            Proto::from_name(s)
                .ok_or_else(|| format!("expected ringcast, ringcast-ws, resp or nats, got {s:?}"))
        })?
        .unwrap_or(d.proto);
    let host = p.get("--host", |s| Ok(s.to_string()))?;
    let target = match p.get("--port", parse_port)? {
        Some(port) => Some(resolve(host.as_deref().unwrap_or("127.0.0.1"), port)?),
        None if host.is_some() => {
            return Err(Failure::Usage(
                "--host needs --port (without --port the bench runs an embedded engine)".into(),
            ))
        }
        None => None,
    };
    let ws_port = p.get("--ws-port", parse_port)?;
    if ws_port.is_some() && !proto.is_websocket() {
        return Err(Failure::Usage(
            "--ws-port is for --proto ringcast-ws (the subscribers' WebSocket port)".into(),
        ));
    }
    if ws_port.is_some() && target.is_none() {
        return Err(Failure::Usage(
            "--ws-port needs --port (the embedded engine's WebSocket port is its own)".into(),
        ));
    }
    let default_topics = match workload {
        Workload::Steady => d.topics,
        Workload::Burst => 1,
    };
    let params = Params {
        workload,
        proto,
        target,
        ws_port: ws_port.unwrap_or(d.ws_port),
        subs: p.get("--subs", args::parse_count_usize)?.unwrap_or(d.subs),
        topics: p
            .get("--topics", args::parse_count_usize)?
            .unwrap_or(default_topics),
        rate: p.get("--rate", parse_rate)?.unwrap_or(d.rate),
        size: p
            .get("--size", args::parse_byte_size_usize)?
            .unwrap_or(d.size),
        duration: p
            .get("--duration", args::parse_duration)?
            .unwrap_or(d.duration),
        messages: p.get("--messages", args::parse_count)?,
        warmup: p.get("--warmup", args::parse_duration)?.unwrap_or(d.warmup),
        warmup_messages: p.get("--warmup-messages", args::parse_count)?,
        bursts: p.get("--bursts", args::parse_count)?.unwrap_or(d.bursts),
        gap: p.get("--gap", args::parse_duration)?.unwrap_or(d.gap),
        procs: p.get("--procs", args::parse_count_usize)?,
        cpus: p.get("--cpu", args::parse_cpus)?.unwrap_or_default(),
        server_pid: p.get("--server-pid", |s| {
            args::parse_count(s)
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("expected a process id, got {s:?}"))
        })?,
        server_cores: p
            .get("--server-cores", args::parse_count_usize)?
            .unwrap_or(d.server_cores),
        server_cpus: p
            .get("--server-cpus", args::parse_cpus)?
            .unwrap_or_default(),
        source_ips: p.get("--source-ips", args::parse_count_usize)?,
        timeout: p
            .get("--timeout", args::parse_duration)?
            .unwrap_or(d.timeout),
        rx_clock: p
            .get("--rx-clock", |s| {
                RxClock::from_name(s).ok_or_else(|| format!("expected kernel or user, got {s:?}"))
            })?
            .unwrap_or(d.rx_clock),
        run_id: p.get(RUN_ID_FLAG, |s| Ok(s.to_string()))?,
    };
    let child = p.get(CHILD_FLAG, parse_range)?;
    Ok(Some((params, child, p.switch("--json")?)))
}

/// `ringcast bench [FLAGS]`.
pub fn run(words: Vec<OsString>) -> Result<(), Failure> {
    let Some((params, child, json)) = params_from(words, &args::process_env)? else {
        print!("{}", help());
        return Ok(());
    };
    let to_failure = |e: bench::BenchError| match e {
        bench::BenchError::Invalid(m) => Failure::Usage(m),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    fn parse(w: &[&str]) -> Result<Option<Parsed>, Failure> {
        params_from(words(w), &|_| None)
    }

    #[test]
    fn no_flags_is_the_embedded_default() {
        let (p, child, json) = parse(&[]).unwrap().unwrap();
        assert_eq!(p, Params::default());
        assert_eq!((child, json), (None, false));
        let (b, ..) = parse(&["--workload", "burst"]).unwrap().unwrap();
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
        let (child, range, _) = params_from(args, &|_| None).unwrap().unwrap();
        assert_eq!(range, Some((20_000, 20_000)));
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
    fn flags_and_errors() {
        let (p, _, json) = parse(&[
            "--port", "6379", "--proto", "resp", "--subs", "10_000", "--topics", "40", "--rate",
            "0.5", "--size", "1KiB", "--gap", "50ms", "--cpu", "0", "--json",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.target, Some(SocketAddr::from(([127, 0, 0, 1], 6379))));
        assert_eq!((p.subs, p.topics, p.size), (10_000, 40, 1024));
        assert_eq!(p.rate, 0.5);
        assert_eq!(p.gap, Duration::from_millis(50));
        assert!(json);
        let usage = |w: &[&str]| parse(w).err().map(|f| f.exit_code());
        assert_eq!(usage(&["--workload", "flood"]), Some(2));
        assert_eq!(usage(&["--proto", "mqtt"]), Some(2));
        assert_eq!(usage(&["--rate", "0"]), Some(2));
        assert_eq!(usage(&["--port", "0"]), Some(2));
        assert_eq!(usage(&["--host", "127.0.0.1"]), Some(2));
        assert_eq!(usage(&["--child", "12"]), Some(2));
        assert!(parse(&["--help"]).unwrap().is_none());
        let (w, ..) = parse(&[
            "--port",
            "17400",
            "--ws-port",
            "17401",
            "--proto",
            "ringcast-ws",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((w.proto, w.ws_port), (Proto::RingcastWs, 17401));
        let (w, ..) = parse(&["--proto", "ringcast-ws"]).unwrap().unwrap();
        assert_eq!((w.target, w.ws_port), (None, bench::DEFAULT_WS_PORT));
        assert_eq!(usage(&["--port", "1", "--ws-port", "2"]), Some(2));
        assert_eq!(
            usage(&["--proto", "ringcast-ws", "--ws-port", "2"]),
            Some(2)
        );
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
        let args = parent.child_args(10_000, 10_000, None);
        let (child, range, _) = params_from(args, &|_| None).unwrap().unwrap();
        assert_eq!(range, Some((10_000, 10_000)));
        assert_eq!(child.proto, Proto::RingcastWs);
        assert_eq!(child.target, parent.target);
        assert_eq!(child.subscriber_addr(), parent.subscriber_addr());
    }

    #[test]
    fn help_lists_every_visible_flag_with_its_default() {
        let text = help();
        for f in flags() {
            if f.help.is_empty() {
                assert!(!text.contains(f.name), "hidden {} shows", f.name);
            } else {
                assert!(text.contains(f.name), "{} missing", f.name);
                assert!(
                    text.contains(&format!("[default: {}]", f.default)),
                    "{} has no default shown",
                    f.name
                );
            }
        }
        assert!(text.contains("ringcast bench"));
    }
}
