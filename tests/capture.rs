//! Packet captures: `capture` writes `nodes/<ip>/capture.pcap` that tcpdump reads, with
//! what the node's access link sent and received at the moments it did, in packets of the
//! MTU, up to `max_size`; a dry-run only records it; bad options are script errors.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Scenario, can_run_real_mode_with, of, real_run};
use serde_json::Value;

/// `tcpdump -r FILE -n -tt`: one line per packet, its time in seconds first.
fn tcpdump(file: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-r", &file.to_string_lossy(), "-n", "-tt"])
        .output()
        .expect("tcpdump");
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The time of a tcpdump line and the rest of it.
fn split_time(line: &str) -> (f64, &str) {
    let (t, rest) = line.split_once(' ').expect("a time, then the packet");
    (t.parse().expect("seconds"), rest)
}

/// The link type and each record's length on the link, read straight from the file.
fn pcap_records(bytes: &[u8]) -> (u32, Vec<u32>) {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 0xa1b2_3c4d, "little-endian, nanosecond pcap");
    let mut lens = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let kept = word(at + 8) as usize;
        lens.push(word(at + 12));
        at += 16 + kept;
    }
    assert_eq!(at, bytes.len(), "whole records only");
    (word(20), lens)
}

fn summary(s: &Scenario) -> Value {
    serde_json::from_str(&std::fs::read_to_string(s.out().join("summary.json")).unwrap()).unwrap()
}

