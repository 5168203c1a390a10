//! A run, start to end: the parent (setup, warm-up, measured phase, drain,
//! report) and a child's loop.
//!
//! The parent's phases, each a loop around [`Coordinator::pump`] (one
//! `epoll_wait` and the dispatch of what it returned):
//! 1. **setup**: the publisher connects and is answered a PING; subscribers
//!    connect (here, or in children) and every subscription is confirmed.
//! 2. **warm-up**: the workload's traffic, flagged in the payload, not
//!    recorded.
//! 3. **measured**: CPU snapshots (generator, server), then the workload.
//! 4. **drain**: each group of subscribers is told what was published and
//!    reports when it has it all (or at the timeout); the end snapshot is
//!    taken when the last group is done.

use super::account::Deliveries;
use super::control::{read_available, ChildLink, ChildMsg, GroupReport, LineBuf, ParentMsg};
use super::hist::LatencyHistogram;
use super::publisher::Publisher;
use super::report::{iso8601_utc, PortReport, Report};
use super::subs::{Note, SubSet};
use super::sys::{self, Epoll, Timer};
use super::{self as bench, BenchError, Params, Proto, Workload};
use super::{TOKEN_CHILD, TOKEN_CONTROL, TOKEN_KIND, TOKEN_PUB, TOKEN_SUB, TOKEN_TIMER};
use ringcast::{Config, Engine};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Epoll events the parent handles per wait: each ready subscriber costs
/// about 10 us of kernel time to read, so 256 bound how late the publisher
/// can be for its schedule to about 2.5 ms.
const EVENTS: usize = 256;
/// Epoll events a child handles per wait (it has no schedule to keep).
const CHILD_EVENTS: usize = 1024;
/// Messages published back to back before the loop reads again.
const PUBLISH_RUN: u32 = 64;
/// Setup time allowed per subscriber, on top of `--timeout`.
const SETUP_PER_SUB: Duration = Duration::from_micros(500);
/// Extra time the parent waits for children's reports after the drain limit.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// Where server CPU figures come from.
enum ServerCpu {
    Pid(u32),
    EmbeddedReactors,
    Unknown,
}

impl ServerCpu {
    fn read(&self) -> Option<f64> {
        match self {
            ServerCpu::Pid(pid) => sys::process_cpu_s(*pid).ok(),
            ServerCpu::EmbeddedReactors => Some(sys::own_threads_cpu_s("ringcast-r").0),
            ServerCpu::Unknown => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            ServerCpu::Pid(pid) => format!("/proc/{pid}/stat, all threads"),
            ServerCpu::EmbeddedReactors => format!(
                "embedded engine's {} reactor threads",
                sys::own_threads_cpu_s("ringcast-r").1
            ),
            ServerCpu::Unknown => "no --server-pid given".into(),
        }
    }
}

/// Clock and CPU readings at a phase boundary.
#[derive(Clone, Copy)]
struct Snapshot {
    at_ns: u64,
    generator_cpu_ns: u64,
    server_cpu_s: Option<f64>,
}

/// What the publishing side did in the measured phase.
#[derive(Default)]
struct Outcome {
    published: u64,
    per_topic: Vec<u64>,
    first_publish_ns: u64,
    last_publish_ns: u64,
    max_lag_ns: u64,
    start: Option<Snapshot>,
    end: Option<Snapshot>,
    time_to_last: LatencyHistogram,
    aborted: Option<String>,
}

impl Outcome {
    fn published_at(&mut self, now: u64) {
        if self.published == 0 {
            self.first_publish_ns = now;
        }
        self.published += 1;
        self.last_publish_ns = now;
    }
}

/// The channels the publisher sends to: `bench.<run>.<t>`, or with
/// --patterns `bench.<run>.news.<t>`. Unique per run, so a long-lived
/// server's earlier runs (and their sequence numbers) do not mix in.
fn channel_names(run_id: &str, p: &Params) -> Vec<String> {
    let kind = if p.patterns { "news." } else { "" };
    (0..p.topics)
        .map(|t| format!("bench.{run_id}.{kind}{t}"))
        .collect()
}

/// What the subscribers subscribe to, subscriber g to entry g mod len: the
/// channels, or with --patterns the one pattern `bench.<run>.news.*` that
/// matches them all (the run id has no glob characters).
fn subscription_names(run_id: &str, p: &Params) -> Vec<String> {
    if p.patterns {
        vec![format!("bench.{run_id}.news.*")]
    } else {
        channel_names(run_id, p)
    }
}

