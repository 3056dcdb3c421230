//! The worker of one machine: it owns the lab namespace, the data plane and the processes of
//! its nodes, and carries out the controller's actions on them (the real `Executor`). Dropping
//! it kills every process it started, stops the data plane and removes the lab.

mod procs;
pub mod server;
pub mod session;
pub mod shim;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use crate::controller::{Clock, ExecError, Executor, Outcome};
use crate::clock::MonotonicClock;
use crate::dataplane::{Command, Dataplane, RemoteLinks, TunDevice};
use crate::experiment::{Action, AddressPlan, NodeCounters, NodeId, ProcExit, ProcId};
use crate::netns::{LabNamespace, NetnsError};
use crate::units::Nanos;
use procs::RunningProc;

/// The TUN device of every lab (each lab has its own namespace, so the name never clashes).
const TUN_NAME: &str = "p2p0";

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("TUN device: {0} (is the tun module loaded and /dev/net/tun present?)")]
    Tun(std::io::Error),
    #[error(
        "rootless real mode cannot open the TUN device ({0}): /dev/net/tun must be readable \
         and writable by you (`sudo chmod 0666 /dev/net/tun`, as most distributions ship it), \
         or run p2plab with sudo"
    )]
    RootlessTun(std::io::Error),
    #[error("data plane: {0}")]
    Dataplane(std::io::Error),
    #[error("process spawner: {0}")]
    Spawner(std::io::Error),
}

pub struct WorkerOptions {
    /// Part of the lab namespace's name, to tell labs apart (`p2plab-<pid>-<hint>`).
    pub hint: String,
    /// Where node folders go: `<results>/nodes/<ip>/`.
    pub results: PathBuf,
    /// The bind shim preloaded into every spawned program.
    pub shim: PathBuf,
    /// Seed of the data plane's loss and jitter draws.
    pub seed: u64,
    /// MTU of the emulated links.
    pub mtu: u32,
    /// This worker's number: it owns the address block `10.<index>.0.0/16`.
    pub index: u32,
    /// The other workers of the run, with the socket that reaches their data planes
    /// (`None` when this is the only worker).
    pub remote: Option<RemoteWorkers>,
}

/// The other workers: their numbers and data-plane addresses, and this machine's UDP socket.
pub struct RemoteWorkers {
    pub peers: Vec<(u32, SocketAddr)>,
    pub socket: UdpSocket,
    /// The run's random id, in every datagram between workers.
    pub run: u32,
}

pub struct LocalWorker {
    // Field order is drop order: processes are killed by `Drop` first, then the data plane
    // stops, then the namespace goes.
    procs: HashMap<ProcId, RunningProc>,
    spawner: procs::Spawner,
    dataplane: Option<Dataplane>,
    lab: Option<LabNamespace>,
    /// Every node of the lab, this worker's and the others' (their links are half modelled here).
    nodes: HashMap<NodeId, Ipv4Addr>,
    /// The nodes that live on this worker.
    local: std::collections::HashSet<NodeId>,
    index: u32,
    /// Data-plane address of each other worker, by number.
    peers: HashMap<u32, SocketAddr>,
    results: PathBuf,
    shim: PathBuf,
    /// Programs already checked for static linking (one read of the ELF each).
    static_programs: HashMap<String, bool>,
    clock: MonotonicClock,
    /// Leave: process groups to SIGKILL once their grace period is over.
    pending_kills: Vec<(Nanos, Vec<i32>)>,
    /// Every process group started on each node: members of a group can outlive its leader
    /// (a shell's background job), and crashing or leaving the node must reach them too.
    node_groups: HashMap<NodeId, Vec<i32>>,
}

