//! The controller's real executor: it drives the workers of a run over the protocol, one
//! connection each, the embedded worker included (an in-memory stream to a session in this
//! process). Actions go to the worker that hosts their node; what every data plane must know
//! (nodes, shapes, group links, failures) goes to all of them. Actions whose reply carries
//! nothing are pipelined: the next action does not wait for them, and an error they meet is
//! reported at the next call. A worker that closes its connection or falls silent is lost.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::{ExecError, Executor, Outcome};
use crate::clock::MonotonicClock;
use crate::experiment::NodeCounters;
use crate::experiment::{Action, NodeId, ProcExit, ProcId};
use crate::proto::frame::FrameWriter;
use crate::proto::{
    Connection, HEARTBEAT, Peer, ProtoError, Reply, Request, SILENCE, SILENCE_CHECK, Setup,
    ToController, ToWorker, Token,
};
use crate::units::Nanos;
use crate::worker::session::{self, SessionOptions};

/// How long connecting to a worker (TCP and handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a worker may take to build or remove its lab.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a worker may take to stop its session (kill its programs, remove its lab).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a blocked call looks whether its worker was lost.
const WAIT_STEP: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("worker {index} ({name}): {err}")]
    Worker {
        index: u32,
        name: String,
        err: String,
    },
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// One line of a workers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    pub addr: String,
    pub weight: u32,
}

/// What every worker is told at setup.
pub struct RunSetup {
    pub seed: u64,
    pub mtu: u32,
    pub hint: String,
    /// The controller's results folder: collected node folders land in it.
    pub results: PathBuf,
    pub clock: MonotonicClock,
}

/// The first worker lost in a run, if any: shared with whoever decides the exit code.
#[derive(Debug, Clone, Default)]
pub struct LostWorker(Arc<Mutex<Option<String>>>);

impl LostWorker {
    pub fn get(&self) -> Option<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn set(&self, what: String) {
        if let Ok(mut l) = self.0.lock() {
            l.get_or_insert(what);
        }
    }
}

pub struct Workers {
    links: Vec<Link>,
    node_worker: HashMap<NodeId, u32>,
    proc_node: HashMap<ProcId, NodeId>,
    /// Exits taken out of a link's queue by `Wait`, not yet handed to `drain_exits`.
    ready: Vec<(Nanos, ProcExit)>,
    lost: LostWorker,
    labs: Vec<(String, String)>,
    /// This run's random id, given to every worker's data plane.
    run: u32,
    clock: MonotonicClock,
    // Dropped last: the links' tasks run on it.
    runtime: tokio::runtime::Runtime,
}

struct Link {
    index: u32,
    name: String,
    out: mpsc::UnboundedSender<ToWorker>,
    state: Arc<LinkState>,
    next_id: u64,
    /// The loss of this worker was reported (once) to the controller.
    reported: bool,
    /// Its session was stopped: the lab is gone.
    stopped: bool,
}

#[derive(Default)]
struct LinkState {
    inner: Mutex<LinkInner>,
}

#[derive(Default)]
struct LinkInner {
    pending: HashMap<u64, Pending>,
    exits: Vec<(Nanos, ProcExit)>,
    /// Why the connection ended, if it did.
    lost: Option<String>,
    /// An error met by a pipelined request or while writing a collected file.
    error: Option<String>,
}

enum Pending {
    Waiting(std_mpsc::Sender<Result<Reply, String>>),
    Detached,
}

