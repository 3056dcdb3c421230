//! Nothing is left behind: a run killed with SIGKILL leaves its lab (namespace and cgroup),
//! and `p2plab cleanup` removes exactly that (needs root).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::{Scenario, alive, can_run_real_mode, cgroups_of, namespaces_of, v1_cgroups_of};

/// `p2plab script` in real mode as a child process, quiet, results in the scenario's folder.
fn start_real_run(s: &Scenario) -> std::process::Child {
    let (script, out) = (s.path.to_str().unwrap(), s.out());
    Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["script", script, "--out", out.to_str().unwrap(), "-q"])
        .spawn()
        .unwrap()
}

/// Waits (up to 20 s) for the run's first `spawn` event in `events`; the spawned pid.
fn wait_for_spawn(events: &Path) -> u32 {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(events).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("\"event\":\"spawn\"")) {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            return e["pid"].as_u64().unwrap() as u32;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the run never spawned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn cleanup_removes_what_a_killed_run_left() {
    if !can_run_real_mode("cleanup_removes_what_a_killed_run_left") {
        return;
    }
    let s = Scenario::new(
        "let n = alloc_ip(3);\nshape(n, #{ latency: \"5ms\", cpu: 0.5 });\nspawn(n[0], \"sleep 300\");\nsleep(120);\n",
    );
    let mut run = start_real_run(&s);
    let sleeper = wait_for_spawn(&s.out().join("events.jsonl"));
    let owner = run.id();
    assert_eq!(namespaces_of(owner).len(), 1, "the run's lab should exist");
    assert!(alive(sleeper));
    // As root, programs are bound by cgroup-BPF: the sleeper is in its node's cgroup.
    let cgroups = cgroups_of(owner);
    assert_eq!(cgroups.len(), 1, "the run's cgroup should exist");
    let mount = p2plab::netns::cgroup::v2_mount().unwrap();
    let node_procs = mount.join(&cgroups[0]).join("n10.0.0.1/cgroup.procs");
    let procs = std::fs::read_to_string(&node_procs).unwrap();
    assert!(
        procs.lines().any(|l| l == sleeper.to_string()),
        "{sleeper} not in {}: {procs}",
        node_procs.display()
    );

    run.kill().unwrap(); // SIGKILL: no chance to clean up
    run.wait().unwrap();
    assert_eq!(
        namespaces_of(owner).len(),
        1,
        "a SIGKILLed run leaves its lab"
    );
    assert_eq!(
        cgroups_of(owner),
        cgroups,
        "a SIGKILLed run leaves its cgroup"
    );
    // Where node limits live in v1 hierarchies (hybrid hosts), its cgroups there too.
    let v1_left = v1_cgroups_of(owner);

    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .arg("cleanup")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("p2plab-{owner}-")), "{stderr}");
    assert!(
        namespaces_of(owner).is_empty(),
        "cleanup left the lab: {stderr}"
    );
    assert!(
        cgroups_of(owner).is_empty(),
        "cleanup left the cgroup: {stderr}"
    );
    assert!(
        v1_cgroups_of(owner).is_empty(),
        "cleanup left {v1_left:?}: {stderr}"
    );
    let start = Instant::now();
    while alive(sleeper) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(sleeper), "cleanup left the lab's process {sleeper}");
}

#[test]
fn a_finished_run_and_ctrl_c_leave_nothing() {
    if !can_run_real_mode("a_finished_run_and_ctrl_c_leave_nothing") {
        return;
    }
    let s = Scenario::new(
        "let n = alloc_ip(2);\nshape(n[0], #{ memory: \"64mb\" });\nspawn(n[0], \"sleep 300\");\nsleep(60);\n",
    );
    let mut run = start_real_run(&s);
    let owner = run.id();
    // Ctrl-C once the program runs in the lab: the event the run logs when it spawned it.
    let sleeper = wait_for_spawn(&s.out().join("events.jsonl"));
    assert_eq!(namespaces_of(owner).len(), 1, "the run's lab should exist");
    kill(Pid::from_raw(owner as i32), Signal::SIGINT).unwrap(); // as Ctrl-C would
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(namespaces_of(owner).is_empty(), "Ctrl-C left the lab");
    assert!(cgroups_of(owner).is_empty(), "Ctrl-C left the cgroup");
    let v1_left = v1_cgroups_of(owner);
    assert!(v1_left.is_empty(), "Ctrl-C left {v1_left:?}");
    let text = std::fs::read_to_string(s.out().join("events.jsonl")).unwrap();
    assert!(!alive(sleeper), "Ctrl-C left a process");
    // The embedded worker shares the signal but leaves stopping to its controller: the
    // process's exit and the end are recorded, and no worker was "lost".
    assert!(!text.contains("worker_lost"), "{text}");
    assert!(text.contains("\"event\":\"exit\""), "{text}");
    assert!(
        text.lines().last().unwrap().contains("\"event\":\"end\""),
        "{text}"
    );
}
