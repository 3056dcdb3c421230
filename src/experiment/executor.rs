//! The executor interface: the one seam between the shared controller logic and what actually
//! happens. `DryRun` carries nothing out; the controller's `Workers` drives real workers (the
//! embedded one too) and a worker's `LocalWorker` carries actions out on its machine. Also the
//! experiment clock, the other thing a mode swaps.

use std::net::Ipv4Addr;

use super::{Action, ExitStatus, NodeFile, NodeId, ProcExit, ProcId, TrafficReading};
use crate::units::Nanos;

/// Why an executor could not carry out an action. The embedded worker and remote workers
/// report the same variants (the protocol carries them typed, see `proto::Failure`).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("node {0} is not on this worker")]
    NotLocal(u32),
    #[error("node {0} is unknown here")]
    UnknownNode(u32),
    #[error("process {0} is unknown")]
    UnknownProc(u32),
    #[error("worker {0} is not in this run")]
    UnknownWorker(u32),
    #[error("the data plane stopped: {0}")]
    DataplaneStopped(#[source] std::io::Error),
    #[error("interrupted while waiting")]
    Interrupted,
    #[error("packet capture {path}: {source}")]
    Capture {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the process is still running after wait()")]
    StillRunning,
    /// An error a worker reported that has no variant of its own here (its lab could not be
    /// built, a file could not be collected).
    #[error("{0}")]
    Remote(String),
    /// The controller could not keep what a worker sent (a collected file).
    #[error("{0}")]
    Results(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no reply within {0:?}")]
    NoReply(std::time::Duration),
    #[error("unexpected reply from the worker: {0}")]
    UnexpectedReply(String),
    /// Prefixes an error with the worker it happened on (runs with several workers).
    #[error("worker {worker} ({addr}): {source}")]
    OnWorker {
        worker: u32,
        addr: String,
        #[source]
        source: Box<ExecError>,
    },
    #[error("worker {worker} ({addr}) was lost: {reason}")]
    WorkerLost {
        worker: u32,
        addr: String,
        reason: String,
    },
}

/// What an executor reports back for one action.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// The pid of a spawned process.
    pub pid: Option<u32>,
    /// Processes that ended because of this action (dry-run reports them at once).
    pub exits: Vec<ProcExit>,
    /// Spawn: why the program could not start (it is then reported as exited with 127).
    pub spawn_error: Option<String>,
    /// Something the user should know, e.g. a static binary the shim cannot reach.
    pub warning: Option<String>,
}

pub trait Executor: Send {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError>;

    /// Process exits that happened on their own since the last call, with their time; an
    /// error when a worker was lost.
    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError>;

    /// Per-node traffic counters so far (none without a data plane); with `interval`, also
    /// how each data plane kept up since the last such reading, which this one ends.
    fn traffic(&mut self, _interval: bool) -> TrafficReading {
        TrafficReading::default()
    }

    /// The bytes of `file` in the folder of node `node` (address `ip`) as its programs left
    /// it so far; `None` when there is no such file, as always without programs (dry-run).
    fn read_node_file(
        &mut self,
        _node: NodeId,
        _ip: Ipv4Addr,
        _file: &NodeFile,
    ) -> Result<Option<Vec<u8>>, ExecError> {
        Ok(None)
    }

    /// After the last action: gathers what the run left on other machines and ends it there.
    fn finish(&mut self) -> Result<(), ExecError> {
        Ok(())
    }
}

/// The experiment clock. Time starts at 0 when the script starts.
pub trait Clock: Send {
    fn now(&self) -> Nanos;
    /// Sleeps towards experiment time `t`; may return before it (a real clock naps in short
    /// steps so the controller can record process exits on the way). Callers loop.
    fn sleep_until(&mut self, t: Nanos);

    /// A clock that jumps instead of waiting (dry-run).
    fn is_virtual(&self) -> bool {
        false
    }
}

/// A clock that jumps: dry-runs take milliseconds whatever the experiment's length.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: Nanos,
}

impl Clock for VirtualClock {
    fn now(&self) -> Nanos {
        self.now
    }

    fn sleep_until(&mut self, t: Nanos) {
        self.now = self.now.max(t);
    }

    fn is_virtual(&self) -> bool {
        true
    }
}

/// Carries nothing out. Processes get virtual pids, end only when killed, failed or left
/// (reported at once), and `wait()` treats them as exiting at once with code 0.
#[derive(Debug, Default)]
pub struct DryRun;

/// Virtual pids start high so they are never mistaken for real ones in a log.
const DRY_RUN_PID_BASE: u32 = 100_000;

impl Executor for DryRun {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError> {
        let killed = |procs: &[ProcId], signal| Outcome {
            exits: procs
                .iter()
                .map(|&proc| ProcExit {
                    proc,
                    status: ExitStatus::Signal(signal),
                    oom: false,
                })
                .collect(),
            ..Outcome::default()
        };
        Ok(match action {
            Action::Spawn { proc, .. } => Outcome {
                pid: Some(DRY_RUN_PID_BASE + proc.0),
                ..Outcome::default()
            },
            Action::Kill { proc } => killed(&[*proc], SIGKILL),
            Action::FailNode { procs, .. } => killed(procs, SIGKILL),
            Action::Leave { procs, .. } => killed(procs, SIGTERM),
            Action::Wait { proc } => Outcome {
                exits: vec![ProcExit {
                    proc: *proc,
                    status: ExitStatus::Code(0),
                    oom: false,
                }],
                ..Outcome::default()
            },
            Action::AddNode(_)
            | Action::Shape { .. }
            | Action::Limit { .. }
            | Action::LinkGroups { .. }
            | Action::LinkGroupRow { .. }
            | Action::LoadTrace { .. }
            | Action::Revive { .. }
            | Action::Capture { .. }
            | Action::StopCapture { .. } => Outcome::default(),
        })
    }

    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError> {
        Ok(Vec::new())
    }
}

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

/// The conventional name of a signal, for events.
pub fn signal_name(signal: i32) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        6 => "SIGABRT".into(),
        9 => "SIGKILL".into(),
        11 => "SIGSEGV".into(),
        13 => "SIGPIPE".into(),
        15 => "SIGTERM".into(),
        n => format!("SIG{n}"),
    }
}
