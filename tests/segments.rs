//! TCP super-packets through shaped links (needs root): on a rate-limited, lossy route a
//! super-packet travels as its segments, each with its own place in the FIFOs and its own
//! loss draw, and leaves in runs of segments due together. A transfer through 1 % loss
//! arrives intact (the runs' sequence numbers, lengths and checksums are right), losses cut
//! runs, and a 1 Gbit/s link carries TCP at its rate, never above it.

mod common;

use std::path::PathBuf;

use common::{Scenario, can_run_real_mode_with, node_file, of, real_run};
use serde_json::Value;

fn helper() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/segments/tcp_check.py");
    path.display().to_string()
}

fn dataplane(s: &Scenario) -> Value {
    let text = std::fs::read_to_string(s.out().join("summary.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["dataplane"][0].clone()
}

fn counter(dp: &Value, name: &str) -> u64 {
    dp[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {dp}"))
}

#[test]
fn a_transfer_through_a_shaped_lossy_link_arrives_intact() {
    if !can_run_real_mode_with(
        "a_transfer_through_a_shaped_lossy_link_arrives_intact",
        &["python3"],
    ) {
        return;
    }
    let size = 8_000_000;
    let s = Scenario::new(&format!(
        r#"
let n = alloc_ip(2);
shape(n, #{{ up: "1gbit", down: "1gbit", latency: "2ms", loss: 0.005 }});
let server = spawn(n[1], "python3 {py} serve " + n[1].ip + " {size}");
sleep("500ms");
spawn(n[0], "python3 {py} send " + n[1].ip + " {size}").wait();
server.wait();
"#,
        py = helper()
    ));
    real_run(&s);
    for e in of(&s.events(), "exit") {
        assert_eq!(e["code"], 0, "{e}");
    }
    let sent = node_file(&s, "10.0.0.1", "stdout.log");
    let received = node_file(&s, "10.0.0.2", "stdout.log");
    assert!(sent.starts_with(&format!("{size} ")), "{sent}");
    assert_eq!(received, sent, "the bytes that arrived are the bytes sent");
    let dp = dataplane(&s);
    let (cut, runs) = (
        counter(&dp, "cut_super_packets"),
        counter(&dp, "segment_runs"),
    );
    assert!(
        cut > 0,
        "the sender's super-packets travelled as segments: {dp}"
    );
    assert!(runs > cut, "lost segments cut runs: {dp}");
    let traffic = std::fs::read_to_string(s.out().join("traffic.csv")).unwrap();
    let lost: u64 = traffic
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(lost > 0, "segments were lost one by one: {traffic}");
}

#[test]
fn a_gigabit_link_carries_tcp_at_its_rate() {
    if !can_run_real_mode_with("a_gigabit_link_carries_tcp_at_its_rate", &["iperf3"]) {
        return;
    }
    // Two transfers, judged by the faster: a stall of this shared host (stolen CPU) only ever
    // slows one down, as it only ever adds to an RTT.
    let s = Scenario::new(
        r#"
let n = alloc_ip(2);
shape(n, #{ up: "1gbit", down: "1gbit", latency: "1ms" });
spawn(n[1], "iperf3 -s");
sleep("1s");
for i in 0..2 {
    spawn(n[0], "iperf3 -J -t 3 -c " + n[1].ip, #{ stdout: `iperf-${i}.json` }).wait();
}
"#,
    );
    real_run(&s);
    let goodputs: Vec<f64> = (0..2)
        .map(|i| {
            let report: Value =
                serde_json::from_str(&node_file(&s, "10.0.0.1", &format!("iperf-{i}.json")))
                    .unwrap();
            report["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let goodput = goodputs.iter().cloned().fold(0.0, f64::max);
    // 1448 bytes of payload in each 1500-byte packet (TCP timestamps on).
    let capacity = 1e9 * 1448.0 / 1500.0;
    println!(
        "goodput {:.3} Gbit/s at best of {goodputs:?}, {:.1} % of the payload capacity",
        goodput / 1e9,
        goodput / capacity * 100.0
    );
    for g in &goodputs {
        assert!(*g <= capacity * 1.01, "faster than the link: {g}");
    }
    assert!(
        goodput >= capacity * 0.85,
        "far below the link: {goodputs:?}"
    );
    let dp = dataplane(&s);
    assert!(counter(&dp, "cut_super_packets") > 0, "{dp}");
    assert!(
        counter(&dp, "timed_packets") > counter(&dp, "segment_runs"),
        "runs hold several segments: {dp}"
    );
}
