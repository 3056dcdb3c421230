//! A cluster on one host for multi-machine tests: network namespaces as machines, joined by
//! veth pairs to a bridge in a "switch" namespace, a `p2plab worker` in each. Everything it
//! made (namespaces, worker processes, a killed worker's leftovers) is removed on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Port of every worker (each machine has its own network stack).
pub const PORT: u16 = 7000;

pub struct Cluster {
    prefix: String,
    pub dir: tempfile::TempDir,
    machines: Vec<String>,
    workers: Vec<Option<Child>>,
    pub token: PathBuf,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The address of machine `i` on the cluster's network (machine 0 runs the controller).
pub fn machine_addr(i: usize) -> String {
    format!("192.168.77.{}", i + 1)
}

impl Cluster {
    /// `workers` machines with a worker each, plus machine 0 for the controller.
    pub fn start(name: &str, workers: usize) -> Cluster {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let prefix = format!("p2pt{}{name}{n}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "cluster-test-token-0123456789abcdef\n").unwrap();
        let mut cluster = Cluster {
            prefix: prefix.clone(),
            dir,
            machines: Vec::new(),
            workers: Vec::new(),
            token,
        };
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch]);
        cluster.machines.push(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..=workers {
            let m = format!("{prefix}-m{i}");
            ip(&["netns", "add", &m]);
            cluster.machines.push(m.clone());
            let port = format!("s{i}");
            ip(&[
                "-n", &m, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &switch,
            ]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &m,
                "addr",
                "add",
                &format!("{}/24", machine_addr(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &m, "link", "set", "eth0", "up"]);
            ip(&["-n", &m, "link", "set", "lo", "up"]);
        }
        for i in 1..=workers {
            let mut child = cluster.command(
                i,
                &[
                    "worker",
                    "--listen",
                    &format!("{}:{PORT}", machine_addr(i)),
                    "--token-file",
                    cluster.token.to_str().unwrap(),
                ],
            );
            let log = cluster.dir.path().join(format!("worker{i}.log"));
            let child = child
                .stderr(std::fs::File::create(&log).unwrap())
                .stdout(Stdio::null())
                .spawn()
                .expect("start a worker");
            cluster.workers.push(Some(child));
            wait_for(&log, "listening on");
        }
        let workers_file = cluster.dir.path().join("workers.txt");
        let lines: Vec<String> = (1..=workers)
            .map(|i| format!("{}:{PORT}", machine_addr(i)))
            .collect();
        std::fs::write(&workers_file, lines.join("\n") + "\n").unwrap();
        cluster
    }

    /// `p2plab ARGS` to run on machine `i` (inside its network namespace).
    pub fn command(&self, i: usize, args: &[&str]) -> Command {
        let ns = format!("/run/netns/{}-m{i}", self.prefix);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_p2plab"));
        cmd.args(args);
        // SAFETY: between fork and exec only async-signal-safe calls: open, setns, close.
        unsafe {
            cmd.pre_exec(move || {
                let path = std::ffi::CString::new(ns.clone()).unwrap();
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        cmd
    }

    pub fn workers_file(&self) -> PathBuf {
        self.dir.path().join("workers.txt")
    }

    /// `p2plab script` on machine 0: with the cluster's workers, or (`workers` false) on
    /// the embedded worker of that machine alone.
    fn controller(&self, script: &Path, out: &Path, workers: bool, extra: &[&str]) -> Command {
        let mut args: Vec<String> = vec!["script".into(), script.display().to_string()];
        if workers {
            args.extend([
                "--workers".into(),
                self.workers_file().display().to_string(),
                "--token-file".into(),
                self.token.display().to_string(),
            ]);
        }
        args.extend(["--out".into(), out.display().to_string(), "-q".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(0, &args)
    }

    /// Runs a script on the cluster from machine 0; returns the exit code and stderr.
    pub fn run_script(&self, script: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
        finished(self.controller(script, out, true, extra))
    }

    /// Runs a script on machine 0 alone (its embedded worker); returns the exit code and stderr.
    pub fn run_alone(&self, script: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
        finished(self.controller(script, out, false, extra))
    }

    /// Starts the controller on machine 0 with `script`, stderr piped.
    pub fn spawn_controller(&self, script: &Path, out: &Path) -> Child {
        self.controller(script, out, true, &[])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Sends `signal` to worker `i`.
    pub fn signal_worker(&self, i: usize, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.worker_pid(i) as i32, signal) };
    }

    pub fn worker_pid(&self, i: usize) -> u32 {
        self.workers[i - 1].as_ref().expect("worker running").id()
    }

    pub fn worker_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("worker{i}.log"))).unwrap_or_default()
    }

    /// SIGKILLs worker `i` and reaps it.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut child) = self.workers[i - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn finished(mut cmd: Command) -> (i32, String) {
    let output = cmd.output().expect("run the controller");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until `file` contains `text` (a worker printing that it listens).
fn wait_for(file: &Path, text: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::fs::read_to_string(file).is_ok_and(|s| s.contains(text)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{} never said {text:?}: {}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut killed = self.workers.iter().any(Option::is_none);
        for (i, child) in self.workers.iter_mut().enumerate() {
            let Some(child) = child else { continue };
            // SIGTERM: a worker removes its lab and exits.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let limit = Duration::from_secs(10);
            let start = Instant::now();
            let exited = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break true;
                }
                if start.elapsed() >= limit {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if !exited {
                eprintln!(
                    "worker {} did not exit within {limit:?} of SIGTERM: killed",
                    i + 1
                );
                let _ = child.kill();
                killed = true;
            }
            let _ = child.wait();
        }
        if killed {
            // A SIGKILLed worker left its lab and processes: what `p2plab cleanup` is for.
            let _ = Command::new(env!("CARGO_BIN_EXE_p2plab"))
                .arg("cleanup")
                .stderr(Stdio::null())
                .status();
        }
        for m in self.machines.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", m]).status();
        }
    }
}
