//! The controller's executor against real worker sessions over in-memory streams, with fake
//! labs: pipelined errors, a lost worker, collected node folders, a worker that sends files
//! where it must not. No privileges needed; each runs in milliseconds.

#[path = "common/fake_workers.rs"]
mod fake_workers;

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

use fake_workers::{cluster, no_failure, wait_until};
use p2plab::experiment::{
    Action, ExecError, Executor, GroupId, LinkShape, NodeId, NodeRecord, ProcId, SpawnSpec,
};
use p2plab::proto::{Connection, Reply, Request, ToController, ToWorker, Token};

fn add_node(id: u32, worker: u32) -> Action {
    Action::AddNode(NodeRecord {
        id: NodeId(id),
        ip: Ipv4Addr::new(10, worker as u8, 0, id as u8 + 1),
        group: GroupId(0),
        worker,
        shape: LinkShape::default(),
        limits: Default::default(),
        failed: false,
    })
}

fn shape(node: u32) -> Action {
    Action::Shape {
        node: NodeId(node),
        shape: LinkShape {
            latency: 30_000_000,
            ..LinkShape::default()
        },
    }
}

fn refuse_shaping_node_1(action: &Action) -> Option<ExecError> {
    matches!(action, Action::Shape { node, .. } if node.0 == 1).then_some(ExecError::UnknownNode(1))
}

#[test]
fn a_pipelined_error_arrives_at_the_next_call_typed_and_naming_its_worker() {
    let mut c = cluster(2, refuse_shaping_node_1);
    c.workers.execute(&add_node(0, 0)).unwrap();
    c.workers.execute(&add_node(1, 1)).unwrap();
    // A shape goes to every worker and is not waited for: the call itself succeeds.
    c.workers.execute(&shape(1)).unwrap();
    for fake in &c.fakes {
        wait_until("both workers got the shape", || {
            fake.seen.actions.lock().unwrap().len() == 3
        });
    }
    // The worker's reply is read by now; the next call reports it.
    let settled = std::time::Instant::now();
    let err = loop {
        match c.workers.execute(&Action::Revive { node: NodeId(0) }) {
            Err(e) => break e,
            Ok(_) => assert!(
                settled.elapsed().as_secs() < 10,
                "the pipelined error never came back"
            ),
        }
    };
    match &err {
        ExecError::OnWorker {
            worker: 0,
            addr,
            source,
        } => {
            assert_eq!(addr, "fake0");
            assert!(matches!(**source, ExecError::UnknownNode(1)), "{source:?}");
        }
        other => panic!("expected an error of worker 0, got {other:?}"),
    }
    assert_eq!(err.to_string(), "worker 0 (fake0): node 1 is unknown here");
    // Reported once: the run can go on.
    wait_until("the second worker's error is reported too", || {
        c.workers
            .execute(&Action::Revive { node: NodeId(0) })
            .is_err()
    });
    c.workers
        .execute(&Action::Revive { node: NodeId(0) })
        .unwrap();
    c.workers.finish().unwrap();
}

#[test]
fn a_lost_worker_is_named_and_its_lab_dropped() {
    let mut c = cluster(3, no_failure);
    for (node, worker) in [(0, 0), (1, 1), (2, 2)] {
        c.workers.execute(&add_node(node, worker)).unwrap();
    }
    c.fakes[1].crash();
    wait_until("the crashed worker's lab is dropped", || {
        c.fakes[1].seen.dropped.load(Ordering::SeqCst)
    });
    let lost = c.workers.lost();
    let started = std::time::Instant::now();
    let err = loop {
        match c.workers.execute(&shape(0)) {
            Err(e) => break e,
            Ok(_) => assert!(
                started.elapsed().as_secs() < 10,
                "the loss was never noticed"
            ),
        }
    };
    assert!(
        matches!(&err, ExecError::WorkerLost { worker: 1, addr, .. } if addr == "fake1"),
        "{err:?}"
    );
    assert_eq!(
        lost.get().as_deref(),
        Some("worker 1 (fake1) was lost: the connection closed")
    );
    // The others are still served and stop cleanly at the end.
    c.workers.execute(&shape(2)).unwrap();
    c.workers.finish().unwrap();
    for i in [0, 2] {
        wait_until("the other sessions stop", || {
            c.fakes[i].seen.end.lock().unwrap().as_deref() == Some("stopped")
        });
        assert!(c.fakes[i].seen.dropped.load(Ordering::SeqCst));
    }
}

