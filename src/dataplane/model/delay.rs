//! `DelayLine`: the propagation delay of each packet (latencies, group latency, jitter), and
//! the rule that jitter never reorders one (src, dst) flow. It holds no packets.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rand::Rng;

use super::{GroupLink, LinkShape, Nanos, NodeIdx};

/// Below this many remembered flows, forgetting old ones is not worth a pass over the map.
const MIN_PRUNE: usize = 1024;

/// Computes when a packet reaches the destination's downlink.
///
/// Delay = `latency(a) + latency(b) + group(g(a), g(b)).latency`, plus one independent uniform
/// draw in `[-j, +j]` for each non-zero jitter `j` of `a`, `b` and the group pair (drawn in
/// that order; a zero jitter draws nothing), clamped at ≥ 0. Then the arrival is held back to
/// the last arrival of the same (src, dst) pair, so jitter never reorders a flow (like netem's
/// rate-limited jitter, not its reordering one). Deterministic for a given RNG stream.
#[derive(Clone, Debug, Default)]
pub struct DelayLine {
    /// Last arrival per (src, dst), keyed `src << 32 | dst`.
    last: HashMap<u64, Nanos, BuildHasherDefault<PairHasher>>,
    /// Map size at which `forget_until` next sweeps.
    prune_at: usize,
}

impl DelayLine {
    /// A delay line that remembers no flow yet.
    pub fn new() -> Self {
        DelayLine::default()
    }

    /// Arrival time at `dst`'s downlink of a packet that leaves `src`'s uplink at `depart`,
    /// with `a`, `b` the two nodes' parameters and `group` their groups' link.
    #[allow(clippy::too_many_arguments)] // each is one fact of the path; a struct would only rename them
    pub fn arrival<R: Rng + ?Sized>(
        &mut self,
        depart: Nanos,
        src: NodeIdx,
        dst: NodeIdx,
        a: &LinkShape,
        b: &LinkShape,
        group: &GroupLink,
        rng: &mut R,
    ) -> Nanos {
        let delay = propagation(
            [a.latency, b.latency, group.latency],
            [a.jitter, b.jitter, group.jitter],
            rng,
        );
        let computed = depart.saturating_add(delay);
        let key = (u64::from(src.0) << 32) | u64::from(dst.0);
        let last = self.last.entry(key).or_insert(0);
        *last = (*last).max(computed);
        *last
    }

    /// Forgets flows whose last arrival is at or before `now`: every later packet is sent at
    /// or after `now` and so arrives after it anyway. Amortised O(1): sweeps only when the map
    /// has doubled since the last sweep.
    pub fn forget_until(&mut self, now: Nanos) {
        if self.last.len() < self.prune_at.max(MIN_PRUNE) {
            return;
        }
        self.last.retain(|_, last| *last > now);
        self.prune_at = self.last.len() * 2;
    }

    /// How many flows are remembered (for tests and stats).
    pub fn flows(&self) -> usize {
        self.last.len()
    }
}

/// Sum of `latencies` plus a uniform draw in `[-j, +j]` for each non-zero `j` in `jitters`,
/// clamped to `[0, u64::MAX]`.
pub fn propagation<R: Rng + ?Sized>(
    latencies: [Nanos; 3],
    jitters: [Nanos; 3],
    rng: &mut R,
) -> Nanos {
    // i128 holds three u64 latencies and three signed jitters without overflow.
    let mut total: i128 = latencies.iter().map(|&l| i128::from(l)).sum();
    for j in jitters {
        // Capped at 146 years so that 2j + 1 values fit the u64 × u128 draw below.
        let j = j.min(u64::MAX / 2);
        if j > 0 {
            total += i128::from(uniform_inclusive(2 * j, rng)) - i128::from(j);
        }
    }
    u64::try_from(total.max(0)).unwrap_or(u64::MAX)
}

/// A uniform integer in `[0, max]` from one `u64`, by widening multiply (Lemire, without the
/// rejection step: the bias is below `max / 2⁶⁴`, under 10⁻⁹ for jitters up to hours). Written
/// out rather than `random_range` so the stream does not depend on `rand`'s internals.
fn uniform_inclusive<R: Rng + ?Sized>(max: u64, rng: &mut R) -> u64 {
    let span = u128::from(max) + 1;
    // < 2⁶⁴ × span ≤ 2¹²⁸, and the result is < span ≤ 2⁶⁴: neither overflows.
    ((u128::from(rng.next_u64()) * span) >> 64) as u64
}

