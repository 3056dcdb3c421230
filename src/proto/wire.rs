//! The protocol's own value types and their conversion from and to p2plab's internal ones:
//! actions, outcomes, exits, traffic counters and typed failures. Times are integer
//! nanoseconds, rates bits/s and sizes bytes, as in the experiment state.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::experiment::{
    Action, DataplaneHealth, DelayTrace, ExecError, ExitStatus, GilbertElliott, GroupId, GroupLink,
    JitterDist, JitterModel, LinkShape, LinkTrace, LinkTraces, NodeCounters, NodeFile, NodeId,
    NodeLimits, NodeRecord, Outcome, ProcExit, ProcId, RateTrace, SpawnSpec, TraceError, TraceId,
    TraceRef,
};
use crate::units::Nanos;

/// An action a worker carries out. `Wait` is not one: exits come to the controller as events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum WireAction {
    AddNode {
        node: u32,
        ip: Ipv4Addr,
        group: u32,
        worker: u32,
    },
    Shape {
        node: u32,
        /// Boxed: a link is the largest action by far.
        link: Box<Link>,
    },
    Limit {
        node: u32,
        cpu: Option<f64>,
        cpu_weight: Option<u32>,
        memory: Option<u64>,
    },
    LinkGroups {
        a: u32,
        b: u32,
        link: WireGroupLink,
    },
    /// Each distinct link once, and (b, index of its link) per pair.
    LinkGroupRow {
        a: u32,
        links: Vec<WireGroupLink>,
        pairs: Vec<(u32, u32)>,
    },
    LoadTrace {
        id: u32,
        trace: WireTrace,
    },
    Spawn {
        proc: u32,
        node: u32,
        cmd: String,
        argv: Vec<String>,
        shell: bool,
        env: Vec<(String, String)>,
        user: Option<String>,
        /// A file of the node's folder for its standard output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdout: Option<String>,
    },
    Kill {
        proc: u32,
    },
    FailNode {
        node: u32,
        procs: Vec<u32>,
    },
    Revive {
        node: u32,
    },
    Leave {
        node: u32,
        procs: Vec<u32>,
        grace_ns: Nanos,
    },
    Capture {
        node: u32,
        snaplen: u32,
        max_size: u64,
    },
    StopCapture {
        node: u32,
    },
}

/// One node's access link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub latency_ns: Nanos,
    pub jitter_ns: Nanos,
    pub loss: f64,
    pub queue: Option<u64>,
    pub jitter: Jitter,
    pub burst: Option<Burst>,
    pub up_trace: Option<Trace>,
    pub down_trace: Option<Trace>,
    pub delay_trace: Option<Trace>,
}

/// The link between two groups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireGroupLink {
    pub latency_ns: Nanos,
    pub jitter_ns: Nanos,
    pub loss: f64,
    pub jitter: Jitter,
    pub burst: Option<Burst>,
}

/// A jitter's distribution and correlation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    pub dist: Dist,
    pub correlation: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dist {
    Uniform,
    Normal,
    Pareto,
    ParetoNormal,
}

/// Gilbert–Elliott loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    pub p: f64,
    pub r: f64,
    pub loss_bad: f64,
    pub loss_good: f64,
}

/// A loaded trace named by a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub id: u32,
    pub offset_ns: Nanos,
}

/// A trace's content: a rate trace as (ms, opportunities at that ms) runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireTrace {
    Rate {
        runs: Vec<(u64, u32)>,
    },
    Delay {
        points: Vec<(Nanos, Nanos)>,
        period_ns: Option<Nanos>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireOutcome {
    pub pid: Option<u32>,
    pub exits: Vec<Exit>,
    pub spawn_error: Option<String>,
    pub warning: Option<String>,
}

/// A process that ended: its exit code, or the signal that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub proc: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub sent_bytes: u64,
    pub sent_packets: u64,
    pub recv_bytes: u64,
    pub recv_packets: u64,
    pub dropped_queue: u64,
    pub dropped_loss: u64,
}