impl LocalWorker {
    /// Creates the lab namespace, its TUN device and hairpin routing, and starts the data plane.
    pub fn start(opts: WorkerOptions, clock: MonotonicClock) -> Result<Self, WorkerError> {
        if crate::netns::rootless::half_entered() {
            return Err(NetnsError::NotPrivileged.into());
        }
        crate::netns::require_privileges()?;
        let lab = if crate::netns::rootless::active() {
            LabNamespace::adopt_current(&opts.hint)?
        } else {
            LabNamespace::create(&opts.hint)?
        };
        lab.bring_up_loopback()?;
        let tun = lab
            .run_in(|| TunDevice::create(TUN_NAME, true))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied if crate::netns::rootless::active() => {
                    WorkerError::RootlessTun(e)
                }
                _ => WorkerError::Tun(e),
            })?;
        // Only the node block goes through the data plane; the rest of the lab prefix is
        // unreachable (below), so a send to it fails at once.
        let (block, block_len) = AddressPlan::block(opts.index);
        lab.install_hairpin(TUN_NAME, block, block_len, opts.mtu)?;
        let peers: HashMap<u32, SocketAddr> = opts
            .remote
            .as_ref()
            .map(|r| r.peers.iter().copied().collect())
            .unwrap_or_default();
        // The other workers' blocks go through the data plane too, which ships their packets.
        for &index in peers.keys() {
            let (remote_block, len) = AddressPlan::block(index);
            lab.install_hairpin(TUN_NAME, remote_block, len, opts.mtu)?;
        }
        let links = opts.remote.map(|r| RemoteLinks {
            socket: r.socket,
            peers: r.peers.iter().map(|(_, a)| *a).collect(),
            run: r.run,
        });
        // Each worker draws its own losses and jitter: same seed, other stream.
        let seed = opts.seed ^ u64::from(opts.index).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let dataplane =
            Dataplane::start(tun, clock, seed, links).map_err(WorkerError::Dataplane)?;
        // Every address of the worker's block is local at once (AnyIP), instead of one address
        // per node on `lo`: the kernel inserts addresses in quadratic time (1.2 s for 10,000).
        let mut netlink = lab.netlink()?;
        let lo = netlink.ifindex("lo")?;
        netlink.add_local_route(block, block_len, lo)?;
        // Lab addresses outside the node block (say, the host's resolver at 10.255.255.53)
        // are unreachable in the lab: the send fails at once instead of a 10 s DNS timeout.
        netlink.add_unreachable_route(AddressPlan::PREFIX, AddressPlan::PREFIX_LEN)?;
        let spawner = procs::Spawner::start(lab.ns_fd()).map_err(WorkerError::Spawner)?;
        Ok(LocalWorker {
            procs: HashMap::new(),
            spawner,
            dataplane: Some(dataplane),
            lab: Some(lab),
            nodes: HashMap::new(),
            local: Default::default(),
            index: opts.index,
            peers,
            results: opts.results,
            shim: opts.shim,
            static_programs: HashMap::new(),
            clock,
            pending_kills: Vec::new(),
            node_groups: HashMap::new(),
        })
    }

    pub fn namespace(&self) -> Option<&str> {
        self.lab.as_ref().map(|l| l.name())
    }

    fn lab(&self) -> &LabNamespace {
        self.lab
            .as_ref()
            .expect("the lab lives as long as the worker")
    }

    fn dataplane(&self) -> &Dataplane {
        self.dataplane
            .as_ref()
            .expect("the data plane lives as long as the worker")
    }

    /// The address of a node of this worker.
    fn ip(&self, node: NodeId) -> Result<Ipv4Addr, ExecError> {
        self.nodes
            .get(&node)
            .filter(|_| self.local.contains(&node))
            .copied()
            .ok_or_else(|| ExecError::Refused(format!("node {} is not on this worker", node.0)))
    }

    /// The address of any node of the lab.
    fn any_ip(&self, node: NodeId) -> Result<Ipv4Addr, ExecError> {
        self.nodes
            .get(&node)
            .copied()
            .ok_or_else(|| ExecError::Refused(format!("node {} is unknown here", node.0)))
    }

    /// SIGKILLs the process groups and reaps them, so their exits are known at once.
    fn kill_now(&mut self, procs: &[ProcId]) -> Vec<ProcExit> {
        let mut exits = Vec::new();
        for id in procs {
            if let Some(mut p) = self.procs.remove(id) {
                p.signal(libc::SIGKILL);
                if let Ok(status) = p.wait_exit() {
                    exits.push(ProcExit { proc: *id, status });
                }
            }
        }
        exits
    }

    fn wait_for(&mut self, id: ProcId) -> Result<Vec<ProcExit>, ExecError> {
        loop {
            let Some(p) = self.procs.get_mut(&id) else {
                return Ok(Vec::new());
            };
            if let Some(status) = p
                .try_exit()
                .map_err(|e| ExecError::Refused(e.to_string()))?
            {
                self.procs.remove(&id);
                return Ok(vec![ProcExit { proc: id, status }]);
            }
            if crate::interrupt::requested() {
                return Err(ExecError::Refused("interrupted while waiting".into()));
            }
            self.fire_pending_kills();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn fire_pending_kills(&mut self) {
        let now = self.clock.now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.pending_kills.drain(..).partition(|(t, _)| *t <= now);
        self.pending_kills = later;
        for (_, groups) in due {
            self.lab().signal_groups(&groups, libc::SIGKILL);
        }
    }

    /// Per-node counters of the data plane.
    pub fn traffic(&self) -> Vec<(Ipv4Addr, NodeCounters)> {
        self.dataplane().counters()
    }
}

impl Executor for LocalWorker {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError> {
        if let Some(dp) = self.dataplane.as_mut() {
            dp.check()
                .map_err(|e| ExecError::Refused(format!("the data plane stopped: {e}")))?;
        }
        let mut outcome = Outcome::default();
        match action {
            Action::AddNode(node) => {
                let home = if node.worker == self.index {
                    None
                } else {
                    Some(*self.peers.get(&node.worker).ok_or_else(|| {
                        ExecError::Refused(format!("worker {} is not in this run", node.worker))
                    })?)
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
            }
            Action::Shape { node, shape } => {
                let ip = self.any_ip(*node)?;
                self.dataplane().send(Command::SetParams {
                    ip,
                    params: *shape,
                });
            }
            Action::LinkGroups { a, b, link } => {
                self.dataplane().send(Command::SetGroupLink {
                    a: a.0,
                    b: b.0,
                    params: *link,
                });
            }
            Action::Spawn { proc, node, spec } => {
                let ip = self.ip(*node)?;
                let dir = self.results.join("nodes").join(ip.to_string());
                let program = spec.argv.first().map_or("", String::as_str);
                let is_static = *self
                    .static_programs
                    .entry(program.to_string())
                    .or_insert_with(|| shim::is_static_elf(program));
                if is_static {
                    outcome.warning = Some(format!(
                        "{program} is statically linked: LD_PRELOAD cannot reach it, so its \
                         sockets are not bound to {ip} by the shim; give it the address itself"
                    ));
                }
                match self.spawner.spawn(spec, *node, ip, &dir, &self.shim) {
                    // No ledger entry per process: after a crash, `p2plab cleanup` finds every
                    // process of the lab by its network namespace in /proc, and a ledger
                    // rewrite per spawn tripled the cost of spawning.
                    Ok(running) => {
                        outcome.pid = Some(running.child.id());
                        self.node_groups
                            .entry(*node)
                            .or_default()
                            .push(running.pgid());
                        self.procs.insert(*proc, running);
                    }
                    // Like a shell: the program "ran" and exited with 127; the script goes on.
                    Err(e) => {
                        procs::note_failure(&dir, &e);
                        outcome.spawn_error = Some(e.to_string());
                        outcome.exits.push(ProcExit {
                            proc: *proc,
                            status: crate::experiment::ExitStatus::Code(127),
                        });
                    }
                }
            }
            Action::Kill { proc } => outcome.exits = self.kill_now(&[*proc]),
            // A node of another worker: only its traffic stops here; its worker kills it.
            Action::FailNode { node, .. } if !self.local.contains(node) => {
                let ip = self.any_ip(*node)?;
                self.dataplane()
                    .send(Command::SetFailed { ip, failed: true });
            }
            Action::FailNode { node, procs } => {
                let ip = self.ip(*node)?;
                // Traffic stops first (the barrier waits until it is in force), so that
                // nothing the dying processes send (resets, FINs) gets out: their peers must
                // time out, as with a crashed host.
                self.dataplane()
                    .send(Command::SetFailed { ip, failed: true });
                self.dataplane().barrier();
                outcome.exits = self.kill_now(procs);
                let groups = self.node_groups.get(node).cloned().unwrap_or_default();
                self.lab().signal_groups(&groups, libc::SIGKILL);
            }
            Action::Revive { node } => {
                let ip = self.any_ip(*node)?;
                self.dataplane()
                    .send(Command::SetFailed { ip, failed: false });
            }
            Action::Leave { node, grace, .. } => {
                let deadline = self.clock.now().saturating_add(*grace);
                let groups = self.node_groups.get(node).cloned().unwrap_or_default();
                self.lab().signal_groups(&groups, libc::SIGTERM);
                self.pending_kills.push((deadline, groups));
            }
            Action::Wait { proc } => outcome.exits = self.wait_for(*proc)?,
        }
        Ok(outcome)
    }

    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError> {
        self.fire_pending_kills();
        let now = self.clock.now();
        let mut exits = Vec::new();
        self.procs.retain(|id, p| match p.try_exit() {
            Ok(Some(status)) => {
                exits.push((now, ProcExit { proc: *id, status }));
                false
            }
            _ => true,
        });
        exits.sort_by_key(|(_, e)| e.proc);
        Ok(exits)
    }

    fn traffic(&mut self) -> Vec<(Ipv4Addr, NodeCounters)> {
        LocalWorker::traffic(self)
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        for p in self.procs.values() {
            p.signal(libc::SIGKILL);
        }
        for (_, mut p) in self.procs.drain() {
            let _ = p.wait_exit();
        }
        if let Some(dp) = self.dataplane.take()
            && let Err(e) = dp.stop()
        {
            eprintln!("warning: the data plane had stopped: {e}");
        }
        if let Some(lab) = self.lab.take()
            && let Err(e) = lab.remove()
        {
            eprintln!("warning: removing the lab: {e} (run `p2plab cleanup`)");
        }
    }
}

/// Experiment time on the wall clock; sleeps end early on Ctrl-C.
pub struct RealClock {
    clock: MonotonicClock,
}

impl RealClock {
    pub fn new(clock: MonotonicClock) -> Self {
        RealClock { clock }
    }
}

impl Clock for RealClock {
    fn now(&self) -> Nanos {
        self.clock.now()
    }

    fn sleep_until(&mut self, t: Nanos) {
        // One short nap: the caller records exits and checks Ctrl-C between naps. The lab's
        // precise timing lives in the data plane, not here.
        // After Ctrl-C the naps are 1 ms: short, yet no busy loop while the last exits come.
        let nap = if crate::interrupt::requested() {
            1_000_000
        } else {
            20_000_000
        };
        let now = self.clock.now();
        if now < t {
            std::thread::sleep(Duration::from_nanos((t - now).min(nap)));
        }
    }
}
