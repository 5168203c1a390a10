//! WebSocket frames (RFC 6455 §5): server frame headers, client frame
//! encoding, and an incremental [`Decoder`] that reassembles messages.
//!
//! Server frames are final and unmasked: a header from [`write_header`]
//! followed by the payload unchanged, so one encoded message can be sent to
//! every subscriber. Client frames are masked ([`encode_client_frame`]).
//!
//! # When the decoder decides
//! A violation is reported as soon as the bytes that prove it have arrived;
//! nothing is buffered or allocated for a frame already known to be bad:
//!
//! 1. First header byte: reserved bits (1002), reserved opcode (1002), a
//!    control frame without FIN (1002), a continuation with no message in
//!    progress or a new message while one is in progress (1002), a text
//!    message (1003).
//! 2. Second byte: the mask bit of the wrong role (1002), a control payload
//!    over 125 bytes (1002), a close payload of 1 byte (1002).
//! 3. Extended length: its top bit set (1002), a message that would exceed
//!    `max_message` with this frame (1009).
//! 4. A whole close frame: its code (1002) and reason (1007).
//!
//! Control frames may arrive between the fragments of a message. After a
//! close frame the decoder discards whatever follows; after an error it
//! answers the same error again.

/// A frame's opcode (RFC 6455 §5.2); the other values are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// A later fragment of a message.
    Continuation = 0,
    /// The first frame of a text message (refused by the decoder with 1003).
    Text = 1,
    /// The first frame of a binary message.
    Binary = 2,
    /// Close, with an optional code and reason.
    Close = 8,
    /// Ping; answered by a pong with the same payload.
    Ping = 9,
    /// Pong.
    Pong = 10,
}

