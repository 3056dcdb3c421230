//! Access-link and group-link parameters as the script sets them (`shape`, `link_groups`),
//! already in base units (bits/s, ns, bytes): one type each, kept by the experiment state and
//! read by the link model. Parsing units is the script's job.

use std::num::NonZeroU64;

use crate::units::Nanos;

/// The smallest default queue limit, whatever the rate: 64 KiB.
pub const MIN_DEFAULT_QUEUE: u64 = 64 * 1024;

/// The default queue holds this long a burst at the link's rate: 100 ms.
pub const DEFAULT_QUEUE_TIME: Nanos = 100_000_000;

/// One node's access link: what `shape(node, #{up, down, latency, jitter, loss, queue})` sets.
///
/// The default is an unshaped link: unlimited rates, no latency, no jitter, no loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkShape {
    /// Uplink rate in bits/s; `None` is unlimited. `Some(0)` is read as unlimited too
    /// (a link that never sends would only stall the lab; to cut a node off, fail it).
    pub up: Option<u64>,
    /// Downlink rate in bits/s; same conventions as `up`.
    pub down: Option<u64>,
    /// One-way latency this node's link adds to every packet it sends or receives.
    pub latency: Nanos,
    /// Each packet's delay through this link varies uniformly in `[-jitter, +jitter]`.
    pub jitter: Nanos,
    /// Probability in `[0, 1]` that a packet through this link is lost (NaN reads as 0).
    pub loss: f64,
    /// Queue limit in bytes of both the uplink and the downlink FIFO;
    /// `None` is [`default_queue_limit`] of each direction's rate.
    pub queue: Option<u64>,
}

impl Default for LinkShape {
    fn default() -> Self {
        LinkShape {
            up: None,
            down: None,
            latency: 0,
            jitter: 0,
            loss: 0.0,
            queue: None,
        }
    }
}

impl LinkShape {
    /// The shape after a partial update: keys the update does not give keep their value.
    pub fn apply(&self, update: &ShapeUpdate) -> LinkShape {
        LinkShape {
            up: update.up.or(self.up),
            down: update.down.or(self.down),
            latency: update.latency.unwrap_or(self.latency),
            jitter: update.jitter.unwrap_or(self.jitter),
            loss: update.loss.unwrap_or(self.loss),
            queue: update.queue.or(self.queue),
        }
    }

    /// The uplink rate, with 0 read as unlimited.
    pub fn up_rate(&self) -> Option<NonZeroU64> {
        self.up.and_then(NonZeroU64::new)
    }

    /// The downlink rate, with 0 read as unlimited.
    pub fn down_rate(&self) -> Option<NonZeroU64> {
        self.down.and_then(NonZeroU64::new)
    }

    /// The uplink queue limit in bytes (`None`: no limit, the rate is unlimited).
    pub fn up_queue_limit(&self) -> Option<u64> {
        queue_limit(self.queue, self.up_rate())
    }

    /// The downlink queue limit in bytes (`None`: no limit, the rate is unlimited).
    pub fn down_queue_limit(&self) -> Option<u64> {
        queue_limit(self.queue, self.down_rate())
    }
}

/// A partial update of a `LinkShape`: `shape()` changes only the keys it is given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShapeUpdate {
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub latency: Option<Nanos>,
    pub jitter: Option<Nanos>,
    pub loss: Option<f64>,
    pub queue: Option<u64>,
}

fn queue_limit(explicit: Option<u64>, rate: Option<NonZeroU64>) -> Option<u64> {
    // An unlimited link serialises in zero time, so nothing ever waits and a limit is moot.
    let rate = rate?;
    Some(explicit.unwrap_or_else(|| default_queue_limit(rate)))
}

/// The default queue limit of a link at `rate` bits/s: the larger of 64 KiB and what the link
/// sends in 100 ms, so a fast link can absorb a burst and a slow one still holds a few packets.
pub fn default_queue_limit(rate: NonZeroU64) -> u64 {
    // u128: rate × 100 ms overflows u64 for rates above ~184 Tbit/s.
    let burst = u128::from(rate.get()) * u128::from(DEFAULT_QUEUE_TIME) / 8 / 1_000_000_000;
    u64::try_from(burst)
        .unwrap_or(u64::MAX)
        .max(MIN_DEFAULT_QUEUE)
}

/// Extra latency, jitter and loss between two groups: what `link_groups(a, b, #{...})` sets.
/// Symmetric; the default adds nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupLink {
    /// One-way latency added once per direction.
    pub latency: Nanos,
    /// The group delay varies uniformly in `[-jitter, +jitter]`.
    pub jitter: Nanos,
    /// Probability in `[0, 1]` that a packet between the two groups is lost.
    pub loss: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(bits: u64) -> NonZeroU64 {
        NonZeroU64::new(bits).unwrap()
    }

    #[test]
    fn update_changes_only_given_keys() {
        let base = LinkShape {
            up: Some(1000),
            latency: 5,
            ..Default::default()
        };
        let next = base.apply(&ShapeUpdate {
            down: Some(2000),
            latency: Some(7),
            ..Default::default()
        });
        assert_eq!(next.up, Some(1000));
        assert_eq!(next.down, Some(2000));
        assert_eq!(next.latency, 7);
        assert_eq!(next.loss, 0.0);
    }

    #[test]
    fn default_is_unshaped() {
        let p = LinkShape::default();
        assert_eq!(p.up_rate(), None);
        assert_eq!(p.down_rate(), None);
        assert_eq!((p.latency, p.jitter, p.loss), (0, 0, 0.0));
        assert_eq!(p.up_queue_limit(), None);
        assert_eq!(p.down_queue_limit(), None);
    }

    #[test]
    fn default_queue_limits() {
        // 128 kbit/s × 100 ms = 1600 B < 64 KiB.
        assert_eq!(default_queue_limit(rate(128_000)), 65_536);
        // 100 mbit/s × 100 ms = 1.25 MB.
        assert_eq!(default_queue_limit(rate(100_000_000)), 1_250_000);
        // Exactly at the crossover: 65536 B in 100 ms = 5_242_880 bit/s.
        assert_eq!(default_queue_limit(rate(5_242_880)), 65_536);
        assert_eq!(default_queue_limit(rate(5_242_960)), 65_537);
        // Huge rates do not overflow.
        assert_eq!(default_queue_limit(rate(u64::MAX)), u64::MAX / 80);
    }

    #[test]
    fn zero_rate_is_unlimited_and_explicit_queue_wins() {
        let p = LinkShape {
            up: Some(0),
            down: Some(2_000_000),
            queue: Some(10_000),
            ..LinkShape::default()
        };
        assert_eq!(p.up_rate(), None);
        assert_eq!(p.up_queue_limit(), None);
        assert_eq!(p.down_queue_limit(), Some(10_000));
        let d = LinkShape {
            down: Some(2_000_000_000),
            ..LinkShape::default()
        };
        assert_eq!(d.down_queue_limit(), Some(25_000_000));
    }
}
