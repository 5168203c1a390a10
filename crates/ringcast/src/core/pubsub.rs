//! Topics across cores: publish, fan-out, subscribe, unsubscribe, the
//! join/leave protocol with a topic's owner core, patterns, and reclaiming
//! topics.
//!
//! Three namespaces share the topic table (`topic::Ns`): channels (every
//! front's topics), Redis's shard channels, and Redis's patterns. Channels
//! and shard channels have an owner core that orders their frames. Patterns
//! have no owner: every core knows every pattern that some core subscribes
//! to, and which cores do, so the owner of a channel can tell, for each
//! publish, which cores have pattern subscribers that match it.
//!
//! One publish is encoded once per wire format that has subscribers: the
//! DATA frame (native and WebSocket subscribers, and the carrier between
//! cores) by the publisher's core; the RESP `message` (or `smessage`), and
//! one `pmessage` per matching pattern, by the owner, when some core has
//! RESP subscribers for it. RESP2 and RESP3 subscribers share the RESP
//! frame: it is encoded for RESP2 (`*3...`), and a RESP3 subscriber is sent
//! a one-byte `>` frame, then the same frame from its second byte on.

use super::{Action, Answer, Conn, Core, Life, Msg, Query, RelayOut, Wire, RELAY_CONNECTED};
use crate::core::conn::Held;
use crate::pool::FrameRef;
use crate::proto::{self, DataView, ErrorCode, ServerFrame};
use crate::topic::{owner_of, ConnKey, Fnv, Ns, Registration, TopicId, NO_SUB};
use crate::ws::frame::{header_len, write_header, Opcode};
use ringcast_proto::glob;
use ringcast_proto::resp::{Protocol, PubSubPush, Reply};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// Topics whose count changes are always sent at the end of a batch.
const FEW_COUNTS: usize = 64;

/// Channels whose matching patterns a core remembers at most; the cache is
/// emptied when it grows past this (and whenever the set of patterns changes).
const PATTERN_CACHE_MAX: usize = 65_536;
/// Longest wait for the relay's NATS subscription of a topic new on this
/// node before its subscribers are confirmed anyway (with a GAP).
const RELAY_WAIT_NS: u64 = 1_000_000_000;
/// The GAP reason when that wait ran out.
const RELAY_LATE: &str =
    "NATS did not confirm this node's subscription in time: messages from other nodes may be missing";
/// The GAP reason for a subscription made while NATS is away.
const RELAY_AWAY: &str =
    "this node is not connected to NATS: messages from other nodes are missing until it is back";

/// Subscriptions to a topic new on this node, waiting for the relay's NATS
/// subscription (its ask number): local ones (paused) and other cores'
/// joins (their answer held).
pub(crate) struct RelayWait {
    ask: u64,
    ns: Ns,
    name: Box<[u8]>,
    waiting: Vec<ConnKey>,
    joins: u64,
    deadline: u64,
}

/// The DATA frame a reference holds (frames travelling between cores are
/// always whole DATA frames, encoded by `publish`).
fn data(frame: &FrameRef) -> DataView<'_> {
    DataView::new(frame.bytes()).expect("a whole DATA frame")
}

/// Topic bytes of an encoded DATA frame.
fn data_topic(frame: &FrameRef) -> &[u8] {
    data(frame).topic()
}

fn data_seq(frame: &FrameRef) -> u64 {
    data(frame).seq()
}

/// The pattern of a `pmessage` push encoded for RESP2
/// (`*4\r\n$8\r\npmessage\r\n$<n>\r\n<pattern>\r\n...`).
fn pmessage_pattern(bytes: &[u8]) -> &[u8] {
    const HEAD: usize = b"*4\r\n$8\r\npmessage\r\n$".len();
    let digits = bytes[HEAD..]
        .iter()
        .position(|&b| b == b'\r')
        .expect("an encoded pmessage");
    let n: usize = bytes[HEAD..HEAD + digits]
        .iter()
        .fold(0, |n, &d| n * 10 + usize::from(d - b'0'));
    let start = HEAD + digits + 2;
    &bytes[start..start + n]
}

/// Per-core pattern state: the patterns known to this core (its own and
/// other cores'), and for recently published channels the patterns that
/// match them, so a hot channel is not matched against every pattern on
/// every publish.
#[derive(Default)]
pub(crate) struct Patterns {
    /// Every pattern topic in the table.
    pub ids: std::collections::HashSet<TopicId, BuildHasherDefault<Fnv>>,
    cache: HashMap<Box<[u8]>, Rc<[TopicId]>, BuildHasherDefault<Fnv>>,
}

impl Patterns {
    fn changed(&mut self) {
        self.cache.clear();
    }
}

impl Core {
    /// PUBLISH (any front) to a channel or shard channel: stamp, encode the
    /// DATA frame once into frame memory, hand it to the topic's owner.
    /// Returns the receiver count when this core owns the topic; else, with
    /// `want_count`, the owner answers with [`Msg::Counted`] for `idx`.
    pub(crate) fn publish(
        &mut self,
        idx: u32,
        ns: Ns,
        topic: &[u8],
        payload: &[u8],
        want_count: bool,
    ) -> Option<u64> {
        let ts = (self.realtime)();
        let len = proto::data_frame_len(topic.len(), payload.len());
        let mut f = self.arena.alloc(&self.shared.pool, len);
        // SAFETY: just allocated, no other reference exists.
        proto::encode_data(unsafe { f.bytes_mut() }, 0, ts, topic, payload);
        // The same encode serves WebSocket subscribers: their message is the
        // native frame behind this header, in the frame's headroom.
        write_ws_header(&mut f);
        let st = self.stats();
        st.encodes.fetch_add(1, Ordering::Relaxed);
        st.publishes.fetch_add(1, Ordering::Relaxed);
        // Publishing never creates a topic (a topic without subscribers
        // does not exist), so the owner has nothing to refuse: no answer
        // to wait for, whichever core owns the topic, unless a RESP
        // publisher wants the receiver count.
        let owner = owner_of(topic, self.cores);
        if owner == self.id {
            Some(self.fan_out(f, ns, true))
        } else {
            let reply = want_count.then(|| (self.id, self.key(idx)));
            self.send_msg(
                owner,
                Msg::Publish {
                    frame: f,
                    ns,
                    reply,
                },
            );
            None
        }
    }

    /// Lets a paused connection go on with the input it buffered.
    pub(crate) fn resume(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.life == Life::Paused {
            c.life = Life::Open;
        }
        if c.reads_requests() {
            let frames = self.frames_in;
            self.process_inbuf(idx);
            self.account_input(idx, self.frames_in != frames);
            if self.conns.contains(idx as usize) {
                self.act(Action::Read(idx));
            }
        }
    }

