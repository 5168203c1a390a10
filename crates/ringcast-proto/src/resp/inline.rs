//! Redis's `sdssplitargs`: an inline request's line split into arguments.
//!
//! The line is what precedes the request's `\n` (and its `\r`, if any); it
//! holds no NUL byte (the parser's line search stops at one), so the end of
//! the slice plays the part of C's terminating NUL: [`at`] reads 0 past it.

/// Blanks that separate arguments: C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// The byte at `i`, or 0 (C's terminator) past the end.
fn at(line: &[u8], i: usize) -> u8 {
    line.get(i).copied().unwrap_or(0)
}

/// An unclosed quote, or a closing quote followed by a non-blank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unbalanced;

/// One argument found by [`next_token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// Where the argument's raw text starts (at its first byte, which is not a blank).
    pub start: usize,
    /// `Some(range)` when the argument is `line[range]` itself (no escapes,
    /// and either no quotes or quotes around all of it); `None` when it must
    /// be built by [`unescape`].
    pub plain: Option<(usize, usize)>,
}

/// Skips blanks from `p` and scans the argument there, if any: returns it
/// and the position after it, `None` at the end of the line.
pub(crate) fn next_token(line: &[u8], mut p: usize) -> Result<Option<(Token, usize)>, Unbalanced> {
    while at(line, p) != 0 && is_space(at(line, p)) {
        p += 1;
    }
    if at(line, p) == 0 {
        return Ok(None);
    }
    let start = p;
    let (end, plain) = scan(line, p, None)?;
    Ok(Some((Token { start, plain }, end)))
}

/// Builds the argument that starts at `start` (a [`Token::start`] of a line
/// [`next_token`] accepted) into `out`.
pub(crate) fn unescape(line: &[u8], start: usize, out: &mut Vec<u8>) {
    // The line was scanned already, so this cannot fail.
    let _ = scan(line, start, Some(out));
}

/// The counts of arguments of a line, or [`Unbalanced`].
pub(crate) fn count(line: &[u8]) -> Result<usize, Unbalanced> {
    let mut n = 0;
    let mut p = 0;
    while let Some((_, next)) = next_token(line, p)? {
        n += 1;
        p = next;
    }
    Ok(n)
}

