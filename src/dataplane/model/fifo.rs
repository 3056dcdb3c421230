//! `LinkFifo`: one direction of an access link as a virtual drop-tail FIFO serialiser.
//! It stores no packets, only when the committed work ends; callers hold the packets.

use std::num::NonZeroU64;

use super::{Dropped, Nanos};

/// Bit-nanoseconds per byte-second: a byte is 8 bits, a second is 10⁹ ns.
/// Serialising `len` bytes at `rate` bits/s takes exactly `len × BYTE_NS / rate` ns.
const BYTE_NS: u64 = 8 * 1_000_000_000;

/// Work committed at an earlier rate that may still be draining.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    /// When its last bit leaves (whole ns, rounded up at the rate change).
    end: Nanos,
    /// The rate it drains at, bits/s.
    rate: u64,
}

/// A FIFO that serialises at `rate` bits/s and drops at the tail beyond `limit` bytes.
///
/// Time is kept exactly: the end of the committed work is `busy_ns + busy_rem / rate`
/// nanoseconds, so a million back-to-back packets drift by nothing; each reported departure
/// is that exact end rounded up to a whole nanosecond.
///
/// Rates are `Option<NonZeroU64>`: `None` is unlimited (zero serialisation time, no queue
/// limit), and a rate of zero cannot be expressed. Callers should pass non-decreasing `now`;
/// an earlier `now` is not an error, it just finds the queue as busy as it last was.
#[derive(Clone, Debug, Default)]
pub struct LinkFifo {
    rate: Option<NonZeroU64>,
    limit: Option<u64>,
    busy_ns: Nanos,
    /// Fraction of a nanosecond past `busy_ns`, in units of `1/rate` ns; always `< rate`.
    busy_rem: u64,
    /// Earlier-rate work still queued ahead of the current rate's, oldest first. A rate change
    /// must not move accepted packets, and the queue limit counts their bytes at their rate.
    earlier: Vec<Segment>,
}

impl LinkFifo {
    /// An idle FIFO at `rate` (`None`: unlimited) with a queue limit of `limit` bytes
    /// (`None`: no limit).
    pub fn new(rate: Option<NonZeroU64>, limit: Option<u64>) -> Self {
        LinkFifo {
            rate,
            limit,
            ..LinkFifo::default()
        }
    }

    /// A FIFO whose queue is busy until `end` with work it cannot see (a rate trace's): the
    /// next packet starts then, and the queue limit counts that work at `rate`.
    pub fn starting_at(rate: Option<NonZeroU64>, limit: Option<u64>, end: Nanos) -> Self {
        LinkFifo {
            rate,
            limit,
            busy_ns: end,
            ..LinkFifo::default()
        }
    }

    /// The current rate in bits/s (`None`: unlimited).
    pub fn rate(&self) -> Option<NonZeroU64> {
        self.rate
    }

    /// The current queue limit in bytes (`None`: no limit).
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// When the committed work ends, rounded up to a whole nanosecond.
    pub fn busy_until(&self) -> Nanos {
        self.busy_ns.saturating_add(u64::from(self.busy_rem > 0))
    }

    /// Changes the rate for the next packet offered; packets already accepted keep their
    /// departure times. The queue's end is rounded up to a whole nanosecond (< 1 ns).
    pub fn set_rate(&mut self, rate: Option<NonZeroU64>) {
        if rate == self.rate {
            return;
        }
        let end = self.busy_until();
        if let Some(old) = self.rate {
            let start = self.earlier.last().map_or(0, |s| s.end);
            if end > start {
                self.earlier.push(Segment {
                    end,
                    rate: old.get(),
                });
            }
        }
        self.busy_ns = end;
        self.busy_rem = 0;
        self.rate = rate;
    }

    /// Changes the queue limit for the next packet offered. A lower limit drops nothing already
    /// accepted; it only refuses new packets until the backlog drains below it.
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    /// Bytes accepted but not yet serialised at `now` (a partly sent byte counts as one).
    pub fn backlog_bytes(&self, now: Nanos) -> u64 {
        let bits_ns = self.backlog_bit_ns(now);
        u64::try_from(bits_ns.div_ceil(u128::from(BYTE_NS))).unwrap_or(u64::MAX)
    }

    /// Offers a packet of `len` bytes at `now`. Returns when its last bit leaves, or
    /// [`Dropped::Queue`] if the backlog plus `len` would exceed the limit; a drop leaves the
    /// FIFO as it was.
    pub fn offer(&mut self, now: Nanos, len: u64) -> Result<Nanos, Dropped> {
        self.forget_drained(now);
        // An unlimited link never holds a byte of its own, so it has nothing to limit.
        if let (Some(_), Some(limit)) = (self.rate, self.limit)
            && self.exceeds(now, len, limit)
        {
            return Err(Dropped::Queue);
        }
        let (start_ns, start_rem) = if self.idle_at(now) {
            (now, 0)
        } else {
            (self.busy_ns, self.busy_rem)
        };
        match self.rate {
            None => {
                self.busy_ns = start_ns;
                self.busy_rem = start_rem;
            }
            Some(rate) => {
                let (whole, rem) = serialise(start_rem, len, rate);
                self.busy_ns = start_ns.saturating_add(whole);
                // At the end of time the fraction no longer matters; keep `busy_until` finite.
                self.busy_rem = if self.busy_ns == u64::MAX { 0 } else { rem };
            }
        }
        Ok(self.busy_until())
    }