fn wall_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Each node's file holds the five requests and five replies once each, stamped when its
/// link carried them: the request leaves A, reaches B two link latencies later, and so on.
#[test]
fn both_ends_of_a_ping_capture_every_packet_when_their_links_carry_it() {
    if !can_run_real_mode_with(
        "both_ends_of_a_ping_capture_every_packet_when_their_links_carry_it",
        &["ping", "tcpdump"],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        shape(n, #{ latency: "10ms" });
        capture(n);
        spawn(n[0], `ping -c 5 -i 0.2 -I {ip} ${n[1].ip}`).wait();
        "#,
    );
    let before = wall_secs();
    real_run(&s);
    let after = wall_secs();
    let (a, b) = ("10.0.0.1", "10.0.0.2");
    let request = format!("IP {a} > {b}: ICMP echo request");
    let reply = format!("IP {b} > {a}: ICMP echo reply");
    let mut times = Vec::new();
    for ip in [a, b] {
        let lines = tcpdump(&s.out().join("nodes").join(ip).join("capture.pcap"));
        assert_eq!(lines.len(), 10, "{ip}: {lines:#?}");
        let kinds: Vec<(f64, bool)> = lines
            .iter()
            .map(|l| {
                let (t, rest) = split_time(l);
                assert!(
                    rest.starts_with(&request) || rest.starts_with(&reply),
                    "{ip}: {l}"
                );
                assert!(t >= before && t <= after, "{ip}: {t} not in the run: {l}");
                (t, rest.starts_with(&request))
            })
            .collect();
        let requests: Vec<f64> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        let replies: Vec<f64> = kinds.iter().filter(|k| !k.1).map(|k| k.0).collect();
        assert_eq!((requests.len(), replies.len()), (5, 5), "{ip}: {lines:#?}");
        times.push((requests, replies));
    }
    let ((a_req, a_rep), (b_req, b_rep)) = (&times[0], &times[1]);
    for i in 0..5 {
        // Two 10 ms links between each tap; the data plane is never early, and a late
        // write is some µs (a stalled machine: some ms).
        let hops = [
            (a_req[i], b_req[i], 0.020, "request A→B"),
            (b_req[i], b_rep[i], 0.0, "B answers"),
            (b_rep[i], a_rep[i], 0.020, "reply B→A"),
        ];
        for (from, to, want, what) in hops {
            let d = to - from;
            assert!(
                d >= want - 0.000_1 && d < want + 0.050,
                "ping {i}, {what}: {d} s"
            );
        }
    }
}

/// A capture stops at its cap, whole records under it, and says so in summary.json.
#[test]
fn a_capture_stops_at_its_max_size_and_the_cap_is_counted() {
    if !can_run_real_mode_with(
        "a_capture_stops_at_its_max_size_and_the_cap_is_counted",
        &["ping", "tcpdump"],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        capture(n[0], #{ max_size: "1kb" });
        spawn(n[0], `ping -c 50 -i 0.01 -I {ip} ${n[1].ip}`).wait();
        "#,
    );
    real_run(&s);
    let file = s.out().join("nodes/10.0.0.1/capture.pcap");
    let bytes = std::fs::read(&file).unwrap();
    // 24 bytes of file header, then 16 + 84 per ping packet: ten fill 1024 bytes exactly.
    assert!(bytes.len() <= 1024, "{} bytes", bytes.len());
    let (linktype, lens) = pcap_records(&bytes);
    assert_eq!(linktype, 101, "raw IPv4");
    assert_eq!(lens, [84; 10]);
    assert_eq!(tcpdump(&file).len(), 10);
    assert!(
        !s.out().join("nodes/10.0.0.2/capture.pcap").exists(),
        "only n[0] was captured"
    );
    let dp = &summary(&s)["dataplane"][0];
    assert_eq!(dp["capture_capped"], 1, "{dp}");
    assert_eq!(dp["captured_packets"], 10, "{dp}");
    assert_eq!(dp["capture_errors"], 0, "{dp}");
}

/// An unshaped TCP transfer would move in super-packets of up to 64 KiB; captured, it moves
/// (and is captured) in packets of the MTU, with the checksums the kernel left to the card
/// filled in.
#[test]
fn a_captured_transfer_is_made_of_packets_of_the_mtu_with_their_checksums() {
    if !can_run_real_mode_with(
        "a_captured_transfer_is_made_of_packets_of_the_mtu_with_their_checksums",
        &["python3", "curl", "tcpdump"],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
        let n = alloc_ip(2);
        capture(n[0]);
        spawn(n[1], "head -c 2000000 /dev/zero > blob", #{ shell: true }).wait();
        spawn(n[1], "python3 -m http.server 8000");
        sleep(1);
        let code = spawn(n[0], `curl -s -o blob http://${n[1].ip}:8000/blob`).wait();
        metric("curl_exit", code);
        "#,
    );
    real_run(&s);
    assert_eq!(common::metric(&s.events(), "curl_exit"), 0.0);
    let file = s.out().join("nodes/10.0.0.1/capture.pcap");
    let bytes = std::fs::read(&file).unwrap();
    let (_, lens) = pcap_records(&bytes);
    let total: u64 = lens.iter().map(|&l| u64::from(l)).sum();
    assert!(total > 2_000_000, "the whole download: {total} bytes");
    let largest = lens.iter().max().copied().unwrap_or(0);
    assert!(largest <= 1500, "a packet of {largest} bytes");
    // `-vv` checks the IP, TCP and UDP checksums of every packet.
    let out = Command::new("tcpdump")
        .args(["-r", &file.to_string_lossy(), "-n", "-vv"])
        .output()
        .expect("tcpdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let checked = text.matches("cksum").count();
    assert!(
        checked >= lens.len(),
        "{checked} checksums in {} packets",
        lens.len()
    );
    let bad: Vec<&str> = text.lines().filter(|l| l.contains("incorrect")).collect();
    assert!(
        bad.is_empty(),
        "{} bad checksums: {:#?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
}

#[test]
fn a_dry_run_records_captures_and_writes_no_file() {
    let s = Scenario::new(
        r#"
        let n = alloc_ip(3, #{ group: "dsl" });
        capture("dsl", #{ snaplen: 96, max_size: "64kb" });
        capture(n[0]);
        sleep(1);
        stop_capture(n[0]);
        stop_capture(n[0]);
        "#,
    );
    let events = s.run_ok();
    let captures = of(&events, "capture");
    assert_eq!(captures.len(), 3, "n[0] was captured already: {captures:?}");
    assert_eq!(captures[0]["ip"], "10.0.0.1");
    assert_eq!(captures[0]["snaplen"], 96);
    assert_eq!(captures[0]["max_size"], 65536);
    let stops = of(&events, "stop_capture");
    assert_eq!(stops.len(), 1, "once: {stops:?}");
    assert_eq!(stops[0]["t"], 1.0);
    assert!(!s.out().join("nodes").exists());
}

#[test]
fn bad_capture_options_are_errors_at_the_call() {
    let cases = [
        (
            "#{ snaplen: -1 }",
            "capture: snaplen: a size must be between 1 byte and 1 TiB, got -1 bytes",
        ),
        (
            "#{ snaplen: \"1mb\" }",
            "capture: snaplen: expected at most 262144 bytes",
        ),
        (
            "#{ max_size: \"big\" }",
            "capture: max_size: \"big\" is not a size (try \"64kb\" or \"1500b\")",
        ),
        (
            "#{ max_size: 10 }",
            "capture: max_size: expected at least 40 bytes",
        ),
        (
            "#{ snap: 96 }",
            "capture: unknown option \"snap\" (expected one of: snaplen, max_size)",
        ),
    ];
    for (opts, words) in cases {
        let script = format!("let n = alloc_ip(1);\n  capture(n, {opts});\n");
        let err = Scenario::new(&script).run_err();
        assert!(err.contains("main.rhai:2:3: "), "{opts}: {err}");
        assert!(err.contains(words), "{opts}: expected {words:?} in {err:?}");
    }
    let err = Scenario::new("capture(42);\n").run_err();
    assert!(
        err.contains("main.rhai:1:1: capture: expected a Node, an array of Nodes or a group name"),
        "{err}"
    );
}

/// With two workers each captures its own node; the files reach the controller whole.
#[test]
fn each_worker_captures_its_own_nodes_and_the_files_are_collected() {
    if !can_run_real_mode_with(
        "each_worker_captures_its_own_nodes_and_the_files_are_collected",
        &["ping", "tcpdump", "ip"],
    ) {
        return;
    }
    let cluster = common::machines::Cluster::start("capture", 2);
    let path = cluster.dir.path().join("capture.rhai");
    std::fs::write(
        &path,
        r#"
        let a = alloc_ip(1, #{ worker: 0 })[0];
        let b = alloc_ip(1, #{ worker: 1 })[0];
        capture([a, b]);
        spawn(a, `ping -c 5 -i 0.2 -I {ip} ${b.ip}`).wait();
        "#,
    )
    .unwrap();
    let out = cluster.dir.path().join("out");
    let (code, stderr) = cluster.run_script(&path, &out, &[]);
    assert_eq!(code, 0, "controller failed: {stderr}");
    let (a, b) = ("10.0.0.1", "10.1.0.1");
    for ip in [a, b] {
        let lines = tcpdump(&out.join("nodes").join(ip).join("capture.pcap"));
        let requests = lines
            .iter()
            .filter(|l| {
                split_time(l)
                    .1
                    .starts_with(&format!("IP {a} > {b}: ICMP echo request"))
            })
            .count();
        let replies = lines
            .iter()
            .filter(|l| {
                split_time(l)
                    .1
                    .starts_with(&format!("IP {b} > {a}: ICMP echo reply"))
            })
            .count();
        assert_eq!(
            (lines.len(), requests, replies),
            (10, 5, 5),
            "{ip}: {lines:#?}"
        );
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let captured: Vec<&Value> = summary["dataplane"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["captured_packets"])
        .collect();
    assert_eq!(captured, [10, 10], "{}", summary["dataplane"]);
}