impl LinkState {
    fn lock(&self) -> std::sync::MutexGuard<'_, LinkInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Workers {
    /// Connects to the workers of a workers file, authenticates, and has each build its lab.
    pub fn connect(
        specs: &[WorkerSpec],
        token: &Token,
        setup: &RunSetup,
    ) -> Result<Workers, WorkersError> {
        let runtime = runtime()?;
        let mut addrs = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let addr = resolve(&spec.addr).map_err(|err| WorkersError::Worker {
                index: i as u32,
                name: spec.addr.clone(),
                err,
            })?;
            addrs.push(addr);
        }
        let mut workers = Workers::new(runtime, setup.clock);
        for (i, (spec, addr)) in specs.iter().zip(&addrs).enumerate() {
            let index = i as u32;
            let fail = |err: String| WorkersError::Worker {
                index,
                name: spec.addr.clone(),
                err,
            };
            let conn = workers.runtime.block_on(async {
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
                        .map_err(|e| {
                            format!("cannot connect: {e} (is `p2plab worker` running there?)")
                        })?;
                let _ = stream.set_nodelay(true);
                let mut conn = Connection::new(stream);
                conn.authenticate_to_worker(token)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(conn)
            });
            let conn = conn.map_err(&fail)?;
            workers.add_link(index, spec.addr.clone(), conn, &setup.results);
            let peers = addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, a)| Peer {
                    index: j as u32,
                    data: *a,
                })
                .collect();
            workers
                .setup(index, setup, peers)
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(workers)
    }

    /// One worker in this process, over an in-memory stream: the same protocol, no daemon.
    pub fn embedded(setup: &RunSetup, shim: PathBuf) -> Result<Workers, WorkersError> {
        let runtime = runtime()?;
        let token = Token::parse(&Token::generate(), "the embedded worker")
            .expect("a generated token is long enough");
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let session_token = token.clone();
        let dir = setup.results.clone();
        runtime.spawn(async move {
            let mut conn = Connection::new(theirs);
            if conn
                .authenticate_controller(&session_token, "embedded worker", || Ok(()))
                .await
                .is_ok()
            {
                let opts = SessionOptions {
                    dir,
                    collect: false,
                    shim,
                    socket: None,
                    watch_interrupt: false,
                };
                session::serve(conn, opts).await;
            }
        });
        let mut workers = Workers::new(runtime, setup.clock);
        let fail = |err: String| WorkersError::Worker {
            index: 0,
            name: "embedded".into(),
            err,
        };
        let conn = workers.runtime.block_on(async {
            let mut conn = Connection::new(ours);
            conn.authenticate_to_worker(&token).await.map(|_| conn)
        });
        let conn = conn.map_err(|e| fail(e.to_string()))?;
        workers.add_link(0, "embedded".into(), conn, &setup.results);
        workers
            .setup(0, setup, Vec::new())
            .map_err(|e| fail(e.to_string()))?;
        Ok(workers)
    }

    fn new(runtime: tokio::runtime::Runtime, clock: MonotonicClock) -> Workers {
        Workers {
            links: Vec::new(),
            node_worker: HashMap::new(),
            proc_node: HashMap::new(),
            ready: Vec::new(),
            lost: LostWorker::default(),
            labs: Vec::new(),
            run: rand::random(),
            clock,
            runtime,
        }
    }

    /// The handle that tells, after the run, whether a worker was lost.
    pub fn lost(&self) -> LostWorker {
        self.lost.clone()
    }

    fn add_link<S>(&mut self, index: u32, name: String, conn: Connection<S>, results: &Path)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (out, rx) = mpsc::unbounded_channel();
        let state = Arc::new(LinkState::default());
        self.runtime.spawn(link_task(
            conn,
            rx,
            state.clone(),
            results.to_path_buf(),
            self.clock,
        ));
        self.links.push(Link {
            index,
            name,
            out,
            state,
            next_id: 0,
            reported: false,
            stopped: false,
        });
    }

    fn setup(&mut self, index: u32, setup: &RunSetup, peers: Vec<Peer>) -> Result<(), ExecError> {
        self.setup_lab(index, setup, peers).map(|namespace| {
            let name = self.links[index as usize].name.clone();
            self.labs.push((name, namespace));
        })
    }

    /// Each worker's address (or "embedded") and lab namespace.
    pub fn labs(&self) -> &[(String, String)] {
        &self.labs
    }

    fn setup_lab(
        &mut self,
        index: u32,
        setup: &RunSetup,
        peers: Vec<Peer>,
    ) -> Result<String, ExecError> {
        let body = Request::Setup(Setup {
            index,
            seed: setup.seed,
            mtu: setup.mtu,
            hint: format!("{}w{index}", setup.hint),
            run: self.run,
            peers,
        });
        match self.request(index as usize, body, Some(SETUP_TIMEOUT))? {
            Reply::Lab { namespace } => Ok(namespace),
            other => Err(self.refused(index as usize, format!("unexpected reply {other:?}"))),
        }
    }

    /// Sends a request and waits for its reply.
    fn request(
        &mut self,
        link: usize,
        body: Request,
        timeout: Option<Duration>,
    ) -> Result<Reply, ExecError> {
        let (tx, rx) = std_mpsc::channel();
        self.send(link, body, Pending::Waiting(tx))?;
        let started = Instant::now();
        loop {
            match rx.recv_timeout(WAIT_STEP * 50) {
                Ok(result) => return result.map_err(|e| self.refused(link, e)),
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return Err(self.lost_error(link)),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    // The loss may have come between `send`'s check and its entry in
                    // `pending`: then no one will close this channel.
                    if self.is_lost(link) {
                        return Err(self.lost_error(link));
                    }
                    if let Some(limit) = timeout
                        && started.elapsed() > limit
                    {
                        return Err(self.refused(link, format!("no reply within {limit:?}")));
                    }
                }
            }
        }
    }

    /// Sends a request whose reply carries nothing; an error it meets comes at the next call.
    fn pipeline(&mut self, link: usize, body: Request) -> Result<(), ExecError> {
        self.send(link, body, Pending::Detached)
    }

    fn send(&mut self, link: usize, body: Request, pending: Pending) -> Result<(), ExecError> {
        self.check(link)?;
        let l = &mut self.links[link];
        l.next_id += 1;
        let id = l.next_id;
        l.state.lock().pending.insert(id, pending);
        if l.out.send(ToWorker::Request { id, body }).is_err() {
            return Err(self.lost_error(link));
        }
        Ok(())
    }

    /// Reports a lost worker (once) or a pipelined error.
    fn check(&mut self, link: usize) -> Result<(), ExecError> {
        let (lost, error) = {
            let mut s = self.links[link].state.lock();
            (s.lost.clone(), s.error.take())
        };
        if let Some(e) = error {
            return Err(self.refused(link, e));
        }
        if lost.is_some() && !self.links[link].reported {
            return Err(self.lost_error(link));
        }
        Ok(())
    }

    fn check_all(&mut self) -> Result<(), ExecError> {
        for link in 0..self.links.len() {
            self.check(link)?;
        }
        Ok(())
    }

    fn is_lost(&self, link: usize) -> bool {
        self.links[link].state.lock().lost.is_some()
    }

    fn lost_error(&mut self, link: usize) -> ExecError {
        let l = &mut self.links[link];
        l.reported = true;
        let reason = l
            .state
            .lock()
            .lost
            .clone()
            .unwrap_or_else(|| "connection closed".into());
        self.lost.set(format!(
            "worker {} ({}) was lost: {reason}",
            l.index, l.name
        ));
        ExecError::WorkerLost {
            worker: l.index,
            addr: l.name.clone(),
            reason,
        }
    }

    fn refused(&self, link: usize, msg: String) -> ExecError {
        let l = &self.links[link];
        if self.links.len() == 1 {
            ExecError::Refused(msg)
        } else {
            ExecError::Refused(format!("worker {} ({}): {msg}", l.index, l.name))
        }
    }

    fn owner(&self, node: NodeId) -> Result<usize, ExecError> {
        self.node_worker
            .get(&node)
            .map(|&w| w as usize)
            .ok_or_else(|| ExecError::Refused(format!("node {} has no worker", node.0)))
    }

    fn proc_owner(&self, proc: ProcId) -> Result<usize, ExecError> {
        let node = self
            .proc_node
            .get(&proc)
            .ok_or_else(|| ExecError::Refused(format!("process {} is unknown", proc.0)))?;
        self.owner(*node)
    }

    /// Sends an action to one worker and waits for its outcome. A lost worker, once reported,
    /// answers nothing: its processes are out of reach.
    fn act(&mut self, link: usize, action: &Action) -> Result<Outcome, ExecError> {
        if self.links[link].reported {
            return Ok(Outcome::default());
        }
        let body = Request::Act {
            action: action.clone(),
        };
        match self.request(link, body, None)? {
            Reply::Outcome { mut outcome } => {
                // A worker speaks only of processes the controller started on it.
                outcome
                    .exits
                    .retain(|e| self.proc_node.contains_key(&e.proc));
                Ok(outcome)
            }
            other => Err(self.refused(link, format!("unexpected reply {other:?}"))),
        }
    }

    /// Sends an action to every worker; `await_link` (the owner) is waited for.
    fn broadcast(
        &mut self,
        action: &Action,
        await_link: Option<usize>,
    ) -> Result<Outcome, ExecError> {
        let mut outcome = Outcome::default();
        for link in 0..self.links.len() {
            if Some(link) == await_link {
                outcome = self.act(link, action)?;
            } else if !self.links[link].reported {
                let body = Request::Act {
                    action: action.clone(),
                };
                self.pipeline(link, body)?;
            }
        }
        Ok(outcome)
    }

    fn wait_exit(&mut self, proc: ProcId) -> Result<Outcome, ExecError> {
        let link = self.proc_owner(proc)?;
        loop {
            let exits = std::mem::take(&mut self.links[link].state.lock().exits);
            self.ready.extend(exits);
            self.ready
                .retain(|(_, e)| self.proc_node.contains_key(&e.proc));
            if let Some(i) = self.ready.iter().position(|(_, e)| e.proc == proc) {
                let (_, exit) = self.ready.remove(i);
                return Ok(Outcome {
                    exits: vec![exit],
                    ..Outcome::default()
                });
            }
            self.check(link)?;
            if self.links[link].reported {
                return Ok(Outcome::default());
            }
            if crate::interrupt::requested() {
                return Err(ExecError::Refused("interrupted while waiting".into()));
            }
            std::thread::sleep(WAIT_STEP);
        }
    }
}

