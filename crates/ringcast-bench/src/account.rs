//! Delivery accounting: what one subscriber received against what it was
//! owed, from the sequence numbers of what arrived.
//!
//! Per subscriber the sequence is contiguous from a known first value (the
//! SUBACK's `next_seq` for ringcast, 1 for the generator's own per-topic
//! counter embedded in resp and nats payloads). Each arrival is exactly one of:
//! - **in order**: the next one expected;
//! - **ahead**: later than expected; the sequences jumped over become
//!   *missing* (a gap, for now);
//! - **late** (reordered): lower than one already seen, but missing until now:
//!   it fills part of a gap;
//! - **duplicate**: seen before, or before the first expected sequence.
//!
//! Invariant: `next - first == unique + missing()`: every sequence below
//! `next` has arrived exactly once (counted in `unique`) or is missing.

/// How one arrival relates to what came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Exactly the next sequence.
    InOrder,
    /// Later than the next sequence; `skipped` sequences are now missing.
    Ahead { skipped: u64 },
    /// A missing sequence, arriving after a later one.
    Late,
    /// Already seen, or before the first sequence: not counted again.
    Duplicate,
}

impl Arrival {
    /// Whether this arrival is a sequence not seen before.
    pub fn is_new(self) -> bool {
        !matches!(self, Arrival::Duplicate)
    }
}

/// One subscriber's sequence bookkeeping.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    /// First sequence this subscriber is owed.
    first: u64,
    /// One past the highest sequence seen (`first` before any).
    next: u64,
    /// Sequences arrived once each.
    unique: u64,
    /// Arrivals already seen (or before `first`).
    duplicates: u64,
    /// Arrivals that filled a gap.
    late: u64,
    /// Missing sequences below `next`, as sorted, disjoint, non-adjacent
    /// half-open ranges. Empty on a healthy run, so lookups are free.
    holes: Vec<(u64, u64)>,
}

impl SeqTracker {
    /// A tracker expecting `first` next.
    pub fn new(first: u64) -> SeqTracker {
        SeqTracker {
            first,
            next: first,
            unique: 0,
            duplicates: 0,
            late: 0,
            holes: Vec::new(),
        }
    }

    /// Accounts for the arrival of `seq`.
    pub fn observe(&mut self, seq: u64) -> Arrival {
        let arrival = if seq == self.next {
            self.next += 1;
            Arrival::InOrder
        } else if seq > self.next {
            let skipped = seq - self.next;
            self.holes.push((self.next, seq));
            self.next = seq + 1;
            Arrival::Ahead { skipped }
        } else if seq < self.first || !self.fill(seq) {
            Arrival::Duplicate
        } else {
            Arrival::Late
        };
        match arrival {
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Late => {
                self.late += 1;
                self.unique += 1;
            }
            _ => self.unique += 1,
        }
        debug_assert_eq!(self.next - self.first, self.unique + self.missing());
        arrival
    }