    /// Finds or creates a topic this core owns; None past the topic limit.
    fn owned_topic(&mut self, ns: Ns, name: &[u8]) -> Option<TopicId> {
        if let Some(id) = self.topics.get(ns, name) {
            return Some(id);
        }
        let shared = &self.shared;
        if shared.topics.fetch_add(1, Ordering::Relaxed) >= shared.config.max_topics {
            shared.topics.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        // A new incarnation: a new epoch, above every one this core gave
        // before (topics always have the same owner), so a client can tell
        // a restarted sequence from a gap.
        let epoch = (self.last_epoch + 1).max((self.realtime)());
        self.last_epoch = epoch;
        self.stats().topics_created.fetch_add(1, Ordering::Relaxed);
        if self.relay_on {
            // Its traffic from other nodes is wanted now; subscriptions are
            // confirmed once the relay's NATS subscription is in place (or
            // the wait for it ends: then with a GAP), so a message published
            // on another node after the confirmation reaches them.
            self.relay_asked += 1;
            let ask = self.relay_asked;
            self.relay_out.push_back(RelayOut::Interest {
                ns,
                topic: name.into(),
                on: true,
                ask,
            });
            self.relay_waits.push_back(RelayWait {
                ask,
                ns,
                name: name.into(),
                waiting: Vec::new(),
                joins: 0,
                deadline: self.now + RELAY_WAIT_NS,
            });
        }
        Some(self.topics.insert(ns, name, Registration::Owner, epoch))
    }

    /// Whether the relay is connected to NATS now (as far as it knows).
    fn relay_connected(&self) -> bool {
        self.shared.relay_state.load(Ordering::Relaxed) == RELAY_CONNECTED
    }

    /// The wait of topic `name` in `ns` for its NATS subscription, if any.
    fn relay_wait(&mut self, ns: Ns, name: &[u8]) -> Option<&mut RelayWait> {
        self.relay_waits
            .iter_mut()
            .find(|w| w.ns == ns && *w.name == *name)
    }

    /// The relay confirmed this core's NATS subscriptions up to ask `upto`:
    /// what waited for them is confirmed.
    fn relay_ready(&mut self, upto: u64) {
        self.relay_ready = self.relay_ready.max(upto);
        while self.relay_waits.front().is_some_and(|w| w.ask <= upto) {
            let w = self.relay_waits.pop_front().expect("checked");
            self.relay_settle(w, None);
        }
        if self.pattern_wait.is_some_and(|(ask, _)| ask <= upto) {
            self.release_pattern_holds();
        }
    }

    /// Waits for the relay that took too long end (each tick): confirmed
    /// anyway, with a GAP, since a message from another node may be missed
    /// until the NATS subscription is in place.
    pub(crate) fn relay_timeouts(&mut self, now: u64) {
        while self.relay_waits.front().is_some_and(|w| w.deadline <= now) {
            let w = self.relay_waits.pop_front().expect("checked");
            self.stats()
                .relay_waits_expired
                .fetch_add(1, Ordering::Relaxed);
            self.log_relay_wait(&w.name);
            self.relay_settle(w, Some(RELAY_LATE));
        }
        if self
            .pattern_wait
            .is_some_and(|(_, deadline)| deadline <= now)
        {
            self.stats()
                .relay_waits_expired
                .fetch_add(1, Ordering::Relaxed);
            self.release_pattern_holds();
        }
    }

    /// Confirms what waited for a topic's NATS subscription: the cores that
    /// joined it get their answer, the local subscribers their SUBACK; then
    /// the GAP of `late`, if the wait ran out.
    fn relay_settle(&mut self, w: RelayWait, late: Option<&'static str>) {
        let RelayWait {
            ns,
            name,
            waiting,
            mut joins,
            ..
        } = w;
        let Some(id) = self.topics.get(ns, &name) else {
            return;
        };
        while joins != 0 {
            let core = joins.trailing_zeros() as usize;
            joins &= joins - 1;
            self.answer_join(ns, name.clone(), core);
        }
        self.confirm_waiting(id, waiting);
        if let Some(reason) = late {
            self.topic_gap(id, reason);
        }
        // Everyone who waited may have gone.
        self.release_if_unused(id);
    }

    /// Confirms the subscriptions to topic `id` that `waiting` paused
    /// (those still live), and lets their connections go on with their input.
    fn confirm_waiting(&mut self, id: TopicId, waiting: Vec<ConnKey>) {
        self.end_wait(waiting, |core, idx| {
            if core.topics.find(idx, id).is_none() {
                core.add_subscriber(idx, id);
            } else {
                core.suback(idx, id);
            }
            true
        });
    }

    /// Ends the wait of every connection in `waiting` that is still live:
    /// one subscription fewer pending, no longer paused; then, if it is still
    /// open, `answer` confirms or refuses its subscription and its input goes
    /// on, unless `answer` returns false (it subscribed anew and waits again).
    fn end_wait(&mut self, waiting: Vec<ConnKey>, mut answer: impl FnMut(&mut Self, u32) -> bool) {
        for key in waiting {
            if !self.live(key) {
                continue;
            }
            let idx = key.index;
            let c = &mut self.conns[idx as usize];
            c.pending_subs -= 1;
            if c.life == Life::Paused {
                c.life = Life::Open;
            }
            if !c.is_live() {
                continue;
            }
            if answer(self, idx) {
                self.resume(idx);
            }
        }
    }

    /// Answers core `core`'s join of topic `topic` (which this core owns):
    /// the topic's frames go there from now on, from the seq in the answer.
    fn answer_join(&mut self, ns: Ns, topic: Box<[u8]>, core: usize) {
        match self.owned_topic(ns, &topic) {
            Some(id) => {
                if let Some(w) = self.relay_wait(ns, &topic) {
                    // Not yet: the node's NATS subscription is not in place.
                    w.joins |= 1 << core;
                    return;
                }
                let t = self.topics.topic_mut(id);
                t.remote_cores |= 1 << core;
                let (next_seq, epoch) = (t.next_seq(), t.epoch);
                self.send_msg(
                    core,
                    Msg::Joined {
                        ns,
                        topic,
                        next_seq,
                        epoch,
                    },
                );
            }
            None => self.send_msg(core, Msg::JoinRefused { ns, topic }),
        }
    }

    /// The pattern topics whose pattern matches `channel`, from the cache.
    fn matching_patterns(&mut self, channel: &[u8]) -> Rc<[TopicId]> {
        if let Some(m) = self.patterns.cache.get(channel) {
            return m.clone();
        }
        let topics = &self.topics;
        let found: Rc<[TopicId]> = self
            .patterns
            .ids
            .iter()
            .copied()
            .filter(|&p| glob::matches(&topics.topic(p).name, channel))
            .collect();
        if self.patterns.cache.len() >= PATTERN_CACHE_MAX {
            self.patterns.cache.clear();
        }
        self.patterns.cache.insert(channel.into(), found.clone());
        found
    }

    /// Encodes a RESP push (as RESP2) into frame memory.
    fn encode_push(&mut self, push: &PubSubPush<'_>) -> FrameRef {
        let len = push.encoded_len(Protocol::Resp2);
        let mut f = self.arena.alloc(&self.shared.pool, len);
        // SAFETY: just allocated, no other reference exists.
        push.encode_to_slice(Protocol::Resp2, unsafe { f.bytes_mut() });
        f
    }

    /// The RESP `message` (`smessage` for a shard channel) of a DATA frame.
    fn encode_resp_message(&mut self, frame: &FrameRef, ns: Ns) -> FrameRef {
        let d = data(frame);
        let (channel, payload) = (d.topic(), d.payload());
        let (push, kind) = if ns == Ns::Shard {
            (PubSubPush::SMessage { channel, payload }, 2)
        } else {
            (PubSubPush::Message { channel, payload }, 0)
        };
        let f = self.encode_push(&push);
        self.stats().resp_encodes[kind].fetch_add(1, Ordering::Relaxed);
        f
    }

    /// On the owner core: assign the next seq, deliver to local subscribers
    /// and to every core that has subscribers, of the channel or of a
    /// pattern that matches it. A topic nobody subscribes to does not
    /// exist: its frame goes nowhere and takes no seq. Returns the number
    /// of subscribers it goes to (PUBLISH's reply in Redis).
    ///
    /// A publish made on this node (`local`) also goes to the NATS relay,
    /// once, in the order this owner gives it (whether or not it has
    /// subscribers here: other nodes may have some).
    fn fan_out(&mut self, mut frame: FrameRef, ns: Ns, local: bool) -> u64 {
        let id = match self.topics.get(ns, data_topic(&frame)) {
            Some(id) if self.topics.topic(id).reg == Registration::Owner => Some(id),
            _ => None,
        };
        if local && self.relay_on {
            if let Some(id) = id {
                let t = self.topics.topic_mut(id);
                t.seq += 1;
                let seq = t.seq;
                // SAFETY: no send and no other core refers to the frame yet.
                proto::patch_data_seq(unsafe { frame.bytes_mut() }, seq);
            }
            let copy = self.shared.pool.share(&frame);
            self.relay_out.push_back(RelayOut::Publish {
                ns,
                frame: copy,
                after_drop: false,
            });
            self.stats().relay_out.fetch_add(1, Ordering::Relaxed);
        }
        // No allocation when no pattern exists (the common case).
        let pats: Option<Rc<[TopicId]>> = if ns == Ns::Channel && !self.patterns.ids.is_empty() {
            Some(self.matching_patterns(data_topic(&frame)))
        } else {
            None
        };
        let pats: &[TopicId] = pats.as_deref().unwrap_or(&[]);
        if id.is_none() && pats.is_empty() {
            self.shared.pool.release(frame);
            return 0;
        }
        let mut receivers = 0u64;
        let mut cores = 0u64;
        let mut resp = None;
        if let Some(id) = id {
            let t = self.topics.topic_mut(id);
            if !(local && self.relay_on) {
                // (Already numbered above when it went to the relay too.)
                t.seq += 1;
                let seq = t.seq;
                // SAFETY: no send and no other core refers to the frame yet:
                // it was encoded by a publisher (or from a relayed message)
                // and handed to this owner alone.
                proto::patch_data_seq(unsafe { frame.bytes_mut() }, seq);
            }
            cores |= t.remote_cores;
            receivers += t.subs.len() as u64 + u64::from(t.remote_subs);
            let resp_wanted = t.resp_subs + t.remote_resp > 0;
            if resp_wanted {
                resp = Some(self.encode_resp_message(&frame, ns));
            }
        }
        let mut pmessages: Vec<(TopicId, FrameRef)> = Vec::with_capacity(pats.len());
        for &p in pats {
            let t = self.topics.topic(p);
            cores |= t.remote_cores;
            receivers += t.subs.len() as u64 + u64::from(t.remote_subs);
            let pattern = t.name.clone();
            let d = data(&frame);
            let push = PubSubPush::PMessage {
                pattern: &pattern,
                channel: d.topic(),
                payload: d.payload(),
            };
            let f = self.encode_push(&push);
            self.stats().resp_encodes[1].fetch_add(1, Ordering::Relaxed);
            pmessages.push((p, f));
        }
        let pool = &self.shared.pool;
        while cores != 0 {
            let core = cores.trailing_zeros() as usize;
            cores &= cores - 1;
            let bit = 1u64 << core;
            let msg = Msg::Deliver {
                frame: pool.share(&frame),
                ns,
                resp: resp.as_ref().map(|r| pool.share(r)),
                pmessages: pmessages
                    .iter()
                    .filter(|(p, _)| self.topics.topic(*p).remote_cores & bit != 0)
                    .map(|(_, f)| pool.share(f))
                    .collect(),
            };
            self.outbox.push_back((core, msg));
        }
        match id {
            Some(id) => self.deliver_local(id, frame, resp),
            None => self.shared.pool.release(frame),
        }
        for (p, f) in pmessages {
            self.deliver_resp(p, f);
        }
        receivers
    }

    /// A refusal for a subscription that would create a topic past the
    /// limit: ERROR 4 and a close on the native protocol, an error reply on
    /// the Redis front (which has no such error to close with).
    pub(super) fn refuse_topic(&mut self, idx: u32) {
        let limit = self.shared.config.max_topics;
        if self.conns[idx as usize].is_resp() {
            let ev = crate::log::Event::TopicRefused;
            self.log_conn(
                idx,
                ev,
                format_args!("SUBSCRIBE refused: --max-topics ({limit}) reached"),
            );
            let msg = format!("ERR ringcast's topic limit ({limit}) is reached (--max-topics)");
            self.resp_reply(idx, &[Reply::Error(msg.as_bytes())]);
            return;
        }
        let reason = format!("bad topic: the server's topic limit ({limit}) is reached");
        self.fail(idx, ErrorCode::BadTopic, &reason, false);
    }

    /// Queues `frame` (a DATA frame) for every local subscriber of topic
    /// `id`, and `resp` (its RESP push, encoded here if the owner did not)
    /// for those on the Redis front; consumes both references.
    fn deliver_local(&mut self, id: TopicId, frame: FrameRef, mut resp: Option<FrameRef>) {
        let n = self.topics.topic(id).subs.len();
        if n == 0 {
            self.shared.pool.release(frame);
            if let Some(r) = resp {
                self.shared.pool.release(r);
            }
            return;
        }
        if resp.is_none() && self.topics.topic(id).resp_subs > 0 {
            // The owner did not know yet that this core has RESP subscribers
            // (their count was on its way): encode here.
            let ns = self.topics.topic(id).ns;
            resp = Some(self.encode_resp_message(&frame, ns));
        }
        let pool = &self.shared.pool;
        let limit = self.shared.config.max_backlog;
        // WebSocket subscribers get a view that starts at the header written
        // in front of the frame when it was encoded.
        let ws_header = header_len(frame.len());
        let mut gt: Option<FrameRef> = None;
        let subs = &self.topics.topic(id).subs;
        for key in subs.iter() {
            let c = &mut self.conns[key.index as usize];
            debug_assert_eq!(c.gen, key.gen);
            // A connection going away keeps its subscriptions until the
            // teardown gets to them; it gets nothing more meanwhile.
            if !c.takes_frames() {
                continue;
            }
            let f = match &c.wire {
                Wire::Ws(_) => pool.share(&frame).extend_front(ws_header),
                Wire::Resp(r) => {
                    let r3 = r.proto == Protocol::Resp3;
                    let push = resp.as_ref().expect("encoded for RESP subscribers");
                    let mut q = Queue {
                        limit,
                        owed: &mut self.owed,
                        dirty: &mut self.dirty,
                        over_limit: &mut self.over_limit,
                    };
                    resp_view(
                        c,
                        key.index,
                        r3,
                        push,
                        &mut gt,
                        &mut self.arena,
                        pool,
                        &mut q,
                    )
                }
                _ => pool.share(&frame),
            };
            enqueue_push(
                c,
                key.index,
                f,
                limit,
                &mut self.owed,
                &mut self.dirty,
                &mut self.over_limit,
            );
        }
        pool.release(frame);
        if let Some(r) = resp {
            self.arena.release(pool, r);
        }
        if let Some(g) = gt {
            self.arena.release(pool, g);
        }
        self.shared.stats[self.id]
            .deliveries
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Queues a RESP push (a `pmessage`, encoded for RESP2) for every local
    /// subscriber of pattern topic `id`; consumes the reference.
    fn deliver_resp(&mut self, id: TopicId, push: FrameRef) {
        let pool = &self.shared.pool;
        let limit = self.shared.config.max_backlog;
        let subs = &self.topics.topic(id).subs;
        let n = subs.len();
        let mut gt: Option<FrameRef> = None;
        for key in subs.iter() {
            let c = &mut self.conns[key.index as usize];
            if !c.takes_frames() {
                continue;
            }
            let r3 = matches!(&c.wire, Wire::Resp(r) if r.proto == Protocol::Resp3);
            let mut q = Queue {
                limit,
                owed: &mut self.owed,
                dirty: &mut self.dirty,
                over_limit: &mut self.over_limit,
            };
            let f = resp_view(
                c,
                key.index,
                r3,
                &push,
                &mut gt,
                &mut self.arena,
                pool,
                &mut q,
            );
            enqueue_push(
                c,
                key.index,
                f,
                limit,
                &mut self.owed,
                &mut self.dirty,
                &mut self.over_limit,
            );
        }
        self.arena.release(pool, push);
        if let Some(g) = gt {
            self.arena.release(pool, g);
        }
        self.shared.stats[self.id]
            .deliveries
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Subscribes connection `idx` to `name` in namespace `ns`, and
    /// confirms it (SUBACK, or the RESP push) once frames will reach it.
    /// Returns false when the confirmation waits for another core: the
    /// connection is paused until then (see [`Core::resume`]). Rights are
    /// the front's to check first.
    pub(crate) fn subscribe(&mut self, idx: u32, ns: Ns, name: &[u8]) -> bool {
        let existing = self.topics.get(ns, name);
        if let Some(id) = existing {
            if self.topics.find(idx, id).is_some() {
                self.suback(idx, id);
                return true;
            }
        }
        let c = &self.conns[idx as usize];
        let limit = self.shared.config.max_subscriptions;
        if c.nsubs as usize + c.pending_subs as usize >= limit {
            self.refuse_subscription(idx, name, limit);
            return true;
        }
        let key = self.key(idx);
        if ns == Ns::Pattern {
            return self.subscribe_pattern(idx, key, existing, name);
        }
        let owner = owner_of(name, self.cores);
        let id = match existing {
            Some(id) => id,
            None if owner == self.id => match self.owned_topic(ns, name) {
                Some(id) => id,
                None => {
                    self.refuse_topic(idx);
                    return true;
                }
            },
            None => {
                self.topics
                    .insert(ns, name, Registration::Pending(Vec::new()), 0);
                self.send_msg(
                    owner,
                    Msg::Join {
                        ns,
                        topic: name.into(),
                        core: self.id,
                    },
                );
                self.topics.get(ns, name).expect("inserted")
            }
        };
        if let Registration::Pending(waiting) = &mut self.topics.topic_mut(id).reg {
            waiting.push(key);
            self.wait(idx);
            return false;
        }
        if !self.relay_waits.is_empty() {
            if let Some(w) = self.relay_wait(ns, name) {
                w.waiting.push(key);
                self.wait(idx);
                return false;
            }
        }
        self.add_subscriber_now(idx, id);
        true
    }

    /// A pattern subscription: at once when this core already announced
    /// the pattern to the others; else after every other core has learnt
    /// of it (so a publish on any core after the confirmation matches it).
    fn subscribe_pattern(
        &mut self,
        idx: u32,
        key: ConnKey,
        existing: Option<TopicId>,
        name: &[u8],
    ) -> bool {
        let others = (self.cores - 1) as u32;
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.topics.insert(
                    Ns::Pattern,
                    name,
                    Registration::PatternPending {
                        waiting: Vec::new(),
                        acks: 0,
                    },
                    0,
                );
                self.patterns.ids.insert(id);
                self.patterns.changed();
                self.pattern_interest();
                id
            }
        };
        // Core 0 also waits for the relay's subscription for every topic,
        // when it is not in place yet (an answer of its own, held).
        let hold = self.pattern_wait.is_some();
        let t = self.topics.topic_mut(id);
        let settled = t.reg == Registration::Pattern;
        let has_local = !t.subs.is_empty();
        match &mut t.reg {
            _ if settled && (has_local || others == 0) && !hold => {
                self.add_subscriber(idx, id);
                true
            }
            Registration::PatternPending { waiting, acks } if *acks > 0 => {
                waiting.push(key);
                self.wait(idx);
                false
            }
            _ if others == 0 && !hold => {
                t.reg = Registration::Pattern;
                t.announced = true;
                self.add_subscriber(idx, id);
                true
            }
            _ => {
                // First subscriber here: announce it to every other core.
                t.reg = Registration::PatternPending {
                    waiting: vec![key],
                    acks: others + u32::from(hold),
                };
                if hold {
                    self.pattern_holds.push((self.id, name.into()));
                }
                let me = self.id;
                for core in (0..self.cores).filter(|&c| c != me) {
                    self.send_msg(
                        core,
                        Msg::PatternJoin {
                            pattern: name.into(),
                            core: self.id,
                        },
                    );
                }
                self.wait(idx);
                false
            }
        }
    }

    /// Pauses connection `idx` on a subscription that waits for another core.
    fn wait(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        c.pending_subs += 1;
        c.life = Life::Paused;
    }

    /// Past `max_subscriptions`: ERROR 7 (the connection stays open), or an
    /// error reply on the Redis front.
    fn refuse_subscription(&mut self, idx: u32, name: &[u8], limit: usize) {
        let ev = crate::log::Event::SubscriptionLimit;
        let topic = std::str::from_utf8(name).unwrap_or("(not UTF-8)");
        self.log_conn(
            idx,
            ev,
            format_args!("SUBSCRIBE {topic} refused: --max-subscriptions ({limit}) reached"),
        );
        if self.conns[idx as usize].is_resp() {
            let msg = format!(
                "ERR too many subscriptions on this connection (limit {limit}, --max-subscriptions)"
            );
            self.resp_reply(idx, &[Reply::Error(msg.as_bytes())]);
            return;
        }
        let msg = format!("too many subscriptions on this connection (limit {limit})");
        self.stats().count_error(ErrorCode::TooManySubscriptions);
        let topic = std::str::from_utf8(name).expect("validated topic");
        self.reply(
            idx,
            &ServerFrame::Error {
                code: 7,
                topic: Some(topic),
                message: &msg,
            },
        );
    }

    /// Adds a subscriber to a topic whose frames reach this core, and
    /// confirms it.
    fn add_subscriber(&mut self, idx: u32, id: TopicId) {
        let key = self.key(idx);
        let c = &mut self.conns[idx as usize];
        self.topics.subscribe(id, key, &mut c.first_sub);
        c.nsubs += 1;
        let resp = c.count_resp_sub(self.topics.topic(id).ns, 1);
        if resp {
            self.topics.topic_mut(id).resp_subs += 1;
        }
        self.stats().subscriptions.fetch_add(1, Ordering::Relaxed);
        self.count_changed(id, 1, resp);
        self.suback(idx, id);
    }

    /// [`Core::add_subscriber`] for a topic whose NATS subscription (if
    /// any) is not waited for: while the relay is not connected, the
    /// subscriber is told that messages from other nodes are missing.
    fn add_subscriber_now(&mut self, idx: u32, id: TopicId) {
        self.add_subscriber(idx, id);
        if self.relay_on && !self.relay_connected() {
            self.gap_one(idx, id, RELAY_AWAY);
        }
    }

    /// Tells the topic's owner (every other core, for a pattern) that this
    /// core has `delta` more subscribers to topic `id` (of which RESP ones
    /// when `resp`).
    /// (Deltas are summed per topic and sent once per batch by
    /// [`Core::flush_counts`], so a teardown of thousands of subscriptions
    /// costs one message per topic, not one per subscription.)
    fn count_changed(&mut self, id: TopicId, delta: i32, resp: bool) {
        match self.topics.topic(id).reg {
            Registration::Owner | Registration::Pending(_) => return,
            Registration::Pattern | Registration::PatternPending { .. } if self.cores == 1 => {
                return
            }
            _ => {}
        }
        let d = self.count_deltas.entry(id).or_insert((0, 0));
        d.0 += delta;
        if resp {
            d.1 += delta;
        }
    }

    /// Sends the summed count changes: with `all` (each tick), or when few
    /// topics changed, every one; otherwise only the topics that gained
    /// subscribers (at the end of each batch, so a new subscriber is counted
    /// at once). Losses over many topics at once (a mass disconnect) wait
    /// for the tick (or for the topic to be left, which sends them first):
    /// one message per topic and tick, not per topic and loop turn.
    pub(crate) fn flush_counts(&mut self, all: bool) {
        if self.count_deltas.is_empty() {
            return;
        }
        let all = all || self.count_deltas.len() <= FEW_COUNTS;
        let ids: Vec<TopicId> = self
            .count_deltas
            .iter()
            .filter(|(_, &(subs, resp))| all || subs > 0 || resp > 0)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.flush_count(id);
        }
    }