impl Executor for Workers {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError> {
        self.check_all()?;
        match action {
            Action::AddNode(node) => {
                if node.worker as usize >= self.links.len() {
                    return Err(ExecError::Refused(format!(
                        "worker {} does not exist",
                        node.worker
                    )));
                }
                self.node_worker.insert(node.id, node.worker);
                self.broadcast(action, None)
            }
            Action::Shape { .. } | Action::LinkGroups { .. } | Action::Revive { .. } => {
                self.broadcast(action, None)
            }
            Action::FailNode { node, .. } => {
                let owner = self.owner(*node)?;
                self.broadcast(action, Some(owner))
            }
            Action::Spawn { proc, node, .. } => {
                let owner = self.owner(*node)?;
                self.proc_node.insert(*proc, *node);
                self.act(owner, action)
            }
            Action::Kill { proc } => {
                let owner = self.proc_owner(*proc)?;
                self.act(owner, action)
            }
            Action::Leave { node, .. } => {
                let owner = self.owner(*node)?;
                self.act(owner, action)
            }
            Action::Wait { proc } => self.wait_exit(*proc),
        }
    }

    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError> {
        let mut exits = std::mem::take(&mut self.ready);
        for link in &self.links {
            exits.append(&mut link.state.lock().exits);
        }
        exits.retain(|(_, e)| self.proc_node.contains_key(&e.proc));
        exits.sort_by_key(|(t, e)| (*t, e.proc));
        let checked = self.check_all();
        if let Err(e) = checked {
            // Keep what arrived: it is recorded at the next call.
            self.ready = exits;
            return Err(e);
        }
        Ok(exits)
    }

