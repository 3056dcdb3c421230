//! The `conditions` stdlib module and the trace natives in dry-runs: the exact `shape` and
//! `link_groups` events (times and values) each function schedules, and what bad arguments
//! are told. In real mode (root), `scripts/cellular.rhai`: each phone receives what its part
//! of the trace could carry, and the one in the tunnel loses the outage's share.

mod common;

use std::path::Path;

use common::{Scenario, can_run_real_mode_with, metric, of, read_events};
use p2plab::run::{self, RunConfig};
use serde_json::Value;

/// A scenario importing the module, with the example traces next to it.
fn scenario(body: &str) -> Scenario {
    let s = Scenario::new(&format!("import \"conditions\" as cond;\n{body}\n"));
    let traces = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/traces");
    for entry in std::fs::read_dir(&traces).expect("scripts/traces") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, s.dir.path().join(path.file_name().unwrap())).expect("copy");
    }
    s
}

/// `(t, node, value of key)` of every shape event that sets `key`.
fn shapes(events: &[Value], key: &str) -> Vec<(f64, u64, Value)> {
    of(events, "shape")
        .into_iter()
        .filter(|e| !e[key].is_null())
        .map(|e| {
            (
                e["t"].as_f64().unwrap(),
                e["node"].as_u64().unwrap(),
                e[key].clone(),
            )
        })
        .collect()
}

fn v(x: impl Into<Value>) -> Value {
    x.into()
}

