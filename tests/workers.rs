//! Many machines (needs root, iperf3, ping): three network namespaces play three machines
//! with a `p2plab worker` each, the controller runs in a fourth. Links across workers must
//! match the configured shape like on one machine; a lost worker stops the run with exit 3.

mod common;

use std::time::{Duration, Instant};

use common::machines::Cluster;
use common::{can_run_real_mode, median, of, ping_rtts, read_events};

fn script(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("scenario.rhai");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn links_across_three_workers_match_their_shape() {
    if !can_run_real_mode("links_across_three_workers_match_their_shape") {
        return;
    }
    let cluster = Cluster::start("links", 3);
    let path = script(
        cluster.dir.path(),
        r#"
        // Unshaped pair across workers 0 and 1: the baseline (veth + encapsulation).
        let b0 = alloc_ip(1, #{ worker: 0 })[0];
        let b1 = alloc_ip(1, #{ worker: 1 })[0];
        // a on worker 0, b on worker 1, c on worker 2.
        let a = alloc_ip(1, #{ worker: 0, group: "eu" })[0];
        let b = alloc_ip(1, #{ worker: 1, group: "eu" })[0];
        let c = alloc_ip(1, #{ worker: 2, group: "us" })[0];
        shape(a, #{ latency: "5ms", up: "10mbit", down: "10mbit" });
        shape(b, #{ latency: "10ms", up: "10mbit", down: "10mbit" });
        shape(c, #{ latency: "30ms" });
        link_groups("eu", "us", #{ latency: "20ms" });
        alloc_ip(6);
        spawn(b0, `ping -c 20 -i 0.1 -I ${b0.ip} ${b1.ip}`).wait();
        spawn(a, `ping -c 20 -i 0.1 -I ${a.ip} ${b.ip}`).wait();
        spawn(a, `ping -c 20 -i 0.1 -I ${a.ip} ${c.ip}`).wait();
        spawn(b, `iperf3 -s -1 -B ${b.ip}`);
        sleep(0.5);
        spawn(a, `iperf3 -c ${b.ip} -B ${a.ip} -t 8 -J`).wait();
        sleep(0.5);
        "#,
    );
    let out = cluster.dir.path().join("out");
    let (code, stderr) = cluster.run_script(&path, &out, &["--seed", "3"]);
    assert_eq!(
        code,
        0,
        "controller failed: {stderr}\n{}",
        cluster.worker_log(1)
    );
    let events = read_events(&out.join("events.jsonl"));
    // Pinned nodes where asked; the six others spread evenly by weight.
    let workers: Vec<i64> = of(&events, "alloc_ip")
        .iter()
        .map(|e| e["worker"].as_i64().unwrap())
        .collect();
    assert_eq!(workers[..5], [0, 1, 0, 1, 2], "{workers:?}");
    for w in 0..3 {
        assert_eq!(
            workers[5..].iter().filter(|&&x| x == w).count(),
            2,
            "{workers:?}"
        );
    }
    let log = |ip: &str, file: &str| {
        std::fs::read_to_string(out.join("nodes").join(ip).join(file))
            .unwrap_or_else(|e| panic!("{ip}/{file} was not collected: {e}"))
    };
    // Node folders of every worker were collected into the controller's results.
    let base = median(ping_rtts(&log("10.0.0.1", "stdout.log")));
    let ab = median(ping_rtts(&log("10.0.0.2", "stdout.log"))[..20].to_vec());
    let ac = median(ping_rtts(&log("10.0.0.2", "stdout.log"))[20..].to_vec());
    assert!(base < 1.0, "unshaped cross-worker RTT {base} ms");
    // a-b: 2 x (5 + 10) ms; a-c: 2 x (5 + 30 + 20) ms, plus the unshaped baseline and the
    // serialisation of 84-byte pings at 10 mbit (up and down, both ways: ~0.27 ms).
    let serial = 4.0 * 84.0 * 8.0 / 10e6 * 1e3;
    assert!(
        (ab - (30.0 + base + serial)).abs() < 0.5,
        "a-b RTT {ab} ms (base {base})"
    );
    let serial_c = 2.0 * 84.0 * 8.0 / 10e6 * 1e3;
    assert!(
        (ac - (110.0 + base + serial_c)).abs() < 0.5,
        "a-c RTT {ac} ms (base {base})"
    );
    let client = log("10.0.0.2", "stdout.log");
    let json = &client[client.find("{\n").expect("iperf3 JSON in a's output")..];
    let iperf: serde_json::Value = serde_json::from_str(json).expect("iperf3 JSON");
    let goodput = iperf["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    let expected = 10e6 * 1448.0 / 1500.0;
    assert!(
        (goodput / expected - 1.0).abs() < 0.03,
        "goodput {goodput:.0} bit/s, expected {expected:.0}"
    );
}

#[test]
fn a_lost_worker_stops_the_run_with_exit_code_3() {
    if !can_run_real_mode("a_lost_worker_stops_the_run_with_exit_code_3") {
        return;
    }
    let mut cluster = Cluster::start("lost", 3);
    let path = script(
        cluster.dir.path(),
        r#"
        let nodes = alloc_ip(6);
        for n in nodes { spawn(n, "sleep 300"); spawn(n, `echo hello from ${n.ip}`); }
        log("all spawned");
        sleep(60);
        "#,
    );
    let out = cluster.dir.path().join("out");
    let mut controller = cluster
        .command(
            0,
            &[
                "script",
                path.to_str().unwrap(),
                "--workers",
                cluster.workers_file().to_str().unwrap(),
                "--token-file",
                cluster.token.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "-q",
            ],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the processes run, then kill worker 2 as a crash would.
    let started = Instant::now();
    while !std::fs::read_to_string(out.join("events.jsonl"))
        .is_ok_and(|s| s.contains("all spawned"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the script never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let survivors = [cluster.worker_pid(1), cluster.worker_pid(3)];
    cluster.kill_worker(2);
    let killed_at = Instant::now();
    let status = controller.wait().unwrap();
    let took = killed_at.elapsed();
    let mut stderr = String::new();
    use std::io::Read;
    controller
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("worker 1") && stderr.contains("was lost"),
        "{stderr}"
    );
    let events = read_events(&out.join("events.jsonl"));
    let lost = of(&events, "worker_lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["worker"], 1);
    let t_lost = lost[0]["t"].as_f64().unwrap();
    let t_log = of(&events, "log")[0]["t"].as_f64().unwrap();
    assert!(
        t_lost - t_log < 3.0 + 0.5 + 0.1,
        "noticed {} s after the kill",
        t_lost - t_log - 0.5
    );
    assert!(
        took < Duration::from_secs(10),
        "the controller took {took:?} to stop"
    );
    assert_eq!(
        events.last().unwrap()["event"],
        "end",
        "events.jsonl is complete"
    );
    // The surviving workers removed their labs and processes, and sent their node folders.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = survivors
            .iter()
            .flat_map(|&p| common::namespaces_of(p))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "labs left on surviving machines: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for ip in ["10.0.0.1", "10.2.0.1"] {
        let said = std::fs::read_to_string(out.join("nodes").join(ip).join("stdout.log")).unwrap();
        assert_eq!(said.trim(), format!("hello from {ip}"));
    }
}

#[test]
fn a_swarm_across_workers_completes() {
    if !can_run_real_mode("a_swarm_across_workers_completes") {
        return;
    }
    let cluster = Cluster::start("swarm", 3);
    let out = cluster.dir.path().join("out");
    let (code, stderr) = cluster.run_script(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bittorrent.rhai"
        )),
        &out,
        &["--seed", "1", "--set", "peers=10", "--set", "size_kb=1024"],
    );
    assert_eq!(
        code,
        0,
        "controller failed: {stderr}\n{}",
        cluster.worker_log(2)
    );
    let events = read_events(&out.join("events.jsonl"));
    let workers: std::collections::BTreeSet<i64> = of(&events, "alloc_ip")
        .iter()
        .map(|e| e["worker"].as_i64().unwrap())
        .collect();
    assert_eq!(workers.len(), 3, "peers on every worker");
    common::swarm::check_swarm(&out, 10);
}
