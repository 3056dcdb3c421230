//! Jitter draws as netem makes them: one hop's signed delay offset from its jitter `j`, its
//! [`JitterModel`] (distribution and correlation) and its [`JitterState`]. Pure: the RNG is
//! passed in. Which hops have jitter, and how offsets add up, is the delay line's business.

use rand::Rng;

use super::Nanos;
use crate::experiment::{JitterDist, JitterModel};

/// 2⁶⁴ as a float: scales a correlation to a weight on a uniform `u64`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// 2⁵³: a uniform `u64`'s top 53 bits, as a float in `[0, 1)`, are exact.
const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// netem's tables hold 16-bit values in units of 1/8192 jitter (`NETEM_DIST_SCALE`), so no
/// table distribution strays beyond 32767/8192 ≈ 4 jitters either side.
pub const TABLE_LIMIT: f64 = 32767.0 / 8192.0;

/// The shape of netem's pareto tables (`a = 3` in iproute2's `pareto.c`).
const PARETO_SHAPE: f64 = 3.0;

/// What a correlated jitter remembers between packets: the last underlying uniform value
/// (netem's `crndstate.last`). The default remembers nothing, so the first draw is fresh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterState {
    last: Option<u64>,
}

/// One hop's jitter offset in ns, for a jitter `j` under `model`.
///
/// A zero `j` draws nothing and returns 0. Otherwise exactly one `u64` is drawn, `fresh`, and
/// the underlying uniform is `u = (1-ρ)·fresh + ρ·last` (netem's `get_crandom`, in 64-bit
/// fixed point; `fresh` itself when ρ = 0 or nothing is remembered), remembered as the next
/// `last`. Then:
///
/// - **uniform**: `⌊u·(2j+1)/2⁶⁴⌋ - j`, an integer in `[-j, +j]`;
/// - **normal**, **pareto**, **paretonormal**: `j·F⁻¹(u/2⁶⁴)` rounded, with `F⁻¹` the inverse
///   CDF of netem's table ([`quantile`]).
///
/// `j` is capped at 2⁶³ ns (146 years) so that the uniform's `2j + 1` values fit the draw.
pub fn offset<R: Rng + ?Sized>(
    j: Nanos,
    model: &JitterModel,
    state: &mut JitterState,
    rng: &mut R,
) -> i128 {
    let j = j.min(u64::MAX / 2);
    if j == 0 {
        return 0;
    }
    let u = correlated(model.correlation, state, rng.next_u64());
    match model.dist {
        JitterDist::Uniform => i128::from(scale_inclusive(u, 2 * j)) - i128::from(j),
        // |F⁻¹| ≤ 4 and j ≤ 2⁶³: the product fits i128, and `as` saturates anyway.
        dist => (quantile(dist, unit(u)) * j as f64).round() as i128,
    }
}

/// netem's `get_crandom` on a `u64`: the fresh value weighted `1-ρ`, the last one `ρ`.
/// A ρ outside `(0, 1)` (or NaN) reads as no correlation; ρ is validated before it gets here.
fn correlated(rho: f64, state: &mut JitterState, fresh: u64) -> u64 {
    let u = match state.last {
        Some(last) if rho > 0.0 && rho < 1.0 => {
            // w < 2⁶⁴, so fresh·(2⁶⁴-w) + last·w < 2⁶⁴·2⁶⁴: no overflow, and the result fits u64.
            let w = u128::from((rho * TWO_POW_64) as u64);
            ((u128::from(fresh) * ((1u128 << 64) - w) + u128::from(last) * w) >> 64) as u64
        }
        _ => fresh,
    };
    state.last = Some(u);
    u
}

/// A uniform integer in `[0, max]` from one uniform `u64`, by widening multiply (Lemire,
/// without the rejection step: the bias is below `max / 2⁶⁴`, under 10⁻⁹ for jitters up to
/// hours). Written out rather than `random_range` so the stream does not depend on `rand`.
fn scale_inclusive(u: u64, max: u64) -> u64 {
    let span = u128::from(max) + 1;
    // < 2⁶⁴ × span ≤ 2¹²⁸, and the result is < span ≤ 2⁶⁴: neither overflows.
    ((u128::from(u) * span) >> 64) as u64
}

/// A uniform `u64` as a probability strictly inside `(0, 1)`: the midpoint of its 2⁻⁵³ cell.
fn unit(u: u64) -> f64 {
    ((u >> 11) as f64 + 0.5) / TWO_POW_53
}