#[test]
fn step_and_ramp_change_a_value_at_the_times_they_name() {
    let s = scenario(
        r#"
        let n = alloc_ip(2);
        cond::step(n[0], "5s", #{ down: "3mbit", latency: "10ms" });
        cond::ramp(n, "down", "1mbit", "2mbit", 10, "4s", 4);
        cond::ramp(n[1], "latency", "10ms", 0.05, 20, 2, 2);
        log("the script goes on");
        sleep(30);
        "#,
    );
    let events = s.run_ok();
    assert_eq!(of(&events, "log")[0]["t"], 0.0);
    let down = shapes(&events, "down");
    let mut want = vec![(5.0, 0, v(3_000_000))];
    for (i, rate) in [1_000_000, 1_250_000, 1_500_000, 1_750_000, 2_000_000]
        .into_iter()
        .enumerate()
    {
        for node in 0..2 {
            want.push((10.0 + i as f64, node, v(rate)));
        }
    }
    assert_eq!(down, want);
    assert_eq!(of(&events, "shape")[0]["latency"], 0.01);
    let latency: Vec<_> = shapes(&events, "latency").into_iter().skip(1).collect();
    assert_eq!(
        latency,
        vec![(20.0, 1, v(0.01)), (21.0, 1, v(0.03)), (22.0, 1, v(0.05))]
    );
}

#[test]
fn square_alternates_and_on_off_ends_with_the_link_up() {
    let s = scenario(
        r#"
        let n = alloc_ip(2, #{ group: "g" });
        cond::square("g", "up", "1mbit", "5mbit", 2, 20, 23);
        cond::on_off(n[0], 3, 1, 30, 38);
        cond::on_off(n[1], 2, "5s", 30, 35);
        sleep(60);
        "#,
    );
    let events = s.run_ok();
    let up: Vec<_> = shapes(&events, "up")
        .into_iter()
        .filter(|e| e.1 == 0)
        .collect();
    assert_eq!(
        up,
        vec![
            (20.0, 0, v(5_000_000)),
            (21.0, 0, v(1_000_000)),
            (22.0, 0, v(5_000_000)),
        ]
    );
    assert_eq!(shapes(&events, "up").len(), 6, "both members of the group");
    let loss = shapes(&events, "loss");
    assert_eq!(
        loss,
        vec![
            (32.0, 1, v(1.0)),
            (33.0, 0, v(1.0)),
            (34.0, 0, v(0.0)),
            // Down from 32 s for 5 s, but the window ends at 35 s: up again then.
            (35.0, 1, v(0.0)),
            (37.0, 0, v(1.0)),
            (38.0, 0, v(0.0)),
        ]
    );
}

#[test]
fn replay_rate_holds_each_window_from_the_offset_and_repeats_until_the_end() {
    let s = scenario(
        r#"
        let n = alloc_ip(2);
        cond::replay_rate(n[0], "square-10-2mbit.trace", #{ start: 10, window: "2s", end: 19 });
        cond::replay_rate(n[1], "lte-like.up", #{ key: "up", start: 40, offset: "19.5s", end: 42 });
        sleep(60);
        "#,
    );
    let events = s.run_ok();
    // 1666 or 1667 opportunities of 1500 B in 2 s at "10 Mbit/s" (the generator rounds).
    let (high, low) = (v(9_996_000), v(2_004_000));
    assert_eq!(
        shapes(&events, "down"),
        vec![
            (10.0, 0, high.clone()),
            (12.0, 0, low.clone()),
            (14.0, 0, high.clone()),
            (16.0, 0, low),
            // The trace again from its start, until 19 s.
            (18.0, 0, high),
        ]
    );
    // From 19.5 s into the 20 s trace: the rest of the window (19, 20], then the trace
    // again from 0, one window a second, until 42 s.
    let up = shapes(&events, "up");
    let times: Vec<f64> = up.iter().map(|e| e.0).collect();
    assert_eq!(times, vec![40.0, 40.5, 41.5]);
    let text = std::fs::read_to_string(s.dir.path().join("lte-like.up")).unwrap();
    let count = |from: u64, to: u64| {
        text.lines()
            .map(|l| l.parse::<u64>().unwrap())
            .filter(|&ms| ms > from && ms <= to)
            .count() as u64
            * 12_000
    };
    assert_eq!(up[0].2, v(count(19_000, 20_000)));
    assert_eq!(up[1].2, v(count(0, 1000)));
    assert_eq!(up[2].2, v(count(1000, 2000)));
}

#[test]
fn replay_rate_replaces_outages_by_min_rate_and_skips_unchanged_windows() {
    let s = scenario(
        r#"
        let n = alloc_ip(1);
        cond::replay_rate(n[0], "gap.trace", #{ end: 7, min_rate: "5kbit" });
        cond::replay_rate(n[0], "const-12mbit.trace", #{ key: "up", end: "10m" });
        sleep(700);
        "#,
    );
    // 1 opportunity by 1 s, none in (1, 2] s, 2 in (2, 3] s; the trace repeats after 3 s.
    std::fs::write(s.dir.path().join("gap.trace"), "500\n2500\n3000\n").unwrap();
    let events = s.run_ok();
    let down: Vec<(f64, Value)> = shapes(&events, "down")
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        down,
        vec![
            (0.0, v(12_000)),
            (1.0, v(5_000)),
            (2.0, v(24_000)),
            (3.0, v(12_000)),
            (4.0, v(5_000)),
            (5.0, v(24_000)),
            (6.0, v(12_000)),
        ]
    );
    // A constant trace repeated for ten minutes is one change.
    assert_eq!(shapes(&events, "up"), vec![(0.0, 0, v(12_000_000))]);
    let end = of(&events, "end");
    assert_eq!(end[0]["pending_callbacks"], 0, "{:?}", end[0]);
}

#[test]
fn replay_delay_sets_a_group_pair_latency_over_time() {
    let s = scenario(
        r#"
        alloc_ip(2, #{ group: "eu" });
        alloc_ip(2, #{ group: "us" });
        cond::replay_delay("eu", "us", "delay-steps.trace", #{ start: 60, end: 66, offset: 0.5, jitter: "1ms" });
        cond::replay_delay("us", "us", "once.trace", #{ start: 100, loss: 0.01 });
        sleep(200);
        "#,
    );
    std::fs::write(s.dir.path().join("once.trace"), "0 5\n10000 7.5\n").unwrap();
    let events = s.run_ok();
    let links: Vec<(f64, String, f64, f64, f64)> = of(&events, "link_groups")
        .into_iter()
        .map(|e| {
            (
                e["t"].as_f64().unwrap(),
                format!("{}-{}", e["a"].as_str().unwrap(), e["b"].as_str().unwrap()),
                e["latency"].as_f64().unwrap(),
                e["jitter"].as_f64().unwrap(),
                e["loss"].as_f64().unwrap(),
            )
        })
        .collect();
    let eu = |t: f64, latency: f64| (t, "eu-us".to_string(), latency, 0.001, 0.0);
    // delay-steps: 20 ms, 80 ms from 1 s, 40 ms from 2 s, repeating every 3 s.
    assert_eq!(
        links,
        vec![
            eu(60.0, 0.02),
            eu(60.5, 0.08),
            eu(61.5, 0.04),
            eu(62.5, 0.02),
            eu(63.5, 0.08),
            eu(64.5, 0.04),
            eu(65.5, 0.02),
            // Without an end line the trace plays once and its last latency stays.
            (100.0, "us-us".to_string(), 0.005, 0.0, 0.01),
            (110.0, "us-us".to_string(), 0.0075, 0.0, 0.01),
        ]
    );
}

#[test]
fn trace_natives_give_points_periods_and_units() {
    let s = scenario(
        r#"
        let r = trace_rates("square-10-2mbit.trace", "500ms");
        log(`${r.points.len()} ${r.points[0][0]} ${r.points[4][0]} ${r.period} ${r.mean}`);
        log(`${r.points[0][1]} ${r.points[4][1]}`);
        log(`${trace_rates("const-12mbit.trace").points}`);
        let d = trace_delays("delay-steps.trace");
        log(`${d.points} ${d.period}`);
        log(`${trace_delays("once.trace").period == ()}`);
        log(`${rate_bits("2mbit")} ${rate_bits(1500)} ${duration_secs("30ms")} ${duration_secs(2)}`);
        "#,
    );
    std::fs::write(s.dir.path().join("once.trace"), "0 5\n").unwrap();
    let events = s.run_ok();
    let square = std::fs::read_to_string(s.dir.path().join("square-10-2mbit.trace")).unwrap();
    // Bits/s of the opportunities in (from, to] ms.
    let rate_in = |from: u64, to: u64| {
        let n = square
            .lines()
            .filter(|l| (from + 1..=to).contains(&l.parse::<u64>().unwrap()))
            .count();
        n as u64 * 12_000 * 1000 / (to - from)
    };
    let logs: Vec<&str> = of(&events, "log")
        .iter()
        .map(|e| e["msg"].as_str().unwrap())
        .collect();
    assert_eq!(
        logs,
        vec![
            "8 0.0 2.0 4.0 6000000",
            &format!("{} {}", rate_in(0, 500), rate_in(2000, 2500)),
            "[[0.0, 12000000]]",
            "[[0.0, 0.02], [1.0, 0.08], [2.0, 0.04]] 3.0",
            "true",
            "2000000 1500 0.03 2.0",
        ]
    );
}

#[test]
fn bad_arguments_say_what_was_expected_and_where() {
    let cases = [
        (
            r#"cond::ramp(alloc_ip(1), "queue", 1, 2, 0, 1, 1);"#,
            r#"key must be "up", "down", "latency", "jitter" or "loss", got queue"#,
        ),
        (
            r#"cond::ramp(alloc_ip(1), "down", "1mbit", "fast", 0, 1, 1);"#,
            r#"rate_bits: "fast" is not a rate"#,
        ),
        (
            r#"cond::ramp(alloc_ip(1), "down", 1, 2, 0, 1, 0);"#,
            "ramp: steps must be a whole number ≥ 1, got 0",
        ),
        (
            r#"cond::square(alloc_ip(1), "loss", 0, "1", 2, 0, 10);"#,
            "loss is a number between 0.0 and 1.0, got 1",
        ),
        (
            r#"cond::square(alloc_ip(1), "up", 1, 2, 0, 0, 10);"#,
            "square: period must be longer than 0",
        ),
        (
            r#"cond::on_off(alloc_ip(1), 1, 1, 10, 5);"#,
            "on_off: end (5.0 s) is before start (10.0 s)",
        ),
        (
            r#"cond::replay_rate(alloc_ip(1), "lte-like.down", #{ windw: 2 });"#,
            "replay_rate: unknown option windw",
        ),
        (
            r#"cond::replay_rate(alloc_ip(1), "lte-like.down", #{ key: "latency" });"#,
            r#"replay_rate: key must be "down" or "up", got latency"#,
        ),
        (
            r#"cond::replay_rate(alloc_ip(1), "delay-steps.trace", #{});"#,
            "delay-steps.trace:1: expected a whole number of milliseconds",
        ),
        (
            r#"cond::replay_rate(alloc_ip(1), "lte-like.down", #{ window: "10us" });"#,
            "trace_rates: window: lte-like.down lasts 20s and would make 2000000 windows",
        ),
        (
            r#"cond::replay_delay("a", "b", "lte-like.down", #{});"#,
            "lte-like.down:1: expected `<time ms> <latency ms>`, found a time only (a time \
             alone ends a trace",
        ),
        (
            r#"cond::replay_delay("a", "b", "missing.trace", #{});"#,
            "cannot read the trace_delays file",
        ),
        (
            r#"cond::replay_delay("a", "b", "delay-steps.trace", 5);"#,
            "replay_delay takes its options as a map",
        ),
    ];
    for (call, needle) in cases {
        let err = scenario(&format!("{call}\nsleep(1);")).run_err();
        assert!(err.contains(needle), "{call}: {err}");
        assert!(err.contains("stdlib/conditions.rhai:"), "{call}: {err}");
        assert!(err.contains("main.rhai:2:7"), "{call}: {err}");
    }
    // trace_rates itself reports at its own call.
    let err = scenario("trace_rates(\"square-10-2mbit.trace\", 0);").run_err();
    assert!(
        err.contains("main.rhai:2:1: trace_rates: window: expected a duration greater than zero"),
        "{err}"
    );
    // A step's options are checked when it happens: the error names the sleep it ran in.
    let err = scenario("cond::step(alloc_ip(1), 3, #{ dwn: 1 });\nsleep(5);").run_err();
    assert!(err.contains("shape: unknown option \"dwn\""), "{err}");
    assert!(err.contains("main.rhai:3:1 (callback)"), "{err}");
}

/// Bytes a rate trace can carry in trace times (from, to] s, over as many passes as needed.
fn capacity(trace: &[u64], from: f64, to: f64) -> f64 {
    let period = *trace.last().unwrap() as f64 / 1000.0;
    let mut opportunities = 0;
    for pass in 0..=(to / period) as u64 {
        let base = pass as f64 * period;
        opportunities += trace
            .iter()
            .map(|&ms| base + ms as f64 / 1000.0)
            .filter(|&t| t > from && t <= to)
            .count();
    }
    opportunities as f64 * 1500.0
}

#[test]
fn cellular_phones_receive_what_their_part_of_the_trace_carries() {
    if !can_run_real_mode_with(
        "cellular_phones_receive_what_their_part_of_the_trace_carries",
        &["iperf3"],
    ) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut cfg =
        RunConfig::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cellular.rhai"));
    cfg.seed = Some(7);
    cfg.out = Some(out.path().to_path_buf());
    if let Err(e) = run::real(cfg) {
        panic!("real run failed: {e}");
    }
    let events = read_events(&out.path().join("events.jsonl"));
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/traces/lte-like.down"),
    )
    .unwrap();
    let trace: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    let shaped = of(&events, "shape");
    let spawns = of(&events, "spawn");
    let seconds = 30.0;
    for phone in 0..4u64 {
        let node = phone + 1;
        let offset = shaped
            .iter()
            .find(|e| e["node"] == node && !e["trace_offset"].is_null())
            .expect("a trace-driven shape")["trace_offset"]
            .as_f64()
            .unwrap();
        let t0 = spawns.iter().find(|e| e["node"] == node).unwrap()["t"]
            .as_f64()
            .unwrap();
        // Trace time τ = offset + t: the phones were shaped at t = 0.
        let window = |a: f64, b: f64| capacity(&trace, offset + a, offset + b);
        let received = metric(&events, &format!("phone{phone}_mbit")) * 1e6 * seconds / 8.0;
        let (could, low) = if phone == 3 {
            // No signal in (10, 15]; TCP then waits for its retransmission timer.
            (window(t0, 10.0) + window(15.0, t0 + seconds), 0.6)
        } else {
            (window(t0, t0 + seconds), 0.85)
        };
        let ratio = received / could;
        eprintln!(
            "phone {phone} (offset {offset:.2} s): received {:.2} Mbit/s, its part of the trace \
             {:.2} Mbit/s: {:.1} %",
            received * 8.0 / seconds / 1e6,
            could * 8.0 / seconds / 1e6,
            ratio * 100.0
        );
        assert!(
            (low..1.02).contains(&ratio),
            "phone {phone}: received {received:.0} B, the trace could carry {could:.0} B"
        );
    }
}
