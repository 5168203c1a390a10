//! The healthy subscribers and their publisher: the traffic every case and
//! the soak measure. One subscriber per front (native, WebSocket, Redis),
//! each on a topic of its own; one publisher (native) publishes the same
//! payload `PHASE:INDEX:PUBLISHED_NS` to each topic every 5 ms. Each
//! subscriber's delivery, order (seq where the front carries it, and the
//! payload's index) and latency (from the frame's `ts_ns`; over RESP, which
//! carries no timestamp, from the payload's `PUBLISHED_NS`) are measured.

use crate::daemon::Daemon;
use crate::fronts::{phase_index, Front, Source};
use crate::helpers::{realtime_ns, wait_until};
use hdrhistogram::Histogram;
use ringcast_client::Client;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub(crate) const HEALTHY_INTERVAL: Duration = Duration::from_millis(5);
pub(crate) const PHASES: [&str; 3] = ["before", "fault", "after"];

/// One front's counts, shared by its subscriber thread and the publisher.
pub(crate) struct FrontShared {
    pub(crate) front: Front,
    pub(crate) published: [AtomicU64; 3],
    pub(crate) received: [AtomicU64; 3],
    /// Seq or payload index not one past the previous frame's.
    pub(crate) order_violations: AtomicU64,
    /// Frames missing between two received ones (seq jumps).
    pub(crate) seq_gaps: AtomicU64,
    pub(crate) hist: Mutex<[Histogram<u64>; 3]>,
    /// Per phase: (latency us, realtime ns at receipt) of the slowest frame.
    pub(crate) worst: Mutex<[(u64, u64); 3]>,
}

/// Shared between the driver and the healthy threads.
pub(crate) struct HealthyShared {
    pub(crate) phase: AtomicUsize,
    pub(crate) stop: AtomicBool,
    pub(crate) abort: AtomicBool,
    pub(crate) fronts: Vec<FrontShared>,
    pub(crate) errors: Mutex<Vec<String>>,
}

pub(crate) struct Healthy {
    pub(crate) shared: Arc<HealthyShared>,
    pub(crate) publisher: Option<JoinHandle<()>>,
    pub(crate) subscribers: Vec<JoinHandle<()>>,
}

#[derive(Clone, Debug)]
pub(crate) struct PhaseStats {
    pub(crate) published: u64,
    pub(crate) received: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    /// Realtime ns at which the slowest frame arrived.
    pub(crate) worst_at_ns: u64,
}

