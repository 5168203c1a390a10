//! `ringcast bench` end to end: the real binary with no --port (an embedded
//! engine), small numbers, --json; every delivery must arrive, in order, once,
//! with a sane latency. Also the multi-process path (--procs 2: two child
//! processes own the subscribers and report back to the parent), and the
//! engine's Redis-compatible front (--proto resp, --patterns).

use serde_json::Value;
use std::process::Command;

/// Runs `ringcast bench ARGS --json`; its one line of JSON, parsed.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast-bench"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run ringcast bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ringcast bench {args:?} failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The number at `path` (`"deliveries.ratio"`, `"wall_s"`).
fn number(json: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(json, |v, key| &v[key])
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {json}"))
}

fn assert_clean(json: &Value, expected: f64) {
    assert_eq!(number(json, "deliveries.ratio"), 1.0, "{json}");
    assert_eq!(number(json, "deliveries.expected"), expected, "{json}");
    assert_eq!(number(json, "deliveries.received"), expected, "{json}");
    for fault in ["duplicates", "reordered", "gaps", "disconnects"] {
        let n = number(json, &format!("deliveries.{fault}"));
        assert_eq!(n, 0.0, "{fault}: {json}");
    }
    assert_eq!(json["clean"], true, "{json}");
    let p50 = number(json, "latency_us.p50");
    let max = number(json, "latency_us.max");
    assert!(p50 > 0.0 && p50 < 500_000.0, "p50 {p50} us: {json}");
    assert!(max >= p50, "{json}");
    assert!(number(json, "wall_s") > 0.0, "{json}");
}

#[test]
fn steady_embedded_delivers_everything() {
    let json = bench(&[
        "--subs",
        "50",
        "--topics",
        "1",
        "--messages",
        "200",
        "--warmup-messages",
        "20",
        "--rate",
        "2000",
    ]);
    // 50 subscribers, each owed all 200 measured messages.
    assert_clean(&json, 10_000.0);
    assert_eq!(number(&json, "published"), 200.0);
    assert!(json["time_to_last_us"].is_null(), "{json}");
    assert_eq!(json["params"]["embedded"], true, "{json}");
    assert!(json["machine"]["kernel"].is_string(), "{json}");
    // The embedded engine's reactor is measured.
    assert!(number(&json, "server_cpu_s") >= 0.0, "{json}");
}

#[test]
fn burst_embedded_times_the_last_subscriber() {
    let json = bench(&[
        "--workload",
        "burst",
        "--subs",
        "50",
        "--bursts",
        "20",
        "--gap",
        "1ms",
    ]);
    assert_clean(&json, 1_000.0);
    let ttl50 = number(&json, "time_to_last_us.p50");
    assert!(ttl50 > 0.0 && ttl50 < 500_000.0, "{json}");
    assert_eq!(number(&json, "time_to_last_us.count"), 20.0, "{json}");
    // The last subscriber is at least as late as the median delivery.
    assert!(number(&json, "time_to_last_us.max") >= number(&json, "latency_us.p50"));
}

#[test]
fn child_processes_report_back_to_the_parent() {
    let json = bench(&[
        "--subs",
        "60",
        "--topics",
        "3",
        "--procs",
        "2",
        "--messages",
        "90",
        "--warmup-messages",
        "9",
        "--rate",
        "1000",
    ]);
    // 3 topics get 30 measured messages each; each subscriber is owed 30.
    assert_clean(&json, 60.0 * 30.0);
    assert_eq!(number(&json, "params.procs"), 2.0, "{json}");
}

/// --proto resp without --port: subscribers and publisher on the embedded
/// engine's RESP listener (SUBSCRIBE, PUBLISH, `message` pushes).
#[test]
fn resp_embedded_delivers_everything() {
    let json = bench(&[
        "--proto",
        "resp",
        "--subs",
        "40",
        "--topics",
        "2",
        "--messages",
        "200",
        "--warmup-messages",
        "20",
        "--rate",
        "2000",
    ]);
    // 2 topics of 20 subscribers get 100 measured messages each.
    assert_clean(&json, 4_000.0);
    assert_eq!(json["params"]["proto"], "resp", "{json}");
    assert_eq!(json["params"]["embedded"], true, "{json}");
    assert_eq!(json["params"]["patterns"], false, "{json}");
    let target = json["params"]["target"].as_str().unwrap_or_default();
    assert!(target.contains("its RESP front at 127.0.0.1:"), "{json}");
}

/// --patterns: every subscriber PSUBSCRIBEs one pattern and receives the
/// messages of all channels as `pmessage` pushes, in publish order; also
/// with the subscribers in two child processes, and in bursts.
#[test]
fn resp_patterns_embedded_deliver_every_channel_to_everyone() {
    let steady = [
        "--proto",
        "resp",
        "--patterns",
        "--subs",
        "30",
        "--topics",
        "5",
        "--messages",
        "150",
        "--warmup-messages",
        "10",
        "--rate",
        "2000",
    ];
    for procs in ["1", "2"] {
        let mut args = steady.to_vec();
        args.extend(["--procs", procs]);
        let json = bench(&args);
        // Each of the 30 subscribers is owed all 150 messages, whatever the channel.
        assert_clean(&json, 30.0 * 150.0);
        assert_eq!(json["params"]["patterns"], true, "{json}");
        assert_eq!(number(&json, "params.topics"), 5.0, "{json}");
        assert_eq!(
            number(&json, "params.procs"),
            procs.parse::<f64>().unwrap(),
            "{json}"
        );
    }
    let json = bench(&[
        "--proto",
        "resp",
        "--patterns",
        "--workload",
        "burst",
        "--subs",
        "30",
        "--bursts",
        "10",
        "--gap",
        "1ms",
    ]);
    assert_clean(&json, 300.0);
    assert_eq!(number(&json, "time_to_last_us.count"), 10.0, "{json}");
}
