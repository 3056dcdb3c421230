//! Lab 2 (book/src/lab-bufferbloat.md): a 2 Mbit/s uplink with a small and a large queue under
//! an iperf3 upload. What the chapter tells students to see: the goodput hardly changes, the
//! round trip under load grows with the queue, towards what a full queue adds (size / rate).

use crate::common::{can_run_real_mode_with, metrics, read_events};
use p2plab::run::{self, RunConfig};

#[test]
fn a_larger_queue_adds_delay_not_goodput() {
    let _one = crate::one_lab_at_a_time();
    if !can_run_real_mode_with("a_larger_queue_adds_delay_not_goodput", &["iperf3", "ping"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::new("scripts/labs/bufferbloat.rhai");
    cfg.out = Some(dir.path().join("out"));
    cfg.seed = Some(1);
    for (k, v) in [("queues", "8kb,128kb"), ("seconds", "14")] {
        cfg.params.insert(k.into(), v.into());
    }
    if let Err(e) = run::real(cfg) {
        panic!("lab run failed: {e}");
    }
    let events = read_events(&dir.path().join("out/events.jsonl"));
    let idle = metrics(&events, "rtt_idle_ms");
    let loaded = metrics(&events, "rtt_loaded_ms");
    let full = metrics(&events, "full_queue_ms");
    let goodput = metrics(&events, "goodput_mbit");
    let table = format!("idle {idle:?}, loaded {loaded:?}, full {full:?}, goodput {goodput:?}");
    assert_eq!(loaded.len(), 2, "{table}");
    // 2 x (10 + 10) ms of links, and a few ms of the host at most.
    assert!((39.0..50.0).contains(&idle[0]), "{table}");
    // Under load the queue holds between a fifth of its size and all of it, plus the links.
    for i in 0..2 {
        assert!(loaded[i] > idle[0] + 0.2 * full[i], "{table}");
        assert!(loaded[i] < idle[0] + full[i] + 30.0, "{table}");
    }
    assert!(loaded[1] > 3.0 * loaded[0], "{table}");
    // Both queues keep the 2 Mbit/s link busy (less headers).
    for g in &goodput {
        assert!((1.6..2.0).contains(g), "{table}");
    }
}
