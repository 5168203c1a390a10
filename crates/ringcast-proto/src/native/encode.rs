//! Encoders. They trust their input: topics and payload sizes are checked
//! with `debug_assert!` only, except that a frame whose `len` or `topic_len`
//! would not fit its field panics rather than being written corrupt.

use super::view::data_fixed;
use super::{
    ClientFrame, DataViewMut, Kind, ServerFrame, DATA_HEADER_LEN, HEADER_LEN, LEN_PREFIX,
    MAX_TOPIC_LEN,
};

/// Total bytes of a DATA frame with this topic and payload (24 + topic + payload).
pub fn data_frame_len(topic_len: usize, payload_len: usize) -> usize {
    DATA_HEADER_LEN + topic_len + payload_len
}

/// Writes a DATA frame into the start of `out` (which must be at least
/// [`data_frame_len`] bytes; panics otherwise) and returns its length.
pub fn encode_data(out: &mut [u8], seq: u64, ts_ns: u64, topic: &[u8], payload: &[u8]) -> usize {
    Parts {
        kind: Kind::Data,
        fixed: &data_fixed(seq, ts_ns),
        topic,
        body: payload,
    }
    .write_to_slice(out)
}

/// Overwrites the `seq` field of an encoded DATA frame; panics unless `frame`
/// starts with a whole DATA header (see [`DataViewMut::new`]).
pub fn patch_data_seq(frame: &mut [u8], seq: u64) {
    data_view_mut(frame).set_seq(seq);
}

/// Overwrites the `ts_ns` field of an encoded DATA frame; panics unless
/// `frame` starts with a whole DATA header (see [`DataViewMut::new`]).
pub fn patch_data_ts(frame: &mut [u8], ts_ns: u64) {
    data_view_mut(frame).set_ts_ns(ts_ns);
}

fn data_view_mut(frame: &mut [u8]) -> DataViewMut<'_> {
    DataViewMut::new(frame).expect("not an encoded DATA frame with its whole header and topic")
}

/// A frame as the four pieces every kind is made of.
struct Parts<'a> {
    kind: Kind,
    fixed: &'a [u8],
    topic: &'a [u8],
    body: &'a [u8],
}

impl Parts<'_> {
    fn encoded_len(&self) -> usize {
        HEADER_LEN + self.fixed.len() + self.topic.len() + self.body.len()
    }

    /// The 8-byte header for these parts.
    fn header(&self) -> [u8; HEADER_LEN] {
        debug_assert!(self.topic.len() <= MAX_TOPIC_LEN, "topic over 255 bytes");
        let len = u32::try_from(self.encoded_len() - LEN_PREFIX).expect("frame len over u32::MAX");
        let topic_len = u16::try_from(self.topic.len()).expect("topic_len over u16::MAX");
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&len.to_le_bytes());
        h[4] = self.kind as u8;
        h[5] = 0;
        h[6..].copy_from_slice(&topic_len.to_le_bytes());
        h
    }

    fn write_to_vec(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.header());
        out.extend_from_slice(self.fixed);
        out.extend_from_slice(self.topic);
        out.extend_from_slice(self.body);
    }

    fn write_to_slice(&self, out: &mut [u8]) -> usize {
        let n = self.encoded_len();
        assert!(
            out.len() >= n,
            "output buffer of {} bytes is too small for a {n}-byte frame",
            out.len()
        );
        let mut at = 0;
        for piece in [&self.header()[..], self.fixed, self.topic, self.body] {
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
        debug_assert_eq!(at, n);
        n
    }
}

impl<'a> ClientFrame<'a> {
    /// The frame's kind.
    pub fn kind(&self) -> Kind {
        match self {
            ClientFrame::Publish { .. } => Kind::Publish,
            ClientFrame::Subscribe { .. } => Kind::Subscribe,
            ClientFrame::Unsubscribe { .. } => Kind::Unsubscribe,
            ClientFrame::Ping { .. } => Kind::Ping,
            ClientFrame::Auth { .. } => Kind::Auth,
        }
    }

