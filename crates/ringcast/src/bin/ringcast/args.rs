//! Hand-rolled argument parsing: a table of flags (each with an optional
//! value, an environment variable, a default and a help line), positionals,
//! `--`, and the value parsers shared by the subcommands.
//!
//! Precedence: a flag on the command line beats its environment variable,
//! which beats the default. An environment variable set to the empty string
//! counts as unset.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::Duration;

/// Why a command stops early: `main` prints `ringcast: {message}` and exits with the code.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Bad usage or a bad value: exit code 2.
    Usage(String),
    /// The command ran and failed: exit code 1.
    Failed(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
        }
    }

    /// The message, without the `ringcast: ` prefix.
    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Failed(m) => m,
        }
    }
}

/// One flag of a subcommand.
pub struct Flag {
    /// The long name, dashes included (`--max-frame`).
    pub name: &'static str,
    /// The value's placeholder in help (`BYTES`), or `None` for a switch.
    pub value: Option<&'static str>,
    /// The environment variable read when the flag is absent.
    pub env: Option<&'static str>,
    /// The default, as shown in help; empty when there is none to show.
    pub default: String,
    /// What it does, one sentence.
    pub help: &'static str,
}

/// Looks up an environment variable; `std::env::var_os` in the binary, a map in tests.
pub type EnvLookup<'e> = &'e dyn Fn(&str) -> Option<OsString>;

/// The process environment.
pub fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// A parsed command line for one subcommand.
pub struct Parsed<'a> {
    cmd: &'static str,
    flags: &'a [Flag],
    /// Indexed like `flags`: the last value given on the command line
    /// (a switch that is present holds an empty string).
    given: Vec<Option<OsString>>,
    /// Arguments that are not flags, in order.
    pub positionals: Vec<OsString>,
    /// `-h` or `--help` was given: print help and do nothing else.
    pub help: bool,
    env: EnvLookup<'a>,
}

/// Parses `args` (the words after the subcommand's name) against `flags`.
/// `-h`/`--help` anywhere before `--` wins over every other error.
pub fn parse<'a>(
    cmd: &'static str,
    flags: &'a [Flag],
    takes_positionals: bool,
    args: Vec<OsString>,
    env: EnvLookup<'a>,
) -> Result<Parsed<'a>, Failure> {
    let mut parsed = Parsed {
        cmd,
        flags,
        given: flags.iter().map(|_| None).collect(),
        positionals: Vec::new(),
        help: false,
        env,
    };
    let before_dashdash = args.iter().take_while(|a| a.as_os_str() != "--");
    if before_dashdash
        .into_iter()
        .any(|a| a == "-h" || a == "--help")
    {
        parsed.help = true;
        return Ok(parsed);
    }

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            parsed.positionals.extend(args.by_ref());
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            if !takes_positionals {
                return Err(Failure::Usage(format!(
                    "unexpected argument {:?} for `ringcast {cmd}`; see `ringcast {cmd} --help`",
                    arg.to_string_lossy()
                )));
            }
            parsed.positionals.push(arg);
            continue;
        }
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(eq) => (
                OsStr::from_bytes(&bytes[..eq]),
                Some(OsStr::from_bytes(&bytes[eq + 1..]).to_owned()),
            ),
            None => (arg.as_os_str(), None),
        };
        let Some(index) = flags.iter().position(|f| name == f.name) else {
            let hint = if takes_positionals {
                " (to pass an argument that starts with `-`, put it after `--`)"
            } else {
                ""
            };
            return Err(Failure::Usage(format!(
                "unknown flag {} for `ringcast {cmd}`; see `ringcast {cmd} --help`{hint}",
                name.to_string_lossy()
            )));
        };
        let flag = &flags[index];
        let value = match (flag.value, inline) {
            (None, None) => OsString::new(),
            (None, Some(_)) => {
                return Err(Failure::Usage(format!("{} takes no value", flag.name)));
            }
            (Some(_), Some(v)) => v,
            (Some(placeholder), None) => args.next().ok_or_else(|| {
                Failure::Usage(format!(
                    "{} needs a value ({} {placeholder}); see `ringcast {cmd} --help`",
                    flag.name, flag.name
                ))
            })?,
        };
        parsed.given[index] = Some(value);
    }
    Ok(parsed)
}

