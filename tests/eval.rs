//! The seed's evaluation (`eval/`): each experiment's script passes `p2plab check`, and each
//! runs end to end at a tiny size through `eval/run` (real mode, needs root, ctorrent,
//! opentracker, curl and python3), writing its table of figures. The figures themselves are
//! measured at the scaled-down and full sizes by `eval/run`, not here. Also: what the worker
//! holds open does not grow with the nodes that run programs, and `eval/spawn.rhai` records
//! the spawn rate.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Scenario, can_run_real_mode_with, metric, node_file, of, read_events, real_run};

const EXPERIMENTS: [&str; 3] = ["scale", "fairness", "busy"];

fn runner() -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("eval/run"))
        .env("P2PLAB", env!("CARGO_BIN_EXE_p2plab"));
    cmd
}

#[test]
fn every_experiment_script_passes_check() {
    for name in EXPERIMENTS {
        let out = runner().args([name, "--check"]).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Runs `name` at the tiny size; returns its table. Exit status 1 (a target missed) is a
/// result at this size, on a busy test machine; 2 is a failed run.
fn run_tiny(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let run = runner()
        .args([name, "--size", "tiny", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{name} failed: {printed}"
    );
    let table = std::fs::read_to_string(out.join("figures.md"))
        .unwrap_or_else(|e| panic!("{name}: no figures.md ({e}): {printed}"));
    // One report per results folder: the experiment's, or each of its runs' (fairness).
    let reported = out.join("report/index.html").exists()
        || std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .any(|run| run.path().join("report/index.html").exists());
    assert!(reported, "{name}: no report: {printed}");
    println!("{table}");
    table
}

const SWARM: [&str; 4] = ["python3", "ctorrent", "opentracker", "curl"];

#[test]
fn the_scale_experiment_runs_at_a_tiny_size() {
    if !can_run_real_mode_with("the_scale_experiment_runs_at_a_tiny_size", &SWARM) {
        return;
    }
    let table = run_tiny("scale");
    let line = table
        .lines()
        .find(|l| l.starts_with("| leechers done, intact file | 5 of 5 | "))
        .unwrap_or_else(|| panic!("no leechers line: {table}"));
    let intact: u32 = line
        .split(" | ")
        .nth(2)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // ctorrent now and then spins at 100 % of a core and never finishes (seen once in 300
    // leechers): that one gives up; the others must all be intact.
    assert!(intact >= 4, "{table}");
    assert!(line.contains("(0 corrupt)"), "{table}");
}

#[test]
fn the_busy_experiment_runs_at_a_tiny_size() {
    if !can_run_real_mode_with("the_busy_experiment_runs_at_a_tiny_size", &SWARM) {
        return;
    }
    let table = run_tiny("busy");
    assert!(table.contains("| probe RTT p99 with the hog |"), "{table}");
}

#[test]
fn the_fairness_experiment_runs_at_a_tiny_size() {
    if !can_run_real_mode_with("the_fairness_experiment_runs_at_a_tiny_size", &["python3"]) {
        return;
    }
    let table = run_tiny("fairness");
    assert!(
        table.contains("spread of the CPU shares | <= 5 % |"),
        "{table}"
    );
    // The quota holds: each job's CPU time (the node's v2 cpu.stat) over its wall time stays
    // under it. A quota is a ceiling: below it, a job gets what the machine has to spare (the
    // other tests of this file run beside it, one with a CPU hog on every core).
    let shares = table
        .lines()
        .find(|l| l.contains("each: CPU share each job got"))
        .and_then(|l| l.split('|').nth(3))
        .unwrap_or_else(|| panic!("no CPU share row: {table}"));
    for share in shares.split('/') {
        let share: f64 = share.trim().parse().unwrap();
        assert!((0.0..=0.66).contains(&share), "quota 0.6: {table}");
    }
}

/// The worker opened four `cgroup.procs` per node and kept them: a swarm of 5,000 nodes ran
/// out of descriptors. Counted by a program of the lab, whose parent is the test process
/// (the embedded worker's spawner).
#[test]
fn the_spawn_script_records_how_long_its_spawns_took() {
    if !can_run_real_mode_with(
        "the_spawn_script_records_how_long_its_spawns_took",
        &["sleep"],
    ) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("script")
        .arg(root.join("eval/spawn.rhai"))
        .args(["--set", "count=20", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let events = read_events(&out.join("events.jsonl"));
    let spawns = of(&events, "spawn");
    assert_eq!(spawns.len(), 20);
    assert!(spawns.iter().all(|e| e["error"].is_null()), "{spawns:?}");
    let seconds = metric(&events, "spawn_seconds");
    assert!(seconds > 0.0 && seconds < 20.0, "{seconds}");
}

#[test]
fn descriptors_do_not_grow_with_the_nodes_that_run_programs() {
    if !can_run_real_mode_with(
        "descriptors_do_not_grow_with_the_nodes_that_run_programs",
        &[],
    ) {
        return;
    }
    let s = Scenario::new(
        r#"
let nodes = alloc_ip(301);
let count = "ls /proc/$PPID/fd | wc -l";
spawn(nodes[0], `${count} > before`, #{ shell: true }).wait();
for i in 1..301 { spawn(nodes[i], "sleep 30"); }
spawn(nodes[0], `${count} > after`, #{ shell: true }).wait();
"#,
    );
    real_run(&s);
    let count = |name: &str| -> i64 { node_file(&s, "10.0.0.1", name).trim().parse().unwrap() };
    let (before, after) = (count("before"), count("after"));
    // Other tests of this binary run beside it and open a few of their own.
    assert!(
        after - before < 50,
        "descriptors went from {before} to {after} for 300 more nodes"
    );
}