    fn traffic(&mut self) -> Vec<(Ipv4Addr, NodeCounters)> {
        let mut all: HashMap<Ipv4Addr, NodeCounters> = HashMap::new();
        for link in 0..self.links.len() {
            if self.is_lost(link) {
                continue;
            }
            // Counters are read whatever a pipelined request met; that error, and a loss
            // noticed here, stay for `finish` to report.
            let stored = self.links[link].state.lock().error.take();
            let reported = self.links[link].reported;
            let reply = self.request(link, Request::Traffic, Some(SETUP_TIMEOUT));
            self.links[link].reported = reported;
            if let Some(e) = stored {
                self.links[link].state.lock().error.get_or_insert(e);
            }
            if let Ok(Reply::Traffic { nodes }) = reply {
                for (ip, c) in nodes {
                    all.entry(ip).or_default().add(&c);
                }
            }
        }
        let mut all: Vec<_> = all.into_iter().collect();
        all.sort_by_key(|(ip, _)| *ip);
        all
    }

    fn finish(&mut self) -> Result<(), ExecError> {
        let mut first_error = None;
        for link in 0..self.links.len() {
            if self.links[link].reported {
                continue;
            }
            if self.is_lost(link) {
                first_error.get_or_insert(self.lost_error(link));
                continue;
            }
            // An error a pipelined request met is reported, but the node folders are still
            // collected; then the lab goes.
            let stored = self.links[link].state.lock().error.take();
            if let Some(e) = stored {
                first_error.get_or_insert(self.refused(link, e));
            }
            let collected = self
                .request(link, Request::Collect, None)
                .and_then(|_| self.check(link));
            let stopped = self.request(link, Request::Stop, Some(STOP_TIMEOUT));
            self.links[link].stopped = true;
            if let Err(e) = collected.and(stopped.map(drop)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // A run that never reached `finish` (setup failed half way): each lab still running
        // is stopped and waited for, since the embedded one lives in this very process.
        for link in 0..self.links.len() {
            if !self.links[link].stopped && !self.is_lost(link) {
                let _ = self.request(link, Request::Stop, Some(STOP_TIMEOUT));
            }
        }
        // Closing the queues ends the connections.
        for link in &mut self.links {
            let (tx, _) = mpsc::unbounded_channel();
            link.out = tx;
        }
    }
}

/// Reads frames from a worker and hands them over; a writer task beside it sends requests and
/// heartbeats, so that a burst of requests never keeps replies from being read.
async fn link_task<S>(
    conn: Connection<S>,
    out: mpsc::UnboundedReceiver<ToWorker>,
    state: Arc<LinkState>,
    results: PathBuf,
    clock: MonotonicClock,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (writer, mut reader) = conn.split();
    let mut writer = tokio::spawn(write_loop(writer, out));
    let mut check = tokio::time::interval(SILENCE_CHECK);
    let mut heard = Instant::now();
    let reason = loop {
        tokio::select! {
            // Frames first: after a stall, a heartbeat already read must count before the
            // silence check looks at the clock.
            biased;
            frame = reader.recv::<ToController>() => {
                heard = Instant::now();
                match frame {
                    Ok(ToController::Heartbeat) => {}
                    Ok(ToController::Reply { id, result }) => {
                        let mut s = state.lock();
                        match s.pending.remove(&id) {
                            Some(Pending::Waiting(tx)) => {
                                let _ = tx.send(result);
                            }
                            Some(Pending::Detached) => {
                                if let Err(e) = result {
                                    s.error.get_or_insert(e);
                                }
                            }
                            None => {}
                        }
                    }
                    Ok(ToController::Exit { exit }) => state.lock().exits.push((clock.now(), exit)),
                    Ok(ToController::File { path, offset, data }) => {
                        if let Err(e) = write_collected(&results, &path, offset, &data) {
                            state.lock().error.get_or_insert(e);
                        }
                    }
                    Err(ProtoError::Closed) => break "the connection closed".to_string(),
                    Err(e) => break e.to_string(),
                }
            },
            _ = check.tick() => {
                if heard.elapsed() > SILENCE {
                    break format!("no heartbeat for {:.1} s", heard.elapsed().as_secs_f64());
                }
            },
            ended = &mut writer => match ended {
                // The controller is done with this worker.
                Ok(None) => return,
                Ok(Some(e)) => break e,
                Err(e) => break e.to_string(),
            },
        }
    };
    writer.abort();
    let mut s = state.lock();
    s.lost = Some(reason);
    // Whoever waits for a reply learns of the loss from the closed channel.
    s.pending.clear();
}

/// Sends requests as they come and a heartbeat every `HEARTBEAT`; returns the write error
/// that ended it, or `None` when the controller closed the queue.
async fn write_loop<S>(
    mut writer: FrameWriter<S>,
    mut out: mpsc::UnboundedReceiver<ToWorker>,
) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let sent = tokio::select! {
            msg = out.recv() => match msg {
                Some(msg) => writer.send_burst(msg, || out.try_recv().ok()).await,
                None => return None,
            },
            _ = heartbeat.tick() => writer.send(&ToWorker::Heartbeat).await,
        };
        if let Err(e) = sent {
            return Some(e.to_string());
        }
    }
}

