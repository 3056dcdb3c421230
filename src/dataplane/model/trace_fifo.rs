//! `TraceFifo`: one direction of an access link driven by a rate trace, with Mahimahi's
//! semantics: each timestamp of the trace is one delivery opportunity for 1500 bytes, a
//! packet may span opportunities and share one with the packets queued behind it, an
//! opportunity that finds the queue empty is lost, and the trace wraps at its last timestamp.
//! Like `LinkFifo`, it stores no packets: each departure is known when the packet is offered.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Dropped, Nanos};
use crate::experiment::{LinkTrace, OPPORTUNITY_BYTES, RateTrace};
use crate::units::MS;

/// A drop-tail FIFO served at a rate trace's delivery opportunities.
///
/// The trace plays from `offset` into it at experiment time `start` (when the link was
/// shaped). A packet offered at `t` can use only opportunities after `t`, as in Mahimahi,
/// which runs every opportunity up to now before it enqueues a packet.
#[derive(Clone, Debug)]
pub struct TraceFifo {
    trace: Arc<LinkTrace>,
    start: Nanos,
    offset: Nanos,
    limit: Option<u64>,
    /// Work of the link before this trace ends here; nothing of this trace departs earlier.
    floor: Nanos,
    /// The opportunity (a global index over all passes) the last accepted packet finished in,
    /// and the bytes it left unused.
    next: Option<(u64, u64)>,
    /// Accepted packets not yet gone: (departure, bytes), in order.
    queued: VecDeque<(Nanos, u64)>,
    queued_bytes: u64,
}

impl TraceFifo {
    /// A FIFO on `trace` from `offset` into it at `start`; `None` unless it is a rate trace.
    /// `floor` and `backlog` carry over what the link held before: nothing departs before
    /// `floor`, and `backlog` bytes count against the limit until then.
    pub fn new(
        trace: Arc<LinkTrace>,
        start: Nanos,
        offset: Nanos,
        limit: Option<u64>,
        floor: Nanos,
        backlog: u64,
    ) -> Option<Self> {
        if !matches!(*trace, LinkTrace::Rate(_)) {
            return None;
        }
        let mut queued = VecDeque::new();
        if backlog > 0 {
            queued.push_back((floor, backlog));
        }
        Some(TraceFifo {
            trace,
            start,
            offset,
            limit,
            floor,
            next: None,
            queued,
            queued_bytes: backlog,
        })
    }

    /// Whether this FIFO plays `trace` from `offset` (then a reshape keeps it going).
    pub fn plays(&self, trace: &Arc<LinkTrace>, offset: Nanos) -> bool {
        Arc::ptr_eq(&self.trace, trace) && self.offset == offset
    }

    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    /// When the last accepted packet departs.
    pub fn busy_until(&self) -> Nanos {
        self.queued
            .back()
            .map_or(self.floor, |&(t, _)| t.max(self.floor))
    }

    /// Bytes accepted and not yet departed at `now`.
    pub fn backlog_bytes(&mut self, now: Nanos) -> u64 {
        while let Some(&(t, len)) = self.queued.front() {
            if t > now {
                break;
            }
            self.queued.pop_front();
            self.queued_bytes -= len;
        }
        self.queued_bytes
    }

    /// Offers a packet of `len` bytes at `now`: when its last byte leaves, or
    /// [`Dropped::Queue`] if the backlog plus `len` would exceed the limit (nothing changes).
    pub fn offer(&mut self, now: Nanos, len: u64) -> Result<Nanos, Dropped> {
        let backlog = self.backlog_bytes(now);
        if let Some(limit) = self.limit
            && backlog.saturating_add(len) > limit
        {
            return Err(Dropped::Queue);
        }
        let after = now.max(self.floor);
        // The rest of the last packet's opportunity, if it has not come yet; else the first
        // opportunity after `after` (earlier ones found the queue empty and were lost).
        let (mut g, mut left) = match self.next {
            Some((g, left)) if left > 0 && self.time(g) > after => (g, left),
            Some((g, _)) if self.time(g + 1) > after => (g + 1, OPPORTUNITY_BYTES),
            _ => (self.first_after(after), OPPORTUNITY_BYTES),
        };
        if len <= left {
            left -= len;
        } else {
            let over = len - left;
            let extra = over.div_ceil(OPPORTUNITY_BYTES);
            g = g.saturating_add(extra);
            left = extra * OPPORTUNITY_BYTES - over;
        }
        let depart = self.time(g);
        self.next = Some((g, left));
        self.queued.push_back((depart, len));
        self.queued_bytes += len;
        Ok(depart)
    }