    fn parts(&self) -> Parts<'a> {
        let (topic, body): (&[u8], &[u8]) = match *self {
            ClientFrame::Publish { topic, payload } => (topic.as_bytes(), payload),
            ClientFrame::Subscribe { topic } | ClientFrame::Unsubscribe { topic } => {
                (topic.as_bytes(), &[])
            }
            ClientFrame::Ping { payload } => {
                debug_assert!(payload.len() <= super::MAX_PING_PAYLOAD);
                (&[], payload)
            }
            ClientFrame::Auth { token } => (&[], token),
        };
        Parts {
            kind: self.kind(),
            fixed: &[],
            topic,
            body,
        }
    }

    /// Total bytes of the encoded frame, `len` field included.
    pub fn encoded_len(&self) -> usize {
        self.parts().encoded_len()
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.parts().write_to_vec(out)
    }

    /// Writes into the start of `out` (must be >= [`Self::encoded_len`], panics
    /// otherwise); returns bytes written.
    pub fn encode_to_slice(&self, out: &mut [u8]) -> usize {
        self.parts().write_to_slice(out)
    }
}

impl<'a> ServerFrame<'a> {
    /// The frame's kind.
    pub fn kind(&self) -> Kind {
        match self {
            ServerFrame::Data { .. } => Kind::Data,
            ServerFrame::SubAck { .. } => Kind::SubAck,
            ServerFrame::UnsubAck { .. } => Kind::UnsubAck,
            ServerFrame::Pong { .. } => Kind::Pong,
            ServerFrame::AuthOk => Kind::AuthOk,
            ServerFrame::Gap { .. } => Kind::Gap,
            ServerFrame::Error { .. } => Kind::Error,
        }
    }

    /// Calls `f` with the frame's parts; the fixed fields live on this stack frame.
    fn with_parts<R>(&self, f: impl FnOnce(&Parts<'_>) -> R) -> R {
        let mut fixed = [0u8; 16];
        let (fixed_len, topic, body): (usize, &[u8], &[u8]) = match *self {
            ServerFrame::Data {
                seq,
                ts_ns,
                topic,
                payload,
            } => {
                fixed = data_fixed(seq, ts_ns);
                (16, topic.as_bytes(), payload)
            }
            ServerFrame::SubAck {
                next_seq,
                epoch,
                topic,
            } => {
                fixed[..8].copy_from_slice(&next_seq.to_le_bytes());
                fixed[8..].copy_from_slice(&epoch.to_le_bytes());
                (16, topic.as_bytes(), &[])
            }
            ServerFrame::UnsubAck { topic } => (0, topic.as_bytes(), &[]),
            ServerFrame::Pong { payload } => {
                debug_assert!(payload.len() <= super::MAX_PING_PAYLOAD);
                (0, &[], payload)
            }
            ServerFrame::AuthOk => (0, &[], &[]),
            ServerFrame::Gap { topic, message } => (0, topic.as_bytes(), message.as_bytes()),
            ServerFrame::Error {
                code,
                topic,
                message,
            } => {
                fixed[..2].copy_from_slice(&code.to_le_bytes());
                (2, topic.map_or(&[][..], str::as_bytes), message.as_bytes())
            }
        };
        f(&Parts {
            kind: self.kind(),
            fixed: &fixed[..fixed_len],
            topic,
            body,
        })
    }

    /// Total bytes of the encoded frame, `len` field included.
    pub fn encoded_len(&self) -> usize {
        self.with_parts(|p| p.encoded_len())
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.with_parts(|p| p.write_to_vec(out))
    }

    /// Writes into the start of `out` (must be >= [`Self::encoded_len`], panics
    /// otherwise); returns bytes written.
    pub fn encode_to_slice(&self, out: &mut [u8]) -> usize {
        self.with_parts(|p| p.write_to_slice(out))
    }
}
