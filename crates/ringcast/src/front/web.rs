//! The WebSocket port: HTTP requests (the live page, /healthz, /metrics),
//! the upgrade, and WebSocket framing around the native protocol.
//!
//! A connection accepted on the WebSocket port starts as [`Wire::Http`]: its
//! request head is read (at most [`MAX_REQUEST_HEAD`] bytes, within the
//! configured `http_timeout`). A plain request gets one response and the
//! connection closes (`Connection: close`; no keep-alive). A valid upgrade on
//! `/ws` turns it into [`Wire::Ws`]: from then on every binary message must
//! hold exactly one native frame, handled exactly like one from TCP, and
//! every frame queued for it is a WebSocket message (replies get their
//! header when encoded; DATA frames carry theirs from the publish, see
//! `publish`).
//!
//! Closing: an ERROR is followed by a close frame with the code PROTOCOL.md
//! maps it to; a WebSocket-level fault (unmasked, text, bad opcode) gets the
//! close frame alone; a peer's close is echoed. After a close frame nothing
//! more is read; the write side is shut once it is flushed.

use crate::core::{take_slot, Core, Wire, WsConn};
use crate::http::{metrics, page, request};
use crate::proto::{self, Decoded, ErrorCode};
use crate::stats::{CutReason, Stats, Transport};
use crate::ws::frame::{self, close, CloseError, Decoder, Event, Opcode, Role};
use crate::ws::handshake;
use std::sync::atomic::Ordering;

/// Largest HTTP request head accepted (431 past it).
pub(super) const MAX_REQUEST_HEAD: usize = 8 * 1024;

impl Core {
    /// Parses the request head waiting in `data`; answers it. Returns the
    /// bytes consumed (all of them once answered: nothing after a plain
    /// request is read; after an upgrade the rest is WebSocket frames).
    pub(crate) fn process_http(&mut self, idx: u32, data: &[u8]) -> usize {
        let (req, consumed) = match request::parse(data, MAX_REQUEST_HEAD) {
            Ok(request::Parsed::Incomplete) => return 0,
            Ok(request::Parsed::Complete { request, consumed }) => (request, consumed),
            Err(e) => {
                self.respond(idx, e.status, &request::error_response(&e));
                return data.len();
            }
        };
        let head = req.method == "HEAD";
        let get = req.method == "GET" || head;
        match req.path {
            handshake::PATH => {
                match handshake::check_upgrade(&req, &self.shared.config.allowed_origins) {
                    Ok(up) => {
                        let resp = handshake::accept_response(&up);
                        drop(req);
                        if !self.upgrade(idx, &resp) {
                            return data.len();
                        }
                        return consumed + self.process_ws(idx, &data[consumed..]);
                    }
                    Err(rej) => {
                        self.stats().ws_rejected.fetch_add(1, Ordering::Relaxed);
                        let resp = handshake::reject_response(&rej);
                        self.respond(idx, rej.status, &resp);
                    }
                }
            }
            "/" | "/index.html" | "/healthz" | "/metrics" if !get => {
                let body = format!("{} is not allowed here: use GET or HEAD\n", req.method);
                let resp = request::response(
                    405,
                    "text/plain; charset=utf-8",
                    &["Allow: GET, HEAD"],
                    body.as_bytes(),
                    false,
                );
                self.respond(idx, 405, &resp);
            }
            "/" | "/index.html" => {
                let resp = request::response(
                    200,
                    page::CONTENT_TYPE,
                    &[],
                    page::INDEX_HTML.as_bytes(),
                    head,
                );
                self.respond(idx, 200, &resp);
            }
            "/healthz" => {
                let running = self.shared.running.load(Ordering::Relaxed);
                let cores = self.shared.config.cores;
                let (status, body) = if self.shutting_down {
                    (503, "shutting down\n".to_string())
                } else if running < cores {
                    (503, format!("{running} of {cores} reactors running\n"))
                } else {
                    (200, format!("ok: {cores} reactors running\n"))
                };
                // The relay's state is reported, not judged: a node serves
                // its own subscribers while NATS is away.
                let body = match self.shared.relay_state.load(Ordering::Relaxed) {
                    crate::core::RELAY_OFF => body,
                    crate::core::RELAY_CONNECTED => body + "relay: connected to NATS\n",
                    crate::core::RELAY_CONNECTING => body + "relay: connecting to NATS\n",
                    _ => body
                        + "relay: disconnected from NATS (serving local traffic, reconnecting)\n",
                };
                let resp = request::response(
                    status,
                    "text/plain; charset=utf-8",
                    &[],
                    body.as_bytes(),
                    head,
                );
                self.respond(idx, status, &resp);
            }
            "/metrics" => {
                let stats = Stats::sum(
                    &self.shared.stats,
                    self.shared.pool.heap_frames(),
                    self.shared.topics.load(Ordering::Relaxed) as u64,
                );
                let mut body = String::with_capacity(8 * 1024);
                metrics::render(
                    &stats,
                    self.shared.running.load(Ordering::Relaxed),
                    &mut body,
                );
                metrics::render_process(&crate::process::ProcessStats::read(), &mut body);
                let resp =
                    request::response(200, metrics::CONTENT_TYPE, &[], body.as_bytes(), head);
                self.respond(idx, 200, &resp);
            }
            _ => {
                let body = "not found: try /, /ws, /healthz or /metrics\n";
                let resp =
                    request::response(404, "text/plain; charset=utf-8", &[], body.as_bytes(), head);
                self.respond(idx, 404, &resp);
            }
        }
        data.len()
    }

