//! Subscription tables, topic ownership and sequence numbers. No I/O.
//!
//! Every topic has an owner core, `fnv1a(name) % cores`. The owner assigns
//! sequence numbers and knows which other cores have subscribers
//! (`remote_cores`); each core keeps its own dense list of local subscribers
//! per topic. A non-owner core joins a topic by asking the owner, which
//! answers with the next seq through the same FIFO queue it then uses for the
//! topic's frames, so a subscriber sees exactly the frames from `next_seq` on.
//!
//! A topic lives while it has subscribers: the owner creates it for the
//! first one (on any core) and forgets it when the last one leaves, so
//! nobody can fill the table with names. A new incarnation gets a new
//! `epoch`, which tells a client that its sequence started again.

use slab::Slab;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Index of a topic in one core's table.
pub type TopicId = usize;

/// A connection on this core: slab index plus a generation that tells a
/// reused slot from the connection that held it before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub index: u32,
    pub gen: u32,
}

/// FNV-1a 64: stable across runs and cores, cheap for short topic names.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The core that owns `topic`'s sequence.
pub fn owner_of(topic: &[u8], cores: usize) -> usize {
    (fnv1a(topic) % cores as u64) as usize
}

/// `Hasher` over FNV-1a, for the topic index.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The namespaces of the topic table. Channels are the one namespace every
/// front shares (a native topic is a channel); Redis's shard channels
/// (SSUBSCRIBE) and patterns (PSUBSCRIBE) are apart, as in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ns {
    Channel = 0,
    Shard = 1,
    Pattern = 2,
}

impl Ns {
    pub fn from_u8(b: u8) -> Option<Ns> {
        match b {
            0 => Some(Ns::Channel),
            1 => Some(Ns::Shard),
            2 => Some(Ns::Pattern),
            _ => None,
        }
    }
}

/// Longest name the table keys without allocating (a native topic's limit).
const STACK_KEY: usize = 255;

/// Calls `f` with the table's key for `name` in `ns`: the name, then the
/// namespace byte (so keys of different namespaces never collide).
fn with_key<R>(ns: Ns, name: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if name.len() <= STACK_KEY {
        let mut buf = [0u8; STACK_KEY + 1];
        buf[..name.len()].copy_from_slice(name);
        buf[name.len()] = ns as u8;
        f(&buf[..=name.len()])
    } else {
        let mut v = Vec::with_capacity(name.len() + 1);
        v.extend_from_slice(name);
        v.push(ns as u8);
        f(&v)
    }
}

/// How this core stands with a topic's owner.
#[derive(Debug, PartialEq, Eq)]
pub enum Registration {
    /// This core owns the topic: it assigns the sequence.
    Owner,
    /// Asked the owner to be sent the topic's frames; these connections wait
    /// for the answer before their SUBACK.
    Pending(Vec<ConnKey>),
    /// The owner sends this core every frame of the topic.
    Active,
    /// A pattern (every core knows every pattern some core subscribes to,
    /// and which cores do: `remote_cores`).
    Pattern,
    /// A pattern this core's first subscriber waits on: the other cores
    /// must learn of it (`acks` answers still to come) before the
    /// subscription is confirmed, so a publish made after the confirmation
    /// reaches it whichever core owns the channel.
    PatternPending { waiting: Vec<ConnKey>, acks: u32 },
}

/// Index of a subscription in one core's table.
pub type SubId = u32;

/// "No subscription": the end of a connection's list.
pub const NO_SUB: SubId = u32::MAX;

/// One subscription of one connection to one topic. Subscriptions of a
/// connection form a doubly linked list through the table (the connection
/// holds its head), so none of subscribe, unsubscribe or dropping one of a
/// connection's subscriptions ever scans a list.
#[derive(Debug)]
struct Sub {
    topic: TopicId,
    conn: u32,
    /// Index of this subscription in the topic's `subs` (and `sub_ids`).
    pos: u32,
    prev: SubId,
    next: SubId,
}

/// Bytes of one subscription's entry (for the memory budget test).
#[cfg(test)]
pub(crate) const SUB_BYTES: usize = std::mem::size_of::<Sub>();

/// One topic as one core sees it.
#[derive(Debug)]
pub struct Topic {
    pub name: Box<[u8]>,
    pub ns: Ns,
    /// Owner: last assigned seq (0 before the first publish). Active
    /// non-owner: last seq received from the owner.
    pub seq: u64,
    /// Names this incarnation of the topic's sequence (SUBACK's `epoch`):
    /// set by the owner when it creates the topic, told to other cores in
    /// their join answer.
    pub epoch: u64,
    /// Owner (or, for a pattern, every core): bit `c` set when core `c`
    /// (not this one) has subscribers.
    pub remote_cores: u64,
    /// Owner (or, for a pattern, every core): subscribers on other cores,
    /// and how many of them speak RESP (as those cores report them): for
    /// PUBLISH's receiver count, and to encode RESP messages once.
    pub remote_subs: u32,
    pub remote_resp: u32,
    /// Local subscribers that speak RESP.
    pub resp_subs: u32,
    /// A pattern: this core told the others it has subscribers.
    pub announced: bool,
    /// Local subscribers, dense; each one's [`Sub`] stores its index here.
    pub subs: Vec<ConnKey>,
    /// The subscription of each of `subs`, at the same index (touched only
    /// when subscriptions change, not by a fan-out).
    sub_ids: Vec<SubId>,
    pub reg: Registration,
}

