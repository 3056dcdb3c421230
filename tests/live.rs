//! Scripts that see the live state of a real run (needs root): node traffic counters read
//! while packets flow, `wait_until` on them, and the Procs of `spawn` on an array.

mod common;

use common::{Scenario, can_run_real_mode_with, of, real_run};

/// One ICMP echo of `ping -s 1000`: 1000 bytes of data, 8 of ICMP header, 20 of IPv4 header.
const ECHO_BYTES: f64 = 1028.0;
const PINGS: f64 = 20.0;

/// The sum of one column of `traffic.csv` over the lines of `ip`.
fn csv_total(csv: &str, ip: &str, column: &str) -> f64 {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|c| *c == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[1] == ip)
        .map(|f| f[col].parse::<f64>().expect("a count"))
        .sum()
}

#[test]
fn scripts_read_live_counters_and_the_procs_of_a_group_spawn() {
    if !can_run_real_mode_with(
        "scripts_read_live_counters_and_the_procs_of_a_group_spawn",
        &["ping"],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        let a = n[0];
        let b = n[1];
        metric("b_rx_before", b.rx_bytes);
        let ping = spawn(a, `ping -c 20 -i 0.05 -s 1000 -I ${a.ip} ${b.ip}`);
        let met = wait_until(|| b.rx_bytes > 10000, "20s");
        metric("met", if met { 1 } else { 0 });
        metric("met_at", now());
        metric("b_rx_when_met", b.rx_bytes);
        metric("ping", ping.wait());
        sleep(0.2);
        metric("a_tx_bytes", a.tx_bytes);
        metric("a_tx_packets", a.tx_packets);
        metric("a_rx_bytes", a.rx_bytes);
        metric("b_rx_bytes", b.rx_bytes);
        metric("b_rx_packets", b.rx_packets);
        metric("b_tx_bytes", b.tx_bytes);
        metric("dropped", a.dropped + b.dropped);

        let jobs = spawn(n, "sh -c 'exit 3'");
        for j in jobs { metric("job", j.wait()); }
        for j in jobs { metric("job_code", j.exit_code); }
        let sleepers = spawn("default", "sleep 60");
        metric("procs_b", procs(b).len());
        sleepers[1].kill();
        metric("sleeper_killed", if sleepers[1].signal == "SIGKILL" && !sleepers[1].running { 1 } else { 0 });
        metric("procs_b_after_kill", procs(b).len());
        "#,
    );
    real_run(&s);
    let events = s.events();
    let metrics: Vec<(String, f64)> = of(&events, "metric")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let metric = |name: &str| common::metric(&events, name);
    let all = |name: &str| -> Vec<f64> {
        metrics
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect()
    };

    assert_eq!(metric("b_rx_before"), 0.0);
    assert_eq!(metric("met"), 1.0, "the condition came true: {metrics:?}");
    // Ten echoes at 50 ms make 10 kB: well before the 20 s timeout.
    assert!(metric("met_at") < 5.0, "{metrics:?}");
    let when_met = metric("b_rx_when_met");
    assert!(
        when_met > 10_000.0 && when_met <= PINGS * ECHO_BYTES,
        "{metrics:?}"
    );
    assert_eq!(metric("ping"), 0.0, "every echo was answered: {metrics:?}");

    // The counters the script read after the ping are the run's totals (nothing flowed
    // after), so they equal traffic.csv summed per node.
    let csv = std::fs::read_to_string(s.out().join("traffic.csv")).expect("traffic.csv");
    for (name, ip, column) in [
        ("a_tx_bytes", "10.0.0.1", "sent_bytes"),
        ("a_tx_packets", "10.0.0.1", "sent_packets"),
        ("a_rx_bytes", "10.0.0.1", "recv_bytes"),
        ("b_rx_bytes", "10.0.0.2", "recv_bytes"),
        ("b_rx_packets", "10.0.0.2", "recv_packets"),
        ("b_tx_bytes", "10.0.0.2", "sent_bytes"),
    ] {
        assert_eq!(
            metric(name),
            csv_total(&csv, ip, column),
            "{name} against traffic.csv:\n{csv}"
        );
    }
    assert_eq!(metric("b_rx_packets"), PINGS, "{metrics:?}");
    assert_eq!(metric("b_rx_bytes"), PINGS * ECHO_BYTES, "{metrics:?}");
    assert_eq!(metric("a_tx_bytes"), PINGS * ECHO_BYTES, "{metrics:?}");
    assert_eq!(metric("b_tx_bytes"), PINGS * ECHO_BYTES, "the replies");
    assert_eq!(metric("a_rx_bytes"), PINGS * ECHO_BYTES, "{metrics:?}");
    assert_eq!(metric("dropped"), 0.0);

    assert_eq!(all("job"), [3.0, 3.0]);
    assert_eq!(all("job_code"), [3.0, 3.0]);
    let exits = of(&events, "exit");
    assert_eq!(
        exits.iter().filter(|e| e["code"] == 3).count(),
        2,
        "{exits:?}"
    );
    assert_eq!(metric("procs_b"), 1.0);
    assert_eq!(metric("sleeper_killed"), 1.0);
    assert_eq!(metric("procs_b_after_kill"), 0.0);
}

/// Real time runs on while a script step computes, so a time drawn from `now()` may be behind
/// the clock by the time `at()` sees it (the churn model's tiny sessions did this): it runs at
/// once. A time before the step began is still refused.
#[test]
fn an_at_time_computed_in_this_step_is_never_in_the_past() {
    if !can_run_real_mode_with("an_at_time_computed_in_this_step_is_never_in_the_past", &[]) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(1);
        sleep(0.5);
        let t = now();
        let spins = 0;
        // Bounded: a real run dry-runs its script first, where now() stands still.
        while spins < 300000 && now() < t + 0.03 { spins += 1; }
        metric("t", t);
        metric("asked_at", now());
        at(t + 0.01, || metric("ran_at", now()));
        let refused = false;
        try { at(t - 0.2, || metric("never", 1)); } catch (e) { refused = true; }
        metric("refused", if refused { 1 } else { 0 });
        sleep(0.2);
        "#,
    );
    real_run(&s);
    let events = s.events();
    let metric = |name: &str| -> Vec<f64> {
        of(&events, "metric")
            .iter()
            .filter(|e| e["name"] == name)
            .map(|e| e["value"].as_f64().expect("a number"))
            .collect()
    };
    let (asked, ran) = (metric("asked_at"), metric("ran_at"));
    assert!(
        asked[0] > metric("t")[0] + 0.01,
        "the step outlasted the time it asked for: {asked:?}"
    );
    assert_eq!(ran.len(), 1, "the callback ran once: {events:?}");
    assert!(
        ran[0] >= asked[0],
        "it ran after it was asked for: {ran:?} {asked:?}"
    );
    assert_eq!(metric("refused"), [1.0]);
    assert!(metric("never").is_empty());
}