fn new_run_id() -> String {
    format!(
        "{:x}{:06x}",
        std::process::id(),
        sys::now_ns() / 1_000 % 0x100_0000
    )
}

/// The parent's state for one run.
struct Coordinator<'a> {
    p: &'a Params,
    ep: Epoll,
    timer: Timer,
    events: Vec<libc::epoll_event>,
    publisher: Publisher,
    local: Option<SubSet>,
    children: Vec<ChildLink>,
    /// Where the publisher sends, message k to `channels[k % len]`.
    channels: Vec<String>,
    server_cpu: ServerCpu,
    /// Groups of subscribers: the local set (if any) and each child.
    groups: usize,
    /// Bursts some groups have finished: (seq, groups done, max latency).
    partial_bursts: Vec<(u64, usize, u64)>,
    /// Bursts every group has finished: (seq, max latency).
    done_bursts: Vec<(u64, u64)>,
}

/// Runs a benchmark as the parent process and returns its report.
pub fn run(params: &Params) -> Result<Report, BenchError> {
    params.validate()?;
    sys::ignore_sigpipe();
    sys::raise_nofile_limit();
    let mut p = params.clone();
    // Decided before an embedded engine's address becomes the target, which
    // would make it look like an external server's (fewer fds per subscriber).
    p.procs = Some(params.effective_procs());
    let engine = match p.target {
        Some(_) => None,
        None => {
            let config = Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ws_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                resp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                cores: p.server_cores,
                cpus: p.server_cpus.clone(),
                shutdown_timeout: Duration::from_secs(1),
                ..Config::default()
            };
            let engine = Engine::start(config)
                .map_err(|e| BenchError::Failed(format!("embedded engine: {e}")))?;
            // The front --proto speaks: RESP for resp (subscribers and
            // publisher); the native port otherwise (ringcast-ws's publisher).
            p.target = Some(match p.proto {
                Proto::Resp => engine.resp_addr().ok_or_else(|| {
                    BenchError::Failed("embedded engine: no RESP listener".into())
                })?,
                _ => engine.local_addr(),
            });
            p.ws_port = engine
                .ws_addr()
                .ok_or_else(|| BenchError::Failed("embedded engine: no WebSocket listener".into()))?
                .port();
            Some(engine)
        }
    };
    // After the engine started, so its reactors do not inherit the pin.
    if let Some(&cpu) = p.cpus.first() {
        sys::pin_current_thread(cpu)
            .map_err(|e| BenchError::Invalid(format!("--cpu {cpu}: {e}")))?;
    }
    p.run_id.get_or_insert_with(new_run_id);
    let server_cpu = match (p.server_pid, &engine) {
        (Some(pid), _) => {
            sys::process_cpu_s(pid).map_err(|e| {
                BenchError::Invalid(format!(
                    "--server-pid {pid}: cannot read /proc/{pid}/stat: {e}"
                ))
            })?;
            ServerCpu::Pid(pid)
        }
        (None, Some(_)) => ServerCpu::EmbeddedReactors,
        (None, None) => ServerCpu::Unknown,
    };
    let mut target = match &engine {
        Some(e) => format!(
            "embedded ringcast ({} reactor{}) at {}{}",
            p.server_cores,
            if p.server_cores == 1 { "" } else { "s" },
            e.local_addr(),
            match p.proto {
                Proto::Resp => format!(", its RESP front at {}", p.target.expect("set above")),
                _ => String::new(),
            }
        ),
        None => format!("{} at {}", p.proto.name(), p.target.expect("set above")),
    };
    if p.proto.is_websocket() && p.sub_ports.is_empty() {
        target = format!(
            "{target}: subscribers over WebSocket at ws://{}/ws, publisher over native TCP",
            p.subscriber_addr().expect("set above")
        );
    }
    if !p.sub_ports.is_empty() {
        let over = if p.proto.is_websocket() {
            "over WebSocket (/ws) "
        } else {
            ""
        };
        target = format!(
            "{target}: subscribers spread {over}round-robin over ports {} of {}, publisher on {}",
            bench::join_ports(&p.sub_ports),
            p.target.expect("set above").ip(),
            p.target.expect("set above").port()
        );
        let (k, t) = (p.sub_ports.len(), p.subscriptions());
        if bench::gcd(k, t) > 1 {
            eprintln!(
                "ringcast bench: note: --topics {t} and {k} --sub-ports share a factor: \
                 each port's subscribers hold only some of the topics (subscriber i: \
                 topic i mod {t}, port i mod {k})"
            );
        }
    }
    let embedded = engine.is_some();
    let result = Coordinator::new(&p, server_cpu).and_then(|mut c| {
        let outcome = c.run();
        c.finish(outcome, target, embedded)
    });
    if let Some(engine) = engine {
        engine.shutdown();
        let _ = engine.wait();
    }
    result.map_err(BenchError::Failed)
}

