//! Request encoding, the client side: a command as clients send it.

use super::Reply;

/// Appends the command `args` (its name first) to `out` as clients send
/// it: an array of bulk strings, `*<n>\r\n` then n × `$<len>\r\n<arg>\r\n`,
/// which [`super::parse`] reads back as the same arguments. Arguments are
/// binary-safe.
pub fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    Reply::Array(args.len()).encode(out);
    for arg in args {
        Reply::Bulk(arg).encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulks() {
        let mut out = Vec::new();
        encode_command(&[b"PUBLISH", b"a.b", b"x\r\ny"], &mut out);
        encode_command(&[b"PING"], &mut out);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$3\r\na.b\r\n$4\r\nx\r\ny\r\n*1\r\n$4\r\nPING\r\n"
        );
    }
}
