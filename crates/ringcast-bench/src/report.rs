//! The result of a run, as a table for people or one JSON object.

use super::account::Deliveries;
use super::hist::Summary;
use super::{Params, Workload};

/// Busy fraction of one core past which a generator process is flagged.
pub const GENERATOR_BUSY: f64 = 0.8;

/// What the subscribers on one `--sub-ports` port (one node) measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PortReport {
    pub port: u16,
    /// The publisher's node: the port equals `--port` (ringcast-ws: `--ws-port`).
    pub local: bool,
    /// Subscribers connected to it.
    pub subs: usize,
    pub deliveries: Deliveries,
    /// Latency per delivery of its subscribers.
    pub latency: Summary,
}

impl PortReport {
    /// This port's percentiles minus the local port's (µs), when there is
    /// a local port and this is another: what the relay adds.
    pub fn minus_local(&self, all: &[PortReport]) -> Option<Summary> {
        let local = all.iter().find(|p| p.local)?;
        if self.local || self.latency.count == 0 || local.latency.count == 0 {
            return None;
        }
        let (a, b) = (&self.latency, &local.latency);
        Some(Summary {
            count: a.count,
            min: a.min - b.min,
            p50: a.p50 - b.p50,
            p90: a.p90 - b.p90,
            p99: a.p99 - b.p99,
            p999: a.p999 - b.p999,
            max: a.max - b.max,
            mean: a.mean - b.mean,
        })
    }
}

/// Everything a run measured, with the parameters and machine it ran on.
#[derive(Clone, Debug)]
pub struct Report {
    pub params: Params,
    /// What was driven: `embedded ringcast (N reactors) at ADDR` or `resp at ADDR`.
    pub target: String,
    /// Whether the engine ran in-process (`params.target` then holds its address).
    pub embedded: bool,
    /// Processes that held subscribers (1: the generator itself).
    pub procs: usize,
    /// Source addresses used.
    pub source_ips: usize,
    /// Measured messages (steady) or bursts (burst) published.
    pub published: u64,
    /// From the first to the last measured publish, in seconds.
    pub publish_s: f64,
    /// Most the publisher fell behind its schedule (steady), in µs.
    pub max_publish_lag_us: f64,
    pub deliveries: Deliveries,
    /// With `--sub-ports`: per port, in its order (empty without it).
    pub ports: Vec<PortReport>,
    /// Latency per delivery.
    pub latency: Summary,
    /// Time to the last subscriber per burst (burst only).
    pub time_to_last: Option<Summary>,
    /// Server CPU over the measured phase, in seconds, when known.
    pub server_cpu_s: Option<f64>,
    /// Where the server CPU figure comes from.
    pub server_cpu_source: String,
    /// Generator CPU over the measured phase, all processes.
    pub generator_cpu_s: f64,
    /// The busiest generator process's share of one core.
    pub generator_busiest: f64,
    /// Measured phase: first measured publish to last measured delivery.
    pub wall_s: f64,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// The first error seen (a subscriber cut off, a server ERROR).
    pub first_error: Option<String>,
    /// Payloads without the generator's stamp (another publisher on the topics?).
    pub foreign_payloads: u64,
    /// UTC date and time of the run, ISO 8601.
    pub date: String,
    pub kernel: String,
    pub cpus: usize,
    pub cpu_model: String,
}

impl Report {
    /// Server CPU µs per delivery received.
    pub fn server_cpu_us_per_delivery(&self) -> Option<f64> {
        let s = self.server_cpu_s?;
        (self.deliveries.received > 0).then(|| s * 1e6 / self.deliveries.received as f64)
    }

