//! The NATS relay (scale-out, docs/SCALING.md): a thread of its own with a
//! single-threaded tokio runtime and the `async-nats` client, between this
//! node's reactors and NATS. It never runs on a reactor thread, and no
//! reactor ever waits for it:
//!
//! - reactors hand it work through one bounded SPSC queue each
//!   ([`RelayOut`]: publishes made on this node, interest in topics) and
//!   wake it through an eventfd when it is parked; a full queue drops the
//!   publish (counted, and announced to the other nodes as a gap);
//! - it hands each reactor what came from NATS through another bounded SPSC
//!   queue ([`Msg::Relayed`] to the topic's owner core, [`Msg::RelayGap`]),
//!   waking a parked reactor with MSG_RING from a small ring of its own.
//!
//! Subjects: `<prefix>.t.<topic>` for channels and `<prefix>.s.<topic>` for
//! shard channels, the topic's bytes in base64url without padding (any
//! bytes map to one valid subject token, and back). Headers:
//! `Ringcast-Node` (the origin node), `Ringcast-Ts` (the publish's ts_ns),
//! `Ringcast-Seq` (the origin's seq, 0 when the topic had no subscriber
//! there), `Ringcast-Id` (the origin relay's count of messages sent: a
//! receiver drops a message it already had, which a node's pattern and
//! topic subscriptions can both bring) and `Ringcast-Drops` (how many times
//! the origin dropped publishes before NATS got them: a receiver that sees
//! it grow reports a gap on that topic before the message).
//!
//! A reactor's subscription to a topic new on the node waits for the relay
//! to say its NATS subscription is in place ([`Msg::RelayReady`]): after
//! subscribing, the relay makes a request to `<prefix>.sync.<node>`, which
//! nobody answers; NATS's "no responders" reply comes after the server
//! processed the subscriptions sent before it on the same connection.

use crate::core::{Msg, RelayOut, Shared, RELAY_CONNECTED, RELAY_CONNECTING, RELAY_DISCONNECTED};
use crate::mailbox::{Consumer, Producer};
use crate::proto::DataView;
use crate::reactor::Waker;
use crate::sys;
use crate::topic::{owner_of, Ns};
use async_nats::{ConnectOptions, Event, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::{StreamExt, StreamMap};

/// Work taken from one reactor's queue before looking at NATS again.
const BATCH: usize = 1024;
/// How often the relay looks at the stop flag when nothing else happens.
const POLL: Duration = Duration::from_millis(50);
/// Longest wait for the NATS client (a full buffer while disconnected):
/// the relay never hangs on it, and stops when asked.
const CLIENT_WAIT: Duration = Duration::from_secs(1);
/// Message ids remembered per origin node, to drop duplicates.
const DEDUP_WINDOW: u64 = 1 << 16;

/// Ids of recent messages from one origin node.
#[derive(Default)]
struct Seen {
    ids: std::collections::HashSet<u64>,
    max: u64,
}

impl Seen {
    /// Records `id`; false when it was seen already (a duplicate).
    fn first(&mut self, id: u64) -> bool {
        if id + DEDUP_WINDOW <= self.max || !self.ids.insert(id) {
            return false;
        }
        self.max = self.max.max(id);
        if self.ids.len() as u64 > 2 * DEDUP_WINDOW {
            let floor = self.max.saturating_sub(DEDUP_WINDOW);
            self.ids.retain(|&i| i >= floor);
        }
        true
    }
}

/// The NATS subject of a topic.
pub fn subject(prefix: &str, ns: Ns, topic: &[u8]) -> String {
    let kind = if ns == Ns::Shard { "s" } else { "t" };
    format!("{prefix}.{kind}.{}", URL_SAFE_NO_PAD.encode(topic))
}

/// The namespace and topic a subject names, or None for another subject.
pub fn topic_of(prefix: &str, subject: &str) -> Option<(Ns, Vec<u8>)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (ns, enc) = if let Some(e) = rest.strip_prefix("t.") {
        (Ns::Channel, e)
    } else {
        (Ns::Shard, rest.strip_prefix("s.")?)
    };
    URL_SAFE_NO_PAD.decode(enc).ok().map(|t| (ns, t))
}

