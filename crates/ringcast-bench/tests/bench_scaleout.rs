//! `ringcast bench --sub-ports`: subscribers spread over several ringcast
//! nodes, the publisher on one, the report per port.
//!
//! The nodes are engines in this test process (ports picked by the kernel);
//! the generator is the real binary. With a real nats-server (the
//! `nats-server` binary: `RINGCAST_NATS_SERVER`, else on `PATH`, else
//! `/usr/sbin/nats-server`; a missing one fails the test with the install
//! hint) three nodes relay through it and every port must get everything,
//! over each protocol that spreads (native, resp, ringcast-ws). Without a
//! relay the per-port report must show where the loss is.

use ringcast::{Config, Engine};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `ringcast bench ARGS --json`; its one line of JSON, parsed. The
/// run must print a report (exit 0), clean or not.
fn bench(args: &[String]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast-bench"))
        .args(args)
        .arg("--json")
        .env_remove("RINGCAST_BENCH_SUB_PORTS")
        .output()
        .expect("run ringcast bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ringcast bench {args:?} failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn number(v: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A node: an engine with every front on a free loopback port.
fn node(nats: Option<(&str, &str)>, name: &str) -> Engine {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config {
        listen: any,
        ws_listen: Some(any),
        resp_listen: Some(any),
        cores: 1,
        shutdown_timeout: Duration::from_secs(1),
        node_name: Some(name.into()),
        ..Config::default()
    };
    if let Some((url, prefix)) = nats {
        config.nats = vec![url.to_string()];
        config.nats_prefix = prefix.to_string();
    }
    Engine::start(config).expect("start a node")
}

/// The body of `GET /healthz` on `addr`.
fn healthz(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The nats-server binary (see the module documentation).
fn nats_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("RINGCAST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    let debian = PathBuf::from("/usr/sbin/nats-server");
    on_path
        .or_else(|| debian.is_file().then_some(debian))
        .expect(
            "nats-server is not installed (not on PATH, not at /usr/sbin/nats-server): this test \
         needs it. Install it (Debian/Ubuntu: apt-get install nats-server) or set \
         RINGCAST_NATS_SERVER",
        )
}

/// A nats-server on a free port, killed on drop.
struct Nats {
    child: Child,
    url: String,
}

impl Nats {
    fn start() -> Nats {
        let bin = nats_binary();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = Command::new(&bin)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let mut info = [0u8; 4];
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    if s.read_exact(&mut info).is_ok() && &info == b"INFO" {
                        return Nats {
                            child,
                            url: format!("nats://127.0.0.1:{port}"),
                        };
                    }
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nats-server did not start");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a run's per-port section against the nodes' ports: three ports
/// in order, the first local, every measured delivery there, in order.
///
/// `warmup_gaps`: at most that many sequences may be missing per remote
/// port (none on the local one), in the warm-up. A node confirms a
/// SUBSCRIBE before its relay's NATS subscription for the topic is in
/// place, so the first messages published on another node can pass it by,
/// without a GAP notice. Native subscribers cannot see that (what a node
/// never received never got a seq there); RESP subscribers check the
/// generator's own sequence from 1 and do. The measured phase starts after
/// `--warmup-messages` and must be whole either way.
fn check_ports(json: &Value, ports: &[u16], subs: usize, per_sub: f64, warmup_gaps: f64) {
    if warmup_gaps == 0.0 {
        assert_eq!(json["clean"], true, "{json}");
    }
    assert_eq!(number(json, "deliveries.ratio"), 1.0, "{json}");
    let listed = json["params"]["sub_ports"].as_array().expect("sub_ports");
    assert_eq!(listed.len(), ports.len(), "{json}");
    let got = json["ports"].as_array().expect("ports");
    assert_eq!(got.len(), ports.len(), "{json}");
    for (j, (p, &port)) in got.iter().zip(ports).enumerate() {
        assert_eq!(number(p, "port"), f64::from(port), "{json}");
        assert_eq!(p["local"], j == 0, "{json}");
        // Subscriber i on port i mod k.
        let on_port = (subs + ports.len() - 1 - j) / ports.len();
        assert_eq!(number(p, "subs"), on_port as f64, "{json}");
        let owed = on_port as f64 * per_sub;
        assert_eq!(number(p, "deliveries.expected"), owed, "{json}");
        assert_eq!(number(p, "deliveries.ratio"), 1.0, "port {port}: {json}");
        for fault in ["duplicates", "reordered", "disconnects", "gap_notices"] {
            let n = number(p, &format!("deliveries.{fault}"));
            assert_eq!(n, 0.0, "{fault}: {json}");
        }
        let gaps = number(p, "deliveries.gaps");
        let allowed = if j == 0 { 0.0 } else { warmup_gaps };
        assert!(gaps <= allowed, "port {port}: {gaps} gaps: {json}");
        assert!(number(p, "latency_us.p50") > 0.0, "{json}");
        assert_eq!(p["minus_local_us"].is_null(), j == 0, "{json}");
    }
}

/// Three nodes on one nats-server: subscribers on all three, the
/// publisher on the first; every port gets every message, over the native
/// protocol, the Redis front and WebSocket.
#[test]
fn three_nodes_through_nats_deliver_everything_on_every_port() {
    let nats = Nats::start();
    let prefix = format!("benchtest{}", std::process::id());
    let nodes: Vec<Engine> = ["a", "b", "c"]
        .iter()
        .map(|name| node(Some((&nats.url, &prefix)), name))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        let web = n.ws_addr().expect("a web listener");
        while !healthz(web).contains("relay: connected to NATS") {
            assert!(
                Instant::now() < deadline,
                "relay not connected: {}",
                healthz(web)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let list = |f: &dyn Fn(&Engine) -> SocketAddr| -> (u16, String, Vec<u16>) {
        let ports: Vec<u16> = nodes.iter().map(|n| f(n).port()).collect();
        let joined = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        (ports[0], joined, ports)
    };
    // 31 subscribers over 3 ports (11, 10, 10), 2 topics; 100 measured
    // messages, 50 per topic, so each subscriber is owed 50.
    let common = words(&[
        "--subs",
        "31",
        "--topics",
        "2",
        "--rate",
        "500",
        "--messages",
        "100",
        "--warmup-messages",
        "100",
        "--timeout",
        "10",
    ]);
    let (port, sub_ports, ports) = list(&|n| n.local_addr());
    let mut args = words(&["--port", &port.to_string(), "--sub-ports", &sub_ports]);
    args.extend(common.clone());
    let native = bench(&args);
    check_ports(&native, &ports, 31, 50.0, 0.0);
    assert_eq!(native["params"]["proto"], "ringcast", "{native}");

    let (port, sub_ports, ports) = list(&|n| n.resp_addr().expect("a RESP listener"));
    let mut args = words(&[
        "--proto",
        "resp",
        "--port",
        &port.to_string(),
        "--sub-ports",
        &sub_ports,
    ]);
    args.extend(common.clone());
    // Each RESP subscriber may miss warm-up messages while interest crosses
    // NATS (see `check_ports`): at most the 100 warm-up messages each.
    check_ports(&bench(&args), &ports, 31, 50.0, 100.0 * 11.0);

    // WebSocket: the subscribers' ports are the web listeners; the local
    // one is --ws-port's; the publisher on the first node's native port.
    let (ws_port, sub_ports, ports) = list(&|n| n.ws_addr().expect("a web listener"));
    let mut args = words(&[
        "--proto",
        "ringcast-ws",
        "--port",
        &nodes[0].local_addr().port().to_string(),
        "--ws-port",
        &ws_port.to_string(),
        "--sub-ports",
        &sub_ports,
    ]);
    args.extend(common);
    check_ports(&bench(&args), &ports, 31, 50.0, 0.0);

    for n in nodes {
        n.shutdown();
        let _ = n.wait();
    }
}

/// Two nodes that do not relay: the second port's subscribers get nothing,
/// and the per-port report says so while the first port is whole.
#[test]
fn without_a_relay_the_remote_port_shows_the_loss() {
    let a = node(None, "a");
    let b = node(None, "b");
    let (pa, pb) = (a.local_addr().port(), b.local_addr().port());
    let json = bench(&words(&[
        "--port",
        &pa.to_string(),
        "--sub-ports",
        &format!("{pb},{pa}"),
        "--subs",
        "10",
        "--topics",
        "1",
        "--rate",
        "1000",
        "--messages",
        "40",
        "--warmup-messages",
        "5",
        "--timeout",
        "1",
    ]));
    assert_eq!(json["clean"], false, "{json}");
    assert_eq!(number(&json, "deliveries.expected"), 400.0, "{json}");
    assert_eq!(number(&json, "deliveries.received"), 200.0, "{json}");
    let ports = json["ports"].as_array().expect("ports");
    // --sub-ports order: b first (subscribers 0, 2, ...), then a.
    assert_eq!(number(&ports[0], "port"), f64::from(pb));
    assert_eq!(ports[0]["local"], false, "{json}");
    assert_eq!(number(&ports[0], "deliveries.received"), 0.0, "{json}");
    assert_eq!(number(&ports[0], "deliveries.ratio"), 0.0, "{json}");
    assert!(ports[0]["minus_local_us"].is_null(), "no samples: {json}");
    assert_eq!(number(&ports[1], "port"), f64::from(pa));
    assert_eq!(ports[1]["local"], true, "{json}");
    assert_eq!(number(&ports[1], "deliveries.ratio"), 1.0, "{json}");
    assert_eq!(number(&ports[1], "latency_us.count"), 200.0, "{json}");
    for n in [a, b] {
        n.shutdown();
        let _ = n.wait();
    }
}
