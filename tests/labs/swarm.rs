//! Lab swarm (book/src/lab-swarm.md): `scripts/labs/swarm.rhai` as written, at a reduced size
//! (6 leechers of a 2 MiB file). The chapter's observations: every leecher finishes with an
//! intact file, none sooner than the bounds allow, and a seed with four times the upload
//! capacity brings the median leecher's completion time down clearly when the seed is the
//! bottleneck.

use std::path::Path;
use std::time::Instant;

use crate::common::{can_run_real_mode_with, metric, of, read_events, swarm};
use p2plab::run::{self, RunConfig};
use serde_json::Value;

const PEERS: usize = 6;

/// Runs the lab with `params` on top of the reduced size; returns its events.
fn run_lab(dir: &Path, name: &str, params: &[(&str, &str)]) -> Vec<Value> {
    let out = dir.join(name);
    let mut cfg = RunConfig::new("scripts/labs/swarm.rhai");
    cfg.out = Some(out.clone());
    cfg.seed = Some(1);
    cfg.params.insert("peers".into(), PEERS.to_string());
    cfg.params.insert("size_kb".into(), "2048".into());
    cfg.params.insert("give_up".into(), "240".into());
    for (k, v) in params {
        cfg.params.insert(k.to_string(), v.to_string());
    }
    let start = Instant::now();
    if let Err(e) = run::real(cfg) {
        panic!("{name}: the lab's run failed: {e}");
    }
    let events = read_events(&out.join("events.jsonl"));
    let times = completions(&events);
    eprintln!(
        "{name}: {:.0} s wall, completion times {times:.1?}, median {:.1} s (transfer {:.1} s), \
         bound {:.1} s",
        start.elapsed().as_secs_f64(),
        metric(&events, "median_s"),
        metric(&events, "median_transfer_s"),
        metric(&events, "bound_s"),
    );
    events
}

fn completions(events: &[Value]) -> Vec<f64> {
    of(events, "metric")
        .into_iter()
        .filter(|e| e["name"] == "completion_s")
        .map(|e| e["value"].as_f64().unwrap())
        .collect()
}

/// Every leecher finished with an intact file, one completion time each, none of them
/// sooner than the largest bound (less the 0.25 s the script's polling may add or miss,
/// and a margin for the links' burst at start).
fn check_complete(name: &str, events: &[Value]) {
    assert_eq!(
        metric(events, "peers_done"),
        PEERS as f64,
        "{name}: not every leecher finished"
    );
    assert_eq!(
        metric(events, "peers_intact"),
        PEERS as f64,
        "{name}: a corrupt file"
    );
    let times = completions(events);
    assert_eq!(times.len(), PEERS, "{name}: one completion_s per leecher");
    let bound = metric(events, "bound_s");
    let first = times.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        first >= 0.9 * bound,
        "{name}: a leecher finished in {first:.1} s, under the bound {bound:.1} s"
    );
}

#[test]
fn a_faster_seed_finishes_the_median_leecher_sooner() {
    let _one = crate::one_lab_at_a_time();
    let test = "a_faster_seed_finishes_the_median_leecher_sooner";
    let mut programs = swarm::PROGRAMS.to_vec();
    programs.push("timeout");
    if !can_run_real_mode_with(test, &programs) {
        return;
    }
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = tempfile::tempdir_in(base).unwrap();
    // opentracker reads its whitelist as user nobody.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // The chapter's baseline and its 4x faster seed: 2 MiB at 512 kbit/s is 32.8 s of the
    // seed's upload (the largest bound), at 2 Mbit/s 8.4 s (the swarm's 12.6 s is then).
    let slow = run_lab(dir.path(), "slow-seed", &[("seed_up", "512kbit")]);
    let fast = run_lab(dir.path(), "fast-seed", &[("seed_up", "2mbit")]);
    check_complete("slow seed", &slow);
    check_complete("fast seed", &fast);
    let (slow_median, fast_median) = (metric(&slow, "median_s"), metric(&fast, "median_s"));
    assert!(
        fast_median < slow_median,
        "the 4x faster seed gave a median of {fast_median:.1} s, the slow one {slow_median:.1} s"
    );
    // The chapter: the slow seed's median is the seed's bound and some more; the fast one's
    // well under it.
    let slow_bound = metric(&slow, "bound_seed_s");
    // Measured here: 0.73 and 0.63 of the slow median in two runs (0.61 with seeds of
    // 256 kbit/s and 1 Mbit/s):
    // ctorrent's own start-up, 15 to 35 s whatever the links, is a large part of a 2 MiB
    // download.
    assert!(
        fast_median < 0.85 * slow_median,
        "the 4x faster seed should help clearly: medians {fast_median:.1} s against \
         {slow_median:.1} s (the slow seed's bound {slow_bound:.1} s)"
    );
}