impl Topic {
    /// The seq the next frame delivered on this core will carry.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Whether nothing keeps this topic alive on this core: no local
    /// subscriber, and (on the owner) no other core with subscribers.
    pub fn unused(&self) -> bool {
        self.subs.is_empty() && self.remote_cores == 0
    }
}

/// One core's topics and its connections' subscriptions to them.
///
/// Invariants, for every live subscription `s`:
/// `topics[subs[s].topic].sub_ids[subs[s].pos] == s` (and `.subs` there holds
/// its connection), and `s` is in the
/// list of exactly the connection `subs[s].conn`; `by_conn` maps
/// `(subs[s].conn, subs[s].topic)` to `s` and holds nothing else.
#[derive(Default)]
pub struct TopicTable {
    /// Keyed by name and namespace (see `with_key`).
    index: HashMap<Box<[u8]>, TopicId, BuildHasherDefault<Fnv>>,
    topics: Slab<Topic>,
    owned: usize,
    subs: Slab<Sub>,
    by_conn: HashMap<(u32, u32), SubId, BuildHasherDefault<Fnv>>,
}

impl TopicTable {
    pub fn get(&self, ns: Ns, name: &[u8]) -> Option<TopicId> {
        with_key(ns, name, |k| self.index.get(k).copied())
    }

    /// Topics this core owns.
    pub fn owned(&self) -> usize {
        self.owned
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Adds a topic with no subscriber yet, sequence at 0.
    pub fn insert(&mut self, ns: Ns, name: &[u8], reg: Registration, epoch: u64) -> TopicId {
        debug_assert!(self.get(ns, name).is_none());
        if reg == Registration::Owner {
            self.owned += 1;
        }
        let id = self.topics.insert(Topic {
            name: name.into(),
            ns,
            seq: 0,
            epoch,
            remote_cores: 0,
            remote_subs: 0,
            remote_resp: 0,
            resp_subs: 0,
            announced: false,
            subs: Vec::new(),
            sub_ids: Vec::new(),
            reg,
        });
        with_key(ns, name, |k| self.index.insert(k.into(), id));
        id
    }

    /// Forgets a topic; it must have no local subscriber.
    pub fn remove(&mut self, id: TopicId) {
        let t = self.topics.remove(id);
        debug_assert!(t.subs.is_empty(), "a topic with subscribers is removed");
        if t.reg == Registration::Owner {
            self.owned -= 1;
        }
        with_key(t.ns, &t.name, |k| self.index.remove(k));
    }

    pub fn topic(&self, id: TopicId) -> &Topic {
        &self.topics[id]
    }

    pub fn topic_mut(&mut self, id: TopicId) -> &mut Topic {
        &mut self.topics[id]
    }

    /// The subscription of connection `conn` (slab index) to topic `id`.
    pub fn find(&self, conn: u32, id: TopicId) -> Option<SubId> {
        self.by_conn.get(&(conn, id as u32)).copied()
    }

    /// Subscribes `conn` to topic `id`; `head` is the head of the
    /// connection's subscription list. The caller checks it was not
    /// subscribed already ([`TopicTable::find`]).
    pub fn subscribe(&mut self, id: TopicId, conn: ConnKey, head: &mut SubId) -> SubId {
        debug_assert!(self.find(conn.index, id).is_none());
        let topic = &mut self.topics[id];
        let sub = self.subs.insert(Sub {
            topic: id,
            conn: conn.index,
            pos: topic.subs.len() as u32,
            prev: NO_SUB,
            next: *head,
        }) as SubId;
        topic.subs.push(conn);
        topic.sub_ids.push(sub);
        if *head != NO_SUB {
            self.subs[*head as usize].prev = sub;
        }
        *head = sub;
        self.by_conn.insert((conn.index, id as u32), sub);
        sub
    }

    /// Ends subscription `sub` of the connection whose list starts at
    /// `head`; returns its topic. O(1): the topic's list stays dense by
    /// moving its last member into the hole.
    pub fn unsubscribe(&mut self, sub: SubId, head: &mut SubId) -> TopicId {
        let s = self.subs.remove(sub as usize);
        if s.prev == NO_SUB {
            debug_assert_eq!(*head, sub);
            *head = s.next;
        } else {
            self.subs[s.prev as usize].next = s.next;
        }
        if s.next != NO_SUB {
            self.subs[s.next as usize].prev = s.prev;
        }
        self.by_conn.remove(&(s.conn, s.topic as u32));
        let topic = &mut self.topics[s.topic];
        topic.subs.swap_remove(s.pos as usize);
        topic.sub_ids.swap_remove(s.pos as usize);
        if let Some(&moved) = topic.sub_ids.get(s.pos as usize) {
            self.subs[moved as usize].pos = s.pos;
        }
        s.topic
    }

    /// The topics of the subscriptions in the list that starts at `head`.
    pub fn conn_topics(&self, head: SubId) -> impl Iterator<Item = TopicId> + '_ {
        let mut at = head;
        std::iter::from_fn(move || {
            if at == NO_SUB {
                return None;
            }
            let s = &self.subs[at as usize];
            at = s.next;
            Some(s.topic)
        })
    }