/// How a worker's data plane kept up during an interval (`experiment::DataplaneHealth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub timed_packets: u64,
    pub late_p50_ns: u64,
    pub late_p99_ns: u64,
    pub late_max_ns: u64,
    pub cpu_ns: u64,
    pub overruns: u64,
    pub write_errors: u64,
}

/// Why a worker did not carry out a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum Failure {
    #[error("no lab yet: Setup comes first")]
    NoLab,
    #[error("this session already has a lab")]
    LabExists,
    #[error("this worker has no data-plane socket for other workers")]
    NoDataSocket,
    #[error("{message}")]
    Lab { message: String },
    #[error("{message}")]
    Collect { message: String },
    #[error("node {node} is not on this worker")]
    NotLocal { node: u32 },
    #[error("node {node} is unknown here")]
    UnknownNode { node: u32 },
    #[error("process {proc} is unknown")]
    UnknownProc { proc: u32 },
    #[error("worker {worker} is not in this run")]
    UnknownWorker { worker: u32 },
    #[error("the data plane stopped: {message}")]
    DataplaneStopped { message: String },
    #[error("interrupted while waiting")]
    Interrupted,
    #[error("{message}")]
    Other { message: String },
}

impl WireAction {
    /// The action's name, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            WireAction::AddNode { .. } => "add_node",
            WireAction::Shape { .. } => "shape",
            WireAction::Limit { .. } => "limit",
            WireAction::LinkGroups { .. } => "link_groups",
            WireAction::LinkGroupRow { .. } => "link_group_row",
            WireAction::LoadTrace { .. } => "load_trace",
            WireAction::Spawn { .. } => "spawn",
            WireAction::Kill { .. } => "kill",
            WireAction::FailNode { .. } => "fail_node",
            WireAction::Revive { .. } => "revive",
            WireAction::Leave { .. } => "leave",
            WireAction::Capture { .. } => "capture",
            WireAction::StopCapture { .. } => "stop_capture",
        }
    }

    /// The wire form of an action; `None` for `Wait`, which never goes to a worker.
    pub fn from_action(action: &Action) -> Option<WireAction> {
        let procs = |p: &[ProcId]| p.iter().map(|p| p.0).collect();
        Some(match action {
            Action::AddNode(n) => WireAction::AddNode {
                node: n.id.0,
                ip: n.ip,
                group: n.group.0,
                worker: n.worker,
            },
            Action::Shape { node, shape } => WireAction::Shape {
                node: node.0,
                link: Box::new(Link::from(shape)),
            },
            Action::Limit { node, limits } => WireAction::Limit {
                node: node.0,
                cpu: limits.cpu,
                cpu_weight: limits.cpu_weight,
                memory: limits.memory,
            },
            Action::LinkGroups { a, b, link } => WireAction::LinkGroups {
                a: a.0,
                b: b.0,
                link: link.into(),
            },
            Action::LinkGroupRow { a, links } => {
                let (links, pairs) = distinct_links(links);
                WireAction::LinkGroupRow {
                    a: a.0,
                    links,
                    pairs,
                }
            }
            Action::LoadTrace { id, trace } => WireAction::LoadTrace {
                id: id.0,
                trace: WireTrace::from(&**trace),
            },
            Action::Spawn { proc, node, spec } => WireAction::Spawn {
                proc: proc.0,
                node: node.0,
                cmd: spec.cmd.clone(),
                argv: spec.argv.clone(),
                shell: spec.shell,
                env: spec.env.clone(),
                user: spec.user.clone(),
                stdout: spec.stdout.as_ref().map(|f| f.as_str().to_string()),
            },
            Action::Kill { proc } => WireAction::Kill { proc: proc.0 },
            Action::FailNode { node, procs: p } => WireAction::FailNode {
                node: node.0,
                procs: procs(p),
            },
            Action::Revive { node } => WireAction::Revive { node: node.0 },
            Action::Leave {
                node,
                procs: p,
                grace,
            } => WireAction::Leave {
                node: node.0,
                procs: procs(p),
                grace_ns: *grace,
            },
            Action::Capture {
                node,
                snaplen,
                max_size,
            } => WireAction::Capture {
                node: node.0,
                snaplen: *snaplen,
                max_size: *max_size,
            },
            Action::StopCapture { node } => WireAction::StopCapture { node: node.0 },
            Action::Wait { .. } => return None,
        })
    }

    /// The action, or why a worker cannot take it.
    pub fn into_action(self) -> Result<Action, Failure> {
        let procs = |p: Vec<u32>| p.into_iter().map(ProcId).collect();
        Ok(match self {
            WireAction::AddNode {
                node,
                ip,
                group,
                worker,
            } => Action::AddNode(NodeRecord {
                id: NodeId(node),
                ip,
                group: GroupId(group),
                worker,
                shape: LinkShape::default(),
                limits: NodeLimits::default(),
                failed: false,
            }),
            WireAction::Shape { node, link } => Action::Shape {
                node: NodeId(node),
                shape: (*link).into(),
            },
            WireAction::Limit {
                node,
                cpu,
                cpu_weight,
                memory,
            } => Action::Limit {
                node: NodeId(node),
                limits: NodeLimits {
                    cpu,
                    cpu_weight,
                    memory,
                },
            },
            WireAction::LinkGroups { a, b, link } => Action::LinkGroups {
                a: GroupId(a),
                b: GroupId(b),
                link: link.into(),
            },
            WireAction::LinkGroupRow { a, links, pairs } => Action::LinkGroupRow {
                a: GroupId(a),
                links: pairs
                    .into_iter()
                    .filter_map(|(b, i)| {
                        let link = links.get(i as usize)?;
                        Some((GroupId(b), GroupLink::from(*link)))
                    })
                    .collect(),
            },
            WireAction::LoadTrace { id, trace } => Action::LoadTrace {
                id: TraceId(id),
                trace: Arc::new(trace.into_trace().map_err(|e| Failure::Other {
                    message: format!("trace {id} is malformed: {e}"),
                })?),
            },
            WireAction::Spawn {
                proc,
                node,
                cmd,
                argv,
                shell,
                env,
                user,
                stdout,
            } => Action::Spawn {
                proc: ProcId(proc),
                node: NodeId(node),
                spec: SpawnSpec {
                    cmd,
                    argv,
                    shell,
                    env,
                    user,
                    stdout: stdout
                        .map(|name| NodeFile::parse(&name))
                        .transpose()
                        .map_err(|message| Failure::Other { message })?,
                },
            },
            WireAction::Kill { proc } => Action::Kill { proc: ProcId(proc) },
            WireAction::FailNode { node, procs: p } => Action::FailNode {
                node: NodeId(node),
                procs: procs(p),
            },
            WireAction::Revive { node } => Action::Revive { node: NodeId(node) },
            WireAction::Leave {
                node,
                procs: p,
                grace_ns,
            } => Action::Leave {
                node: NodeId(node),
                procs: procs(p),
                grace: grace_ns,
            },
            WireAction::Capture {
                node,
                snaplen,
                max_size,
            } => Action::Capture {
                node: NodeId(node),
                snaplen,
                max_size,
            },
            WireAction::StopCapture { node } => Action::StopCapture { node: NodeId(node) },
        })
    }
}

