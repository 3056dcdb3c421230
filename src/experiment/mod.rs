//! The experiment state: nodes, groups, link shapes, group links, processes, failed nodes, and
//! the placement of nodes on workers; the actions that change it and the `Executor` interface
//! that carries them out, with the experiment `Clock`. One model for dry-run and real mode; it
//! knows nothing of Rhai, sockets or namespaces, and only changes after an action was carried
//! out.

mod action;
mod executor;
mod group_table;
mod limits;
mod link;
mod node_file;
mod placement;
mod trace;
mod traffic;

pub use action::{Action, ExitStatus, ProcExit, SpawnSpec};
pub use executor::{Clock, DryRun, ExecError, Executor, Outcome, VirtualClock, signal_name};
pub use group_table::GroupTable;
pub use limits::NodeLimits;
pub use link::{
    GilbertElliott, GroupLink, JitterDist, JitterModel, LinkShape, LinkTraces, MIN_DEFAULT_QUEUE,
    ShapeUpdate, TraceId, TraceRef, default_queue_limit,
};
pub use node_file::{MAX_NODE_FILE, NodeFile};
pub use placement::{AddressPlan, MAX_WORKERS, NODES_PER_WORKER, Placement};
pub use trace::{DelayTrace, LinkTrace, OPPORTUNITY_BYTES, RateTrace, TraceError};
pub use traffic::{DataplaneHealth, NodeCounters, TrafficReading};

/// Most groups an experiment may have: the link model keeps a dense matrix of group pairs,
/// 4 bytes a pair (64 MiB at this many groups).
pub const MAX_GROUPS: u32 = 4096;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcId(pub u32);

#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub id: NodeId,
    pub ip: Ipv4Addr,
    pub group: GroupId,
    pub worker: u32,
    pub shape: LinkShape,
    pub limits: NodeLimits,
    pub failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcStatus {
    Running,
    Exited(ExitStatus),
}

#[derive(Debug, Clone)]
pub struct ProcRecord {
    pub id: ProcId,
    pub node: NodeId,
    pub cmd: String,
    pub pid: u32,
    pub status: ProcStatus,
    /// The file of its node's folder its standard output goes to, if it has its own.
    pub stdout: Option<NodeFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("unknown group {name:?} (known groups: {known})")]
    UnknownGroup { name: String, known: String },
    #[error("{0}")]
    Placement(#[from] placement::PlacementError),
    #[error(
        "too many groups: the data plane holds at most {max} (group {name:?} would be one more)"
    )]
    TooManyGroups { name: String, max: u32 },
}

#[derive(Debug, Default)]
pub struct Experiment {
    nodes: Vec<NodeRecord>,
    group_names: Vec<String>,
    group_members: Vec<Vec<NodeId>>,
    group_index: HashMap<String, GroupId>,
    group_links: GroupTable,
    procs: Vec<ProcRecord>,
    /// Running processes per worker, kept as processes start and exit (`running_on`).
    running: Vec<usize>,
    placement: Placement,
    /// Loaded traces, by `TraceId`: the file's name as the script gave it, and the trace.
    traces: Vec<(String, Arc<LinkTrace>)>,
    trace_files: HashMap<PathBuf, TraceId>,
}

impl Experiment {
    pub fn new(placement: Placement) -> Self {
        Experiment {
            placement,
            ..Default::default()
        }
    }

    /// Plans `n` new nodes (addresses and workers) without adding them: the caller executes
    /// the `AddNode` actions, then commits each with `add_node`.
    pub fn plan_nodes(
        &self,
        n: usize,
        group: &str,
        worker: Option<u32>,
    ) -> Result<Vec<NodeRecord>, StateError> {
        let max = MAX_GROUPS;
        let group = match self.group_index.get(group) {
            Some(&id) => id,
            None if self.group_names.len() as u32 >= max => {
                return Err(StateError::TooManyGroups {
                    name: group.to_string(),
                    max,
                });
            }
            None => GroupId(self.group_names.len() as u32),
        };
        let placed = self.placement.place(n, worker)?;
        Ok(placed
            .into_iter()
            .enumerate()
            .map(|(i, (worker, ip))| NodeRecord {
                id: NodeId((self.nodes.len() + i) as u32),
                ip,
                group,
                worker,
                shape: LinkShape::default(),
                limits: NodeLimits::default(),
                failed: false,
            })
            .collect())
    }

