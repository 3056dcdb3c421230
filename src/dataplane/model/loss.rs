//! Loss decisions: independent Bernoulli draws from the passed RNG, one per lossy hop
//! (`loss(a)`, `loss(b)`, the group pair's loss). Which hops apply is the fabric's business.

use rand::Rng;

/// 2⁶⁴ as a float: scales a probability to a threshold on a uniform `u64`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

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
    // `as` saturates, and 0 < p < 1 keeps the product below 2⁶⁴ anyway.
    let threshold = (p * TWO_POW_64) as u64;
    rng.next_u64() < threshold
}

/// Whether a packet is lost on a path whose hops have loss probabilities `hops`, each applied
/// once. Draws in order and stops at the first loss (later draws could not change the result).
pub fn lost<R: Rng + ?Sized>(hops: [f64; 3], rng: &mut R) -> bool {
    hops.into_iter().any(|p| draw(p, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::model::tests::CountingRng;

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
        let hits = (0..n).filter(|_| lost([0.1, 0.2, 0.05], &mut rng)).count();
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
            assert!(!lost([0.0, 0.0, 0.0], &mut rng));
            assert!(lost([0.0, 1.0, 0.0], &mut rng));
        }
        assert_eq!(rng.draws, 0);
        // The tiniest positive probability still draws (and essentially never hits).
        assert!(!draw(f64::MIN_POSITIVE, &mut rng));
        assert_eq!(rng.draws, 1);
    }
}