    fn schedule(&self) -> &RateTrace {
        match &*self.trace {
            LinkTrace::Rate(r) => r,
            // `new` takes rate traces only.
            LinkTrace::Delay(_) => unreachable!("a TraceFifo holds a rate trace"),
        }
    }

    /// Experiment time of opportunity `g` (a global index: pass `g / n`, entry `g % n`).
    fn time(&self, g: u64) -> Nanos {
        let s = self.schedule();
        let n = s.opportunities().len() as u64;
        let ms = (g / n)
            .saturating_mul(s.period_ms())
            .saturating_add(s.opportunities()[(g % n) as usize]);
        // Trace time τ is experiment time `start + τ - offset`.
        (self.start.saturating_add(ms.saturating_mul(MS))).saturating_sub(self.offset)
    }

    /// The first opportunity strictly after experiment time `t`.
    fn first_after(&self, t: Nanos) -> u64 {
        let s = self.schedule();
        let ops = s.opportunities();
        let n = ops.len() as u64;
        // Opportunities fall on whole trace milliseconds: after τ means after floor(τ) ms.
        let tau = t.saturating_sub(self.start).saturating_add(self.offset);
        let q = tau / MS;
        let (pass, within) = (q / s.period_ms(), q % s.period_ms());
        // The last timestamp is the period, which is > `within`: some entry always follows.
        let i = ops.partition_point(|&ms| ms <= within) as u64;
        pass.saturating_mul(n).saturating_add(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(ms: &[u64], offset: Nanos, limit: Option<u64>) -> TraceFifo {
        let trace = LinkTrace::Rate(RateTrace::new(ms.to_vec()).unwrap());
        TraceFifo::new(Arc::new(trace), 0, offset, limit, 0, 0).unwrap()
    }

    #[test]
    fn one_packet_per_opportunity_strictly_after_arrival() {
        // Opportunities at 1, 2, 3 ms; then 4 (wrap: 3 + 1), 5, 6 ms.
        let mut f = fifo(&[1, 2, 3], 0, None);
        assert_eq!(f.offer(0, 1500), Ok(MS));
        assert_eq!(f.offer(0, 1500), Ok(2 * MS));
        assert_eq!(f.offer(0, 1500), Ok(3 * MS));
        assert_eq!(f.offer(0, 1500), Ok(4 * MS));
        // Arriving exactly at an opportunity's millisecond: that one has passed (Mahimahi
        // runs opportunities up to now before it enqueues), so the next one carries it.
        let mut f = fifo(&[1, 2, 3], 0, None);
        assert_eq!(f.offer(MS, 100), Ok(2 * MS));
        // Within a millisecond too: at 2.5 ms the next opportunity is at 3 ms.
        assert_eq!(f.offer(2 * MS + MS / 2, 100), Ok(3 * MS));
    }

    #[test]
    fn small_packets_share_an_opportunity_big_ones_span_several() {
        let mut f = fifo(&[1, 2, 3, 4], 0, None);
        // 3 × 500 B fill the opportunity at 1 ms; the fourth goes at 2 ms.
        for _ in 0..3 {
            assert_eq!(f.offer(0, 500), Ok(MS));
        }
        assert_eq!(f.offer(0, 500), Ok(2 * MS));
        // 1000 B left at 2 ms: a 2000-byte packet uses them and 1000 B at 3 ms.
        assert_eq!(f.offer(0, 2000), Ok(3 * MS));
        // A 4000-byte packet: 500 B at 3 ms, 1500 at 4 ms, 1500 at 5 ms, 500 at 6 ms.
        assert_eq!(f.offer(0, 4000), Ok(6 * MS));
    }

    #[test]
    fn repeated_lines_are_several_opportunities_at_once() {
        let mut f = fifo(&[2, 2, 2, 5], 0, None);
        assert_eq!(f.offer(0, 1500), Ok(2 * MS));
        assert_eq!(f.offer(0, 1500), Ok(2 * MS));
        assert_eq!(f.offer(0, 1500), Ok(2 * MS));
        assert_eq!(f.offer(0, 1500), Ok(5 * MS));
        // Then the trace wraps: 5 + 2 = 7 ms, three times.
        assert_eq!(f.offer(0, 4500), Ok(7 * MS));
    }

    #[test]
    fn unused_opportunities_are_lost() {
        let mut f = fifo(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0, None);
        // A 100-byte packet leaves at 1 ms with 1400 B unused: gone once 1 ms has passed.
        assert_eq!(f.offer(0, 100), Ok(MS));
        assert_eq!(f.offer(MS, 100), Ok(2 * MS));
        // Idle from 2 to 7.5 ms: those opportunities carry nothing; the next packet waits
        // for 8 ms, not for the first unused one.
        assert_eq!(f.offer(7 * MS + MS / 2, 1500), Ok(8 * MS));
        // Still queued work before its opportunity: a packet offered before 8 ms shares it?
        // No: the 1500-byte packet filled it, so the next one takes 9 ms.
        assert_eq!(f.offer(7 * MS + MS / 2, 1), Ok(9 * MS));
        // And a packet offered before 9 ms uses the 1499 B left there.
        assert_eq!(f.offer(8 * MS, 1499), Ok(9 * MS));
        assert_eq!(f.offer(8 * MS, 1), Ok(10 * MS));
    }

    #[test]
    fn wraps_around_at_the_last_timestamp_forever() {
        let mut f = fifo(&[0, 4], 0, None);
        // Pass k has opportunities at 4k and 4k + 4 ms: two at every multiple of 4 after 0.
        assert_eq!(f.offer(0, 1500), Ok(4 * MS));
        assert_eq!(f.offer(0, 1500), Ok(4 * MS));
        assert_eq!(f.offer(0, 1500), Ok(8 * MS));
        // Hours later the same pattern holds.
        let hour = 3_600_000 * MS;
        assert_eq!(f.offer(hour, 3000), Ok(hour + 4 * MS));
        assert_eq!(f.offer(hour, 1500), Ok(hour + 8 * MS));
    }

    #[test]
    fn offsets_shift_the_trace_and_the_start_is_when_it_was_shaped() {
        // 1 opportunity at 10 ms per 10 ms pass, plus one at 3 ms.
        let ms = [3, 10];
        // From 4 ms into the trace: the next opportunity is at trace 10 ms = experiment 6 ms.
        let mut f = fifo(&ms, 4 * MS, None);
        assert_eq!(f.offer(0, 1500), Ok(6 * MS));
        assert_eq!(f.offer(0, 1500), Ok(9 * MS));
        // Shaped at 100 ms with offset 0: trace time 0 is experiment 100 ms.
        let trace = Arc::new(LinkTrace::Rate(RateTrace::new(ms.to_vec()).unwrap()));
        let mut f = TraceFifo::new(trace.clone(), 100 * MS, 0, None, 0, 0).unwrap();
        assert_eq!(f.offer(100 * MS, 1500), Ok(103 * MS));
        assert!(f.plays(&trace, 0) && !f.plays(&trace, 1));
    }

    #[test]
    fn queue_limit_counts_bytes_not_yet_departed() {
        let mut f = fifo(&[10, 20, 30], 0, Some(3000));
        assert_eq!(f.offer(0, 1500), Ok(10 * MS));
        assert_eq!(f.offer(0, 1500), Ok(20 * MS));
        assert_eq!(f.offer(0, 1), Err(Dropped::Queue));
        assert_eq!(f.backlog_bytes(0), 3000);
        // Once the first has left at 10 ms, there is room again.
        assert_eq!(f.offer(10 * MS, 1500), Ok(30 * MS));
        assert_eq!(f.backlog_bytes(30 * MS), 0);
    }

    #[test]
    fn earlier_work_is_a_floor_and_counts_against_the_limit() {
        let trace = Arc::new(LinkTrace::Rate(RateTrace::new(vec![1, 2]).unwrap()));
        // The link's previous rate still sends 2000 B until 5.5 ms.
        let mut f = TraceFifo::new(trace, 0, 0, Some(3000), 5 * MS + MS / 2, 2000).unwrap();
        assert_eq!(f.busy_until(), 5 * MS + MS / 2);
        assert_eq!(f.offer(0, 1001), Err(Dropped::Queue));
        assert_eq!(f.offer(0, 1000), Ok(6 * MS));
        assert_eq!(f.backlog_bytes(5 * MS + MS / 2), 1000);
        assert!(
            TraceFifo::new(
                Arc::new(LinkTrace::Delay(
                    crate::experiment::DelayTrace::new(vec![(0, 0)], None).unwrap()
                )),
                0,
                0,
                None,
                0,
                0
            )
            .is_none()
        );
    }

    #[test]
    fn mean_rate_over_many_passes_matches_the_trace() {
        // 3 opportunities per 4 ms = 9 Mbit/s: a saturating sender gets exactly that.
        let mut f = fifo(&[1, 2, 4], 0, None);
        let mut last = 0;
        for _ in 0..30_000 {
            last = f.offer(0, 1500).unwrap();
        }
        assert_eq!(last, 40_000 * MS);
    }

    /// Mahimahi's `LinkQueue` (`src/frontend/link_queue.cc`) transcribed, with an unlimited
    /// queue: packets are sizes, time is whole milliseconds, `rationalize(now)` runs every
    /// opportunity up to `now` before the packets of `now` are enqueued.
    struct Mahimahi {
        schedule: Vec<u64>,
        next: usize,
        base: u64,
        queue: VecDeque<(usize, u64)>,
        in_transit: Option<(usize, u64)>,
        departures: Vec<(usize, u64)>,
    }

    impl Mahimahi {
        fn next_delivery_time(&self) -> u64 {
            self.schedule[self.next] + self.base
        }

        fn rationalize(&mut self, now: u64) {
            while self.next_delivery_time() <= now {
                let this = self.next_delivery_time();
                let mut bytes_left = OPPORTUNITY_BYTES;
                self.next = (self.next + 1) % self.schedule.len();
                if self.next == 0 {
                    self.base += self.schedule.last().unwrap();
                }
                while bytes_left > 0 {
                    if self.in_transit.is_none() {
                        match self.queue.pop_front() {
                            Some(p) => self.in_transit = Some(p),
                            None => break,
                        }
                    }
                    let (id, left) = self.in_transit.as_mut().unwrap();
                    let amount = bytes_left.min(*left);
                    *left -= amount;
                    bytes_left -= amount;
                    if *left == 0 {
                        self.departures.push((*id, this));
                        self.in_transit = None;
                    }
                }
            }
        }
    }

    #[test]
    fn every_packet_leaves_at_the_opportunity_mahimahi_gives_it() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..50 {
            // A random schedule: gaps of 0 (repeated lines) to 5 ms, 1 to 40 lines.
            let mut schedule = Vec::new();
            let mut t = rng.random_range(0..3u64);
            for _ in 0..rng.random_range(1..40) {
                t += rng.random_range(0..6u64);
                schedule.push(t);
            }
            if *schedule.last().unwrap() == 0 {
                schedule.push(1);
            }
            let mut ours = fifo(&schedule, 0, None);
            let mut theirs = Mahimahi {
                schedule: schedule.clone(),
                next: 0,
                base: 0,
                queue: VecDeque::new(),
                in_transit: None,
                departures: Vec::new(),
            };
            let mut want_depart = Vec::new();
            let mut id = 0;
            // Bursts and idle stretches over 2 s, packet sizes from 40 to 1500 bytes.
            for now in 0..2000u64 {
                theirs.rationalize(now);
                let burst = if rng.random_bool(0.1) {
                    rng.random_range(1..8)
                } else {
                    0
                };
                for _ in 0..burst {
                    let len = rng.random_range(40..=1500u64);
                    theirs.queue.push_back((id, len));
                    want_depart.push(ours.offer(now * MS, len).unwrap());
                    id += 1;
                }
            }
            let mut now = 2000;
            while !theirs.queue.is_empty() || theirs.in_transit.is_some() {
                theirs.rationalize(now);
                now += 1;
            }
            assert_eq!(theirs.departures.len(), id, "round {round}");
            for (id, at) in theirs.departures {
                assert_eq!(
                    want_depart[id],
                    at * MS,
                    "round {round}, packet {id}, schedule {schedule:?}"
                );
            }
        }
    }
}
