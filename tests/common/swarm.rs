//! Checks of a finished `scripts/bittorrent.rhai` run, on one machine or several.

use std::collections::BTreeSet;
use std::path::Path;

use super::{metric, of, read_events};

/// The programs `scripts/bittorrent.rhai` runs.
pub const PROGRAMS: &[&str] = &["opentracker", "ctorrent", "python3", "md5sum"];

/// Every peer finished with the seed's file, and the tracker saw each peer and the seed at
/// its own address. Node addresses come from the run's `alloc_ip` events.
pub fn check_swarm(out: &Path, peers: usize) {
    let events = read_events(&out.join("events.jsonl"));
    let ips = |group: &str| -> Vec<String> {
        of(&events, "alloc_ip")
            .iter()
            .filter(|e| e["group"] == group)
            .map(|e| e["ip"].as_str().unwrap().to_string())
            .collect()
    };
    let infra = ips("infra");
    let (probe, seed, leechers) = (&infra[1], &ips("seed")[0], ips("dsl"));
    assert_eq!(leechers.len(), peers);
    assert_eq!(
        metric(&events, "peers_done"),
        peers as f64,
        "not every peer finished\n{}",
        diagnose(out, &events, probe)
    );
    assert_eq!(
        metric(&events, "peers_intact"),
        peers as f64,
        "a peer has a corrupt file"
    );
    let seed_file = std::fs::read(out.join("nodes").join(seed).join("file.bin")).unwrap();
    for ip in &leechers {
        let copy = std::fs::read(out.join("nodes").join(ip).join("file.bin")).unwrap();
        assert!(copy == seed_file, "{ip} has a different file");
    }
    let seen: BTreeSet<String> =
        std::fs::read_to_string(out.join("nodes").join(probe).join("tracker-peers.txt"))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
    for ip in leechers.iter().chain(std::iter::once(seed)) {
        assert!(
            seen.contains(ip),
            "the tracker never listed {ip}: it saw {seen:?}\n{}",
            diagnose(out, &events, probe)
        );
    }
    assert!(seen.iter().all(|ip| ip.starts_with("10.")), "{seen:?}");
}

/// What the tracker and the probe said, for a failure message that explains itself.
fn diagnose(out: &Path, events: &[serde_json::Value], probe: &str) -> String {
    let tail = |ip: &str, file: &str| {
        let text =
            std::fs::read_to_string(out.join("nodes").join(ip).join(file)).unwrap_or_default();
        let start = text.len().saturating_sub(1500);
        format!("--- {ip}/{file}:\n{}", text.get(start..).unwrap_or(&text))
    };
    let probe_exits: Vec<String> = events
        .iter()
        .filter(|e| e["ip"] == probe && e["event"] == "exit")
        .map(|e| e.to_string())
        .take(5)
        .collect();
    [
        tail("10.0.0.1", "stderr.log"),
        tail("10.0.0.1", "stdout.log"),
        tail(probe, "stderr.log"),
        tail("10.0.0.1", "infohash"),
        format!("--- first probe exits: {probe_exits:#?}"),
    ]
    .join("\n")
}