/// Each distinct link of a row once, and the pairs as (group, index into them).
fn distinct_links(row: &[(GroupId, GroupLink)]) -> (Vec<WireGroupLink>, Vec<(u32, u32)>) {
    let mut links: Vec<WireGroupLink> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let pairs = row
        .iter()
        .map(|(b, link)| {
            let i = *index.entry(link.bits()).or_insert_with(|| {
                links.push(WireGroupLink::from(link));
                (links.len() - 1) as u32
            });
            (b.0, i)
        })
        .collect();
    (links, pairs)
}

impl From<JitterModel> for Jitter {
    fn from(j: JitterModel) -> Jitter {
        Jitter {
            dist: match j.dist {
                JitterDist::Uniform => Dist::Uniform,
                JitterDist::Normal => Dist::Normal,
                JitterDist::Pareto => Dist::Pareto,
                JitterDist::ParetoNormal => Dist::ParetoNormal,
            },
            correlation: j.correlation,
        }
    }
}

impl From<Jitter> for JitterModel {
    fn from(j: Jitter) -> JitterModel {
        JitterModel {
            dist: match j.dist {
                Dist::Uniform => JitterDist::Uniform,
                Dist::Normal => JitterDist::Normal,
                Dist::Pareto => JitterDist::Pareto,
                Dist::ParetoNormal => JitterDist::ParetoNormal,
            },
            correlation: j.correlation,
        }
    }
}

