//! The opening handshake (RFC 6455 §4), both sides, I/O-free.
//!
//! Server side: [`check_upgrade`] validates a parsed request strictly and
//! answers an [`Upgrade`] (write [`accept_response`], then speak frames) or a
//! [`Reject`] (write [`reject_response`], then close). Checks run in this
//! order, the first failure deciding the status:
//!
//! 1. method `GET` (400), path [`PATH`] (404), HTTP/1.1 (400);
//! 2. no `Upgrade` header at all: a plain GET of the WebSocket path, 426 with
//!    `Upgrade: websocket`; an `Upgrade` header without the `websocket` token: 400;
//! 3. `Connection` has the `upgrade` token (400); `Host` is there (400);
//! 4. exactly one `Sec-WebSocket-Version`, equal to `13` (426, naming version 13);
//! 5. exactly one `Sec-WebSocket-Key`, 24 base64 characters that decode to 16
//!    bytes, so 22 characters then `==` (400);
//! 6. `Origin`, when an allow list is configured and the request has one (403);
//! 7. offered subprotocols must include [`SUBPROTOCOL`] (400); no offer is
//!    served the same protocol, without echoing it.
//!
//! Token comparisons for `Upgrade` and `Connection` are ASCII
//! case-insensitive; subprotocol names are compared exactly. Extensions
//! (`Sec-WebSocket-Extensions`) are never accepted, so none is negotiated.
//!
//! Client side: [`client_key`], [`client_request`] and [`check_response`].

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::{alphabet, Engine as _};

use crate::http::{self as request, Request};

/// The path the WebSocket endpoint is served on.
pub const PATH: &str = "/ws";
/// The subprotocol of ringcast version 1 (`PROTOCOL.md`, "Transports").
pub const SUBPROTOCOL: &str = "ringcast.v1";
/// The only WebSocket version spoken.
pub const VERSION: &str = "13";
/// The GUID that RFC 6455 appends to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Longest server response head [`check_response`] waits for.
pub const MAX_RESPONSE_HEAD: usize = 8192;

/// An accepted handshake: what the 101 response must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value (28 base64 characters).
    pub accept: String,
    /// Whether the client offered [`SUBPROTOCOL`], so the response names it.
    pub subprotocol: bool,
}

/// A refused handshake: the status to answer with and a short sentence for
/// people, which becomes the response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    /// 400, 403, 404 or 426.
    pub status: u16,
    /// What was wrong, e.g. "missing Sec-WebSocket-Key"; no line breaks.
    pub reason: &'static str,
}

const fn reject(status: u16, reason: &'static str) -> Reject {
    Reject { status, reason }
}

/// Validates an upgrade request (RFC 6455 §4.2.1) strictly; see the module
/// documentation for the order of the checks and their statuses.
///
/// `allowed_origins`: empty allows any origin; otherwise the request's
/// `Origin`, if present, must equal one entry exactly (ASCII
/// case-insensitive), else 403. A request without `Origin` (not from a
/// browser) is allowed; one with more than one `Origin` is 400.
pub fn check_upgrade(req: &Request<'_>, allowed_origins: &[String]) -> Result<Upgrade, Reject> {
    check_request_line(req)?;
    check_upgrade_headers(req)?;
    if !matches!(one(req, "sec-websocket-version"), One::Once(b"13")) {
        return Err(reject(426, "Sec-WebSocket-Version must be 13"));
    }
    let key = match one(req, "sec-websocket-key") {
        One::Once(key) if is_valid_key(key) => key,
        One::Once(_) => return Err(reject(400, "Sec-WebSocket-Key is not 16 bytes in base64")),
        One::Missing => return Err(reject(400, "missing Sec-WebSocket-Key")),
        One::Repeated => return Err(reject(400, "more than one Sec-WebSocket-Key")),
    };
    check_origin(req, allowed_origins)?;
    let subprotocol = check_subprotocol(req)?;
    Ok(Upgrade {
        accept: accept_key(key),
        subprotocol,
    })
}

/// Method, path and version.
fn check_request_line(req: &Request<'_>) -> Result<(), Reject> {
    if req.method != "GET" {
        return Err(reject(400, "the WebSocket handshake must be a GET"));
    }
    if req.path != PATH {
        return Err(reject(404, "no WebSocket endpoint at this path"));
    }
    if req.version_minor != 1 {
        return Err(reject(400, "the WebSocket handshake needs HTTP/1.1"));
    }
    Ok(())
}

