//! Set-up of a large lab with and without cgroups (needs root): `alloc_ip(N)` and one `sleep`
//! on every node, in real runs with binding "bpf" (a cgroup per node, made at its first
//! spawn, and a map entry) against binding "preload" (the shim, no cgroups), interleaved in
//! one process. Reports the medians of the time to allocate, the time until every program
//! has started, and the end (kill and reap every process, remove the cgroups and the lab);
//! counts the programs started and checks that no process or cgroup is left.
//!
//!     cargo build --release && cargo bench --bench setup
//!     P2PLAB_BENCH_NODES=1000 cargo bench --bench setup    # one size only
//!     P2PLAB_BENCH_RUNS=1 ...                              # runs of each binding

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use p2plab::proto::BindingChoice;
use p2plab::run::{self, RunConfig};

/// Runs of each binding at each size, unless `P2PLAB_BENCH_RUNS` says.
const RUNS: usize = 3;
/// The metric the script reports last: once it is in `events.jsonl`, the end begins.
const LAST: &str = "\"spawn_seconds\"";

/// Children of this process still alive (not zombies).
fn live_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
                .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
                .filter(|stat| {
                    let after = stat.rsplit(')').next().unwrap_or("");
                    let fields: Vec<&str> = after.split_whitespace().collect();
                    fields.get(1) == Some(&me.as_str()) && fields.first() != Some(&"Z")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits until `events` (written through as the run goes) holds the script's last metric,
/// reading only what was appended, and returns when it saw it; `None` if `done` came first.
fn watch_for_last(events: &Path, done: &AtomicBool) -> Option<Instant> {
    let mut seen = Vec::new();
    let mut offset = 0u64;
    while !done.load(Ordering::Relaxed) {
        if let Ok(mut f) = std::fs::File::open(events)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut more = Vec::new();
            if f.read_to_end(&mut more).is_ok() {
                offset += more.len() as u64;
                // Keep a line's worth of the tail: the name may straddle two reads.
                let keep = seen.len().saturating_sub(256);
                seen.drain(..keep);
                seen.extend_from_slice(&more);
                if seen.windows(LAST.len()).any(|w| w == LAST.as_bytes()) {
                    return Some(Instant::now());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// One real run's figures, in seconds, and what it counted.
struct SetUp {
    alloc: f64,
    spawn: f64,
    end: f64,
    binding: String,
    started: usize,
    errors: Vec<String>,
}

fn one_run(nodes: usize, binding: BindingChoice) -> SetUp {
    let dir = tempfile::tempdir().expect("temporary folder");
    let script = dir.path().join("setup.rhai");
    std::fs::write(
        &script,
        format!(
            "let t0 = now();\nlet nodes = alloc_ip({nodes});\nlet t1 = now();\n\
             for n in nodes {{ spawn(n, \"sleep 60\"); }}\nlet t2 = now();\n\
             metric(\"alloc_seconds\", t1 - t0);\nmetric(\"spawn_seconds\", t2 - t1);\n"
        ),
    )
    .expect("write the script");
    let out = dir.path().join("out");
    let mut cfg = RunConfig::new(&script);
    cfg.out = Some(out.clone());
    cfg.seed = Some(1);
    cfg.max_procs = nodes;
    cfg.binding = binding;
    let events = out.join("events.jsonl");
    let done = AtomicBool::new(false);
    let (result, last, returned) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch_for_last(&events, &done));
        let result = run::real(cfg);
        let returned = Instant::now();
        done.store(true, Ordering::Relaxed);
        (result, watcher.join().ok().flatten(), returned)
    });
    if let Err(e) = result {
        // No lab, so nothing to count (the shim must be built: `cargo build --release`).
        return SetUp {
            alloc: f64::NAN,
            spawn: f64::NAN,
            end: f64::NAN,
            binding: "none".into(),
            started: 0,
            errors: vec![format!("run: {e}")],
        };
    }
    let mut errors = Vec::new();
    let end = match last {
        Some(at) => returned.duration_since(at).as_secs_f64(),
        None => {
            errors.push("the script's last metric never reached events.jsonl".into());
            f64::NAN
        }
    };
    let log = common::read_events(&events);
    let spawns = common::of(&log, "spawn");
    errors.extend(
        spawns
            .iter()
            .filter_map(|e| e["error"].as_str())
            .map(|e| format!("spawn: {e}")),
    );
    let started = spawns.iter().filter(|e| e["error"].is_null()).count();
    let left = live_children();
    if left > 0 {
        errors.push(format!("{left} processes still alive after the run"));
    }
    let cgroups = common::cgroups_of(std::process::id());
    if !cgroups.is_empty() {
        errors.push(format!("cgroups left after the run: {cgroups:?}"));
    }
    let summary: serde_json::Value = std::fs::read_to_string(out.join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    SetUp {
        alloc: common::metric(&log, "alloc_seconds"),
        spawn: common::metric(&log, "spawn_seconds"),
        end,
        binding: summary["binding"].as_str().unwrap_or("none").to_string(),
        started,
        errors,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The medians of one binding's runs: (alloc, spawn, end).
fn medians(runs: &[SetUp]) -> (f64, f64, f64) {
    (
        median(runs.iter().map(|r| r.alloc).collect()),
        median(runs.iter().map(|r| r.spawn).collect()),
        median(runs.iter().map(|r| r.end).collect()),
    )
}

fn main() {
    if !common::can_run_real_mode("the set-up benchmark") {
        return;
    }
    let sizes: Vec<usize> = match std::env::var("P2PLAB_BENCH_NODES") {
        Ok(n) => vec![n.parse().expect("P2PLAB_BENCH_NODES: a number of nodes")],
        Err(_) => vec![1000, 10_000],
    };
    let runs: usize = match std::env::var("P2PLAB_BENCH_RUNS") {
        Ok(n) => n.parse().expect("P2PLAB_BENCH_RUNS: a number of runs"),
        Err(_) => RUNS,
    };
    let mut failed = false;
    for nodes in sizes {
        let mut bpf = Vec::new();
        let mut preload = Vec::new();
        for _ in 0..runs {
            bpf.push(one_run(nodes, BindingChoice::Bpf));
            preload.push(one_run(nodes, BindingChoice::Preload));
        }
        let (b, p) = (medians(&bpf), medians(&preload));
        println!("{nodes} nodes, one `sleep 60` each, median of {runs} (interleaved):");
        println!("                                  bpf (cgroups)   preload   ratio");
        for (what, b, p) in [
            ("alloc_ip", b.0, p.0),
            ("spawn on every node", b.1, p.1),
            ("set-up (alloc + spawn)", b.0 + b.1, p.0 + p.1),
            ("end (kill, reap, remove)", b.2, p.2),
        ] {
            println!("  {what:<28} {b:>9.3} s {p:>9.3} s {:>7.2} x", b / p);
        }
        println!(
            "  per node, set-up              {:>9.1} us {:>7.1} us",
            (b.0 + b.1) / nodes as f64 * 1e6,
            (p.0 + p.1) / nodes as f64 * 1e6
        );
        let count = |runs: &[SetUp]| runs.iter().map(|r| r.started).collect::<Vec<_>>();
        println!(
            "  programs started per run      {:?} {:?}",
            count(&bpf),
            count(&preload)
        );
        let bindings = |runs: &[SetUp]| runs.iter().map(|r| r.binding.clone()).collect::<Vec<_>>();
        println!(
            "  binding in summary.json       {:?} {:?}",
            bindings(&bpf),
            bindings(&preload)
        );
        let errors: Vec<&String> = bpf.iter().chain(&preload).flat_map(|r| &r.errors).collect();
        println!("  errors                        {:>9}", errors.len());
        for e in &errors {
            println!("    {e}");
        }
        let all_started = bpf.iter().chain(&preload).all(|r| r.started == nodes);
        let right_binding = bpf.iter().all(|r| r.binding == "bpf")
            && preload.iter().all(|r| r.binding == "preload");
        failed |= !errors.is_empty() || !all_started || !right_binding;
    }
    if failed {
        std::process::exit(1);
    }
}
