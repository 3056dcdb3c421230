//! Loss decisions, one per lossy hop (`loss(a)`, `loss(b)`, the group pair's loss): an
//! independent Bernoulli draw, or a step of the hop's Gilbert–Elliott chain (bursty loss, as
//! netem's `loss gemodel`). The RNG and the chain's state are passed in; which hops apply is
//! the fabric's business.

use rand::Rng;

use crate::experiment::GilbertElliott;

/// 2⁶⁴ as a float: scales a probability to a threshold on a uniform `u64`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// What decides one hop's losses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HopLoss {
    /// Each packet lost independently with this probability.
    Bernoulli(f64),
    /// A Gilbert–Elliott chain, whose state the caller keeps per hop.
    Burst(GilbertElliott),
}

impl HopLoss {
    /// A link's loss: its burst model when it has one, else its Bernoulli `loss`.
    pub fn of(loss: f64, burst: Option<GilbertElliott>) -> HopLoss {
        burst.map_or(HopLoss::Bernoulli(loss), HopLoss::Burst)
    }
}

/// Which state a Gilbert–Elliott hop is in; like netem, a chain starts good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeState {
    #[default]
    Good,
    Bad,
}

/// One Bernoulli draw: `true` (lost) with probability `p`.
///
/// `p ≤ 0` (or NaN) is never lost and `p ≥ 1` always is, and neither consumes randomness, so
/// a lossless lab leaves the RNG stream to the parts that need it. Otherwise one `u64` is
/// drawn and compared with `p · 2⁶⁴` (as `rand`'s `Bernoulli` does; exact to 2⁻⁶⁴).
pub fn draw<R: Rng + ?Sized>(p: f64, rng: &mut R) -> bool {
    if p.is_nan() || p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    below(p, rng.next_u64())
}

/// Whether the uniform `u` falls below probability `p` (all of `u64` for `p ≥ 1`, none for
/// `p ≤ 0` or NaN).
fn below(p: f64, u: u64) -> bool {
    if p.is_nan() || p <= 0.0 {
        return false;
    }
    // `as` saturates, and 0 < p < 1 keeps the product below 2⁶⁴ anyway.
    p >= 1.0 || u < (p * TWO_POW_64) as u64
}

/// One packet through a Gilbert–Elliott hop, in netem's order (`loss_gilb_ell`): always two
/// `u64` draws, whatever the parameters. The first moves the chain (good → bad with `p`,
/// bad → good with `r`); the second decides the loss with the loss probability of the state
/// the packet found, before the move (`loss_good`, netem's `1-k`, or `loss_bad`, its `1-h`).
///
/// In the long run the chain is bad a fraction `p/(p+r)` of packets, so the loss rate is
/// `(r·loss_good + p·loss_bad)/(p+r)`; with `loss_bad = 1, loss_good = 0` (netem's defaults)
/// bursts of losses have geometric lengths of mean `1/r`.
pub fn gilbert_elliott<R: Rng + ?Sized>(
    ge: &GilbertElliott,
    state: &mut GeState,
    rng: &mut R,
) -> bool {
    let found = *state;
    let (leave, loss, other) = match found {
        GeState::Good => (ge.p, ge.loss_good, GeState::Bad),
        GeState::Bad => (ge.r, ge.loss_bad, GeState::Good),
    };
    if below(leave, rng.next_u64()) {
        *state = other;
    }
    below(loss, rng.next_u64())
}

