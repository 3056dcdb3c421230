//! One run of a scenario, as the command line asks for it: `check` (run on a virtual clock,
//! keep nothing), `dry-run` (virtual clock, timeline and results folder) and real mode. Every
//! mode goes through `script::run` with a `Lab`; they differ in executor, clock and output.
//! Real mode drives workers over the protocol (`controller::Workers`): the embedded worker of
//! this machine, or the `p2plab worker`s of a workers file. What the terminal shows while a
//! real run goes is `progress`'s, what it says at the end `recap`'s.

pub mod progress;
pub mod recap;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::clock::MonotonicClock;
use crate::controller::{
    Lab, RealClock, RunSetup, Watch, WorkerCounters, WorkerSpec, Workers, WorkersError,
};
use crate::experiment::{DryRun, Experiment, Placement, VirtualClock};
use crate::netns::NetnsError;
use crate::proto::{Binding, BindingChoice, Connection, Token, TokenError};
use crate::results::conformance::{Bounds, ProgramWait};
use crate::results::{
    Conformance, EventLog, HealthCsv, ResultsDir, ResultsError, TrafficCsv, Verdict,
};
use crate::script::{self, Scenario, ScriptError, ScriptOptions, ScriptReport};
use crate::units::{Nanos, SEC};
use crate::worker::MachineLabs;
use crate::worker::server::ServerError;
use crate::worker::session::{self, SessionOptions};
use crate::worker::shim::ShimMissing;

/// A dry-run stops scripts that would run past 10 days of experiment time.
pub const DRY_RUN_HORIZON: Nanos = 10 * 86_400 * SEC;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The script is wrong: exit code 1.
    #[error("{0}")]
    Script(#[from] ScriptError),
    /// Usage or environment: exit code 2.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A worker died or disconnected mid-run: exit code 3.
    #[error("{0}")]
    WorkerLost(String),
}

