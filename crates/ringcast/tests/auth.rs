//! Tokens (PROTOCOL.md, "Authorization" and AUTH): with a publish token,
//! PUBLISH before a matching AUTH is ERROR 5 and the connection closes, while
//! everyone else carries on; a wrong token is ERROR 5 and close; the right one
//! is AUTH_OK; AUTH on a server without tokens is AUTH_OK; a subscribe token
//! guards SUBSCRIBE the same way.

mod common;

use ringcast::Config;
use ringcast_client::{Client, ClientError, OwnedServerFrame};
use std::io::ErrorKind;

const TOKEN: &[u8] = b"s3cret-token";

fn with_publish_token() -> Config {
    Config {
        publish_token: Some(TOKEN.to_vec()),
        ..common::config(2)
    }
}

fn with_subscribe_token() -> Config {
    Config {
        subscribe_token: Some(TOKEN.to_vec()),
        ..common::config(2)
    }
}

/// The server has closed the connection: end of stream (or a reset), not a
/// read timeout and not another frame.
fn assert_closed(client: &mut Client, after: &str) {
    match client.next_frame() {
        Err(ClientError::Closed) => {}
        Err(ClientError::Io(e))
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ) => {}
        other => panic!("after {after} the server must close the connection; got {other:?}"),
    }
}

fn assert_error_5(frame: Result<OwnedServerFrame, ClientError>, after: &str) {
    match frame {
        Ok(OwnedServerFrame::Error { code: 5, .. }) => {}
        other => panic!("after {after} expected ERROR 5 (not authorized), got {other:?}"),
    }
}

#[test]
fn publish_without_auth_is_error_5_and_closes_while_others_keep_receiving() {
    let engine = common::start(with_publish_token());
    let addr = engine.local_addr();
    let mut sub = common::connect(addr);
    assert_eq!(sub.subscribe("guarded").unwrap().next_seq, 1);

    let mut rogue = common::connect(addr);
    rogue.publish("guarded", b"forged").unwrap();
    assert_error_5(rogue.next_frame(), "PUBLISH without AUTH");
    assert_closed(&mut rogue, "ERROR 5");

    // The subscriber was not disturbed, and the refused PUBLISH took no seq.
    let mut publisher = common::connect(addr);
    publisher.auth(TOKEN).unwrap();
    publisher.publish("guarded", b"genuine").unwrap();
    let m = sub.next_message().unwrap();
    assert_eq!(
        (m.seq, m.payload.as_slice()),
        (1, &b"genuine"[..]),
        "the subscriber gets the authorized frame as seq 1 and nothing of the refused one"
    );
    assert_eq!(sub.ping(b"alive").unwrap(), b"alive");
}

#[test]
fn wrong_token_is_error_5_and_closes() {
    let engine = common::start(with_publish_token());
    let mut c = common::connect(engine.local_addr());
    match c.auth(b"s3cret-tokem") {
        Err(ClientError::Server { code: 5, .. }) => {}
        other => panic!("a wrong token must be ERROR 5, got {other:?}"),
    }
    assert_closed(&mut c, "a wrong token");
}

#[test]
fn right_token_answers_auth_ok_and_publish_is_delivered() {
    let engine = common::start(with_publish_token());
    let addr = engine.local_addr();
    let mut sub = common::connect(addr);
    sub.subscribe("guarded").unwrap();

    let mut publisher = common::connect(addr);
    publisher.auth(TOKEN).unwrap();
    publisher.publish("guarded", b"hello").unwrap();
    assert_eq!(publisher.ping(b"still open").unwrap(), b"still open");
    let m = sub.next_message().unwrap();
    assert_eq!(
        (m.topic.as_str(), m.seq, m.payload.as_slice()),
        ("guarded", 1, &b"hello"[..])
    );
}

#[test]
fn a_later_auth_is_checked_again() {
    let engine = common::start(with_publish_token());
    let mut c = common::connect(engine.local_addr());
    c.auth(TOKEN).unwrap();
    c.auth(TOKEN).unwrap();
    match c.auth(b"") {
        Err(ClientError::Server { code: 5, .. }) => {}
        other => panic!("a later wrong AUTH must be ERROR 5, got {other:?}"),
    }
    assert_closed(&mut c, "a later wrong token");
}

#[test]
fn auth_on_a_server_without_tokens_answers_auth_ok() {
    let engine = common::start(common::config(2));
    let mut c = common::connect(engine.local_addr());
    c.auth(b"anything at all").unwrap();
    c.auth(b"").unwrap();
    // Still an ordinary, open connection.
    c.subscribe("open").unwrap();
    c.publish("open", b"free").unwrap();
    assert_eq!(c.next_message().unwrap().payload, b"free");
}

#[test]
fn subscribe_without_auth_is_error_5_when_a_subscribe_token_is_set() {
    let engine = common::start(with_subscribe_token());
    let addr = engine.local_addr();

    let mut anonymous = common::connect(addr);
    match anonymous.subscribe("members") {
        Err(ClientError::Server { code: 5, .. }) => {}
        other => panic!("SUBSCRIBE without AUTH must be ERROR 5, got {other:?}"),
    }
    assert_closed(&mut anonymous, "ERROR 5 on SUBSCRIBE");

    // With the token, subscribing works; publishing needs no token here.
    let mut member = common::connect(addr);
    member.auth(TOKEN).unwrap();
    assert_eq!(member.subscribe("members").unwrap().next_seq, 1);
    let mut publisher = common::connect(addr);
    publisher.publish("members", b"news").unwrap();
    let m = member.next_message().unwrap();
    assert_eq!((m.seq, m.payload.as_slice()), (1, &b"news"[..]));
}
