//! How a worker carries out each action on its machine: one named step per action, on the
//! data plane (every node of the run is half modelled here) and on the processes of its own
//! nodes.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;

use super::node_files;
use super::procs::RunningProc;
use super::{LocalWorker, PendingKill, procs, shim};
use crate::dataplane::Command;
use crate::dataplane::capture::Capture;
use crate::experiment::{
    Action, ExecError, Executor, ExitStatus, GroupId, GroupLink, LinkShape, NodeId, NodeLimits,
    NodeRecord, Outcome, ProcExit, ProcId, SpawnSpec, TrafficReading,
};
use crate::units::Nanos;

/// The file of a node's packet capture, in its folder.
pub const CAPTURE_FILE: &str = "capture.pcap";
/// Bytes of a capture kept in memory between writes: some 40 full-size packets per system
/// call on the data-plane thread.
const CAPTURE_BUFFER: usize = 64 * 1024;

impl Executor for LocalWorker {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError> {
        if let Some(dp) = self.dataplane.as_mut() {
            dp.check().map_err(ExecError::DataplaneStopped)?;
        }
        match action {
            Action::AddNode(node) => self.add_node(node).map(|()| Outcome::default()),
            Action::Shape { node, shape } => self.shape(*node, shape).map(|()| Outcome::default()),
            Action::Limit { node, limits } => {
                self.limit(*node, limits).map(|()| Outcome::default())
            }
            Action::LinkGroups { a, b, link } => {
                self.link_groups(*a, *b, link);
                Ok(Outcome::default())
            }
            Action::LinkGroupRow { a, links } => {
                self.dataplane().send(Command::SetGroupRow {
                    a: a.0,
                    links: links.iter().map(|(b, link)| (b.0, *link)).collect(),
                });
                Ok(Outcome::default())
            }
            Action::LoadTrace { id, trace } => {
                self.dataplane().send(Command::LoadTrace {
                    id: *id,
                    trace: trace.clone(),
                });
                Ok(Outcome::default())
            }
            Action::Spawn { proc, node, spec } => self.spawn(*proc, *node, spec),
            Action::Kill { proc } => Ok(Outcome {
                exits: self.kill_now(&[*proc]),
                ..Outcome::default()
            }),
            Action::FailNode { node, procs } => self.fail_node(*node, procs),
            Action::Revive { node } => self.revive(*node).map(|()| Outcome::default()),
            Action::Leave { node, grace, .. } => {
                self.leave(*node, *grace);
                Ok(Outcome::default())
            }
            Action::Capture {
                node,
                snaplen,
                max_size,
            } => self
                .capture(*node, *snaplen, *max_size)
                .map(|()| Outcome::default()),
            Action::StopCapture { node } => {
                let ip = self.ip(*node)?;
                self.dataplane().send(Command::StopCapture { ip });
                Ok(Outcome::default())
            }
            // Exits reach the controller as events; waiting is its job.
            Action::Wait { .. } => Ok(Outcome::default()),
        }
    }

    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError> {
        self.fire_pending_kills();
        let now = self.clock.now();
        let mut exits = Vec::new();
        let exit = |proc: ProcId, status| {
            (
                now,
                ProcExit {
                    proc,
                    status,
                    oom: false,
                },
            )
        };
        // Only the children that ended are asked, one by one, until none is left.
        while let Some(pid) = procs::ended_child() {
            let Some(id) = self.procs.of_pid(pid) else {
                // Another part of the worker's child, which its owner reaps: it hides ours
                // from `ended_child` until then, so each of ours is asked instead.
                exits.extend(
                    self.procs
                        .reap_ended()
                        .into_iter()
                        .map(|(id, status)| exit(id, status)),
                );
                break;
            };
            match self.procs.get_mut(id).map(RunningProc::try_exit) {
                Some(Ok(Some(status))) => {
                    self.procs.remove(id);
                    exits.push(exit(id, status));
                }
                _ => break,
            }
        }
        exits.sort_by_key(|(_, e)| e.proc);
        // The kernel's out-of-memory killer sends SIGKILL and counts it in the node's cgroup.
        if let Some(cgroup) = self.cgroup.as_mut() {
            for (_, exit) in exits.iter_mut() {
                let ip = self.proc_nodes.get(&exit.proc).copied();
                if exit.status == ExitStatus::Signal(libc::SIGKILL)
                    && let Some(ip) = ip
                {
                    exit.oom = cgroup.take_oom_kill(ip);
                }
            }
        }
        for (_, exit) in &exits {
            self.proc_nodes.remove(&exit.proc);
        }
        Ok(exits)
    }

