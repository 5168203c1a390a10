//! Topics across cores: publish, fan-out, subscribe, unsubscribe, the
//! join/leave protocol with a topic's owner core, and reclaiming topics.

use super::{Action, Conn, Core, Life, Msg};
use crate::pool::FrameRef;
use crate::proto::{self, DataView, ErrorCode, ServerFrame};
use crate::topic::{owner_of, Registration, TopicId, NO_SUB};
use crate::ws::frame::{header_len, write_header, Opcode};
use std::sync::atomic::Ordering;

/// Topic bytes of an encoded DATA frame.
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

impl Core {
    /// PUBLISH: stamp, encode once into frame memory, hand to the owner.
    pub(crate) fn publish(&mut self, idx: u32, topic: &[u8], payload: &[u8]) {
        if self.shared.config.publish_token.is_some() && !self.conns[idx as usize].auth_pub {
            self.fail(
                idx,
                ErrorCode::NotAuthorized,
                "not authorized: PUBLISH needs AUTH with the publish token",
                false,
            );
            return;
        }
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
        // to wait for, whichever core owns the topic.
        let owner = owner_of(topic, self.cores);
        if owner == self.id {
            self.fan_out(f);
        } else {
            self.send_msg(owner, Msg::Publish(f));
        }
    }

    /// Lets a paused connection go on with the input it buffered.
    fn resume(&mut self, idx: u32) {
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
    fn owned_topic(&mut self, name: &[u8]) -> Option<TopicId> {
        if let Some(id) = self.topics.get(name) {
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
        Some(self.topics.insert(name, Registration::Owner, epoch))
    }

    /// On the owner core: assign the next seq, deliver to local subscribers
    /// and to every core that has subscribers. A topic nobody subscribes to
    /// does not exist: its frame goes nowhere and takes no seq.
    fn fan_out(&mut self, mut frame: FrameRef) {
        let id = match self.topics.get(data_topic(&frame)) {
            Some(id) if self.topics.topic(id).reg == Registration::Owner => id,
            _ => {
                self.shared.pool.release(frame);
                return;
            }
        };
        let t = self.topics.topic_mut(id);
        t.seq += 1;
        let seq = t.seq;
        let mut remote = t.remote_cores;
        // SAFETY: no send and no other core refers to the frame yet: it was
        // encoded by a publisher and handed to this owner alone.
        proto::patch_data_seq(unsafe { frame.bytes_mut() }, seq);
        while remote != 0 {
            let core = remote.trailing_zeros() as usize;
            remote &= remote - 1;
            let copy = self.shared.pool.share(&frame);
            self.send_msg(core, Msg::Deliver(copy));
        }
        self.deliver_local(id, frame);
    }

    /// ERROR 4 for a SUBSCRIBE that would create a topic past the limit.
    pub(super) fn refuse_topic(&mut self, idx: u32) {
        let limit = self.shared.config.max_topics;
        let reason = format!("bad topic: the server's topic limit ({limit}) is reached");
        self.fail(idx, ErrorCode::BadTopic, &reason, false);
    }

    /// Queues `frame` for every local subscriber of topic `id`; consumes the reference.
    fn deliver_local(&mut self, id: TopicId, frame: FrameRef) {
        let pool = &self.shared.pool;
        let subs = &self.topics.topic(id).subs;
        let n = subs.len();
        if n == 0 {
            pool.release(frame);
            return;
        }
        let limit = self.shared.config.max_backlog;
        // WebSocket subscribers get a view that starts at the header written
        // in front of the frame when it was encoded.
        let ws_header = header_len(frame.len());
        let mut frame = Some(frame);
        for (i, key) in subs.iter().enumerate() {
            let f = if i + 1 == n {
                frame.take().expect("last subscriber takes the reference")
            } else {
                pool.share(frame.as_ref().expect("frame kept for later subscribers"))
            };
            let c = &mut self.conns[key.index as usize];
            debug_assert_eq!(c.gen, key.gen);
            // A connection going away keeps its subscriptions until the
            // teardown gets to them; it gets nothing more meanwhile.
            if !c.takes_frames() {
                self.arena.release(pool, f);
                continue;
            }
            let f = if c.is_ws() {
                f.extend_front(ws_header)
            } else {
                f
            };
            enqueue(
                c,
                key.index,
                f,
                limit,
                &mut self.owed,
                &mut self.dirty,
                &mut self.over_limit,
            );
        }
        self.shared.stats[self.id]
            .deliveries
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn subscribe(&mut self, idx: u32, topic: &[u8]) {
        let cfg = &self.shared.config;
        if cfg.subscribe_token.is_some() && !self.conns[idx as usize].auth_sub {
            self.fail(
                idx,
                ErrorCode::NotAuthorized,
                "not authorized: SUBSCRIBE needs AUTH with the subscribe token",
                false,
            );
            return;
        }
        let topic_str = std::str::from_utf8(topic).expect("validated topic");
        let existing = self.topics.get(topic);
        if let Some(id) = existing {
            if self.topics.find(idx, id).is_some() {
                self.suback(idx, id);
                return;
            }
        }
        let c = &self.conns[idx as usize];
        let limit = self.shared.config.max_subscriptions;
        if c.nsubs as usize + c.pending_subs as usize >= limit {
            let msg = format!("too many subscriptions on this connection (limit {limit})");
            self.stats().count_error(ErrorCode::TooManySubscriptions);
            self.reply(
                idx,
                &ServerFrame::Error {
                    code: 7,
                    topic: Some(topic_str),
                    message: &msg,
                },
            );
            return;
        }
        let key = self.key(idx);
        let owner = owner_of(topic, self.cores);
        let id = match existing {
            Some(id) => id,
            None if owner == self.id => match self.owned_topic(topic) {
                Some(id) => id,
                None => {
                    self.refuse_topic(idx);
                    return;
                }
            },
            None => {
                self.topics
                    .insert(topic, Registration::Pending(Vec::new()), 0);
                self.send_msg(
                    owner,
                    Msg::Join {
                        topic: topic.into(),
                        core: self.id,
                    },
                );
                self.topics.get(topic).expect("inserted")
            }
        };
        if let Registration::Pending(waiting) = &mut self.topics.topic_mut(id).reg {
            waiting.push(key);
            let c = &mut self.conns[idx as usize];
            c.pending_subs += 1;
            c.life = Life::Paused;
            return;
        }
        self.add_subscriber(idx, id);
    }

    /// Adds a subscriber to a topic whose frames reach this core, and SUBACKs.
    fn add_subscriber(&mut self, idx: u32, id: TopicId) {
        let key = self.key(idx);
        let c = &mut self.conns[idx as usize];
        self.topics.subscribe(id, key, &mut c.first_sub);
        c.nsubs += 1;
        self.stats().subscriptions.fetch_add(1, Ordering::Relaxed);
        self.suback(idx, id);
    }

    /// SUBACK for topic `id`: the seq of the next frame this core delivers
    /// and the epoch of the topic's sequence.
    fn suback(&mut self, idx: u32, id: TopicId) {
        let t = self.topics.topic(id);
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

    pub(crate) fn unsubscribe(&mut self, idx: u32, topic: &[u8]) {
        let Some(id) = self.topics.get(topic) else {
            return;
        };
        let Some(sub) = self.topics.find(idx, id) else {
            return;
        };
        let c = &mut self.conns[idx as usize];
        self.topics.unsubscribe(sub, &mut c.first_sub);
        c.nsubs -= 1;
        self.unsubscribed(id);
    }

    /// After a subscription to topic `id` ended: counts it, and forgets the
    /// topic when nothing keeps it alive any more.
    fn unsubscribed(&mut self, id: TopicId) {
        self.stats().subscriptions.fetch_sub(1, Ordering::Relaxed);
        self.release_if_unused(id);
    }

    /// Forgets a topic nobody on this core subscribes to: a topic owned
    /// elsewhere is left (the owner is told to stop sending its frames
    /// here); an owned topic with no subscriber on any core is reclaimed.
    fn release_if_unused(&mut self, id: TopicId) {
        let t = self.topics.topic(id);
        if !t.unused() {
            return;
        }
        match t.reg {
            Registration::Active => {
                let name = t.name.clone();
                let owner = owner_of(&name, self.cores);
                self.topics.remove(id);
                self.send_msg(
                    owner,
                    Msg::Leave {
                        topic: name,
                        core: self.id,
                    },
                );
            }
            Registration::Owner => {
                self.topics.remove(id);
                self.shared.topics.fetch_sub(1, Ordering::Relaxed);
                self.stats()
                    .topics_reclaimed
                    .fetch_add(1, Ordering::Relaxed);
            }
            Registration::Pending(_) => {}
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
            self.unsubscribed(id);
            done += 1;
        }
        done
    }

    pub(crate) fn handle_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Publish(frame) => self.fan_out(frame),
            Msg::Deliver(frame) => {
                let id = self.topics.get(data_topic(&frame));
                match id {
                    Some(id) if self.topics.topic(id).reg == Registration::Active => {
                        self.topics.topic_mut(id).seq = data_seq(&frame);
                        self.deliver_local(id, frame);
                    }
                    _ => self.shared.pool.release(frame),
                }
            }
            Msg::Join { topic, core } => match self.owned_topic(&topic) {
                Some(id) => {
                    let t = self.topics.topic_mut(id);
                    t.remote_cores |= 1 << core;
                    let (next_seq, epoch) = (t.next_seq(), t.epoch);
                    self.send_msg(
                        core,
                        Msg::Joined {
                            topic,
                            next_seq,
                            epoch,
                        },
                    );
                }
                None => self.send_msg(core, Msg::JoinRefused { topic }),
            },
            Msg::Leave { topic, core } => {
                if let Some(id) = self.topics.get(&topic) {
                    self.topics.topic_mut(id).remote_cores &= !(1 << core);
                    self.release_if_unused(id);
                }
            }
            Msg::Joined {
                topic,
                next_seq,
                epoch,
            } => self.joined(&topic, Some((next_seq, epoch))),
            Msg::JoinRefused { topic } => self.joined(&topic, None),
        }
    }

    /// The owner answered a join (with the next seq and the topic's epoch,
    /// or a refusal at the topic limit): SUBACK the waiting connections (or
    /// refuse them) and let them go on with their input.
    fn joined(&mut self, topic: &[u8], answer: Option<(u64, u64)>) {
        let Some(id) = self.topics.get(topic) else {
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
            match answer {
                Some(_) => match self.topics.get(topic) {
                    Some(id) if self.topics.topic(id).reg == Registration::Active => {
                        self.add_subscriber(idx, id)
                    }
                    // An earlier waiter's input unsubscribed, so the core
                    // left the topic (and maybe joined it again, pending a
                    // new answer): subscribe anew (this pauses once more).
                    _ => {
                        self.subscribe(idx, topic);
                        continue;
                    }
                },
                None => self.refuse_topic(idx),
            }
            self.resume(idx);
        }
        // Everyone who waited may have gone: then leave again.
        if let Some(id) = self.topics.get(topic) {
            self.release_if_unused(id);
        }
    }
}

/// Queues `f` on connection `c` (slab index `idx`): lists it for a send,
/// and for a cut when its backlog passes `limit`.
pub(crate) fn enqueue(
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
