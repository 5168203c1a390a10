//! The fault suite and the soak (issue 14, parts 3 and 4), against the real
//! `ringcast serve` started as a child process on free ports.
//!
//! `ringcast-chaos faults [--secs N] [CASE...]`: each case starts a fresh
//! daemon, three healthy subscribers (native, WebSocket, Redis) and their
//! publisher (200 msg/s on a topic of their own each), measures a baseline
//! window, injects the fault for a window, measures the window after, and
//! reports what each healthy subscriber saw (delivery, order, latency),
//! whether the daemon stayed up and whether its descriptor count came back.
//! Exit 1 when a case's promise is broken.
//!
//! `ringcast-chaos soak --secs N --csv FILE`: subscribers, publishes,
//! reconnects and subscribe/unsubscribe churn over many topic names; RSS
//! and descriptors sampled every 10 s; slopes after a warm-up; topics held
//! at the end against `ringcast_topics`.
//!
//! Both are run by scripts/chaos.sh and scripts/soak.sh.

mod cases;
mod daemon;
mod faults;
mod fronts;
mod healthy;
mod helpers;
mod soak;
mod sys;

use faults::{faults, Opts, CASES};
use soak::{soak, SoakOpts};
use std::collections::HashMap;
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: ringcast-chaos [--binary PATH] faults [--secs N] [CASE...]\n       \
         ringcast-chaos [--binary PATH] soak [--secs N] [--subs N] [--rate N] [--reconnects N] [--churn N] [--topics N] [--csv FILE]\n\
         cases: {}",
        CASES.iter().map(|c| c.name).collect::<Vec<_>>().join(" ")
    );
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ringcast")))
        .unwrap_or_else(|| PathBuf::from("ringcast"));
    if args.first().map(String::as_str) == Some("--binary") && args.len() > 1 {
        bin = PathBuf::from(args.remove(1));
        args.remove(0);
    }
    if args.is_empty() {
        usage();
    }
    let cmd = args.remove(0);
    match sys::raise_nofile() {
        Ok((soft, _)) if soft < 2048 => eprintln!(
            "ringcast-chaos: open-file limit {soft} even at the hard limit: `flood` opens 1,536 sockets and may fail"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("ringcast-chaos: cannot raise the open-file limit to the hard limit: {e}"),
    }
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if let Some(k) = a.strip_prefix("--") {
            let Some(v) = it.next() else { usage() };
            flags.insert(k.to_string(), v);
        } else {
            rest.push(a);
        }
    }
    let num = |k: &str, dflt: f64| -> f64 {
        flags
            .get(k)
            .map(|v| v.parse::<f64>().unwrap_or_else(|_| usage()))
            .unwrap_or(dflt)
    };
    let ok = match cmd.as_str() {
        "faults" => faults(
            &bin,
            &Opts {
                secs: num("secs", 5.0),
            },
            &rest,
        ),
        "soak" => soak(
            &bin,
            &SoakOpts {
                secs: num("secs", 3600.0) as u64,
                subs: num("subs", 2000.0) as usize,
                rate: num("rate", 200.0),
                reconnects: num("reconnects", 50.0),
                churn: num("churn", 100.0),
                topics: num("topics", 10000.0) as usize,
                csv: PathBuf::from(
                    flags
                        .get("csv")
                        .cloned()
                        .unwrap_or_else(|| "soak.csv".into()),
                ),
            },
        ),
        _ => usage(),
    };
    std::process::exit(if ok { 0 } else { 1 })
}