impl From<GilbertElliott> for Burst {
    fn from(g: GilbertElliott) -> Burst {
        Burst {
            p: g.p,
            r: g.r,
            loss_bad: g.loss_bad,
            loss_good: g.loss_good,
        }
    }
}

impl From<Burst> for GilbertElliott {
    fn from(b: Burst) -> GilbertElliott {
        GilbertElliott {
            p: b.p,
            r: b.r,
            loss_bad: b.loss_bad,
            loss_good: b.loss_good,
        }
    }
}

impl From<TraceRef> for Trace {
    fn from(t: TraceRef) -> Trace {
        Trace {
            id: t.id.0,
            offset_ns: t.offset,
        }
    }
}

impl From<Trace> for TraceRef {
    fn from(t: Trace) -> TraceRef {
        TraceRef {
            id: TraceId(t.id),
            offset: t.offset_ns,
        }
    }
}

impl From<&GroupLink> for WireGroupLink {
    fn from(l: &GroupLink) -> WireGroupLink {
        WireGroupLink {
            latency_ns: l.latency,
            jitter_ns: l.jitter,
            loss: l.loss,
            jitter: l.jitter_model.into(),
            burst: l.burst.map(Burst::from),
        }
    }
}

impl From<WireGroupLink> for GroupLink {
    fn from(l: WireGroupLink) -> GroupLink {
        GroupLink {
            latency: l.latency_ns,
            jitter: l.jitter_ns,
            loss: l.loss,
            jitter_model: l.jitter.into(),
            burst: l.burst.map(GilbertElliott::from),
        }
    }
}

impl From<&LinkTrace> for WireTrace {
    fn from(t: &LinkTrace) -> WireTrace {
        match t {
            LinkTrace::Rate(r) => {
                let mut runs: Vec<(u64, u32)> = Vec::new();
                for &ms in r.opportunities() {
                    match runs.last_mut() {
                        Some((at, n)) if *at == ms => *n = n.saturating_add(1),
                        _ => runs.push((ms, 1)),
                    }
                }
                WireTrace::Rate { runs }
            }
            LinkTrace::Delay(d) => WireTrace::Delay {
                points: d.points().to_vec(),
                period_ns: d.period,
            },
        }
    }
}

/// Most delivery opportunities a rate trace may hold (a gigabit for 12 minutes).
const MAX_OPPORTUNITIES: u64 = 1 << 26;

impl WireTrace {
    fn into_trace(self) -> Result<LinkTrace, TraceError> {
        Ok(match self {
            WireTrace::Rate { runs } => {
                // A run's count is a number on the wire: bound what it may expand to.
                let total: u64 = runs.iter().map(|&(_, n)| u64::from(n)).sum();
                if total > MAX_OPPORTUNITIES {
                    return Err(TraceError {
                        line: 0,
                        message: format!(
                            "{total} opportunities, more than the {MAX_OPPORTUNITIES} a trace may hold"
                        ),
                    });
                }
                LinkTrace::Rate(RateTrace::new(
                    runs.into_iter()
                        .flat_map(|(ms, n)| std::iter::repeat_n(ms, n as usize))
                        .collect(),
                )?)
            }
            WireTrace::Delay { points, period_ns } => {
                LinkTrace::Delay(DelayTrace::new(points, period_ns)?)
            }
        })
    }
}