    /// Sends topic `id`'s summed count change (before the topic is
    /// forgotten, so that its owner's count never keeps a stale part).
    fn flush_count(&mut self, id: TopicId) {
        let Some((subs, resp)) = self.count_deltas.remove(&id) else {
            return;
        };
        if subs == 0 && resp == 0 {
            return;
        }
        let t = self.topics.topic(id);
        let targets: u64 = match t.reg {
            Registration::Active => 1 << owner_of(&t.name, self.cores),
            Registration::Pattern | Registration::PatternPending { .. } => {
                ((1u64 << self.cores) - 1) & !(1 << self.id)
            }
            _ => return,
        };
        let (ns, name) = (t.ns, t.name.clone());
        let mut left = targets;
        while left != 0 {
            let core = left.trailing_zeros() as usize;
            left &= left - 1;
            self.send_msg(
                core,
                Msg::Count {
                    ns,
                    topic: name.clone(),
                    subs,
                    resp,
                },
            );
        }
    }

    /// Confirms connection `idx`'s subscription to topic `id`: SUBACK with
    /// the seq of the next frame this core delivers and the topic's epoch,
    /// or Redis's `subscribe` push with the connection's count.
    fn suback(&mut self, idx: u32, id: TopicId) {
        let t = self.topics.topic(id);
        if let Wire::Resp(r) = &self.conns[idx as usize].wire {
            let name = t.name.clone();
            let classic = (r.channels + r.patterns) as usize;
            let push = match t.ns {
                Ns::Channel => PubSubPush::Subscribe {
                    channel: &name,
                    count: classic,
                },
                Ns::Pattern => PubSubPush::PSubscribe {
                    pattern: &name,
                    count: classic,
                },
                Ns::Shard => PubSubPush::SSubscribe {
                    channel: &name,
                    count: r.shard_channels as usize,
                },
            };
            self.resp_push(idx, &push);
            return;
        }
        let (next_seq, epoch) = (t.next_seq(), t.epoch);
        let name = t.name.clone();
        let topic = std::str::from_utf8(&name).expect("validated topic");
        self.reply(
            idx,
            &ServerFrame::SubAck {
                next_seq,
                epoch,
                topic,
            },
        );
    }