    fn traffic(&mut self, interval: bool) -> TrafficReading {
        LocalWorker::traffic(self, interval)
    }

    /// The end of the run: the packet captures are written out, and what each node used
    /// (`usage.json`), before node folders are collected.
    fn finish(&mut self) -> Result<(), ExecError> {
        self.dataplane().stop_captures();
        for (ip, usage) in self.cgroup.as_ref().map(|c| c.usage()).unwrap_or_default() {
            let dir = node_files::node_dir(&self.results, ip);
            let json = serde_json::json!({
                "cpu_seconds": usage.cpu_usec as f64 / 1e6,
                // null where the kernel keeps no CPU pressure: not measured, not 0.
                "cpu_wait_seconds": usage.waited_seconds(),
                "cpu_throttled_seconds": usage.throttled_usec as f64 / 1e6,
                "seconds": usage.seconds,
                "memory_peak_bytes": usage.memory_peak,
            });
            let path = dir.join(crate::results::USAGE_FILE);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, json.to_string()))
                .map_err(|e| ExecError::Remote(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }
}

impl LocalWorker {
    /// Every node of the run enters the data plane; a node of another worker with the address
    /// of that worker's data plane, which runs its receiving half.
    fn add_node(&mut self, node: &NodeRecord) -> Result<(), ExecError> {
        let home: Option<SocketAddr> = if node.worker == self.index {
            None
        } else {
            Some(
                *self
                    .peers
                    .get(&node.worker)
                    .ok_or(ExecError::UnknownWorker(node.worker))?,
            )
        };
        self.dataplane().send(Command::AddNode {
            ip: node.ip,
            group: node.group.0,
            home,
        });
        self.nodes.insert(node.id, node.ip);
        if home.is_none() {
            self.local.insert(node.id);
        }
        Ok(())
    }

    fn shape(&mut self, node: NodeId, shape: &LinkShape) -> Result<(), ExecError> {
        let ip = self.any_ip(node)?;
        self.dataplane()
            .send(Command::SetParams { ip, params: *shape });
        Ok(())
    }

    /// A node's CPU and memory limits, in its cgroups (made now if it ran nothing yet).
    fn limit(&mut self, node: NodeId, limits: &NodeLimits) -> Result<(), ExecError> {
        let ip = self.ip(node)?;
        let cgroup = self.cgroup.as_mut().ok_or_else(|| {
            ExecError::Remote(
                "node limits need binding \"bpf\" (a cgroup per node); this lab binds \
                 programs by the preloaded shim"
                    .into(),
            )
        })?;
        cgroup
            .set_limits(ip, limits)
            .map_err(|e| ExecError::Remote(format!("node {ip}: {e}")))
    }

    fn link_groups(&mut self, a: GroupId, b: GroupId, link: &GroupLink) {
        self.dataplane().send(Command::SetGroupLink {
            a: a.0,
            b: b.0,
            params: *link,
        });
    }