    fn idle_at(&self, now: Nanos) -> bool {
        self.busy_ns < now || (self.busy_ns == now && self.busy_rem == 0)
    }

    /// Drops the record of earlier-rate work that has fully left by `now`.
    fn forget_drained(&mut self, now: Nanos) {
        if self.earlier.is_empty() {
            return;
        }
        let gone = self.earlier.iter().take_while(|s| s.end <= now).count();
        self.earlier.drain(..gone);
    }

    /// Would the backlog at `now` plus `len` bytes exceed `limit` bytes?
    fn exceeds(&self, now: Nanos, len: u64, limit: u64) -> bool {
        let Some(room) = limit.checked_sub(len) else {
            return true;
        };
        // ceil(backlog / BYTE_NS) > room  ⇔  backlog > room × BYTE_NS: no division needed.
        self.backlog_bit_ns(now) > u128::from(room) * u128::from(BYTE_NS)
    }

    /// The backlog at `now` in bit·ns/s (bytes × `BYTE_NS`), exact.
    fn backlog_bit_ns(&self, now: Nanos) -> u128 {
        let mut total: u128 = 0;
        let mut from = now;
        for seg in &self.earlier {
            if seg.end > from {
                let span = u128::from(seg.end - from) * u128::from(seg.rate);
                total = total.saturating_add(span);
                from = seg.end;
            }
        }
        if let Some(rate) = self.rate
            && !self.idle_at(from)
        {
            // busy_ns ≥ from here, or busy_ns == from with a fraction left.
            let span = u128::from(self.busy_ns - from) * u128::from(rate.get())
                + u128::from(self.busy_rem);
            total = total.saturating_add(span);
        }
        total
    }
}