    /// Removes `seq` from the holes; false when it was not missing.
    fn fill(&mut self, seq: u64) -> bool {
        // The first hole whose end is past seq.
        let i = self.holes.partition_point(|&(_, end)| end <= seq);
        match self.holes.get(i).copied() {
            Some((start, end)) if start <= seq => {
                match (start == seq, end == seq + 1) {
                    (true, true) => {
                        self.holes.remove(i);
                    }
                    (true, false) => self.holes[i].0 = seq + 1,
                    (false, true) => self.holes[i].1 = seq,
                    (false, false) => {
                        self.holes[i].1 = seq;
                        self.holes.insert(i + 1, (seq + 1, end));
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Sequences received once each.
    #[cfg(test)]
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Arrivals not counted because they were seen before.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Arrivals that came after a later sequence (reordering).
    pub fn reordered(&self) -> u64 {
        self.late
    }

    /// Sequences below the highest seen that never arrived.
    pub fn missing(&self) -> u64 {
        self.holes.iter().map(|(s, e)| e - s).sum()
    }
}

/// Delivery counts summed over subscribers (and over processes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Measured deliveries owed: for each subscriber, the measured messages
    /// published on its topic.
    pub expected: u64,
    /// Measured deliveries received, each counted once.
    pub received: u64,
    /// Arrivals of something already received.
    pub duplicates: u64,
    /// Arrivals that came after a later sequence.
    pub reordered: u64,
    /// Sequences never received though a later one was (or owed and never
    /// received by the end), over the whole run, warm-up included.
    pub gaps: u64,
    /// Subscribers the server closed or that failed during the run.
    pub disconnects: u64,
    /// ERROR frames (or -ERR lines) received.
    pub server_errors: u64,
    /// Measured deliveries timed by the clock after the read because the
    /// kernel attached no receive stamp (with `--rx-clock kernel`).
    pub unstamped: u64,
    /// GAP notices received: a relaying ringcast node's warning that frames
    /// from other nodes may have been lost (they never got a seq there, so
    /// a loss shows in `received`, not in `gaps`).
    pub gap_notices: u64,
}

impl Deliveries {
    /// received / expected (1.0 when nothing was expected).
    pub fn ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.received as f64 / self.expected as f64
        }
    }

    /// Adds another process's counts.
    pub fn add(&mut self, o: &Deliveries) {
        self.expected += o.expected;
        self.received += o.received;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.gaps += o.gaps;
        self.disconnects += o.disconnects;
        self.server_errors += o.server_errors;
        self.unstamped += o.unstamped;
        self.gap_notices += o.gap_notices;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: u64, seqs: &[u64]) -> (SeqTracker, Vec<Arrival>) {
        let mut t = SeqTracker::new(first);
        let arrivals = seqs.iter().map(|&s| t.observe(s)).collect();
        (t, arrivals)
    }

    #[test]
    fn a_clean_stream() {
        let (t, a) = run(5, &[5, 6, 7, 8]);
        assert!(a.iter().all(|&x| x == Arrival::InOrder));
        assert_eq!(
            (t.unique(), t.duplicates(), t.reordered(), t.missing()),
            (4, 0, 0, 0)
        );
    }

    #[test]
    fn duplicates_are_not_counted_twice() {
        let (t, a) = run(1, &[1, 2, 2, 3, 1, 3]);
        assert_eq!(
            a,
            [
                Arrival::InOrder,
                Arrival::InOrder,
                Arrival::Duplicate,
                Arrival::InOrder,
                Arrival::Duplicate,
                Arrival::Duplicate
            ]
        );
        assert_eq!((t.unique(), t.duplicates(), t.missing()), (3, 3, 0));
        // Before the first owed sequence is a duplicate too.
        let (t, a) = run(10, &[9]);
        assert_eq!(a, [Arrival::Duplicate]);
        assert_eq!(t.unique(), 0);
    }

    #[test]
    fn gaps_are_counted_in_sequences() {
        let (t, a) = run(1, &[1, 4, 5, 9]);
        assert_eq!(a[1], Arrival::Ahead { skipped: 2 });
        assert_eq!(a[3], Arrival::Ahead { skipped: 3 });
        assert_eq!((t.unique(), t.missing(), t.reordered()), (4, 5, 0));
    }

    #[test]
    fn reordering_fills_holes_from_either_side_and_the_middle() {
        // 1, then 6 (2..=5 missing), then 3 (middle), 2 (start), 5 (end), 4.
        let (t, a) = run(1, &[1, 6, 3, 2, 5, 4, 4]);
        assert_eq!(a[1], Arrival::Ahead { skipped: 4 });
        assert_eq!(&a[2..6], &[Arrival::Late; 4]);
        assert_eq!(a[6], Arrival::Duplicate);
        assert_eq!(
            (t.unique(), t.reordered(), t.duplicates(), t.missing()),
            (6, 4, 1, 0)
        );
        assert!(t.holes.is_empty());
    }

    #[test]
    fn swapped_neighbours_are_one_reorder_and_no_gap() {
        let (t, a) = run(1, &[2, 1, 3]);
        assert_eq!(
            a,
            [
                Arrival::Ahead { skipped: 1 },
                Arrival::Late,
                Arrival::InOrder
            ]
        );
        assert_eq!((t.unique(), t.reordered(), t.missing()), (3, 1, 0));
    }

    #[test]
    fn several_holes_stay_sorted() {
        let (mut t, _) = run(1, &[1, 3, 6, 10]);
        assert_eq!(t.holes, [(2, 3), (4, 6), (7, 10)]);
        assert_eq!(t.observe(8), Arrival::Late);
        assert_eq!(t.holes, [(2, 3), (4, 6), (7, 8), (9, 10)]);
        assert_eq!(t.observe(2), Arrival::Late);
        assert_eq!(t.observe(2), Arrival::Duplicate);
        assert_eq!(t.observe(11), Arrival::InOrder);
        assert_eq!(t.missing(), 4);
        assert_eq!(t.unique(), 7);
    }

    #[test]
    fn totals_add_and_ratio() {
        let mut a = Deliveries {
            expected: 100,
            received: 99,
            gaps: 1,
            ..Default::default()
        };
        let b = Deliveries {
            expected: 100,
            received: 100,
            duplicates: 2,
            ..Default::default()
        };
        a.add(&b);
        assert_eq!(
            (a.expected, a.received, a.duplicates, a.gaps),
            (200, 199, 2, 1)
        );
        assert!((a.ratio() - 0.995).abs() < 1e-12);
        assert_eq!(Deliveries::default().ratio(), 1.0);
    }
}