    /// Ends connection `idx`'s subscription to `name` in `ns`; returns
    /// whether it had one.
    pub(crate) fn unsubscribe(&mut self, idx: u32, ns: Ns, name: &[u8]) -> bool {
        let Some(id) = self.topics.get(ns, name) else {
            return false;
        };
        let Some(sub) = self.topics.find(idx, id) else {
            return false;
        };
        let c = &mut self.conns[idx as usize];
        self.topics.unsubscribe(sub, &mut c.first_sub);
        c.nsubs -= 1;
        let resp = c.count_resp_sub(ns, -1);
        self.unsubscribed(id, resp);
        true
    }

    /// The names connection `idx` subscribes to in `ns`, most recent first.
    pub(crate) fn subscribed_names(&self, idx: u32, ns: Ns) -> Vec<Box<[u8]>> {
        self.topics
            .conn_topics(self.conns[idx as usize].first_sub)
            .filter(|&id| self.topics.topic(id).ns == ns)
            .map(|id| self.topics.topic(id).name.clone())
            .collect()
    }

    /// After a subscription to topic `id` ended (of a RESP connection when
    /// `resp`): counts it, and forgets the topic when nothing keeps it
    /// alive any more.
    fn unsubscribed(&mut self, id: TopicId, resp: bool) {
        self.stats().subscriptions.fetch_sub(1, Ordering::Relaxed);
        if resp {
            self.topics.topic_mut(id).resp_subs -= 1;
        }
        self.count_changed(id, -1, resp);
        self.release_if_unused(id);
    }

