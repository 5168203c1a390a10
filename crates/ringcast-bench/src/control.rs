//! Parent and child processes: when one process cannot hold every
//! subscriber (20,000 open files here), the parent re-executes its own binary
//! as children (`ringcast bench --child FIRST:COUNT ...`), each owning a range
//! of subscribers, and talks to them over their stdin and stdout in lines:
//!
//! ```text
//! child -> parent   ready                          all its subscriptions confirmed
//!                   burst SEQ WARM MAX_NS          all its live subscribers got burst SEQ
//!                   report K=V ... hist=H error=E  final counts, CPU, latency histogram;
//!                                                  with --sub-ports one port=COUNTS,H per
//!                                                  port, in --sub-ports order
//!                   fail MESSAGE                   it could not set up; exits 1
//! parent -> child   measure                        the measured phase starts (CPU snapshot)
//!                   end MS N0,N1,...               measured messages per topic: wait up to
//!                                                  MS milliseconds for them, then report
//! ```
//!
//! A child whose stdin closes (the parent died) exits. Its stderr is the
//! parent's, for messages meant for people.

use super::account::Deliveries;
use super::hist::LatencyHistogram;
use super::sys::{self, Epoll};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// What a group of subscribers (a child, or the parent's own) amounts to.
#[derive(Clone, Debug, Default)]
pub struct GroupReport {
    /// Subscribers in the group.
    pub subs: u64,
    /// Delivery counts.
    pub deliveries: Deliveries,
    /// CPU time of the group's event loop over the measured phase.
    pub cpu_ns: u64,
    /// Wall time of the measured phase as the group saw it.
    pub wall_ns: u64,
    /// Payloads without the generator's stamp.
    pub foreign: u64,
    /// Latency of every measured delivery.
    pub hist: LatencyHistogram,
    /// With `--sub-ports`: counts and latency per port, in its order
    /// (empty without it).
    pub ports: Vec<(Deliveries, LatencyHistogram)>,
    /// The first thing that went wrong, if anything did.
    pub error: Option<String>,
}

/// The counters of a `port=` field, in order (the histogram follows them).
const PORT_FIELDS: usize = 9;

/// `E,R,D,O,G,X,S,U,N,HIST`: a port's counts and histogram (no spaces, no
/// commas in the histogram's text).
fn port_field(d: &Deliveries, h: &LatencyHistogram) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{}",
        d.expected,
        d.received,
        d.duplicates,
        d.reordered,
        d.gaps,
        d.disconnects,
        d.server_errors,
        d.unstamped,
        d.gap_notices,
        h.to_text()
    )
}

fn parse_port_field(v: &str) -> Result<(Deliveries, LatencyHistogram), String> {
    let parts: Vec<&str> = v.splitn(PORT_FIELDS + 1, ',').collect();
    let [e, r, d, o, g, x, s, u, n, h] = parts[..] else {
        return Err(format!("bad port field {v:?}"));
    };
    let num = |w: &str| -> Result<u64, String> {
        w.parse()
            .map_err(|_| format!("bad number {w:?} in a port field"))
    };
    Ok((
        Deliveries {
            expected: num(e)?,
            received: num(r)?,
            duplicates: num(d)?,
            reordered: num(o)?,
            gaps: num(g)?,
            disconnects: num(x)?,
            server_errors: num(s)?,
            unstamped: num(u)?,
            gap_notices: num(n)?,
        },
        LatencyHistogram::from_text(h)?,
    ))
}

/// A line from a child.
#[derive(Clone, Debug)]
pub enum ChildMsg {
    Ready,
    Burst { seq: u64, warm: bool, max_ns: u64 },
    Report(Box<GroupReport>),
    Fail(String),
}