impl<'a> Coordinator<'a> {
    fn new(p: &'a Params, server_cpu: ServerCpu) -> Result<Self, String> {
        let addr = p.target.expect("the target is known before coordinating");
        let sub_addrs = p.subscriber_addrs();
        let ep = Epoll::new().map_err(|e| format!("epoll: {e}"))?;
        let timer = Timer::new().map_err(|e| format!("timerfd: {e}"))?;
        ep.add(timer.raw_fd(), TOKEN_TIMER, sys::IN)
            .map_err(|e| format!("epoll: {e}"))?;
        let run_id = p.run_id.as_deref().expect("set by run");
        let channels = channel_names(run_id, p);
        let subscriptions = subscription_names(run_id, p);
        let publisher = Publisher::connect(p.proto.publisher_proto(), addr, p.size, &ep)?;
        let procs = p.effective_procs();
        let (local, children) = if procs == 1 {
            let set = SubSet::new(p, sub_addrs, subscriptions, 0, p.subs);
            (Some(set), Vec::new())
        } else {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find this program to start children: {e}"))?;
            let mut children = Vec::with_capacity(procs);
            for k in 0..procs {
                let first = p.subs * k / procs;
                let end = p.subs * (k + 1) / procs;
                let cpu = (!p.cpus.is_empty()).then(|| p.cpus[k % p.cpus.len()]);
                let args = p.child_args(first, end - first, cpu);
                match ChildLink::spawn(&exe, args, &ep, k) {
                    Ok(c) => children.push(c),
                    Err(e) => {
                        for c in children {
                            c.finish(true);
                        }
                        return Err(e);
                    }
                }
            }
            (None, children)
        };
        let groups = usize::from(local.is_some()) + children.len();
        Ok(Coordinator {
            p,
            ep,
            timer,
            // SAFETY: epoll_event is plain data (two integers); all-zero is valid.
            events: vec![unsafe { std::mem::zeroed() }; EVENTS],
            publisher,
            local,
            children,
            channels,
            server_cpu,
            groups,
            partial_bursts: Vec::new(),
            done_bursts: Vec::new(),
        })
    }

