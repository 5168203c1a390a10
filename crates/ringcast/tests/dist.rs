//! What `dist/` ships is consistent with the daemon: the systemd unit
//! (checked by `systemd-analyze verify` where it exists, and for the
//! settings the service needs), the environment file's variables (each one
//! a real flag's), and the Grafana dashboard (valid JSON, the panels an
//! operator watches, and only metric families the daemon exports).

mod common;

use common::prom;
use common::ws::{http_exchange, request};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../dist")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(dist(file)).unwrap_or_else(|e| panic!("dist/{file}: {e}"))
}

/// The values of `key=` lines of a unit file.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_waits_for_readiness_and_gives_the_daemon_what_it_needs() {
    let unit = read("ringcast.service");
    assert_eq!(values(&unit, "Type"), ["notify"]);
    assert_eq!(
        values(&unit, "ExecStart"),
        ["/usr/local/bin/ringcast serve"]
    );
    assert_eq!(
        values(&unit, "EnvironmentFile"),
        ["-/etc/ringcast/ringcast.env"]
    );
    assert_eq!(values(&unit, "LimitNOFILE").len(), 1);
    // Registered frame memory counts against RLIMIT_MEMLOCK.
    assert_eq!(values(&unit, "LimitMEMLOCK"), ["infinity"]);
    // io_uring must get through the system-call filter.
    let filter = values(&unit, "SystemCallFilter").join(" ");
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(filter.split(' ').any(|c| c == call), "{call} in {filter}");
    }
    // systemd waits longer than the graceful shutdown before SIGKILL.
    let stop: u64 = values(&unit, "TimeoutStopSec")[0].parse().unwrap();
    let flush = ringcast::Config::default().shutdown_timeout.as_secs();
    assert!(
        stop > 2 * flush,
        "TimeoutStopSec={stop} vs shutdown timeout {flush}s"
    );

    // systemd's own check, where systemd is installed: the unit with
    // ExecStart pointing at this build.
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: the unit's syntax is not verified");
        return;
    };
    assert!(out.status.success());
    let dir = std::env::temp_dir().join(format!("ringcast-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ringcast.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/ringcast", env!("CARGO_BIN_EXE_ringcast")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_variable_of_the_environment_file_is_a_flag_of_serve() {
    let env = read("ringcast.env");
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let mut n = 0;
    for line in env.lines() {
        let line = line.trim_start_matches('#');
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if !name.starts_with("RINGCAST_") {
            continue;
        }
        n += 1;
        assert!(
            help.contains(&format!("[env: {name}]")),
            "{name} is no flag's"
        );
    }
    assert!(n >= 5, "{n} variables");
}

#[test]
fn the_dashboard_shows_what_operators_watch_from_exported_families() {
    let text = read("grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dash["panels"].as_array().unwrap();
    let titles: Vec<String> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for want in [
        "connections",
        "deliveries",
        "backlog",
        "cut-offs",
        "latency",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "a {want} panel: {titles:?}"
        );
    }

    // Every family an expression names is in a live engine's /metrics.
    let engine = common::start(common::config(1));
    let r = http_exchange(engine.ws_addr().unwrap(), &request("GET", "/metrics"));
    let families = prom::parse(&r.text()).unwrap();
    let mut named = 0;
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("ringcast_") || word.starts_with("process_")) {
                    continue;
                }
                named += 1;
                let family = word.strip_suffix("_bucket").unwrap_or(word);
                assert!(
                    prom::family(&families, family).is_some(),
                    "panel {:?} uses {word}, which /metrics does not export",
                    p["title"]
                );
            }
        }
    }
    assert!(named >= panels.len(), "{named} metric names");
}