/// Whether a packet is lost on a path of three hops, each with its loss model and its own
/// chain state (used by burst hops only). Draws hop by hop in order and stops at the first
/// loss, like a packet that never reaches the next hop: later chains do not move for it.
pub fn lost<R: Rng + ?Sized>(hops: [HopLoss; 3], states: &mut [GeState; 3], rng: &mut R) -> bool {
    hops.into_iter()
        .zip(states.iter_mut())
        .any(|(hop, state)| match hop {
            HopLoss::Bernoulli(p) => draw(p, rng),
            HopLoss::Burst(ge) => gilbert_elliott(&ge, state, rng),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::model::tests::CountingRng;

    fn bernoulli(ps: [f64; 3]) -> [HopLoss; 3] {
        ps.map(HopLoss::Bernoulli)
    }

    fn ge(p: f64, r: f64) -> GilbertElliott {
        GilbertElliott {
            p,
            r,
            loss_bad: 1.0,
            loss_good: 0.0,
        }
    }

    /// `n` packets through one Gilbert–Elliott hop: whether each was lost.
    fn chain(model: &GilbertElliott, seed: u64, n: usize) -> Vec<bool> {
        let mut rng = CountingRng::seeded(seed);
        let mut state = GeState::default();
        let losses = (0..n)
            .map(|_| gilbert_elliott(model, &mut state, &mut rng))
            .collect();
        assert_eq!(rng.draws, 2 * n, "two draws per packet, always");
        losses
    }

    /// Lengths of the runs of consecutive losses.
    fn bursts(losses: &[bool]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut run = 0;
        for &lost in losses {
            if lost {
                run += 1;
            } else if run > 0 {
                out.push(run);
                run = 0;
            }
        }
        out
    }

    #[test]
    fn rate_0_02_within_0_3_percent_over_200k_draws() {
        let mut rng = CountingRng::seeded(42);
        let n = 200_000;
        let hits = (0..n).filter(|_| draw(0.02, &mut rng)).count();
        let measured = hits as f64 / n as f64;
        assert!((measured - 0.02).abs() < 0.003, "measured {measured}");
        // One standard deviation here is 0.031 percentage points: hold it to four.
        assert!((measured - 0.02).abs() < 0.00125, "measured {measured}");
        assert_eq!(rng.draws, n);
    }

    #[test]
    fn three_hops_compose_independently() {
        let mut rng = CountingRng::seeded(7);
        let n = 200_000;
        let hits = (0..n)
            .filter(|_| {
                lost(
                    bernoulli([0.1, 0.2, 0.05]),
                    &mut [GeState::Good; 3],
                    &mut rng,
                )
            })
            .count();
        let expected = 1.0 - 0.9 * 0.8 * 0.95;
        let measured = hits as f64 / n as f64;
        assert!((measured - expected).abs() < 0.003, "measured {measured}");
    }

    #[test]
    fn edge_probabilities_draw_nothing() {
        let mut rng = CountingRng::seeded(1);
        for _ in 0..1000 {
            assert!(!draw(0.0, &mut rng));
            assert!(!draw(-1.0, &mut rng));
            assert!(!draw(f64::NAN, &mut rng));
            assert!(draw(1.0, &mut rng));
            assert!(draw(f64::INFINITY, &mut rng));
            let mut states = [GeState::Good; 3];
            assert!(!lost(bernoulli([0.0, 0.0, 0.0]), &mut states, &mut rng));
            assert!(lost(bernoulli([0.0, 1.0, 0.0]), &mut states, &mut rng));
        }
        assert_eq!(rng.draws, 0);
        // The tiniest positive probability still draws (and essentially never hits).
        assert!(!draw(f64::MIN_POSITIVE, &mut rng));
        assert_eq!(rng.draws, 1);
    }

    #[test]
    fn gilbert_elliott_loss_rate_is_the_stationary_mix() {
        // Losses are correlated, so the binomial standard error understates the spread: over
        // n packets the rate's standard error is about √(π(1-π)·(1+λ)/(1-λ)/n), with
        // λ = 1-p-r the chain's lag-1 correlation. The tolerances are five of those.
        let n = 400_000;
        for (seed, model) in [
            ge(0.01, 0.3),
            ge(0.05, 0.5),
            GilbertElliott {
                p: 0.02,
                r: 0.2,
                loss_bad: 0.6,
                loss_good: 0.01,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let (p, r) = (model.p, model.r);
            let want = (r * model.loss_good + p * model.loss_bad) / (p + r);
            let lambda = 1.0 - p - r;
            let se = (want * (1.0 - want) * (1.0 + lambda) / (1.0 - lambda) / n as f64).sqrt();
            let hits = chain(&model, seed as u64, n).iter().filter(|&&l| l).count();
            let got = hits as f64 / n as f64;
            assert!(
                (got - want).abs() < 5.0 * se,
                "{model:?}: {got}, expected {want} ± {}",
                5.0 * se
            );
        }
    }

    #[test]
    fn gilbert_burst_lengths_are_geometric_with_mean_one_over_r() {
        // With loss_bad = 1 and loss_good = 0 a burst is a stay in the bad state: length k
        // with probability (1-r)^(k-1)·r. Each bucket's count is binomial over the bursts;
        // five standard errors of it, plus the mean within five of its own.
        let (p, r) = (0.02, 0.3);
        let lengths = bursts(&chain(&ge(p, r), 17, 1_000_000));
        let bursts_n = lengths.len() as f64;
        // Bursts start at rate π_good·p = p·r/(p+r) per packet: ≈ 18 750 here.
        assert!(bursts_n > 15_000.0, "{bursts_n}");
        for k in 1..=8 {
            let want = (1.0 - r).powi(k - 1) * r;
            let got = lengths.iter().filter(|&&l| l == k as usize).count() as f64 / bursts_n;
            let se = (want * (1.0 - want) / bursts_n).sqrt();
            assert!(
                (got - want).abs() < 5.0 * se,
                "length {k}: {got}, expected {want} ± {}",
                5.0 * se
            );
        }
        let tail = (1.0 - r).powi(8);
        let got = lengths.iter().filter(|&&l| l > 8).count() as f64 / bursts_n;
        assert!((got - tail).abs() < 5.0 * (tail * (1.0 - tail) / bursts_n).sqrt());
        let mean = lengths.iter().sum::<usize>() as f64 / bursts_n;
        // A geometric length has standard deviation √(1-r)/r.
        let se = (1.0 - r).sqrt() / r / bursts_n.sqrt();
        assert!((mean - 1.0 / r).abs() < 5.0 * se, "mean burst {mean}");
    }

    #[test]
    fn gilbert_elliott_follows_netems_draw_order() {
        // Replays `loss_gilb_ell` by hand on the same stream: draw 1 moves the state, draw 2
        // is compared with the loss probability of the state before the move.
        let model = GilbertElliott {
            p: 0.3,
            r: 0.4,
            loss_bad: 0.7,
            loss_good: 0.2,
        };
        let threshold = |x: f64| (x * TWO_POW_64) as u64;
        let mut rng = CountingRng::seeded(23);
        let mut replay = CountingRng::seeded(23);
        let (mut state, mut bad) = (GeState::Good, false);
        for i in 0..10_000 {
            let (move_draw, loss_draw) = (replay.next_u64(), replay.next_u64());
            let want = if bad {
                bad = move_draw >= threshold(model.r);
                loss_draw < threshold(model.loss_bad)
            } else {
                bad = move_draw < threshold(model.p);
                loss_draw < threshold(model.loss_good)
            };
            assert_eq!(
                gilbert_elliott(&model, &mut state, &mut rng),
                want,
                "packet {i}"
            );
            assert_eq!(state == GeState::Bad, bad, "packet {i}");
        }
    }

    #[test]
    fn a_loss_stops_the_path_before_later_chains_move() {
        let mut rng = CountingRng::seeded(2);
        let mut states = [GeState::Good; 3];
        let always = GilbertElliott {
            p: 1.0,
            r: 0.0,
            loss_bad: 1.0,
            loss_good: 1.0,
        };
        let hops = [
            HopLoss::Bernoulli(1.0),
            HopLoss::Burst(always),
            HopLoss::Burst(always),
        ];
        assert!(lost(hops, &mut states, &mut rng));
        assert_eq!((states, rng.draws), ([GeState::Good; 3], 0));
        // Lossless before them, both chains move: two draws each, the first one loses.
        let hops = [HopLoss::Bernoulli(0.0), HopLoss::Burst(always), hops[2]];
        assert!(lost(hops, &mut states, &mut rng));
        assert_eq!(states, [GeState::Good, GeState::Bad, GeState::Good]);
        assert_eq!(rng.draws, 2);
        assert_eq!(HopLoss::of(0.5, None), HopLoss::Bernoulli(0.5));
        assert_eq!(HopLoss::of(0.5, Some(always)), HopLoss::Burst(always));
    }
}
