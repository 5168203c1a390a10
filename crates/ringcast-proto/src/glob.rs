//! Redis's glob patterns (`PSUBSCRIBE`, `PUBSUB CHANNELS`, `KEYS`), matched
//! exactly as Redis's `stringmatchlen` (src/util.c, case-sensitive) matches
//! them, odd cases included; `tests/glob_vs_redis.rs` checks it against a real
//! `redis-server`.
//!
//! Patterns and subjects are bytes (binary safe: NUL and non-UTF-8 bytes are
//! ordinary bytes). The language:
//!
//! - `*` matches any run of bytes, `?` exactly one byte; consecutive `*` are one.
//! - `[...]` matches one byte listed in it, `[^...]` one byte not listed.
//!   Inside, `x-y` is a range and `\x` is the byte `x`; any other byte, `^`
//!   after the first and `-` where it starts no range included, stands for itself.
//! - `\x` outside a class matches the byte `x`; any other byte matches itself.
//!
//! The odd cases, as Redis has them:
//!
//! - **The empty subject matches only the empty pattern**: `*` does not match
//!   `""` (a `PSUBSCRIBE *` client gets nothing published to the channel
//!   `""`). Redis's `KEYS *` alone skips the matcher and lists every key.
//! - **A class ends at its first `]`**, so `[]` never matches, `[^]` matches
//!   any byte and `[]a]` is that empty class followed by `a]`; `[\]]` is the
//!   way to list `]`.
//! - **An unclosed class runs to the end of the pattern**: `[ab` matches `a`
//!   or `b`, `[` alone never matches, `[^` matches any byte.
//! - **A range is any byte, `-`, any byte**, the closing `]` included: `[a-]`
//!   is the range from `]` to `a` in an unclosed class, `[a-\]` the range from
//!   `\` to `a`. An escape never ends a range (`[a-\]]` is the range followed
//!   by `]`), and an escaped byte never starts one (`[\a-c]` lists `a`, `-`
//!   and `c`). A leading `-` (`[-a]`) stands for itself.
//! - **Reversed ranges are swapped**: `[z-a]` is `[a-z]`.
//! - **Ranges compare bytes as C `char`s**, which are signed on x86 and
//!   unsigned on arm64 (Linux): on x86 `[a-\xe9]` is the range from `\xe9`
//!   (-23) up to `a` (97): bytes 0x00 to 0x61 and 0xe9 to 0xff. This module
//!   compares as the target's `c_char` does, like a Redis built for it.
//! - **A trailing `\`** matches a `\`, outside a class and inside one.
//! - **At most 1000 nested `*`**: Redis matches recursively, one level per
//!   `*` (a run of them counts once), and a level past 1000 fails. So a
//!   subject that gets as far as the 1001st `*` of a pattern, with bytes left
//!   and the pattern not ending in that `*`, is not matched, whatever follows.
//!
//! The matcher is iterative: no recursion, no allocation. Like Redis's (since
//! its fix for CVE-2022-36021), it only ever backtracks to the last `*` it
//! passed, so its work is bounded by the pattern's length times the
//! subject's.

use std::ffi::c_char;

/// The deepest `*` nesting Redis follows; a deeper `*` fails the match.
pub const MAX_STAR_NESTING: usize = 1000;

/// Whether C compares `char`s as signed numbers on this target.
const CHAR_IS_SIGNED: bool = c_char::MIN != 0;

