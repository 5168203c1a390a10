//! Topic validation.

use super::{ProtoError, MAX_TOPIC_LEN};

/// Checks a topic per PROTOCOL.md (1 to 255 bytes of UTF-8, no ASCII control
/// characters 0x00-0x1F or 0x7F, no spaces); returns it as `&str`.
pub fn validate_topic(topic: &[u8]) -> Result<&str, ProtoError> {
    if topic.is_empty() {
        return Err(ProtoError::bad_topic("topic is empty"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(ProtoError::bad_topic("topic is longer than 255 bytes"));
    }
    if topic.iter().any(|&b| b <= b' ' || b == 0x7F) {
        return Err(ProtoError::bad_topic(
            "topic holds a space or an ASCII control character",
        ));
    }
    std::str::from_utf8(topic).map_err(|_| ProtoError::bad_topic("topic is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::ErrorCode;

    #[test]
    fn boundaries() {
        assert_eq!(validate_topic(b"a"), Ok("a"));
        assert_eq!(validate_topic(&[b'x'; 255]).map(str::len), Ok(255));
        for bad in [&b""[..], &[b'x'; 256], b"a b", b"\x7f", b"\x1f", b"\xff"] {
            assert_eq!(validate_topic(bad).unwrap_err().code, ErrorCode::BadTopic);
        }
        // '!' (0x21) and '~' (0x7E) are the ASCII bounds that are allowed.
        assert_eq!(validate_topic(b"!~"), Ok("!~"));
    }
}