/// Why a run could not start or keep its results: the environment, not the script.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read {}: {source}", path.display())]
    ReadScript {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    WriteEvents {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    WriteTraffic {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    ResolveResults {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error(transparent)]
    Privileges(#[from] NetnsError),
    #[error(transparent)]
    Shim(#[from] ShimMissing),
    #[error(transparent)]
    Workers(#[from] WorkersError),
    #[error("--workers needs the workers' token: --token-file FILE or P2PLAB_TOKEN")]
    NoToken,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Script(_) => 1,
            RunError::Setup(_) => 2,
            RunError::WorkerLost(_) => 3,
        }
    }
}

pub struct RunConfig {
    pub script: PathBuf,
    pub seed: Option<u64>,
    pub params: BTreeMap<String, String>,
    pub out: Option<PathBuf>,
    pub max_operations: u64,
    /// Processes one worker may run at once (`--max-procs`).
    pub max_procs: usize,
    /// Where the dry-run timeline goes (stdout for the CLI); `None` prints nothing.
    pub timeline: Option<Box<dyn Write + Send>>,
    /// Told once per second of experiment time in real mode (the status bar); `None` for none.
    pub watch: Option<Watch>,
    /// The workers of a multi-machine run (`--workers`); empty for the embedded worker.
    /// A dry-run uses only their weights, to place nodes as the real run will.
    pub workers: Vec<WorkerSpec>,
    /// The token shared with the workers (`--token-file` or `P2PLAB_TOKEN`).
    pub token: Option<Token>,
    /// The command line that started the run, for `summary.json` (empty from a library).
    pub args: Vec<String>,
    /// How programs are to be bound to their node's address (`--binding`).
    pub binding: BindingChoice,
}

impl RunConfig {
    pub fn new(script: impl Into<PathBuf>) -> Self {
        RunConfig {
            script: script.into(),
            seed: None,
            params: BTreeMap::new(),
            out: None,
            max_operations: script::DEFAULT_MAX_OPERATIONS,
            max_procs: crate::controller::DEFAULT_MAX_PROCS,
            timeline: None,
            watch: None,
            workers: Vec::new(),
            token: None,
            args: Vec::new(),
            binding: BindingChoice::Auto,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub seed: u64,
    pub results: Option<PathBuf>,
    pub report: ScriptReport,
    /// The fidelity verdict in a few lines for the terminal (real mode).
    pub verdict: Vec<String>,
}

fn load(cfg: &RunConfig) -> Result<Scenario, RunError> {
    Scenario::load(&cfg.script).map_err(|source| {
        SetupError::ReadScript {
            path: cfg.script.clone(),
            source,
        }
        .into()
    })
}

fn options(cfg: &RunConfig, seed: u64) -> ScriptOptions {
    ScriptOptions {
        seed,
        params: cfg.params.clone(),
        max_operations: cfg.max_operations,
        horizon: Some(DRY_RUN_HORIZON),
    }
}

/// Where nodes go: one worker, or the workers of the workers file by weight.
fn placement(cfg: &RunConfig) -> Placement {
    if cfg.workers.is_empty() {
        Placement::single()
    } else {
        Placement::weighted(cfg.workers.iter().map(|w| w.weight).collect())
    }
}

fn dry_lab(cfg: &RunConfig, seed: u64, log: EventLog) -> Lab {
    Lab::new(
        Experiment::new(placement(cfg)),
        Box::new(DryRun),
        Box::new(VirtualClock::default()),
        log,
        ChaCha8Rng::seed_from_u64(seed),
    )
    .with_max_procs(cfg.max_procs)
}

/// Compiles, checks and runs the script on a virtual clock, keeping nothing.
pub fn check(cfg: &RunConfig) -> Result<RunOutcome, RunError> {
    check_lab(cfg, |lab| lab)
}

/// Runs the script as `check` does and gives `inspect` the experiment state the script left
/// (groups, nodes, shapes, group links): what `p2plab graph` draws.
pub fn check_state<T: Send + 'static>(
    cfg: &RunConfig,
    inspect: impl FnOnce(&Experiment) -> T + Send + 'static,
) -> Result<(RunOutcome, T), RunError> {
    let slot = Arc::new(Mutex::new(None));
    let end = Arc::clone(&slot);
    let outcome = check_lab(cfg, move |lab| {
        lab.with_end(move |state| {
            *end.lock().unwrap_or_else(|p| p.into_inner()) = Some(inspect(state));
        })
    })?;
    let seen = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok((
        outcome,
        seen.expect("a script that ran to its end finished its lab"),
    ))
}

fn check_lab(cfg: &RunConfig, lab: impl FnOnce(Lab) -> Lab) -> Result<RunOutcome, RunError> {
    let scenario = load(cfg)?;
    let seed = cfg.seed.unwrap_or(0);
    let report = script::run(
        &scenario,
        lab(dry_lab(cfg, seed, EventLog::discard())),
        &options(cfg, seed),
    )?;
    Ok(RunOutcome {
        seed,
        results: None,
        report,
        verdict: Vec::new(),
    })
}

/// Runs the script on a virtual clock: timeline, `events.jsonl`, `traffic.csv` (its header)
/// and `summary.json`.
pub fn dry_run(mut cfg: RunConfig) -> Result<RunOutcome, RunError> {
    let scenario = load(&cfg)?;
    let seed = cfg.seed.unwrap_or_else(rand::random);
    let dir = ResultsDir::create(cfg.out.as_deref(), &cfg.script).map_err(SetupError::from)?;
    let log = events_log(&dir, &mut cfg)?;
    // No data plane, so the header only: a folder reused with `--out` keeps no stale rows,
    // and readers find the same files as after a real run.
    let lab = dry_lab(&cfg, seed, log).with_traffic_csv(traffic_csv(&dir)?);
    health_csv(&dir)?;
    let started = SystemTime::now();
    let result = script::run(&scenario, lab, &options(&cfg, seed));
    write_summary(&dir, &scenario, &cfg, seed, started, None, &result)?;
    Ok(RunOutcome {
        seed,
        results: Some(dir.path().to_path_buf()),
        report: result?,
        verdict: Vec::new(),
    })
}

/// Real mode. The whole script is first checked on a virtual clock, so that a mistake at
/// minute 30 is found before anything starts; then a lab is built and the script drives it.
pub fn real(mut cfg: RunConfig) -> Result<RunOutcome, RunError> {
    // The check follows the same random path as the run.
    let seed = cfg.seed.unwrap_or_else(rand::random);
    cfg.seed = Some(seed);
    check(&cfg)?;
    // The embedded worker needs privileges and the shim here; remote workers have their own.
    let local = if cfg.workers.is_empty() {
        crate::netns::require_privileges().map_err(SetupError::from)?;
        Some(crate::worker::shim::locate().map_err(SetupError::from)?)
    } else {
        None
    };
    let token = match (&local, cfg.token.take()) {
        (None, None) => {
            return Err(SetupError::NoToken.into());
        }
        (_, token) => token,
    };
    crate::interrupt::install();
    let scenario = load(&cfg)?;
    let dir = ResultsDir::create(cfg.out.as_deref(), &cfg.script).map_err(SetupError::from)?;
    let results =
        std::fs::canonicalize(dir.path()).map_err(|source| SetupError::ResolveResults {
            path: dir.path().to_path_buf(),
            source,
        })?;
    let log = events_log(&dir, &mut cfg)?.write_through();
    let traffic_csv = traffic_csv(&dir)?;
    let health_csv = health_csv(&dir)?;
    let conformance = Arc::new(Mutex::new(Conformance::new(Bounds::default())));
    let started = SystemTime::now();
    let clock = MonotonicClock::start();
    let setup = RunSetup {
        seed,
        mtu: DEFAULT_MTU,
        hint: lab_hint(&cfg),
        results,
        clock,
        binding: cfg.binding,
    };
    let workers = match (local, &token) {
        (Some(shim), _) => embedded_worker(&setup, shim),
        (None, Some(token)) => Workers::connect(&cfg.workers, token, &setup),
        (None, None) => unreachable!("checked above"),
    }
    .map_err(|e| {
        // Nothing ran: leave no results folder behind.
        let _ = std::fs::remove_dir_all(dir.path());
        SetupError::from(e)
    })?;
    let labs = workers.labs().to_vec();
    let lost = workers.lost();
    let dataplane = workers.dataplane_counters();
    let lab = Lab::new(
        Experiment::new(placement(&cfg)),
        Box::new(workers),
        Box::new(RealClock::new(clock)),
        log,
        ChaCha8Rng::seed_from_u64(seed),
    )
    .with_max_procs(cfg.max_procs)
    .with_traffic_csv(traffic_csv)
    .with_health(health_csv, Arc::clone(&conformance));
    let lab = match cfg.watch.take() {
        Some(watch) => lab.with_watch(watch),
        None => lab,
    };
    let mut opts = options(&cfg, seed);
    opts.horizon = None;
    let result = script::run(&scenario, lab, &opts);
    let dataplane = dataplane.get();
    let usage = dir.node_usage();
    let verdict = verdict(&conformance, &dataplane, &usage);
    let lines = verdict.lines();
    let real = RealSummary {
        labs: &labs,
        dataplane,
        usage,
        verdict,
    };
    write_summary(&dir, &scenario, &cfg, seed, started, Some(real), &result)?;
    if let Some(what) = lost.get() {
        return Err(RunError::WorkerLost(format!(
            "{what}; the experiment was stopped, results so far are in {}",
            dir.path().display()
        )));
    }
    Ok(RunOutcome {
        seed,
        results: Some(dir.path().to_path_buf()),
        report: result?,
        verdict: lines,
    })
}

/// The verdict of a real run, judging lateness over the run by what each data plane said
/// when it stopped, and the programs' waits for a CPU by what each node used (`usage`).
fn verdict(
    conformance: &Mutex<Conformance>,
    dataplane: &[WorkerCounters],
    usage: &[serde_json::Value],
) -> Verdict {
    let run_p99: BTreeMap<u32, u64> = dataplane
        .iter()
        .filter_map(|w| Some((w.worker, *w.counters.get("late_p99_ns")?)))
        .collect();
    let mut conformance = conformance.lock().unwrap_or_else(|p| p.into_inner());
    conformance.programs(usage.iter().filter_map(program_wait).collect());
    let verdict = conformance.verdict(&run_p99);
    if verdict.workers.is_empty() {
        return Verdict::not_measured("the run ended before its data plane was read");
    }
    verdict
}

/// A node's wait for a CPU from its entry of `summary.json`'s `usage`; `None` for an entry
/// without one (a worker of an older p2plab).
fn program_wait(usage: &serde_json::Value) -> Option<ProgramWait> {
    Some(ProgramWait {
        ip: usage["ip"].as_str()?.parse().ok()?,
        seconds: usage["seconds"].as_f64()?,
        cpu_seconds: usage["cpu_seconds"].as_f64()?,
        wait_seconds: usage["cpu_wait_seconds"].as_f64()?,
    })
}

/// The one worker of a single-machine run, in this process: a session served over an
/// in-memory stream, speaking the same protocol as a remote worker, with no daemon.
fn embedded_worker(setup: &RunSetup, shim: PathBuf) -> Result<Workers, WorkersError> {
    let mut workers = Workers::new(setup)?;
    let token = Token::parse(&Token::generate(), "the embedded worker")
        .expect("a generated token is long enough");
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let session_token = token.clone();
    let labs = MachineLabs {
        dir: setup.results.clone(),
        shim,
        socket: None,
    };
    // The embedded worker writes node folders straight into the results, and its controller
    // handles Ctrl-C (it still needs the session to stop the run).
    let opts = SessionOptions {
        dir: setup.results.clone(),
        collect: false,
        watch_interrupt: false,
    };
    let span = tracing::info_span!("session", worker = "embedded");
    workers.spawn(
        async move {
            let mut conn = Connection::new(theirs);
            if conn
                .authenticate_controller(&session_token, "embedded worker", || Ok(()))
                .await
                .is_ok()
            {
                session::serve(conn, opts, labs).await;
            }
        }
        .instrument(span),
    );
    workers.attach("embedded".into(), ours, &token, setup, Vec::new())?;
    Ok(workers)
}

fn events_log(dir: &ResultsDir, cfg: &mut RunConfig) -> Result<EventLog, SetupError> {
    let path = dir.events_path();
    EventLog::create(&path, cfg.timeline.take())
        .map_err(|source| SetupError::WriteEvents { path, source })
}

fn health_csv(dir: &ResultsDir) -> Result<HealthCsv, SetupError> {
    let path = dir.dataplane_path();
    HealthCsv::create(&path).map_err(|source| SetupError::WriteTraffic { path, source })
}

fn traffic_csv(dir: &ResultsDir) -> Result<TrafficCsv, SetupError> {
    let path = dir.traffic_path();
    TrafficCsv::create(&path).map_err(|source| SetupError::WriteTraffic { path, source })
}

/// MTU of emulated links: the Internet's usual 1500 bytes.
pub const DEFAULT_MTU: u32 = 1500;

/// A short name part for the lab namespace: the script's stem (letters and digits) and a
/// counter, so that several labs of one process (tests) never share a name.
fn lab_hint(cfg: &RunConfig) -> String {
    static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stem = cfg
        .script
        .file_stem()
        .map_or("lab".into(), |s| s.to_string_lossy().into_owned());
    let clean: String = stem
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    let clean = if clean.is_empty() {
        "lab".into()
    } else {
        clean
    };
    format!("{clean}{n}")
}

/// What only a real run adds to its summary: the workers' labs (address, namespace, binding), their
/// data planes' counters once they stopped, and the fidelity verdict.
struct RealSummary<'a> {
    labs: &'a [(String, String, Binding)],
    dataplane: Vec<WorkerCounters>,
    /// What each node used, as `summary.json`'s `usage`.
    usage: Vec<serde_json::Value>,
    verdict: Verdict,
}

/// The kernel release of this machine (`uname -r`), or `null` where /proc has none.
fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

fn write_summary(
    dir: &ResultsDir,
    scenario: &Scenario,
    cfg: &RunConfig,
    seed: u64,
    started: SystemTime,
    real: Option<RealSummary>,
    result: &Result<ScriptReport, ScriptError>,
) -> Result<(), RunError> {
    let labs = real.as_ref().map(|r| r.labs).unwrap_or_default();
    let usage = match &real {
        Some(r) => r.usage.clone(),
        None => dir.node_usage(),
    };
    let verdict = real.as_ref().map_or_else(
        || Verdict::not_measured("a dry-run moves no packets"),
        |r| r.verdict.clone(),
    );
    let namespace = labs.first().map(|(_, ns, _)| ns.as_str());
    // One word for the run; "mixed" where workers bound differently (see `workers`).
    let binding = labs.first().map(|(_, _, first)| {
        if labs.iter().all(|(_, _, b)| b == first) {
            first.name()
        } else {
            "mixed"
        }
    });
    let dataplane: Vec<_> = real
        .map(|r| r.dataplane)
        .unwrap_or_default()
        .into_iter()
        .map(|w| {
            let mut entry = serde_json::json!({ "worker": w.worker, "addr": w.addr });
            if let serde_json::Value::Object(map) = &mut entry {
                map.extend(w.counters.into_iter().map(|(k, v)| (k, v.into())));
            }
            entry
        })
        .collect();
    let workers: Vec<_> = labs
        .iter()
        .enumerate()
        .map(|(i, (addr, ns, binding))| {
            serde_json::json!({ "worker": i, "addr": addr, "namespace": ns, "binding": binding.name() })
        })
        .collect();
    let traffic: Vec<_> = result
        .as_ref()
        .map(|r| {
            r.traffic
                .iter()
                .map(|(ip, c)| {
                    serde_json::json!({
                        "ip": ip.to_string(),
                        "sent_bytes": c.sent_bytes, "sent_packets": c.sent_packets,
                        "recv_bytes": c.recv_bytes, "recv_packets": c.recv_packets,
                        "dropped_queue": c.dropped_queue, "dropped_loss": c.dropped_loss,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let sha256 = hex::encode(Sha256::digest(scenario.text.as_bytes()));
    let summary = serde_json::json!({
        "script": scenario.name(),
        "script_sha256": sha256,
        "args": cfg.args,
        "version": env!("CARGO_PKG_VERSION"),
        "kernel": kernel_release(),
        "mode": if namespace.is_some() { "real" } else { "dry-run" },
        "namespace": namespace,
        "binding": binding,
        "binding_requested": cfg.binding.name(),
        "workers": workers,
        "seed": seed,
        "params": cfg.params,
        "started": crate::results::iso8601(started),
        "ended": crate::results::iso8601(SystemTime::now()),
        "outcome": if result.is_ok() { "ok" } else { "error" },
        "error": result.as_ref().err().map(|e| e.to_string()),
        "experiment_seconds": result.as_ref().ok().map(|r| crate::units::secs(r.end_time)),
        "events": result.as_ref().ok().map(|r| r.events),
        "traffic": traffic,
        "usage": usage,
        "dataplane": dataplane,
        "conformance": verdict,
    });
    dir.write_summary(&summary)
        .map_err(|e| SetupError::from(e).into())
}
