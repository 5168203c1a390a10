//! Views of an encoded DATA frame: the one place that knows where its fields
//! sit, for code that reads or patches a frame in place (the engine stamps
//! `seq` after encoding, clients and benches read frames without decoding).

use std::ops::Range;

use super::{Kind, DATA_HEADER_LEN, HEADER_LEN, LEN_PREFIX};

/// `kind`, counted from the frame's first byte (its `len` field).
const KIND: usize = 4;
/// `topic_len`, a little-endian u16.
const TOPIC_LEN: Range<usize> = 6..8;
/// `seq`, a little-endian u64.
const SEQ: Range<usize> = 8..16;
/// `ts_ns`, a little-endian u64.
const TS_NS: Range<usize> = 16..DATA_HEADER_LEN;

/// The fixed fields of a DATA frame, as they follow its 8-byte header.
pub(crate) fn data_fixed(seq: u64, ts_ns: u64) -> [u8; DATA_HEADER_LEN - HEADER_LEN] {
    let mut fixed = [0u8; DATA_HEADER_LEN - HEADER_LEN];
    fixed[SEQ.start - HEADER_LEN..SEQ.end - HEADER_LEN].copy_from_slice(&seq.to_le_bytes());
    fixed[TS_NS.start - HEADER_LEN..TS_NS.end - HEADER_LEN].copy_from_slice(&ts_ns.to_le_bytes());
    fixed
}

/// When `frame` starts with a DATA frame's whole header and topic, under a
/// `len` that covers them: how many bytes of `frame` belong to that frame (all
/// of them when it is cut short), and where its topic ends.
fn data_extent(frame: &[u8]) -> Option<(usize, usize)> {
    let header = frame.get(..DATA_HEADER_LEN)?;
    if header[KIND] != Kind::Data as u8 {
        return None;
    }
    let topic_len = u16::from_le_bytes(header[TOPIC_LEN].try_into().expect("2 bytes"));
    let topic_end = DATA_HEADER_LEN + usize::from(topic_len);
    let len = u32::from_le_bytes(header[..LEN_PREFIX].try_into().expect("4 bytes"));
    let frame_len = usize::try_from(len).ok()?.checked_add(LEN_PREFIX)?;
    if frame.len() < topic_end || frame_len < topic_end {
        return None;
    }
    Some((frame_len.min(frame.len()), topic_end))
}

fn u64_at(frame: &[u8], at: Range<usize>) -> u64 {
    u64::from_le_bytes(frame[at].try_into().expect("an 8-byte field"))
}

/// A DATA frame as encoded (starting at its `len` field): reads its fields without decoding it.
///
/// Nothing but the kind, the lengths and the presence of the header and topic
/// is checked: the topic is not validated and flags are not looked at (use
/// [`super::decode_server`] for that).
#[derive(Clone, Copy, Debug)]
pub struct DataView<'a> {
    /// The frame's bytes present, at most `4 + len`; at least through the topic.
    frame: &'a [u8],
    topic_end: usize,
}

impl<'a> DataView<'a> {
    /// None unless `frame` starts with a whole DATA header (kind DATA, at least
    /// [`DATA_HEADER_LEN`] + `topic_len` bytes, and a `len` that covers them).
    /// Bytes past the frame's end (`4 + len`) may follow; they are not part of it.
    pub fn new(frame: &'a [u8]) -> Option<DataView<'a>> {
        let (frame_len, topic_end) = data_extent(frame)?;
        Some(DataView {
            frame: &frame[..frame_len],
            topic_end,
        })
    }

    /// The topic's sequence number of this frame.
    pub fn seq(&self) -> u64 {
        u64_at(self.frame, SEQ)
    }

    /// CLOCK_REALTIME nanoseconds at which the engine accepted the PUBLISH.
    pub fn ts_ns(&self) -> u64 {
        u64_at(self.frame, TS_NS)
    }

    /// The topic's bytes, as sent (not validated).
    pub fn topic(&self) -> &'a [u8] {
        &self.frame[DATA_HEADER_LEN..self.topic_end]
    }

    /// The payload bytes present in `frame` (all of them for a whole frame).
    pub fn payload(&self) -> &'a [u8] {
        &self.frame[self.topic_end..]
    }
}

