//! Controller and workers in one process without privileges: the controller's real `Workers`
//! executor talks over in-memory streams to real worker sessions whose labs are fakes that
//! record what they are asked and fail where told to. The protocol, the pipelining, the
//! collection and the loss detection are all the real ones.
// Shared by several test binaries; each uses a part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use p2plab::clock::MonotonicClock;
use p2plab::controller::{RunSetup, Workers};
use p2plab::experiment::{Action, ExecError, Executor, Outcome, ProcExit};
use p2plab::proto::{Binding, Connection, Failure, Setup, Token};
use p2plab::units::Nanos;
use p2plab::worker::session::{self, LabBuilder, SessionEnd, SessionOptions};
use tokio::sync::oneshot;

/// What one fake worker saw, shared with the test.
#[derive(Default)]
pub struct Seen {
    pub actions: Mutex<Vec<Action>>,
    /// Set when the session dropped its lab.
    pub dropped: AtomicBool,
    pub end: Mutex<Option<String>>,
}

/// A lab that carries nothing out: it records each action and refuses the one `fail` picks.
pub struct FakeLab {
    seen: Arc<Seen>,
    fail: fn(&Action) -> Option<ExecError>,
}

impl Executor for FakeLab {
    fn execute(&mut self, action: &Action) -> Result<Outcome, ExecError> {
        self.seen.actions.lock().unwrap().push(action.clone());
        if let Some(e) = (self.fail)(action) {
            return Err(e);
        }
        Ok(match action {
            Action::Spawn { proc, .. } => Outcome {
                pid: Some(4000 + proc.0),
                ..Outcome::default()
            },
            _ => Outcome::default(),
        })
    }

    fn drain_exits(&mut self) -> Result<Vec<(Nanos, ProcExit)>, ExecError> {
        Ok(Vec::new())
    }
}

impl Drop for FakeLab {
    fn drop(&mut self) {
        self.seen.dropped.store(true, Ordering::SeqCst);
    }
}

struct FakeLabs {
    seen: Arc<Seen>,
    fail: fn(&Action) -> Option<ExecError>,
}

impl LabBuilder for FakeLabs {
    type Lab = FakeLab;

    fn build(&mut self, setup: Setup) -> Result<(FakeLab, String, Binding), Failure> {
        let lab = FakeLab {
            seen: self.seen.clone(),
            fail: self.fail,
        };
        Ok((lab, format!("fake-{}", setup.index), Binding::Preload))
    }
}

/// One fake worker of a cluster.
pub struct FakeWorker {
    pub seen: Arc<Seen>,
    /// Its node folders, as a remote worker keeps them until they are collected.
    pub dir: tempfile::TempDir,
    /// Cuts its connection, as a crashed machine would.
    cut: Option<oneshot::Sender<()>>,
}

impl FakeWorker {
    pub fn crash(&mut self) {
        if let Some(cut) = self.cut.take() {
            let _ = cut.send(());
        }
    }
}

pub struct Cluster {
    pub workers: Workers,
    pub fakes: Vec<FakeWorker>,
    pub results: tempfile::TempDir,
}

pub fn no_failure(_: &Action) -> Option<ExecError> {
    None
}

/// A controller with `n` fake workers; `fail` decides which actions each refuses.
pub fn cluster(n: usize, fail: fn(&Action) -> Option<ExecError>) -> Cluster {
    let results = tempfile::tempdir().unwrap();
    let setup = run_setup(results.path());
    let mut workers = Workers::new(&setup).unwrap();
    let token = Token::parse(&Token::generate(), "test").unwrap();
    let mut fakes = Vec::new();
    for i in 0..n {
        let seen = Arc::new(Seen::default());
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (cut, cut_rx) = oneshot::channel();
        let labs = FakeLabs {
            seen: seen.clone(),
            fail,
        };
        let opts = SessionOptions {
            dir: dir.path().to_path_buf(),
            collect: true,
            watch_interrupt: false,
        };
        let (token2, seen2) = (token.clone(), seen.clone());
        workers.spawn(async move {
            let mut conn = Connection::new(theirs);
            if conn
                .authenticate_controller(&token2, "fake worker", || Ok(()))
                .await
                .is_err()
            {
                return;
            }
            let end = tokio::select! {
                end = session::serve(conn, opts, labs) => match end {
                    SessionEnd::Stopped => "stopped".to_string(),
                    other => format!("{other:?}"),
                },
                _ = cut_rx => "crashed".to_string(),
            };
            *seen2.end.lock().unwrap() = Some(end);
        });
        workers
            .attach(format!("fake{i}"), ours, &token, &setup, Vec::new())
            .unwrap();
        fakes.push(FakeWorker {
            seen,
            dir,
            cut: Some(cut),
        });
    }
    Cluster {
        workers,
        fakes,
        results,
    }
}

pub fn run_setup(results: &Path) -> RunSetup {
    RunSetup {
        seed: 1,
        mtu: 1500,
        hint: "fake".into(),
        results: PathBuf::from(results),
        clock: MonotonicClock::start(),
        binding: Default::default(),
    }
}

/// Waits until `cond` holds, or panics naming `what` never happened.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
