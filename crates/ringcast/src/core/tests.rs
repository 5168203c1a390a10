//! The cross-core protocol, in memory and deterministic: several `Core`s
//! with no ring and no socket, clients that are just connection indexes fed
//! bytes, and the messages between cores delivered by the test in an
//! adversarial order (any interleaving across pairs of cores, FIFO within a
//! pair, as the mailboxes guarantee). Each seed is a different schedule;
//! a failure names its seed so it can be replayed.
//!
//! The same simulation is the `topics` fuzz target (`fuzz/`, built with the
//! `fuzzing` feature): [`fuzz_topics`] takes every choice (which client does
//! what, which message is delivered next) from the fuzzer's bytes instead of
//! a seeded generator, and checks the same promises plus the subscription
//! counts at every quiescent point.
#![cfg_attr(not(test), allow(dead_code))]

use super::*;
use crate::pool::Pool;
use crate::proto::{decode_server, ClientFrame, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Where a schedule's choices come from.
trait Choose {
    /// A choice among `n` (n > 0).
    fn below(&mut self, n: usize) -> usize;
    /// Whether the choices have run out (the schedule then winds down).
    fn exhausted(&self) -> bool {
        false
    }
}

/// A deterministic generator (xorshift64*): schedules replay from their seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl Choose for Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Choices read from a fuzzer's bytes, one byte each; 0 once they run out.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Choose for Bytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        usize::from(b) % n
    }
    fn exhausted(&self) -> bool {
        self.at >= self.data.len()
    }
}

static CLOCK: AtomicU64 = AtomicU64::new(1_000_000);

/// The simulated CLOCK_REALTIME: every read is a later instant.
fn fake_realtime() -> u64 {
    CLOCK.fetch_add(1, Ordering::Relaxed)
}

fn no_unacked(_: RawFd) -> u32 {
    0
}

/// What a client received, decoded and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Data {
        topic: String,
        seq: u64,
        payload: Vec<u8>,
    },
    SubAck {
        topic: String,
        next_seq: u64,
        epoch: u64,
    },
    UnsubAck(String),
    Pong(Vec<u8>),
    Error(u16),
}

/// A client: a connection on one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Client {
    core: usize,
    idx: u32,
}

struct Sim {
    cores: Vec<Core>,
    /// In flight between cores: queues[from][to], FIFO.
    queues: Vec<Vec<VecDeque<Msg>>>,
    /// Bytes each client has been sent and not yet decoded.
    rx: HashMap<Client, Vec<u8>>,
}

impl Sim {
    fn new(n: usize, config: Config) -> Sim {
        let config = Config { cores: n, ..config };
        let pool = Pool::new(8 << 20, n, 64 << 10).expect("frame pool");
        let shared = Arc::new(Shared::new(config, pool, 1_000));
        let cores = (0..n)
            .map(|i| Core::new(i, shared.clone(), 1, no_unacked, fake_realtime))
            .collect();
        Sim {
            cores,
            queues: (0..n)
                .map(|_| (0..n).map(|_| VecDeque::new()).collect())
                .collect(),
            rx: HashMap::new(),
        }
    }

    fn connect(&mut self, core: usize) -> Client {
        let idx = self.cores[core]
            .handle_accept(Front::Native, -1)
            .expect("under the connection limit");
        let c = Client { core, idx };
        self.settle(core);
        c
    }

