//! Emulated links on real traffic (needs root): ping and iperf3 between nodes of a real lab,
//! compared with the configured shape within stated tolerances.

mod common;

use common::{Scenario, can_run_real_mode_with, median, node_file, ping_rtts, real_run};

/// Pairs (a, b) ping each other at the same time, each pair with its own node latency.
/// One lab at a time: the light run judges its data plane's lateness, which the other tests'
/// floods (two data planes at real-time priority on two cores) would make miss its bound.
static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_lab() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn rtt_follows_node_latencies_and_group_latency() {
    if !can_run_real_mode_with("rtt_follows_node_latencies_and_group_latency", &["ping"]) {
        return;
    }
    let _lab = one_lab();
    let s = Scenario::new(
        r#"
        let lats = ["0ms", "5ms", "30ms", "100ms"];
        let pairs = [];
        for l in lats {
            let p = alloc_ip(2, #{ group: "g" });
            if l != "0ms" { shape(p, #{ latency: l }); }
            pairs.push(p);
        }
        let far = alloc_ip(1, #{ group: "far" });
        let near = alloc_ip(1, #{ group: "g" });
        link_groups("g", "far", #{ latency: "50ms" });
        let procs = [];
        for p in pairs {
            procs.push(spawn(p[0], `ping -c 30 -i 0.1 -I {ip} ${p[1].ip}`, #{ shell: true }));
        }
        procs.push(spawn(near[0], `ping -c 30 -i 0.1 -I {ip} ${far[0].ip}`));
        procs.push(spawn(near[0], `ping -c 30 -i 0.1 -I {ip} ${pairs[0][0].ip}`));
        for p in procs { p.wait(); }
        "#,
    );
    real_run(&s);
    // Nodes: pairs take 10.0.0.1-8, far is .9, near is .10.
    let baseline = median(ping_rtts(&node_file(&s, "10.0.0.1", "stdout.log")));
    for (i, lat) in [(0, 0.0), (1, 5.0), (2, 30.0), (3, 100.0)] {
        let ip = format!("10.0.0.{}", 2 * i + 1);
        let rtt = median(ping_rtts(&node_file(&s, &ip, "stdout.log")));
        let want = 4.0 * lat + baseline;
        // ping prints RTTs of 100 ms and more in whole milliseconds: half of that on top.
        let resolution = if want >= 100.0 { 0.5 } else { 0.0 };
        assert!(
            (rtt - want).abs() < 0.5 + resolution,
            "latency {lat} ms: median RTT {rtt} ms, want {want} ms"
        );
    }
    let near = node_file(&s, "10.0.0.10", "stdout.log");
    let (mut far_rtts, mut local_rtts) = (Vec::new(), Vec::new());
    for line in near.lines() {
        let Some(rtt) = ping_rtts(line).first().copied() else {
            continue;
        };
        if line.contains("10.0.0.9") {
            far_rtts.push(rtt)
        } else {
            local_rtts.push(rtt)
        }
    }
    let (far, local) = (median(far_rtts), median(local_rtts));
    // 100 ms and more: whole milliseconds in ping's output, as above (CI: 101 for 100.18).
    assert!(
        (far - 100.0 - baseline).abs() < 0.5 + 0.5,
        "g-far RTT {far} ms, want 100 + {baseline}"
    );
    assert!(
        (local - baseline).abs() < 0.5,
        "g-g RTT {local} ms, want {baseline}"
    );
}

/// iperf3 goodput of one transfer per rate, all at once in one lab.
#[test]
fn tcp_goodput_follows_the_rate() {
    if !can_run_real_mode_with("tcp_goodput_follows_the_rate", &["iperf3"]) {
        return;
    }
    let _lab = one_lab();
    // A stall of the host only ever slows a flow down (four iperf3 flows share two cores
    // with the data plane: one run here gave the 100 mbit flow -4.1 %, the next -0.5 %), so
    // a second run is allowed when one falls short; a flow above its rate fails at once.
    for attempt in 1..=2 {
        let short = goodput_shortfalls();
        if short.is_empty() {
            return;
        }
        eprintln!("run {attempt}: {}", short.join("; "));
        assert!(attempt < 2, "{}", short.join("; "));
    }
}

/// One run of four saturating flows at 128 kbit/s, 2, 10 and 100 Mbit/s: the flows more
/// than 3 % below their rate. Panics on one more than 3 % above it.
fn goodput_shortfalls() -> Vec<String> {
    let s = Scenario::new(
        r#"
        let rates = ["128kbit", "2mbit", "10mbit", "100mbit"];
        let clients = [];
        let port = 5201;
        for r in rates {
            let p = alloc_ip(2);
            shape(p[0], #{ up: r });
            shape(p[1], #{ down: r });
            spawn(p[1], `iperf3 -s -1 -B {ip} -p ${port}`);
            clients.push([p[0], p[1], port]);
            port += 1;
        }
        sleep(0.5);
        let procs = [];
        for c in clients {
            procs.push(spawn(c[0], `iperf3 -c ${c[1].ip} -B {ip} -p ${c[2]} -t 8 -J > iperf.json`,
                             #{ shell: true }));
        }
        for p in procs { p.wait(); }
        "#,
    );
    real_run(&s);
    // TCP payload per 1500-byte packet: 1448 bytes (20 IP + 20 TCP + 12 timestamp option).
    let efficiency = 1448.0 / 1500.0;
    let mut short = Vec::new();
    for (i, rate) in [128e3, 2e6, 10e6, 100e6].into_iter().enumerate() {
        let ip = format!("10.0.0.{}", 2 * i + 1);
        let json: serde_json::Value = serde_json::from_str(&node_file(&s, &ip, "iperf.json"))
            .unwrap_or_else(|e| panic!("{ip}: iperf3 JSON: {e}"));
        let got = json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap();
        let want = rate * efficiency;
        let err = (got - want) / want;
        let what = format!(
            "rate {rate}: goodput {got:.0} bit/s, want {want:.0} ({:+.1} %)",
            err * 100.0
        );
        assert!(err < 0.03, "{what}");
        if err <= -0.03 {
            short.push(what);
        }
    }
    short
}

/// 2 % loss on one node applies to each direction once: 4000 pings lose 1 - 0.98² of rounds.
#[test]
fn loss_per_direction_matches() {
    if !can_run_real_mode_with("loss_per_direction_matches", &["ping"]) {
        return;
    }
    let _lab = one_lab();
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        shape(n[1], #{ loss: 0.02 });
        spawn(n[0], `ping -q -c 4000 -i 0.002 -W 1 -I {ip} ${n[1].ip}`).wait();
        "#,
    );
    let out = real_run(&s);
    let log = node_file(&s, "10.0.0.1", "stdout.log");
    let stats = log
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .expect(&log);
    let nums: Vec<f64> = stats
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let (sent, received) = (nums[0], nums[1]);
    assert!(sent >= 4000.0, "{stats}");
    let round_trip_loss = 1.0 - received / sent;
    let per_direction = 1.0 - (1.0 - round_trip_loss).sqrt();
    assert!(
        (per_direction - 0.02).abs() < 0.005,
        "per-direction loss {per_direction:.4} from {stats}"
    );
    // The data plane's counters saw the same drops, on the sender's side.
    let dropped: u64 = out.report.traffic.iter().map(|(_, c)| c.dropped_loss).sum();
    let lost = (sent - received) as u64;
    assert!(
        dropped >= lost && dropped <= lost + 5,
        "counters dropped {dropped}, ping lost {lost}"
    );
}

/// A shape change mid-transfer shows in the next second; the connection survives.
#[test]
fn shape_change_applies_mid_transfer() {
    if !can_run_real_mode_with("shape_change_applies_mid_transfer", &["iperf3"]) {
        return;
    }
    let _lab = one_lab();
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        shape(n, #{ up: "10mbit", down: "10mbit" });
        let server = spawn(n[1], "iperf3 -s -1 -B {ip} -i 1 -J > server.json", #{ shell: true });
        sleep(0.5);
        let c = spawn(n[0], `iperf3 -c ${n[1].ip} -B {ip} -t 7`);
        sleep(3.5);
        shape(n, #{ up: "2mbit", down: "2mbit" });
        if c.wait() != 0 || server.wait() != 0 { throw "iperf3 failed"; }
        "#,
    );
    real_run(&s);
    // Receiver-side intervals: what crossed the link each second.
    let json: serde_json::Value =
        serde_json::from_str(&node_file(&s, "10.0.0.2", "server.json")).unwrap();
    // Whole seconds only: the last interval is a fraction of one.
    let rates: Vec<f64> = json["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["sum"]["seconds"].as_f64().unwrap() > 0.9)
        .map(|i| i["sum"]["bits_per_second"].as_f64().unwrap())
        .collect();
    let eff = 1448.0 / 1500.0;
    // Seconds 1-2 run at 10 mbit; the change lands at 3 s; from second 4 on, 2 mbit.
    for (i, &r) in rates.iter().enumerate().take(3).skip(1) {
        assert!(
            (r / (10e6 * eff) - 1.0).abs() < 0.1,
            "second {i}: {r:.0} bit/s: {rates:?}"
        );
    }
    for (i, &r) in rates.iter().enumerate().skip(4) {
        assert!(
            (r / (2e6 * eff) - 1.0).abs() < 0.15,
            "second {i}: {r:.0} bit/s: {rates:?}"
        );
    }
    assert!(json["error"].is_null(), "iperf3 reported {}", json["error"]);
}

/// A failed node's traffic is dropped silently, and flows again after revive.
#[test]
fn failed_nodes_drop_traffic_until_revived() {
    if !can_run_real_mode_with("failed_nodes_drop_traffic_until_revived", &["ping", "ip"]) {
        return;
    }
    let _lab = one_lab();
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        let p = spawn(n[0], `ping -c 40 -i 0.1 -W 0.5 -I {ip} ${n[1].ip}`);
        sleep(1);
        fail_node(n[1]);
        sleep(2);
        revive(n[1]);
        p.wait();
        "#,
    );
    let out = real_run(&s);
    let log = node_file(&s, "10.0.0.1", "stdout.log");
    let replies = ping_rtts(&log).len();
    // 40 pings over 4 s, 2 s of them failed: about 20 lost.
    assert!(
        (14..=26).contains(&(40 - replies)),
        "{replies} replies of 40:\n{log}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    let ns = summary["namespace"]
        .as_str()
        .expect("namespace in summary.json");
    assert!(
        !common::namespaces_of(std::process::id())
            .iter()
            .any(|n| n == ns),
        "lab {ns} still exists after the run"
    );
    assert!(out.report.traffic.iter().any(|(_, c)| c.dropped_loss >= 14));
}

/// A light run is timed in full: every delivered packet is timed, the median packet leaves
/// well within 1 ms of its deadline, and the data-plane thread used less CPU than the run took.
#[test]
fn a_light_run_reports_its_lateness_and_cpu_time() {
    if !can_run_real_mode_with("a_light_run_reports_its_lateness_and_cpu_time", &["ping"]) {
        return;
    }
    let _lab = one_lab();
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        shape(n, #{ latency: "5ms" });
        spawn(n[0], `ping -c 200 -i 0.01 -I {ip} ${n[1].ip}`).wait();
        "#,
    );
    let started = std::time::Instant::now();
    let out = real_run(&s);
    let wall_ns = started.elapsed().as_nanos() as u64;
    let replies = ping_rtts(&node_file(&s, "10.0.0.1", "stdout.log")).len() as u64;
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap())
            .unwrap();
    let dp = &summary["dataplane"][0];
    let field = |name: &str| {
        dp[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {dp}"))
    };
    let delivered: u64 = out.report.traffic.iter().map(|(_, c)| c.recv_packets).sum();
    assert_eq!(field("timed_packets"), delivered, "{dp}");
    assert!(
        delivered >= 2 * replies && replies > 0,
        "{delivered} delivered, {replies} replies"
    );
    // Tolerances, not timers: a healthy loop is some µs late, so the median is far below
    // 1 ms. The p99 is the fidelity verdict's to judge (tests/fidelity.rs): a shared virtual
    // machine now and then stalls a vCPU past 1 ms, and that moves the p99, not the median.
    assert!(field("late_p50_ns") < 1_000_000, "{dp}");
    assert!(field("late_p50_ns") <= field("late_p99_ns"), "{dp}");
    assert!(field("late_p99_ns") <= field("late_max_ns"), "{dp}");
    assert!(field("late_max_ns") < 20_000_000, "{dp}");
    let cpu = field("cpu_ns");
    assert!(cpu > 0 && cpu < wall_ns, "cpu {cpu} ns, wall {wall_ns} ns");
    eprintln!("lateness and CPU: {dp}, wall {wall_ns} ns");
}
