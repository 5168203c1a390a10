//! Adaptive polling (`--idle-spin`): what an idle reactor does next, from
//! the gaps between its recent inputs. No clock, no I/O: times are
//! arguments (monotonic ns), so the policy is tested in memory.
//!
//! A steady stream arrives at about `last + gap`. Parking until then costs a
//! wake-up after the input arrives (hundreds of µs when the vCPU was
//! halted); polling the whole gap costs a core. So the reactor parks with a
//! timeout set to end `margin` before the predicted arrival (the timer's
//! measured lateness plus its spread), then polls until the input comes or
//! the window `pred + slack` (the gaps' spread) closes, then parks with no
//! timeout. The wake-up is paid before the input instead of after it, and
//! polling costs about `margin - lateness + slack` per gap. The spin per gap
//! never exceeds the budget; when the stream stops (nothing in the window),
//! the reactor parks until input, so an idle daemon costs nothing. A stream
//! with gaps under two budgets (2,500 msg/s and up with 0.2 ms) is not
//! polled for: the reactor parks as with no `--idle-spin` (its inputs then
//! queue while it works).
//!
//! Invariants: `0 <= dev`, `0 <= late`; a spin window is at most `budget`
//! (half for the spread of the input, half for the timer's).

/// Gaps longer than this are not a stream: no prediction from them.
const MAX_GAP: u64 = 1_000_000_000;
/// Gap samples before the first prediction.
const MIN_SAMPLES: u32 = 4;
/// Least spread polled on either side of the predicted input.
const MIN_SLACK: u64 = 20_000;
/// First guess of the timer's lateness, before one was measured.
const FIRST_LATE: u64 = 50_000;
/// A timeout shorter than this is not worth a park: poll instead.
const MIN_PARK: u64 = 20_000;

/// What an idle reactor does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Enter the kernel without waiting and look again.
    Poll,
    /// Sleep until input.
    Park,
    /// Sleep until input or this many ns from now.
    ParkFor(u64),
}

/// The state of adaptive polling for one reactor.
#[derive(Debug)]
pub(crate) struct Spin {
    /// Most ns polled per gap (`--idle-spin`).
    budget: u64,
    /// When the last input was seen (0: never).
    last: u64,
    /// EWMA of the gaps between inputs, and of their distance from it.
    gap: u64,
    dev: u64,
    samples: u32,
    /// EWMA of how late a timed park woke after its deadline, and spread.
    late: u64,
    late_dev: u64,
    /// The deadline of the timed park in progress, if any.
    deadline: Option<u64>,
}

/// `avg += (x - avg) / 8`, in integers.
fn ewma(avg: u64, x: u64) -> u64 {
    if x >= avg {
        avg + (x - avg) / 8
    } else {
        avg - (avg - x) / 8
    }
}

impl Spin {
    pub fn new(budget: u64) -> Spin {
        Spin {
            budget,
            last: 0,
            gap: 0,
            dev: 0,
            samples: 0,
            late: FIRST_LATE,
            late_dev: 0,
            deadline: None,
        }
    }

    /// A loop turn that began at `t` had input (a received segment, an
    /// accepted socket or a message from another core).
    pub fn input(&mut self, t: u64) {
        let gap = t.saturating_sub(self.last);
        if self.last == 0 || gap > MAX_GAP {
            self.samples = 0;
        } else if self.samples == 0 {
            self.gap = gap;
            self.dev = gap / 4;
            self.samples = 1;
        } else {
            self.dev = ewma(self.dev, gap.abs_diff(self.gap));
            self.gap = ewma(self.gap, gap);
            self.samples = self.samples.saturating_add(1);
        }
        self.last = t;
    }

    /// The reactor woke at `now`; `timed_out`: by the timeout of its timed
    /// park (nothing else woke it), whose lateness is then learnt.
    pub fn woke(&mut self, now: u64, timed_out: bool) {
        if let Some(d) = self.deadline.take() {
            if timed_out {
                // A wake-up milliseconds late (the vCPU was not running)
                // says little about the next one: clamped, so one does not
                // make the reactor wake that much earlier for the next gaps.
                let l = now.saturating_sub(d).min(self.budget.max(FIRST_LATE));
                self.late_dev = ewma(self.late_dev, l.abs_diff(self.late));
                self.late = ewma(self.late, l);
            }
        }
    }

    /// How long before the poll window a timed park ends: the timer's
    /// expected lateness plus twice its spread (an earlier wake polls
    /// longer; a later one would pay the wake-up). The spread's part is at
    /// most half the budget, the window the other half: a wake-up on time
    /// polls at most the budget per gap.
    fn margin(&self) -> u64 {
        self.late + (2 * self.late_dev).min(self.budget / 2)
    }

