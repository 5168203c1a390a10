//! The report as JSON (`--json`): serde views of [`Report`], field for field
//! what `scripts/bench-compare.sh` and the tests read, printed on one line.
//!
//! Numbers keep the report's form: floats rounded to 3 decimals, whole
//! values printed as integers (`1`, not `1.0`), non-finite values as `null`.
//! Absent values are `null`, never left out.

use serde::{Serialize, Serializer};

use super::account::Deliveries;
use super::hist::Summary;
use super::report::{PortReport, Report};
use super::Workload;

/// A float as the report prints it: whole values as integers, others in the
/// shortest form that reads back exactly, non-finite values as `null`.
fn number<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = (1u64 << 53) as f64;
    if !v.is_finite() {
        s.serialize_none()
    } else if v.fract() == 0.0 && v.abs() < EXACT {
        s.serialize_i64(v as i64)
    } else {
        s.serialize_f64(v)
    }
}

/// For `#[serde(serialize_with)]`: rounded to 3 decimals.
pub(crate) fn round3<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    number((v * 1e3).round() / 1e3, s)
}

/// [`round3`] for an optional value (`null` when absent).
fn round3_opt<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => round3(v, s),
        None => s.serialize_none(),
    }
}

/// The delivery ratio: rounded down to 6 decimals, so that a run short of
/// a few deliveries never reads as 1.
fn ratio<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    number((v * 1e6).floor() / 1e6, s)
}

/// The top-level object.
#[derive(Serialize)]
struct ReportJson<'a> {
    tool: String,
    date: &'a str,
    machine: MachineJson<'a>,
    params: ParamsJson<'a>,
    published: u64,
    #[serde(serialize_with = "round3")]
    publish_s: f64,
    #[serde(serialize_with = "round3")]
    max_publish_lag_us: f64,
    deliveries: DeliveriesJson,
    latency_us: &'a Summary,
    time_to_last_us: Option<&'a Summary>,
    /// With `--sub-ports`: one entry per port, in its order; else `null`.
    ports: Option<Vec<PortJson<'a>>>,
    #[serde(serialize_with = "round3_opt")]
    server_cpu_s: Option<f64>,
    #[serde(serialize_with = "round3_opt")]
    server_cpu_us_per_delivery: Option<f64>,
    server_cpu_source: &'a str,
    #[serde(serialize_with = "round3")]
    generator_cpu_s: f64,
    #[serde(serialize_with = "round3")]
    generator_busiest_core: f64,
    #[serde(serialize_with = "round3")]
    wall_s: f64,
    clean: bool,
    aborted: Option<&'a str>,
    first_error: Option<&'a str>,
}

#[derive(Serialize)]
struct MachineJson<'a> {
    kernel: &'a str,
    cpus: usize,
    cpu_model: &'a str,
}

/// The run's parameters; those that do not apply to its workload are `null`.
#[derive(Serialize)]
struct ParamsJson<'a> {
    workload: &'static str,
    proto: &'static str,
    target: &'a str,
    embedded: bool,
    subs: usize,
    topics: usize,
    /// Subscribers PSUBSCRIBE one pattern; `topics` is the channels it matches.
    patterns: bool,
    #[serde(serialize_with = "round3_opt")]
    rate: Option<f64>,
    size: usize,
    #[serde(serialize_with = "round3_opt")]
    duration_s: Option<f64>,
    messages: Option<u64>,
    warmup: u64,
    bursts: Option<u64>,
    #[serde(serialize_with = "round3_opt")]
    gap_ms: Option<f64>,
    rx_clock: &'static str,
    procs: usize,
    source_ips: usize,
    cpus: &'a [usize],
    server_pid: Option<u32>,
    server_cores: Option<usize>,
    /// `--sub-ports`, or `null`.
    sub_ports: Option<&'a [u16]>,
}

/// One `--sub-ports` port: its node's subscribers.
#[derive(Serialize)]
struct PortJson<'a> {
    port: u16,
    /// The publisher's node (the port is `--port`'s; ringcast-ws: `--ws-port`'s).
    local: bool,
    subs: usize,
    deliveries: PortDeliveriesJson,
    latency_us: &'a Summary,
    /// This port's percentiles minus the local port's (what the relay
    /// adds); `null` for the local port or when no port is local.
    minus_local_us: Option<Summary>,
}

#[derive(Serialize)]
struct PortDeliveriesJson {
    expected: u64,
    received: u64,
    #[serde(serialize_with = "ratio")]
    ratio: f64,
    duplicates: u64,
    reordered: u64,
    gaps: u64,
    disconnects: u64,
    server_errors: u64,
    unstamped: u64,
    gap_notices: u64,
    #[serde(serialize_with = "round3")]
    per_second: f64,
}