    /// Forgets a topic nobody on this core subscribes to: a topic owned
    /// elsewhere is left (the owner is told to stop sending its frames
    /// here); an owned topic with no subscriber on any core is reclaimed; a
    /// pattern this core no longer subscribes to is withdrawn from the
    /// other cores, and forgotten once no core subscribes to it.
    fn release_if_unused(&mut self, id: TopicId) {
        let t = self.topics.topic(id);
        match t.reg {
            Registration::Active if t.unused() => {
                let (ns, name) = (t.ns, t.name.clone());
                self.flush_count(id);
                let owner = owner_of(&name, self.cores);
                self.topics.remove(id);
                self.send_msg(
                    owner,
                    Msg::Leave {
                        ns,
                        topic: name,
                        core: self.id,
                    },
                );
            }
            Registration::Owner if t.unused() => {
                if self.relay_on {
                    self.relay_out.push_back(RelayOut::Interest {
                        ns: t.ns,
                        topic: t.name.clone(),
                        on: false,
                        ask: 0,
                    });
                }
                self.topics.remove(id);
                self.shared.topics.fetch_sub(1, Ordering::Relaxed);
                self.stats()
                    .topics_reclaimed
                    .fetch_add(1, Ordering::Relaxed);
            }
            Registration::Pattern if t.subs.is_empty() => {
                let name = t.name.clone();
                let announced = t.announced;
                self.flush_count(id);
                if announced {
                    self.topics.topic_mut(id).announced = false;
                    let me = self.id;
                    for core in (0..self.cores).filter(|&c| c != me) {
                        self.send_msg(
                            core,
                            Msg::PatternLeave {
                                pattern: name.clone(),
                                core: self.id,
                            },
                        );
                    }
                }
                self.forget_pattern_if_unused(id);
            }
            _ => {}
        }
    }

    /// Forgets pattern topic `id` when no core subscribes to it.
    fn forget_pattern_if_unused(&mut self, id: TopicId) {
        let t = self.topics.topic(id);
        if t.reg == Registration::Pattern && t.unused() {
            self.flush_count(id);
            self.topics.remove(id);
            self.patterns.ids.remove(&id);
            self.patterns.changed();
            self.pattern_interest();
        }
    }