/// What the relay thread needs.
pub(crate) struct RelayParts {
    pub shared: Arc<Shared>,
    /// From each reactor, in reactor order.
    pub from_cores: Vec<Consumer<RelayOut>>,
    /// To each reactor, in reactor order.
    pub to_cores: Vec<Producer<Msg>>,
    /// The reactors' ring descriptors (for MSG_RING wake-ups).
    pub ring_fds: Vec<RawFd>,
    /// The relay's end of the socket pair reactors wake it through
    /// (`Shared::relay_wake` is the other end).
    pub wake: std::os::unix::net::UnixDatagram,
    pub node: String,
}

/// Runs the relay until `Shared::relay_stop`; then gives back every frame
/// still queued to it.
pub(crate) fn run(mut parts: RelayParts) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: "ringcast", event = "relay", "the NATS relay cannot start its runtime: {e}");
            return;
        }
    };
    rt.block_on(relay(&mut parts));
    // Reactors have stopped: what is left will never be sent.
    for q in &mut parts.from_cores {
        while let Some(out) = q.pop() {
            out.release(&parts.shared.pool);
        }
    }
}

struct Relay<'a> {
    parts: &'a mut RelayParts,
    waker: Option<Waker>,
    /// Wake-ups owed to reactors, by index.
    wake: Vec<bool>,
    /// A gap notice each reactor is owed but whose queue was full.
    owed_gap: Vec<Option<&'static str>>,
    /// Per origin node, the message ids seen lately.
    seen: HashMap<String, Seen>,
    /// Per topic this node wants, per origin node: its `Ringcast-Drops`.
    drops: HashMap<(Ns, Vec<u8>), HashMap<String, u64>>,
    /// The connection was lost (a reconnection is counted when it is back).
    lost: bool,
    /// A [`Msg::RelayReady`] each reactor is owed but whose queue was full.
    owed_ready: Vec<u64>,
}