impl Parsed<'_> {
    fn index(&self, name: &str) -> usize {
        self.flags
            .iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| panic!("`ringcast {}` has no flag {name}", self.cmd))
    }

    /// The raw value of `name`, from the command line or else its
    /// environment variable, with the name to blame if it is bad.
    pub fn raw(&self, name: &str) -> Option<(&'static str, OsString)> {
        let flag = &self.flags[self.index(name)];
        if let Some(v) = &self.given[self.index(name)] {
            return Some((flag.name, v.clone()));
        }
        let var = flag.env?;
        let v = (self.env)(var)?;
        (!v.is_empty()).then_some((var, v))
    }

    /// The value of `name` parsed with `parse`, or `None` when neither the
    /// flag nor its variable is set. A bad value is a usage error naming its source.
    pub fn get<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Failure> {
        let Some((source, raw)) = self.raw(name) else {
            return Ok(None);
        };
        let text = raw.to_string_lossy();
        parse(text.trim())
            .map(Some)
            .map_err(|why| Failure::Usage(format!("{source}: {why}")))
    }

    /// A switch: present on the command line, or its variable set to a true value.
    pub fn switch(&self, name: &str) -> Result<bool, Failure> {
        let flag = &self.flags[self.index(name)];
        if self.given[self.index(name)].is_some() {
            return Ok(true);
        }
        let Some(var) = flag.env else {
            return Ok(false);
        };
        match (self.env)(var) {
            None => Ok(false),
            Some(v) => parse_bool(v.to_string_lossy().trim())
                .map_err(|why| Failure::Usage(format!("{var}: {why}"))),
        }
    }

    /// Raw bytes (for tokens, which need not be UTF-8); an empty value on the
    /// command line is an error, an empty variable counts as unset.
    pub fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, Failure> {
        match self.raw(name) {
            None => Ok(None),
            Some((source, v)) if v.is_empty() => Err(Failure::Usage(format!(
                "{source}: expected a non-empty token, got \"\""
            ))),
            Some((_, v)) => Ok(Some(v.into_vec())),
        }
    }
}

/// Renders the flag table for a command's help.
pub fn render_flags(flags: &[Flag]) -> String {
    let mut out = String::new();
    for flag in flags {
        let _ = match flag.value {
            Some(v) => writeln!(out, "  {} {v}", flag.name),
            None => writeln!(out, "  {}", flag.name),
        };
        let _ = writeln!(out, "      {}", flag.help);
        let mut notes = Vec::new();
        if let Some(env) = flag.env {
            notes.push(format!("[env: {env}]"));
        }
        if !flag.default.is_empty() {
            notes.push(format!("[default: {}]", flag.default));
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "      {}", notes.join(" "));
        }
    }
    out.push_str("  -h, --help\n      Print this help.\n");
    out
}

/// Parses a byte size: digits with an optional suffix K/KiB, M/MiB, G/GiB
/// (powers of 1024, any case) or B. `_` may separate digits.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let expected = || format!("expected a byte size like 1MiB, got {s:?}");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let number = parse_digits(digits).ok_or_else(expected)?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(expected()),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A byte size that must fit in a `u32` (frame sizes).
pub fn parse_byte_size_u32(s: &str) -> Result<u32, String> {
    let n = parse_byte_size(s)?;
    u32::try_from(n).map_err(|_| format!("{s:?} is too large (at most 4GiB minus 1 byte)"))
}

/// A byte size as a `usize`.
pub fn parse_byte_size_usize(s: &str) -> Result<usize, String> {
    let n = parse_byte_size(s)?;
    usize::try_from(n).map_err(|_| format!("{s:?} is too large for this machine"))
}

/// A non-negative whole number; `_` may separate digits (`100_000`).
pub fn parse_count(s: &str) -> Result<u64, String> {
    parse_digits(s).ok_or_else(|| format!("expected a whole number like 100, got {s:?}"))
}

/// A count as a `usize`.
pub fn parse_count_usize(s: &str) -> Result<usize, String> {
    let n = parse_count(s)?;
    usize::try_from(n).map_err(|_| format!("{s:?} is too large for this machine"))
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.starts_with(|c: char| c.is_ascii_digit()) {
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
/// The empty string is the empty list.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let expected = || format!("expected a CPU list like 0,1 or 0-3,8, got {s:?}");
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let cpu = |t: &str| -> Result<usize, String> {
            parse_digits(t.trim())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(expected)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if a > b {
                    return Err(expected());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(cpu(part)?),
        }
    }
    Ok(cpus)
}

/// Seconds as a decimal (`5`, `0.5`), optionally suffixed `s` or `ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || format!("expected seconds like 5 or 0.5, got {s:?}");
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| expected())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| expected())
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, any case.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("expected 1 or 0, got {s:?}")),
    }
}

