//! The worker of one machine: it owns the lab namespace, the data plane and the processes of
//! its nodes, and carries out the controller's actions on them (the real `Executor`). Dropping
//! it kills every process it started, stops the data plane and removes the lab.

mod actions;
mod admission;
mod launch;
pub mod node_files;
mod procs;
pub mod server;
pub mod session;
pub mod shim;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;

use crate::clock::MonotonicClock;
use crate::dataplane::{Dataplane, ForwarderStats, RemoteLinks, TunDevice};
use crate::experiment::{AddressPlan, ExecError, NodeId, ProcExit, ProcId, TrafficReading};
use crate::netns::cgroup::LabCgroup;
use crate::netns::{LabNamespace, NetnsError};
use crate::proto::{Binding, BindingChoice, Failure, Setup};
use crate::units::Nanos;

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
    #[error(
        "--binding bpf: programs cannot be bound by cgroup-BPF here: {0} (--binding auto or preload uses the preloaded shim)"
    )]
    NoBpf(String),
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
    /// How the run asks for programs to be bound.
    pub binding: BindingChoice,
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
    /// The run's data-plane key, which authenticates those datagrams.
    pub key: [u8; 32],
}

/// What a `leave` kills once its grace period is over: the node's process groups and, in
/// its cgroup, the processes it had then.
struct PendingKill {
    at: Nanos,
    groups: Vec<(i32, ProcId)>,
    pids: Vec<u32>,
}

pub struct LocalWorker {
    // Field order is drop order: processes are killed by `Drop` first, then the data plane
    // stops, then the namespace goes.
    procs: procs::Children,
    /// The node of each running process, to tell an out-of-memory kill by its cgroup.
    proc_nodes: HashMap<ProcId, Ipv4Addr>,
    spawner: procs::Spawner,
    /// The lab's cgroup where programs are bound by cgroup-BPF; `None`: the shim binds them.
    cgroup: Option<LabCgroup>,
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
    pending_kills: Vec<PendingKill>,
    /// Every process group started on each node: members of a group can outlive its leader
    /// (a shell's background job), and crashing or leaving the node must reach them too.
    /// Each with the program that leads it.
    node_groups: HashMap<NodeId, Vec<(i32, ProcId)>>,
    /// The TUN device's `tx_dropped` at the last interval reading.
    tun_dropped: u64,
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
            index: opts.index,
            peers: r.peers,
            run: r.run,
            key: r.key,
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
        let cgroup = Self::lab_cgroup(&lab, opts.binding)?;
        Ok(LocalWorker {
            procs: procs::Children::default(),
            proc_nodes: HashMap::new(),
            spawner,
            cgroup,
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
            tun_dropped: 0,
        })
    }

    /// The lab's cgroup with the node-binding programs, where the host allows it (root,
    /// cgroup v2, BPF) and the run did not ask for the shim; `None` otherwise, and the shim
    /// binds programs. Asked for "bpf" where it cannot be had, an error that says why.
    fn lab_cgroup(
        lab: &LabNamespace,
        choice: BindingChoice,
    ) -> Result<Option<LabCgroup>, WorkerError> {
        let why_not = match choice {
            BindingChoice::Preload => return Ok(None),
            _ if crate::netns::rootless::active() => {
                "rootless real mode cannot attach BPF programs (run p2plab with sudo)".to_string()
            }
            _ => match LabCgroup::create(lab.name()) {
                Ok(cgroup) => {
                    lab.record_cgroup(cgroup.path())?;
                    return Ok(Some(cgroup));
                }
                Err(e) => e.to_string(),
            },
        };
        if choice == BindingChoice::Bpf {
            return Err(WorkerError::NoBpf(why_not));
        }
        tracing::info!("programs are bound by the preloaded shim: {why_not}");
        Ok(None)
    }

    pub fn namespace(&self) -> Option<&str> {
        self.lab.as_ref().map(|l| l.name())
    }

    /// How this lab binds its programs' sockets to their node's address.
    pub fn binding(&self) -> Binding {
        if self.cgroup.is_some() {
            Binding::Bpf
        } else {
            Binding::Preload
        }
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
            .ok_or(ExecError::NotLocal(node.0))
    }

    /// The address of any node of the lab.
    fn any_ip(&self, node: NodeId) -> Result<Ipv4Addr, ExecError> {
        self.nodes
            .get(&node)
            .copied()
            .ok_or(ExecError::UnknownNode(node.0))
    }

    /// SIGKILLs the process groups and reaps them, so their exits are known at once.
    fn kill_now(&mut self, procs: &[ProcId]) -> Vec<ProcExit> {
        let mut exits = Vec::new();
        for id in procs {
            if let Some(mut p) = self.procs.remove(*id) {
                p.signal(nix::sys::signal::Signal::SIGKILL);
                if let Ok(status) = p.wait_exit() {
                    exits.push(ProcExit {
                        proc: *id,
                        status,
                        oom: false,
                    });
                }
            }
        }
        exits
    }

    fn fire_pending_kills(&mut self) {
        let now = self.clock.now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.pending_kills.drain(..).partition(|k| k.at <= now);
        self.pending_kills = later;
        // All at once: the groups whose leaders were reaped cost one pass over /proc.
        let groups: Vec<(i32, ProcId)> =
            due.iter().flat_map(|k| k.groups.iter().copied()).collect();
        let pids: Vec<u32> = due.iter().flat_map(|k| k.pids.iter().copied()).collect();
        self.signal_groups(&groups, libc::SIGKILL);
        self.lab().signal_pids(&pids, libc::SIGKILL);
    }

    /// Signals process `groups` of the lab, each known by the program that leads it: with
    /// `killpg` while that program is our child not reaped yet (until then the group's number
    /// cannot be anyone else's), by one search of /proc for the members of the groups whose
    /// leaders are gone (a shell's background job outlives its shell). A group whose number
    /// now leads another of our children is empty: a number in use as a group is not reused.
    fn signal_groups(&self, groups: &[(i32, ProcId)], signal: i32) {
        let mut orphaned = Vec::new();
        let sig = nix::sys::signal::Signal::try_from(signal).ok();
        for &(g, leader) in groups {
            match self.procs.leader_of(g) {
                Some((id, child)) if id == leader => {
                    if let Some(sig) = sig {
                        child.signal(sig);
                    }
                }
                Some(_) => {}
                None => orphaned.push(g),
            }
        }
        if !orphaned.is_empty() {
            self.lab().signal_groups(&orphaned, signal);
        }
    }

    /// Per-node counters of the data plane; with `interval`, also its health since the last
    /// such reading, with the TUN device's overruns added to the socket's (a device whose
    /// statistics cannot be read counts none).
    pub fn traffic(&mut self, interval: bool) -> TrafficReading {
        let (nodes, health) = self.dataplane().counters(interval);
        let health = health.map(|mut h| {
            if let Ok(dropped) = self.lab().tx_dropped(TUN_NAME) {
                h.overruns += dropped.saturating_sub(self.tun_dropped);
                self.tun_dropped = dropped;
            }
            (self.index, h)
        });
        TrafficReading {
            nodes,
            health: health.into_iter().collect(),
        }
    }
}

