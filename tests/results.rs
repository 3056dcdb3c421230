//! The results folder as a run writes it: `traffic.csv` and `events.jsonl` survive a SIGKILL
//! with at most the last second lost, every line whole; `traffic.csv` sums to the per-node
//! totals of `summary.json`, which says how the run was made; a dry-run's `traffic.csv` is its
//! header. The real runs need root.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Scenario, can_run_real_mode_with, namespaces_of, read_events, real_run, wait_until};
use p2plab::results::traffic::HEADER;

/// One row of `traffic.csv`: `t` as written, the ip, and the six counts.
struct Row {
    t: String,
    ip: String,
    counts: [u64; 6],
}

/// Parses every line of `traffic.csv`; panics on one that is not a whole row.
fn read_traffic(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).expect("traffic.csv");
    assert!(text.ends_with('\n'), "the last line is cut: {text:?}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 8, "not a whole row: {line:?}");
            let t: f64 = f[0].parse().unwrap_or_else(|_| panic!("t in {line:?}"));
            assert!(t > 0.0, "{line:?}");
            let counts: Vec<u64> = f[2..].iter().map(|v| v.parse().unwrap()).collect();
            assert!(counts.iter().any(|&c| c > 0), "an all-zero row: {line:?}");
            Row {
                t: f[0].to_string(),
                ip: f[1].to_string(),
                counts: counts.try_into().unwrap(),
            }
        })
        .collect()
}

fn seconds(rows: &[Row], ip: &str) -> Vec<String> {
    rows.iter()
        .filter(|r| r.ip == ip)
        .map(|r| r.t.clone())
        .collect()
}

/// Two nodes pinging each other five times a second, logging every half second.
const PINGS: &str = r#"
let n = alloc_ip(2);
shape(n, #{ latency: "5ms" });
spawn(n[1], "ping -i 0.2 -I 10.0.0.2 10.0.0.1");
every(0.5, || log("tick"));
sleep(120);
"#;

#[test]
fn a_killed_run_keeps_all_but_the_last_second() {
    if !can_run_real_mode_with("a_killed_run_keeps_all_but_the_last_second", &["ping"]) {
        return;
    }
    let s = Scenario::new(PINGS);
    let out = s.out();
    let mut run = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["script", s.path.to_str().unwrap(), "--out"])
        .arg(&out)
        .arg("-q")
        .spawn()
        .unwrap();
    let owner = run.id();
    let traffic = out.join("traffic.csv");
    wait_until("the row of second 4", Duration::from_secs(30), || {
        std::fs::read_to_string(&traffic).is_ok_and(|t| t.lines().any(|l| l.starts_with("4,")))
    });
    run.kill().unwrap(); // SIGKILL: nothing is flushed on the way out
    run.wait().unwrap();

    let rows = read_traffic(&traffic);
    for ip in ["10.0.0.1", "10.0.0.2"] {
        let ts = seconds(&rows, ip);
        for t in ["1", "2", "3", "4"] {
            assert!(
                ts.iter().any(|x| x == t),
                "{ip} has no row for t={t}: {ts:?}"
            );
        }
    }
    // dataplane.csv: whole lines, and worker 0's health for each second up to the fourth.
    let health = std::fs::read_to_string(out.join("dataplane.csv")).unwrap();
    assert!(health.ends_with('\n'), "the last line is cut: {health:?}");
    let mut lines = health.lines();
    assert_eq!(lines.next(), Some(p2plab::results::health::HEADER));
    let ts: Vec<&str> = lines
        .map(|l| {
            assert_eq!(l.split(',').count(), 9, "{l}");
            assert!(
                l.split(',').skip(1).all(|v| v.parse::<u64>().is_ok()),
                "{l}"
            );
            l.split(',').next().unwrap()
        })
        .collect();
    for t in ["1", "2", "3", "4"] {
        assert!(
            ts.contains(&t),
            "dataplane.csv has no row for t={t}: {ts:?}"
        );
    }
    let text = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "the last event is cut");
    let events = read_events(&out.join("events.jsonl"));
    let ticks: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| e["t"].as_f64().unwrap())
        .collect();
    // Second 4 was on disk when the kill came, so every tick up to 3.5 s must be too.
    assert!(ticks.len() >= 7, "ticks before the kill: {ticks:?}");
    assert!(ticks[6] >= 3.5, "{ticks:?}");
    assert!(!events.iter().any(|e| e["event"] == "end"));

    assert_eq!(
        namespaces_of(owner).len(),
        1,
        "a SIGKILLed run leaves its lab"
    );
    let cleanup = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("cleanup")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cleanup.stderr);
    assert_eq!(cleanup.status.code(), Some(0), "{stderr}");
    assert!(
        namespaces_of(owner).is_empty(),
        "cleanup left the lab: {stderr}"
    );
}

