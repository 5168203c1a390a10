//! Connection events an operator should see, logged from the core with
//! their context (reactor, connection, peer, front) and rate-limited per
//! kind (see `crate::log`). Only error paths call these; nothing here runs
//! per message, and with the level off nothing is formatted or looked up.

use super::Core;
use crate::log::{Event, Peer, TARGET};
use crate::proto::ErrorCode;
use std::fmt;
use std::os::fd::RawFd;

impl Core {
    /// Logs `ev` for connection `idx` (still open: its fd gives the peer).
    pub(crate) fn log_conn(&mut self, idx: u32, ev: Event, detail: fmt::Arguments<'_>) {
        let Some(c) = self.conns.get(idx as usize) else {
            return;
        };
        let (fd, front) = (c.fd, c.transport().label());
        self.log_fd(ev, fd, front, idx, detail);
    }

    /// Logs `ev` for the socket `fd` on `front` (`conn`: its index on this
    /// reactor, or `u32::MAX` for one never admitted).
    pub(crate) fn log_fd(
        &mut self,
        ev: Event,
        fd: RawFd,
        front: &'static str,
        conn: u32,
        detail: fmt::Arguments<'_>,
    ) {
        let info = matches!(ev, Event::HttpTimeout | Event::WsIdle);
        let enabled = if info {
            tracing::enabled!(target: TARGET, tracing::Level::INFO)
        } else {
            tracing::enabled!(target: TARGET, tracing::Level::WARN)
        };
        if !enabled || !self.log.allow(ev, self.now) {
            return;
        }
        let (core, event, peer) = (self.id, ev.name(), Peer(fd));
        if conn == u32::MAX {
            tracing::warn!(target: TARGET, event, core, %peer, front, "{detail}");
        } else if info {
            tracing::info!(target: TARGET, event, core, conn, %peer, front, "{detail}");
        } else {
            tracing::warn!(target: TARGET, event, core, conn, %peer, front, "{detail}");
        }
    }

    /// Logs that the subscribers of `topic`, new on this node, were
    /// confirmed without NATS confirming the node's subscription in time.
    pub(super) fn log_relay_wait(&mut self, topic: &[u8]) {
        let ev = Event::RelayWait;
        if !tracing::enabled!(target: TARGET, tracing::Level::WARN) || !self.log.allow(ev, self.now)
        {
            return;
        }
        let (core, event) = (self.id, ev.name());
        let topic = String::from_utf8_lossy(topic);
        tracing::warn!(
            target: TARGET,
            event,
            core,
            %topic,
            "NATS did not confirm the node's subscription within 1 s: subscribers confirmed with a GAP"
        );
    }

    /// Logs why `fail` ends connection `idx` with ERROR `code`. Slow
    /// consumers are logged where they are cut (with their backlog) and a
    /// shutdown is logged once, not per connection.
    pub(super) fn log_failure(&mut self, idx: u32, code: ErrorCode, reason: &str) {
        let ev = match code {
            ErrorCode::Malformed | ErrorCode::TooLarge | ErrorCode::UnknownKind => {
                Event::ProtocolError
            }
            ErrorCode::BadTopic => Event::TopicRefused,
            ErrorCode::NotAuthorized => Event::AuthRefused,
            ErrorCode::TooManySubscriptions => Event::SubscriptionLimit,
            ErrorCode::Incomplete => Event::IncompleteFrame,
            ErrorCode::SlowConsumer | ErrorCode::ShuttingDown => return,
        };
        let code = code as u16;
        self.log_conn(
            idx,
            ev,
            format_args!("connection closed with ERROR {code}: {reason}"),
        );
    }
}

impl super::Front {
    /// The transport label of a connection accepted on this front.
    pub(crate) fn label(self) -> &'static str {
        match self {
            super::Front::Native => "tcp",
            super::Front::Web => "http",
            super::Front::Resp => "resp",
        }
    }
}