/// Scans one argument starting at `p` (not a blank, not the end), as
/// `sdssplitargs`'s inner loop does, appending its bytes to `out` if given.
/// Returns the position after it and its plain range, if it has one.
fn scan(
    line: &[u8],
    mut p: usize,
    mut out: Option<&mut Vec<u8>>,
) -> Result<(usize, Option<(usize, usize)>), Unbalanced> {
    let start = p;
    let mut push = |b: u8| {
        if let Some(out) = out.as_deref_mut() {
            out.push(b);
        }
    };
    // Where the opening quote was, and whether the quoted text needed decoding.
    let mut in_double = false;
    let mut in_single = false;
    let mut quote_at = None;
    let mut escaped = false;
    let plain_end;
    loop {
        let c = at(line, p);
        if in_double {
            if c == b'\\'
                && at(line, p + 1) == b'x'
                && is_hex(at(line, p + 2))
                && is_hex(at(line, p + 3))
            {
                push(hex_value(at(line, p + 2)) * 16 + hex_value(at(line, p + 3)));
                escaped = true;
                p += 3;
            } else if c == b'\\' && at(line, p + 1) != 0 {
                p += 1;
                push(match at(line, p) {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                escaped = true;
            } else if c == b'"' {
                let next = at(line, p + 1);
                if next != 0 && !is_space(next) {
                    return Err(Unbalanced);
                }
                plain_end = p;
                p += 1;
                break;
            } else if c == 0 {
                return Err(Unbalanced);
            } else {
                push(c);
            }
        } else if in_single {
            if c == b'\\' && at(line, p + 1) == b'\'' {
                p += 1;
                push(b'\'');
                escaped = true;
            } else if c == b'\'' {
                let next = at(line, p + 1);
                if next != 0 && !is_space(next) {
                    return Err(Unbalanced);
                }
                plain_end = p;
                p += 1;
                break;
            } else if c == 0 {
                return Err(Unbalanced);
            } else {
                push(c);
            }
        } else {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                    plain_end = p;
                    if c != 0 {
                        p += 1;
                    }
                    break;
                }
                b'"' => {
                    in_double = true;
                    quote_at = Some(p);
                }
                b'\'' => {
                    in_single = true;
                    quote_at = Some(p);
                }
                _ => push(c),
            }
        }
        if at(line, p) != 0 {
            p += 1;
        }
    }
    let plain = match quote_at {
        None => Some((start, plain_end)),
        Some(q) if q == start && !escaped => Some((q + 1, plain_end)),
        Some(_) => None,
    };
    Ok((p, plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arguments of `line`, built the slow way.
    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, Unbalanced> {
        let mut v = Vec::new();
        let mut p = 0;
        while let Some((tok, next)) = next_token(line, p)? {
            let mut built = Vec::new();
            unescape(line, tok.start, &mut built);
            if let Some((a, b)) = tok.plain {
                assert_eq!(&line[a..b], &built[..], "plain range disagrees");
            }
            v.push(built);
            p = next;
        }
        assert_eq!(count(line), Ok(v.len()));
        Ok(v)
    }

    fn ok(line: &[u8]) -> Vec<Vec<u8>> {
        split(line).expect("balanced")
    }

    #[test]
    fn blanks_separate() {
        assert_eq!(
            ok(b"  set  a\tb  "),
            vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(ok(b""), Vec::<Vec<u8>>::new());
        assert_eq!(ok(b" \t\x0b\x0c "), Vec::<Vec<u8>>::new());
        // \r inside a line separates; \v and \f are skipped before an
        // argument but belong to it after its start (as in sdssplitargs).
        assert_eq!(ok(b"a\rb"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(ok(b"\x0ba\x0bb"), vec![b"a\x0bb".to_vec()]);
        assert_eq!(ok(b"\xff\xfe x"), vec![b"\xff\xfe".to_vec(), b"x".to_vec()]);
    }

    #[test]
    fn double_quotes() {
        assert_eq!(ok(br#""a b" c"#), vec![b"a b".to_vec(), b"c".to_vec()]);
        assert_eq!(ok(br#""""#), vec![Vec::new()]);
        assert_eq!(
            ok(br#""\x41\x4a\xff\x00\n\r\t\b\a\\\"\q\xZ""#),
            vec![b"AJ\xff\x00\n\r\t\x08\x07\\\"qxZ".to_vec()]
        );
        assert_eq!(ok(br#"ab"cd""#), vec![b"abcd".to_vec()]);
        assert_eq!(ok(br#""x"	y"#), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(ok(b"\"x\"\x0by"), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(split(br#""abc"d"#), Err(Unbalanced));
        assert_eq!(split(br#""abc"#), Err(Unbalanced));
        assert_eq!(split(br#""abc\"#), Err(Unbalanced));
        assert_eq!(split(br#"a"b"c"#), Err(Unbalanced));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(ok(br"'a\'b' c"), vec![b"a'b".to_vec(), b"c".to_vec()]);
        // Only \' is an escape: other backslashes are themselves.
        assert_eq!(ok(br"'a\nb\\x'"), vec![b"a\\nb\\\\x".to_vec()]);
        assert_eq!(split(br"'a\\'"), Err(Unbalanced));
        assert_eq!(ok(br#"'say "hi"'"#), vec![b"say \"hi\"".to_vec()]);
        assert_eq!(split(b"'abc"), Err(Unbalanced));
        assert_eq!(split(b"'a'b"), Err(Unbalanced));
    }

    #[test]
    fn plain_ranges_borrow() {
        let line = br#"set "quoted" 'single' mixed"x" "esc\n""#;
        let mut p = 0;
        let mut plains = Vec::new();
        while let Some((tok, next)) = next_token(line, p).unwrap() {
            plains.push(tok.plain.map(|(a, b)| &line[a..b]));
            p = next;
        }
        assert_eq!(
            plains,
            vec![
                Some(&b"set"[..]),
                Some(b"quoted"),
                Some(b"single"),
                None,
                None
            ]
        );
    }
}
