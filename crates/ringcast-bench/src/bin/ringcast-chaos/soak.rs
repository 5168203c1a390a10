//! `soak`: churn, reconnects and publishes over many topic names for a
//! long time; RSS and descriptor slopes, topics reclaimed at the end.

use crate::daemon::Daemon;
use crate::fronts::Front;
use crate::healthy::Healthy;
use crate::helpers::{ms, wait_until, Rng};
use ringcast_client::Client;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub(crate) struct SoakOpts {
    pub(crate) secs: u64,
    pub(crate) subs: usize,
    pub(crate) rate: f64,
    pub(crate) reconnects: f64,
    pub(crate) churn: f64,
    pub(crate) topics: usize,
    pub(crate) csv: PathBuf,
}

pub(crate) fn topic_name(i: u64) -> String {
    format!("soak.{i}")
}

/// One worker's subscribers: a connection and the topics it holds.
pub(crate) struct SoakSub {
    pub(crate) client: Client,
    pub(crate) held: BTreeSet<u64>,
}

pub(crate) fn soak_connect(addr: SocketAddr, rng: &mut Rng, topics: usize) -> Option<SoakSub> {
    let mut client = Client::connect(addr).ok()?;
    let mut held = BTreeSet::new();
    for _ in 0..5 {
        let t = rng.below(topics as u64);
        if client.subscribe(&topic_name(t)).is_ok() {
            held.insert(t);
        }
    }
    Some(SoakSub { client, held })
}

pub(crate) fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 3600.0
    }
}