impl Relay<'_> {
    /// Queues `msg` for reactor `core`; false when its queue is full.
    fn push(&mut self, core: usize, msg: Msg) -> bool {
        match self.parts.to_cores[core].push(msg) {
            Ok(()) => {
                if self.parts.shared.parked[core]
                    .0
                    .swap(false, Ordering::SeqCst)
                {
                    self.wake[core] = true;
                }
                true
            }
            Err(msg) => {
                msg.release(&self.parts.shared.pool);
                false
            }
        }
    }

    /// Every reactor is told that frames from other nodes may be lost.
    fn gap(&mut self, reason: &'static str) {
        for core in 0..self.parts.to_cores.len() {
            if !self.push(core, Msg::RelayGap { reason }) {
                self.owed_gap[core] = Some(reason);
            }
        }
    }

    fn flush_wakes(&mut self) {
        for core in 0..self.wake.len() {
            if std::mem::take(&mut self.wake[core]) {
                if let Some(w) = self.waker.as_mut() {
                    w.wake(self.parts.ring_fds[core]);
                }
            }
        }
    }

    fn count(&self, f: impl Fn(&crate::stats::CoreStats)) {
        if let Some(s) = self.parts.shared.stats.first() {
            f(s);
        }
    }

    /// A connection event from the NATS client.
    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.parts
                    .shared
                    .relay_state
                    .store(RELAY_CONNECTED, Ordering::Relaxed);
                tracing::info!(target: "ringcast", event = "relay", "NATS relay connected");
                if std::mem::take(&mut self.lost) {
                    self.count(|s| {
                        s.relay_reconnects.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
            Event::Disconnected => {
                self.parts
                    .shared
                    .relay_state
                    .store(RELAY_DISCONNECTED, Ordering::Relaxed);
                if !self.lost {
                    tracing::warn!(target: "ringcast", event = "relay", "NATS relay disconnected: reconnecting; subscribers get a GAP");
                    self.lost = true;
                    // Told now, so the notice comes before anything that
                    // arrives once the connection is back.
                    self.gap(
                        "the connection to NATS was lost: messages from other nodes may be missing",
                    );
                }
            }
            Event::SlowConsumer(_) => {
                tracing::warn!(target: "ringcast", event = "relay", "NATS reported this node a slow consumer: relayed messages were dropped");
                self.gap("NATS reported this node a slow consumer: messages were dropped");
            }
            _ => {}
        }
    }

    /// The confirmation request covering asks `covered` came back: when NATS
    /// answered (`ok`), each reactor learns its subscriptions up to there
    /// are in place. (Otherwise the next turn asks again.)
    fn synced(&mut self, covered: Option<Vec<u64>>, ok: bool, answered: &mut [u64]) {
        let Some(covered) = covered.filter(|_| ok) else {
            return;
        };
        for (core, &upto) in covered.iter().enumerate() {
            if upto > answered[core] {
                answered[core] = upto;
                if !self.push(core, Msg::RelayReady { upto }) {
                    self.owed_ready[core] = upto;
                }
            }
        }
    }

    /// Hands a message from NATS to the topic's owner core (after a gap
    /// notice for the topic when its origin dropped publishes since the
    /// last message seen from it).
    fn inbound(&mut self, prefix: &str, msg: async_nats::Message) {
        let Some((ns, topic)) = topic_of(prefix, msg.subject.as_str()) else {
            return;
        };
        let header = |name: &str| -> Option<String> {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let origin = header("Ringcast-Node").unwrap_or_default();
        if let Some(id) = header("Ringcast-Id").and_then(|v| v.parse::<u64>().ok()) {
            if !self.seen.entry(origin.clone()).or_default().first(id) {
                return;
            }
        }
        let ts_ns = header("Ringcast-Ts")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(sys::realtime_ns);
        let owner = owner_of(&topic, self.parts.to_cores.len());
        if let Some(drops) = header("Ringcast-Drops").and_then(|v| v.parse::<u64>().ok()) {
            let last = self
                .drops
                .entry((ns, topic.clone()))
                .or_default()
                .entry(origin)
                .or_insert(drops);
            if drops > *last {
                *last = drops;
                let gap = Msg::RelayTopicGap {
                    ns,
                    topic: topic.clone().into(),
                    reason: "another node dropped publishes before they reached NATS",
                };
                if !self.push(owner, gap) {
                    self.gap(
                        "this node's relay queue was full: messages from other nodes were dropped",
                    );
                }
            }
        }
        let relayed = Msg::Relayed {
            ns,
            topic: topic.into(),
            payload: msg.payload,
            ts_ns,
        };
        if !self.push(owner, relayed) {
            self.count(|s| {
                s.relay_dropped.fetch_add(1, Ordering::Relaxed);
            });
            self.gap("this node's relay queue was full: messages from other nodes were dropped");
        }
    }
}

async fn relay(parts: &mut RelayParts) {
    let shared = parts.shared.clone();
    let cfg = &shared.config;
    let prefix = cfg.nats_prefix.clone();
    let cores = parts.to_cores.len();
    let wake = match parts
        .wake
        .try_clone()
        .and_then(tokio::net::UnixDatagram::from_std)
    {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(target: "ringcast", event = "relay", "the NATS relay cannot watch its wake-up socket: {e}");
            return;
        }
    };
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let events = move |e| {
        let tx = ev_tx.clone();
        async move {
            let _ = tx.send(e);
        }
    };
    let opts = match options(cfg, format!("ringcast {}", parts.node)).await {
        Ok(o) => o.no_echo().event_callback(events),
        Err(e) => {
            tracing::error!(target: "ringcast", event = "relay", "NATS relay: {e}");
            return;
        }
    };
    shared
        .relay_state
        .store(RELAY_CONNECTING, Ordering::Relaxed);
    let client = match opts.connect(cfg.nats.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "ringcast", event = "relay", "NATS relay: {e}");
            return;
        }
    };
    // The second connection, which sees the relay's confirmation messages.
    let name = format!("ringcast {} (subscription check)", parts.node);
    let checker = match options(cfg, name).await {
        Ok(o) => o.connect(cfg.nats.clone()).await,
        Err(e) => {
            tracing::error!(target: "ringcast", event = "relay", "NATS relay: {e}");
            return;
        }
    };
    let checker = match checker {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "ringcast", event = "relay", "NATS relay: {e}");
            return;
        }
    };
    let node = parts.node.clone();
    let mut r = Relay {
        waker: Waker::new().ok(),
        wake: vec![false; cores],
        owed_gap: vec![None; cores],
        seen: HashMap::new(),
        drops: HashMap::new(),
        lost: false,
        owed_ready: vec![0; cores],
        parts,
    };
    let mut streams: StreamMap<String, async_nats::Subscriber> = StreamMap::new();
    // Interest: how many reasons (topics, patterns) want each subject.
    let mut wanted: HashMap<String, u32> = HashMap::new();
    let all = format!("{prefix}.t.*");
    // Subscriptions are confirmed to the reactors one check at a time (see
    // the module's notes): `asked`, per reactor, is its last ask number
    // taken, `answered` the last confirmed, `syncing` what the check in
    // flight covers; subjects whose subscribe failed are tried again first.
    let sync_subject = format!("{prefix}.sync.{}", URL_SAFE_NO_PAD.encode(node.as_bytes()));
    let (check_tx, check_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (sync_tx, mut sync_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    tokio::spawn(check_subscriptions(
        client.clone(),
        checker,
        sync_subject,
        check_rx,
        sync_tx,
    ));
    let mut asked = vec![0u64; cores];
    let mut answered = vec![0u64; cores];
    let mut syncing: Option<Vec<u64>> = None;
    let mut retry: Vec<String> = Vec::new();
    // This node's count of messages relayed (Ringcast-Id) and of times it
    // dropped publishes before NATS got them (Ringcast-Drops).
    // `dropped`: publishes were dropped here since the last one sent.
    let (mut next_id, mut drops, mut dropped) = (0u64, 0u64, false);
    loop {
        // Connection events first: a gap notice must precede what follows.
        while let Ok(e) = ev_rx.try_recv() {
            r.event(e);
        }
        for core in 0..cores {
            if let Some(reason) = r.owed_gap[core] {
                if r.push(core, Msg::RelayGap { reason }) {
                    r.owed_gap[core] = None;
                }
            }
            let upto = r.owed_ready[core];
            if upto > 0 && r.push(core, Msg::RelayReady { upto }) {
                r.owed_ready[core] = 0;
            }
        }
        if let Ok(ok) = sync_rx.try_recv() {
            r.synced(syncing.take(), ok, &mut answered);
        }
        // Work from the reactors.
        let mut did = 0;
        for (core, asked) in asked.iter_mut().enumerate() {
            for _ in 0..BATCH {
                let Some(out) = r.parts.from_cores[core].pop() else {
                    break;
                };
                did += 1;
                match out {
                    RelayOut::Publish {
                        ns,
                        frame,
                        after_drop,
                    } => {
                        let (subject, payload, ts, seq) = {
                            let d = DataView::new(frame.bytes()).expect("a DATA frame");
                            (
                                subject(&prefix, ns, d.topic()),
                                Bytes::copy_from_slice(d.payload()),
                                d.ts_ns(),
                                d.seq(),
                            )
                        };
                        r.parts.shared.pool.release(frame);
                        if client.connection_state() != async_nats::connection::State::Connected {
                            // Not kept for later: the relay must not wait for
                            // NATS. Other nodes learn of the loss from this
                            // node's next message (Ringcast-Drops).
                            r.count(|s| {
                                s.relay_dropped.fetch_add(1, Ordering::Relaxed);
                            });
                            dropped = true;
                            continue;
                        }
                        if after_drop || std::mem::take(&mut dropped) {
                            drops += 1;
                        }
                        next_id += 1;
                        let mut h = HeaderMap::new();
                        h.insert("Ringcast-Node", node.as_str());
                        h.insert("Ringcast-Ts", ts.to_string().as_str());
                        h.insert("Ringcast-Seq", seq.to_string().as_str());
                        h.insert("Ringcast-Id", next_id.to_string().as_str());
                        h.insert("Ringcast-Drops", drops.to_string().as_str());
                        let publish = client.publish_with_headers(subject, h, payload);
                        let _ = tokio::time::timeout(CLIENT_WAIT, publish).await;
                    }
                    RelayOut::Interest { ns, topic, on, ask } => {
                        if !on {
                            r.drops.remove(&(ns, topic.to_vec()));
                        }
                        let s = subject(&prefix, ns, &topic);
                        change_interest(&client, &mut streams, &mut wanted, &mut retry, s, on)
                            .await;
                        *asked = (*asked).max(ask);
                    }
                    RelayOut::Patterns { on, ask } => {
                        let s = all.clone();
                        change_interest(&client, &mut streams, &mut wanted, &mut retry, s, on)
                            .await;
                        *asked = (*asked).max(ask);
                    }
                }
            }
        }
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        if connected && !retry.is_empty() {
            for s in std::mem::take(&mut retry) {
                if wanted.contains_key(&s) && !streams.contains_key(&s) {
                    subscribe(&client, &mut streams, &mut retry, s).await;
                }
            }
        }
        if connected && syncing.is_none() && retry.is_empty() && asked != answered {
            syncing = Some(asked.clone());
            let _ = check_tx.send(());
        }
        r.flush_wakes();
        if r.parts.shared.relay_stop.load(Ordering::Relaxed) {
            break;
        }
        if did > 0 {
            tokio::task::yield_now().await;
            continue;
        }
        // Park: a reactor that queues work from now on wakes us.
        // Swaps, not stores: see mailbox::Parked (the same protocol).
        r.parts.shared.relay_parked.swap(true, Ordering::SeqCst);
        if r.parts.from_cores.iter().any(|q| !q.is_empty()) {
            r.parts.shared.relay_parked.swap(false, Ordering::AcqRel);
            continue;
        }
        tokio::select! {
            biased;
            Some(e) = ev_rx.recv() => r.event(e),
            Some(ok) = sync_rx.recv() => r.synced(syncing.take(), ok, &mut answered),
            _ = wake.readable() => {
                let mut buf = [0u8; 64];
                while wake.try_recv(&mut buf).is_ok() {}
            }
            Some((_, msg)) = streams.next(), if !streams.is_empty() => {
                r.inbound(&prefix, msg);
                // Take what else is ready before parking again (events
                // first: a disconnection's notice precedes later messages).
                for _ in 0..BATCH {
                    if let Ok(e) = ev_rx.try_recv() {
                        r.event(e);
                    }
                    // Only what is ready now (a zero timeout would wait for
                    // the timer's next millisecond).
                    match streams.next().now_or_never() {
                        Some(Some((_, m))) => r.inbound(&prefix, m),
                        _ => break,
                    }
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        r.parts.shared.relay_parked.swap(false, Ordering::AcqRel);
        r.flush_wakes();
    }
    let _ = tokio::time::timeout(CLIENT_WAIT, client.flush()).await;
}

/// The connection options both of the relay's connections share: name,
/// reconnection from the start, credentials.
async fn options(cfg: &crate::config::Config, name: String) -> Result<ConnectOptions, String> {
    let mut opts = ConnectOptions::new().name(name).retry_on_initial_connect();
    if let Some(path) = &cfg.nats_creds {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|e| format!("cannot read NATS credentials {}: {e}", path.display()))?;
    }
    if let (Some(u), Some(p)) = (&cfg.nats_user, &cfg.nats_password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &cfg.nats_token {
        opts = opts.token(t.clone());
    }
    if let Some(ca) = &cfg.nats_tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&cfg.nats_tls_cert, &cfg.nats_tls_key) {
        opts = opts
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(opts)
}

/// Confirms the relay's subscriptions, once per request on `asks`, with the
/// answer (whether they are in place) on `done`.
///
/// The relay's connection publishes a token to `subject`, after the
/// subscriptions it sent; NATS handles one connection's operations in
/// order, so when `checker` (a second connection: the relay's does not get
/// its own messages back) receives the token, the server has them. The
/// checker first makes sure of its own subscription by a message of its own.
async fn check_subscriptions(
    relay: async_nats::Client,
    checker: async_nats::Client,
    subject: String,
    mut asks: tokio::sync::mpsc::UnboundedReceiver<()>,
    done: tokio::sync::mpsc::UnboundedSender<bool>,
) {
    let Ok(mut sub) = checker.subscribe(subject.clone()).await else {
        return;
    };
    // Wait for `token` on the subscription, at most CLIENT_WAIT.
    async fn seen(sub: &mut async_nats::Subscriber, token: &Bytes) -> bool {
        let found = async {
            while let Some(m) = sub.next().await {
                if m.payload == *token {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(CLIENT_WAIT, found)
            .await
            .unwrap_or(false)
    }
    let mut n = 0u64;
    let mut ready = false;
    while asks.recv().await.is_some() {
        while !ready {
            n += 1;
            let token = Bytes::from(format!("check {n}"));
            ready = checker
                .publish(subject.clone(), token.clone())
                .await
                .is_ok()
                && seen(&mut sub, &token).await;
        }
        n += 1;
        let token = Bytes::from(n.to_string());
        let ok = relay.publish(subject.clone(), token.clone()).await.is_ok()
            && seen(&mut sub, &token).await;
        if done.send(ok).is_err() {
            return;
        }
    }
}

/// Subscribes to `subject` when the first reason wants it, unsubscribes
/// when the last one goes.
async fn change_interest(
    client: &async_nats::Client,
    streams: &mut StreamMap<String, async_nats::Subscriber>,
    wanted: &mut HashMap<String, u32>,
    retry: &mut Vec<String>,
    subject: String,
    on: bool,
) {
    if on {
        let n = wanted.entry(subject.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            subscribe(client, streams, retry, subject).await;
        }
    } else if let Some(n) = wanted.get_mut(&subject) {
        *n -= 1;
        if *n == 0 {
            wanted.remove(&subject);
            // Dropping the subscriber unsubscribes.
            streams.remove(&subject);
        }
    }
}

/// Subscribes to `subject`; when the client cannot take the subscription
/// now (its buffer full while NATS does not read), it goes to `retry`.
async fn subscribe(
    client: &async_nats::Client,
    streams: &mut StreamMap<String, async_nats::Subscriber>,
    retry: &mut Vec<String>,
    subject: String,
) {
    match tokio::time::timeout(CLIENT_WAIT, client.subscribe(subject.clone())).await {
        Ok(Ok(s)) => {
            streams.insert(subject, s);
        }
        _ => retry.push(subject),
    }
}

/// Wakes the relay if it is parked (called by a reactor after queueing work).
pub(crate) fn wake(shared: &Shared) {
    if shared.relay_parked.swap(false, Ordering::SeqCst) {
        if let Some(tx) = &shared.relay_wake {
            // Never blocks; a full socket means a wake-up is pending anyway.
            let _ = tx.send(&[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_map_any_topic_and_back() {
        for topic in [
            &b"prices.eur"[..],
            b"a b",
            b"\xff\x00",
            b"",
            b"*>",
            &[b'x'; 255],
        ] {
            for ns in [Ns::Channel, Ns::Shard] {
                let s = subject("ringcast", ns, topic);
                assert!(!s.contains(' ') && !s[9..].contains(['*', '>']), "{s}");
                assert_eq!(s.matches('.').count(), 2, "one token for the topic: {s}");
                assert_eq!(topic_of("ringcast", &s), Some((ns, topic.to_vec())));
            }
        }
        assert_eq!(topic_of("ringcast", "other.t.YQ"), None);
        assert_eq!(topic_of("ringcast", "ringcast.ctl.gap"), None);
    }
}