/// Hashes a (src, dst) pair key: a folded 64×64→128 multiply, so both halves of the key reach
/// both halves of the hash. Far cheaper than SipHash, and the keys are not attacker-chosen.
#[derive(Clone, Copy, Debug, Default)]
struct PairHasher(u64);

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let m = u128::from(x ^ self.0) * u128::from(MIX);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::model::tests::CountingRng;
    use crate::units::{MS, SEC, US};

    fn node(latency: Nanos, jitter: Nanos) -> LinkShape {
        LinkShape {
            latency,
            jitter,
            ..LinkShape::default()
        }
    }

    #[test]
    fn latencies_add_without_jitter_and_draw_nothing() {
        let mut d = DelayLine::new();
        let mut rng = CountingRng::seeded(3);
        let a = node(30 * MS, 0);
        let g = GroupLink {
            latency: 40 * MS,
            ..GroupLink::default()
        };
        let t = d.arrival(5, NodeIdx(0), NodeIdx(1), &a, &a, &g, &mut rng);
        assert_eq!(t, 5 + 100 * MS);
        assert_eq!(rng.draws, 0);
    }

    #[test]
    fn jitter_bounds_and_no_reordering_within_a_flow() {
        let mut d = DelayLine::new();
        let mut rng = CountingRng::seeded(11);
        let (a, b) = (node(10 * MS, 2 * MS), node(5 * MS, MS));
        let g = GroupLink {
            latency: 20 * MS,
            jitter: 3 * MS,
            loss: 0.0,
            ..GroupLink::NONE
        };
        let (lo, hi) = (29 * MS, 41 * MS);
        let (mut min, mut max, mut sum) = (u64::MAX, 0, 0u128);
        let mut prev = 0;
        let mut held_back = 0;
        for i in 0..10_000u64 {
            let depart = i * 100 * US;
            let t = d.arrival(depart, NodeIdx(4), NodeIdx(9), &a, &b, &g, &mut rng);
            assert!(t >= prev, "packet {i} reordered: {t} < {prev}");
            let delay = t - depart;
            assert!((lo..=hi).contains(&delay), "packet {i}: delay {delay}");
            held_back += u32::from(t == prev);
            prev = t;
            (min, max, sum) = (min.min(delay), max.max(delay), sum + u128::from(delay));
        }
        assert_eq!(rng.draws, 30_000);
        // The jitter is really there: it spans most of its range and some packets wait.
        assert!(min < 33 * MS && max > 38 * MS, "{min}..{max}");
        assert!(held_back > 100, "{held_back}");
        // Holding back only delays: with packets 0.1 ms apart and ±6 ms of jitter, a flow
        // rides near the top of its delay range (the price of never reordering).
        let mean = (sum / 10_000) as u64;
        assert!((35 * MS..41 * MS).contains(&mean), "{mean}");

        // Packets further apart than the jitter range are never held: the mean is unbiased.
        let mut sum = 0;
        for i in 0..10_000u64 {
            let depart = SEC + i * 20 * MS;
            let t = d.arrival(depart, NodeIdx(4), NodeIdx(9), &a, &b, &g, &mut rng);
            sum += t - depart;
        }
        let mean = sum / 10_000;
        assert!(mean.abs_diff(35 * MS) < 100 * US, "{mean}");
    }

    #[test]
    fn flows_are_independent_and_reproducible() {
        let run = |seed| {
            let mut d = DelayLine::new();
            let mut rng = CountingRng::seeded(seed);
            let a = node(MS, MS);
            let g = GroupLink::default();
            (0..1000u64)
                .map(|i| {
                    d.arrival(
                        i * 10 * US,
                        NodeIdx((i % 2) as u32),
                        NodeIdx(2),
                        &a,
                        &a,
                        &g,
                        &mut rng,
                    )
                })
                .collect::<Vec<_>>()
        };
        let arrivals = run(5);
        assert_eq!(arrivals, run(5));
        assert_ne!(arrivals, run(6));
        // Each flow is ordered, but the two flows interleave out of order.
        for flow in [0, 1] {
            let times: Vec<_> = arrivals.iter().skip(flow).step_by(2).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]));
        }
        assert!(arrivals.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn jitter_larger_than_latency_clamps_at_zero() {
        let mut rng = CountingRng::seeded(2);
        let delays: Vec<_> = (0..1000)
            .map(|_| propagation([MS, 0, 0], [10 * MS, 0, 0], &mut rng))
            .collect();
        assert!(delays.iter().all(|&d| d <= 11 * MS));
        assert!(delays.iter().filter(|&&d| d == 0).count() > 300);
        // Absurd values saturate instead of overflowing.
        let huge = propagation([u64::MAX; 3], [u64::MAX; 3], &mut rng);
        assert_eq!(huge, u64::MAX);
        assert_eq!(propagation([0; 3], [0; 3], &mut rng), 0);
    }

    #[test]
    fn old_flows_are_forgotten() {
        let mut d = DelayLine::new();
        let mut rng = CountingRng::seeded(2);
        let a = node(MS, 0);
        let g = GroupLink::default();
        for i in 0..5000u32 {
            d.arrival(0, NodeIdx(i), NodeIdx(0), &a, &a, &g, &mut rng);
        }
        // Flows still in flight are kept; the next sweep waits until the map has doubled.
        d.forget_until(2 * MS - 1);
        assert_eq!(d.flows(), 5000);
        d.forget_until(2 * MS);
        assert_eq!(d.flows(), 5000);
        for i in 5000..10_000u32 {
            d.arrival(0, NodeIdx(i), NodeIdx(0), &a, &a, &g, &mut rng);
        }
        d.forget_until(2 * MS);
        assert_eq!(d.flows(), 0);
    }
}
