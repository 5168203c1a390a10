//! `faults`: the cases, how one runs (a fresh daemon, the healthy pair,
//! before / fault / after) and the Markdown table of what they saw.

use crate::cases::*;
use crate::daemon::Daemon;
use crate::fronts::Front;
use crate::healthy::{Healthy, HealthyReport, PhaseStats, PHASES};
use crate::helpers::{ms, realtime_ns, wait_until};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

pub(crate) struct Outcome {
    /// What the fault did, in figures.
    pub(crate) note: String,
    /// Broken promises beside the healthy subscriber's (empty: none).
    pub(crate) failures: Vec<String>,
}

/// A fault: runs for `secs` seconds against `d`, returns what it saw.
pub(crate) type Fault = fn(&mut Daemon, &Opts) -> Outcome;

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) what: &'static str,
    pub(crate) nofile: u64,
    pub(crate) flags: &'static [&'static str],
    pub(crate) fault: Fault,
    /// The daemon is expected to exit (SIGTERM): no liveness or fd check,
    /// and frames published after the fault began may be refused.
    pub(crate) exits: bool,
}

pub(crate) struct Opts {
    pub(crate) secs: f64,
}

impl Opts {
    pub(crate) fn window(&self) -> Duration {
        Duration::from_secs_f64(self.secs)
    }
}

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "flood",
        what: "connections past the daemon's open-file limit (1,024) and back",
        nofile: 1024,
        flags: &[],
        fault: fault_flood,
        exits: false,
    },
    Case {
        name: "resets",
        what: "1,000 subscribers reset (RST) with sends in flight",
        nofile: 20000,
        flags: &[],
        fault: fault_resets,
        exits: false,
    },
    Case {
        name: "never-read",
        what:
            "200 subscribers that never read (4 KiB receive buffers), cut off at --max-backlog 2MiB",
        nofile: 20000,
        flags: &["--max-backlog", "2MiB"],
        fault: fault_never_read,
        exits: false,
    },
    Case {
        name: "big-frames",
        what: "1 MiB frames to 8 readers with a 2 MiB pool (exhausted)",
        nofile: 20000,
        flags: &["--pool-size", "2MiB"],
        fault: fault_big_frames,
        exits: false,
    },
    Case {
        name: "garbage",
        what: "random bytes on the native, HTTP/WebSocket and Redis ports",
        nofile: 20000,
        flags: &[],
        fault: fault_garbage,
        exits: false,
    },
    Case {
        name: "slowloris",
        what: "500 handshakes sent a byte per 500 ms, --http-timeout 2s",
        nofile: 20000,
        flags: &["--http-timeout", "2s"],
        fault: fault_slowloris,
        exits: false,
    },
    Case {
        name: "sigterm",
        what: "SIGTERM with 50 readers of 4 KiB frames at 500 msg/s",
        nofile: 20000,
        flags: &["--shutdown-timeout", "5s"],
        fault: fault_sigterm,
        exits: true,
    },
];

pub(crate) struct CaseResult {
    pub(crate) name: &'static str,
    pub(crate) what: &'static str,
    pub(crate) healthy: HealthyReport,
    pub(crate) outcome: Outcome,
    pub(crate) fd_before: usize,
    pub(crate) fd_after: usize,
    pub(crate) up: bool,
    pub(crate) failures: Vec<String>,
}