    /// Removes at most `budget` of connection `idx`'s subscriptions;
    /// returns how many it removed.
    pub(crate) fn drop_subs(&mut self, idx: u32, budget: usize) -> usize {
        let mut done = 0;
        while done < budget {
            let c = &mut self.conns[idx as usize];
            if c.first_sub == NO_SUB {
                break;
            }
            let id = self.topics.unsubscribe(c.first_sub, &mut c.first_sub);
            c.nsubs -= 1;
            let resp = c.count_resp_sub(self.topics.topic(id).ns, -1);
            self.unsubscribed(id, resp);
            done += 1;
        }
        done
    }

    pub(crate) fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Publish { frame, ns, reply } => {
                let receivers = self.fan_out(frame, ns, true);
                if let Some((core, conn)) = reply {
                    self.send_msg(
                        core,
                        Msg::Counted {
                            conn,
                            owner: self.id,
                            receivers,
                        },
                    );
                }
            }
            Msg::Deliver {
                frame,
                ns,
                resp,
                pmessages,
            } => {
                match self.topics.get(ns, data_topic(&frame)) {
                    Some(id) if self.topics.topic(id).reg == Registration::Active => {
                        self.topics.topic_mut(id).seq = data_seq(&frame);
                        self.deliver_local(id, frame, resp);
                    }
                    _ => {
                        self.shared.pool.release(frame);
                        if let Some(r) = resp {
                            self.shared.pool.release(r);
                        }
                    }
                }
                for f in pmessages {
                    match self.topics.get(Ns::Pattern, pmessage_pattern(f.bytes())) {
                        Some(id) => self.deliver_resp(id, f),
                        None => self.shared.pool.release(f),
                    }
                }
            }
            Msg::Join { ns, topic, core } => self.answer_join(ns, topic, core),
            Msg::Leave { ns, topic, core } => {
                if let Some(id) = self.topics.get(ns, &topic) {
                    self.topics.topic_mut(id).remote_cores &= !(1 << core);
                    self.release_if_unused(id);
                }
            }
            Msg::Joined {
                ns,
                topic,
                next_seq,
                epoch,
            } => self.joined(ns, &topic, Some((next_seq, epoch))),
            Msg::JoinRefused { ns, topic } => self.joined(ns, &topic, None),
            Msg::Count {
                ns,
                topic,
                subs,
                resp,
            } => {
                if let Some(id) = self.topics.get(ns, &topic) {
                    let t = self.topics.topic_mut(id);
                    t.remote_subs = t.remote_subs.saturating_add_signed(subs);
                    t.remote_resp = t.remote_resp.saturating_add_signed(resp);
                }
            }
            Msg::PatternJoin { pattern, core } => {
                let id = match self.topics.get(Ns::Pattern, &pattern) {
                    Some(id) => id,
                    None => {
                        let id =
                            self.topics
                                .insert(Ns::Pattern, &pattern, Registration::Pattern, 0);
                        self.patterns.ids.insert(id);
                        self.patterns.changed();
                        self.pattern_interest();
                        id
                    }
                };
                self.topics.topic_mut(id).remote_cores |= 1 << core;
                if self.pattern_wait.is_some() {
                    // Core 0, until the relay's subscription is in place.
                    self.pattern_holds.push((core, pattern));
                } else {
                    self.send_msg(core, Msg::PatternKnown { pattern });
                }
            }
            Msg::PatternKnown { pattern } => self.pattern_known(&pattern),
            Msg::PatternLeave { pattern, core } => {
                if let Some(id) = self.topics.get(Ns::Pattern, &pattern) {
                    let t = self.topics.topic_mut(id);
                    t.remote_cores &= !(1 << core);
                    self.forget_pattern_if_unused(id);
                }
            }
            Msg::Counted {
                conn,
                owner,
                receivers,
            } => self.counted(conn, owner, receivers),
            Msg::Query { conn, core, query } => {
                let answer = self.answer_query(&query);
                self.send_msg(
                    core,
                    Msg::Answer {
                        conn,
                        answer: Box::new(answer),
                    },
                );
            }
            Msg::Answer { conn, answer } => self.query_answered(conn, *answer),
            Msg::Relayed {
                ns,
                topic,
                payload,
                ts_ns,
            } => self.relayed(ns, &topic, &payload, ts_ns),
            Msg::RelayGap { reason } => self.relay_gap(reason),
            Msg::RelayTopicGap { ns, topic, reason } => {
                if let Some(id) = self.topics.get(ns, &topic) {
                    if self.topics.topic(id).reg == Registration::Owner {
                        self.topic_gap(id, reason);
                    }
                }
            }
            Msg::Gap { ns, topic, reason } => {
                if let Some(id) = self.topics.get(ns, &topic) {
                    self.gap_local(id, reason);
                }
            }
            Msg::RelayReady { upto } => self.relay_ready(upto),
        }
    }

    /// A publish from another node, through NATS, for a topic this core
    /// owns: numbered and fanned out like a local one, with its original
    /// time, and not relayed again.
    fn relayed(&mut self, ns: Ns, topic: &[u8], payload: &[u8], ts_ns: u64) {
        self.stats().relay_in.fetch_add(1, Ordering::Relaxed);
        if topic.len() > proto::MAX_TOPIC_LEN {
            return;
        }
        let len = proto::data_frame_len(topic.len(), payload.len());
        let mut f = self.arena.alloc(&self.shared.pool, len);
        // SAFETY: just allocated, no other reference exists.
        proto::encode_data(unsafe { f.bytes_mut() }, 0, ts_ns, topic, payload);
        write_ws_header(&mut f);
        self.stats().encodes.fetch_add(1, Ordering::Relaxed);
        self.fan_out(f, ns, false);
    }

    /// Frames from other nodes may have been lost: every subscriber of
    /// every topic this core owns is told (those on other cores through the
    /// same queue as the topic's frames, so the notice comes before the
    /// frames that follow it).
    fn relay_gap(&mut self, reason: &'static str) {
        let owned: Vec<TopicId> = self
            .topics
            .iter()
            .filter(|(_, t)| t.reg == Registration::Owner && t.ns != Ns::Pattern)
            .map(|(id, _)| id)
            .collect();
        for id in owned {
            self.topic_gap(id, reason);
        }
    }

    /// GAP for topic `id`, which this core owns: to its local subscribers,
    /// and through the topic's queues to the cores with subscribers.
    fn topic_gap(&mut self, id: TopicId, reason: &'static str) {
        let t = self.topics.topic(id);
        let (ns, name, mut remote) = (t.ns, t.name.clone(), t.remote_cores);
        while remote != 0 {
            let core = remote.trailing_zeros() as usize;
            remote &= remote - 1;
            self.send_msg(
                core,
                Msg::Gap {
                    ns,
                    topic: name.clone(),
                    reason,
                },
            );
        }
        self.gap_local(id, reason);
    }

    /// Sends GAP for topic `id` to subscriber `idx` alone (a native or
    /// WebSocket one: a Redis subscriber has no such notice).
    fn gap_one(&mut self, idx: u32, id: TopicId, reason: &'static str) {
        let c = &self.conns[idx as usize];
        if c.is_resp() || !c.takes_frames() {
            return;
        }
        let Ok(topic) = std::str::from_utf8(&self.topics.topic(id).name) else {
            return;
        };
        let topic = topic.to_owned();
        self.stats().relay_gaps.fetch_add(1, Ordering::Relaxed);
        self.reply(
            idx,
            &ServerFrame::Gap {
                topic: &topic,
                message: reason,
            },
        );
    }

    /// Sends GAP to the native and WebSocket subscribers of topic `id` on
    /// this core (a Redis subscriber has no such notice: docs/SCALING.md).
    fn gap_local(&mut self, id: TopicId, reason: &'static str) {
        for key in self.topics.topic(id).subs.clone() {
            self.gap_one(key.index, id, reason);
        }
    }

    /// Core 0 tells the relay when the node starts or stops having pattern
    /// subscriptions (every core knows every pattern).
    fn pattern_interest(&mut self) {
        let any = !self.patterns.ids.is_empty();
        if self.relay_on && self.id == 0 && any != self.relay_patterns {
            self.relay_patterns = any;
            let ask = if any {
                self.relay_asked += 1;
                self.relay_asked
            } else {
                0
            };
            self.relay_out
                .push_back(RelayOut::Patterns { on: any, ask });
            if any {
                // Patterns are confirmed once the subscription is in place.
                self.pattern_wait = Some((ask, self.now + RELAY_WAIT_NS));
            } else {
                self.release_pattern_holds();
            }
        }
    }

    /// Core 0: the relay's subscription for every topic is in place (or the
    /// wait for it ended): the pattern announcements it held are answered.
    fn release_pattern_holds(&mut self) {
        self.pattern_wait = None;
        for (core, pattern) in std::mem::take(&mut self.pattern_holds) {
            if core == self.id {
                self.pattern_known(&pattern);
            } else {
                self.send_msg(core, Msg::PatternKnown { pattern });
            }
        }
    }

    /// The answer of one more core to this core's pattern announcement:
    /// once every other core knows, confirm the waiting subscriptions.
    fn pattern_known(&mut self, pattern: &[u8]) {
        let Some(id) = self.topics.get(Ns::Pattern, pattern) else {
            return;
        };
        let waiting = match &mut self.topics.topic_mut(id).reg {
            Registration::PatternPending { acks, waiting } => {
                *acks -= 1;
                if *acks > 0 {
                    return;
                }
                std::mem::take(waiting)
            }
            _ => return,
        };
        let t = self.topics.topic_mut(id);
        t.reg = Registration::Pattern;
        t.announced = true;
        self.confirm_waiting(id, waiting);
        // Everyone who waited may have gone: then withdraw it again.
        if let Some(id) = self.topics.get(Ns::Pattern, pattern) {
            self.release_if_unused(id);
        }
    }

    /// The owner answered a join (with the next seq and the topic's epoch,
    /// or a refusal at the topic limit): SUBACK the waiting connections (or
    /// refuse them) and let them go on with their input.
    fn joined(&mut self, ns: Ns, topic: &[u8], answer: Option<(u64, u64)>) {
        let Some(id) = self.topics.get(ns, topic) else {
            return;
        };
        let waiting =
            match std::mem::replace(&mut self.topics.topic_mut(id).reg, Registration::Active) {
                Registration::Pending(w) => w,
                other => {
                    self.topics.topic_mut(id).reg = other;
                    return;
                }
            };
        match answer {
            Some((next, epoch)) => {
                let t = self.topics.topic_mut(id);
                t.seq = next - 1;
                t.epoch = epoch;
            }
            None => self.topics.remove(id),
        }
        self.end_wait(waiting, |core, idx| {
            match answer {
                Some(_) => match core.topics.get(ns, topic) {
                    Some(id) if core.topics.topic(id).reg == Registration::Active => {
                        if core.topics.find(idx, id).is_none() {
                            core.add_subscriber_now(idx, id);
                        } else {
                            core.suback(idx, id);
                        }
                    }
                    // An earlier waiter's input unsubscribed, so the core
                    // left the topic (and maybe joined it again, pending a
                    // new answer): subscribe anew (this pauses once more).
                    _ => {
                        core.subscribe(idx, ns, topic);
                        return false;
                    }
                },
                None => core.refuse_topic(idx),
            }
            true
        });
        // Everyone who waited may have gone: then leave again.
        if let Some(id) = self.topics.get(ns, topic) {
            self.release_if_unused(id);
        }
    }

    /// A publish's receiver count came back for RESP connection `conn`:
    /// it takes the place of the first count it waits for from that core,
    /// and what was held behind it goes out.
    fn counted(&mut self, conn: ConnKey, owner: usize, receivers: u64) {
        if !self.live(conn) {
            return;
        }
        let from = owner as u16;
        let reply = Reply::Integer(receivers as i64);
        let mut f = self.arena.alloc(&self.shared.pool, reply.encoded_len());
        // SAFETY: just allocated, no other reference exists.
        reply.encode_to_slice(unsafe { f.bytes_mut() });
        let c = &mut self.conns[conn.index as usize];
        let Wire::Resp(r) = &mut c.wire else {
            self.arena.release(&self.shared.pool, f);
            return;
        };
        let slot = r
            .held
            .iter()
            .position(|h| matches!(h, Held::Count { owner } if *owner == from));
        match slot {
            Some(i) => {
                r.held_bytes += f.len();
                r.held[i] = Held::Frame(f);
            }
            None => {
                self.arena.release(&self.shared.pool, f);
                return;
            }
        }
        self.flush_held(conn.index);
    }

    /// Moves what a RESP connection holds, up to its first count still to
    /// come, to its send queue.
    pub(crate) fn flush_held(&mut self, idx: u32) {
        let limit = self.shared.config.max_backlog;
        let c = &mut self.conns[idx as usize];
        loop {
            let Wire::Resp(r) = &mut c.wire else { return };
            match r.held.front() {
                Some(Held::Frame(_)) => {}
                Some(Held::Count { .. }) => return,
                None => {
                    // A connection that drained while it held replies
                    // closes once they are all sent.
                    if matches!(c.life, Life::Draining { .. }) && !c.sending && c.outq.is_empty() {
                        self.begin_closing(idx);
                    }
                    return;
                }
            }
            let Some(Held::Frame(f)) = r.held.pop_front() else {
                unreachable!()
            };
            r.held_bytes -= f.len();
            // Straight to the send queue: what is still held stays behind it.
            enqueue_now(
                c,
                idx,
                f,
                limit,
                &mut self.owed,
                &mut self.dirty,
                &mut self.over_limit,
            );
        }
    }

    /// A PUBSUB question to every core (this one answers at once); the
    /// connection waits for the other answers.
    pub(crate) fn query(&mut self, idx: u32, query: Query) {
        let mine = self.answer_query(&query);
        if self.cores == 1 {
            self.reply_query(idx, &query, vec![mine]);
            return;
        }
        let key = self.key(idx);
        let me = self.id;
        for core in (0..self.cores).filter(|&c| c != me) {
            self.send_msg(
                core,
                Msg::Query {
                    conn: key,
                    core: self.id,
                    query: Box::new(query.clone()),
                },
            );
        }
        let c = &mut self.conns[idx as usize];
        if let Wire::Resp(r) = &mut c.wire {
            r.query = Some(Box::new((query, vec![mine])));
        }
        c.pending_subs += 1;
        c.life = Life::Paused;
    }

    /// This core's part of a PUBSUB answer: about its own subscribers.
    fn answer_query(&self, query: &Query) -> Answer {
        let mut a = Answer::default();
        match query {
            Query::Channels { ns, pattern } => {
                for (_, t) in self.topics.iter() {
                    if t.ns == *ns
                        && !t.subs.is_empty()
                        && pattern.as_ref().map_or(true, |p| glob::matches(p, &t.name))
                    {
                        a.names.push(t.name.clone());
                    }
                }
            }
            Query::NumSub { ns, names } => {
                for name in names {
                    let n = self
                        .topics
                        .get(*ns, name)
                        .map_or(0, |id| self.topics.topic(id).subs.len() as u64);
                    a.counts.push(n);
                }
            }
            Query::Patterns => {
                for &id in &self.patterns.ids {
                    let t = self.topics.topic(id);
                    if !t.subs.is_empty() {
                        a.names.push(t.name.clone());
                    }
                }
            }
        }
        a
    }

    /// One more core answered connection `conn`'s PUBSUB question.
    fn query_answered(&mut self, conn: ConnKey, answer: Answer) {
        if !self.live(conn) {
            return;
        }
        let idx = conn.index;
        let c = &mut self.conns[idx as usize];
        let Wire::Resp(r) = &mut c.wire else { return };
        let Some(q) = r.query.as_mut() else { return };
        q.1.push(answer);
        if q.1.len() < self.cores {
            return;
        }
        let (query, parts) = *r.query.take().expect("checked");
        c.pending_subs -= 1;
        if c.life == Life::Paused {
            c.life = Life::Open;
        }
        if !c.is_live() {
            return;
        }
        self.reply_query(idx, &query, parts);
        self.resume(idx);
    }

    /// Replies to a PUBSUB question from every core's part.
    fn reply_query(&mut self, idx: u32, query: &Query, parts: Vec<Answer>) {
        match query {
            Query::Patterns => {
                let names: std::collections::HashSet<Box<[u8]>> =
                    parts.into_iter().flat_map(|a| a.names).collect();
                self.resp_reply(idx, &[Reply::Integer(names.len() as i64)]);
            }
            Query::Channels { .. } => {
                // A channel with subscribers on several cores is named by each.
                let mut seen = std::collections::HashSet::new();
                let names: Vec<Box<[u8]>> = parts
                    .into_iter()
                    .flat_map(|a| a.names)
                    .filter(|n| seen.insert(n.clone()))
                    .collect();
                let mut replies = Vec::with_capacity(names.len() + 1);
                replies.push(Reply::Array(names.len()));
                replies.extend(names.iter().map(|n| Reply::Bulk(n)));
                self.resp_reply(idx, &replies);
            }
            Query::NumSub { names, .. } => {
                let mut counts = vec![0u64; names.len()];
                for a in &parts {
                    for (i, n) in a.counts.iter().enumerate() {
                        counts[i] += n;
                    }
                }
                // A flat array in both protocols, as Redis 7 sends it.
                let mut replies = Vec::with_capacity(names.len() * 2 + 1);
                replies.push(Reply::Array(names.len() * 2));
                for (name, n) in names.iter().zip(&counts) {
                    replies.push(Reply::Bulk(name));
                    replies.push(Reply::Integer(*n as i64));
                }
                self.resp_reply(idx, &replies);
            }
        }
    }
}