impl From<&LinkShape> for Link {
    fn from(s: &LinkShape) -> Link {
        Link {
            up: s.up,
            down: s.down,
            latency_ns: s.latency,
            jitter_ns: s.jitter,
            loss: s.loss,
            queue: s.queue,
            jitter: s.jitter_model.into(),
            burst: s.burst.map(Burst::from),
            up_trace: s.traces.up.map(Trace::from),
            down_trace: s.traces.down.map(Trace::from),
            delay_trace: s.traces.delay.map(Trace::from),
        }
    }
}

impl From<Link> for LinkShape {
    fn from(l: Link) -> LinkShape {
        LinkShape {
            up: l.up,
            down: l.down,
            latency: l.latency_ns,
            jitter: l.jitter_ns,
            loss: l.loss,
            queue: l.queue,
            jitter_model: l.jitter.into(),
            burst: l.burst.map(GilbertElliott::from),
            traces: LinkTraces {
                up: l.up_trace.map(TraceRef::from),
                down: l.down_trace.map(TraceRef::from),
                delay: l.delay_trace.map(TraceRef::from),
            },
        }
    }
}

impl From<&ProcExit> for Exit {
    fn from(e: &ProcExit) -> Exit {
        let (code, signal) = match e.status {
            ExitStatus::Code(c) => (Some(c), None),
            ExitStatus::Signal(s) => (None, Some(s)),
        };
        Exit {
            proc: e.proc.0,
            code,
            signal,
            oom: e.oom,
        }
    }
}

impl From<Exit> for ProcExit {
    fn from(e: Exit) -> ProcExit {
        let status = match (e.code, e.signal) {
            (_, Some(s)) => ExitStatus::Signal(s),
            (Some(c), None) => ExitStatus::Code(c),
            (None, None) => ExitStatus::Code(-1),
        };
        ProcExit {
            proc: ProcId(e.proc),
            status,
            oom: e.oom,
        }
    }
}

impl From<&Outcome> for WireOutcome {
    fn from(o: &Outcome) -> WireOutcome {
        WireOutcome {
            pid: o.pid,
            exits: o.exits.iter().map(Exit::from).collect(),
            spawn_error: o.spawn_error.clone(),
            warning: o.warning.clone(),
        }
    }
}

impl From<WireOutcome> for Outcome {
    fn from(o: WireOutcome) -> Outcome {
        Outcome {
            pid: o.pid,
            exits: o.exits.into_iter().map(ProcExit::from).collect(),
            spawn_error: o.spawn_error,
            warning: o.warning,
        }
    }
}

impl From<&NodeCounters> for Counters {
    fn from(c: &NodeCounters) -> Counters {
        Counters {
            sent_bytes: c.sent_bytes,
            sent_packets: c.sent_packets,
            recv_bytes: c.recv_bytes,
            recv_packets: c.recv_packets,
            dropped_queue: c.dropped_queue,
            dropped_loss: c.dropped_loss,
        }
    }
}

impl From<&DataplaneHealth> for Health {
    fn from(h: &DataplaneHealth) -> Health {
        Health {
            timed_packets: h.timed_packets,
            late_p50_ns: h.late_p50_ns,
            late_p99_ns: h.late_p99_ns,
            late_max_ns: h.late_max_ns,
            cpu_ns: h.cpu_ns,
            overruns: h.overruns,
            write_errors: h.write_errors,
        }
    }
}

