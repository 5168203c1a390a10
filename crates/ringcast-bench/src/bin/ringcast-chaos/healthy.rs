//! The healthy subscriber and its publisher: the traffic every case and
//! the soak measure (delivery, order, latency from the frame's `ts_ns`).

use crate::helpers::{realtime_ns, wait_until};
use hdrhistogram::Histogram;
use ringcast_client::{Client, ClientError};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub(crate) const HEALTHY_TOPIC: &str = "chaos.healthy";
pub(crate) const HEALTHY_INTERVAL: Duration = Duration::from_millis(5);
pub(crate) const PHASES: [&str; 3] = ["before", "fault", "after"];

/// Shared between the driver and the healthy threads.
pub(crate) struct HealthyShared {
    pub(crate) phase: AtomicUsize,
    pub(crate) stop: AtomicBool,
    pub(crate) abort: AtomicBool,
    pub(crate) published: [AtomicU64; 3],
    pub(crate) received: [AtomicU64; 3],
    /// Seq or payload index not one past the previous frame's.
    pub(crate) order_violations: AtomicU64,
    /// Frames missing between two received ones (seq jumps).
    pub(crate) seq_gaps: AtomicU64,
    pub(crate) hist: Mutex<[Histogram<u64>; 3]>,
    /// Per phase: (latency us, realtime ns at receipt) of the slowest frame.
    pub(crate) worst: Mutex<[(u64, u64); 3]>,
    pub(crate) errors: Mutex<Vec<String>>,
}

pub(crate) struct Healthy {
    pub(crate) shared: Arc<HealthyShared>,
    pub(crate) publisher: Option<JoinHandle<()>>,
    pub(crate) subscriber: Option<JoinHandle<()>>,
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

#[derive(Clone, Debug)]
pub(crate) struct HealthyReport {
    pub(crate) phases: Vec<PhaseStats>,
    pub(crate) order_violations: u64,
    pub(crate) seq_gaps: u64,
    pub(crate) errors: Vec<String>,
}

impl Healthy {
    pub(crate) fn start(addr: SocketAddr) -> Healthy {
        let hist = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let shared = Arc::new(HealthyShared {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            published: Default::default(),
            received: Default::default(),
            order_violations: AtomicU64::new(0),
            seq_gaps: AtomicU64::new(0),
            hist: Mutex::new([hist(), hist(), hist()]),
            worst: Mutex::new([(0, 0); 3]),
            errors: Mutex::new(Vec::new()),
        });
        let mut sub = Client::connect(addr).expect("healthy subscriber connects");
        let ack = sub.subscribe(HEALTHY_TOPIC).expect("healthy SUBSCRIBE");
        sub.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let mut publ = Client::connect(addr).expect("healthy publisher connects");
        publ.ping(b"").expect("healthy publisher PING");
        let s = shared.clone();
        let subscriber = thread::spawn(move || {
            let mut next_seq = ack.next_seq;
            let mut next_index = 0u64;
            loop {
                let total_pub: u64 = s.published.iter().map(|a| a.load(Ordering::Acquire)).sum();
                let total_rcv: u64 = s.received.iter().map(|a| a.load(Ordering::Relaxed)).sum();
                if s.abort.load(Ordering::Acquire)
                    || (s.stop.load(Ordering::Acquire) && total_rcv >= total_pub)
                {
                    return;
                }
                match sub.next_message() {
                    Ok(m) => {
                        let now_ns = realtime_ns();
                        let lat_us = now_ns.saturating_sub(m.ts_ns) / 1000;
                        if m.seq != next_seq {
                            s.order_violations
                                .fetch_add(u64::from(m.seq < next_seq), Ordering::Relaxed);
                            if m.seq > next_seq {
                                s.seq_gaps.fetch_add(m.seq - next_seq, Ordering::Relaxed);
                            }
                        }
                        next_seq = m.seq + 1;
                        let text = String::from_utf8_lossy(&m.payload);
                        let (phase, index) = text
                            .split_once(':')
                            .and_then(|(p, i)| {
                                Some((p.parse::<usize>().ok()?, i.parse::<u64>().ok()?))
                            })
                            .unwrap_or((0, u64::MAX));
                        if index != next_index {
                            s.order_violations
                                .fetch_add(u64::from(index < next_index), Ordering::Relaxed);
                        }
                        next_index = index.wrapping_add(1);
                        let phase = phase.min(2);
                        s.received[phase].fetch_add(1, Ordering::Relaxed);
                        let _ = s.hist.lock().unwrap()[phase].record(lat_us.max(1));
                        let mut w = s.worst.lock().unwrap();
                        if lat_us > w[phase].0 {
                            w[phase] = (lat_us, now_ns);
                        }
                    }
                    Err(ClientError::Io(e))
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => {
                        s.errors.lock().unwrap().push(format!("subscriber: {e}"));
                        return;
                    }
                }
            }
        });
        let s = shared.clone();
        let publisher = thread::spawn(move || {
            let mut index = 0u64;
            let mut next = Instant::now();
            while !s.stop.load(Ordering::Acquire) && !s.abort.load(Ordering::Acquire) {
                let phase = s.phase.load(Ordering::Acquire);
                let payload = format!("{phase}:{index}");
                if let Err(e) = publ.publish(HEALTHY_TOPIC, payload.as_bytes()) {
                    s.errors.lock().unwrap().push(format!("publisher: {e}"));
                    return;
                }
                s.published[phase].fetch_add(1, Ordering::Release);
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
            subscriber: Some(subscriber),
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
        let done = wait_until(drain, || {
            self.subscriber.as_ref().is_some_and(|h| h.is_finished())
        });
        if !done {
            s.abort.store(true, Ordering::Release);
        }
        if let Some(h) = self.subscriber.take() {
            let _ = h.join();
        }
        let hist = s.hist.lock().unwrap();
        let phases = (0..3)
            .map(|i| PhaseStats {
                published: s.published[i].load(Ordering::Acquire),
                received: s.received[i].load(Ordering::Acquire),
                p50_us: hist[i].value_at_quantile(0.50),
                p99_us: hist[i].value_at_quantile(0.99),
                max_us: hist[i].max(),
                worst_at_ns: s.worst.lock().unwrap()[i].1,
            })
            .collect();
        drop(hist);
        let errors = s.errors.lock().unwrap().clone();
        HealthyReport {
            phases,
            order_violations: s.order_violations.load(Ordering::Acquire),
            seq_gaps: s.seq_gaps.load(Ordering::Acquire),
            errors,
        }
    }
}

impl Drop for Healthy {
    fn drop(&mut self) {
        self.shared.abort.store(true, Ordering::Release);
    }
}