/// Whether `subject` matches the Redis glob `pattern` (case-sensitive, as
/// `PSUBSCRIBE` and `KEYS` match). See the module documentation.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let end = subject.len();
    // Where the pattern and the subject are read next.
    let (mut p, mut s) = (0, 0);
    // The last `*` passed: where the pattern resumes after it, and where in
    // the subject the bytes it swallows end in the current attempt.
    let mut resume: Option<(usize, usize)> = None;
    // How many runs of `*` have been passed (Redis's recursion depth).
    let mut stars = 0;
    loop {
        // One attempt to match the rest of the pattern from `p` against the
        // rest of the subject from `s`, up to the end or the next `*`.
        let matched = 'attempt: loop {
            if p == pattern.len() || s == end {
                break 'attempt p == pattern.len() && s == end;
            }
            match pattern[p] {
                b'*' => {
                    while at(pattern, p + 1) == b'*' {
                        p += 1;
                    }
                    if p + 1 == pattern.len() {
                        return true;
                    }
                    stars += 1;
                    if stars > MAX_STAR_NESTING {
                        return false;
                    }
                    // A later `*` decides alone: if what follows it matches
                    // at no offset, neither can it after a longer match of
                    // the earlier ones.
                    p += 1;
                    resume = Some((p, s));
                    continue 'attempt;
                }
                b'?' => {}
                b'[' => {
                    let (hit, close) = class(pattern, p, subject[s]);
                    if !hit {
                        break 'attempt false;
                    }
                    p = close;
                }
                b'\\' => {
                    if p + 1 < pattern.len() {
                        p += 1;
                    }
                    if pattern[p] != subject[s] {
                        break 'attempt false;
                    }
                }
                byte => {
                    if byte != subject[s] {
                        break 'attempt false;
                    }
                }
            }
            p += 1;
            s += 1;
            if s == end {
                // The subject is used up: only `*` may remain.
                while at(pattern, p) == b'*' {
                    p += 1;
                }
                break 'attempt p == pattern.len();
            }
        };
        if matched {
            return true;
        }
        // Let the last `*` swallow one byte more; it never swallows the
        // subject's last byte (what follows it is not a bare `*`, so it
        // needs at least one).
        match &mut resume {
            Some((after_star, swallowed_to)) if *swallowed_to + 1 < end => {
                *swallowed_to += 1;
                (p, s) = (*after_star, *swallowed_to);
            }
            _ => return false,
        }
    }
}

/// The pattern's byte at `i`, or 0 past its end (where Redis reads the NUL
/// that ends its strings; a NUL inside the pattern is told apart by position).
fn at(pattern: &[u8], i: usize) -> u8 {
    pattern.get(i).copied().unwrap_or(0)
}

/// A byte's value as a C `char` on this target.
fn char_value(byte: u8) -> i16 {
    if CHAR_IS_SIGNED {
        i16::from(byte as i8)
    } else {
        i16::from(byte)
    }
}