    /// What to do at `now`, with nothing left to do.
    pub fn idle(&mut self, now: u64) -> Idle {
        if self.budget == 0 || self.samples < MIN_SAMPLES {
            return Idle::Park;
        }
        // Poll from a spread before the predicted input to one after it,
        // at most `budget` in all, centred on the prediction.
        let pred = self.last + self.gap;
        let half = (2 * self.dev + MIN_SLACK).min(self.budget / 2);
        let end = pred + half;
        if now >= end {
            return Idle::Park; // late, or the stream stopped
        }
        // A stream faster than one input per two budgets is not polled
        // for (polling would take most of every gap): its inputs queue up
        // while the reactor works, and it parks as with no --idle-spin.
        if self.gap < 2 * self.budget {
            return Idle::Park;
        }
        // The timer fires about `late` after its deadline.
        let start = pred.saturating_sub(half + self.margin());
        if now + MIN_PARK >= start {
            return Idle::Poll;
        }
        self.deadline = Some(start);
        Idle::ParkFor(start - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    fn steady(s: &mut Spin, from: u64, gap: u64, n: u64) -> u64 {
        for i in 0..n {
            s.input(from + i * gap);
        }
        from + (n - 1) * gap
    }

    #[test]
    fn parks_until_a_stream_is_seen() {
        let mut s = Spin::new(300 * US);
        assert_eq!(s.idle(1), Idle::Park);
        s.input(10 * MS);
        s.input(11 * MS);
        assert_eq!(
            s.idle(11 * MS + 50 * US),
            Idle::Park,
            "two inputs are no stream"
        );
    }

    #[test]
    fn a_steady_stream_parks_with_a_timeout_then_polls_then_parks() {
        let mut s = Spin::new(300 * US);
        let last = steady(&mut s, 10 * MS, MS, 50);
        // Just after an input: sleep until a margin before the next.
        let Idle::ParkFor(ns) = s.idle(last + 30 * US) else {
            panic!("expected a timed park")
        };
        let deadline = last + 30 * US + ns;
        assert!(deadline < last + MS && deadline >= last + MS - 300 * US);
        // Woken by the timeout: poll until the input is due.
        s.woke(deadline + 40 * US, true);
        assert_eq!(s.idle(deadline + 40 * US), Idle::Poll);
        // The input does not come: once the window closes, park for good.
        assert_eq!(s.idle(last + 2 * MS), Idle::Park);
    }

    #[test]
    fn the_spin_per_gap_is_bounded_by_the_budget() {
        let mut s = Spin::new(100 * US);
        // A jittery stream: gaps of 0.7 and 1.3 ms, a wide spread.
        let mut t = 10 * MS;
        for i in 0..50 {
            t += if i % 2 == 0 { 700 * US } else { 1300 * US };
            s.input(t);
        }
        let Idle::ParkFor(ns) = s.idle(t + 10 * US) else {
            panic!("expected a timed park")
        };
        let deadline = t + 10 * US + ns;
        // The window is centred on the predicted input, half the budget
        // either side; the timer is set its lateness before it.
        assert_eq!(deadline + s.margin(), t + s.gap - 50 * US);
        assert_eq!(s.idle(t + s.gap + 50 * US), Idle::Park);
    }

    #[test]
    fn a_timer_milliseconds_late_does_not_make_the_reactor_poll_whole_gaps() {
        let budget = 200 * US;
        let mut s = Spin::new(budget);
        for i in 0..50 {
            s.deadline = Some(i * MS);
            s.woke(i * MS + 40 * US, true);
        }
        let on_time = s.margin();
        // One wake-up 3 ms late, then the timer is on time again.
        s.deadline = Some(100 * MS);
        s.woke(103 * MS, true);
        assert!(
            s.margin() <= on_time + budget / 2 + budget / 8,
            "margin {} after one late wake-up (was {on_time})",
            s.margin()
        );
        // However wide the spread, the poll past the timer's expected
        // lateness stays within the budget: half the window, half spread.
        for i in 0..50 {
            s.deadline = Some(200 * MS + i * MS);
            s.woke(
                200 * MS + i * MS + if i % 2 == 0 { 0 } else { 190 * US },
                true,
            );
        }
        assert!(s.margin() - s.late <= budget / 2);
    }

    #[test]
    fn a_stream_too_fast_to_poll_for_cheaply_parks() {
        let mut s = Spin::new(300 * US);
        let last = steady(&mut s, 10 * MS, 100 * US, 50);
        assert_eq!(s.idle(last + 20 * US), Idle::Park);
        // A slower one is polled for once it is due.
        let mut s = Spin::new(150 * US);
        let last = steady(&mut s, 10 * MS, 400 * US, 50);
        assert_eq!(s.idle(last + 380 * US), Idle::Poll);
    }

    #[test]
    fn a_long_pause_forgets_the_stream() {
        let mut s = Spin::new(300 * US);
        let last = steady(&mut s, 10 * MS, MS, 50);
        s.input(last + 2 * MAX_GAP);
        assert_eq!(s.idle(last + 2 * MAX_GAP + 10 * US), Idle::Park);
    }

    #[test]
    fn zero_budget_always_parks() {
        let mut s = Spin::new(0);
        let last = steady(&mut s, 10 * MS, 100 * US, 50);
        assert_eq!(s.idle(last + 20 * US), Idle::Park);
    }

    #[test]
    fn timer_lateness_is_learnt() {
        let mut s = Spin::new(MS);
        let before = s.margin();
        for _ in 0..50 {
            s.deadline = Some(100 * MS);
            s.woke(100 * MS + 400 * US, true);
        }
        assert!(s.margin() > before && s.margin() >= 370 * US);
        // A wake by input teaches nothing about the timer.
        let m = s.margin();
        s.deadline = Some(200 * MS);
        s.woke(200 * MS + 5 * MS, false);
        assert_eq!(s.margin(), m);
    }
}