/// The inverse CDF, at `p` in `(0, 1)`, of netem's table for `dist`, in units of the jitter,
/// computed rather than looked up (netem's tables sample it at 4096 points):
///
/// - **normal** (`normal.c`): `Φ⁻¹(p)`, the standard normal;
/// - **pareto** (`pareto.c`): `(4/3)·((1-p)^(-1/3) - 1.5)`, a Pareto of shape 3 and scale 1
///   (mean 1.5, standard deviation √3/2) moved to mean 0 and scaled by 4/3;
/// - **paretonormal** (`paretonormal.c`): `(normal(p) + 3·pareto(p)) / 4`, the two tables
///   mixed at the same `p` (so their tails add up, not average out);
/// - **uniform**: `2p - 1`, for completeness (draws use the exact integer form instead).
///
/// Each is clipped to ±[`TABLE_LIMIT`], as the tables' 16-bit entries clip it; the clip
/// shortens pareto's long tail, so its mean is slightly below 0 (-0.033 jitters).
pub fn quantile(dist: JitterDist, p: f64) -> f64 {
    let clip = |x: f64| x.clamp(-TABLE_LIMIT, TABLE_LIMIT);
    let pareto = |p: f64| clip((4.0 / 3.0) * ((1.0 - p).powf(-1.0 / PARETO_SHAPE) - 1.5));
    match dist {
        JitterDist::Uniform => 2.0 * p - 1.0,
        JitterDist::Normal => clip(inverse_normal(p)),
        JitterDist::Pareto => pareto(p),
        JitterDist::ParetoNormal => clip((clip(inverse_normal(p)) + 3.0 * pareto(p)) / 4.0),
    }
}

