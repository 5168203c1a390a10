//! The value parsers of the `ringcast` and `ringcast-bench` flags (clap `value_parser`s: each
//! takes the text of one flag or variable and says what it expected when the
//! text is bad), and the formatting of defaults so that help shows them in
//! the same units they are written in.
//!
//! clap reports a bad value as `invalid value 'X' for '--flag <V>': MESSAGE`,
//! so a message says what was expected, not what was given.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A byte size: digits with an optional suffix K/KiB, M/MiB, G/GiB (powers
/// of 1024, any case) or B. `_` may separate digits.
pub fn byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let expected =
        || "expected a byte size like 8MiB: digits, then B, K/KiB, M/MiB or G/GiB (powers of 1024)";
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let number = digits_u64(digits).ok_or_else(expected)?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(expected().into()),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| "too large".into())
}

/// A byte size that must fit in a `u32` (frame sizes).
pub fn byte_size_u32(s: &str) -> Result<u32, String> {
    u32::try_from(byte_size(s)?).map_err(|_| "too large (at most 4GiB minus 1 byte)".into())
}

/// A byte size as a `usize`.
pub fn byte_size_usize(s: &str) -> Result<usize, String> {
    usize::try_from(byte_size(s)?).map_err(|_| "too large for this machine".into())
}

/// A non-negative whole number; `_` may separate digits (`100_000`).
pub fn count(s: &str) -> Result<u64, String> {
    digits_u64(s.trim()).ok_or_else(|| "expected a whole number like 100".into())
}

/// A count as a `usize`.
pub fn count_usize(s: &str) -> Result<usize, String> {
    usize::try_from(count(s)?).map_err(|_| "too large for this machine".into())
}

/// A count of at least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match count_usize(s)? {
        0 => Err("expected a number of at least 1".into()),
        n => Ok(n),
    }
}

fn digits_u64(s: &str) -> Option<u64> {
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = 0;
    for c in s.chars() {
        match c {
            '_' => continue,
            '0'..='9' => n = n.checked_mul(10)?.checked_add(u64::from(c as u8 - b'0'))?,
            _ => return None,
        }
    }
    Some(n)
}

/// A CPU list: numbers and inclusive ranges separated by commas (`0,2,4-7`).
/// `none` (the default shown in help) and the empty string are the empty list.
pub fn cpus(s: &str) -> Result<Vec<usize>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let expected = || "expected a CPU list like 0,1 or 0-3,8, or none".to_string();
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let cpu = |t: &str| -> Result<usize, String> {
            digits_u64(t.trim())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(expected)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if a > b {
                    return Err(format!("the range {part} runs backwards; write {b}-{a}"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(cpu(part)?),
        }
    }
    Ok(cpus)
}

/// Seconds as a decimal (`5`, `0.5`), optionally suffixed `s` or `ms`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let expected = || "expected seconds like 5, 2.5, 10s or 500ms".to_string();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| expected())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| expected())
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, any case (for switches
/// set by a variable; `--busy-poll` itself stands for `true`).
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected 1 or 0 (or true/false, yes/no, on/off)".into()),
    }
}

/// An address to listen on or connect to: `IP:PORT`, `HOST:PORT`, or a bare
/// `PORT` meaning 127.0.0.1:PORT. Host names are resolved; the first address wins.
pub fn addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let expected = || "expected an address like 127.0.0.1:7400, HOST:PORT, or a bare PORT";
    if let Some(port) = digits_u64(s).and_then(|p| u16::try_from(p).ok()) {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !s.contains(':') {
        return Err(expected().into());
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{s} resolves to no address")),
        Err(e) => Err(format!("cannot resolve it: {e}")),
    }
}

/// `off` (no listener) or an address, as [`addr`].
pub fn addr_or_off(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    addr(s).map(Some).map_err(|why| format!("{why}, or off"))
}