/// Adds `len` bytes at `rate` to a start that is `rem / rate` ns past a whole nanosecond:
/// returns the whole nanoseconds to add and the new fraction (`< rate`).
fn serialise(rem: u64, len: u64, rate: NonZeroU64) -> (u64, u64) {
    // Fast path in u64 (packets and rates of real links); u128 only for absurd sizes.
    if let Some(total) = len
        .checked_mul(BYTE_NS)
        .and_then(|bits_ns| bits_ns.checked_add(rem))
    {
        return (total / rate, total % rate);
    }
    let total = u128::from(len) * u128::from(BYTE_NS) + u128::from(rem);
    let rate = u128::from(rate.get());
    let whole = u64::try_from(total / rate).unwrap_or(u64::MAX);
    // The remainder is < rate ≤ u64::MAX, so it always fits.
    let rem = u64::try_from(total % rate).unwrap_or(0);
    (whole, rem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MS;

    fn rate(bits: u64) -> Option<NonZeroU64> {
        NonZeroU64::new(bits)
    }

    #[test]
    fn serialises_1500_bytes_at_128_kbit_in_93_75_ms() {
        let mut f = LinkFifo::new(rate(128_000), None);
        assert_eq!(f.offer(0, 1500), Ok(93_750_000));
        assert_eq!(f.busy_until(), 93_750_000);
    }

    #[test]
    fn rounds_up_to_whole_ns_without_drift() {
        // 1 byte at 3 bit/s = 8/3 s = 2_666_666_666.67 ns: reported rounded up…
        let mut f = LinkFifo::new(rate(3), None);
        assert_eq!(f.offer(0, 1), Ok(2_666_666_667));
        // …but the next packet starts at the exact end: 3 bytes = 8 s in total.
        assert_eq!(f.offer(0, 1), Ok(5_333_333_334));
        assert_eq!(f.offer(0, 1), Ok(8_000_000_000));
        // A million 1-byte packets at 7 bit/s: exactly 8e6/7 s in total, rounded up once.
        let mut f = LinkFifo::new(rate(7), None);
        let mut last = 0;
        for _ in 0..1_000_000 {
            last = f.offer(0, 1).unwrap();
        }
        assert_eq!(last, (8_000_000u128 * 1_000_000_000).div_ceil(7) as u64);
    }

    #[test]
    fn back_to_back_packets_queue() {
        let mut f = LinkFifo::new(rate(1_000_000), None);
        // 1000 B at 1 mbit/s = 8 ms each.
        assert_eq!(f.offer(0, 1000), Ok(8 * MS));
        assert_eq!(f.offer(MS, 1000), Ok(16 * MS));
        assert_eq!(f.offer(2 * MS, 1000), Ok(24 * MS));
        // At 10 ms: 14 ms of work left = 1750 B.
        assert_eq!(f.backlog_bytes(10 * MS), 1750);
        assert_eq!(f.backlog_bytes(24 * MS), 0);
    }

    #[test]
    fn idle_gap_resets() {
        let mut f = LinkFifo::new(rate(1_000_000), None);
        assert_eq!(f.offer(0, 1000), Ok(8 * MS));
        // Exactly at the end: the queue is idle, no waiting.
        assert_eq!(f.offer(8 * MS, 1000), Ok(16 * MS));
        // Long after: starts at now, not at the old end.
        assert_eq!(f.offer(100 * MS, 1000), Ok(108 * MS));
    }

    #[test]
    fn queue_limit_drops_and_leaves_state_unchanged() {
        let mut f = LinkFifo::new(rate(1_000_000), Some(3000));
        assert_eq!(f.offer(0, 1000), Ok(8 * MS));
        assert_eq!(f.offer(0, 1000), Ok(16 * MS));
        assert_eq!(f.offer(0, 1000), Ok(24 * MS));
        // 3000 B queued: one more byte does not fit.
        assert_eq!(f.offer(0, 1), Err(Dropped::Queue));
        assert_eq!(f.busy_until(), 24 * MS);
        assert_eq!(f.backlog_bytes(0), 3000);
        // 1 ns later a thousandth of a bit has gone: the partial byte still counts.
        assert_eq!(f.offer(1, 1), Err(Dropped::Queue));
        // After 1 ms (125 B sent) exactly 125 B fit, 126 do not.
        assert_eq!(f.offer(MS, 126), Err(Dropped::Queue));
        assert_eq!(f.offer(MS, 125), Ok(25 * MS));
        // A packet larger than the limit never fits, even when idle.
        assert_eq!(f.offer(1000 * MS, 3001), Err(Dropped::Queue));
        assert_eq!(f.offer(1000 * MS, 3000), Ok(1024 * MS));
    }

    #[test]
    fn rate_change_mid_stream() {
        let mut f = LinkFifo::new(rate(1_000_000), Some(2000));
        assert_eq!(f.offer(0, 1000), Ok(8 * MS));
        assert_eq!(f.offer(0, 1000), Ok(16 * MS));
        // Slow down to 100 kbit/s: accepted packets keep their departures; the next one
        // starts at 16 ms and takes 80 ms.
        f.set_rate(rate(100_000));
        assert_eq!(f.busy_until(), 16 * MS);
        // The limit counts the old packets at the old rate: at 4 ms, 1500 B left (12 ms at
        // 1 mbit/s), so 500 B fit and 501 do not.
        assert_eq!(f.offer(4 * MS, 501), Err(Dropped::Queue));
        assert_eq!(f.offer(4 * MS, 500), Ok(56 * MS));
        // At 16 ms only the 500 B at 100 kbit/s are left.
        assert_eq!(f.backlog_bytes(16 * MS), 500);
        assert_eq!(f.backlog_bytes(36 * MS), 250);
        // Speed up to unlimited: the next packet waits behind the queue, then takes no time.
        f.set_rate(None);
        assert_eq!(f.offer(20 * MS, 1_000_000), Ok(56 * MS));
        assert_eq!(f.offer(60 * MS, 1_000_000), Ok(60 * MS));
        // And back to a rate: starts from idle.
        f.set_rate(rate(8_000));
        assert_eq!(f.offer(60 * MS, 1), Ok(61 * MS));
    }

    #[test]
    fn limit_change_applies_to_next_packet() {
        let mut f = LinkFifo::new(rate(1_000_000), Some(10_000));
        assert_eq!(f.offer(0, 2000), Ok(16 * MS));
        f.set_limit(Some(1000));
        assert_eq!(f.offer(0, 1), Err(Dropped::Queue));
        assert_eq!(f.busy_until(), 16 * MS);
        f.set_limit(None);
        assert_eq!(f.offer(0, 1_000_000), Ok(8_016 * MS));
    }

    #[test]
    fn unlimited_rate_takes_no_time_and_never_drops() {
        let mut f = LinkFifo::new(None, Some(0));
        assert_eq!(f.offer(5, u64::MAX), Ok(5));
        assert_eq!(f.offer(5, 1), Ok(5));
        assert_eq!(f.backlog_bytes(5), 0);
    }

    #[test]
    fn huge_values_saturate() {
        let mut f = LinkFifo::new(rate(1), None);
        assert_eq!(f.offer(u64::MAX - 1, u64::MAX), Ok(u64::MAX));
        assert_eq!(f.offer(u64::MAX, u64::MAX), Ok(u64::MAX));
        // u64::MAX ns at 1 bit/s.
        let left = u128::from(u64::MAX).div_ceil(u128::from(BYTE_NS));
        assert_eq!(u128::from(f.backlog_bytes(0)), left);
        let mut f = LinkFifo::new(rate(u64::MAX), Some(u64::MAX));
        assert_eq!(f.offer(0, u64::MAX), Ok(8_000_000_000));
        f.set_rate(rate(1));
        assert_eq!(f.offer(0, 1), Err(Dropped::Queue));
        assert_eq!(f.backlog_bytes(0), u64::MAX);
    }
}
