//! The pub/sub pushes, byte for byte as Redis 7 sends them (`pubsub.c`).
//!
//! Every push is an aggregate of 3 elements (4 for `pmessage`): its kind as
//! a bulk string, the channel or pattern, then the payload or the
//! connection's subscription count. RESP2 sends it as an array (`*3`), RESP3
//! as a push (`>3`); nothing else differs, except in an unsubscribe
//! confirmation without a channel, whose null is `$-1` in RESP2 and `_` in
//! RESP3.

use super::reply::{bulk, header, Count, Sink, SliceSink};
use super::Protocol;

/// Offset, in an encoded push, of the byte that tells RESP2 (`*`) from
/// RESP3 (`>`): the first.
pub const PUSH_TYPE_OFFSET: usize = 0;

/// A pub/sub push: a published message, or the confirmation of a
/// (un)subscription with the connection's count of subscriptions after it
/// (channels and patterns together for the classic kinds, shard channels for
/// the `s` kinds, as Redis counts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PubSubPush<'a> {
    /// `message`, channel, payload: a PUBLISH to a subscribed channel.
    Message {
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// `pmessage`, pattern, channel, payload: a PUBLISH matching a subscribed pattern.
    PMessage {
        pattern: &'a [u8],
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// `smessage`, channel, payload: an SPUBLISH to a subscribed shard channel.
    SMessage {
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// `subscribe`, channel, count.
    Subscribe { channel: &'a [u8], count: usize },
    /// `unsubscribe`, channel (null when there was none to leave), count.
    Unsubscribe {
        channel: Option<&'a [u8]>,
        count: usize,
    },
    /// `psubscribe`, pattern, count.
    PSubscribe { pattern: &'a [u8], count: usize },
    /// `punsubscribe`, pattern (null when there was none to leave), count.
    PUnsubscribe {
        pattern: Option<&'a [u8]>,
        count: usize,
    },
    /// `ssubscribe`, shard channel, count.
    SSubscribe { channel: &'a [u8], count: usize },
    /// `sunsubscribe`, shard channel (null when there was none to leave), count.
    SUnsubscribe {
        channel: Option<&'a [u8]>,
        count: usize,
    },
}

/// The kind's bulk string, as Redis's shared objects hold it.
fn kind_bulk(push: &PubSubPush<'_>) -> &'static [u8] {
    match push {
        PubSubPush::Message { .. } => b"$7\r\nmessage\r\n",
        PubSubPush::PMessage { .. } => b"$8\r\npmessage\r\n",
        PubSubPush::SMessage { .. } => b"$8\r\nsmessage\r\n",
        PubSubPush::Subscribe { .. } => b"$9\r\nsubscribe\r\n",
        PubSubPush::Unsubscribe { .. } => b"$11\r\nunsubscribe\r\n",
        PubSubPush::PSubscribe { .. } => b"$10\r\npsubscribe\r\n",
        PubSubPush::PUnsubscribe { .. } => b"$12\r\npunsubscribe\r\n",
        PubSubPush::SSubscribe { .. } => b"$10\r\nssubscribe\r\n",
        PubSubPush::SUnsubscribe { .. } => b"$12\r\nsunsubscribe\r\n",
    }
}

impl PubSubPush<'_> {
    /// Total bytes of the encoded push in `proto`.
    pub fn encoded_len(&self, proto: Protocol) -> usize {
        let mut n = Count(0);
        self.write(proto, &mut n);
        n.0
    }

    /// Appends the encoded push to `out`; returns the offset in `out` of its
    /// type byte (where it starts: see [`set_push_protocol`]).
    pub fn encode(&self, proto: Protocol, out: &mut Vec<u8>) -> usize {
        let at = out.len();
        out.reserve(self.encoded_len(proto));
        self.write(proto, out);
        at + PUSH_TYPE_OFFSET
    }

    /// Writes into the start of `out` (must be at least
    /// [`PubSubPush::encoded_len`] bytes, panics otherwise); returns bytes written.
    pub fn encode_to_slice(&self, proto: Protocol, out: &mut [u8]) -> usize {
        let n = self.encoded_len(proto);
        assert!(
            out.len() >= n,
            "output buffer of {} bytes is too small for a {n}-byte push",
            out.len()
        );
        let mut s = SliceSink { out, at: 0 };
        self.write(proto, &mut s);
        debug_assert_eq!(s.at, n);
        s.at
    }

    fn write<S: Sink>(&self, proto: Protocol, s: &mut S) {
        let elements = match self {
            PubSubPush::PMessage { .. } => b"4\r\n",
            _ => b"3\r\n",
        };
        s.put(&[proto.push_type_byte()]);
        s.put(elements);
        s.put(kind_bulk(self));
        let count = |s: &mut S, n: usize| header(s, b':', i64::try_from(n).unwrap_or(i64::MAX));
        let maybe = |s: &mut S, name: Option<&[u8]>| match name {
            Some(name) => bulk(s, name),
            None => proto.null().write(s),
        };
        match *self {
            PubSubPush::Message { channel, payload }
            | PubSubPush::SMessage { channel, payload } => {
                bulk(s, channel);
                bulk(s, payload);
            }
            PubSubPush::PMessage {
                pattern,
                channel,
                payload,
            } => {
                bulk(s, pattern);
                bulk(s, channel);
                bulk(s, payload);
            }
            PubSubPush::Subscribe {
                channel: name,
                count: n,
            }
            | PubSubPush::PSubscribe {
                pattern: name,
                count: n,
            }
            | PubSubPush::SSubscribe {
                channel: name,
                count: n,
            } => {
                bulk(s, name);
                count(s, n);
            }
            PubSubPush::Unsubscribe {
                channel: name,
                count: n,
            }
            | PubSubPush::PUnsubscribe {
                pattern: name,
                count: n,
            }
            | PubSubPush::SUnsubscribe {
                channel: name,
                count: n,
            } => {
                maybe(s, name);
                count(s, n);
            }
        }
    }
}

/// Total bytes of a `message` push for a channel and payload of these
/// lengths, in either protocol.
pub fn message_len(channel_len: usize, payload_len: usize) -> usize {
    fn bulk_len(n: usize) -> usize {
        let mut digits = 1;
        let mut rest = n / 10;
        while rest != 0 {
            digits += 1;
            rest /= 10;
        }
        1 + digits + 2 + n + 2
    }
    b"*3\r\n$7\r\nmessage\r\n".len() + bulk_len(channel_len) + bulk_len(payload_len)
}

/// Appends the `message` push of `channel` and `payload` to `out` and
/// returns the offset in `out` of its type byte.
///
/// The RESP2 frame (`*3\r\n$7\r\nmessage\r\n$<n>\r\n<channel>\r\n$<n>\r\n<payload>\r\n`)
/// and the RESP3 frame (the same with `>3`) differ only in that byte, so one
/// encode can serve the subscribers of both: keep one copy and send its
/// first byte from a constant (`b"*"` or `b">"`, see
/// [`Protocol::push_type_byte`]) followed by the rest of the frame, or patch
/// the byte with [`set_push_protocol`] when one protocol's subscribers are
/// done. The same holds for every [`PubSubPush`] but an unsubscribe
/// confirmation without a channel.
pub fn encode_message(out: &mut Vec<u8>, proto: Protocol, channel: &[u8], payload: &[u8]) -> usize {
    PubSubPush::Message { channel, payload }.encode(proto, out)
}

/// Writes the `message` push of `channel` and `payload` into the start of
/// `out` (at least [`message_len`] bytes, panics otherwise), for example
/// registered memory; returns bytes written. Its type byte is at
/// [`PUSH_TYPE_OFFSET`]; see [`encode_message`].
pub fn encode_message_to_slice(
    out: &mut [u8],
    proto: Protocol,
    channel: &[u8],
    payload: &[u8],
) -> usize {
    PubSubPush::Message { channel, payload }.encode_to_slice(proto, out)
}

/// Turns an encoded push (`frame` starts at its type byte) into `proto`'s:
/// `*` for RESP2, `>` for RESP3. Panics if `frame` does not start with one
/// of them.
pub fn set_push_protocol(frame: &mut [u8], proto: Protocol) {
    let byte = frame
        .get_mut(PUSH_TYPE_OFFSET)
        .filter(|b| matches!(**b, b'*' | b'>'))
        .expect("not an encoded push: the frame does not start with '*' or '>'");
    *byte = proto.push_type_byte();
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::{Resp2, Resp3};

    fn enc(p: PubSubPush<'_>, proto: Protocol) -> Vec<u8> {
        let mut v = b"xx".to_vec();
        assert_eq!(p.encode(proto, &mut v), 2);
        let v = v.split_off(2);
        assert_eq!(v.len(), p.encoded_len(proto));
        let mut s = vec![0; v.len()];
        assert_eq!(p.encode_to_slice(proto, &mut s), v.len());
        assert_eq!(s, v);
        v
    }

    #[test]
    fn messages() {
        let m = PubSubPush::Message {
            channel: b"news",
            payload: b"hello world",
        };
        assert_eq!(
            enc(m, Resp2),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$11\r\nhello world\r\n"
        );
        assert_eq!(
            enc(m, Resp3),
            b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$11\r\nhello world\r\n"
        );
        assert_eq!(message_len(4, 11), enc(m, Resp2).len());
        let p = PubSubPush::PMessage {
            pattern: b"n*",
            channel: b"news",
            payload: b"",
        };
        assert_eq!(
            enc(p, Resp2),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$0\r\n\r\n"
        );
        assert_eq!(
            enc(p, Resp3),
            b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$0\r\n\r\n"
        );
        let s = PubSubPush::SMessage {
            channel: b"c",
            payload: b"\x00\r\n",
        };
        assert_eq!(
            enc(s, Resp2),
            b"*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$3\r\n\x00\r\n\r\n"
        );
    }

    #[test]
    fn confirmations() {
        let cases: &[(PubSubPush<'_>, &[u8], &[u8])] = &[
            (
                PubSubPush::Subscribe {
                    channel: b"ch",
                    count: 1,
                },
                b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
                b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
            ),
            (
                PubSubPush::Unsubscribe {
                    channel: Some(b"ch"),
                    count: 0,
                },
                b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n",
                b">3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n",
            ),
            (
                PubSubPush::Unsubscribe {
                    channel: None,
                    count: 0,
                },
                b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
                b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n",
            ),
            (
                PubSubPush::PSubscribe {
                    pattern: b"a*",
                    count: 12,
                },
                b"*3\r\n$10\r\npsubscribe\r\n$2\r\na*\r\n:12\r\n",
                b">3\r\n$10\r\npsubscribe\r\n$2\r\na*\r\n:12\r\n",
            ),
            (
                PubSubPush::PUnsubscribe {
                    pattern: None,
                    count: 3,
                },
                b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:3\r\n",
                b">3\r\n$12\r\npunsubscribe\r\n_\r\n:3\r\n",
            ),
            (
                PubSubPush::SSubscribe {
                    channel: b"s",
                    count: 1,
                },
                b"*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n",
                b">3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n",
            ),
            (
                PubSubPush::SUnsubscribe {
                    channel: Some(b"s"),
                    count: 0,
                },
                b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n",
                b">3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n",
            ),
        ];
        for &(push, resp2, resp3) in cases {
            assert_eq!(enc(push, Resp2), resp2, "{push:?}");
            assert_eq!(enc(push, Resp3), resp3, "{push:?}");
        }
    }

    #[test]
    fn one_encode_serves_both_protocols() {
        let mut frame = Vec::new();
        let at = encode_message(&mut frame, Resp2, b"ch", b"payload");
        assert_eq!(at, 0);
        assert_eq!(frame.len(), message_len(2, 7));
        let mut resp3 = Vec::new();
        encode_message(&mut resp3, Resp3, b"ch", b"payload");
        assert_eq!(frame[1..], resp3[1..]);
        set_push_protocol(&mut frame[at..], Resp3);
        assert_eq!(frame, resp3);
        set_push_protocol(&mut frame, Resp2);
        assert_eq!(frame[0], b'*');
        let mut slice = [0u8; 64];
        let n = encode_message_to_slice(&mut slice, Resp3, b"ch", b"payload");
        assert_eq!(&slice[..n], &resp3[..]);
    }

    #[test]
    #[should_panic(expected = "not an encoded push")]
    fn patching_something_else_panics() {
        set_push_protocol(&mut b"$3\r\nabc\r\n".to_vec(), Resp3);
    }
}