    /// Deliveries per second over the measured phase.
    pub fn delivery_rate(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.deliveries.received as f64 / self.wall_s
        } else {
            0.0
        }
    }

    /// Whether the run met its bar: every delivery, none twice, in order.
    pub fn is_clean(&self) -> bool {
        let d = &self.deliveries;
        self.aborted.is_none()
            && d.received == d.expected
            && d.duplicates == 0
            && d.reordered == 0
            && d.gaps == 0
            && d.disconnects == 0
    }

    /// One JSON object on one line (see `json` for its form).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// The human table.
    pub fn to_table(&self) -> String {
        let p = &self.params;
        let d = &self.deliveries;
        let mut out = String::new();
        let mut line = |k: &str, v: String| {
            out.push_str(&format!("  {k:<16} {v}\n"));
        };
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let on = if p.patterns {
            format!(
                "on the pattern bench.<run>.news.* ({} channel{} published to)",
                p.topics,
                plural(p.topics)
            )
        } else {
            match p.workload {
                Workload::Steady => format!("over {} topic{}", p.topics, plural(p.topics)),
                Workload::Burst => "on one topic".into(),
            }
        };
        let what = match p.workload {
            Workload::Steady => format!(
                "{} subscribers {on}, {} msg/s, {} B payloads, {} measured after {} warm-up messages",
                p.subs,
                p.rate,
                p.size,
                match p.messages {
                    Some(m) => format!("{m} messages"),
                    None => format!("{:.1} s", p.duration.as_secs_f64()),
                },
                p.warmup_count()
            ),
            Workload::Burst => format!(
                "{} subscribers {on}, {} B payloads, {} bursts {:.0} ms apart after {} warm-up bursts",
                p.subs,
                p.size,
                p.bursts,
                p.gap.as_secs_f64() * 1e3,
                p.warmup_count()
            ),
        };
        let mut head = format!(
            "ringcast bench: {} workload against {}\n",
            p.workload.name(),
            self.target
        );
        head.push_str(&format!("  {what}\n"));
        line(
            "published",
            match p.workload {
                Workload::Steady => format!(
                    "{} messages in {:.2} s ({:.0} msg/s; publisher lag at most {:.0} us)",
                    self.published,
                    self.publish_s,
                    if self.publish_s > 0.0 {
                        self.published as f64 / self.publish_s
                    } else {
                        0.0
                    },
                    self.max_publish_lag_us
                ),
                Workload::Burst => format!("{} bursts", self.published),
            },
        );
        line(
            "deliveries",
            format!(
                "{} of {} received ({:.4}%), {:.0}/s",
                d.received,
                d.expected,
                d.ratio() * 100.0,
                self.delivery_rate()
            ),
        );
        line("faults", faults(d));
        let pct = |s: &Summary| {
            format!(
                "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                us(s.p50),
                us(s.p90),
                us(s.p99),
                us(s.p999),
                us(s.max)
            )
        };
        line(
            "latency",
            format!(
                "{} ({} receive time)",
                pct(&self.latency),
                p.rx_clock.name()
            ),
        );
        if let Some(t) = &self.time_to_last {
            line("time to last", pct(t));
        }
        for port in &self.ports {
            let pd = &port.deliveries;
            let mut v = format!(
                "{}, {} subscribers: {} of {} received ({:.4}%); {}",
                if port.local { "local" } else { "remote" },
                port.subs,
                pd.received,
                pd.expected,
                pd.ratio() * 100.0,
                pct(&port.latency)
            );
            if let Some(m) = port.minus_local(&self.ports) {
                v.push_str(&format!(
                    "; minus local: p50 {}  p99 {}",
                    signed_us(m.p50),
                    signed_us(m.p99)
                ));
            }
            let clean = Deliveries {
                expected: pd.expected,
                received: pd.received,
                unstamped: pd.unstamped,
                ..Default::default()
            };
            if *pd != clean {
                v.push_str(&format!("; {}", faults(pd)));
            }
            line(&format!("port {}", port.port), v);
        }
        line(
            "server CPU",
            match (self.server_cpu_s, self.server_cpu_us_per_delivery()) {
                (Some(s), per) => format!(
                    "{s:.2} s ({:.0}% of one core), {} per delivery ({})",
                    if self.wall_s > 0.0 {
                        s / self.wall_s * 100.0
                    } else {
                        0.0
                    },
                    per.map_or("-".into(), |u| format!("{u:.2} us")),
                    self.server_cpu_source
                ),
                (None, _) => format!("not measured ({})", self.server_cpu_source),
            },
        );
        line(
            "generator CPU",
            format!(
                "{:.2} s over {} process{}, busiest at {:.0}% of one core{}",
                self.generator_cpu_s,
                self.procs.max(1) + usize::from(self.procs > 1),
                if self.procs == 1 { "" } else { "es" },
                self.generator_busiest * 100.0,
                if self.generator_busiest > GENERATOR_BUSY {
                    " (busy: the generator may be the bottleneck; add --procs)"
                } else {
                    ""
                }
            ),
        );
        line("wall", format!("{:.2} s measured", self.wall_s));
        line(
            "machine",
            format!(
                "Linux {}, {} CPUs ({}), {}",
                self.kernel, self.cpus, self.cpu_model, self.date
            ),
        );
        if let Some(a) = &self.aborted {
            line("ABORTED", a.clone());
        }
        if let Some(e) = &self.first_error {
            line("first error", e.clone());
        }
        if d.unstamped > 0 {
            line(
                "unstamped",
                format!(
                    "{} measured deliveries carried no kernel receive stamp and were timed by the clock after the read",
                    d.unstamped
                ),
            );
        }
        if self.foreign_payloads > 0 {
            line(
                "foreign",
                format!(
                    "{} payloads without the generator's stamp (another publisher on these topics?)",
                    self.foreign_payloads
                ),
            );
        }
        head + &out
    }
}

