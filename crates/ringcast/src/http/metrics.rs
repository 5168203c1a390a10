//! Prometheus text exposition (format 0.0.4) of the engine's counters.
//!
//! Every family carries `# HELP` and `# TYPE` lines; names are prefixed
//! `ringcast_`, counters end in `_total` and units are spelled out in the
//! names (`_bytes`, `_seconds`, base units only). Integer counters are written
//! as integers; derived figures (seconds, ratios) as plain decimals, never
//! `NaN`.

use crate::stats::{CutReason, Stats, Transport, ERROR_SLOTS, LATENCY_BUCKETS_NS};
use std::fmt::Write;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends the exposition of `stats` to `out`. `reactors_running` is the
/// number of reactor threads currently alive.
pub fn render(stats: &Stats, reactors_running: usize, out: &mut String) {
    let s = stats;
    let mut w = Writer { out };

    w.header(
        "ringcast_reactors",
        "gauge",
        "Reactor threads currently running.",
    );
    w.sample("ringcast_reactors", &[], reactors_running as u64);

    w.header(
        "ringcast_connections",
        "gauge",
        "Open connections by transport (http: not upgraded to WebSocket).",
    );
    for t in Transport::ALL {
        let n = s.connections.get(t as usize).copied().unwrap_or(0);
        w.sample("ringcast_connections", &[("transport", t.label())], n);
    }

    w.counter(
        "ringcast_connections_accepted_total",
        "Connections accepted.",
        s.accepted,
    );
    w.counter(
        "ringcast_connections_closed_total",
        "Connections closed.",
        s.closed,
    );
    w.counter(
        "ringcast_connections_refused_total",
        "Connections refused at the connection limit.",
        s.refused,
    );
    w.counter(
        "ringcast_accept_errors_total",
        "Accepts that failed in the kernel (EMFILE, ENFILE, ENOMEM, ...).",
        s.accept_errors,
    );
    w.counter(
        "ringcast_connections_shed_total",
        "Connections accepted and closed at once because the process was out of file descriptors.",
        s.fd_shed,
    );
    w.counter(
        "ringcast_slow_consumers_total",
        "Subscribers cut off for passing the backlog limit.",
        s.slow_consumers,
    );
    w.gauge(
        "ringcast_subscriptions",
        "Subscriptions held, all connections.",
        s.subscriptions,
    );
    w.gauge(
        "ringcast_topics",
        "Topics with at least one subscriber (the engine tracks no others).",
        s.topics,
    );
    w.counter(
        "ringcast_topics_created_total",
        "Topics created by a first subscriber.",
        s.topics_created,
    );
    w.counter(
        "ringcast_topics_reclaimed_total",
        "Topics forgotten when their last subscriber left (their seq starts again at 1 under a new epoch).",
        s.topics_reclaimed,
    );
    w.counter(
        "ringcast_publishes_total",
        "PUBLISH frames accepted.",
        s.publishes,
    );
    w.counter(
        "ringcast_encodes_total",
        "DATA frames encoded (one per accepted publish).",
        s.encodes,
    );
    w.counter(
        "ringcast_deliveries_total",
        "Frames queued to subscribers (one per subscriber per frame).",
        s.deliveries,
    );
    w.counter(
        "ringcast_sends_total",
        "Send operations completed.",
        s.sends,
    );
    w.counter(
        "ringcast_frames_sent_total",
        "Frames carried by completed sends.",
        s.frames_sent,
    );

    let coalesced = if s.sends == 0 {
        0.0
    } else {
        s.frames_sent as f64 / s.sends as f64
    };
    w.header(
        "ringcast_coalesced_frames_per_send",
        "gauge",
        "Average frames per send since start (frames_sent / sends; 0 before any send).",
    );
    w.sample_f64("ringcast_coalesced_frames_per_send", &[], coalesced);

    w.counter(
        "ringcast_short_sends_total",
        "Sends the socket took only part of.",
        s.short_sends,
    );
    w.counter(
        "ringcast_sent_bytes_total",
        "Bytes written to sockets.",
        s.bytes_out,
    );
    w.gauge(
        "ringcast_backlog_bytes",
        "Bytes queued for connections and not yet written.",
        s.backlog_bytes,
    );

    w.header(
        "ringcast_disconnects_total",
        "counter",
        "Connections cut off by the engine, by reason.",
    );
    for r in CutReason::ALL {
        let n = s.cuts.get(r as usize).copied().unwrap_or(0);
        w.sample("ringcast_disconnects_total", &[("reason", r.label())], n);
    }

    w.header(
        "ringcast_errors_total",
        "counter",
        "ERROR frames sent, by protocol error code.",
    );
    for (code, &n) in s.errors.iter().enumerate().skip(1) {
        w.sample("ringcast_errors_total", &[("code", ERROR_CODES[code])], n);
    }

    w.counter(
        "ringcast_heap_frames_total",
        "Frames that did not fit the registered pool and went to the heap.",
        s.heap_frames,
    );
    w.counter(
        "ringcast_websocket_upgrades_total",
        "WebSocket handshakes completed.",
        s.ws_upgrades,
    );
    w.counter(
        "ringcast_websocket_rejected_total",
        "WebSocket handshakes refused with an HTTP error.",
        s.ws_rejected,
    );

    w.header(
        "ringcast_http_responses_total",
        "counter",
        "HTTP responses other than WebSocket upgrades, by status class.",
    );
    for (class, &n) in ["2xx", "4xx", "5xx"].iter().zip(s.http_responses.iter()) {
        w.sample("ringcast_http_responses_total", &[("class", class)], n);
    }

    w.header(
        "ringcast_loop_iterations_total",
        "counter",
        "Event-loop iterations, by reactor.",
    );
    let mut core_label = String::new();
    for (i, c) in s.cores.iter().enumerate() {
        core_label.clear();
        let _ = write!(core_label, "{i}");
        w.sample(
            "ringcast_loop_iterations_total",
            &[("core", &core_label)],
            c.loops,
        );
    }

    w.header(
        "ringcast_busy_seconds_total",
        "counter",
        "Seconds a reactor spent working (not waiting in the kernel), by reactor.",
    );
    for (i, c) in s.cores.iter().enumerate() {
        core_label.clear();
        let _ = write!(core_label, "{i}");
        w.sample_f64(
            "ringcast_busy_seconds_total",
            &[("core", &core_label)],
            ns_to_seconds(c.busy_ns),
        );
    }

    render_latency(&mut w, s);
}