/// A line to a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentMsg {
    Measure,
    End { drain_ms: u64, counts: Vec<u64> },
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl ChildMsg {
    /// The line, newline included.
    pub fn to_line(&self) -> String {
        match self {
            ChildMsg::Ready => "ready\n".into(),
            ChildMsg::Burst { seq, warm, max_ns } => {
                format!("burst {seq} {} {max_ns}\n", u8::from(*warm))
            }
            ChildMsg::Fail(m) => format!("fail {}\n", one_line(m)),
            ChildMsg::Report(r) => {
                let d = &r.deliveries;
                let mut line = format!(
                    "report subs={} expected={} received={} duplicates={} reordered={} \
                     gaps={} disconnects={} server_errors={} unstamped={} gap_notices={} \
                     cpu_ns={} wall_ns={} foreign={} hist={}",
                    r.subs,
                    d.expected,
                    d.received,
                    d.duplicates,
                    d.reordered,
                    d.gaps,
                    d.disconnects,
                    d.server_errors,
                    d.unstamped,
                    d.gap_notices,
                    r.cpu_ns,
                    r.wall_ns,
                    r.foreign,
                    r.hist.to_text()
                );
                for (d, h) in &r.ports {
                    line.push_str(" port=");
                    line.push_str(&port_field(d, h));
                }
                if let Some(e) = &r.error {
                    line.push_str(" error=");
                    line.push_str(&one_line(e));
                }
                line.push('\n');
                line
            }
        }
    }

    /// Parses a line (without its newline).
    pub fn parse(line: &str) -> Result<ChildMsg, String> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "ready" => Ok(ChildMsg::Ready),
            "fail" => Ok(ChildMsg::Fail(rest.to_string())),
            "burst" => {
                let n: Vec<u64> = rest
                    .split(' ')
                    .map(|w| w.parse().map_err(|_| format!("bad burst line {line:?}")))
                    .collect::<Result<_, _>>()?;
                match n[..] {
                    [seq, warm, max_ns] => Ok(ChildMsg::Burst {
                        seq,
                        warm: warm != 0,
                        max_ns,
                    }),
                    _ => Err(format!("bad burst line {line:?}")),
                }
            }
            "report" => {
                let (fields, error) = match rest.split_once(" error=") {
                    Some((f, e)) => (f, Some(e.to_string())),
                    None => (rest, None),
                };
                let mut r = GroupReport {
                    error,
                    ..Default::default()
                };
                for field in fields.split(' ') {
                    let (k, v) = field
                        .split_once('=')
                        .ok_or_else(|| format!("bad report field {field:?}"))?;
                    if k == "hist" {
                        r.hist = LatencyHistogram::from_text(v)?;
                        continue;
                    }
                    if k == "port" {
                        r.ports.push(parse_port_field(v)?);
                        continue;
                    }
                    let n: u64 = v
                        .parse()
                        .map_err(|_| format!("bad report value {field:?}"))?;
                    let d = &mut r.deliveries;
                    match k {
                        "subs" => r.subs = n,
                        "expected" => d.expected = n,
                        "received" => d.received = n,
                        "duplicates" => d.duplicates = n,
                        "reordered" => d.reordered = n,
                        "gaps" => d.gaps = n,
                        "disconnects" => d.disconnects = n,
                        "server_errors" => d.server_errors = n,
                        "unstamped" => d.unstamped = n,
                        "gap_notices" => d.gap_notices = n,
                        "cpu_ns" => r.cpu_ns = n,
                        "wall_ns" => r.wall_ns = n,
                        "foreign" => r.foreign = n,
                        _ => return Err(format!("unknown report field {k:?}")),
                    }
                }
                Ok(ChildMsg::Report(Box::new(r)))
            }
            _ => Err(format!("unknown line from a child: {line:?}")),
        }
    }
}

impl ParentMsg {
    /// The line, newline included.
    pub fn to_line(&self) -> String {
        match self {
            ParentMsg::Measure => "measure\n".into(),
            ParentMsg::End { drain_ms, counts } => {
                let list: Vec<String> = counts.iter().map(u64::to_string).collect();
                format!("end {drain_ms} {}\n", list.join(","))
            }
        }
    }

    /// Parses a line (without its newline).
    pub fn parse(line: &str) -> Result<ParentMsg, String> {
        let bad = || format!("bad line from the parent: {line:?}");
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["measure"] => Ok(ParentMsg::Measure),
            ["end", ms, list] => Ok(ParentMsg::End {
                drain_ms: ms.parse().map_err(|_| bad())?,
                counts: list
                    .split(',')
                    .map(|n| n.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?,
            }),
            _ => Err(bad()),
        }
    }
}

/// Bytes in, whole lines out.
#[derive(Default)]
pub struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    /// Appends bytes read.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole line, without its newline.
    pub fn next_line(&mut self) -> Option<String> {
        let nl = self.buf.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&self.buf[..nl]).into_owned();
        self.buf.drain(..=nl);
        Some(line)
    }
}