/// The fault counters, for people.
fn faults(d: &Deliveries) -> String {
    let mut s = format!(
        "{} duplicates, {} reordered, {} gaps, {} disconnects, {} server errors",
        d.duplicates, d.reordered, d.gaps, d.disconnects, d.server_errors
    );
    if d.gap_notices > 0 {
        s.push_str(&format!(", {} GAP notices", d.gap_notices));
    }
    s
}

/// [`us`] with a sign: `+1.23ms`, `-12.0us`.
fn signed_us(v: f64) -> String {
    if v < 0.0 {
        format!("-{}", us(-v))
    } else {
        format!("+{}", us(v))
    }
}

/// Microseconds with a unit that keeps 3 or 4 digits.
fn us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2}s", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1}ms", v / 1e3)
    } else if v >= 1_000.0 {
        format!("{:.2}ms", v / 1e3)
    } else {
        format!("{v:.1}us")
    }
}

/// `2026-11-23T10:04:05Z` for seconds since the Unix epoch.
pub fn iso8601_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(workload: Workload) -> Report {
        let summary = Summary {
            count: 1000,
            min: 10.0,
            p50: 50.0,
            p90: 90.0,
            p99: 99.0,
            p999: 99.9,
            max: 1234.5,
            mean: 55.5,
        };
        Report {
            params: Params {
                workload,
                topics: 1,
                ..Params::default()
            },
            target: "embedded ringcast (1 reactor) at 127.0.0.1:40000".into(),
            embedded: true,
            procs: 1,
            source_ips: 1,
            published: 500,
            publish_s: 0.5,
            max_publish_lag_us: 12.0,
            deliveries: Deliveries {
                expected: 500_000,
                received: 500_000,
                ..Default::default()
            },
            ports: Vec::new(),
            latency: summary,
            time_to_last: (workload == Workload::Burst).then_some(summary),
            server_cpu_s: Some(1.5),
            server_cpu_source: "reactor threads ringcast-r*".into(),
            generator_cpu_s: 0.25,
            generator_busiest: 0.5,
            wall_s: 0.51,
            aborted: None,
            first_error: Some("a \"quoted\"\nerror".into()),
            foreign_payloads: 0,
            date: iso8601_utc(0),
            kernel: "6.18.0".into(),
            cpus: 2,
            cpu_model: "Test CPU".into(),
        }
    }

    /// The keys of each object, as `scripts/bench-compare.sh` and
    /// `tests/bench_embedded.rs` read them.
    #[test]
    fn json_has_the_expected_fields() {
        use serde_json::Value;
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |k: &[&str]| -> Vec<String> {
            let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        let summary = sorted(&["count", "min", "p50", "p90", "p99", "p999", "max", "mean"]);
        for w in [Workload::Steady, Workload::Burst] {
            let r = sample(w);
            let text = r.to_json();
            assert!(!text.contains('\n'));
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(
                keys(&v),
                sorted(&[
                    "tool",
                    "date",
                    "machine",
                    "params",
                    "published",
                    "publish_s",
                    "max_publish_lag_us",
                    "deliveries",
                    "latency_us",
                    "time_to_last_us",
                    "ports",
                    "server_cpu_s",
                    "server_cpu_us_per_delivery",
                    "server_cpu_source",
                    "generator_cpu_s",
                    "generator_busiest_core",
                    "wall_s",
                    "clean",
                    "aborted",
                    "first_error",
                ])
            );
            assert_eq!(
                keys(&v["machine"]),
                sorted(&["kernel", "cpus", "cpu_model"])
            );
            assert_eq!(
                keys(&v["params"]),
                sorted(&[
                    "workload",
                    "proto",
                    "target",
                    "embedded",
                    "subs",
                    "topics",
                    "patterns",
                    "rate",
                    "size",
                    "duration_s",
                    "messages",
                    "warmup",
                    "bursts",
                    "gap_ms",
                    "rx_clock",
                    "procs",
                    "source_ips",
                    "cpus",
                    "server_pid",
                    "server_cores",
                    "sub_ports",
                ])
            );
            assert_eq!(
                keys(&v["deliveries"]),
                sorted(&[
                    "expected",
                    "received",
                    "ratio",
                    "duplicates",
                    "reordered",
                    "gaps",
                    "disconnects",
                    "server_errors",
                    "unstamped",
                    "gap_notices",
                    "foreign_payloads",
                    "per_second",
                ])
            );
            assert_eq!(keys(&v["latency_us"]), summary);
            assert_eq!(v["time_to_last_us"].is_null(), w == Workload::Steady);
            if w == Workload::Burst {
                assert_eq!(keys(&v["time_to_last_us"]), summary);
                assert!(v["params"]["rate"].is_null() && v["params"]["bursts"] == 100);
            } else {
                assert!(v["params"]["bursts"].is_null() && v["params"]["rate"] == 100);
            }
            assert!(v["ports"].is_null() && v["params"]["sub_ports"].is_null());
            assert_eq!(v["first_error"], "a \"quoted\"\nerror");
            assert_eq!(v["aborted"], Value::Null);
            assert_eq!(v["clean"], true);
            for inner in [
                "\"ratio\":1,",
                "\"p50\":50,",
                "\"p999\":99.9,",
                "\"kernel\":\"6.18.0\"",
                "\"server_cpu_us_per_delivery\":3,",
            ] {
                assert!(text.contains(inner), "missing {inner} in {text}");
            }
        }
    }

    /// Three nodes: the publisher's (7400, local) and two remote ones, one
    /// of which lost deliveries and was told so.
    fn scaled_out() -> Report {
        let lat = |p50: f64, p99: f64| Summary {
            count: 100,
            min: 1.0,
            p50,
            p90: p99,
            p99,
            p999: p99,
            max: p99,
            mean: p50,
        };
        let port = |port, local, received, gap_notices, latency| PortReport {
            port,
            local,
            subs: 10,
            deliveries: Deliveries {
                expected: 100,
                received,
                gap_notices,
                ..Default::default()
            },
            latency,
        };
        let mut r = sample(Workload::Steady);
        r.params.target = Some(([127, 0, 0, 1], 7400).into());
        r.params.sub_ports = vec![7400, 7410, 7420];
        r.ports = vec![
            port(7400, true, 100, 0, lat(50.0, 100.0)),
            port(7410, false, 100, 0, lat(250.0, 400.0)),
            port(7420, false, 90, 2, lat(300.0, 2_100.0)),
        ];
        r
    }

    #[test]
    fn ports_are_reported_each_with_what_the_relay_adds() {
        use serde_json::Value;
        let r = scaled_out();
        let v: Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(
            v["params"]["sub_ports"],
            serde_json::json!([7400, 7410, 7420])
        );
        let ports = v["ports"].as_array().expect("ports");
        assert_eq!(ports.len(), 3);
        let mut keys: Vec<&str> = ports[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "deliveries",
                "latency_us",
                "local",
                "minus_local_us",
                "port",
                "subs"
            ]
        );
        assert_eq!(ports[0]["local"], true);
        assert!(ports[0]["minus_local_us"].is_null());
        assert_eq!(ports[1]["port"], 7410);
        assert_eq!(ports[1]["local"], false);
        assert_eq!(ports[1]["minus_local_us"]["p50"], 200);
        assert_eq!(ports[1]["minus_local_us"]["p99"], 300);
        assert_eq!(ports[2]["deliveries"]["ratio"], 0.9);
        assert_eq!(ports[2]["deliveries"]["gap_notices"], 2);
        assert_eq!(ports[2]["latency_us"]["p99"], 2100);
        let t = r.to_table();
        for needle in [
            "port 7400        local, 10 subscribers: 100 of 100 received (100.0000%); p50 50.0us",
            "port 7410        remote, 10 subscribers: 100 of 100 received",
            "minus local: p50 +200.0us  p99 +300.0us",
            "90 of 100 received (90.0000%)",
            "2 GAP notices",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
        // The clean ports list no faults; no local port, no differences.
        assert_eq!(t.matches("duplicates").count(), 2, "{t}");
        let mut none_local = r.clone();
        for p in &mut none_local.ports {
            p.local = false;
        }
        assert!(!none_local.to_table().contains("minus local"));
        assert!(none_local
            .ports
            .iter()
            .all(|p| p.minus_local(&none_local.ports).is_none()));
    }

    #[test]
    fn table_names_every_figure() {
        let t = sample(Workload::Burst).to_table();
        for needle in [
            "burst workload",
            "500000 of 500000 received (100.0000%)",
            "p50 50.0us",
            "max 1.23ms",
            "time to last",
            "3.00 us per delivery",
            "first error",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_795_428_245), "2026-11-23T10:04:05Z");
    }

    #[test]
    fn unit_choice() {
        assert_eq!(us(12.34), "12.3us");
        assert_eq!(us(1_234.0), "1.23ms");
        assert_eq!(us(45_600.0), "45.6ms");
        assert_eq!(us(2_500_000.0), "2.50s");
    }
}
