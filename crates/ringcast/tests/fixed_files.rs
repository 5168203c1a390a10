//! Every connection's socket sits in its reactor's fixed-file table (sends
//! and receives name it by index, skipping the per-op file lookup), and its
//! slot is emptied when the connection ends, however it ends: a socket left
//! in the table would stay open after the daemon closed its fd.
//!
//! The kernel lists the live entries of a ring's table in the ring's fdinfo
//! (`/proc/self/fdinfo/<ring fd>`, one `N: socket:[inode]` line each); the
//! engine runs in this process, so the test reads its own rings. One test in
//! this file: another engine in the same process would add its rings.

mod common;

use common::{config, connect, expect_closed, start, wait_until};
use ringcast_client::OwnedServerFrame;
use std::collections::HashSet;
use std::time::Duration;

const CLIENTS: usize = 200;
const TOPIC: &str = "fixed.files";

/// The socket inodes registered in the fixed-file tables of every io_uring
/// in this process.
fn registered_sockets() -> HashSet<u64> {
    let mut found = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed since the listing
        };
        if !target.to_string_lossy().contains("io_uring") {
            continue;
        }
        let info_path = format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info_path) else {
            continue;
        };
        for line in info.lines() {
            // "   12: socket:[345678]"
            let Some((_, rest)) = line.split_once(": socket:[") else {
                continue;
            };
            let inode = rest.trim_end_matches(']').parse().expect("socket inode");
            found.insert(inode);
        }
    }
    found
}

/// The inodes of the sockets this process holds as fds.
fn socket_fds() -> HashSet<u64> {
    let mut found = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                found.insert(inode.parse().expect("socket inode"));
            }
        }
    }
    found
}

#[test]
fn connections_use_fixed_file_slots_and_free_them_however_they_end() {
    let engine = start(config(2));
    let before = registered_sockets();
    assert!(
        before.is_empty(),
        "no connection yet, but the tables hold {before:?}"
    );

    let mut clients: Vec<_> = (0..CLIENTS).map(|_| connect(engine.local_addr())).collect();
    for c in &mut clients {
        c.subscribe(TOPIC).unwrap();
    }
    // Every accepted socket is in a table (and each is one of ours: a
    // server-side socket whose fd the engine also holds).
    let table = registered_sockets();
    assert_eq!(
        table.len(),
        CLIENTS,
        "{CLIENTS} connections, {} sockets in the fixed-file tables",
        table.len()
    );
    let fds = socket_fds();
    assert!(
        table.is_subset(&fds),
        "a registered socket is not an open fd of the daemon"
    );

    // Sends and receives by slot work: every subscriber gets the frame.
    let mut publisher = connect(engine.local_addr());
    publisher.publish(TOPIC, b"by index").unwrap();
    for c in &mut clients {
        let m = c.next_message().unwrap();
        assert_eq!(m.payload, b"by index");
    }

    // A third of them hang up, a third are cut off by the daemon for a
    // protocol error, a third stay until the daemon shuts down.
    let staying = clients.split_off(2 * CLIENTS / 3);
    let mut faulty = clients.split_off(CLIENTS / 3);
    drop(clients);
    for c in &mut faulty {
        c.send_raw(&[0xff; 16]).unwrap();
    }
    for c in &mut faulty {
        match c.next_frame().unwrap() {
            OwnedServerFrame::Error { .. } => {}
            other => panic!("expected ERROR for garbage, got {other:?}"),
        }
        expect_closed(c, "a connection that sent garbage");
    }
    drop(faulty);
    let left = staying.len() + 1; // and the publisher
    assert!(
        wait_until(Duration::from_secs(10), || registered_sockets().len()
            == left),
        "after {} connections ended, the tables still hold {} sockets (want {left})",
        CLIENTS - staying.len(),
        registered_sockets().len()
    );

    // Slots are reused: new connections work and are registered again.
    let mut again: Vec<_> = (0..20).map(|_| connect(engine.local_addr())).collect();
    for c in &mut again {
        c.subscribe(TOPIC).unwrap();
    }
    publisher.publish(TOPIC, b"again").unwrap();
    for c in &mut again {
        assert_eq!(c.next_message().unwrap().payload, b"again");
    }
    assert_eq!(registered_sockets().len(), left + again.len());

    drop((staying, again, publisher));
    drop(engine);
}
