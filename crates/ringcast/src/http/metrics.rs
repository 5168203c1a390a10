//! Prometheus text exposition (format 0.0.4) of the engine's counters.
//!
//! Every family carries `# HELP` and `# TYPE` lines; names are prefixed
//! `ringcast_`, counters end in `_total` and units are spelled out in the
//! names (`_bytes`, `_seconds`, base units only). Integer counters are written
//! as integers; derived figures (seconds, ratios) as plain decimals, never
//! `NaN`.

use crate::process::ProcessStats;
use crate::stats::{Family, Kind, Samples, Stats, LATENCY_BUCKETS_NS};
use std::fmt::Write;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// The families that are not in the table of `crate::stats` (that one gives
// every plain counter and gauge and every labelled slot array).

const REACTORS: Family = Family {
    name: "ringcast_reactors",
    kind: Kind::Gauge,
    doc: "Reactor threads currently running.",
};

const BUILD_INFO: Family = Family {
    name: "ringcast_build_info",
    kind: Kind::Gauge,
    doc: "Always 1; its labels say which build runs: version (of the crate) and commit (git, or unknown).",
};

/// The git commit the binary was built from (build.rs), or `unknown`.
pub const COMMIT: &str = env!("RINGCAST_COMMIT");

const LOOPS: Family = Family {
    name: "ringcast_loop_iterations_total",
    kind: Kind::Counter,
    doc: "Event-loop iterations, by reactor.",
};

const BUSY: Family = Family {
    name: "ringcast_busy_seconds_total",
    kind: Kind::Counter,
    doc: "Seconds a reactor spent working (not waiting in the kernel), by reactor.",
};

const LATENCY: Family = Family {
    name: "ringcast_publish_to_send_seconds",
    kind: Kind::Histogram,
    doc: "Publish accepted (its ts_ns) to submission of the send that carries it: one sample per send whose first new frame is DATA, not one per delivery (later frames of a coalesced send are not sampled).",
};

/// Appends the exposition of `stats` to `out`. `reactors_running` is the
/// number of reactor threads currently alive.
pub fn render(stats: &Stats, reactors_running: usize, out: &mut String) {
    let s = stats;
    let mut w = Writer { out };

    w.header(&REACTORS);
    w.sample(REACTORS.name, &[], reactors_running as u64);

    for (family, samples) in s.families() {
        w.header(&family);
        match samples {
            Samples::One(v) => w.sample(family.name, &[], v),
            Samples::Slots {
                key,
                label_at,
                values,
            } => {
                for (i, &v) in values.iter().enumerate() {
                    if let Some(label) = label_at(i) {
                        w.sample(family.name, &[(key, label)], v);
                    }
                }
            }
        }
    }

    w.header(&BUILD_INFO);
    w.sample(
        BUILD_INFO.name,
        &[("version", env!("CARGO_PKG_VERSION")), ("commit", COMMIT)],
        1,
    );

    let mut core_label = String::new();
    w.header(&LOOPS);
    for (i, c) in s.cores.iter().enumerate() {
        core_label.clear();
        let _ = write!(core_label, "{i}");
        w.sample(LOOPS.name, &[("core", &core_label)], c.loops);
    }

    w.header(&BUSY);
    for (i, c) in s.cores.iter().enumerate() {
        core_label.clear();
        let _ = write!(core_label, "{i}");
        w.sample_f64(
            BUSY.name,
            &[("core", &core_label)],
            ns_to_seconds(c.busy_ns),
        );
    }

    render_latency(&mut w, s);
}

/// The `process_*` families of Prometheus's client libraries (no
/// `ringcast_` prefix: dashboards and alerts written for any process work).
pub fn render_process(p: &ProcessStats, out: &mut String) {
    let mut w = Writer { out };
    let fams: [(Family, Option<f64>); 6] = [
        (
            Family {
                name: "process_cpu_seconds_total",
                kind: Kind::Counter,
                doc: "Total user and system CPU time spent in seconds.",
            },
            p.cpu_seconds,
        ),
        (
            Family {
                name: "process_resident_memory_bytes",
                kind: Kind::Gauge,
                doc: "Resident memory size in bytes.",
            },
            p.resident_bytes.map(|b| b as f64),
        ),
        (
            Family {
                name: "process_virtual_memory_bytes",
                kind: Kind::Gauge,
                doc: "Virtual memory size in bytes.",
            },
            p.virtual_bytes.map(|b| b as f64),
        ),
        (
            Family {
                name: "process_open_fds",
                kind: Kind::Gauge,
                doc: "Number of open file descriptors.",
            },
            p.open_fds.map(|n| n as f64),
        ),
        (
            Family {
                name: "process_max_fds",
                kind: Kind::Gauge,
                doc: "Maximum number of open file descriptors.",
            },
            p.max_fds.map(|n| n as f64),
        ),
        (
            Family {
                name: "process_start_time_seconds",
                kind: Kind::Gauge,
                doc: "Start time of the process since unix epoch in seconds.",
            },
            p.start_time_seconds,
        ),
    ];
    for (f, v) in fams {
        if let Some(v) = v {
            w.header(&f);
            w.sample_f64(f.name, &[], v);
        }
    }
}