/// Writes a DATA frame's patchable fields in place.
#[derive(Debug)]
pub struct DataViewMut<'a> {
    frame: &'a mut [u8],
}

impl<'a> DataViewMut<'a> {
    /// None unless `frame` starts with a whole DATA header, as for [`DataView::new`].
    pub fn new(frame: &'a mut [u8]) -> Option<DataViewMut<'a>> {
        data_extent(frame)?;
        Some(DataViewMut { frame })
    }

    /// Overwrites `seq`.
    pub fn set_seq(&mut self, seq: u64) {
        self.frame[SEQ].copy_from_slice(&seq.to_le_bytes());
    }

    /// Overwrites `ts_ns`.
    pub fn set_ts_ns(&mut self, ts_ns: u64) {
        self.frame[TS_NS].copy_from_slice(&ts_ns.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{data_frame_len, encode_data, ServerFrame};

    fn data(seq: u64, ts_ns: u64, topic: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; data_frame_len(topic.len(), payload.len())];
        encode_data(&mut buf, seq, ts_ns, topic, payload);
        buf
    }

    #[test]
    fn reads_what_encode_data_wrote() {
        let buf = data(7, 1_700_000_000_123_456_789, b"news/x", b"hello");
        let v = DataView::new(&buf).unwrap();
        assert_eq!(
            (v.seq(), v.ts_ns(), v.topic(), v.payload()),
            (7, 1_700_000_000_123_456_789, &b"news/x"[..], &b"hello"[..])
        );
        // An empty payload, and the extremes of both u64 fields.
        let buf = data(u64::MAX, 0, b"t", b"");
        let v = DataView::new(&buf).unwrap();
        assert_eq!(
            (v.seq(), v.ts_ns(), v.topic(), v.payload()),
            (u64::MAX, 0, &b"t"[..], &b""[..])
        );
    }

    #[test]
    fn payload_stops_at_the_frame_end_or_the_buffer_end() {
        let mut buf = data(1, 2, b"topic", b"payload");
        let whole = buf.len();
        buf.extend_from_slice(b"next frame");
        assert_eq!(DataView::new(&buf).unwrap().payload(), b"payload");
        // A frame cut short after its topic: the payload bytes present.
        assert_eq!(DataView::new(&buf[..whole - 3]).unwrap().payload(), b"payl");
        assert_eq!(
            DataView::new(&buf[..DATA_HEADER_LEN + 5])
                .unwrap()
                .payload(),
            b""
        );
    }

    #[test]
    fn patches_round_trip() {
        let mut buf = data(1, 2, b"a/b", b"xyz");
        let mut m = DataViewMut::new(&mut buf).unwrap();
        m.set_seq(0x0102_0304_0506_0708);
        m.set_ts_ns(42);
        let v = DataView::new(&buf).unwrap();
        assert_eq!(
            (v.seq(), v.ts_ns(), v.topic(), v.payload()),
            (0x0102_0304_0506_0708, 42, &b"a/b"[..], &b"xyz"[..])
        );
        assert_eq!(buf[8], 0x08, "little-endian");
    }

    #[test]
    fn refuses_other_kinds_and_short_input() {
        let buf = data(1, 2, b"topic", b"payload");
        // Every prefix that stops before the end of the topic.
        for cut in 0..DATA_HEADER_LEN + 5 {
            assert!(DataView::new(&buf[..cut]).is_none(), "prefix {cut}");
        }
        let mut other = Vec::new();
        ServerFrame::SubAck {
            next_seq: 1,
            epoch: 2,
            topic: "topic",
        }
        .encode(&mut other);
        assert_eq!(
            other.len(),
            DATA_HEADER_LEN + 5,
            "same layout as DATA but for the kind"
        );
        assert!(DataView::new(&other).is_none());
        assert!(DataViewMut::new(&mut other).is_none());
        // A `len` shorter than the header and topic it announces.
        let mut short_len = buf.clone();
        short_len[..4].copy_from_slice(&(DATA_HEADER_LEN as u32).to_le_bytes());
        assert!(DataView::new(&short_len).is_none());
        assert!(DataViewMut::new(&mut short_len).is_none());
        assert!(DataViewMut::new(&mut []).is_none());
    }
}
