//! The NATS relay's state changes are logged by the real binary: connected,
//! disconnected (subscribers get a GAP), connected again.

mod common;
#[path = "support/nats_server.rs"]
mod nats;

use common::daemon::{event, free_addr, Daemon};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn relay_connections_and_losses_are_logged_once_each() {
    let mut server = nats::NatsServer::start();
    let native = free_addr();
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--listen",
            &native.to_string(),
            "--ws-listen",
            "off",
            "--resp-listen",
            "off",
            "--cores",
            "1",
            "--nats",
            &server.url(),
        ],
        &[],
    );
    let relay = |v: &serde_json::Value, what: &str| {
        event(v) == "relay" && v["message"].as_str().unwrap_or("").contains(what)
    };
    let up = d.wait_for("relay connected", WAIT, |v| relay(v, "relay connected"));
    assert_eq!(up["level"], "INFO", "{up}");
    server.kill();
    let down = d.wait_for("relay disconnected", WAIT, |v| relay(v, "disconnected"));
    assert_eq!(down["level"], "WARN", "{down}");
    server.restart();
    d.wait_for("relay connected again", WAIT, |_| {
        d.events()
            .iter()
            .filter(|v| relay(v, "relay connected"))
            .count()
            == 2
    });
    d.signal("TERM");
    assert!(
        d.wait_exit(Duration::from_secs(15)).success(),
        "{:#?}",
        d.lines()
    );
    let events = d.events();
    let downs = events.iter().filter(|v| relay(v, "disconnected")).count();
    assert_eq!(downs, 1, "one loss, one line: {events:#?}");
}
