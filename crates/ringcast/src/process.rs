#![forbid(unsafe_code)]
//! The `process_*` metrics, as Prometheus client libraries export them on
//! Linux (same names, types and units), read from /proc when /metrics is
//! asked for: CPU seconds, resident and virtual memory, open and maximum
//! file descriptors, start time. A scrape costs a few small reads and a
//! listing of /proc/self/fd (one entry per open connection).

use crate::sys;

/// One reading of the process's figures; a figure /proc could not give is
/// `None` and its family is left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads this process's figures.
    pub fn read() -> ProcessStats {
        let ticks = sys::sysconf(libc::_SC_CLK_TCK, 100) as f64;
        let page = sys::sysconf(libc::_SC_PAGESIZE, 4096);
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        ProcessStats {
            // Fields of proc(5) /proc/pid/stat, numbered from 1: utime 14,
            // stime 15, starttime 22, vsize 23, rss 24 (pages).
            cpu_seconds: field(14)
                .zip(field(15))
                .map(|(u, s)| (u + s) as f64 / ticks),
            start_time_seconds: boot
                .zip(field(22))
                .map(|(b, t)| b as f64 + t as f64 / ticks),
            virtual_bytes: field(23),
            resident_bytes: field(24).map(|p| p * page),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64),
            max_fds: Some(sys::nofile_limit()),
        }
    }
}

/// The fields of a /proc/pid/stat line, numbered from 1 (index 0 unused):
/// the command (field 2) is in parentheses and may hold spaces, so the
/// fields after it are split from its last `)`.
fn stat_fields(line: &str) -> Vec<&str> {
    let mut out = vec![""];
    let Some(close) = line.rfind(')') else {
        return out;
    };
    let (head, tail) = line.split_at(close + 1);
    out.push(head.split(' ').next().unwrap_or(""));
    out.push(head.split_once(' ').map_or("", |(_, c)| c));
    out.extend(tail.split_whitespace());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14 15 16 17 18 999 4096 3 rest";
        let f = stat_fields(line);
        assert_eq!(f[1], "42");
        assert_eq!(f[2], "(a (b) c)");
        assert_eq!(f[3], "S");
        assert_eq!((f[14], f[15]), ("111", "222"));
        assert_eq!((f[22], f[23], f[24]), ("999", "4096", "3"));
    }

    #[test]
    fn this_process_has_figures() {
        let p = ProcessStats::read();
        assert!(p.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert!(p.resident_bytes.is_some_and(|b| b > 0));
        assert!(p.open_fds.is_some_and(|n| n >= 3));
        let now = crate::sys::realtime_ns() as f64 / 1e9;
        let start = p.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}