#[test]
fn node_folders_are_collected_at_the_end() {
    let mut c = cluster(2, no_failure);
    c.workers.execute(&add_node(0, 0)).unwrap();
    c.workers.execute(&add_node(1, 1)).unwrap();
    let spawned = c
        .workers
        .execute(&Action::Spawn {
            proc: ProcId(0),
            node: NodeId(1),
            spec: SpawnSpec {
                cmd: "true".into(),
                argv: vec!["true".into()],
                shell: false,
                env: Vec::new(),
                user: None,
                stdout: None,
            },
        })
        .unwrap();
    assert_eq!(spawned.pid, Some(4000));
    // Larger than one 1 MiB chunk, so it comes in pieces.
    let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let node = c.fakes[1].dir.path().join("nodes/10.1.0.2");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(node.join("stdout.log"), b"hello\n").unwrap();
    std::fs::write(node.join("download.bin"), &big).unwrap();
    std::fs::write(node.join("empty.log"), b"").unwrap();
    c.workers.finish().unwrap();
    let got = c.results.path().join("nodes/10.1.0.2");
    assert_eq!(std::fs::read(got.join("stdout.log")).unwrap(), b"hello\n");
    assert_eq!(std::fs::read(got.join("download.bin")).unwrap(), big);
    assert_eq!(std::fs::read(got.join("empty.log")).unwrap(), b"");
    for fake in &c.fakes {
        wait_until("the session stops", || {
            fake.seen.end.lock().unwrap().as_deref() == Some("stopped")
        });
    }
}

#[test]
fn a_worker_cannot_write_outside_the_node_folders() {
    let results = tempfile::tempdir().unwrap();
    let setup = fake_workers::run_setup(&results.path().join("run"));
    std::fs::create_dir_all(&setup.results).unwrap();
    let mut workers = p2plab::controller::Workers::new(&setup).unwrap();
    let token = Token::parse(&Token::generate(), "test").unwrap();
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let rogue_token = token.clone();
    // A worker that holds the token but answers Collect with a path of its own choosing.
    workers.spawn(async move {
        let mut conn = Connection::new(theirs);
        if conn
            .authenticate_controller(&rogue_token, "rogue", || Ok(()))
            .await
            .is_err()
        {
            return;
        }
        let (mut writer, mut reader) = conn.split().unwrap();
        while let Ok(msg) = reader.recv::<ToWorker>().await {
            let ToWorker::Request { id, body } = msg else {
                continue;
            };
            let reply = match body {
                Request::Setup(_) => Reply::Lab {
                    namespace: "rogue".into(),
                    binding: p2plab::proto::Binding::Preload,
                },
                Request::Collect => {
                    let file = ToController::File {
                        path: "../escaped".into(),
                        offset: 0,
                        data: "aGk=".into(),
                    };
                    let _ = writer.send(&file).await;
                    Reply::Done
                }
                _ => Reply::Done,
            };
            let _ = writer
                .send(&ToController::Reply {
                    id,
                    result: Ok(reply),
                })
                .await;
        }
    });
    workers
        .attach("rogue".into(), ours, &token, &setup, Vec::new())
        .unwrap();
    let err = workers.finish().unwrap_err();
    assert!(
        err.to_string()
            .contains("a worker sent a file outside the node folders: \"../escaped\""),
        "{err}"
    );
    assert!(!results.path().join("escaped").exists());
}
