//! What the controller asks an executor to do, with every value resolved, and what comes
//! back about processes. Dry-run and real executors receive exactly the same actions.

use std::sync::Arc;

use super::{
    GroupId, LinkShape, LinkTrace, NodeFile, NodeId, NodeLimits, NodeRecord, ProcId, TraceId,
};
use crate::experiment::GroupLink;
use crate::units::Nanos;

/// How to start one program on one node.
#[derive(Debug, Clone, PartialEq)]
pub struct SpawnSpec {
    /// The command line after `{ip}`/`{id}` substitution, as recorded in events.
    pub cmd: String,
    /// The program and its arguments: shell-words of `cmd`, or `sh -c cmd` with `shell: true`.
    pub argv: Vec<String>,
    /// Given as `#{ shell: true }`.
    pub shell: bool,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    /// Given as `#{ stdout: "name" }`: its standard output goes to this file of the node's
    /// folder instead of the node's shared stdout.log.
    pub stdout: Option<NodeFile>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AddNode(NodeRecord),
    Shape {
        node: NodeId,
        shape: LinkShape,
    },
    /// The node's CPU and memory limits, all of them: applied at once to its programs.
    Limit {
        node: NodeId,
        limits: NodeLimits,
    },
    LinkGroups {
        a: GroupId,
        b: GroupId,
        link: GroupLink,
    },
    /// Links group `a` with each of many groups at once (a topology's row): the same as one
    /// `LinkGroups` per pair.
    LinkGroupRow {
        a: GroupId,
        links: Vec<(GroupId, GroupLink)>,
    },
    /// A trace every data plane keeps for the run; sent before the first `Shape` naming it.
    LoadTrace {
        id: TraceId,
        trace: Arc<LinkTrace>,
    },
    Spawn {
        proc: ProcId,
        node: NodeId,
        spec: SpawnSpec,
    },
    /// SIGKILL one process.
    Kill {
        proc: ProcId,
    },
    /// SIGKILL every process of the node, then drop its traffic.
    FailNode {
        node: NodeId,
        procs: Vec<ProcId>,
    },
    Revive {
        node: NodeId,
    },
    /// SIGTERM every process of the node, SIGKILL after `grace`.
    Leave {
        node: NodeId,
        procs: Vec<ProcId>,
        grace: Nanos,
    },
    /// Writes the packets the node's access link sends and receives into
    /// `nodes/<ip>/capture.pcap`, cut to `snaplen` bytes each, until the file would pass
    /// `max_size` bytes, the run ends or `StopCapture`.
    Capture {
        node: NodeId,
        snaplen: u32,
        max_size: u64,
    },
    StopCapture {
        node: NodeId,
    },
    /// Block until the process exits.
    Wait {
        proc: ProcId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The value `Proc.wait()` returns: the exit code, or 128 + signal like a shell.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// A process that ended, reported by an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcExit {
    pub proc: ProcId,
    pub status: ExitStatus,
    /// Killed by the kernel because its node ran out of its `memory` limit.
    pub oom: bool,
}
