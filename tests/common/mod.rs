//! Shared fixtures: a scenario folder that is removed when the test ends, and dry-runs of a
//! script given as text, returning its events.
#![allow(dead_code)]

pub mod machines;
pub mod swarm;

use std::path::{Path, PathBuf};

use p2plab::run::{self, RunConfig, RunError, RunOutcome};
use serde_json::Value;

pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Scenario {
    /// `main.rhai` with `text` in a fresh folder.
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("main.rhai");
        std::fs::write(&path, text).expect("write script");
        Scenario { dir, path }
    }

    /// Adds a module next to the script.
    pub fn with_module(self, name: &str, text: &str) -> Self {
        std::fs::write(self.dir.path().join(format!("{name}.rhai")), text).expect("write module");
        self
    }

    pub fn config(&self) -> RunConfig {
        let mut cfg = RunConfig::new(&self.path);
        cfg.out = Some(self.out());
        cfg.seed = Some(1);
        cfg
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    pub fn dry_run(&self) -> Result<RunOutcome, RunError> {
        run::dry_run(self.config())
    }

    pub fn events(&self) -> Vec<Value> {
        read_events(&self.out().join("events.jsonl"))
    }

    /// Dry-runs and returns the events; panics with the error if the script fails.
    pub fn run_ok(&self) -> Vec<Value> {
        if let Err(e) = self.dry_run() {
            panic!("script failed: {e}");
        }
        self.events()
    }

    /// Dry-runs a script that must fail with a script error; returns the message.
    pub fn run_err(&self) -> String {
        match self.dry_run() {
            Ok(_) => panic!("script succeeded but should have failed"),
            Err(RunError::Script(e)) => e.to_string(),
            Err(e) => panic!("expected a script error, got: {e}"),
        }
    }
}

pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The events of one kind.
pub fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The value of the first `metric` event called `name`.
pub fn metric(events: &[Value], name: &str) -> f64 {
    of(events, "metric")
        .into_iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name}"))["value"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// Compact "t event" strings of the events that are not start/end, for ordering checks.
pub fn timeline(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] != "start" && e["event"] != "end")
        .map(|e| format!("{} {}", e["t"], e["event"].as_str().unwrap_or_default()))
        .collect()
}

/// Whether real-mode tests can run here (root). Unprivileged: prints why and returns false,
/// except under `CI=true`, where a skipped test would hide a failure, so it panics.
pub fn can_run_real_mode(test: &str) -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    let why = "needs root (network namespaces, TUN device)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true forbids skipping");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// Runs `text` in real mode; panics with the error if it fails.
pub fn real_run(s: &Scenario) -> RunOutcome {
    match run::real(s.config()) {
        Ok(o) => o,
        Err(e) => panic!("real run failed: {e}"),
    }
}

/// A file a node wrote into its folder.
pub fn node_file(s: &Scenario, ip: &str, name: &str) -> String {
    let path = s.out().join("nodes").join(ip).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `time=X ms` values of a ping log, in milliseconds.
pub fn ping_rtts(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty(), "no samples");
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Lab namespaces of process `pid` listed by `ip netns`.
pub fn namespaces_of(pid: u32) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let prefix = format!("p2plab-{pid}-");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}
