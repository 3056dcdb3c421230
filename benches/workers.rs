//! Controller → worker speed (needs root): allocating and shaping 10,000 nodes, pipelined
//! commands per second, and awaited round trips per second (`fail_node`), on the embedded
//! worker and on three workers in three network namespaces, side by side in one run; then
//! unshaped iperf3 goodput between two nodes of one worker and of two workers. Nodes,
//! commands and round trips are counted in each run's `events.jsonl`, and every timed step
//! ends with an awaited command on every worker. With `P2PLAB_BASELINE` naming another
//! p2plab binary (say, a release build of an earlier commit, its shim beside it), the goodput
//! across two workers is measured for both builds in turn on the same machines, and the
//! medians and their ratio printed. Arguments pick sections: `commands`, `throughput`,
//! `baseline` (all by default).
//!   cargo bench --bench workers
//!   P2PLAB_BASELINE=/tmp/baseline/target/release/p2plab cargo bench --bench workers -- baseline

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "workers/baseline.rs"]
mod baseline;

use common::machines;

const RUNS: usize = 3;
const NODES: usize = 10_000;
const ROUND_TRIPS: usize = 2_000;
/// Runs of each build in the comparison with the baseline, alternating.
const AB_RUNS: usize = 7;

/// Three timed steps, each ended by a `log` that marks it in `events.jsonl`.
const SCRIPT: &str = r#"
// Pipelined commands are done once an awaited one behind them returns: `fail_node` waits
// for the node's worker, so a sync point fails one node of each worker (nodes 0, 1, 2 live
// on workers 0, 1, 2 when there are three; checked below, after the clock).
let t0 = now();
let nodes = alloc_ip(NODES);
for i in 0..3 { fail_node(nodes[i]); }
let t1 = now();
log("allocated");
shape(nodes, #{ up: "1mbit", down: "2mbit", latency: "10ms" });
for i in 3..6 { fail_node(nodes[i]); }
let t2 = now();
log("shaped");
for i in 6..ROUND_TRIPS + 6 { fail_node(nodes[i]); }
let t3 = now();
log("round trips done");
let workers = [];
for n in nodes { if !workers.contains(n.worker) { workers.push(n.worker); } }
for from in [0, 3] {
    let reached = [];
    for i in from..from + 3 { if !reached.contains(nodes[i].worker) { reached.push(nodes[i].worker); } }
    if reached.len() != workers.len() {
        throw `the sync point at node ${from} reaches workers ${reached}, nodes live on ${workers}`;
    }
}
metric("alloc_s", t1 - t0);
metric("shape_s", t2 - t1);
metric("fail_s", t3 - t2);
"#;

/// What a SCRIPT run did, counted in its events: the steps between its `log` marks.
#[derive(Debug, PartialEq)]
struct Counted {
    nodes: usize,
    workers: usize,
    /// Actions of the allocation and shaping steps, each sent to every worker.
    pipelined_actions: usize,
    round_trips: usize,
}

fn count(out: &std::path::Path) -> Counted {
    let events = common::read_events(&out.join("events.jsonl"));
    let mut step = 0;
    let mut actions = [0usize; 3];
    let mut round_trips = 0;
    for e in &events {
        match e["event"].as_str() {
            Some("log") => step += 1,
            Some("alloc_ip" | "shape" | "fail_node") if step < 2 => actions[step] += 1,
            Some("fail_node") if step == 2 => round_trips += 1,
            _ => {}
        }
    }
    let allocs = common::of(&events, "alloc_ip");
    let workers: std::collections::BTreeSet<i64> = allocs
        .iter()
        .map(|e| e["worker"].as_i64().expect("alloc_ip names its worker"))
        .collect();
    Counted {
        nodes: allocs.len(),
        workers: workers.len(),
        pipelined_actions: actions[0] + actions[1],
        round_trips,
    }
}

const THROUGHPUT: &str = r#"
let a = alloc_ip(1, #{ worker: 0 })[0];
let b = alloc_ip(1, #{ worker: param("far", 0) })[0];
spawn(a, `ping -c 50 -i 0.02 -I ${a.ip} ${b.ip}`).wait();
spawn(b, `iperf3 -s -1 -B ${b.ip}`);
sleep(0.5);
spawn(a, `iperf3 -c ${b.ip} -B ${a.ip} -t 5 -J`).wait();
sleep(0.2);
"#;

/// Median RTT, in ms, of the pings of a THROUGHPUT run (before its iperf3 flow).
fn ping_rtt(out: &std::path::Path) -> f64 {
    let log = std::fs::read_to_string(out.join("nodes/10.0.0.1/stdout.log")).expect("ping log");
    median(common::ping_rtts(&log))
}

/// Goodput of the iperf3 client of a THROUGHPUT run, in Gbit/s.
fn goodput(out: &std::path::Path) -> f64 {
    let log = std::fs::read_to_string(out.join("nodes/10.0.0.1/stdout.log")).expect("iperf3 log");
    // The ping's lines come first.
    let log = &log[log.find("\n{").map_or(0, |i| i + 1)..];
    let json: serde_json::Value = serde_json::from_str(&log[log.find('{').unwrap()..]).unwrap();
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e9
}

fn metrics(out: &std::path::Path) -> (f64, f64, f64) {
    let events = common::read_events(&out.join("events.jsonl"));
    let get = |name: &str| common::metric(&events, name);
    (get("alloc_s"), get("shape_s"), get("fail_s"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    if !common::can_run_real_mode_with("the workers benchmark", &["ip", "iperf3"]) {
        return;
    }
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let baseline = std::env::var_os("P2PLAB_BASELINE").map(std::path::PathBuf::from);
    if sections.iter().any(|s| s == "baseline") && baseline.is_none() {
        panic!("the baseline section needs P2PLAB_BASELINE=<another p2plab binary>");
    }
    let cluster = machines::Cluster::start("bench", 3);
    if wanted("commands") {
        commands(&cluster);
    }
    if wanted("throughput") {
        throughput(&cluster);
    }
    if let Some(program) = baseline.filter(|_| wanted("baseline")) {
        against_baseline(&cluster, &program);
    }
}

/// Allocation, shaping and round trips, on the embedded worker and on three workers.
fn commands(cluster: &machines::Cluster) {
    let script = cluster.dir.path().join("bench.rhai");
    let text = SCRIPT
        .replace("ROUND_TRIPS", &ROUND_TRIPS.to_string())
        .replace("NODES", &NODES.to_string());
    std::fs::write(&script, text).unwrap();
    let mut results = Vec::new();
    for (name, remote) in [("embedded worker", false), ("3 workers", true)] {
        let mut runs = Vec::new();
        let mut counted: Option<Counted> = None;
        for run in 0..RUNS {
            let out = cluster.dir.path().join(format!("out-{remote}-{run}"));
            let (code, err) = if remote {
                cluster.run_script(&script, &out, &[])
            } else {
                cluster.run_alone(&script, &out, &[])
            };
            assert_eq!(code, 0, "{err}");
            runs.push(metrics(&out));
            let c = count(&out);
            if let Some(first) = &counted {
                assert_eq!(&c, first, "run {run} did not do what run 0 did");
            }
            counted = Some(c);
        }
        let c = counted.expect("at least one run");
        let alloc = median(runs.iter().map(|r| r.0).collect());
        let shape = median(runs.iter().map(|r| r.1).collect());
        let fail = median(runs.iter().map(|r| r.2).collect());
        // Every alloc and shape goes to every worker (each data plane models half of each
        // link), and the fail_node of the sync points to every worker too.
        let commands = c.pipelined_actions * c.workers;
        let nodes = c.nodes;
        println!(
            "{name:>16}: alloc {nodes} {:>6.0} ms, shape {nodes} {:>6.0} ms (together {:>6.0} ms); \
             pipelined {:>7.0} commands/s done ({commands} commands to {} workers); \
             awaited fail_node {:>6.0}/s ({} round trips)",
            alloc * 1e3,
            shape * 1e3,
            (alloc + shape) * 1e3,
            commands as f64 / (alloc + shape),
            c.workers,
            c.round_trips as f64 / fail,
            c.round_trips
        );
        results.push(alloc + shape);
    }
    println!(
        "alloc+shape of {NODES} nodes over 3 workers / embedded: {:.2} (median of {RUNS})",
        results[1] / results[0]
    );
}

/// Unshaped goodput: one worker, two nodes of one of three workers, and across two workers.
fn throughput(cluster: &machines::Cluster) {
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

/// Goodput across two workers, the baseline build and this one in turn (the baseline first
/// in even rounds, last in odd ones, so that neither always follows the other), each with its
/// own workers and a controller on machine 1.
fn against_baseline(cluster: &machines::Cluster, program: &std::path::Path) {
    let script = cluster.dir.path().join("throughput.rhai");
    std::fs::write(&script, THROUGHPUT).unwrap();
    let builds = [
        baseline::Build::start(cluster, 3, program),
        baseline::Build::this(cluster),
    ];
    let (mut rates, mut rtts) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..AB_RUNS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for b in order {
            let out = cluster.dir.path().join(format!("ab-{b}-{round}"));
            builds[b].run_script(cluster, &script, &out, &["--set", "far=1"]);
            rates[b].push(goodput(&out));
            rtts[b].push(ping_rtt(&out));
        }
    }
    for (b, name) in [(0, "baseline"), (1, "this build")] {
        let runs: Vec<String> = rates[b].iter().map(|r| format!("{r:.2}")).collect();
        let pings: Vec<String> = rtts[b].iter().map(|r| format!("{r:.3}")).collect();
        println!(
            "{name:>10} ({}): across two workers {:.2} Gbit/s median of {AB_RUNS} [{}], \
             unshaped ping RTT {:.3} ms median of the runs' medians [{}]",
            builds[b].program.display(),
            median(rates[b].clone()),
            runs.join(" "),
            median(rtts[b].clone()),
            pings.join(" ")
        );
    }
    println!(
        "this build / baseline, across two workers: {:.3}",
        median(rates[1].clone()) / median(rates[0].clone())
    );
}