    /// Takes a core's outputs: messages into the queues, sends "written"
    /// into the clients' receive buffers (the socket takes everything).
    fn settle(&mut self, core: usize) {
        let n = self.cores.len();
        let c = &mut self.cores[core];
        c.end_batch();
        while let Some((to, msg)) = c.poll_msg() {
            assert!(to < n && to != core, "message to core {to} from {core}");
            self.queues[core][to].push_back(msg);
        }
        while let Some((a, gen)) = c.poll_action() {
            if let Action::Close(idx) = a {
                if c.conns.get(idx as usize).is_some_and(|x| x.gen == gen) {
                    c.release(idx);
                }
            }
        }
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        loop {
            let end = c.dirty_len();
            if end == 0 {
                break;
            }
            for i in 0..end {
                let idx = c.dirty_at(i);
                let Some(plan) = c.prepare_send(idx, &mut iov, 0) else {
                    continue;
                };
                let out = self.rx.entry(Client { core, idx }).or_default();
                for v in &iov[..plan.iovecs] {
                    // SAFETY: the iovecs point into frames the connection's
                    // send queue holds until handle_sent below.
                    out.extend_from_slice(unsafe {
                        std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
                    });
                }
                c.handle_sent(idx, plan.bytes as i32);
            }
            c.dirty_done(end);
            // Sends may have freed connections or queued more.
            while let Some((a, gen)) = c.poll_action() {
                if let Action::Close(idx) = a {
                    if c.conns.get(idx as usize).is_some_and(|x| x.gen == gen) {
                        c.release(idx);
                    }
                }
            }
        }
    }

    fn send(&mut self, client: Client, frame: ClientFrame<'_>) {
        if std::env::var("SIM_DEBUG").is_ok() {
            eprintln!("  {client:?} sends {frame:?}");
        }
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        self.cores[client.core].handle_bytes(client.idx, &bytes);
        self.settle(client.core);
    }

    /// Delivers the oldest message of one random non-empty pair of cores.
    /// Returns false when nothing is in flight.
    fn deliver_one(&mut self, rng: &mut impl Choose) -> bool {
        let n = self.cores.len();
        let busy: Vec<(usize, usize)> = (0..n)
            .flat_map(|f| (0..n).map(move |t| (f, t)))
            .filter(|&(f, t)| !self.queues[f][t].is_empty())
            .collect();
        if busy.is_empty() {
            return false;
        }
        let (from, to) = busy[rng.below(busy.len())];
        let msg = self.queues[from][to].pop_front().expect("non-empty");
        if std::env::var("SIM_DEBUG").is_ok() {
            let what = match &msg {
                Msg::Publish { .. } => "Publish".to_string(),
                Msg::Deliver { .. } => "Deliver".to_string(),
                Msg::Join { topic, .. } => format!("Join {}", String::from_utf8_lossy(topic)),
                Msg::Joined { topic, epoch, .. } => {
                    format!("Joined {} {epoch}", String::from_utf8_lossy(topic))
                }
                Msg::JoinRefused { .. } => "JoinRefused".to_string(),
                Msg::Leave { topic, .. } => format!("Leave {}", String::from_utf8_lossy(topic)),
                Msg::Count { topic, subs, .. } => {
                    format!("Count {} {subs}", String::from_utf8_lossy(topic))
                }
                Msg::PatternJoin { pattern, .. } => {
                    format!("PatternJoin {}", String::from_utf8_lossy(pattern))
                }
                Msg::PatternKnown { .. } => "PatternKnown".to_string(),
                Msg::PatternLeave { .. } => "PatternLeave".to_string(),
                Msg::Counted { receivers, .. } => format!("Counted {receivers}"),
                Msg::Query { .. } => "Query".to_string(),
                Msg::Answer { .. } => "Answer".to_string(),
                Msg::Relayed { .. }
                | Msg::RelayGap { .. }
                | Msg::RelayTopicGap { .. }
                | Msg::RelayReady { .. }
                | Msg::Gap { .. } => {
                    unreachable!("no relay runs in these schedules")
                }
            };
            eprintln!("  deliver {from}->{to}: {what}");
        }
        self.cores[to].handle_msg(msg);
        self.settle(to);
        true
    }

    fn quiesce(&mut self, rng: &mut impl Choose) {
        while self.deliver_one(rng) {}
    }