impl Opcode {
    /// The opcode for the low 4 bits of a first header byte, or `None` when reserved.
    pub fn from_u8(v: u8) -> Option<Opcode> {
        Some(match v {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

/// Close status codes we send (RFC 6455 §7.4.1).
pub mod close {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is going down.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol (WebSocket or ringcast).
    pub const PROTOCOL: u16 = 1002;
    /// A kind of data we do not accept (text messages).
    pub const UNSUPPORTED: u16 = 1003;
    /// A close reason that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A policy was broken (not authorized, slow consumer).
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
}

/// Max header length of a server frame (unmasked, 64-bit length).
pub const MAX_HEADER: usize = 10;
/// Max header length of a client frame (masked, 64-bit length).
pub const MAX_CLIENT_HEADER: usize = 14;
/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Largest close reason, in bytes: the control payload less the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASK_BIT: u8 = 0x80;

/// Bytes of an unmasked server frame header for a payload of `len` bytes: 2, 4 or 10.
pub const fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= 0xFFFF {
        4
    } else {
        10
    }
}

/// Writes a final (FIN), unmasked frame header for `op` and a payload of
/// `len` bytes into `out[..header_len(len)]`; returns the header length.
/// Panics if `out` is too short.
pub fn write_header(out: &mut [u8], op: Opcode, len: usize) -> usize {
    let n = header_len(len);
    let out = &mut out[..n];
    out[0] = FIN | op as u8;
    match n {
        2 => out[1] = len as u8,
        4 => {
            out[1] = 126;
            out[2..].copy_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out[1] = 127;
            out[2..].copy_from_slice(&(len as u64).to_be_bytes());
        }
    }
    n
}

/// Appends a whole server frame (final, unmasked) to `out`.
pub fn encode_server_frame(out: &mut Vec<u8>, op: Opcode, payload: &[u8]) {
    let mut header = [0u8; MAX_HEADER];
    let n = write_header(&mut header, op, payload.len());
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
}

/// Payload of a close frame: `code` (big-endian) then `reason`, truncated to
/// [`MAX_CLOSE_REASON`] bytes on a UTF-8 boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

/// Appends a whole masked client frame to `out`: FIN per `fin`, mask key `mask`.
pub fn encode_client_frame(
    out: &mut Vec<u8>,
    op: Opcode,
    payload: &[u8],
    mask: [u8; 4],
    fin: bool,
) {
    let mut header = [0u8; MAX_CLIENT_HEADER];
    let n = write_header(&mut header, op, payload.len());
    if !fin {
        header[0] &= !FIN;
    }
    header[1] |= MASK_BIT;
    header[n..n + 4].copy_from_slice(&mask);
    out.extend_from_slice(&header[..n + 4]);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// XORs `buf` in place with `mask`, `buf[0]` being byte `offset` of the
/// payload (masking and unmasking are the same operation). Works 8 bytes at
/// a time.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let m8 = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ m8).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so at phase 0 of `m`.
    for (b, k) in chunks.into_remainder().iter_mut().zip(m.iter().cycle()) {
        *b ^= k;
    }
}

/// Why the peer must be closed: the close code to send and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseError {
    /// The close code to send (see [`close`]).
    pub code: u16,
    /// What the peer did wrong, in a few words; at most [`MAX_CLOSE_REASON`] bytes.
    pub reason: &'static str,
}

impl CloseError {
    const fn protocol(reason: &'static str) -> CloseError {
        CloseError {
            code: close::PROTOCOL,
            reason,
        }
    }
}

/// What the decoder delivers, borrowing from the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole binary message, unmasked and reassembled from its fragments.
    Message(&'a [u8]),
    /// A ping; answer with a pong carrying the same bytes.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame: `code` is `None` for an empty payload (then `reason` is
    /// empty). The code is one valid to receive and the reason is UTF-8.
    Close {
        /// The peer's close code.
        code: Option<u16>,
        /// The peer's reason, at most [`MAX_CLOSE_REASON`] bytes.
        reason: &'a str,
    },
}

/// Which side of the connection the decoder reads for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// The server: expects masked frames from clients.
    Server,
    /// A client: expects unmasked frames from the server.
    Client,
}

/// The frame being received, once its header is complete.
#[derive(Clone, Copy, Debug)]
struct Frame {
    op: Opcode,
    fin: bool,
    /// The mask key; `None` for unmasked (server) frames.
    mask: Option<[u8; 4]>,
    /// Payload length; at most the room left under `max_message`, or 125 for control frames.
    len: usize,
    /// Payload bytes received so far; `done <= len`.
    done: usize,
}

/// An event ready to be borrowed from the decoder.
#[derive(Clone, Copy)]
enum Ready {
    Message,
    Ping,
    Pong,
    Close,
}

/// Capacity of the reassembly buffer above which [`Decoder::shrink`] frees it.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Incremental decoder of one peer's frames. Owns the bytes of a message
/// being reassembled (unmasked), bounded by `max_message`.
///
/// Invariants: `message` holds the unmasked payload of the fragments of the
/// message in progress (complete fragments, then the received part of the
/// current one), never more than `max_message` bytes; `fragmented` is true
/// between a non-final data frame's header and the final fragment's header.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message: usize,
    /// Header bytes of the next frame received so far.
    head: [u8; MAX_CLIENT_HEADER],
    head_len: usize,
    /// The whole header's length, known from its second byte; 0 before.
    head_total: usize,
    /// The frame whose payload is being received.
    frame: Option<Frame>,
    fragmented: bool,
    message: Vec<u8>,
    /// The payload of the last control frame; its length is `control_len`.
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
    /// `message` was delivered; it is cleared on the next call.
    delivered: bool,
    /// A close frame was delivered; later input is discarded.
    closed: bool,
    failed: Option<CloseError>,
}

impl Decoder {
    /// A decoder for `role` that refuses messages over `max_message` bytes with 1009.
    pub fn new(role: Role, max_message: usize) -> Decoder {
        Decoder {
            role,
            max_message,
            head: [0; MAX_CLIENT_HEADER],
            head_len: 0,
            head_total: 0,
            frame: None,
            fragmented: false,
            message: Vec::new(),
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            delivered: false,
            closed: false,
            failed: None,
        }
    }

