//! Set-up cost of a large topology: a 2,500-vertex complete graph in GML (integer-ms
//! latencies, a few lossy edges, like Shadow's RIPE Atlas graph: ~3.1 million edges) and a
//! sparse one of the same size (shortest paths), each with 10,000 nodes placed at random in a
//! dry-run. Reports the time to read the graph, to compute every vertex's paths (the
//! library alone), the dry-runs' wall time with the load only and with the placement, and the
//! peak memory (VmHWM) of each run, which runs in a process of its own.
//!
//!     cargo bench --bench topology
//!     cargo build --release && P2PLAB_BENCH_REAL=1 cargo bench --bench topology
//!         # also real mode (root, the bind shim built): with the embedded worker's memory

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use p2plab::run::{self, RunConfig};
use p2plab::topology::{Naming, shadow};

const VERTICES: u32 = 2_500;
const NODES: u32 = 10_000;
/// The environment variable that makes this program run one case and print its figures.
const CASE: &str = "P2PLAB_BENCH_TOPOLOGY_CASE";

/// A deterministic stream of numbers, so both graphs are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn node_lines(out: &mut String) {
    out.push_str("graph [\n  directed 0\n");
    for v in 0..VERTICES {
        let _ = writeln!(
            out,
            "  node [ id {v} label \"city{v}\" host_bandwidth_up \"20 Mbit\" host_bandwidth_down \"100 Mbit\" ]"
        );
    }
}

fn edge(out: &mut String, rng: &mut Lcg, a: u32, b: u32) {
    let latency = 1 + rng.next() % 150;
    // One edge in 50 loses packets, like the few lossy paths of a measured graph.
    let loss = if rng.next().is_multiple_of(50) {
        "0.01"
    } else {
        "0.0"
    };
    let _ = writeln!(
        out,
        "  edge [ source {a} target {b} latency \"{latency} ms\" packet_loss {loss} ]"
    );
}

/// Every pair and every self-loop.
fn complete_gml() -> String {
    let mut out = String::with_capacity(220 << 20);
    let mut rng = Lcg(1);
    node_lines(&mut out);
    for a in 0..VERTICES {
        for b in a..VERTICES {
            edge(&mut out, &mut rng, a, b);
        }
    }
    out.push_str("]\n");
    out
}

/// A ring with three random chords per vertex: ~10,000 edges, paths of several hops.
fn sparse_gml() -> String {
    let mut out = String::new();
    let mut rng = Lcg(2);
    node_lines(&mut out);
    for a in 0..VERTICES {
        edge(&mut out, &mut rng, a, a);
        edge(&mut out, &mut rng, a, (a + 1) % VERTICES);
        for _ in 0..3 {
            let b = (rng.next() % u64::from(VERTICES)) as u32;
            edge(&mut out, &mut rng, a, b);
        }
    }
    out.push_str("]\n");
    out
}

fn peak_memory_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One case in this process: prints `seconds peak_mb`.
fn run_case(case: &str) {
    let mut parts = case.splitn(3, ':');
    let (what, mode, dir) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        Path::new(parts.next().unwrap_or_default()),
    );
    let gml = dir.join(format!("{what}.gml"));
    let start = Instant::now();
    match mode {
        "paths" => {
            let text = std::fs::read_to_string(&gml).expect("read graph");
            let g = shadow::read("g.gml", &text, Naming::Auto).expect("graph");
            let routing = g.routing(false);
            for v in 0..VERTICES {
                g.paths_from(v, routing).expect("paths");
            }
        }
        _ => {
            let place = if mode == "load" {
                String::new()
            } else {
                format!("t.place({NODES}, #{{ by: \"random\" }});")
            };
            let script = dir.join(format!("{what}-{mode}.rhai"));
            std::fs::write(
                &script,
                format!("let t = load_gml(\"{what}.gml\");\n{place}\n"),
            )
            .expect("write script");
            let mut cfg = RunConfig::new(&script);
            cfg.seed = Some(1);
            cfg.out = Some(dir.join(format!("out-{what}-{mode}")));
            if mode == "real" {
                run::real(cfg).expect("real run");
            } else {
                run::dry_run(cfg).expect("dry-run");
            }
        }
    }
    println!(
        "{:.3} {:.0}",
        start.elapsed().as_secs_f64(),
        peak_memory_mb()
    );
}

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut modes = vec!["paths", "load", "place"];
    if std::env::var("P2PLAB_BENCH_REAL").is_ok_and(|v| v == "1") {
        modes.push("real");
    }
    println!(
        "{VERTICES} vertices, {NODES} nodes placed at random; seconds of wall time, peak memory (VmHWM) of the process"
    );
    println!(
        "{:<9} {:>9} {:>9} {:>22} {:>10}",
        "graph", "edges", "GML MB", "case", "s / MB"
    );
    for (what, text) in [("complete", complete_gml()), ("sparse", sparse_gml())] {
        let edges = text.matches("edge [").count();
        std::fs::write(dir.path().join(format!("{what}.gml")), &text).expect("write graph");
        let mb = text.len() as f64 / 1e6;
        drop(text);
        for mode in &modes {
            let case = format!("{what}:{mode}:{}", dir.path().display());
            let out = Command::new(std::env::current_exe().expect("this program"))
                .env(CASE, &case)
                .output()
                .expect("run case");
            let figures = String::from_utf8_lossy(&out.stdout);
            let label = match *mode {
                "paths" => "read + every row (lib)",
                "load" => "dry-run: load",
                "place" => "dry-run: load + place",
                _ => "real: load + place",
            };
            let figures = figures.trim();
            let shown = if out.status.success() {
                figures.replace(' ', " / ")
            } else {
                format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim())
            };
            println!("{what:<9} {edges:>9} {mb:>9.0} {label:>22} {shown:>10}");
        }
    }
}
