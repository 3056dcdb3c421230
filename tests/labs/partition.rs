//! Lab partition (book/src/lab-partition.md): `scripts/labs/partition.rhai` at its reduced
//! size (5 s, a 10 s partition, 8 s after the heal), in both modes. What the chapter tells
//! students to see: with last-writer-wins the west keeps reading, stale, while the west
//! replica falls one write behind per second (`loss: 1.0` lets nothing through, not even
//! anti-entropy), and it catches up within one sync period of the heal; with a quorum the
//! east keeps writing, the west cannot read during the partition, and reads again after.

use std::path::Path;

use p2plab::run::{self, RunConfig};
use serde_json::Value;

use crate::common::{can_run_real_mode_with, metric_samples, of, read_events};

const BEFORE: f64 = 5.0;
const SPLIT: f64 = 10.0;

fn run_lab(out: &Path, mode: &str) -> Vec<Value> {
    let mut cfg = RunConfig::new("scripts/labs/partition.rhai");
    cfg.out = Some(out.to_path_buf());
    cfg.seed = Some(1);
    for (k, v) in [
        ("before", "5"),
        ("split", "10"),
        ("after", "8"),
        ("mode", mode),
    ] {
        cfg.params.insert(k.into(), v.into());
    }
    if let Err(e) = run::real(cfg) {
        panic!("partition lab ({mode}) failed: {e}");
    }
    read_events(&out.join("events.jsonl"))
}

/// The values of `name` sampled between `from` and `to` (experiment seconds).
fn between(events: &[Value], name: &str, from: f64, to: f64) -> Vec<f64> {
    metric_samples(events, name)
        .into_iter()
        .filter(|(t, _)| *t > from && *t < to)
        .map(|s| s.1)
        .collect()
}

/// The times of the two `link_groups` changes after the first one: partition and heal.
fn partition_and_heal(events: &[Value]) -> (f64, f64) {
    let links = of(events, "link_groups");
    assert_eq!(links.len(), 3, "set-up, partition, heal: {links:?}");
    assert_eq!(links[1]["loss"], 1.0, "the partition drops everything");
    assert_eq!(links[2]["loss"], 0.0, "the heal sets the loss back to 0");
    let t = |e: &Value| e["t"].as_f64().unwrap();
    (t(links[1]), t(links[2]))
}

#[test]
fn partition_lab_lww_diverges_stays_available_and_converges_after_the_heal() {
    let _one = crate::one_lab_at_a_time();
    let test = "partition_lab_lww_diverges_stays_available_and_converges_after_the_heal";
    if !can_run_real_mode_with(test, &["python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = run_lab(dir.path(), "lww");
    let (cut, heal) = partition_and_heal(&events);
    assert!((cut - BEFORE).abs() < 1.0 && (heal - BEFORE - SPLIT).abs() < 1.0);

    // Always available: every write in the east and every read in the west succeed.
    for name in ["east_write_ok", "west_read_ok"] {
        let ok = metric_samples(&events, name);
        assert!(ok.len() >= 10, "{name}: {ok:?}");
        assert!(ok.iter().all(|s| s.1 == 1.0), "{name}: {ok:?}");
    }
    // Before: at most a write or two behind (anti-entropy once a second).
    let quiet = between(&events, "behind", 1.5, cut);
    assert!(quiet.iter().all(|&b| b <= 2.0), "before {quiet:?}");
    // During: nothing crosses, so the west replica falls behind by about one write a second,
    // never catching up (one sync getting through would reset it). One sample may miss a
    // replica's answer on a busy machine.
    let split = between(&events, "behind", cut + 1.5, heal);
    assert!(split.len() >= 5, "samples during the partition: {split:?}");
    let drops = split.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(drops <= 1, "during {split:?}");
    let last = *split.last().unwrap();
    assert!(
        (0.5 * SPLIT..=SPLIT + 2.0).contains(&last),
        "after {SPLIT} s of writes once a second the west replica should miss about {SPLIT}: {split:?}"
    );
    // After: converged within a sync period (1 s) and the RTT; allow a busy machine 3 s.
    let converge = metric_samples(&events, "converge_s");
    assert_eq!(converge.len(), 1, "{converge:?}");
    assert!(converge[0].1 <= 3.0, "converged in {} s", converge[0].1);
    let healed = between(&events, "behind", heal + 3.0, f64::MAX);
    assert!(
        !healed.is_empty() && healed.iter().all(|&b| b <= 2.0),
        "after {healed:?}"
    );
}

#[test]
fn partition_lab_quorum_refuses_the_minority_and_serves_it_again_after_the_heal() {
    let _one = crate::one_lab_at_a_time();
    let test = "partition_lab_quorum_refuses_the_minority_and_serves_it_again_after_the_heal";
    if !can_run_real_mode_with(test, &["python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = run_lab(dir.path(), "quorum");
    let (cut, heal) = partition_and_heal(&events);

    // The majority (east) keeps writing throughout.
    let writes = metric_samples(&events, "east_write_ok");
    assert!(writes.len() >= 8, "{writes:?}");
    assert!(writes.iter().all(|s| s.1 == 1.0), "east writes {writes:?}");
    // The minority (west) reads before, cannot during, reads again after.
    let reads = |from, to| between(&events, "west_read_ok", from, to);
    let before = reads(0.0, cut);
    assert!(
        !before.is_empty() && before.iter().all(|&ok| ok == 1.0),
        "before {before:?}"
    );
    let during = reads(cut + 1.5, heal - 0.5);
    assert!(
        during.len() >= 3 && during.iter().all(|&ok| ok == 0.0),
        "during {during:?}"
    );
    let after = reads(heal + 2.0, f64::MAX);
    assert!(
        !after.is_empty() && after.iter().all(|&ok| ok == 1.0),
        "after {after:?}"
    );
    // Writes reach every replica at once while they can talk: 0 behind before and after.
    let quiet = between(&events, "behind", 1.5, cut);
    assert!(quiet.iter().all(|&b| b <= 1.0), "before {quiet:?}");
    let healed = between(&events, "behind", heal + 3.0, f64::MAX);
    assert!(healed.iter().all(|&b| b <= 1.0), "after {healed:?}");
    let converge = metric_samples(&events, "converge_s");
    assert!(
        converge.len() == 1 && converge[0].1 <= 3.0,
        "converge {converge:?}"
    );
}