/// Builds `LocalWorker` labs on this machine, for the sessions of the daemon and for the
/// embedded worker.
pub struct MachineLabs {
    /// Where node folders go: `<dir>/nodes/<ip>/`.
    pub dir: PathBuf,
    pub shim: PathBuf,
    /// The machine's data-plane socket, for runs with several workers.
    pub socket: Option<UdpSocket>,
}

impl session::LabBuilder for MachineLabs {
    type Lab = LocalWorker;

    fn build(&mut self, setup: Setup) -> Result<(LocalWorker, String, Binding), Failure> {
        let remote = if setup.peers.is_empty() {
            None
        } else {
            let key = data_key(&setup.key)?;
            let socket = self.socket.take().ok_or(Failure::NoDataSocket)?;
            Some(RemoteWorkers {
                peers: setup.peers.iter().map(|p| (p.index, p.data)).collect(),
                socket,
                run: setup.run,
                key,
            })
        };
        let opts = WorkerOptions {
            hint: setup.hint,
            results: self.dir.clone(),
            shim: self.shim.clone(),
            seed: setup.seed,
            mtu: setup.mtu,
            index: setup.index,
            binding: setup.binding,
            remote,
        };
        let worker =
            LocalWorker::start(opts, MonotonicClock::start()).map_err(|e| Failure::Lab {
                message: e.to_string(),
            })?;
        let namespace = worker.namespace().unwrap_or_default().to_string();
        let binding = worker.binding();
        Ok((worker, namespace, binding))
    }

    fn close(&mut self, lab: LocalWorker) -> BTreeMap<String, u64> {
        lab.close()
    }
}

/// The run's data-plane key from its hex form in `Setup`.
fn data_key(hex_key: &str) -> Result<[u8; 32], Failure> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut key).map_err(|_| Failure::Lab {
        message: "the data-plane key is not 32 bytes of hex".into(),
    })?;
    Ok(key)
}

impl LocalWorker {
    /// Kills the processes, stops the data plane and removes the lab; returns the data
    /// plane's counters. Done once: `Drop` finds nothing left to do after it.
    fn teardown(&mut self) -> Option<ForwarderStats> {
        self.procs.signal_all(nix::sys::signal::Signal::SIGKILL);
        for mut p in self.procs.take_all() {
            let _ = p.wait_exit();
        }
        // What the programs started (daemons that left their process group) dies with it.
        if let Some(cgroup) = self.cgroup.take()
            && let Err(e) = cgroup.remove()
        {
            tracing::warn!("removing the lab's cgroup: {e} (run `p2plab cleanup`)");
        }
        let stats = match self.dataplane.take().map(Dataplane::stop) {
            Some(Ok(stats)) => Some(stats),
            Some(Err(e)) => {
                tracing::warn!("the data plane had stopped: {e}");
                None
            }
            None => None,
        };
        if let Some(lab) = self.lab.take()
            && let Err(e) = lab.remove()
        {
            tracing::warn!("removing the lab: {e} (run `p2plab cleanup`)");
        }
        stats
    }

    /// The end of a run: the lab removed, and its data plane's counters by name.
    pub fn close(mut self) -> BTreeMap<String, u64> {
        let stats = self.teardown();
        let counters = stats.and_then(|s| serde_json::to_value(s).ok());
        match counters {
            Some(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(name, v)| Some((name, v.as_u64()?)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        self.teardown();
    }
}