/// Writes a piece of a collected file, refusing any path outside `nodes/` of the results.
fn write_collected(results: &Path, path: &str, offset: u64, data: &str) -> Result<(), String> {
    use std::io::{Seek, SeekFrom, Write};
    let rel = Path::new(path);
    let inside = rel.components().all(|c| matches!(c, Component::Normal(_)))
        && rel.components().next() == Some(Component::Normal("nodes".as_ref()))
        && rel.components().count() >= 3;
    if !inside {
        return Err(format!(
            "a worker sent a file outside the node folders: {path:?}"
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("collected file {path}: {e}"))?;
    let target = results.join(rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(offset == 0)
        .open(&target)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(&bytes))
        .map_err(|e| format!("{}: {e}", target.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime, WorkersError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("p2plab-links")
        .enable_all()
        .build()
        .map_err(WorkersError::Runtime)
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{addr} has no IPv4 address"))
}

/// Parses a workers file: `host:port [weight=N]` per line, `#` comments, blank lines.
pub fn parse_workers_file(text: &str, file: &str) -> Result<Vec<WorkerSpec>, String> {
    let mut specs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |what: String| format!("{file}:{}: {what}", n + 1);
        let mut words = line.split_whitespace();
        let addr = words.next().unwrap_or_default();
        if !addr.contains(':') {
            return Err(at(format!("expected host:port, found {addr:?}")));
        }
        let mut weight = 1;
        for word in words {
            let w = word
                .strip_prefix("weight=")
                .and_then(|w| w.parse::<u32>().ok())
                .filter(|w| *w >= 1)
                .ok_or_else(|| at(format!("expected weight=N with N >= 1, found {word:?}")))?;
            weight = w;
        }
        specs.push(WorkerSpec {
            addr: addr.to_string(),
            weight,
        });
    }
    if specs.is_empty() {
        return Err(format!("{file}: no worker listed (one host:port per line)"));
    }
    if specs.len() > crate::experiment::MAX_WORKERS {
        return Err(format!(
            "{file}: {} workers listed, at most {} are supported",
            specs.len(),
            crate::experiment::MAX_WORKERS
        ));
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_files_with_weights_comments_and_mistakes() {
        let specs =
            parse_workers_file("# lab\nm1:7000 weight=2\n\n  m2:7000 # spare\n", "w").unwrap();
        assert_eq!(
            specs,
            vec![
                WorkerSpec {
                    addr: "m1:7000".into(),
                    weight: 2
                },
                WorkerSpec {
                    addr: "m2:7000".into(),
                    weight: 1
                },
            ]
        );
        assert_eq!(
            parse_workers_file("m1\n", "w").unwrap_err(),
            "w:1: expected host:port, found \"m1\""
        );
        assert!(
            parse_workers_file("m1:1 weight=0", "w")
                .unwrap_err()
                .starts_with("w:1: expected weight=N")
        );
        assert!(
            parse_workers_file("# nothing\n", "w")
                .unwrap_err()
                .contains("no worker")
        );
    }

    #[test]
    fn collected_files_stay_inside_the_node_folders() {
        let dir = tempfile::tempdir().unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(b"hello");
        write_collected(dir.path(), "nodes/10.1.0.1/stdout.log", 0, &data).unwrap();
        write_collected(dir.path(), "nodes/10.1.0.1/stdout.log", 5, &data).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("nodes/10.1.0.1/stdout.log")).unwrap(),
            b"hellohello"
        );
        for evil in [
            "../x",
            "/etc/passwd",
            "nodes/../../x",
            "events.jsonl",
            "nodes/x",
        ] {
            assert!(
                write_collected(dir.path(), evil, 0, &data).is_err(),
                "{evil}"
            );
        }
    }
}