impl From<Health> for DataplaneHealth {
    fn from(h: Health) -> DataplaneHealth {
        DataplaneHealth {
            timed_packets: h.timed_packets,
            late_p50_ns: h.late_p50_ns,
            late_p99_ns: h.late_p99_ns,
            late_max_ns: h.late_max_ns,
            cpu_ns: h.cpu_ns,
            overruns: h.overruns,
            write_errors: h.write_errors,
        }
    }
}

impl From<Counters> for NodeCounters {
    fn from(c: Counters) -> NodeCounters {
        NodeCounters {
            sent_bytes: c.sent_bytes,
            sent_packets: c.sent_packets,
            recv_bytes: c.recv_bytes,
            recv_packets: c.recv_packets,
            dropped_queue: c.dropped_queue,
            dropped_loss: c.dropped_loss,
        }
    }
}

impl From<&ExecError> for Failure {
    fn from(e: &ExecError) -> Failure {
        match e {
            ExecError::NotLocal(node) => Failure::NotLocal { node: *node },
            ExecError::UnknownNode(node) => Failure::UnknownNode { node: *node },
            ExecError::UnknownProc(proc) => Failure::UnknownProc { proc: *proc },
            ExecError::UnknownWorker(worker) => Failure::UnknownWorker { worker: *worker },
            ExecError::DataplaneStopped(io) => Failure::DataplaneStopped {
                message: io.to_string(),
            },
            ExecError::Interrupted => Failure::Interrupted,
            other => Failure::Other {
                message: other.to_string(),
            },
        }
    }
}

