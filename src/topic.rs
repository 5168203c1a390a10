//! Subscription tables, topic ownership and sequence numbers. No I/O.
//!
//! Every topic has an owner core, `fnv1a(name) % cores`. The owner assigns
//! sequence numbers and knows which other cores have subscribers
//! (`remote_cores`); each core keeps its own dense list of local subscribers
//! per topic. A non-owner core joins a topic by asking the owner, which
//! answers with the next seq through the same FIFO queue it then uses for the
//! topic's frames, so a subscriber sees exactly the frames from `next_seq` on.

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
}

/// One topic as one core sees it.
#[derive(Debug)]
pub struct Topic {
    pub name: Box<[u8]>,
    /// Owner: last assigned seq (0 before the first publish). Active
    /// non-owner: last seq received from the owner.
    pub seq: u64,
    /// Owner only: bit `c` set when core `c` (not this one) has subscribers.
    pub remote_cores: u64,
    /// Local subscribers, dense; a connection stores its index here.
    pub subs: Vec<ConnKey>,
    pub reg: Registration,
}

impl Topic {
    /// The seq the next frame delivered on this core will carry.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }
}

/// One core's topics.
#[derive(Default)]
pub struct TopicTable {
    index: HashMap<Box<[u8]>, TopicId, BuildHasherDefault<Fnv>>,
    topics: Slab<Topic>,
    owned: usize,
}

impl TopicTable {
    pub fn get(&self, name: &[u8]) -> Option<TopicId> {
        self.index.get(name).copied()
    }

    /// Topics this core owns (they live for the engine's run: their seq must not restart).
    pub fn owned(&self) -> usize {
        self.owned
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    pub fn insert(&mut self, name: &[u8], reg: Registration) -> TopicId {
        debug_assert!(self.get(name).is_none());
        if reg == Registration::Owner {
            self.owned += 1;
        }
        let id = self.topics.insert(Topic {
            name: name.into(),
            seq: 0,
            remote_cores: 0,
            subs: Vec::new(),
            reg,
        });
        self.index.insert(name.into(), id);
        id
    }

    /// Forgets a topic this core does not own.
    pub fn remove(&mut self, id: TopicId) {
        let t = self.topics.remove(id);
        debug_assert!(
            t.reg != Registration::Owner,
            "owned topics keep their sequence"
        );
        self.index.remove(&t.name);
    }

    pub fn topic(&self, id: TopicId) -> &Topic {
        &self.topics[id]
    }

    pub fn topic_mut(&mut self, id: TopicId) -> &mut Topic {
        &mut self.topics[id]
    }

    /// Adds a local subscriber; returns its index in the topic's list.
    pub fn add_sub(&mut self, id: TopicId, conn: ConnKey) -> u32 {
        let subs = &mut self.topics[id].subs;
        subs.push(conn);
        (subs.len() - 1) as u32
    }

    /// Removes the subscriber at `idx`. When another subscriber moved into
    /// `idx` to keep the list dense, returns it: its stored index must
    /// become `idx`.
    pub fn remove_sub(&mut self, id: TopicId, idx: u32) -> Option<ConnKey> {
        let subs = &mut self.topics[id].subs;
        subs.swap_remove(idx as usize);
        subs.get(idx as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn removing_subscribers_keeps_indexes_right() {
        let mut t = TopicTable::default();
        let id = t.insert(b"a", Registration::Owner);
        // Model: conn -> stored index, kept up to date from remove_sub's answer.
        let mut stored: HashMap<u32, u32> = HashMap::new();
        for i in 0..10 {
            stored.insert(i, t.add_sub(id, key(i)));
        }
        for gone in [3u32, 0, 9, 5] {
            let idx = stored.remove(&gone).unwrap();
            if let Some(moved) = t.remove_sub(id, idx) {
                stored.insert(moved.index, idx);
            }
            for (&c, &i) in &stored {
                assert_eq!(t.topic(id).subs[i as usize], key(c));
            }
        }
        assert_eq!(t.topic(id).subs.len(), 6);
    }

    #[test]
    fn owned_topics_are_counted_and_others_can_be_forgotten() {
        let mut t = TopicTable::default();
        t.insert(b"mine", Registration::Owner);
        let other = t.insert(b"theirs", Registration::Pending(vec![key(1)]));
        assert_eq!(t.owned(), 1);
        t.remove(other);
        assert_eq!(t.get(b"theirs"), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.topic(t.get(b"mine").unwrap()).next_seq(), 1);
    }
}