/// The publish → send-submitted histogram. Its `_count` is the total of the
/// buckets (the `+Inf` bucket), so the exposition is self-consistent even
/// when the snapshot raced a writer between bucket and count.
fn render_latency(w: &mut Writer<'_>, s: &Stats) {
    const NAME: &str = LATENCY.name;
    w.header(&LATENCY);
    let bucket = format!("{NAME}_bucket");
    let mut cumulative = 0u64;
    let mut le = String::new();
    for (i, &bound) in LATENCY_BUCKETS_NS.iter().enumerate() {
        cumulative += s.latency_buckets.get(i).copied().unwrap_or(0);
        le.clear();
        write_f64(&mut le, ns_to_seconds(bound));
        w.sample(&bucket, &[("le", &le)], cumulative);
    }
    // The +Inf bucket, plus anything past it should the vector be longer.
    cumulative += s
        .latency_buckets
        .iter()
        .skip(LATENCY_BUCKETS_NS.len())
        .sum::<u64>();
    w.sample(&bucket, &[("le", "+Inf")], cumulative);
    w.sample_f64(&format!("{NAME}_sum"), &[], ns_to_seconds(s.latency_sum_ns));
    w.sample(&format!("{NAME}_count"), &[], cumulative);
}

/// Writes the HELP text of a family documented by `doc`: its first
/// paragraph, lines trimmed and joined by single spaces, with `\` escaped.
fn write_help(out: &mut String, doc: &str) {
    let lines = doc
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty());
    for (i, line) in lines.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        for c in line.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
    }
}

fn ns_to_seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Writes a float the way Prometheus parses it: plain decimal for finite
/// values, `+Inf`/`-Inf`/`NaN` otherwise.
fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

struct Writer<'a> {
    out: &'a mut String,
}