/// `Upgrade`, `Connection` and `Host`.
fn check_upgrade_headers(req: &Request<'_>) -> Result<(), Reject> {
    if req.header("upgrade").is_none() {
        return Err(reject(426, "this path speaks WebSocket only"));
    }
    if !has_token(req, "upgrade", b"websocket") {
        return Err(reject(400, "Upgrade does not name websocket"));
    }
    if !has_token(req, "connection", b"upgrade") {
        return Err(reject(400, "Connection does not name upgrade"));
    }
    if req.header("host").is_none() {
        return Err(reject(400, "missing Host"));
    }
    Ok(())
}

/// Whether the comma lists of header `name` hold `token` (ASCII case-insensitive).
fn has_token(req: &Request<'_>, name: &str, token: &[u8]) -> bool {
    req.header_tokens(name)
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// How often a header that may appear at most once is there.
enum One<'a> {
    Missing,
    Once(&'a [u8]),
    Repeated,
}

fn one<'a>(req: &Request<'a>, name: &str) -> One<'a> {
    let mut values = req.header_values(name);
    match (values.next(), values.next()) {
        (None, _) => One::Missing,
        (Some(v), None) => One::Once(v),
        (Some(_), Some(_)) => One::Repeated,
    }
}

/// 22 base64 characters then `==`: the encoding of exactly 16 bytes. The 4
/// unused bits of the last character are not required to be zero.
fn is_valid_key(key: &[u8]) -> bool {
    const KEY: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    // 24 characters with canonical padding decode to 16, 17 or 18 bytes.
    key.len() == 24 && KEY.decode(key).is_ok_and(|k| k.len() == 16)
}

/// The `Origin` rule; see [`check_upgrade`].
fn check_origin(req: &Request<'_>, allowed: &[String]) -> Result<(), Reject> {
    let origin = match one(req, "origin") {
        One::Missing => return Ok(()),
        One::Once(origin) => origin,
        One::Repeated => return Err(reject(400, "more than one Origin")),
    };
    if allowed.is_empty()
        || allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(origin))
    {
        Ok(())
    } else {
        Err(reject(403, "origin not allowed"))
    }
}

/// Whether to echo [`SUBPROTOCOL`]: true when offered, false when nothing is
/// offered, 400 when other protocols (or an empty header) are offered instead.
fn check_subprotocol(req: &Request<'_>) -> Result<bool, Reject> {
    if req.header("sec-websocket-protocol").is_none() {
        return Ok(false);
    }
    if req
        .header_tokens("sec-websocket-protocol")
        .any(|t| t == SUBPROTOCOL.as_bytes())
    {
        Ok(true)
    } else {
        Err(reject(400, "subprotocol ringcast.v1 not offered"))
    }
}

/// The `Sec-WebSocket-Accept` value for `key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::from(key);
    sha1.update(GUID.as_bytes());
    STANDARD.encode(sha1.digest().bytes())
}