/// What one front's healthy subscriber saw.
#[derive(Clone, Debug)]
pub(crate) struct FrontReport {
    pub(crate) front: Front,
    pub(crate) phases: Vec<PhaseStats>,
    pub(crate) order_violations: u64,
    pub(crate) seq_gaps: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct HealthyReport {
    pub(crate) fronts: Vec<FrontReport>,
    pub(crate) errors: Vec<String>,
}

impl Healthy {
    /// A healthy subscriber on each of `fronts` and the publisher; returns
    /// once every subscription is confirmed.
    pub(crate) fn start(d: &Daemon, fronts: &[Front]) -> Healthy {
        let hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let mut sources = Vec::new();
        for &f in fronts {
            let (src, first_seq) = Source::subscribe(f, d.native, d.http, d.resp)
                .unwrap_or_else(|e| panic!("healthy {} subscriber: {e}", f.name()));
            sources.push((src, first_seq));
        }
        let shared = Arc::new(HealthyShared {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            fronts: fronts
                .iter()
                .map(|&front| FrontShared {
                    front,
                    published: Default::default(),
                    received: Default::default(),
                    order_violations: AtomicU64::new(0),
                    seq_gaps: AtomicU64::new(0),
                    hist: Mutex::new([hist(), hist(), hist()]),
                    worst: Mutex::new([(0, 0); 3]),
                })
                .collect(),
            errors: Mutex::new(Vec::new()),
        });
        let mut publ = Client::connect(d.native).expect("healthy publisher connects");
        publ.ping(b"").expect("healthy publisher PING");
        let subscribers = sources
            .into_iter()
            .enumerate()
            .map(|(i, (mut src, first_seq))| {
                let s = shared.clone();
                thread::spawn(move || {
                    let f = &s.fronts[i];
                    let mut next_seq = first_seq;
                    let mut next_index = 0u64;
                    loop {
                        let total_pub: u64 =
                            f.published.iter().map(|a| a.load(Ordering::Acquire)).sum();
                        let total_rcv: u64 =
                            f.received.iter().map(|a| a.load(Ordering::Relaxed)).sum();
                        if s.abort.load(Ordering::Acquire)
                            || (s.stop.load(Ordering::Acquire) && total_rcv >= total_pub)
                        {
                            return;
                        }
                        match src.next() {
                            Ok(Some(m)) => {
                                let now_ns = realtime_ns();
                                let lat_us = now_ns.saturating_sub(m.ts_ns) / 1000;
                                if let (Some(seq), Some(want)) = (m.seq, next_seq) {
                                    if seq != want {
                                        f.order_violations
                                            .fetch_add(u64::from(seq < want), Ordering::Relaxed);
                                        if seq > want {
                                            f.seq_gaps.fetch_add(seq - want, Ordering::Relaxed);
                                        }
                                    }
                                }
                                next_seq = m.seq.map(|q| q + 1);
                                let (phase, index) = phase_index(&m.payload);
                                if index != next_index {
                                    f.order_violations.fetch_add(
                                        u64::from(index < next_index),
                                        Ordering::Relaxed,
                                    );
                                }
                                next_index = index.wrapping_add(1);
                                let phase = phase.min(2);
                                f.received[phase].fetch_add(1, Ordering::Relaxed);
                                let _ = f.hist.lock().unwrap()[phase].record(lat_us.max(1));
                                let mut w = f.worst.lock().unwrap();
                                if lat_us > w[phase].0 {
                                    w[phase] = (lat_us, now_ns);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                s.errors
                                    .lock()
                                    .unwrap()
                                    .push(format!("{} subscriber: {e}", f.front.name()));
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        let s = shared.clone();
        let publisher = thread::spawn(move || {
            let mut index = 0u64;
            let mut next = Instant::now();
            while !s.stop.load(Ordering::Acquire) && !s.abort.load(Ordering::Acquire) {
                let phase = s.phase.load(Ordering::Acquire);
                let payload = format!("{phase}:{index}:{}", realtime_ns());
                for f in &s.fronts {
                    if let Err(e) = publ.publish(f.front.topic(), payload.as_bytes()) {
                        s.errors.lock().unwrap().push(format!("publisher: {e}"));
                        return;
                    }
                    f.published[phase].fetch_add(1, Ordering::Release);
                }
                index += 1;
                next += HEALTHY_INTERVAL;
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            // Every publish before this PING reached the server.
            let _ = publ.ping(b"");
        });
        Healthy {
            shared,
            publisher: Some(publisher),
            subscribers,
        }
    }

    pub(crate) fn set_phase(&self, p: usize) {
        self.shared.phase.store(p, Ordering::Release);
    }

    /// Stops publishing, waits up to `drain` for the frames in flight.
    pub(crate) fn finish(mut self, drain: Duration) -> HealthyReport {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(p) = self.publisher.take() {
            let _ = p.join();
        }
        let s = self.shared.clone();
        let done = wait_until(drain, || self.subscribers.iter().all(|h| h.is_finished()));
        if !done {
            s.abort.store(true, Ordering::Release);
        }
        for h in self.subscribers.drain(..) {
            let _ = h.join();
        }
        let fronts = s
            .fronts
            .iter()
            .map(|f| {
                let hist = f.hist.lock().unwrap();
                let worst = f.worst.lock().unwrap();
                FrontReport {
                    front: f.front,
                    phases: (0..3)
                        .map(|i| PhaseStats {
                            published: f.published[i].load(Ordering::Acquire),
                            received: f.received[i].load(Ordering::Acquire),
                            p50_us: hist[i].value_at_quantile(0.50),
                            p99_us: hist[i].value_at_quantile(0.99),
                            max_us: hist[i].max(),
                            worst_at_ns: worst[i].1,
                        })
                        .collect(),
                    order_violations: f.order_violations.load(Ordering::Acquire),
                    seq_gaps: f.seq_gaps.load(Ordering::Acquire),
                }
            })
            .collect();
        let errors = s.errors.lock().unwrap().clone();
        HealthyReport { fronts, errors }
    }
}

impl Drop for Healthy {
    fn drop(&mut self) {
        self.shared.abort.store(true, Ordering::Release);
    }
}