    /// Starts a program on a node of this worker. A program that cannot start is, as in a
    /// shell, a process that exited with 127: the script goes on.
    fn spawn(
        &mut self,
        proc: ProcId,
        node: NodeId,
        spec: &SpawnSpec,
    ) -> Result<Outcome, ExecError> {
        let ip = self.ip(node)?;
        let _span = tracing::debug_span!("node", %ip).entered();
        let mut outcome = Outcome::default();
        let dir = node_files::node_dir(&self.results, ip);
        let program = spec.argv.first().map_or("", String::as_str);
        // Cgroup-BPF reaches static programs too: only the shim's reach is checked.
        let is_static = self.cgroup.is_none()
            && *self
                .static_programs
                .entry(program.to_string())
                .or_insert_with(|| shim::is_static_elf(program));
        if is_static {
            outcome.warning = Some(format!(
                "{program} is statically linked: LD_PRELOAD cannot reach it, so its \
                 sockets are not bound to {ip} by the shim; give it the address itself"
            ));
        }
        let cgroups = match self.cgroup.as_mut() {
            Some(cgroup) => cgroup.node_procs(ip).map(Some),
            None => Ok(None),
        };
        let started = match &cgroups {
            Ok(Some(files)) => {
                let fds: Vec<_> = files.iter().map(std::os::fd::AsFd::as_fd).collect();
                self.spawner
                    .spawn(spec, node, ip, &dir, procs::Bind::Cgroup(&fds))
            }
            Ok(None) => self
                .spawner
                .spawn(spec, node, ip, &dir, procs::Bind::Preload(&self.shim)),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        drop(cgroups);
        match started {
            // No ledger entry per process: after a crash, `p2plab cleanup` finds every
            // process of the lab by its network namespace in /proc, and a ledger rewrite per
            // spawn tripled the cost of spawning.
            Ok(running) => {
                tracing::debug!(pid = running.pid(), cmd = %spec.cmd, "spawned");
                outcome.pid = Some(running.pid());
                self.node_groups
                    .entry(node)
                    .or_default()
                    .push((running.pgid(), proc));
                self.procs.insert(proc, running);
                self.proc_nodes.insert(proc, ip);
            }
            Err(e) => {
                tracing::debug!(cmd = %spec.cmd, "cannot start: {e}");
                procs::note_failure(&dir, &e);
                outcome.spawn_error = Some(e.to_string());
                outcome.exits.push(ProcExit {
                    proc,
                    status: ExitStatus::Code(127),
                    oom: false,
                });
            }
        }
        Ok(outcome)
    }

    /// A crash: traffic stops first (the barrier waits until it is in force), so that nothing
    /// the dying processes send (resets, FINs) gets out: their peers must time out, as with a
    /// crashed host. A node of another worker only loses its traffic here; its worker kills it.
    fn fail_node(&mut self, node: NodeId, procs: &[ProcId]) -> Result<Outcome, ExecError> {
        if !self.local.contains(&node) {
            let ip = self.any_ip(node)?;
            self.dataplane()
                .send(Command::SetFailed { ip, failed: true });
            return Ok(Outcome::default());
        }
        let ip = self.ip(node)?;
        self.dataplane()
            .send(Command::SetFailed { ip, failed: true });
        self.dataplane().barrier();
        let exits = self.kill_now(procs);
        let groups = self.node_groups.get(&node).cloned().unwrap_or_default();
        self.signal_groups(&groups, libc::SIGKILL);
        // In its cgroup, also what left every process group of the node (a daemon).
        if let Some(cgroup) = &self.cgroup
            && let Err(e) = cgroup.kill_node(ip)
        {
            tracing::warn!("fail_node {ip}: {e}");
        }
        Ok(Outcome {
            exits,
            ..Outcome::default()
        })
    }

    fn revive(&mut self, node: NodeId) -> Result<(), ExecError> {
        let ip = self.any_ip(node)?;
        self.dataplane()
            .send(Command::SetFailed { ip, failed: false });
        Ok(())
    }

    /// Captures a node of this worker into `nodes/<ip>/capture.pcap` (created with its
    /// folder), appending to what an earlier capture of the node wrote. The barrier makes
    /// what the node sends once the call returns be captured, as packets of the MTU.
    fn capture(&mut self, node: NodeId, snaplen: u32, max_size: u64) -> Result<(), ExecError> {
        let ip = self.ip(node)?;
        let dir = node_files::node_dir(&self.results, ip);
        let path = dir.join(CAPTURE_FILE);
        let open = || -> std::io::Result<Capture<BufWriter<File>>> {
            std::fs::create_dir_all(&dir)?;
            // Not through a symlink a node's program may have put there (the worker is root).
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let existing = file.metadata()?.len();
            let out = BufWriter::with_capacity(CAPTURE_BUFFER, file);
            Capture::start(out, existing, snaplen, max_size)
        };
        let capture = open().map_err(|source| ExecError::Capture {
            path: path.display().to_string(),
            source,
        })?;
        self.dataplane().send(Command::Capture { ip, capture });
        self.dataplane().barrier();
        Ok(())
    }

    /// A graceful departure: SIGTERM to every process group of the node now, SIGKILL to what
    /// is left once `grace` is over.
    fn leave(&mut self, node: NodeId, grace: Nanos) {
        let deadline = self.clock.now().saturating_add(grace);
        let groups = self.node_groups.get(&node).cloned().unwrap_or_default();
        self.signal_groups(&groups, libc::SIGTERM);
        // In its cgroup, also what left every process group of the node (a daemon); the
        // programs a later spawn starts on the node are not part of this departure.
        let pids = match (&self.cgroup, self.ip(node)) {
            (Some(cgroup), Ok(ip)) => cgroup.node_pids(ip),
            _ => Vec::new(),
        };
        self.lab().signal_pids(&pids, libc::SIGTERM);
        self.pending_kills.push(PendingKill {
            at: deadline,
            groups,
            pids,
        });
    }
}