/// The 101 response: `Upgrade: websocket`, `Connection: Upgrade`,
/// `Sec-WebSocket-Accept`, and `Sec-WebSocket-Protocol: ringcast.v1` when
/// `u.subprotocol`.
pub fn accept_response(u: &Upgrade) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        u.accept
    );
    if u.subprotocol {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(SUBPROTOCOL);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The HTTP error response for a refused handshake (`text/plain`, the reason
/// and a newline as body, connection closed). A 426 also carries
/// `Upgrade: websocket`, `Connection: upgrade` (so the `Connection` field
/// reads `close, upgrade`) and `Sec-WebSocket-Version: 13`.
pub fn reject_response(r: &Reject) -> Vec<u8> {
    let extra: &[&str] = if r.status == 426 {
        &[
            "Upgrade: websocket",
            "Connection: upgrade",
            "Sec-WebSocket-Version: 13",
        ]
    } else {
        &[]
    };
    let body = format!("{}\n", r.reason);
    request::response(
        r.status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
        false,
    )
}

/// A fresh `Sec-WebSocket-Key` from 16 bytes the caller drew at random.
pub fn client_key(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// An upgrade request for `path` on `host` (the `Host` value, port included
/// when not the default), with `key` (from [`client_key`]), offering
/// [`SUBPROTOCOL`], and an `Origin` header when `origin` is given. The
/// arguments are trusted: no CR, LF or space in them.
pub fn client_request(host: &str, path: &str, key: &str, origin: Option<&str>) -> String {
    let mut out = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {VERSION}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
    );
    if let Some(origin) = origin {
        out.push_str("Origin: ");
        out.push_str(origin);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

/// Checks the server's response head at the start of `buf`, for the request
/// sent with `key`.
///
/// `Ok(None)` while the head is incomplete; `Ok(Some(consumed))` for a valid
/// 101 (`Upgrade: websocket`, `Connection: upgrade`, a `Sec-WebSocket-Accept`
/// that matches `key`, no extension, and no subprotocol but [`SUBPROTOCOL`]),
/// after which `buf[consumed..]` already holds frames; `Err(text)` for
/// anything else, the text including the status line. A head longer than
/// [`MAX_RESPONSE_HEAD`] is an error.
pub fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let head = match request::parse_response(buf, MAX_RESPONSE_HEAD) {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "bad handshake response ({}): {}",
                first_line(buf),
                e.reason
            ))
        }
    };
    let status_line = String::from_utf8_lossy(head.status_line);
    let fail = |why: &str| Err(format!("handshake refused ({status_line}): {why}"));
    if head.status != 101 {
        return fail("status is not 101");
    }
    let h = &head.headers;
    if !h
        .tokens("upgrade")
        .any(|t| t.eq_ignore_ascii_case(b"websocket"))
    {
        return fail("Upgrade is not websocket");
    }
    if !h
        .tokens("connection")
        .any(|t| t.eq_ignore_ascii_case(b"upgrade"))
    {
        return fail("Connection does not name upgrade");
    }
    let mut accepts = h.values("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(a), None) if a == accept_key(key.as_bytes()).as_bytes() => {}
        (None, _) => return fail("missing Sec-WebSocket-Accept"),
        _ => return fail("Sec-WebSocket-Accept does not match the key"),
    }
    if h.values("sec-websocket-extensions").next().is_some() {
        return fail("the server chose an extension that was not offered");
    }
    let mut protocols = h.tokens("sec-websocket-protocol");
    match (protocols.next(), protocols.next()) {
        (None, _) => {}
        (Some(p), None) if p == SUBPROTOCOL.as_bytes() => {}
        _ => return fail("the server chose a subprotocol that was not offered"),
    }
    Ok(Some(head.consumed))
}

