//! Another p2plab build on the same machines, to compare with this one: its workers run beside
//! the cluster's own (on port `PORT + 1`) in the machines' network namespaces, and a run's
//! controller, of either build, runs on machine 1 (the cluster's machine 0 has no process whose
//! namespace could be borrowed), so both builds see the very same network.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::machines::{Cluster, PORT, machine_addr};
use super::common::wait_until;

/// `program args` inside the network namespace of process `pid` (a worker: its machine).
fn on_machine_of(pid: u32, program: &Path, args: &[&str]) -> Command {
    let ns = File::open(format!("/proc/{pid}/ns/net")).expect("a worker's network namespace");
    let mut cmd = Command::new(program);
    cmd.args(args);
    let fd: RawFd = ns.as_raw_fd();
    // SAFETY: between fork and exec only setns(2), async-signal-safe; `ns` is opened before
    // the fork (with O_CLOEXEC, so the program does not inherit it) and outlives the spawn,
    // since the closure owns it.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &ns;
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// The workers of one build, on machines 1..=n of a cluster.
pub struct Build {
    pub program: PathBuf,
    workers_file: PathBuf,
    /// The workers this started (none for the cluster's own build, whose workers exist).
    started: Vec<Child>,
    /// A process on machine 1, whose namespace the controller enters.
    machine_1: u32,
}

impl Build {
    /// The cluster's own workers, of this build.
    pub fn this(cluster: &Cluster) -> Build {
        Build {
            program: PathBuf::from(env!("CARGO_BIN_EXE_p2plab")),
            workers_file: cluster.workers_file(),
            started: Vec::new(),
            machine_1: cluster.worker_pid(1),
        }
    }

    /// Workers of `program` on machines 1..=`workers` of `cluster`, ready to serve.
    pub fn start(cluster: &Cluster, workers: usize, program: &Path) -> Build {
        let dir = cluster.dir.path();
        let mut started = Vec::new();
        let mut lines = Vec::new();
        for i in 1..=workers {
            let listen = format!("{}:{}", machine_addr(i), PORT + 1);
            let log = dir.join(format!("baseline-worker{i}.log"));
            let token = cluster.token.to_str().expect("a UTF-8 path");
            let args = ["worker", "--listen", &listen, "--token-file", token];
            let child = on_machine_of(cluster.worker_pid(i), program, &args)
                .stderr(File::create(&log).expect("a log file"))
                .stdout(Stdio::null())
                .spawn()
                .expect("start a baseline worker");
            started.push(child);
            wait_until(
                &format!("baseline worker {i} listening"),
                Duration::from_secs(20),
                || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on")),
            );
            lines.push(listen);
        }
        let workers_file = dir.join("baseline-workers.txt");
        std::fs::write(&workers_file, lines.join("\n") + "\n").expect("a workers file");
        Build {
            program: program.to_path_buf(),
            workers_file,
            started,
            machine_1: cluster.worker_pid(1),
        }
    }

    /// Runs `script` with this build's controller and workers; panics unless it succeeds.
    pub fn run_script(&self, cluster: &Cluster, script: &Path, out: &Path, extra: &[&str]) {
        let (script, out) = (script.display().to_string(), out.display().to_string());
        let workers = self.workers_file.display().to_string();
        let token = cluster.token.display().to_string();
        let mut args = vec![
            "script",
            &script,
            "--workers",
            &workers,
            "--token-file",
            &token,
            "--out",
            &out,
            "-q",
        ];
        args.extend(extra);
        let output = on_machine_of(self.machine_1, &self.program, &args)
            .output()
            .expect("run a controller");
        assert!(
            output.status.success(),
            "{} script: {}",
            self.program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        for child in &mut self.started {
            // SIGTERM: a worker removes its lab and exits.
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let exited = super::common::poll(Duration::from_secs(10), || {
                child.try_wait().is_ok_and(|s| s.is_some())
            });
            if !exited {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