pub(crate) fn run_case(bin: &PathBuf, case: &Case, o: &Opts) -> CaseResult {
    let mut d = Daemon::spawn(bin, case.nofile, case.flags);
    let healthy = Healthy::start(&d, &Front::ALL);
    thread::sleep(o.window());
    let fd_before = d.fds();
    healthy.set_phase(1);
    let fault_ns = realtime_ns();
    let outcome = (case.fault)(&mut d, o);
    healthy.set_phase(2);
    if !case.exits {
        thread::sleep(o.window());
    }
    let h = healthy.finish(Duration::from_secs(5));
    let up = case.exits || d.alive();
    // Descriptors back to the baseline (the healthy connections closed in
    // `finish`, so after is below before).
    let mut fd_after = d.fds();
    if !case.exits {
        wait_until(Duration::from_secs(10), || {
            fd_after = d.fds();
            fd_after <= fd_before
        });
    }
    let mut failures = outcome.failures.clone();
    if !up {
        failures.push("daemon died".into());
    }
    if !case.exits && fd_after > fd_before {
        failures.push(format!("descriptors {fd_before} -> {fd_after}"));
    }
    for fr in &h.fronts {
        let name = fr.front.name();
        if fr.order_violations > 0 {
            failures.push(format!(
                "{name}: {} frames out of order",
                fr.order_violations
            ));
        }
        if fr.seq_gaps > 0 {
            failures.push(format!("{name}: {} seqs skipped", fr.seq_gaps));
        }
        // Every frame published must arrive; with SIGTERM only those published
        // before it (later ones may be refused by the closing daemon).
        let must = if case.exits { 1 } else { 3 };
        for (i, p) in fr.phases.iter().enumerate().take(must) {
            if p.received < p.published {
                failures.push(format!(
                    "{name} healthy lost {} of {} frames {}",
                    p.published - p.received,
                    p.published,
                    PHASES[i]
                ));
            }
        }
    }
    if !case.exits && !h.errors.is_empty() {
        failures.push(format!("healthy: {}", h.errors.join("; ")));
    }
    for fr in &h.fronts {
        let worst = &fr.phases[1];
        eprintln!(
            "chaos: {}: slowest {} healthy frame during the fault: {} ms, arrived {:.3} s into the fault",
            case.name,
            fr.front.name(),
            ms(worst.max_us),
            worst.worst_at_ns.saturating_sub(fault_ns) as f64 / 1e9
        );
    }
    CaseResult {
        name: case.name,
        what: case.what,
        healthy: h,
        outcome,
        fd_before,
        fd_after,
        up,
        failures,
    }
}

pub(crate) fn pct(p: &PhaseStats) -> String {
    if p.published == 0 {
        return "-".into();
    }
    format!("{:.2}%", 100.0 * p.received as f64 / p.published as f64)
}

pub(crate) fn faults(bin: &PathBuf, o: &Opts, names: &[String]) -> bool {
    let mut results = Vec::new();
    for case in CASES {
        if !names.is_empty() && !names.iter().any(|n| n == case.name) {
            continue;
        }
        eprintln!("chaos: {} ({})", case.name, case.what);
        let r = run_case(bin, case, o);
        eprintln!(
            "chaos: {} {}: {}",
            r.name,
            if r.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            r.outcome.note
        );
        results.push(r);
    }
    println!(
        "| case | fault | healthy delivery before / fault / after | order | p50 ms before → fault | p99 ms before → fault (after) | max ms fault | daemon | fds before → after | result |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for r in &results {
        // One line per front in each healthy cell: native, WS, RESP.
        let cell = |f: &dyn Fn(&crate::healthy::FrontReport, [&PhaseStats; 3]) -> String| {
            r.healthy
                .fronts
                .iter()
                .map(|fr| {
                    let ph = [&fr.phases[0], &fr.phases[1], &fr.phases[2]];
                    format!("{}: {}", fr.front.name(), f(fr, ph))
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        println!(
            "| {} | {}: {} | {} | {} | {} | {} | {} | {} | {} → {} | {} |",
            r.name,
            r.what,
            r.outcome.note,
            cell(&|_, [b, f, a]| format!(
                "{} / {} / {} ({} frames)",
                pct(b),
                pct(f),
                pct(a),
                b.published + f.published + a.published
            )),
            cell(&|fr, _| if fr.order_violations == 0 && fr.seq_gaps == 0 {
                "in order, no gap".to_string()
            } else {
                format!("{} out of order, {} gaps", fr.order_violations, fr.seq_gaps)
            }),
            cell(&|_, [b, f, _]| format!("{} → {}", ms(b.p50_us), ms(f.p50_us))),
            cell(&|_, [b, f, a]| format!("{} → {} ({})", ms(b.p99_us), ms(f.p99_us), ms(a.p99_us))),
            cell(&|_, [_, f, _]| ms(f.max_us)),
            if r.name == "sigterm" {
                "exited"
            } else if r.up {
                "up"
            } else {
                "DIED"
            },
            r.fd_before,
            r.fd_after,
            if r.failures.is_empty() {
                "pass".to_string()
            } else {
                format!("FAIL: {}", r.failures.join("; "))
            }
        );
        ok &= r.failures.is_empty();
    }
    ok
}
