//! Lab seed (book/src/lab-seed.md): `scripts/labs/fairness.rhai` as written, at a reduced
//! size (6 jobs of 3 s: more than 2 of them overlap, so they compete even on an idle 2-core
//! machine), once without limits and once with `cpu: 0.1` per node, a quota low enough to
//! bind even when other work keeps the machine busy. The chapter's observations: with limits
//! no job gets more than its quota and each takes about alone / cpu, whenever it started,
//! and the spread of completion times is smaller than without, where the first job has a
//! core to itself for a second and the later ones share.

use std::path::Path;
use std::time::Instant;

use crate::common::{can_run_real_mode_with, metric, of, read_events};
use p2plab::run::{self, RunConfig};
use serde_json::Value;

const JOBS: usize = 6;
const ALONE: f64 = 3.0;
const CPU: f64 = 0.1;

fn run_lab(dir: &Path, name: &str, cpu: f64) -> Vec<Value> {
    let out = dir.join(name);
    let mut cfg = RunConfig::new("scripts/labs/fairness.rhai");
    cfg.out = Some(out.clone());
    cfg.seed = Some(1);
    cfg.params.insert("jobs".into(), JOBS.to_string());
    cfg.params.insert("alone".into(), ALONE.to_string());
    cfg.params.insert("cpu".into(), cpu.to_string());
    let start = Instant::now();
    if let Err(e) = run::real(cfg) {
        panic!("{name}: the lab's run failed: {e}");
    }
    let events = read_events(&out.join("events.jsonl"));
    eprintln!(
        "{name}: {:.0} s wall, job times {:.1?}, spread {:.2}",
        start.elapsed().as_secs_f64(),
        job_times(&events),
        metric(&events, "spread")
    );
    events
}

/// Each job's completion time, in the order the jobs started (from the `log` lines
/// `job J took T s`, which carry the job's number).
fn job_times(events: &[Value]) -> Vec<f64> {
    let mut times = vec![f64::NAN; JOBS];
    for e in of(events, "log") {
        let msg = e["msg"].as_str().unwrap_or_default();
        let mut words = msg.split_whitespace();
        if let (Some("job"), Some(j), Some("took"), Some(t)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            times[j.parse::<usize>().unwrap()] = t.parse().unwrap();
        }
    }
    times
}

#[test]
fn cpu_limits_make_completion_times_even() {
    let _one = crate::one_lab_at_a_time();
    let test = "cpu_limits_make_completion_times_even";
    if !can_run_real_mode_with(test, &["python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let free = run_lab(dir.path(), "no-limits", 0.0);
    let limited = run_lab(dir.path(), "cpu-limits", CPU);
    for (name, events) in [("no limits", &free), ("cpu limits", &limited)] {
        let times = job_times(events);
        assert!(
            times.iter().all(|t| t.is_finite()),
            "{name}: a job has no time: {times:?}"
        );
        assert_eq!(
            of(events, "metric")
                .iter()
                .filter(|e| e["name"] == "job_s")
                .count(),
            JOBS,
            "{name}: one job_s per job"
        );
    }

    // With limits: every job is held to CPU of a core, so it takes about ALONE / CPU (30 s)
    // whenever it started; a busy machine makes it longer, and a calibration slowed by it
    // shorter (less work), but never by half.
    let t = job_times(&limited);
    let floor = 0.5 * ALONE / CPU;
    assert!(
        t.iter().all(|&x| x >= floor),
        "cpu limits: every job should take at least {floor:.1} s: {t:.1?}"
    );
    // The quota itself: no limited node got more than CPU of a core over its job's life
    // (its CPU time from summary.json over the job's time; 15 % for the 100 ms periods and
    // the python start-up before the job's first period).
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("cpu-limits/summary.json")).unwrap(),
    )
    .unwrap();
    for u in summary["usage"].as_array().unwrap() {
        let ip = u["ip"].as_str().unwrap();
        let Some(j) = ip.rsplit('.').next().and_then(|h| h.parse::<usize>().ok()) else {
            continue;
        };
        if j < 2 {
            continue; // the calibration node
        }
        let share = u["cpu_seconds"].as_f64().unwrap() / t[j - 2];
        assert!(
            share <= 1.15 * CPU,
            "job {} on {ip} got {share:.3} of a core, over its quota {CPU}",
            j - 2
        );
    }
    let (spread_free, spread_limited) = (metric(&free, "spread"), metric(&limited, "spread"));
    assert!(
        spread_limited < spread_free,
        "the spread of completion times with cpu limits ({spread_limited:.2}) should be \
         smaller than without ({spread_free:.2})"
    );
}