/// Reads what is available on a non-blocking fd into `lines`; returns
/// false at end of file.
pub fn read_available(fd: i32, lines: &mut LineBuf) -> io::Result<bool> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match sys::read(fd, &mut buf) {
            Ok(0) => return Ok(false),
            Ok(n) => lines.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The parent's end of one child.
pub struct ChildLink {
    process: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    lines: LineBuf,
    /// The child said `ready`.
    pub ready: bool,
    /// The child's final report.
    pub report: Option<GroupReport>,
    /// Its stdout closed.
    pub eof: bool,
}

impl ChildLink {
    /// Starts `exe args` and watches its stdout with token `TOKEN_CHILD | index`.
    pub fn spawn(
        exe: &std::path::Path,
        args: Vec<OsString>,
        ep: &Epoll,
        index: usize,
    ) -> Result<ChildLink, String> {
        let mut process = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start child process {}: {e}", exe.display()))?;
        let stdin = process.stdin.take().expect("stdin is piped");
        let stdout = process.stdout.take().expect("stdout is piped");
        let fd = stdout.as_raw_fd();
        sys::set_nonblocking(fd).map_err(|e| format!("child pipe: {e}"))?;
        ep.add(fd, super::TOKEN_CHILD | index as u64, sys::IN)
            .map_err(|e| format!("epoll: {e}"))?;
        Ok(ChildLink {
            process,
            stdin,
            stdout,
            lines: LineBuf::default(),
            ready: false,
            report: None,
            eof: false,
        })
    }

    /// Sends a line (blocking: lines are small and children read promptly).
    pub fn send(&mut self, msg: &ParentMsg) -> Result<(), String> {
        self.stdin
            .write_all(msg.to_line().as_bytes())
            .map_err(|e| format!("writing to a child: {e}"))
    }

    /// Reads what the child wrote; returns its whole lines, parsed. At end
    /// of file the pipe leaves `ep` and `eof` is set.
    pub fn receive(&mut self, ep: &Epoll) -> Result<Vec<ChildMsg>, String> {
        let open = read_available(self.stdout.as_raw_fd(), &mut self.lines)
            .map_err(|e| format!("reading from a child: {e}"))?;
        let mut msgs = Vec::new();
        while let Some(line) = self.lines.next_line() {
            msgs.push(ChildMsg::parse(&line)?);
        }
        if !open && !self.eof {
            self.eof = true;
            let _ = ep.delete(self.stdout.as_raw_fd());
        }
        Ok(msgs)
    }

    /// Waits for the child to exit (after its report, or kills it).
    pub fn finish(mut self, kill: bool) {
        if kill {
            let _ = self.process.kill();
        }
        drop(self.stdin);
        let _ = self.process.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let mut hist = LatencyHistogram::new();
        hist.record(1_500);
        hist.record(2_500_000);
        let report = GroupReport {
            subs: 5000,
            deliveries: Deliveries {
                expected: 10,
                received: 9,
                duplicates: 1,
                reordered: 2,
                gaps: 3,
                disconnects: 4,
                server_errors: 5,
                unstamped: 9,
                gap_notices: 10,
            },
            cpu_ns: 6,
            wall_ns: 7,
            foreign: 8,
            ports: vec![
                (
                    Deliveries {
                        expected: 4,
                        received: 3,
                        gap_notices: 10,
                        ..Default::default()
                    },
                    hist.clone(),
                ),
                (
                    Deliveries {
                        expected: 6,
                        received: 6,
                        duplicates: 1,
                        reordered: 2,
                        gaps: 3,
                        disconnects: 4,
                        server_errors: 5,
                        unstamped: 9,
                        gap_notices: 0,
                    },
                    LatencyHistogram::new(),
                ),
            ],
            hist,
            error: Some("subscriber 3: closed\nby the server".into()),
        };
        let line = ChildMsg::Report(Box::new(report.clone())).to_line();
        assert_eq!(line.matches('\n').count(), 1);
        let ChildMsg::Report(back) = ChildMsg::parse(line.trim_end()).unwrap() else {
            panic!("not a report");
        };
        assert_eq!(back.deliveries, report.deliveries);
        assert_eq!(
            (back.subs, back.cpu_ns, back.wall_ns, back.foreign),
            (5000, 6, 7, 8)
        );
        assert_eq!(back.hist.summary(), report.hist.summary());
        assert_eq!(
            back.error.as_deref(),
            Some("subscriber 3: closed by the server")
        );
        assert_eq!(back.ports.len(), 2);
        for ((d, h), (d0, h0)) in back.ports.iter().zip(&report.ports) {
            assert_eq!(d, d0);
            assert_eq!(h.summary(), h0.summary());
        }
        // Without --sub-ports, no port fields.
        let plain = GroupReport {
            ports: Vec::new(),
            ..report.clone()
        };
        let line = ChildMsg::Report(Box::new(plain)).to_line();
        assert!(!line.contains(" port="), "{line}");
        assert!(matches!(
            ChildMsg::parse(line.trim_end()),
            Ok(ChildMsg::Report(r)) if r.ports.is_empty()
        ));
        assert!(ChildMsg::parse("report port=1,2,3").is_err());

        let b = ChildMsg::Burst {
            seq: 3,
            warm: true,
            max_ns: 99,
        }
        .to_line();
        assert!(matches!(
            ChildMsg::parse(b.trim_end()),
            Ok(ChildMsg::Burst {
                seq: 3,
                warm: true,
                max_ns: 99
            })
        ));
        assert!(matches!(ChildMsg::parse("ready"), Ok(ChildMsg::Ready)));
        assert!(ChildMsg::parse("burst 1 2").is_err());
        assert!(ChildMsg::parse("hello").is_err());

        let end = ParentMsg::End {
            drain_ms: 30_000,
            counts: vec![3, 0, 12],
        };
        for m in [ParentMsg::Measure, end] {
            assert_eq!(ParentMsg::parse(m.to_line().trim_end()), Ok(m));
        }
        assert!(ParentMsg::parse("end 5 1,x").is_err());
        assert!(ParentMsg::parse("end 1,2").is_err());
    }

    #[test]
    fn line_buffer_joins_pieces() {
        let mut l = LineBuf::default();
        l.push(b"rea");
        assert_eq!(l.next_line(), None);
        l.push(b"dy\nburst 1 0 5\nfa");
        assert_eq!(l.next_line().as_deref(), Some("ready"));
        assert_eq!(l.next_line().as_deref(), Some("burst 1 0 5"));
        assert_eq!(l.next_line(), None);
    }
}
