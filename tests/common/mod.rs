//! Shared fixtures: a scenario folder that is removed when the test ends, and dry-runs of a
//! script given as text, returning its events. Also what tests need of the machine: the one
//! skip policy (`skip`, `can_run_real_mode`, `has_program`), waiting for a condition instead
//! of sleeping (`poll`, `wait_until`), and the lock on `/dev/net/tun`'s mode (`TunModeLock`).
#![allow(dead_code)]

pub mod machines;
pub mod results_folder;
pub mod swarm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// `(t, value)` of each `metric` event called `name`, in order.
pub fn metric_samples(events: &[Value], name: &str) -> Vec<(f64, f64)> {
    of(events, "metric")
        .into_iter()
        .filter(|e| e["name"] == name)
        .map(|e| (e["t"].as_f64().unwrap(), e["value"].as_f64().unwrap()))
        .collect()
}

/// Every value of the `metric` events called `name`, in order.
pub fn metrics(events: &[Value], name: &str) -> Vec<f64> {
    of(events, "metric")
        .into_iter()
        .filter(|e| e["name"] == name)
        .map(|e| e["value"].as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// Compact "t event" strings of the events that are not start/end, for ordering checks.
pub fn timeline(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] != "start" && e["event"] != "end")
        .map(|e| format!("{} {}", e["t"], e["event"].as_str().unwrap_or_default()))
        .collect()
}

/// The one skip policy of the tests and benchmarks: a test that cannot run here says why and
/// is skipped (returns false), except under `CI=true`, where a skipped test would hide a
/// failure, so it panics.
pub fn skip(test: &str, why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true forbids skipping");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether real-mode tests can run here: root, and a TUN device. Otherwise [`skip`].
pub fn can_run_real_mode(test: &str) -> bool {
    if !is_root() {
        return skip(test, "needs root (network namespaces, TUN device)");
    }
    if !Path::new(TUN).exists() {
        return skip(
            test,
            "needs /dev/net/tun (`modprobe tun`, or `--device /dev/net/tun` in a container)",
        );
    }
    true
}

/// Whether `program` is an executable file on `PATH`. Otherwise [`skip`].
pub fn has_program(test: &str, program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    found
        || skip(
            test,
            &format!("needs {program} (apt-get install {program})"),
        )
}

/// [`can_run_real_mode`] and [`has_program`] for each of `programs`.
pub fn can_run_real_mode_with(test: &str, programs: &[&str]) -> bool {
    can_run_real_mode(test) && programs.iter().all(|p| has_program(test, p))
}

/// Polls `done` every 20 ms for at most `limit`: whether it came to hold.
pub fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `done` holds (see [`poll`]); panics naming `what` if it does not within
/// `limit`. Returns how long it took.
pub fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    assert!(poll(limit, done), "{what} did not happen within {limit:?}");
    start.elapsed()
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

/// Whether `pid` runs (exists and is no zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
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

/// Lab cgroups of process `pid` (`<cgroup v2 mount>/p2plab-<pid>-*`).
pub fn cgroups_of(pid: u32) -> Vec<String> {
    let Some(mount) = p2plab::netns::cgroup::v2_mount() else {
        return Vec::new();
    };
    let prefix = format!("p2plab-{pid}-");
    std::fs::read_dir(mount)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The lab cgroups of runs by `pid` in the v1 hierarchies of node limits (`cpu`, `memory`), as
/// `<mount>/<name>`.
pub fn v1_cgroups_of(pid: u32) -> Vec<String> {
    let prefix = format!("p2plab-{pid}-");
    p2plab::netns::limits::v1_mounts()
        .into_iter()
        .flat_map(|(_, mount)| {
            std::fs::read_dir(&mount)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .map(move |n| format!("{}/{n}", mount.display()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The TUN device whose mode decides whether rootless real mode can work.
pub const TUN: &str = "/dev/net/tun";

/// Holds the right to `/dev/net/tun`'s mode: every test that changes the mode or depends on
/// it takes this first. A file lock, so that tests in other threads and in other test
/// binaries wait for each other alike. A mode set through it is restored on drop, on a
/// panic too.
pub struct TunModeLock {
    _lock: std::fs::File,
    original: Option<u32>,
}

impl TunModeLock {
    /// Waits for the lock.
    pub fn take() -> TunModeLock {
        let path = Path::new("/tmp/p2plab-tests-tun-mode.lock");
        // Created by whoever comes first; read-only is enough for a lock, for other users.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .or_else(|_| std::fs::File::open(path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
        TunModeLock {
            _lock: file,
            original: None,
        }
    }

    /// The device's permission bits now.
    pub fn mode(&self) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(TUN)
            .unwrap_or_else(|e| panic!("{TUN}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }

    /// Sets the device's mode (root only) until this lock is dropped.
    pub fn set(&mut self, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let before = self.mode();
        self.original.get_or_insert(before);
        std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {mode:o} {TUN}: {e}"));
    }
}

impl Drop for TunModeLock {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(mode) = self.original
            && let Err(e) = std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(mode))
        {
            eprintln!("could not restore {TUN} to mode {mode:o}: {e}");
        }
    }
}

/// The example scenarios: `scripts/*.rhai` and the labs' `scripts/labs/*.rhai`, from the
/// crate's folder (where cargo runs tests).
pub fn example_scripts() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for folder in ["scripts", "scripts/labs"] {
        for entry in std::fs::read_dir(folder).unwrap_or_else(|e| panic!("{folder}/: {e}")) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rhai") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
}
