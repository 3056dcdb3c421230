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
    /// Each packet's delay through this link varies by this much, as `jitter_model` says
    /// (by default uniformly in `[-jitter, +jitter]`).
    pub jitter: Nanos,
    /// Probability in `[0, 1]` that a packet through this link is lost (NaN reads as 0).
    pub loss: f64,
    /// Queue limit in bytes of both the uplink and the downlink FIFO;
    /// `None` is [`default_queue_limit`] of each direction's rate.
    pub queue: Option<u64>,
    /// How the jitter is distributed, and how much each draw follows the last.
    pub jitter_model: JitterModel,
    /// Bursty loss: when set, it decides this link's losses instead of `loss`.
    pub burst: Option<GilbertElliott>,
    /// Trace-driven rates and latency: where set, they replace `up`, `down` or `latency`.
    pub traces: LinkTraces,
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
            jitter_model: JitterModel::UNIFORM,
            burst: None,
            traces: LinkTraces::NONE,
        }
    }
}

/// The distribution of a link's jitter `j`, as netem names them: uniform in `[-j, +j]`, normal
/// with standard deviation `j`, or netem's pareto and paretonormal tables scaled by `j`
/// (standard deviations 0.82 `j` and 0.83 `j`); see `dataplane::model::jitter::quantile`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum JitterDist {
    #[default]
    Uniform,
    Normal,
    Pareto,
    ParetoNormal,
}

impl JitterDist {
    /// Every distribution with the name scripts use for it.
    pub const NAMES: [(&'static str, JitterDist); 4] = [
        ("uniform", JitterDist::Uniform),
        ("normal", JitterDist::Normal),
        ("pareto", JitterDist::Pareto),
        ("paretonormal", JitterDist::ParetoNormal),
    ];

    /// The name scripts use.
    pub fn name(self) -> &'static str {
        match self {
            JitterDist::Uniform => "uniform",
            JitterDist::Normal => "normal",
            JitterDist::Pareto => "pareto",
            JitterDist::ParetoNormal => "paretonormal",
        }
    }
}

/// A jitter's distribution and correlation (netem's `delay T J C% distribution D`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JitterModel {
    pub dist: JitterDist,
    /// In `[0, 1)`: how much each draw's underlying random value follows the previous one.
    pub correlation: f64,
}

impl JitterModel {
    /// Uniform and uncorrelated: the default.
    pub const UNIFORM: JitterModel = JitterModel {
        dist: JitterDist::Uniform,
        correlation: 0.0,
    };
}

/// Gilbert–Elliott bursty loss, with netem's `loss gemodel p r 1-h 1-k` parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good state to the bad one, per packet.
    pub p: f64,
    /// Probability of moving from the bad state back to the good one, per packet.
    pub r: f64,
    /// Loss probability in the bad state (netem's `1-h`).
    pub loss_bad: f64,
    /// Loss probability in the good state (netem's `1-k`).
    pub loss_good: f64,
}

/// Which trace drives a link's rates and latency, and from where in it each link starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkTraces {
    /// Delivery opportunities of the uplink (a rate trace), replacing `up`.
    pub up: Option<TraceRef>,
    /// Delivery opportunities of the downlink (a rate trace), replacing `down`.
    pub down: Option<TraceRef>,
    /// One-way latency over time (a delay trace), replacing `latency`.
    pub delay: Option<TraceRef>,
}

impl LinkTraces {
    /// No trace: rates and latency are the constant ones.
    pub const NONE: LinkTraces = LinkTraces {
        up: None,
        down: None,
        delay: None,
    };
}

/// A loaded trace, by the id the experiment gave it, read from `offset` into it at time 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceRef {
    pub id: TraceId,
    pub offset: Nanos,
}

/// A trace loaded once per run (`Action::LoadTrace`), shared by every link that uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceId(pub u32);

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
            jitter_model: update.jitter_model.unwrap_or(self.jitter_model),
            burst: update.burst.unwrap_or(self.burst),
            traces: LinkTraces {
                up: update.up_trace.unwrap_or(self.traces.up),
                down: update.down_trace.unwrap_or(self.traces.down),
                delay: update.delay_trace.unwrap_or(self.traces.delay),
            },
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
    pub jitter_model: Option<JitterModel>,
    /// `Some(None)` goes back to Bernoulli loss.
    pub burst: Option<Option<GilbertElliott>>,
    /// `Some(None)` goes back to the constant rate or latency.
    pub up_trace: Option<Option<TraceRef>>,
    pub down_trace: Option<Option<TraceRef>>,
    pub delay_trace: Option<Option<TraceRef>>,
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

impl Default for GroupLink {
    fn default() -> Self {
        GroupLink::NONE
    }
}

/// Extra latency, jitter and loss between two groups: what `link_groups(a, b, #{...})` sets.
/// Symmetric; the default adds nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupLink {
    /// One-way latency added once per direction.
    pub latency: Nanos,
    /// The group delay varies by this much, as `jitter_model` says.
    pub jitter: Nanos,
    /// Probability in `[0, 1]` that a packet between the two groups is lost.
    pub loss: f64,
    /// How the group jitter is distributed and correlated.
    pub jitter_model: JitterModel,
    /// Bursty loss between the two groups: when set, it decides instead of `loss`.
    pub burst: Option<GilbertElliott>,
}

impl GroupLink {
    /// The link's value as bits, so that equal links (floats included) find each other.
    pub fn bits(&self) -> [u64; 9] {
        let burst = self.burst.map_or([u64::MAX; 4], |b| {
            [b.p, b.r, b.loss_bad, b.loss_good].map(f64::to_bits)
        });
        [
            self.latency,
            self.jitter,
            self.loss.to_bits(),
            self.jitter_model.dist as u64,
            self.jitter_model.correlation.to_bits(),
            burst[0],
            burst[1],
            burst[2],
            burst[3],
        ]
    }

    /// What pairs never linked read as: nothing added.
    pub const NONE: GroupLink = GroupLink {
        latency: 0,
        jitter: 0,
        loss: 0.0,
        jitter_model: JitterModel::UNIFORM,
        burst: None,
    };
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
