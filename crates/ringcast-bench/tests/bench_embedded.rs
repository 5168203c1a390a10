//! `ringcast bench` end to end: the real binary with no --port (an embedded
//! engine), small numbers, --json; every delivery must arrive, in order, once,
//! with a sane latency. Also the multi-process path (--procs 2: two child
//! processes own the subscribers and report back to the parent).

use std::process::Command;

/// Runs `ringcast bench ARGS --json` and returns its one line of JSON.
fn bench(args: &[&str]) -> String {
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
    stdout
}

/// The number after `"key":` inside the object named `object` (or at the
/// top level when `object` is empty).
fn number(json: &str, object: &str, key: &str) -> f64 {
    let scope = if object.is_empty() {
        json
    } else {
        let open = format!("\"{object}\":{{");
        let at = json
            .find(&open)
            .unwrap_or_else(|| panic!("no {object} in {json}"));
        &json[at + open.len()..]
    };
    let k = format!("\"{key}\":");
    let at = scope
        .find(&k)
        .unwrap_or_else(|| panic!("no {object}.{key} in {json}"));
    let rest = &scope[at + k.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{object}.{key} is not a number in {json}"))
}

fn assert_clean(json: &str, expected: f64) {
    assert_eq!(number(json, "deliveries", "ratio"), 1.0, "{json}");
    assert_eq!(number(json, "deliveries", "expected"), expected, "{json}");
    assert_eq!(number(json, "deliveries", "received"), expected, "{json}");
    for fault in ["duplicates", "reordered", "gaps", "disconnects"] {
        assert_eq!(number(json, "deliveries", fault), 0.0, "{fault}: {json}");
    }
    assert!(json.contains("\"clean\":true"), "{json}");
    let p50 = number(json, "latency_us", "p50");
    let max = number(json, "latency_us", "max");
    assert!(p50 > 0.0 && p50 < 500_000.0, "p50 {p50} us: {json}");
    assert!(max >= p50, "{json}");
    assert!(number(json, "", "wall_s") > 0.0, "{json}");
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
    assert_eq!(number(&json, "", "published"), 200.0);
    assert!(json.contains("\"time_to_last_us\":null"), "{json}");
    assert!(json.contains("\"embedded\":true"), "{json}");
    assert!(json.contains("\"kernel\":"), "{json}");
    // The embedded engine's reactor is measured.
    assert!(number(&json, "", "server_cpu_s") >= 0.0, "{json}");
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
    let ttl50 = number(&json, "time_to_last_us", "p50");
    assert!(ttl50 > 0.0 && ttl50 < 500_000.0, "{json}");
    assert_eq!(number(&json, "time_to_last_us", "count"), 20.0, "{json}");
    // The last subscriber is at least as late as the median delivery.
    assert!(number(&json, "time_to_last_us", "max") >= number(&json, "latency_us", "p50"));
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
    assert_eq!(number(&json, "params", "procs"), 2.0, "{json}");
}
