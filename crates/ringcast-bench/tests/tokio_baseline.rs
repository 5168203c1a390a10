//! The tokio baseline (examples/tokio_baseline.rs) builds and speaks the
//! protocol: it is compiled into this test as a module, started in-process on
//! port 0, and driven with ringcast's own blocking client.

#[allow(dead_code)]
#[path = "../examples/tokio_baseline.rs"]
mod baseline;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ringcast_client::{Client, ClientError, OwnedServerFrame};
use ringcast_proto::native::{ClientFrame, ErrorCode};

/// A baseline server on 127.0.0.1:0 in its own runtime thread; dropping it
/// shuts the server down and joins the thread.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(config: baseline::Config) -> Server {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = baseline::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                baseline::serve(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        // Readiness is signalled, not slept for: the address comes once bound.
        let addr = addr_rx.recv().expect("server thread bound its listener");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        let mut client = Client::connect(self.addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if !thread::panicking() {
                joined.unwrap();
            }
        }
    }
}

#[test]
fn subscriber_receives_100_frames_in_order_and_ping_pongs() {
    let server = Server::start(baseline::Config::default());
    let mut sub = server.connect();
    let mut publisher = server.connect();

    let ack = sub.subscribe("bench.t").unwrap();
    assert_eq!(ack.next_seq, 1, "a fresh topic starts at seq 1");
    for i in 0..100u32 {
        publisher
            .publish("bench.t", format!("payload {i}").as_bytes())
            .unwrap();
    }
    // Every PUBLISH before the PING has reached the server once PONG is back.
    assert_eq!(publisher.ping(b"flush").unwrap(), b"flush");
    for i in 0..100u32 {
        let m = sub.next_message().unwrap();
        assert_eq!(m.topic, "bench.t");
        assert_eq!(m.seq, u64::from(i) + 1);
        assert_eq!(m.payload, format!("payload {i}").as_bytes());
        assert!(m.ts_ns > 0);
    }
    // The PONG is the very next frame: no extra DATA was queued.
    sub.send_raw(&encode(ClientFrame::Ping { payload: b"p" }))
        .unwrap();
    assert_eq!(
        sub.next_frame().unwrap(),
        OwnedServerFrame::Pong {
            payload: b"p".to_vec()
        }
    );

    // A late subscriber starts where the topic is, with the same epoch.
    let mut late = server.connect();
    let late_ack = late.subscribe("bench.t").unwrap();
    assert_eq!(late_ack.next_seq, 101);
    assert_eq!(late_ack.epoch, ack.epoch);
}

#[test]
fn unsubscribe_stops_data_and_auth_without_token_is_ok() {
    let server = Server::start(baseline::Config::default());
    let mut c = server.connect();
    c.auth(b"anything").unwrap();
    c.subscribe("a").unwrap();
    // Subscribing twice changes nothing: one copy per publish.
    c.subscribe("a").unwrap();
    c.publish("a", b"one").unwrap();
    assert_eq!(c.next_message().unwrap().seq, 1);
    c.unsubscribe("a").unwrap();
    c.publish("a", b"two").unwrap();
    c.ping(b"").unwrap();
    let mut other = server.connect();
    assert_eq!(other.subscribe("a").unwrap().next_seq, 3);
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(c.next_message().unwrap_err().is_recoverable());
}

#[test]
fn malformed_input_gets_the_codecs_error_code() {
    let server = Server::start(baseline::Config::default());
    let mut c = server.connect();
    // kind 0x10 (DATA) is server-only: error 3.
    c.send_raw(&[4, 0, 0, 0, 0x10, 0, 0, 0]).unwrap();
    let err = c.next_message().unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::UnknownKind), "{err:?}");
    assert!(matches!(c.next_frame(), Err(ClientError::Closed)));
}

#[test]
fn publish_token_is_enforced() {
    let server = Server::start(baseline::Config {
        publish_token: Some(b"secret".to_vec()),
        ..baseline::Config::default()
    });
    let mut ok = server.connect();
    ok.auth(b"secret").unwrap();
    ok.publish("t", b"x").unwrap();
    assert_eq!(ok.ping(b"").unwrap(), b"");

    let mut anon = server.connect();
    anon.send_raw(&encode(ClientFrame::Publish {
        topic: "t",
        payload: b"x",
    }))
    .unwrap();
    let err = anon.next_message().unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::NotAuthorized), "{err:?}");
}

#[test]
fn a_lagging_subscriber_gets_error_6() {
    let server = Server::start(baseline::Config {
        capacity: 8,
        ..baseline::Config::default()
    });
    let mut slow = server.connect();
    slow.subscribe("big").unwrap();
    let mut publisher = server.connect();
    // 160 frames of 256 KiB (40 MiB): far more than the socket buffers hold, so the
    // slow subscriber's task parks in write and its receiver falls behind.
    let payload = vec![7u8; 256 << 10];
    for _ in 0..160 {
        publisher.publish("big", &payload).unwrap();
    }
    publisher.ping(b"").unwrap();
    let err = loop {
        match slow.next_message() {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.error_code(), Some(ErrorCode::SlowConsumer), "{err:?}");
}

fn encode(frame: ClientFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}
