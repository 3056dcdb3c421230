//! Ctrl-C of the controller, without privileges: a wait in progress ends, and the run still
//! stops every worker, whose sessions drop their labs. Its own test binary, since the signal
//! reaches the whole process.

#[path = "common/fake_workers.rs"]
mod fake_workers;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use fake_workers::{cluster, no_failure, wait_until};
use p2plab::experiment::{
    Action, ExecError, Executor, GroupId, LinkShape, NodeId, NodeRecord, ProcId, SpawnSpec,
};

#[test]
fn ctrl_c_ends_a_wait_and_every_worker_is_stopped() {
    let mut c = cluster(2, no_failure);
    for worker in 0..2u32 {
        c.workers
            .execute(&Action::AddNode(NodeRecord {
                id: NodeId(worker),
                ip: Ipv4Addr::new(10, worker as u8, 0, 1),
                group: GroupId(0),
                worker,
                shape: LinkShape::default(),
                limits: Default::default(),
                failed: false,
            }))
            .unwrap();
    }
    let spec = SpawnSpec {
        cmd: "sleep 100".into(),
        argv: vec!["sleep".into(), "100".into()],
        shell: false,
        env: Vec::new(),
        user: None,
        stdout: None,
    };
    c.workers
        .execute(&Action::Spawn {
            proc: ProcId(0),
            node: NodeId(1),
            spec,
        })
        .unwrap();
    p2plab::interrupt::install();
    let signaller = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // SAFETY: raise(3) sends a signal to this process; the handler only sets a flag.
        unsafe { libc::raise(libc::SIGINT) };
    });
    // The fake process never exits: only Ctrl-C ends this wait.
    let err = c
        .workers
        .execute(&Action::Wait { proc: ProcId(0) })
        .unwrap_err();
    signaller.join().unwrap();
    assert!(matches!(err, ExecError::Interrupted), "{err:?}");
    assert!(p2plab::interrupt::requested());
    c.workers.finish().unwrap();
    for fake in &c.fakes {
        wait_until("the session ends", || {
            fake.seen.end.lock().unwrap().is_some()
        });
        assert_eq!(fake.seen.end.lock().unwrap().as_deref(), Some("stopped"));
        assert!(fake.seen.dropped.load(Ordering::SeqCst));
    }
}
