//! Fronts: protocol adapters between a connection's bytes and the core's
//! operations. A front parses what a connection sends (native frames, an
//! HTTP request, WebSocket frames) and calls the core (publish, subscribe,
//! reply, fail); what it sends back goes through the core's send queue.
//! The driver knows none of this: it hands bytes to [`Core::handle_bytes`].
//!
//! - [`native`]: the ringcast protocol, on TCP and inside WebSocket messages;
//! - [`web`]: HTTP requests (the live page, /healthz, /metrics), the
//!   WebSocket upgrade and WebSocket framing.

pub(crate) mod native;
mod resp;
mod web;

use crate::core::{Action, Core, Life, Wire};
use crate::server::PAUSED_SLACK;

/// Input buffers larger than this are shrunk once empty, so one big frame
/// does not pin memory for the connection's lifetime.
const INBUF_KEEP: usize = 256 * 1024;

impl Core {
    /// Bytes received on connection `idx`.
    pub(crate) fn on_bytes(&mut self, idx: u32, data: &[u8]) {
        let c = &mut self.conns[idx as usize];
        let paused = match c.life {
            Life::Open => false,
            Life::Paused => true,
            // Draining or closing, or about to be cut off for its backlog:
            // input is read and dropped.
            _ => return,
        };
        if paused || !c.inbuf.is_empty() {
            c.inbuf.extend_from_slice(data);
            if !paused {
                self.process_inbuf(idx);
            } else if c.inbuf.len() > self.shared.config.max_frame as usize + PAUSED_SLACK {
                // Input keeps coming while a subscribe waits for its topic's
                // owner: stop reading (the socket buffer pushes back on the
                // client) until the answer lets us go on.
                self.act(Action::StopReading(idx));
            }
            return;
        }
        let used = self.process(idx, data);
        if let Some(c) = self.conns.get_mut(idx as usize) {
            if c.is_live() && used < data.len() {
                c.inbuf.extend_from_slice(&data[used..]);
            }
        }
    }

    /// Parses what waits in the connection's input buffer.
    pub(crate) fn process_inbuf(&mut self, idx: u32) {
        let buf = std::mem::take(&mut self.conns[idx as usize].inbuf);
        let used = self.process(idx, &buf);
        let mut buf = buf;
        let c = &mut self.conns[idx as usize];
        if !c.is_live() {
            return;
        }
        buf.drain(..used);
        if buf.is_empty() && buf.capacity() > INBUF_KEEP {
            buf = Vec::new();
        }
        c.inbuf = buf;
    }

    /// Handles what `data` holds for the connection's wire (native frames,
    /// an HTTP request, WebSocket frames); returns the bytes consumed.
    fn process(&mut self, idx: u32, data: &[u8]) -> usize {
        match self.conns[idx as usize].wire {
            Wire::Tcp => self.process_native(idx, data),
            Wire::Http { .. } => self.process_http(idx, data),
            Wire::Ws(_) => self.process_ws(idx, data),
            Wire::Resp(_) => self.process_resp(idx, data),
        }
    }
}