/// Queues `f` on connection `c` (slab index `idx`): lists it for a send,
/// and for a cut when its backlog passes `limit`. A RESP connection that
/// waits for a publish's count holds it back behind that count.
pub(crate) fn enqueue(
    c: &mut Conn,
    idx: u32,
    f: FrameRef,
    limit: usize,
    owed: &mut usize,
    dirty: &mut Vec<u32>,
    over_limit: &mut Vec<u32>,
) {
    if let Wire::Resp(r) = &mut c.wire {
        if !r.held.is_empty() {
            r.held_bytes += f.len();
            r.held.push_back(Held::Frame(f));
            if c.queued + r.held_bytes > limit && c.takes_frames() {
                c.life = Life::Overflowing;
                over_limit.push(idx);
            }
            return;
        }
    }
    enqueue_now(c, idx, f, limit, owed, dirty, over_limit);
}

/// A core's send-queue bookkeeping, lent to [`resp_view`].
struct Queue<'a> {
    limit: usize,
    owed: &'a mut usize,
    dirty: &'a mut Vec<u32>,
    over_limit: &'a mut Vec<u32>,
}

/// What RESP connection `c` (slab index `idx`) is sent of `push`, a push
/// encoded for RESP2: the push itself, or for RESP3 (`r3`) the shared
/// one-byte `>` frame (`gt`, allocated on first use; queued here) and then
/// the push from its second byte.
#[allow(clippy::too_many_arguments)]
fn resp_view(
    c: &mut Conn,
    idx: u32,
    r3: bool,
    push: &FrameRef,
    gt: &mut Option<FrameRef>,
    arena: &mut crate::pool::Arena,
    pool: &crate::pool::Pool,
    q: &mut Queue<'_>,
) -> FrameRef {
    if !r3 {
        return pool.share(push);
    }
    let g = gt.get_or_insert_with(|| {
        let mut g = arena.alloc(pool, 1);
        // SAFETY: just allocated, no other reference exists.
        unsafe { g.bytes_mut()[0] = b'>' };
        g
    });
    let g = pool.share(g);
    enqueue_push(c, idx, g, q.limit, q.owed, q.dirty, q.over_limit);
    pool.share(push).advance(1)
}