/// Φ⁻¹(p), the standard normal quantile, by Acklam's rational approximation (relative error
/// below 1.2·10⁻⁹ on `(0, 1)`: far finer than a nanosecond of any sane jitter).
fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::model::tests::CountingRng;
    use crate::units::MS;

    const N: usize = 100_000;

    fn model(dist: JitterDist, correlation: f64) -> JitterModel {
        JitterModel { dist, correlation }
    }

    /// `n` offsets in units of `j`, from one fresh state.
    fn sample(dist: JitterDist, correlation: f64, seed: u64, n: usize) -> Vec<f64> {
        let mut rng = CountingRng::seeded(seed);
        let mut state = JitterState::default();
        let m = model(dist, correlation);
        let xs = (0..n)
            .map(|_| offset(MS, &m, &mut state, &mut rng) as f64 / MS as f64)
            .collect();
        assert_eq!(rng.draws, n, "one draw per offset");
        xs
    }

    /// The mean, the variance and the fourth central moment of `xs`.
    fn moments(xs: &[f64]) -> (f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let m4 = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
        (mean, var, m4)
    }

    /// The exact mean, variance and fourth central moment of the distribution, by the
    /// midpoint rule over its quantile function (a million points: error ≪ the tolerances).
    fn exact(dist: JitterDist) -> (f64, f64, f64) {
        let k = 1_000_000;
        let xs: Vec<f64> = (0..k)
            .map(|i| quantile(dist, (i as f64 + 0.5) / k as f64))
            .collect();
        moments(&xs)
    }

    fn lag1(xs: &[f64]) -> f64 {
        let (mean, var, _) = moments(xs);
        let cov = xs
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>()
            / (xs.len() - 1) as f64;
        cov / var
    }

    #[test]
    fn uniform_uncorrelated_is_the_old_stream_exactly() {
        // The draw before distributions existed: one u64, widening multiply by 2j + 1.
        let old = |j: u64, rng: &mut CountingRng| {
            (((u128::from(rng.next_u64()) * (u128::from(2 * j) + 1)) >> 64) as i128) - i128::from(j)
        };
        let (mut ours, mut theirs) = (CountingRng::seeded(9), CountingRng::seeded(9));
        let mut state = JitterState::default();
        for i in 0..10_000u64 {
            let j = 1 + i * 7919 % (50 * MS);
            let m = JitterModel::UNIFORM;
            assert_eq!(offset(j, &m, &mut state, &mut ours), old(j, &mut theirs));
        }
        assert_eq!(ours.draws, theirs.draws);
    }

    #[test]
    fn zero_jitter_draws_nothing_whatever_the_model() {
        let mut rng = CountingRng::seeded(1);
        let mut state = JitterState::default();
        for (_, dist) in JitterDist::NAMES {
            assert_eq!(offset(0, &model(dist, 0.5), &mut state, &mut rng), 0);
        }
        assert_eq!(rng.draws, 0);
        assert_eq!(state, JitterState::default());
    }

    #[test]
    fn quantiles_match_netem_tables_and_known_values() {
        // Φ⁻¹ at textbook points, to 10⁻⁸.
        for (p, x) in [
            (0.5, 0.0),
            (0.975, 1.959_963_985),
            (0.01, -2.326_347_874),
            (0.999, 3.090_232_306),
            (0.841_344_746_1, 1.0),
        ] {
            let got = quantile(JitterDist::Normal, p);
            assert!((got - x).abs() < 1e-8, "Φ⁻¹({p}) = {got}, not {x}");
        }
        // netem's pareto table starts at (1 - 1.5)·(4/3)·8192 = -5461 and ends clipped.
        let first = quantile(JitterDist::Pareto, 0.0) * 8192.0;
        assert!((first + 5461.33).abs() < 0.01, "{first}");
        assert_eq!(quantile(JitterDist::Pareto, 0.9999), TABLE_LIMIT);
        // paretonormal is the 1:3 mix at the same p.
        let p = 0.3;
        let mix = (quantile(JitterDist::Normal, p) + 3.0 * quantile(JitterDist::Pareto, p)) / 4.0;
        assert_eq!(quantile(JitterDist::ParetoNormal, p), mix);
        // Every quantile function rises and stays within the tables' range.
        for (_, dist) in JitterDist::NAMES {
            let xs: Vec<f64> = (1..1000)
                .map(|i| quantile(dist, i as f64 / 1000.0))
                .collect();
            assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{dist:?} not monotone");
            assert!(xs.iter().all(|x| x.abs() <= TABLE_LIMIT), "{dist:?}");
        }
    }

    #[test]
    fn every_distribution_has_its_mean_and_standard_deviation() {
        // Tolerances are five standard errors of the estimate, from the distribution's own
        // moments: SE(mean) = σ/√n, and SE(σ̂) ≈ √((μ₄ - σ⁴) / (4nσ²)) (delta method). A
        // correct sampler fails this about once in two million runs; a wrong scale (σ off
        // by 2 %) or offset (0.02 j) does not pass.
        let n = N as f64;
        for (seed, (name, dist)) in JitterDist::NAMES.into_iter().enumerate() {
            let (mean, var, m4) = exact(dist);
            let sd = var.sqrt();
            let xs = sample(dist, 0.0, seed as u64, N);
            let (got_mean, got_var, _) = moments(&xs);
            let got_sd = got_var.sqrt();
            let mean_tol = 5.0 * sd / n.sqrt();
            let sd_tol = 5.0 * ((m4 - var * var) / (4.0 * n * var)).sqrt();
            assert!(
                (got_mean - mean).abs() < mean_tol,
                "{name}: mean {got_mean}, expected {mean} ± {mean_tol}"
            );
            assert!(
                (got_sd - sd).abs() < sd_tol,
                "{name}: sd {got_sd}, expected {sd} ± {sd_tol}"
            );
            // The exact moments are the ones netem's docs promise (clip aside).
            let (want_mean, want_sd) = match dist {
                JitterDist::Uniform => (0.0, 1.0 / 3f64.sqrt()),
                JitterDist::Normal => (0.0, 1.0),
                // Clipped at 4.5: E = 1.5 - 1/(2c²), E[X²] = 3 - 2/c for X ~ Pareto(1, 3).
                JitterDist::Pareto => {
                    let c = 1.5 + 0.75 * TABLE_LIMIT;
                    let e = 1.5 - 1.0 / (2.0 * c * c);
                    (
                        (e - 1.5) * 4.0 / 3.0,
                        (3.0 - 2.0 / c - e * e).sqrt() * 4.0 / 3.0,
                    )
                }
                JitterDist::ParetoNormal => (mean, sd),
            };
            assert!((mean - want_mean).abs() < 1e-4, "{name}: {mean}");
            assert!((sd - want_sd).abs() < 1e-3, "{name}: {sd}");
        }
    }

    #[test]
    fn uniform_stays_within_plus_minus_j() {
        let xs = sample(JitterDist::Uniform, 0.0, 5, N);
        assert!(xs.iter().all(|x| x.abs() <= 1.0));
        let (lo, hi) = xs
            .iter()
            .fold((0f64, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(lo < -0.999 && hi > 0.999, "{lo}..{hi}");
    }

    #[test]
    fn lag_one_autocorrelation_rises_with_correlation() {
        // For the uniform the underlying recursion u' = (1-ρ)f + ρu is linear, so its lag-1
        // autocorrelation is ρ itself; its standard error is about 1/√n = 0.003, so 0.02 is
        // over six of them. The others map u through a rising function: they rise with ρ.
        let rhos = [0.0, 0.25, 0.5, 0.75, 0.95];
        for (name, dist) in JitterDist::NAMES {
            let r: Vec<f64> = rhos
                .iter()
                .map(|&rho| lag1(&sample(dist, rho, 3, N)))
                .collect();
            assert!(r[0].abs() < 0.02, "{name}: ρ = 0 gives {}", r[0]);
            assert!(r.windows(2).all(|w| w[1] > w[0] + 0.1), "{name}: {r:?}");
            if dist == JitterDist::Uniform {
                for (rho, got) in rhos.iter().zip(&r) {
                    assert!((got - rho).abs() < 0.02, "uniform: ρ = {rho} gives {got}");
                }
            }
        }
    }

    #[test]
    fn correlation_shrinks_the_spread_as_netem_does() {
        // netem's correlation averages draws, so a correlated uniform has the variance of the
        // stationary AR(1) recursion: (1-ρ)/(1+ρ) of the uncorrelated one.
        let rho = 0.5;
        let (_, var0, _) = moments(&sample(JitterDist::Uniform, 0.0, 8, N));
        let (_, var, _) = moments(&sample(JitterDist::Uniform, rho, 8, N));
        let want = (1.0 - rho) / (1.0 + rho);
        assert!((var / var0 - want).abs() < 0.02, "{}", var / var0);
    }
}
