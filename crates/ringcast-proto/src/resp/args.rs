//! A parsed command's arguments: a view of the request's bytes, walked lazily.

use std::borrow::Cow;
use std::fmt;

use super::inline;

/// The arguments of a parsed command (one or more), borrowed from the parse
/// buffer. Nothing is stored per argument: iterating walks the request's
/// bytes again, which the parser has already checked.
///
/// A multibulk argument is always a borrowed slice. An inline argument is
/// borrowed too unless it holds an escape or is quoted only in part
/// (`ab"cd"`): then iterating builds an owned copy of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    repr: Repr<'a>,
    len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repr<'a> {
    /// `len` × `$<n>\r\n<n bytes>XX` (Redis checks neither the byte after
    /// each `\r` of a header nor the two bytes after a body).
    Multibulk(&'a [u8]),
    /// The request's line, without its `\n` or `\r\n`.
    Inline(&'a [u8]),
}

impl<'a> Args<'a> {
    pub(crate) fn multibulk(bulks: &'a [u8], len: usize) -> Args<'a> {
        Args {
            repr: Repr::Multibulk(bulks),
            len,
        }
    }

    pub(crate) fn inline(line: &'a [u8], len: usize) -> Args<'a> {
        Args {
            repr: Repr::Inline(line),
            len,
        }
    }

    /// Number of arguments, the command's name included (at least 1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false for a parsed command; here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the command came as an inline line rather than as a multibulk.
    pub fn is_inline(&self) -> bool {
        matches!(self.repr, Repr::Inline(_))
    }

    /// The arguments in order.
    pub fn iter(&self) -> ArgsIter<'a> {
        ArgsIter {
            repr: self.repr,
            at: 0,
            left: self.len,
        }
    }

    /// The command's name: the first argument, as sent (compare it with
    /// `eq_ignore_ascii_case`).
    pub fn name(&self) -> Cow<'a, [u8]> {
        self.iter().next().unwrap_or(Cow::Borrowed(&[]))
    }

    /// Argument `i` (0 is the name), walking to it; `None` past the end.
    pub fn get(&self, i: usize) -> Option<Cow<'a, [u8]>> {
        self.iter().nth(i)
    }
}

impl<'a> IntoIterator for Args<'a> {
    type Item = Cow<'a, [u8]>;
    type IntoIter = ArgsIter<'a>;

    fn into_iter(self) -> ArgsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Args<'a> {
    type Item = Cow<'a, [u8]>;
    type IntoIter = ArgsIter<'a>;

    fn into_iter(self) -> ArgsIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for arg in self.iter() {
            list.entry(&format_args!("\"{}\"", arg.escape_ascii()));
        }
        list.finish()
    }
}

/// Iterator over [`Args`]: `Cow::Borrowed` slices of the parse buffer, or
/// an owned copy for an inline argument with escapes.
#[derive(Clone, Debug)]
pub struct ArgsIter<'a> {
    repr: Repr<'a>,
    /// Offset of the next argument's header (multibulk) or of the search for it (inline).
    at: usize,
    left: usize,
}

impl<'a> ArgsIter<'a> {
    /// The next bulk of a checked multibulk: `$<digits>\r?<body>??`.
    /// Defensive: on bytes the parser did not check, it ends the iteration.
    fn next_bulk(&mut self, bulks: &'a [u8]) -> Option<&'a [u8]> {
        let header = bulks.get(self.at..)?;
        let mut i = 1;
        let mut len: usize = 0;
        while let Some(&b) = header.get(i) {
            if !b.is_ascii_digit() {
                break;
            }
            len = len.checked_mul(10)?.checked_add(usize::from(b - b'0'))?;
            i += 1;
        }
        let start = i.checked_add(2)?;
        let end = start.checked_add(len)?;
        let body = header.get(start..end)?;
        self.at = self.at.checked_add(end)?.checked_add(2)?;
        Some(body)
    }

    fn next_inline(&mut self, line: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        let (tok, next) = inline::next_token(line, self.at).ok()??;
        self.at = next;
        Some(match tok.plain {
            Some((a, b)) => Cow::Borrowed(line.get(a..b)?),
            None => {
                let mut owned = Vec::new();
                inline::unescape(line, tok.start, &mut owned);
                Cow::Owned(owned)
            }
        })
    }
}

impl<'a> Iterator for ArgsIter<'a> {
    type Item = Cow<'a, [u8]>;

    fn next(&mut self) -> Option<Cow<'a, [u8]>> {
        if self.left == 0 {
            return None;
        }
        let arg = match self.repr {
            Repr::Multibulk(bulks) => self.next_bulk(bulks).map(Cow::Borrowed),
            Repr::Inline(line) => self.next_inline(line),
        };
        match arg {
            Some(_) => self.left -= 1,
            None => self.left = 0,
        }
        arg
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ArgsIter<'_> {}

impl std::iter::FusedIterator for ArgsIter<'_> {}