    /// Queues a whole HTTP response and closes after it.
    fn respond(&mut self, idx: u32, status: u16, bytes: &[u8]) {
        let class = match status {
            200..=299 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.stats().http_responses[class].fetch_add(1, Ordering::Relaxed);
        self.queue_bytes(idx, bytes);
        self.drain(idx);
    }

    /// Sends the 101 and switches the connection to WebSocket framing. A
    /// connection taken from the HTTP reserve needs a connection slot
    /// first: returns false (after a 503) when none is free.
    fn upgrade(&mut self, idx: u32, response: &[u8]) -> bool {
        let shared = &self.shared;
        if self.conns[idx as usize].reserved {
            if !take_slot(&shared.connections, shared.config.max_connections) {
                self.stats().refused.fetch_add(1, Ordering::Relaxed);
                let body =
                    "the server is at its connection limit (--max-connections); try again later\n";
                let resp = request::response(
                    503,
                    "text/plain; charset=utf-8",
                    &["Retry-After: 1"],
                    body.as_bytes(),
                    false,
                );
                self.respond(idx, 503, &resp);
                return false;
            }
            shared.http_connections.fetch_sub(1, Ordering::Relaxed);
            self.conns[idx as usize].reserved = false;
        }
        self.queue_bytes(idx, response);
        let c = &mut self.conns[idx as usize];
        c.wire = Wire::Ws(Box::new(WsConn {
            decoder: None,
            last_rx: self.now,
            pinged: false,
            close_sent: false,
        }));
        let st = &self.shared.stats[self.id];
        st.ws_upgrades.fetch_add(1, Ordering::Relaxed);
        st.gauge_connections(Transport::Http, -1);
        st.gauge_connections(Transport::WebSocket, 1);
        true
    }

    /// Decodes WebSocket frames from `data` and handles the native frame in
    /// each message. Returns the bytes consumed: all of them, unless the
    /// connection paused (waiting for a topic owner) or stopped reading.
    pub(crate) fn process_ws(&mut self, idx: u32, data: &[u8]) -> usize {
        let c = &mut self.conns[idx as usize];
        let (true, Wire::Ws(w)) = (c.is_live(), &mut c.wire) else {
            return 0;
        };
        // Taken out while its events are handled (they borrow it); put back
        // below, whatever happened to the connection meanwhile, unless it is
        // idle. Input that begins on a message boundary gets a new one.
        let max_message = self.shared.config.max_frame as usize + 4;
        let mut dec = w
            .decoder
            .take()
            .unwrap_or_else(|| Box::new(Decoder::new(Role::Server, max_message)));
        let mut off = 0;
        while off < data.len() {
            let step = dec.decode(&data[off..]);
            let (used, event) = match step {
                Ok(v) => v,
                Err(e) => {
                    off = data.len();
                    self.ws_fault(idx, e);
                    break;
                }
            };
            off += used;
            let Some(event) = event else { break };
            match event {
                Event::Message(msg) => self.ws_message(idx, msg),
                Event::Ping(payload) => {
                    if !self.ws_closing(idx) {
                        self.ws_control(idx, Opcode::Pong, payload);
                    }
                }
                Event::Pong(_) => {}
                Event::Close { code, .. } => {
                    // Echo the peer's code (1000 when it gave none), then close.
                    if !self.ws_closing(idx) {
                        self.ws_queue_close(idx, code.unwrap_or(close::NORMAL), "");
                    }
                    self.remove_all_subs(idx);
                    self.drain(idx);
                }
            }
            let c = &self.conns[idx as usize];
            if !c.reads_requests() {
                if !c.is_live() {
                    off = data.len();
                }
                break;
            }
        }
        dec.shrink();
        // A connection that stopped reading keeps no decoder (nor its
        // buffer), nor does one whose input ended between messages.
        let c = &mut self.conns[idx as usize];
        if let (true, false, Wire::Ws(w)) = (c.is_live(), dec.is_idle(), &mut c.wire) {
            w.decoder = Some(dec);
        }
        off
    }

    /// One binary message: exactly one whole native frame.
    fn ws_message(&mut self, idx: u32, msg: &[u8]) {
        let max = self.shared.config.max_frame;
        match proto::decode_client(msg, max) {
            Ok(Decoded::Frame { frame, consumed }) if consumed == msg.len() => {
                self.handle_frame(idx, frame)
            }
            Ok(_) => self.fail(
                idx,
                ErrorCode::Malformed,
                "malformed frame: a WebSocket message must carry exactly one whole frame",
                false,
            ),
            Err(e) => {
                let reason = e.to_string();
                self.fail(idx, e.code, &reason, false);
            }
        }
    }

    /// A fault in the WebSocket framing itself.
    fn ws_fault(&mut self, idx: u32, e: CloseError) {
        if !self.conns[idx as usize].is_live() {
            return;
        }
        if e.code == close::TOO_BIG {
            // The message could only hold a frame over the limit: ERROR 2,
            // which closes with 1009.
            let reason = format!(
                "frame too large: {} (limit {} bytes)",
                e.reason, self.shared.config.max_frame
            );
            self.fail(idx, ErrorCode::TooLarge, &reason, false);
            return;
        }
        self.remove_all_subs(idx);
        self.ws_queue_close(idx, e.code, e.reason);
        self.drain(idx);
    }

    /// Whether a close frame was already queued for this connection.
    fn ws_closing(&self, idx: u32) -> bool {
        match &self.conns[idx as usize].wire {
            Wire::Ws(w) => w.close_sent,
            _ => true,
        }
    }

    /// Queues a control frame (`payload` at most 125 bytes).
    fn ws_control(&mut self, idx: u32, op: Opcode, payload: &[u8]) {
        let h = frame::header_len(payload.len());
        let mut f = self.arena.alloc(&self.shared.pool, h + payload.len());
        // SAFETY: just allocated, no other reference exists.
        let b = unsafe { f.bytes_mut() };
        frame::write_header(&mut b[..h], op, payload.len());
        b[h..].copy_from_slice(payload);
        self.queue(idx, f);
    }

    /// Queues a close frame (once per connection).
    pub(crate) fn ws_queue_close(&mut self, idx: u32, code: u16, reason: &str) {
        let Wire::Ws(w) = &mut self.conns[idx as usize].wire else {
            return;
        };
        if w.close_sent {
            return;
        }
        w.close_sent = true;
        let payload = frame::close_payload(code, reason);
        self.ws_control(idx, Opcode::Close, &payload);
        self.conns[idx as usize].trailer += 1;
    }

    /// The web part of the periodic scan: pings the silent WebSocket peers
    /// in `ping`, closes the `idle` ones (a ping went unanswered), answers
    /// the HTTP requests in `late` (past their deadline) with 408.
    pub(crate) fn scan_web(&mut self, ping: Vec<u32>, idle: Vec<u32>, late: Vec<u32>) {
        for idx in ping {
            if let Wire::Ws(w) = &mut self.conns[idx as usize].wire {
                w.pinged = true;
            }
            self.ws_control(idx, Opcode::Ping, b"ringcast");
        }
        for idx in idle {
            self.stats().count_cut(CutReason::Idle);
            let secs = self.shared.config.ws_idle_timeout.as_secs_f64();
            let ev = crate::log::Event::WsIdle;
            self.log_conn(
                idx,
                ev,
                format_args!("WebSocket closed: silent for --ws-idle-timeout ({secs} s)"),
            );
            self.remove_all_subs(idx);
            self.ws_queue_close(idx, close::GOING_AWAY, "idle timeout");
            self.drain(idx);
        }
        for idx in late {
            self.stats().count_cut(CutReason::RequestTimeout);
            let secs = self.shared.config.http_timeout.as_secs_f64();
            let ev = crate::log::Event::HttpTimeout;
            self.log_conn(
                idx,
                ev,
                format_args!("HTTP request not received within --http-timeout ({secs} s): 408"),
            );
            let e = request::HttpError {
                status: 408,
                reason: "request not received in time",
            };
            self.respond(idx, 408, &request::error_response(&e));
        }
    }
}
