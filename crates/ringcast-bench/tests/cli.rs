//! The `ringcast-bench` binary's command line as a user meets it: `--help`
//! lists every flag with its environment variable, and bad usage exits 2
//! with a message naming the flag. None of these runs a benchmark.

use std::process::{Command, Output};

/// Every flag and its environment variable: the interface scripts rely on.
const FLAGS: &[(&str, &str)] = &[
    ("--workload", "RINGCAST_BENCH_WORKLOAD"),
    ("--proto", "RINGCAST_BENCH_PROTO"),
    ("--host", "RINGCAST_BENCH_HOST"),
    ("--port", "RINGCAST_BENCH_PORT"),
    ("--ws-port", "RINGCAST_BENCH_WS_PORT"),
    ("--sub-ports", "RINGCAST_BENCH_SUB_PORTS"),
    ("--subs", "RINGCAST_BENCH_SUBS"),
    ("--topics", "RINGCAST_BENCH_TOPICS"),
    ("--patterns", "RINGCAST_BENCH_PATTERNS"),
    ("--rate", "RINGCAST_BENCH_RATE"),
    ("--size", "RINGCAST_BENCH_SIZE"),
    ("--duration", "RINGCAST_BENCH_DURATION"),
    ("--messages", "RINGCAST_BENCH_MESSAGES"),
    ("--warmup", "RINGCAST_BENCH_WARMUP"),
    ("--warmup-messages", "RINGCAST_BENCH_WARMUP_MESSAGES"),
    ("--bursts", "RINGCAST_BENCH_BURSTS"),
    ("--gap", "RINGCAST_BENCH_GAP"),
    ("--procs", "RINGCAST_BENCH_PROCS"),
    ("--source-ips", "RINGCAST_BENCH_SOURCE_IPS"),
    ("--cpu", "RINGCAST_BENCH_CPU"),
    ("--server-pid", "RINGCAST_BENCH_SERVER_PID"),
    ("--server-cores", "RINGCAST_BENCH_SERVER_CORES"),
    ("--server-cpus", "RINGCAST_BENCH_SERVER_CPUS"),
    ("--timeout", "RINGCAST_BENCH_TIMEOUT"),
    ("--rx-clock", "RINGCAST_BENCH_RX_CLOCK"),
    ("--json", "RINGCAST_BENCH_JSON"),
];

/// Runs the binary with `args` and `env`, none of the caller's
/// RINGCAST_BENCH_* variables inherited.
fn bench(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast-bench"));
    for (_, var) in FLAGS {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run ringcast-bench")
}

/// Words separated by single spaces, whatever the help's line wrapping.
fn flat(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    for help in ["--help", "-h"] {
        let out = bench(&[help], &[]);
        assert!(out.status.success(), "{help}: {out:?}");
        let text = flat(&out.stdout);
        for (flag, var) in FLAGS {
            assert!(
                text.contains(&format!("{flag} <")) || ["--json", "--patterns"].contains(flag),
                "{help}: {flag}"
            );
            assert!(text.contains(&format!("[env: {var}]")), "{help}: {var}");
        }
        for shown in ["Usage: ringcast bench", "Examples:", "[default: 1000]"] {
            assert!(text.contains(shown), "{help}: {shown:?} missing in {text}");
        }
        // The flags a parent passes its children are not for people.
        assert!(
            !text.contains("--child") && !text.contains("--run-id"),
            "{text}"
        );
    }
    let long = flat(&bench(&["--help"], &[]).stdout);
    assert!(long.contains("Possible values: - steady:"), "{long}");
    assert!(long.contains("2 on bad usage"), "{long}");
    // The pattern workload and the embedded RESP front are explained.
    assert!(long.contains("PSUBSCRIBEs one pattern"), "{long}");
    assert!(long.contains("Redis-compatible RESP listener"), "{long}");
}

/// Exit code 2, and `needles` (the flag, the variable) in the message.
fn assert_usage(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let out = bench(args, env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: prints a report?");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?} {env:?}: no {needle:?} in {stderr}"
        );
    }
}