pub(crate) fn soak(bin: &PathBuf, o: &SoakOpts) -> bool {
    let mut d = Daemon::spawn(bin, 20000, &[]);
    let addr = d.native;
    // The soak's healthy subscriber is the native one only (its figures
    // and its topic count are the soak's as before).
    let healthy = Healthy::start(&d, &[Front::Native]);
    let stop = Arc::new(AtomicBool::new(false));
    let workers = 4usize;
    let reconnects = Arc::new(AtomicU64::new(0));
    let churn_ops = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(AtomicBool::new(false));
    let (held_tx, held_rx) = std::sync::mpsc::channel::<BTreeSet<u64>>();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (stop, reconnects, churn_ops, ready) = (
                stop.clone(),
                reconnects.clone(),
                churn_ops.clone(),
                ready.clone(),
            );
            let (close, held_tx) = (close.clone(), held_tx.clone());
            let per = o.subs / workers;
            let topics = o.topics;
            let recon_interval = Duration::from_secs_f64(workers as f64 / o.reconnects.max(0.001));
            let churn_interval = Duration::from_secs_f64(workers as f64 / o.churn.max(0.001));
            thread::spawn(move || {
                let mut rng = Rng(0xA076_1D64_78BD_642F ^ ((w as u64 + 1) * 0x9E37));
                let mut subs: Vec<SoakSub> = (0..per)
                    .filter_map(|_| soak_connect(addr, &mut rng, topics))
                    .collect();
                ready.fetch_add(1, Ordering::Release);
                let mut next_recon = Instant::now();
                let mut next_churn = Instant::now();
                while !stop.load(Ordering::Acquire) {
                    // Catch up (bounded) when an iteration took longer than
                    // an interval, so the rates asked for are the rates run.
                    let now = Instant::now();
                    let mut burst = 0;
                    while now >= next_recon && !subs.is_empty() && burst < 8 {
                        burst += 1;
                        let i = rng.below(subs.len() as u64) as usize;
                        if let Some(s) = soak_connect(addr, &mut rng, topics) {
                            subs[i] = s;
                            reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        next_recon += recon_interval;
                    }
                    let mut burst = 0;
                    while now >= next_churn && !subs.is_empty() && burst < 8 {
                        burst += 1;
                        let i = rng.below(subs.len() as u64) as usize;
                        let s = &mut subs[i];
                        // The drain below leaves a 100 us read timeout; a
                        // reply slower than that must not count as refused.
                        let _ = s.client.set_read_timeout(Some(Duration::from_secs(10)));
                        let unsub = s.held.len() >= 5 || (!s.held.is_empty() && rng.below(2) == 0);
                        if unsub {
                            let k = rng.below(s.held.len() as u64) as usize;
                            let t = *s.held.iter().nth(k).expect("held");
                            if s.client.unsubscribe(&topic_name(t)).is_ok() {
                                s.held.remove(&t);
                            }
                        } else {
                            let t = rng.below(topics as u64);
                            if s.client.subscribe(&topic_name(t)).is_ok() {
                                s.held.insert(t);
                            }
                        }
                        churn_ops.fetch_add(1, Ordering::Relaxed);
                        next_churn += churn_interval;
                    }
                    // Drain what arrived (a few frames per minute each), so
                    // no subscriber is cut off for not reading.
                    for s in subs.iter_mut().filter(|_| rng.below(50) == 0) {
                        let _ = s.client.set_read_timeout(Some(Duration::from_micros(100)));
                        while s.client.next_frame().is_ok() {}
                    }
                    let wake = next_recon.min(next_churn);
                    let now = Instant::now();
                    if wake > now {
                        thread::sleep((wake - now).min(Duration::from_millis(20)));
                    }
                }
                let _ = held_tx.send(subs.iter().flat_map(|s| s.held.iter().copied()).collect());
                // Keep the connections open until the driver has read the
                // daemon's topic count.
                while !close.load(Ordering::Acquire) {
                    thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(300), || {
        ready.load(Ordering::Acquire) == workers
    });
    // The publisher: random topics of the 10,000 names.
    let pstop = stop.clone();
    let (rate, topics) = (o.rate, o.topics);
    let publisher = thread::spawn(move || {
        let mut c = Client::connect(addr).expect("soak publisher");
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let payload = vec![b'p'; 128];
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut next = Instant::now();
        while !pstop.load(Ordering::Acquire) {
            let _ = c.publish(&topic_name(rng.below(topics as u64)), &payload);
            next += interval;
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    });
    let mut csv = String::from("seconds,rss_bytes,fds,topics,subscriptions,connections\n");
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    let start = Instant::now();
    let end = start + Duration::from_secs(o.secs);
    let mut next_sample = start;
    let mut dead = false;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_sample {
            let t = start.elapsed().as_secs_f64();
            let (rss, fds) = (d.rss_bytes(), d.fds());
            let m = d.metrics();
            let g = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
            let conns: f64 = m
                .iter()
                .filter(|(k, _)| k.starts_with("ringcast_connections{"))
                .map(|(_, v)| v)
                .sum();
            csv.push_str(&format!(
                "{t:.0},{rss},{fds},{},{},{conns}\n",
                g("ringcast_topics"),
                g("ringcast_subscriptions")
            ));
            let _ = std::fs::write(&o.csv, &csv);
            eprintln!(
                "soak: {t:>6.0} s rss {:.1} MiB fds {fds} topics {} reconnects {} churn {}",
                rss as f64 / 1048576.0,
                g("ringcast_topics"),
                reconnects.load(Ordering::Relaxed),
                churn_ops.load(Ordering::Relaxed)
            );
            samples.push((t, rss as f64, fds as f64));
            next_sample += Duration::from_secs(10);
        }
        if !d.alive() {
            dead = true;
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Release);
    // The load ran from `start` until here; the wind-down below is not part
    // of the achieved rates.
    let active = start.elapsed().as_secs_f64();
    let _ = publisher.join();
    let mut held = BTreeSet::new();
    for _ in 0..workers {
        if let Ok(h) = held_rx.recv_timeout(Duration::from_secs(60)) {
            held.extend(h);
        }
    }
    // Topics still subscribed (the soak's and the healthy one) against the
    // daemon's count, once the last churn replies are in.
    let topics_with_subs = held.len() + 1;
    let mut topics_live = f64::NAN;
    wait_until(Duration::from_secs(10), || {
        topics_live = d.metric_sum("ringcast_topics");
        topics_live == topics_with_subs as f64
    });
    close.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    let report = healthy.finish(Duration::from_secs(5));
    let hr = &report.fronts[0];
    // Everybody gone: every topic must be reclaimed.
    let mut left = f64::NAN;
    wait_until(Duration::from_secs(10), || {
        left = d.metric_sum("ringcast_topics");
        left == 0.0
    });
    let elapsed = start.elapsed().as_secs_f64();
    let warm = samples.iter().map(|s| s.0).fold(0.0, f64::max) * 0.1;
    let after: Vec<_> = samples.iter().filter(|s| s.0 >= warm.max(60.0)).collect();
    let rss_slope = slope_per_hour(&after.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
    let fd_slope = slope_per_hour(&after.iter().map(|s| (s.0, s.2)).collect::<Vec<_>>());
    let first = after.first().map(|s| s.1).unwrap_or(0.0);
    let last = after.last().map(|s| s.1).unwrap_or(0.0);
    let delivered: u64 = hr.phases.iter().map(|p| p.received).sum();
    let published: u64 = hr.phases.iter().map(|p| p.published).sum();
    println!(
        "soak: {active:.0} s under load ({elapsed:.0} s with the wind-down), {} subscribers, {} msg/s, {} reconnects/s (done {}, {:.1}/s), {} sub/unsub per s (done {}, {:.1}/s), {} topic names",
        o.subs,
        o.rate,
        o.reconnects,
        reconnects.load(Ordering::Relaxed),
        reconnects.load(Ordering::Relaxed) as f64 / active,
        o.churn,
        churn_ops.load(Ordering::Relaxed),
        churn_ops.load(Ordering::Relaxed) as f64 / active,
        o.topics
    );
    println!(
        "soak: RSS {:.1} -> {:.1} MiB after warm-up, slope {:+.2} MiB/hour; fds slope {:+.1}/hour (samples {}, from {:.0} s)",
        first / 1048576.0,
        last / 1048576.0,
        rss_slope / 1048576.0,
        fd_slope,
        after.len(),
        after.first().map(|s| s.0).unwrap_or(0.0)
    );
    println!(
        "soak: at the end {topics_with_subs} topics had subscribers, ringcast_topics = {topics_live}; after every subscriber closed, ringcast_topics = {left} (expected 0)"
    );
    println!(
        "soak: healthy subscriber {delivered}/{published} frames, {} out of order, {} gaps, p99 {} ms, max {} ms",
        hr.order_violations,
        hr.seq_gaps,
        ms(hr.phases[0].p99_us),
        ms(hr.phases[0].max_us)
    );
    !dead
        && left == 0.0
        && topics_live == topics_with_subs as f64
        && hr.order_violations == 0
        && hr.seq_gaps == 0
        && delivered >= published
}

#[cfg(test)]
mod tests {
    use super::slope_per_hour;

    #[test]
    fn the_slope_is_per_hour_and_ignores_noise_around_a_flat_line() {
        // 1 MiB per 10 s: 360 MiB per hour.
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 10.0, i as f64 * 1048576.0))
            .collect();
        assert!((slope_per_hour(&line) - 360.0 * 1048576.0).abs() < 1.0);
        let flat: Vec<(f64, f64)> = (0..10)
            .map(|i| (i as f64 * 10.0, 100.0 + if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        assert!(slope_per_hour(&flat).abs() < 100.0);
        assert_eq!(slope_per_hour(&[(0.0, 5.0)]), 0.0);
    }
}
