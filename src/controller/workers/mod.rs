//! The controller's real executor: it drives the workers of a run over the protocol, one
//! connection each (`link`), the embedded worker included (an in-memory stream to a session
//! that whoever assembles the run serves). Actions go to the worker that hosts their node;
//! what every data plane must know (nodes, shapes, group links, failures) goes to all of them
//! (`routing`).
//! Actions whose reply carries nothing are pipelined: the next action does not wait for them,
//! and an error they meet is reported at the next call. A worker that closes its connection or
//! falls silent is lost.

mod collected;
mod file;
mod link;
mod routing;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use file::{WorkerSpec, WorkersFileError, parse_workers_file};
use link::{LinkState, Pending, link_task};

use crate::clock::MonotonicClock;
use crate::experiment::{ExecError, NodeId, ProcExit, ProcId};
use crate::proto::{
    Binding, BindingChoice, Connection, Peer, ProtoError, Reply, Request, Setup, ToWorker, Token,
};
use crate::units::Nanos;

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
    #[error("worker {index} ({name}): {source}")]
    Worker {
        index: u32,
        name: String,
        #[source]
        source: ReachError,
    },
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Why one worker could not be made part of the run.
#[derive(Debug, thiserror::Error)]
pub enum ReachError {
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} has no IPv4 address")]
    NoIpv4(String),
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("cannot connect: {0} (is `p2plab worker` running there?)")]
    Connect(#[source] std::io::Error),
    #[error(transparent)]
    Handshake(#[from] ProtoError),
    #[error(transparent)]
    Setup(#[from] ExecError),
}

/// What every worker is told at setup.
pub struct RunSetup {
    pub seed: u64,
    pub mtu: u32,
    pub hint: String,
    /// The controller's results folder: collected node folders land in it.
    pub results: PathBuf,
    pub clock: MonotonicClock,
    /// How the run asks the labs to bind programs (`--binding`).
    pub binding: BindingChoice,
}

/// Each stopped worker's data-plane counters by name: shared with whoever writes the summary.
#[derive(Debug, Clone, Default)]
pub struct DataplaneCounters(Arc<Mutex<Vec<WorkerCounters>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCounters {
    pub worker: u32,
    pub addr: String,
    pub counters: BTreeMap<String, u64>,
}

impl DataplaneCounters {
    pub fn get(&self) -> Vec<WorkerCounters> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn add(&self, counters: WorkerCounters) {
        if let Ok(mut c) = self.0.lock() {
            c.push(counters);
        }
    }
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
    dataplane: DataplaneCounters,
    labs: Vec<(String, String, Binding)>,
    /// This run's random id and data-plane key, given to every worker's data plane.
    run: u32,
    key: [u8; 32],
    clock: MonotonicClock,
    results: PathBuf,
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

impl Workers {
    /// No worker yet: `attach` adds them. Its runtime also serves in-memory workers (`spawn`).
    pub fn new(setup: &RunSetup) -> Result<Workers, WorkersError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("p2plab-links")
            .enable_all()
            .build()
            .map_err(WorkersError::Runtime)?;
        Ok(Workers {
            links: Vec::new(),
            node_worker: HashMap::new(),
            proc_node: HashMap::new(),
            ready: Vec::new(),
            lost: LostWorker::default(),
            dataplane: DataplaneCounters::default(),
            labs: Vec::new(),
            run: rand::random(),
            key: rand::random(),
            clock: setup.clock,
            results: setup.results.clone(),
            runtime,
        })
    }

    /// Connects to the workers of a workers file, authenticates, and has each build its lab.
    pub fn connect(
        specs: &[WorkerSpec],
        token: &Token,
        setup: &RunSetup,
    ) -> Result<Workers, WorkersError> {
        let mut addrs = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let addr = resolve(&spec.addr).map_err(|source| WorkersError::Worker {
                index: i as u32,
                name: spec.addr.clone(),
                source,
            })?;
            addrs.push(addr);
        }
        let mut workers = Workers::new(setup)?;
        for (i, (spec, addr)) in specs.iter().zip(&addrs).enumerate() {
            let stream = workers
                .runtime
                .block_on(async {
                    let connect = tokio::net::TcpStream::connect(addr);
                    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                        Err(_) => Err(ReachError::ConnectTimeout(CONNECT_TIMEOUT)),
                        Ok(Err(e)) => Err(ReachError::Connect(e)),
                        Ok(Ok(stream)) => Ok(stream),
                    }
                })
                .map_err(|source| WorkersError::Worker {
                    index: i as u32,
                    name: spec.addr.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let peers = addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, a)| Peer {
                    index: j as u32,
                    data: *a,
                })
                .collect();
            workers.attach(spec.addr.clone(), stream, token, setup, peers)?;
        }
        Ok(workers)
    }

    /// Runs a task on the links' runtime: the session of an in-memory worker.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// Adds the next worker over `stream`: authenticates to it with `token`, then has it
    /// build its lab for the run, knowing the data planes of its `peers`.
    pub fn attach<S>(
        &mut self,
        name: String,
        stream: S,
        token: &Token,
        setup: &RunSetup,
        peers: Vec<Peer>,
    ) -> Result<(), WorkersError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let index = self.links.len() as u32;
        let fail = |source: ReachError| WorkersError::Worker {
            index,
            name: name.clone(),
            source,
        };
        let conn = self.runtime.block_on(async {
            let mut conn = Connection::new(stream);
            conn.authenticate_to_worker(token).await.map(|_| conn)
        });
        let conn = conn.map_err(|e| fail(e.into()))?;
        let (out, rx) = mpsc::unbounded_channel();
        let state = Arc::new(LinkState::default());
        let span = tracing::info_span!("worker", index, name = %name);
        self.runtime.spawn(
            link_task(conn, rx, state.clone(), self.results.clone(), self.clock).instrument(span),
        );
        self.links.push(Link {
            index,
            name: name.clone(),
            out,
            state,
            next_id: 0,
            reported: false,
            stopped: false,
        });
        let (namespace, binding) = self
            .setup_lab(index, setup, peers)
            .map_err(|e| fail(e.into()))?;
        tracing::info!(worker = index, %name, %namespace, binding = binding.name(), "lab ready");
        self.labs.push((name, namespace, binding));
        Ok(())
    }

    /// The handle that holds, after the run, each worker's data-plane counters.
    pub fn dataplane_counters(&self) -> DataplaneCounters {
        self.dataplane.clone()
    }

    /// The handle that tells, after the run, whether a worker was lost.
    pub fn lost(&self) -> LostWorker {
        self.lost.clone()
    }

    /// Each worker's address (or "embedded"), lab namespace and binding.
    pub fn labs(&self) -> &[(String, String, Binding)] {
        &self.labs
    }

    fn setup_lab(
        &mut self,
        index: u32,
        setup: &RunSetup,
        peers: Vec<Peer>,
    ) -> Result<(String, Binding), ExecError> {
        let body = Request::Setup(Setup {
            index,
            seed: setup.seed,
            mtu: setup.mtu,
            hint: format!("{}w{index}", setup.hint),
            run: self.run,
            key: hex::encode(self.key),
            peers,
            binding: setup.binding,
        });
        match self.request(index as usize, body, Some(SETUP_TIMEOUT))? {
            Reply::Lab { namespace, binding } => Ok((namespace, binding)),
            other => Err(self.on_worker(
                index as usize,
                ExecError::UnexpectedReply(format!("{other:?}")),
            )),
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
                Ok(result) => return result.map_err(|e| self.on_worker(link, e.into())),
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
                        return Err(self.on_worker(link, ExecError::NoReply(limit)));
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
            (s.lost.is_some(), s.error.take())
        };
        if let Some(e) = error {
            return Err(self.on_worker(link, e));
        }
        if lost && !self.links[link].reported {
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

    /// An error of one worker; with several workers, it says which.
    fn on_worker(&self, link: usize, err: ExecError) -> ExecError {
        let l = &self.links[link];
        if self.links.len() == 1 {
            err
        } else {
            ExecError::OnWorker {
                worker: l.index,
                addr: l.name.clone(),
                source: Box::new(err),
            }
        }
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

fn resolve(addr: &str) -> Result<SocketAddr, ReachError> {
    addr.to_socket_addrs()
        .map_err(|source| ReachError::Resolve {
            addr: addr.into(),
            source,
        })?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| ReachError::NoIpv4(addr.into()))
}