    /// Everything `client` received since the last call.
    fn received(&mut self, client: Client) -> Vec<Got> {
        let buf = self.rx.entry(client).or_default();
        let mut out = Vec::new();
        let mut off = 0;
        while let Some((frame, used)) = decode_server(&buf[off..], 1 << 20)
            .expect("the core sends valid frames")
            .frame()
        {
            off += used;
            out.push(match frame {
                ServerFrame::Data {
                    topic,
                    seq,
                    payload,
                    ..
                } => Got::Data {
                    topic: topic.into(),
                    seq,
                    payload: payload.to_vec(),
                },
                ServerFrame::SubAck {
                    next_seq,
                    epoch,
                    topic,
                } => Got::SubAck {
                    topic: topic.into(),
                    next_seq,
                    epoch,
                },
                ServerFrame::UnsubAck { topic } => Got::UnsubAck(topic.into()),
                ServerFrame::Pong { payload } => Got::Pong(payload.to_vec()),
                ServerFrame::AuthOk => panic!("no AUTH was sent"),
                ServerFrame::Gap { .. } => panic!("no relay runs in these schedules"),
                ServerFrame::Error { code, .. } => Got::Error(code),
            });
        }
        buf.drain(..off);
        out
    }
}

/// What one client did and saw, to check the stream against.
#[derive(Default)]
struct Track {
    /// Replies expected, in request order: ("sub"|"unsub"|"ping", topic or payload).
    expect: VecDeque<(&'static str, String)>,
    /// Topics subscribed as of the stream read so far: topic -> (epoch, next seq expected).
    subscribed: HashMap<String, (u64, u64)>,
    /// Topics with a SUBSCRIBE sent and its SUBACK not yet read.
    pending_sub: HashSet<String>,
    /// Topics this client holds (its own view, requests sent).
    holds: HashSet<String>,
}

const TOPICS: [&str; 5] = ["t.a", "t.b", "t.c", "t.d", "t.e"];

/// Random clients on random cores subscribe, unsubscribe, publish and ping
/// while the messages between cores are delivered in a random order; every
/// client's stream must keep the protocol's promises:
/// - replies come in request order;
/// - DATA of a topic arrives only between its SUBACK and UNSUBACK, with seqs
///   contiguous from the SUBACK's `next_seq`;
/// - one (topic, epoch, seq) is one payload for everybody;
/// - every publish made after a subscriber's SUBACK was sent, while it stays
///   subscribed, reaches it;
/// - a topic with no subscriber left is reclaimed, and comes back with a
///   new, greater epoch.
fn run_schedule(seed: u64, cores: usize, clients: usize, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    run(seed, &mut rng, cores, clients, steps, false);
}

/// The `topics` fuzz target: byte 0 picks 2 to 4 cores, byte 1 2 to 9
/// clients, and every later byte is one choice of [`run`]'s schedule (what
/// to do, who does it, on which topic, which message between cores arrives
/// next), with a quiescent count check among the actions.
pub fn fuzz_topics(data: &[u8]) {
    let [c, k, rest @ ..] = data else {
        return;
    };
    let cores = 2 + usize::from(*c) % 3;
    let clients = 2 + usize::from(*k) % 8;
    let mut choices = Bytes { data: rest, at: 0 };
    run(0, &mut choices, cores, clients, 4096, true);
}

/// Delivers everything in flight, then checks each core's counts against
/// what the clients asked for (every request has been answered by now):
/// each core holds one subscription per (client of its own, topic held),
/// each topic's local subscriber list has exactly those clients, and a
/// topic nobody holds exists on no core (it was reclaimed).
fn check_counts(
    sim: &mut Sim,
    rng: &mut impl Choose,
    who: &[Client],
    track: &HashMap<Client, Track>,
) {
    sim.quiesce(rng);
    for (core, c) in sim.cores.iter().enumerate() {
        let mine: Vec<&Client> = who.iter().filter(|w| w.core == core).collect();
        let held: usize = mine.iter().map(|w| track[w].holds.len()).sum();
        assert_eq!(c.topics.subscriptions(), held, "core {core}: subscriptions");
        for topic in TOPICS {
            let holders = mine
                .iter()
                .filter(|w| track[w].holds.contains(topic))
                .count();
            let anywhere = who.iter().any(|w| track[w].holds.contains(topic));
            match c.topics.get(Ns::Channel, topic.as_bytes()) {
                Some(id) => {
                    let t = c.topics.topic(id);
                    assert_eq!(t.subs.len(), holders, "core {core}: {topic} subscribers");
                    assert!(
                        anywhere,
                        "core {core}: {topic} held by nobody, not reclaimed"
                    );
                }
                None => assert_eq!(holders, 0, "core {core}: {topic} missing"),
            }
        }
    }
}

/// One schedule: `steps` random actions (fewer when `rng` runs out), then
/// everything delivered, then everybody unsubscribes; see [`run_schedule`]
/// for what is checked. `counts`: one action in 11 is [`check_counts`].
fn run(seed: u64, rng: &mut impl Choose, cores: usize, clients: usize, steps: usize, counts: bool) {
    let mut sim = Sim::new(cores, Config::default());
    let who: Vec<Client> = (0..clients).map(|i| sim.connect(i % cores)).collect();
    let mut track: HashMap<Client, Track> = who.iter().map(|&c| (c, Track::default())).collect();
    // (topic, epoch, seq) -> payload, across all clients.
    let mut agreed: HashMap<(String, u64, u64), Vec<u8>> = HashMap::new();
    // Publishes by id: (topic, payload); and which subscriptions must see it.
    let mut must_see: HashMap<(Client, String), Vec<Vec<u8>>> = HashMap::new();
    // Per client and topic: the SUBACKs of one client are in time order
    // (those of different clients are read in client order, not time order).
    let mut epochs_seen: HashMap<(Client, String), u64> = HashMap::new();
    let mut publish_id = 0u64;

    for step in 0..steps {
        if rng.exhausted() {
            break;
        }
        if std::env::var("SIM_DEBUG").is_ok() {
            eprintln!("step {step}");
        }
        match rng.below(if counts { 11 } else { 10 }) {
            0..=3 => {
                sim.deliver_one(rng);
            }
            10 => check_counts(&mut sim, rng, &who, &track),
            4 | 5 => {
                let c = who[rng.below(who.len())];
                let topic = TOPICS[rng.below(TOPICS.len())];
                let t = track.get_mut(&c).expect("tracked");
                if t.holds.contains(topic) {
                    t.holds.remove(topic);
                    t.expect.push_back(("unsub", topic.into()));
                    sim.send(c, ClientFrame::Unsubscribe { topic });
                } else {
                    t.holds.insert(topic.into());
                    t.pending_sub.insert(topic.into());
                    t.expect.push_back(("sub", topic.into()));
                    sim.send(c, ClientFrame::Subscribe { topic });
                }
            }
            6..=8 => {
                let c = who[rng.below(who.len())];
                let topic = TOPICS[rng.below(TOPICS.len())];
                publish_id += 1;
                let payload = format!("{seed}/{publish_id}").into_bytes();
                // Every subscriber whose SUBACK was already sent (read by
                // the test below, which reads streams eagerly) and that still
                // holds the topic must see this publish.
                for (&other, t) in &track {
                    if t.holds.contains(topic) && t.subscribed.contains_key(topic) {
                        must_see
                            .entry((other, topic.into()))
                            .or_default()
                            .push(payload.clone());
                    }
                }
                sim.send(
                    c,
                    ClientFrame::Publish {
                        topic,
                        payload: &payload,
                    },
                );
            }
            _ => {
                let c = who[rng.below(who.len())];
                let p = format!("p{step}");
                track
                    .get_mut(&c)
                    .expect("tracked")
                    .expect
                    .push_back(("ping", p.clone()));
                sim.send(
                    c,
                    ClientFrame::Ping {
                        payload: p.as_bytes(),
                    },
                );
            }
        }
        // Read every stream eagerly and check it as it arrives.
        for &c in &who {
            for got in sim.received(c) {
                check(
                    seed,
                    c,
                    got,
                    track.get_mut(&c).expect("tracked"),
                    &mut agreed,
                    &mut must_see,
                    &mut epochs_seen,
                );
            }
        }
    }
    // Deliver what is in flight, reading after every delivery (epochs are
    // checked in the order they were sent).
    loop {
        let more = sim.deliver_one(rng);
        for &c in &who {
            for got in sim.received(c) {
                check(
                    seed,
                    c,
                    got,
                    track.get_mut(&c).expect("tracked"),
                    &mut agreed,
                    &mut must_see,
                    &mut epochs_seen,
                );
            }
        }
        if !more {
            break;
        }
    }
    for &c in &who {
        let t = &track[&c];
        assert!(
            t.expect.is_empty(),
            "seed {seed}: {c:?} never got {:?}",
            t.expect
        );
    }
    for ((c, topic), left) in &must_see {
        assert!(
            left.is_empty(),
            "seed {seed}: {c:?} subscribed to {topic} missed {} publishes, first {:?}",
            left.len(),
            String::from_utf8_lossy(&left[0])
        );
    }
    // Everybody leaves: every topic is reclaimed on every core.
    for &c in &who {
        let held: Vec<String> = track[&c].holds.iter().cloned().collect();
        for topic in held {
            sim.send(c, ClientFrame::Unsubscribe { topic: &topic });
        }
    }
    sim.quiesce(rng);
    for core in &sim.cores {
        assert_eq!(
            core.topics.len(),
            0,
            "seed {seed}: core {} kept topics",
            core.id
        );
        assert_eq!(core.topics.subscriptions(), 0);
    }
    assert_eq!(sim.cores[0].shared.topics.load(Ordering::Relaxed), 0);
    // Every frame was sent and given back (counted in debug builds only).
    let live = sim.cores[0].shared.pool.live_refs();
    assert!(
        matches!(live, None | Some(0)),
        "seed {seed}: {live:?} frame references left"
    );
}

fn check(
    seed: u64,
    c: Client,
    got: Got,
    t: &mut Track,
    agreed: &mut HashMap<(String, u64, u64), Vec<u8>>,
    must_see: &mut HashMap<(Client, String), Vec<Vec<u8>>>,
    epochs_seen: &mut HashMap<(Client, String), u64>,
) {
    match got {
        Got::Data {
            topic,
            seq,
            payload,
        } => {
            let Some((epoch, next)) = t.subscribed.get_mut(&topic) else {
                panic!("seed {seed}: {c:?} got DATA {topic}#{seq} while not subscribed");
            };
            assert_eq!(seq, *next, "seed {seed}: {c:?} {topic}: seq not contiguous");
            *next += 1;
            let prev = agreed
                .entry((topic.clone(), *epoch, seq))
                .or_insert_with(|| payload.clone());
            assert_eq!(
                *prev, payload,
                "seed {seed}: {topic} epoch {epoch} seq {seq} is two payloads"
            );
            if let Some(list) = must_see.get_mut(&(c, topic)) {
                list.retain(|p| *p != payload);
            }
        }
        Got::SubAck {
            topic,
            next_seq,
            epoch,
        } => {
            let (kind, what) = t.expect.pop_front().expect("a reply to something");
            assert_eq!(
                (kind, what.as_str()),
                ("sub", topic.as_str()),
                "seed {seed}: {c:?} replies out of order"
            );
            if std::env::var("SIM_DEBUG").is_ok() {
                eprintln!("{c:?} SUBACK {topic} next {next_seq} epoch {epoch}");
            }
            if t.pending_sub.remove(&topic) {
                // A topic's epoch never goes back: incarnations only grow.
                let last = epochs_seen.entry((c, topic.clone())).or_insert(epoch);
                assert!(epoch >= *last, "seed {seed}: {topic}: epoch went back");
                *last = epoch;
            }
            match t.subscribed.get(&topic) {
                // A repeated SUBSCRIBE: nothing changes.
                Some(&(e, next)) => assert_eq!(
                    (e, next),
                    (epoch, next_seq),
                    "seed {seed}: {c:?} {topic}: a repeated SUBACK moved"
                ),
                None => {
                    t.subscribed.insert(topic, (epoch, next_seq));
                }
            }
        }
        Got::UnsubAck(topic) => {
            if std::env::var("SIM_DEBUG").is_ok() {
                eprintln!("{c:?} UNSUBACK {topic}");
            }
            let (kind, what) = t.expect.pop_front().expect("a reply to something");
            assert_eq!(
                (kind, what.as_str()),
                ("unsub", topic.as_str()),
                "seed {seed}: {c:?} replies out of order"
            );
            t.subscribed.remove(&topic);
            must_see.remove(&(c, topic));
        }
        Got::Pong(p) => {
            let (kind, what) = t.expect.pop_front().expect("a reply to something");
            assert_eq!(
                (kind, what.as_bytes()),
                ("ping", p.as_slice()),
                "seed {seed}: {c:?} replies out of order"
            );
        }
        Got::Error(code) => panic!("seed {seed}: {c:?} got ERROR {code}"),
    }
}

#[test]
fn random_schedules_keep_order_seq_and_delivery_on_two_cores() {
    // Miri (scripts/miri.sh) interprets every step: two schedules there.
    for seed in 0..if cfg!(miri) { 2 } else { 150 } {
        run_schedule(seed, 2, 6, if cfg!(miri) { 80 } else { 400 });
    }
}

#[test]
fn random_schedules_keep_order_seq_and_delivery_on_four_cores() {
    for seed in 1000..if cfg!(miri) { 1001 } else { 1100 } {
        run_schedule(seed, 4, 10, if cfg!(miri) { 80 } else { 500 });
    }
}

/// A topic whose owner sees a `Leave` and a new `Join` from the same core
/// back to back, while frames of the old incarnation are still in flight to
/// that core: the new subscriber's stream starts at its SUBACK's `next_seq`
/// under the new epoch, with none of the old frames.
#[test]
fn leave_then_join_with_frames_in_flight_starts_a_clean_incarnation() {
    let topic = TOPICS
        .iter()
        .copied()
        .find(|t| crate::topic::owner_of(t.as_bytes(), 2) == 0)
        .expect("some topic is owned by core 0");
    let mut rng = Rng(7);
    let mut sim = Sim::new(2, Config::default());
    let publisher = sim.connect(0);
    let first = sim.connect(1);
    sim.send(first, ClientFrame::Subscribe { topic });
    sim.quiesce(&mut rng);
    let Got::SubAck { epoch: e1, .. } = sim.received(first)[0].clone() else {
        panic!("SUBACK first");
    };
    // Frames of incarnation 1 are queued to core 1 but not delivered...
    for i in 0..3u8 {
        sim.send(
            publisher,
            ClientFrame::Publish {
                topic,
                payload: &[i],
            },
        );
    }
    // ...when core 1's only subscriber leaves and another one joins.
    sim.send(first, ClientFrame::Unsubscribe { topic });
    let second = sim.connect(1);
    sim.send(second, ClientFrame::Subscribe { topic });
    sim.send(
        publisher,
        ClientFrame::Publish {
            topic,
            payload: b"new",
        },
    );
    sim.quiesce(&mut rng);
    sim.send(
        publisher,
        ClientFrame::Publish {
            topic,
            payload: b"newer",
        },
    );
    sim.quiesce(&mut rng);
    let got = sim.received(second);
    let Got::SubAck {
        epoch: e2,
        next_seq,
        ..
    } = got[0].clone()
    else {
        panic!("SUBACK first, got {got:?}");
    };
    assert!(e2 > e1, "a new incarnation has a greater epoch");
    assert_eq!(next_seq, 1);
    let data: Vec<(u64, Vec<u8>)> = got[1..]
        .iter()
        .map(|g| match g {
            Got::Data { seq, payload, .. } => (*seq, payload.clone()),
            other => panic!("only DATA after the SUBACK, got {other:?}"),
        })
        .collect();
    assert_eq!(data.last(), Some(&(data.len() as u64, b"newer".to_vec())));
    assert!(
        data.iter().all(|(_, p)| p.len() > 1),
        "no frame of the old incarnation: {data:?}"
    );
}

/// A client that pipelines PINGs and never reads: its replies count toward
/// its backlog, and it is cut with ERROR 6 (slow consumer) as a subscriber
/// would be, dropping what it was owed.
#[test]
fn replies_count_toward_the_backlog_limit() {
    let config = Config {
        max_frame: 1024,
        max_backlog: 4096,
        ..Config::default()
    };
    let mut sim = Sim::new(1, config);
    let c = sim.connect(0);
    let mut bytes = Vec::new();
    for _ in 0..200 {
        ClientFrame::Ping { payload: &[7; 64] }.encode(&mut bytes);
    }
    // Nothing is "written" here: the replies pile up in the send queue.
    sim.cores[0].handle_bytes(c.idx, &bytes);
    let conn = &sim.cores[0].conns[c.idx as usize];
    assert_eq!(conn.life, Life::Overflowing, "past the limit mid-batch");
    sim.cores[0].end_batch();
    let conn = &sim.cores[0].conns[c.idx as usize];
    assert!(matches!(conn.life, Life::Draining { hurry: true, .. }));
    assert!(conn.queued < 4096, "owed frames were dropped for the ERROR");
    assert_eq!(
        sim.cores[0].stats().slow_consumers[0].load(Ordering::Relaxed),
        1
    );
    sim.settle(0);
    let got = sim.received(c);
    assert_eq!(got.last(), Some(&Got::Error(6)));
    assert!(got[..got.len() - 1]
        .iter()
        .all(|g| matches!(g, Got::Pong(_))));
}

#[cfg(test)]
mod stamps {
    use super::super::data_ts;
    use crate::proto::{data_frame_len, encode_data};
    use crate::ws::frame::{header_len, write_header, Opcode};

