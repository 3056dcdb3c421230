//! Lab swarm (book/src/lab-swarm.md): `scripts/labs/swarm.rhai` as written, at a reduced size
//! (6 leechers of a 2 MiB file). The chapter's observations: every leecher finishes with an
//! intact file, none sooner than the bounds allow, and a seed with eight times the upload
//! capacity gives the first complete copy clearly sooner (at this size the median is mostly
//! ctorrent's own start-up).

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
fn a_faster_seed_gives_the_first_copy_sooner() {
    let _one = crate::one_lab_at_a_time();
    let test = "a_faster_seed_gives_the_first_copy_sooner";
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

    // A slow seed and one 8 times faster: 2 MiB at 256 kbit/s is 65.5 s of the seed's
    // upload before any leecher can hold the whole file, at 2 Mbit/s 8.4 s.
    let slow = run_lab(dir.path(), "slow-seed", &[("seed_up", "256kbit")]);
    let fast = run_lab(dir.path(), "fast-seed", &[("seed_up", "2mbit")]);
    check_complete("slow seed", &slow);
    check_complete("fast seed", &fast);
    // The first copy waits for the seed: it is what a faster seed shortens whatever
    // ctorrent does. The median at this size is mostly ctorrent's own start-up (15 to 35 s
    // whatever the links): a run here gave medians of 73.9 s and 78.2 s for seeds of 2 Mbit/s
    // and 512 kbit/s, though the first copies came at 44.4 s and 72.9 s.
    let first = |events: &[Value]| {
        completions(events)
            .into_iter()
            .fold(f64::INFINITY, f64::min)
    };
    let (slow_first, fast_first) = (first(&slow), first(&fast));
    let slow_bound = metric(&slow, "bound_seed_s");
    assert!(
        slow_first >= 0.9 * slow_bound,
        "no copy before the slow seed has sent one: {slow_first:.1} s, bound {slow_bound:.1} s"
    );
    assert!(
        fast_first < 0.8 * slow_first,
        "the 8x faster seed should give the first copy clearly sooner: {fast_first:.1} s \
         against {slow_first:.1} s"
    );
    let (slow_median, fast_median) = (metric(&slow, "median_s"), metric(&fast, "median_s"));
    println!("medians: slow seed {slow_median:.1} s, fast seed {fast_median:.1} s");
}
