//! Node CPU and memory limits: recorded in `shape` events by a dry-run; in real mode (needs
//! root) the seed's fairness experiment (identical CPU-bound programs started one per second
//! on separate nodes, without limits and with `cpu: 0.25` each), a new limit that reaches a
//! running program at once, a program past its `memory` limit killed with an `exit` event
//! that says so, each node's usage in `summary.json`, and no cgroup of the run left in the
//! v1 hierarchies.

mod common;

use std::process::Command;

use serde_json::Value;

use common::{Scenario, can_run_real_mode_with, of, real_run, v1_cgroups_of};

/// A CPU-bound loop of `n` additions that prints the CPU time it took, in seconds.
fn busy_loop(n: u64) -> String {
    format!("python3 -c 'import time; x = sum(i for i in range({n})); print(time.process_time())'")
}

/// The tests here take turns: each checks what its own run left, and the fairness
/// experiment wants the CPU to itself.
static ONE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Additions that take about `secs` of CPU here (measured on the host, outside any lab,
/// by the CPU time the loop reports).
fn loop_size(secs: f64) -> u64 {
    let n = 10_000_000u64;
    let out = Command::new("sh")
        .args(["-c", &busy_loop(n)])
        .output()
        .expect("python3");
    assert!(out.status.success());
    let cpu: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (n as f64 * secs / cpu) as u64
}

/// Seconds from each spawn to its exit, by node, for the nodes in `ips`.
fn run_times(events: &[Value], ips: &[String]) -> Vec<f64> {
    ips.iter()
        .map(|ip| {
            let at = |kind: &str| {
                of(events, kind)
                    .into_iter()
                    .find(|e| e["ip"] == ip.as_str())
                    .unwrap_or_else(|| panic!("no {kind} event of {ip}"))["t"]
                    .as_f64()
                    .unwrap()
            };
            at("exit") - at("spawn")
        })
        .collect()
}

fn ips(first: u32, n: u32) -> Vec<String> {
    (first..first + n).map(|i| format!("10.0.0.{i}")).collect()
}

#[test]
fn a_dry_run_records_the_limits_in_shape_events() {
    let s = Scenario::new(
        r#"
let n = alloc_ip(2);
shape(n, #{ cpu: 0.25, memory: "256mb" });
shape(n[1], #{ cpu_weight: 50, latency: "5ms" });
"#,
    );
    let events = s.run_ok();
    let shapes: Vec<String> = of(&events, "shape").iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shapes,
        [
            r#"{"t":0.0,"event":"shape","node":0,"ip":"10.0.0.1","cpu":0.25,"memory":268435456}"#,
            r#"{"t":0.0,"event":"shape","node":1,"ip":"10.0.0.2","cpu":0.25,"memory":268435456}"#,
            r#"{"t":0.0,"event":"shape","node":1,"ip":"10.0.0.2","latency":0.005,"cpu_weight":50}"#,
        ]
    );
}

#[test]
fn fairness_with_and_without_cpu_limits() {
    if !can_run_real_mode_with("fairness_with_and_without_cpu_limits", &["python3"]) {
        return;
    }
    let _turn = ONE_RUN.lock().unwrap_or_else(|p| p.into_inner());
    let n = loop_size(3.0);
    let prog = busy_loop(n);
    // Node 1 alone; nodes 2-5 unlimited, one started per second; nodes 6-9 at a quarter of
    // a core each, one per second.
    let s = Scenario::new(&format!(
        r#"
let alone = alloc_ip(1);
spawn(alone[0], "{prog}").wait();
let free = alloc_ip(4);
let limited = alloc_ip(4);
shape(limited, #{{ cpu: 0.25 }});
let runs = [];
for n in free {{ runs.push(spawn(n, "{prog}")); sleep("1s"); }}
for p in runs {{ p.wait(); }}
runs = [];
for n in limited {{ runs.push(spawn(n, "{prog}")); sleep("1s"); }}
for p in runs {{ p.wait(); }}
"#,
    ));
    real_run(&s);
    assert_v1_cgroups_removed();
    let events = s.events();
    for e in of(&events, "exit") {
        assert_eq!(e["code"], 0, "{e}");
    }
    let cpu_alone: f64 = common::node_file(&s, "10.0.0.1", "stdout.log")
        .trim()
        .parse()
        .unwrap();
    let alone = run_times(&events, &ips(1, 1))[0];
    let free = run_times(&events, &ips(2, 4));
    let spread = free.iter().cloned().fold(f64::MIN, f64::max)
        - free.iter().cloned().fold(f64::MAX, f64::min);
    println!(
        "alone: {alone:.2} s ({cpu_alone:.2} s CPU); without limits: {free:.2?} s, spread \
         {spread:.2} s"
    );
    let predicted = cpu_alone / 0.25;
    let limited = run_times(&events, &ips(6, 4));
    let errors: Vec<f64> = limited
        .iter()
        .map(|t| (t - predicted) / predicted * 100.0)
        .collect();
    let used: Vec<f64> = ips(6, 4)
        .iter()
        .map(|ip| {
            common::node_file(&s, ip, "stdout.log")
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    let shares: Vec<f64> = used.iter().zip(&limited).map(|(c, t)| c / t).collect();
    println!(
        "cpu 0.25: predicted {predicted:.2} s, took {limited:.2?} s, errors {errors:.1?} %; \
         CPU used {used:.2?} s, share of a core {shares:.3?}"
    );
    // The kernel holds each node to its share; the CPU the same work needs grows when the
    // machine is busy (other programs share its caches), so the time is predicted from what
    // each program used. The interpreter's start and exit use CPU under the limit too, which
    // the program does not count: the run alone says what fraction of its time it counts.
    let counted = cpu_alone / alone;
    for (share, (t, cpu)) in shares.iter().zip(limited.iter().zip(&used)) {
        assert!(
            (share / (0.25 * counted) - 1.0).abs() <= 0.05,
            "took {t:.2} s for {cpu:.2} s of CPU: {share:.3} of a core, not 0.25 of the \
             {counted:.3} the program counts of its time alone"
        );
    }
}

#[test]
fn a_new_cpu_limit_applies_at_once_to_a_running_program() {
    if !can_run_real_mode_with("a_new_cpu_limit_applies_at_once", &["python3"]) {
        return;
    }
    let _turn = ONE_RUN.lock().unwrap_or_else(|p| p.into_inner());
    let prog = busy_loop(loop_size(2.0));
    let s = Scenario::new(&format!(
        r#"
let n = alloc_ip(1)[0];
shape(n, #{{ cpu: 0.25 }});
let p = spawn(n, "{prog}");
sleep("1s");
shape(n, #{{ cpu: 1.0 }});
p.wait();
"#
    ));
    real_run(&s);
    let events = s.events();
    let took = run_times(&events, &ips(1, 1))[0];
    let cpu: f64 = common::node_file(&s, "10.0.0.1", "stdout.log")
        .trim()
        .parse()
        .unwrap();
    // A quarter of a core all along would take cpu / 0.25; a whole core after the first
    // second takes about 1 s + (cpu - 0.25) s.
    println!("{cpu:.2} s of CPU in {took:.2} s, after one second at a quarter of a core");
    assert!(
        took < 0.6 * cpu / 0.25,
        "{cpu:.2} s of CPU took {took:.2} s"
    );
    assert!(took > cpu + 0.5, "{cpu:.2} s of CPU took {took:.2} s");
}

#[test]
fn a_program_past_its_memory_limit_is_killed_and_its_exit_says_so() {
    if !can_run_real_mode_with("a_program_past_its_memory_limit", &["python3"]) {
        return;
    }
    let _turn = ONE_RUN.lock().unwrap_or_else(|p| p.into_inner());
    let s = Scenario::new(
        r#"
let n = alloc_ip(2);
shape(n[0], #{ memory: "64mb" });
let hog = "python3 -c 'x = bytes(range(256)) * (1024 * 1024); print(len(x))'";
spawn(n[0], hog).wait();
spawn(n[1], hog).wait();
"#,
    );
    real_run(&s);
    let events = s.events();
    let exits = of(&events, "exit");
    assert_eq!(exits.len(), 2, "{exits:?}");
    assert_eq!(exits[0]["signal"], "SIGKILL", "{}", exits[0]);
    assert_eq!(exits[0]["oom"], true, "{}", exits[0]);
    assert_eq!(exits[1]["code"], 0, "{}", exits[1]);
    assert!(exits[1].get("oom").is_none(), "{}", exits[1]);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    let nodes = summary["usage"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let peak = |i: usize| nodes[i]["memory_peak_bytes"].as_u64().unwrap();
    assert!(peak(0) <= 64 << 20, "{nodes:?}");
    assert!(peak(1) >= 256 << 20, "{nodes:?}");
    assert!(nodes[1]["cpu_seconds"].as_f64().unwrap() > 0.0, "{nodes:?}");
    assert_v1_cgroups_removed();
}

/// No cgroup of this process's runs is left in a v1 hierarchy.
fn assert_v1_cgroups_removed() {
    let left = v1_cgroups_of(std::process::id());
    assert!(left.is_empty(), "left behind: {left:?}");
}