    fn data(ts: u64, payload_len: usize) -> Vec<u8> {
        let len = data_frame_len(1, payload_len);
        let mut f = vec![0; len];
        encode_data(&mut f, 7, ts, b"t", &vec![1; payload_len]);
        f
    }

    #[test]
    fn the_publish_stamp_is_found_behind_every_websocket_header_length() {
        for payload in [10, 200, 70_000] {
            let native = data(123_456, payload);
            assert_eq!(data_ts(&native, 0), Some(123_456));
            let h = header_len(native.len());
            let mut ws = vec![0; h];
            write_header(&mut ws, Opcode::Binary, native.len());
            ws.extend_from_slice(&native);
            assert_eq!(data_ts(&ws, 1), Some(123_456), "payload {payload}");
        }
    }

    #[test]
    fn other_frames_give_no_sample() {
        assert_eq!(
            data_ts(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 0),
            None
        );
        // A pong whose payload mimics a DATA frame is not a DATA message.
        let native = data(5, 10);
        let mut pong = vec![0x8A, native.len() as u8];
        pong.extend_from_slice(&native);
        assert_eq!(data_ts(&pong, 1), None);
        assert_eq!(data_ts(&[], 0), None);
    }
}

/// The `topics` fuzz target's committed inputs (fuzz/corpus/topics and
/// fuzz/regressions/topics), replayed through the same check on stable.
#[test]
#[cfg_attr(miri, ignore = "reads files; the corpus is replayed natively")]
fn the_topics_fuzz_corpus_passes() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("topics")) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let ok = std::panic::catch_unwind(|| fuzz_topics(&data)).is_ok();
            assert!(
                ok,
                "{} fails the topics fuzz target (in fuzz/: cargo +nightly fuzz run topics <file>)",
                file.display()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no corpus under fuzz/corpus/topics");
}