/// A comma-separated list of origins, each `scheme://host[:port]`; `any`
/// (the default shown in help) is the empty list, which allows every origin.
pub fn origins(s: &str) -> Result<Vec<String>, String> {
    if s.trim().eq_ignore_ascii_case("any") {
        return Ok(Vec::new());
    }
    let list: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    for o in &list {
        let ok = (o.starts_with("http://") || o.starts_with("https://"))
            && !o.ends_with('/')
            && !o.contains(char::is_whitespace);
        if !ok {
            return Err(format!(
                "expected origins like https://app.example.com (scheme and host, no path or \
                 trailing slash), or any; {o:?} is not one"
            ));
        }
    }
    if list.is_empty() {
        return Err("expected at least one origin, or any".into());
    }
    Ok(list)
}

/// A byte count as help shows it: `8MiB` for exact multiples, else bytes.
pub fn format_bytes(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n != 0 && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

/// A duration as help shows it: `5s`, `0.5s`.
pub fn format_duration(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("8MiB"), Ok(8 << 20));
        assert_eq!(byte_size("8m"), Ok(8 << 20));
        assert_eq!(byte_size("64 KiB"), Ok(64 << 10));
        assert_eq!(byte_size("1G"), Ok(1 << 30));
        assert_eq!(byte_size("1_000"), Ok(1000));
        assert_eq!(byte_size("12B"), Ok(12));
        assert!(byte_size("x")
            .unwrap_err()
            .starts_with("expected a byte size like 8MiB"));
        assert!(byte_size("").is_err());
        assert!(byte_size("1MB").is_err());
        assert!(byte_size("-1").is_err());
        assert!(byte_size("1.5M").is_err());
        assert!(byte_size("99999999999G").is_err());
        assert!(byte_size_u32("4GiB").is_err());
        assert_eq!(byte_size_u32("4095MiB"), Ok(4095 << 20));
        assert_eq!(format_bytes(8 << 20), "8MiB");
        assert_eq!(format_bytes(1000), "1000B");
        for n in [1 << 20, 8 << 20, 64 << 20, 256 << 20, 1000, 3 << 10] {
            assert_eq!(byte_size(&format_bytes(n)), Ok(n), "round trip of {n}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
        assert!(duration("").is_err());
        for d in [Duration::from_secs(5), Duration::from_millis(500)] {
            assert_eq!(duration(&format_duration(d)), Ok(d), "round trip of {d:?}");
        }
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpus("0,2,4-6"), Ok(vec![0, 2, 4, 5, 6]));
        assert_eq!(cpus(""), Ok(vec![]));
        assert_eq!(cpus("none"), Ok(vec![]));
        assert!(cpus("3-1").unwrap_err().contains("write 1-3"));
        assert!(cpus("a").is_err());
    }

    #[test]
    fn other_values() {
        assert_eq!(count("100_000"), Ok(100_000));
        assert!(count("").is_err());
        assert!(count("-3").is_err());
        assert_eq!(positive("1"), Ok(1));
        assert!(positive("0").is_err());
        assert_eq!(boolean("ON"), Ok(true));
        assert_eq!(boolean("0"), Ok(false));
        assert!(boolean("maybe").is_err());
        assert_eq!(addr("7401"), Ok(SocketAddr::from(([127, 0, 0, 1], 7401))));
        assert_eq!(addr("0.0.0.0:1"), Ok(SocketAddr::from(([0, 0, 0, 0], 1))));
        assert!(addr("nonsense").is_err());
        assert_eq!(addr_or_off("OFF"), Ok(None));
        assert!(addr_or_off("nowhere").unwrap_err().ends_with("or off"));
        assert_eq!(origins("any"), Ok(vec![]));
        assert_eq!(
            origins("https://a.example, http://b.example:8080"),
            Ok(vec![
                "https://a.example".to_string(),
                "http://b.example:8080".to_string()
            ])
        );
        for bad in [
            "example.com",
            "https://a.example/",
            "https://a.example/path x",
            "",
        ] {
            assert!(origins(bad).is_err(), "accepted origins {bad:?}");
        }
    }
}