/// The publish → send-submitted histogram. Its `_count` is the total of the
/// buckets (the `+Inf` bucket), so the exposition is self-consistent even
/// when the snapshot raced a writer between bucket and count.
fn render_latency(w: &mut Writer<'_>, s: &Stats) {
    const NAME: &str = "ringcast_publish_to_send_seconds";
    w.header(
        NAME,
        "histogram",
        "Publish accepted (its ts_ns) to the send carrying it submitted, per send whose first new frame is DATA.",
    );
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

/// Label values of the error codes, by code (index 0 unused).
const ERROR_CODES: [&str; ERROR_SLOTS] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

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
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.header(name, "counter", help);
        self.sample(name, &[], v);
    }

    fn gauge(&mut self, name: &str, help: &str, v: u64) {
        self.header(name, "gauge", help);
        self.sample(name, &[], v);
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
            bytes_out: 4096,
            accepted: 7,
            closed: 2,
            refused: 1,
            accept_errors: 13,
            fd_shed: 14,
            topics_created: 15,
            topics_reclaimed: 16,
            slow_consumers: 1,
            errors: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            heap_frames: 9,
            connections: [3, 1, 1],
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
            "# TYPE ringcast_connections_accepted_total counter",
            "ringcast_connections_accepted_total 7",
            "ringcast_connections_closed_total 2",
            "ringcast_connections_refused_total 1",
            "ringcast_slow_consumers_total 1",
            "# TYPE ringcast_subscriptions gauge",
            "ringcast_subscriptions 12",
            "ringcast_topics 5",
            "ringcast_publishes_total 11",
            "ringcast_encodes_total 11",
            "ringcast_deliveries_total 33",
            "ringcast_sends_total 4",
            "ringcast_frames_sent_total 10",
            "ringcast_coalesced_frames_per_send 2.5",
            "ringcast_short_sends_total 1",
            "ringcast_sent_bytes_total 4096",
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
        assert_eq!(typed.len(), 30);
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
        assert!(!text.contains("inf"), "{text}");
        assert!(text
            .lines()
            .any(|l| l == "ringcast_coalesced_frames_per_send 0"));
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
