//! Process supervision at scale (needs root): 1000 real processes on 1000 nodes (or as many
//! as the first number among the arguments says), spawned
//! by the supervisor and bound to their nodes, against a baseline of the same 1000 spawns
//! done directly with `std::process::Command` (its `posix_spawn` path), and once more with each
//! child entering a cgroup before exec (fork + `pre_exec`, what p2plab did before its spawner
//! cloned with `CLONE_VM | CLONE_VFORK`).
//! Also reports p2plab's peak memory and checks that every process is gone after each run.
//! Processes are counted (started, left over), and every failure to kill or reap one is
//! counted and printed.
//!
//!     cargo bench --bench processes [-- 10000]
//!
//! The target is 2 s for 1000 processes and 1 ms a process beyond (10 s for 10,000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use p2plab::netns::cgroup::LabCgroup;
use p2plab::run::{self, RunConfig};

/// Nodes (and processes) unless an argument says otherwise.
const DEFAULT_NODES: usize = 1000;

fn nodes() -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_NODES)
}

/// Seconds within which p2plab should have started `nodes` processes.
fn target_seconds(nodes: usize) -> f64 {
    (nodes as f64 / 1000.0).max(2.0)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Children of this process still alive (not zombies).
fn live_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter(|stat| {
            let after = stat.rsplit(')').next().unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields.get(1) == Some(&me.as_str()) && fields.first() != Some(&"Z")
        })
        .count()
}

/// What one way of spawning did: seconds until every process had started, processes
/// started, and the errors met while killing and reaping them.
struct Spawned {
    seconds: f64,
    processes: usize,
    errors: Vec<String>,
}

fn baseline(nodes: usize) -> Spawned {
    baseline_into(nodes, None)
}

/// The baseline, each child entering a cgroup between fork and exec with the standard
/// library's `pre_exec`: the cost of leaving `posix_spawn` for fork, which p2plab's spawner
/// (`worker::launch`) avoids.
fn baseline_in_cgroup(nodes: usize) -> Spawned {
    let name = format!("p2plab-{}-bench", std::process::id());
    let mut lab = LabCgroup::create(&name).expect("lab cgroup");
    // The files stay open while the children fork: each writes into the first.
    let files = lab
        .node_procs(Ipv4Addr::new(10, 0, 0, 1))
        .expect("node cgroup");
    let procs = files.first().expect("the node's v2 cgroup").as_raw_fd();
    let spawned = baseline_into(nodes, Some(procs));
    drop(files);
    lab.remove().expect("remove the cgroup");
    spawned
}

fn baseline_into(nodes: usize, cgroup_procs: Option<i32>) -> Spawned {
    let start = Instant::now();
    // `spawn` returns once the child has exec'd `sleep` (or failed to).
    let mut children: Vec<_> = (0..nodes)
        .map(|_| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0);
            if let Some(fd) = cgroup_procs {
                // SAFETY: one write(2) on a descriptor opened before the fork, which the caller
                // keeps open: async-signal-safe, no allocation.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                            Ok(())
                        } else {
                            Err(std::io::Error::last_os_error())
                        }
                    });
                }
            }
            cmd.spawn().expect("spawn sleep")
        })
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    for c in &mut children {
        let pid = c.id();
        if let Err(e) = c.kill() {
            errors.push(format!("kill {pid}: {e}"));
        }
        if let Err(e) = c.wait() {
            errors.push(format!("reap {pid}: {e}"));
        }
    }
    Spawned {
        seconds,
        processes: children.len(),
        errors,
    }
}