/// [`enqueue`] for a published message: a push is out of band, so a RESP
/// connection waiting only for PUBLISH counts gets it at once (as Redis
/// sends a subscriber its own publish before the count); behind a held
/// reply it waits, so that it never comes before a confirmation.
fn enqueue_push(
    c: &mut Conn,
    idx: u32,
    f: FrameRef,
    limit: usize,
    owed: &mut usize,
    dirty: &mut Vec<u32>,
    over_limit: &mut Vec<u32>,
) {
    if matches!(&c.wire, Wire::Resp(r) if r.held_bytes == 0) {
        enqueue_now(c, idx, f, limit, owed, dirty, over_limit);
    } else {
        enqueue(c, idx, f, limit, owed, dirty, over_limit);
    }
}

/// [`enqueue`] to the send queue itself, whatever is held.
fn enqueue_now(
    c: &mut Conn,
    idx: u32,
    f: FrameRef,
    limit: usize,
    owed: &mut usize,
    dirty: &mut Vec<u32>,
    over_limit: &mut Vec<u32>,
) {
    if c.push(f, owed) > limit && c.takes_frames() {
        c.life = Life::Overflowing;
        over_limit.push(idx);
    }
    if !c.dirty && !c.sending {
        c.dirty = true;
        dirty.push(idx);
    }
}

/// Writes the WebSocket binary-message header for the frame `f` into its
/// headroom. `f` must start at the frame, with nobody else reading it yet.
fn write_ws_header(f: &mut FrameRef) {
    let len = f.len();
    // SAFETY: the caller holds the only reference and it starts at the frame.
    write_header(
        unsafe { f.prefix_mut(header_len(len)) },
        Opcode::Binary,
        len,
    );
}

/// Turns a reference to a native frame (as for [`write_ws_header`]) into a
/// view that is one WebSocket binary message.
pub(crate) fn with_ws_header(mut f: FrameRef) -> FrameRef {
    write_ws_header(&mut f);
    let h = header_len(f.len());
    f.extend_front(h)
}
