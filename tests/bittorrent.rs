//! A real BitTorrent swarm (needs root, opentracker and ctorrent): every peer finishes with a
//! correct file, and the tracker saw each peer at its own node address.

mod common;

use std::collections::BTreeSet;

use common::{can_run_real_mode, read_events};
use p2plab::run::{self, RunConfig};

#[test]
fn a_swarm_of_ten_peers_completes() {
    if !can_run_real_mode("a_swarm_of_ten_peers_completes") {
        return;
    }
    for program in ["opentracker", "ctorrent"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{program} is missing, and CI=true forbids skipping (.ci/run installs it)");
            }
            eprintln!("skipping: {program} is not installed (apt-get install {program})");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // opentracker reads its whitelist as user nobody.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = RunConfig::new("scripts/bittorrent.rhai");
    cfg.out = Some(dir.path().join("out"));
    cfg.seed = Some(1);
    cfg.params.insert("peers".into(), "10".into());
    cfg.params.insert("size_kb".into(), "1024".into());
    if let Err(e) = run::real(cfg) {
        panic!("swarm run failed: {e}");
    }
    let out = dir.path().join("out");
    let events = read_events(&out.join("events.jsonl"));
    let done = common::metric(&events, "peers_done");
    assert_eq!(done, 10.0, "not every peer finished");
    // Nodes: tracker .1, probe .2, seed .3, peers .4 to .13.
    let seed_file = std::fs::read(out.join("nodes/10.0.0.3/file.bin")).unwrap();
    assert_eq!(seed_file.len(), 1024 * 1024);
    let peers: Vec<String> = (4..14).map(|i| format!("10.0.0.{i}")).collect();
    for ip in &peers {
        let copy = std::fs::read(out.join("nodes").join(ip).join("file.bin")).unwrap();
        assert!(copy == seed_file, "{ip} has a different file");
    }
    let seen: BTreeSet<String> =
        std::fs::read_to_string(out.join("nodes/10.0.0.2/tracker-peers.txt"))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
    for ip in peers.iter().chain(std::iter::once(&"10.0.0.3".to_string())) {
        assert!(
            seen.contains(ip),
            "the tracker never listed {ip}: it saw {seen:?}\n{}",
            diagnose(&out, &events)
        );
    }
    assert!(seen.iter().all(|ip| ip.starts_with("10.0.0.")), "{seen:?}");
}

/// What the tracker and the probe said, for a failure message that explains itself.
fn diagnose(out: &std::path::Path, events: &[serde_json::Value]) -> String {
    let tail = |ip: &str, file: &str| {
        let text =
            std::fs::read_to_string(out.join("nodes").join(ip).join(file)).unwrap_or_default();
        let start = text.len().saturating_sub(1500);
        format!("--- {ip}/{file}:\n{}", text.get(start..).unwrap_or(&text))
    };
    let probe_exits: Vec<String> = events
        .iter()
        .filter(|e| e["ip"] == "10.0.0.2" && e["event"] == "exit")
        .map(|e| e.to_string())
        .take(5)
        .collect();
    [
        tail("10.0.0.1", "stderr.log"),
        tail("10.0.0.1", "stdout.log"),
        tail("10.0.0.2", "stderr.log"),
        tail("10.0.0.3", "whitelist"),
        format!("--- first probe exits: {probe_exits:#?}"),
    ]
    .join("\n")
}
