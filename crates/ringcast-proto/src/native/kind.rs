//! Frame kinds and the layout rules of each.

/// The `kind` byte of a frame. 0x01-0x05 go from client to server, 0x10-0x1F
/// from server to client; every other value is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client: publish a message on a topic.
    Publish = 0x01,
    /// Client: subscribe to a topic.
    Subscribe = 0x02,
    /// Client: unsubscribe from a topic.
    Unsubscribe = 0x03,
    /// Client: liveness probe with up to 64 bytes.
    Ping = 0x04,
    /// Client: present a token.
    Auth = 0x05,
    /// Server: a published message with its seq and timestamp.
    Data = 0x10,
    /// Server: subscription confirmed.
    SubAck = 0x12,
    /// Server: unsubscription confirmed.
    UnsubAck = 0x13,
    /// Server: answer to PING.
    Pong = 0x14,
    /// Server: AUTH accepted.
    AuthOk = 0x15,
    /// Server: frames of a topic published on other nodes may have been lost
    /// (revision 3; sent only when the server relays between nodes).
    Gap = 0x16,
    /// Server: an error, with its code.
    Error = 0x1F,
}

impl Kind {
    /// The kind for a wire byte, or `None` for a reserved value.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Publish,
            0x02 => Kind::Subscribe,
            0x03 => Kind::Unsubscribe,
            0x04 => Kind::Ping,
            0x05 => Kind::Auth,
            0x10 => Kind::Data,
            0x12 => Kind::SubAck,
            0x13 => Kind::UnsubAck,
            0x14 => Kind::Pong,
            0x15 => Kind::AuthOk,
            0x16 => Kind::Gap,
            0x1F => Kind::Error,
            _ => return None,
        })
    }

    /// Whether clients send this kind (the server sends the others).
    pub fn is_client_to_server(self) -> bool {
        (self as u8) < 0x10
    }

    /// The layout rules of this kind.
    pub(crate) fn shape(self) -> Shape {
        use Body::*;
        use TopicRule::*;
        let (fixed, topic, body) = match self {
            Kind::Publish => (0, Required, Any),
            Kind::Subscribe | Kind::Unsubscribe => (0, Required, Empty),
            Kind::Ping => (0, Absent, PingBytes),
            Kind::Auth => (0, Absent, Any),
            Kind::Data => (16, Required, Any),
            Kind::SubAck => (16, Required, Empty),
            Kind::UnsubAck => (0, Required, Empty),
            Kind::Pong => (0, Absent, PingBytes),
            Kind::AuthOk => (0, Absent, Empty),
            Kind::Gap => (0, Required, Any),
            Kind::Error => (2, Optional, Any),
        };
        Shape { fixed, topic, body }
    }
}

/// What a kind carries after the header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Bytes of fixed fields between the header and the topic.
    pub fixed: usize,
    pub topic: TopicRule,
    pub body: Body,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TopicRule {
    /// `topic_len` must be 0.
    Absent,
    /// A valid topic of 1 to 255 bytes.
    Required,
    /// Either `topic_len` 0 or a valid topic (ERROR).
    Optional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// No payload may follow the topic.
    Empty,
    /// 0 to [`super::MAX_PING_PAYLOAD`] bytes (PING, PONG).
    PingBytes,
    /// Any number of bytes.
    Any,
}
