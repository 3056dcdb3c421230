//! How the cost of a dry-run grows with the swarm: a churn loop over 1k, 10k and 50k nodes,
//! four steps per node (pick a node, fail it, revive it, reshape it), choosing nodes with
//! `pick(peers)` and, as the baseline in the same run, by index (`peers[rand_int(..)]`, which
//! copies nothing). Then a loop that records four samples a node in an array (`push`, `len`),
//! and the stdlib's `churn::run` over the same swarms. Prints the time per node for each
//! size: a primitive that copies or measures its array on every call makes it grow with the
//! swarm (quadratic in all), a linear one keeps it flat. Rhai itself measured the array after
//! every such call until the patch in `vendor/rhai` (vendor/README.md).
//!
//!     cargo bench --bench script_scale

use std::time::{Duration, Instant};

use p2plab::run::{self, RunConfig};

const SIZES: [usize; 3] = [1_000, 10_000, 50_000];

/// The churn loop; `CHOOSE` is how a node is chosen.
const LOOP: &str = r#"
let n = param("n").parse_int();
let peers = alloc_ip(n, #{ group: "peers" });
for i in 0..(4 * n) {
    sleep(0.01);
    let p = CHOOSE;
    fail_node(p);
    revive(p);
    shape(p, #{ latency: "20ms" });
}
"#;

/// Samples kept in an array as they come, as a lab keeps its measurements.
const SAMPLES: &str = r#"
let n = param("n").parse_int();
let peers = alloc_ip(n, #{ group: "peers" });
let samples = [];
for i in 0..(4 * n) {
    samples.push(i * 0.5);
    if samples.len() % 1000 == 0 { sleep(0.01); }
}
"#;

/// The stdlib's churn over the whole swarm for ten minutes.
const CHURN: &str = r#"
import "churn" as churn;
let n = param("n").parse_int();
let peers = alloc_ip(n, #{ group: "peers" });
churn::run(peers, 0, 600, #{ session: #{ dist: "exp", mean: 300 }, downtime: #{ dist: "exp", mean: 120 } });
sleep(600);
"#;

fn dry_run(dir: &std::path::Path, name: &str, text: &str, n: usize) -> (Duration, u64) {
    let script = dir.join(format!("{name}.rhai"));
    std::fs::write(&script, text).unwrap();
    let mut cfg = RunConfig::new(&script);
    cfg.seed = Some(1);
    cfg.out = Some(dir.join(format!("{name}-{n}")));
    cfg.params.insert("n".into(), n.to_string());
    let start = Instant::now();
    let out = run::dry_run(cfg).unwrap_or_else(|e| panic!("{name} with {n} nodes: {e}"));
    (start.elapsed(), out.report.events)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("pick", LOOP.replace("CHOOSE", "pick(peers)")),
        ("index", LOOP.replace("CHOOSE", "peers[rand_int(0, n - 1)]")),
        ("samples", SAMPLES.to_string()),
        ("churn", CHURN.to_string()),
    ];
    println!("dry-run time per node as the swarm grows (flat = linear in the swarm)");
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>12}",
        "case", "nodes", "events", "time s", "us / node"
    );
    let mut worst: f64 = 0.0;
    for (name, text) in &cases {
        let mut per_node = Vec::new();
        for n in SIZES {
            let (took, events) = dry_run(dir.path(), name, text, n);
            let us = took.as_secs_f64() * 1e6 / n as f64;
            per_node.push(us);
            println!(
                "{name:>8} {n:>8} {events:>10} {:>10.2} {us:>12.1}",
                took.as_secs_f64()
            );
        }
        let growth = per_node[2] / per_node[0];
        worst = worst.max(growth);
        println!("{name:>8} per-node time at 50k / at 1k: {growth:.2}");
    }
    // Linear within noise and the log factors of heaps and maps; a copy per call would
    // make it 50×.
    println!("worst growth of the per-node time from 1k to 50k nodes: {worst:.2} (linear: < 3)");
    if worst >= 3.0 {
        eprintln!("a dry-run's cost grows faster than the swarm");
        std::process::exit(1);
    }
}