    /// Consumes bytes of `input` until one event is complete or the input is
    /// used up.
    ///
    /// Returns `(consumed, Some(event))`, or `(input.len(), None)` when more
    /// input is needed: partial headers and payloads are kept inside the
    /// decoder, so the caller never feeds consumed bytes again. After an
    /// event, call again with `input[consumed..]`. An error is final: the
    /// caller sends a close frame with its code and stops reading; later
    /// calls return it again. After a [`Event::Close`], all input is
    /// consumed and ignored.
    pub fn decode<'s>(
        &'s mut self,
        input: &[u8],
    ) -> Result<(usize, Option<Event<'s>>), CloseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.closed {
            return Ok((input.len(), None));
        }
        if self.delivered {
            self.message.clear();
            self.delivered = false;
        }
        let mut pos = 0;
        loop {
            if self.frame.is_none() {
                pos += self.read_header(&input[pos..]).map_err(|e| self.fail(e))?;
                if self.frame.is_none() {
                    debug_assert_eq!(pos, input.len());
                    return Ok((pos, None));
                }
            }
            pos += self.read_payload(&input[pos..]);
            let Some(frame) = self.frame.filter(|f| f.done == f.len) else {
                debug_assert_eq!(pos, input.len());
                return Ok((pos, None));
            };
            self.frame = None;
            if let Some(ready) = self.finish(frame).map_err(|e| self.fail(e))? {
                return Ok((pos, Some(self.event(ready))));
            }
        }
    }

    /// Bytes held for a message in progress (for memory accounting).
    pub fn buffered(&self) -> usize {
        if self.delivered {
            0
        } else {
            self.message.len()
        }
    }

    /// Frees a reassembly buffer whose capacity grew above 64 KiB, when no
    /// message is in progress (call it when the connection goes idle).
    pub fn shrink(&mut self) {
        if self.delivered {
            self.message.clear();
            self.delivered = false;
        }
        if self.message.is_empty() && self.message.capacity() > SHRINK_ABOVE {
            self.message = Vec::new();
        }
    }

    /// Whether it holds nothing between messages: no header, frame or
    /// fragmented message in progress, and neither closed nor failed. A
    /// decoder that is idle can be dropped and replaced by a new one (the
    /// server does so to keep no per-connection decoder while a peer is
    /// silent).
    pub fn is_idle(&self) -> bool {
        self.head_len == 0
            && self.frame.is_none()
            && !self.fragmented
            && (self.delivered || self.message.is_empty())
            && !self.closed
            && self.failed.is_none()
    }

    /// Whether a close frame has been received (later input is ignored).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn fail(&mut self, e: CloseError) -> CloseError {
        self.failed = Some(e.clone());
        e
    }

    /// Takes header bytes until the header is complete (then `self.frame` is
    /// set) or `input` is used up; returns the bytes taken.
    fn read_header(&mut self, input: &[u8]) -> Result<usize, CloseError> {
        let mut used = 0;
        while self.frame.is_none() && used < input.len() {
            self.head[self.head_len] = input[used];
            self.head_len += 1;
            used += 1;
            self.on_header_byte()?;
        }
        Ok(used)
    }

    /// Checks whatever the header byte just received decides.
    fn on_header_byte(&mut self) -> Result<(), CloseError> {
        match self.head_len {
            1 => self.check_first()?,
            2 => self.check_second()?,
            _ => {}
        }
        if self.head_len >= 2 {
            let len_end = 2 + extended_len_bytes(self.head[1]);
            if self.head_len == len_end {
                self.check_length()?;
            }
            if self.head_len == self.head_total {
                self.start_frame();
            }
        }
        Ok(())
    }

    /// The opcode of the header being read; valid once its first byte has passed [`Self::check_first`].
    fn head_op(&self) -> Opcode {
        Opcode::from_u8(self.head[0] & 0x0F).expect("checked by check_first")
    }

    fn check_first(&self) -> Result<(), CloseError> {
        let b0 = self.head[0];
        if b0 & RSV != 0 {
            return Err(CloseError::protocol(
                "reserved bits set without an extension",
            ));
        }
        let op = Opcode::from_u8(b0 & 0x0F).ok_or(CloseError::protocol("reserved opcode"))?;
        let fin = b0 & FIN != 0;
        match op {
            _ if op.is_control() && !fin => Err(CloseError::protocol("fragmented control frame")),
            _ if op.is_control() => Ok(()),
            Opcode::Continuation if !self.fragmented => Err(CloseError::protocol(
                "continuation frame without a message in progress",
            )),
            Opcode::Continuation => Ok(()),
            _ if self.fragmented => Err(CloseError::protocol(
                "new message before the last one ended",
            )),
            Opcode::Text => Err(CloseError {
                code: close::UNSUPPORTED,
                reason: "text messages are not supported: send binary",
            }),
            _ => Ok(()),
        }
    }

    fn check_second(&mut self) -> Result<(), CloseError> {
        let b1 = self.head[1];
        let masked = b1 & MASK_BIT != 0;
        match (self.role, masked) {
            (Role::Server, false) => {
                return Err(CloseError::protocol("client frame is not masked"))
            }
            (Role::Client, true) => return Err(CloseError::protocol("server frame is masked")),
            _ => {}
        }
        let len7 = usize::from(b1 & 0x7F);
        let op = self.head_op();
        if op.is_control() && len7 > MAX_CONTROL_PAYLOAD {
            return Err(CloseError::protocol("control frame payload over 125 bytes"));
        }
        if op == Opcode::Close && len7 == 1 {
            return Err(CloseError::protocol("close frame payload of 1 byte"));
        }
        self.head_total = 2 + extended_len_bytes(b1) + if masked { 4 } else { 0 };
        Ok(())
    }

    /// Checks the payload length once all its bytes are in `head`.
    fn check_length(&self) -> Result<(), CloseError> {
        let len = self.head_payload_len();
        if len >> 63 != 0 {
            return Err(CloseError::protocol(
                "64-bit payload length has its top bit set",
            ));
        }
        let room = self.max_message.saturating_sub(self.message.len());
        if !self.head_op().is_control() && len > room as u64 {
            return Err(CloseError {
                code: close::TOO_BIG,
                reason: "message too big",
            });
        }
        Ok(())
    }

    /// The payload length of the header in `head`, whose length bytes are all there.
    fn head_payload_len(&self) -> u64 {
        match self.head[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.head[2..10]);
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        }
    }

    /// The header is complete: the payload comes next.
    fn start_frame(&mut self) {
        let op = self.head_op();
        let fin = self.head[0] & FIN != 0;
        let mask = (self.head[1] & MASK_BIT != 0).then(|| {
            let t = self.head_total;
            [
                self.head[t - 4],
                self.head[t - 3],
                self.head[t - 2],
                self.head[t - 1],
            ]
        });
        // check_length bounded it by max_message (a usize) or 125.
        let len = usize::try_from(self.head_payload_len()).expect("checked by check_length");
        if !op.is_control() {
            debug_assert!(op == Opcode::Continuation || self.message.is_empty());
            self.fragmented = !fin;
        }
        self.frame = Some(Frame {
            op,
            fin,
            mask,
            len,
            done: 0,
        });
        self.head_len = 0;
        self.head_total = 0;
    }

    /// Takes payload bytes of the current frame, unmasking them into the
    /// message or the control buffer; returns the bytes taken.
    fn read_payload(&mut self, input: &[u8]) -> usize {
        let Some(f) = self.frame.as_mut() else {
            return 0;
        };
        let n = (f.len - f.done).min(input.len());
        let bytes = if f.op.is_control() {
            let dst = &mut self.control[f.done..f.done + n];
            dst.copy_from_slice(&input[..n]);
            dst
        } else {
            let start = self.message.len();
            self.message.extend_from_slice(&input[..n]);
            &mut self.message[start..]
        };
        if let Some(mask) = f.mask {
            apply_mask(bytes, mask, f.done);
        }
        f.done += n;
        n
    }

    /// A frame's payload is complete: what it delivers, if anything.
    fn finish(&mut self, f: Frame) -> Result<Option<Ready>, CloseError> {
        if !f.op.is_control() {
            self.delivered = f.fin;
            return Ok(f.fin.then_some(Ready::Message));
        }
        self.control_len = f.len;
        Ok(Some(match f.op {
            Opcode::Ping => Ready::Ping,
            Opcode::Pong => Ready::Pong,
            _ => {
                check_close(&self.control[..f.len])?;
                self.closed = true;
                Ready::Close
            }
        }))
    }

    fn event(&self, ready: Ready) -> Event<'_> {
        let control = &self.control[..self.control_len];
        match ready {
            Ready::Message => Event::Message(&self.message),
            Ready::Ping => Event::Ping(control),
            Ready::Pong => Event::Pong(control),
            Ready::Close => match control {
                [hi, lo, reason @ ..] => Event::Close {
                    code: Some(u16::from_be_bytes([*hi, *lo])),
                    reason: std::str::from_utf8(reason).unwrap_or_default(),
                },
                _ => Event::Close {
                    code: None,
                    reason: "",
                },
            },
        }
    }
}

