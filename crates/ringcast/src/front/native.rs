//! The native protocol (docs/PROTOCOL.md): frames back to back on TCP, or
//! one per WebSocket message; each is acted on at once, in order.

use crate::core::Core;
use crate::proto::{self, ClientFrame, Decoded, ErrorCode, ServerFrame};
use crate::topic::Ns;

/// Constant-time comparison (the length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Core {
    /// Handles whole native frames from `data`; returns the bytes consumed.
    /// Stops at an incomplete frame, a protocol error, or a pause.
    pub(super) fn process_native(&mut self, idx: u32, data: &[u8]) -> usize {
        let max = self.shared.config.max_frame;
        let mut off = 0;
        while off < data.len() {
            match proto::decode_client(&data[off..], max) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    off += consumed;
                    self.handle_frame(idx, frame);
                    if !self.conns[idx as usize].reads_requests() {
                        break;
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    let reason = e.to_string();
                    self.fail(idx, e.code, &reason, false);
                    break;
                }
            }
        }
        off
    }

    pub(super) fn handle_frame(&mut self, idx: u32, frame: ClientFrame<'_>) {
        self.frames_in += 1;
        match frame {
            ClientFrame::Publish { topic, payload } => {
                if self.shared.config.publish_token.is_some() && !self.conns[idx as usize].auth_pub
                {
                    self.fail(
                        idx,
                        ErrorCode::NotAuthorized,
                        "not authorized: PUBLISH needs AUTH with the publish token",
                        false,
                    );
                    return;
                }
                let _ = self.publish(idx, Ns::Channel, topic.as_bytes(), payload, false);
            }
            ClientFrame::Subscribe { topic } => {
                if self.shared.config.subscribe_token.is_some()
                    && !self.conns[idx as usize].auth_sub
                {
                    self.fail(
                        idx,
                        ErrorCode::NotAuthorized,
                        "not authorized: SUBSCRIBE needs AUTH with the subscribe token",
                        false,
                    );
                    return;
                }
                self.subscribe(idx, Ns::Channel, topic.as_bytes());
            }
            ClientFrame::Unsubscribe { topic } => {
                self.unsubscribe(idx, Ns::Channel, topic.as_bytes());
                self.reply(idx, &ServerFrame::UnsubAck { topic });
            }
            ClientFrame::Ping { payload } => self.reply(idx, &ServerFrame::Pong { payload }),
            ClientFrame::Auth { token } => self.auth(idx, token),
        }
    }

    fn auth(&mut self, idx: u32, token: &[u8]) {
        let cfg = &self.shared.config;
        let (pubt, subt) = (cfg.publish_token.as_deref(), cfg.subscribe_token.as_deref());
        let pub_ok = pubt.is_some_and(|t| ct_eq(t, token));
        let sub_ok = subt.is_some_and(|t| ct_eq(t, token));
        if (pubt.is_some() || subt.is_some()) && !pub_ok && !sub_ok {
            self.fail(
                idx,
                ErrorCode::NotAuthorized,
                "not authorized: AUTH token rejected",
                false,
            );
            return;
        }
        let c = &mut self.conns[idx as usize];
        c.auth_pub |= pub_ok;
        c.auth_sub |= sub_ok;
        self.reply(idx, &ServerFrame::AuthOk);
    }
}