    /// Every topic, with its id.
    pub fn iter(&self) -> impl Iterator<Item = (TopicId, &Topic)> {
        self.topics.iter()
    }

    /// Subscriptions held, all connections of this core.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(i: u32) -> ConnKey {
        ConnKey { index: i, gen: 0 }
    }

    #[test]
    fn owner_is_stable_and_in_range() {
        for cores in 1..8 {
            let o = owner_of(b"prices.eur", cores);
            assert!(o < cores);
            assert_eq!(o, owner_of(b"prices.eur", cores));
        }
    }

    /// Checks every invariant of the table against a model: which
    /// connections subscribe to which topics.
    fn check(t: &TopicTable, heads: &HashMap<u32, SubId>, model: &HashSet<(u32, TopicId)>) {
        assert_eq!(t.subscriptions(), model.len());
        for &(conn, id) in model {
            let sub = t.find(conn, id).expect("modelled subscription exists");
            let s = &t.subs[sub as usize];
            assert_eq!((s.conn, s.topic), (conn, id));
            let topic = t.topic(id);
            assert_eq!(topic.subs[s.pos as usize], key(conn));
            assert_eq!(topic.sub_ids[s.pos as usize], sub);
        }
        for (&conn, &head) in heads {
            let (mut n, mut prev, mut at) = (0, NO_SUB, head);
            while at != NO_SUB {
                let s = &t.subs[at as usize];
                assert_eq!((s.conn, s.prev), (conn, prev));
                prev = at;
                at = s.next;
                n += 1;
            }
            assert_eq!(n, model.iter().filter(|(c, _)| *c == conn).count());
        }
    }

    #[test]
    fn subscriptions_stay_consistent_through_any_removal_order() {
        let mut t = TopicTable::default();
        let topics: Vec<TopicId> = (0..5)
            .map(|i| {
                t.insert(
                    Ns::Channel,
                    format!("t{i}").as_bytes(),
                    Registration::Owner,
                    1,
                )
            })
            .collect();
        let mut heads: HashMap<u32, SubId> = HashMap::new();
        let mut model = HashSet::new();
        for conn in 0..8u32 {
            let head = heads.entry(conn).or_insert(NO_SUB);
            for (i, &id) in topics.iter().enumerate() {
                if (conn as usize + i) % 3 != 0 {
                    t.subscribe(id, key(conn), head);
                    model.insert((conn, id));
                }
            }
        }
        check(&t, &heads, &model);
        // Unsubscribe some from the middle of lists, then tear connections
        // down from their heads.
        for (conn, id) in [(1u32, topics[1]), (4, topics[4]), (7, topics[1])] {
            let sub = t.find(conn, id).unwrap();
            let head = heads.get_mut(&conn).unwrap();
            assert_eq!(t.unsubscribe(sub, head), id);
            model.remove(&(conn, id));
            check(&t, &heads, &model);
        }
        for conn in [3u32, 0, 7] {
            while heads[&conn] != NO_SUB {
                let head = heads.get_mut(&conn).unwrap();
                let id = t.unsubscribe(*head, head);
                model.remove(&(conn, id));
                check(&t, &heads, &model);
            }
        }
    }

    #[test]
    fn topics_are_counted_and_can_be_forgotten() {
        let mut t = TopicTable::default();
        let mine = t.insert(Ns::Channel, b"mine", Registration::Owner, 7);
        let other = t.insert(
            Ns::Channel,
            b"theirs",
            Registration::Pending(vec![key(1)]),
            0,
        );
        let shard = t.insert(Ns::Shard, b"mine", Registration::Owner, 8);
        assert_ne!(mine, shard);
        assert_eq!(t.get(Ns::Shard, b"mine"), Some(shard));
        assert_eq!(t.get(Ns::Pattern, b"mine"), None);
        t.remove(shard);
        assert_eq!(t.get(Ns::Channel, b"mine"), Some(mine));
        assert_eq!(t.owned(), 1);
        t.remove(other);
        assert_eq!(t.get(Ns::Channel, b"theirs"), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.topic(mine).next_seq(), 1);
        assert_eq!(t.topic(mine).epoch, 7);
        assert!(t.topic(mine).unused());
        t.remove(mine);
        assert_eq!((t.owned(), t.len()), (0, 0));
    }
}