/// An address to listen on or connect to: `IP:PORT`, `HOST:PORT`, or a bare
/// `PORT` meaning 127.0.0.1:PORT. Host names are resolved; the first address wins.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let expected = || format!("expected an address like 127.0.0.1:7400, got {s:?}");
    if let Some(port) = parse_digits(s).and_then(|p| u16::try_from(p).ok()) {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !s.contains(':') {
        return Err(expected());
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(expected),
        Err(e) => Err(format!("cannot resolve {s:?}: {e}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn flags() -> Vec<Flag> {
        vec![
            Flag {
                name: "--size",
                value: Some("BYTES"),
                env: Some("T_SIZE"),
                default: "1MiB".into(),
                help: "A size.",
            },
            Flag {
                name: "--fast",
                value: None,
                env: Some("T_FAST"),
                default: String::new(),
                help: "A switch.",
            },
        ]
    }

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_byte_size("8m"), Ok(8 << 20));
        assert_eq!(parse_byte_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_byte_size("1G"), Ok(1 << 30));
        assert_eq!(parse_byte_size("1_000"), Ok(1000));
        assert_eq!(parse_byte_size("12B"), Ok(12));
        assert_eq!(
            parse_byte_size("x"),
            Err("expected a byte size like 1MiB, got \"x\"".into())
        );
        assert!(parse_byte_size("1MB").is_err());
        assert!(parse_byte_size("-1").is_err());
        assert!(parse_byte_size("1.5M").is_err());
        assert!(parse_byte_size_u32("4GiB").is_err());
        assert_eq!(format_bytes(8 << 20), "8MiB");
        assert_eq!(format_bytes(1000), "1000B");
    }

    #[test]
    fn other_values() {
        assert_eq!(parse_cpus("0,2,4-6"), Ok(vec![0, 2, 4, 5, 6]));
        assert_eq!(parse_cpus(""), Ok(vec![]));
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("a").is_err());
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_count("100_000"), Ok(100_000));
        assert!(parse_count("").is_err());
        assert_eq!(
            parse_addr("7401"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 7401)))
        );
        assert_eq!(
            parse_addr("0.0.0.0:1"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 1)))
        );
        assert!(parse_addr("nonsense").is_err());
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let env: HashMap<&str, &str> = [("T_SIZE", "2MiB"), ("T_FAST", "1")].into();
        let lookup = |k: &str| env.get(k).map(OsString::from);
        let flags = flags();

        let p = parse("t", &flags, false, args(&["--size", "4K"]), &lookup).unwrap();
        assert_eq!(p.get("--size", parse_byte_size), Ok(Some(4096)));
        let p = parse("t", &flags, false, args(&["--size=5K"]), &lookup).unwrap();
        assert_eq!(p.get("--size", parse_byte_size), Ok(Some(5 << 10)));
        let p = parse("t", &flags, false, args(&[]), &lookup).unwrap();
        assert_eq!(p.get("--size", parse_byte_size), Ok(Some(2 << 20)));
        assert_eq!(p.switch("--fast"), Ok(true));

        let none = |_: &str| None;
        let p = parse("t", &flags, false, args(&[]), &none).unwrap();
        assert_eq!(p.get("--size", parse_byte_size), Ok(None));
        assert_eq!(p.switch("--fast"), Ok(false));
    }

    #[test]
    fn errors_name_their_source() {
        let env: HashMap<&str, &str> = [("T_SIZE", "lots")].into();
        let lookup = |k: &str| env.get(k).map(OsString::from);
        let flags = flags();
        let p = parse("t", &flags, false, args(&[]), &lookup).unwrap();
        assert_eq!(
            p.get("--size", parse_byte_size),
            Err(Failure::Usage(
                "T_SIZE: expected a byte size like 1MiB, got \"lots\"".into()
            ))
        );
        let p = parse("t", &flags, false, args(&["--size", "x"]), &lookup).unwrap();
        assert_eq!(
            p.get("--size", parse_byte_size),
            Err(Failure::Usage(
                "--size: expected a byte size like 1MiB, got \"x\"".into()
            ))
        );
    }

    #[test]
    fn bad_command_lines() {
        let flags = flags();
        let none = |_: &str| None;
        let usage = |words: &[&str], positionals: bool| {
            parse("t", &flags, positionals, args(words), &none)
                .err()
                .map(|f| (f.exit_code(), f.message().to_owned()))
        };
        let (code, msg) = usage(&["--nope"], false).unwrap();
        assert_eq!(code, 2);
        assert!(msg.contains("unknown flag --nope") && msg.contains("ringcast t --help"));
        assert!(usage(&["--size"], false)
            .unwrap()
            .1
            .contains("needs a value"));
        assert!(usage(&["--fast=1"], false)
            .unwrap()
            .1
            .contains("takes no value"));
        assert!(usage(&["extra"], false)
            .unwrap()
            .1
            .contains("unexpected argument"));
        // --help wins over everything else; -- ends the flags.
        assert_eq!(usage(&["--nope", "--help"], false), None);
        let p = parse("t", &flags, true, args(&["a", "--", "--size", "-x"]), &none).unwrap();
        assert_eq!(p.positionals, args(&["a", "--size", "-x"]));
        assert!(!p.help);
    }
}
