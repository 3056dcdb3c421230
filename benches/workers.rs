//! Controller → worker speed (needs root): allocating and shaping 10,000 nodes, pipelined
//! commands per second, and awaited round trips per second (`fail_node`), on the embedded
//! worker and on three workers in three network namespaces, side by side in one run; then
//! unshaped iperf3 goodput between two nodes of one worker and of two workers.
//!   cargo bench --bench workers

#[path = "../tests/common/machines.rs"]
#[allow(dead_code)]
mod machines;

const RUNS: usize = 3;
const NODES: usize = 10_000;
const ROUND_TRIPS: usize = 2_000;

const SCRIPT: &str = r#"
let t0 = now();
let nodes = alloc_ip(NODES);
let t1 = now();
shape(nodes, #{ up: "1mbit", down: "2mbit", latency: "10ms" });
// Pipelined commands are done once an awaited one behind them returns, on every worker
// (nodes 0, 1, 2 live on workers 0, 1, 2 when there are three).
for i in 0..3 { fail_node(nodes[i]); }
let t2 = now();
for i in 3..ROUND_TRIPS + 3 { fail_node(nodes[i]); }
let t3 = now();
metric("alloc_s", t1 - t0);
metric("shape_s", t2 - t1);
metric("fail_s", t3 - t2);
"#;

const THROUGHPUT: &str = r#"
let a = alloc_ip(1, #{ worker: 0 })[0];
let b = alloc_ip(1, #{ worker: param("far", 0) })[0];
spawn(b, `iperf3 -s -1 -B ${b.ip}`);
sleep(0.5);
spawn(a, `iperf3 -c ${b.ip} -B ${a.ip} -t 5 -J`).wait();
sleep(0.2);
"#;

/// Goodput of the iperf3 client of a THROUGHPUT run, in Gbit/s.
fn goodput(out: &std::path::Path) -> f64 {
    let log = std::fs::read_to_string(out.join("nodes/10.0.0.1/stdout.log")).expect("iperf3 log");
    let json: serde_json::Value = serde_json::from_str(&log[log.find('{').unwrap()..]).unwrap();
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e9
}

fn metrics(out: &std::path::Path) -> (f64, f64, f64) {
    let text = std::fs::read_to_string(out.join("events.jsonl")).expect("events.jsonl");
    let get = |name: &str| {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["event"] == "metric" && e["name"] == name)
            .and_then(|e| e["value"].as_f64())
            .unwrap_or_else(|| panic!("no metric {name}"))
    };
    (get("alloc_s"), get("shape_s"), get("fail_s"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root (network namespaces, TUN devices)");
        return;
    }
    let cluster = machines::Cluster::start("bench", 3);
    let script = cluster.dir.path().join("bench.rhai");
    let text = SCRIPT
        .replace("ROUND_TRIPS", &ROUND_TRIPS.to_string())
        .replace("NODES", &NODES.to_string());
    std::fs::write(&script, text).unwrap();
    let mut results = Vec::new();
    for (name, remote) in [("embedded worker", false), ("3 workers", true)] {
        let mut runs = Vec::new();
        for run in 0..RUNS {
            let out = cluster.dir.path().join(format!("out-{remote}-{run}"));
            let (code, err) = if remote {
                cluster.run_script(&script, &out, &[])
            } else {
                cluster.run_alone(&script, &out, &[])
            };
            assert_eq!(code, 0, "{err}");
            runs.push(metrics(&out));
        }
        let alloc = median(runs.iter().map(|r| r.0).collect());
        let shape = median(runs.iter().map(|r| r.1).collect());
        let fail = median(runs.iter().map(|r| r.2).collect());
        let workers = if remote { 3.0 } else { 1.0 };
        // Every alloc and shape goes to every worker (each data plane models half of each
        // link), and the three fail_node of the sync point to every worker too.
        let commands = (2.0 * NODES as f64 + 3.0) * workers;
        println!(
            "{name:>16}: alloc {NODES} {:>6.0} ms, shape {NODES} {:>6.0} ms (together {:>6.0} ms); \
             pipelined {:>7.0} commands/s done; awaited fail_node {:>6.0}/s",
            alloc * 1e3,
            shape * 1e3,
            (alloc + shape) * 1e3,
            commands / (alloc + shape),
            ROUND_TRIPS as f64 / fail
        );
        results.push(alloc + shape);
    }
    println!(
        "alloc+shape of {NODES} nodes over 3 workers / embedded: {:.2} (median of {RUNS})",
        results[1] / results[0]
    );

    let script = cluster.dir.path().join("throughput.rhai");
    std::fs::write(&script, THROUGHPUT).unwrap();
    let mut rates = Vec::new();
    for (name, far) in [
        ("embedded worker, one pair", None),
        ("3 workers, same worker", Some("0")),
        ("3 workers, across two", Some("1")),
    ] {
        let mut runs = Vec::new();
        for run in 0..RUNS {
            let out = cluster
                .dir
                .path()
                .join(format!("tp-{name}-{run}").replace(' ', "_"));
            let (code, err) = match far {
                Some(far) => cluster.run_script(&script, &out, &["--set", &format!("far={far}")]),
                None => cluster.run_alone(&script, &out, &[]),
            };
            assert_eq!(code, 0, "{err}");
            runs.push(goodput(&out));
        }
        let rate = median(runs);
        println!("{name:>26}: unshaped iperf3 {rate:>6.2} Gbit/s (median of {RUNS})");
        rates.push(rate);
    }
    println!(
        "across two workers / embedded: {:.2}; same worker with others / embedded: {:.2}",
        rates[2] / rates[0],
        rates[1] / rates[0]
    );
}
