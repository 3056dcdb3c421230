//! Lab 1 (book/src/lab-tcp.md): iperf3 over paths of two RTTs and two loss rates. What the
//! chapter tells students to see: goodput falls with the RTT and with the loss, about as the
//! Mathis formula says, and iperf3 measures the RTT the links were given.

use crate::common::{can_run_real_mode_with, metrics, read_events};
use p2plab::run::{self, RunConfig};

#[test]
fn tcp_goodput_falls_with_rtt_and_loss_as_mathis_says() {
    let _one = crate::one_lab_at_a_time();
    if !can_run_real_mode_with(
        "tcp_goodput_falls_with_rtt_and_loss_as_mathis_says",
        &["iperf3"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::new("scripts/labs/tcp.rhai");
    cfg.out = Some(dir.path().join("out"));
    cfg.seed = Some(1);
    for (k, v) in [
        ("rtts", "20,60"),
        ("losses", "0.005,0.02"),
        ("seconds", "10"),
    ] {
        cfg.params.insert(k.into(), v.into());
    }
    if let Err(e) = run::real(cfg) {
        panic!("lab run failed: {e}");
    }
    let events = read_events(&dir.path().join("out/events.jsonl"));
    // In the script's order: (20 ms, 0.005), (20 ms, 0.02), (60 ms, 0.005), (60 ms, 0.02).
    // Losses high enough for a dozen loss events in 10 s even at 60 ms: at 0.2 % and 80 ms a
    // transfer held so few that it ran at 3 times the formula.
    let goodput = metrics(&events, "goodput_mbit");
    let mathis = metrics(&events, "mathis_mbit");
    let ratio = metrics(&events, "measured_over_mathis");
    assert_eq!(goodput.len(), 4, "{goodput:?}");
    let table = format!("goodput {goodput:?}, Mathis {mathis:?}");
    println!("{table}");
    // Mathis predicts 3x for 3x the RTT and 2x for 4x the loss; runs here gave 2.1 to 4.1x
    // and 1.45 to 2.9x (one 10 s transfer varies by a third from run to run).
    assert!(goodput[0] > 1.6 * goodput[2], "RTT: {table}");
    assert!(goodput[1] > 1.6 * goodput[3], "RTT: {table}");
    assert!(goodput[0] > 1.25 * goodput[1], "loss: {table}");
    assert!(goodput[2] > 1.25 * goodput[3], "loss: {table}");
    for r in &ratio {
        assert!((0.33..3.0).contains(r), "within 3x of Mathis: {table}");
    }
    // iperf3's own RTT estimate, in the log lines, is the configured one plus queueing.
    let logs: Vec<String> = crate::common::of(&events, "log")
        .iter()
        .map(|e| e["msg"].as_str().unwrap().to_string())
        .collect();
    for (line, rtt) in logs.iter().zip([20.0, 20.0, 60.0, 60.0]) {
        let mean: f64 = line
            .split("mean RTT ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no mean RTT in {line}"));
        assert!(mean >= rtt * 0.97 && mean < rtt + 25.0, "{line}");
    }
}