impl Writer<'_> {
    fn header(&mut self, f: &Family) {
        let _ = write!(self.out, "# HELP {} ", f.name);
        write_help(self.out, f.doc);
        let _ = writeln!(self.out, "\n# TYPE {} {}", f.name, f.kind.as_str());
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.out.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.out, " {v}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.labels(name, labels);
        self.out.push(' ');
        write_f64(self.out, v);
        self.out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::CoreSnapshot;

    fn known() -> Stats {
        let mut latency_buckets = vec![0; LATENCY_BUCKETS_NS.len() + 1];
        latency_buckets[0] = 3; // le 1µs
        latency_buckets[1] = 2; // le 2.5µs
        latency_buckets[9] = 4; // le 1ms
        latency_buckets[LATENCY_BUCKETS_NS.len()] = 1; // +Inf
        Stats {
            publishes: 11,
            encodes: 11,
            deliveries: 33,
            sends: 4,
            frames_sent: 10,
            short_sends: 1,
            bytes_out: [4096, 10, 20, 30],
            accepted: 7,
            closed: 2,
            refused: 1,
            accept_errors: 13,
            fd_shed: 14,
            topics_created: 15,
            topics_reclaimed: 16,
            slow_consumers: [1, 0, 0, 2],
            errors: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            heap_frames: 9,
            connections: [3, 1, 1, 2],
            resp_encodes: [5, 6, 7],
            resp_protocol_errors: 3,
            relay_out: 21,
            relay_in: 22,
            relay_dropped: 23,
            relay_reconnects: 24,
            relay_gaps: 25,
            relay_waits_expired: 26,
            input_turns: [40, 41, 42],
            subscriptions: 12,
            topics: 5,
            backlog_bytes: 100,
            cuts: [1, 2, 3, 4, 5, 6],
            ws_upgrades: 6,
            ws_rejected: 2,
            http_responses: [10, 3, 1],
            cores: vec![
                CoreSnapshot {
                    loops: 100,
                    busy_ns: 1_500_000_000,
                },
                CoreSnapshot {
                    loops: 200,
                    busy_ns: 250_000,
                },
            ],
            latency_buckets,
            latency_sum_ns: 2_000_004_500,
            latency_count: 10,
        }
    }

    fn rendered(s: &Stats, reactors: usize) -> String {
        let mut out = String::new();
        render(s, reactors, &mut out);
        out
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn known_values_render_as_expected_lines() {
        let text = rendered(&known(), 2);
        let l = lines(&text);
        for want in [
            "# HELP ringcast_reactors Reactor threads currently running.",
            "# TYPE ringcast_reactors gauge",
            "ringcast_reactors 2",
            "# TYPE ringcast_connections gauge",
            "ringcast_connections{transport=\"tcp\"} 3",
            "ringcast_connections{transport=\"websocket\"} 1",
            "ringcast_connections{transport=\"http\"} 1",
            "ringcast_connections{transport=\"resp\"} 2",
            "ringcast_resp_encodes_total{kind=\"message\"} 5",
            "ringcast_resp_encodes_total{kind=\"pmessage\"} 6",
            "ringcast_resp_encodes_total{kind=\"smessage\"} 7",
            "ringcast_resp_protocol_errors_total 3",
            "ringcast_relay_out_total 21",
            "ringcast_relay_in_total 22",
            "ringcast_relay_dropped_total 23",
            "ringcast_relay_reconnects_total 24",
            "ringcast_relay_gaps_total 25",
            "ringcast_relay_waits_expired_total 26",
            "# TYPE ringcast_connections_accepted_total counter",
            "ringcast_connections_accepted_total 7",
            "ringcast_connections_closed_total 2",
            "ringcast_connections_refused_total 1",
            "ringcast_slow_consumers_total{transport=\"tcp\"} 1",
            "ringcast_slow_consumers_total{transport=\"resp\"} 2",
            "# TYPE ringcast_input_turns_total counter",
            "ringcast_input_turns_total{waited=\"polling\"} 40",
            "ringcast_input_turns_total{waited=\"timed\"} 41",
            "ringcast_input_turns_total{waited=\"parked\"} 42",
            "# TYPE ringcast_subscriptions gauge",
            "ringcast_subscriptions 12",
            "ringcast_topics 5",
            "ringcast_publishes_total 11",
            "ringcast_encodes_total 11",
            "ringcast_deliveries_total 33",
            "ringcast_sends_total 4",
            "ringcast_frames_sent_total 10",
            "# TYPE ringcast_build_info gauge",
            "ringcast_short_sends_total 1",
            "ringcast_sent_bytes_total{transport=\"tcp\"} 4096",
            "ringcast_sent_bytes_total{transport=\"http\"} 20",
            "ringcast_backlog_bytes 100",
            "ringcast_disconnects_total{reason=\"backlog\"} 1",
            "ringcast_disconnects_total{reason=\"linger\"} 2",
            "ringcast_disconnects_total{reason=\"idle\"} 3",
            "ringcast_disconnects_total{reason=\"request_timeout\"} 4",
            "ringcast_disconnects_total{reason=\"incomplete_frame\"} 5",
            "ringcast_disconnects_total{reason=\"input_memory\"} 6",
            "ringcast_accept_errors_total 13",
            "ringcast_connections_shed_total 14",
            "ringcast_topics_created_total 15",
            "ringcast_topics_reclaimed_total 16",
            "ringcast_errors_total{code=\"9\"} 9",
            "ringcast_errors_total{code=\"1\"} 1",
            "ringcast_errors_total{code=\"8\"} 8",
            "ringcast_heap_frames_total 9",
            "ringcast_websocket_upgrades_total 6",
            "ringcast_websocket_rejected_total 2",
            "ringcast_http_responses_total{class=\"2xx\"} 10",
            "ringcast_http_responses_total{class=\"4xx\"} 3",
            "ringcast_http_responses_total{class=\"5xx\"} 1",
            "ringcast_loop_iterations_total{core=\"0\"} 100",
            "ringcast_loop_iterations_total{core=\"1\"} 200",
            "ringcast_busy_seconds_total{core=\"0\"} 1.5",
            "ringcast_busy_seconds_total{core=\"1\"} 0.00025",
            "# TYPE ringcast_publish_to_send_seconds histogram",
            "ringcast_publish_to_send_seconds_bucket{le=\"0.000001\"} 3",
            "ringcast_publish_to_send_seconds_bucket{le=\"0.0000025\"} 5",
            "ringcast_publish_to_send_seconds_bucket{le=\"0.000005\"} 5",
            "ringcast_publish_to_send_seconds_bucket{le=\"0.001\"} 9",
            "ringcast_publish_to_send_seconds_bucket{le=\"1\"} 9",
            "ringcast_publish_to_send_seconds_bucket{le=\"+Inf\"} 10",
            "ringcast_publish_to_send_seconds_sum 2.0000045",
            "ringcast_publish_to_send_seconds_count 10",
        ] {
            assert!(l.contains(&want), "missing line {want:?} in\n{text}");
        }
        // Code 0 is not an error code.
        assert!(!text.contains("code=\"0\""));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = rendered(&known(), 2);
        let mut typed: Vec<(String, String)> = Vec::new();
        let mut helped: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!helped.iter().any(|h| h == name), "HELP twice: {name}");
                helped.push(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let (name, kind) = (it.next().unwrap(), it.next().unwrap());
                assert!(helped.last().map(String::as_str) == Some(name));
                assert!(!typed.iter().any(|(n, _)| n == name), "TYPE twice: {name}");
                typed.push((name.to_string(), kind.to_string()));
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                let (family, kind) = typed.last().expect("sample before any TYPE");
                assert!(name.starts_with("ringcast_"));
                if kind == "histogram" {
                    let suffix = name.strip_prefix(family.as_str()).unwrap();
                    assert!(["_bucket", "_sum", "_count"].contains(&suffix), "{name}");
                } else {
                    assert_eq!(name, family);
                }
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{name}");
                }
                let value = line.rsplit(' ').next().unwrap();
                let v = if value == "+Inf" {
                    f64::INFINITY
                } else {
                    value.parse::<f64>().unwrap()
                };
                assert!(v.is_finite() && v >= 0.0, "{line}");
            }
        }
        assert_eq!(typed.len(), 39);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_count() {
        let text = rendered(&known(), 1);
        let buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("ringcast_publish_to_send_seconds_bucket{le=\""))
            .map(|rest| {
                let (le, v) = rest.split_once("\"} ").unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, v.parse().unwrap())
            })
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKETS_NS.len() + 1);
        for (pair, &bound) in buckets.windows(2).zip(LATENCY_BUCKETS_NS.iter()) {
            assert!(pair[0].0 < pair[1].0, "le increasing");
            assert!(pair[0].1 <= pair[1].1, "cumulative");
            assert_eq!(pair[0].0, bound as f64 / 1e9);
        }
        let last = buckets.last().unwrap();
        assert_eq!(last.0, f64::INFINITY);
        let count_line = format!("ringcast_publish_to_send_seconds_count {}", last.1);
        assert!(text.lines().any(|l| l == count_line), "{text}");
        assert_eq!(last.1, 10);
    }

    #[test]
    fn empty_stats_render_zeroes_not_nan() {
        let text = rendered(&Stats::default(), 0);
        assert!(!text.contains("NaN"), "{text}");
        // Rust writes infinity as "inf", Prometheus would not parse it.
        assert!(
            !text.contains(" inf\n") && !text.contains("\"inf\""),
            "{text}"
        );
        assert!(text.lines().any(|l| l
            == format!(
                "ringcast_build_info{{version=\"{}\",commit=\"{COMMIT}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )));
        assert!(text
            .lines()
            .any(|l| l == "ringcast_publish_to_send_seconds_bucket{le=\"+Inf\"} 0"));
        assert!(text
            .lines()
            .any(|l| l == "ringcast_publish_to_send_seconds_count 0"));
        assert!(text
            .lines()
            .any(|l| l == "ringcast_publish_to_send_seconds_sum 0"));
        // No cores: the per-core families are declared with no samples.
        assert!(text.contains("# TYPE ringcast_loop_iterations_total counter\n"));
        assert!(!text.contains("ringcast_loop_iterations_total{"));
    }

    #[test]
    fn help_is_the_first_paragraph_of_the_doc_on_one_line() {
        let mut s = String::new();
        write_help(
            &mut s,
            " Topics forgotten when their last subscriber\n left (a \\ here).\n\n More.\n",
        );
        assert_eq!(
            s,
            "Topics forgotten when their last subscriber left (a \\\\ here)."
        );
        let text = rendered(&known(), 2);
        assert!(text.lines().any(|l| l
            == "# HELP ringcast_connections_shed_total Connections accepted and closed \
                at once because the process was out of file descriptors."));
        assert!(!text.contains("Index:"), "rustdoc-only paragraphs stay out");
    }

    #[test]
    fn process_families_are_named_as_client_libraries_name_them() {
        let p = ProcessStats {
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4096),
            virtual_bytes: None,
            open_fds: Some(7),
            max_fds: Some(1024),
            start_time_seconds: Some(1_700_000_000.25),
        };
        let mut text = String::new();
        render_process(&p, &mut text);
        for want in [
            "# TYPE process_cpu_seconds_total counter",
            "process_cpu_seconds_total 1.5",
            "# TYPE process_resident_memory_bytes gauge",
            "process_resident_memory_bytes 4096",
            "process_open_fds 7",
            "process_max_fds 1024",
            "process_start_time_seconds 1700000000.25",
        ] {
            assert!(text.lines().any(|l| l == want), "{want:?} in\n{text}");
        }
        // A figure /proc did not give is left out, family and all.
        assert!(!text.contains("process_virtual_memory_bytes"), "{text}");
    }

    #[test]
    fn floats_are_valid_prometheus_values() {
        let mut s = String::new();
        for (v, want) in [
            (0.0, "0"),
            (1e-6, "0.000001"),
            (2.5, "2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            s.clear();
            write_f64(&mut s, v);
            assert_eq!(s, want);
        }
    }
}
