//! Report speed: `p2plab report` on the folder of a 1000-node, one-hour run, written here
//! (every node moves data every second: 3.6 million `traffic.csv` rows; 4 workers'
//! `dataplane.csv`; 1000 nodes of churn in `events.jsonl`; a verdict of 1000 nodes). Prints
//! the files' sizes and the median time of a few reports; the target is a few seconds.
//!
//!     cargo bench --bench report

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const NODES: usize = 1000;
const SECONDS: usize = 3600;
const WORKERS: usize = 4;
const RUNS: usize = 3;
const TARGET: Duration = Duration::from_secs(5);

/// A small deterministic generator: the folder is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn ip(i: usize) -> String {
    format!("10.0.{}.{}", (i + 1) / 256, (i + 1) % 256)
}

fn write_folder(dir: &Path) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut events = BufWriter::new(std::fs::File::create(dir.join("events.jsonl")).unwrap());
    writeln!(
        events,
        r#"{{"t":0.0,"event":"start","script":"big.rhai","seed":1,"params":{{}}}}"#
    )
    .unwrap();
    for i in 0..NODES {
        writeln!(
            events,
            r#"{{"t":0.0,"event":"alloc_ip","node":{i},"ip":"{}","group":"peers","worker":{}}}"#,
            ip(i),
            i % WORKERS
        )
        .unwrap();
        writeln!(
            events,
            r#"{{"t":0.0,"event":"spawn","node":{i},"ip":"{}","pid":{},"cmd":"peer"}}"#,
            ip(i),
            100_000 + i
        )
        .unwrap();
    }
    // 1000 nodes' churn: a failure and a revival every 0.18 s, a metric every 10 s.
    let mut pid = 100_000 + NODES;
    for k in 0..20_000usize {
        let t = k as f64 * 0.18;
        let i = rng.below(NODES as u64) as usize;
        writeln!(
            events,
            r#"{{"t":{t},"event":"fail_node","node":{i},"ip":"{}"}}"#,
            ip(i)
        )
        .unwrap();
        writeln!(
            events,
            r#"{{"t":{},"event":"revive","node":{i},"ip":"{}"}}"#,
            t + 0.09,
            ip(i)
        )
        .unwrap();
        if k % 10 == 0 {
            writeln!(
                events,
                r#"{{"t":{},"event":"spawn","node":{i},"ip":"{}","pid":{pid},"cmd":"peer"}}"#,
                t + 0.09,
                ip(i)
            )
            .unwrap();
            writeln!(
                events,
                r#"{{"t":{},"event":"exit","node":{i},"ip":"{}","pid":{pid},"code":0}}"#,
                t + 0.1,
                ip(i)
            )
            .unwrap();
            pid += 1;
        }
        if k % 55 == 0 {
            writeln!(
                events,
                r#"{{"t":{t},"event":"metric","name":"online","value":{}}}"#,
                NODES - 1
            )
            .unwrap();
        }
    }
    writeln!(
        events,
        r#"{{"t":{SECONDS}.0,"event":"end","outcome":"ok","pending_callbacks":0}}"#
    )
    .unwrap();
    events.flush().unwrap();

    let mut traffic = BufWriter::new(std::fs::File::create(dir.join("traffic.csv")).unwrap());
    writeln!(
        traffic,
        "t,ip,sent_bytes,sent_packets,recv_bytes,recv_packets,dropped_queue,dropped_loss"
    )
    .unwrap();
    let mut dataplane = BufWriter::new(std::fs::File::create(dir.join("dataplane.csv")).unwrap());
    writeln!(
        dataplane,
        "t,worker,timed_packets,late_p50_ns,late_p99_ns,late_max_ns,cpu_ns,overruns,write_errors"
    )
    .unwrap();
    let mut line = String::new();
    for t in 1..=SECONDS {
        for i in 0..NODES {
            line.clear();
            let sent = 1000 + rng.below(125_000);
            let recv = 1000 + rng.below(125_000);
            writeln!(
                line,
                "{t},{},{sent},{},{recv},{},{},0",
                ip(i),
                sent / 1400 + 1,
                recv / 1400 + 1,
                rng.below(3)
            )
            .unwrap();
            traffic.write_all(line.as_bytes()).unwrap();
        }
        for w in 0..WORKERS {
            let p99 = 20_000 + rng.below(200_000);
            writeln!(
                dataplane,
                "{t},{w},{},15000,{p99},{},{},0,0",
                20_000 + rng.below(5000),
                p99 * 2,
                100_000_000 + rng.below(50_000_000)
            )
            .unwrap();
        }
    }
    traffic.flush().unwrap();
    dataplane.flush().unwrap();

    let nodes: Vec<serde_json::Value> = (0..NODES)
        .map(|i| {
            serde_json::json!({"ip": ip(i), "up_bps": 1_000_000, "up_busiest_bps": 1_000_000,
                               "down_bps": 8_000_000, "down_busiest_bps": 1_000_000,
                               "ok": i % 97 != 0})
        })
        .collect();
    let workers: Vec<serde_json::Value> = (0..WORKERS)
        .map(|w| {
            serde_json::json!({"worker": w, "seconds": SECONDS, "worst_late_p99_ns": 220_000,
                               "late_max_ns": 440_000, "late_seconds": 0, "max_cpu_share": 0.15,
                               "overruns": 0, "write_errors": 0})
        })
        .collect();
    let summary = serde_json::json!({
        "script": "big.rhai", "mode": "real", "seed": 1, "params": {},
        "started": "2026-12-01T00:00:00.000Z", "outcome": "ok", "error": null,
        "experiment_seconds": SECONDS, "events": 0,
        "conformance": {"measured": true, "verdict": "flagged",
            "bounds": {"late_p99_ns": 1_000_000, "cpu_share": 0.9, "rate_tolerance": 0.05},
            "problems": ["11 nodes' busiest second above their rate"],
            "workers": workers, "nodes": nodes}
    });
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    write_folder(dir.path());
    println!(
        "wrote a {NODES}-node, {SECONDS}-s results folder in {:.1} s:",
        start.elapsed().as_secs_f64()
    );
    for name in [
        "events.jsonl",
        "traffic.csv",
        "dataplane.csv",
        "summary.json",
    ] {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        println!("  {name:<14} {:>8.1} MB", size as f64 / 1e6);
    }
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let report = p2plab::report::write(dir.path()).expect("report");
        times.push(start.elapsed());
        assert!(report.skipped.is_empty(), "nothing may be skipped");
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "p2plab report: {:.2} s (median of {RUNS}; target < {} s)",
        median.as_secs_f64(),
        TARGET.as_secs()
    );
    if median >= TARGET {
        eprintln!("report slower than the target");
        std::process::exit(1);
    }
}