/// One real run: the spawns (timed by the script, each spawn awaited by the worker), and
/// the rest of the run that is neither spawning nor the script's `sleep(1)` as measured
/// (check, lab setup, `alloc_ip`, then killing and reaping every process, collecting the
/// node folders and removing the lab).
fn p2plab_run(nodes: usize) -> (Spawned, f64) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("spawn.rhai");
    std::fs::write(
        &script,
        format!(
            "let nodes = alloc_ip({nodes});\nlet t0 = now();\nfor n in nodes {{ spawn(n, \"sleep 30\"); }}\nlet t1 = now();\nmetric(\"spawn_seconds\", t1 - t0);\nsleep(1);\nmetric(\"sleep_seconds\", now() - t1);\n"
        ),
    )
    .unwrap();
    let mut cfg = RunConfig::new(&script);
    cfg.out = Some(dir.path().join("out"));
    cfg.seed = Some(1);
    let start = Instant::now();
    run::real(cfg).expect("real run");
    let total = start.elapsed().as_secs_f64();
    let events = common::read_events(&dir.path().join("out/events.jsonl"));
    let spawn_seconds = common::metric(&events, "spawn_seconds");
    // The script's sleep as it was, not as it was asked for.
    let sleep_seconds = common::metric(&events, "sleep_seconds");
    let spawns = common::of(&events, "spawn");
    let mut errors: Vec<String> = spawns
        .iter()
        .filter_map(|e| e["error"].as_str())
        .map(|e| format!("spawn: {e}"))
        .collect();
    let started = spawns.len() - errors.len();
    // Every process was killed and reaped when the run removed its lab.
    let left = live_children();
    if left > 0 {
        errors.push(format!(
            "{left} of {started} processes still alive after the run"
        ));
    }
    let spawned = Spawned {
        seconds: spawn_seconds,
        processes: started,
        errors,
    };
    (spawned, total - spawn_seconds - sleep_seconds)
}

fn main() {
    if !common::can_run_real_mode("the processes benchmark") {
        return;
    }
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut in_cgroup = Vec::new();
    let mut rest = Vec::new();
    let mut counts = Vec::new();
    let mut errors = Vec::new();
    let nodes = nodes();
    for run in 0..3 {
        let b = baseline(nodes);
        let c = baseline_in_cgroup(nodes);
        let (o, other) = p2plab_run(nodes);
        errors.extend(
            c.errors
                .iter()
                .map(|e| format!("run {run}, baseline in a cgroup: {e}")),
        );
        in_cgroup.push(c.seconds);
        counts.push((b.processes, o.processes));
        errors.extend(b.errors.iter().map(|e| format!("run {run}, baseline: {e}")));
        errors.extend(o.errors.iter().map(|e| format!("run {run}, p2plab: {e}")));
        base.push(b.seconds);
        ours.push(o.seconds);
        rest.push(other);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, base, rest) = (median(ours), median(base), median(rest));
    let in_cgroup = median(in_cgroup);
    let processes = counts[0].1;
    println!("{processes} processes on {nodes} nodes, median of 3 (interleaved):");
    println!(
        "  processes started per run (baseline, p2plab) {:?}",
        counts
    );
    println!(
        "  p2plab spawn (binding, netns, logs)  {:>7.3} s   (target < {:.0} s)",
        ours,
        target_seconds(nodes)
    );
    println!("  std::process::Command baseline       {:>7.3} s", base);
    println!(
        "  the same, entering a cgroup (fork)    {:>7.3} s   ({:.2} x the baseline)",
        in_cgroup,
        in_cgroup / base
    );
    println!(
        "  ratio                                 {:>7.2} x",
        ours / base
    );
    println!("  setup, kill and reap all, collect     {:>7.3} s", rest);
    println!(
        "  peak RSS of the process running p2plab {:>6} MiB",
        peak_rss_kib() / 1024
    );
    let left = live_children();
    println!("  processes left after the runs         {left:>7}");
    println!(
        "  errors                                {:>7}",
        errors.len()
    );
    for e in &errors {
        println!("    {e}");
    }
    let all_started = counts.iter().all(|&c| c == (nodes, nodes));
    if ours >= target_seconds(nodes) || left > 0 || !errors.is_empty() || !all_started {
        std::process::exit(1);
    }
}