#[test]
fn a_bad_value_exits_2_naming_the_flag() {
    assert_usage(&["--subs", "lots"], &[], &["--subs", "lots"]);
    assert_usage(&["--workload=flood"], &[], &["--workload", "steady, burst"]);
    assert_usage(&["--gap", "soon"], &[], &["--gap"]);
    assert_usage(&["--wrkload", "burst"], &[], &["--wrkload", "--workload"]);
    assert_usage(&["--host", "127.0.0.1"], &[], &["--port"]);
    assert_usage(
        &["--port", "7400", "--ws-port", "7401"],
        &[],
        &["--ws-port"],
    );
    // Checked once the flags are parsed: still usage, still named.
    assert_usage(&["--size", "8"], &[], &["--size"]);
    // A bad variable names the flag and the variable.
    assert_usage(
        &[],
        &[("RINGCAST_BENCH_SUBS", "lots")],
        &["--subs", "RINGCAST_BENCH_SUBS=lots"],
    );
    assert_usage(
        &[],
        &[("RINGCAST_BENCH_JSON", "maybe")],
        &["--json", "RINGCAST_BENCH_JSON"],
    );
}

#[test]
fn patterns_are_for_resp_only() {
    // PSUBSCRIBE is RESP's: on another protocol --patterns is bad usage.
    for proto in ["ringcast", "ringcast-ws", "nats"] {
        assert_usage(
            &["--proto", proto, "--port", "7400", "--patterns"],
            &[],
            &["--patterns is for --proto resp", proto],
        );
    }
    // From its variable too; "0" leaves it off, so the same line is fine up
    // to the next check (a --size too small, so nothing runs).
    assert_usage(&[], &[("RINGCAST_BENCH_PATTERNS", "1")], &["--patterns"]);
    assert_usage(
        &["--size", "8"],
        &[("RINGCAST_BENCH_PATTERNS", "0")],
        &["--size must be at least"],
    );
    assert_usage(
        &["--proto", "resp", "--size", "8"],
        &[("RINGCAST_BENCH_PATTERNS", "yes")],
        &["--size must be at least"],
    );
}

#[test]
fn sub_ports_need_a_port_and_name_each_port_once() {
    // Without --port there are no nodes to spread over.
    assert_usage(
        &["--sub-ports", "7400,7410"],
        &[],
        &["--sub-ports", "--port"],
    );
    assert_usage(
        &[],
        &[("RINGCAST_BENCH_SUB_PORTS", "7400,7410")],
        &["--sub-ports", "--port"],
    );
    for bad in ["7400,,7410", "7400,x", "0", "70000", "7400,7410,7400"] {
        assert_usage(
            &["--port", "7400", "--sub-ports", bad],
            &[],
            &["--sub-ports"],
        );
    }
    assert_usage(
        &["--port", "7400", "--sub-ports", "7400,7400"],
        &[],
        &["port 7400 is listed twice"],
    );
    assert_usage(
        &["--port", "7400"],
        &[("RINGCAST_BENCH_SUB_PORTS", "7400;7410")],
        &["--sub-ports", "RINGCAST_BENCH_SUB_PORTS=7400;7410"],
    );
    // A good list parses; the run then fails on something else (no run).
    assert_usage(
        &[
            "--port",
            "7400",
            "--sub-ports",
            "7400,7410,7420",
            "--size",
            "8",
        ],
        &[],
        &["--size must be at least"],
    );
    let help = flat(&bench(&["--help"], &[]).stdout);
    assert!(help.contains("minus the local port's"), "{help}");
}

#[test]
fn a_flag_beats_its_variable_and_an_empty_variable_is_unset() {
    // The variable is read: RINGCAST_BENCH_SUBS=0 fails validation.
    assert_usage(
        &[],
        &[("RINGCAST_BENCH_SUBS", "0")],
        &["--subs must be at least 1"],
    );
    // The flag wins over a bad variable, so the error is about --size.
    assert_usage(
        &["--workload", "steady", "--size", "8"],
        &[("RINGCAST_BENCH_WORKLOAD", "flood")],
        &["--size must be at least"],
    );
    // Empty variables count as unset (no "invalid value ''").
    assert_usage(
        &["--size", "8"],
        &[("RINGCAST_BENCH_PORT", ""), ("RINGCAST_BENCH_JSON", "")],
        &["--size must be at least"],
    );
}

#[test]
fn version() {
    let out = bench(&["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ringcast-bench {}", env!("CARGO_PKG_VERSION"))
    );
}
