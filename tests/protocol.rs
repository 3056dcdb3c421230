//! The worker's door (needs root, as `p2plab worker` does): no token, a wrong token, a
//! replayed handshake, garbage, a frame claiming 4 GiB and 10,000 random frames are all
//! refused; the worker stays up, builds no lab, and still serves a rightful controller.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::can_run_real_mode_with;
use p2plab::proto::messages::Handshake;
use p2plab::proto::{Connection, ProtoError, Token};
use rand::{RngExt, SeedableRng};

const TOKEN: &str = "protocol-test-token-0123456789abcdef";

struct Worker {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Worker {
    fn start() -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, TOKEN).unwrap();
        let log = dir.path().join("worker.log");
        let child = Command::new(env!("CARGO_BIN_EXE_p2plab"))
            .args(["worker", "--listen", "127.0.0.1:0", "--token-file"])
            .arg(&token)
            .arg("--dir")
            .arg(dir.path().join("scratch"))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "worker did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Worker {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A rightful controller still gets in, and the worker built no lab meanwhile.
    fn still_serves(&mut self) {
        assert!(
            self.alive(),
            "the worker died: {}",
            std::fs::read_to_string(&self.log).unwrap()
        );
        assert!(
            common::namespaces_of(self.child.id()).is_empty(),
            "a lab was built"
        );
        let token = Token::parse(TOKEN, "test").unwrap();
        // The session of an earlier check may still be ending: the worker is then busy.
        let start = Instant::now();
        loop {
            let r = rt().block_on(async {
                let s = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
                Connection::new(s).authenticate_to_worker(&token).await
            });
            match r {
                Ok(_) => break,
                Err(ProtoError::Refused(why)) if why.contains("another controller") => {
                    assert!(start.elapsed() < Duration::from_secs(5), "busy for 5 s");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("a rightful controller was refused: {e}"),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Writes bytes and reads until the worker closes the connection (or 5 s pass).
fn send_raw(addr: &str, bytes: &[u8]) -> Duration {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    start.elapsed()
}

#[test]
fn a_worker_refuses_to_start_without_a_usable_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["worker", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_p2plab"))
        .args(["worker", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&short)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shorter than") && err.contains("p2plab token"),
        "{err}"
    );
}

#[test]
fn wrong_tokens_replays_garbage_and_fuzz_are_refused() {
    if !can_run_real_mode_with("wrong_tokens_replays_garbage_and_fuzz_are_refused", &["ip"]) {
        return;
    }
    let mut worker = Worker::start();
    let addr = worker.addr.clone();

    // A controller with another token: it finds out, and so does the worker.
    let wrong = Token::parse("another-token-0123456789abcdef", "test").unwrap();
    let r = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        Connection::new(s).authenticate_to_worker(&wrong).await
    });
    assert!(matches!(r, Err(ProtoError::Auth(_))), "{r:?}");

    // A stranger that answers the challenge with a made-up proof is refused.
    let refused = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut c = Connection::new(s);
        c.send(&Handshake::Hello {
            version: p2plab::proto::VERSION,
            nonce: hex::encode([7u8; 32]),
        })
        .await
        .unwrap();
        let _: Handshake = c.recv().await.unwrap();
        c.send(&Handshake::Proof {
            proof: hex::encode([0u8; 32]),
        })
        .await
        .unwrap();
        c.recv::<Handshake>().await
    });
    assert!(
        matches!(refused, Ok(Handshake::Refused { .. })),
        "{refused:?}"
    );

    // Replay: the frames of a rightful handshake, recorded, then sent again on a new
    // connection. The worker's fresh nonce makes the recorded proof worthless.
    let token = Token::parse(TOKEN, "test").unwrap();
    let recorded = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut c = Connection::new(s);
        let nonce = [9u8; 32];
        let hello = Handshake::Hello {
            version: p2plab::proto::VERSION,
            nonce: hex::encode(nonce),
        };
        c.send(&hello).await.unwrap();
        let Handshake::Challenge { nonce: theirs, .. } = c.recv().await.unwrap() else {
            panic!()
        };
        let theirs = hex::decode(theirs).unwrap();
        let proof = Handshake::Proof {
            proof: hex::encode(token.proof(p2plab::proto::auth::Role::Controller, &nonce, &theirs)),
        };
        c.send(&proof).await.unwrap();
        assert!(matches!(
            c.recv::<Handshake>().await,
            Ok(Handshake::Welcome { .. })
        ));
        (hello, proof)
    });
    let replayed = rt().block_on(async {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut c = Connection::new(s);
        c.send(&recorded.0).await.unwrap();
        let _: Handshake = c.recv().await.unwrap();
        c.send(&recorded.1).await.unwrap();
        c.recv::<Handshake>().await
    });
    assert!(
        matches!(replayed, Ok(Handshake::Refused { .. })),
        "{replayed:?}"
    );

    // Garbage, and a frame that claims 4 GiB: the connection is closed at once.
    assert!(send_raw(&addr, b"GET / HTTP/1.0\r\n\r\n") < Duration::from_secs(5));
    assert!(send_raw(&addr, &u32::MAX.to_be_bytes()) < Duration::from_secs(5));
    // A request before any handshake is not executed.
    let setup = br#"{"type":"request","id":1,"body":{"request":"setup","index":0,"seed":1,"mtu":1500,"hint":"x","peers":[]}}"#;
    send_raw(&addr, &frame(setup));
    worker.still_serves();

    // 10,000 random frames over 100 connections: random bytes, random JSON-ish text, and
    // messages of the protocol out of order.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let kinds: [&[u8]; 4] = [
        br#"{"type":"proof","proof":"00"}"#,
        br#"{"type":"hello","version":1,"nonce":"zz"}"#,
        br#"{"type":"heartbeat"}"#,
        setup,
    ];
    for _ in 0..100 {
        let mut bytes = Vec::new();
        for _ in 0..100 {
            let payload: Vec<u8> = match rng.random_range(0..3) {
                0 => (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect(),
                1 => kinds[rng.random_range(0..kinds.len())].to_vec(),
                _ => {
                    let mut p = kinds[rng.random_range(0..kinds.len())].to_vec();
                    let i = rng.random_range(0..p.len());
                    p[i] = rng.random();
                    p
                }
            };
            bytes.extend(frame(&payload));
        }
        send_raw(&addr, &bytes);
    }
    worker.still_serves();
    // Sessions only for the three rightful handshakes (the recorded one and two checks): the
    // worker logs each as it starts.
    let sessions = || {
        std::fs::read_to_string(&worker.log)
            .unwrap()
            .matches("controller connected")
            .count()
    };
    common::poll(Duration::from_secs(3), || sessions() >= 3);
    let log = std::fs::read_to_string(&worker.log).unwrap();
    assert_eq!(log.matches("controller connected").count(), 3, "{log}");
}
