//! What a run prints on stdout: in real mode with stdout not a terminal, a plain status line
//! every 10 s of experiment time among the timeline; at the end of every run the summary
//! (also with `-q`, which silences the rest).

mod common;

use std::process::{Command, Output};

use common::{Scenario, can_run_real_mode_with, read_events};
use p2plab::run::progress::bytes;

/// `[  10.0 s] 2 nodes (0 failed), 1 procs, 8.4 kB moved (6.7 kbit/s), lateness p99 0.00 ms
/// max 0.00 ms`, read back.
#[derive(Debug)]
struct Status {
    t: f64,
    nodes: u64,
    failed: u64,
    procs: u64,
    moved_bytes: f64,
    rate_bits: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// `8.4 kB`, `6.7 kbit/s`, `0.00 ms` as a number in the base unit (B, bit/s, ms).
fn quantity(text: &str) -> Option<f64> {
    let (value, unit) = text.trim().split_once(' ')?;
    let scale = match unit.chars().next()? {
        'k' => 1e3,
        'M' => 1e6,
        'G' => 1e9,
        'T' => 1e12,
        _ => 1.0,
    };
    Some(value.parse::<f64>().ok()? * scale)
}

fn parse_status(line: &str) -> Option<Status> {
    let (t, rest) = line.strip_prefix('[')?.split_once(" s] ")?;
    let parts: Vec<&str> = rest.split(", ").collect();
    let [nodes, procs, moved, lateness] = parts[..] else {
        return None;
    };
    let (nodes, failed) = nodes.split_once(" nodes (")?;
    let (moved, rate) = moved.split_once(" moved (")?;
    let (p99, max) = lateness
        .strip_prefix("lateness p99 ")?
        .split_once(" max ")?;
    Some(Status {
        t: t.trim().parse().ok()?,
        nodes: nodes.parse().ok()?,
        failed: failed.strip_suffix(" failed)")?.parse().ok()?,
        procs: procs.strip_suffix(" procs")?.parse().ok()?,
        moved_bytes: quantity(moved)?,
        rate_bits: quantity(rate.strip_suffix(')')?)?,
        p99_ms: quantity(p99)?,
        max_ms: quantity(max)?,
    })
}

fn p2plab_script(s: &Scenario, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["script", s.path.to_str().unwrap(), "--seed", "9", "--out"])
        .arg(s.out())
        .args(extra)
        .output()
        .unwrap()
}

fn stdout_lines(o: &Output) -> Vec<String> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The summary's lines that follow `finished at`, checked against the results folder.
fn check_summary(s: &Scenario, lines: &[String], mode: &str) -> Vec<String> {
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("{mode} finished at ")))
        .unwrap_or_else(|| panic!("no summary in {lines:#?}"));
    let summary = lines[start..].to_vec();
    let events = read_events(&s.out().join("events.jsonl")).len();
    assert!(
        summary[0].ends_with(&format!(", {events} events")),
        "{summary:#?}"
    );
    let out = s.out().display().to_string();
    assert!(summary.contains(&format!("results: {out}")), "{summary:#?}");
    assert!(
        summary.contains(&format!("report: p2plab report {out}")),
        "{summary:#?}"
    );
    summary
}

const PINGS: &str = r#"
let n = alloc_ip(2);
shape(n, #{ latency: "5ms" });
spawn(n[1], "ping -i 0.2 -I 10.0.0.2 10.0.0.1");
spawn(n[0], "sh -c 'exit 3'");
sleep("12s");
"#;

#[test]
fn a_piped_real_run_prints_status_lines_and_a_summary() {
    if !can_run_real_mode_with(
        "a_piped_real_run_prints_status_lines_and_a_summary",
        &["ping", "sh"],
    ) {
        return;
    }
    let s = Scenario::new(PINGS);
    let lines = stdout_lines(&p2plab_script(&s, &[]));

    let status: Vec<(usize, Status)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with('['))
        .map(|(i, l)| {
            (
                i,
                parse_status(l).unwrap_or_else(|| panic!("not a status line: {l}")),
            )
        })
        .collect();
    assert_eq!(status.len(), 1, "one status line in 12 s: {lines:#?}");
    let (at, st) = &status[0];
    // The pulse of second 10, or a later one if the lab fell behind; the script ends at 12 s.
    assert!((10.0..12.0).contains(&st.t), "{st:?}");
    assert_eq!((st.nodes, st.failed, st.procs), (2, 0, 1), "{st:?}");
    // 5 pings a second, each 84 bytes there and back: some 8 kB moved at some 6.7 kbit/s.
    assert!((4e3..2e4).contains(&st.moved_bytes), "{st:?}");
    assert!((3e3..2e4).contains(&st.rate_bits), "{st:?}");
    assert!(st.p99_ms >= 0.0 && st.max_ms >= st.p99_ms, "{st:?}");
    // Among the timeline: after the short process's exit, before the end.
    let exit = lines
        .iter()
        .position(|l| l.contains("code=3"))
        .expect("exit line");
    let end = lines
        .iter()
        .position(|l| l.contains(" end "))
        .expect("end line");
    assert!(exit < *at && *at < end, "{lines:#?}");

    let summary = check_summary(&s, &lines, "run");
    assert!(
        summary[0].contains(": 2 nodes (0 failed), "),
        "{summary:#?}"
    );
    assert_eq!(summary[1], "procs: 1 exited 3, 1 killed by SIGTERM");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    let moved: u64 = json["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["recv_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(summary[2], format!("traffic: {} moved", bytes(moved)));
    assert!(
        summary
            .last()
            .is_some_and(|l| l.starts_with("seed 9: --seed 9 ") && l.contains("not the programs")),
        "{summary:#?}"
    );
}

#[test]
fn a_quiet_real_run_prints_only_the_summary() {
    if !can_run_real_mode_with("a_quiet_real_run_prints_only_the_summary", &[]) {
        return;
    }
    let s = Scenario::new("let n = alloc_ip(1);\nsleep(10.5);\n");
    let lines = stdout_lines(&p2plab_script(&s, &["-q"]));
    assert!(lines[0].starts_with("run finished at "), "{lines:#?}");
    check_summary(&s, &lines, "run");
    assert_eq!(lines[1], "procs: none");
    assert!(!lines.iter().any(|l| l.starts_with('[')), "{lines:#?}");
}

#[test]
fn a_dry_run_prints_its_timeline_then_the_summary() {
    let s =
        Scenario::new("let n = alloc_ip(3);\nspawn(n[0], \"x\");\nsleep(25);\nfail_node(n[1]);\n");
    let lines = stdout_lines(&p2plab_script(&s, &["--dry-run"]));
    assert!(lines[0].contains("start"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.starts_with('[')), "{lines:#?}");
    let summary = check_summary(&s, &lines, "dry-run");
    assert_eq!(
        summary[0],
        format!(
            "dry-run finished at 25.000 s: 3 nodes (1 failed), {} events",
            read_events(&s.out().join("events.jsonl")).len()
        )
    );
    assert_eq!(summary[1], "procs: 1 killed by SIGTERM");
    assert_eq!(summary.last().unwrap(), "seed 9: replay with --seed 9");

    let quiet = stdout_lines(&p2plab_script(&s, &["--dry-run", "-q"]));
    assert_eq!(quiet, summary, "-q prints the summary alone");
}
