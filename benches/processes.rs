//! Process supervision at scale (needs root): 1000 real processes on 1000 nodes, spawned
//! through the shim and supervisor, against a baseline of the same 1000 spawns done directly
//! with `std::process::Command`. Also reports p2plab's peak memory and checks that every
//! process is gone after the run.
//!
//!     cargo bench --bench processes

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use p2plab::run::{self, RunConfig};

const NODES: usize = 1000;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Children of this process still alive (not zombies).
fn live_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter(|stat| {
            let after = stat.rsplit(')').next().unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields.get(1) == Some(&me.as_str()) && fields.first() != Some(&"Z")
        })
        .count()
}

fn baseline() -> f64 {
    let start = Instant::now();
    let mut children: Vec<_> = (0..NODES)
        .map(|_| {
            Command::new("sleep")
                .arg("30")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("spawn sleep")
        })
        .collect();
    let spawned = start.elapsed().as_secs_f64();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    spawned
}

fn p2plab_run() -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("spawn1000.rhai");
    std::fs::write(
        &script,
        format!(
            "let nodes = alloc_ip({NODES});\nlet t0 = now();\nfor n in nodes {{ spawn(n, \"sleep 30\"); }}\nmetric(\"spawn_seconds\", now() - t0);\nsleep(1);\n"
        ),
    )
    .unwrap();
    let mut cfg = RunConfig::new(&script);
    cfg.out = Some(dir.path().join("out"));
    cfg.seed = Some(1);
    let start = Instant::now();
    run::real(cfg).expect("real run");
    let total = start.elapsed().as_secs_f64();
    let events = std::fs::read_to_string(dir.path().join("out/events.jsonl")).unwrap();
    let spawn_seconds = events
        .lines()
        .find(|l| l.contains("spawn_seconds"))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["value"].as_f64())
        .unwrap();
    (spawn_seconds, total, total - 1.0 - spawn_seconds)
}

fn main() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: the processes benchmark needs root (lab namespace)");
        return;
    }
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut rest = Vec::new();
    for _ in 0..3 {
        base.push(baseline());
        let (spawn, _total, other) = p2plab_run();
        ours.push(spawn);
        rest.push(other);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, base, rest) = (median(ours), median(base), median(rest));
    println!("{NODES} processes on {NODES} nodes, median of 3 (interleaved):");
    println!(
        "  p2plab spawn (shim, namespace, logs)  {:>7.3} s   (target < 2 s)",
        ours
    );
    println!("  std::process::Command baseline       {:>7.3} s", base);
    println!(
        "  ratio                                 {:>7.2} x",
        ours / base
    );
    println!("  lab setup + kill and reap all         {:>7.3} s", rest);
    println!(
        "  peak RSS of the process running p2plab {:>6} MiB",
        peak_rss_kib() / 1024
    );
    let left = live_children();
    println!("  processes left after the runs         {left:>7}");
    if ours >= 2.0 || left > 0 {
        std::process::exit(1);
    }
}
