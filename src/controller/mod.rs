//! The controller's core: `Lab` applies each primitive to the experiment state through an
//! executor and records it in the event log. Validation happens before execution, and the
//! state changes only after the executor succeeded, so nothing is left half-applied. Dry-run
//! and real mode differ only in the `Executor` and `Clock` given to `Lab::new`.

mod clock;
mod live;
mod proc_limit;
mod readings;
mod watch;
pub mod workers;

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;

use crate::experiment::{
    Action, Clock, ExecError, Executor, ExitStatus, Experiment, GroupId, GroupLink, LinkTrace,
    NodeCounters, NodeFile, NodeId, NodeLimits, NodeRecord, Outcome, ProcExit, ProcId, ProcStatus,
    ShapeUpdate, SpawnSpec, StateError, TraceId, TraceRef, signal_name,
};
use crate::results::{Conformance, Event, EventLog, HealthCsv, TrafficCsv};
use crate::units::{self, Nanos};
pub use clock::RealClock;
use live::LiveCounters;
pub use proc_limit::DEFAULT_MAX_PROCS;
use proc_limit::ProcLimit;
use readings::Readings;
pub use watch::{Pulse, Watch};
pub use workers::{
    DataplaneCounters, LostWorker, RunSetup, WorkerCounters, WorkerSpec, Workers, WorkersError,
};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("node {id} ({ip}) is failed: revive() it before spawning on it")]
    NodeFailed { id: u32, ip: String },
    #[error(
        "{max} processes already run on worker {worker}, its limit (max_procs): a loop that \
         spawns without end? (kill() or wait() for programs that are done, or raise the limit \
         with --max-procs N)"
    )]
    TooManyProcs { worker: u32, max: usize },
    #[error("interrupted (Ctrl-C or SIGTERM): stopping and removing the lab")]
    Interrupted,
    #[error("writing events: {0}")]
    Log(#[from] io::Error),
    #[error("writing traffic.csv: {0}")]
    Traffic(#[source] io::Error),
    #[error("writing dataplane.csv: {0}")]
    Health(#[source] io::Error),
}

/// How long `stop_all` waits after the SIGKILL deadline for the last exits.
const STOP_SLACK: Nanos = 500_000_000;

/// What `Lab::with_end` is given: a look at the experiment state as the run ends.
type EndOfRun = Box<dyn FnOnce(&Experiment) + Send>;

pub struct Lab {
    state: Experiment,
    executor: Box<dyn Executor>,
    clock: Box<dyn Clock>,
    log: EventLog,
    pub rng: ChaCha8Rng,
    /// A worker was lost: the run stops without grace.
    lost: bool,
    procs: ProcLimit,
    /// The counters scripts read live, one reading for many nodes.
    live: LiveCounters,
    /// `traffic.csv`, `dataplane.csv`, the verdict and a live display, fed once per second
    /// of experiment time while time passes.
    readings: Readings,
    /// Nodes whose packets are captured.
    captured: BTreeSet<NodeId>,
    /// Shown the experiment state once, as the run ends (`with_end`).
    end: Option<EndOfRun>,
}

impl Lab {
    pub fn new(
        state: Experiment,
        executor: Box<dyn Executor>,
        clock: Box<dyn Clock>,
        log: EventLog,
        rng: ChaCha8Rng,
    ) -> Self {
        Lab {
            state,
            executor,
            clock,
            log,
            rng,
            lost: false,
            procs: ProcLimit::new(DEFAULT_MAX_PROCS),
            live: LiveCounters::default(),
            readings: Readings::default(),
            captured: BTreeSet::new(),
            end: None,
        }
    }

    /// Writes per-second traffic to `csv` as the run goes.
    pub fn with_traffic_csv(mut self, csv: TrafficCsv) -> Self {
        self.readings.traffic = Some(csv);
        self
    }

    /// Writes each data plane's health per second to `csv`, and gives every interval to the
    /// fidelity verdict.
    pub fn with_health(mut self, csv: HealthCsv, conformance: Arc<Mutex<Conformance>>) -> Self {
        self.readings.health = Some(csv);
        self.readings.conformance = Some(conformance);
        self
    }

    /// Calls `watch` once per second of experiment time, after the second's traffic row.
    pub fn with_watch(mut self, watch: Watch) -> Self {
        self.readings.watch = Some(watch);
        self
    }

    /// Shows `end` the experiment state as the run ends (in `finish`): the groups, nodes,
    /// shapes and group links a script left, which `p2plab graph` draws.
    pub fn with_end(mut self, end: impl FnOnce(&Experiment) + Send + 'static) -> Self {
        self.end = Some(Box::new(end));
        self
    }

    /// Sets how many processes one worker may run at once (`--max-procs`).
    pub fn with_max_procs(mut self, max: usize) -> Self {
        self.procs = ProcLimit::new(max);
        self
    }

    pub fn state(&self) -> &Experiment {
        &self.state
    }

    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    pub fn events_recorded(&self) -> u64 {
        self.log.count()
    }

    /// Records an event that is not an action (start, end, log, metric).
    pub fn record(&mut self, event: Event) -> Result<(), LabError> {
        self.log.record(&event)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), LabError> {
        self.log.flush()?;
        Ok(())
    }

    /// Sleeps until experiment time `t`, recording processes that ended meanwhile (a real
    /// clock returns in short steps, so exits are recorded close to when they happen).
    pub fn advance_to(&mut self, t: Nanos) -> Result<(), LabError> {
        loop {
            self.nap_until(t)?;
            if crate::interrupt::requested() {
                return Err(LabError::Interrupted);
            }
            if self.clock.now() >= t {
                return Ok(());
            }
        }
    }

    /// One nap of the clock towards `t`, then what is due: exits, and a second of traffic.
    /// Every wait of the lab goes through here, so `traffic.csv` gets its row whether the
    /// script sleeps, waits for a process or is being stopped.
    fn nap_until(&mut self, t: Nanos) -> Result<(), LabError> {
        self.clock.sleep_until(t);
        self.collect_exits()?;
        let now = self.now();
        if self.readings.due(now) {
            let reading = self.executor.traffic(true);
            self.readings.interval(now, &self.state, reading, false)?;
        }
        Ok(())
    }

    /// Per-node traffic totals at the end of the run, in allocation order; they also make the
    /// last, partial interval of `traffic.csv`, so its columns sum to these totals.
    pub fn traffic(&mut self) -> Result<Vec<(std::net::Ipv4Addr, NodeCounters)>, LabError> {
        let now = self.now();
        let reading = self.executor.traffic(true);
        self.readings.interval(now, &self.state, reading, true)
    }

    /// Ends the run on the workers: node folders collected, labs removed.
    pub fn finish(&mut self) -> Result<(), LabError> {
        if let Some(end) = self.end.take() {
            end(&self.state);
        }
        let result = self.executor.finish();
        self.lost_worker(result)
    }

    fn collect_exits(&mut self) -> Result<(), LabError> {
        let exits = self.executor.drain_exits();
        for (at, exit) in self.lost_worker(exits)? {
            self.record_exit(at, exit)?;
        }
        Ok(())
    }

    /// Records a lost worker in the event log before its error goes up.
    fn lost_worker<T>(&mut self, result: Result<T, ExecError>) -> Result<T, LabError> {
        if let Err(ExecError::WorkerLost {
            worker,
            addr,
            reason,
        }) = &result
        {
            self.lost = true;
            let event = Event::new(self.now(), "worker_lost")
                .with("worker", *worker)
                .with("addr", addr.clone())
                .with("reason", reason.clone());
            self.record(event)?;
        }
        Ok(result?)
    }

    fn record_exit(&mut self, at: Nanos, exit: ProcExit) -> Result<(), LabError> {
        if !self.state.proc_exited(exit.proc, exit.status) {
            return Ok(());
        }
        let proc = self.state.proc(exit.proc);
        let node = self.state.node(proc.node);
        self.procs.exited(exit.proc, node.worker);
        let event = Event::new(at, "exit")
            .with("node", node.id.0)
            .with("ip", node.ip.to_string())
            .with("pid", proc.pid);
        let event = match exit.status {
            ExitStatus::Code(c) => event.with("code", c),
            ExitStatus::Signal(s) => event.with("signal", signal_name(s)),
        };
        self.record(event.with_opt("oom", exit.oom.then_some(true)))
    }

    fn execute(&mut self, action: &Action) -> Result<Outcome, LabError> {
        let result = self.executor.execute(action);
        self.lost_worker(result)
    }

    fn node_event(&self, kind: &str, node: NodeId) -> Event {
        let n = self.state.node(node);
        Event::new(self.now(), kind)
            .with("node", n.id.0)
            .with("ip", n.ip.to_string())
    }

    /// Creates `n` nodes in `group`, on `worker` or spread by weight.
    pub fn alloc(
        &mut self,
        n: usize,
        group: &str,
        worker: Option<u32>,
    ) -> Result<Vec<NodeRecord>, LabError> {
        let planned = self.state.plan_nodes(n, group, worker)?;
        for node in &planned {
            self.execute(&Action::AddNode(node.clone()))?;
            self.state.add_node(node.clone(), group);
            let event = self
                .node_event("alloc_ip", node.id)
                .with("group", group)
                .with("worker", node.worker);
            self.record(event)?;
        }
        Ok(planned)
    }

    /// Changes the access link of `nodes` by `update` and their CPU and memory by `limits`
    /// (each only where it gives something), in one `shape` event per node.
    pub fn shape(
        &mut self,
        nodes: &[NodeId],
        update: &ShapeUpdate,
        limits: &NodeLimits,
    ) -> Result<(), LabError> {
        let reshape = *update != ShapeUpdate::default();
        for &node in nodes {
            if reshape {
                let shape = self.state.node(node).shape.apply(update);
                self.execute(&Action::Shape { node, shape })?;
                self.state.set_shape(node, shape);
                self.readings.reshaped(node);
            }
            if !limits.is_empty() {
                let all = self.state.node(node).limits.apply(limits);
                self.execute(&Action::Limit { node, limits: all })?;
                self.state.set_limits(node, all);
            }
            let event = self
                .node_event("shape", node)
                .with_opt("up", update.up)
                .with_opt("down", update.down)
                .with_opt("latency", update.latency.map(units::secs))
                .with_opt("jitter", update.jitter.map(units::secs))
                .with_opt("jitter_dist", update.jitter_model.map(|m| m.dist.name()))
                .with_opt(
                    "jitter_correlation",
                    update.jitter_model.map(|m| m.correlation),
                )
                .with_opt("loss", loss_value(update.loss, update.burst.flatten()))
                .with_opt("queue", update.queue)
                .with_opt("up_trace", self.trace_name(update.up_trace))
                .with_opt("down_trace", self.trace_name(update.down_trace))
                .with_opt("delay_trace", self.trace_name(update.delay_trace))
                .with_opt("trace_offset", trace_offset(update).map(units::secs))
                .with_opt("cpu", limits.cpu)
                .with_opt("cpu_weight", limits.cpu_weight)
                .with_opt("memory", limits.memory);
            self.record(event)?;
        }
        Ok(())
    }

    pub fn link_groups(&mut self, a: GroupId, b: GroupId, link: GroupLink) -> Result<(), LabError> {
        self.execute(&Action::LinkGroups { a, b, link })?;
        self.state.set_group_link(a, b, link);
        // Only a model other than the default is recorded, so older events read the same.
        let model =
            Some(link.jitter_model).filter(|m| *m != crate::experiment::JitterModel::UNIFORM);
        let event = Event::new(self.now(), "link_groups")
            .with("a", self.state.group_name(a))
            .with("b", self.state.group_name(b))
            .with("latency", units::secs(link.latency))
            .with("jitter", units::secs(link.jitter))
            .with_opt("jitter_dist", model.map(|m| m.dist.name()))
            .with_opt("jitter_correlation", model.map(|m| m.correlation))
            .with_opt("loss", loss_value(Some(link.loss), link.burst));
        self.record(event)
    }

    /// The file name of a trace an update names; `None` when it names none.
    fn trace_name(&self, reference: Option<Option<TraceRef>>) -> Option<String> {
        let id = reference.flatten()?.id;
        self.state.trace(id).map(|(name, _)| name.to_string())
    }

    /// Links group `a` with each group of `links` at once (a topology's row), in one action
    /// and one `link_group_row` event; the same links as one `link_groups` per pair.
    pub fn link_group_row(
        &mut self,
        a: GroupId,
        links: Vec<(GroupId, GroupLink)>,
    ) -> Result<(), LabError> {
        let count = links.len();
        let action = Action::LinkGroupRow { a, links };
        self.execute(&action)?;
        if let Action::LinkGroupRow { links, .. } = &action {
            for (b, link) in links {
                self.state.set_group_link(a, *b, *link);
            }
        }
        let event = Event::new(self.now(), "link_group_row")
            .with("a", self.state.group_name(a))
            .with("links", count);
        self.record(event)
    }

    /// Loads a trace once per run: the file at `path` (named `file` in the script) gets an
    /// id every data plane knows it by, and one `load_trace` event. Loading the same file
    /// again returns that id.
    pub fn load_trace(
        &mut self,
        file: &str,
        path: &Path,
        trace: LinkTrace,
    ) -> Result<TraceId, LabError> {
        if let Some(id) = self.state.trace_at(path) {
            return Ok(id);
        }
        let id = self.state.next_trace_id();
        let trace = Arc::new(trace);
        self.execute(&Action::LoadTrace {
            id,
            trace: trace.clone(),
        })?;
        self.state.add_trace(file, path, trace.clone());
        let event = Event::new(self.now(), "load_trace")
            .with("trace", id.0)
            .with("file", file)
            .with("kind", trace.kind())
            .with_opt("period", trace.period().map(units::secs));
        let event = match &*trace {
            LinkTrace::Rate(r) => event
                .with("opportunities", r.opportunities().len())
                .with("mean_rate", r.mean_rate().round() as u64),
            LinkTrace::Delay(d) => event.with("points", d.points().len()),
        };
        self.record(event)?;
        Ok(id)
    }

    pub fn spawn(&mut self, node: NodeId, spec: SpawnSpec) -> Result<ProcId, LabError> {
        let n = self.state.node(node);
        if n.failed {
            return Err(LabError::NodeFailed {
                id: n.id.0,
                ip: n.ip.to_string(),
            });
        }
        let worker = n.worker;
        self.check_proc_limit(worker)?;
        let proc = self.state.next_proc_id();
        let outcome = self.execute(&Action::Spawn {
            proc,
            node,
            spec: spec.clone(),
        })?;
        let pid = outcome.pid.unwrap_or_default();
        self.state
            .add_proc(node, spec.cmd.clone(), pid, spec.stdout.clone());
        self.procs.started(proc, worker, self.now());
        let env: serde_json::Map<String, serde_json::Value> = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let event = self
            .node_event("spawn", node)
            .with("pid", pid)
            .with("cmd", spec.cmd)
            .with_opt("shell", spec.shell.then_some(true))
            .with_opt("env", (!env.is_empty()).then_some(env))
            .with_opt("user", spec.user)
            .with_opt("stdout", spec.stdout.map(|f| f.to_string()))
            .with_opt("error", outcome.spawn_error);
        self.record(event)?;
        if let Some(msg) = outcome.warning {
            self.record(self.node_event("warning", node).with("msg", msg))?;
        }
        self.record_exits_now(outcome.exits)?;
        Ok(proc)
    }

    /// Refuses a spawn on `worker` at the limit; exits that came meanwhile are counted first.
    fn check_proc_limit(&mut self, worker: u32) -> Result<(), LabError> {
        if self.at_proc_limit(worker) {
            self.collect_exits()?;
        }
        if self.at_proc_limit(worker) {
            return Err(LabError::TooManyProcs {
                worker,
                max: self.procs.max(),
            });
        }
        Ok(())
    }

    fn at_proc_limit(&self, worker: u32) -> bool {
        let running = self.state.running_on(worker);
        self.procs
            .reached(worker, running, self.now(), self.clock.is_virtual())
    }

    fn record_exits_now(&mut self, exits: Vec<ProcExit>) -> Result<(), LabError> {
        let now = self.now();
        for exit in exits {
            self.record_exit(now, exit)?;
        }
        Ok(())
    }

    /// SIGKILLs one process; a process that already ended is left alone.
    pub fn kill(&mut self, proc: ProcId) -> Result<(), LabError> {
        self.collect_exits()?;
        if !self.is_running(proc) {
            return Ok(());
        }
        let outcome = self.execute(&Action::Kill { proc })?;
        let p = self.state.proc(proc);
        let event = self.node_event("kill", p.node).with("pid", p.pid);
        self.record(event)?;
        self.record_exits_now(outcome.exits)
    }

    /// How the process ended, after collecting exits; `None` while it runs.
    pub fn exit_status(&mut self, proc: ProcId) -> Result<Option<ExitStatus>, LabError> {
        self.collect_exits()?;
        Ok(match self.state.proc(proc).status {
            ProcStatus::Exited(status) => Some(status),
            ProcStatus::Running => None,
        })
    }

    /// What node `node`'s programs wrote to `file` of its folder so far, wherever the node
    /// lives; `None` when there is no such file (always in a dry-run, where nothing runs).
    pub fn read_node_file(
        &mut self,
        node: NodeId,
        file: &NodeFile,
    ) -> Result<Option<Vec<u8>>, LabError> {
        let ip = self.state.node(node).ip;
        let result = self.executor.read_node_file(node, ip, file);
        self.lost_worker(result)
    }

    /// True on a real clock (time passes by itself), false on a dry-run's virtual clock.
    pub fn is_real(&self) -> bool {
        !self.clock.is_virtual()
    }

    pub fn is_running(&self, proc: ProcId) -> bool {
        self.state.proc(proc).status == ProcStatus::Running
    }

    /// The processes of `node` still running, in spawn order, after collecting exits.
    pub fn running_procs(&mut self, node: NodeId) -> Result<Vec<ProcId>, LabError> {
        self.collect_exits()?;
        Ok(self.state.running_procs(node))
    }

    /// One node's traffic counters so far, live from the data plane; zero in a dry-run, which
    /// moves no packets. One reading of every worker serves all nodes for `live::FRESH_FOR`
    /// of experiment time.
    pub fn node_counters(&mut self, node: NodeId) -> NodeCounters {
        let now = self.now();
        if !self.live.is_fresh(now) {
            // Not an interval reading: the per-second files keep their own intervals.
            let reading = self.executor.traffic(false);
            self.live.store(now, reading.nodes);
        }
        self.live.of(self.state.node(node).ip)
    }

    /// Waits for a process to end and returns how it ended.
    pub fn wait(&mut self, proc: ProcId) -> Result<ExitStatus, LabError> {
        self.collect_exits()?;
        if self.is_running(proc) {
            let outcome = self.execute(&Action::Wait { proc })?;
            self.record_exits_now(outcome.exits)?;
            self.collect_exits()?;
        }
        match self.state.proc(proc).status {
            ProcStatus::Exited(status) => Ok(status),
            ProcStatus::Running => Err(LabError::Exec(ExecError::StillRunning)),
        }
    }

    /// Crashes nodes: SIGKILL their processes, drop their traffic. Failed nodes are skipped.
    pub fn fail(&mut self, nodes: &[NodeId]) -> Result<(), LabError> {
        self.collect_exits()?;
        for &node in nodes {
            if self.state.node(node).failed {
                continue;
            }
            let procs = self.state.running_procs(node);
            let outcome = self.execute(&Action::FailNode { node, procs })?;
            self.state.set_failed(node, true);
            self.record(self.node_event("fail_node", node))?;
            self.record_exits_now(outcome.exits)?;
        }
        Ok(())
    }

    /// Ends the experiment's processes like `leave` (SIGTERM, SIGKILL after `grace`) and waits
    /// for them, so that they flush their output and their exits are recorded. After Ctrl-C
    /// there is no grace.
    pub fn stop_all(&mut self, grace: Nanos) -> Result<(), LabError> {
        let grace = if crate::interrupt::requested() || self.lost {
            0
        } else {
            grace
        };
        self.collect_exits()?;
        let nodes: Vec<NodeId> = self.state.nodes().iter().map(|n| n.id).collect();
        for node in nodes {
            let procs = self.state.running_procs(node);
            if !procs.is_empty() {
                let outcome = self.execute(&Action::Leave { node, procs, grace })?;
                self.record_exits_now(outcome.exits)?;
            }
        }
        // The workers SIGKILL `grace` after each leave, the last one sent just now; a little
        // slack lets them reap. (Counted from before the leaves, a run with many nodes gave up
        // before any exit came.)
        let give_up = self.now().saturating_add(grace).saturating_add(STOP_SLACK);
        while self.state.any_running() && self.now() < give_up {
            self.nap_until(give_up)?;
        }
        Ok(())
    }

    /// Lets traffic of failed nodes flow again; nodes that are not failed are skipped.
    pub fn revive(&mut self, nodes: &[NodeId]) -> Result<(), LabError> {
        for &node in nodes {
            if !self.state.node(node).failed {
                continue;
            }
            self.execute(&Action::Revive { node })?;
            self.state.set_failed(node, false);
            self.record(self.node_event("revive", node))?;
        }
        Ok(())
    }

    /// Captures the packets of nodes into `nodes/<ip>/capture.pcap` until the run ends (or
    /// `stop_capture`); nodes captured already are skipped.
    pub fn capture(
        &mut self,
        nodes: &[NodeId],
        snaplen: u32,
        max_size: u64,
    ) -> Result<(), LabError> {
        for &node in nodes {
            if self.captured.contains(&node) {
                continue;
            }
            self.execute(&Action::Capture {
                node,
                snaplen,
                max_size,
            })?;
            self.captured.insert(node);
            let event = self
                .node_event("capture", node)
                .with("snaplen", snaplen)
                .with("max_size", max_size);
            self.record(event)?;
        }
        Ok(())
    }

    /// Ends the captures of nodes; nodes not captured are skipped.
    pub fn stop_capture(&mut self, nodes: &[NodeId]) -> Result<(), LabError> {
        for &node in nodes {
            if !self.captured.contains(&node) {
                continue;
            }
            self.execute(&Action::StopCapture { node })?;
            self.captured.remove(&node);
            self.record(self.node_event("stop_capture", node))?;
        }
        Ok(())
    }

    /// Graceful departure: SIGTERM, SIGKILL after `grace`. Recorded even for a node with no
    /// process left, so a churn timeline shows every departure.
    pub fn leave(&mut self, nodes: &[NodeId], grace: Nanos) -> Result<(), LabError> {
        self.collect_exits()?;
        for &node in nodes {
            let procs = self.state.running_procs(node);
            let outcome = self.execute(&Action::Leave { node, procs, grace })?;
            let event = self
                .node_event("leave", node)
                .with("grace", units::secs(grace));
            self.record(event)?;
            self.record_exits_now(outcome.exits)?;
        }
        Ok(())
    }
}

/// The offset an update's traces start from (all of them share it).
fn trace_offset(update: &ShapeUpdate) -> Option<Nanos> {
    [update.up_trace, update.down_trace, update.delay_trace]
        .into_iter()
        .flatten()
        .flatten()
        .map(|r| r.offset)
        .next()
}

/// The `loss` of a `shape` or `link_groups` event: the probability, or the burst model's
/// parameters as an object when there is one.
fn loss_value(
    loss: Option<f64>,
    burst: Option<crate::experiment::GilbertElliott>,
) -> Option<serde_json::Value> {
    match burst {
        Some(ge) => Some(serde_json::json!({
            "p": ge.p,
            "r": ge.r,
            "loss_bad": ge.loss_bad,
            "loss_good": ge.loss_good,
        })),
        None => loss.map(Into::into),
    }
}