impl PortDeliveriesJson {
    fn new(d: &Deliveries, wall_s: f64) -> Self {
        PortDeliveriesJson {
            expected: d.expected,
            received: d.received,
            ratio: d.ratio(),
            duplicates: d.duplicates,
            reordered: d.reordered,
            gaps: d.gaps,
            disconnects: d.disconnects,
            server_errors: d.server_errors,
            unstamped: d.unstamped,
            gap_notices: d.gap_notices,
            per_second: if wall_s > 0.0 {
                d.received as f64 / wall_s
            } else {
                0.0
            },
        }
    }
}

impl<'a> PortJson<'a> {
    fn new(p: &'a PortReport, all: &[PortReport], wall_s: f64) -> Self {
        PortJson {
            port: p.port,
            local: p.local,
            subs: p.subs,
            deliveries: PortDeliveriesJson::new(&p.deliveries, wall_s),
            latency_us: &p.latency,
            minus_local_us: p.minus_local(all),
        }
    }
}

#[derive(Serialize)]
struct DeliveriesJson {
    expected: u64,
    received: u64,
    #[serde(serialize_with = "ratio")]
    ratio: f64,
    duplicates: u64,
    reordered: u64,
    gaps: u64,
    disconnects: u64,
    server_errors: u64,
    unstamped: u64,
    gap_notices: u64,
    foreign_payloads: u64,
    #[serde(serialize_with = "round3")]
    per_second: f64,
}

impl<'a> From<&'a Report> for ReportJson<'a> {
    fn from(r: &'a Report) -> Self {
        let p = &r.params;
        let steady = p.workload == Workload::Steady;
        let d = &r.deliveries;
        ReportJson {
            tool: format!("ringcast bench {}", env!("CARGO_PKG_VERSION")),
            date: &r.date,
            machine: MachineJson {
                kernel: &r.kernel,
                cpus: r.cpus,
                cpu_model: &r.cpu_model,
            },
            params: ParamsJson {
                workload: p.workload.name(),
                proto: p.proto.name(),
                target: &r.target,
                embedded: r.embedded,
                subs: p.subs,
                topics: p.topics,
                patterns: p.patterns,
                rate: steady.then_some(p.rate),
                size: p.size,
                duration_s: (steady && p.messages.is_none()).then_some(p.duration.as_secs_f64()),
                messages: steady.then(|| p.measured_count()),
                warmup: p.warmup_count(),
                bursts: (!steady).then_some(p.bursts),
                gap_ms: (!steady).then_some(p.gap.as_secs_f64() * 1e3),
                rx_clock: p.rx_clock.name(),
                procs: r.procs,
                source_ips: r.source_ips,
                cpus: &p.cpus,
                server_pid: p.server_pid,
                server_cores: r.embedded.then_some(p.server_cores),
                sub_ports: (!p.sub_ports.is_empty()).then_some(&p.sub_ports[..]),
            },
            published: r.published,
            publish_s: r.publish_s,
            max_publish_lag_us: r.max_publish_lag_us,
            deliveries: DeliveriesJson {
                expected: d.expected,
                received: d.received,
                ratio: d.ratio(),
                duplicates: d.duplicates,
                reordered: d.reordered,
                gaps: d.gaps,
                disconnects: d.disconnects,
                server_errors: d.server_errors,
                unstamped: d.unstamped,
                gap_notices: d.gap_notices,
                foreign_payloads: r.foreign_payloads,
                per_second: r.delivery_rate(),
            },
            latency_us: &r.latency,
            time_to_last_us: r.time_to_last.as_ref(),
            ports: (!r.ports.is_empty()).then(|| {
                r.ports
                    .iter()
                    .map(|p| PortJson::new(p, &r.ports, r.wall_s))
                    .collect()
            }),
            server_cpu_s: r.server_cpu_s,
            server_cpu_us_per_delivery: r.server_cpu_us_per_delivery(),
            server_cpu_source: &r.server_cpu_source,
            generator_cpu_s: r.generator_cpu_s,
            generator_busiest_core: r.generator_busiest,
            wall_s: r.wall_s,
            clean: r.is_clean(),
            aborted: r.aborted.as_deref(),
            first_error: r.first_error.as_deref(),
        }
    }
}

impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ReportJson::from(self).serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Nums {
        #[serde(serialize_with = "round3")]
        a: f64,
        #[serde(serialize_with = "round3")]
        b: f64,
        #[serde(serialize_with = "round3")]
        c: f64,
        #[serde(serialize_with = "round3")]
        d: f64,
        #[serde(serialize_with = "round3_opt")]
        e: Option<f64>,
        #[serde(serialize_with = "ratio")]
        f: f64,
        #[serde(serialize_with = "ratio")]
        g: f64,
    }

    #[test]
    fn numbers_keep_the_reports_form() {
        let n = Nums {
            a: 100.0,
            b: 2.12549,
            c: f64::NAN,
            d: -0.0001,
            e: None,
            f: 0.99999999,
            g: 1.0,
        };
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"a":100,"b":2.125,"c":null,"d":0,"e":null,"f":0.999999,"g":1}"#
        );
    }
}