    pub fn add_node(&mut self, node: NodeRecord, group_name: &str) {
        let group = self.intern_group(group_name);
        debug_assert_eq!(group, node.group);
        self.placement.commit(node.worker);
        self.group_members[group.0 as usize].push(node.id);
        self.nodes.push(node);
    }

    fn intern_group(&mut self, name: &str) -> GroupId {
        if let Some(&id) = self.group_index.get(name) {
            return id;
        }
        let id = GroupId(self.group_names.len() as u32);
        self.group_names.push(name.to_string());
        self.group_members.push(Vec::new());
        self.group_index.insert(name.to_string(), id);
        id
    }

    pub fn node(&self, id: NodeId) -> &NodeRecord {
        &self.nodes[id.0 as usize]
    }

    pub fn nodes(&self) -> &[NodeRecord] {
        &self.nodes
    }

    pub fn group_name(&self, id: GroupId) -> &str {
        &self.group_names[id.0 as usize]
    }

    pub fn group_names(&self) -> &[String] {
        &self.group_names
    }

    pub fn group(&self, name: &str) -> Result<GroupId, StateError> {
        self.group_index
            .get(name)
            .copied()
            .ok_or_else(|| StateError::UnknownGroup {
                name: name.to_string(),
                known: if self.group_names.is_empty() {
                    "none yet: alloc_ip(n, #{ group: \"name\" }) creates one".to_string()
                } else {
                    self.group_names
                        .iter()
                        .map(|g| format!("{g:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }

    pub fn members(&self, group: GroupId) -> &[NodeId] {
        &self.group_members[group.0 as usize]
    }

    pub fn set_shape(&mut self, node: NodeId, shape: LinkShape) {
        self.nodes[node.0 as usize].shape = shape;
    }

    pub fn set_limits(&mut self, node: NodeId, limits: NodeLimits) {
        self.nodes[node.0 as usize].limits = limits;
    }

    pub fn set_failed(&mut self, node: NodeId, failed: bool) {
        self.nodes[node.0 as usize].failed = failed;
    }

    pub fn set_group_link(&mut self, a: GroupId, b: GroupId, link: GroupLink) {
        self.group_links.set(a.0, b.0, link);
    }

    pub fn group_link(&self, a: GroupId, b: GroupId) -> GroupLink {
        *self.group_links.get(a.0, b.0)
    }

    /// The links between groups, all of them.
    pub fn group_links(&self) -> &GroupTable {
        &self.group_links
    }

    pub fn next_proc_id(&self) -> ProcId {
        ProcId(self.procs.len() as u32)
    }

    pub fn add_proc(
        &mut self,
        node: NodeId,
        cmd: String,
        pid: u32,
        stdout: Option<NodeFile>,
    ) -> ProcId {
        let id = self.next_proc_id();
        let worker = self.node(node).worker as usize;
        if self.running.len() <= worker {
            self.running.resize(worker + 1, 0);
        }
        self.running[worker] += 1;
        self.procs.push(ProcRecord {
            id,
            node,
            cmd,
            pid,
            status: ProcStatus::Running,
            stdout,
        });
        id
    }

    /// Every process, in spawn order.
    pub fn procs(&self) -> &[ProcRecord] {
        &self.procs
    }

    pub fn proc(&self, id: ProcId) -> &ProcRecord {
        &self.procs[id.0 as usize]
    }

    /// Records an exit; returns false when the process had already exited (a late duplicate).
    pub fn proc_exited(&mut self, id: ProcId, status: ExitStatus) -> bool {
        let proc = &mut self.procs[id.0 as usize];
        if proc.status != ProcStatus::Running {
            return false;
        }
        proc.status = ProcStatus::Exited(status);
        let worker = self.nodes[proc.node.0 as usize].worker as usize;
        self.running[worker] -= 1;
        true
    }

    /// How many processes run on `worker` (as far as their exits were recorded).
    pub fn running_on(&self, worker: u32) -> usize {
        self.running.get(worker as usize).copied().unwrap_or(0)
    }

    /// How many processes run on all workers.
    pub fn running(&self) -> usize {
        self.running.iter().sum()
    }

    pub fn any_running(&self) -> bool {
        self.procs.iter().any(|p| p.status == ProcStatus::Running)
    }

    /// Running processes of one node, in spawn order.
    pub fn running_procs(&self, node: NodeId) -> Vec<ProcId> {
        self.procs
            .iter()
            .filter(|p| p.node == node && p.status == ProcStatus::Running)
            .map(|p| p.id)
            .collect()
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The id the next loaded trace gets.
    pub fn next_trace_id(&self) -> TraceId {
        TraceId(self.traces.len() as u32)
    }

    /// Keeps a trace loaded from `file` (found at `path`) under `next_trace_id()`.
    pub fn add_trace(&mut self, file: &str, path: &Path, trace: Arc<LinkTrace>) -> TraceId {
        let id = self.next_trace_id();
        self.traces.push((file.to_string(), trace));
        self.trace_files.insert(path.to_path_buf(), id);
        id
    }

    /// The trace already loaded from `path`, if any.
    pub fn trace_at(&self, path: &Path) -> Option<TraceId> {
        self.trace_files.get(path).copied()
    }

    /// A loaded trace's file name (as the script gave it) and content.
    pub fn trace(&self, id: TraceId) -> Option<(&str, &Arc<LinkTrace>)> {
        self.traces
            .get(id.0 as usize)
            .map(|(name, t)| (name.as_str(), t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(exp: &mut Experiment, n: usize, group: &str) -> Vec<NodeId> {
        let planned = exp.plan_nodes(n, group, None).unwrap();
        planned
            .into_iter()
            .map(|node| {
                let id = node.id;
                exp.add_node(node, group);
                id
            })
            .collect()
    }

    #[test]
    fn groups_and_links() {
        let mut exp = Experiment::new(Placement::single());
        let dsl = add(&mut exp, 3, "dsl");
        add(&mut exp, 2, "fiber");
        assert_eq!(exp.node(dsl[2]).ip, Ipv4Addr::new(10, 0, 0, 3));
        let (d, f) = (exp.group("dsl").unwrap(), exp.group("fiber").unwrap());
        assert_eq!(exp.members(f).len(), 2);
        exp.set_group_link(
            f,
            d,
            GroupLink {
                latency: 9,
                ..Default::default()
            },
        );
        assert_eq!(exp.group_link(d, f).latency, 9);
        assert_eq!(exp.group_link(d, d).latency, 0);
        let err = exp.group("cable").unwrap_err().to_string();
        assert!(err.contains("\"dsl\", \"fiber\""), "{err}");
    }

    #[test]
    fn procs_exit_once() {
        let mut exp = Experiment::new(Placement::single());
        let n = add(&mut exp, 1, "g")[0];
        let p = exp.add_proc(n, "sleep 1".into(), 42, None);
        assert_eq!(exp.running_procs(n), vec![p]);
        assert_eq!(exp.running_on(0), 1);
        assert!(exp.proc_exited(p, ExitStatus::Code(0)));
        assert!(!exp.proc_exited(p, ExitStatus::Signal(9)));
        assert!(exp.running_procs(n).is_empty());
        assert_eq!((exp.running_on(0), exp.running_on(7)), (0, 0));
    }
}