/// The start of `buf` up to its first line break (at most 100 bytes), for error texts.
fn first_line(buf: &[u8]) -> String {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(100);
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse, Parsed};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A valid browser-like request with `edit` applied to its header lines.
    fn request_with(edit: impl FnOnce(&mut Vec<String>)) -> Vec<u8> {
        let mut lines: Vec<String> = [
            "GET /ws HTTP/1.1",
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: keep-alive, Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, ringcast.v1",
            "Sec-WebSocket-Version: 13",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        edit(&mut lines);
        let mut out = lines.join("\r\n");
        out.push_str("\r\n\r\n");
        out.into_bytes()
    }

    fn without(name: &str) -> impl FnOnce(&mut Vec<String>) + '_ {
        move |lines| lines.retain(|l| !l.starts_with(&format!("{name}:")))
    }

    fn replace<'a>(name: &'a str, line: &'a str) -> impl FnOnce(&mut Vec<String>) + 'a {
        move |lines| {
            lines.retain(|l| !l.starts_with(&format!("{name}:")));
            lines.push(line.to_string());
        }
    }

    fn check(buf: &[u8], allowed: &[String]) -> Result<Upgrade, Reject> {
        match parse(buf, 8192) {
            Ok(Parsed::Complete { request, .. }) => check_upgrade(&request, allowed),
            other => panic!("request did not parse: {other:?}"),
        }
    }

    fn status(edit: impl FnOnce(&mut Vec<String>)) -> u16 {
        check(&request_with(edit), &[]).unwrap_err().status
    }

    fn text(v: &[u8]) -> &str {
        std::str::from_utf8(v).unwrap()
    }

    #[test]
    fn rfc_6455_example_key() {
        assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_a_valid_request() {
        let u = check(&request_with(|_| {}), &[]).unwrap();
        assert_eq!(
            u,
            Upgrade {
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
                subprotocol: true
            }
        );
        assert_eq!(
            text(&accept_response(&u)),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: ringcast.v1\r\n\r\n"
        );
        // Token matching is case-insensitive for Upgrade and Connection.
        let buf = request_with(|l| {
            l[2] = "upgrade: WebSocket".into();
            l[3] = "CONNECTION: UPGRADE".into();
        });
        assert!(check(&buf, &[]).is_ok());
    }

    #[test]
    fn no_subprotocol_offer_is_served_without_echo() {
        let u = check(&request_with(without("Sec-WebSocket-Protocol")), &[]).unwrap();
        assert!(!u.subprotocol);
        assert!(!text(&accept_response(&u)).contains("Sec-WebSocket-Protocol"));
        // Offers split over several headers count together.
        let buf = request_with(|l| {
            l.push("Sec-WebSocket-Protocol: ringcast.v1".into());
            l[6] = "Sec-WebSocket-Protocol: chat".into();
        });
        assert!(check(&buf, &[]).unwrap().subprotocol);
    }

    #[test]
    fn subprotocol_offered_without_ours_is_400() {
        assert_eq!(
            status(replace(
                "Sec-WebSocket-Protocol",
                "Sec-WebSocket-Protocol: chat, superchat"
            )),
            400
        );
        assert_eq!(
            status(replace(
                "Sec-WebSocket-Protocol",
                "Sec-WebSocket-Protocol: RINGCAST.V1"
            )),
            400
        );
        assert_eq!(
            status(replace("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol:")),
            400
        );
    }

    #[test]
    fn request_line_rules() {
        assert_eq!(status(|l| l[0] = "POST /ws HTTP/1.1".into()), 400);
        assert_eq!(status(|l| l[0] = "GET /other HTTP/1.1".into()), 404);
        assert_eq!(status(|l| l[0] = "GET /ws HTTP/1.0".into()), 400);
        // The query does not matter.
        assert!(check(&request_with(|l| l[0] = "GET /ws?x=1 HTTP/1.1".into()), &[]).is_ok());
    }

    #[test]
    fn missing_upgrade_is_426_with_a_hint() {
        let r = check(&request_with(without("Upgrade")), &[]).unwrap_err();
        assert_eq!(r.status, 426);
        let resp = reject_response(&r);
        let resp = text(&resp);
        assert!(
            resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{resp}"
        );
        assert!(resp.contains("\r\nUpgrade: websocket\r\n"));
        assert!(resp.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(resp.ends_with(&format!("\r\n\r\n{}\n", r.reason)));
    }

    #[test]
    fn header_rules_are_400() {
        assert_eq!(status(replace("Upgrade", "Upgrade: h2c")), 400);
        assert_eq!(status(without("Connection")), 400);
        assert_eq!(status(replace("Connection", "Connection: keep-alive")), 400);
        assert_eq!(
            status(|l| l.push("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".into())),
            400
        );
    }

    #[test]
    fn missing_host_is_400() {
        // HTTP parsing already refuses HTTP/1.1 without Host; check_upgrade checks too.
        let req = request_with(without("Host"));
        assert_eq!(parse(&req, 8192).unwrap_err().status, 400);
    }

    #[test]
    fn missing_or_bad_key_is_400() {
        let r = check(&request_with(without("Sec-WebSocket-Key")), &[]).unwrap_err();
        assert_eq!(r, reject(400, "missing Sec-WebSocket-Key"));
        for bad in [
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZ===",
            "dGhlIHNhbXBsZSBub25jZQA=",
            "dGhlIHNhbXBsZSBub25j!Q==",
            "dGhlIHNhbXBsZSBub25jZSBhbmQgbW9yZQ==",
            "",
        ] {
            let line = format!("Sec-WebSocket-Key: {bad}");
            assert_eq!(status(replace("Sec-WebSocket-Key", &line)), 400, "{bad}");
        }
        // The 4 unused bits of the last character need not be zero ('R' leaves 0001).
        let line = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==";
        assert!(check(&request_with(replace("Sec-WebSocket-Key", line)), &[]).is_ok());
    }

    #[test]
    fn wrong_version_is_426_naming_13() {
        for v in [
            "Sec-WebSocket-Version: 8",
            "Sec-WebSocket-Version: 13, 8",
            "Sec-WebSocket-Version:",
        ] {
            let r = check(&request_with(replace("Sec-WebSocket-Version", v)), &[]).unwrap_err();
            assert_eq!(r.status, 426, "{v}");
            assert!(text(&reject_response(&r)).contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
        assert_eq!(status(without("Sec-WebSocket-Version")), 426);
        assert_eq!(status(|l| l.push("Sec-WebSocket-Version: 13".into())), 426);
    }

    #[test]
    fn origin_rules() {
        let allowed = vec![
            "https://app.example".to_string(),
            "http://EXAMPLE.com".to_string(),
        ];
        assert!(check(&request_with(|_| {}), &allowed).is_ok());
        let other = request_with(replace("Origin", "Origin: http://evil.example"));
        let r = check(&other, &allowed).unwrap_err();
        assert_eq!(r.status, 403);
        assert!(text(&reject_response(&r)).starts_with("HTTP/1.1 403 Forbidden\r\n"));
        // Any origin when the list is empty; none at all is allowed.
        assert!(check(&other, &[]).is_ok());
        assert!(check(&request_with(without("Origin")), &allowed).is_ok());
        // A prefix is not a match.
        let prefix = request_with(replace("Origin", "Origin: https://app.example.evil"));
        assert_eq!(check(&prefix, &allowed).unwrap_err().status, 403);
        let twice = request_with(|l| l.push("Origin: http://example.com".into()));
        assert_eq!(check(&twice, &allowed).unwrap_err().status, 400);
    }

    #[test]
    fn client_and_server_round_trip() {
        let key = client_key(*b"the sample nonce");
        assert_eq!(key, KEY);
        let req = client_request("localhost:7401", PATH, &key, Some("http://localhost"));
        let Ok(Parsed::Complete { request, consumed }) = parse(req.as_bytes(), 8192) else {
            panic!("client request did not parse");
        };
        assert_eq!(consumed, req.len());
        let allowed = vec!["http://localhost".to_string()];
        let upgrade = check_upgrade(&request, &allowed).unwrap();
        assert!(upgrade.subprotocol);
        let mut resp = accept_response(&upgrade);
        let head_len = resp.len();
        for n in 0..head_len {
            assert_eq!(check_response(&resp[..n], &key), Ok(None), "prefix {n}");
        }
        resp.extend_from_slice(&[0x82, 0x00]);
        assert_eq!(check_response(&resp, &key), Ok(Some(head_len)));
        // The same response for another key does not match.
        let other = client_key([7; 16]);
        assert!(check_response(&resp, &other)
            .unwrap_err()
            .contains("Accept"));
        // Without an Origin and without a subprotocol echo.
        let req = client_request("h", PATH, &key, None);
        assert!(!req.contains("Origin"));
        let plain = accept_response(&Upgrade {
            accept: accept_key(key.as_bytes()),
            subprotocol: false,
        });
        assert_eq!(check_response(&plain, &key), Ok(Some(plain.len())));
    }

    #[test]
    fn client_refuses_bad_responses() {
        let refused = reject_response(&reject(403, "origin not allowed"));
        let e = check_response(&refused, KEY).unwrap_err();
        assert!(e.contains("HTTP/1.1 403 Forbidden"), "{e}");
        let good = text(&accept_response(&Upgrade {
            accept: accept_key(KEY.as_bytes()),
            subprotocol: true,
        }))
        .to_string();
        for (from, to) in [
            ("Upgrade: websocket", "Upgrade: h2c"),
            ("Connection: Upgrade", "Connection: close"),
            (
                "Sec-WebSocket-Protocol: ringcast.v1",
                "Sec-WebSocket-Protocol: chat",
            ),
            (
                "Sec-WebSocket-Protocol: ringcast.v1",
                "Sec-WebSocket-Extensions: permessage-deflate",
            ),
            ("Sec-WebSocket-Accept", "X-Accept"),
        ] {
            let bad = good.replace(from, to);
            assert!(check_response(bad.as_bytes(), KEY).is_err(), "{to}");
        }
        let e = check_response(b"SSH-2.0-OpenSSH_9.6\n", KEY).unwrap_err();
        assert!(e.contains("SSH-2.0-OpenSSH_9.6"), "{e}");
        let twice = good.replace("ringcast.v1", "ringcast.v1, ringcast.v1");
        assert!(check_response(twice.as_bytes(), KEY).is_err());
        assert!(check_response(&[b'x'; MAX_RESPONSE_HEAD], KEY).is_err());
    }
}