    /// One epoll wait (up to `timeout_ms`; 0 polls) and its dispatch.
    fn pump(&mut self, timeout_ms: i32) -> Result<(), String> {
        let n = self
            .ep
            .wait(&mut self.events, timeout_ms)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for i in 0..n {
            let ev = self.events[i];
            let (token, bits) = (ev.u64, ev.events);
            let index = (token & !TOKEN_KIND) as usize;
            match token & TOKEN_KIND {
                TOKEN_SUB => {
                    if let Some(local) = self.local.as_mut() {
                        local.handle(&self.ep, index, bits);
                        for note in local.take_notes() {
                            let Note::BurstDone { seq, max_ns, .. } = note;
                            self.group_finished_burst(seq, max_ns);
                        }
                    }
                }
                TOKEN_PUB => self.publisher.handle(&self.ep, bits)?,
                TOKEN_TIMER => self.timer.drain(),
                TOKEN_CHILD => self.child_event(index)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn child_event(&mut self, k: usize) -> Result<(), String> {
        let msgs = self.children[k]
            .receive(&self.ep)
            .map_err(|e| format!("child {k}: {e}"))?;
        for msg in msgs {
            match msg {
                ChildMsg::Ready => self.children[k].ready = true,
                ChildMsg::Burst { seq, max_ns, .. } => self.group_finished_burst(seq, max_ns),
                ChildMsg::Report(r) => self.children[k].report = Some(*r),
                ChildMsg::Fail(m) => return Err(format!("child {k}: {m}")),
            }
        }
        let child = &self.children[k];
        if child.eof && child.report.is_none() {
            return Err(format!(
                "child {k} exited before reporting (its error is above)"
            ));
        }
        Ok(())
    }

    fn group_finished_burst(&mut self, seq: u64, max_ns: u64) {
        let i = match self.partial_bursts.iter().position(|b| b.0 == seq) {
            Some(i) => i,
            None => {
                self.partial_bursts.push((seq, 0, 0));
                self.partial_bursts.len() - 1
            }
        };
        let b = &mut self.partial_bursts[i];
        b.1 += 1;
        b.2 = b.2.max(max_ns);
        if b.1 >= self.groups {
            let (seq, _, max) = self.partial_bursts.swap_remove(i);
            self.done_bursts.push((seq, max));
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            at_ns: sys::now_ns(),
            generator_cpu_ns: sys::thread_cpu_ns(),
            server_cpu_s: self.server_cpu.read(),
        }
    }

    fn begin_measure(&mut self) -> Result<Snapshot, String> {
        for (k, c) in self.children.iter_mut().enumerate() {
            c.send(&ParentMsg::Measure)
                .map_err(|e| format!("child {k}: {e}"))?;
        }
        Ok(self.snapshot())
    }

    fn run(&mut self) -> Result<Outcome, String> {
        let setup_start = sys::now_ns();
        self.setup()?;
        eprintln!(
            "ringcast bench: {} subscribers ready in {:.2} s ({} process{}); running {}",
            self.p.subs,
            (sys::now_ns() - setup_start) as f64 / 1e9,
            self.p.effective_procs(),
            if self.p.effective_procs() == 1 {
                ""
            } else {
                "es"
            },
            self.p.workload.name()
        );
        if !self.p.hold.is_zero() {
            eprintln!(
                "ringcast bench: holding {} subscribers idle for {:.1} s",
                self.p.subs,
                self.p.hold.as_secs_f64()
            );
            let end = sys::now_ns() + self.p.hold.as_nanos() as u64;
            while sys::now_ns() < end {
                self.pump(100)?;
            }
        }
        let mut o = Outcome {
            per_topic: vec![0; self.p.subscriptions()],
            ..Default::default()
        };
        match self.p.workload {
            Workload::Steady => self.steady(&mut o)?,
            Workload::Burst => self.burst(&mut o)?,
        }
        self.drain(&mut o)?;
        Ok(o)
    }

    fn setup(&mut self) -> Result<(), String> {
        let deadline =
            sys::now_ns() + (self.p.timeout + SETUP_PER_SUB * self.p.subs as u32).as_nanos() as u64;
        if let Some(local) = self.local.as_mut() {
            local.start(&self.ep);
        }
        loop {
            if let Some(f) = self.local.as_ref().and_then(|l| l.setup_failure()) {
                return Err(f.to_string());
            }
            let local_ready = self.local.as_ref().map_or(true, |l| l.all_ready());
            let children_ready = self.children.iter().filter(|c| c.ready).count();
            if self.publisher.is_ready() && local_ready && children_ready == self.children.len() {
                return Ok(());
            }
            if sys::now_ns() > deadline {
                let what = match &self.local {
                    Some(l) => format!("{} of {} subscriptions confirmed", l.ready(), l.len()),
                    None => format!(
                        "{children_ready} of {} child processes ready",
                        self.children.len()
                    ),
                };
                return Err(format!(
                    "setting up timed out: {what}; publisher {}",
                    if self.publisher.is_ready() {
                        "ready"
                    } else {
                        "not answered"
                    }
                ));
            }
            self.pump(100)?;
        }
    }

    fn steady(&mut self, o: &mut Outcome) -> Result<(), String> {
        let warm = self.p.warmup_count();
        let total = warm + self.p.measured_count();
        let interval = 1e9 / self.p.rate;
        let topics = self.channels.len() as u64;
        let patterns = self.p.patterns;
        let t0 = sys::now_ns();
        let mut k = 0u64;
        let mut in_a_row = 0;
        while k < total {
            let due = t0 + (k as f64 * interval) as u64;
            let now = sys::now_ns();
            if now >= due && self.publisher.can_publish() {
                if k == warm {
                    o.start = Some(self.begin_measure()?);
                }
                let topic = (k % topics) as usize;
                let is_warm = k < warm;
                // Sequences count per subscription: with --patterns one
                // count over all channels, as every subscriber gets them all.
                let (counted, seq) = if patterns {
                    (0, k + 1)
                } else {
                    (topic, k / topics + 1)
                };
                self.publisher
                    .publish(&self.ep, &self.channels[topic], seq, is_warm)?;
                if !is_warm {
                    o.per_topic[counted] += 1;
                    o.published_at(now);
                    o.max_lag_ns = o.max_lag_ns.max(now - due);
                }
                k += 1;
                in_a_row += 1;
                if in_a_row >= PUBLISH_RUN {
                    in_a_row = 0;
                    self.pump(0)?;
                }
                continue;
            }
            in_a_row = 0;
            if now < due {
                self.timer
                    .arm_at(due)
                    .map_err(|e| format!("timerfd: {e}"))?;
                self.pump(1_000)?;
            } else {
                // Behind schedule and the publisher's buffer is full: wait
                // for the socket to drain.
                self.pump(5)?;
            }
        }
        Ok(())
    }

    fn burst(&mut self, o: &mut Outcome) -> Result<(), String> {
        let warm = self.p.warmup_count();
        let total = warm + self.p.bursts;
        let timeout = self.p.timeout.as_nanos() as u64;
        let gap = self.p.gap.as_nanos() as u64;
        for seq in 1..=total {
            let is_warm = seq <= warm;
            if seq == warm + 1 {
                o.start = Some(self.begin_measure()?);
            }
            let sent = sys::now_ns();
            self.publisher
                .publish(&self.ep, &self.channels[0], seq, is_warm)?;
            if !is_warm {
                o.per_topic[0] += 1;
                o.published_at(sent);
            }
            loop {
                if let Some(i) = self.done_bursts.iter().position(|b| b.0 == seq) {
                    let (_, max_ns) = self.done_bursts.swap_remove(i);
                    if !is_warm {
                        o.time_to_last.record(max_ns);
                    }
                    break;
                }
                if sys::now_ns() > sent + timeout {
                    o.aborted = Some(format!(
                        "burst {seq} did not reach every subscriber within {:.0} s (--timeout)",
                        self.p.timeout.as_secs_f64()
                    ));
                    return Ok(());
                }
                self.pump(100)?;
            }
            let until = sys::now_ns() + gap;
            while sys::now_ns() < until {
                self.timer
                    .arm_at(until)
                    .map_err(|e| format!("timerfd: {e}"))?;
                self.pump(1_000)?;
            }
        }
        Ok(())
    }

    /// Tells every group what was published and waits until each has it all.
    fn drain(&mut self, o: &mut Outcome) -> Result<(), String> {
        if o.start.is_none() {
            o.start = Some(self.begin_measure()?);
        }
        let drain = if o.aborted.is_some() {
            Duration::ZERO
        } else {
            self.p.timeout
        };
        let end = ParentMsg::End {
            drain_ms: drain.as_millis() as u64,
            counts: o.per_topic.clone(),
        };
        for (k, c) in self.children.iter_mut().enumerate() {
            c.send(&end).map_err(|e| format!("child {k}: {e}"))?;
        }
        if let Some(local) = self.local.as_mut() {
            local.set_expected(&o.per_topic);
        }
        let started = sys::now_ns();
        let local_deadline = started + drain.as_nanos() as u64;
        let report_deadline = local_deadline + REPORT_GRACE.as_nanos() as u64;
        loop {
            let now = sys::now_ns();
            let local_done = self
                .local
                .as_ref()
                .map_or(true, |l| l.is_complete() || now >= local_deadline);
            let reports = self.children.iter().filter(|c| c.report.is_some()).count();
            if local_done && reports == self.children.len() {
                break;
            }
            if now >= report_deadline {
                o.aborted.get_or_insert_with(|| {
                    format!(
                        "{} of {} child processes reported within the drain limit",
                        reports,
                        self.children.len()
                    )
                });
                break;
            }
            self.pump(10)?;
        }
        o.end = Some(self.snapshot());
        let incomplete = self.local.as_ref().is_some_and(|l| !l.is_complete());
        if incomplete && o.aborted.is_none() {
            o.aborted = Some(format!(
                "not every delivery arrived within {:.0} s after the last publish (--timeout)",
                drain.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Expected deliveries, from the parent's own knowledge: subscriber g
    /// holds subscription g % subscriptions.
    fn expected(&self, per_topic: &[u64]) -> u64 {
        let topics = per_topic.len();
        (0..topics)
            .map(|t| {
                let subs_on_t = (self.p.subs + topics - 1 - t) / topics;
                per_topic[t] * subs_on_t as u64
            })
            .sum()
    }

    fn finish(
        mut self,
        outcome: Result<Outcome, String>,
        target: String,
        embedded: bool,
    ) -> Result<Report, String> {
        let o = match outcome {
            Ok(o) => o,
            Err(e) => {
                for c in self.children.drain(..) {
                    c.finish(true);
                }
                return Err(e);
            }
        };
        let start = o.start.expect("drain sets start");
        let end = o.end.expect("drain sets end");
        let wall_ns = end.at_ns.saturating_sub(start.at_ns).max(1);
        let parent_cpu = end.generator_cpu_ns.saturating_sub(start.generator_cpu_ns);
        let mut deliveries = Deliveries::default();
        let mut hist = LatencyHistogram::new();
        let mut generator_cpu_ns = parent_cpu;
        let mut busiest = parent_cpu as f64 / wall_ns as f64;
        let mut first_error = None;
        let mut foreign = 0;
        let mut aborted = o.aborted.clone();
        let ports = self.p.sub_ports.len();
        let mut per_port = vec![(Deliveries::default(), LatencyHistogram::new()); ports];
        let mut add_ports = |from: &[(Deliveries, LatencyHistogram)]| {
            for ((d, h), (d1, h1)) in per_port.iter_mut().zip(from) {
                d.add(d1);
                h.merge(h1);
            }
        };
        if let Some(local) = &self.local {
            deliveries.add(&local.deliveries());
            hist.merge(&local.histogram());
            if ports > 0 {
                add_ports(&local.port_reports());
            }
            first_error = local.first_error().map(str::to_string);
            foreign += local.foreign_payloads();
        }
        for (k, c) in self.children.iter().enumerate() {
            match &c.report {
                Some(r) => {
                    let GroupReport {
                        deliveries: d,
                        hist: h,
                        cpu_ns,
                        wall_ns: child_wall,
                        error,
                        foreign: f,
                        ports: p,
                        ..
                    } = r;
                    deliveries.add(d);
                    hist.merge(h);
                    if p.len() != ports {
                        aborted.get_or_insert_with(|| {
                            format!("child {k} reported {} ports of {ports}", p.len())
                        });
                    }
                    add_ports(p);
                    generator_cpu_ns += cpu_ns;
                    busiest = busiest.max(*cpu_ns as f64 / (*child_wall).max(1) as f64);
                    if first_error.is_none() {
                        first_error = error.clone();
                    }
                    foreign += f;
                }
                None => {
                    aborted.get_or_insert_with(|| format!("child {k} sent no report"));
                }
            }
        }
        // What the parent knows was owed beats what the groups reported (a
        // group that never reported owes its share too).
        deliveries.expected = self.expected(&o.per_topic);
        let p = self.p;
        let local_port = p.local_sub_port();
        let ports: Vec<PortReport> = per_port
            .into_iter()
            .zip(p.expected_per_port(&o.per_topic))
            .zip(p.sub_ports.iter().zip(p.subs_per_port()))
            .map(|(((mut d, h), owed), (&port, subs))| {
                d.expected = owed;
                PortReport {
                    port,
                    local: Some(port) == local_port,
                    subs,
                    deliveries: d,
                    latency: h.summary(),
                }
            })
            .collect();
        let exit_kill = aborted.is_some();
        for c in self.children.drain(..) {
            c.finish(exit_kill);
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Report {
            params: p.clone(),
            target,
            embedded,
            procs: p.effective_procs(),
            source_ips: p.effective_source_ips(),
            published: o.published,
            publish_s: o.last_publish_ns.saturating_sub(o.first_publish_ns) as f64 / 1e9,
            max_publish_lag_us: o.max_lag_ns as f64 / 1e3,
            deliveries,
            ports,
            latency: hist.summary(),
            time_to_last: (p.workload == Workload::Burst).then(|| o.time_to_last.summary()),
            server_cpu_s: match (start.server_cpu_s, end.server_cpu_s) {
                (Some(a), Some(b)) => Some((b - a).max(0.0)),
                _ => None,
            },
            server_cpu_source: self.server_cpu.describe(),
            generator_cpu_s: generator_cpu_ns as f64 / 1e9,
            generator_busiest: busiest,
            wall_s: wall_ns as f64 / 1e9,
            aborted,
            first_error,
            foreign_payloads: foreign,
            date: iso8601_utc(secs),
            kernel: sys::kernel_release(),
            cpus: sys::online_cpus(),
            cpu_model: sys::cpu_model(),
        })
    }
}

/// A child's run: subscribers `first .. first + count`, driven by the
/// parent's lines on stdin, answering on stdout (see `control`).
pub fn run_child(p: &Params, first: usize, count: usize) -> Result<(), BenchError> {
    let failed = BenchError::Failed;
    sys::ignore_sigpipe();
    sys::raise_nofile_limit();
    if let Some(&cpu) = p.cpus.first() {
        sys::pin_current_thread(cpu).map_err(|e| failed(format!("--cpu {cpu}: {e}")))?;
    }
    let addrs = p.subscriber_addrs();
    if addrs.is_empty() {
        return Err(BenchError::Invalid("a child needs --port".into()));
    }
    let run_id = p
        .run_id
        .as_deref()
        .ok_or_else(|| BenchError::Invalid("a child needs --run-id".into()))?;
    let ep = Epoll::new().map_err(|e| failed(format!("epoll: {e}")))?;
    let mut subs = SubSet::new(p, addrs, subscription_names(run_id, p), first, count);
    sys::set_nonblocking(0).map_err(|e| failed(format!("stdin: {e}")))?;
    ep.add(0, TOKEN_CONTROL, sys::IN)
        .map_err(|e| failed(format!("epoll on stdin: {e}")))?;
    let mut stdout = std::io::stdout().lock();
    let mut send = |msg: ChildMsg| -> Result<(), BenchError> {
        stdout
            .write_all(msg.to_line().as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| failed(format!("writing to the parent: {e}")))
    };
    subs.start(&ep);
    let mut lines = LineBuf::default();
    let mut ready_sent = false;
    let mut measure_start = (sys::now_ns(), sys::thread_cpu_ns());
    let mut drain_deadline: Option<u64> = None;
    // SAFETY: epoll_event is plain data (two integers); all-zero is valid.
    let mut events = vec![unsafe { std::mem::zeroed::<libc::epoll_event>() }; CHILD_EVENTS];
    loop {
        let n = ep
            .wait(&mut events, 50)
            .map_err(|e| failed(format!("epoll_wait: {e}")))?;
        for ev in &events[..n] {
            let (token, bits) = (ev.u64, ev.events);
            match token & TOKEN_KIND {
                TOKEN_SUB => subs.handle(&ep, (token & !TOKEN_KIND) as usize, bits),
                TOKEN_CONTROL => {
                    let open = read_available(0, &mut lines)
                        .map_err(|e| failed(format!("reading from the parent: {e}")))?;
                    if !open {
                        return Err(failed("the parent went away".into()));
                    }
                }
                _ => {}
            }
        }
        for note in subs.take_notes() {
            let Note::BurstDone { seq, warm, max_ns } = note;
            send(ChildMsg::Burst { seq, warm, max_ns })?;
        }
        if !ready_sent {
            if let Some(f) = subs.setup_failure() {
                let f = f.to_string();
                send(ChildMsg::Fail(f.clone()))?;
                return Err(failed(f));
            }
            if subs.all_ready() {
                send(ChildMsg::Ready)?;
                ready_sent = true;
            }
        }
        while let Some(line) = lines.next_line() {
            match ParentMsg::parse(&line).map_err(failed)? {
                ParentMsg::Measure => measure_start = (sys::now_ns(), sys::thread_cpu_ns()),
                ParentMsg::End { drain_ms, counts } => {
                    if counts.len() != p.subscriptions() {
                        return Err(failed(format!(
                            "the parent sent {} topic counts for {} subscriptions",
                            counts.len(),
                            p.subscriptions()
                        )));
                    }
                    subs.set_expected(&counts);
                    drain_deadline = Some(sys::now_ns() + drain_ms * 1_000_000);
                }
            }
        }
        if let Some(deadline) = drain_deadline {
            if subs.is_complete() || sys::now_ns() >= deadline {
                let report = GroupReport {
                    subs: count as u64,
                    deliveries: subs.deliveries(),
                    cpu_ns: sys::thread_cpu_ns() - measure_start.1,
                    wall_ns: sys::now_ns() - measure_start.0,
                    foreign: subs.foreign_payloads(),
                    hist: subs.histogram(),
                    ports: if p.sub_ports.is_empty() {
                        Vec::new()
                    } else {
                        subs.port_reports()
                    },
                    error: subs.first_error().map(str::to_string),
                };
                send(ChildMsg::Report(Box::new(report)))?;
                return Ok(());
            }
        }
    }
}