impl From<Failure> for ExecError {
    fn from(f: Failure) -> ExecError {
        match f {
            Failure::NotLocal { node } => ExecError::NotLocal(node),
            Failure::UnknownNode { node } => ExecError::UnknownNode(node),
            Failure::UnknownProc { proc } => ExecError::UnknownProc(proc),
            Failure::UnknownWorker { worker } => ExecError::UnknownWorker(worker),
            Failure::DataplaneStopped { message } => {
                ExecError::DataplaneStopped(std::io::Error::other(message))
            }
            Failure::Interrupted => ExecError::Interrupted,
            other => ExecError::Remote(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_but_wait_survives_the_wire() {
        let shape = LinkShape {
            up: Some(128_000),
            down: None,
            latency: 30_000_000,
            jitter: 1_000_000,
            loss: 0.01,
            queue: Some(65_536),
            ..LinkShape::default()
        };
        let actions = [
            Action::AddNode(NodeRecord {
                id: NodeId(3),
                ip: Ipv4Addr::new(10, 1, 0, 4),
                group: GroupId(2),
                worker: 1,
                shape: LinkShape::default(),
                limits: NodeLimits::default(),
                failed: false,
            }),
            Action::Shape {
                node: NodeId(3),
                shape,
            },
            Action::Limit {
                node: NodeId(3),
                limits: NodeLimits {
                    cpu: Some(0.25),
                    cpu_weight: None,
                    memory: Some(64 << 20),
                },
            },
            Action::LinkGroups {
                a: GroupId(0),
                b: GroupId(2),
                link: GroupLink {
                    latency: 5,
                    jitter: 1,
                    loss: 0.5,
                    ..GroupLink::NONE
                },
            },
            actions_row(),
            Action::LoadTrace {
                id: TraceId(4),
                trace: Arc::new(LinkTrace::Rate(
                    RateTrace::new(vec![1, 1, 1, 3, 7]).unwrap(),
                )),
            },
            Action::LoadTrace {
                id: TraceId(5),
                trace: Arc::new(LinkTrace::Delay(
                    DelayTrace::new(vec![(0, 5), (10, 7)], Some(20)).unwrap(),
                )),
            },
            Action::Spawn {
                proc: ProcId(7),
                node: NodeId(3),
                spec: SpawnSpec {
                    cmd: "sleep 1".into(),
                    argv: vec!["sleep".into(), "1".into()],
                    shell: false,
                    env: vec![("A".into(), "b".into())],
                    user: Some("nobody".into()),
                    stdout: Some(NodeFile::parse("out/iperf.json").unwrap()),
                },
            },
            Action::Kill { proc: ProcId(7) },
            Action::FailNode {
                node: NodeId(3),
                procs: vec![ProcId(7), ProcId(8)],
            },
            Action::Revive { node: NodeId(3) },
            Action::Leave {
                node: NodeId(3),
                procs: vec![ProcId(8)],
                grace: 2_000_000_000,
            },
            Action::Capture {
                node: NodeId(3),
                snaplen: 96,
                max_size: 1 << 20,
            },
            Action::StopCapture { node: NodeId(3) },
        ];
        for action in actions {
            let wire = WireAction::from_action(&action).unwrap();
            let json = serde_json::to_string(&wire).unwrap();
            let back: WireAction = serde_json::from_str(&json).unwrap();
            assert_eq!(back.into_action().unwrap(), action, "{json}");
        }
        assert_eq!(
            WireAction::from_action(&Action::Wait { proc: ProcId(1) }),
            None
        );
        // A row sends each distinct link once; a trace as runs of equal timestamps.
        let row = WireAction::from_action(&actions_row()).unwrap();
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains(r#""pairs":[[0,0],[2,1],[3,0]]"#), "{json}");
        let trace = serde_json::to_string(&WireTrace::from(&LinkTrace::Rate(
            RateTrace::new(vec![1, 1, 1, 3]).unwrap(),
        )))
        .unwrap();
        assert_eq!(trace, r#"{"kind":"rate","runs":[[1,3],[3,1]]}"#);
        // A malformed trace is refused, not taken.
        let bad = WireAction::LoadTrace {
            id: 1,
            trace: WireTrace::Rate {
                runs: vec![(5, 1), (2, 1)],
            },
        };
        assert!(bad.into_action().is_err());
    }

    fn actions_row() -> Action {
        Action::LinkGroupRow {
            a: GroupId(1),
            links: vec![
                (GroupId(0), GroupLink::NONE),
                (
                    GroupId(2),
                    GroupLink {
                        latency: 9,
                        burst: Some(GilbertElliott {
                            p: 0.1,
                            r: 0.5,
                            loss_bad: 1.0,
                            loss_good: 0.0,
                        }),
                        ..GroupLink::NONE
                    },
                ),
                (GroupId(3), GroupLink::NONE),
            ],
        }
    }

    #[test]
    fn failures_keep_their_kind_across_the_wire() {
        let sent = ExecError::DataplaneStopped(std::io::Error::other("tun gone"));
        let json = serde_json::to_string(&Failure::from(&sent)).unwrap();
        assert_eq!(
            json,
            r#"{"failure":"dataplane_stopped","message":"tun gone"}"#
        );
        let back = ExecError::from(serde_json::from_str::<Failure>(&json).unwrap());
        assert!(matches!(back, ExecError::DataplaneStopped(_)));
        assert_eq!(back.to_string(), sent.to_string());
        let back = ExecError::from(Failure::from(&ExecError::NotLocal(4)));
        assert!(matches!(back, ExecError::NotLocal(4)));
    }

    #[test]
    fn exits_and_counters_round_trip() {
        for (status, oom) in [
            (ExitStatus::Code(3), false),
            (ExitStatus::Signal(9), false),
            (ExitStatus::Signal(9), true),
        ] {
            let exit = ProcExit {
                proc: ProcId(1),
                status,
                oom,
            };
            assert_eq!(ProcExit::from(Exit::from(&exit)), exit);
        }
        let c = NodeCounters {
            sent_bytes: 1,
            sent_packets: 2,
            recv_bytes: 3,
            recv_packets: 4,
            dropped_queue: 5,
            dropped_loss: 6,
        };
        assert_eq!(NodeCounters::from(Counters::from(&c)), c);
    }
}
