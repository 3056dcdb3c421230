//! Which vertex each of `n` nodes goes to, as counts per vertex: all on one vertex, in
//! proportion to a weight (largest-remainder apportionment: deterministic, every vertex gets
//! its quota rounded down or up, and the counts add up to `n`), or uniformly at random from
//! the generator the caller passes (the run's, seeded by `--seed`).

use rand::{Rng, RngExt};

use super::TopologyError;

/// How many nodes each vertex gets, by vertex index; vertices that get none are left out.
pub type Counts = Vec<(u32, usize)>;

/// All `n` nodes on vertex `v`.
pub fn on_vertex(n: usize, v: u32) -> Counts {
    vec![(v, n)]
}

/// `n` nodes in proportion to `weights` (vertex index and weight). Each vertex gets the floor
/// of its quota `n · w / Σw`; the nodes left go one each to the largest remainders (ties:
/// the vertex listed first).
/// `name` names a vertex in errors.
pub fn by_weight(
    n: usize,
    weights: &[(u32, f64)],
    name: impl Fn(u32) -> String,
) -> Result<Counts, TopologyError> {
    if let Some((v, w)) = weights.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0)) {
        return Err(TopologyError::Invalid(format!(
            "vertex {:?} has the weight {w}: weights are numbers of 0 or more",
            name(*v)
        )));
    }
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Err(TopologyError::Invalid(
            "no vertex has a weight above 0".into(),
        ));
    }
    let quotas: Vec<f64> = weights.iter().map(|(_, w)| n as f64 * w / total).collect();
    let mut counts: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let given: usize = counts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable: equal remainders keep the vertices' order.
    order.sort_by(|&i, &j| {
        (quotas[j] - quotas[j].floor()).total_cmp(&(quotas[i] - quotas[i].floor()))
    });
    for &i in order.iter().take(n.saturating_sub(given)) {
        counts[i] += 1;
    }
    Ok(weights
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|((v, _), c)| (*v, c))
        .collect())
}

/// `n` nodes each on a vertex drawn uniformly among `vertices`.
pub fn at_random(n: usize, vertices: u32, rng: &mut impl Rng) -> Result<Counts, TopologyError> {
    if vertices == 0 {
        return Err(TopologyError::Invalid("the graph has no vertex".into()));
    }
    let mut counts = vec![0usize; vertices as usize];
    for _ in 0..n {
        counts[rng.random_range(0..vertices) as usize] += 1;
    }
    Ok(counts
        .into_iter()
        .enumerate()
        .filter(|(_, c)| *c > 0)
        .map(|(v, c)| (v as u32, c))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn name(v: u32) -> String {
        format!("v{v}")
    }

    #[test]
    fn largest_remainders() {
        // Quotas 10 · (5, 3, 2) / 10 = 5, 3, 2 exactly.
        assert_eq!(
            by_weight(10, &[(0, 5.0), (1, 3.0), (2, 2.0)], name).unwrap(),
            vec![(0, 5), (1, 3), (2, 2)]
        );
        // Quotas 7 · (1, 1, 1) / 3 = 2.33 each: one more to the first.
        assert_eq!(
            by_weight(7, &[(4, 1.0), (5, 1.0), (6, 1.0)], name).unwrap(),
            vec![(4, 3), (5, 2), (6, 2)]
        );
        // Quotas 10 · (0.6, 0.25, 0.15) = 6, 2.5, 1.5: remainders tie, the first listed wins.
        assert_eq!(
            by_weight(10, &[(0, 60.0), (1, 25.0), (2, 15.0)], name).unwrap(),
            vec![(0, 6), (1, 3), (2, 1)]
        );
        // Quotas 3 · (0.7, 0.2, 0.1) = 2.1, 0.6, 0.3: the 0.6 gets the last node.
        assert_eq!(
            by_weight(3, &[(0, 7.0), (1, 2.0), (2, 1.0)], name).unwrap(),
            vec![(0, 2), (1, 1)]
        );
        assert_eq!(
            by_weight(4, &[(0, 0.0), (1, 2.0)], name).unwrap(),
            vec![(1, 4)]
        );
    }

    #[test]
    fn weights_must_be_sane() {
        assert!(by_weight(3, &[(0, 0.0)], name).is_err());
        assert!(by_weight(3, &[], name).is_err());
        assert_eq!(
            by_weight(3, &[(0, 1.0), (2, -1.0)], name)
                .unwrap_err()
                .to_string(),
            "vertex \"v2\" has the weight -1: weights are numbers of 0 or more"
        );
        assert!(by_weight(3, &[(0, f64::NAN)], name).is_err());
    }

    #[test]
    fn random_placement_is_seeded_and_adds_up() {
        let draw = |seed| at_random(1000, 7, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        assert_eq!(a.iter().map(|(_, c)| c).sum::<usize>(), 1000);
        assert_eq!(a.len(), 7);
        // Uniform: each of 7 vertices gets 1000/7 ≈ 143 ± a few standard deviations (≈ 11).
        assert!(a.iter().all(|(_, c)| (100..190).contains(c)), "{a:?}");
        assert!(at_random(3, 0, &mut ChaCha8Rng::seed_from_u64(1)).is_err());
        assert_eq!(on_vertex(5, 2), vec![(2, 5)]);
    }
}