/// Bytes of extended payload length after the second header byte `b1`: 0, 2 or 8.
fn extended_len_bytes(b1: u8) -> usize {
    match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

/// Checks a close payload (its length is 0 or at least 2, checked from the header).
fn check_close(payload: &[u8]) -> Result<(), CloseError> {
    let [hi, lo, reason @ ..] = payload else {
        debug_assert!(payload.is_empty());
        return Ok(());
    };
    if !is_valid_received_code(u16::from_be_bytes([*hi, *lo])) {
        return Err(CloseError::protocol("invalid close code"));
    }
    if std::str::from_utf8(reason).is_err() {
        return Err(CloseError {
            code: close::INVALID_DATA,
            reason: "close reason is not UTF-8",
        });
    }
    Ok(())
}

/// Whether a peer may send `code` in a close frame: the registered codes
/// 1000-1003 and 1007-1014, and 3000-4999 (libraries, applications).
/// 1004-1006 and 1015 are reserved or never sent on the wire.
pub fn is_valid_received_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 1 << 20;
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// An event copied out of the decoder.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Message(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    impl From<Event<'_>> for Owned {
        fn from(e: Event<'_>) -> Owned {
            match e {
                Event::Message(m) => Owned::Message(m.to_vec()),
                Event::Ping(p) => Owned::Ping(p.to_vec()),
                Event::Pong(p) => Owned::Pong(p.to_vec()),
                Event::Close { code, reason } => Owned::Close(code, reason.to_string()),
            }
        }
    }

    /// Feeds `wire` in chunks of the sizes in `chunks` (cycled), collecting events.
    fn feed(dec: &mut Decoder, wire: &[u8], chunks: &[usize]) -> Result<Vec<Owned>, CloseError> {
        let mut events = Vec::new();
        let mut at = 0;
        for &size in chunks.iter().cycle() {
            if at == wire.len() {
                break;
            }
            let mut chunk = &wire[at..(at + size.max(1)).min(wire.len())];
            at += chunk.len();
            while !chunk.is_empty() {
                let (used, event) = dec.decode(chunk)?;
                match event {
                    Some(e) => events.push(e.into()),
                    None => assert_eq!(used, chunk.len()),
                }
                chunk = &chunk[used..];
            }
        }
        Ok(events)
    }

    fn client(op: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_client_frame(&mut v, op, payload, MASK, true);
        v
    }

    /// Feeds `wire` one byte at a time and expects an error exactly at its last byte.
    fn err_at_last_byte(dec: &mut Decoder, wire: &[u8]) -> CloseError {
        let (last, head) = wire.split_last().unwrap();
        assert_eq!(
            feed(dec, head, &[1]),
            Ok(vec![]),
            "failed before the last byte"
        );
        dec.decode(&[*last]).unwrap_err()
    }

    fn server_err(wire: &[u8]) -> CloseError {
        feed(&mut Decoder::new(Role::Server, MAX), wire, &[wire.len()]).unwrap_err()
    }

    #[test]
    fn header_lengths() {
        let mut h = [0u8; MAX_HEADER];
        assert_eq!(write_header(&mut h, Opcode::Binary, 0), 2);
        assert_eq!(h[..2], [0x82, 0]);
        assert_eq!(write_header(&mut h, Opcode::Pong, 125), 2);
        assert_eq!(h[..2], [0x8A, 125]);
        assert_eq!(write_header(&mut h, Opcode::Binary, 126), 4);
        assert_eq!(h[..4], [0x82, 126, 0, 126]);
        assert_eq!(write_header(&mut h, Opcode::Binary, 65535), 4);
        assert_eq!(h[..4], [0x82, 126, 0xFF, 0xFF]);
        assert_eq!(write_header(&mut h, Opcode::Close, 65536), 10);
        assert_eq!(h, [0x88, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for len in [0, 125, 126, 65535, 65536] {
            assert_eq!(header_len(len), write_header(&mut h, Opcode::Binary, len));
        }
    }

    #[test]
    #[should_panic]
    fn write_header_panics_on_a_short_slice() {
        write_header(&mut [0u8; 3], Opcode::Binary, 126);
    }

    #[test]
    fn client_role_reads_server_frames() {
        let mut wire = Vec::new();
        let payloads: Vec<Vec<u8>> = [0usize, 125, 126, 65535, 65536, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7) as u8).collect())
            .collect();
        for p in &payloads {
            encode_server_frame(&mut wire, Opcode::Binary, p);
        }
        encode_server_frame(&mut wire, Opcode::Ping, b"hi");
        encode_server_frame(
            &mut wire,
            Opcode::Close,
            &close_payload(close::GOING_AWAY, "bye"),
        );
        let mut dec = Decoder::new(Role::Client, MAX);
        let events = feed(&mut dec, &wire, &[1000, 1, 3, 65536]).unwrap();
        let mut expected: Vec<Owned> = payloads.into_iter().map(Owned::Message).collect();
        expected.push(Owned::Ping(b"hi".to_vec()));
        expected.push(Owned::Close(Some(1001), "bye".into()));
        assert_eq!(events, expected);
        assert!(dec.is_closed());
        // A masked frame is refused in the client role.
        let mut dec = Decoder::new(Role::Client, MAX);
        assert_eq!(
            err_at_last_byte(&mut dec, &client(Opcode::Binary, b"x")[..2]).code,
            1002
        );
    }

    #[test]
    fn server_role_refuses_unmasked_frames_at_the_second_byte() {
        let mut wire = Vec::new();
        encode_server_frame(&mut wire, Opcode::Binary, b"abc");
        let e = err_at_last_byte(&mut Decoder::new(Role::Server, MAX), &wire[..2]);
        assert_eq!(e, CloseError::protocol("client frame is not masked"));
    }

    #[test]
    fn giant_length_fails_after_the_length_bytes() {
        let mut wire = vec![0x82, 0xFF, 0x7F];
        wire.extend_from_slice(&[0xFF; 7]);
        let mut dec = Decoder::new(Role::Server, MAX);
        let e = err_at_last_byte(&mut dec, &wire);
        assert_eq!(e.code, close::TOO_BIG);
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.message.capacity(), 0);
        // The error sticks.
        assert_eq!(dec.decode(&[0; 4]), Err(e));
        // With the top bit set it is a protocol error.
        wire[2] = 0x80;
        wire[3..].fill(0);
        let e = err_at_last_byte(&mut Decoder::new(Role::Server, MAX), &wire);
        assert_eq!(e.code, close::PROTOCOL);
    }

    #[test]
    fn message_size_counts_every_fragment() {
        let mut dec = Decoder::new(Role::Server, 100);
        let mut wire = Vec::new();
        encode_client_frame(&mut wire, Opcode::Binary, &[1; 60], MASK, false);
        encode_client_frame(&mut wire, Opcode::Continuation, &[2; 40], MASK, true);
        let mut expected = vec![1; 60];
        expected.extend_from_slice(&[2; 40]);
        assert_eq!(
            feed(&mut dec, &wire, &[7]),
            Ok(vec![Owned::Message(expected)])
        );
        // 60 + 41 is over: refused at the second fragment's length byte.
        let mut wire = Vec::new();
        encode_client_frame(&mut wire, Opcode::Binary, &[1; 60], MASK, false);
        let first = wire.len();
        encode_client_frame(&mut wire, Opcode::Continuation, &[2; 41], MASK, true);
        let mut dec = Decoder::new(Role::Server, 100);
        assert_eq!(feed(&mut dec, &wire[..first], &[5]), Ok(vec![]));
        assert_eq!(dec.buffered(), 60);
        let e = err_at_last_byte(&mut dec, &wire[first..first + 2]);
        assert_eq!(e.code, close::TOO_BIG);
        // A single frame over the limit, with a 16-bit length.
        let e = err_at_last_byte(
            &mut Decoder::new(Role::Server, 200),
            &client(Opcode::Binary, &[0; 201])[..4],
        );
        assert_eq!(e.code, close::TOO_BIG);
    }

    #[test]
    fn first_byte_rules() {
        for (b0, code) in [
            (0x82 | 0x40, close::PROTOCOL), // RSV1
            (0x82 | 0x20, close::PROTOCOL), // RSV2
            (0x82 | 0x10, close::PROTOCOL), // RSV3
            (0x83, close::PROTOCOL),        // reserved data opcode
            (0x8B, close::PROTOCOL),        // reserved control opcode
            (0x09, close::PROTOCOL),        // ping without FIN
            (0x08, close::PROTOCOL),        // close without FIN
            (0x80, close::PROTOCOL),        // continuation, no message in progress
            (0x81, close::UNSUPPORTED),     // text
            (0x01, close::UNSUPPORTED),     // text, first fragment
        ] {
            let e = err_at_last_byte(&mut Decoder::new(Role::Server, MAX), &[b0]);
            assert_eq!(e.code, code, "first byte {b0:#04x}");
        }
        assert_eq!(
            server_err(&[0x81]).reason,
            "text messages are not supported: send binary"
        );
    }

    #[test]
    fn message_sequence_rules() {
        let mut start = Vec::new();
        encode_client_frame(&mut start, Opcode::Binary, b"part", MASK, false);
        for b0 in [0x82, 0x02, 0x81] {
            let mut dec = Decoder::new(Role::Server, MAX);
            assert_eq!(feed(&mut dec, &start, &[1]), Ok(vec![]));
            let e = err_at_last_byte(&mut dec, &[b0]);
            assert_eq!(e.code, close::PROTOCOL, "first byte {b0:#04x}");
        }
    }

    #[test]
    fn control_frame_rules() {
        // 126 announced: refused at the second byte.
        let ping = client(Opcode::Ping, &[0; 126]);
        let e = err_at_last_byte(&mut Decoder::new(Role::Server, MAX), &ping[..2]);
        assert_eq!(
            e,
            CloseError::protocol("control frame payload over 125 bytes")
        );
        // 125 is fine, and control frames come between fragments.
        let mut wire = Vec::new();
        encode_client_frame(&mut wire, Opcode::Binary, b"ab", MASK, false);
        encode_client_frame(&mut wire, Opcode::Ping, &[9; 125], MASK, true);
        encode_client_frame(&mut wire, Opcode::Pong, b"", MASK, true);
        encode_client_frame(&mut wire, Opcode::Continuation, b"", MASK, false);
        encode_client_frame(&mut wire, Opcode::Continuation, b"cd", MASK, true);
        let mut dec = Decoder::new(Role::Server, MAX);
        assert_eq!(
            feed(&mut dec, &wire, &[3]),
            Ok(vec![
                Owned::Ping(vec![9; 125]),
                Owned::Pong(vec![]),
                Owned::Message(b"abcd".to_vec())
            ])
        );
    }

    #[test]
    fn close_frames() {
        let ok = |payload: &[u8]| {
            let mut dec = Decoder::new(Role::Server, MAX);
            feed(&mut dec, &client(Opcode::Close, payload), &[1])
        };
        assert_eq!(ok(b""), Ok(vec![Owned::Close(None, String::new())]));
        for code in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert_eq!(
                ok(&close_payload(code, "r\u{e9}")),
                Ok(vec![Owned::Close(Some(code), "r\u{e9}".into())]),
                "{code}"
            );
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(
                ok(&code.to_be_bytes()).unwrap_err().code,
                close::PROTOCOL,
                "{code}"
            );
        }
        assert_eq!(ok(b"\x03\xe8\xff").unwrap_err().code, close::INVALID_DATA);
        // One byte of payload: refused from the header.
        let e = err_at_last_byte(
            &mut Decoder::new(Role::Server, MAX),
            &client(Opcode::Close, b"x")[..2],
        );
        assert_eq!(e.code, close::PROTOCOL);
        // After a close, input is ignored.
        let mut wire = client(Opcode::Close, &close_payload(1000, ""));
        wire.extend_from_slice(&[0xFF; 20]);
        let mut dec = Decoder::new(Role::Server, MAX);
        let (used, event) = dec.decode(&wire).unwrap();
        assert_eq!(
            event,
            Some(Event::Close {
                code: Some(1000),
                reason: ""
            })
        );
        assert_eq!(dec.decode(&wire[used..]), Ok((20, None)));
    }

    #[test]
    fn close_payload_truncates_on_a_char_boundary() {
        let p = close_payload(close::POLICY, &"\u{e9}".repeat(100));
        assert_eq!(p.len(), 2 + 122);
        assert_eq!(&p[..2], &[0x03, 0xF0]);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(
            close_payload(1000, &"a".repeat(200)).len(),
            2 + MAX_CLOSE_REASON
        );
        assert_eq!(close_payload(1000, "bye"), b"\x03\xe8bye");
    }

    #[test]
    fn rfc_6455_examples() {
        // §5.7: a masked "Hello" and an unmasked one.
        let masked = [
            0x81u8, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut wire = Vec::new();
        encode_client_frame(&mut wire, Opcode::Text, b"Hello", MASK, true);
        assert_eq!(wire, masked);
        let mut unmasked = Vec::new();
        encode_server_frame(&mut unmasked, Opcode::Text, b"Hello");
        assert_eq!(unmasked, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        // The same bytes as a binary frame decode to "Hello".
        wire[0] = 0x82;
        assert_eq!(
            feed(&mut Decoder::new(Role::Server, MAX), &wire, &[1]),
            Ok(vec![Owned::Message(b"Hello".to_vec())])
        );
    }

    #[test]
    fn apply_mask_matches_a_byte_loop_at_every_offset() {
        let data: Vec<u8> = (0..100u8).collect();
        for offset in 0..8 {
            for len in 0..40 {
                let mut fast = data[..len].to_vec();
                apply_mask(&mut fast, MASK, offset);
                let slow: Vec<u8> = data[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ MASK[(offset + i) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn shrink_frees_a_large_idle_buffer() {
        let big = vec![5u8; 100_000];
        let mut dec = Decoder::new(Role::Server, MAX);
        let wire = client(Opcode::Binary, &big);
        assert_eq!(
            feed(&mut dec, &wire, &[4096]),
            Ok(vec![Owned::Message(big)])
        );
        assert_eq!(dec.buffered(), 0);
        assert!(dec.message.capacity() > SHRINK_ABOVE);
        dec.shrink();
        assert_eq!(dec.message.capacity(), 0);
        // A small buffer is kept; a message in progress is kept.
        let mut wire = Vec::new();
        encode_client_frame(&mut wire, Opcode::Binary, b"abc", MASK, false);
        assert_eq!(feed(&mut dec, &wire, &[10]), Ok(vec![]));
        dec.shrink();
        assert_eq!(dec.buffered(), 3);
    }

    /// One message as the client sends it: its fragments' cut points and the
    /// pings sent between them.
    #[derive(Clone, Debug)]
    struct Sent {
        message: Vec<u8>,
        cuts: Vec<usize>,
        pings: Vec<Vec<u8>>,
        mask: [u8; 4],
    }

    fn sent() -> impl Strategy<Value = Sent> {
        (
            prop_oneof![
                4 => proptest::collection::vec(any::<u8>(), 0..300),
                1 => proptest::collection::vec(any::<u8>(), 65_000..70_000),
            ],
            proptest::collection::vec(any::<usize>(), 0..4),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=125), 0..3),
            any::<[u8; 4]>(),
        )
            .prop_map(|(message, cuts, pings, mask)| Sent {
                message,
                cuts,
                pings,
                mask,
            })
    }

    /// The wire bytes of `msgs` and the events they must decode to.
    fn build(msgs: &[Sent]) -> (Vec<u8>, Vec<Owned>) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for s in msgs {
            let mut cuts: Vec<usize> = s.cuts.iter().map(|c| c % (s.message.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(s.message.len());
            let mut from = 0;
            for (i, &to) in cuts.iter().enumerate() {
                let op = if i == 0 {
                    Opcode::Binary
                } else {
                    Opcode::Continuation
                };
                let fin = i == cuts.len() - 1;
                encode_client_frame(&mut wire, op, &s.message[from..to], s.mask, fin);
                from = to;
                if fin {
                    expected.push(Owned::Message(s.message.clone()));
                }
                // Ping j follows fragment j modulo the number of fragments.
                for p in s.pings.iter().skip(i).step_by(cuts.len()) {
                    encode_client_frame(&mut wire, Opcode::Ping, p, s.mask, true);
                    expected.push(Owned::Ping(p.clone()));
                }
            }
        }
        (wire, expected)
    }

    proptest! {
        #[test]
        fn round_trip(
            msgs in proptest::collection::vec(sent(), 0..6),
            chunks in proptest::collection::vec(1usize..2000, 1..16),
        ) {
            let (wire, expected) = build(&msgs);
            let mut dec = Decoder::new(Role::Server, MAX);
            prop_assert_eq!(feed(&mut dec, &wire, &chunks), Ok(expected.clone()));
            prop_assert_eq!(dec.buffered(), 0);
            let mut dec = Decoder::new(Role::Server, MAX);
            prop_assert_eq!(feed(&mut dec, &wire, &[1]), Ok(expected));
        }

        #[test]
        fn arbitrary_input_never_panics(
            wire in proptest::collection::vec(any::<u8>(), 0..200),
            chunks in proptest::collection::vec(1usize..50, 1..8),
        ) {
            for role in [Role::Server, Role::Client] {
                let whole = feed(&mut Decoder::new(role, 64), &wire, &[wire.len().max(1)]);
                let split = feed(&mut Decoder::new(role, 64), &wire, &chunks);
                prop_assert_eq!(whole, split);
            }
        }
    }
}