/// Matches `byte` against the class whose `[` is at `open`: whether it
/// matches, and the index of the class's last byte (its `]`, or the
/// pattern's last byte when it is unclosed).
fn class(pattern: &[u8], open: usize, byte: u8) -> (bool, usize) {
    let len = pattern.len();
    let mut i = open + 1;
    let negated = at(pattern, i) == b'^';
    if negated {
        i += 1;
    }
    let mut hit = false;
    loop {
        let b = at(pattern, i);
        if b == b'\\' && i + 2 <= len {
            i += 1;
            hit |= pattern[i] == byte;
        } else if b == b']' {
            break;
        } else if i == len {
            // Unclosed: the class ends with the pattern.
            i -= 1;
            break;
        } else if i + 3 <= len && pattern[i + 1] == b'-' {
            let (a, z) = (char_value(b), char_value(pattern[i + 2]));
            let (lo, hi) = if a <= z { (a, z) } else { (z, a) };
            hit |= (lo..=hi).contains(&char_value(byte));
            i += 2;
        } else {
            hit |= b == byte;
        }
        i += 1;
    }
    (hit != negated, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(pattern: &[u8], subject: &[u8]) {
        assert!(
            matches(pattern, subject),
            "{:?} should match {:?}",
            pattern.escape_ascii().to_string(),
            subject.escape_ascii().to_string()
        );
    }

    fn no(pattern: &[u8], subject: &[u8]) {
        assert!(
            !matches(pattern, subject),
            "{:?} should not match {:?}",
            pattern.escape_ascii().to_string(),
            subject.escape_ascii().to_string()
        );
    }

    #[test]
    fn literals_match_only_themselves_case_sensitively() {
        yes(b"news.sport", b"news.sport");
        no(b"news.sport", b"news.spor");
        no(b"news.spor", b"news.sport");
        no(b"News", b"news");
        no(b"[A-Z]", b"a");
        yes(b"", b"");
        no(b"", b"a");
        no(b"a", b"");
    }

    #[test]
    fn star_matches_any_run_and_consecutive_stars_are_one() {
        yes(b"news.*", b"news.sport");
        yes(b"news.*", b"news.");
        yes(b"*.sport", b"news.sport");
        yes(b"n*s*t", b"news.sport");
        no(b"n*s*t", b"news.sports");
        yes(b"a***b", b"ab");
        yes(b"a***b", b"axxb");
        yes(b"***", b"anything");
    }

    #[test]
    fn star_does_not_match_the_empty_subject() {
        no(b"*", b"");
        no(b"**", b"");
        no(b"*?", b"");
        yes(b"", b"");
        // A trailing star matches nothing once the subject is used up.
        yes(b"a*", b"a");
        yes(b"a**", b"a");
        no(b"a*b", b"a");
    }

    #[test]
    fn question_mark_is_exactly_one_byte_any_byte() {
        yes(b"?", b"\xff");
        yes(b"?", b"\0");
        no(b"?", b"");
        no(b"?", b"ab");
        // Not one UTF-8 character: `é` is two bytes.
        no(b"?", "é".as_bytes());
        yes(b"??", "é".as_bytes());
    }

    #[test]
    fn class_and_negated_class() {
        yes(b"[abc]", b"b");
        no(b"[abc]", b"d");
        no(b"[abc]", b"ab");
        yes(b"[^abc]", b"d");
        no(b"[^abc]", b"a");
        // `^` after the first byte stands for itself.
        yes(b"[a^]", b"^");
        yes(b"[^^]", b"a");
        no(b"[^^]", b"^");
    }

    #[test]
    fn empty_class_brackets_never_match_and_negated_empty_class_matches_any() {
        no(b"[]", b"]");
        no(b"[]", b"a");
        no(b"[]", b"");
        yes(b"[^]", b"a");
        yes(b"[^]", b"]");
        no(b"[^]", b"");
        // `[]a]` is the empty class then `a]`: it matches nothing.
        no(b"[]a]", b"a");
        no(b"[]a]", b"]a]");
        // The escape lists `]`.
        yes(b"[\\]]", b"]");
        yes(b"[a\\]]", b"]");
    }

    #[test]
    fn unclosed_class_runs_to_the_end_of_the_pattern() {
        yes(b"[ab", b"a");
        yes(b"[ab", b"b");
        no(b"[ab", b"c");
        no(b"[ab", b"ab");
        yes(b"x[ab", b"xb");
        no(b"[", b"[");
        no(b"[", b"a");
        yes(b"[^", b"a");
        yes(b"[^", b"[");
        no(b"[^", b"");
        no(b"[^", b"ab");
        // The class swallows what would be metacharacters outside it.
        yes(b"[a*", b"*");
        no(b"[a*", b"ab");
    }

    #[test]
    fn ranges_and_reversed_ranges_z_a() {
        yes(b"[a-c]", b"a");
        yes(b"[a-c]", b"b");
        yes(b"[a-c]", b"c");
        no(b"[a-c]", b"d");
        yes(b"[c-a]", b"b");
        yes(b"[z-a]", b"m");
        no(b"[z-a]", b"A");
        yes(b"[^z-a]", b"A");
        yes(b"[0-9a-f]", b"7");
        yes(b"[0-9a-f]", b"e");
        no(b"[0-9a-f]", b"g");
        yes(b"[a-a]", b"a");
        no(b"[a-a]", b"b");
    }

    #[test]
    fn dash_first_in_class_stands_for_itself() {
        yes(b"[-a]", b"-");
        yes(b"[-a]", b"a");
        no(b"[-a]", b"b");
        yes(b"[^-]", b"a");
        no(b"[^-]", b"-");
    }

    #[test]
    fn dash_last_in_class_makes_a_range_to_the_closing_bracket() {
        // `[a-]` is the range `]`..=`a` (`]` `^` `_` and backquote), and the
        // class is left unclosed.
        for b in [b']', b'^', b'_', b'`', b'a'] {
            yes(b"[a-]", &[b]);
        }
        no(b"[a-]", b"-");
        no(b"[a-]", b"b");
        no(b"[a-]", b"\\");
        // So what follows is still inside the class: one byte, `x` included.
        yes(b"[a-]x", b"x");
        yes(b"[a-]x", b"_");
        no(b"[a-]x", b"ax");
        // Two bytes before `-]`: the range starts at the second.
        yes(b"[ab-]", b"a");
        yes(b"[ab-]", b"_");
        no(b"[ab-]", b"-");
    }

    #[test]
    fn escape_never_ends_a_range_and_escaped_byte_never_starts_one() {
        // `[a-\]` is the range `\`..=`a`, closed by the `]`.
        yes(b"[a-\\]", b"\\");
        yes(b"[a-\\]", b"_");
        no(b"[a-\\]", b"b");
        // Then `[a-\]]` is that range followed by a literal `]`.
        yes(b"[a-\\]]", b"_]");
        no(b"[a-\\]]", b"]");
        // `[\a-c]` lists `a`, `-` and `c`.
        yes(b"[\\a-c]", b"a");
        yes(b"[\\a-c]", b"-");
        yes(b"[\\a-c]", b"c");
        no(b"[\\a-c]", b"b");
    }

    #[test]
    fn escapes_inside_a_class() {
        yes(b"[\\^]", b"^");
        no(b"[\\^]", b"a");
        yes(b"[\\-]", b"-");
        yes(b"[\\\\]", b"\\");
        yes(b"[\\*]", b"*");
        no(b"[\\*]", b"a");
        yes(b"[^\\]]", b"a");
        no(b"[^\\]]", b"]");
    }

    #[test]
    fn trailing_backslash_in_unclosed_class_stands_for_itself() {
        yes(b"[\\", b"\\");
        no(b"[\\", b"a");
        yes(b"[a\\", b"\\");
        yes(b"[a\\", b"a");
    }

    #[test]
    fn escapes_outside_a_class() {
        yes(b"\\*", b"*");
        no(b"\\*", b"a");
        yes(b"\\?", b"?");
        no(b"\\?", b"a");
        yes(b"\\[a]", b"[a]");
        no(b"\\[a]", b"a");
        yes(b"\\\\", b"\\");
        // An escaped ordinary byte is that byte.
        yes(b"\\a", b"a");
        yes(b"news\\.*", b"news.x");
    }

    #[test]
    fn trailing_backslash_matches_a_backslash() {
        yes(b"\\", b"\\");
        yes(b"a\\", b"a\\");
        no(b"a\\", b"a");
        yes(b"*\\", b"xyz\\");
        no(b"*\\", b"xyz");
    }

    #[test]
    fn binary_subjects_and_patterns_with_nul_and_high_bytes() {
        yes(b"a\0b", b"a\0b");
        no(b"a\0b", b"a");
        yes(b"*\0", b"xyz\0");
        yes(b"[\0]", b"\0");
        no(b"[\0]", b"0");
        yes(b"\xff*", b"\xff\xfe");
        yes("caf[eé]".as_bytes(), b"caf\xc3");
        no(b"caf?", "café".as_bytes());
        yes(b"caf??", "café".as_bytes());
        // A NUL in a class is a byte listed, not the end of the pattern.
        yes(b"[\0]x", b"\0x");
        no(b"[^\0]", b"\0");
    }

    #[test]
    fn ranges_over_high_bytes_compare_as_c_chars() {
        // `[a-\xe9]`: with signed chars \xe9 is -23, below `a`.
        if CHAR_IS_SIGNED {
            yes(b"[a-\xe9]", b"\0");
            yes(b"[a-\xe9]", b"a");
            yes(b"[a-\xe9]", b"\xe9");
            yes(b"[a-\xe9]", b"\xff");
            no(b"[a-\xe9]", b"b");
            no(b"[a-\xe9]", b"\x80");
            no(b"[a-\xe9]", b"\xe8");
            // And \x80..\xff in order, below every ASCII byte.
            yes(b"[\x80-\xff]", b"\xc3");
            yes(b"[\xff-\x01]", b"\0");
            no(b"[\xff-\x01]", b"\xfe");
        } else {
            no(b"[a-\xe9]", b"\0");
            yes(b"[a-\xe9]", b"b");
            yes(b"[a-\xe9]", b"\x80");
            no(b"[a-\xe9]", b"\xff");
            yes(b"[\xff-\x01]", b"\xfe");
        }
    }

    /// `a*` repeated `n` times, then `tail`.
    fn a_stars(n: usize, tail: &[u8]) -> Vec<u8> {
        let mut p = b"a*".repeat(n);
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn nesting_limit_1000_stars_match_1001_do_not() {
        let subject = [b"a".repeat(1001), b"b".to_vec()].concat();
        yes(&a_stars(999, b"b"), &subject);
        yes(&a_stars(MAX_STAR_NESTING, b"b"), &subject);
        no(&a_stars(MAX_STAR_NESTING + 1, b"b"), &subject);
        no(&a_stars(MAX_STAR_NESTING + 1, b"?"), &subject);
        // A run of stars counts once.
        let mut runs = b"a**".repeat(MAX_STAR_NESTING);
        runs.push(b'b');
        yes(&runs, &subject);
    }

    #[test]
    fn nesting_limit_spares_a_final_star_and_stars_after_the_subject_ends() {
        let subject = b"a".repeat(1002);
        // The 1001st star ends the pattern: it matches without nesting.
        yes(&a_stars(MAX_STAR_NESTING + 1, b""), &subject);
        // Stars reached once the subject is used up are skipped, not nested.
        let exact = b"a".repeat(MAX_STAR_NESTING + 1);
        yes(&a_stars(MAX_STAR_NESTING + 1, b""), &exact);
        let mut trailing = a_stars(MAX_STAR_NESTING + 1, b"");
        trailing.extend_from_slice(b"**");
        yes(&trailing, &exact);
    }

    #[test]
    fn exponential_patterns_finish_quickly() {
        // Redis's regression tests for CVE-2022-36021 and CVE-2024-31228.
        let subject = b"a".repeat(50);
        no(&[b"a*".repeat(20), b"b".to_vec()].concat(), &subject);
        let long = b"a".repeat(50_000);
        no(&b"*?".repeat(50_000), &long);
        // Few stars, a long subject: linear attempts per star.
        no(&[b"*a*a*a*a*a*a*a*a*a*a".as_slice(), b"b"].concat(), &long);
        yes(&[b"*a*a*a*a*a*a*a*a*a*a".as_slice(), b"*"].concat(), &long);
        let mut almost = b"a".repeat(20_000);
        no(
            &[b"*".as_slice(), &b"a".repeat(500), b"b"].concat(),
            &almost,
        );
        almost.push(b'b');
        yes(
            &[b"*".as_slice(), &b"a".repeat(500), b"b"].concat(),
            &almost,
        );
    }

    #[test]
    fn later_star_decides_alone() {
        // The classic backtracking cases still match.
        yes(b"*ab*cd", b"xxabyyabzzcd");
        yes(b"a*b?c", b"abbbxc");
        yes(b"*a", b"aaa");
        no(b"*a", b"aab");
        yes(b"*.*.*", b"a.b.c.d");
        no(b"*.*.*", b"a.b");
        yes(b"h?llo*[lw]d", b"hello world");
    }
}