#[test]
fn traffic_csv_sums_to_the_summary() {
    if !can_run_real_mode_with("traffic_csv_sums_to_the_summary", &["ping", "iperf3"]) {
        return;
    }
    // A rate limit with a short queue (queue drops), a lossy node (loss drops), TCP and ICMP;
    // the run ends 3.6 s in, inside a second.
    let s = Scenario::new(
        r#"
let n = alloc_ip(2);
shape(n[0], #{ up: "2mbit", down: "2mbit", queue: 6000, latency: "5ms" });
shape(n[1], #{ loss: 0.05 });
spawn(n[0], "iperf3 -s -1");
sleep(0.3);
spawn(n[1], "iperf3 -c 10.0.0.1 -t 2");
spawn(n[1], "ping -i 0.1 -I 10.0.0.2 10.0.0.1");
sleep(3.3);
"#,
    );
    let outcome = real_run(&s);
    let out = s.out();
    let rows = read_traffic(&out.join("traffic.csv"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();

    // Rows in order of t, nodes in allocation order within one t.
    let t: Vec<f64> = rows.iter().map(|r| r.t.parse().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
    for pair in rows.windows(2) {
        if pair[0].t == pair[1].t {
            assert!(pair[0].ip == "10.0.0.1" && pair[1].ip == "10.0.0.2");
        }
    }
    // Whole seconds, then the last interval with three decimals.
    let last = &rows.last().unwrap().t;
    let (whole, frac) = last.split_once('.').expect("the last row is partial");
    assert_eq!(frac.len(), 3, "{last}");
    assert_eq!(whole, "3", "{last}");
    assert!(
        rows.iter()
            .filter(|r| &r.t != last)
            .all(|r| !r.t.contains('.'))
    );
    assert!((t.last().unwrap() - p2plab::units::secs(outcome.report.end_time)).abs() < 0.5);

    let mut sums: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    for r in &rows {
        let sum = sums.entry(r.ip.clone()).or_default();
        for (s, c) in sum.iter_mut().zip(r.counts) {
            *s += c;
        }
    }
    let columns = &HEADER.split(',').collect::<Vec<_>>()[2..];
    let totals = summary["traffic"].as_array().unwrap();
    assert_eq!(totals.len(), 2, "{summary}");
    for node in totals {
        let ip = node["ip"].as_str().unwrap();
        let expected: Vec<u64> = columns.iter().map(|c| node[c].as_u64().unwrap()).collect();
        assert_eq!(sums[ip].to_vec(), expected, "{ip}: columns {columns:?}");
    }
    let a = sums["10.0.0.1"];
    let b = sums["10.0.0.2"];
    assert!(
        a[0] > 100_000 || b[0] > 100_000,
        "iperf3 moved little: {a:?} {b:?}"
    );
    assert!(a[4] + b[4] > 0, "no queue drop: {a:?} {b:?}");
    assert!(a[5] + b[5] > 0, "no loss drop: {a:?} {b:?}");
}

#[test]
fn a_dry_run_writes_the_header_only() {
    let s = Scenario::new(
        "let n = alloc_ip(2);\nspawn(n[0], \"ping -i 0.2 10.0.0.2\");\nsleep(5.5);\n",
    );
    // A real run's rows left in a reused folder must not survive.
    std::fs::create_dir_all(s.out()).unwrap();
    std::fs::write(s.out().join("traffic.csv"), "stale\n").unwrap();
    s.run_ok();
    let text = std::fs::read_to_string(s.out().join("traffic.csv")).unwrap();
    assert_eq!(text, format!("{HEADER}\n"));
    let text = std::fs::read_to_string(s.out().join("dataplane.csv")).unwrap();
    assert_eq!(text, format!("{}\n", p2plab::results::health::HEADER));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["conformance"]["verdict"], "not measured");
}

#[test]
fn the_summary_says_how_the_run_was_made() {
    if !can_run_real_mode_with("the_summary_says_how_the_run_was_made", &[]) {
        return;
    }
    let s = Scenario::new("let n = alloc_ip(1);\nsleep(1.2);\n");
    let out = s.out();
    let run = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["script", s.path.to_str().unwrap(), "--seed", "7"])
        .args(["--set", "peers=3", "-q", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let text = std::fs::read(&s.path).unwrap();
    use sha2::Digest;
    assert_eq!(
        summary["script_sha256"],
        hex::encode(sha2::Sha256::digest(&text))
    );
    let args: Vec<&str> = summary["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[1..3], ["script", s.path.to_str().unwrap()]);
    assert!(args.contains(&"peers=3"), "{args:?}");
    assert_eq!(summary["version"], env!("CARGO_PKG_VERSION"));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(summary["kernel"], kernel.trim());
    assert_eq!(summary["params"]["peers"], "3");
    assert_eq!(summary["seed"], 7);
    // ISO 8601 in UTC, milliseconds; the run lasted 1.2 s, so the two differ.
    let started = summary["started"].as_str().unwrap();
    let ended = summary["ended"].as_str().unwrap();
    for stamp in [started, ended] {
        assert_eq!(stamp.len(), "2026-11-25T19:56:06.250Z".len(), "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{stamp}"
        );
    }
    assert!(started < ended, "{started} {ended}");
}
